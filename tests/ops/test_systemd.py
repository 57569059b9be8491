"""systemd integration (issue 4): `sd_notify` over `$NOTIFY_SOCKET` (a Python unix datagram
socket stands in for systemd) and `--pid FILE`. Real processes, bounded time.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from workers_helpers import wait_children

from helpers.server import APPS

APP = "supervision_app:app"


class FakeSystemd:
    """The receiving end of `$NOTIFY_SOCKET`."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def next(self, timeout: float = 15.0) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path):
    fake = FakeSystemd(tmp_path)
    yield fake
    fake.close()


def test_master_notifies_ready_reloading_and_stopping(ferrule_server, systemd):
    srv = ferrule_server(APP, "-w", "2", env={"NOTIFY_SOCKET": systemd.path})
    msg = systemd.next()
    # READY only once both workers are ready, naming the master as the main process.
    assert msg == {"READY": "1", "MAINPID": str(srv.pid)}
    # (the master logs each READY before it announces; the log pipe may lag a little)
    srv.wait_for_log(r"Worker 1 \(pid \d+\) ready", timeout=2)
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready", timeout=2)
    mark = srv.mark()
    srv.send_signal(signal.SIGHUP)
    msg = systemd.next()
    assert msg["RELOADING"] == "1" and int(msg["MONOTONIC_USEC"]) > 0
    msg = systemd.next()
    assert msg == {"READY": "1", "MAINPID": str(srv.pid)}
    # READY again only after the old workers were told to go: the master logs each "Stopping"
    # line before it announces READY; our capture of its stderr may lag the notify socket a little.
    for worker in (1, 2):
        srv.wait_for_log(rf"Stopping worker {worker} \(pid \d+\): replaced by a reload", 2, mark)
    assert srv.log_text(mark).count("replaced by a reload") == 2
    srv.send_signal(signal.SIGTERM)
    assert systemd.next() == {"STOPPING": "1"}
    assert srv.wait_exit(10) == 0


def test_single_process_notifies_ready_and_stopping(ferrule_server, systemd):
    srv = ferrule_server(APP, env={"NOTIFY_SOCKET": systemd.path})
    assert systemd.next() == {"READY": "1", "MAINPID": str(srv.pid)}
    assert srv.get("/").status == 200
    srv.send_signal(signal.SIGTERM)
    assert systemd.next() == {"STOPPING": "1"}
    assert srv.wait_exit(10) == 0


def test_pid_file_names_the_master_while_it_runs(ferrule_server, tmp_path):
    pid_file = tmp_path / "ferrule.pid"
    srv = ferrule_server(APP, "-w", "2", "--pid", str(pid_file))
    wait_children(srv.pid, 2)
    assert pid_file.read_text() == f"{srv.pid}\n"
    # A second server with the same pid file refuses to start.
    second = subprocess.run(
        [sys.executable, "-m", "ferrule", "--bind", "127.0.0.1:0", "--pid", str(pid_file), APP],
        cwd=str(APPS),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == 1
    assert f"already running as pid {srv.pid}" in second.stderr
    assert pid_file.read_text() == f"{srv.pid}\n"
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit(10) == 0
    assert not pid_file.exists()


def test_stale_pid_file_is_replaced(ferrule_server, tmp_path):
    pid_file = tmp_path / "ferrule.pid"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    pid_file.write_text(f"{dead.pid}\n")
    srv = ferrule_server(APP, "--pid", str(pid_file))
    assert pid_file.read_text() == f"{srv.pid}\n"
    assert srv.get("/").status == 200  # serving (signal handlers in place) before the stop
