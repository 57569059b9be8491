"""`--protocol uwsgi` with `--uwsgi-allow-from`, over raw sockets: hand-written uwsgi packets
(uWSGI docs, "The uwsgi Protocol"), the environ the app sees, request bodies below and above
`--max-buffered-body`, the close-delimited HTTP/1.1 answer, and every refusal (a peer not
allowed, a malformed packet, HTTP sent to the uwsgi port) closing the connection unanswered
without reaching the app. The real front servers are in tests/proxies/test_uwsgi.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

import pytest

from helpers.server import APPS, FerruleProcess


def packet(variables: list[tuple[bytes, bytes]], modifier1: int = 0, modifier2: int = 0) -> bytes:
    block = b"".join(
        struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v for k, v in variables
    )
    return struct.pack("<BHB", modifier1, len(block), modifier2) + block


def nginx_vars(uri: bytes = b"/environ", **extra: bytes) -> list[tuple[bytes, bytes]]:
    """What nginx's stock `uwsgi_params` send for a GET of `uri` from 203.0.113.9."""
    path, _, query = uri.partition(b"?")
    base = {
        b"QUERY_STRING": query,
        b"REQUEST_METHOD": b"GET",
        b"CONTENT_TYPE": b"",
        b"CONTENT_LENGTH": b"",
        b"REQUEST_URI": uri,
        b"PATH_INFO": path,
        b"DOCUMENT_ROOT": b"/usr/share/nginx/html",
        b"SERVER_PROTOCOL": b"HTTP/1.1",
        b"REQUEST_SCHEME": b"http",
        b"REMOTE_ADDR": b"203.0.113.9",
        b"REMOTE_PORT": b"51234",
        b"SERVER_PORT": b"80",
        b"SERVER_NAME": b"",
        b"HTTP_HOST": b"www.example.test",
    }
    base.update({k.encode(): v for k, v in extra.items()})
    return list(base.items())


