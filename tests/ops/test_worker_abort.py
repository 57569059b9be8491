"""gunicorn's `worker_abort(worker)` hook (issue 6) runs when --timeout fires for a request: in
the process serving it (a worker under a master, or the lone process), once, with that process's
WorkerInfo, while the timed-out request is still on its thread's stack; a raising hook is logged
with its traceback and the timeout goes on (the thread unwinds, the server serves on). Real
processes, a real gunicorn.conf.py, bounded time.

The config file's hooks append one JSON line per call to the file named by $HOOK_LOG.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap

import pytest
from test_hooks import records, wait_records
from workers_helpers import wait_children

from helpers.rawhttp import build_request

APP = """
import time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        slow_part()  # the frame worker_abort looks for
    body = f"ok {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

def slow_part():
    end = time.monotonic() + 30
    while time.monotonic() < end:  # short sleeps: RequestTimeout is raised within ~10 ms
        time.sleep(0.01)
"""

CONF = """
import json, os, sys, threading

_LOG = os.environ["HOOK_LOG"]
_RAISE = os.environ.get("HOOK_RAISE", "")

def _rec(hook, **data):
    data.update(hook=hook, pid=os.getpid())
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(data) + "\\n")

def _in_slow_part():
    for frame in sys._current_frames().values():
        while frame is not None:
            if frame.f_code.co_name == "slow_part":
                return True
            frame = frame.f_back
    return False

def post_fork(server, worker):
    _rec("post_fork", age=worker.age, wpid=worker.pid)

def worker_abort(worker):
    _rec("worker_abort", cls=type(worker).__name__, age=worker.age, wpid=worker.pid,
         ppid=worker.ppid, booted=worker.booted, alive=worker.alive,
         app=callable(worker.wsgi), in_request=_in_slow_part(),
         thread=threading.current_thread().name)
    if _RAISE:
        raise RuntimeError("boom in worker_abort")
"""


@pytest.fixture
def aborting(tmp_path, ops_server):
    (tmp_path / "abortapp.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    (tmp_path / "gunicorn.conf.py").write_text(textwrap.dedent(CONF), encoding="utf-8")
    log = tmp_path / "hooks.jsonl"

    def start(*args: str, raise_in_hook: bool = False):
        argv = [
            sys.executable, "-m", "ferrule", "-c", "gunicorn.conf.py",
            "--bind", "127.0.0.1:0", "--graceful-timeout", "3", "--threads", "2",
            "--timeout", "1", *args, "abortapp:app",
        ]  # fmt: skip
        env = {"HOOK_LOG": str(log), "HOOK_RAISE": "1" if raise_in_hook else ""}
        return ops_server(argv, cwd=tmp_path, env=env)

    start.log = log
    return start


def hook_calls(log, name: str = "worker_abort") -> list[dict]:
    return [r for r in records(log) if r["hook"] == name]


def time_out_one(srv, target: str = "/slow") -> int:
    """Sends a request that runs past --timeout; checks the 504; returns the error-log mark
    taken before it."""
    mark = srv.mark()
    with srv.client(timeout=10) as c:
        c.send(build_request("GET", target))
        resp = c.read_response()
    assert resp.status == 504, resp
    # The thread unwound: the hook did not keep the injection from happening.
    srv.wait_for_log(rf"Request timeout: GET {re.escape(target)} HTTP/1.1 unwound", since=mark)
    return mark


@pytest.mark.parametrize("workers", ["1", "2"])
def test_worker_abort_runs_once_in_the_serving_process(aborting, workers):
    srv = aborting("-w", workers)
    # Every process that serves has forked (or, alone, played its own worker) and loaded the app.
    forks = wait_records(
        aborting.log,
        lambda recs: sum(r["hook"] == "post_fork" for r in recs) == int(workers),
        "post_fork",
    )
    if workers == "1":
        serving = {srv.pid}
    else:
        serving = wait_children(srv.pid, 2)
        srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    assert {r["pid"] for r in forks} == serving
    assert srv.get("/").status == 200

    mark = time_out_one(srv)
    calls = hook_calls(aborting.log)
    assert len(calls) == 1, calls
    call = calls[0]
    assert call["pid"] in serving  # in the worker, not the master
    assert call["cls"] == "WorkerInfo"
    assert call["wpid"] == call["pid"]
    # Its parent: the master, or for a lone process whoever started it (this test).
    assert call["ppid"] == (os.getpid() if workers == "1" else srv.pid)
    fork = next(r for r in forks if r["pid"] == call["pid"])
    assert call["age"] == fork["age"]  # the worker's own WorkerInfo, as post_fork got it
    assert call["booted"] and call["alive"] and call["app"]
    # Before RequestTimeout: the timed-out request was still running when the hook ran, and
    # the hook ran on ferrule's timeout thread, not on the app thread.
    assert call["in_request"] is True
    assert not call["thread"].startswith("ferrule-app-")
    # In the log: the timeout, then the stack, before the unwinding.
    log = srv.log_text(mark)
    assert re.search(r"Request timeout: GET /slow HTTP/1.1 ran 1.0s", log), log
    assert "Exception in the worker_abort hook" not in log

    # The same process serves on; once per timed-out request (no second call for this one).
    for _ in range(4):
        assert srv.get("/").status == 200
    assert len(hook_calls(aborting.log)) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_raising_worker_abort_is_logged_and_serving_goes_on(aborting, workers):
    srv = aborting("-w", workers, raise_in_hook=True)
    wait_records(
        aborting.log,
        lambda recs: sum(r["hook"] == "post_fork" for r in recs) == int(workers),
        "post_fork",
    )
    if workers == "2":
        srv.wait_for_log(r"Worker 2 \(pid \d+\) ready")
    for n in (1, 2):  # the timeout keeps working after a raising hook
        mark = time_out_one(srv)
        srv.wait_for_log(r"\[ERROR\] Exception in the worker_abort hook", since=mark)
        text = srv.log_text(mark)
        assert "Traceback (most recent call last)" in text, text
        assert "RuntimeError: boom in worker_abort" in text, text
        assert len(hook_calls(aborting.log)) == n
        for _ in range(3):
            resp = srv.get("/")
            assert resp.status == 200 and resp.body == b"ok /"


SCRIPT = """
import json, os, signal, threading, time
from ferrule import _ferrule
from ferrule.config import Config

