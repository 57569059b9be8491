"""`--forwarded-allow-ips` (and FORWARDED_ALLOW_IPS): forwarding headers believed from trusted
peers only, stripped from everyone else (spoofing), conflicts answered 400."""

from __future__ import annotations

import json

import pytest

from helpers import rawhttp

SPOOF = [
    ("X-Forwarded-For", "6.6.6.6"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Prefix", "/evil"),
    ("Forwarded", "for=6.6.6.6;proto=https"),
    ("X-Real-IP", "6.6.6.6"),
]


def env_of(port: int, headers: list[tuple[str, str]], target: str = "/environ") -> dict:
    resp = rawhttp.get(port, target, headers=headers)
    assert resp.status == 200, resp
    return {k: v["value"] for k, v in json.loads(resp.body).items()}


@pytest.fixture(scope="module")
def trusted():
    from helpers.server import FerruleProcess

    srv = FerruleProcess("basic_app").start()  # default: 127.0.0.1,::1 trusted
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def untrusted():
    from helpers.server import FerruleProcess

    srv = FerruleProcess("basic_app", "--forwarded-allow-ips", "10.0.0.0/8").start()
    yield srv
    srv.stop()


def test_untrusted_peer_headers_are_stripped(untrusted):
    env = env_of(untrusted.port, [("Host", "x:81"), *SPOOF])
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert "HTTPS" not in env
    assert (env["HTTP_HOST"], env["SERVER_NAME"], env["SERVER_PORT"]) == ("x:81", "x", "81")
    assert env["SCRIPT_NAME"] == ""
    for key in ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                "HTTP_X_FORWARDED_PREFIX", "HTTP_FORWARDED", "HTTP_X_REAL_IP"):  # fmt: skip
        assert key not in env


def test_env_variable_sets_the_default(ferrule_server):
    srv = ferrule_server("basic_app", env={"FORWARDED_ALLOW_IPS": "10.1.0.0/16"})
    env = env_of(srv.port, [("Host", "x"), ("X-Forwarded-For", "6.6.6.6")])
    assert env["REMOTE_ADDR"] == "127.0.0.1" and "HTTP_X_FORWARDED_FOR" not in env
    # The flag wins over the variable.
    srv = ferrule_server("basic_app", "--forwarded-allow-ips", "*",
                         env={"FORWARDED_ALLOW_IPS": "10.1.0.0/16"})  # fmt: skip
    assert (
        env_of(srv.port, [("Host", "x"), ("X-Forwarded-For", "6.6.6.6")])["REMOTE_ADDR"]
        == "6.6.6.6"
    )


def test_trusted_x_forwarded_headers(trusted):
    env = env_of(
        trusted.port,
        [
            ("Host", "backend:8000"),
            ("X-Forwarded-For", "203.0.113.9, 127.0.0.1"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "www.example.com"),
            ("X-Forwarded-Prefix", "/app/"),
        ],
        target="/environ?q=1",
    )
    assert env["REMOTE_ADDR"] == "203.0.113.9"
    assert env["REMOTE_PORT"].isdigit()  # no client port given: the connection's (ProxyFix)
    assert env["wsgi.url_scheme"] == "https" and env["HTTPS"] == "on"
    assert env["HTTP_HOST"] == "www.example.com"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("www.example.com", "443")
    # The proxy removed /app before passing the request on: PATH_INFO is what arrived.
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/environ")
    # The headers themselves stay visible to the app from a trusted proxy.
    assert env["HTTP_X_FORWARDED_PROTO"] == "https"


def test_trusted_rfc7239_forwarded(trusted):
    env = env_of(
        trusted.port,
        [
            ("Host", "b"),
            ("Forwarded", 'for="[2001:db8::7]:4711";proto=https;host="site.example:8443"'),
        ],
    )
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("2001:db8::7", "4711")
    assert env["wsgi.url_scheme"] == "https"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("site.example", "8443")


def test_rightmost_untrusted_hop_is_the_client(trusted):
    env = env_of(trusted.port, [("Host", "x"), ("X-Forwarded-For", "6.6.6.6, 198.51.100.1, ::1")])
    assert env["REMOTE_ADDR"] == "198.51.100.1"


def test_http10_without_host_gets_the_forwarded_host(trusted):
    with rawhttp.Client(trusted.port) as c:
        c.send(b"GET /environ HTTP/1.0\r\nX-Forwarded-Host: app.example\r\n\r\n")
        resp = c.read_response()
    env = {k: v["value"] for k, v in json.loads(resp.body).items()}
    assert env["HTTP_HOST"] == "app.example" and env["SERVER_NAME"] == "app.example"


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Forwarded-Proto", "https"), ("Forwarded", "proto=http")],
        [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off")],
        [("X-Forwarded-For", "1.1.1.1"), ("Forwarded", "for=2.2.2.2")],
        [("X-Forwarded-Proto", "gopher")],
        [("Forwarded", "for=1.1.1.1;for=2.2.2.2")],
        [("X-Forwarded-Prefix", "/a/../b")],
    ],
)
def test_conflicting_or_invalid_headers_are_400(trusted, headers):
    resp = rawhttp.get(trusted.port, "/environ", headers=[("Host", "x"), *headers])
    assert resp.status == 400