def exchange(port: int, data: bytes, pieces: int = 1) -> bytes:
    """Sends `data` (in `pieces` parts) and reads until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        step = max(1, -(-len(data) // pieces))
        try:
            for i in range(0, len(data), step):
                s.sendall(data[i : i + step])
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed before it read everything: what a refusal does
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:  # closed with our bytes unread: a reset, no response
            assert out == b""
    return out


def split(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
    return status, headers, body


def environ(raw: bytes) -> dict:
    status, _, body = split(raw)
    assert status.startswith("HTTP/1.1 200"), raw[:300]
    return {k: v["value"] for k, v in json.loads(body).items()}


@pytest.fixture(scope="module")
def servers():
    uwsgi = ["--protocol", "uwsgi", "--max-buffered-body", "65536"]
    uwsgi += ["--limit-request-body", "4000000", "--access-logfile", "-"]
    refuse = ["--protocol", "uwsgi", "--uwsgi-allow-from", "10.0.0.0/8"]
    started = {
        "uwsgi": FerruleProcess("basic_app", *uwsgi),
        "refuse": FerruleProcess("basic_app", *refuse),
    }
    for srv in started.values():
        srv.start()
    yield started
    for srv in started.values():
        assert not srv.problems(), srv.problems()
        srv.stop()


@pytest.mark.parametrize("pieces", [1, 7])
def test_environ_comes_from_the_uwsgi_variables(servers, pieces):
    variables = nginx_vars(
        b"/app/environ?x=1&y=%20",
        PATH_INFO=b"/environ",
        SCRIPT_NAME=b"/app",
        HTTPS=b"on",
        REQUEST_SCHEME=b"https",
        SERVER_NAME=b"example.test",
        SERVER_PORT=b"443",
        HTTP_USER_AGENT=b"raw-test",
        HTTP_X_FORWARDED_FOR=b"198.51.100.1",
    )
    variables += [(b"HTTP_COOKIE", b"a=1"), (b"HTTP_COOKIE", b"b=2")]
    env = environ(exchange(servers["uwsgi"].port, packet(variables), pieces))
    assert env["REQUEST_METHOD"] == "GET"
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/environ")
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["REQUEST_URI"] == env["RAW_URI"] == "/app/environ?x=1&y=%20"
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("203.0.113.9", "51234")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.test", "443")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (env["wsgi.url_scheme"], env["HTTPS"]) == ("https", "on")
    assert env["HTTP_HOST"] == "www.example.test"
    assert env["HTTP_USER_AGENT"] == "raw-test"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    # The front server's own header reaches the app as sent; the server does not act on it.
    assert env["HTTP_X_FORWARDED_FOR"] == "198.51.100.1"
    assert "DOCUMENT_ROOT" not in env and "CONTENT_TYPE" not in env
    assert "CONTENT_LENGTH" not in env


def test_plain_http_scheme_and_fallbacks(servers):
    # No SERVER_NAME (nginx's `$server_name` is empty without `server_name`): the local address.
    env = environ(exchange(servers["uwsgi"].port, packet(nginx_vars())))
    assert env["wsgi.url_scheme"] == "http" and "HTTPS" not in env
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SCRIPT_NAME"] == ""


def test_answer_is_close_delimited_http(servers):
    raw = exchange(servers["uwsgi"].port, packet(nginx_vars(b"/stream?n=5&size=10")))
    status, headers, body = split(raw)
    assert status == "HTTP/1.1 200 OK"
    assert headers["connection"] == "close"
    assert "transfer-encoding" not in headers and "content-length" not in headers
    assert body == b"x" * 50
    raw = exchange(servers["uwsgi"].port, packet(nginx_vars(b"/hello")))
    status, headers, body = split(raw)
    assert (headers["content-length"], body) == ("11", b"hello world")


def test_access_log_counts_the_request(servers):
    srv = servers["uwsgi"]
    before = len(srv.access_lines)
    exchange(srv.port, packet(nginx_vars(b"/hello?from=uwsgi")))
    srv.out.wait_for(r"/hello\?from=uwsgi", 10, before)
    line = srv.access_lines[-1]
    assert line.startswith("203.0.113.9 ") and '"GET /hello?from=uwsgi HTTP/1.1" 200 11' in line


@pytest.mark.parametrize("protocol", ["HTTP/1.0", "HTTP/1.1", "HTTP/2.0"])
def test_the_request_protocol_is_the_front_servers(servers, protocol):
    # nginx passes the client's protocol in SERVER_PROTOCOL (HTTP/2.0 for an h2 client). The
    # environ (PEP 3333: "the version of the protocol the client used") and the access log
    # say it; the answer stays a close-delimited HTTP/1.1 reply whatever it is.
    srv = servers["uwsgi"]
    before = len(srv.access_lines)
    target = f"/environ?proto={protocol}".encode()
    raw = exchange(srv.port, packet(nginx_vars(target, SERVER_PROTOCOL=protocol.encode())))
    status, headers, _ = split(raw)
    assert status == "HTTP/1.1 200 OK" and headers["connection"] == "close"
    assert "transfer-encoding" not in headers
    assert environ(raw)["SERVER_PROTOCOL"] == protocol
    srv.out.wait_for(rf"proto={protocol}", 10, before)
    (line,) = [ln for ln in srv.access_lines[before:] if f"proto={protocol}" in ln]
    assert f'"GET /environ?proto={protocol} {protocol}" 200 ' in line, line


def test_uwsgi_over_a_unix_socket_logs_the_packets_client():
    # The front server's connection has no address; the packet names the client. Without
    # REMOTE_ADDR in the packet there is no client address at all: empty in the environ, null
    # in the JSON log, never the 0.0.0.0 placeholder.
    sock_dir = tempfile.mkdtemp(prefix="ferrule-uw-", dir="/tmp")  # short: sockaddr_un
    path = os.path.join(sock_dir, "uwsgi.sock")
    srv = FerruleProcess(
        "basic_app", "--protocol", "uwsgi", "--bind", f"unix:{path}",
        "--access-logfile", "-", "--access-log-json",
    )  # fmt: skip
    try:
        srv.start()
        srv.wait_for_log(rf"Listening at: unix:{path} ")

        def over_unix(data: bytes) -> bytes:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(path)
                s.sendall(data)
                out = b""
                while chunk := s.recv(65536):
                    out += chunk
            return out

        env = environ(over_unix(packet(nginx_vars(b"/environ?n=1", SERVER_PROTOCOL=b"HTTP/2.0"))))
        assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("203.0.113.9", "51234")
        anonymous = [(k, v) for k, v in nginx_vars(b"/environ?n=2") if not k.startswith(b"REMOTE_")]
        env = environ(over_unix(packet(anonymous)))
        assert env["REMOTE_ADDR"] == ""
        srv.out.wait_for(r"n=2", 10)
        records = {r["query"]: r for r in map(json.loads, srv.access_lines)}
        first, second = records["n=1"], records["n=2"]
        assert (first["remote_addr"], first["remote_port"]) == ("203.0.113.9", 51234)
        assert first["protocol"] == "HTTP/2.0"
        assert (second["remote_addr"], second["remote_port"]) == (None, None)
        assert second["protocol"] == "HTTP/1.1"
        # The error log names a Unix socket peer as such, not by the placeholder address.
        mark = srv.mark()
        assert over_unix(b"GET / HTTP/1.1\r\n\r\n") == b""
        line = srv.wait_for_log(r"invalid uwsgi packet", since=mark)
        assert "] unix socket: closing: invalid uwsgi packet" in line, line
        assert not srv.problems(), srv.problems()
    finally:
        if srv.proc is not None:
            srv.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


def post(body: bytes, length: int | None = None) -> bytes:
    """The packet of a POST to /echo announcing `length` (default: the body's) bytes."""
    return packet(
        nginx_vars(
            b"/echo",
            REQUEST_METHOD=b"POST",
            CONTENT_TYPE=b"application/octet-stream",
            CONTENT_LENGTH=str(len(body) if length is None else length).encode(),
        )
    )


@pytest.mark.parametrize(
    "size",
    [11, 65536, 1024 * 1024 + 7],  # below, at, and above --max-buffered-body (streamed)
)
def test_post_body(servers, size):
    body = os.urandom(size)
    raw = exchange(servers["uwsgi"].port, post(body) + body, pieces=5)
    status, headers, echoed = split(raw)
    assert status == "HTTP/1.1 200 OK"
    assert int(headers["content-length"]) == size
    assert echoed == body


def test_body_over_limit_request_body_is_413(servers):
    raw = exchange(servers["uwsgi"].port, post(b"x" * 10, length=4_000_001))
    assert raw.startswith(b"HTTP/1.1 413 "), raw[:200]


def test_peer_outside_uwsgi_allow_from_is_closed(servers):
    # Control: the same packet is served from an allowed peer.
    assert environ(exchange(servers["uwsgi"].port, packet(nginx_vars())))
    srv = servers["refuse"]
    mark = srv.mark()
    assert exchange(srv.port, packet(nginx_vars())) == b""
    srv.wait_for_log(r"\[WARNING\] .*not in --uwsgi-allow-from", since=mark)


def _without(key: bytes) -> bytes:
    return packet([(k, v) for k, v in nginx_vars() if k != key])


GOOD = packet(nginx_vars())


@pytest.mark.parametrize(
    "data",
    [
        bytes([30]) + GOOD[1:],  # modifier1 30 (not a WSGI request)
        GOOD[:3] + b"\x01" + GOOD[4:],  # modifier2 1
        GOOD[:1] + struct.pack("<H", len(GOOD) - 5) + GOOD[3:],  # datasize one short
        packet([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/")]),  # no SERVER_PROTOCOL
        _without(b"REQUEST_METHOD"),
        packet(nginx_vars(CONTENT_LENGTH=b"-1")),
        packet(nginx_vars(REMOTE_ADDR=b"localhost")),
        packet(nginx_vars(HTTP_X_Y=b"a\r\nb")),
        packet(nginx_vars(HTTPS=b"on", REQUEST_SCHEME=b"http")),  # disagreeing schemes
    ],
    ids=[
        "modifier1",
        "modifier2",
        "overrun",
        "no-protocol",
        "no-method",
        "content-length",
        "remote-addr",
        "header-crlf",
        "schemes",
    ],
)
def test_malformed_packet_closes_unanswered(servers, data):
    srv = servers["uwsgi"]
    mark, served = srv.mark(), len(srv.access_lines)
    assert exchange(srv.port, data) == b""
    srv.wait_for_log(r"\[WARNING\] .*invalid uwsgi packet", since=mark)
    assert len(srv.access_lines) == served  # the app never saw it


def test_http_on_a_uwsgi_port_is_refused(servers):
    srv = servers["uwsgi"]
    mark, served = srv.mark(), len(srv.access_lines)
    assert exchange(srv.port, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    line = srv.wait_for_log(r"invalid uwsgi packet", since=mark)
    assert "an HTTP request?" in line
    assert len(srv.access_lines) == served


@pytest.mark.parametrize("other", [["--http2"], ["--proxy-protocol", "v1"]])
def test_uwsgi_does_not_combine_with_http_edge_options(other):
    argv = [sys.executable, "-m", "ferrule", "--bind", "127.0.0.1:0", "--pythonpath", str(APPS)]
    argv += ["--protocol", "uwsgi", *other, "basic_app"]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30, cwd=APPS)
    assert done.returncode != 0
    assert "cannot be combined with protocol uwsgi" in done.stderr
