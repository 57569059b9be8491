"""`--boot-timeout`: a worker under a master that is not ready this long after its fork (its
import hangs) has its Python stacks dumped to the error log, is killed with SIGKILL and is
replaced, without stopping the server; 0 means no deadline; a slow boot under the deadline is
left alone. Real processes, bounded time.

`-w 1` alone serves without a master, so these tests add a `--max-worker-lifetime` they never
reach: it asks for recycling, which starts a master for the one worker.
"""

from __future__ import annotations

import os
import re
import signal
import time

from workers_helpers import wait_children

from helpers.server import APPS

APP = "boot_slow_app:app"
ONE_WORKER_UNDER_A_MASTER = ("-w", "1", "--max-worker-lifetime", "3600")
BOOTING_RE = r"Booting worker {id} with pid: (\d+)"
KILLED_RE = (
    r"Worker {id} \(pid {pid}\) did not finish booting within {secs}s \(--boot-timeout\): "
    r"SIGKILL, replacing it"
)


def _hang_line() -> int:
    """The line of boot_slow_app.py a hung import sleeps on."""
    lines = (APPS / "boot_slow_app.py").read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if "HANGS HERE" in text)


def _pid_of(line: str, pattern: str) -> int:
    m = re.search(pattern, line)
    assert m, line
    return int(m.group(1))


def _serves_from(srv, pid: int) -> None:
    resp = srv.get("/")
    assert resp.status == 200 and resp.body == f"ok {pid}".encode()


def test_a_worker_hung_at_import_is_dumped_killed_and_replaced(ferrule_server, tmp_path):
    env = {"BOOT_HANG_ONCE": str(tmp_path / "hung-once")}
    srv = ferrule_server(APP, *ONE_WORKER_UNDER_A_MASTER, "--boot-timeout", "1", env=env)
    srv.errors_expected = True  # the kill is logged at ERROR
    started = time.monotonic()
    hung = _pid_of(srv.wait_for_log(BOOTING_RE.format(id=1)), BOOTING_RE.format(id=1))
    srv.wait_for_log(KILLED_RE.format(id=1, pid=hung, secs=1), timeout=10)
    # boot_timeout (1 s) + the master's 1 s grace, checked once a second.
    assert 1.5 < time.monotonic() - started < 8
    # faulthandler's dump, written by the hung worker at 1 s, names where it was stuck.
    srv.wait_for_log(r"^Timeout \(0:00:01\)!$", timeout=5)
    srv.wait_for_log(rf'File ".*boot_slow_app\.py", line {_hang_line()} in _hang_forever', 5)
    srv.wait_for_log(rf"Worker 1 \(pid {hung}\) was killed by SIGKILL")
    # Replaced (the hang was once only), not a boot failure: the master serves on.
    replacement = _pid_of(
        srv.wait_for_log(r"Worker 2 \(pid (\d+)\) ready", timeout=10), r"pid (\d+)"
    )
    assert replacement != hung
    assert wait_children(srv.pid, 1) == {replacement}
    _serves_from(srv, replacement)
    assert "failed to boot" not in srv.log_text()


def _boot_slowly(ferrule_server, sleep: str, boot_timeout: str, ready_within: float):
    """A master whose one worker's import sleeps `sleep` s, under `--boot-timeout`; waits until
    the worker is ready. Returns the server, the worker's pid and when it was started."""
    env = {"BOOT_SLEEP": sleep}
    args = (*ONE_WORKER_UNDER_A_MASTER, "--boot-timeout", boot_timeout)
    srv = ferrule_server(APP, *args, env=env)
    booted = time.monotonic()
    pid = _pid_of(srv.wait_for_log(BOOTING_RE.format(id=1)), BOOTING_RE.format(id=1))
    srv.wait_for_log(rf"Worker 1 \(pid {pid}\) ready", timeout=ready_within)
    return srv, pid, booted


def test_boot_timeout_zero_leaves_a_slow_boot_alone(ferrule_server):
    # 0 is no deadline (not a zero one, which would kill it within 2 s).
    srv, pid, booted = _boot_slowly(ferrule_server, "3", "0", ready_within=15)
    assert time.monotonic() - booted > 2.5
    assert wait_children(srv.pid, 1) == {pid}
    _serves_from(srv, pid)
    assert "booting within" not in srv.log_text()


def test_a_slow_boot_under_the_deadline_is_left_alone(ferrule_server):
    srv, pid, booted = _boot_slowly(ferrule_server, "0.5", "5", ready_within=5)
    _serves_from(srv, pid)
    # Past the 5 s deadline: the worker disarmed its stack dump once loaded, and a ready
    # worker is not held to the boot deadline.
    time.sleep(max(0.0, booted + 5.5 - time.monotonic()))
    text = srv.log_text()
    assert "Timeout (" not in text and "booting within" not in text, text
    assert wait_children(srv.pid, 1) == {pid}
    _serves_from(srv, pid)


def test_a_hung_reload_keeps_the_old_worker_serving(ferrule_server, tmp_path):
    marker = tmp_path / "hung-once"
    marker.touch()  # the first worker boots normally
    env = {"BOOT_HANG_ONCE": str(marker)}
    args = (*ONE_WORKER_UNDER_A_MASTER, "--reload-one-by-one", "--boot-timeout", "1")
    srv = ferrule_server(APP, *args, env=env)
    srv.errors_expected = True  # the kill is logged at ERROR
    old = _pid_of(srv.wait_for_log(r"Worker 1 \(pid (\d+)\) ready"), r"pid (\d+)")
    marker.unlink()  # the next import hangs
    mark = srv.mark()
    os.kill(srv.pid, signal.SIGHUP)
    hung = _pid_of(srv.wait_for_log(BOOTING_RE.format(id=2), since=mark), r"pid: (\d+)")
    # While worker 2 hangs, and after it is killed, worker 1 serves every request.
    deadline = time.monotonic() + 10
    while srv.err.wait_for(KILLED_RE.format(id=2, pid=hung, secs=1), 0, since=mark) is None:
        assert time.monotonic() < deadline, srv.log_text(mark)
        _serves_from(srv, old)
        time.sleep(0.1)
    new = _pid_of(
        srv.wait_for_log(r"Worker 3 \(pid (\d+)\) ready", timeout=10, since=mark), r"pid (\d+)"
    )
    srv.wait_for_log(rf"Stopping worker 1 \(pid {old}\): replaced by a reload", since=mark)
    assert wait_children(srv.pid, 1, timeout=10) == {new}
    _serves_from(srv, new)
