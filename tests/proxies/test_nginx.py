"""ferrule behind a real nginx (issue 5): `proxy_pass` over HTTP/1.1 with a keep-alive upstream
pool, with and without request buffering; the environ the app sees, a 20 MiB upload (with
Content-Length and chunked) and a 200 x 64 KiB streamed download, hashes checked end to end.
"""

from __future__ import annotations

import proxy_configs as cfg
import pytest
from proxy_rig import check_download, check_upload, established_peers, get_environ

#: `@BUFFERING@` of the two variants: nginx spools the body first (default), or streams it.
BUFFERING = {"buffered": "", "streamed": cfg.NGINX_STREAM_UPLOADS}

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(params=sorted(BUFFERING))
def proxied(request, backend, nginx):
    srv = backend()
    proxy = nginx(
        cfg.NGINX_PROXY_SITE,
        UPSTREAM=f"127.0.0.1:{srv.port}",
        BUFFERING=BUFFERING[request.param],
        EXTRA_LOCATIONS="",
    )
    return srv, proxy


def test_environ_through_nginx(proxied):
    _, proxy = proxied
    env = get_environ(proxy.port, "/environ?x=1&y=%20z", headers={"Host": "www.example.test"})[
        "environ"
    ]
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "x=1&y=%20z"
    assert env["SCRIPT_NAME"] == ""
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"  # proxy_http_version 1.1
    assert env["HTTP_HOST"] == "www.example.test"  # proxy_set_header Host $http_host
    assert env["wsgi.url_scheme"] == "http"
    # The peer ferrule sees is nginx on loopback.
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["SERVER_NAME"] == "www.example.test"
    # `Connection: ""` keeps the upstream connection reusable; nothing hop-by-hop leaks through.
    assert "HTTP_CONNECTION" not in env


def test_upstream_keepalive_reuses_connections(proxied):
    """`keepalive 16` + `proxy_http_version 1.1`: consecutive requests travel over one upstream
    connection, which stays open between them."""
    srv, proxy = proxied
    # After each request, the connections the proxy holds open to ferrule (REMOTE_PORT
    # cannot tell: once trusted forwarding applies, the app sees the client's address).
    held = []
    for _ in range(6):
        assert get_environ(proxy.port)["environ"]["REMOTE_ADDR"] == "127.0.0.1"
        held.append(established_peers(srv.port))
    assert all(held), held  # a connection stays open between requests
    assert len(set().union(*held)) < len(held), held  # and the next request reuses it


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_upload_through_nginx(proxied, chunked):
    check_upload(proxied[1].port, chunked=chunked)


def test_streamed_download_through_nginx(proxied):
    check_download(proxied[1].port)
