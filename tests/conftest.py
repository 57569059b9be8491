"""Fixtures for the end-to-end suite: real `ferrule` processes on loopback, run across modes.

- `ferrule_server(app, *cli_args, env=None)`: a fresh server for this test, stopped (SIGTERM,
  then SIGKILL) at teardown; the test fails if the server died, panicked or logged an app error
  the test did not declare (`srv.errors_expected = True`).
- `shared_server(app, *cli_args)`: the same, but one process per distinct command line for the
  whole session (for read-only tests such as the request corpus); checked after each test.
- `threads` / `conn_mode`: parametrized fixtures that run one test with `--threads 1` and
  `--threads 4`, and over keep-alive and `Connection: close` connections (STYLE habit 11).
"""

from __future__ import annotations

import pytest

from helpers.server import FerruleProcess


def _check(srv: FerruleProcess, since: int = 0) -> list[str]:
    problems = []
    if not srv.alive() and not srv.exited_on_purpose:
        problems.append(
            f"ferrule exited unexpectedly with code {srv.proc.returncode}\n{srv.log_text()}"
        )
    bad = srv.problems(since)
    if bad:
        problems.append(
            "unexpected error-log lines:\n"
            + "\n".join(bad)
            + "\n--- full log:\n"
            + srv.log_text(since)
        )
    return problems


@pytest.fixture
def ferrule_server():
    started: list[FerruleProcess] = []

    def start(app: str, *args: str, env: dict[str, str] | None = None, **kw) -> FerruleProcess:
        srv = FerruleProcess(app, *args, env=env, **kw).start()  # raises if it cannot start
        started.append(srv)
        return srv

    yield start
    problems = []
    for srv in started:
        if srv.proc is None:
            continue
        problems += _check(srv)
        if not srv.alive():
            srv.stop()  # already exited: only releases the pipes
        else:
            try:
                code = srv.stop()
            except AssertionError as exc:
                problems.append(str(exc))
            else:
                # SIGTERM is a clean shutdown (issue 2). A test that signalled the server itself
                # already judged its exit; a second signal may legitimately force it.
                if code != 0 and not srv.exited_on_purpose:
                    problems.append(f"ferrule exited with {code} after SIGTERM\n{srv.log_text()}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


class _Pool:
    def __init__(self):
        self.servers: dict[tuple, FerruleProcess] = {}

    def get(self, app: str, *args: str, env: dict[str, str] | None = None) -> FerruleProcess:
        key = (app, args, tuple(sorted((env or {}).items())))
        srv = self.servers.get(key)
        if srv is None or not srv.alive():
            srv = FerruleProcess(app, *args, env=env).start()
            self.servers[key] = srv
        return srv

    def stop_all(self) -> None:
        for srv in self.servers.values():
            if srv.alive():
                srv.stop()


@pytest.fixture(scope="session")
def _server_pool():
    pool = _Pool()
    yield pool
    pool.stop_all()


@pytest.fixture
def shared_server(_server_pool):
    used: list[tuple[FerruleProcess, int]] = []

    def get(app: str, *args: str, env: dict[str, str] | None = None) -> FerruleProcess:
        srv = _server_pool.get(app, *args, env=env)
        used.append((srv, srv.mark()))
        return srv

    yield get
    problems = []
    for srv, since in used:
        problems += _check(srv, since)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture(params=[1, 4], ids=["threads1", "threads4"])
def threads(request) -> int:
    """Runs the test against `--threads 1` and `--threads 4`."""
    return request.param


@pytest.fixture(params=["keepalive", "close"])
def conn_mode(request) -> str:
    """Runs the test over a reused keep-alive connection and over one connection per request
    (`Connection: close`)."""
    return request.param
