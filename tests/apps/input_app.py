"""Exercises every `wsgi.input` method; answers with what it read.

Query: mode=M, n=N (size argument). The reply is JSON:
  {"len": total bytes, "sha256": hex of all bytes read, "sizes": [length of each piece returned],
   "calls": [for readlines modes: the list of line lengths of each call], "extra": {...}}

Mode peek reads one byte only. Mode keep reads 3 bytes and keeps the stream object in KEPT;
mode kept reads the rest of that kept stream into "extra" (and whether it is this request's
stream), then this request's body as read_all does.

Modes read_n, readline_n, readline, readlines_hint, readlines, zero and mixed go through
`wsgiref.validate.validator`. Modes read_all and iter run unwrapped because the validator forbids
`read()` without a size and replaces iteration with its own readline() loop, so the server's own
`read()` and `__iter__` would not be exercised; so do keep and kept, which hold the real stream.
"""

from __future__ import annotations

import hashlib
from wsgiref.validate import validator

from _util import json_response, query

#: The `wsgi.input` a `keep` request left behind (see the module docs).
KEPT: list = []


def _read(environ) -> dict:
    q = query(environ)
    mode = q["mode"]
    n = int(q.get("n", "-1"))
    inp = environ["wsgi.input"]
    pieces: list[bytes] = []
    calls: list[list[int]] = []
    extra: dict = {}
    if mode == "read_n":
        while True:
            piece = inp.read(n)
            if not piece:
                break
            pieces.append(piece)
    elif mode == "read_all":
        pieces.append(inp.read())
        extra["after_eof"] = len(inp.read())
    elif mode == "readline_n":
        while True:
            piece = inp.readline(n)
            if not piece:
                break
            pieces.append(piece)
    elif mode == "readline":
        while True:
            piece = inp.readline()
            if not piece:
                break
            pieces.append(piece)
    elif mode == "readlines_hint":
        while True:
            lines = inp.readlines(n)
            if not lines:
                break
            calls.append([len(x) for x in lines])
            pieces.extend(lines)
    elif mode == "readlines":
        lines = inp.readlines()
        calls.append([len(x) for x in lines])
        pieces.extend(lines)
    elif mode == "iter":
        pieces.extend(inp)
    elif mode == "peek":
        pieces.append(inp.read(1))
    elif mode == "keep":
        KEPT[:] = [inp]
        pieces.append(inp.read(3))
    elif mode == "kept":
        old = KEPT.pop()
        extra["same_object"] = old is inp
        extra["kept_rest"] = old.read().decode("latin-1")
        pieces.append(inp.read())
    elif mode == "zero":
        extra["read0"] = len(inp.read(0))
        extra["readline0"] = len(inp.readline(0))
        while True:
            piece = inp.read(65536)
            if not piece:
                break
            pieces.append(piece)
    elif mode == "mixed":
        # read(1), readline(), read(n), readline(n), then read(4096) to the end.
        for step in (
            lambda: inp.read(1),
            inp.readline,
            lambda: inp.read(n),
            lambda: inp.readline(n),
        ):
            pieces.append(step())
        while True:
            piece = inp.read(4096)
            if not piece:
                break
            pieces.append(piece)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    data = b"".join(pieces)
    return {
        "len": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "sizes": [len(p) for p in pieces],
        "calls": calls,
        "extra": extra,
    }


def _app(environ, start_response):
    return json_response(start_response, _read(environ))


_validated = validator(_app)
_UNWRAPPED_MODES = {"read_all", "iter", "keep", "kept"}


def application(environ, start_response):
    if query(environ).get("mode") in _UNWRAPPED_MODES:
        return _app(environ, start_response)
    return _validated(environ, start_response)
