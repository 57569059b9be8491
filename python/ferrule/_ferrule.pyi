"""Type stub for the `ferrule._ferrule` extension (crates/ferrule-py). Keep in sync with lib.rs."""

from collections.abc import Iterator
from typing import Any, Callable, Protocol

class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...

class Server:
    """One serving process: listeners, application threads' job queue, the network loop."""

    def __init__(self, config_json: str, app: Callable[..., Any]) -> None:
        """Parses the config (ValueError naming the setting), installs the error log and binds
        every listener (OSError naming the address), logging `Listening at: http://HOST:PORT
        (PID)` for each."""
    @property
    def addresses(self) -> list[str]:
        """The bound `HOST:PORT` addresses (`[V6]:PORT` for IPv6), port 0 resolved."""
    def serve_worker(self) -> None:
        """Loop of one application thread (GIL released while waiting); returns once the
        server has stopped and the queue is drained."""
    def run(self) -> None:
        """Serves with the GIL released until SIGINT/SIGTERM or `stop()`, drains gracefully,
        then returns. Callable once."""
    def stop(self) -> None:
        """Asks `run()` to stop gracefully; callable from any thread."""

class FileWrapper:
    """`wsgi.file_wrapper`: iterates `filelike.read(blksize)`; `close()` closes the file."""

    def __init__(self, filelike: _Readable, blksize: int = 8192) -> None: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...
    def close(self) -> None: ...

def log(level: str, message: str) -> None:
    """One line on the error log; level is debug, info, warning, error or critical."""
