"""nginx in front of ferrule over a Unix socket (`--bind unix:PATH`, issue 5): the environ the
app sees, a 20 MiB upload and a streamed download. ferrule also binds a loopback TCP port,
only so the test learns it is ready; nginx knows nothing but the socket path.
"""

from __future__ import annotations

import shutil
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
