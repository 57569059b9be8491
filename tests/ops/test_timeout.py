"""The request timeout (--timeout, issue 4): a request whose app has not answered within the
deadline gets 504 (and an access-log line), the app thread's Python stack is logged and
ferrule.RequestTimeout is raised in it; a thread that cannot unwind (blocked in one C call) gets
its worker replaced. Real processes, bounded time.
"""

from __future__ import annotations

import concurrent.futures
import re
import time

from workers_helpers import Load, wait_children

from helpers.rawhttp import build_request

APP = "supervision_app:app"


def test_a_request_past_the_timeout_gets_504_and_its_thread_unwinds(ferrule_server):
    srv = ferrule_server(APP, "--threads", "1", "--timeout", "1", "--access-logfile", "-")
    srv.errors_expected = True  # the timeout and the stack are logged at ERROR
    started = time.monotonic()
    with srv.client(timeout=10) as c:
        c.send(build_request("GET", "/loop?s=30"))
        resp = c.read_response()
    took = time.monotonic() - started
    assert resp.status == 504, resp
    assert resp.body == b"Gateway Timeout"
    assert (resp.get("connection") or "").lower() == "close"
    assert 0.9 < took < 3.0, took
    # The stack names the app's function and the line it was on.
    srv.wait_for_log(r"Request timeout: GET /loop\?s=30 HTTP/1.1 ran 1.0s on thread ferrule-app-0")
    srv.wait_for_log(r"stack of the application thread")
    log = srv.log_text()
    assert re.search(r'File ".*supervision_app.py", line \d+, in app', log), log
    assert "time.sleep(0.01)" in log
    srv.wait_for_log(r"Request timeout: GET /loop\?s=30 HTTP/1.1 unwound")
    # The only application thread is free again: the next request is served at once.
    resp = srv.get("/unwound")
    assert resp.status == 200 and resp.body.split()[0] == b"1", resp.body
    assert srv.get("/").status == 200
    out = srv.out.wait_for(r'"GET /loop\?s=30 HTTP/1.1" 504 ', 5)
    assert out is not None, srv.access_lines
    assert "Traceback" not in log  # the unwinding is not reported as an app error


def test_other_requests_succeed_while_one_times_out(ferrule_server):
    srv = ferrule_server(APP, "--threads", "4", "--timeout", "1")
    srv.errors_expected = True
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        slow = pool.submit(lambda: srv.get("/loop?s=30"))
        quick = [pool.submit(lambda: srv.get("/loop?s=0.2")) for _ in range(6)]
        assert [f.result().status for f in quick] == [200] * 6
        assert slow.result().status == 504


def test_timeout_zero_is_no_deadline(ferrule_server):
    srv = ferrule_server(APP, "--threads", "1", "--timeout", "0")
    resp = srv.get("/loop?s=1.5")
    assert resp.status == 200 and resp.body.startswith(b"looped")


def test_a_thread_that_cannot_unwind_gets_its_worker_replaced(ferrule_server):
    srv = ferrule_server(APP, "-w", "2", "--threads", "2", "--timeout", "1")
    srv.errors_expected = True
    before = wait_children(srv.pid, 2)
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    load = Load(srv.port, threads=4).start()
    try:
        load.wait_requests(50)
        mark = srv.mark()
        resp = srv.get("/stuck")
        assert resp.status == 504
        line = srv.wait_for_log(r"\[\d+\] \[ERROR\] Request timeout: GET /stuck", since=mark)
        stuck_pid = int(re.search(r"\] \[(\d+)\] \[ERROR\]", line).group(1))
        assert stuck_pid in before
        # 1 s timeout + 5 s grace, then the master replaces the worker.
        srv.wait_for_log(
            rf"Worker \d+ \(pid {stuck_pid}\) has a stuck application thread \(ferrule-app-\d "
            r"in GET /stuck",
            timeout=15,
            since=mark,
        )
        srv.wait_for_log(r"Worker 3 \(pid \d+\) ready", since=mark, timeout=15)
        # The stuck worker leaves: its other requests finish; its stuck thread does not keep
        # the process alive (SIGKILL past --graceful-timeout at worst).
        srv.wait_for_log(
            rf"Worker \d+ \(pid {stuck_pid}\) (exited|was killed)", since=mark, timeout=15
        )
        load.wait_requests(50)
    finally:
        load.stop()
    assert load.errors == [], f"{len(load.errors)} failures, first: {load.errors[:5]}"
    assert len(wait_children(srv.pid, 2)) == 2


def test_single_process_logs_a_stuck_thread_and_serves_on(ferrule_server):
    srv = ferrule_server(APP, "--threads", "2", "--timeout", "0.5")
    srv.errors_expected = True
    assert srv.get("/stuck").status == 504
    srv.wait_for_log(
        r"still stuck \(ferrule-app-\d in GET /stuck.*no master to replace it", timeout=10
    )
    for _ in range(5):
        assert srv.get("/").status == 200
