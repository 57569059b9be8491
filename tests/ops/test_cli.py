"""The `ferrule` command over real processes: load errors end with exit code 1 and one
`Error:` line (after the app's traceback when its own code raised), never a Rust panic; every
APP form serves; --chdir, --pythonpath; `python -m ferrule`, the console script and
`ferrule.serve()` all serve; --version; --check-config; a busy port."""

from __future__ import annotations

import socket
import sys
import textwrap

import pytest
from ops_helpers import CRASH_RE, FERRULE_SCRIPT

from helpers import rawhttp

BIND = ("--bind", "127.0.0.1:0")


def body_of(srv, target: str = "/") -> bytes:
    resp = rawhttp.get(srv.port, target)
    assert resp.status == 200, resp
    return resp.body


def assert_one_error_line(proc, *fragments: str) -> str:
    """Exit 1, the last stderr line is the only `Error:` line and names every fragment, and no
    crash text anywhere. Returns stderr."""
    err = proc.stderr
    assert proc.returncode == 1, f"exit {proc.returncode}\nstderr:\n{err}"
    lines = err.rstrip("\n").split("\n")
    assert lines[-1].startswith("Error: "), err
    assert sum(line.startswith("Error:") for line in lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[-1], f"{fragment!r} not in {lines[-1]!r}"
    assert not CRASH_RE.search(err), err
    assert "Listening at" not in err, "the server started despite the error"
    return err


# -- load errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "fragments"),
    [
        ("nosuch_pkg.mod:app", ["nosuch_pkg"]),
        ("shop.wsgi:missing", ["missing", "shop.wsgi"]),
        ("shop.wsgi:not_callable", ["not_callable"]),
        ("shop.nosuch", ["shop.nosuch"]),
        ("shop.factory:create_app(", ["create_app("]),
        ("shop.factory:create_app(os.getcwd())", ["literals"]),
        ("deploy/missing.wsgi", ["deploy/missing.wsgi"]),
    ],
    ids=[
        "missing-module",
        "missing-attribute",
        "not-callable",
        "missing-submodule",
        "bad-factory-syntax",
        "factory-non-literal",
        "missing-file",
    ],
)
def test_load_error_is_one_line_and_exit_1(run_cli, app_tree, app, fragments):
    proc = run_cli(*BIND, "--chdir", str(app_tree), app)
    err = assert_one_error_line(proc, *fragments)
    assert "Traceback" not in err


def test_import_time_exception_prints_traceback_then_one_line(run_cli, app_tree):
    proc = run_cli(*BIND, "--chdir", str(app_tree), "shop.broken")
    err = assert_one_error_line(proc, "shop.broken", "RuntimeError", "database url missing")
    assert err.startswith("Traceback (most recent call last):"), err
    assert "in helper" in err


def test_busy_port_is_one_line_and_exit_1(run_cli, app_tree):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = run_cli("--bind", f"127.0.0.1:{port}", "--chdir", str(app_tree), "shop.wsgi")
    assert_one_error_line(proc, "cannot bind", f"127.0.0.1:{port}")


def test_version(run_cli):
    from ferrule import __version__

    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"ferrule {__version__}"


def test_check_config_loads_the_app_and_exits_without_serving(run_cli, app_tree):
    proc = run_cli("--check-config", *BIND, "--chdir", str(app_tree), "shop.wsgi:other")
    assert proc.returncode == 0, proc.stderr
    assert "configuration OK" in proc.stdout and "shop.wsgi:other" in proc.stdout
    assert "Listening at" not in proc.stderr


def test_check_config_reports_a_load_error(run_cli, app_tree):
    proc = run_cli("--check-config", "--chdir", str(app_tree), "shop.wsgi:missing")
    assert_one_error_line(proc, "missing")


def test_bad_option_value_exits_2_naming_it(run_cli):
    proc = run_cli("--threads", "zero", "shop.wsgi")
    assert proc.returncode == 2, proc.stderr
    assert "--threads" in proc.stderr
    assert not CRASH_RE.search(proc.stderr)


# -- every APP form serves ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "tag"),
    [
        ("shop.wsgi:other", b"shop.wsgi:other"),
        ("shop.wsgi", b"shop.wsgi:application"),
        ("shop.apponly", b"shop.apponly:app"),
        ("deploy/site.wsgi", b"deploy/site.wsgi"),
        ("deploy/app.py", b"deploy/app.py"),
        ("shop.factory:create_app()", b"factory:default:False"),
        ("shop.factory:create_app('x', debug=True)", b"factory:x:True"),
    ],
    ids=["module-attr", "module-application", "module-app", "wsgi-file", "py-file",
         "factory", "factory-args"],
)  # fmt: skip
def test_app_form_serves_with_chdir(ops_server, app_tree, app, tag):
    srv = ops_server([sys.executable, "-m", "ferrule", *BIND, "--chdir", str(app_tree), app])
    assert body_of(srv) == tag


def test_relative_file_app_from_the_working_directory(ops_server, app_tree):
    srv = ops_server([sys.executable, "-m", "ferrule", *BIND, "deploy/site.wsgi"], cwd=app_tree)
    assert body_of(srv) == b"deploy/site.wsgi"


def test_pythonpath_makes_a_module_importable(ops_server, app_tree, run_cli):
    proc = run_cli("--check-config", "pathapp", cwd=app_tree)
    assert proc.returncode == 1, "pathapp must not be importable without --pythonpath"
    srv = ops_server(
        [sys.executable, "-m", "ferrule", *BIND, "--pythonpath", f"{app_tree / 'libdir'},/nonexistent",
         "pathapp"],
        cwd=app_tree,
    )  # fmt: skip
    assert body_of(srv) == b"libdir/pathapp"


def test_console_script_serves(ops_server, app_tree):
    assert FERRULE_SCRIPT.is_file(), f"console script not installed at {FERRULE_SCRIPT}"
    srv = ops_server([str(FERRULE_SCRIPT), *BIND, "shop.wsgi"], cwd=app_tree)
    assert body_of(srv) == b"shop.wsgi:application"


def test_console_script_load_error(app_tree):
    import subprocess

    proc = subprocess.run(
        [str(FERRULE_SCRIPT), *BIND, "nosuch_mod_cs"],
        cwd=app_tree,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert_one_error_line(proc, "nosuch_mod_cs")


def test_serve_from_a_script(ops_server, tmp_path):
    script = tmp_path / "serve_me.py"
    script.write_text(
        textwrap.dedent(
            """
            import ferrule

            def app(environ, start_response):
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"served by ferrule.serve"]

            if __name__ == "__main__":
                ferrule.serve(app, bind="127.0.0.1:0", threads=2)
                print("serve returned", flush=True)
            """
        )
    )
    srv = ops_server([sys.executable, str(script)], cwd=tmp_path)
    assert body_of(srv) == b"served by ferrule.serve"
    srv.send_signal(__import__("signal").SIGTERM)
    assert srv.wait_exit() == 0
    assert srv.access_lines == ["serve returned"]
