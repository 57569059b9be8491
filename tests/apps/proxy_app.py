"""The app behind tests/proxies: what a reverse proxy must carry through, checked end to end.

Wrapped in `wsgiref.validate.validator`, so every request through a proxy is also a PEP 3333
check. The instance name comes from the `PROXY_TEST_INSTANCE` environment variable (the process
id when unset), so a test behind a load balancer can tell the instances apart.

Routes (PATH_INFO):
  /healthz            "ok" (the proxies' health checks)
  /environ            JSON: {"instance": NAME, "environ": the environ as in basic_app's /environ}
  /id                 the instance name as text
  /slow?ms=M          sleeps M ms, then answers the instance name (keeps requests in flight)
  /upload             reads wsgi.input with read(65536) until b"", answers JSON
                      {"length": N, "sha256": HEX, "instance": NAME}
  /download?n=N&size=S  a generator of N chunks of S bytes, chunk i being `chunk_bytes(i, S)`,
                      no Content-Length (the client recomputes the hash from `chunk_bytes`)
anything else: 404.
"""

from __future__ import annotations

import hashlib
import os
import time
from wsgiref.validate import validator

from _util import environ_json, json_response, query, text_response

INSTANCE = os.environ.get("PROXY_TEST_INSTANCE") or str(os.getpid())
#: Bytes `/upload` asks wsgi.input for per read.
READ_SIZE = 64 * 1024


def chunk_bytes(i: int, size: int) -> bytes:
    """Chunk `i` of `/download`: distinct per index, so a lost, repeated or reordered chunk
    changes the hash."""
    pattern = i.to_bytes(4, "big")
    return (pattern * (size // 4 + 1))[:size]


def _app(environ, start_response):
    path = environ["PATH_INFO"]
    q = query(environ)
    if path == "/healthz":
        return text_response(start_response, b"ok")
    if path == "/environ":
        return json_response(
            start_response, {"instance": INSTANCE, "environ": environ_json(environ)}
        )
    if path == "/id":
        return text_response(start_response, INSTANCE.encode())
    if path == "/slow":
        time.sleep(int(q.get("ms", "50")) / 1000)
        return text_response(start_response, INSTANCE.encode())
    if path == "/upload":
        digest = hashlib.sha256()
        length = 0
        inp = environ["wsgi.input"]
        while True:
            chunk = inp.read(READ_SIZE)
            if not chunk:
                break
            digest.update(chunk)
            length += len(chunk)
        return json_response(
            start_response,
            {"length": length, "sha256": digest.hexdigest(), "instance": INSTANCE},
        )
    if path == "/download":
        n = int(q.get("n", "200"))
        size = int(q.get("size", str(64 * 1024)))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (chunk_bytes(i, size) for i in range(n))
    return text_response(start_response, b"not found", status="404 Not Found")


application = validator(_app)
