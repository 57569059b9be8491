"""Worker liveness (issue 4): each worker's event loop sends a heartbeat to the master every
second; a worker silent for 10 s (here: stopped with SIGSTOP) is killed with SIGKILL and
replaced, and requests keep succeeding meanwhile. Real processes, bounded time.
"""

from __future__ import annotations

import os
import signal
import time

from workers_helpers import threads, wait_children

APP = "supervision_app:app"


def _wait_stopped(pid: int, timeout: float = 5.0) -> None:
    """Waits until every thread of `pid` is stopped (`T` in /proc/PID/task/TID/stat)."""
    deadline = time.monotonic() + timeout
    while True:
        states = {fields[0] for _, fields in threads(pid).values()}
        if states == {"T"}:
            return
        assert time.monotonic() < deadline, f"pid {pid} did not stop within {timeout}s: {states}"
        time.sleep(0.01)


def test_a_stopped_worker_is_killed_and_replaced(ferrule_server):
    srv = ferrule_server(APP, "-w", "2")
    srv.errors_expected = True  # the kill is logged at ERROR
    before = wait_children(srv.pid, 2)
    victim = min(before)
    # The victim must be ready: only a ready worker is held to the heartbeat, and one stopped
    # while still booting is never killed (worker 2's ready line says nothing about worker 1's:
    # under load they boot in either order; this was the flake).
    srv.wait_for_log(rf"Worker \d+ \(pid {victim}\) ready")
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    mark = srv.mark()
    os.kill(victim, signal.SIGSTOP)
    try:
        # kill() returns before the stop takes effect: until then the victim can still accept
        # a connection of the loop below, which would wait for its SIGKILL.
        _wait_stopped(victim)
        started = time.monotonic()
        # New connections go to the worker that still runs (the stopped one accepts nothing).
        while time.monotonic() - started < 8:
            resp = srv.get("/")
            assert resp.status == 200 and int(resp.body.split()[1]) != victim
            time.sleep(0.1)
        srv.wait_for_log(
            rf"Worker \d+ \(pid {victim}\) sent no heartbeat for 1\ds: SIGKILL, replacing it",
            timeout=10,
            since=mark,
        )
        assert 9.5 < time.monotonic() - started < 14
        srv.wait_for_log(rf"Worker \d+ \(pid {victim}\) was killed by SIGKILL", since=mark)
        srv.wait_for_log(r"Worker 3 \(pid \d+\) ready", since=mark)
    finally:
        try:
            os.kill(victim, signal.SIGCONT)
        except ProcessLookupError:
            pass
    after = wait_children(srv.pid, 2)
    assert victim not in after
    for _ in range(10):
        assert srv.get("/").status == 200


def test_a_worker_whose_master_is_gone_stops(ferrule_server):
    srv = ferrule_server(APP, "-w", "2")
    srv.errors_expected = True  # each worker logs the loss of its master at ERROR
    kids = wait_children(srv.pid, 2)
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    srv.send_signal(signal.SIGKILL)
    srv.wait_exit(5)
    deadline = time.monotonic() + 10
    alive = set(kids)
    while alive:
        assert time.monotonic() < deadline, f"orphaned workers still running: {alive}"
        for pid in list(alive):
            try:
                os.kill(pid, 0)
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split(")")[-1].split()[0] == "Z":
                        alive.discard(pid)  # exited, waiting for init to reap it
            except (ProcessLookupError, FileNotFoundError):
                alive.discard(pid)
        time.sleep(0.1)
    assert len(srv.wait_for_log(r"The master is gone: shutting down")) > 0
