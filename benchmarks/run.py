"""Load-test ferrule against peer WSGI servers with wrk (HTTP/1.1) and h2load (HTTP/2), in one
run, on one machine.

Method (benchmarks/README.md says why): every server runs ONE worker process pinned to CPU 0, wrk
runs one thread pinned to CPU 1; each (scenario, server) pair gets a fresh server, a readiness poll
(connect() with a deadline, never a fixed sleep), a correctness check of one response, a warm-up,
then N measured runs whose medians are reported. For each run we record RPS, p50/p99 latency,
socket/status errors (flagged, never silently averaged in), server CPU time per request
(utime+stime of the whole process tree from /proc/PID/stat) and, after the last run, the RSS of the
process tree (VmRSS summed; PSS too). Results go to benchmarks/results/DATE.json and a Markdown
table to stdout.

Standard library only. Run it through benchmarks/run.sh, which creates benchmarks/.venv and runs
this file with that venv's Python; this script installs the peers (and ferrule, built from the
repo in release mode) into the venv it runs in.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import importlib
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
APPS = HERE / "apps"
WRK_SCRIPTS = HERE / "wrk"
RESULTS = HERE / "results"
VENV_BIN = Path(sys.prefix) / "bin"

#: CPU the server (all its processes and threads) is pinned to.
SERVER_CPU = "0"
#: CPU wrk is pinned to.
CLIENT_CPU = "1"
#: Threads for servers that have them, unless the scenario says otherwise.
DEFAULT_THREADS = 4
#: How long a server may take from exec to accepting connections.
READY_TIMEOUT_S = 30.0
#: Interval between connect() attempts while waiting for readiness.
READY_POLL_S = 0.05
#: Time a server gets to exit after SIGTERM before its process group is killed.
STOP_TIMEOUT_S = 3.0
#: Timeout of the single correctness-check request.
CHECK_TIMEOUT_S = 10.0
#: A second check response slower than this fails the pair: every app answers in well under
#: 100 ms once loaded, so a slow answer means a body the client could only delimit by waiting for
#: the server to close (seen: uWSGI --http11-socket with a generator sends no framing and closes
#: after its 4 s socket timeout). The first response is not timed: some servers load the app
#: lazily, after they start accepting.
CHECK_SLOW_S = 2.0
#: wrk's per-request timeout: a response slower than this counts as a timeout error.
WRK_REQUEST_TIMEOUT = "5s"
#: A keep-alive run whose busy connections (Little's law: RPS x mean latency) fall below this
#: fraction of the connections opened is flagged "starved": wrk never reports a connection that
#: gets no response at all (seen: uWSGI --http11-socket serves one connection per thread and
#: leaves the others waiting in the backlog for the whole run).
STARVED_FRACTION = 0.5
#: Slack added to a wrk run's duration for its subprocess timeout.
WRK_GRACE_S = 30.0
#: Timeout of one pip invocation (building ferrule or uWSGI from source is slow on 2 cores).
PIP_TIMEOUT_S = 1800.0
#: Timeout of small helper commands (git, lscpu, wrk -v).
TOOL_TIMEOUT_S = 30.0
#: Backlog asked of servers whose default is small (uWSGI's is 100).
LISTEN_BACKLOG = 1024
#: Size of the echo scenario's request body; must match wrk/echo.lua.
ECHO_BODY_BYTES = 64 * 1024

#: Hostile scenarios: slow clients held open during the measured runs (issue 3).
SLOWLORIS_CONNECTIONS = 500
IDLE_CONNECTIONS = 5000
#: Seconds allowed to open the hostile connections (a server that stops accepting is reported
#: with the number it took, not waited for).
HOSTILE_OPEN_S = 60.0
#: Socket timeout of one hostile connect / idle request.
HOSTILE_IO_S = 2.0
#: HTTP/2 scenarios: concurrent streams per h2load connection (`h2load -m`).
H2_STREAMS = 10
#: Servers that speak HTTP/2 (h2c with prior knowledge, and h2 over TLS by ALPN); the others are
#: left out of the HTTP/2 scenarios.
H2_SERVERS = {"ferrule", "granian"}
#: The self-signed certificate and key the TLS scenarios serve (made by `make_certificate`).
TLS_FILES: dict[str, Path] = {}
QUICK = {"duration": 2, "warmup": 1, "runs": 1}
FULL = {"duration": 10, "warmup": 5, "runs": 3}


# --------------------------------------------------------------------------------------------
# Scenarios


class CheckFailed(Exception):
    """The server answered the correctness check wrongly: its numbers would mean nothing."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    app: str  # module in apps/; the WSGI callable is `application`
    path: str
    connections: int
    threads: int = DEFAULT_THREADS
    blocking: bool = False  # the app blocks: gunicorn uses gthread instead of sync
    lua: str | None = None  # scenario script in wrk/, prepended to wrk/report.lua
    headers: tuple[str, ...] = ()
    check_method: str = "GET"
    check_body: bytes | None = None
    check: Callable[[bytes], str | None] = field(default=lambda body: None)
    # wrk records one latency sample per pipelined batch but ranks percentiles over all
    # responses, so its p90/p99 read 0 under pipelining: such percentiles are not reported.
    latency_valid: bool = True
    check_pipelining: bool = False
    # "slowloris" or "idle": connections held open by run.py during the runs (see Hostile).
    hostile: str | None = None
    hostile_connections: int = 0
    # "http/1.1" (wrk), or HTTP/2 measured with h2load: "h2c" (cleartext, prior knowledge) or
    # "h2" (TLS, chosen by ALPN).
    protocol: str = "http/1.1"
    # Measure the app alone too (`app_alone.py`: called in a loop on the server's CPU, no server).
    alone: bool = False

    @property
    def http2(self) -> bool:
        return self.protocol != "http/1.1"

    @property
    def tls(self) -> bool:
        return self.protocol == "h2"

    @property
    def target(self) -> str:
        return f"{self.app}:application"

    @property
    def keep_alive(self) -> bool:
        return "connection: close" not in (h.lower() for h in self.headers)


def _expect_len(n: int) -> Callable[[bytes], str | None]:
    def check(body: bytes) -> str | None:
        return None if len(body) == n else f"expected a {n}-byte body, got {len(body)} bytes"

    return check


def _expect_equal(expected: bytes) -> Callable[[bytes], str | None]:
    def check(body: bytes) -> str | None:
        return None if body == expected else f"echo mismatch: sent {len(expected)}, got {len(body)}"

    return check


