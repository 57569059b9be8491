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

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ferrule._ferrule import RequestTimeout
    from ferrule.config import Config
    from ferrule.server import serve

try:
    __version__ = version("ferrule")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Config", "RequestTimeout", "__version__", "serve"]


def __getattr__(name: str) -> Any:
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
