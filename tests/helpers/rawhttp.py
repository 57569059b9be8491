"""A minimal raw-socket HTTP/1.x client for the end-to-end suite.

It sends exact bytes (whole, byte by byte, or in seeded random fragments) and parses responses
strictly (RFC 9112): status line, header fields with their original case and order, and the body
delimited by Content-Length, chunked coding or connection close. Keep-alive and pipelining work
because the client keeps one read buffer per connection. Every socket has a timeout, so no test
can hang on a silent server.
"""

from __future__ import annotations

import json
import random
import select
import socket
from dataclasses import dataclass, field

#: Seconds any single socket operation may block.
DEFAULT_TIMEOUT = 10.0
#: Seconds within which a connection the server must close has to be closed (the default
#: keep-alive idle timeout is 5 s, so a server that merely idles the connection out fails).
CLOSE_DEADLINE = 2.0
#: Longest status line or header line we accept from the server.
MAX_LINE = 64 * 1024
#: Largest response head we accept from the server.
MAX_HEAD = 256 * 1024


class ProtocolError(AssertionError):
    """The server sent bytes that are not a valid HTTP/1.x response."""


class ConnectionClosed(AssertionError):
    """The connection ended before a complete response arrived."""


@dataclass
class Response:
    version: str
    status: int
    reason: str
    #: Header fields in wire order, names in the case the server sent.
    headers: list[tuple[str, str]]
    body: bytes = b""
    #: "length", "chunked", "close" or "none" (HEAD, 1xx, 204, 304).
    framing: str = "none"
    trailers: list[tuple[str, str]] = field(default_factory=list)
    #: The status line and header section exactly as received.
    raw_head: bytes = b""

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        if len(values) > 1:
            raise ProtocolError(f"header {name!r} sent {len(values)} times: {values!r}")
        return values[0] if values else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return (
            f"<Response {self.status} {self.reason!r} framing={self.framing} "
            f"headers={self.headers!r} body[:200]={self.body[:200]!r}>"
        )


def build_request(
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    version: str = "HTTP/1.1",
    host: str | None = "127.0.0.1",
    content_length: bool | None = None,
) -> bytes:
    """Builds request bytes. Adds `Host` (HTTP/1.1, unless given) and `Content-Length` (when
    there is a body, unless `content_length=False` or the caller gave framing headers)."""
    headers = list(headers or [])
    names = {n.lower() for n, _ in headers}
    if host is not None and "host" not in names and version == "HTTP/1.1":
        headers.insert(0, ("Host", host))
    framed = "content-length" in names or "transfer-encoding" in names
    if content_length is None:
        content_length = bool(body) and not framed
    if content_length and not framed:
        headers.append(("Content-Length", str(len(body))))
    lines = [f"{method} {target} {version}"] + [f"{n}: {v}" for n, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, sizes: list[int] | None = None, trailers: bytes = b"") -> bytes:
    """Encodes `body` with the chunked transfer coding, cutting it at `sizes` (cycled)."""
    sizes = sizes or [max(1, len(body))]
    out = bytearray()
    pos = 0
    i = 0
    while pos < len(body):
        n = sizes[i % len(sizes)]
        i += 1
        piece = body[pos : pos + n]
        pos += len(piece)
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    out += b"0\r\n" + trailers + b"\r\n"
    return bytes(out)


