"""The master's signals (issue 4), gunicorn's meanings: TERM graceful stop, INT fast stop, HUP
zero-downtime reload, TTIN/TTOU one worker more/less. Real processes under load; failures are
counted, not sampled."""

from __future__ import annotations

import re
import signal
import threading
import time

from workers_helpers import Load, wait_children

from helpers.rawhttp import build_request

APP = "workers_app:app"


def test_term_finishes_in_flight_requests_then_exits(ferrule_server):
    srv = ferrule_server(APP, "-w", "2")
    wait_children(srv.pid, 2)
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    results: list[object] = []

    def slow() -> None:
        try:
            with srv.client(timeout=10) as c:
                c.send(build_request("GET", "/sleep?s=1"))
                results.append(c.read_response())
        except Exception as e:  # noqa: BLE001 - recorded, asserted below
            results.append(e)

    threads = [threading.Thread(target=slow) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.4)  # let the requests reach the app (they sleep 1 s)
    started = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(10)
    assert srv.wait_exit(10) == 0
    # graceful-timeout is 3 s in tests; the requests need ~0.6 s more.
    assert time.monotonic() - started < 3.0
    assert len(results) == 6
    for r in results:
        assert not isinstance(r, Exception), r
        assert (r.status, r.body.startswith(b"slept")) == (200, True)
        assert (r.get("connection") or "").lower() == "close"


def test_term_idle_keep_alive_does_not_delay_exit(ferrule_server):
    srv = ferrule_server(APP, "-w", "2")
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    with srv.client() as c:
        c.send(build_request("GET", "/"))
        assert c.read_response().status == 200
        started = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        assert srv.wait_exit(5) == 0
        assert time.monotonic() - started < 2.0


def test_int_is_a_fast_stop(ferrule_server):
    srv = ferrule_server(APP, "-w", "2")
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    with srv.client() as c:
        c.send(build_request("GET", "/sleep?s=5"))
        time.sleep(0.3)
        started = time.monotonic()
        srv.send_signal(signal.SIGINT)
        assert srv.wait_exit(5) == 0
        assert time.monotonic() - started < 1.5  # did not wait for the 5 s request


def test_ttin_ttou_change_the_worker_count(ferrule_server):
    srv = ferrule_server(APP, "-w", "2")
    wait_children(srv.pid, 2)
    srv.send_signal(signal.SIGTTIN)
    wait_children(srv.pid, 3)
    srv.send_signal(signal.SIGTTIN)
    wait_children(srv.pid, 4)
    srv.send_signal(signal.SIGTTOU)
    wait_children(srv.pid, 3)
    # One at a time: the kernel merges a signal sent while the same one is still pending.
    srv.send_signal(signal.SIGTTOU)
    wait_children(srv.pid, 2)
    srv.send_signal(signal.SIGTTOU)
    wait_children(srv.pid, 1)
    mark = srv.mark()
    srv.send_signal(signal.SIGTTOU)
    srv.wait_for_log(r"Handling signal: ttou \(1 workers\)", since=mark)  # never below one
    assert len(wait_children(srv.pid, 1)) == 1
    assert srv.get("/").status == 200
    srv.exited_on_purpose = False  # signals above were not meant to stop it


def test_hup_under_load_replaces_every_worker_without_a_failure(ferrule_server):
    srv = ferrule_server(APP, "-w", "2", "--keep-alive", "30")
    before = wait_children(srv.pid, 2)
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    load = Load(srv.port, threads=8).start()
    try:
        load.wait_requests(200)
        mark = srv.mark()
        srv.send_signal(signal.SIGHUP)
        srv.wait_for_log(r"Worker 4 \(pid \d+\) ready", since=mark)
        deadline = time.monotonic() + 10
        while True:
            after = wait_children(srv.pid, 2, timeout=10)
            if not (after & before):
                break
            assert time.monotonic() < deadline, f"old workers still alive: {after & before}"
            time.sleep(0.05)
        load.wait_requests(200)
    finally:
        load.stop()
    srv.exited_on_purpose = False
    assert load.errors == [], f"{len(load.errors)} failures, first: {load.errors[:5]}"
    assert load.ok > 400
    print(f"HUP under load: {load.ok} ok, {load.retried} keep-alive retries, 0 failures")


def test_hup_one_by_one_replaces_workers_in_turn_without_a_failure(ferrule_server):
    srv = ferrule_server(APP, "-w", "2", "--reload-one-by-one")
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    load = Load(srv.port, threads=8).start()
    try:
        load.wait_requests(100)
        mark = srv.mark()
        srv.send_signal(signal.SIGHUP)
        srv.wait_for_log(r"Worker 4 \(pid \d+\) ready", since=mark)
        srv.wait_for_log(r"Worker 2 \(pid \d+\) exited with code 0", since=mark)
        load.wait_requests(100)
    finally:
        load.stop()
    srv.exited_on_purpose = False
    assert load.errors == [], f"{len(load.errors)} failures, first: {load.errors[:5]}"
    # In turn: an old worker leaves after the first new one is ready, before the second is.
    log = srv.log_text(mark)
    first_ready = log.index("Worker 3 (pid")
    first_leaves = log.index("replaced by a reload")
    second_ready = re.search(r"Worker 4 \(pid \d+\) ready", log).start()
    second_boots = log.index("Booting worker 4")
    assert first_ready < second_boots and first_ready < first_leaves < second_ready, log


def test_ttin_ttou_under_load_without_a_failure(ferrule_server):
    srv = ferrule_server(APP, "-w", "2", "--keep-alive", "30")
    wait_children(srv.pid, 2)
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    load = Load(srv.port, threads=8).start()
    try:
        load.wait_requests(200)
        mark = srv.mark()
        srv.send_signal(signal.SIGTTIN)
        srv.wait_for_log(r"Worker 3 \(pid \d+\) ready", since=mark)
        wait_children(srv.pid, 3)
        load.wait_requests(200)
        mark = srv.mark()
        srv.send_signal(signal.SIGTTOU)
        srv.wait_for_log(r"Worker 3 \(pid \d+\) exited with code 0", since=mark)
        wait_children(srv.pid, 2)
        load.wait_requests(200)
    finally:
        load.stop()
    srv.exited_on_purpose = False
    assert load.errors == [], f"{len(load.errors)} failures, first: {load.errors[:5]}"
    print(f"TTIN/TTOU under load: {load.ok} ok, {load.retried} keep-alive retries, 0 failures")
