"""The lean serving process: one that holds the interpreter, the extension and the app, and not
the command line's machinery.

Resolving the configuration (`argparse`, `dataclasses` with `inspect`/`ast`, `typing`, the option
table, config files) leaves about 5.5 MB of Python heap in the process that did it, and Python
never gives a module back. So when the `ferrule` command serves in one process (no master) and
no Python hook needs the configuration objects, it resolves everything, writes the pid file, then
re-executes the interpreter into this module's `main` (`python FLAGS -c BOOTSTRAP ARGS...`,
same pid, same interpreter flags, same `sys.path` and `sys.argv`) with the resolved settings in
`_FERRULE_LEAN_SETTINGS`, which `main` removes from the environment before any app code runs.
The app sees the same process it would have without the re-exec, minus those modules.

With a master (`--workers` > 1, recycling, `--user`, `--reload`) the workers are forks of the
master and share its pages; server hooks are Python callables from the config file and cannot
cross an exec: those keep serving in the command's own process.

This module, and what it imports (`ferrule.server`, `ferrule.loader`, `ferrule.logsetup`,
`ferrule.pidfile`), must not import `typing`, `dataclasses`, `argparse` or `ferrule.config`;
`tests/ops/test_lean_startup.py` checks the modules a serving process holds.
"""

from __future__ import annotations

import marshal
import os
import sys

from ferrule.loader import AppLoadError, load_app, wrap_middleware
from ferrule.logsetup import LogSetupError, apply_log_config
from ferrule.pidfile import PidFile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, Callable, Protocol

    from ferrule.config import Config
    from ferrule.server import ServeConfig

    class LoadConfig(Protocol):
        """What loading the app reads of the configuration (`Config` or `Settings`)."""

        @property
        def app(self) -> str | None: ...
        @property
        def chdir(self) -> str | None: ...
        @property
        def pythonpath(self) -> Sequence[str]: ...
        @property
        def middleware(self) -> Sequence[str]: ...
        @property
        def log_config(self) -> str | None: ...
        @property
        def log_config_dict(self) -> Mapping[str, Any] | None: ...


__all__ = ["Settings", "exec_lean", "exit_code_of", "fail", "load", "main", "serve_loaded"]

#: The environment variable that carries the settings into the lean process (removed at once).
ENV_SETTINGS = "_FERRULE_LEAN_SETTINGS"


class Settings:
    """Everything the lean process needs, resolved by the command: the Rust server's JSON, and
    what the Python side reads (`ferrule.server.ServeConfig`, `LoadConfig`)."""

    #: --reload always runs under a master: never in a lean process (nothing to carry over).
    reload = False

    __slots__ = (
        "access_log",
        "app",
        "argv",
        "capture_output",
        "chdir",
        "error_log",
        "log_config",
        "log_config_dict",
        "middleware",
        "pid_file",
        "pythonpath",
        "rust_json",
        "sys_path",
        "threads",
    )

    def __init__(self, values: dict[str, Any]) -> None:
        self.rust_json: str = values["rust_json"]
        self.threads: int = values["threads"]
        self.capture_output: bool = values["capture_output"]
        self.error_log: str = values["error_log"]
        self.access_log: str | None = values["access_log"]
        self.app: str | None = values["app"]
        self.chdir: str | None = values["chdir"]
        self.pythonpath: list[str] = values["pythonpath"]
        self.middleware: list[str] = values["middleware"]
        self.log_config: str | None = values["log_config"]
        self.log_config_dict: dict[str, Any] | None = values["log_config_dict"]
        self.pid_file: str | None = values["pid_file"]
        self.sys_path: list[str] = values["sys_path"]
        self.argv: list[str] = values["argv"]

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        return cls(
            {
                "rust_json": config.to_rust_json(),
                "threads": config.threads,
                "capture_output": config.capture_output,
                "error_log": config.error_log,
                "access_log": config.access_log,
                "app": config.app,
                "chdir": config.chdir,
                "pythonpath": list(config.pythonpath),
                "middleware": list(config.middleware),
                "log_config": config.log_config,
                "log_config_dict": (
                    dict(config.log_config_dict) if config.log_config_dict is not None else None
                ),
                "pid_file": config.pid_file,
                "sys_path": list(sys.path),
                "argv": list(sys.argv),
            }
        )

    def encode(self) -> str:
        """The settings as one environment-safe string (`marshal`: no import needed to read it,
        unlike `json`; ValueError when a value is not plain data)."""
        return marshal.dumps({name: getattr(self, name) for name in self.__slots__}).hex()

    @classmethod
    def decode(cls, text: str) -> Settings:
        return cls(marshal.loads(bytes.fromhex(text)))

    def to_rust_json(self) -> str:
        return self.rust_json


