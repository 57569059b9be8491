"""Trusted forwarding (`--forwarded-allow-ips`, issue 5): `Forwarded` (RFC 7239) and
`X-Forwarded-*` from a trusted peer set REMOTE_ADDR (rightmost untrusted hop), the scheme, the
host and SCRIPT_NAME; from any other peer they are removed before the app sees them (spoofing);
conflicting scheme headers get 400. Clients connect from 127.0.0.2 to be told apart from the
trusted 127.0.0.1 (nginx, or the test itself when it plays the proxy).
"""

from __future__ import annotations

import proxy_configs as cfg
import pytest
from proxy_rig import CLIENT_ADDR, get_environ, request

pytestmark = [pytest.mark.timeout(60)]

SPOOF = {
    "Host": "www.example.test",
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "shop.example",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/shop",
    "Forwarded": "for=203.0.113.9;proto=https;host=shop.example",
}


def test_nginx_prefix_and_client_address_from_trusted_proxy(backend, nginx):
    srv = backend("--forwarded-allow-ips", "127.0.0.1")
    proxy = nginx(
        cfg.NGINX_PROXY_SITE,
        UPSTREAM=f"127.0.0.1:{srv.port}",
        BUFFERING="",
        EXTRA_LOCATIONS=cfg.NGINX_PREFIX_LOCATION,
    )
    env = get_environ(
        proxy.port, "/app/environ?x=1", headers={"Host": "www.example.test"}, source=CLIENT_ADDR
    )["environ"]
    assert env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "x=1"
    assert env["REMOTE_ADDR"] == CLIENT_ADDR
    assert env["HTTP_HOST"] == "www.example.test"
    assert env["wsgi.url_scheme"] == "http"


def test_x_forwarded_headers_from_trusted_peer(backend):
    srv = backend("--forwarded-allow-ips", "127.0.0.1")
    headers = {k: v for k, v in SPOOF.items() if k != "Forwarded"}
    env = get_environ(srv.port, "/environ", headers=headers)["environ"]
    assert env["REMOTE_ADDR"] == "203.0.113.9"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] in ("shop.example", "shop.example:8443")
    assert env["SERVER_NAME"] == "shop.example"
    assert env["SERVER_PORT"] == "8443"
    assert env["SCRIPT_NAME"] == "/shop"
    assert env["PATH_INFO"] == "/environ"


def test_forwarded_header_from_trusted_peer(backend):
    srv = backend("--forwarded-allow-ips", "127.0.0.1")
    headers = {"Host": "www.example.test", "Forwarded": SPOOF["Forwarded"]}
    env = get_environ(srv.port, "/environ", headers=headers)["environ"]
    assert env["REMOTE_ADDR"] == "203.0.113.9"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "shop.example"


def test_rightmost_untrusted_hop_is_the_client(backend):
    srv = backend("--forwarded-allow-ips", "127.0.0.1")
    headers = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9, 127.0.0.1"}
    env = get_environ(srv.port, "/environ", headers=headers)["environ"]
    assert env["REMOTE_ADDR"] == "203.0.113.9"


def test_loopback_is_trusted_by_default(backend):
    srv = backend()
    env = get_environ(srv.port, "/environ", headers={"X-Forwarded-Proto": "https"})["environ"]
    assert env["wsgi.url_scheme"] == "https"


def test_wildcard_trusts_every_peer(backend):
    srv = backend("--forwarded-allow-ips", "*")
    env = get_environ(
        srv.port, "/environ", headers={"X-Forwarded-For": "203.0.113.9"}, source=CLIENT_ADDR
    )["environ"]
    assert env["REMOTE_ADDR"] == "203.0.113.9"


def test_forwarding_headers_from_untrusted_peer_are_stripped(backend):
    srv = backend("--forwarded-allow-ips", "127.0.0.1")
    env = get_environ(srv.port, "/environ", headers=SPOOF, source=CLIENT_ADDR)["environ"]
    assert env["REMOTE_ADDR"] == CLIENT_ADDR
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "www.example.test"
    assert env["SERVER_NAME"] == "www.example.test"
    assert env["SCRIPT_NAME"] == ""
    leaked = sorted(k for k in env if k.startswith(("HTTP_X_FORWARDED", "HTTP_FORWARDED")))
    assert leaked == []


def test_untrusted_proxy_cannot_spoof_through_nginx(backend, nginx):
    """nginx is not in the allow-list: what a client puts in X-Forwarded-* never reaches the
    app, even relayed by nginx."""
    srv = backend("--forwarded-allow-ips", "10.0.0.1")
    proxy = nginx(
        cfg.NGINX_PROXY_SITE, UPSTREAM=f"127.0.0.1:{srv.port}", BUFFERING="", EXTRA_LOCATIONS=""
    )
    env = get_environ(proxy.port, "/environ", headers=SPOOF, source=CLIENT_ADDR)["environ"]
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert not [k for k in env if k.startswith(("HTTP_X_FORWARDED", "HTTP_FORWARDED"))]


def test_conflicting_scheme_headers_get_400(backend):
    srv = backend("--forwarded-allow-ips", "127.0.0.1")
    headers = {"Forwarded": "proto=http", "X-Forwarded-Proto": "https"}
    status, _, _ = request(srv.port, "GET", "/environ", headers=headers)
    assert status == 400
