"""Running a loaded app: the Python half of the contract with the `_ferrule` extension.

`_ferrule.Server(config_json, app)` binds the listeners; `threads` Python threads run
`server.serve_worker` (each takes jobs with the GIL released while it waits); the calling thread
blocks in `server.run()` (GIL released) until SIGINT/SIGTERM, handled in Rust, or `stop()`, then
the server drains gracefully and the workers return.

The extension is imported inside `run`, never at module import, so `ferrule.config` and
`ferrule.loader` work before it is built.
"""

from __future__ import annotations

import importlib
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any, Callable

from ferrule.config import RUST_OPTIONS, Config

__all__ = ["run", "serve"]

#: How long, in seconds, `run` waits in total for the app threads to return once the server has
#: stopped. `run()` only returns after the graceful drain, so the threads are normally already
#: done; a thread stuck in app code past this is left behind (it is a daemon thread).
WORKER_JOIN_TIMEOUT = 5.0

#: Signals whose Python handlers are set to SIG_DFL while Rust serves, so Rust's handlers replace
#: them cleanly (Python's handler would only set a flag that nobody checks while `run()` blocks).
_SERVER_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _default_signals() -> dict[int, Any]:
    """Sets SIG_DFL for the server's signals when on the main thread; returns what to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in _SERVER_SIGNALS:
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, signal.SIG_DFL)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        if handler is not None:  # None: set from C, not restorable from Python
            signal.signal(sig, handler)


def _join(
    workers: Sequence[threading.Thread], timeout: float, log: Callable[[str, str], None]
) -> None:
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    stuck = [w.name for w in workers if w.is_alive()]
    if stuck:
        log("warning", f"app threads still busy after shutdown, left behind: {', '.join(stuck)}")


def run(app: Callable[..., Any], config: Config) -> None:
    """Serves `app` with `config` until SIGINT/SIGTERM (main thread) or the server is stopped.

    Raises OSError when a listener cannot be bound (naming the address) and ValueError when the
    extension rejects the configuration. Called from a non-main thread, signal handlers are left
    alone.
    """
    _ferrule = importlib.import_module("ferrule._ferrule")

    server = _ferrule.Server(config.to_rust_json(), app)
    workers = [
        threading.Thread(target=server.serve_worker, daemon=True, name=f"ferrule-app-{i}")
        for i in range(config.threads)
    ]
    previous: dict[int, Any] = {}
    try:
        for worker in workers:
            worker.start()
        previous = _default_signals()
        server.run()
    except BaseException:
        server.stop()
        raise
    finally:
        _restore_signals(previous)
        _join([w for w in workers if w.ident is not None], WORKER_JOIN_TIMEOUT, _ferrule.log)


def serve(
    app: Callable[..., Any],
    bind: str | Sequence[str] = "127.0.0.1:8000",
    threads: int | None = None,
    **options: Any,
) -> None:
    """Serves a WSGI `app` until SIGINT/SIGTERM (or the server stops).

    `options` take the config names of the server options (see `ferrule.config.Config`, e.g.
    ``log_level="debug"``, ``keepalive_timeout=10``); an unknown name raises TypeError naming it,
    a bad value raises ValueError (`ConfigError`) naming the option.
    """
    if not callable(app):
        raise TypeError(f"serve() needs a WSGI callable, got {type(app).__name__}")
    allowed = {spec.name for spec in RUST_OPTIONS}
    for name in options:
        if name not in allowed:
            raise TypeError(f"serve() got an unknown option {name!r}")
    if threads is not None:
        options["threads"] = threads
    run(app, Config(bind=bind, **options))
