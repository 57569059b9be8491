"""HTTP/2 over TLS, chosen by ALPN (`--http2` with `--certfile`): `curl --http2`, Python `ssl`
clients offering `h2` or `http/1.1` only, mutual TLS over HTTP/2 and a bounded `h2load` run;
then HTTP/2 parity with HTTP/1 (h2c and TLS): compression, `X-Request-ID`, static files, the
access log, the metrics and the write-stall timeout."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from helpers.pki import make_pki

httpx = pytest.importorskip("httpx")
pytest.importorskip("h2")
import h2.config
import h2.connection
import h2.events
import h2.settings

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

APP = "basic_app:application"
METRICS_RE = re.compile(r"Metrics at: http://127\.0\.0\.1:(\d+)/metrics")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_args(pki: Path) -> list[str]:
    return ["--certfile", str(pki / "server.pem"), "--keyfile", str(pki / "server.key")]


def _context(pki: Path, alpn: list[str], client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.set_alpn_protocols(alpn)
    if client_cert:
        ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    return ctx


def _env(r) -> dict:
    return {k: v["value"] for k, v in r.json().items()}


def _h2_get(sock, path: str, authority: str, window: int | None = None):
    """One GET over an HTTP/2 connection on `sock` with the `h2` package; returns the
    connection and the stream's (headers, body). With `window`, the client's stream window is
    set to it and never reopened (the caller then reads nothing more)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    if window is not None:
        conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
        )
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(
        sid,
        [(":method", "GET"), (":path", path), (":scheme", "https"), (":authority", authority)],
        end_stream=True,
    )
    sock.sendall(conn.data_to_send())
    headers, body = None, b""
    while window is None or headers is None:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                headers = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
                if window is None:
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                return conn, (headers, body)
        sock.sendall(conn.data_to_send())
    return conn, (headers, body)


# -- ALPN ----------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_http2_negotiates_h2(ferrule_server, pki):
    srv = ferrule_server(APP, "--http2", *_tls_args(pki))
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", str(pki / "ca.pem"), "-w", "\n%{http_version}",
         f"https://127.0.0.1:{srv.port}/environ"],
        capture_output=True, timeout=30, check=True, text=True,
    )  # fmt: skip
    body, version = out.stdout.rsplit("\n", 1)
    assert version == "2"
    env = {k: v["value"] for k, v in json.loads(body).items()}
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTPS"] == "on"
    assert env["HTTP_HOST"] == f"127.0.0.1:{srv.port}"
    assert env["SSL_CLIENT_VERIFY"] == "NONE"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_without_http2_tls_offers_http11_only(ferrule_server, pki):
    srv = ferrule_server(APP, *_tls_args(pki))
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", str(pki / "ca.pem"), "-w", "\n%{http_version}",
         f"https://127.0.0.1:{srv.port}/hello"],
        capture_output=True, timeout=30, check=True, text=True,
    )  # fmt: skip
    assert out.stdout == "hello world\n1.1"


