"""Calls a benchmark app directly, with no server, and prints how many calls per second it made.

This is the ceiling for a WSGI server on one core: a server can serve an app at best as fast as
the app runs alone. `run.py` measures it for the `flask` scenario (issue 7's bar: ferrule's RPS
at least 95% of the app alone, in the same run) with the same pinning as the servers:

    taskset -c 0 python benchmarks/app_alone.py flask_json /json --duration 5

Each call gets a fresh environ, built like a server builds one for `GET PATH` with wrk's
headers, and a fresh `wsgi.input`; the response body is iterated and joined and `close()` is
called, as PEP 3333 requires of a server. What a server adds on top (reading the request,
building the environ from bytes, writing the response) is exactly what the ratio shows.

Prints one JSON object: {"calls": N, "seconds": S, "calls_per_s": N / S}.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import sys
import time
from pathlib import Path

APPS = Path(__file__).resolve().parent / "apps"


def base_environ(path: str) -> dict:
    """The environ of `GET path HTTP/1.1` as wrk sends it (Host header only)."""
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", help="module in benchmarks/apps exposing `application`")
    parser.add_argument("path", help="PATH_INFO of each call")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to call for")
    opts = parser.parse_args(argv)

    sys.path.insert(0, str(APPS))
    app = importlib.import_module(opts.app).application
    template = base_environ(opts.path)
    statuses: list[str] = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses.append(status)

    calls = 0
    start = time.perf_counter()
    deadline = start + opts.duration
    now = start
    while now < deadline:
        for _ in range(100):
            environ = dict(template)
            environ["wsgi.input"] = io.BytesIO(b"")
            result = app(environ, start_response)
            try:
                b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        calls += 100
        now = time.perf_counter()
    if not statuses or not statuses[-1].startswith("200"):
        print(f"app_alone: the app answered {statuses[-1:]!r}", file=sys.stderr)
        return 1
    seconds = now - start
    print(json.dumps({"calls": calls, "seconds": seconds, "calls_per_s": calls / seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
