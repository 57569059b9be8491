"""Clean shutdown of a single process on SIGTERM/SIGINT (issue 2): a request already inside the
app is answered completely, then the process exits 0 and the port stops accepting."""

from __future__ import annotations

import signal
import socket

import pytest

from helpers.rawhttp import build_request

APP = "basic_app:application"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_in_flight_request_finishes_then_exit_0(ferrule_server, sig):
    srv = ferrule_server(APP)
    srv.errors_expected = True  # the marker goes through wsgi.errors, logged at ERROR
    mark = srv.mark()
    with srv.client() as c:
        c.send(build_request("GET", "/slow?ms=700&log=inside-app-marker"))
        srv.wait_for_log("inside-app-marker", since=mark)
        srv.send_signal(sig)
        resp = c.read_response()
        assert (resp.status, resp.body) == (200, b"slept")
    assert srv.wait_exit() == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()


def test_idle_keep_alive_connection_does_not_delay_shutdown(ferrule_server):
    srv = ferrule_server(APP)
    with srv.client() as c:
        c.send(build_request("GET", "/hello"))
        assert c.read_response().body == b"hello world"
        # The connection now idles in keep-alive; shutdown must not wait the graceful timeout
        # (3 s in tests) for it, nor the keep-alive timeout.
        srv.send_signal(signal.SIGTERM)
        assert srv.wait_exit(timeout=2.5) == 0
