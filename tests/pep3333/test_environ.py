"""PEP 3333 "environ Variables": every required key with the right type and value, over a real
socket, with the app under `wsgiref.validate.validator` and warnings as errors."""

from __future__ import annotations

import pytest

from helpers.rawhttp import build_request

APP = "basic_app:application"


def environ_of(srv, target="/environ", headers=None, *, method="GET", body=b"", version="HTTP/1.1"):
    with srv.client() as c:
        # A real client's Host names the port, so SERVER_PORT agrees whichever source a server uses.
        c.send(
            build_request(
                method, target, headers, body, version=version, host=f"127.0.0.1:{srv.port}"
            )
        )
        resp = c.read_response(method)
        port = c.local_port()
    assert resp.status == 200, resp
    env = resp.json()
    env = env.get("environ", env)  # corpus_app nests the environ beside the body hash
    env["__client_port__"] = port
    return env


def value(env, key):
    assert key in env, f"{key} missing from environ: {sorted(env)}"
    return env[key]["value"]


def type_of(env, key):
    assert key in env, f"{key} missing from environ: {sorted(env)}"
    return env[key]["type"]


@pytest.fixture
def srv(shared_server):
    return shared_server(APP)


# -- CGI variables -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_request_method(srv, method):
    env = environ_of(srv, method=method, body=b"x" if method in ("POST", "PUT", "PATCH") else b"")
    assert (type_of(env, "REQUEST_METHOD"), value(env, "REQUEST_METHOD")) == ("str", method)


def test_script_name_is_empty_str(srv):
    env = environ_of(srv)
    assert (type_of(env, "SCRIPT_NAME"), value(env, "SCRIPT_NAME")) == ("str", "")


def test_path_info(srv):
    env = environ_of(srv, "/environ")
    assert (type_of(env, "PATH_INFO"), value(env, "PATH_INFO")) == ("str", "/environ")


def test_path_info_percent_decoded_then_latin1(shared_server):
    srv = shared_server("corpus_app:application")
    env = environ_of(srv, "/caf%C3%A9")
    # The UTF-8 bytes of "é" arrive as two latin-1 characters (PEP 3333: "native strings").
    assert value(env, "PATH_INFO") == "/caf\xc3\xa9"
    env = environ_of(srv, "/a%20b/%e9%2Fz+y")
    assert value(env, "PATH_INFO") == "/a b/\xe9/z+y"


def test_query_string_present_when_empty(srv):
    env = environ_of(srv, "/environ")
    assert (type_of(env, "QUERY_STRING"), value(env, "QUERY_STRING")) == ("str", "")


def test_query_string_not_decoded(srv):
    env = environ_of(srv, "/environ?a=%20b&c=d+e&f=%C3%A9")
    assert value(env, "QUERY_STRING") == "a=%20b&c=d+e&f=%C3%A9"
    assert value(env, "PATH_INFO") == "/environ"


def test_content_type_and_length_not_http_prefixed(srv):
    env = environ_of(
        srv, method="POST", body=b"abc", headers=[("Content-Type", "text/x-test; charset=utf-8")]
    )
    assert value(env, "CONTENT_TYPE") == "text/x-test; charset=utf-8"
    assert value(env, "CONTENT_LENGTH") == "3"
    assert type_of(env, "CONTENT_LENGTH") == "str"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env


def test_server_name_and_port(srv):
    env = environ_of(srv)
    assert type_of(env, "SERVER_NAME") == "str" and value(env, "SERVER_NAME")
    assert (type_of(env, "SERVER_PORT"), value(env, "SERVER_PORT")) == ("str", str(srv.port))


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_server_protocol(srv, version):
    env = environ_of(srv, version=version)
    assert (type_of(env, "SERVER_PROTOCOL"), value(env, "SERVER_PROTOCOL")) == ("str", version)


def test_http_headers(srv):
    env = environ_of(srv, headers=[("X-Custom-Thing", "v1"), ("user-agent", "ua/1")])
    assert value(env, "HTTP_X_CUSTOM_THING") == "v1"
    assert value(env, "HTTP_USER_AGENT") == "ua/1"
    assert value(env, "HTTP_HOST") == f"127.0.0.1:{srv.port}"