def test_python_ssl_client_offering_h2(ferrule_server, pki):
    srv = ferrule_server(APP, "--http2", *_tls_args(pki))
    ctx = _context(pki, ["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        assert s.selected_alpn_protocol() == "h2"
        _, (headers, body) = _h2_get(s, "/environ", f"127.0.0.1:{srv.port}")
    assert headers[b":status"] == b"200"
    env = {k: v["value"] for k, v in json.loads(body).items()}
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["wsgi.url_scheme"] == "https"


def test_python_ssl_client_offering_http11_only(ferrule_server, pki):
    srv = ferrule_server(APP, "--http2", *_tls_args(pki))
    ctx = _context(pki, ["http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        assert s.selected_alpn_protocol() == "http/1.1"
        s.sendall(b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    env = {k: v["value"] for k, v in json.loads(body).items()}
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_h2_only_client_refused_without_http2(ferrule_server, pki):
    # RFC 7301 §3.2: no protocol in common → a fatal no_application_protocol alert.
    srv = ferrule_server(APP, *_tls_args(pki))
    ctx = _context(pki, ["h2"])
    with (
        socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw,
        pytest.raises(ssl.SSLError, match="no application protocol"),
    ):
        ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    # The server serves on.
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=_context(pki, []), timeout=10)
    conn.request("GET", "/hello")
    assert conn.getresponse().read() == b"hello world"
    conn.close()


@pytest.mark.parametrize("reqs", ["1", "2"])
def test_mtls_over_h2(ferrule_server, pki, reqs):
    srv = ferrule_server(APP, "--http2", *_tls_args(pki), "--ca-certs", str(pki / "ca.pem"),
                         "--cert-reqs", reqs)  # fmt: skip
    ctx = _context(pki, ["h2", "http/1.1"], client_cert=True)
    url = f"https://127.0.0.1:{srv.port}"
    with httpx.Client(base_url=url, http1=False, http2=True, verify=ctx, timeout=10) as c:
        r = c.get("/environ")
    assert r.http_version == "HTTP/2"
    env = _env(r)
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert env["SSL_CLIENT_S_DN"] == r"CN=client one,O=Acme\, Inc.,C=FR"


def test_tls_h2_bodies_and_concurrent_streams(ferrule_server, pki):
    import asyncio

    srv = ferrule_server(APP, "--http2", "--threads", "4", *_tls_args(pki))
    ctx = _context(pki, ["h2", "http/1.1"])
    body = bytes(i % 251 for i in range(3_000_000))

    async def main() -> None:
        url = f"https://127.0.0.1:{srv.port}"
        async with httpx.AsyncClient(base_url=url, http2=True, verify=ctx, timeout=20) as c:
            r = await c.post("/echo", content=body)
            assert (r.http_version, r.content == body) == ("HTTP/2", True)
            rs = await asyncio.gather(*(c.get(f"/slow?ms=50&i={i}") for i in range(30)))
            assert [r.status_code for r in rs] == [200] * 30
            r = await c.get("/stream?n=100&size=10000")
            assert len(r.content) == 1_000_000

    asyncio.run(main())


@pytest.mark.skipif(
    shutil.which("h2load") is None and os.environ.get("CI") != "true",
    reason="h2load (nghttp2-client) not installed (CI installs it and never skips)",
)
def test_h2load_over_tls(ferrule_server, pki):
    srv = ferrule_server(APP, "--http2", "--threads", "4", *_tls_args(pki))
    out = subprocess.run(
        ["h2load", "-n", "2000", "-c", "10", "-m", "10", f"https://127.0.0.1:{srv.port}/hello"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Application protocol: h2" in out.stdout, out.stdout
    assert "2000 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout


# -- parity with HTTP/1 (h2c and TLS) ------------------------------------------------------------


@pytest.fixture(params=["h2c", "tls"])
def h2_server(request, ferrule_server, pki):
    """Starts ferrule with `--http2` (plus TLS for "tls") and the given options; returns the
    server and an HTTP/2-only httpx client factory for it."""
    tls = request.param == "tls"

    def start(*args: str, **kw):
        srv = ferrule_server(APP, "--http2", *(_tls_args(pki) if tls else []), *args, **kw)
        scheme = "https" if tls else "http"
        verify = _context(pki, ["h2"]) if tls else True

        def client(**ckw) -> httpx.Client:
            return httpx.Client(base_url=f"{scheme}://127.0.0.1:{srv.port}", http1=False,
                                http2=True, verify=verify, timeout=10, **ckw)  # fmt: skip

        return srv, client

    return start


def test_compression_and_request_id_over_h2(h2_server):
    _srv, client = h2_server("--compress", "--request-id")
    text = b"compress me, " * 1000
    with client() as c:
        r = c.post("/echo", content=text, headers={"Accept-Encoding": "gzip"})
        assert r.http_version == "HTTP/2"
        assert r.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in r.headers["vary"].lower()
        assert r.content == text  # httpx decodes gzip
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
        # A valid incoming id is kept and reaches the app.
        r = c.get("/environ", headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
        assert _env(r)["HTTP_X_REQUEST_ID"] == "abc-123"


def test_static_files_over_h2(h2_server, tmp_path):
    (tmp_path / "a.txt").write_bytes(b"static text\n")
    _srv, client = h2_server("--static", f"/s={tmp_path}")
    with client() as c:
        r = c.get("/s/a.txt")
        assert (r.http_version, r.status_code, r.content) == ("HTTP/2", 200, b"static text\n")
        assert r.headers["content-type"].startswith("text/plain")
        r2 = c.get("/s/a.txt", headers={"If-None-Match": r.headers["etag"]})
        assert r2.status_code == 304
        assert c.get("/s/missing.txt").status_code == 404
        # Outside the mount: the app.
        assert c.get("/hello").content == b"hello world"


def test_access_log_line_for_h2(h2_server):
    srv, client = h2_server("--access-logfile", "-")
    with client() as c:
        assert c.get("/hello?x=1").status_code == 200
    deadline = time.monotonic() + 10
    while not any("/hello?x=1" in ln for ln in srv.access_lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    [line] = [ln for ln in srv.access_lines if "/hello?x=1" in ln]
    assert '"GET /hello?x=1 HTTP/2" 200 11' in line, line


def test_metrics_count_h2_requests(h2_server):
    srv, client = h2_server("--metrics-bind", "127.0.0.1:0", "--limit-request-body", "100")
    m = srv.err.wait_for(METRICS_RE, 10)
    assert m, srv.log_text()
    with client() as c:
        for _ in range(7):
            assert c.get("/hello").status_code == 200
        assert c.post("/echo", content=b"x").status_code == 200
        # Refused before the app: a refusal, not a request.
        assert c.post("/echo", content=b"x" * 1000).status_code == 413
    with httpx.Client(timeout=10) as plain:
        text = plain.get(f"http://127.0.0.1:{m.group(1)}/metrics").text
    counts = {
        frozenset(re.findall(r'(\w+)="([^"]*)"', labels)): float(value)
        for labels, value in re.findall(
            r"^ferrule_requests_total\{(.*?)\} (\S+)$", text, re.MULTILINE
        )
    }
    assert counts[frozenset({("method", "GET"), ("status_class", "2xx")})] == 7, text
    assert counts[frozenset({("method", "POST"), ("status_class", "2xx")})] == 1, text
    assert re.search(r"^ferrule_requests_in_flight 0$", text, re.MULTILINE), text
    assert re.search(r'^ferrule_requests_refused_total\{status="413"\} 1$', text, re.MULTILINE), (
        text
    )


def test_expect_100_continue_over_h2(h2_server):
    # No interim 100 over HTTP/2 (see docs/conformance.md): the body still arrives and the
    # request is answered.
    _srv, client = h2_server()
    with client() as c:
        r = c.post("/echo", content=b"y" * 5000, headers={"Expect": "100-continue"})
    assert (r.status_code, r.content) == (200, b"y" * 5000)


def test_write_stall_closes_the_connection(ferrule_server, pki):
    # A client that never opens its window: the response cannot go out; after --write-timeout
    # the connection is closed and the app thread is free again.
    srv = ferrule_server(APP, "--http2", "--threads", "1", "--write-timeout", "1",
                         *_tls_args(pki))  # fmt: skip
    ctx = _context(pki, ["h2"])
    started = time.monotonic()
    with (
        socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        _h2_get(s, "/stream?n=50&size=100000", f"127.0.0.1:{srv.port}", window=1000)
        while True:  # the server closes
            try:
                if not s.recv(65536):
                    break
            except (ConnectionError, ssl.SSLError):
                break
    assert time.monotonic() - started < 8
    # The only app thread was freed: the server answers.
    with httpx.Client(verify=_context(pki, ["h2"]), http1=False, http2=True, timeout=10) as c:
        assert c.get(f"https://127.0.0.1:{srv.port}/hello").content == b"hello world"
