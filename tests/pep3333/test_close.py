"""PEP 3333: the iterable's close() is called exactly once — on a normal end, when the app raises
mid-body, when it raises before the first chunk, and when the client goes away mid-response.
close_app counts the calls per request id; `/closes` waits (bounded) for the count."""

from __future__ import annotations

import itertools

import pytest

from helpers.rawhttp import ConnectionClosed, build_request

APP = "close_app:application"
_ids = itertools.count()


def new_id(tag: str) -> str:
    return f"{tag}-{next(_ids)}"


def close_count(srv, ident: str, minimum: int = 1) -> int:
    resp = srv.get(f"/closes?id={ident}&min={minimum}&timeout=5")
    assert resp.status == 200, resp
    return resp.json()["count"]


def assert_closed_once(srv, ident: str) -> None:
    assert close_count(srv, ident) == 1
    # Ask again after another full request went through: still exactly one.
    assert srv.get(f"/normal?id={new_id('barrier')}").body == b"ab"
    assert close_count(srv, ident) == 1


@pytest.fixture
def srv(ferrule_server, threads):
    return ferrule_server(APP, "--threads", str(threads))


def test_close_on_normal_end(srv, conn_mode):
    ident = new_id("normal")
    headers = [("Connection", "close")] if conn_mode == "close" else []
    with srv.client() as c:
        c.send(build_request("GET", f"/normal?id={ident}", headers))
        assert c.read_response().body == b"ab"
    assert_closed_once(srv, ident)


def test_close_when_app_raises_mid_body(srv):
    srv.errors_expected = True
    ident = new_id("raise")
    with srv.client() as c:
        c.send(build_request("GET", f"/raise?id={ident}"))
        with pytest.raises(ConnectionClosed):
            c.read_response()
    assert_closed_once(srv, ident)


def test_close_when_app_raises_before_first_chunk(srv):
    srv.errors_expected = True
    ident = new_id("before")
    resp = srv.get(f"/before?id={ident}")
    assert resp.status == 500
    assert_closed_once(srv, ident)


def test_close_when_client_disconnects(srv):
    ident = new_id("gone")
    # 100_000 chunks of 64 KiB (6.5 GB): the app can only finish early if the server notices.
    c = srv.client()
    c.send(build_request("GET", f"/stream?id={ident}&n=100000"))
    c.sock.recv(65536)
    c.close()
    assert_closed_once(srv, ident)
