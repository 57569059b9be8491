"""ferrule behind a real Apache httpd (issue 5): mod_proxy + mod_proxy_http `ProxyPass`; the
environ the app sees, a 20 MiB upload (with Content-Length and chunked) and a 200 x 64 KiB
streamed download, hashes checked end to end.
"""

from __future__ import annotations

import proxy_configs as cfg
import pytest
from proxy_rig import check_download, check_upload, established_peers, get_environ

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def proxied(backend, apache):
    srv = backend()
    return srv, apache(cfg.APACHE_PROXY_SITE, UPSTREAM=f"127.0.0.1:{srv.port}")


def test_environ_through_apache(proxied):
    _, proxy = proxied
    env = get_environ(proxy.port, "/environ?a=b", headers={"Host": "www.example.test"})["environ"]
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "a=b"
    assert env["SCRIPT_NAME"] == ""
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_HOST"] == "www.example.test"  # ProxyPreserveHost On
    assert env["wsgi.url_scheme"] == "http"
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_apache_pools_backend_connections(proxied):
    """mod_proxy keeps the connection to ferrule open between requests (ttl=4 s)."""
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
def test_large_upload_through_apache(proxied, chunked):
    check_upload(proxied[1].port, chunked=chunked)


def test_streamed_download_through_apache(proxied):
    check_download(proxied[1].port)
