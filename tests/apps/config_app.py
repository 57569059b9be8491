"""Apps for the configuration, access-log and middleware tests (tests/ops/test_config_*.py,
tests/ops/test_access_format.py).

- `application`: 200 with `X-Out: out-value` and `X-Quote: a"b`; the body is `ok` plus the
  `X-Mw` environ marks that middleware left (`mw=a,b`).
- `printing`: writes to sys.stdout, sys.stderr and straight to fd 1/2 (as a C extension
  would), then answers 200.
- `logging_app`: logs through the `configapp` Python logger (for --log-config).
- `tag(app, name="x")`: a middleware factory adding `name` to `environ["ferrule.test.mw"]`.
"""

import logging
import os
import sys


def application(environ, start_response):
    marks = environ.get("ferrule.test.mw", "")
    body = f"ok mw={marks}".encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("X-Out", "out-value"),
            ("X-Quote", 'a"b'),
        ],
    )
    return [body]


def printing(environ, start_response):
    print("app-stdout-line")
    print("app-stderr-line", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, b"fd1-line\n")
    os.write(2, b"fd2-line\n")
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def logging_app(environ, start_response):
    logging.getLogger("configapp").warning("configapp-log-line")
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def tag(app, name="x"):
    def wrapped(environ, start_response):
        previous = environ.get("ferrule.test.mw", "")
        environ["ferrule.test.mw"] = f"{previous},{name}" if previous else name
        return app(environ, start_response)

    return wrapped


def not_a_factory(app):
    return 42


def broken_factory(app):
    raise RuntimeError("middleware setup failed")
