"""The `ferrule` command (also `python -m ferrule`): parse options, load the app, serve it.

Exit codes: 0 after a clean shutdown (or a passing ``--check-config``), 1 when the app cannot be
loaded or the server cannot start (one line ``Error: ...`` on stderr, after the app's traceback
when the app's own code raised), 2 for bad command-line options (argparse).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, Callable

from ferrule import compat, lean, sources
from ferrule.config import (
    Config,
    add_arguments,
)
from ferrule.hooks import HookError, Hooks
from ferrule.loader import AppLoadError
from ferrule.pidfile import PidFile
from ferrule.process import Launch, ProcessError, prepare

__all__ = ["build_parser", "main"]


def _version() -> str:
    from ferrule import __version__

    return __version__


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked for: argparse's own version action needs the
    string up front, and `importlib.metadata` adds about 7 MB to the RSS of the server."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any) -> None:
        print(f"ferrule {_version()}")
        parser.exit()


def _add_gunicorn_flags(parser: argparse.ArgumentParser) -> None:
    """gunicorn's flags that are no ferrule option: accepted (not shown in --help), and
    warned about (`sources.gunicorn_flag_warnings`). See docs/migrating.md."""
    taken = set(parser._option_string_actions)
    for gs in compat.GUNICORN_SETTINGS:
        flags = [f for f in gs.flags if f not in taken]
        if not flags or len(flags) != len(gs.flags):
            continue  # a ferrule option (or command flag) already has these flags
        kwargs: dict[str, Any] = {"dest": f"gunicorn_{gs.name}", "help": argparse.SUPPRESS}
        if not gs.takes_value:
            kwargs.update(action="store_const", const=True, default=None)
        else:
            kwargs.update(action="append" if gs.repeat else "store", default=None)
        parser.add_argument(*flags, **kwargs)
        taken.update(flags)


def build_parser(prog: str = "ferrule") -> argparse.ArgumentParser:
    """The parser: every option from ferrule.config, plus the command-only flags."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Serve a WSGI application with ferrule. BYTES values accept K, M and G suffixes "
            "(powers of 1024); SECS values may be fractional."
        ),
        epilog="Example: ferrule --bind 0.0.0.0:8000 --threads 8 myproject.wsgi:application",
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="show program's version number and exit"
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="Check the options and load the app, then exit (0 if all is well) without "
        "serving; prints the configuration sources it read.",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="Print the effective configuration as TOML, each value with its source, and exit.",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=None,
        help="Read settings from FILE: ferrule.toml (or any .toml), pyproject.toml ([tool.ferrule]) "
        "or a Python file such as gunicorn.conf.py (gunicorn's setting names and server hooks); "
        "'python:MODULE' imports a module. Without -c: ./ferrule.toml, ./pyproject.toml with "
        "[tool.ferrule], or ./gunicorn.conf.py, the first found; -c '' reads none. Priority, "
        "lowest first: defaults, WEB_CONCURRENCY/PORT, the file, FERRULE_<OPTION> variables, "
        "FERRULE_CMD_ARGS, the command line.",
    )
    add_arguments(parser)
    _add_gunicorn_flags(parser)
    return parser


_fail = lean.fail


def _run_workers(
    config: Config,
    load: Callable[[], Callable[..., Any]],
    app: Callable[..., Any] | None,
    launch: Launch | None = None,
    hooks: Hooks | None = None,
) -> int:
    """A master and its workers (`Config.uses_master`); returns the master's exit code."""

    def serve() -> int:
        from ferrule.server import run_workers

        return run_workers(config, load, app, launch=launch, hooks=hooks)

    return lean.exit_code_of(serve)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit code.

    Run as the process's command (`argv` None: the arguments are `sys.argv`), a single-process
    server re-executes itself lean (`ferrule.lean`); called with an explicit `argv` (embedded,
    tests), it never replaces the calling process."""
    reexec = argv is None
    parser = build_parser()
    environ = os.environ
    try:
        extra = sources.cmd_args(environ)
    except sources.SourceError as e:
        parser.error(str(e))  # exits 2
    env_args = build_parser(prog=f"ferrule ({sources.CMD_ARGS_VAR})").parse_args(extra)
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        resolved = sources.resolve(env_args, args, environ)
    except sources.SourceError as e:
        parser.error(str(e))  # exits 2
    config = resolved.config
    for warning in resolved.warnings:
        sys.stderr.write(f"ferrule: warning: {warning}\n")
    if args.print_config:
        sys.stdout.write(sources.config_to_toml(resolved))
        return 0
    if config.app is None:
        parser.error("the following arguments are required: APP")
    if args.check_config:
        sys.stdout.write("ferrule: configuration sources, lowest priority first:\n")
        for source in resolved.checked:
            sys.stdout.write(f"  {source}\n")
    try:
        # Socket activation, USR2 hand-over, --umask, --daemon (see ferrule.process).
        config, launch = prepare(config, detach=not args.check_config)
    except ProcessError as e:
        return _fail(str(e))
    if args.check_config or config.pid_file is None:
        return _main(args, config, launch, reexec)
    pid_file = PidFile(config.pid_file, replaces=launch.old_master)
    try:
        pid_file.write()
    except OSError as e:
        return _fail(str(e))
    # A forked worker leaves with os._exit and never gets here: only this process removes it.
    try:
        return _main(args, config, launch, reexec)
    finally:
        pid_file.remove()


def _main(args: argparse.Namespace, config: Config, launch: Launch, reexec: bool) -> int:
    """Runs the server hooks around `_serve` (on_starting first, on_exit last)."""
    # -e/--env: in the environment before any hook or app code runs; workers inherit it.
    config.apply_env()
    if args.check_config or not config.hooks:
        return _serve(args, config, launch, None, reexec)
    hooks = Hooks(config)
    try:
        hooks.on_starting()
    except HookError as e:
        cause = e.__cause__
        if cause is not None:
            traceback.print_exception(type(cause), cause, cause.__traceback__)
        return _fail(str(e))
    try:
        return _serve(args, config, launch, hooks, reexec)
    finally:
        hooks.call("on_exit", hooks.server)


def _serve(
    args: argparse.Namespace, config: Config, launch: Launch, hooks: Hooks | None, reexec: bool
) -> int:
    """Loads the app and serves it (see `main`)."""
    assert config.app is not None  # the positional is required
    if config.reload and config.preload:
        # The workers must import the code afresh: a preloaded app would be the old one.
        sys.stderr.write("ferrule: warning: --preload is ignored with --reload\n")
        config = dataclasses.replace(config, preload=False)
    if config.reload:
        # No .pyc is written: one written for a previous version could be taken for the new
        # one when an edit keeps the file's size within the same mtime second.
        sys.dont_write_bytecode = True

    def load() -> Callable[..., Any]:
        return lean.load(config)

    if config.uses_master and not config.preload and not args.check_config:
        # Each worker loads the app; the master reports a load error once (exit 1).
        return _run_workers(config, load, None, launch, hooks)
    if reexec and not (config.uses_master or hooks or args.check_config or launch.old_master):
        # Serve from a fresh interpreter without the command's imports (returns only when it
        # cannot; see ferrule.lean).
        lean.exec_lean(config)
    try:
        app = load()
    except AppLoadError as e:
        return lean.report_load_error(e)
    if args.check_config:
        sys.stdout.write(f"ferrule: configuration OK, app {config.app!r} loaded\n")
        return 0
    if config.uses_master:
        return _run_workers(config, load, app, launch, hooks)
    return lean.serve_loaded(app, config, hooks)
