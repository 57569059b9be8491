"""ferrule: a strict, fast WSGI server written in Rust.

    import ferrule
    ferrule.serve(app, bind="127.0.0.1:8000", threads=4)

or from a shell: ``ferrule pkg.module:app``. Options: `ferrule.Config` (``ferrule --help``).

`Config` and `serve` are imported on first use, so ``python -m ferrule.config`` and the CLI's
start-up import only what they need. `RequestTimeout` (a BaseException subclass) is what ferrule
raises in an application thread whose request ran past ``--timeout``; it comes from the compiled
extension, imported on first use too.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: `typing` is 1.7 MB of heap in every process that
# imports it, and a serving process needs none of it (mypy treats this name the same way).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from ferrule._ferrule import RequestTimeout
    from ferrule.config import Config
    from ferrule.server import serve

    __version__: str

__all__ = ["Config", "RequestTimeout", "__version__", "serve"]


def _version() -> str:
    # importlib.metadata (email, zipfile, csv, ...) adds about 7 MB to the RSS of every
    # process that imports it: looked up on first use of `__version__`, never by a server.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ferrule")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    if name == "Config":
        from ferrule.config import Config

        return Config
    if name == "serve":
        from ferrule.server import serve

        return serve
    if name == "RequestTimeout":
        from ferrule._ferrule import RequestTimeout

        return RequestTimeout
    raise AttributeError(f"module 'ferrule' has no attribute {name!r}")
