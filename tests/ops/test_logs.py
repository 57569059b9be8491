"""Logging options over real processes: --access-logfile FILE (gunicorn's format),
--error-logfile FILE, --log-level debug and warning."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ops_helpers import CRASH_RE, wait_listening_port

from helpers import rawhttp
from helpers.server import APPS

APP = "basic_app:application"
#: Seconds to wait for a line to reach a log file.
FILE_WAIT = 10.0
ERROR_LINE_RE = re.compile(
    r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}\] \[(\d+)\] "
    r"\[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] .+$"
)


def wait_file_line(path: Path, pattern: str, timeout: float = FILE_WAIT) -> str:
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        for line in text.splitlines():
            if rx.search(line):
                return line
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no line matching {pattern!r} in {path} within {timeout}s:\n{text}"
            )
        time.sleep(0.05)


class Quiet:
    """A ferrule process whose stderr may not show the `Listening at` line: the port is read
    from /proc. Killed on exit."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ferrule", "--bind", "127.0.0.1:0", "--pythonpath", str(APPS),
             *args, APP],
            cwd=str(APPS),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    def __enter__(self):
        try:
            self.port = wait_listening_port(self.proc.pid)
        except BaseException:
            self.__exit__()
            raise
        return self

    def stop(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=15)
        return self.proc.returncode, out, err

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=15)


def test_access_logfile_writes_gunicorn_format(ferrule_server, tmp_path):
    log = tmp_path / "access.log"
    srv = ferrule_server(APP, "--access-logfile", str(log))
    resp = srv.get("/hello?x=1", [("Referer", "http://ref.example/"), ("User-Agent", "ops-test/1")])
    assert resp.status == 200
    srv.get("/status?code=404")
    line = wait_file_line(log, r"/hello\?x=1")
    assert re.fullmatch(
        r"127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "
        r'"GET /hello\?x=1 HTTP/1\.1" 200 11 "http://ref\.example/" "ops-test/1"',
        line,
    ), line
    line404 = wait_file_line(log, r"/status\?code=404")
    assert '" 404 - "-" "-"' in line404, line404
    assert srv.access_lines == [], "access lines also went to stdout"


def test_error_logfile_receives_the_error_log(tmp_path):
    log = tmp_path / "error.log"
    with Quiet("--error-logfile", str(log)) as q:
        wait_file_line(log, rf"Listening at: http://127\.0\.0\.1:{q.port} \({q.proc.pid}\)")
        assert rawhttp.get(q.port, "/hello").status == 200
        code, _out, err = q.stop()
    assert code == 0
    assert "Listening at" not in err
    assert not CRASH_RE.search(err)
    line = wait_file_line(log, "Shutdown complete")
    assert ERROR_LINE_RE.match(line), line


def test_log_level_debug_shows_debug_lines(ferrule_server):
    srv = ferrule_server(APP, "--log-level", "debug")
    mark = srv.mark()
    with srv.client() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n")
        assert c.read_response().status == 400
    line = srv.wait_for_log(r"\[DEBUG\] .*refused \(400\)", since=mark)
    assert ERROR_LINE_RE.match(line), line


def test_log_level_info_hides_debug_lines(ferrule_server):
    srv = ferrule_server(APP)
    with srv.client() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n")
        assert c.read_response().status == 400
    assert srv.get("/hello").status == 200  # the refusal has been handled by now
    assert not [ln for ln in srv.lines if "[DEBUG]" in ln], srv.log_text()


@pytest.mark.parametrize("level", ["warning", "error"])
def test_log_level_warning_hides_info(level):
    with Quiet("--log-level", level) as q:
        assert rawhttp.get(q.port, "/hello").status == 200
        code, _, err = q.stop()
    assert code == 0
    assert "[INFO]" not in err and "Listening at" not in err, err
    assert not CRASH_RE.search(err)