def _expect_json(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        return f"not JSON: {exc}"
    return None if doc.get("message") == "Hello, World!" else f"unexpected JSON: {doc!r}"


ECHO_BODY = b"x" * ECHO_BODY_BYTES

SCENARIOS = [
    Scenario(
        "hello", "13 B body, keep-alive, 64 connections", "hello", "/", 64, check=_expect_len(13)
    ),
    Scenario(
        "hello-close",
        "13 B body, `Connection: close`, 16 connections",
        "hello",
        "/",
        16,
        headers=("Connection: close",),
        check=_expect_len(13),
    ),
    Scenario(
        "pipeline",
        "13 B body, pipelined 16 deep, 16 connections",
        "hello",
        "/",
        16,
        lua="pipeline.lua",
        check=_expect_len(13),
        latency_valid=False,
        check_pipelining=True,
    ),
    Scenario(
        "big",
        "1 MiB prebuilt bytes body, 16 connections",
        "big",
        "/",
        16,
        check=_expect_len(1024 * 1024),
    ),
    Scenario(
        "gen",
        "generator of 100 x 1 KiB chunks, no Content-Length, 16 connections",
        "gen",
        "/",
        16,
        check=_expect_len(100 * 1024),
    ),
    Scenario(
        "echo",
        "64 KiB POST echoed back, 16 connections",
        "echo",
        "/",
        16,
        lua="echo.lua",
        check_method="POST",
        check_body=ECHO_BODY,
        check=_expect_equal(ECHO_BODY),
    ),
    Scenario(
        "sleep",
        "app sleeps 10 ms, 128 connections, 32 threads",
        "sleep",
        "/",
        128,
        threads=32,
        blocking=True,
        check=_expect_len(13),
    ),
    Scenario(
        "flask",
        "Flask JSON route, 64 connections",
        "flask_json",
        "/json",
        64,
        check=_expect_json,
        alone=True,
    ),
    Scenario(
        "slowloris",
        f"hello while {SLOWLORIS_CONNECTIONS} connections send a header byte per second",
        "hello",
        "/",
        64,
        check=_expect_len(13),
        hostile="slowloris",
        hostile_connections=SLOWLORIS_CONNECTIONS,
    ),
    Scenario(
        "idle",
        f"hello while {IDLE_CONNECTIONS} idle keep-alive connections are held",
        "hello",
        "/",
        64,
        check=_expect_len(13),
        hostile="idle",
        hostile_connections=IDLE_CONNECTIONS,
    ),
    Scenario(
        "h2c",
        f"13 B body over h2c (prior knowledge), 16 connections x {H2_STREAMS} streams (h2load)",
        "hello",
        "/",
        16,
        check=_expect_len(13),
        latency_valid=False,
        protocol="h2c",
    ),
    Scenario(
        "h2-tls",
        f"13 B body over TLS + ALPN h2, 16 connections x {H2_STREAMS} streams (h2load)",
        "hello",
        "/",
        16,
        check=_expect_len(13),
        latency_valid=False,
        protocol="h2",
    ),
]
SCENARIOS_BY_NAME = {s.name: s for s in SCENARIOS}


# --------------------------------------------------------------------------------------------
# Servers: each returns the argv of ONE worker process with `threads` threads where it has them.


def _bin(name: str) -> str:
    return str(VENV_BIN / name)


def _listen_backlog() -> int:
    try:
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return 128
    return min(LISTEN_BACKLOG, somaxconn)


#: The ferrule executable measured: the one run.py installs into the venv, unless --ferrule-bin.
FERRULE_BIN = {"path": str(VENV_BIN / "ferrule")}
#: Worker processes per server (--workers): each server's own flag (ferrule -w, gunicorn
#: --workers, granian --workers, uwsgi --processes). bjoern and waitress have none: they stay
#: one process, and the report says so.
WORKERS = {"n": 1}
#: Servers with a worker-process option.
MULTI_PROCESS = {"ferrule", "gunicorn", "granian", "uwsgi", "uwsgi-http11"}


def server_cpus() -> str:
    """CPUs the server is pinned to: SERVER_CPU for one worker; with --workers N, the first N
    CPUs (wrk's CPU among them on a 2-CPU machine: load generator and server then share)."""
    n = WORKERS["n"]
    if n <= 1:
        return SERVER_CPU
    return ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:n])


def idle_keepalive(sc: Scenario, flag: str) -> list[str]:
    """In the `idle` scenario, a keep-alive timeout longer than the runs, so the held
    connections stay open while they are measured (a server's default may close them first)."""
    return [flag, "300"] if sc.hostile == "idle" else []


def ferrule_argv(sc: Scenario, port: int) -> list[str]:
    http2 = ["--http2"] if sc.http2 else []
    if sc.tls:
        http2 += ["--certfile", str(TLS_FILES["cert"]), "--keyfile", str(TLS_FILES["key"])]
    return [
        FERRULE_BIN["path"],
        sc.target,
        "--bind",
        f"127.0.0.1:{port}",
        "--threads",
        str(sc.threads),
        "--workers",
        str(WORKERS["n"]),
        "--pythonpath",
        str(APPS),
        "--log-level",
        "warning",
        *idle_keepalive(sc, "--keep-alive"),
        *http2,
    ]


def gunicorn_argv(sc: Scenario, port: int) -> list[str]:
    worker = (
        ["--worker-class", "gthread", "--threads", str(sc.threads)]
        if sc.blocking
        else ["--worker-class", "sync"]
    )
    return [
        _bin("gunicorn"),
        "--workers",
        str(WORKERS["n"]),
        *worker,
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(APPS),
        "--log-level",
        "warning",
        *idle_keepalive(sc, "--keep-alive"),
        sc.target,
    ]


def granian_argv(sc: Scenario, port: int) -> list[str]:
    tls = (
        ["--ssl-certificate", str(TLS_FILES["cert"]), "--ssl-keyfile", str(TLS_FILES["key"])]
        if sc.tls
        else []
    )
    return [
        _bin("granian"),
        "--interface",
        "wsgi",
        "--http",
        "2" if sc.http2 else "1",
        *tls,
        "--workers",
        str(WORKERS["n"]),
        "--blocking-threads",
        str(sc.threads),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--working-dir",
        str(APPS),
        "--no-access-log",
        "--log-level",
        "warning",
        sc.target,
    ]


def waitress_argv(sc: Scenario, port: int) -> list[str]:
    return [
        _bin("waitress-serve"),
        f"--listen=127.0.0.1:{port}",
        f"--threads={sc.threads}",
        sc.target,
    ]


def bjoern_argv(sc: Scenario, port: int) -> list[str]:
    # bjoern has no CLI: this script serves the app itself (see serve_bjoern). Single thread.
    return [sys.executable, str(Path(__file__).resolve()), "--serve-bjoern", sc.target, str(port)]


def _uwsgi_argv(socket_option: str, sc: Scenario, port: int) -> list[str]:
    # No --master: the one worker is the only process. --disable-logging: no per-request log.
    return [
        _bin("uwsgi"),
        socket_option,
        f"127.0.0.1:{port}",
        "--processes",
        str(WORKERS["n"]),
        "--threads",
        str(sc.threads),
        "--chdir",
        str(APPS),
        "--module",
        sc.target,
        "--listen",
        str(_listen_backlog()),
        "--disable-logging",
        "--need-app",
        "--die-on-term",
    ]


def uwsgi_argv(sc: Scenario, port: int) -> list[str]:
    return _uwsgi_argv("--http-socket", sc, port)


