"""The general-purpose test app, wrapped in `wsgiref.validate.validator` (PEP 3333 checks).

Routes (PATH_INFO):
  /environ            JSON dump of the environ: {key: {"type": name, "value": value-or-repr}}
  /hello              b"hello world" with a Content-Length
  /echo               the request body (read with read(8192) until b""), with a Content-Length
  /errors?msg=M       writes M to wsgi.errors, flushes, answers "logged"
  /stream?n=N&size=S  N chunks of S bytes (b"x"...), no Content-Length (chunked on 1.1)
  /slow?ms=M[&log=L]  writes L to wsgi.errors (if given), sleeps M ms, then answers "slept"
  /case               a response header spelled "X-CuStOm"
  /status?code=C      an empty response with status C (reason "Test")
  /count              how many requests this process answered before this one
anything else: 404.
"""

from __future__ import annotations

import threading
import time
from wsgiref.validate import validator

from _util import environ_json, json_response, query, text_response

_lock = threading.Lock()
_count = 0


def _app(environ, start_response):
    global _count
    path = environ["PATH_INFO"]
    q = query(environ)
    with _lock:
        seen = _count
        _count += 1
    if path == "/environ":
        return json_response(start_response, environ_json(environ))
    if path == "/hello":
        return text_response(start_response, b"hello world")
    if path == "/echo":
        chunks = []
        inp = environ["wsgi.input"]
        while True:
            chunk = inp.read(8192)
            if not chunk:
                break
            chunks.append(chunk)
        return text_response(start_response, b"".join(chunks))
    if path == "/errors":
        errors = environ["wsgi.errors"]
        errors.write(q.get("msg", "no message") + "\n")
        errors.flush()
        return text_response(start_response, b"logged")
    if path == "/stream":
        n = int(q.get("n", "10"))
        size = int(q.get("size", "10"))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (b"x" * size for _ in range(n))
    if path == "/slow":
        if "log" in q:  # lets a test wait until the request is inside the app
            environ["wsgi.errors"].write(q["log"] + "\n")
            environ["wsgi.errors"].flush()
        time.sleep(int(q.get("ms", "100")) / 1000)
        return text_response(start_response, b"slept")
    if path == "/case":
        return text_response(start_response, b"case", extra_headers=[("X-CuStOm", "yes")])
    if path == "/status":
        code = q.get("code", "200")
        # 204/304 carry no body: no Content-Type (the validator insists) and no Content-Length.
        headers = (
            []
            if code in ("204", "304")
            else [("Content-Type", "text/plain"), ("Content-Length", "0")]
        )
        start_response(f"{code} Test", headers)
        return []
    if path == "/count":
        return text_response(start_response, str(seen).encode())
    return text_response(start_response, b"not found", status="404 Not Found")


application = validator(_app)
