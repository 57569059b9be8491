"""HEAD responses carry the header fields GET would (RFC 9110 §9.3.2: "The server SHOULD send the
same header fields in response to a HEAD request as it would have sent if the request method had
been GET"), and never a body (RFC 9112 §6.3). Each test compares HEAD with GET on one keep-alive
connection, so a stray body byte would break the next response."""

from __future__ import annotations

import pytest

from helpers.rawhttp import build_request

RAW = "raw_app:application"
FILES = "file_app:application"


def head_then_get(srv, target):
    with srv.client() as c:
        c.send(build_request("HEAD", target))
        head = c.read_response("HEAD")
        c.send(build_request("GET", target))
        get = c.read_response()
    return head, get


def test_head_one_element_list_has_get_content_length(shared_server):
    head, get = head_then_get(shared_server(RAW), "/one-element")
    assert (get.status, get.get("Content-Length"), get.body) == (200, "5", b"hello")
    assert head.status == 200
    assert head.get("Content-Length") == "5"
    assert head.get("Transfer-Encoding") is None
    assert head.body == b""


def test_head_empty_list_announces_no_length(shared_server):
    # An app may skip the body for HEAD; a 0 would then misstate what GET sends.
    head, get = head_then_get(shared_server(RAW), "/empty-list")
    assert get.get("Content-Length") == "0"
    assert head.status == 200
    assert head.get("Content-Length") is None
    assert head.get("Transfer-Encoding") is None


def test_head_streamed_body_announces_no_framing(shared_server):
    # Two elements: GET streams them chunked; HEAD cannot know the length and must not say
    # chunked over a body it does not send.
    head, get = head_then_get(shared_server(RAW), "/two-elements")
    assert get.framing == "chunked" and get.body == b"hello"
    assert head.get("Content-Length") is None
    assert head.get("Transfer-Encoding") is None


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_head_content_length_on_both_versions(shared_server, version):
    srv = shared_server(RAW)
    with srv.client() as c:
        c.send(build_request("HEAD", "/one-element", version=version))
        resp = c.read_response("HEAD")
    assert resp.get("Content-Length") == "5"


def test_head_on_file_wrapper_has_the_file_length(ferrule_server, tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"f" * 12345)
    srv = ferrule_server(FILES, env={"FERRULE_TEST_FILE": str(data)})
    head, get = head_then_get(srv, "/file")
    assert (get.get("Content-Length"), len(get.body)) == ("12345", 12345)
    assert head.get("Content-Length") == "12345"
    assert head.body == b""
