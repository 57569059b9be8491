"""PEP 3333 `wsgi.input`: read(n), read(), readline(n), readline(), readlines(hint), readlines()
and iteration, correct across buffer boundaries.

Bodies of 0 B, 1 B, 64 KiB and 5 MiB (the 5 MiB one streams: it is over the 1 MiB buffered-body
bound), plus 64 KiB with `--max-buffered-body 1024` so the streamed path is also tested with a
small body; each sent with Content-Length and chunked (random chunk sizes). Sizes 1, 7, 8191 and
65537 straddle the 64 KiB socket reads. The app reports every piece's length; the test computes
what a file object (io.BufferedReader semantics: read(n) returns n bytes until EOF) must return.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from helpers.rawhttp import build_request, chunked

APP = "input_app:application"
KiB = 1024
MiB = 1024 * KiB

BODIES = {
    "0B": (0, ()),
    "1B": (1, ()),
    "64KiB": (64 * KiB, ()),
    "64KiB-streamed": (64 * KiB, ("--max-buffered-body", "1024")),
    "5MiB": (5 * MiB, ()),
}
SIZES = [1, 7, 8191, 65537]


def make_body(size: int) -> bytes:
    """Random bytes (newline every ~256 bytes on average) with one long line of a third of the
    body, so lines cross every buffer boundary."""
    rng = random.Random(size)
    body = bytearray(rng.randbytes(size))
    start, end = size // 3, 2 * size // 3
    body[start:end] = body[start:end].replace(b"\n", b"a")
    return bytes(body)


def lines_of(body: bytes) -> list[bytes]:
    """Lines as a binary file sees them: ended by b"\n" only (bytes.splitlines would also split
    at \r, \x0b, \x0c, \x1c-\x1e)."""
    parts = body.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    return lines + [parts[-1]] if parts[-1] else lines


def split_lines_n(body: bytes, n: int) -> list[int]:
    sizes = []
    for line in lines_of(body):
        sizes += [min(n, len(line) - i) for i in range(0, len(line), n)]
    return sizes


def expected_sizes(mode: str, body: bytes, n: int) -> list[int]:
    if mode == "read_n":
        return [min(n, len(body) - i) for i in range(0, len(body), n)]
    if mode == "read_all":
        return [len(body)]
    if mode == "readline_n":
        return split_lines_n(body, n)
    if mode in ("readline", "iter", "readlines"):
        return [len(x) for x in lines_of(body)]
    if mode == "zero":
        return [min(65536, len(body) - i) for i in range(0, len(body), 65536)]
    if mode == "mixed":
        pos = 0
        sizes = []

        def take(k):
            nonlocal pos
            k = max(0, min(k, len(body) - pos))
            pos += k
            sizes.append(k)

        def line_len(limit=None):
            end = body.find(b"\n", pos)
            length = (end + 1 - pos) if end >= 0 else len(body) - pos
            return length if limit is None else min(limit, length)

        take(1)
        take(line_len())
        take(n)
        take(line_len(n))
        while pos < len(body):
            take(4096)
        return sizes
    raise AssertionError(mode)


def upload(srv, mode: str, n: int, body: bytes, framing: str):
    target = f"/?mode={mode}&n={n}"
    if framing == "length":
        data = build_request("POST", target, body=body, content_length=True)
    else:
        rng = random.Random(len(body))
        sizes = [rng.choice([1, 5, 1000, 65536, 300000]) for _ in range(16)]
        data = build_request(
            "POST", target, [("Transfer-Encoding", "chunked")], content_length=False
        ) + chunked(body, sizes, trailers=b"X-Trailer: t\r\n")
    with srv.client(timeout=30) as c:
        c.send(data)
        resp = c.read_response()
    assert resp.status == 200, resp
    return resp.json()


def cases():
    for body_id, (size, _) in BODIES.items():
        for mode in ("read_n", "readline_n", "readlines_hint", "mixed"):
            for n in SIZES:
                if size >= MiB and n < 100 and mode in ("read_n", "readline_n"):
                    continue  # 5 million calls through the validator: too slow to be useful
                yield body_id, mode, n
        for mode in ("read_all", "readline", "readlines", "iter", "zero"):
            yield body_id, mode, -1


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize(("body_id", "mode", "n"), list(cases()))
def test_input(shared_server, body_id, mode, n, framing):
    size, args = BODIES[body_id]
    srv = shared_server(APP, *args)
    body = make_body(size)
    got = upload(srv, mode, n, body, framing)
    assert got["len"] == len(body)
    assert got["sha256"] == hashlib.sha256(body).hexdigest()
    if mode == "readlines_hint":
        check_readlines_hint(got["calls"], body, n)
    else:
        exp = expected_sizes(mode, body, n)
        assert got["sizes"] == exp, _first_difference(got["sizes"], exp)
    if mode == "zero":
        assert got["extra"] == {"read0": 0, "readline0": 0}
    if mode == "read_all":
        assert got["extra"] == {"after_eof": 0}
    if mode == "readlines":
        assert got["calls"] == [[len(x) for x in lines_of(body)]]


def check_readlines_hint(calls: list[list[int]], body: bytes, hint: int) -> None:
    """readlines(hint) returns whole lines and stops once the total reaches the hint: every call
    returns at least one line, the lines before the last one of a call total at most `hint`, and
    a call that stopped before EOF reached `hint`."""
    assert [x for call in calls for x in call] == [len(x) for x in lines_of(body)]
    for i, call in enumerate(calls):
        assert call, f"call {i} returned no lines before EOF"
        assert sum(call[:-1]) <= hint, f"call {i} read past the hint {hint}: {call[:20]}"
        if i < len(calls) - 1:
            assert sum(call) >= hint, f"call {i} stopped before the hint {hint}: {call[:20]}"


def _first_difference(got: list[int], exp: list[int]) -> str:
    for i, (a, b) in enumerate(zip(got, exp)):
        if a != b:
            return f"piece {i}: got {a}, expected {b} (got {len(got)} pieces, expected {len(exp)})"
    return f"got {len(got)} pieces, expected {len(exp)}"


def test_each_request_reads_its_own_body_on_one_thread(shared_server):
    # The extension refills the previous request's wsgi.input object when nothing else holds
    # it: a body left unread must never reach the next request.
    srv = shared_server(APP, "--threads", "1")
    with srv.client() as c:
        for i in range(50):
            first, second = make_body(100 + i), f"second {i}".encode() * (i % 3 + 1)
            c.send(build_request("POST", "/?mode=peek", body=first))
            assert c.read_response().json()["len"] == 1
            c.send(build_request("POST", "/?mode=read_all", body=second))
            got = c.read_response().json()
            assert (got["len"], got["sha256"]) == (len(second), hashlib.sha256(second).hexdigest())


def test_a_kept_input_is_never_refilled(shared_server):
    # An app holding on to a request's stream keeps that request's stream: the next request
    # gets another object, and the kept one still reads the first body's rest.
    srv = shared_server(APP, "--threads", "1")
    with srv.client() as c:
        c.send(build_request("POST", "/?mode=keep", body=b"first-request-body"))
        assert c.read_response().json()["len"] == 3
        c.send(build_request("POST", "/?mode=kept", body=b"SECOND"))
        got = c.read_response().json()
    assert got["extra"] == {"same_object": False, "kept_rest": "st-request-body"}
    assert (got["len"], got["sha256"]) == (6, hashlib.sha256(b"SECOND").hexdigest())


def test_input_read_after_partial_chunked_body_over_keepalive(shared_server):
    """A body the app does not read completely is drained by the server: the next request on
    the same connection is parsed from the right place."""
    srv = shared_server("basic_app:application")
    body = make_body(3000)
    with srv.client() as c:
        c.send(
            build_request("POST", "/hello", [("Transfer-Encoding", "chunked")])
            + chunked(body, [100, 7])
        )
        first = c.read_response()
        c.send(build_request("POST", "/echo", body=b"second body"))
        second = c.read_response()
    assert (first.status, first.body) == (200, b"hello world")
    assert (second.status, second.body) == (200, b"second body")
