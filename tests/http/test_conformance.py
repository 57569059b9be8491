"""Rules from docs/conformance.md that had no end-to-end test elsewhere: request timeouts (408),
the response version, the final-status range an application may answer with, and repeated Cookie
fields. Over real sockets against real `ferrule` processes."""

from __future__ import annotations

import time

import pytest

from helpers.rawhttp import build_request

APP = "basic_app:application"


def test_header_timeout_answers_408_and_closes(ferrule_server):
    # RFC 9110 §15.5.9: 408 "indicates that the server did not receive a complete request
    # message within the time that it was prepared to wait".
    srv = ferrule_server(APP, "--header-timeout", "1")
    with srv.client() as c:
        started = time.monotonic()
        c.send(b"GET /hello HTTP/1.1\r\nHost: h\r\nX-Slow: ")
        resp = c.read_response()
        assert resp.status == 408, resp
        assert resp.get("Connection") == "close"
        c.expect_closed()
    assert 0.8 < time.monotonic() - started < 5


def test_body_timeout_answers_408_before_the_app_runs(ferrule_server):
    srv = ferrule_server(APP, "--body-timeout", "1")
    before = int(srv.get("/count").body)
    with srv.client() as c:
        c.send(build_request("POST", "/echo", [("Content-Length", "10")]) + b"abc")
        resp = c.read_response()
        assert resp.status == 408, resp
        c.expect_closed()
    # /count answers how many requests came before it: only the two /count calls ran the app.
    assert int(srv.get("/count").body) == before + 1


def test_http10_request_gets_an_http11_status_line(shared_server):
    # RFC 9110 §6.2: a server sends the highest minor version it conforms to, with a major
    # version no higher than the request's.
    srv = shared_server(APP)
    with srv.client() as c:
        c.send(build_request("GET", "/hello", version="HTTP/1.0"))
        resp = c.read_response()
    assert resp.raw_head.startswith(b"HTTP/1.1 200 ")
    assert resp.body == b"hello world"


@pytest.mark.parametrize("code", ["100", "101", "199", "600", "999"])
def test_app_status_outside_200_599_is_a_500(ferrule_server, code):
    # RFC 9110 §15: 1xx are interim (never the final answer an app gives); >599 is invalid.
    srv = ferrule_server(APP)
    srv.errors_expected = True
    mark = srv.mark()
    with srv.client() as c:
        c.send(build_request("GET", f"/status?code={code}"))
        resp = c.read_response()
    assert resp.status == 500, resp
    srv.wait_for_log(r"(?i)status", since=mark)


@pytest.mark.parametrize("code", ["200", "299", "418", "599"])
def test_app_status_in_200_599_is_sent(shared_server, code):
    with shared_server(APP).client() as c:
        c.send(build_request("GET", f"/status?code={code}"))
        resp = c.read_response()
    assert (resp.status, resp.reason) == (int(code), "Test")


def test_repeated_cookie_fields_joined_with_semicolon(shared_server):
    # RFC 6265 §5.4 / RFC 9113 §8.2.3: cookie-pairs are separated by "; ", never ",".
    srv = shared_server(APP)
    resp = srv.get("/environ", [("Cookie", "a=1"), ("Cookie", "b=2"), ("Accept", "x"),
                               ("Accept", "y")])  # fmt: skip
    env = resp.json()
    assert env["HTTP_COOKIE"]["value"] == "a=1; b=2"
    assert env["HTTP_ACCEPT"]["value"] == "x,y"
