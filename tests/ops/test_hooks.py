"""gunicorn server hooks from a real gunicorn.conf.py (issue 6): each hook is called with the
documented arguments, in order, in real processes (one lone process, and a master with two
workers); a raising hook is logged with its traceback and serving goes on; a raising
`on_starting` aborts the start.

The config file's hooks append one JSON line per call to the file named by $HOOK_LOG.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from workers_helpers import wait_children

APP = """
def app(environ, start_response):
    body = b"hello " + environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

def stream(environ, start_response):
    start_response("201 Created", [("Content-Type", "text/plain")])
    yield b"abc"
    yield b"defg"
"""

CONF = """
import json, os

_LOG = os.environ["HOOK_LOG"]
_RAISE = os.environ.get("HOOK_RAISE", "")

def _rec(hook, **data):
    data.update(hook=hook, pid=os.getpid())
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(data) + "\\n")
    if hook == _RAISE:
        raise RuntimeError(f"boom in {hook}")

def on_starting(server):
    _rec("on_starting", server_pid=server.pid, workers=server.cfg.workers,
         keepalive=server.cfg.keepalive)

def nworkers_changed(server, new_value, old_value):
    _rec("nworkers_changed", new=new_value, old=old_value)

def when_ready(server):
    server.log.info("when_ready says %s", "hi")
    _rec("when_ready", server_pid=server.pid)

def pre_fork(server, worker):
    _rec("pre_fork", age=worker.age, wpid=worker.pid)

def post_fork(server, worker):
    _rec("post_fork", age=worker.age, wpid=worker.pid, server_pid=server.pid)

def post_worker_init(worker):
    _rec("post_worker_init", age=worker.age, wpid=worker.pid, app=callable(worker.wsgi))

def pre_request(worker, req):
    _rec("pre_request", wpid=worker.pid, method=req.method, path=req.path, query=req.query,
         uri=req.uri, version=list(req.version), headers=[list(h) for h in req.headers])

def post_request(worker, req, environ, resp):
    _rec("post_request", wpid=worker.pid, path=req.path, env_path=environ["PATH_INFO"],
         status=resp.status, code=resp.status_code, sent=resp.sent,
         headers=[list(h) for h in resp.headers])

def worker_int(worker):
    _rec("worker_int", wpid=worker.pid)

def worker_exit(server, worker):
    _rec("worker_exit", wpid=worker.pid, age=worker.age)

def child_exit(server, worker):
    _rec("child_exit", wpid=worker.pid, age=worker.age, code=worker.exit_code,
         sig=worker.exit_signal)

def on_reload(server):
    _rec("on_reload")

def on_exit(server):
    _rec("on_exit", server_pid=server.pid)
