"""App for the built-in middleware tests (tests/compress, tests/static): Rust compresses,
tags and serves around it.

Routes (PATH_INFO):
  /text?size=N        text/plain, N bytes, with Content-Length
  /json?size=N        application/json, N bytes, with Content-Length
  /png?size=N         image/png, N bytes
  /encoded            text/plain that the app already gzipped (Content-Encoding: gzip)
  /no-transform       text/plain, N=4000 bytes, Cache-Control: no-transform
  /etag               text/plain, 4000 bytes, a strong ETag and Vary: Cookie
  /stream?n=N&delay=S text/plain, N chunks "chunk-I\\n" * 40, S seconds apart, no length
  /file               a 5000-byte text/plain body through wsgi.file_wrapper
  /empty              204
  /id                 the environ's HTTP_X_REQUEST_ID as the body
  /own-id             a response with the app's own X-Request-ID: app-chosen
  /static/...         "from the app" (only reached when no --static mount owns the prefix)
"""

from __future__ import annotations

import gzip
import tempfile
import time

from _util import query

WORDS = b"ferrule serves python with rust; compress me please. "


def body_of(size: int) -> bytes:
    return (WORDS * (size // len(WORDS) + 1))[:size]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = query(environ)
    size = int(q.get("size", "4000"))

    def whole(body: bytes, ctype: str, extra=()):
        start_response(
            "200 OK",
            [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra],
        )
        return [body]

    if path == "/text":
        return whole(body_of(size), "text/plain; charset=utf-8")
    if path == "/json":
        return whole(b'"' + body_of(max(size - 2, 0)) + b'"', "application/json")
    if path == "/png":
        return whole(body_of(size), "image/png")
    if path == "/encoded":
        return whole(gzip.compress(body_of(4000)), "text/plain", [("Content-Encoding", "gzip")])
    if path == "/no-transform":
        return whole(body_of(4000), "text/plain", [("Cache-Control", "no-transform")])
    if path == "/etag":
        return whole(body_of(4000), "text/plain", [("ETag", '"v1"'), ("Vary", "Cookie")])
    if path == "/stream":
        n, delay = int(q.get("n", "3")), float(q.get("delay", "0"))
        start_response("200 OK", [("Content-Type", "text/plain")])

        def chunks():
            for i in range(n):
                if i and delay:
                    time.sleep(delay)
                yield f"chunk-{i}\n".encode() * 40

        return chunks()
    if path == "/file":
        f = tempfile.TemporaryFile()  # noqa: SIM115 (file_wrapper closes it)
        f.write(body_of(5000))
        f.seek(0)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5000")])
        return environ["wsgi.file_wrapper"](f)
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/id":
        return whole(environ.get("HTTP_X_REQUEST_ID", "-").encode("latin-1"), "text/plain")
    if path == "/own-id":
        return whole(b"own", "text/plain", [("X-Request-ID", "app-chosen")])
    return whole(b"from the app", "text/plain")
