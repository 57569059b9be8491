"""PEP 3333 on the response side: start_response validation, exc_info, write(), headers sent with
the first non-empty chunk, one-element lists, Content-Length enforcement, errors from the app,
wsgi.file_wrapper. Validator-wrapped apps (rules_app) where the validator allows the behaviour;
raw_app where it would reject it first (see each app's docstring)."""

from __future__ import annotations

import hashlib
import os

import pytest

from helpers.rawhttp import ConnectionClosed, build_request

RULES = "rules_app:application"
RAW = "raw_app:application"


@pytest.fixture
def rules(shared_server, threads):
    return shared_server(RULES, "--threads", str(threads))


def request(srv, target, *, method="GET", version="HTTP/1.1"):
    with srv.client() as c:
        c.send(build_request(method, target, version=version))
        return c.read_response(method)


# -- write() ------------------------------------------------------------------------------------


def test_write_then_iterable(rules):
    resp = request(rules, "/write")
    assert (resp.status, resp.body) == (200, b"one-two-three")


def test_write_only(rules):
    resp = request(rules, "/write-only")
    assert (resp.status, resp.body) == (200, b"all")


def test_fresh_status_and_header_strings_are_never_mixed_up(rules):
    # The extension remembers the bytes of the str objects an app passes to start_response
    # (by object); strings built per request must each be read anew.
    with rules.client() as c:
        for i in range(300):
            v = f"{i}x{i * 7919 % 1000}"
            c.send(build_request("GET", f"/fresh?{v}"))
            resp = c.read_response()
            assert resp.status == 200
            assert resp.reason == f"reason-{v}"
            assert resp.get("X-Echo") == f"value-{v}"
            assert resp.get(f"X-Name-{v}") == v
            assert resp.get("Content-Type") == "text/plain"
            assert resp.body == v.encode()


@pytest.mark.parametrize(
    ("keep", "use", "outcome"),
    [("/keep-callables", "/use-kept", b"RuntimeError RuntimeError"),
     ("/keep-write", "/use-kept-write", b"RuntimeError")],
)  # fmt: skip
def test_an_earlier_requests_callables_never_reach_a_later_response(
    shared_server, keep, use, outcome
):
    # The extension reuses a request's start_response and the write() made with it for the
    # thread's next request only when the app kept neither: kept ones stay bound to their own,
    # ended request, also when the app kept only write().
    srv = shared_server(RULES, "--threads", "1")
    with srv.client() as c:
        c.send(build_request("GET", keep))
        assert c.read_response().body == b"kept"
        for _ in range(3):
            c.send(build_request("GET", use))
            resp = c.read_response()
            assert resp.status == 200
            assert resp.body == outcome
            assert b"LEAK" not in resp.raw_head + resp.body


# -- exc_info -----------------------------------------------------------------------------------


def test_exc_info_before_headers_replaces_them(rules):
    resp = request(rules, "/exc-before")
    assert resp.status == 500
    assert resp.get("X-Replaced") == "1"
    assert resp.get("X-First") is None
    assert resp.body == b"replaced"


def test_exc_info_after_headers_reraises_and_aborts(ferrule_server):
    srv = ferrule_server(RULES)
    srv.errors_expected = True
    mark = srv.mark()
    with srv.client() as c:
        c.send(build_request("GET", "/exc-after"))
        with pytest.raises(ConnectionClosed):
            resp = c.read_response()
            pytest.fail(f"got a complete response after the app re-raised: {resp!r}")
    srv.wait_for_log("exc-after-marker", since=mark)
    assert srv.get("/write").body == b"one-two-three"  # the worker survived


# -- when headers go out --------------------------------------------------------------------------


def test_generator_calls_start_response_late(rules):
    resp = request(rules, "/late")
    assert (resp.status, resp.get("X-Late"), resp.body) == (200, "1", b"late body")


def test_headers_wait_for_first_nonempty_chunk(rules):
    resp = request(rules, "/empty-then-error")
    assert resp.status == 503
    assert resp.get("X-Second") == "1"
    assert resp.get("X-First") is None
    assert resp.body == b"changed"


