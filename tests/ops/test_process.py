"""Process settings (issue 4): `--reuse-port`, `--user`/`--group`, `--umask`, `--daemon`, and
the process titles `ps` shows. Real processes, bounded time."""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ops_helpers import listening_ports
from workers_helpers import children, wait_children

from helpers import rawhttp
from helpers.server import APPS

APP = "process_app:app"


def _ids(srv) -> tuple[int, int, int]:
    uid, gid, pid = srv.get("/ids").body.split()
    return int(uid), int(gid), int(pid)


def test_reuse_port_gives_each_worker_its_own_socket_and_both_serve(ferrule_server):
    srv = ferrule_server(APP, "-w", "2", "--reuse-port")
    workers = wait_children(srv.pid, 2)
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    # The master only holds the address; each worker listens on its own socket.
    assert listening_ports(srv.pid) == []
    for pid in workers:
        assert listening_ports(pid) == [srv.port]
    # Fresh connections: the kernel hashes each to one worker's socket; both get some.
    seen: dict[int, int] = {}
    for _ in range(200):
        pid = _ids(srv)[2]
        seen[pid] = seen.get(pid, 0) + 1
    assert set(seen) == workers, seen
    assert min(seen.values()) >= 20, seen  # even-ish: 200 over 2, far from 10/190
    print(f"--reuse-port: requests per worker {sorted(seen.values())}")


def test_umask_applies_to_files_the_app_creates(ferrule_server, tmp_path):
    srv = ferrule_server(APP, "--umask", "027")
    target = tmp_path / "created"
    assert srv.get(f"/create?path={target}").body == b"0o640"
    srv2 = ferrule_server(APP, "--umask", "0o002", "-w", "2")
    target2 = tmp_path / "created2"
    assert srv2.get(f"/create?path={target2}").body == b"0o664"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_user_and_group_switch_the_workers_not_the_master(ferrule_server):
    nobody = pwd.getpwnam("nobody")
    srv = ferrule_server(APP, "--user", "nobody", "--group", str(nobody.pw_gid))
    # One worker, yet a master: the app never runs with the master's privileges.
    (worker,) = wait_children(srv.pid, 1)
    srv.wait_for_log(r"Worker 1 \(pid \d+\) ready")
    uid, gid, pid = _ids(srv)
    assert (uid, gid, pid) == (nobody.pw_uid, nobody.pw_gid, worker)
    status = Path(f"/proc/{worker}/status").read_text()
    assert re.search(r"^Groups:\s*" + str(nobody.pw_gid) + r"\s*$", status, re.MULTILINE), status
    assert os.stat(f"/proc/{srv.pid}").st_uid == 0  # the master stays root


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_unknown_user_fails_before_starting():
    proc = subprocess.run(
        [sys.executable, "-m", "ferrule", "--user", "no-such-user-here", APP],
        cwd=str(APPS), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Error: --user no-such-user-here: no such user" in proc.stderr


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_daemon_detaches_and_the_pid_file_names_the_master(tmp_path):
    pid_file = tmp_path / "ferrule.pid"
    log = tmp_path / "error.log"
    started = time.monotonic()
    launcher = subprocess.run(
        [sys.executable, "-m", "ferrule", "--daemon", "--pid", str(pid_file), "--error-logfile",
         str(log), "--bind", "127.0.0.1:0", "--pythonpath", str(APPS), "-w", "2",
         "--graceful-timeout", "3", APP],
        cwd=str(APPS), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert launcher.returncode == 0, launcher.stderr
    assert time.monotonic() - started < 10
    assert launcher.stdout == launcher.stderr == ""
    _wait(lambda: pid_file.exists(), 15, "the pid file")
    master = int(pid_file.read_text())
    try:
        _wait(lambda: log.exists() and "Worker 2" in log.read_text(), 30, "the workers")
        m = re.search(rf"Listening at: http://127\.0\.0\.1:(\d+) \({master}\)", log.read_text())
        assert m, log.read_text()
        assert rawhttp.get(int(m.group(1)), "/").status == 200
        # Detached: its own session, not the launcher's child.
        assert os.getsid(master) == master or os.getsid(master) != os.getsid(0)
        assert len(children(master)) == 2
        assert Path(f"/proc/{master}/cmdline").read_bytes().startswith(b"ferrule: master")
    finally:
        os.kill(master, signal.SIGTERM)
        _wait(lambda: _gone(master), 15, "the daemon to stop")
    assert not pid_file.exists()
    assert "Master exiting" in log.read_text()


def test_process_titles_show_master_and_workers(ferrule_server):
    srv = ferrule_server("workers_app:app", "-w", "2")
    workers = wait_children(srv.pid, 2)
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")

    def title(pid: int) -> str:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode()

    assert title(srv.pid) == "ferrule: master [workers_app:app]"
    assert sorted(title(p) for p in workers) == [
        "ferrule: worker 1 [workers_app:app]",
        "ferrule: worker 2 [workers_app:app]",
    ]
    assert Path(f"/proc/{srv.pid}/comm").read_text().strip() == "ferrule-master"
    assert {Path(f"/proc/{p}/comm").read_text().strip() for p in workers} == {"ferrule-worker"}
    ps = subprocess.run(
        ["ps", "-o", "args=", "-p", str(srv.pid)], capture_output=True, text=True, check=False
    )
    if ps.returncode == 0:  # ps may be missing in minimal images
        assert ps.stdout.strip() == "ferrule: master [workers_app:app]"