def fail(message: str) -> int:
    """Prints `Error: message` on stderr; returns the exit code 1."""
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    return 1


def load(config: LoadConfig) -> Callable[..., Any]:
    """Applies the logging configuration, imports the app, wraps it in the middleware."""
    assert config.app is not None  # the positional is required
    try:
        apply_log_config(config.log_config, config.log_config_dict)
    except LogSetupError as e:
        raise AppLoadError(str(e)) from None
    app = load_app(config.app, chdir=config.chdir, pythonpath=config.pythonpath)
    return wrap_middleware(app, config.middleware)


def report_load_error(e: AppLoadError) -> int:
    """The app's traceback when its own code raised, then `Error: ...`; returns 1."""
    if e.show_traceback and e.__cause__ is not None:
        import traceback

        traceback.print_exception(type(e.__cause__), e.__cause__, e.__cause__.__traceback__)
    return fail(str(e))


def serve_loaded(app: Callable[..., Any], config: ServeConfig, hooks: Any = None) -> int:
    """Serves `app` in this process until it is stopped; returns the exit code."""

    def serve() -> int:
        from ferrule.server import run

        run(app, config, hooks=hooks)
        return 0

    return exit_code_of(serve)


def exit_code_of(serve: Callable[[], int]) -> int:
    """Runs `serve` (which imports `ferrule.server` and serves); a missing extension, a listener
    that cannot be bound or a configuration the extension rejects become `Error: ...` and 1."""
    try:
        return serve()
    except ImportError as e:
        if getattr(e, "name", None) == "ferrule._ferrule":
            return fail(f"the ferrule extension module is not built or not importable: {e}")
        raise
    except (OSError, ValueError) as e:
        return fail(str(e))


def _interpreter_flags() -> list[str]:
    """This interpreter's command-line flags (-O, -X ..., -W ..., -I, ...), to pass on."""
    import subprocess

    flags = getattr(subprocess, "_args_from_interpreter_flags", None)
    return list(flags()) if flags is not None else []


def bootstrap() -> str:
    """The `-c` program of the lean process. It puts the directory this `ferrule` package was
    imported from first on `sys.path`, since the new interpreter's default path may not have it
    (a source tree on a path the command added, a bundle such as pex or shiv), and `main` then
    sets the command's own `sys.path`. Not `-m ferrule.lean`: that needs `ferrule` on the
    default path, and runs this module as `__main__`, a second copy."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return (
        f"import sys; sys.path.insert(0, {root!r}); from ferrule.lean import main; sys.exit(main())"
    )


def exec_lean(config: Config) -> None:
    """Re-executes this process as a lean serving process (see the module docs). Returns only
    when that cannot be done (a frozen executable, settings that are not plain data, or the
    exec failing), and then the caller serves in this process as before."""
    if getattr(sys, "frozen", False) or not sys.executable or not hasattr(os, "execv"):
        return
    try:
        encoded = Settings.from_config(config).encode()
    except ValueError:
        return  # e.g. a logconfig_dict holding objects
    argv = [sys.executable, *_interpreter_flags(), "-c", bootstrap(), *sys.argv[1:]]
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.environ[ENV_SETTINGS] = encoded
    try:
        os.execv(sys.executable, argv)
    except OSError:
        del os.environ[ENV_SETTINGS]


def main() -> int:
    """The lean process: takes the settings, loads the app, serves; removes the pid file."""
    encoded = os.environ.pop(ENV_SETTINGS, None)
    if encoded is None:
        return fail(f"ferrule.lean is started by the ferrule command ({ENV_SETTINGS} is not set)")
    settings = Settings.decode(encoded)
    sys.path[:] = settings.sys_path
    sys.argv[:] = settings.argv
    try:
        try:
            app = load(settings)
        except AppLoadError as e:
            return report_load_error(e)
        return serve_loaded(app, settings)
    finally:
        PidFile(settings.pid_file).remove()


if __name__ == "__main__":
    sys.exit(main())
