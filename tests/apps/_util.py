"""Small helpers shared by the test apps (not an app itself)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs


def query(environ) -> dict[str, str]:
    """The query string as a dict of single values."""
    return {
        k: v[-1]
        for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()
    }


def describe(value):
    """A JSON-able description of one environ value: its type name and its value (or repr)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        shown = value
    else:
        shown = repr(value)
    return {"type": type(value).__name__, "value": shown}


def environ_json(environ) -> dict:
    return {key: describe(value) for key, value in environ.items()}


def json_response(start_response, obj, status: str = "200 OK", extra_headers=()):
    body = json.dumps(obj, sort_keys=True).encode("utf-8")
    start_response(
        status,
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra_headers],
    )
    return [body]


def text_response(start_response, text: bytes, status: str = "200 OK", extra_headers=()):
    start_response(
        status,
        [("Content-Type", "text/plain"), ("Content-Length", str(len(text))), *extra_headers],
    )
    return [text]
