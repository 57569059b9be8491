"""gunicorn's server hooks, called with gunicorn's names and arguments (issue 6).

A Python config file (`-c gunicorn.conf.py`) defines hooks as module-level functions; they are
stored in `Config.hooks` and called here. Where each runs:

| hook | process | when |
|---|---|---|
| `on_starting(server)` | main | before the listeners are bound; an exception aborts the start (exit 1) |
| `nworkers_changed(server, new, old)` | master | at start (`old` is None), then on TTIN/TTOU |
| `when_ready(server)` | main/master | listeners bound, before the first worker starts |
| `pre_fork(server, worker)` | master | just before a worker is forked (`worker.pid` is None) |
| `post_fork(server, worker)` | worker | just after the fork, before the app is loaded |
| `post_worker_init(worker)` | worker | the app is loaded, just before serving |
| `pre_request(worker, req)` | worker | on the app thread, before the app is called |
| `post_request(worker, req, environ, resp)` | worker | after the response (see below) |
| `worker_int(worker)` | worker | the worker stopped because it received SIGINT |
| `worker_abort(worker)` | worker | a request ran past `--timeout` and was answered 504 (see below) |
| `worker_exit(server, worker)` | worker | the worker has stopped serving, just before it exits |
| `child_exit(server, worker)` | master | a worker was reaped (`worker.exit_code` / `worker.exit_signal`) |
| `on_reload(server)` | master | SIGHUP, before the new workers start |
| `pre_exec(server)` | master | SIGUSR2, before the new master is started |
| `on_exit(server)` | main/master | just before ferrule exits |

Without a master (one process, `-w 1`), that process is both server and worker: `pre_fork` and
`post_fork` run once, with no fork between them, and the master-only hooks never run.
The master's INT/QUIT kills its workers at once (SIGKILL), so `worker_int` runs in a worker that
gets SIGINT itself (Ctrl-C in a terminal reaches every process of the group) or in a lone process.

`worker_abort(worker)` runs at ferrule's equivalent of gunicorn's SIGABRT: when `--timeout`
fires for a request (the app had not started its response; the client got 504), in the worker
(or lone process) serving it, on ferrule's timeout thread with the GIL held, once per timed-out
request, after the stuck thread's stack is logged and before ferrule.RequestTimeout is raised
in it, so the request is still on that thread's stack (`sys._current_frames()`). It differs
from gunicorn's: the timeout is per request, not a silent worker (a request whose response head
went out is never timed out); it does not run on the request's thread, and while it holds the
GIL no other Python thread of the process runs, so keep it short; and the worker does not exit
afterwards: the thread unwinds and the worker serves on (under a master, a thread still stuck
5 s after the timeout gets its worker replaced, with no second call). With `--timeout 0` it
never runs.

`post_request` runs once the body iterable is exhausted and closed; for a list or tuple body (the
whole body known when the app returns) it runs when the app returns, so the response keeps its
Content-Length framing. Without `pre_request`/`post_request` the app is not wrapped at all.

An exception in a hook is logged with its traceback on the error log and the server carries on,
except in `on_starting`, which aborts the start (gunicorn's behaviour).

The objects hooks get (`ServerInfo`, `WorkerInfo`, `Request`, `Response`) carry the attributes
gunicorn apps commonly read; see each class. They are plain Python objects: setting your own
attributes on them (as gunicorn configs do on the arbiter) works.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ferrule.config import Config

__all__ = [
    "HookError",
    "HookLog",
    "Hooks",
    "Request",
    "Response",
    "ServerInfo",
    "WorkerInfo",
]

#: The hooks that wrap every request (the app is wrapped only when one is set).
REQUEST_HOOKS = ("pre_request", "post_request")


class HookError(Exception):
    """`on_starting` raised: the server does not start."""


class HookLog:
    """`server.log` / `worker.log`: gunicorn's logger methods, writing to ferrule's error log.
    Messages take %-style arguments like `logging` (`log.info("worker %s", pid)`)."""

    def __init__(self) -> None:
        self._sink: Callable[[str, str], None] | None = None

    def attach(self, sink: Callable[[str, str], None]) -> None:
        """From now on lines go to `sink` (the extension's error log, once it is installed)."""
        self._sink = sink

    def _write(self, level: str, msg: Any, args: tuple[Any, ...]) -> None:
        text = str(msg) % args if args else str(msg)
        if self._sink is not None:
            self._sink(level, text)
            return
        # Before the error log is installed (on_starting): stderr, in the error log's format.
        stamp = time.strftime("%Y-%m-%d %H:%M:%S %z")
        sys.stderr.write(f"[{stamp}] [{os.getpid()}] [{level.upper()}] {text}\n")
        sys.stderr.flush()

    def debug(self, msg: Any, *args: Any) -> None:
        self._write("debug", msg, args)

    def info(self, msg: Any, *args: Any) -> None:
        self._write("info", msg, args)

    def warning(self, msg: Any, *args: Any) -> None:
        self._write("warning", msg, args)

    warn = warning

    def error(self, msg: Any, *args: Any) -> None:
        self._write("error", msg, args)

    def critical(self, msg: Any, *args: Any) -> None:
        self._write("critical", msg, args)

    def exception(self, msg: Any, *args: Any) -> None:
        self._write("error", f"{str(msg) % args if args else msg}\n{traceback.format_exc()}", ())


class Cfg:
    """`server.cfg` / `worker.cfg`: the settings, read-only, by ferrule name (`cfg.workers`,
    `cfg.bind`, `cfg.keepalive_timeout`) or gunicorn name (`cfg.keepalive`, `cfg.preload_app`)."""

    def __init__(self, config: Config) -> None:
        object.__setattr__(self, "_config", config)

    def __getattr__(self, name: str) -> Any:
        config = object.__getattribute__(self, "_config")
        if not name.startswith("_") and hasattr(config, name):
            return getattr(config, name)
        from ferrule import compat

        setting = compat.by_name(name)
        if setting is not None and setting.target and hasattr(config, setting.target):
            return getattr(config, setting.target)
        raise AttributeError(f"no setting {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("the settings are read-only")


class WorkerInfo:
    """A worker as hooks see it (gunicorn's `Worker`): `id` and `age` (1, 2, 3, … in fork
    order), `pid` (None before the fork), `ppid`, `cfg`, `log`, `wsgi` (the app, once loaded),
    `booted`, `alive`, `nr` (requests started, counted when a request hook is set); after the
    worker ended (`child_exit`): `exit_code` (None when killed) and `exit_signal` (None when it
    exited)."""

    def __init__(self, id: int, cfg: Cfg, log: HookLog, pid: int | None = None) -> None:
        self.id = id
        self.age = id
        self.pid = pid
        self.ppid = os.getpid() if pid is None else os.getppid()
        self.cfg = cfg
        self.log = log
        self.wsgi: Any = None
        self.booted = False
        self.alive = True
        self.nr = 0
        self.exit_code: int | None = None
        self.exit_signal: int | None = None

    def __repr__(self) -> str:
        return f"<ferrule worker {self.id} pid={self.pid}>"


class ServerInfo:
    """The server as hooks see it (gunicorn's `Arbiter`): `cfg`, `log`, `pid` (the master, or
    the lone process), `num_workers` (the current target), `WORKERS` (pid → `WorkerInfo` of
    the live workers, in the master), `proc_name`."""

    def __init__(self, config: Config, log: HookLog) -> None:
        self.cfg = Cfg(config)
        self.log = log
        self.pid = os.getpid()
        self.num_workers = config.workers
        self.WORKERS: dict[int, WorkerInfo] = {}
        self.proc_name = config.app or "ferrule"

    def __repr__(self) -> str:
        return f"<ferrule server pid={self.pid}>"


class Request:
    """The request as `pre_request`/`post_request` see it (gunicorn's `Request`), built from
    the environ: `method`, `uri` (as sent), `path` (still percent-encoded), `query`,
    `fragment`, `version` (`(1, 1)`), `scheme`, `headers` (a list of `(NAME, value)` with
    upper-case names, as gunicorn gives them; repeated fields arrive joined by ', ' as in the
    environ), `remote_addr`/`peer_addr` (`(host, port)`)."""

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self.method = environ.get("REQUEST_METHOD", "")
        query = environ.get("QUERY_STRING", "")
        uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if not uri:
            uri = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            uri += f"?{query}" if query else ""
        self.uri = uri
        self.path = uri.split("?", 1)[0].split("#", 1)[0]
        self.query = query
        self.fragment = ""
        protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        try:
            major, minor = protocol.split("/", 1)[1].split(".", 1)
            self.version = (int(major), int(minor))
        except (IndexError, ValueError):
            self.version = (1, 1)
        self.scheme = environ.get("wsgi.url_scheme", "http")
        headers = []
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers.append((key[5:].replace("_", "-"), value))
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                headers.append((key.replace("_", "-"), value))
        self.headers = headers
        try:
            port = int(environ.get("REMOTE_PORT", 0))
        except ValueError:
            port = 0
        self.remote_addr = self.peer_addr = (environ.get("REMOTE_ADDR", ""), port)


class Response:
    """The response as `post_request` sees it (gunicorn's `Response`): `status` ('200 OK', None
    if the app never called start_response), `status_code`, `headers` (as the app gave them),
    `sent` (body bytes the app produced), `response_length` (its Content-Length, or None)."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.status_code: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent = 0
        self.response_length: int | None = None

    def start(self, status: str, headers: list[tuple[str, str]]) -> None:
        self.status = status
        try:
            self.status_code = int(status.split(None, 1)[0])
        except (ValueError, IndexError):
            self.status_code = None
        self.headers = list(headers)
        for name, value in headers:
            if name.lower() == "content-length":
                try:
                    self.response_length = int(value)
                except ValueError:
                    pass


class Hooks:
    """The configured hooks, and how to call them safely (see the module docs)."""

    def __init__(self, config: Config) -> None:
        self.functions: dict[str, Callable[..., Any]] = dict(config.hooks or {})
        self.config = config
        self.log = HookLog()
        self.server = ServerInfo(config, self.log)
        #: In a worker (or the lone process): this process, as hooks see it.
        self.worker: WorkerInfo | None = None
        #: Workers forked but not yet reaped, by id (the master's table; WORKERS is by pid).
        self._by_id: dict[int, WorkerInfo] = {}

    def __bool__(self) -> bool:
        return bool(self.functions)

    def __contains__(self, name: str) -> bool:
        return name in self.functions

    def attach_log(self, sink: Callable[[str, str], None]) -> None:
        self.log.attach(sink)

    def call(self, name: str, *args: Any) -> bool:
        """Runs hook `name` if set; an exception is logged with its traceback (False)."""
        fn = self.functions.get(name)
        if fn is None:
            return True
        try:
            fn(*args)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and name == "on_starting":
                raise HookError(f"the on_starting hook stopped the start: {exc!r}") from exc
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            self.log.error(f"Exception in the {name} hook:\n{text.rstrip()}")
            return False
        return True

    def on_starting(self) -> None:
        """`on_starting(server)`; raises HookError (the start is aborted) when it raises."""
        fn = self.functions.get("on_starting")
        if fn is None:
            return
        try:
            fn(self.server)
        except BaseException as exc:
            raise HookError(f"the on_starting hook raised {exc!r}") from exc

    # -- a lone process (no master) ------------------------------------------------------------

    def single_process_started(self) -> None:
        """Listeners bound in a process that serves by itself: `nworkers_changed`,
        `when_ready`, then `pre_fork`/`post_fork` with the process as its own worker."""
        self.call("nworkers_changed", self.server, 1, None)
        self.call("when_ready", self.server)
        self.worker = self._this_worker()  # wrap_app may have made it already
        self.worker.pid = None
        self.call("pre_fork", self.server, self.worker)
        self.worker.pid = os.getpid()
        self.server.WORKERS[self.worker.pid] = self.worker
        self.call("post_fork", self.server, self.worker)

    # -- the master ----------------------------------------------------------------------------

    def master_event(self, name: str, data: Mapping[str, int]) -> None:
        """The master's events (`_ferrule.supervise(events=...)`), turned into hook calls."""
        server = self.server
        if name == "pre_fork":
            worker = WorkerInfo(data["id"], server.cfg, self.log)
            self._by_id[worker.id] = worker
            self.call("pre_fork", server, worker)
        elif name == "forked":
            worker = self._by_id.get(data["id"]) or WorkerInfo(data["id"], server.cfg, self.log)
            worker.pid = data["pid"]
            server.WORKERS[worker.pid] = worker
        elif name == "child_exit":
            worker = self._by_id.pop(data["id"], None) or WorkerInfo(
                data["id"], server.cfg, self.log, pid=data["pid"]
            )
            server.WORKERS.pop(data["pid"], None)
            worker.alive = False
            status = data["status"]
            if os.WIFEXITED(status):
                worker.exit_code = os.WEXITSTATUS(status)
            elif os.WIFSIGNALED(status):
                worker.exit_signal = os.WTERMSIG(status)
            self.call("child_exit", server, worker)
        elif name == "nworkers_changed":
            server.num_workers = data["new"]
            self.call("nworkers_changed", server, data["new"], data["old"])
        elif name == "when_ready":
            # gunicorn reports the initial worker count too (old value None).
            self.call("nworkers_changed", server, server.num_workers, None)
            self.call("when_ready", server)
        elif name in ("on_reload", "pre_exec"):
            self.call(name, server)

    # -- a worker ------------------------------------------------------------------------------

    def forked(self, worker_id: int) -> None:
        """In a freshly forked worker: `post_fork(server, worker)`."""
        self.server.WORKERS.clear()  # the master's table is not the worker's business
        self._by_id.clear()
        self.worker = WorkerInfo(worker_id, self.server.cfg, self.log, pid=os.getpid())
        self.call("post_fork", self.server, self.worker)

    def worker_ready(self, app: Any) -> None:
        """The app is loaded: `post_worker_init(worker)`."""
        worker = self._this_worker()
        worker.wsgi = app
        worker.booted = True
        self.call("post_worker_init", worker)

    def on_timeout(self) -> Callable[[int, str], None] | None:
        """The extension's `on_timeout` callback (`_ferrule.Server`), which runs
        `worker_abort(worker)`; None (no callback) without that hook."""
        if "worker_abort" not in self.functions:
            return None
        worker = self._this_worker()

        def timed_out(thread_ident: int, request_line: str) -> None:
            self.call("worker_abort", worker)

        return timed_out

    def worker_stopped(self, interrupted: bool) -> None:
        """The worker's server returned: `worker_int` (if SIGINT stopped it), `worker_exit`."""
        worker = self._this_worker()
        worker.alive = False
        if interrupted:
            self.call("worker_int", worker)
        self.call("worker_exit", self.server, worker)

    def _this_worker(self) -> WorkerInfo:
        if self.worker is None:
            self.worker = WorkerInfo(1, self.server.cfg, self.log, pid=os.getpid())
        return self.worker

    def wrap_app(self, app: Callable[..., Any]) -> Callable[..., Any]:
        """The app with `pre_request`/`post_request` around each call; `app` itself when
        neither is set (no cost per request)."""
        if not any(name in self.functions for name in REQUEST_HOOKS):
            return app
        worker = self._this_worker()
        pre = "pre_request" in self.functions
        post = "post_request" in self.functions

        def hooked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            worker.nr += 1
            req = Request(environ)
            if pre:
                self.call("pre_request", worker, req)
            if not post:
                return app(environ, start_response)
            resp = Response()

            def recording_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
                resp.start(status, headers)
                if exc_info is None:
                    return start_response(status, headers)
                return start_response(status, headers, exc_info)

            try:
                result = app(environ, recording_start_response)
            except BaseException:
                self.call("post_request", worker, req, environ, resp)
                raise
            if type(result) in (list, tuple):
                resp.sent = sum(len(chunk) for chunk in result)
                self.call("post_request", worker, req, environ, resp)
                return result
            return _Finally(
                result, resp, lambda: self.call("post_request", worker, req, environ, resp)
            )

        return hooked


class _Finally:
    """A response iterable that counts the bytes the app produced and runs `done` once, when
    the server closes it (PEP 3333: close() is called whatever happened)."""

    __slots__ = ("_done", "_resp", "_result")

    def __init__(self, result: Iterable[bytes], resp: Response, done: Callable[[], Any]) -> None:
        self._result = result
        self._resp = resp
        self._done: Callable[[], Any] | None = done

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._result:
            self._resp.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()