def uwsgi_http11_argv(sc: Scenario, port: int) -> list[str]:
    return _uwsgi_argv("--http11-socket", sc, port)


@dataclass(frozen=True)
class Server:
    name: str
    dist: str  # PyPI distribution that provides it
    argv: Callable[[Scenario, int], list[str]]
    has_threads: bool
    note: str


SERVERS = [
    Server(
        "ferrule",
        "ferrule",
        ferrule_argv,
        True,
        "--threads N (4; 32 for sleep); --http2 for HTTP/2",
    ),
    Server(
        "gunicorn",
        "gunicorn",
        gunicorn_argv,
        True,
        "-w 1, sync worker; gthread --threads 32 for sleep",
    ),
    Server(
        "granian",
        "granian",
        granian_argv,
        True,
        "--interface wsgi --http 1 (2 for HTTP/2) --workers 1 --blocking-threads N",
    ),
    Server("bjoern", "bjoern", bjoern_argv, False, "bjoern.run(), single thread"),
    Server("waitress", "waitress", waitress_argv, True, "waitress-serve --threads N"),
    Server(
        "uwsgi",
        "uWSGI",
        uwsgi_argv,
        True,
        "--http-socket --processes 1 --threads N (no keep-alive)",
    ),
    Server(
        "uwsgi-http11",
        "uWSGI",
        uwsgi_http11_argv,
        True,
        "--http11-socket --processes 1 --threads N (keep-alive)",
    ),
]
SERVERS_BY_NAME = {s.name: s for s in SERVERS}


def serve_bjoern(target: str, port: int) -> None:
    """Entry point of the bjoern server process (`run.py --serve-bjoern MOD:ATTR PORT`)."""
    import bjoern  # type: ignore[import-not-found]

    sys.path.insert(0, str(APPS))
    module, attr = target.split(":", 1)
    app = getattr(importlib.import_module(module), attr)
    bjoern.run(app, "127.0.0.1", port)


# --------------------------------------------------------------------------------------------
# Process-tree accounting from /proc


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read_stat(int(entry))
        if stat is not None:
            children.setdefault(int(stat[1]), []).append(int(entry))
    return children


