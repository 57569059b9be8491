"""USR2 re-exec with `--metrics-bind` (issue 6): the new master serves /metrics on the same
address (its workers, parsed with prometheus_client's parser) and the old master, told to stop,
goes away cleanly with its workers. The metrics socket is handed over with the listeners, so a
scraper polling through the whole hand-over is never refused. Real processes, bounded time."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time

from test_handover import _gone, _stop
from test_metrics_workers import _drive, _get, _rss, _scrape, _total
from workers_helpers import wait_children

APP = "workers_app:app"
#: Seconds for the new master to take over (boot its workers, stop the old master, bind).
TAKEOVER = 20.0


def _free_port() -> int:
    """A port nothing listens on now (the metrics address must be the same for both masters,
    so port 0 will not do)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_metrics_of(port: int, workers: set[int], timeout: float = TAKEOVER):
    """Scrapes until /metrics lists exactly `workers`; returns the samples."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            samples = _scrape(port)
        except OSError as e:  # not bound yet: the new master retries every second
            last = e
        else:
            last = set(_rss(samples))
            if last == workers:
                return samples
        time.sleep(0.1)
    raise AssertionError(f"/metrics on {port} did not list workers {workers}; last: {last}")


class _Scraper(threading.Thread):
    """Scrapes /metrics every 20 ms until stopped; counts the answers and the refusals."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.answered = 0
        self.refused: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                status, _, _ = _get(self.port, "/metrics")
            except ConnectionRefusedError as e:
                self.refused.append(f"{time.monotonic():.3f}: {e}")
            except OSError:
                pass  # e.g. the old master exiting with this scrape half answered
            else:
                self.answered += status == 200
            self.done.wait(0.02)


def test_usr2_new_master_serves_metrics_and_the_old_one_leaves(ferrule_server):
    mport = _free_port()
    srv = ferrule_server(APP, "-w", "2", "--metrics-bind", f"127.0.0.1:{mport}")
    srv.wait_for_log(rf"Metrics at: http://127\.0\.0\.1:{mport}/metrics \({srv.pid}\)")
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    old_workers = wait_children(srv.pid, 2)
    _drive(srv.port, 20)
    before = _wait_metrics_of(mport, old_workers)
    assert _total(before) <= 20

    scraper = _Scraper(mport)
    scraper.start()
    mark = srv.mark()
    srv.send_signal(signal.SIGUSR2)
    line = srv.wait_for_log(r"re-executing: new master pid \d+", since=mark)
    new_master = int(re.search(r"new master pid (\d+)", line).group(1))
    try:
        srv.wait_for_log(rf"telling the old master \(pid {srv.pid}\) to stop", TAKEOVER, mark)
        # The old master stops gracefully (proc.wait: the new master holds the log pipes).
        assert srv.proc.wait(TAKEOVER) == 0
        assert all(_gone(p) for p in old_workers)
        new_workers = wait_children(new_master, 2)
        srv.wait_for_log(
            rf"Metrics at: http://127\.0\.0\.1:{mport}/metrics \({new_master}\)", TAKEOVER, mark
        )
        _wait_metrics_of(mport, new_workers)
        scraper.done.set()
        scraper.join(5)
        # Adopted, not bound again: no scrape was refused while the masters changed hands.
        assert scraper.refused == [], scraper.refused
        assert scraper.answered >= 3
        # The new master's workers count what they serve (a fresh counter: a new process).
        served = _drive(srv.port, 30)
        assert served <= new_workers
        deadline = time.monotonic() + TAKEOVER
        while _total(_scrape(mport)) < 30:
            assert time.monotonic() < deadline, "the new workers' requests were not counted"
            time.sleep(0.2)
        # /status.json is the new master's: its pid, its workers.
        status, headers, body = _get(mport, "/status.json")
        assert status == 200 and headers["content-type"] == "application/json"
        doc = json.loads(body)
        assert doc["pid"] == new_master
        assert {w["pid"] for w in doc["workers"]} == new_workers
        assert srv.problems(mark) == []
    finally:
        scraper.done.set()
        _stop(new_master)
    assert _gone(new_master)
