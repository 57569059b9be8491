"""The app behind the request corpus (tests/requests/). NOT wrapped in the validator: the corpus
sends `OPTIONS *` (PATH_INFO "*", which the validator rejects) and methods it warns about.

Every request except `GET /__corpus/calls` is counted and answered with JSON:
  {"environ": {key: {"type", "value"}}, "body_len": n, "body_sha256": hex}
`GET /__corpus/calls` answers the count, so the harness can prove an invalid request never
reached the app.
"""

from __future__ import annotations

import hashlib
import threading

from _util import environ_json, json_response

_lock = threading.Lock()
_calls = 0


def application(environ, start_response):
    global _calls
    if environ["PATH_INFO"] == "/__corpus/calls":
        with _lock:
            return json_response(start_response, {"calls": _calls})
    with _lock:
        _calls += 1
    body = environ["wsgi.input"].read()
    return json_response(
        start_response,
        {
            "environ": environ_json(environ),
            "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        },
    )
