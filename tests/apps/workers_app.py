"""App for the worker-process tests (tests/ops/test_workers*.py).

- `/pid`: the serving process's pid and `wsgi.multiprocess`, as `PID MULTIPROCESS`.
- `/sleep?s=SECS`: sleeps, then answers `slept PID`.
- anything else: `ok PID`.
"""

import os
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    path = environ["PATH_INFO"]
    pid = os.getpid()
    if path == "/pid":
        body = f"{pid} {environ['wsgi.multiprocess']}".encode()
    elif path == "/sleep":
        secs = float(parse_qs(environ.get("QUERY_STRING", "")).get("s", ["0.5"])[0])
        time.sleep(secs)
        body = f"slept {pid}".encode()
    else:
        body = f"ok {pid}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
