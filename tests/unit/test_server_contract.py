"""ferrule.server against a stand-in for the `_ferrule` extension: the Python half of the
contract (threads, signals, config JSON, serve() options) without building anything."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import sys
import threading
import types

import pytest

from ferrule import server
from ferrule.config import Config, ConfigError


class FakeServer:
    """Records how ferrule.server drives it. `run()` returns once every worker has started."""

    last: FakeServer | None = None

    def __init__(self, config_json: str, app, worker=None, on_timeout=None) -> None:
        self.config = json.loads(config_json)
        self.app = app
        self.stopped = threading.Event()
        self.started: list[tuple[str, bool]] = []
        self.lock = threading.Lock()
        self.sigint_during_run = None
        self.run_thread = None
        self.stop_calls = 0
        self.forced = False
        FakeServer.last = self

    def serve_worker(self) -> None:
        current = threading.current_thread()
        with self.lock:
            self.started.append((current.name, current.daemon))
        self.stopped.wait(10)

    def run(self) -> None:
        self.sigint_during_run = signal.getsignal(signal.SIGINT)
        self.run_thread = threading.current_thread()
        for _ in range(1000):
            with self.lock:
                if len(self.started) == self.config["threads"]:
                    break
            threading.Event().wait(0.005)
        self.stopped.set()

    def stop(self) -> None:
        self.stop_calls += 1
        self.stopped.set()


@pytest.fixture
def fake_extension(monkeypatch):
    module = types.ModuleType("ferrule._ferrule")
    module.Server = FakeServer  # type: ignore[attr-defined]
    logged: list[tuple[str, str]] = []
    module.log = lambda level, message: logged.append((level, message))  # type: ignore[attr-defined]
    module.logged = logged  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ferrule._ferrule", module)
    return module


def app(environ, start_response):
    start_response("200 OK", [])
    return [b""]


def test_run_starts_named_daemon_threads_and_sends_the_config(fake_extension):
    config = Config(threads=3, bind=("127.0.0.1:0",), log_level="debug")
    server.run(app, config)
    fake = FakeServer.last
    assert fake is not None and fake.app is app
    assert fake.config == json.loads(config.to_rust_json())
    assert sorted(fake.started) == [(f"ferrule-app-{i}", True) for i in range(3)]
    assert not [t for t in threading.enumerate() if t.name.startswith("ferrule-app-")]


def test_signals_are_default_while_running_and_restored_after(fake_extension):
    def handler(signum, frame):
        pass

    previous = signal.signal(signal.SIGINT, handler)
    try:
        server.run(app, Config(threads=1))
        assert FakeServer.last.sigint_during_run is signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_signals_untouched_off_the_main_thread(fake_extension):
    before = signal.getsignal(signal.SIGINT)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(server.run, app, Config(threads=1)).result(timeout=10)
    assert FakeServer.last.sigint_during_run is before


def test_run_stops_the_server_when_run_raises(fake_extension, monkeypatch):
    def boom(self):
        raise RuntimeError("runtime failed")

    monkeypatch.setattr(FakeServer, "run", boom)
    with pytest.raises(RuntimeError, match="runtime failed"):
        server.run(app, Config(threads=2))
    assert FakeServer.last.stop_calls == 1


def test_stuck_worker_is_logged_and_left_behind(fake_extension, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(FakeServer, "serve_worker", lambda self: release.wait(10))
    monkeypatch.setattr(FakeServer, "run", lambda self: None)
    monkeypatch.setattr(server, "WORKER_JOIN_TIMEOUT", 0.05)
    try:
        server.run(app, Config(threads=1))
        assert fake_extension.logged and fake_extension.logged[0][0] == "warning"
        assert "ferrule-app-0" in fake_extension.logged[0][1]
    finally:
        release.set()


def test_serve_takes_config_names(fake_extension):
    server.serve(app, bind=["127.0.0.1:0", "[::1]:0"], threads=2, keepalive_timeout=1)
    sent = FakeServer.last.config
    assert sent["bind"] == ["127.0.0.1:0", "[::1]:0"]
    assert sent["threads"] == 2
    assert sent["keepalive_timeout"] == 1.0


@pytest.mark.parametrize("name", ["keepalive", "workers", "chdir", "app"])
def test_serve_rejects_unknown_options_by_name(fake_extension, name):
    FakeServer.last = None
    with pytest.raises(TypeError, match=repr(name)):
        server.serve(app, **{name: 1})
    assert FakeServer.last is None


@pytest.mark.parametrize("name", ["max_requests", "max_worker_memory", "max_worker_lifetime"])
def test_serve_refuses_recycling_which_needs_a_master(fake_extension, name):
    FakeServer.last = None
    with pytest.raises(TypeError, match=f"{name!r} needs worker processes under a master"):
        server.serve(app, **{name: 10})
    assert FakeServer.last is None


def test_serve_rejects_bad_values_before_starting(fake_extension):
    FakeServer.last = None
    with pytest.raises(ConfigError, match="threads"):
        server.serve(app, threads=0)
    with pytest.raises(TypeError, match="WSGI callable"):
        server.serve("not an app")
    assert FakeServer.last is None
