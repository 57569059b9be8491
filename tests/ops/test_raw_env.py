"""`-e/--env KEY=VALUE` (gunicorn's `raw_env`): os.environ is set before the app loads, in the
master and (inherited) in every worker; also from a gunicorn.conf.py."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from helpers.server import APPS

ENV_APP = """
    import os

    # Read at import time: the variables must be set before the app loads.
    AT_IMPORT = os.environ.get("FERRULE_TEST_GREETING", "unset")

    def application(environ, start_response):
        body = f"{AT_IMPORT}|{os.environ.get('FERRULE_TEST_EQ', 'unset')}|{os.getpid()}".encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
"""


def _app(tmp_path) -> str:
    path = tmp_path / "env_app.py"
    path.write_text(textwrap.dedent(ENV_APP))
    return str(path)


def _run(args, cwd, timeout=30):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRULE_")}
    return subprocess.run(
        [sys.executable, "-m", "ferrule", "--pythonpath", str(APPS), *args],
        cwd=cwd,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_env_is_set_in_every_worker_before_the_app_loads(ferrule_server, tmp_path):
    srv = ferrule_server(
        _app(tmp_path),
        "-w", "2",
        "-e", "FERRULE_TEST_GREETING=hello world",
        "--env", "FERRULE_TEST_EQ=a=b",
    )  # fmt: skip
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    pids = set()
    for _ in range(30):
        greeting, eq, pid = srv.get("/").body.decode().split("|")
        assert (greeting, eq) == ("hello world", "a=b")
        pids.add(pid)
    assert str(srv.pid) not in pids


def test_env_from_a_gunicorn_config_file(tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text('raw_env = ["FERRULE_TEST_GREETING=from conf"]\n')
    check = tmp_path / "check_app.py"
    check.write_text(
        "import os\n"
        "assert os.environ['FERRULE_TEST_GREETING'] == 'from conf', os.environ.get("
        "'FERRULE_TEST_GREETING')\n"
        "def application(environ, start_response):\n"
        "    return []\n"
    )
    proc = _run(["-c", str(conf), "--check-config", str(check)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "configuration OK" in proc.stdout
    assert "raw_env" not in proc.stderr, "no 'ignored' warning any more"


def test_env_without_equals_is_an_error_naming_the_option(tmp_path):
    proc = _run(["-e", "NO_EQUALS", "--check-config", _app(tmp_path)], tmp_path)
    assert proc.returncode != 0
    assert "raw_env" in proc.stderr or "--env" in proc.stderr, proc.stderr
    assert "KEY=VALUE" in proc.stderr, proc.stderr
