"""ferrule behind a real HAProxy (issue 5): `mode http` balancing across two ferrule instances
(both get traffic), a 20 MiB upload and a 200 x 64 KiB streamed download through it, and a
rolling restart of both instances under load from 4 client threads that loses no request.

Why the rolling restart loses nothing (see proxy_configs.HAPROXY_LB): SIGTERM makes ferrule
close its listener and idle keep-alive connections at once and finish in-flight requests with
`Connection: close`. A request HAProxy sends to the stopping instance then meets a refused
connection (`retry-on conn-failure`) or a pooled connection closed under it
(`retry-on empty-response`); `option redispatch 1` sends the retry to the other instance, and
the health check takes the stopped one out of rotation until it is back.
"""

from __future__ import annotations

import collections
import http.client
import signal
import threading
import time
from typing import TYPE_CHECKING

import proxy_configs as cfg
import pytest
from proxy_rig import check_download, check_upload, connection, free_port, get_environ, request

if TYPE_CHECKING:
    from typing_extensions import Self

pytestmark = pytest.mark.timeout(90)

#: Client threads sending requests during the rolling restart.
LOAD_THREADS = 4
#: Milliseconds each load request spends in the app, so some are in flight at every SIGTERM.
LOAD_REQUEST_MS = 20
#: Requests each instance answers before the next step of the restart.
PHASE_REQUESTS = 20
#: Seconds a restarted instance may take to get traffic again (health check `inter 1s rise 1`).
BACK_IN_ROTATION = 15.0


def _lb(backend, haproxy, names=("a", "b")):
    ports = [free_port() for _ in names]
    servers = [backend(port=p, instance=n) for p, n in zip(ports, names)]
    proxy = haproxy(
        cfg.HAPROXY_LB,
        SERVERS=cfg.haproxy_servers([f"127.0.0.1:{s.port}" for s in servers]),
        SEND_PROXY=cfg.HAPROXY_SEND_PROXY["off"],
    )
    return servers, proxy


def test_haproxy_balances_across_two_instances(backend, haproxy):
    _, proxy = _lb(backend, haproxy)
    seen = collections.Counter()
    for _ in range(20):
        status, _, body = request(proxy.port, "GET", "/id")
        assert status == 200
        seen[body.decode()] += 1
    assert set(seen) == {"a", "b"}, seen
    assert min(seen.values()) >= 5, seen  # roundrobin: about half each


def test_environ_through_haproxy(backend, haproxy):
    _, proxy = _lb(backend, haproxy)
    doc = get_environ(proxy.port, "/environ?q=1", headers={"Host": "www.example.test"})
    env = doc["environ"]
    assert doc["instance"] in ("a", "b")
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "q=1"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_HOST"] == "www.example.test"
    assert env["wsgi.url_scheme"] == "http"
    assert env["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_upload_through_haproxy(backend, haproxy, chunked):
    _, proxy = _lb(backend, haproxy)
    check_upload(proxy.port, chunked=chunked)


def test_streamed_download_through_haproxy(backend, haproxy):
    _, proxy = _lb(backend, haproxy)
    check_download(proxy.port)


class _Load:
    """`LOAD_THREADS` threads sending GET /slow over keep-alive connections until stopped;
    any exception or non-200 answer is a failure (the connection is then replaced)."""

    def __init__(self, port: int):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.by_instance: collections.Counter[str] = collections.Counter()
        self.failures: list[str] = []
        self.threads = [
            threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            for i in range(LOAD_THREADS)
        ]

    def _run(self) -> None:
        conn = connection(self.port)
        while not self.stop.is_set():
            try:
                conn.request("GET", f"/slow?ms={LOAD_REQUEST_MS}")
                resp = conn.getresponse()
                body = resp.read()
                ok = resp.status == 200
                what = body.decode() if ok else f"status {resp.status}: {body[:200]!r}"
            except (OSError, http.client.HTTPException) as exc:
                ok, what = False, f"{type(exc).__name__}: {exc}"
            with self.lock:
                if ok:
                    self.by_instance[what] += 1
                else:
                    self.failures.append(what)
            if not ok:
                conn.close()
                conn = connection(self.port)
        conn.close()

    def __enter__(self) -> Self:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def count(self, instance: str) -> int:
        with self.lock:
            return self.by_instance[instance]

    def wait_for_traffic(self, instance: str, timeout: float, at_least: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.count(instance) < at_least:
            assert time.monotonic() < deadline, (
                f"instance {instance!r} got fewer than {at_least} requests within {timeout}s: "
                f"{self.by_instance}, failures {self.failures[:5]}"
            )
            time.sleep(0.05)  # polling interval of a counter, not a readiness guess


@pytest.mark.timeout(120)
def test_rolling_restart_behind_haproxy_loses_no_request(backend, haproxy):
    (a, b), proxy = _lb(backend, haproxy, names=("a1", "b1"))
    with _Load(proxy.port) as load:
        # Each instance serves a while first, so HAProxy holds pooled connections to it and
        # has requests in flight when it is stopped.
        load.wait_for_traffic("a1", BACK_IN_ROTATION, at_least=PHASE_REQUESTS)
        load.wait_for_traffic("b1", BACK_IN_ROTATION, at_least=PHASE_REQUESTS)
        for old, new_name in ((a, "a2"), (b, "b2")):
            old.send_signal(signal.SIGTERM)
            assert old.wait_exit() == 0, old.log_text()
            backend(port=old.port, instance=new_name)
            load.wait_for_traffic(new_name, BACK_IN_ROTATION, at_least=PHASE_REQUESTS)
    print(f"rolling restart: {dict(load.by_instance)} answered, {len(load.failures)} failed")
    assert load.failures == [], (load.failures[:20], load.by_instance, proxy.log_text()[-4000:])
    assert set(load.by_instance) == {"a1", "b1", "a2", "b2"}, load.by_instance
