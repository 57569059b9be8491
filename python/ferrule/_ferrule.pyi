"""Type stub for the `ferrule._ferrule` extension (crates/ferrule-py). Keep in sync with lib.rs."""

from collections.abc import Iterator
from typing import Any, Callable, Protocol, final

from typing_extensions import Self

__all__ = [
    "FileWrapper",
    "RequestTimeout",
    "Server",
    "Worker",
    "log",
    "set_process_title",
    "supervise",
]

class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...

@final
class Server:
    """One serving process: listeners, application threads' job queue, the network loop."""

    def __new__(
        cls,
        config_json: str,
        app: Callable[..., Any],
        worker: Worker | None = None,
        on_timeout: Callable[[int, str], object] | None = None,
    ) -> Self:
        """Parses the config (ValueError naming the setting), installs the error log and binds
        every listener (OSError naming the address); `run()` logs `Listening at: http://HOST:PORT
        (PID)` for each once it handles SIGINT/SIGTERM. With `worker` (in a forked worker), serves on the listeners the master
        bound instead, and logs nothing. `on_timeout(thread_ident, request_line)` is called for
        each request answered 504 by the request timeout, on ferrule's timeout thread with the
        GIL held, before RequestTimeout is raised in the request's thread; an exception from it
        is logged with its traceback."""
    @property
    def addresses(self) -> list[str]:
        """The bound `HOST:PORT` addresses (`[V6]:PORT` for IPv6, `unix:PATH` for a Unix
        socket), port 0 resolved."""
    def serve_worker(self) -> None:
        """Loop of one application thread (GIL released while waiting); returns once the
        server has stopped and the queue is drained."""
    def run(self) -> None:
        """Serves with the GIL released until SIGINT/SIGTERM or `stop()`, drains gracefully,
        then returns. Callable once."""
    @property
    def forced(self) -> bool:
        """True when a second SIGINT/SIGTERM cut the graceful drain short."""
    @property
    def interrupted(self) -> bool:
        """True when the stop began with SIGINT (the `worker_int` server hook runs then)."""
    def stop(self) -> None:
        """Asks `run()` to stop gracefully; callable from any thread."""

@final
class FileWrapper:
    """`wsgi.file_wrapper`: iterates `filelike.read(blksize)`; `close()` closes the file."""

    def __new__(cls, filelike: _Readable, blksize: int = ...) -> Self: ...  # 8192
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...
    def close(self) -> None: ...

@final
class Worker:
    """A forked worker's handle on its master (returned by `supervise` in the worker)."""

    EXIT_BOOT_FAILED: int
    """Exit code of a worker whose app could not be loaded (after `boot_failed`)."""
    @property
    def id(self) -> int:
        """1, 2, 3, ... in fork order; a replacement gets a new id."""
    def retire(self, reason: str) -> None:
        """Asks the master for a replacement (like a recycle); this worker serves until the
        replacement is ready, then gets TERM. `reason` goes in the master's log."""
    def boot_failed(self, text: str) -> None:
        """Tells the master the app could not be loaded; the master logs `text` once and stops
        every worker."""

class RequestTimeout(BaseException):
    """Raised in an application thread whose request ran past `--timeout` (the client already
    got 504). A BaseException, so `except Exception:` in an app does not swallow it."""

def supervise(
    config_json: str,
    argv: list[str] | None = None,
    cwd: str | None = None,
    old_master: int | None = None,
    events: Callable[[str, dict[str, int]], object] | None = None,
) -> int | Worker:
    """Binds the listeners (logging `Listening at`), then runs the master: forks the workers and
    supervises them. Returns twice, like `os.fork()`: the master's exit code in the master when
    it is done, a `Worker` in each forked worker. Call from the main thread with no other
    threads running. `argv` (program first) and `cwd` let USR2 start a new master over the same
    sockets; `old_master` is the master this one replaces (sent TERM once its workers are
    ready). `events(name, data)` is called in the master for each master event: when_ready,
    pre_fork (id), forked (id, pid), child_exit (id, pid, status), nworkers_changed (new,
    old), on_reload, pre_exec."""

def set_process_title(title: str, comm: str) -> bool:
    """Sets what `ps` shows for this process (cut to the original command line's length) and
    its short name (`comm`, 15 bytes at most). False when the title could not be set."""

def log(level: str, message: str) -> None:
    """One line on the error log; level is debug, info, warning, error or critical."""
