"""HTTP/2 end to end: `ferrule --http2` serving h2c with prior knowledge to httpx (with the `h2`
package), next to HTTP/1 on the same port; the environ the app sees, request bodies (buffered
and streamed), streamed responses; and, when nghttp2's `h2load` is installed, a bounded load
run over h2c."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("h2")

APP = "basic_app:application"


def h2_client(srv, **kw) -> httpx.Client:
    # http1=False + http2=True: prior knowledge (no Upgrade dance) over plain TCP.
    return httpx.Client(base_url=srv.url, http1=False, http2=True, timeout=10, **kw)


def test_environ_says_http2(ferrule_server):
    srv = ferrule_server(APP, "--http2")
    with h2_client(srv) as c:
        r = c.get("/environ?a=1", headers={"X-Thing": "v", "Cookie": "a=1"})
    assert r.http_version == "HTTP/2"
    assert r.status_code == 200
    env = {k: v["value"] for k, v in r.json().items()}
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "a=1"
    assert env["HTTP_HOST"] == f"127.0.0.1:{srv.port}"
    assert env["SERVER_PORT"] == str(srv.port)
    assert env["HTTP_X_THING"] == "v"
    assert env["HTTP_COOKIE"] == "a=1"
    assert env["wsgi.url_scheme"] == "http"


def test_http1_still_served_with_http2_on(ferrule_server):
    srv = ferrule_server(APP, "--http2")
    r = srv.get("/environ")
    assert r.status == 200
    assert b'"HTTP/1.1"' in r.body


def test_without_http2_the_preface_is_refused(ferrule_server):
    srv = ferrule_server(APP)
    with h2_client(srv) as c, pytest.raises(httpx.HTTPError):
        c.get("/hello")


@pytest.mark.parametrize("size", [0, 10, 200_000, 3_000_000])
def test_body_echo(ferrule_server, size):
    # 3 MB is past the default max_buffered_body (1 MiB): the app reads it as it streams in.
    srv = ferrule_server(APP, "--http2")
    body = bytes(i % 251 for i in range(size))
    with h2_client(srv) as c:
        r = c.post("/echo", content=body)
        assert r.status_code == 200
        assert r.content == body
        # Without a declared length (a generator body is sent without content-length).
        r = c.post("/echo", content=iter([body[: size // 2], body[size // 2 :]]))
        assert r.status_code == 200
        assert r.content == body


def test_streamed_response(ferrule_server):
    srv = ferrule_server(APP, "--http2")
    with h2_client(srv) as c, c.stream("GET", "/stream?n=200&size=10000") as r:
        assert r.status_code == 200
        assert "content-length" not in r.headers
        total = sum(len(chunk) for chunk in r.iter_bytes())
    assert total == 2_000_000


def test_head_and_limits(ferrule_server):
    srv = ferrule_server(APP, "--http2", "--limit-request-body", "1000")
    with h2_client(srv) as c:
        r = c.head("/hello")
        assert r.status_code == 200
        assert r.content == b""
        assert r.headers["content-length"] == "11"
        r = c.post("/echo", content=b"x" * 5000)
        assert r.status_code == 413
        # The connection serves on after a refused stream.
        assert c.get("/hello").content == b"hello world"


def test_many_concurrent_streams_on_one_connection(ferrule_server):
    # httpx's sync client is not safe for HTTP/2 from several threads: one event loop instead.
    import asyncio

    srv = ferrule_server(APP, "--http2", "--threads", "4")

    async def main() -> list[int]:
        async with httpx.AsyncClient(base_url=srv.url, http1=False, http2=True, timeout=10) as c:
            rs = await asyncio.gather(*(c.get(f"/slow?ms=100&i={i}") for i in range(40)))
            return [r.status_code for r in rs if r.http_version == "HTTP/2"]

    assert asyncio.run(main()) == [200] * 40


@pytest.mark.skipif(
    shutil.which("h2load") is None and os.environ.get("CI") != "true",
    reason="h2load (nghttp2-client) not installed (CI installs it and never skips)",
)
def test_h2load_h2c(ferrule_server):
    srv = ferrule_server(APP, "--http2", "--threads", "4")
    out = subprocess.run(
        ["h2load", "-n", "2000", "-c", "4", "-m", "10", f"{srv.url}/hello"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2000 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout
