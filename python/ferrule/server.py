"""Running a loaded app: the Python half of the contract with the `_ferrule` extension.

`_ferrule.Server(config_json, app)` binds the listeners; `threads` Python threads run
`server.serve_worker` (each takes jobs with the GIL released while it waits); the calling thread
blocks in `server.run()` (GIL released) until SIGINT/SIGTERM, handled in Rust, or `stop()`, then
the server drains gracefully and the workers return. A second SIGINT/SIGTERM (during the drain,
handled in Rust, or while `run` waits for the app threads, handled here) ends the wait at once.

The extension is imported inside `run`, never at module import, so `ferrule.config` and
`ferrule.loader` work before it is built. `run` is also what the lean serving process
(`ferrule.lean`) calls, so this module imports nothing at module level beyond the standard
library's basics: `ferrule.config` (with `dataclasses`, `argparse`, `typing`) only where a
master or `serve()` needs it.
"""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums import `enum` (0.3 MB), unused here
import gc
import importlib
import os
import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Callable, Protocol

    from ferrule.config import Config

    class ServeConfig(Protocol):
        """What `run` reads of its configuration: `ferrule.config.Config`, or the settings a
        lean serving process got from the CLI (`ferrule.lean.Settings`)."""

        @property
        def threads(self) -> int: ...
        @property
        def capture_output(self) -> bool: ...
        @property
        def error_log(self) -> str: ...
        @property
        def access_log(self) -> str | None: ...
        @property
        def reload(self) -> bool: ...
        def to_rust_json(self) -> str: ...


__all__ = ["run", "run_workers", "serve"]

#: How long, in seconds, `run` waits in total for the app threads to return once the server has
#: stopped. `run()` only returns after the graceful drain, so the threads are normally already
#: done; a thread stuck in app code past this is left behind (it is a daemon thread).
WORKER_JOIN_TIMEOUT = 5.0

#: Signals whose Python handlers are set to SIG_DFL while Rust serves, so Rust's handlers replace
#: them cleanly (Python's handler would only set a flag that nobody checks while `run()` blocks).
_SERVER_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


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


class _StopWaiting(Exception):
    """Raised by the signal handler `_join` installs: a signal arrived while it waited."""


def _stop_waiting(signum: int, frame: Any) -> None:
    raise _StopWaiting(_SIGNAL_NAMES.get(signum, str(signum)))


def _ignore(signum: int, frame: Any) -> None:
    """Between the end of `_join` and `run` restoring the caller's handlers: nothing to do."""


def _join(
    workers: Sequence[threading.Thread],
    timeout: float,
    log: Callable[[str, str], None],
    catch_signals: bool = False,
) -> None:
    """Waits up to `timeout` seconds for the app threads. With `catch_signals` (main thread,
    `run` owns the signals; the caller restores them afterwards), SIGINT/SIGTERM while waiting
    stop the wait at once: the operator asked again, the process exits promptly. Rust no longer
    handles them once `run()` has returned."""
    if catch_signals:
        for sig in _SERVER_SIGNALS:
            signal.signal(sig, _stop_waiting)
    deadline = time.monotonic() + timeout
    try:
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
    except _StopWaiting as e:
        log("warning", f"Handling signal: {e} during shutdown: not waiting for the app threads")
    finally:
        if catch_signals:
            for sig in _SERVER_SIGNALS:
                signal.signal(sig, _ignore)
    stuck = [w.name for w in workers if w.is_alive()]
    if stuck:
        log("warning", f"app threads still busy after shutdown, left behind: {', '.join(stuck)}")


def run(
    app: Callable[..., Any], config: ServeConfig, worker_process: Any = None, hooks: Any = None
) -> None:
    """Serves `app` with `config` until SIGINT/SIGTERM (main thread) or the server is stopped.

    Raises OSError when a listener cannot be bound (naming the address) and ValueError when the
    extension rejects the configuration. Called from a non-main thread, signal handlers are left
    alone. `worker_process` (a `_ferrule.Worker`, in a forked worker) serves on the listeners the
    master bound; its server tells the master it is ready once it can take signals. `hooks`
    (`ferrule.hooks.Hooks`) are the server hooks (see that module for which run here).
    """
    _ferrule = importlib.import_module("ferrule._ferrule")
    if hooks:
        app = hooks.wrap_app(app)

    if config.capture_output:  # in the process that serves: each worker captures its own
        from ferrule.logsetup import capture_output

        capture_output(_ferrule.log, config.error_log, config.access_log)
    # The `worker_abort` hook runs when --timeout fires (see ferrule.hooks).
    on_timeout = hooks.on_timeout() if hooks else None
    server = _ferrule.Server(
        config.to_rust_json(), app, worker=worker_process, on_timeout=on_timeout
    )
    if hooks:
        hooks.attach_log(_ferrule.log)
        if worker_process is None:
            hooks.single_process_started()
        hooks.worker_ready(app)
    if config.reload and worker_process is not None:
        from ferrule.config import Config
        from ferrule.reload import start_watcher

        assert isinstance(config, Config)  # --reload always runs under a master

        start_watcher(config, worker_process.retire, _ferrule.log)
    workers = [
        threading.Thread(target=server.serve_worker, daemon=True, name=f"ferrule-app-{i}")
        for i in range(config.threads)
    ]
    previous: dict[int, Any] = {}
    try:
        for worker in workers:
            worker.start()
        previous = _default_signals()
        # In a worker, run() tells the master READY once its signal handlers are in place.
        server.run()
    except BaseException:
        server.stop()
        raise
    finally:
        # After a forced stop (a second signal during the drain) nobody waits for the app.
        timeout = 0.0 if server.forced else WORKER_JOIN_TIMEOUT
        try:
            started = [w for w in workers if w.ident is not None]
            _join(started, timeout, _ferrule.log, catch_signals=bool(previous))
        finally:
            _restore_signals(previous)
    if hooks:
        hooks.worker_stopped(server.interrupted)


