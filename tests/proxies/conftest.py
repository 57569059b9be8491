"""Fixtures for the real-proxy suite (issue 5): ferrule behind nginx, Apache httpd and HAProxy.

- `backend(*cli_args, port=0, instance=None, app=APP)`: a ferrule process serving
  tests/apps/proxy_app.py on 127.0.0.1 (`port` fixed when the proxy's configuration must name
  it before ferrule starts, e.g. for a restart on the same port). Stopped at teardown; the test
  fails if it panicked or the app logged an error.
- `nginx(site_template, **values)`, `apache(site_template, **values)`,
  `haproxy(site_template, **values)`: the proxy running the template (from proxy_configs.py)
  wrapped in its test harness, `@LISTEN@`/the listen port filled in; returns a `ProxyProcess`
  whose `port` the client uses. Stopped by process id at teardown.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import proxy_configs as cfg
import pytest
from proxy_rig import ProxyFailed, ProxyProcess, apache_modules_dir, find_program, free_port

from helpers.server import FerruleProcess, ServerFailed

APP = "proxy_app:application"


@pytest.fixture
def backend():
    started: list[FerruleProcess] = []

    def start(
        *args: str, port: int = 0, instance: str | None = None, app: str = APP
    ) -> FerruleProcess:
        env = {"PROXY_TEST_INSTANCE": instance} if instance else None
        for attempt in (1, 2):
            srv = FerruleProcess(app, *args, env=env)
            if port:
                # helpers.server binds 127.0.0.1:0; this backend's port is fixed instead.
                srv.argv[srv.argv.index("127.0.0.1:0")] = f"127.0.0.1:{port}"
            try:
                srv.start()
            except ServerFailed as exc:
                if attempt == 1 and port and "in use" in str(exc):
                    port = free_port()  # someone took the port since we picked it
                    continue
                raise
            started.append(srv)
            return srv
        raise AssertionError("unreachable")

    yield start
    problems = []
    for srv in started:
        if srv.proc is None:
            continue
        bad = srv.problems()
        if bad:
            problems.append("unexpected error-log lines:\n" + "\n".join(bad))
        if srv.alive():
            try:
                code = srv.stop()
            except AssertionError as exc:
                problems.append(str(exc))
                continue
            if code != 0:
                problems.append(f"ferrule exited with {code} after SIGTERM\n{srv.log_text()}")
        else:
            srv.stop()
            if not srv.exited_on_purpose:
                problems.append(f"ferrule died with {srv.proc.returncode}\n{srv.log_text()}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


class _Proxies:
    """Starts proxies of one kind for one test and stops them at teardown."""

    def __init__(self, kind: str, tmp_root: Path):
        self.kind = kind
        self.tmp_root = tmp_root
        self.started: list[ProxyProcess] = []

    def __call__(self, template: str, **values: str) -> ProxyProcess:
        for attempt in (1, 2):
            port = free_port()
            workdir = Path(tempfile.mkdtemp(prefix=f"{self.kind}-", dir=self.tmp_root))
            proc = getattr(self, f"_{self.kind}")(template, values, workdir, port)
            self.started.append(proc)
            try:
                return proc.start()
            except ProxyFailed:
                if attempt == 1 and proc.port_was_taken():
                    continue  # the free port we picked was taken in between: once more
                raise
        raise AssertionError("unreachable")

    def _nginx(self, template, values, workdir: Path, port: int) -> ProxyProcess:
        binary = find_program("nginx", package="nginx")
        site = cfg.render(template, LISTEN=f"127.0.0.1:{port}", **values)
        conf = workdir / "nginx.conf"
        conf.write_text(cfg.nginx_conf(site, str(workdir)))
        argv = [binary, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"]
        logs = [workdir / "error.log", workdir / "access.log"]
        return ProxyProcess("nginx", argv, workdir, port, logs)

    def _apache(self, template, values, workdir: Path, port: int) -> ProxyProcess:
        binary = find_program("apache2", "httpd", package="apache2")
        modules = apache_modules_dir()
        (workdir / "run").mkdir()
        site = cfg.render(template, **values)
        conf = workdir / "httpd.conf"
        conf.write_text(cfg.apache_conf(site, str(workdir), port, modules))
        argv = [binary, "-d", str(workdir), "-f", str(conf), "-DFOREGROUND"]
        return ProxyProcess("apache", argv, workdir, port, [workdir / "error.log"])

    def _haproxy(self, template, values, workdir: Path, port: int) -> ProxyProcess:
        binary = find_program("haproxy", package="haproxy")
        site = cfg.render(template, LISTEN=f"127.0.0.1:{port}", **values)
        conf = workdir / "haproxy.cfg"
        conf.write_text(cfg.haproxy_conf(site))
        argv = [binary, "-f", str(conf), "-db"]
        return ProxyProcess("haproxy", argv, workdir, port, [])

    def stop_all(self) -> list[str]:
        problems = []
        for proc in self.started:
            proc.stop()
            if not proc.ready:
                continue  # its start failed and said why
            fatal = proc.crashes_while_serving()
            if fatal:
                problems.append(f"{proc.name} logged: {fatal}\n{proc.log_text()}")
        return problems


def _proxy_fixture(kind: str):
    def fixture(tmp_path):
        root = tmp_path / "proxies"
        root.mkdir(exist_ok=True)
        proxies = _Proxies(kind, root)
        yield proxies
        problems = proxies.stop_all()
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)

    fixture.__doc__ = f"Starts real {kind} processes for this test (see the module docs)."
    return pytest.fixture(name=kind)(fixture)


nginx = _proxy_fixture("nginx")
apache = _proxy_fixture("apache")
haproxy = _proxy_fixture("haproxy")
