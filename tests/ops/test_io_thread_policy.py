"""The I/O thread runs under SCHED_BATCH (crates/ferrule-core/src/server/sched.rs): it does not
preempt the application threads when it wakes. Checked in real processes through
/proc/PID/task/TID/stat (field 41, the policy): the I/O thread of a lone server and of every
worker is SCHED_BATCH, and every other thread (the main thread, the application threads, the
master) keeps the default policy."""

from __future__ import annotations

import os
import time

from workers_helpers import threads, wait_children

APP = "basic_app:application"
SCHED_OTHER = 0
SCHED_BATCH = 3


def _policies(pid: int) -> dict[int, tuple[str, int]]:
    """Each thread of `pid`: (its name, its scheduling policy, field 41 of its stat)."""
    return {tid: (name, int(fields[41 - 3])) for tid, (name, fields) in threads(pid).items()}


def _check_server_process(pid: int) -> None:
    # A worker starts its I/O thread once it has loaded the app: wait for it (bounded).
    deadline = time.monotonic() + 15
    threads = _policies(pid)
    while not any(name == "ferrule-io" for name, _ in threads.values()):
        assert time.monotonic() < deadline, f"no ferrule-io thread in {threads}"
        time.sleep(0.05)
        threads = _policies(pid)
    io = {tid: policy for tid, (name, policy) in threads.items() if name == "ferrule-io"}
    assert io, f"no ferrule-io thread in {threads}"
    assert set(io.values()) == {SCHED_BATCH}, threads
    others = {tid: (n, p) for tid, (n, p) in threads.items() if n != "ferrule-io"}
    assert pid in others and len(others) >= 3, threads  # main thread and application threads
    assert {p for _, p in others.values()} == {SCHED_OTHER}, threads


def test_the_io_thread_is_batch_and_the_app_threads_are_not(ferrule_server):
    srv = ferrule_server(APP, "--threads", "2")
    assert srv.get("/hello").body == b"hello world"
    _check_server_process(srv.pid)


def test_every_worker_has_a_batch_io_thread_and_the_master_keeps_its_policy(ferrule_server):
    srv = ferrule_server(APP, "-w", "2", "--threads", "2")
    workers = wait_children(srv.pid, 2)
    assert srv.get("/hello").body == b"hello world"
    for pid in workers:
        _check_server_process(pid)
    master = _policies(srv.pid)
    assert {p for _, p in master.values()} == {SCHED_OTHER}, master
    assert os.sched_getscheduler(0) == SCHED_OTHER  # the test itself is untouched
