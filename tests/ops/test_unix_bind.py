"""`--bind unix:PATH` (issue 5): serving over a Unix stream socket with raw `AF_UNIX` clients,
the environ of a peer without an address, `--unix-socket-mode`, a stale socket file replaced, a
live socket or any other file refused (and left alone), the file removed when the server stops,
and a master whose workers share the socket. The nginx test is tests/proxies/test_unix_socket.py.

Every server also binds 127.0.0.1:0 (helpers.server): its `Listening at` line is the readiness
signal, and it shows TCP and Unix binds mix.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_cli import assert_one_error_line
from test_handover import _stop
from workers_helpers import wait_children

from helpers import rawhttp
from helpers.server import APPS, _LogPipe

pytestmark = pytest.mark.timeout(60)

APP = "basic_app:application"


class UnixClient(rawhttp.Client):
    """rawhttp's client over a Unix stream socket."""

    def __init__(self, path: str | Path, timeout: float = rawhttp.DEFAULT_TIMEOUT):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self._buf = bytearray()
        self.eof = False


def environ_over(path, headers=(("Host", "www.example.test"),), version="HTTP/1.1") -> dict:
    with UnixClient(path) as c:
        c.send(rawhttp.build_request("GET", "/environ", list(headers), version=version))
        resp = c.read_response()
    assert resp.status == 200, resp
    return {k: v["value"] for k, v in resp.json().items()}


