"""TLS (`--certfile`, `--keyfile`, `--ca-certs`, `--cert-reqs`) against real clients: Python `ssl`
and `curl --http1.1`, over certificates made for the test with the `openssl` CLI (a CA, a server
certificate for 127.0.0.1 and a client certificate signed by the CA). Checks the environ the app
sees (`wsgi.url_scheme`, `HTTPS`, `SSL_CLIENT_VERIFY`, `SSL_CLIENT_S_DN`), mutual TLS accepted
and refused, and the one-line start-up errors for bad files."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.pki import make_pki
from helpers.server import APPS, FerruleProcess

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _context(pki: Path, client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if client_cert:
        ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    return ctx


def _environ(port: int, ctx: ssl.SSLContext) -> dict:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", "/environ")
        resp = conn.getresponse()
        assert resp.status == 200
        return {k: v["value"] for k, v in json.loads(resp.read()).items()}
    finally:
        conn.close()


def test_https_environ_and_keep_alive(ferrule_server, pki):
    srv = ferrule_server("basic_app", "--certfile", str(pki / "server.pem"),
                         "--keyfile", str(pki / "server.key"))  # fmt: skip
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=_context(pki), timeout=10)
    for _ in range(3):  # one TLS session, several requests
        conn.request("POST", "/echo", body=b"x" * 200_000)
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == b"x" * 200_000
    conn.request("GET", "/environ")
    env = {k: v["value"] for k, v in json.loads(conn.getresponse().read()).items()}
    conn.close()
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTPS"] == "on"
    assert env["SERVER_PORT"] == str(srv.port)
    assert env["SSL_CLIENT_VERIFY"] == "NONE"
    assert "SSL_CLIENT_S_DN" not in env


def test_plain_http_on_a_tls_port_gets_no_answer(ferrule_server, pki):
    srv = ferrule_server("basic_app", "--certfile", str(pki / "server.pem"),
                         "--keyfile", str(pki / "server.key"))  # fmt: skip
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = s.recv(100)
    assert not data.startswith(b"HTTP/")


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_http11(ferrule_server, pki):
    srv = ferrule_server("basic_app", "--certfile", str(pki / "server.pem"),
                         "--keyfile", str(pki / "server.key"))  # fmt: skip
    out = subprocess.run(
        ["curl", "-sS", "--http1.1", "--cacert", str(pki / "ca.pem"),
         f"https://127.0.0.1:{srv.port}/hello"],
        capture_output=True, timeout=30, check=True,
    )  # fmt: skip
    assert out.stdout == b"hello world"


def test_file_wrapper_over_tls(ferrule_server, pki, tmp_path):
    # No sendfile(2) under TLS: the file goes through the TLS layer, whole.
    data = bytes(range(256)) * 4000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    srv = ferrule_server("file_app", "--certfile", str(pki / "server.pem"),
                         "--keyfile", str(pki / "server.key"),
                         env={"FERRULE_TEST_FILE": str(path)})  # fmt: skip
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=_context(pki), timeout=10)
    for target, want in [
        ("/file-cl", data),
        ("/file", data),
        ("/file-offset?off=1000", data[1000:]),
    ]:
        conn.request("GET", target)
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == want
    conn.close()


@pytest.mark.parametrize("reqs", ["1", "2"])
def test_mtls_accepted_with_subject(ferrule_server, pki, reqs):
    srv = ferrule_server("basic_app", "--certfile", str(pki / "server.pem"),
                         "--keyfile", str(pki / "server.key"), "--ca-certs", str(pki / "ca.pem"),
                         "--cert-reqs", reqs)  # fmt: skip
    env = _environ(srv.port, _context(pki, client_cert=True))
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert env["SSL_CLIENT_S_DN"] == r"CN=client one,O=Acme\, Inc.,C=FR"


def test_mtls_optional_without_certificate(ferrule_server, pki):
    srv = ferrule_server("basic_app", "--certfile", str(pki / "server.pem"),
                         "--keyfile", str(pki / "server.key"), "--ca-certs", str(pki / "ca.pem"),
                         "--cert-reqs", "1")  # fmt: skip
    env = _environ(srv.port, _context(pki))
    assert env["SSL_CLIENT_VERIFY"] == "NONE"


def test_mtls_required_refuses_a_client_without_certificate(ferrule_server, pki):
    srv = ferrule_server("basic_app", "--certfile", str(pki / "server.pem"),
                         "--keyfile", str(pki / "server.key"), "--ca-certs", str(pki / "ca.pem"),
                         "--cert-reqs", "2")  # fmt: skip
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
        _environ(srv.port, _context(pki))
    # A client with a certificate from another CA is refused too.
    ctx = _context(pki)
    ctx.load_cert_chain(str(pki / "other.pem"), str(pki / "other.key"))
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
        _environ(srv.port, ctx)
    # The server goes on serving.
    assert _environ(srv.port, _context(pki, client_cert=True))["SSL_CLIENT_VERIFY"] == "SUCCESS"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (("missing.pem", "server.key"), r"cannot load the TLS certificate .*missing\.pem: "),
        (("server.pem", "missing.key"), r"cannot load the TLS key .*missing\.key: "),
        (
            ("server.key", "server.key"),
            r"cannot load the TLS certificate .*server\.key: no certificate",
        ),
        (("server.pem", "other.key"), r"the private key does not match the certificate"),
    ],
)
def test_bad_files_fail_at_start_with_one_line(pki, files, message):
    cert, key = files
    proc = subprocess.run(
        [sys.executable, "-m", "ferrule", "--bind", "127.0.0.1:0", "--pythonpath", str(APPS),
         "--certfile", str(pki / cert), "--keyfile", str(pki / key), "basic_app"],
        check=False, capture_output=True, timeout=60, cwd=APPS,
    )  # fmt: skip
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    assert re.search(message, err), err


def test_sighup_reloads_the_certificate(ferrule_server, pki, tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    shutil.copy(pki / "server.pem", cert)
    shutil.copy(pki / "server.key", key)
    srv: FerruleProcess = ferrule_server("basic_app", "--certfile", str(cert),
                                         "--keyfile", str(key))  # fmt: skip
    assert _environ(srv.port, _context(pki))["HTTPS"] == "on"
    # Swap in the self-signed "other" certificate: after HUP, clients trusting the CA refuse it.
    shutil.copy(pki / "other.pem", cert)
    shutil.copy(pki / "other.key", key)
    since = len(srv.err.lines)
    srv.send_signal(signal.SIGHUP)
    assert srv.err.wait_for("TLS certificate reloaded", 10, since=since)
    with pytest.raises(ssl.SSLCertVerificationError):
        _environ(srv.port, _context(pki))
    # A broken file on the next HUP keeps the certificate in use.
    cert.write_text("garbage")
    since = len(srv.err.lines)
    srv.send_signal(signal.SIGHUP)
    assert srv.err.wait_for("TLS reload failed, keeping the old certificate", 10, since=since)
    srv.errors_expected = True
    ctx = ssl.create_default_context(cafile=str(pki / "other.pem"))
    ctx.check_hostname = False
    assert _environ(srv.port, ctx)["HTTPS"] == "on"
