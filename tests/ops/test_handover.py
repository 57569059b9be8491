"""Sockets handed to ferrule (issue 4): USR2 re-exec keeping the listeners, systemd socket
activation (`LISTEN_FDS`/`LISTEN_PID`), `--bind fd://N`. Real processes, bounded time; under
load, failures are counted."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from test_systemd import FakeSystemd
from workers_helpers import Load, children, wait_children

from helpers import rawhttp
from helpers.server import APPS, LISTEN_RE, _LogPipe

APP = "workers_app:app"


def _gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie waiting for a reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _stop(pid: int, timeout: float = 15.0) -> None:
    """TERM to a process that is not our child; waits until it is gone (SIGKILL past timeout)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"pid {pid} still running {timeout}s after SIGTERM")
        time.sleep(0.05)


def test_usr2_under_load_hands_the_sockets_to_a_new_master(ferrule_server, tmp_path):
    systemd = FakeSystemd(tmp_path)
    pid_file = tmp_path / "ferrule.pid"
    srv = ferrule_server(
        APP,
        "-w", "2", "--keep-alive", "30", "--pid", str(pid_file),
        env={"NOTIFY_SOCKET": systemd.path},
    )  # fmt: skip
    old_workers = wait_children(srv.pid, 2)
    assert systemd.next() == {"READY": "1", "MAINPID": str(srv.pid)}
    load = Load(srv.port, threads=8).start()
    new_master = 0
    try:
        load.wait_requests(200)
        mark = srv.mark()
        srv.send_signal(signal.SIGUSR2)
        line = srv.wait_for_log(r"re-executing: new master pid \d+", since=mark)
        new_master = int(re.search(r"new master pid (\d+)", line).group(1))
        # The new master serves the same address, inherited (not bound again).
        srv.wait_for_log(rf"Listening at: http://127\.0\.0\.1:{srv.port} \({new_master}\)", 15)
        # systemd follows the new main process once its workers are ready ...
        assert systemd.next() == {"READY": "1", "MAINPID": str(new_master)}
        srv.wait_for_log(rf"telling the old master \(pid {srv.pid}\) to stop", since=mark)
        # ... and the old master stops gracefully, without telling systemd it stops.
        # (proc.wait, not srv.wait_exit: the new master still holds the log pipes open)
        assert srv.proc.wait(15) == 0
        assert all(_gone(p) for p in old_workers)
        load.wait_requests(300)
    finally:
        load.stop()
        try:
            if new_master:
                new_workers = children(new_master)
                assert len(new_workers) == 2
                assert int(srv.get("/pid").body.split()[0]) in new_workers
                assert pid_file.read_text() == f"{new_master}\n"
                systemd.sock.setblocking(False)
                try:
                    extra = systemd.sock.recv(4096)
                except BlockingIOError:
                    extra = b""
                assert extra == b"", f"unexpected sd_notify message: {extra!r}"
        finally:
            if new_master:
                _stop(new_master)
            systemd.close()
    assert load.errors == [], f"{len(load.errors)} failures, first: {load.errors[:5]}"
    assert load.ok > 500
    print(f"USR2 under load: {load.ok} ok, {load.retried} keep-alive retries, 0 failures")


def test_usr2_failing_new_master_leaves_the_old_one_serving(ferrule_server, tmp_path):
    # The re-exec'd master runs the same command line: make its app fail to import.
    flag = tmp_path / "broken"
    srv = ferrule_server("workers_flaky_app:app", "-w", "2", env={"FLAKY_FLAG": str(flag)})
    srv.errors_expected = True
    wait_children(srv.pid, 2)
    # Both loaded the app before the code "breaks" (only the new master's workers see it).
    srv.wait_for_log(r"Worker 1 \(pid \d+\) ready")
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    flag.write_text("1")
    mark = srv.mark()
    srv.send_signal(signal.SIGUSR2)
    srv.wait_for_log(r"The new master \(pid \d+\) exited with code 1: this master serves on",
                     timeout=20, since=mark)  # fmt: skip
    srv.exited_on_purpose = False
    assert srv.alive()
    assert srv.get("/").status == 200


def test_usr2_with_reuse_port_binds_the_same_address_again(ferrule_server):
    srv = ferrule_server(APP, "-w", "2", "--reuse-port")
    wait_children(srv.pid, 2)
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    mark = srv.mark()
    srv.send_signal(signal.SIGUSR2)
    line = srv.wait_for_log(r"re-executing: new master pid \d+", since=mark)
    new_master = int(re.search(r"new master pid (\d+)", line).group(1))
    try:
        srv.wait_for_log(rf"Listening at: http://127\.0\.0\.1:{srv.port} \({new_master}\)", 15)
        assert srv.proc.wait(15) == 0
        new_workers = wait_children(new_master, 2)
        pids = {int(srv.get("/pid").body.split()[0]) for _ in range(40)}
        assert pids == new_workers
    finally:
        _stop(new_master)