def _read_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (state first), or None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    children = _children_map()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """utime+stime of every live process in the tree, plus the times of reaped children."""
    ticks = 0
    for pid in process_tree(root):
        stat = _read_stat(pid)
        if stat is not None:
            # After the state field: utime, stime, cutime, cstime are fields 14-17 of stat(5).
            ticks += sum(int(x) for x in stat[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _status_kb(path: str, key: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_memory_kb(root: int) -> tuple[int, int]:
    """(sum of VmRSS, sum of Pss) over the process tree, in KiB."""
    pids = process_tree(root)
    rss = sum(_status_kb(f"/proc/{pid}/status", "VmRSS:") for pid in pids)
    pss = sum(_status_kb(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in pids)
    return rss, pss


# --------------------------------------------------------------------------------------------
# Server life cycle

_RUNNING: list[subprocess.Popen] = []


class ServerFailed(Exception):
    """The server did not start, or died during the measurement."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    server: Server, sc: Scenario, port: int, log_path: Path, pin: bool
) -> subprocess.Popen:
    argv = server.argv(sc, port)
    if pin:
        argv = ["taskset", "-c", server_cpus(), *argv]
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    with open(log_path, "wb") as log:
        log.write(("$ " + " ".join(argv) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            cwd=APPS,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    _RUNNING.append(proc)
    return proc


def wait_ready(proc: subprocess.Popen, port: int, log_path: Path) -> float:
    """Polls connect() until the server accepts; returns the seconds it took."""
    start = time.monotonic()
    deadline = start + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(
                f"exited with {proc.returncode} before accepting; "
                f"log: {log_path}\n{_tail(log_path)}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return time.monotonic() - start
        except OSError:
            time.sleep(READY_POLL_S)
    raise ServerFailed(
        f"not accepting after {READY_TIMEOUT_S:.0f} s; log: {log_path}\n{_tail(log_path)}"
    )


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL to whatever is left after a grace."""
    if proc not in _RUNNING:
        return
    tree = process_tree(proc.pid) if proc.poll() is None else []
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in tree:  # children that left the process group
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"warning: pid {proc.pid} survived SIGKILL", file=sys.stderr)
    _RUNNING.remove(proc)


def stop_all() -> None:
    while _RUNNING:
        stop_server(_RUNNING[-1])


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def check_response(sc: Scenario, port: int) -> None:
    """Two requests through http.client (curl for HTTP/2), each on its own connection: status
    200 and the expected body, the second within CHECK_SLOW_S; or CheckFailed."""
    check = _check_once_h2 if sc.http2 else _check_once
    check(sc, port, timed=False)
    check(sc, port, timed=True)


def _check_once_h2(sc: Scenario, port: int, timed: bool) -> None:
    """One HTTP/2 request with curl (h2c prior knowledge, or TLS offering only h2 by ALPN):
    HTTP/2 must be what answered."""
    scheme = "https" if sc.tls else "http"
    mode = ["--http2", "--insecure"] if sc.tls else ["--http2-prior-knowledge"]
    argv = ["curl", "-sS", *mode, "--max-time", str(CHECK_TIMEOUT_S),
            "-o", "-", "-w", "\n%{http_code} %{http_version}",
            f"{scheme}://127.0.0.1:{port}{sc.path}"]  # fmt: skip
    start = time.monotonic()
    try:
        out = subprocess.run(argv, capture_output=True, timeout=CHECK_TIMEOUT_S + 5, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed("check request timed out") from exc
    elapsed = time.monotonic() - start
    if out.returncode != 0:
        raise CheckFailed(f"check request failed: {out.stderr.decode(errors='replace').strip()}")
    body, _, status = out.stdout.rpartition(b"\n")
    if status != b"200 2":
        raise CheckFailed(f"check got status and HTTP version {status.decode(errors='replace')}")
    if timed and elapsed > CHECK_SLOW_S:
        raise CheckFailed(f"check response took {elapsed:.1f} s")
    problem = sc.check(body)
    if problem:
        raise CheckFailed(problem)


def _check_once(sc: Scenario, port: int, timed: bool) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CHECK_TIMEOUT_S)
    try:
        headers = dict(h.split(": ", 1) for h in sc.headers)
        if sc.check_body is not None:
            headers["Content-Type"] = "application/octet-stream"
        start = time.monotonic()
        conn.request(sc.check_method, sc.path, body=sc.check_body, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        elapsed = time.monotonic() - start
    except (OSError, http.client.HTTPException) as exc:
        raise CheckFailed(f"check request failed: {exc!r}") from exc
    finally:
        conn.close()
    if resp.status != 200:
        raise CheckFailed(f"check got status {resp.status}")
    if timed and elapsed > CHECK_SLOW_S:
        raise CheckFailed(
            f"check response took {elapsed:.1f} s: a body delimited only by the server "
            "closing the connection? (wrk cannot measure such responses)"
        )
    problem = sc.check(body)
    if problem:
        raise CheckFailed(problem)


_STATUS_200 = re.compile(rb"HTTP/1\.[01] 200 ")


def _exchange(
    port: int, request: bytes, what: str, enough: Callable[[bytes], bool]
) -> tuple[bytes, bool]:
    """Sends `request` and reads until `enough(data)`, the server closes the connection, or
    CHECK_SLOW_S passes; returns what arrived and whether the server closed."""
    data, closed = b"", False
    deadline = time.monotonic() + CHECK_SLOW_S
    with socket.create_connection(("127.0.0.1", port), timeout=CHECK_SLOW_S) as sock:
        sock.sendall(request)
        while not enough(data) and time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except OSError as exc:
                raise CheckFailed(f"{what}: {exc!r}") from exc
            if not chunk:
                closed = True
                break
            data += chunk
    return data, closed


def check_pipelining(sc: Scenario, port: int) -> None:
    """Two requests in one write: both must be answered, or the first answered and the
    connection closed (a server may decline pipelining that way). A server that answers the
    first and then sits on the second stalls every wrk connection of the pipeline scenario."""
    request = f"GET {sc.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    data, closed = _exchange(
        port, request * 2, "pipelining check", lambda d: len(_STATUS_200.findall(d)) >= 2
    )
    answered = len(_STATUS_200.findall(data))
    if answered >= 2 or (answered == 1 and closed):
        return
    raise CheckFailed(
        f"pipelining check: {answered} of 2 pipelined requests answered within "
        f"{CHECK_SLOW_S:.0f} s and the connection was {'closed' if closed else 'left open'}"
    )


def check_close(sc: Scenario, port: int) -> None:
    """A request with `Connection: close` must be answered and the connection then closed by
    the server (RFC 9112 §9.6: a server that receives "close" "MUST initiate closure of the
    connection after it sends the final response"). wrk cannot tell: it reopens a connection
    the server closed, and keeps using one the server left open, so a server that ignores
    "close" is measured as keep-alive in a close scenario."""
    request = f"GET {sc.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    data, closed = _exchange(port, request.encode(), "close check", lambda d: False)
    if not _STATUS_200.findall(data):
        raise CheckFailed(f"close check: no 200 response within {CHECK_SLOW_S:.0f} s")
    if not closed:
        raise CheckFailed(
            f"close check: the connection was left open {CHECK_SLOW_S:.0f} s after the response "
            "to a request with `Connection: close` (RFC 9112 §9.6: the server must close it)"
        )


# --------------------------------------------------------------------------------------------
# wrk


def write_wrk_scripts(tmp: Path) -> dict[str, Path]:
    """One script per scenario: its own lua (if any) followed by the shared report hook."""
    report = (WRK_SCRIPTS / "report.lua").read_text()
    scripts = {}
    for sc in SCENARIOS:
        text = (WRK_SCRIPTS / sc.lua).read_text() + "\n" if sc.lua else ""
        path = tmp / f"{sc.name}.lua"
        path.write_text(text + report)
        scripts[sc.name] = path
    return scripts


def run_wrk(sc: Scenario, port: int, duration: int, script: Path, pin: bool) -> dict:
    argv = [
        "wrk",
        "-t1",
        f"-c{sc.connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        WRK_REQUEST_TIMEOUT,
        "-s",
        str(script),
    ]
    for header in sc.headers:
        argv += ["-H", header]
    argv.append(f"http://127.0.0.1:{port}{sc.path}")
    if pin:
        argv = ["taskset", "-c", CLIENT_CPU, *argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        out = subprocess.run(
            argv, check=False, capture_output=True, text=True, timeout=duration + WRK_GRACE_S
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerFailed(f"wrk did not finish within {duration + WRK_GRACE_S:.0f} s") from exc
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise ServerFailed(f"wrk exited {out.returncode}: {out.stderr.strip() or out.stdout}")
    res = json.loads(line[len("BENCH_RESULT ") :])
    seconds = res["duration_us"] / 1e6
    res["rps"] = res["requests"] / seconds if seconds > 0 else 0.0
    res["wrk_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # Fewer responses than connections: some connections never got one (a server that drops
    # pipelined requests or never ends a body). wrk counts those as timeouts only after
    # WRK_REQUEST_TIMEOUT, so a short run would otherwise look clean.
    res["errors"]["stalled"] = int(res["requests"] < sc.connections)
    res["busy_connections"] = res["rps"] * res["latency_us"]["mean"] / 1e6
    res["errors"]["starved"] = int(
        sc.keep_alive
        and sc.latency_valid
        and res["busy_connections"] < STARVED_FRACTION * sc.connections
    )
    res["error_total"] = sum(res["errors"].values())
    return res


# --------------------------------------------------------------------------------------------
# h2load (HTTP/2 scenarios)

_H2LOAD_RPS = re.compile(r"^finished in [\d.]+\w*, ([\d.]+) req/s", re.MULTILINE)
_H2LOAD_REQUESTS = re.compile(
    r"^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout",
    re.MULTILINE,
)
_H2LOAD_STATUS = re.compile(
    r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.MULTILINE
)
_H2LOAD_LATENCY = re.compile(
    r"^time for request:\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)", re.MULTILINE
)
_UNITS_US = {"us": 1.0, "ms": 1000.0, "s": 1e6}


def _h2load_us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if m is None:
        raise ValueError(f"h2load time {text!r}")
    return float(m.group(1)) * _UNITS_US[m.group(2)]


def parse_h2load(stdout: str, duration: int) -> dict:
    """h2load's summary as a run result shaped like `run_wrk`'s: requests, RPS, errors (failed,
    errored, timed out, non-2xx) and latency (min/mean/max: h2load reports no percentiles)."""
    rps, reqs, status, lat = (
        rx.search(stdout) for rx in (_H2LOAD_RPS, _H2LOAD_REQUESTS, _H2LOAD_STATUS, _H2LOAD_LATENCY)
    )
    if rps is None or reqs is None or status is None:
        raise ValueError("no h2load summary in its output")
    total, _done, succeeded, failed, errored, timeout = (int(x) for x in reqs.groups())
    non2xx = sum(int(x) for x in status.groups()[1:])
    latency = (
        dict(zip(("min", "max", "mean"), (_h2load_us(x) for x in lat.groups())))
        if lat
        else {"min": 0.0, "max": 0.0, "mean": 0.0}
    )
    return {
        "requests": succeeded,
        "requests_total": total,
        "duration_us": duration * 1e6,
        "rps": float(rps.group(1)),
        "latency_us": latency,
        "errors": {"failed": failed, "errored": errored, "timeout": timeout, "status": non2xx},
    }


def run_h2load(sc: Scenario, port: int, duration: int, pin: bool) -> dict:
    """One timed h2load run (`-D duration`, one client thread, `sc.connections` connections of
    H2_STREAMS concurrent streams each)."""
    scheme = "https" if sc.tls else "http"
    argv = ["h2load", "-t1", f"-c{sc.connections}", f"-m{H2_STREAMS}", f"-D{duration}",
            f"{scheme}://127.0.0.1:{port}{sc.path}"]  # fmt: skip
    if pin:
        argv = ["taskset", "-c", CLIENT_CPU, *argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        out = subprocess.run(
            argv, check=False, capture_output=True, text=True, timeout=duration + WRK_GRACE_S
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerFailed(f"h2load did not finish within {duration + WRK_GRACE_S:.0f} s") from exc
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise ServerFailed(f"h2load exited {out.returncode}: {out.stderr.strip() or out.stdout}")
    if sc.tls and "Application protocol: h2" not in out.stdout:
        raise ServerFailed("h2load did not negotiate h2 by ALPN")
    try:
        res = parse_h2load(out.stdout, duration)
    except ValueError as exc:
        raise ServerFailed(f"h2load: {exc}: {out.stdout}") from exc
    res["wrk_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    res["errors"]["stalled"] = int(res["requests"] < sc.connections)
    res["busy_connections"] = None
    res["error_total"] = sum(res["errors"].values())
    return res


def run_load(sc: Scenario, port: int, duration: int, script: Path, pin: bool) -> dict:
    """One measured run with the scenario's load generator."""
    if sc.http2:
        return run_h2load(sc, port, duration, pin)
    return run_wrk(sc, port, duration, script, pin)


def make_certificate(tmp: Path) -> None:
    """A self-signed certificate for 127.0.0.1 (PKCS#8 key, as granian wants) for the TLS
    scenarios; h2load does not verify it."""
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(tmp / "key.pem"), "-out", str(tmp / "cert.pem")]  # fmt: skip
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=TOOL_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        _fail(f"cannot make the TLS certificate with openssl: {exc}")
    TLS_FILES["cert"], TLS_FILES["key"] = tmp / "cert.pem", tmp / "key.pem"


# --------------------------------------------------------------------------------------------
# Hostile clients: held open by a background thread while wrk measures


def raise_file_limit(n: int) -> int:
    """Raises the soft RLIMIT_NOFILE towards `n` (servers started later inherit it); returns
    the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


class Hostile:
    """`slowloris`: connections that send one byte of a never-ending head per second each.
    `idle`: connections that make one keep-alive request each, then stay silent. Opened before
    the warm-up, closed after the last run; `held` is how many the server took."""

    def __init__(self, kind: str, n: int, port: int):
        self.kind, self.n, self.port = kind, n, port
        self.socks: list[socket.socket] = []
        self.failure = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=HOSTILE_IO_S)
        self.socks.append(s)
        return s

    def open(self) -> None:
        deadline = time.monotonic() + HOSTILE_OPEN_S
        try:
            for _ in range(self.n):
                if time.monotonic() > deadline:
                    self.failure = f"opening took over {HOSTILE_OPEN_S:.0f} s"
                    break
                s = self._connect()
                if self.kind == "idle":
                    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
                    if not s.recv(4096).startswith(b"HTTP/1."):
                        self.failure = "an idle connection got no response"
                        break
                else:
                    s.sendall(b"G")
        except OSError as exc:
            self.failure = f"after {len(self.socks)} connections: {exc}"
        if self.kind == "slowloris":
            self._thread = threading.Thread(target=self._trickle, daemon=True)
            self._thread.start()

    def _trickle(self) -> None:
        head = b"ET / HTTP/1.1\r\nHost: bench\r\nX-Slow: " + b"a" * 10_000
        i = 0
        while not self._stop.wait(1.0):
            for s in self.socks:
                try:
                    s.send(head[i % len(head) : i % len(head) + 1], socket.MSG_DONTWAIT)
                except OSError:
                    pass
            i += 1

    def still_open(self) -> int:
        """Connections the server has not closed (a readable socket here means EOF or an
        answer: the server gave up on it)."""
        import select

        open_count = 0
        for s in self.socks:
            try:
                readable, _, _ = select.select([s], [], [], 0)
            except (OSError, ValueError):
                continue
            open_count += not readable
        return open_count

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for s in self.socks:
            s.close()


# --------------------------------------------------------------------------------------------
# One (scenario, server) measurement


def bench_one(
    server: Server, sc: Scenario, opts: argparse.Namespace, script: Path, logs: Path
) -> dict:
    port = free_port()
    result: dict = {
        "server": server.name,
        "scenario": sc.name,
        "ok": False,
        "threads": sc.threads if server.has_threads else 1,
        "workers": WORKERS["n"] if server.name in MULTI_PROCESS else 1,
        "argv": server.argv(sc, port),
        "runs": [],
    }
    log_path = logs / f"{sc.name}--{server.name}.log"
    proc = start_server(server, sc, port, log_path, opts.pin)
    hostile: Hostile | None = None
    try:
        result["ready_s"] = round(wait_ready(proc, port, log_path), 3)
        check_response(sc, port)
        if sc.check_pipelining:
            check_pipelining(sc, port)
        if not sc.keep_alive:
            check_close(sc, port)
        if sc.hostile:
            rss_before, _ = tree_memory_kb(proc.pid)
            hostile = Hostile(sc.hostile, sc.hostile_connections, port)
            hostile.open()
            time.sleep(1.0)  # let the server settle
            rss_after, _ = tree_memory_kb(proc.pid)
            result["hostile"] = {
                "kind": sc.hostile,
                "opened": len(hostile.socks),
                "failure": hostile.failure,
                "kb_per_connection": (
                    (rss_after - rss_before) / len(hostile.socks) if hostile.socks else None
                ),
            }
        if opts.warmup > 0:
            warm = run_load(sc, port, opts.warmup, script, opts.pin)
            result["warmup_errors"] = warm["error_total"]
        for _ in range(opts.runs):
            cpu0 = tree_cpu_seconds(proc.pid)
            run = run_load(sc, port, opts.duration, script, opts.pin)
            cpu1 = tree_cpu_seconds(proc.pid)
            if proc.poll() is not None:
                raise ServerFailed(
                    f"server exited with {proc.returncode} during the run; "
                    f"log: {log_path}\n{_tail(log_path)}"
                )
            run["server_cpu_s"] = cpu1 - cpu0
            run["cpu_us_per_req"] = (
                run["server_cpu_s"] * 1e6 / run["requests"] if run["requests"] else None
            )
            result["runs"].append(run)
        result["rss_kb"], result["pss_kb"] = tree_memory_kb(proc.pid)
        result["processes"] = len(process_tree(proc.pid))
        if hostile is not None:
            result["hostile"]["still_open"] = hostile.still_open()
        result["ok"] = True
    except (ServerFailed, CheckFailed) as exc:
        result["failure"] = str(exc)
    finally:
        if hostile is not None:
            hostile.close()
        stop_server(proc)
    if result["runs"]:
        result["median"] = summarize(result["runs"], sc.latency_valid)
    return result


def bench_alone(sc: Scenario, opts: argparse.Namespace) -> dict:
    """The scenario's app called in a loop on the server's CPU, with no server (`app_alone.py`):
    warm-up, then `runs` runs of `duration` seconds; the median calls per second."""
    argv = [sys.executable, str(HERE / "app_alone.py"), sc.app, sc.path]
    if opts.pin:
        argv = ["taskset", "-c", SERVER_CPU, *argv]
    result: dict = {"scenario": sc.name, "argv": argv, "runs": []}
    try:
        if opts.warmup > 0:
            _call_alone(argv, opts.warmup)
        for _ in range(opts.runs):
            result["runs"].append(_call_alone(argv, opts.duration))
    except CheckFailed as exc:
        result["failure"] = str(exc)
        return result
    result["calls_per_s"] = statistics.median(r["calls_per_s"] for r in result["runs"])
    return result


def _call_alone(argv: list[str], duration: float) -> dict:
    proc = subprocess.run(
        [*argv, "--duration", str(duration)],
        capture_output=True,
        text=True,
        timeout=duration + WRK_GRACE_S,
        check=False,
    )
    if proc.returncode != 0:
        raise CheckFailed(f"app_alone.py exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def summarize(runs: list[dict], latency_valid: bool) -> dict:
    """Medians over the runs; errors are summed ("stalled" and "starved" count runs)."""

    def med(key: Callable[[dict], float | None]) -> float | None:
        values = [v for v in (key(r) for r in runs) if v is not None]
        return statistics.median(values) if values else None

    errors: dict[str, int] = {}
    for r in runs:
        for kind, n in r["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    return {
        "rps": med(lambda r: r["rps"]),
        "p50_ms": med(lambda r: r["latency_us"]["p50"] / 1000) if latency_valid else None,
        "p99_ms": med(lambda r: r["latency_us"]["p99"] / 1000) if latency_valid else None,
        "cpu_us_per_req": med(lambda r: r["cpu_us_per_req"]),
        "server_cpu_pct": med(lambda r: 100 * r["server_cpu_s"] * 1e6 / r["duration_us"]),
        "wrk_cpu_pct": med(lambda r: 100 * r["wrk_cpu_s"] * 1e6 / r["duration_us"]),
        "busy_connections": med(lambda r: r["busy_connections"]) if latency_valid else None,
        "requests": sum(r["requests"] for r in runs),
        "errors": {k: v for k, v in errors.items() if v},
    }


# --------------------------------------------------------------------------------------------
# Set-up: tools, packages, ferrule


def _fail(message: str) -> None:
    print(f"run.py: {message}", file=sys.stderr)
    sys.exit(2)


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def check_tools(pin: bool, scenarios: list[Scenario]) -> None:
    if shutil.which("wrk") is None:
        _fail("wrk is not installed: run `apt-get update && apt-get install -y wrk`")
    if any(sc.http2 for sc in scenarios):
        for tool, package in (
            ("h2load", "nghttp2-client"),
            ("curl", "curl"),
            ("openssl", "openssl"),
        ):
            if shutil.which(tool) is None:
                _fail(
                    f"{tool} is not installed (HTTP/2 scenarios): run `apt-get install -y {package}`"
                )
    if pin:
        if shutil.which("taskset") is None:
            _fail("taskset is missing: run `apt-get install -y util-linux` (or pass --no-pin)")
        cpus = os.sched_getaffinity(0)
        if not {int(SERVER_CPU), int(CLIENT_CPU)} <= cpus:
            _fail(
                f"pinning needs CPUs {SERVER_CPU} and {CLIENT_CPU}, this process may use "
                f"{sorted(cpus)}: pass --no-pin (results then are not comparable)"
            )


def pip(*args: str) -> None:
    argv = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("$ " + " ".join(argv), file=sys.stderr)
    try:
        subprocess.run(argv, check=True, timeout=PIP_TIMEOUT_S)
    except subprocess.CalledProcessError as exc:
        _fail(f"pip failed with exit code {exc.returncode}")
    except subprocess.TimeoutExpired:
        _fail(f"pip did not finish within {PIP_TIMEOUT_S:.0f} s")


def ensure_packages(
    servers: list[Server], scenarios: list[Scenario], opts: argparse.Namespace
) -> None:
    wanted = {s.dist for s in servers if s.name != "ferrule"}
    if any(sc.app == "flask_json" for sc in scenarios):
        wanted.add("Flask")
    missing = sorted(d for d in wanted if not _installed(d))
    if missing and opts.no_install:
        _fail(f"not installed in {sys.prefix}: {', '.join(missing)} (drop --no-install)")
    if "bjoern" in missing and not any(
        Path(p).exists() for p in ("/usr/include/ev.h", "/usr/include/libev/ev.h")
    ):
        _fail(
            "bjoern needs libev headers: run `apt-get install -y libev-dev` "
            "(or leave bjoern out of --servers)"
        )
    if ({"uWSGI", "bjoern"} & set(missing)) and shutil.which("gcc") is None:
        _fail("uWSGI and bjoern compile C: run `apt-get install -y build-essential python3-dev`")
    if missing:
        pip(*missing)
    if any(s.name == "ferrule" for s in servers) and not opts.ferrule_bin:
        if opts.no_build:
            if not (VENV_BIN / "ferrule").exists():
                _fail(f"--no-build but {VENV_BIN / 'ferrule'} does not exist")
        else:
            # pip builds the wheel through maturin's PEP 517 backend: a release build.
            pip("--force-reinstall", "--no-deps", str(REPO))


def _command(argv: list[str]) -> str:
    try:
        out = subprocess.run(
            argv, check=False, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or out.stderr).strip()


def machine_info(servers: list[str]) -> dict:
    model = ""
    for line in _command(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    mem_kb = _status_kb("/proc/meminfo", "MemTotal:")
    versions = {}
    for dist in ("gunicorn", "granian", "bjoern", "waitress", "uWSGI", "Flask"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if "ferrule" in servers:
        versions["ferrule"] = _command([FERRULE_BIN["path"], "--version"]).removeprefix("ferrule ")
    status = _command(["git", "-C", str(REPO), "status", "--porcelain"])
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": _command(["wrk", "-v"]).split(" Copyright")[0] if shutil.which("wrk") else "",
        "versions": versions,
        "commit": _command(["git", "-C", str(REPO), "rev-parse", "HEAD"]),
        "dirty": bool(status),
    }


# --------------------------------------------------------------------------------------------
# Report


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None, base: float | None) -> str:
    return "–" if not value or not base else f"{value / base:.2f}"


def markdown(report: dict) -> str:
    m = report["machine"]
    o = report["options"]
    commit = m["commit"][:12] + (" (dirty tree)" if m["dirty"] else "")
    base = o["baseline"]
    lines = [
        f"## Run of {report['date']}",
        "",
        (
            f"- machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, "
            f"kernel {m['kernel']}, Python {m['python']}, {m['wrk']}"
        ),
        f"- commit measured: {commit}"
        + (f"; ferrule from --ferrule-bin {o['ferrule_bin']}" if o["ferrule_bin_given"] else ""),
        "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        (
            f"- method: server on CPU {o.get('server_cpus', SERVER_CPU)}, `wrk -t1` on CPU "
            f"{CLIENT_CPU}{'' if o['pin'] else ' (NOT pinned: --no-pin)'}, "
            + (
                "one worker process; "
                if o.get("workers", 1) <= 1
                else f"{o['workers']} worker processes (bjoern, waitress: one process; "
                "the server's CPUs include wrk's, so they compete for them); "
            )
            + f"warm-up {o['warmup']} s, then median of {o['runs']} x {o['duration']} s runs"
        ),
        "",
    ]
    header = (
        "| server | RPS | p50 ms | p99 ms | RSS MB | CPU µs/req | server CPU % | wrk CPU % "
        f"| RPS ÷ {base} | CPU/req ÷ {base} | errors |"
    )
    for sc_name in o["scenarios"]:
        sc = SCENARIOS_BY_NAME[sc_name]
        rows = [r for r in report["results"] if r["scenario"] == sc_name]
        ref = next((r.get("median") for r in rows if r["server"] == base and r["ok"]), None) or {}
        lines += [f"### {sc.name}: {sc.description}", "", header, "|" + " --- |" * 11]
        for r in rows:
            med = r.get("median")
            if not r["ok"] or med is None:
                reason = (r.get("failure") or "no runs").splitlines()[0]
                lines.append(f"| {r['server']} | FAILED: {reason} |" + " |" * 9)
                continue
            errs = ", ".join(f"{k} {v}" for k, v in med["errors"].items())
            if "starved" in med["errors"]:
                errs += f" (~{med['busy_connections']:.0f} of {sc.connections} connections busy)"
            lines.append(
                f"| {r['server']} | {_fmt(med['rps'], 0)} | {_fmt(med['p50_ms'], 2)} "
                f"| {_fmt(med['p99_ms'], 2)} | {_fmt(r['rss_kb'] / 1024, 1)} "
                f"| {_fmt(med['cpu_us_per_req'], 1)} | {_fmt(med['server_cpu_pct'], 0)} "
                f"| {_fmt(med['wrk_cpu_pct'], 0)} | {_ratio(med['rps'], ref.get('rps'))} "
                f"| {_ratio(med['cpu_us_per_req'], ref.get('cpu_us_per_req'))} "
                f"| {'**ERRORS: ' + errs + '**' if errs else '0'} |"
            )
        lines.append("")
        if sc.hostile:
            lines += hostile_notes(report, sc, rows)
        lines += alone_notes(report, sc, rows)
    lines += bar_table(report)
    return "\n".join(lines)


#: Issue 7's bars: (scenario, what, the figure's name, test of the figure). The figures come from
#: `_bar_figures`; a bar whose figures are missing (a server or scenario not run) is not shown.
BARS: list[tuple[str, str, str, Callable[[float], bool]]] = [
    ("hello", "RPS ≥ 1.0× bjoern", "rps_vs_bjoern", lambda v: v >= 1.0),
    ("hello", "RPS ≥ 2× granian", "rps_vs_granian", lambda v: v >= 2.0),
    ("hello", "CPU µs/req ≤ bjoern's (ratio ≤ 1)", "cpu_vs_bjoern", lambda v: v <= 1.0),
    ("hello", "RSS ≤ 15 MB", "rss_mb", lambda v: v <= 15.0),
    ("hello-close", "RPS ≥ 1.0× best clean peer", "rps_vs_best", lambda v: v >= 1.0),
    ("big", "RPS ≥ 1.3× best clean peer", "rps_vs_best", lambda v: v >= 1.3),
    ("gen", "RPS ≥ 1.5× granian", "rps_vs_granian", lambda v: v >= 1.5),
    ("echo", "RPS ≥ 1.3× best clean peer", "rps_vs_best", lambda v: v >= 1.3),
    ("sleep", "RPS ≥ 3,150", "rps", lambda v: v >= 3150),
    ("sleep", "p99 ≤ 42 ms", "p99_ms", lambda v: v <= 42.0),
    ("flask", "RPS ≥ 0.95× the app alone", "rps_vs_alone", lambda v: v >= 0.95),
]


def _bar_figures(report: dict, sc_name: str) -> dict[str, float]:
    """ferrule's figures in one scenario, against the peers in the same run."""
    rows = [r for r in report["results"] if r["scenario"] == sc_name and r["ok"]]
    own = next((r for r in rows if r["server"] == "ferrule"), None)
    med = (own or {}).get("median") or {}
    if not med.get("rps"):
        return {}
    figures = {"rps": med["rps"], "rss_mb": own["rss_kb"] / 1024}
    if med.get("p99_ms") is not None:
        figures["p99_ms"] = med["p99_ms"]
    clean = [
        r for r in rows if r["server"] != "ferrule" and r["median"] and not r["median"]["errors"]
    ]
    for r in clean:
        figures[f"rps_vs_{r['server']}"] = med["rps"] / r["median"]["rps"]
        if med.get("cpu_us_per_req") and r["median"].get("cpu_us_per_req"):
            figures[f"cpu_vs_{r['server']}"] = med["cpu_us_per_req"] / r["median"]["cpu_us_per_req"]
    if clean:
        figures["rps_vs_best"] = med["rps"] / max(r["median"]["rps"] for r in clean)
    alone = report.get("alone", {}).get(sc_name, {}).get("calls_per_s")
    if alone:
        figures["rps_vs_alone"] = med["rps"] / alone
    return figures


def bar_table(report: dict) -> list[str]:
    """Issue 7's bars that this run measured: ferrule's figure and whether it meets the bar."""
    rows = []
    for sc_name, what, key, test in BARS:
        value = _bar_figures(report, sc_name).get(key)
        if value is not None:
            rows.append(f"| {sc_name} | {what} | {value:,.2f} | {'yes' if test(value) else 'no'} |")
    if not rows:
        return []
    head = ["### The bars (issue 7), this run", "", "| scenario | bar | ferrule | met |"]
    return [*head, "| --- | --- | --- | --- |", *rows, ""]


def alone_notes(report: dict, sc: Scenario, rows: list[dict]) -> list[str]:
    """For a scenario measured alone too: the app's calls per second with no server, and each
    server's RPS as a fraction of it."""
    alone = report.get("alone", {}).get(sc.name)
    if alone is None:
        return []
    if "calls_per_s" not in alone:
        return [f"- the app alone: FAILED: {alone['failure']}", ""]
    rate = alone["calls_per_s"]
    lines = [
        f"- the app alone (called in a loop on the server's CPU, no server): {rate:,.0f} calls/s"
    ]
    for r in rows:
        rps = (r.get("median") or {}).get("rps")
        if r["ok"] and rps:
            lines.append(f"- {r['server']}: {rps / rate:.2f} of the app alone")
    return lines + [""]


def hostile_notes(report: dict, sc: Scenario, rows: list[dict]) -> list[str]:
    """Per server: RPS relative to its own clean `hello` run (when hello ran too), connections
    held, and for `idle` the memory per idle connection."""
    hello = {
        r["server"]: (r.get("median") or {}).get("rps")
        for r in report["results"]
        if r["scenario"] == "hello" and r["ok"]
    }
    lines = []
    for r in rows:
        h = r.get("hostile")
        if h is None:
            continue
        rps = (r.get("median") or {}).get("rps")
        parts = [
            "RPS ÷ its clean hello run: "
            + (
                f"{rps / base:.2f}" if rps is not None and (base := hello.get(r["server"])) else "–"
            ),
            f"{h.get('still_open', '?')} of {h['opened']} {sc.hostile} connections still open "
            f"after the runs (of {sc.hostile_connections} tried"
            + (f"; {h['failure']}" if h["failure"] else "")
            + ")",
        ]
        if sc.hostile == "idle" and h["kb_per_connection"] is not None:
            parts.append(f"{h['kb_per_connection']:.1f} KB RSS per idle connection")
        lines.append(f"- {r['server']}: " + "; ".join(parts))
    return lines + [""] if lines else []


# --------------------------------------------------------------------------------------------
# CLI


def _names(value: str, known: dict, what: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})"
        )
    return names


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/run.sh",
        description="Benchmark ferrule against peer WSGI servers (see benchmarks/README.md).",
    )
    p.add_argument(
        "--servers",
        default=",".join(SERVERS_BY_NAME),
        type=lambda v: _names(v, SERVERS_BY_NAME, "server"),
        help="comma-separated servers (default: all)",
    )
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS_BY_NAME),
        type=lambda v: _names(v, SCENARIOS_BY_NAME, "scenario"),
        help="comma-separated scenarios (default: all)",
    )
    p.add_argument("--duration", type=int, help=f"seconds per measured run ({FULL['duration']})")
    p.add_argument("--warmup", type=int, help=f"seconds of warm-up, 0 for none ({FULL['warmup']})")
    p.add_argument("--runs", type=int, help=f"measured runs; medians are reported ({FULL['runs']})")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: duration {QUICK['duration']}, warm-up {QUICK['warmup']}, "
        f"runs {QUICK['runs']} (explicit options win)",
    )
    p.add_argument("--baseline", default="ferrule", help="server the ratios divide by (ferrule)")
    p.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin with taskset (numbers are then not comparable)",
    )
    p.add_argument("--no-install", action="store_true", help="never run pip")
    p.add_argument(
        "--no-build",
        action="store_true",
        help="use the ferrule already installed in the venv instead of building",
    )
    p.add_argument(
        "--ferrule-bin",
        metavar="PATH",
        help="measure this ferrule executable (e.g. a debug build's) instead of building one "
        "into the venv; its numbers are only as good as its build profile",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes per server (1): ferrule -w, gunicorn --workers, granian "
        "--workers, uwsgi --processes; the server is pinned to the first N CPUs",
    )
    p.add_argument("--list", action="store_true", help="list servers and scenarios, then exit")
    p.add_argument("--serve-bjoern", nargs=2, metavar=("MOD:ATTR", "PORT"), help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    defaults = QUICK if opts.quick else FULL
    for key, value in defaults.items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    if opts.workers < 1:
        p.error("--workers must be >= 1")
    if opts.duration < 1 or opts.runs < 1 or opts.warmup < 0:
        p.error("--duration and --runs must be >= 1, --warmup >= 0")
    return opts


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    opts = parse_args(argv)
    if opts.serve_bjoern:
        serve_bjoern(opts.serve_bjoern[0], int(opts.serve_bjoern[1]))
        return 0
    if opts.list:
        for s in SERVERS:
            print(f"server    {s.name:13} {s.note}")
        for sc in SCENARIOS:
            print(f"scenario  {sc.name:13} {sc.description}")
        return 0
    if opts.ferrule_bin:
        path = shutil.which(opts.ferrule_bin)
        if path is None:
            _fail(f"--ferrule-bin {opts.ferrule_bin}: not an executable")
        FERRULE_BIN["path"] = os.path.abspath(path)
    WORKERS["n"] = opts.workers
    servers = [SERVERS_BY_NAME[n] for n in opts.servers]
    scenarios = [SCENARIOS_BY_NAME[n] for n in opts.scenarios]
    check_tools(opts.pin, scenarios)
    ensure_packages(servers, scenarios, opts)

    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    logs = RESULTS / f"{stamp}-logs"
    logs.mkdir()
    report = {
        "date": now.isoformat(timespec="seconds"),
        "machine": machine_info(opts.servers),
        "options": {
            "servers": opts.servers,
            "scenarios": opts.scenarios,
            "duration": opts.duration,
            "warmup": opts.warmup,
            "runs": opts.runs,
            "pin": opts.pin,
            "baseline": opts.baseline,
            "ferrule_bin": FERRULE_BIN["path"] if "ferrule" in opts.servers else None,
            "ferrule_bin_given": bool(opts.ferrule_bin),
            "workers": opts.workers,
            "server_cpus": server_cpus(),
        },
        "results": [],
        "alone": {},
    }
    if any(sc.hostile for sc in scenarios):
        # Hostile connections need descriptors here and in the servers (which inherit it).
        limit = raise_file_limit(IDLE_CONNECTIONS + 1000)
        report["options"]["file_limit"] = limit
    signal.signal(signal.SIGTERM, _on_sigterm)
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="ferrule-bench-") as tmp:
        scripts = write_wrk_scripts(Path(tmp))
        if any(sc.tls for sc in scenarios):
            make_certificate(Path(tmp))
        try:
            for sc in scenarios:
                for server in servers:
                    if sc.http2 and server.name not in H2_SERVERS:
                        continue  # no HTTP/2 in this server: not a failure, not a row
                    print(f"[{sc.name}] {server.name} ...", end=" ", file=sys.stderr, flush=True)
                    res = bench_one(server, sc, opts, scripts[sc.name], logs)
                    report["results"].append(res)
                    med = res.get("median") or {}
                    errs = med.get("errors")
                    print(
                        (f"{med['rps']:,.0f} rps" + (f", ERRORS {errs}" if errs else ""))
                        if res["ok"]
                        else "FAILED: " + res["failure"],
                        file=sys.stderr,
                    )
                if sc.alone:
                    print(f"[{sc.name}] the app alone ...", end=" ", file=sys.stderr, flush=True)
                    alone = bench_alone(sc, opts)
                    report["alone"][sc.name] = alone
                    print(
                        f"{alone['calls_per_s']:,.0f} calls/s"
                        if "calls_per_s" in alone
                        else "FAILED: " + alone["failure"],
                        file=sys.stderr,
                    )
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: stopping servers, writing partial results", file=sys.stderr)
        finally:
            stop_all()
    report["interrupted"] = interrupted
    out = RESULTS / f"{stamp}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    table = markdown(report)
    (RESULTS / f"{stamp}.md").write_text(table + "\n")
    print(table)
    print(f"results: {out} (server logs in {logs})", file=sys.stderr)
    # A peer failing a pair is a finding about the peer (see README); ferrule failing is ours.
    baseline_failed = [r for r in report["results"] if not r["ok"] and r["server"] == "ferrule"]
    return 130 if interrupted else (1 if baseline_failed else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