_OUT = os.environ["ABORT_LOG"]
_app_thread = []

def app(environ, start_response):
    _app_thread.append(threading.get_ident())
    end = time.monotonic() + 30
    while time.monotonic() < end:
        time.sleep(0.01)
    start_response("200 OK", [("Content-Length", "0")])
    return [b""]

def on_timeout(thread_ident, request_line):
    with open(_OUT, "a", encoding="utf-8") as f:
        f.write(json.dumps({"ident": thread_ident, "line": request_line,
                            "app_ident": _app_thread[-1]}) + "\\n")
    raise ValueError("callback boom")

server = _ferrule.Server(Config(bind="127.0.0.1:0", threads=1, timeout=1).to_rust_json(), app,
                         on_timeout=on_timeout)
threading.Thread(target=server.serve_worker, daemon=True).start()
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, signal.SIG_DFL)
server.run()
"""


def test_the_extensions_on_timeout_gets_the_thread_and_request(tmp_path, ops_server):
    """`_ferrule.Server(..., on_timeout=f)`, which the hook is built on: `f(thread_ident,
    request_line)` for the timed-out request's thread; an exception from `f` is logged with its
    traceback and the thread is still interrupted."""
    (tmp_path / "serve_it.py").write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    out = tmp_path / "calls.jsonl"
    srv = ops_server([sys.executable, "serve_it.py"], cwd=tmp_path, env={"ABORT_LOG": str(out)})
    mark = time_out_one(srv, "/slow?x=1")
    srv.wait_for_log(r"\[ERROR\] Request timeout: the on_timeout callback raised", since=mark)
    text = srv.log_text(mark)
    assert "Traceback (most recent call last)" in text and "ValueError: callback boom" in text
    [call] = records(out)
    assert call["ident"] == call["app_ident"]  # threading.get_ident() of the app's thread
    assert call["line"] == "GET /slow?x=1 HTTP/1.1"
