"""Hostile-traffic load tests (issue 3, "Proof"): bounded, loopback only, each well under 60 s.

What each proves:
- slowloris: 1,000 connections trickling a head byte per second do not stop normal traffic;
- idle: 5,000 (and 50,000, when the file limit allows) idle keep-alive connections are held
  at most 1.25 KiB each (the per-connection figure is printed; run with `-s` to see it) while
  normal traffic is served;
- slow upload / slow reader: a client uploading at 1 B/s or never reading a 50 MiB response
  does not hold the only Python thread, and memory stays bounded;
- overload: `--worker-connections` (backlog or fast 503), `--max-queued-requests` and
  `--queue-timeout` (503 + Retry-After, the app never runs).

Every socket has a timeout; every server is stopped by the `ferrule_server` fixture.
"""

from __future__ import annotations

import json
import resource
import selectors
import socket
import threading
import time

import pytest

from helpers import rawhttp

pytestmark = pytest.mark.load

APP = "load_app:application"


# --- helpers -------------------------------------------------------------------------------------


def need_files(n: int) -> None:
    """Raises this process's soft RLIMIT_NOFILE to at least `n` (servers started afterwards
    inherit it), or skips the test when the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= n:
        return
    if hard != resource.RLIM_INFINITY and hard < n:
        pytest.skip(f"needs {n} file descriptors; the hard RLIMIT_NOFILE is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/PID/status")


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


HELLO = rawhttp.build_request("GET", "/hello")


class Traffic:
    """Normal clients: `n` threads sending GET /hello (a fresh connection each time, so the
    accept path is exercised too) until stopped; records every outcome and latency."""

    def __init__(self, port: int, n: int = 3):
        self.port = port
        self.ok = 0
        self.failures: list[str] = []
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                r = rawhttp.get(self.port, "/hello")
                good = r.status == 200 and r.body == b"hello world"
                what = f"status {r.status}"
            except (OSError, AssertionError) as e:
                good, what = False, repr(e)
            dt = time.monotonic() - t0
            with self._lock:
                self.latencies.append(dt)
                if good:
                    self.ok += 1
                else:
                    self.failures.append(what)
            time.sleep(0.01)

    def check(self, min_ok: int, max_latency: float) -> None:
        assert not self.failures, f"{len(self.failures)} failed: {self.failures[:5]}"
        assert self.ok >= min_ok, f"only {self.ok} requests answered"
        worst = max(self.latencies)
        assert worst < max_latency, f"slowest normal request took {worst:.2f}s"


def stats(port: int) -> dict:
    return json.loads(rawhttp.get(port, "/stats").body)


# --- slowloris -----------------------------------------------------------------------------------


def test_slowloris_does_not_stop_normal_traffic(ferrule_server):
    n = 1000
    need_files(n + 200)
    srv = ferrule_server(APP, "--threads", "2", "--header-timeout", "60")
    head = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    socks = [connect(srv.port) for _ in range(n)]
    try:
        with Traffic(srv.port) as traffic:
            # Ten rounds, one head byte per connection per second.
            for i in range(10):
                round_start = time.monotonic()
                for s in socks:
                    s.send(head[i : i + 1])
                time.sleep(max(0.0, 1.0 - (time.monotonic() - round_start)))
        traffic.check(min_ok=50, max_latency=2.0)
        # The slow clients are still connected and unanswered (not dropped to make room).
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        assert sel.select(0) == [], "a slowloris connection got an answer or was closed"
        sel.close()
        print(
            f"\nslowloris: {traffic.ok} normal requests answered alongside {n} slow clients, "
            f"slowest {max(traffic.latencies) * 1000:.0f} ms"
        )
    finally:
        for s in socks:
            s.close()


# --- idle keep-alive connections -----------------------------------------------------------------


#: Bytes of server RSS allowed per idle keep-alive connection. Issue 3's bar was 2 KiB, issue
#: 7's is 1 KB; a release build measures about 1,060 bytes (a 512-byte task holding the
#: connection, tokio's socket registration in a 384-byte block, a 24-byte slot in the idle
#: table, malloc's padding for the 128-byte alignment); see benchmarks/idle_memory.py.
IDLE_BYTES_PER_CONNECTION = 1280
#: Connections per client source address: loopback has about 28,000 ephemeral ports per
#: (source, destination) pair, so past this the client binds 127.0.0.2, 127.0.0.3, ...
PER_SOURCE_ADDRESS = 25_000


def connect_from(port: int, i: int, n: int) -> socket.socket:
    if n <= PER_SOURCE_ADDRESS:
        return connect(port)
    s = socket.socket()
    s.settimeout(10.0)
    s.bind((f"127.0.0.{2 + i // PER_SOURCE_ADDRESS}", 0))
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


@pytest.mark.timeout(120)
@pytest.mark.parametrize("n", [5_000, 50_000])
def test_idle_keepalive_connections_hold_bounded_memory(ferrule_server, n):
    need_files(n + 200)
    srv = ferrule_server(
        APP, "--threads", "2", "--keep-alive", "120", "--worker-connections", str(n + 100)
    )
    # Warm up (first requests allocate the runtime's and the threads' steady state).
    warm = [connect(srv.port) for _ in range(50)]
    for s in warm:
        s.sendall(HELLO)
    for s in warm:
        s.recv(4096)
        s.close()
    time.sleep(0.5)
    before = rss_kib(srv.pid)
    socks = []
    try:
        t0 = time.monotonic()
        for i in range(n):
            s = connect_from(srv.port, i, n)
            socks.append(s)
            s.sendall(HELLO)
            data = s.recv(4096)
            assert data.startswith(b"HTTP/1.1 200"), data[:100]
        opened = time.monotonic() - t0
        time.sleep(1.0)  # let the server settle into idle
        after = rss_kib(srv.pid)
        per_conn = (after - before) * 1024 / n
        print(
            f"\nidle: RSS {before} KiB -> {after} KiB for {n} idle keep-alive connections: "
            f"{per_conn:.0f} bytes per connection (opened in {opened:.1f}s)"
        )
        with Traffic(srv.port) as traffic:
            time.sleep(3)
        traffic.check(min_ok=20, max_latency=2.0)
        assert per_conn <= IDLE_BYTES_PER_CONNECTION, f"{per_conn:.0f} bytes per idle connection"
        # The held connections are still usable (keep-alive really held them).
        for s in socks[:: n // 10]:
            s.sendall(HELLO)
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for s in socks:
            s.close()


# --- slow upload ---------------------------------------------------------------------------------


def test_slow_upload_does_not_hold_the_python_thread(ferrule_server):
    srv = ferrule_server(APP, "--threads", "1")
    body = b"0123456789"  # far under --max-buffered-body: buffered before the app runs
    with srv.client() as up:
        up.send(rawhttp.build_request("POST", "/upload", body=body)[: -len(body)])
        with Traffic(srv.port, n=2) as traffic:
            for i in range(len(body) - 1):
                up.send(body[i : i + 1])
                time.sleep(0.5)
        traffic.check(min_ok=20, max_latency=1.5)
        up.send(body[-1:])
        r = up.read_response()
        assert (r.status, r.body) == (200, b"10")


# --- slow reader ---------------------------------------------------------------------------------


def non_reading_client(port: int, target: str) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(rawhttp.build_request("GET", target))
    return s


def test_unread_50mib_response_frees_the_thread_and_bounds_memory(ferrule_server):
    srv = ferrule_server(APP, "--threads", "1", "--write-timeout", "30")
    assert srv.get("/hello").status == 200
    before = rss_kib(srv.pid)
    s = non_reading_client(srv.port, "/big?mb=50")
    try:
        # The only Python thread is free: the 50 MiB went to the connection in one part.
        with Traffic(srv.port, n=2) as traffic:
            time.sleep(3)
        traffic.check(min_ok=20, max_latency=2.0)
        grown = (rss_kib(srv.pid) - before) / 1024
        print(f"\nslow reader: RSS grew {grown:.1f} MiB while a 50 MiB response sat unread")
        # The body is held once (Python's bytes object, shared with Rust, no copy) plus margin.
        assert grown < 50 + 30, f"RSS grew {grown:.1f} MiB"
    finally:
        s.close()


def test_unread_generator_response_is_bounded_by_the_write_timeout(ferrule_server):
    srv = ferrule_server(APP, "--threads", "1", "--write-timeout", "2")
    total_chunks = 200 * 1024 * 1024 // (64 * 1024)
    s = non_reading_client(srv.port, "/gen?mb=200")
    try:
        # The thread is blocked pushing chunks to a client that reads nothing; the write timeout
        # (2 s without progress) closes the connection and frees it.
        t0 = time.monotonic()
        r = rawhttp.get(srv.port, "/hello")
        waited = time.monotonic() - t0
        assert r.status == 200
        assert waited < 2 + 4, f"the thread was held {waited:.1f}s"
        st = stats(srv.port)
        assert st["gen_closed"] == 1, st  # the app's iterable was closed (PEP 3333)
        assert st["gen_chunks"] < total_chunks / 4, st  # back-pressure: it stopped early
    finally:
        s.close()


# --- connection cap ------------------------------------------------------------------------------


def test_connection_cap_leaves_extra_connections_in_the_backlog(ferrule_server):
    srv = ferrule_server(APP, "--worker-connections", "10", "--keep-alive", "60")
    held = []
    try:
        for _ in range(10):
            c = srv.client()
            assert c.request("GET", "/hello").status == 200
            held.append(c)
        extra = srv.client(timeout=1.0)
        extra.send(HELLO)
        with pytest.raises(socket.timeout):
            extra.read_response()  # accepted by the kernel, not by ferrule
        held.pop().close()
        extra.sock.settimeout(5)
        r = extra.read_response()
        assert r.status == 200
        extra.close()
        srv.wait_for_log(r"Connection limit \(10\) reached: new connections wait")
    finally:
        for c in held:
            c.close()


def test_connection_cap_with_overload_503(ferrule_server):
    srv = ferrule_server(APP, "--worker-connections", "10", "--overload-503", "--keep-alive", "60")
    held = []
    try:
        for _ in range(10):
            c = srv.client()
            assert c.request("GET", "/hello").status == 200
            held.append(c)
        for _ in range(5):
            with srv.client(timeout=5) as extra:
                extra.send(HELLO)
                r = extra.read_response()
                assert r.status == 503
                assert r.get("Retry-After") == "1"
                assert r.get("Connection") == "close"
                extra.expect_closed()
        # One warning for the burst, not one per connection.
        time.sleep(0.2)
        warnings = [ln for ln in srv.lines if "Connection limit (10) reached" in ln]
        assert len(warnings) == 1, warnings
        held.pop().close()
        time.sleep(0.2)
        assert srv.get("/hello").status == 200  # a freed slot serves again
    finally:
        for c in held:
            c.close()


# --- request queue -------------------------------------------------------------------------------


def test_queue_bound_answers_503_with_retry_after(ferrule_server):
    srv = ferrule_server(APP, "--threads", "1", "--max-queued-requests", "2")
    busy = srv.client()
    busy.send(rawhttp.build_request("GET", "/slow?ms=2000"))
    time.sleep(0.5)  # the only thread is now running it
    queued = [srv.client() for _ in range(2)]
    for c in queued:
        c.send(rawhttp.build_request("GET", "/slow?ms=10"))
    time.sleep(0.3)
    t0 = time.monotonic()
    r = srv.get("/hello")
    assert r.status == 503 and r.get("Retry-After") == "1", r
    assert time.monotonic() - t0 < 1.0, "the refusal was not immediate"
    assert busy.read_response().status == 200
    for c in queued:
        assert c.read_response().status == 200
        c.close()
    busy.close()
    assert stats(srv.port)["slow_ran"] == 3
    srv.wait_for_log(r"Request queue full \(2 waiting")


def test_queue_timeout_answers_503_without_running_the_app(ferrule_server):
    srv = ferrule_server(APP, "--threads", "1", "--queue-timeout", "0.5")
    busy = srv.client()
    busy.send(rawhttp.build_request("GET", "/slow?ms=2500"))
    time.sleep(0.5)  # the only thread is now running it
    with srv.client() as late:
        t0 = time.monotonic()
        late.send(rawhttp.build_request("GET", "/slow?ms=1"))
        r = late.read_response()
        waited = time.monotonic() - t0
        assert r.status == 503 and r.get("Retry-After") == "1", r
        assert 0.4 < waited < 1.5, f"503 after {waited:.2f}s, expected ~0.5s"
        late.expect_closed()
    assert busy.read_response().status == 200
    busy.close()
    time.sleep(0.2)  # the thread drops the withdrawn job
    assert stats(srv.port)["slow_ran"] == 1  # only the busy request ever ran
    srv.wait_for_log(r"Queue timeout: a request waited 0\.5s")
