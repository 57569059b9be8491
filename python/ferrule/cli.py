"""The `ferrule` command (also `python -m ferrule`): parse options, load the app, serve it.

Exit codes: 0 after a clean shutdown (or a passing ``--check-config``), 1 when the app cannot be
loaded or the server cannot start (one line ``Error: ...`` on stderr, after the app's traceback
when the app's own code raised), 2 for bad command-line options (argparse).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, Callable

from ferrule.config import (
    Config,
    ConfigError,
    add_arguments,
    config_from_namespace,
    option_label,
)
from ferrule.loader import AppLoadError, load_app

__all__ = ["build_parser", "main"]


def _version() -> str:
    from ferrule import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The parser: every option from ferrule.config, plus the command-only flags."""
    parser = argparse.ArgumentParser(
        prog="ferrule",
        description=(
            "Serve a WSGI application with ferrule. BYTES values accept K, M and G suffixes "
            "(powers of 1024); SECS values may be fractional."
        ),
        epilog="Example: ferrule --bind 0.0.0.0:8000 --threads 8 myproject.wsgi:application",
    )
    parser.add_argument("--version", action="version", version=f"ferrule {_version()}")
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="Check the options and load the app, then exit (0 if all is well) without serving.",
    )
    add_arguments(parser)
    return parser


def _fail(message: str) -> int:
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    return 1


def _run_workers(
    config: Config, load: Callable[[], Callable[..., Any]], app: Callable[..., Any] | None
) -> int:
    """A master and its workers (`Config.uses_master`); returns the master's exit code."""
    try:
        from ferrule.server import run_workers

        return run_workers(config, load, app)
    except ImportError as e:
        if getattr(e, "name", None) == "ferrule._ferrule":
            return _fail(f"the ferrule extension module is not built or not importable: {e}")
        raise
    except (OSError, ValueError) as e:
        return _fail(str(e))


class _PidFile:
    """`--pid FILE`: this process's pid in FILE while it serves (written atomically, removed
    at exit if it still names us); refused when FILE names another live process."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def write(self) -> None:
        if self.path is None:
            return
        try:
            with open(self.path, encoding="ascii") as f:
                other = int(f.read().strip() or "0")
        except (OSError, ValueError):
            other = 0
        if other > 0 and other != os.getpid():
            try:
                os.kill(other, 0)
            except ProcessLookupError:
                pass  # a stale file from a process that is gone
            except PermissionError:
                raise OSError(f"--pid {self.path}: already running as pid {other}") from None
            else:
                raise OSError(f"--pid {self.path}: already running as pid {other}")
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        if self.path is None:
            return
        try:
            with open(self.path, encoding="ascii") as f:
                if f.read().strip() == str(os.getpid()):
                    os.unlink(self.path)
        except OSError:
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_namespace(args)
    except ConfigError as e:
        parser.error(f"{option_label(e.option)}: {e.message}")  # exits 2
    if args.check_config or config.pid_file is None:
        return _main(args, config)
    pid_file = _PidFile(config.pid_file)
    try:
        pid_file.write()
    except OSError as e:
        return _fail(str(e))
    # A forked worker leaves with os._exit and never gets here: only this process removes it.
    try:
        return _main(args, config)
    finally:
        pid_file.remove()


def _main(args: argparse.Namespace, config: Config) -> int:
    """Loads the app and serves it (see `main`)."""
    assert config.app is not None  # the positional is required
    app_spec = config.app

    def load() -> Callable[..., Any]:
        return load_app(app_spec, chdir=config.chdir, pythonpath=config.pythonpath)

    if config.uses_master and not config.preload and not args.check_config:
        # Each worker loads the app; the master reports a load error once (exit 1).
        return _run_workers(config, load, None)
    try:
        app = load()
    except AppLoadError as e:
        if e.show_traceback and e.__cause__ is not None:
            traceback.print_exception(type(e.__cause__), e.__cause__, e.__cause__.__traceback__)
        return _fail(str(e))
    if args.check_config:
        sys.stdout.write(f"ferrule: configuration OK, app {config.app!r} loaded\n")
        return 0
    if config.uses_master:
        return _run_workers(config, load, app)
    try:
        from ferrule.server import run

        run(app, config)
    except ImportError as e:
        if getattr(e, "name", None) == "ferrule._ferrule":
            return _fail(f"the ferrule extension module is not built or not importable: {e}")
        raise
    except (OSError, ValueError) as e:
        return _fail(str(e))
    return 0