def _describe_load_error(exc: BaseException) -> str:
    """What the CLI prints when the app cannot be loaded: the app's traceback when its own code
    raised, then one `Error: ...` line."""
    import traceback

    from ferrule.loader import AppLoadError

    if isinstance(exc, AppLoadError):
        text = ""
        if exc.show_traceback and exc.__cause__ is not None:
            cause = exc.__cause__
            text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
        return f"{text}Error: {exc}"
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) + f"Error: {exc}"


def _arm_boot_dump(config: Config) -> Callable[[], None]:
    """`--boot-timeout` in a worker about to load the app: if loading outlasts the deadline,
    faulthandler's watchdog thread writes every thread's Python stack to the error log (it needs
    no GIL, so an import stuck in C code is shown too); the master kills the worker a second
    later. Returns the function that disarms it (and closes the log descriptor it opened)."""
    if config.boot_timeout <= 0:
        return lambda: None
    import faulthandler  # built in: nothing to load

    fd = 2  # the error log is stderr ("-"), or its file could not be opened: stderr
    opened = False
    if config.error_log != "-":
        try:
            # faulthandler writes to a raw descriptor; the same file the Rust log appends to.
            fd = os.open(config.error_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC)
            opened = True
        except OSError:
            pass
    faulthandler.dump_traceback_later(config.boot_timeout, exit=False, file=fd)

    def disarm() -> None:
        faulthandler.cancel_dump_traceback_later()
        if opened:
            os.close(fd)

    return disarm


def run_workers(
    config: Config,
    load: Callable[[], Callable[..., Any]],
    app: Callable[..., Any] | None = None,
    launch: Any = None,
    hooks: Any = None,
) -> int:
    """Runs a master and `config.workers` forked workers; returns the master's exit code.

    `app` is the preloaded app (`--preload`: loaded before the fork, `gc.freeze()` keeps its
    objects out of the collector so their pages stay shared); otherwise each worker calls
    `load()`. A worker never returns from here: it serves, then leaves with `os._exit` (the
    master's `atexit` handlers and buffered state are not the worker's). A worker whose `load()`
    fails sends the error text to the master, which prints it once and stops every worker; one
    whose `load()` hangs past `--boot-timeout` dumps its stacks to the error log
    (`_arm_boot_dump`) and is killed and replaced by the master.

    `launch` (`ferrule.process.Launch`) holds what USR2 needs (the starting directory; the
    command line is `sys.executable` + `sys.orig_argv`), the old master this one replaces,
    and the workers' user and group (switched to right after the fork, before `load()`).
    """
    import dataclasses
    import traceback

    from ferrule import process

    _ferrule = importlib.import_module("ferrule._ferrule")
    config = dataclasses.replace(config, multiprocess=True)
    if launch is None:
        launch = process.Launch(cwd=os.getcwd())
    label = f" [{config.app}]" if config.app else ""
    process.set_title(_ferrule, f"ferrule: master{label}", "ferrule-master")
    if app is not None:
        gc.freeze()
    argv = [sys.executable, *sys.orig_argv[1:]]
    events = None
    if hooks:
        hooks.attach_log(_ferrule.log)
        events = hooks.master_event
    result = _ferrule.supervise(
        config.to_rust_json(),
        argv=argv,
        cwd=launch.cwd,
        old_master=launch.old_master,
        events=events,
    )
    if isinstance(result, int):
        return result
    worker = result
    code = 0
    try:
        process.set_title(_ferrule, f"ferrule: worker {worker.id}{label}", "ferrule-worker")
        if hooks:
            hooks.forked(worker.id)
        try:
            process.drop_privileges(launch.ids)
        except OSError as exc:
            worker.boot_failed(f"Error: cannot switch to --user/--group: {exc}")
            code = worker.EXIT_BOOT_FAILED
            return code  # the finally below exits
        # --boot-timeout's stack dump covers loading the app. With --preload the master loaded
        # it before the fork: its deadline still covers the rest of the boot, with no dump.
        if app is None:
            disarm = _arm_boot_dump(config)
            try:
                app = load()
            except BaseException as exc:  # noqa: BLE001 - the master reports it, once
                disarm()
                worker.boot_failed(_describe_load_error(exc))
                code = worker.EXIT_BOOT_FAILED
                return code  # the finally below exits
            disarm()
        run(app, config, worker_process=worker, hooks=hooks)
    except BaseException:  # noqa: BLE001 - a worker must exit here, whatever happened
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    return code  # unreachable: os._exit does not return


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
    from ferrule.config import RUST_OPTIONS, Config

    if not callable(app):
        raise TypeError(f"serve() needs a WSGI callable, got {type(app).__name__}")
    # serve() runs in the calling process: worker processes, and recycling them, are the
    # CLI's (`-w`, `--max-requests`, ...): a recycled process needs a master to replace it.
    needs_master = {
        "workers",
        "max_requests",
        "max_requests_jitter",
        "max_worker_memory",
        "max_worker_lifetime",
    }
    allowed = {spec.name for spec in RUST_OPTIONS} - needs_master
    for name in options:
        if name in needs_master:
            raise TypeError(
                f"serve() runs in the calling process; {name!r} needs worker processes under a "
                "master: use the ferrule command"
            )
        if name not in allowed:
            raise TypeError(f"serve() got an unknown option {name!r}")
    if threads is not None:
        options["threads"] = threads
    run(app, Config(bind=bind, **options))
