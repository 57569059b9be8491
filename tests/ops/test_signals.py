"""Shutdown of a single process (issue 2): SIGINT and SIGTERM end with exit code 0 and a
"Shutdown complete" line; a second signal while shutting down makes the exit prompt, both while
the server drains in-flight requests (handled in Rust) and while Python waits for busy app threads
after `run()` returned (handled in python/ferrule/server.py)."""

from __future__ import annotations

import re
import signal
import time

import pytest

from helpers.rawhttp import ConnectionClosed, build_request

APP = "basic_app:application"
LINE_PREFIX_RE = r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}\] "


@pytest.mark.parametrize(
    ("sig", "name"), [(signal.SIGINT, "int"), (signal.SIGTERM, "term")], ids=["SIGINT", "SIGTERM"]
)
def test_signal_exits_0_with_shutdown_log(ferrule_server, sig, name):
    srv = ferrule_server(APP)
    assert srv.get("/hello").body == b"hello world"
    srv.send_signal(sig)
    assert srv.wait_exit() == 0
    for msg in (f"Handling signal: {name}", "Shutdown complete"):
        rx = re.compile(LINE_PREFIX_RE + rf"\[{srv.pid}\] \[INFO\] {re.escape(msg)}$")
        assert any(rx.search(line) for line in srv.lines), f"no {msg!r} line:\n{srv.log_text()}"


def _stuck_request(srv, client):
    """Puts a request inside the app for 20 s and waits until it is there."""
    mark = srv.mark()
    client.send(build_request("GET", "/slow?ms=20000&log=stuck-request-inside-app"))
    srv.wait_for_log("stuck-request-inside-app", since=mark)


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_second_signal_during_drain_exits_promptly(ferrule_server, second):
    # A 30 s graceful drain would hold a stuck request that long; the second signal ends it.
    srv = ferrule_server(APP, "--graceful-timeout", "30")
    srv.errors_expected = True  # the marker goes through wsgi.errors
    with srv.client() as c:
        _stuck_request(srv, c)
        mark = srv.mark()
        srv.send_signal(signal.SIGTERM)
        srv.wait_for_log("Handling signal: term", since=mark)
        started = time.monotonic()
        srv.send_signal(second)
        assert srv.wait_exit(timeout=10) == 0
        took = time.monotonic() - started
        with pytest.raises(ConnectionClosed):
            c.read_response()
    assert took < 3.0, f"exit took {took:.1f}s after the second signal"
    srv.wait_for_log("again: closing the remaining connections now", since=mark)


def test_second_signal_while_waiting_for_app_threads_exits_promptly(ferrule_server):
    # Graceful drain of 1 s runs out; then Python waits up to 5 s (WORKER_JOIN_TIMEOUT) for the
    # stuck app thread. A signal during that wait must end it, not be swallowed.
    srv = ferrule_server(APP, "--graceful-timeout", "1")
    srv.errors_expected = True
    with srv.client() as c:
        _stuck_request(srv, c)
        mark = srv.mark()
        srv.send_signal(signal.SIGTERM)
        srv.wait_for_log("Graceful timeout", since=mark)
        time.sleep(0.3)  # let run() return into the join (a swallowed signal shows as >= 5 s)
        started = time.monotonic()
        srv.send_signal(signal.SIGINT)
        assert srv.wait_exit(timeout=10) == 0
        took = time.monotonic() - started
    assert took < 2.5, f"exit took {took:.1f}s after the second signal"
    srv.wait_for_log("during shutdown: not waiting for the app threads", since=mark)
    assert not [ln for ln in srv.lines if "KeyboardInterrupt" in ln], srv.log_text()
