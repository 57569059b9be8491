"""--static: files served by Rust before the app, over a real process: content types, HEAD,
conditional requests (304/412), ranges (206/416), precompressed siblings, traversal attempts
(dot-dot, encoded, backslash, NUL, dotfiles, symlinks) and the 405 for other methods."""

from __future__ import annotations

import gzip
import os
import socket
import time

import pytest

from helpers import rawhttp

pytestmark = pytest.mark.timeout(60)

APP = "middleware_app:application"
CSS = b"body { color: #123456; }\n" * 200


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "app.css").write_bytes(CSS)
    (root / "sub" / "page.html").write_bytes(b"<h1>hi</h1>")
    (root / "data.json").write_bytes(b'{"a": 1}')
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (root / "blob").write_bytes(b"\x00\x01")
    (root / "with space.txt").write_bytes(b"spaced")
    (root / ".env").write_bytes(b"SECRET=1")
    (root / "app.js").write_bytes(b"console.log('plain');\n" * 50)
    (root / "app.js.gz").write_bytes(gzip.compress(b"console.log('plain');\n" * 50))
    (root / "app.js.br").write_bytes(b"not really brotli but a sibling")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"top secret")
    os.symlink(outside / "secret.txt", root / "link-out.txt")
    os.symlink(root / "app.css", root / "link-in.css")
    os.symlink(outside, root / "dir-out")
    return tmp_path


@pytest.fixture
def srv(ferrule_server, tree):
    return ferrule_server(APP, "--static", f"/static={tree / 'root'}", "--static-max-age", "60")


def raw(srv, request: bytes, method: str = "GET") -> rawhttp.Response:
    with srv.client() as c:
        c.send(request)
        return c.read_response(method)


def test_content_types_and_headers(srv):
    r = srv.get("/static/app.css")
    assert r.status == 200 and r.body == CSS
    assert r.get("Content-Type") == "text/css; charset=utf-8"
    assert r.get("Content-Length") == str(len(CSS))
    assert r.get("Accept-Ranges") == "bytes"
    assert r.get("Cache-Control") == "public, max-age=60"
    assert r.get("ETag").startswith('"') and r.get("Last-Modified").endswith(" GMT")
    for path, ctype in [
        ("/static/sub/page.html", "text/html; charset=utf-8"),
        ("/static/data.json", "application/json"),
        ("/static/logo.png", "image/png"),
        ("/static/blob", "application/octet-stream"),
        ("/static/with%20space.txt", "text/plain; charset=utf-8"),
    ]:
        r = srv.get(path)
        assert (r.status, r.get("Content-Type")) == (200, ctype), path


def test_head_has_the_get_headers_and_no_body(srv):
    with srv.client() as c:
        r = c.request("HEAD", "/static/app.css")
    assert r.status == 200 and r.body == b""
    assert r.get("Content-Length") == str(len(CSS))


def test_outside_the_prefix_goes_to_the_app(srv):
    assert srv.get("/staticx/app.css").body == b"from the app"
    assert srv.get("/other").body == b"from the app"
    # An encoded slash is not a separator: not under /static.
    assert srv.get("/static%2Fapp.css").body == b"from the app"


def test_other_methods_are_405(srv):
    with srv.client() as c:
        r = c.request("POST", "/static/app.css", body=b"x")
        assert r.status == 405 and r.get("Allow") == "GET, HEAD"
        # The connection goes on.
        assert c.request("GET", "/static/data.json").status == 200


