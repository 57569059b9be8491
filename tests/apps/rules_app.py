"""PEP 3333 behaviours the validator allows, so this app runs under `wsgiref.validate.validator`.

Routes:
  /write            write(b"one-"), write(b"two-"), then returns [b"three"]
  /write-only       write(b"all"), returns []
  /exc-before       start_response(200, X-First), then on an error start_response(500, X-Replaced,
                    exc_info) before any body: the replacement must be what is sent
  /exc-after        yields b"first", then calls start_response(..., exc_info): must re-raise, so
                    the server aborts the connection
  /late             a generator that calls start_response inside its first iteration
  /empty-then-error start_response(200, X-First), yields b"" twice, then replaces the head with
                    503 + X-Second via exc_info and yields b"changed": proves headers wait for the
                    first non-empty chunk
  /empty-chunks     yields b"", b"", b"data", b"", b"more" without a Content-Length
  /cl-short         declares Content-Length 100, sends 10 bytes
  /cl-long          declares Content-Length 5, sends 16 bytes
  /keep-callables   keeps this request's start_response and write() in KEPT
  /use-kept         calls the kept write() and start_response(), answers what each did: an earlier
                    request's callables must never reach this one
  /keep-write       keeps only this request's write() in KEPT_WRITE
  /use-kept-write   calls start_response, then the kept write(), answers what the write did
  /fresh?V          status reason, a header name and a header value built for this request from V
                    (new str objects each time, next to constant ones): each response must carry
                    its own request's strings
"""

from __future__ import annotations

import sys
from wsgiref.validate import validator

from _util import text_response

TEXT = [("Content-Type", "text/plain")]


def _write(environ, start_response):
    write = start_response("200 OK", list(TEXT))
    write(b"one-")
    write(b"two-")
    return [b"three"]


def _write_only(environ, start_response):
    write = start_response("200 OK", list(TEXT))
    write(b"all")
    return []


def _exc_before(environ, start_response):
    start_response("200 OK", TEXT + [("X-First", "1")])
    try:
        raise ValueError("replaced before the body")
    except ValueError:
        start_response("500 Internal Server Error", TEXT + [("X-Replaced", "1")], sys.exc_info())
    return [b"replaced"]


def _exc_after(environ, start_response):
    start_response("200 OK", list(TEXT))
    yield b"first"
    try:
        raise ValueError("exc-after-marker")
    except ValueError:
        # Headers are already sent: start_response must re-raise exc_info (PEP 3333).
        start_response("500 Internal Server Error", list(TEXT), sys.exc_info())
    yield b"must never be sent"


def _late(environ, start_response):
    start_response("200 OK", TEXT + [("X-Late", "1")])
    yield b"late "
    yield b"body"


def _empty_then_error(environ, start_response):
    start_response("200 OK", TEXT + [("X-First", "1")])
    yield b""
    yield b""
    try:
        raise RuntimeError("change of mind before the first byte")
    except RuntimeError:
        start_response("503 Service Unavailable", TEXT + [("X-Second", "1")], sys.exc_info())
    yield b"changed"


def _empty_chunks(environ, start_response):
    start_response("200 OK", list(TEXT))
    yield from (b"", b"", b"data", b"", b"more")


def _cl_short(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "100")])
    return [b"0123456789"]


def _cl_long(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "5")])
    return [b"01234", b"56789abcdef"]


#: The callables a /keep-callables request left behind.
KEPT: list = []


def _keep_callables(environ, start_response):
    write = start_response("200 OK", list(TEXT))
    KEPT[:] = [start_response, write]
    return [b"kept"]


def _use_kept(environ, start_response):
    old_start_response, old_write = KEPT
    outcomes = []
    for call in (lambda: old_write(b"LEAK"), lambda: old_start_response("200 OK", list(TEXT))):
        try:
            call()
            outcomes.append("ok")
        except Exception as e:  # noqa: BLE001 - the test reads which exception it was
            outcomes.append(type(e).__name__)
    start_response("200 OK", list(TEXT))
    return [" ".join(outcomes).encode()]


KEPT_WRITE: list = []


def _keep_write(environ, start_response):
    KEPT_WRITE[:] = [start_response("200 OK", list(TEXT))]
    return [b"kept"]


def _use_kept_write(environ, start_response):
    # This request's head is stored first: a kept write() that reached this request would
    # send its bytes as this response's body.
    start_response("200 OK", list(TEXT))
    try:
        KEPT_WRITE[0](b"LEAK")
        outcome = "ok"
    except Exception as e:  # noqa: BLE001 - the test reads which exception it was
        outcome = type(e).__name__
    return [outcome.encode()]


def _fresh(environ, start_response):
    v = environ["QUERY_STRING"]
    status = "200 " + "reason-" + v
    headers = TEXT + [("X-Echo", "value-" + v), ("X-Name-" + v, v)]
    start_response(status, headers)
    return [v.encode()]


ROUTES = {
    "/write": _write,
    "/write-only": _write_only,
    "/exc-before": _exc_before,
    "/exc-after": _exc_after,
    "/late": _late,
    "/empty-then-error": _empty_then_error,
    "/empty-chunks": _empty_chunks,
    "/cl-short": _cl_short,
    "/cl-long": _cl_long,
    "/fresh": _fresh,
    "/keep-callables": _keep_callables,
    "/use-kept": _use_kept,
    "/keep-write": _keep_write,
    "/use-kept-write": _use_kept_write,
}


def _app(environ, start_response):
    route = ROUTES.get(environ["PATH_INFO"])
    if route is None:
        return text_response(start_response, b"not found", status="404 Not Found")
    return route(environ, start_response)


application = validator(_app)
