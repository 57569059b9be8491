"""Fixtures for the operations suite: real `ferrule` processes started the way people start them
(console script, `python -m ferrule`, `ferrule.serve()` in a script), with their own command lines
and working directories.

- `ops_server(argv, cwd=None, env=None)`: starts `argv` (a full command line) and waits for its
  `Listening at` line; stopped (SIGTERM, then SIGKILL) at teardown.
- `run_cli(*args, cwd=None, timeout=30)`: runs `python -m ferrule ARGS` to completion (for
  commands that must exit: load errors, --version, --check-config) and returns the
  CompletedProcess.
- `app_tree(tmp_path)`: a directory with small apps in every APP form (see `APP_FILES`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ops_helpers import CLI_TIMEOUT, CRASH_RE

from helpers.server import REPO, FerruleProcess

APP_FILES = {
    # pkg.mod:attr, and pkg.mod with the default names
    "shop/__init__.py": "",
    "shop/wsgi.py": """
        def application(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"shop.wsgi:application"]

        def other(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"shop.wsgi:other"]

        not_callable = 42
    """,
    "shop/apponly.py": """
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"shop.apponly:app"]
    """,
    "shop/factory.py": """
        def create_app(name="default", debug=False):
            def app(environ, start_response):
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [f"factory:{name}:{debug}".encode()]
            return app
    """,
    "shop/broken.py": """
        def helper():
            raise RuntimeError("database url missing")

        helper()
    """,
    # mod_wsgi-style files
    "deploy/site.wsgi": """
        def application(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"deploy/site.wsgi"]
    """,
    "deploy/app.py": """
        def application(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"deploy/app.py"]
    """,
    # only importable through --pythonpath
    "libdir/pathapp.py": """
        def application(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"libdir/pathapp"]
    """,
}


@pytest.fixture
def app_tree(tmp_path) -> Path:
    for rel, source in APP_FILES.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return tmp_path


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, **(extra or {}))
    env.pop("PYTHONWARNINGS", None)
    env.pop("PYTHONPATH", None)
    return env


class CommandProcess(FerruleProcess):
    """A FerruleProcess with a caller-given command line (no arguments added)."""

    def __init__(self, argv: list[str], cwd: str | Path | None, env: dict[str, str] | None):
        super().__init__("-", cwd=cwd)
        self.argv = list(argv)
        self.env = base_env(env)


@pytest.fixture
def ops_server():
    started: list[CommandProcess] = []

    def start(argv: list[str], cwd=None, env=None) -> CommandProcess:
        proc = CommandProcess(argv, cwd, env)
        started.append(proc)
        return proc.start()

    yield start
    problems = []
    for proc in started:
        if proc.proc is None:
            continue
        crashes = [ln for ln in proc.lines if CRASH_RE.search(ln)]
        if crashes:
            problems.append("crash text in the error log:\n" + "\n".join(crashes))
        if proc.alive():
            code = proc.stop()
            if code != 0 and not proc.exited_on_purpose:
                problems.append(f"exit code {code} after SIGTERM\n{proc.log_text()}")
        else:
            proc.stop()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def run_cli():
    def run(*args: str, cwd=None, env=None, timeout: float = CLI_TIMEOUT):
        return subprocess.run(
            [sys.executable, "-m", "ferrule", *args],
            cwd=str(cwd or REPO),
            env=base_env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
