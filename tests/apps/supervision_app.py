"""App for the supervision tests (tests/ops/test_recycle*.py, test_timeout*.py,
test_heartbeat*.py): every answer names the serving process.

- `/`: `ok PID`.
- `/grow?kb=N`: keeps N KiB more memory for the life of the process (a leak), then `grew PID`.
- `/loop?s=SECS`: busy for SECS in short sleeps, so an exception injected into the thread
  (ferrule's request timeout) is raised within ~10 ms; answers `looped PID` if it finishes.
- `/stuck`: blocks on a lock nobody releases; an injected exception is not raised while it
  waits (the wait is one C call), so the thread never unwinds.
- `/unwound`: how many requests were interrupted by ferrule.RequestTimeout in this process.
"""

import os
import threading
import time
from urllib.parse import parse_qs

_LEAK: list[bytes] = []
_HELD = threading.Lock()
_HELD.acquire()
_unwound = 0


def _arg(environ, name, default):
    return float(parse_qs(environ.get("QUERY_STRING", "")).get(name, [default])[0])


def app(environ, start_response):
    global _unwound
    path = environ["PATH_INFO"]
    pid = os.getpid()
    if path == "/grow":
        _LEAK.append(b"x" * int(_arg(environ, "kb", "256") * 1024))
        body = f"grew {pid}"
    elif path == "/loop":
        end = time.monotonic() + _arg(environ, "s", "1")
        try:
            while time.monotonic() < end:
                time.sleep(0.01)
        except BaseException as e:
            if type(e).__name__ == "RequestTimeout":
                _unwound += 1
            raise
        body = f"looped {pid}"
    elif path == "/stuck":
        _HELD.acquire()
        body = f"unstuck {pid}"
    elif path == "/unwound":
        body = f"{_unwound} {pid}"
    else:
        body = f"ok {pid}"
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
