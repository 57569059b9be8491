"""Answers with the names in `sys.modules` of the serving process, one per line: what a worker
keeps imported for its whole life (tests/ops/test_lean_startup.py)."""

import sys


def application(environ, start_response):
    body = "\n".join(sorted(sys.modules)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
