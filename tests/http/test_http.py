"""HTTP/1.x behaviour over real sockets (RFC 9112): keep-alive, pipelining, HEAD, 100-continue,
chunked both ways, HTTP/1.0 with and without keep-alive, Connection: close, half-close, a client
that disconnects mid-response, Date/Server headers, and the app's header-name case."""

from __future__ import annotations

import email.utils
import time

import pytest

from helpers.rawhttp import ConnectionClosed, build_request, chunked

APP = "basic_app:application"


@pytest.fixture
def srv(shared_server, threads):
    return shared_server(APP, "--threads", str(threads))


def test_keep_alive_several_requests_one_socket(srv):
    with srv.client() as c:
        for i in range(5):
            c.send(build_request("POST", "/echo", body=b"req %d" % i))
            resp = c.read_response()
            assert (resp.status, resp.body) == (200, b"req %d" % i)
            assert (resp.get("Connection") or "").lower() != "close"


def test_requests_in_both_connection_modes(srv, conn_mode):
    headers = [("Connection", "close")] if conn_mode == "close" else []
    with srv.client() as c:
        c.send(build_request("GET", "/hello", headers))
        resp = c.read_response()
        assert (resp.status, resp.body) == (200, b"hello world")
        if conn_mode == "close":
            assert resp.get("Connection") == "close"
            c.expect_closed()
        else:
            c.send(build_request("GET", "/hello", headers))
            assert c.read_response().body == b"hello world"


def test_pipelining_three_requests_one_packet(srv):
    data = (
        build_request("GET", "/slow?ms=150")
        + build_request("POST", "/echo", body=b"middle")
        + build_request("GET", "/hello")
    )
    with srv.client() as c:
        c.send(data)
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
    assert [(r.status, r.body) for r in (r1, r2, r3)] == [
        (200, b"slept"),
        (200, b"middle"),
        (200, b"hello world"),
    ]


def test_pipelining_with_chunked_bodies_byte_by_byte(srv):
    data = b"".join(
        build_request("POST", "/echo", [("Transfer-Encoding", "chunked")])
        + chunked(b"body%d" % i, [2])
        for i in range(3)
    )
    with srv.client() as c:
        c.send(data, "bytes")
        assert [c.read_response().body for _ in range(3)] == [b"body0", b"body1", b"body2"]


def test_head_keeps_headers_sends_no_body(srv):
    with srv.client() as c:
        c.send(build_request("HEAD", "/hello"))
        resp = c.read_response("HEAD")
        assert resp.status == 200
        assert resp.get("Content-Length") == "11"
        assert resp.get("Content-Type") == "text/plain"
        # If any body bytes had been sent, this response would not parse.
        c.send(build_request("GET", "/hello"))
        assert c.read_response().body == b"hello world"


def test_head_on_streaming_response_sends_no_body(srv):
    with srv.client() as c:
        c.send(build_request("HEAD", "/stream?n=5&size=10"))
        resp = c.read_response("HEAD")
        assert resp.status == 200
        c.send(build_request("GET", "/hello"))
        assert c.read_response().body == b"hello world"


def test_expect_100_continue(srv):
    body = b"x" * 5000
    with srv.client() as c:
        c.send(
            b"POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n"
        )
        interim = c.read_response(skip_interim=False)
        assert (interim.status, interim.reason) == (100, "Continue")
        c.send(body)
        resp = c.read_response()
    assert (resp.status, resp.body) == (200, body)


def test_expect_100_continue_not_sent_when_app_ignores_body(srv):
    """The 100 is only owed when the body is wanted; either way the final answer arrives and the
    connection stays usable if the client then sends the body."""
    with srv.client() as c:
        c.send(
            b"POST /hello HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
        )
        first = c.read_response(skip_interim=False)
        if first.status == 100:
            c.send(b"abc")
            first = c.read_response()
        assert (first.status, first.body) == (200, b"hello world")


def test_chunked_request_with_extensions_and_trailers(srv):
    body = bytes(range(256)) * 40
    data = build_request("POST", "/echo", [("Transfer-Encoding", "chunked")])
    data += b"7;ext=1\r\n" + body[:7] + b"\r\n" + chunked(body[7:], [1000, 1, 300], b"X-T: 1\r\n")
    with srv.client() as c:
        c.send(data, "fragments", seed="chunked")
        resp = c.read_response()
    assert (resp.status, resp.body) == (200, body)


