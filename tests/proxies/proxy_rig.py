"""Runs real nginx, Apache httpd and HAProxy processes for a test, and the clients that talk to them.

Each proxy runs in the foreground as a child of the test (its own session, so teardown can
signal its whole process group by id), with a generated configuration, pid file and logs in the
test's temporary directory, listening on a loopback port found free by binding port 0 (the port
is handed to the proxy; if another process takes it in between, the start is retried once on a
new port). Readiness is a successful TCP connection to that port before a deadline, never a
sleep. A missing binary skips the test locally and fails it in CI (`CI=true`), where .ci/run
installs the Debian packages.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

#: Seconds a proxy may take to accept connections after it was started.
READY_TIMEOUT = 15.0
#: Seconds a proxy may take to exit after SIGTERM before its process group is killed.
STOP_TIMEOUT = 10.0
#: Seconds any client socket operation may block.
CLIENT_TIMEOUT = 30.0
#: Where the sbin programs live when PATH lacks the sbin directories (non-root shells).
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
#: Log text meaning "the port was taken": the start is retried once on another port.
_PORT_TAKEN = ("Address already in use", "could not bind", "cannot bind socket")
#: Debian's module directory first, then other common layouts.
APACHE_MODULE_DIRS = (
    "/usr/lib/apache2/modules",
    "/usr/lib64/httpd/modules",
    "/usr/lib/httpd/modules",
)


class ProxyFailed(AssertionError):
    pass


def find_program(*names: str, package: str) -> str:
    """The path of the first of `names` found; skips the test (fails it when CI=true) if none."""
    for name in names:
        found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))
        if found:
            return found
    message = (
        f"{' / '.join(names)} not installed (Debian package {package}; "
        f"`apt-get install -y {package}`)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must provide real proxies: {message}", pytrace=False)
    pytest.skip(message)


def apache_modules_dir() -> str:
    for d in APACHE_MODULE_DIRS:
        if Path(d, "mod_proxy.so").is_file():
            return d
    message = f"no Apache module directory with mod_proxy.so among {APACHE_MODULE_DIRS}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


class ProxyProcess:
    """One proxy process: `argv` in its own session, stdout+stderr in `output_path`."""

    def __init__(self, name: str, argv: list[str], workdir: Path, port: int, logs: list[Path]):
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.port = port
        #: Files worth showing when something fails (the proxy's own error/access logs).
        self.logs = logs
        self.output_path = workdir / "output.log"
        self.proc: subprocess.Popen | None = None
        #: Set once the proxy accepted a connection.
        self.ready = False
        #: Wall-clock time (`time.time()`) when `stop()` sent SIGTERM, for telling a crash while
        #: serving from one in the proxy's own shutdown (`crashes_while_serving`).
        self.stop_sent: float | None = None

    def start(self) -> ProxyProcess:
        with open(self.output_path, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise ProxyFailed(
                    f"{self.name} exited with {self.proc.returncode} before listening on "
                    f"{self.port}\n{self.log_text()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ProxyFailed(
                    f"{self.name} did not listen on {self.port} within {READY_TIMEOUT}s\n"
                    f"{self.log_text()}"
                )
            time.sleep(0.02)  # polling interval of the readiness probe, not a readiness guess
        self.ready = True
        return self

    def port_was_taken(self) -> bool:
        return any(marker in self.log_text() for marker in _PORT_TAKEN)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM to the proxy, then SIGKILL to its process group if it lingers."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.stop_sent = time.time()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers/children left behind, if any
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(STOP_TIMEOUT)
        return self.proc.returncode

    def crashes_while_serving(self) -> list[str]:
        """Fatal lines of the proxy's logs (`emerg`, `segfault`, Apache's AH00052 "child pid N
        exit signal ..."), except an AH00052 stamped after `stop()` sent SIGTERM: a child that
        crashes in Apache's own shutdown (seen twice in the mod_proxy_uwsgi tests, each time
        with every response already checked) is Apache's fault, not a failure of
        the server behind it. Apache stamps lines in local time with microseconds."""
        fatal = []
        text = self.log_text()
        for line in re.findall(r"^.*\b(?:emerg|segfault|AH00052)\b.*$", text, re.MULTILINE):
            stamp = re.match(r"\[(\w{3} \w{3} \d{2} [\d:.]+ \d{4})\]", line)
            if "AH00052" in line and stamp and self.stop_sent is not None:
                at = datetime.datetime.strptime(stamp.group(1), "%a %b %d %H:%M:%S.%f %Y")
                if at.timestamp() >= self.stop_sent:
                    continue
            fatal.append(line)
        return fatal

    def log_text(self) -> str:
        parts = []
        for path in (self.output_path, *self.logs):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            parts.append(f"--- {path.name}:\n{text[-8000:]}")
        return "\n".join(parts)


def established_peers(port: int) -> set[int]:
    """Source ports of the ESTABLISHED IPv4 connections to local port `port` (from
    /proc/net/tcp): how many connections a proxy holds open to ferrule, and which."""
    peers = set()
    with open("/proc/net/tcp") as f:
        next(f)  # header line
        for line in f:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if state == "01" and int(local.split(":")[1], 16) == port:
                peers.add(int(remote.split(":")[1], 16))
    return peers


# -- clients ----------------------------------------------------------------------------------


def connection(port: int, source: str | None = None) -> http.client.HTTPConnection:
    """A client connection to 127.0.0.1:`port`, from loopback address `source` if given
    (127.0.0.2 lets a test tell the client from the proxy, which connects from 127.0.0.1)."""
    return http.client.HTTPConnection(
        "127.0.0.1",
        port,
        timeout=CLIENT_TIMEOUT,
        source_address=(source, 0) if source else None,
    )


def request(
    port: int,
    method: str,
    path: str,
    body=None,
    headers: dict[str, str] | None = None,
    source: str | None = None,
    chunked: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    conn = connection(port, source)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


#: A second loopback address for clients, so the app can tell the client (127.0.0.2) from the
#: proxy (127.0.0.1) in REMOTE_ADDR.
CLIENT_ADDR = "127.0.0.2"


def get_environ(port: int, path: str = "/environ", **kw) -> dict:
    """`/environ` of tests/apps/proxy_app.py through the proxy: {"instance", "environ"}; each
    environ value flattened to its value."""
    status, _, data = request(port, "GET", path, **kw)
    assert status == 200, (status, data[:500])
    doc = json.loads(data)
    doc["environ"] = {k: v["value"] for k, v in doc["environ"].items()}
    return doc


def upload_data(size: int, seed: int = 5) -> bytes:
    """Deterministic, incompressible upload bytes."""
    return random.Random(seed).randbytes(size)


def check_upload(port: int, size: int = 20 * 1024 * 1024, chunked: bool = False) -> dict:
    """POSTs `size` bytes to `/upload` (Content-Length, or chunked from 1 MiB pieces) and checks
    the app saw exactly those bytes. Returns the app's answer."""
    data = upload_data(size)
    body = (data[i : i + (1 << 20)] for i in range(0, size, 1 << 20)) if chunked else data
    headers = {"Content-Type": "application/octet-stream"}
    status, _, answer = request(
        port, "POST", "/upload", body=body, headers=headers, chunked=chunked
    )
    assert status == 200, (status, answer[:500])
    got = json.loads(answer)
    assert got["length"] == size
    assert got["sha256"] == hashlib.sha256(data).hexdigest()
    return got


def chunk_bytes(i: int, size: int) -> bytes:
    """Chunk `i` of proxy_app's `/download` (same definition as tests/apps/proxy_app.py)."""
    pattern = i.to_bytes(4, "big")
    return (pattern * (size // 4 + 1))[:size]


def check_download(port: int, n: int = 200, size: int = 64 * 1024) -> dict[str, str]:
    """GETs `/download` (`n` generator chunks of `size` bytes), reading it in pieces, and checks
    length and hash. Returns the response headers."""
    expected = hashlib.sha256()
    for i in range(n):
        expected.update(chunk_bytes(i, size))
    conn = connection(port)
    try:
        conn.request("GET", f"/download?n={n}&size={size}")
        resp = conn.getresponse()
        assert resp.status == 200
        got = hashlib.sha256()
        length = 0
        while True:
            piece = resp.read(256 * 1024)
            if not piece:
                break
            got.update(piece)
            length += len(piece)
        headers = {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
    assert length == n * size
    assert got.hexdigest() == expected.hexdigest()
    return headers
