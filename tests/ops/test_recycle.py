"""Worker recycling (issue 4): --max-requests (+ jitter), --max-worker-memory,
--max-worker-lifetime. The replacement starts first and the recycled worker finishes its
in-flight requests, so continuous load sees no failed request and no connection error; the test
counts them. Real processes, bounded time.
"""

from __future__ import annotations

import re
import time

from workers_helpers import Load, children, wait_children

APP = "supervision_app:app"


def _recycled(srv, since: int = 0) -> int:
    return len(re.findall(r"recycled, its replacement is ready", srv.log_text(since)))


def _wait_recycles(srv, load: Load, count: int, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while _recycled(srv) < count:
        assert time.monotonic() < deadline, (
            f"{_recycled(srv)} recycles in {timeout}s; {load.ok} ok; log:\n{srv.log_text()}"
        )
        time.sleep(0.1)


def _exited_cleanly(srv, count: int) -> None:
    """`count` recycled workers left with exit code 0 (not SIGKILL: they drained in time)."""
    deadline = time.monotonic() + 10
    while len(re.findall(r"Worker \d+ \(pid \d+\) exited with code 0", srv.log_text())) < count:
        assert time.monotonic() < deadline, srv.log_text()
        time.sleep(0.1)
    assert "SIGKILL" not in srv.log_text()


def test_max_requests_recycles_under_load_without_a_failure(ferrule_server):
    srv = ferrule_server(
        APP, "-w", "2", "--max-requests", "150", "--max-requests-jitter", "50", "--keep-alive", "30"
    )
    wait_children(srv.pid, 2)
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    load = Load(srv.port, threads=8).start()
    try:
        _wait_recycles(srv, load, 3)
        load.wait_requests(100)
    finally:
        load.stop()
    assert load.errors == [], f"{len(load.errors)} failures, first: {load.errors[:5]}"
    log = srv.log_text()
    assert re.search(r"served (1[5-9]\d|200) requests \(max_requests\): recycling it", log), log
    # The replacement was ready before the recycled worker was told to stop.
    first = re.search(r"Worker (\d+) \(pid \d+\) served \d+ requests", log)
    assert first is not None
    rest = log[first.end() :]
    ready = re.search(r"Worker \d+ \(pid \d+\) ready", rest)
    stop = re.search(rf"Stopping worker {first.group(1)} \(pid \d+\): recycled", rest)
    assert ready and stop and ready.start() < stop.start(), log
    _exited_cleanly(srv, 3)
    assert len(wait_children(srv.pid, 2)) == 2
    print(f"max-requests under load: {load.ok} ok, {load.retried} keep-alive retries, 0 failures")


def test_max_worker_memory_recycles_a_leaking_worker_without_a_failure(ferrule_server):
    # Each request keeps 512 KiB: a worker passes 60 MiB after ~80 of them.
    srv = ferrule_server(APP, "-w", "2", "--max-worker-memory", "60", "--keep-alive", "30")
    wait_children(srv.pid, 2)
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    load = Load(srv.port, threads=8, target="/grow?kb=512").start()
    try:
        _wait_recycles(srv, load, 2)
        load.wait_requests(50)
    finally:
        load.stop()
    assert load.errors == [], f"{len(load.errors)} failures, first: {load.errors[:5]}"
    assert re.search(
        r"uses \d+ MiB of memory \(max_worker_memory 60 MiB\): recycling it", srv.log_text()
    ), srv.log_text()
    _exited_cleanly(srv, 2)
    print(f"max-worker-memory under load: {load.ok} ok, {load.retried} retries, 0 failures")


def test_one_worker_with_max_requests_runs_under_a_master(ferrule_server):
    srv = ferrule_server(APP, "--max-requests", "20")
    (first,) = wait_children(srv.pid, 1)
    srv.wait_for_log(r"Worker 1 \(pid \d+\) ready")
    for _ in range(25):
        resp = srv.get("/")
        assert resp.status == 200 and int(resp.body.split()[1]) == first
    srv.wait_for_log(r"Worker 1 \(pid \d+\) served 20 requests \(max_requests\)")
    srv.wait_for_log(r"Stopping worker 1 \(pid \d+\): recycled", timeout=15)
    # The replacement serves from now on (the old worker stops accepting once told to go).
    deadline = time.monotonic() + 10
    while True:
        resp = srv.get("/")
        assert resp.status == 200
        pid = int(resp.body.split()[1])
        if pid != first:
            break
        assert time.monotonic() < deadline, srv.log_text()
    assert pid != srv.pid and pid in children(srv.pid)


def test_max_worker_lifetime_recycles_old_workers(ferrule_server):
    srv = ferrule_server(APP, "-w", "2", "--max-worker-lifetime", "2")
    before = wait_children(srv.pid, 2)
    srv.wait_for_log(r"has run \d+s \(max_worker_lifetime 2s\): recycling it", timeout=15)
    deadline = time.monotonic() + 15
    while children(srv.pid) & before:
        assert time.monotonic() < deadline, srv.log_text()
        time.sleep(0.1)
    assert srv.get("/").status == 200