def test_chunked_response_on_http11(srv):
    with srv.client() as c:
        c.send(build_request("GET", "/stream?n=50&size=1000"))
        resp = c.read_response()
    assert resp.framing == "chunked"
    assert resp.get("Content-Length") is None
    assert resp.body == b"x" * 50_000


def test_http10_close_delimited_body(srv):
    with srv.client() as c:
        c.send(b"GET /stream?n=20&size=100 HTTP/1.0\r\n\r\n")
        resp = c.read_response()
        assert resp.framing == "close"
        assert resp.get("Transfer-Encoding") is None
        assert resp.body == b"x" * 2000


def test_http10_without_keep_alive_closes(srv):
    with srv.client() as c:
        c.send(b"GET /hello HTTP/1.0\r\n\r\n")
        resp = c.read_response()
        assert resp.body == b"hello world"
        c.expect_closed()


def test_http10_keep_alive(srv):
    with srv.client() as c:
        for _ in range(3):
            c.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            resp = c.read_response()
            assert resp.body == b"hello world"
            assert (resp.get("Connection") or "").lower() == "keep-alive"


def test_http10_keep_alive_without_length_closes(srv):
    with srv.client() as c:
        c.send(b"GET /stream?n=3&size=5 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        resp = c.read_response()
        assert (resp.framing, resp.body) == ("close", b"x" * 15)


def test_half_close_still_answered(srv):
    with srv.client() as c:
        c.send(build_request("POST", "/echo", body=b"half"))
        c.shutdown_write()
        resp = c.read_response()
        assert (resp.status, resp.body) == (200, b"half")


def test_client_disconnect_mid_response_server_stays_healthy(srv):
    for _ in range(3):
        c = srv.client()
        c.send(build_request("GET", "/stream?n=20000&size=65536"))
        assert c.sock.recv(1000)
        c.close()
    for _ in range(8):  # more than the thread count: no thread may be stuck on the dead clients
        resp = srv.get("/hello")
        assert (resp.status, resp.body) == (200, b"hello world")


def test_date_and_server_headers(srv):
    resp = srv.get("/hello")
    date = resp.get("Date")
    assert date is not None
    # IMF-fixdate, RFC 9110 §5.6.7: "Sun, 06 Nov 1994 08:49:37 GMT"
    assert date.endswith(" GMT") and len(date) == 29, date
    parsed = email.utils.parsedate_to_datetime(date)
    assert abs(parsed.timestamp() - time.time()) < 60
    assert resp.get("Server") == "ferrule"


def test_server_header_configurable(ferrule_server):
    srv = ferrule_server(APP, "--server-header", "")
    assert srv.get("/hello").get("Server") is None
    srv2 = ferrule_server(APP, "--server-header", "edge/1")
    assert srv2.get("/hello").get("Server") == "edge/1"


def test_app_header_name_case_preserved(srv):
    resp = srv.get("/case")
    assert ("X-CuStOm", "yes") in resp.headers
    assert b"\r\nX-CuStOm: yes\r\n" in resp.raw_head


def test_status_reason_passed_through(srv):
    resp = srv.get("/status?code=418")
    assert (resp.status, resp.reason) == (418, "Test")


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(srv, code):
    with srv.client() as c:
        c.send(build_request("GET", f"/status?code={code}"))
        resp = c.read_response()
        assert resp.status == code
        assert resp.get("Transfer-Encoding") is None
        c.send(build_request("GET", "/hello"))
        assert c.read_response().body == b"hello world"


def test_keep_alive_idle_timeout_closes(ferrule_server):
    srv = ferrule_server(APP, "--keep-alive", "1")
    with srv.client(timeout=10) as c:
        c.send(build_request("GET", "/hello"))
        assert c.read_response().body == b"hello world"
        c.expect_closed(within=8)


def test_access_log(ferrule_server):
    srv = ferrule_server(APP, "--access-logfile", "-")
    srv.get("/hello?access-log-marker")
    srv.get("/status?code=404")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(srv.access_lines) < 2:
        srv.out.wait_for(r".", 1, since=len(srv.access_lines))
    text = "\n".join(srv.access_lines)
    assert "/hello?access-log-marker" in text and " 200 " in text
    assert " 404 " in text


def test_connection_closed_mid_request_head_does_not_hurt(srv):
    c = srv.client()
    c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Partial: ")
    c.close()
    assert srv.get("/hello").body == b"hello world"


def test_pipelined_request_after_connection_close_not_answered(srv):
    with srv.client() as c:
        c.send(
            build_request("GET", "/hello", [("Connection", "close")])
            + build_request("GET", "/hello")
        )
        assert c.read_response().body == b"hello world"
        c.expect_closed()


def test_app_404_keeps_connection(srv):
    with srv.client() as c:
        c.send(build_request("GET", "/nothing-here"))
        assert c.read_response().status == 404
        c.send(build_request("GET", "/hello"))
        assert c.read_response().status == 200


def test_empty_connection_closed_without_response(srv):
    with pytest.raises(ConnectionClosed, match="before a response"), srv.client() as c:
        c.send(b"")
        c.shutdown_write()
        c.read_response()


def _concurrent_slow(srv, n: int, ms: int) -> float:
    clients = [srv.client() for _ in range(n)]
    try:
        started = time.monotonic()
        for c in clients:
            c.send(build_request("GET", f"/slow?ms={ms}"))
        for c in clients:
            assert c.read_response().body == b"slept"
        return time.monotonic() - started
    finally:
        for c in clients:
            c.close()


def test_threads_run_requests_in_parallel(shared_server):
    srv = shared_server(APP, "--threads", "4")
    # Four 500 ms requests on four threads overlap: well under the 2 s they take one by one.
    assert _concurrent_slow(srv, 4, 500) < 1.5


def test_one_thread_runs_requests_one_at_a_time(shared_server):
    srv = shared_server(APP, "--threads", "1")
    assert _concurrent_slow(srv, 3, 300) >= 0.85


def test_close_lingers_so_unread_pipelined_bytes_do_not_reset_the_response(srv):
    """RFC 9112 §9.6: a server closing after `Connection: close` while the client is still
    sending must half-close and drain first; closing with unread bytes makes the kernel send a
    reset that can destroy the response before the client reads it."""
    import socket

    tail = build_request("POST", "/echo", body=b"x" * (200 * 1024))  # never answered
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(build_request("GET", "/hello", [("Connection", "close")]))
        s.sendall(tail)
        time.sleep(0.3)  # the server has answered and closed by now; we have not read yet
        received = b""
        while chunk := s.recv(65536):  # ConnectionResetError here is the failure
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.endswith(b"hello world")
    assert received.count(b"HTTP/1.1 ") == 1


def test_close_is_at_once_when_the_client_sent_nothing_more(srv):
    """A client that said `Connection: close` and sent nothing after its request (RFC 9112
    §9.6: it "MUST NOT send further requests") is closed at once rather than lingered on for
    up to 2 s: bytes it sends after the response meet a closed socket, which answers with a
    reset, well before a lingering close would have ended."""
    import socket

    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(build_request("GET", "/hello", [("Connection", "close")]))
        received = b""
        while chunk := s.recv(65536):
            received += chunk
        assert received.endswith(b"hello world")
        deadline = time.monotonic() + 1.0
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            while time.monotonic() < deadline:
                s.sendall(b"x")
                time.sleep(0.05)


def test_a_close_the_client_did_not_ask_for_lingers(srv):
    """A close the server decides on (here: an HTTP/1.0 keep-alive client gets a body with no
    length, which only the close can end) may cross the client's next request, so it lingers:
    what the client sends after the response is drained, never answered with a reset."""
    import socket

    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        received = b""
        while chunk := s.recv(65536):
            received += chunk
        assert received.startswith(b"HTTP/1.1 200 ")
        assert b"content-length" not in received.lower()
        for _ in range(10):  # 0.5 s, within the 2 s the close lingers
            s.sendall(build_request("GET", "/hello"))
            time.sleep(0.05)
