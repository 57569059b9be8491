"""Shared by the worker-process tests: the master's children, and a load generator that counts
failures."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers import rawhttp


def children(pid: int) -> set[int]:
    """Pids of `pid`'s live children (Linux /proc)."""
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        out.update(int(p) for p in text.split())
    return out


def threads(pid: int) -> dict[int, tuple[str, list[str]]]:
    """Each live thread of `pid` (Linux /proc): its name, and the fields of its
    /proc/PID/task/TID/stat after the parenthesised name (which may hold spaces), so the
    state (field 3 of proc(5)) is at index 0 and field N at index N - 3."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        out[int(task.name)] = (name, stat[stat.rindex(")") + 2 :].split())
    return out


def wait_children(pid: int, count: int, timeout: float = 15.0) -> set[int]:
    """Waits until `pid` has exactly `count` children; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        kids = children(pid)
        if len(kids) == count:
            return kids
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} worker processes, have {sorted(kids)}")
        time.sleep(0.05)


@dataclass
class Load:
    """`threads` clients sending GET `target` in a loop until `stop()`: even-numbered threads
    on keep-alive connections, odd-numbered ones on a fresh connection per request.

    A request on a reused keep-alive connection that the server closed before answering (no
    byte of response) is retried once on a new connection, as HTTP clients do for idempotent
    requests (RFC 9112 section 9.3.1); those are counted in `retried`. Anything else that is not
    a complete 200 is a failure, recorded in `errors`."""

    port: int
    threads: int = 8
    target: str = "/"
    ok: int = 0
    retried: int = 0
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i % 2 == 0,), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def _record(self, ok: bool, error: str = "", retried: bool = False) -> None:
        with self._lock:
            if ok:
                self.ok += 1
            else:
                self.errors.append(error)
            if retried:
                self.retried += 1

    def _one(self, client: rawhttp.Client) -> rawhttp.Response:
        client.send(rawhttp.build_request("GET", self.target))
        return client.read_response()

    def _run(self, keep_alive: bool) -> None:
        client: rawhttp.Client | None = None
        while not self._stop.is_set():
            retried = False
            fresh = True
            try:
                if client is None:
                    client = rawhttp.Client(self.port, timeout=10)
                    fresh = True
                else:
                    fresh = False
                try:
                    resp = self._one(client)
                except (
                    ConnectionError,
                    rawhttp.ProtocolError,
                    rawhttp.ConnectionClosed,
                    OSError,
                ) as e:
                    got_bytes = bool(client._buf)
                    client.close()
                    client = None
                    if fresh or got_bytes or isinstance(e, socket.timeout):
                        raise
                    retried = True
                    client = rawhttp.Client(self.port, timeout=10)
                    resp = self._one(client)
                if resp.status != 200:
                    self._record(False, f"status {resp.status}: {resp.body[:100]!r}", retried)
                else:
                    self._record(True, retried=retried)
                closes = (resp.get("connection") or "").lower() == "close"
                if not keep_alive or closes:
                    client.close()
                    client = None
            except Exception as e:  # noqa: BLE001 - every failure is counted
                how = "reused connection" if keep_alive and not fresh else "new connection"
                self._record(False, f"{type(e).__name__} ({how}): {e}", retried)
                if client is not None:
                    client.close()
                client = None
        if client is not None:
            client.close()

    def stop(self) -> Load:
        self._stop.set()
        for t in self._workers:
            t.join(15)
        return self

    def wait_requests(self, n: int, timeout: float = 15.0) -> None:
        """Waits until `n` more requests succeeded than when called."""
        target = self.ok + n
        deadline = time.monotonic() + timeout
        while self.ok < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"load made no progress: {self.ok} ok, {self.errors[:5]}")
            time.sleep(0.02)
