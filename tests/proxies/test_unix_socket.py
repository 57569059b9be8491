"""nginx in front of ferrule over a Unix socket (`--bind unix:PATH`, issue 5): the environ the
app sees, a 20 MiB upload and a streamed download. ferrule also binds a loopback TCP port,
only so the test learns it is ready; nginx knows nothing but the socket path.

Error-log lines name a Unix socket client `unix socket`, never the `0.0.0.0:0` placeholder its
connection carries (HTTP/1 and HTTP/2), while a TCP client is still `127.0.0.1:PORT`.
"""

from __future__ import annotations

import shutil
import socket
import struct
import tempfile
from pathlib import Path

import proxy_configs as cfg
import pytest
from proxy_rig import check_download, check_upload, get_environ

pytestmark = [pytest.mark.timeout(90)]


@pytest.fixture
def socket_path():
    # A short directory: a socket path must fit sockaddr_un (108 bytes), which pytest's
    # tmp_path does not promise.
    d = tempfile.mkdtemp(prefix="ferrule-sock-", dir="/tmp")
    yield str(Path(d, "app.sock"))
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def proxied(backend, nginx, socket_path):
    srv = backend("--bind", f"unix:{socket_path}", instance="unix")
    proxy = nginx(
        cfg.NGINX_PROXY_SITE, UPSTREAM=f"unix:{socket_path}", BUFFERING="", EXTRA_LOCATIONS=""
    )
    return srv, proxy


def test_environ_over_unix_socket(proxied):
    _, proxy = proxied
    doc = get_environ(proxy.port, "/environ?u=1", headers={"Host": "www.example.test"})
    assert doc["instance"] == "unix"
    env = doc["environ"]
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "u=1"
    assert env["HTTP_HOST"] == "www.example.test"
    assert env["wsgi.url_scheme"] == "http"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_upload_over_unix_socket(proxied, chunked):
    check_upload(proxied[1].port, chunked=chunked)


def test_streamed_download_over_unix_socket(proxied):
    check_download(proxied[1].port)


def _unix_client(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    """One HTTP/2 frame (RFC 9113 §4.1): 24-bit length, type, flags, stream id."""
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def test_error_log_names_a_unix_socket_client(backend, socket_path):
    srv = backend("--bind", f"unix:{socket_path}", "--log-level", "debug")

    # HTTP/1, refused before the app: a request line without a target.
    mark = srv.mark()
    with _unix_client(socket_path) as c:
        c.sendall(b"GARBAGE\r\n\r\n")
        assert _read_until_closed(c).startswith(b"HTTP/1.1 400 ")
    srv.wait_for_log(r"\[DEBUG\] unix socket: refused \(400\): malformed request", since=mark)

    # HTTP/1, the client goes away with 97 of 100 body bytes unsent.
    mark = srv.mark()
    with _unix_client(socket_path) as c:
        c.sendall(b"POST /environ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    srv.wait_for_log(
        r"\[DEBUG\] unix socket: closing: the client went away during the request body",
        since=mark,
    )

    # TCP still names the address and port.
    mark = srv.mark()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
        c.sendall(b"GARBAGE\r\n\r\n")
        assert _read_until_closed(c).startswith(b"HTTP/1.1 400 ")
    srv.wait_for_log(r"\[DEBUG\] 127\.0\.0\.1:\d+: refused \(400\): malformed request", since=mark)

    log = srv.log_text()
    assert "0.0.0.0:0" not in log, log


def test_http2_error_log_names_a_unix_socket_client(backend, socket_path):
    srv = backend(
        "--bind", f"unix:{socket_path}", "--log-level", "debug", "--http2",
        "--limit-request-body", "10",
    )  # fmt: skip
    mark = srv.mark()
    # h2c by prior knowledge: the preface, an empty SETTINGS, then one HEADERS block (HPACK:
    # GET, http, /, :authority x, content-length 100) over --limit-request-body: the stream is
    # refused (413) before the app runs.
    block = b"\x82\x86\x84" + b"\x41\x01x" + b"\x5c\x03100"
    with _unix_client(socket_path) as c:
        c.sendall(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            + _h2_frame(0x4, 0, 0, b"")
            + _h2_frame(0x1, 0x4, 1, block)
        )
        srv.wait_for_log(
            r"\[DEBUG\] unix socket: refused \(413\): content-length 100 over limit_request_body",
            since=mark,
        )
    log = srv.log_text()
    assert "0.0.0.0:0" not in log, log