@pytest.fixture
def sock_dir():
    # Short: a socket path must fit sockaddr_un (108 bytes), which tmp_path does not promise.
    d = Path(tempfile.mkdtemp(prefix="ferrule-u-", dir="/tmp"))
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def _stale_socket(path: Path) -> None:
    """A socket file whose server is gone (bound, then closed: connect() is refused)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    assert stat.S_ISSOCK(path.lstat().st_mode)


def _bind_args(path: Path) -> list[str]:
    return ["--bind", f"unix:{path}", "--pythonpath", str(APPS), APP]


def test_serves_over_a_unix_socket_beside_tcp(ferrule_server, sock_dir):
    path = sock_dir / "app.sock"
    srv = ferrule_server(APP, "--bind", f"unix:{path}", "--access-logfile", "-")
    srv.wait_for_log(rf"Listening at: unix:{path} \({srv.pid}\)")
    # The peer has no address: REMOTE_ADDR empty, no REMOTE_PORT; the server is named by Host.
    env = environ_over(path)
    assert env["REMOTE_ADDR"] == ""
    assert "REMOTE_PORT" not in env
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("www.example.test", "80")
    assert env["wsgi.url_scheme"] == "http"
    env = environ_over(path, [("Host", "api.example.test:8080")])
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("api.example.test", "8080")
    # Without Host (HTTP/1.0), there is no local address to fall back on: localhost, port 80.
    env = environ_over(path, [], version="HTTP/1.0")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("localhost", "80")
    # The peer is the local front server: its forwarding headers are believed.
    env = environ_over(path, [("Host", "x.test"), ("X-Forwarded-For", "203.0.113.9")])
    assert env["REMOTE_ADDR"] == "203.0.113.9"
    # Keep-alive over the socket; the TCP bind serves too.
    with UnixClient(path) as c:
        for _ in range(3):
            c.send(rawhttp.build_request("GET", "/hello"))
            assert c.read_response().body == b"hello world"
    assert srv.get("/hello").body == b"hello world"
    # The access log's client address (%(h)s) is "-" over the socket.
    deadline = time.monotonic() + 10
    while len(srv.access_lines) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = srv.access_lines
    assert [ln.split(" ", 1)[0] for ln in lines] == ["-"] * 7 + ["127.0.0.1"], lines


@pytest.mark.parametrize(
    ("args", "umask", "mode"),
    [
        ((), 0o022, 0o660),  # the default
        (("--unix-socket-mode", "600"), 0o022, 0o600),
        # Set exactly, whatever the umask.
        (("--unix-socket-mode", "0o666", "--umask", "077"), 0o077, 0o666),
    ],
    ids=["default", "600", "666-despite-umask"],
)
def test_mode_bits(ferrule_server, sock_dir, args, umask, mode):
    path = sock_dir / "app.sock"
    old = os.umask(umask)  # inherited by the server
    try:
        ferrule_server(APP, "--bind", f"unix:{path}", *args)
    finally:
        os.umask(old)
    st = path.lstat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == mode, oct(st.st_mode)
    assert environ_over(path)["REMOTE_ADDR"] == ""


def test_json_access_log_names_no_address_for_a_unix_peer(ferrule_server, sock_dir):
    # Over the socket the client has no address: the environ's REMOTE_ADDR is empty (no
    # REMOTE_PORT), the text log's %(h)s is "-" (above), the JSON log's keys are null; never
    # the 0.0.0.0 placeholder.
    path = sock_dir / "app.sock"
    srv = ferrule_server(
        APP, "--bind", f"unix:{path}", "--access-logfile", "-", "--access-log-json"
    )
    env = environ_over(path)
    assert env["REMOTE_ADDR"] == "" and "REMOTE_PORT" not in env
    assert srv.get("/hello").status == 200
    srv.out.wait_for(r'"path":"/hello"', 10)
    over_unix, over_tcp = (json.loads(line) for line in srv.access_lines)
    assert (over_unix["path"], over_unix["remote_addr"], over_unix["remote_port"]) == (
        "/environ",
        None,
        None,
    )
    assert over_tcp["remote_addr"] == "127.0.0.1" and over_tcp["remote_port"] > 0


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
@pytest.mark.parametrize(
    ("args", "owner"),
    [
        (("--user", "nobody"), ("nobody", "nobody's")),  # the user and its primary group
        (("--user", "nobody", "--group", "4321"), ("nobody", 4321)),
        (("--group", "4321"), ("root", 4321)),
    ],
    ids=["user", "user-and-group", "group"],
)
def test_socket_file_is_given_to_the_workers_user_and_group(ferrule_server, sock_dir, args, owner):
    # As gunicorn does: the master (root) binds, then gives the file to whom the workers become,
    # so the mode's owner and group bits (default 0o660) are theirs.
    nobody = pwd.getpwnam("nobody")
    uid = {"nobody": nobody.pw_uid, "root": 0}[owner[0]]
    gid = nobody.pw_gid if owner[1] == "nobody's" else owner[1]
    path = sock_dir / "app.sock"
    # (An app that imports nothing the master has not: nobody may not read the stdlib here.)
    srv = ferrule_server("process_app:app", "--bind", f"unix:{path}", *args)
    st = path.lstat()
    assert (st.st_uid, st.st_gid) == (uid, gid)
    assert stat.S_IMODE(st.st_mode) == 0o660
    # The worker, running as that user, serves over the socket; the master removes the file.
    srv.wait_for_log(r"Worker 1 \(pid \d+\) ready")
    with UnixClient(path) as c:
        c.send(rawhttp.build_request("GET", "/ids"))
        resp = c.read_response()
    assert resp.status == 200
    assert [int(n) for n in resp.body.split()[:2]] == [uid, gid]
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit() == 0
    assert not path.exists()


def test_stale_socket_file_is_replaced(ferrule_server, sock_dir):
    path = sock_dir / "app.sock"
    _stale_socket(path)
    srv = ferrule_server(APP, "--bind", f"unix:{path}")
    srv.wait_for_log(rf"Removed stale socket file {path}")
    assert environ_over(path)["REMOTE_ADDR"] == ""


def test_live_socket_is_refused(run_cli, sock_dir):
    path = sock_dir / "app.sock"
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        other.bind(str(path))
        other.listen(1)
        proc = run_cli(*_bind_args(path))
        assert_one_error_line(proc, f"cannot bind unix:{path}", "another server is accepting")
        # The other server's socket is untouched.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(str(path))
    finally:
        other.close()


@pytest.mark.parametrize("workers", [1, 2], ids=["lone", "master"])
def test_regular_file_is_refused_and_left_intact(run_cli, sock_dir, workers):
    path = sock_dir / "app.sock"
    path.write_text("not a socket")
    proc = run_cli("-w", str(workers), *_bind_args(path))
    assert_one_error_line(proc, f"cannot bind unix:{path}", "regular file", "not a socket")
    assert path.read_text() == "not a socket"


def test_a_failed_later_bind_removes_the_socket_file(run_cli, sock_dir):
    path = sock_dir / "app.sock"
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        # The socket file is created first, then the TCP bind fails: nothing is left behind.
        proc = run_cli(
            "--bind", f"unix:{path}", "--bind", f"127.0.0.1:{port}",
            "--pythonpath", str(APPS), APP,
        )  # fmt: skip
        assert_one_error_line(proc, f"127.0.0.1:{port}")
    finally:
        taken.close()
    assert not path.exists()


def test_socket_file_removed_on_sigterm(ferrule_server, sock_dir):
    path = sock_dir / "app.sock"
    srv = ferrule_server(APP, "--bind", f"unix:{path}")
    assert path.exists()
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit() == 0
    assert not path.exists()


def test_master_and_workers_share_the_socket(ferrule_server, sock_dir):
    path = sock_dir / "app.sock"
    srv = ferrule_server("workers_app:app", "-w", "2", "--bind", f"unix:{path}")
    srv.wait_for_log(rf"Listening at: unix:{path} \({srv.pid}\)")
    workers = wait_children(srv.pid, 2)
    seen = set()
    for _ in range(40):
        with UnixClient(path) as c:
            c.send(rawhttp.build_request("GET", "/pid", [("Connection", "close")]))
            resp = c.read_response()
        assert resp.status == 200
        seen.add(int(resp.body.split()[0]))
        if seen == workers:
            break
    assert seen <= workers and seen, seen
    # A worker that exits does not remove the master's socket file: its replacement serves.
    # (The master logs the unplanned exit as an error.)
    srv.errors_expected = True
    victim = next(iter(workers))
    mark = srv.mark()
    os.kill(victim, signal.SIGTERM)
    srv.wait_for_log(r"Booting worker \d+ with pid", since=mark)
    srv.wait_for_log(r"Worker \d+ \(pid \d+\) ready", since=mark)
    assert victim not in wait_children(srv.pid, 2)
    assert path.exists()
    with UnixClient(path) as c:
        c.send(rawhttp.build_request("GET", "/pid"))
        assert c.read_response().status == 200
    # The master removes it when it stops.
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit() == 0
    assert not path.exists()


def test_an_adopted_unix_socket_is_served_and_its_file_left(sock_dir):
    # systemd's `ListenStream=/path.sock`: the socket comes in as a descriptor (fd://N), its
    # file belongs to systemd.
    path = sock_dir / "sd.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(16)
    fd = sock.fileno()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferrule", "-w", "2", "--bind", f"fd://{fd}",
         "--pythonpath", str(APPS), "--graceful-timeout", "3", APP],
        cwd=str(APPS), pass_fds=[fd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    sock.close()
    err = _LogPipe(proc.stderr, "fd-unix-stderr")
    try:
        m = err.wait_for(rf"Listening at: unix:{path} \((\d+)\)", 30)
        assert m is not None and int(m.group(1)) == proc.pid, "\n".join(err.lines)
        assert environ_over(path)["REMOTE_ADDR"] == ""
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, "\n".join(err.lines)
        err.join(5)
        proc.stderr.close()
    assert stat.S_ISSOCK(path.lstat().st_mode)


def test_usr2_hands_the_unix_socket_to_the_new_master(ferrule_server, sock_dir):
    path = sock_dir / "app.sock"
    srv = ferrule_server("workers_app:app", "-w", "2", "--bind", f"unix:{path}")
    wait_children(srv.pid, 2)
    mark = srv.mark()
    srv.send_signal(signal.SIGUSR2)
    line = srv.wait_for_log(r"re-executing: new master pid \d+", since=mark)
    new_master = int(re.search(r"new master pid (\d+)", line).group(1))
    try:
        srv.wait_for_log(rf"Listening at: unix:{path} \({new_master}\)", 15, since=mark)
        # The old master stops once the new one is ready, and leaves the file to it.
        assert srv.proc.wait(15) == 0
        assert path.exists()
        with UnixClient(path) as c:
            c.send(rawhttp.build_request("GET", "/pid"))
            assert c.read_response().status == 200
    finally:
        _stop(new_master)
