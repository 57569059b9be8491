"""`--metrics-bind` with workers: the master serves the sum of its workers' metrics (sent with
each heartbeat), its restarts by reason and each worker's resident memory.

/metrics is parsed with prometheus_client's parser. Workers report once a second, so a test
waits (bounded) until the master's numbers reach what it sent, then checks they stay exact.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from prometheus_client.parser import text_string_to_metric_families
from workers_helpers import wait_children

APP = "workers_app:app"
METRICS_RE = re.compile(r"Metrics at: http://127\.0\.0\.1:(\d+)/metrics \((\d+)\)")
#: Requests sent per round.
N = 60
#: Longer than a heartbeat interval (1 s) with room for a loaded machine.
REPORT_WAIT = 15.0


def _start(ferrule_server, *args: str):
    srv = ferrule_server(APP, "-w", "2", "--metrics-bind", "127.0.0.1:0", *args)
    m = srv.err.wait_for(METRICS_RE, 10)
    assert m, srv.log_text()
    assert int(m.group(2)) == srv.pid, "the master binds the metrics address"
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    return srv, int(m.group(1))


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    status, headers, body = _get(port, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        assert family.name.startswith("ferrule_") and family.documentation, family.name
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _total(samples) -> float:
    return sum(v for (n, _), v in samples.items() if n == "ferrule_requests_total")


def _restarts(samples, reason: str) -> float:
    return samples[("ferrule_worker_restarts_total", (("reason", reason),))]


def _rss(samples) -> dict[int, float]:
    return {
        int(dict(labels)["pid"]): v
        for (n, labels), v in samples.items()
        if n == "ferrule_worker_resident_memory_bytes"
    }


def _wait_total(port: int, want: int, timeout: float = REPORT_WAIT):
    """Scrapes until the summed request counter is `want`; asserts it never went past it and
    never went down on the way."""
    deadline = time.monotonic() + timeout
    seen: list[float] = []
    while True:
        samples = _scrape(port)
        seen.append(_total(samples))
        if seen[-1] == want:
            return samples
        assert seen == sorted(seen), f"the request counter went down: {seen}"
        assert seen[-1] < want, f"more requests counted than sent: {seen}"
        if time.monotonic() > deadline:
            raise AssertionError(f"requests total {seen[-1]} after {timeout}s, want {want}")
        time.sleep(0.1)


def _drive(port: int, n: int) -> set[int]:
    """`n` requests, each on a fresh connection (so both workers get some); the serving pids."""
    conn_timeout = 10

    def one(_):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=conn_timeout)
        try:
            c.request("GET", "/sleep?s=0.01")
            r = c.getresponse()
            body = r.read()
            assert r.status == 200, body
            return int(body.split()[1])
        finally:
            c.close()

    with ThreadPoolExecutor(6) as pool:
        return set(pool.map(one, range(n)))


def _own_rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def test_master_sums_the_workers_and_reports_each_ones_memory(ferrule_server):
    srv, mport = _start(ferrule_server)
    kids = wait_children(srv.pid, 2)
    pids = _drive(srv.port, N)
    assert pids <= kids
    samples = _wait_total(mport, N)
    assert samples[("ferrule_requests_total", (("method", "GET"), ("status_class", "2xx")))] == N
    assert samples[("ferrule_request_duration_seconds_count", ())] == N
    # A few more heartbeats: still exact (snapshots replace each other, they do not add up).
    time.sleep(2.5)
    assert _total(_scrape(mport)) == N

    assert samples[("ferrule_workers", ())] == 2
    rss = _rss(samples)
    assert set(rss) == kids
    for pid, value in rss.items():
        # Plausible: a Python worker's RSS, within a factor of its own /proc reading now.
        assert 4 * 2**20 < value < 4 * 2**30, (pid, value)
        assert _own_rss(pid) / 3 < value < _own_rss(pid) * 3, (pid, value)
    assert all(v == 0 for (n, _), v in samples.items() if n == "ferrule_worker_restarts_total")
    assert samples[("ferrule_resident_memory_bytes", ())] > 8 * 2**20


def test_killed_worker_is_counted_as_a_restart_and_counters_hold(ferrule_server):
    srv, mport = _start(ferrule_server)
    srv.errors_expected = True  # the master logs the unexpected death at ERROR
    kids = wait_children(srv.pid, 2)
    _drive(srv.port, N)
    _wait_total(mport, N)

    victim = min(kids)
    mark = srv.mark()
    os.kill(victim, signal.SIGKILL)
    srv.wait_for_log(rf"Worker \d+ \(pid {victim}\) was killed by SIGKILL", since=mark)
    srv.wait_for_log(r"Worker 3 \(pid \d+\) ready", since=mark)
    new = wait_children(srv.pid, 2)
    assert victim not in new

    samples = _scrape(mport)
    assert _total(samples) == N, "a dead worker's requests stay counted"
    assert _restarts(samples, "signal") == 1
    assert _restarts(samples, "exited") == 0
    assert samples[("ferrule_workers", ())] == 2
    assert set(_rss(samples)) == new

    # The replacement's requests add to the total.
    _drive(srv.port, N)
    _wait_total(mport, 2 * N)


def test_status_json_and_refusals_from_the_master(ferrule_server):
    srv, mport = _start(ferrule_server)
    kids = wait_children(srv.pid, 2)
    _drive(srv.port, 10)
    # A request the codec refuses (a header line without a colon) never reaches the app.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")
    _wait_total(mport, 10)
    deadline = time.monotonic() + REPORT_WAIT
    while True:
        status, headers, body = _get(mport, "/status.json")
        assert status == 200 and headers["content-type"] == "application/json"
        doc = json.loads(body)
        if doc["refused"]["400"] == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert doc["refused"]["400"] == 1
    assert doc["requests_total"] == 10
    assert doc["pid"] == srv.pid
    assert {w["pid"] for w in doc["workers"]} == kids
    assert all(w["rss_bytes"] > 2**20 for w in doc["workers"])
    assert doc["restarts"]["signal"] == 0
    samples = _scrape(mport)
    assert samples[("ferrule_requests_refused_total", (("status", "400"),))] == 1
    # The page is served by the master too.
    status, headers, page = _get(mport, "/status")
    assert status == 200 and b"<svg" in page