def test_usr2_does_not_kill_a_lone_process_or_a_worker(ferrule_server):
    lone = ferrule_server(APP)
    assert lone.get("/").status == 200  # serving: its signal handlers are in place
    mark = lone.mark()
    lone.send_signal(signal.SIGUSR2)
    lone.wait_for_log(r"usr2: re-exec needs a master .*; ignored", since=mark)
    lone.exited_on_purpose = False
    assert lone.get("/").status == 200
    srv = ferrule_server(APP, "-w", "2")
    workers = wait_children(srv.pid, 2)
    # Both workers must have their signal handlers in place before the USR2 arrives.
    srv.wait_for_log(r"Worker 1 \(pid \d+\) ready")
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    for pid in workers:
        os.kill(pid, signal.SIGUSR2)  # as `kill -USR2 -PGID` would
    time.sleep(0.5)
    assert children(srv.pid) == workers
    assert srv.get("/").status == 200


# -- socket activation and fd:// --------------------------------------------------------------

#: Puts the socket on descriptor 3 and sets the systemd variables for the process it becomes
#: (exec keeps the pid, so LISTEN_PID is right), like systemd does; argv[1]: the socket's fd,
#: argv[2]: LISTEN_PID mode ("self" or "other").
WRAPPER = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid() if sys.argv[2] == "self" else 1)
os.execv(sys.executable, [sys.executable, *sys.argv[3:]])
"""


class Activated:
    """ferrule started under WRAPPER with a socket this test bound."""

    def __init__(self, *args: str, listen_pid: str = "self") -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        fd = self.sock.fileno()
        argv = [sys.executable, "-c", WRAPPER, str(fd), listen_pid, "-m", "ferrule",
                "--pythonpath", str(APPS), "--graceful-timeout", "3", *args]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, cwd=str(APPS), pass_fds=[fd], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.sock.close()  # ferrule holds it now
        self.err = _LogPipe(self.proc.stderr, "activated-stderr")

    def listening(self) -> re.Match:
        m = self.err.wait_for(LISTEN_RE, 30)
        assert m is not None, "\n".join(self.err.lines)
        return m

    def get(self, target: str) -> rawhttp.Response:
        return rawhttp.get(self.port, target)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(15)
        self.err.join(5)
        self.proc.stderr.close()
        return code


def test_socket_activation_serves_on_the_passed_socket():
    srv = Activated("-w", "2", "process_app:app")
    try:
        m = srv.listening()
        assert (int(m.group(1)), int(m.group(2))) == (srv.port, srv.proc.pid)
        wait_children(srv.proc.pid, 2)
        pids = {int(srv.get("/ids").body.split()[2]) for _ in range(20)}
        assert pids <= children(srv.proc.pid)
        # Taken once: the workers (and anything they start) do not see the variables.
        assert srv.get("/env?name=LISTEN_FDS").body == b"None"
        assert srv.get("/env?name=LISTEN_PID").body == b"None"
    finally:
        assert srv.stop() == 0


def test_socket_activation_for_another_pid_is_ignored():
    # LISTEN_PID names another process: the variables are not ours; --bind is used.
    srv = Activated("--bind", "127.0.0.1:0", "process_app:app", listen_pid="other")
    try:
        m = srv.listening()
        assert int(m.group(1)) != srv.port
        assert rawhttp.get(int(m.group(1)), "/").status == 200
    finally:
        assert srv.stop() == 0


def test_bind_fd_serves_on_an_inherited_descriptor():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    fd = sock.fileno()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferrule", "--bind", f"fd://{fd}", "--pythonpath", str(APPS),
         "process_app:app"],
        cwd=str(APPS), pass_fds=[fd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    sock.close()
    err = _LogPipe(proc.stderr, "fd-stderr")
    try:
        m = err.wait_for(LISTEN_RE, 30)
        assert m is not None and int(m.group(1)) == port, "\n".join(err.lines)
        assert rawhttp.get(port, "/").status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        err.join(5)
        proc.stderr.close()


def test_bind_fd_that_is_no_listening_socket_is_a_clear_error(tmp_path):
    def run(*args: str, pass_fds=()) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ferrule", "--pythonpath", str(APPS), *args, "process_app:app"],
            cwd=str(APPS), pass_fds=pass_fds, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=30, check=False,
        )  # fmt: skip

    proc = run("--bind", "fd://0")  # stdin: /dev/null
    assert proc.returncode == 1
    assert "cannot bind fd://0: descriptor 0 is not a socket" in proc.stderr, proc.stderr
    proc = run("--bind", "fd://87")
    assert proc.returncode == 1 and "descriptor 87 is not open" in proc.stderr, proc.stderr
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        proc = run("--bind", f"fd://{udp.fileno()}", pass_fds=[udp.fileno()])
    finally:
        udp.close()
    assert proc.returncode == 1 and "not a stream socket" in proc.stderr, proc.stderr
    unbound = socket.socket()
    try:
        proc = run("--bind", f"fd://{unbound.fileno()}", pass_fds=[unbound.fileno()])
    finally:
        unbound.close()
    assert proc.returncode == 1 and "does not listen" in proc.stderr, proc.stderr
    assert "panicked" not in proc.stderr
