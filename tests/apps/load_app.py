"""The app behind tests/load: cheap answers, slow answers, huge answers, and counters.

Routes (PATH_INFO):
  /hello              b"hello world"
  /slow?ms=M          sleeps M ms, then answers "slept"; counted in /stats "slow_ran"
  /upload             reads the whole body, answers its length
  /big?mb=N           a one-element list holding one N MiB bytes object (default 50)
  /gen?mb=N           a generator yielding N MiB in 64 KiB chunks; counts chunks yielded and
                      whether it was closed (/stats "gen_chunks", "gen_closed")
  /stats              the counters as JSON
"""

from __future__ import annotations

import threading
import time

from _util import json_response, query, text_response

_lock = threading.Lock()
_stats = {"slow_ran": 0, "gen_chunks": 0, "gen_closed": 0}

CHUNK = 64 * 1024


def _bump(key: str, n: int = 1) -> None:
    with _lock:
        _stats[key] += n


def _generate(total: int):
    try:
        for _ in range(total // CHUNK):
            _bump("gen_chunks")
            yield b"g" * CHUNK
    finally:
        _bump("gen_closed")


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = query(environ)
    if path == "/hello":
        return text_response(start_response, b"hello world")
    if path == "/slow":
        _bump("slow_ran")
        time.sleep(int(q.get("ms", "100")) / 1000)
        return text_response(start_response, b"slept")
    if path == "/upload":
        data = environ["wsgi.input"].read()
        return text_response(start_response, str(len(data)).encode())
    if path == "/big":
        size = int(q.get("mb", "50")) * 1024 * 1024
        return text_response(start_response, b"b" * size)
    if path == "/gen":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _generate(int(q.get("mb", "200")) * 1024 * 1024)
    if path == "/stats":
        with _lock:
            return json_response(start_response, dict(_stats))
    return text_response(start_response, b"not found", "404 Not Found")
