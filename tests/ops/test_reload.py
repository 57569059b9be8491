"""`--reload` (issue 6, dev reload): editing a module the app imports reaches the next requests
within a bounded time; a syntax error keeps the old code serving and is logged; the fix is then
picked up; new code that fails at import time keeps the old workers too; a change to a file
matching `--reload-extra-file` reloads as well.

Each version of a file has a different length, so a stale .pyc (same mtime second, same size)
can never mask an edit.
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

#: Seconds an edit may take to reach the responses (watcher + a new worker importing the app).
RELOAD_WITHIN = 20.0

APP = """
import views

def app(environ, start_response):
    body = views.message().encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""

EXTRA_APP = """
from pathlib import Path

TEXT = (Path(__file__).parent / "templates" / "page.txt").read_text()

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [TEXT.encode()]
"""


def views(text: str) -> str:
    return f"def message():\n    return {text!r}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "reloadapp.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    (tmp_path / "views.py").write_text(views("one"), encoding="utf-8")
    (tmp_path / "extraapp.py").write_text(textwrap.dedent(EXTRA_APP), encoding="utf-8")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "page.txt").write_text("page v1", encoding="utf-8")
    return tmp_path


def start(ops_server, project: Path, *args: str, app: str = "reloadapp:app"):
    argv = [
        sys.executable, "-m", "ferrule", "--reload", "--bind", "127.0.0.1:0",
        "--graceful-timeout", "3", "-c", "", *args, app,
    ]  # fmt: skip
    srv = ops_server(argv, cwd=project)
    srv.wait_for_log(r"Worker \d+ \(pid \d+\) ready", timeout=20)
    return srv


def wait_body(srv, expected: bytes, timeout: float = RELOAD_WITHIN) -> float:
    """Polls GET / until the body is `expected`; returns the seconds it took."""
    began = time.monotonic()
    last = None
    while time.monotonic() - began < timeout:
        resp = srv.get("/")
        assert resp.status == 200
        last = resp.body
        if last == expected:
            return time.monotonic() - began
        time.sleep(0.1)
    raise AssertionError(
        f"body still {last!r} after {timeout}s, wanted {expected!r}\n{srv.log_text()}"
    )


def test_edit_then_syntax_error_then_fix(ops_server, project):
    srv = start(ops_server, project)
    assert srv.get("/").body == b"one"

    (project / "views.py").write_text(views("two two"), encoding="utf-8")
    wait_body(srv, b"two two")
    srv.wait_for_log(r"saw .*views\.py change \(--reload\)")

    mark = srv.mark()
    (project / "views.py").write_text("def message(:\n    return 'broken'\n", encoding="utf-8")
    srv.wait_for_log(r"views\.py does not compile; the workers keep the previous code", since=mark)
    assert "SyntaxError" in srv.log_text(since=mark)
    for _ in range(5):
        assert srv.get("/").body == b"two two"
        time.sleep(0.1)
    assert srv.alive()

    (project / "views.py").write_text(views("three 3 3"), encoding="utf-8")
    wait_body(srv, b"three 3 3")


def test_import_time_error_keeps_the_old_workers(ops_server, project):
    srv = start(ops_server, project, "-w", "2")
    mark = srv.mark()
    # Compiles, but fails when imported: the replacement cannot boot.
    (project / "views.py").write_text("raise RuntimeError('no db')\n", encoding="utf-8")
    srv.wait_for_log(r"failed to boot; the running workers keep serving", since=mark)
    assert "RuntimeError: no db" in srv.log_text(since=mark)
    for _ in range(10):
        assert srv.get("/").body == b"one"
    assert srv.alive()

    (project / "views.py").write_text(views("fixed again"), encoding="utf-8")
    wait_body(srv, b"fixed again")
    for _ in range(10):  # both workers were replaced
        assert srv.get("/").body == b"fixed again"


def test_extra_file_glob(ops_server, project):
    srv = start(ops_server, project, "--reload-extra-file", "templates/*.txt", app="extraapp:app")
    assert srv.get("/").body == b"page v1"
    (project / "templates" / "page.txt").write_text("page version 2", encoding="utf-8")
    wait_body(srv, b"page version 2")


def test_unrelated_file_does_not_reload(ops_server, project):
    srv = start(ops_server, project)
    mark = srv.mark()
    (project / "notes.txt").write_text("hello", encoding="utf-8")
    (project / "templates" / "page.txt").write_text("not watched", encoding="utf-8")
    time.sleep(2.5)
    assert "--reload" not in srv.log_text(since=mark)
    assert srv.get("/").body == b"one"


def test_poll_engine(ops_server, project):
    srv = start(ops_server, project, "--reload-engine", "poll")
    (project / "views.py").write_text(views("polled!"), encoding="utf-8")
    wait_body(srv, b"polled!")