"""

TIMEOUT = 20.0


@pytest.fixture
def hooked(tmp_path, ops_server):
    (tmp_path / "hookapp.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    (tmp_path / "gunicorn.conf.py").write_text(textwrap.dedent(CONF), encoding="utf-8")
    log = tmp_path / "hooks.jsonl"

    def start(*args: str, app: str = "hookapp:app", raise_in: str = ""):
        argv = [
            sys.executable, "-m", "ferrule", "-c", "gunicorn.conf.py",
            "--bind", "127.0.0.1:0", "--graceful-timeout", "3", *args, app,
        ]  # fmt: skip
        env = {"HOOK_LOG": str(log), "HOOK_RAISE": raise_in}
        return ops_server(argv, cwd=tmp_path, env=env)

    start.log = log
    return start


def records(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]


def wait_records(log: Path, pred, what: str) -> list[dict]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        recs = records(log)
        if pred(recs):
            return recs
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; hooks so far:\n{recs}")
        time.sleep(0.05)


def names(recs: list[dict]) -> list[str]:
    return [r["hook"] for r in recs]


def count(name: str, n: int = 1):
    return lambda recs: names(recs).count(name) >= n


def test_single_process_calls_every_hook_in_order(hooked):
    srv = hooked("-w", "1", "--keep-alive", "7")
    wait_records(hooked.log, count("post_worker_init"), "post_worker_init")
    resp = srv.get("/a/b?x=1", headers=[("X-Test", "yes")])
    assert resp.status == 200
    wait_records(hooked.log, count("post_request"), "post_request")
    assert srv.stop() == 0
    recs = records(hooked.log)
    assert names(recs) == [
        "on_starting",
        "nworkers_changed",
        "when_ready",
        "pre_fork",
        "post_fork",
        "post_worker_init",
        "pre_request",
        "post_request",
        "worker_exit",
        "on_exit",
    ]
    by = {r["hook"]: r for r in recs}
    assert all(r["pid"] == srv.pid for r in recs)
    assert by["on_starting"]["server_pid"] == srv.pid
    assert by["on_starting"]["workers"] == 1 and by["on_starting"]["keepalive"] == 7.0
    assert (by["nworkers_changed"]["new"], by["nworkers_changed"]["old"]) == (1, None)
    assert by["pre_fork"]["wpid"] is None and by["pre_fork"]["age"] == 1
    assert by["post_fork"]["wpid"] == srv.pid
    assert by["post_worker_init"]["app"] is True
    pre = by["pre_request"]
    assert (pre["method"], pre["path"], pre["query"], pre["uri"]) == (
        "GET",
        "/a/b",
        "x=1",
        "/a/b?x=1",
    )
    assert pre["version"] == [1, 1]
    assert ["X-TEST", "yes"] in pre["headers"]
    assert any(h[0] == "HOST" for h in pre["headers"])
    post = by["post_request"]
    assert post["status"] == "200 OK" and post["code"] == 200
    assert post["sent"] == len(b"hello /a/b") and post["env_path"] == "/a/b"
    assert ["Content-Type", "text/plain"] in post["headers"]
    assert srv.wait_for_log(r"\[INFO\] when_ready says hi")


def test_post_request_after_a_streamed_body(hooked):
    srv = hooked("-w", "1", app="hookapp:stream")
    resp = srv.get("/s")
    assert resp.status == 201 and resp.body == b"abcdefg"
    recs = wait_records(hooked.log, count("post_request"), "post_request")
    post = next(r for r in recs if r["hook"] == "post_request")
    assert (post["code"], post["sent"]) == (201, 7)


def test_workers_call_the_hooks_in_their_processes(hooked):
    srv = hooked("-w", "2")
    kids = wait_children(srv.pid, 2)
    recs = wait_records(hooked.log, count("post_worker_init", 2), "two post_worker_init")
    assert names(recs)[:3] == ["on_starting", "nworkers_changed", "when_ready"]
    assert all(r["pid"] == srv.pid for r in recs[:3])
    for age in (1, 2):
        seq = [r for r in recs if r.get("age") == age]
        assert [r["hook"] for r in seq] == ["pre_fork", "post_fork", "post_worker_init"]
        pre_fork, post_fork, init = seq
        assert pre_fork["pid"] == srv.pid and pre_fork["wpid"] is None
        assert post_fork["pid"] in kids and post_fork["wpid"] == post_fork["pid"]
        assert post_fork["server_pid"] == srv.pid
        assert init["pid"] == post_fork["pid"]
    for _ in range(4):
        assert srv.get("/w").status == 200
    recs = wait_records(hooked.log, count("post_request", 4), "four post_request")
    assert {r["pid"] for r in recs if r["hook"] in ("pre_request", "post_request")} <= kids

    # TTIN: one more worker
    os.kill(srv.pid, signal.SIGTTIN)
    recs = wait_records(hooked.log, count("post_worker_init", 3), "a third worker")
    changed = [r for r in recs if r["hook"] == "nworkers_changed"]
    assert [(r["new"], r["old"]) for r in changed] == [(2, None), (3, 2)]
    assert [r["age"] for r in recs if r["hook"] == "pre_fork"] == [1, 2, 3]

    # A killed worker: child_exit in the master, with the signal
    victim = next(r for r in recs if r["hook"] == "post_fork" and r["age"] == 1)["pid"]
    srv.exited_on_purpose = True  # the master logs the unexpected death at ERROR
    os.kill(victim, signal.SIGKILL)
    recs = wait_records(hooked.log, count("child_exit"), "child_exit")
    gone = next(r for r in recs if r["hook"] == "child_exit")
    assert gone["pid"] == srv.pid and gone["wpid"] == victim and gone["age"] == 1
    assert gone["sig"] == signal.SIGKILL and gone["code"] is None

    # HUP: on_reload in the master
    os.kill(srv.pid, signal.SIGHUP)
    recs = wait_records(hooked.log, count("on_reload"), "on_reload")
    assert next(r for r in recs if r["hook"] == "on_reload")["pid"] == srv.pid

    # TERM: worker_exit in each worker, child_exit in the master, on_exit last
    def reloaded(recs):
        after = names(recs)[names(recs).index("on_reload") :]
        return after.count("post_worker_init") >= 3

    wait_records(hooked.log, reloaded, "three new workers")
    wait_children(srv.pid, 3)  # the old ones have left
    time.sleep(0.3)  # their child_exit hooks ran right after the reap
    mark = len(records(hooked.log))
    assert srv.stop() == 0
    tail = records(hooked.log)[mark:]
    assert tail[-1]["hook"] == "on_exit" and tail[-1]["pid"] == srv.pid
    exits = [r for r in tail if r["hook"] == "worker_exit"]
    reaped = [r for r in tail if r["hook"] == "child_exit"]
    assert len(exits) == 3 and {r["pid"] for r in exits} == {r["wpid"] for r in reaped}
    assert all(r["code"] == 0 for r in reaped)
    for r in exits:  # each worker ran worker_exit before the master reaped it
        assert tail.index(r) < next(
            i for i, x in enumerate(tail) if x.get("wpid") == r["pid"] and x["hook"] == "child_exit"
        )


def test_worker_int_on_sigint_single_process(hooked):
    srv = hooked("-w", "1")
    wait_records(hooked.log, count("post_worker_init"), "post_worker_init")
    srv.send_signal(signal.SIGINT)
    assert srv.wait_exit() == 0
    assert names(records(hooked.log))[-3:] == ["worker_int", "worker_exit", "on_exit"]


def test_worker_int_in_a_worker_that_gets_sigint(hooked):
    srv = hooked("-w", "2")
    srv.exited_on_purpose = True  # the master logs the worker's unasked exit at ERROR
    recs = wait_records(hooked.log, count("post_worker_init", 2), "two workers")
    victim = next(r for r in recs if r["hook"] == "post_fork")["pid"]
    os.kill(victim, signal.SIGINT)
    recs = wait_records(hooked.log, count("child_exit"), "child_exit")
    mine = [r["hook"] for r in recs if r["pid"] == victim]
    assert mine[-2:] == ["worker_int", "worker_exit"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_raising_hook_is_logged_and_serving_goes_on(hooked, workers):
    srv = hooked("-w", workers, raise_in="pre_request")
    wait_records(hooked.log, count("post_worker_init", int(workers)), "workers")
    for _ in range(3):
        assert srv.get("/x").status == 200
    srv.wait_for_log(r"Exception in the pre_request hook")
    text = srv.log_text()
    assert (
        "Traceback (most recent call last)" in text and "RuntimeError: boom in pre_request" in text
    )
    recs = wait_records(hooked.log, count("post_request", 3), "post_request")
    assert all(r["code"] == 200 for r in recs if r["hook"] == "post_request")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_raising_master_hook_does_not_stop_the_server(hooked, workers):
    srv = hooked("-w", workers, raise_in="when_ready")
    srv.wait_for_log(r"Exception in the when_ready hook")
    wait_records(hooked.log, count("post_worker_init", int(workers)), "workers")
    assert srv.get("/").status == 200


def test_a_raising_on_starting_aborts_the_start(tmp_path, run_cli):
    (tmp_path / "hookapp.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    (tmp_path / "gunicorn.conf.py").write_text(textwrap.dedent(CONF), encoding="utf-8")
    log = tmp_path / "hooks.jsonl"
    env = {"HOOK_LOG": str(log), "HOOK_RAISE": "on_starting"}
    for workers in ("1", "2"):
        proc = run_cli(
            "-c", "gunicorn.conf.py", "--bind", "127.0.0.1:0", "-w", workers, "hookapp:app",
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "RuntimeError: boom in on_starting" in proc.stderr
        assert "Error: the on_starting hook raised" in proc.stderr
        assert "Listening at" not in proc.stderr
    assert names(records(log)) == ["on_starting", "on_starting"]
