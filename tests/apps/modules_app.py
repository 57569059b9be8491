"""Answers with the names in `sys.modules` of the serving process, one per line: what a worker
keeps imported for its whole life (tests/ops/test_lean_startup.py). `/environ` answers with the
names in the app's `os.environ` instead, and `/argv` with `sys.argv`."""

import os
import sys


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/environ":
        names = sorted(os.environ)
    elif path == "/argv":
        names = list(sys.argv)
    else:
        names = sorted(sys.modules)
    body = "\n".join(names).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
