"""HAProxy sending the PROXY protocol (`send-proxy`, `send-proxy-v2`) to ferrule started with
`--proxy-protocol v1|v2|auto --proxy-allow-from 127.0.0.1` (issue 5): REMOTE_ADDR/REMOTE_PORT
are the client's (it connects from 127.0.0.2, HAProxy from 127.0.0.1), uploads and downloads
pass, and a PROXY header from an address not allowed gets the connection closed.
"""

from __future__ import annotations

import json

import proxy_configs as cfg
import pytest
from proxy_rig import CLIENT_ADDR, check_download, check_upload, connection, free_port, request

pytestmark = [pytest.mark.timeout(90)]

#: (ferrule's --proxy-protocol, what HAProxy sends)
MODES = [("v1", "v1"), ("v2", "v2"), ("auto", "v1"), ("auto", "v2")]


def _lb(backend, haproxy, ferrule_mode: str, send: str, allow: str = "127.0.0.1"):
    args = ("--proxy-protocol", ferrule_mode, "--proxy-allow-from", allow)
    servers = [backend(*args, port=free_port(), instance=n) for n in ("a", "b")]
    proxy = haproxy(
        cfg.HAPROXY_LB,
        SERVERS=cfg.haproxy_servers([f"127.0.0.1:{s.port}" for s in servers]),
        SEND_PROXY=cfg.HAPROXY_SEND_PROXY[send],
    )
    return servers, proxy


@pytest.mark.parametrize(("mode", "send"), MODES, ids=[f"{m}-sends-{s}" for m, s in MODES])
def test_client_address_from_proxy_header(backend, haproxy, mode, send):
    _, proxy = _lb(backend, haproxy, mode, send)
    conn = connection(proxy.port, CLIENT_ADDR)
    try:
        conn.connect()
        client_port = conn.sock.getsockname()[1]
        conn.request("GET", "/environ")
        resp = conn.getresponse()
        assert resp.status == 200
        env = {k: v["value"] for k, v in json.loads(resp.read())["environ"].items()}
    finally:
        conn.close()
    assert env["REMOTE_ADDR"] == CLIENT_ADDR
    assert env["REMOTE_PORT"] == str(client_port)
    assert env["wsgi.url_scheme"] == "http"


@pytest.mark.parametrize("send", ["v1", "v2"])
def test_upload_and_download_with_proxy_protocol(backend, haproxy, send):
    _, proxy = _lb(backend, haproxy, send, send)
    check_upload(proxy.port)
    check_download(proxy.port)


def test_proxy_header_from_address_not_allowed_is_refused(backend, haproxy):
    # Control: with HAProxy's address allowed the same set-up answers, so the failure below
    # comes from the allow-list and not from a server that ignores the PROXY protocol.
    _, control = _lb(backend, haproxy, "v1", "v1")
    assert request(control.port, "GET", "/id")[0] == 200
    _, proxy = _lb(backend, haproxy, "v1", "v1", allow="10.0.0.0/8")
    status, _, _ = request(proxy.port, "GET", "/id")
    # ferrule closes HAProxy's connections (checks included): no server can answer.
    assert status in (502, 503)
