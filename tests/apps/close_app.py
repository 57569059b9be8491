"""Counts calls to the response iterable's close(), under `wsgiref.validate.validator`.

Every body is a `Tracked` iterable tagged with the request's `id` (query). The test asks
`/closes?id=ID&min=M&timeout=S`: the answer waits (bounded) until close() was called at least M
times for ID, then reports the count, so no test sleeps.

Routes:
  /normal?id=    two chunks, Content-Length 2, ends normally
  /raise?id=     yields b"first", then raises (after headers)
  /before?id=    raises on the first next() (before headers: 500)
  /stream?id=&n= n chunks of 64 KiB without Content-Length (for client disconnects)
"""

from __future__ import annotations

import threading
from wsgiref.validate import validator

from _util import json_response, query

_cond = threading.Condition()
_closes: dict[str, int] = {}
CHUNK = b"z" * 65536


class Tracked:
    def __init__(self, ident: str, gen):
        self.ident = ident
        self.gen = gen

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.gen)

    def close(self):
        with _cond:
            _closes[self.ident] = _closes.get(self.ident, 0) + 1
            _cond.notify_all()


def _raising():
    yield b"first"
    raise RuntimeError("close-app-raise-marker")


def _raising_first():
    raise RuntimeError("close-app-before-marker")
    yield b""  # makes this a generator


def _app(environ, start_response):
    q = query(environ)
    path = environ["PATH_INFO"]
    ident = q.get("id", "")
    text = [("Content-Type", "text/plain")]
    if path == "/closes":
        want = int(q.get("min", "1"))
        with _cond:
            _cond.wait_for(lambda: _closes.get(ident, 0) >= want, float(q.get("timeout", "5")))
            count = _closes.get(ident, 0)
        return json_response(start_response, {"count": count})
    if path == "/normal":
        start_response("200 OK", text + [("Content-Length", "2")])
        return Tracked(ident, iter([b"a", b"b"]))
    if path == "/raise":
        start_response("200 OK", text)
        return Tracked(ident, _raising())
    if path == "/before":
        start_response("200 OK", text)
        return Tracked(ident, _raising_first())
    if path == "/stream":
        start_response("200 OK", text)
        return Tracked(ident, (CHUNK for _ in range(int(q.get("n", "100")))))
    start_response("404 Not Found", text)
    return Tracked(ident, iter([b"not found"]))


application = validator(_app)