@pytest.mark.parametrize(
    "target",
    [
        "/static/nope.css",
        "/static/",
        "/static",
        "/static/sub",
        "/static/sub/",
        "/static/../root/app.css",
        "/static/sub/../app.css",
        "/static/%2e%2e/outside/secret.txt",
        "/static/sub%2F..%2Fapp.css",
        "/static/sub%2fpage.html",
        "/static/sub%5Cpage.html",
        "/static/sub\\page.html",
        "/static/app.css%00.png",
        "/static/.env",
        "/static/%2eenv",
        "/static/link-out.txt",
        "/static/dir-out/secret.txt",
    ],
)
def test_traversal_and_missing_are_404(srv, target):
    r = raw(srv, f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    # A raw backslash may already be refused by the request parser (400).
    assert r.status == 404 or ("\\" in target and r.status == 400), target
    assert b"secret" not in r.body and b"from the app" not in r.body


def test_symlink_inside_the_root_is_served(srv):
    assert srv.get("/static/link-in.css").body == CSS


def test_follow_symlinks_option(ferrule_server, tree):
    srv = ferrule_server(APP, "--static", f"/static={tree / 'root'}", "--static-follow-symlinks")
    assert srv.get("/static/link-out.txt").body == b"top secret"
    assert srv.get("/static/dir-out/secret.txt").body == b"top secret"
    # Still no way up by path.
    assert srv.get("/static/../outside/secret.txt").status == 404


def test_conditional_get(srv):
    r = srv.get("/static/app.css")
    etag, lm = r.get("ETag"), r.get("Last-Modified")
    for headers in (
        [("If-None-Match", etag)],
        [("If-None-Match", f'"x", W/{etag}')],
        [("If-None-Match", "*")],
        [("If-Modified-Since", lm)],
    ):
        r304 = srv.get("/static/app.css", headers)
        assert r304.status == 304 and r304.body == b"", headers
        assert r304.get("ETag") == etag
        assert r304.get("Cache-Control") == "public, max-age=60"
    assert srv.get("/static/app.css", [("If-None-Match", '"other"')]).status == 200
    old = "Thu, 01 Jan 1998 00:00:00 GMT"
    assert srv.get("/static/app.css", [("If-Modified-Since", old)]).status == 200
    # If-None-Match wins over If-Modified-Since.
    both = [("If-None-Match", '"other"'), ("If-Modified-Since", lm)]
    assert srv.get("/static/app.css", both).status == 200
    assert srv.get("/static/app.css", [("If-Match", '"other"')]).status == 412
    assert srv.get("/static/app.css", [("If-Match", etag)]).status == 200
    assert srv.get("/static/app.css", [("If-Unmodified-Since", old)]).status == 412


def test_ranges(srv):
    size = len(CSS)
    r = srv.get("/static/app.css", [("Range", "bytes=0-9")])
    assert r.status == 206 and r.body == CSS[:10]
    assert r.get("Content-Range") == f"bytes 0-9/{size}" and r.get("Content-Length") == "10"
    r = srv.get("/static/app.css", [("Range", "bytes=-5")])
    assert r.status == 206 and r.body == CSS[-5:]
    r = srv.get("/static/app.css", [("Range", f"bytes={size - 3}-")])
    assert r.status == 206 and r.body == CSS[-3:]
    r = srv.get("/static/app.css", [("Range", f"bytes={size}-")])
    assert r.status == 416 and r.get("Content-Range") == f"bytes */{size}"
    # Several ranges: the whole file.
    r = srv.get("/static/app.css", [("Range", "bytes=0-1,5-6")])
    assert r.status == 200 and r.body == CSS
    # Invalid: ignored.
    assert srv.get("/static/app.css", [("Range", "bytes=9-2")]).status == 200
    etag = r.get("ETag")
    r = srv.get("/static/app.css", [("Range", "bytes=0-0"), ("If-Range", etag)])
    assert r.status == 206 and r.body == CSS[:1]
    r = srv.get("/static/app.css", [("Range", "bytes=0-0"), ("If-Range", '"stale"')])
    assert r.status == 200 and r.body == CSS


def test_precompressed_siblings(srv, tree):
    plain = (tree / "root" / "app.js").read_bytes()
    r = srv.get("/static/app.js")
    assert r.body == plain and r.get("Content-Encoding") is None
    r = srv.get("/static/app.js", [("Accept-Encoding", "gzip")])
    assert r.get("Content-Encoding") == "gzip" and gzip.decompress(r.body) == plain
    assert r.get("Vary") == "Accept-Encoding"
    assert r.get("Content-Type") == "text/javascript; charset=utf-8"
    assert r.get("ETag").endswith('-gz"')
    r = srv.get("/static/app.js", [("Accept-Encoding", "gzip;q=0.5, br")])
    assert r.get("Content-Encoding") == "br"
    assert r.body == (tree / "root" / "app.js.br").read_bytes()
    r = srv.get("/static/app.js", [("Accept-Encoding", "br;q=0, gzip")])
    assert r.get("Content-Encoding") == "gzip"
    # No sibling for this file: identity.
    r = srv.get("/static/app.css", [("Accept-Encoding", "gzip, br")])
    assert r.get("Content-Encoding") is None and r.body == CSS


def test_keep_alive_and_pipelining(srv):
    req = b"GET /static/data.json HTTP/1.1\r\nHost: h\r\n\r\n"
    with srv.client() as c:
        c.send(req + b"GET /static/nope HTTP/1.1\r\nHost: h\r\n\r\n" + req)
        assert c.read_response().body == b'{"a": 1}'
        assert c.read_response().status == 404
        assert c.read_response().body == b'{"a": 1}'


def test_access_log_has_static_requests(ferrule_server, tree):
    srv = ferrule_server(APP, "--static", f"/s={tree / 'root'}", "--access-logfile", "-")
    assert srv.get("/s/data.json").status == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not srv.access_lines:
        time.sleep(0.02)
    assert '"GET /s/data.json HTTP/1.1" 200 8' in srv.access_lines[-1]


def test_bad_mount_fails_at_start(tmp_path):
    from helpers.server import FerruleProcess, ServerFailed

    with pytest.raises(ServerFailed, match="static"):
        FerruleProcess(APP, "--static", f"/s={tmp_path / 'missing'}").start()


def test_whole_root_mount(ferrule_server, tree):
    srv = ferrule_server(APP, "--static", f"/={tree / 'root'}")
    assert srv.get("/app.css").body == CSS
    assert srv.get("/anything").status == 404  # the mount owns everything


def test_large_file_uses_sendfile_path(ferrule_server, tmp_path):
    big = os.urandom(3 * 1024 * 1024 + 7)
    (tmp_path / "big.bin").write_bytes(big)
    srv = ferrule_server(APP, "--static", f"/f={tmp_path}")
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"GET /f/big.bin HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(1 << 16):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0] and body == big
