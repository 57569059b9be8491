"""Access log: gunicorn's --access-logformat directives and --access-log-json, over a real
process (the access log is the server's stdout)."""

from __future__ import annotations

import base64
import json
import os
import re
import time

import pytest

pytestmark = pytest.mark.timeout(60)

APP = "config_app:application"


def _wait_access(srv, n: int = 1, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = srv.access_lines
        if len(lines) >= n:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"expected {n} access lines, got {srv.access_lines}")


#: Each directive alone between markers, with what the line must hold for the request below.
DIRECTIVES = {
    "h": r"127\.0\.0\.1",
    "l": r"-",
    "u": r"alice",
    "t": r"\[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\]",
    "r": r"GET /p%20q\?x=1&y=2 HTTP/1\.1",
    "m": r"GET",
    "U": r"/p%20q",
    "q": r"x=1&y=2",
    "H": r"HTTP/1\.1",
    "s": r"200",
    "B": r"6",
    "b": r"6",
    "f": r"http://ref\.example/",
    "a": r"agent/1\.0",
    "T": r"0",
    "M": r"\d+",
    "D": r"\d+",
    "L": r"0\.\d{6}",
    "p": rf"<{'{pid}'}>",
    "{x-custom}i": r"custom-value",
    "{X-CUSTOM}i": r"custom-value",
    "{missing}i": r"-",
    "{x-out}o": r"out-value",
    "{x-quote}o": r'a\\"b',
    "{content-length}o": r"6",
    "{path_info}e": r"/p q",
    "{QUERY_STRING}e": r"x=1&y=2",
    "{request_method}e": r"GET",
    "{server_protocol}e": r"HTTP/1\.1",
    "{remote_addr}e": r"127\.0\.0\.1",
    "{server_name}e": r"ex\.example",
    "{server_port}e": r"80",
    "{http_x_custom}e": r"custom-value",
    "{wsgi.url_scheme}e": r"http",
    "{not.known}e": r"-",
}


def test_every_directive(ferrule_server):
    fmt = "|".join(f"%({name})s" for name in DIRECTIVES) + "|100%%"
    srv = ferrule_server(APP, "--access-logfile", "-", "--access-logformat", fmt)
    auth = base64.b64encode(b"alice:secret").decode()
    resp = srv.get(
        "/p%20q?x=1&y=2",
        [
            ("Host", "ex.example"),
            ("Referer", "http://ref.example/"),
            ("User-Agent", "agent/1.0"),
            ("Authorization", f"Basic {auth}"),
            ("X-Custom", "custom-value"),
        ],
    )
    assert resp.status == 200 and resp.body == b"ok mw="
    line = _wait_access(srv)[-1]
    fields = line.split("|")
    assert fields[-1] == "100%", line
    for (name, pattern), value in zip(DIRECTIVES.items(), fields):
        pattern = pattern.replace("{pid}", str(srv.pid))
        assert re.fullmatch(pattern, value), f"%({name})s gave {value!r}; line: {line}"


def test_default_format_is_gunicorns_combined(ferrule_server):
    srv = ferrule_server(APP, "--access-logfile", "-")
    srv.get("/x", [("User-Agent", 'quote"and\\back')])
    line = _wait_access(srv)[-1]
    assert re.fullmatch(
        r'127\.0\.0\.1 - - \[[^]]+\] "GET /x HTTP/1\.1" 200 6 "-" "quote\\"and\\\\back"', line
    ), line


def test_bad_format_is_refused_naming_the_option(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "ferrule", "--access-logformat", "%(zz)s", "x:y"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "--access-logformat" in proc.stderr and "zz" in proc.stderr


HOSTILE = [
    ("X-Quote", 'say "hi"'),
    ("User-Agent", 'ua "quoted" \\ back\tslash'),
    ("Referer", "http://r.example/caf\u00e9/\u65e5\u672c"),
]


def test_json_lines_parse_and_survive_hostile_headers(ferrule_server):
    srv = ferrule_server(APP, "--access-logfile", "-", "--access-log-json")
    # Raw bytes: UTF-8 in a header value (obs-text for HTTP, valid UTF-8 for the log).
    with srv.client() as c:
        head = "GET /j?k=%22v%22 HTTP/1.1\r\nHost: h\r\n" + "".join(
            f"{n}: {v}\r\n" for n, v in HOSTILE
        )
        c.send(head.encode("utf-8") + b"X-Latin: \xe9t\xe9\r\n\r\n")
        assert c.read_response().status == 200
        c.send(b"GET /second HTTP/1.1\r\nHost: h\r\n\r\n")
        assert c.read_response().status == 200
    lines = _wait_access(srv, 2)
    first, second = (json.loads(line) for line in lines[-2:])
    assert list(first) == [
        "time", "remote_addr", "remote_port", "method", "path", "query", "protocol",
        "status", "bytes", "duration_ms", "referer", "user_agent", "pid",
    ]  # fmt: skip
    assert first["path"] == "/j" and first["query"] == "k=%22v%22"
    assert first["user_agent"] == 'ua "quoted" \\ back\tslash'
    assert first["referer"] == "http://r.example/caf\u00e9/\u65e5\u672c"
    assert first["status"] == 200 and first["bytes"] == 6 and first["pid"] == srv.pid
    assert first["remote_addr"] == "127.0.0.1" and isinstance(first["duration_ms"], float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert second["path"] == "/second" and second["referer"] is None
    # One object per line: no raw control character inside a line.
    assert all(ch >= " " for line in lines for ch in line)


def test_access_log_file_from_env_var(ferrule_server, tmp_path):
    log = tmp_path / "access.log"
    srv = ferrule_server(
        APP,
        env={"FERRULE_ACCESS_LOG": str(log), "FERRULE_ACCESS_LOG_FORMAT": "%(s)s %(U)s"},
    )
    srv.get("/from-env")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (log.exists() and log.read_text()):
        time.sleep(0.02)
    assert log.read_text() == "200 /from-env\n"
    assert os.path.getsize(log) > 0