def test_repeated_headers_joined_with_comma(srv):
    env = environ_of(srv, headers=[("X-Multi", "a"), ("X-Other", "o"), ("x-multi", "b c")])
    assert value(env, "HTTP_X_MULTI") == "a,b c"


def test_header_names_with_underscore_dropped(srv):
    env = environ_of(
        srv, headers=[("X-Forwarded-For", "1.2.3.4"), ("X_Forwarded_For", "6.6.6.6"), ("A_B", "c")]
    )
    assert value(env, "HTTP_X_FORWARDED_FOR") == "1.2.3.4"
    assert "HTTP_A_B" not in env


def test_header_value_latin1(srv):
    with srv.client() as c:
        c.send(b"GET /environ HTTP/1.1\r\nHost: h\r\nX-Latin: caf\xe9 \xa0x\xa0\r\n\r\n")
        env = c.read_response().json()
    assert value(env, "HTTP_X_LATIN") == "caf\xe9 \xa0x\xa0"


def test_remote_addr_and_port(srv):
    env = environ_of(srv)
    assert (type_of(env, "REMOTE_ADDR"), value(env, "REMOTE_ADDR")) == ("str", "127.0.0.1")
    assert (type_of(env, "REMOTE_PORT"), value(env, "REMOTE_PORT")) == (
        "str",
        str(env["__client_port__"]),
    )


def test_values_follow_each_request_on_one_thread(shared_server):
    # One application thread: the extension writes values that repeat into its environ
    # template, so a later request that differs (or lacks a key) must never see an earlier one's.
    srv = shared_server(APP, "--threads", "1")
    steps = [
        # (method, target, version, host, content type, body)
        ("GET", "/environ?a", "HTTP/1.1", "one.test", None, b""),
        ("GET", "/environ?a", "HTTP/1.1", "one.test", None, b""),
        ("GET", "/environ?a", "HTTP/1.1", "one.test", None, b""),
        ("POST", "/environ?b", "HTTP/1.1", "two.test:81", "text/a", b"xy"),
        ("POST", "/environ?b", "HTTP/1.1", "two.test:81", "text/a", b"xy"),
        ("GET", "/%65nviron", "HTTP/1.0", "one.test", None, b""),
        ("GET", "/%65nviron", "HTTP/1.0", "one.test", None, b""),
        ("PUT", "/environ?a", "HTTP/1.1", "one.test", "text/b", b"xyz"),
        ("GET", "/environ?a", "HTTP/1.1", "one.test", None, b""),
        ("POST", "/environ?b", "HTTP/1.1", "two.test:81", "text/a", b""),
    ]
    for method, target, version, host, ctype, body in steps * 2:
        headers = [("Content-Type", ctype)] if ctype else []
        with srv.client() as c:
            c.send(build_request(method, target, headers, body, version=version, host=host))
            resp = c.read_response(method)
            port = c.local_port()
        assert resp.status == 200, resp
        env = resp.json()
        if version == "HTTP/1.0":
            # build_request sends no Host on HTTP/1.0: the server's own address names it.
            host, name, server_port = None, "127.0.0.1", str(srv.port)
        else:
            name, _, server_port = host.partition(":")
        qs = target.partition("?")[2]
        want = {
            "REQUEST_METHOD": method,
            "PATH_INFO": "/environ",
            "QUERY_STRING": qs,
            "RAW_URI": target,
            "REQUEST_URI": target,
            "SERVER_PROTOCOL": version,
            "SERVER_NAME": name,
            "SERVER_PORT": server_port or "80",
            "HTTP_HOST": host,
            "REMOTE_PORT": str(port),
            "wsgi.url_scheme": "http",
        }
        got = {k: env[k]["value"] if k in env else None for k in want}
        assert got == want, (method, target, version, host)
        # build_request sends Content-Length only with a body.
        assert (env.get("CONTENT_TYPE") or {}).get("value") == ctype
        assert (env.get("CONTENT_LENGTH") or {}).get("value") == (str(len(body)) if body else None)