def test_empty_chunks_are_not_sent_as_chunks(rules):
    with rules.client() as c:
        c.send(build_request("GET", "/empty-chunks"))
        resp = c.read_response()
        assert (resp.status, resp.framing, resp.body) == (200, "chunked", b"datamore")
        # The connection is still in sync: a premature zero-size chunk would break this.
        c.send(build_request("GET", "/write"))
        assert c.read_response().body == b"one-two-three"


def test_one_element_list_gets_content_length(shared_server):
    resp = request(shared_server(RAW), "/one-element")
    assert resp.status == 200
    assert resp.get("Content-Length") == "5"
    assert resp.get("Transfer-Encoding") is None
    assert resp.body == b"hello"


def test_empty_list_gets_content_length_zero(shared_server):
    resp = request(shared_server(RAW), "/empty-list")
    assert (resp.status, resp.get("Content-Length"), resp.body) == (200, "0", b"")
    assert resp.get("Transfer-Encoding") is None


def test_two_elements_chunked_on_http11(shared_server):
    resp = request(shared_server(RAW), "/two-elements")
    assert (resp.status, resp.framing, resp.body) == (200, "chunked", b"hello")


def test_two_elements_close_delimited_on_http10(shared_server):
    with shared_server(RAW).client() as c:
        c.send(build_request("GET", "/two-elements", version="HTTP/1.0"))
        resp = c.read_response()
        assert (resp.status, resp.framing, resp.body) == (200, "close", b"hello")
        c.expect_closed()


# -- Content-Length declared by the app -----------------------------------------------------------


def test_content_length_short_body_closes_and_logs(ferrule_server):
    srv = ferrule_server(RULES)
    srv.errors_expected = True
    mark = srv.mark()
    with srv.client() as c:
        c.send(build_request("GET", "/cl-short"))
        with pytest.raises(ConnectionClosed, match="after 10 of 100"):
            c.read_response()
    srv.wait_for_log(r"(?i)content-length", since=mark)


def test_content_length_long_body_truncated_and_logs(ferrule_server):
    srv = ferrule_server(RULES)
    srv.errors_expected = True
    mark = srv.mark()
    with srv.client() as c:
        c.send(build_request("GET", "/cl-long"))
        resp = c.read_response()
        assert (resp.status, resp.get("Content-Length"), resp.body) == (200, "5", b"01234")
        # Whatever the server does with the connection, no extra bytes may follow the 5 declared.
        c.send(build_request("GET", "/write"))
        try:
            follow = c.read_response()
        except ConnectionClosed:
            pass
        else:
            assert follow.body == b"one-two-three", follow
    srv.wait_for_log(r"(?i)content-length", since=mark)


# -- errors from the app --------------------------------------------------------------------------


def test_exception_before_headers_gives_500_and_traceback(ferrule_server):
    srv = ferrule_server(RAW)
    srv.errors_expected = True
    mark = srv.mark()
    resp = request(srv, "/raise-before")
    assert resp.status == 500
    assert (resp.get("Content-Type") or "").startswith("text/plain")
    assert b"raise-before-marker" not in resp.body  # no traceback leaked to the client
    srv.wait_for_log(r"Traceback \(most recent call last\)", since=mark)
    srv.wait_for_log("raise-before-marker", since=mark)
    assert request(srv, "/one-element").body == b"hello"


def test_exception_after_headers_aborts_connection(ferrule_server):
    srv = ferrule_server(RAW)
    srv.errors_expected = True
    mark = srv.mark()
    with srv.client() as c:
        c.send(build_request("GET", "/raise-after"))
        with pytest.raises(ConnectionClosed):
            c.read_response()
    srv.wait_for_log("raise-after-marker", since=mark)
    assert request(srv, "/one-element").body == b"hello"


