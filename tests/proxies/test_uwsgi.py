"""ferrule speaking the uwsgi protocol (`--protocol uwsgi`, issue 5) behind nginx `uwsgi_pass`
and Apache mod_proxy_uwsgi: the environ the app sees (the client's address comes from the
proxy's uwsgi variables), a 20 MiB upload and a streamed download; a peer outside
`--uwsgi-allow-from` is refused.
"""

from __future__ import annotations

import proxy_configs as cfg
import pytest
from proxy_rig import CLIENT_ADDR, check_download, check_upload, get_environ, request

pytestmark = [pytest.mark.timeout(90)]

#: A short head timeout: a server that does not understand the uwsgi packet gives up in 2 s
#: (nginx then answers 502) instead of holding each request for the default 30 s.
FAST_FAIL = ("--header-timeout", "2")
UWSGI_ARGS = ("--protocol", "uwsgi", "--uwsgi-allow-from", "127.0.0.1", *FAST_FAIL)


@pytest.fixture(params=["nginx", "apache"])
def proxied(request, backend):
    srv = backend(*UWSGI_ARGS)
    if request.param == "nginx":
        proxy = request.getfixturevalue("nginx")(
            cfg.NGINX_UWSGI_SITE, UPSTREAM=f"127.0.0.1:{srv.port}"
        )
    else:
        proxy = request.getfixturevalue("apache")(
            cfg.APACHE_UWSGI_SITE, UPSTREAM=f"127.0.0.1:{srv.port}"
        )
    return srv, proxy


def test_environ_over_uwsgi(proxied):
    _, proxy = proxied
    env = get_environ(
        proxy.port, "/environ?k=v", headers={"Host": "www.example.test"}, source=CLIENT_ADDR
    )["environ"]
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "k=v"
    assert env["SCRIPT_NAME"] == ""
    assert env["HTTP_HOST"] == "www.example.test"
    assert env["wsgi.url_scheme"] == "http"
    assert env["REMOTE_ADDR"] == CLIENT_ADDR  # from the proxy's REMOTE_ADDR variable


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_upload_over_uwsgi(proxied, chunked):
    if chunked and proxied[1].name == "apache":
        # mod_proxy_uwsgi reads the body with ap_setup_client_block(r, REQUEST_CHUNKED_ERROR):
        # Apache itself answers a chunked upload 411 before it connects to the backend
        # (uWSGI behind it gets the same). docs/deployment.md says so.
        status, _, _ = _upload_status(proxied[1].port)
        assert status == 411
        return
    check_upload(proxied[1].port, chunked=chunked)


def _upload_status(port: int):
    pieces = (b"x" * 1024 for _ in range(4))
    return request(port, "POST", "/upload", body=pieces, chunked=True)


def test_streamed_download_over_uwsgi(proxied):
    check_download(proxied[1].port)


def test_uwsgi_from_a_peer_not_allowed_is_refused(backend, nginx):
    # Control: the same set-up with nginx's address allowed answers, so the 502 below comes
    # from the allow-list and not from a server that does not speak uwsgi at all.
    allowed = backend(*UWSGI_ARGS)
    control = nginx(cfg.NGINX_UWSGI_SITE, UPSTREAM=f"127.0.0.1:{allowed.port}")
    assert request(control.port, "GET", "/id")[0] == 200
    srv = backend("--protocol", "uwsgi", "--uwsgi-allow-from", "10.0.0.0/8", *FAST_FAIL)
    proxy = nginx(cfg.NGINX_UWSGI_SITE, UPSTREAM=f"127.0.0.1:{srv.port}")
    status, _, _ = request(proxy.port, "GET", "/id")
    assert status == 502  # ferrule closed nginx's connection unanswered
