"""Blocks 10 ms per request, like an app waiting on a database: measures thread hand-off and
how many requests a server keeps in flight."""

import time

DELAY_S = 0.010
BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    time.sleep(DELAY_S)
    start_response("200 OK", HEADERS)
    return [BODY]


app = application