@pytest.mark.parametrize("kind", ["short", "long", "letters", "noreason", "crlf", "bytes"])
def test_bad_status_gives_500_and_log(ferrule_server, kind):
    srv = ferrule_server(RAW)
    srv.errors_expected = True
    mark = srv.mark()
    resp = request(srv, f"/bad-status?s={kind}")
    assert resp.status == 500, resp
    assert resp.get("X-Injected") is None
    assert b"should not be sent" not in resp.body
    srv.wait_for_log(r"(?i)status", since=mark)


@pytest.mark.parametrize(
    "kind",
    [
        "crlf-value", "lf-value", "nul-value", "lf-name", "colon-name", "space-name",
        "empty-name", "non-latin1", "bytes-name", "bytes-value",
        "connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer",
        "proxy-authenticate",
    ],
)  # fmt: skip
def test_bad_header_gives_500_and_log(ferrule_server, kind):
    srv = ferrule_server(RAW)
    srv.errors_expected = True
    mark = srv.mark()
    resp = request(srv, f"/bad-header?h={kind}")
    assert resp.status == 500, resp
    assert resp.get("X-Injected") is None
    assert b"should not be sent" not in resp.body
    srv.wait_for_log(r"(?i)header", since=mark)


def test_a_refused_header_tuple_is_refused_every_time(ferrule_server):
    # The extension remembers a header tuple (by object) once it passed the checks; the app's
    # constant tuple that failed them must fail again each time it comes back, on the same thread.
    srv = ferrule_server(RAW, "--threads", "1")
    srv.errors_expected = True
    for _ in range(3):
        resp = request(srv, "/bad-header?h=crlf-value")
        assert resp.status == 500, resp
        assert resp.get("X-Injected") is None
        assert request(srv, "/one-element").body == b"hello"


@pytest.mark.parametrize(
    ("route", "word"),
    [("/body-str", "bytes"), ("/body-none", "iterable|None"), ("/sr-twice", "start_response"),
     ("/no-start", "start_response")],
)  # fmt: skip
def test_broken_app_gives_500_and_log(ferrule_server, route, word):
    srv = ferrule_server(RAW)
    srv.errors_expected = True
    mark = srv.mark()
    resp = request(srv, route)
    assert resp.status == 500, resp
    srv.wait_for_log(word, since=mark)
    assert request(srv, "/one-element").body == b"hello"


# -- wsgi.file_wrapper ----------------------------------------------------------------------------

FILE_SIZE = 3 * 1024 * 1024 + 17


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "payload.bin"
    path.write_bytes(os.urandom(FILE_SIZE))
    return path


@pytest.fixture
def file_srv(shared_server, data_file):
    return shared_server("file_app:application", env={"FERRULE_TEST_FILE": str(data_file)})


@pytest.mark.parametrize("route", ["/file", "/file-cl", "/file-blksize"])
def test_file_wrapper(file_srv, data_file, route):
    with file_srv.client() as c:
        c.send(build_request("GET", route))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.framing == "length", "a file body must be sent with a Content-Length"
        assert resp.get("Content-Length") == str(FILE_SIZE)
        assert hashlib.sha256(resp.body).digest() == hashlib.sha256(data_file.read_bytes()).digest()
        c.send(build_request("GET", "/file"))  # keep-alive survives a file body
        assert len(c.read_response().body) == FILE_SIZE


def test_file_wrapper_without_fileno_falls_back_to_iteration(file_srv, data_file):
    resp = request(file_srv, "/filelike")
    assert resp.status == 200
    assert hashlib.sha256(resp.body).digest() == hashlib.sha256(data_file.read_bytes()).digest()


def test_file_wrapper_from_current_position(file_srv, data_file):
    resp = request(file_srv, "/file-offset?off=1000")
    assert resp.status == 200
    assert resp.body == data_file.read_bytes()[1000:]


def test_file_wrapper_head_sends_no_body(file_srv):
    with file_srv.client() as c:
        c.send(build_request("HEAD", "/file"))
        resp = c.read_response("HEAD")
        assert (resp.status, resp.body) == (200, b"")
        c.send(build_request("GET", "/file-offset?off=" + str(FILE_SIZE - 3)))
        assert len(c.read_response().body) == 3
