"""`--proxy-protocol {v1,v2,auto}` with `--proxy-allow-from`, over raw sockets: hand-written PROXY
headers, REMOTE_ADDR/REMOTE_PORT as the app sees them, and the connection closed without a
response on every refusal (HAProxy `doc/proxy-protocol.txt`)."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct

import pytest

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(src: str, sport: int, dst: str, dport: int, command: int = 1, tlvs: bytes = b"") -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if s.version == 4 else 0x21
    body = s.packed + d.packed + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x20 | command, fam]) + struct.pack("!H", len(body)) + body


def exchange(port: int, prefix: bytes, split: bool = False) -> bytes:
    req = b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        if split:  # the header in pieces, then the request
            for i in range(0, len(prefix), 3):
                s.sendall(prefix[i : i + 3])
            s.sendall(req)
        else:
            s.sendall(prefix + req)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:  # closed with our bytes unread: a reset, no response
            assert out == b""
    return out


def environ(raw: bytes) -> dict:
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    body = raw.split(b"\r\n\r\n", 1)[1]
    return {k: v["value"] for k, v in json.loads(body).items()}


@pytest.fixture(scope="module")
def servers():
    from helpers.server import FerruleProcess

    started = {}
    for mode in ("v1", "v2", "auto"):
        started[mode] = FerruleProcess("basic_app", "--proxy-protocol", mode).start()
    started["refuse"] = FerruleProcess(
        "basic_app", "--proxy-protocol", "auto", "--proxy-allow-from", "10.0.0.0/8"
    ).start()
    yield started
    for srv in started.values():
        srv.stop()


@pytest.mark.parametrize("split", [False, True])
def test_v1_sets_remote_addr(servers, split):
    for mode in ("v1", "auto"):
        env = environ(
            exchange(servers[mode].port, b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n", split)
        )
        assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("203.0.113.7", "51000")
        assert env["SERVER_NAME"] == "x"
        assert not any(k.startswith("HTTP_PROXY") for k in env)


def test_v1_tcp6_and_unknown(servers):
    env = environ(exchange(servers["v1"].port, b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 80\r\n"))
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("2001:db8::1", "4000")
    env = environ(exchange(servers["v1"].port, b"PROXY UNKNOWN\r\n"))
    assert env["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("split", [False, True])
def test_v2_sets_remote_addr(servers, split):
    hdr = v2("198.51.100.9", 6000, "192.0.2.1", 443, tlvs=b"\x04\x00\x02ab")  # a NOOP TLV
    for mode in ("v2", "auto"):
        env = environ(exchange(servers[mode].port, hdr, split))
        assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("198.51.100.9", "6000")
    env = environ(exchange(servers["v2"].port, v2("2001:db8::5", 7, "2001:db8::6", 8)))
    assert env["REMOTE_ADDR"] == "2001:db8::5"


def test_v2_local_uses_the_real_peer(servers):
    env = environ(exchange(servers["v2"].port, v2("0.0.0.0", 0, "0.0.0.0", 0, command=0)))
    assert env["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("mode", "prefix"),
    [
        ("v1", b""),  # no header at all: the request line is not a PROXY header
        ("v1", v2("1.2.3.4", 1, "5.6.7.8", 2)),  # v2 where v1 is required
        ("v2", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),  # v1 where v2 is required
        ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),  # bare LF
        ("v1", b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"),  # leading zero
        ("v1", b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n"),  # wrong family
        ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"),
        ("auto", b"PROXY " + b"A" * 120),  # no CRLF within 107 bytes
        ("v2", V2_SIG + b"\x21\x11\xff\xff"),  # length over the bound
        ("v2", V2_SIG + b"\x31\x11\x00\x0c" + b"\x00" * 12),  # version 3
    ],
)
def test_bad_headers_close_without_a_response(servers, mode, prefix):
    assert exchange(servers[mode].port, prefix) == b""


def test_peer_outside_proxy_allow_from_is_closed(servers):
    assert exchange(servers["refuse"].port, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n") == b""
    # Control: the same header is accepted from an allowed peer.
    assert environ(exchange(servers["auto"].port, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))


def test_forwarding_trust_follows_the_proxied_client(servers):
    # The PROXY header's client (not the load balancer) is checked against
    # --forwarded-allow-ips (default loopback): its X-Forwarded-For is dropped.
    req = (
        b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n"
        b"GET /environ HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", servers["v1"].port), timeout=10) as s:
        s.sendall(req)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    env = environ(out)
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    assert "HTTP_X_FORWARDED_FOR" not in env