def test_header_keys_follow_each_request_on_one_thread(shared_server):
    # One application thread: header names that come twice in a row get an environ template
    # holding their HTTP_* keys (and repeated values); a request with other names, the same
    # names in another order, fewer or more, must get exactly its own keys and values.
    srv = shared_server(APP, "--threads", "1")
    a = [("X-A", "1"), ("X-B", "2")]
    steps = [
        a,
        a,
        a,
        [("X-A", "1"), ("X-B", "3")],
        [("X-A", "9"), ("X-B", "3")],
        [("X-B", "2"), ("X-A", "1")],
        [("X-B", "2"), ("X-A", "1")],
        [("X-A", "1")],
        [("X-A", "1")],
        [("X-A", "1"), ("X-B", "2"), ("X-C", "3")],
        [("X-A", "1"), ("X-B", "2"), ("X-C", "3")],
        [("x-a", "1"), ("x-b", "2")],
        a,
        [],
        [],
        a,
        [("X-A", "1"), ("X-B", "2"), ("Content-Type", "text/x")],
        [("X-A", "1"), ("X-B", "2"), ("Content-Type", "text/x")],
        a,
    ]
    for headers in steps * 2:
        with srv.client() as c:
            c.send(build_request("GET", "/environ", headers, host="h.test"))
            resp = c.read_response()
        assert resp.status == 200, resp
        env = resp.json()
        got = {k: v["value"] for k, v in env.items() if k.startswith("HTTP_")}
        want = {"HTTP_HOST": "h.test"}
        want.update(
            ("HTTP_" + n.upper().replace("-", "_"), v) for n, v in headers if n != "Content-Type"
        )
        assert got == want, headers
        ctype = dict(headers).get("Content-Type")
        assert (env.get("CONTENT_TYPE") or {}).get("value") == ctype, headers


def test_raw_uri_and_request_uri(srv):
    target = "/environ?x=%41&y"
    env = environ_of(srv, target)
    assert value(env, "RAW_URI") == target
    assert value(env, "REQUEST_URI") == target


# -- wsgi.* variables ---------------------------------------------------------------------------


def test_wsgi_version(srv):
    env = environ_of(srv)
    assert (type_of(env, "wsgi.version"), value(env, "wsgi.version")) == ("tuple", "(1, 0)")


def test_wsgi_url_scheme(srv):
    env = environ_of(srv)
    assert (type_of(env, "wsgi.url_scheme"), value(env, "wsgi.url_scheme")) == ("str", "http")


def test_wsgi_multithread_matches_threads(shared_server, threads):
    srv = shared_server(APP, "--threads", str(threads))
    env = environ_of(srv)
    assert (type_of(env, "wsgi.multithread"), value(env, "wsgi.multithread")) == (
        "bool",
        threads > 1,
    )


def test_wsgi_multiprocess_and_run_once(srv):
    env = environ_of(srv)
    assert (type_of(env, "wsgi.multiprocess"), value(env, "wsgi.multiprocess")) == ("bool", False)
    assert (type_of(env, "wsgi.run_once"), value(env, "wsgi.run_once")) == ("bool", False)


def test_wsgi_input_terminated(srv):
    env = environ_of(srv)
    assert (type_of(env, "wsgi.input_terminated"), value(env, "wsgi.input_terminated")) == (
        "bool",
        True,
    )


def test_wsgi_input_errors_file_wrapper_present(srv):
    env = environ_of(srv)
    # Under the validator, input/errors are its wrappers around ours (it checked their methods).
    assert type_of(env, "wsgi.input") == "InputWrapper"
    assert type_of(env, "wsgi.errors") == "ErrorWrapper"
    assert "wsgi.file_wrapper" in env
    assert type_of(env, "wsgi.file_wrapper") in ("type", "builtin_function_or_method", "function")


def test_environ_values_native_str(srv):
    env = environ_of(srv, "/environ?q=1", headers=[("X-A", "b")], method="POST", body=b"zz")
    for key, item in env.items():
        if key.startswith("__") or "." in key:
            continue
        assert item["type"] == "str", f"{key} is {item['type']}, not str"


def test_wsgi_errors_goes_to_error_log(ferrule_server):
    srv = ferrule_server(APP)
    srv.errors_expected = True  # wsgi.errors lines may be logged at ERROR level
    mark = srv.mark()
    resp = srv.get("/errors?msg=errors-stream-marker-42")
    assert resp.status == 200 and resp.body == b"logged"
    srv.wait_for_log("errors-stream-marker-42", since=mark)
