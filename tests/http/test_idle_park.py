"""Parked idle connections (crates/ferrule-core/src/server/park.rs): a connection idle past two
sweeps of the idle set (100-200 ms) leaves its task and waits outside it. Over real sockets:
a parked connection is served when its next request comes (first request or keep-alive, one
or hundreds at once), still closes at its own keep-alive deadline, is closed by a graceful
stop, one parked before its first request can still open HTTP/2 with prior knowledge, and a
TLS connection keeps its session across parkings."""

from __future__ import annotations

import http.client
import re
import shutil
import signal
import socket
import ssl
import time

import pytest

from helpers.pki import make_pki
from helpers.rawhttp import build_request

APP = "basic_app:application"
#: Two sweep ticks (100 ms each) and room for a loaded CI machine.
PARKED_AFTER = 0.6
PARKED = r"idle: parked out of its task"


def _parked_lines(srv, since: int) -> int:
    return sum(1 for line in srv.lines[since:] if re.search(PARKED, line))


def test_a_parked_keepalive_connection_serves_its_next_request(ferrule_server):
    srv = ferrule_server(APP, "--log-level", "debug")
    with srv.client() as c:
        for i in range(3):
            mark = srv.mark()
            c.send(build_request("POST", "/echo", body=b"round %d" % i))
            resp = c.read_response()
            assert (resp.status, resp.body) == (200, b"round %d" % i)
            srv.wait_for_log(PARKED, timeout=10, since=mark)


def test_a_connection_parked_before_its_first_request_is_served(ferrule_server):
    srv = ferrule_server(APP, "--log-level", "debug")
    mark = srv.mark()
    with srv.client() as c:
        srv.wait_for_log(PARKED, timeout=10, since=mark)
        c.send(build_request("GET", "/hello"))
        assert c.read_response().body == b"hello world"


def test_a_parked_connection_still_closes_at_its_keepalive_deadline(ferrule_server):
    srv = ferrule_server(APP, "--log-level", "debug", "--keep-alive", "2")
    with srv.client(timeout=15) as c:
        mark = srv.mark()
        c.send(build_request("GET", "/hello"))
        assert c.read_response().body == b"hello world"
        answered = time.monotonic()
        srv.wait_for_log(PARKED, timeout=10, since=mark)
        c.expect_closed(within=10)
        waited = time.monotonic() - answered
    # The deadline counts from the response, not from the parking: closed 2 s after it (the
    # sweep adds at most 0.1 s), not 2 s after being parked.
    assert 1.8 <= waited < 4.0, waited
    srv.wait_for_log(r"closing idle connection: no request within 2s", timeout=5, since=mark)


def test_graceful_stop_closes_parked_connections_at_once(ferrule_server):
    srv = ferrule_server(APP, "--log-level", "debug", "--graceful-timeout", "20")
    clients = [srv.client(timeout=15) for _ in range(5)]
    try:
        mark = srv.mark()
        for c in clients:
            c.send(build_request("GET", "/hello"))
            assert c.read_response().body == b"hello world"
        deadline = time.monotonic() + 10
        while _parked_lines(srv, mark) < len(clients) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _parked_lines(srv, mark) == len(clients), srv.log_text(mark)
        stopped = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        for c in clients:
            c.expect_closed(within=5)
        assert srv.wait_exit(timeout=10) == 0
        # Far below the 20 s graceful timeout: the parked connections did not hold the stop.
        assert time.monotonic() - stopped < 5
    finally:
        for c in clients:
            c.close()


def test_hundreds_of_parked_connections_all_resume(ferrule_server):
    srv = ferrule_server(APP, "--threads", "4")
    count = 300
    socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=15) for _ in range(count)]
    try:
        for s in socks:
            s.sendall(build_request("GET", "/hello"))
        for s in socks:
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(PARKED_AFTER)
        for s in socks:
            s.sendall(build_request("GET", "/hello", [("Connection", "close")]))
        for s in socks:
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello world"), data
    finally:
        for s in socks:
            s.close()


def test_http2_prior_knowledge_after_being_parked(ferrule_server):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("h2")
    srv = ferrule_server(APP, "--log-level", "debug", "--http2")
    mark = srv.mark()
    # A raw socket that parks before sending anything, then speaks HTTP/2: the preface is
    # recognised on the resumed connection. (httpx opens its own connection, so the check is
    # done with the preface and the server's SETTINGS frame.)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        srv.wait_for_log(PARKED, timeout=10, since=mark)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        head = s.recv(9)
        # A frame header: 3-byte length, type 4 (SETTINGS), on stream 0.
        assert len(head) == 9 and head[3] == 4 and head[5:9] == b"\x00\x00\x00\x00", head
    with httpx.Client(http1=False, http2=True, base_url=f"http://127.0.0.1:{srv.port}") as h:
        assert h.get("/hello").text == "hello world"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_a_parked_tls_connection_keeps_its_session(ferrule_server, tmp_path):
    pki = make_pki(tmp_path)
    srv = ferrule_server(APP, "--log-level", "debug", "--certfile", str(pki / "server.pem"),
                         "--keyfile", str(pki / "server.key"))  # fmt: skip
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)
    try:
        for i in range(3):
            mark = srv.mark()
            conn.request("POST", "/echo", body=b"tls %d" % i)
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"tls %d" % i)
            srv.wait_for_log(PARKED, timeout=10, since=mark)
        # One TCP connection (one TLS session) throughout: the server never closed it.
        assert srv.log_text().count("closing") == 0, srv.log_text()
    finally:
        conn.close()
