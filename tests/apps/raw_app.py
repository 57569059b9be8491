"""Behaviours `wsgiref.validate.validator` does not let through, so this app is NOT wrapped:
invalid statuses and headers (the validator would raise before the server saw them), non-bytes
body items, apps that never call start_response, and list bodies whose length the server must see
(the validator hides the list behind its own iterator).

Routes:
  /one-element      [b"hello"], no Content-Length: must be framed with Content-Length: 5
  /two-elements     [b"he", b"llo"], no Content-Length
  /empty-list       [], no Content-Length
  /bad-status?s=K   start_response(BAD_STATUS[K], ...)
  /bad-header?h=K   start_response("200 OK", [BAD_HEADERS[K]])
  /body-str         returns ["text"] (str, not bytes)
  /body-none        returns None
  /raise-before     raises before start_response
  /raise-after      sends 10 bytes, then raises
  /sr-twice         calls start_response twice without exc_info
  /no-start         returns a body without calling start_response
"""

from __future__ import annotations

from _util import query, text_response

TEXT = ("Content-Type", "text/plain")

BAD_STATUS = {
    "short": "20 OK",
    "long": "2000 OK",
    "letters": "abc OK",
    "noreason": "200",
    "crlf": "200 OK\r\nX-Injected: 1",
    "bytes": b"200 OK",
}

BAD_HEADERS = {
    "crlf-value": ("X-A", "a\r\nX-Injected: 1"),
    "lf-value": ("X-A", "a\nb"),
    "nul-value": ("X-A", "a\x00b"),
    "lf-name": ("X-A\nB", "v"),
    "colon-name": ("X:A", "v"),
    "space-name": ("X A", "v"),
    "empty-name": ("", "v"),
    "non-latin1": ("X-A", "\u20ac"),
    "bytes-name": (b"X-A", "v"),
    "bytes-value": ("X-A", b"v"),
    "connection": ("Connection", "close"),
    "keep-alive": ("Keep-Alive", "timeout=5"),
    "transfer-encoding": ("Transfer-Encoding", "chunked"),
    "upgrade": ("Upgrade", "h2c"),
    "te": ("TE", "trailers"),
    "trailer": ("Trailer", "X-A"),
    "proxy-authenticate": ("Proxy-Authenticate", "Basic"),
}


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = query(environ)
    if path == "/one-element":
        start_response("200 OK", [TEXT])
        return [b"hello"]
    if path == "/two-elements":
        start_response("200 OK", [TEXT])
        return [b"he", b"llo"]
    if path == "/empty-list":
        start_response("200 OK", [TEXT])
        return []
    if path == "/bad-status":
        start_response(BAD_STATUS[q["s"]], [TEXT])
        return [b"should not be sent"]
    if path == "/bad-header":
        start_response("200 OK", [TEXT, BAD_HEADERS[q["h"]]])
        return [b"should not be sent"]
    if path == "/body-str":
        start_response("200 OK", [TEXT])
        return ["text"]
    if path == "/body-none":
        start_response("200 OK", [TEXT])
        return None
    if path == "/raise-before":
        raise RuntimeError("raise-before-marker")
    if path == "/raise-after":
        return _raise_after(start_response)
    if path == "/sr-twice":
        start_response("200 OK", [TEXT])
        start_response("200 OK", [TEXT])
        return [b"should not be sent"]
    if path == "/no-start":
        return [b"no start_response"]
    return text_response(start_response, b"not found", status="404 Not Found")


def _raise_after(start_response):
    start_response("200 OK", [TEXT])
    yield b"0123456789"
    raise RuntimeError("raise-after-marker")