class Client:
    """One TCP connection to the server under test."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self.eof = False

    # -- context management -------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    # -- sending --------------------------------------------------------------------------------
    def _server_spoke(self) -> bool:
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def send(
        self,
        data: bytes,
        mode: str = "whole",
        *,
        seed: int | str = 0,
        stop_on_reply: bool = False,
    ) -> int:
        """Sends `data` whole, byte by byte (`"bytes"`) or in random fragments (`"fragments"`,
        seeded). With `stop_on_reply`, stops early (no error) once the server has answered or
        closed, as a client must when a server rejects a request half way. Returns bytes sent."""
        if mode == "whole":
            pieces = [data]
        elif mode == "bytes":
            pieces = [data[i : i + 1] for i in range(len(data))]
        elif mode == "fragments":
            rng = random.Random(str(seed))
            pieces = []
            pos = 0
            while pos < len(data):
                n = rng.choice([1, 1, 2, 3, 5, 7, 13, 64, 500, 4096])
                pieces.append(data[pos : pos + n])
                pos += n
        else:
            raise ValueError(f"unknown send mode {mode!r}")
        sent = 0
        for piece in pieces:
            if stop_on_reply and self._server_spoke():
                break
            try:
                self.sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                if stop_on_reply:
                    break
                raise
            sent += len(piece)
        return sent

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    # -- receiving ------------------------------------------------------------------------------
    def _fill(self) -> bool:
        """Reads more bytes into the buffer; False at end of stream. A reset after the server
        closed counts as end of stream."""
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(256 * 1024)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self._buf += chunk
        return True

    def _read_line(self, what: str) -> bytes:
        while True:
            idx = self._buf.find(b"\r\n")
            if idx >= 0:
                line = bytes(self._buf[:idx])
                del self._buf[: idx + 2]
                if b"\n" in line or b"\r" in line:
                    raise ProtocolError(f"bare CR or LF in {what}: {line!r}")
                return line
            if len(self._buf) > MAX_LINE:
                raise ProtocolError(f"{what} longer than {MAX_LINE} bytes")
            if not self._fill():
                raise ConnectionClosed(
                    f"connection closed while reading {what}; got {bytes(self._buf)!r}"
                )

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                raise ConnectionClosed(
                    f"connection closed after {len(self._buf)} of {n} body bytes"
                )
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def read_until_eof(self) -> bytes:
        while self._fill():
            pass
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def _read_fields(self, what: str) -> tuple[list[tuple[str, str]], bytes]:
        fields: list[tuple[str, str]] = []
        raw = bytearray()
        while True:
            line = self._read_line(what)
            raw += line + b"\r\n"
            if len(raw) > MAX_HEAD:
                raise ProtocolError(f"{what} larger than {MAX_HEAD} bytes")
            if not line:
                return fields, bytes(raw)
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or b" " in name:
                raise ProtocolError(f"malformed {what} line {line!r}")
            fields.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))

    def read_response(self, method: str = "GET", *, skip_interim: bool = True) -> Response:
        """Reads one response. 1xx interim responses are skipped unless `skip_interim` is False,
        in which case one is returned as a body-less Response."""
        while True:
            if not self._buf and not self._fill():
                raise ConnectionClosed("connection closed before a response")
            status_line = self._read_line("status line")
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise ProtocolError(f"bad status line {status_line!r}")
            if len(parts[1]) != 3 or not parts[1].isdigit():
                raise ProtocolError(f"bad status code in {status_line!r}")
            version = parts[0].decode("ascii")
            status = int(parts[1])
            reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
            headers, raw = self._read_fields("header")
            resp = Response(version, status, reason, headers, raw_head=status_line + b"\r\n" + raw)
            if 100 <= status < 200:
                if skip_interim:
                    continue
                return resp
            break
        te = resp.get_all("Transfer-Encoding")
        cl = resp.get_all("Content-Length")
        if method == "HEAD" or status in (204, 304):
            resp.framing = "none"
        elif te:
            if cl:
                raise ProtocolError(
                    f"response has both Transfer-Encoding and Content-Length: {resp!r}"
                )
            if [t.strip().lower() for t in ",".join(te).split(",")] != ["chunked"]:
                raise ProtocolError(f"unexpected Transfer-Encoding {te!r}")
            resp.framing = "chunked"
            resp.body, resp.trailers = self._read_chunked()
        elif cl:
            if len(cl) != 1 or not cl[0].isdigit():
                raise ProtocolError(f"bad Content-Length {cl!r}")
            resp.framing = "length"
            resp.body = self._read_exact(int(cl[0]))
        else:
            resp.framing = "close"
            resp.body = self.read_until_eof()
        return resp

    def _read_chunked(self) -> tuple[bytes, list[tuple[str, str]]]:
        body = bytearray()
        while True:
            line = self._read_line("chunk size")
            size_text = line.split(b";", 1)[0]
            if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
                raise ProtocolError(f"bad chunk size line {line!r}")
            size = int(size_text, 16)
            if size == 0:
                trailers, _ = self._read_fields("trailer")
                return bytes(body), trailers
            body += self._read_exact(size)
            if self._read_exact(2) != b"\r\n":
                raise ProtocolError("chunk data not followed by CRLF")

    def expect_closed(self, within: float = CLOSE_DEADLINE) -> None:
        """Asserts the server closes the connection promptly (well before any keep-alive idle
        timeout could be the reason) without sending anything more."""
        self.sock.settimeout(within)
        try:
            extra = self.read_until_eof()
        except socket.timeout:
            raise AssertionError(
                f"connection still open {within}s after the response; buffered: "
                f"{bytes(self._buf)[:300]!r}"
            ) from None
        if extra:
            raise AssertionError(
                f"expected the connection to close, got more bytes: {extra[:300]!r}"
            )

    def request(
        self,
        method: str = "GET",
        target: str = "/",
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        **kw,
    ) -> Response:
        self.send(build_request(method, target, headers, body, **kw))
        return self.read_response(method)


def get(port: int, target: str, headers: list[tuple[str, str]] | None = None, **kw) -> Response:
    """One request on a fresh connection (which is then closed)."""
    with Client(port) as c:
        return c.request("GET", target, headers, **kw)
