"""A serving process imports nothing it does not need (issue 7: RSS of a hello worker).

Every module a worker imports stays in its memory for its whole life. The ones below cost
megabytes of RSS each (measured with a release build, `python -c 'import X'` against a bare
interpreter, docs/architecture.md "Memory") and serve no request: they may be imported on
demand (`ferrule --version`, `--log-config`), never on the way to serving.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from helpers.server import APPS, LISTEN_RE, READY_TIMEOUT

#: Module -> why it must stay out of a serving process (RSS it adds, with what it pulls in).
NOT_IMPORTED = {
    "importlib.metadata": "about 7 MB (email, zipfile, csv, ...): only `ferrule --version`",
    "email": "pulled in by importlib.metadata",
    "zipfile": "pulled in by importlib.metadata",
    "logging.config": "about 4 MB (logging.handlers, socketserver, pickle): only --log-config",
    "logging.handlers": "pulled in by logging.config",
    "socketserver": "pulled in by logging.config",
}

#: Modules the command needs to resolve the configuration and a single-process server does not
#: hold, because the command re-executes into `ferrule.lean` (about 5.5 MB in all).
NOT_IN_LEAN = {
    "argparse": "the command line: parsed by the command before the re-exec",
    "dataclasses": "ferrule.config's Config (with inspect, ast, dis)",
    "inspect": "pulled in by dataclasses",
    "typing": "about 1.7 MB: annotations only, behind TYPE_CHECKING",
    "ferrule.config": "the option table: resolved by the command",
    "ferrule.cli": "the command itself",
    "ferrule.sources": "config files, environment: resolved by the command",
    "json": "the settings cross the exec as marshal data",
}


@pytest.mark.parametrize("args", [(), ("--workers", "2")], ids=["single", "workers"])
def test_serving_process_skips_heavy_imports(ferrule_server, args):
    srv = ferrule_server("modules_app:application", *args)
    resp = srv.get("/")
    assert resp.status == 200, resp
    modules = set(resp.body.decode().split("\n"))
    assert "ferrule._ferrule" in modules, "the answer is not the server's module list"
    found = {name: why for name, why in NOT_IMPORTED.items() if name in modules}
    assert not found, f"a serving process imported {found}"


def _modules(srv) -> set[str]:
    resp = srv.get("/")
    assert resp.status == 200, resp
    modules = set(resp.body.decode().split("\n"))
    assert "ferrule._ferrule" in modules, "the answer is not the server's module list"
    return modules


def test_single_process_serves_from_the_lean_module(ferrule_server):
    srv = ferrule_server("modules_app:application")
    modules = _modules(srv)
    assert "ferrule.lean" in modules and "ferrule.loader" in modules
    found = {name: why for name, why in NOT_IN_LEAN.items() if name in modules}
    assert not found, f"the single-process server still holds {found}"
    # The same pid as the command (the harness checks the Listening line's pid), re-executed.
    with open(f"/proc/{srv.proc.pid}/cmdline", "rb") as f:
        cmdline = f.read().split(b"\0")
    assert any(b"from ferrule.lean import main" in arg for arg in cmdline), cmdline
    # The app sees the command's sys.argv and none of the settings that crossed the exec.
    environ = srv.get("/environ").body.decode().split("\n")
    assert "_FERRULE_LEAN_SETTINGS" not in environ
    assert "PATH" in environ
    argv = srv.get("/argv").body.decode().split("\n")
    assert argv[-1] == "modules_app:application", argv


def test_interpreter_flags_cross_the_exec(ferrule_server):
    """-W error (the harness's PEP 3333 runs) and -X options reach the lean process."""
    srv = ferrule_server("modules_app:application", warnings_as_errors=True)
    with open(f"/proc/{srv.proc.pid}/cmdline", "rb") as f:
        cmdline = f.read().split(b"\0")
    assert b"-Werror" in cmdline[: cmdline.index(b"-c")], cmdline


def test_hooks_keep_the_command_process(ferrule_server, tmp_path):
    """Server hooks are Python callables from the config file: no re-exec."""
    conf = tmp_path / "conf.py"
    conf.write_text("def when_ready(server):\n    pass\n")
    modules = _modules(ferrule_server("modules_app:application", "--config", str(conf)))
    assert "ferrule.cli" in modules


@pytest.mark.parametrize(
    "args",
    [("--workers", "2"), ("--max-requests", "1000")],
    ids=["workers", "recycling"],
)
def test_a_master_keeps_its_imports(ferrule_server, args):
    """With a master, the workers are forks of the command's process (no re-exec)."""
    modules = _modules(ferrule_server("modules_app:application", *args))
    assert "ferrule.cli" in modules


def test_the_lean_process_finds_ferrule_off_the_default_path(tmp_path):
    """A `ferrule` imported from a directory the new interpreter would not search by itself (here:
    `python -S`, no site-packages; in practice a source tree or a pex/shiv bundle) still serves:
    the lean bootstrap puts that directory on `sys.path` first."""
    import ferrule

    root = os.path.dirname(os.path.dirname(os.path.abspath(ferrule.__file__)))
    code = (
        f"import sys; sys.path.insert(0, {root!r}); from ferrule.cli import main; sys.exit(main())"
    )
    argv = [sys.executable, "-S", "-c", code, "--bind", "127.0.0.1:0", "--pythonpath", str(APPS)]
    proc = subprocess.Popen(
        [*argv, "modules_app:application"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        deadline = time.monotonic() + READY_TIMEOUT
        lines = []
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            m = LISTEN_RE.search(line)
            if m:
                port = int(m.group(1))
        assert port is not None, "".join(lines)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200 "), data[:200]
        assert b"ferrule.lean" in data  # it is the lean process that answered
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()
