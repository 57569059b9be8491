#!/usr/bin/env python3
"""Memory per idle keep-alive connection (issue 3's bar: at most 2 KiB each).

Starts `ferrule APP` (examples/hello.py by default) on 127.0.0.1, warms it up, reads the
server's VmRSS, opens N keep-alive connections that each make one request and then stay
silent, reads VmRSS again and prints the difference per connection. Repeats for every N given
(a fresh server each time). Standard library only.

    benchmarks/idle_memory.py                      # N = 5,000 and 50,000
    benchmarks/idle_memory.py -n 2000 --hold 60    # keep them open (e.g. to attach heaptrack)
    benchmarks/idle_memory.py --python /path/to/venv/bin/python

Descriptors: the server needs one per connection, and so does this script. It raises its soft
RLIMIT_NOFILE up to the hard limit (the server inherits it) and reports an N that does not fit
as skipped. Past 25,000 connections the client spreads its source addresses over 127.0.0.2,
127.0.0.3, ... so that loopback's ephemeral ports do not run out.

What is measured is the server process's resident memory (for a master with workers, the sum
over the master and its children): the kernel's socket memory is not in it.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
LISTEN_RE = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+) \((\d+)\)")
#: Descriptors the server and this script need besides the connections.
SPARE_FILES = 200
#: Connections per client source address (loopback has ~28,000 ephemeral ports per pair).
PER_SOURCE = 25_000
WARMUP_CONNECTIONS = 50
#: Seconds given to the server to settle after the warm-up and after opening the connections.
SETTLE = 1.0


def rss_bytes(pid: int) -> int:
    """VmRSS of `pid` plus its children's (a master's workers), in bytes."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    total = 0
    for p in pids:
        with open(f"/proc/{p}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def raise_file_limit(n: int) -> int:
    """Raises the soft RLIMIT_NOFILE towards `n` (at most the hard limit); returns the new one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


class Server:
    def __init__(self, python: str, app: str, n: int, args: list[str], env: dict[str, str]):
        cmd = [python, "-m", "ferrule", "--bind", "127.0.0.1:0", "--keep-alive", "600",
               "--worker-connections", str(n + WARMUP_CONNECTIONS + 100), "--log-level", "info",
               *args, app]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, cwd=REPO
        )
        self.port = self.pid = 0
        ready = threading.Event()

        def drain() -> None:
            assert self.proc.stderr is not None
            for raw in iter(self.proc.stderr.readline, b""):
                m = LISTEN_RE.search(raw.decode("utf-8", "replace"))
                if m and not ready.is_set():
                    self.port, self.pid = int(m[1]), int(m[2])
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(30):
            self.stop()
            raise SystemExit(f"ferrule did not report its address: {' '.join(cmd)}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def request(port: int, source: str | None = None) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    if source is not None:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the response")
        data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"unexpected answer {data[:60]!r}")
    return s


def measure(n: int, opts: argparse.Namespace) -> None:
    limit = raise_file_limit(n + SPARE_FILES)
    if limit < n + SPARE_FILES:
        print(f"N={n:>6}: skipped: needs {n + SPARE_FILES} descriptors, RLIMIT_NOFILE is {limit}")
        return
    env = dict(os.environ)
    env.pop("WEB_CONCURRENCY", None)
    if opts.pythonpath:
        env["PYTHONPATH"] = opts.pythonpath
    server = Server(opts.python, opts.app, n, opts.server_arg, env)
    socks: list[socket.socket] = []
    try:
        for _ in range(WARMUP_CONNECTIONS):
            request(server.port).close()
        time.sleep(SETTLE)
        base = rss_bytes(server.pid)
        t0 = time.monotonic()
        for i in range(n):
            source = None if n <= PER_SOURCE else f"127.0.0.{2 + i // PER_SOURCE}"
            socks.append(request(server.port, source))
        opened = time.monotonic() - t0
        time.sleep(SETTLE)
        held = rss_bytes(server.pid)
        # The connections were held, not dropped: a sample of them still answers.
        for s in socks[:: max(1, n // 20)]:
            s.sendall(REQUEST)
            if not s.recv(4096).startswith(b"HTTP/1.1 200"):
                raise ConnectionError("an idle connection stopped answering")
        per_conn = (held - base) / n
        print(
            f"N={n:>6}: RSS {base / 2**20:.1f} MiB idle server -> {held / 2**20:.1f} MiB with "
            f"{n} idle connections: {per_conn:,.0f} B/conn (opened in {opened:.1f}s)",
            flush=True,
        )
        if opts.hold:
            print(f"holding for {opts.hold}s (server pid {server.pid})", flush=True)
            time.sleep(opts.hold)
    finally:
        for s in socks:
            s.close()
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", "--connections", type=lambda s: [int(x) for x in s.split(",")],
                   default=[5_000, 50_000], help="comma-separated counts (5000,50000)")  # fmt: skip
    p.add_argument("--app", default="examples/hello.py")
    p.add_argument("--python", default=sys.executable, help="the Python with ferrule installed")
    p.add_argument("--pythonpath", help="PYTHONPATH for the server (e.g. another ferrule build)")
    p.add_argument("--server-arg", action="append", default=[], help="extra ferrule option")
    p.add_argument("--hold", type=float, default=0, help="seconds to keep the connections open")
    opts = p.parse_args()
    for n in opts.connections:
        measure(n, opts)


if __name__ == "__main__":
    main()
