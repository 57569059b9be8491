"""`-w/--workers N`: a master forks N workers over the listeners it bound (issue 4).

Real processes, bounded time: worker count and wsgi.multiprocess, replacement of a killed worker,
a boot failure stopping everything with one message, `--preload`, WEB_CONCURRENCY.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from workers_helpers import children, wait_children

from helpers.server import APPS

APP = "workers_app:app"


def _pids_seen(srv, n: int = 40) -> set[int]:
    """Pids answering `n` concurrent-ish requests (the kernel spreads accepts over workers)."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: srv.get("/sleep?s=0.05").body, range(n)))
    return {int(b.split()[1]) for b in bodies}


def test_master_forks_the_workers_and_they_serve(ferrule_server):
    srv = ferrule_server(APP, "-w", "2")
    kids = wait_children(srv.pid, 2)
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    resp = srv.get("/pid")
    pid, multiprocess = resp.body.decode().split()
    assert int(pid) in kids and multiprocess == "True"
    assert _pids_seen(srv) <= kids


def test_killed_worker_is_replaced_and_requests_keep_succeeding(ferrule_server):
    srv = ferrule_server(APP, "-w", "2")
    srv.errors_expected = True  # the master logs the unexpected death at ERROR
    kids = wait_children(srv.pid, 2)
    victim = min(kids)
    mark = srv.mark()
    os.kill(victim, signal.SIGKILL)
    srv.wait_for_log(
        rf"Worker \d+ \(pid {victim}\) was killed by SIGKILL: replacing it", since=mark
    )
    srv.wait_for_log(r"Worker 3 \(pid \d+\) ready", since=mark)
    new = wait_children(srv.pid, 2)
    assert victim not in new
    for _ in range(20):
        assert srv.get("/").status == 200


def _run_to_exit(*args: str, env: dict[str, str] | None = None, timeout: float = 30):
    argv = [sys.executable, "-m", "ferrule", "--bind", "127.0.0.1:0", "--pythonpath", str(APPS)]
    return subprocess.run(
        [*argv, *args],
        check=False,
        cwd=str(APPS),
        env=dict(os.environ, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_boot_failure_stops_the_master_with_one_message():
    started = time.monotonic()
    proc = _run_to_exit("-w", "3", "--graceful-timeout", "3", "workers_broken_app:app")
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - started < 20
    err = proc.stderr
    # One failure reported (the first), with the app's traceback and the CLI's Error line.
    assert len(re.findall(r"failed to boot", err)) == 1, err
    assert len(re.findall(r"^Error: ", err, re.MULTILINE)) == 1, err
    assert "workers_broken_app refuses to load" in err
    # No respawn storm: exactly the three initial forks.
    assert len(re.findall(r"Booting worker \d+", err)) == 3, err
    assert "panicked" not in err


def test_preload_loads_once_in_the_master(ferrule_server):
    srv = ferrule_server(APP, "-w", "2", "--preload")
    kids = wait_children(srv.pid, 2)
    srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    assert _pids_seen(srv) <= kids


def test_preload_load_error_is_the_single_process_error():
    proc = _run_to_exit("-w", "2", "--preload", "workers_broken_app:app")
    assert proc.returncode == 1
    assert "Booting worker" not in proc.stderr  # failed before any fork
    assert len(re.findall(r"^Error: ", proc.stderr, re.MULTILINE)) == 1, proc.stderr


def test_web_concurrency_sets_the_default(ferrule_server):
    srv = ferrule_server(APP, env={"WEB_CONCURRENCY": "3"})
    wait_children(srv.pid, 3)
    srv.wait_for_log(r"Worker 3 \(pid \d+\) ready")


def test_bad_web_concurrency_is_a_usage_error():
    proc = _run_to_exit(APP, env={"WEB_CONCURRENCY": "lots"})
    assert proc.returncode == 2
    assert "WEB_CONCURRENCY" in proc.stderr


def test_one_worker_serves_in_process(ferrule_server):
    srv = ferrule_server(APP)
    assert children(srv.pid) == set()
    pid, multiprocess = srv.get("/pid").body.decode().split()
    assert (int(pid), multiprocess) == (srv.pid, "False")
