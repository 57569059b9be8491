"""A Flask app and a Django app served by ferrule, driven with `requests`: routing, query strings,
form POST, multipart file upload, JSON, streaming responses and cookies. The frameworks are real
apps, not wrapped in the validator (they are what users run)."""

from __future__ import annotations

import hashlib
import os

import pytest

import requests

TIMEOUT = 15

APPS = {"flask": "flask_app:app", "django": "django_app:application"}


@pytest.fixture(params=sorted(APPS))
def base(request, shared_server):
    srv = shared_server(APPS[request.param])
    with requests.Session() as session:
        yield srv.url, session


def test_index(base):
    url, s = base
    r = s.get(url + "/", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.text.endswith("index")


def test_routing_with_path_parameter(base):
    url, s = base
    r = s.get(url + "/hello/w%C3%B6rld", timeout=TIMEOUT)
    assert (r.status_code, r.text) == (200, "hello w\u00f6rld")


def test_unknown_route_404(base):
    url, s = base
    assert s.get(url + "/no/such/route", timeout=TIMEOUT).status_code == 404


def test_query_string(base):
    url, s = base
    r = s.get(
        url + "/query", params=[("a", "1"), ("a", "2"), ("b", "x y&z"), ("e", "")], timeout=TIMEOUT
    )
    assert r.status_code == 200
    assert r.json() == {"a": ["1", "2"], "b": ["x y&z"], "e": [""]}


def test_form_post(base):
    url, s = base
    r = s.post(url + "/form", data={"name": "Zo\u00eb", "tags": ["a", "b"]}, timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json() == {"name": ["Zo\u00eb"], "tags": ["a", "b"]}


@pytest.mark.parametrize("size", [0, 1000, 3 * 1024 * 1024])
def test_file_upload(base, size):
    url, s = base
    data = os.urandom(size)
    r = s.post(
        url + "/upload",
        files={"file": ("payload.bin", data, "application/octet-stream")},
        data={"field": "value"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, r.text[:500]
    assert r.json() == {
        "filename": "payload.bin",
        "size": size,
        "sha256": hashlib.sha256(data).hexdigest(),
        "field": "value",
    }


def test_file_upload_chunked_flask(shared_server):
    """Flask only: Django reads `CONTENT_LENGTH` bytes and ignores `wsgi.input_terminated`, so
    it sees an empty body for any chunked request (django/core/handlers/wsgi.py)."""
    url = shared_server(APPS["flask"]).url
    # A generator body makes requests send Transfer-Encoding: chunked.
    boundary = "ferrule-boundary"
    payload = os.urandom(200_000)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="field"\r\n\r\nv\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode(),
        payload,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    r = requests.post(
        url + "/upload",
        data=iter(parts),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, r.text[:500]
    assert r.json()["sha256"] == hashlib.sha256(payload).hexdigest()


@pytest.mark.parametrize("payload", [{"a": [1, 2, {"b": None}], "u": "\u00e9\u20ac"}, [1, "x"], 7])
def test_json(base, payload):
    url, s = base
    r = s.post(url + "/json", json=payload, timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"got": payload, "type": type(payload).__name__}


def test_streaming_response(base):
    url, s = base
    with s.get(url + "/stream?n=200", stream=True, timeout=TIMEOUT) as r:
        assert r.status_code == 200
        assert r.headers.get("Transfer-Encoding") == "chunked"
        lines = list(r.iter_lines())
    assert lines == [f"line {i}".encode() for i in range(200)]


def test_cookies(base):
    url, s = base
    r = s.get(url + "/cookie/set?v=choc", timeout=TIMEOUT)
    assert r.status_code == 200
    # Two Set-Cookie headers must arrive as two fields, not folded into one.
    raw_cookies = r.raw.headers.getlist("Set-Cookie")
    assert len(raw_cookies) == 2, raw_cookies
    assert s.cookies.get("flavour") == "choc"
    r = s.get(url + "/cookie/get", timeout=TIMEOUT)
    assert r.json() == {"flavour": "choc", "second": "2"}
