"""SIGUSR1 reopens the log files (issue 4), the logrotate way: rename the files, send USR1,
and the server writes to fresh files at the same paths. With workers the master reopens its
error log and forwards the signal to every worker. Real processes, bounded time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers.rawhttp import get
from helpers.server import APPS

APP = "supervision_app:app"


def _wait_file(path: Path, pattern: str, timeout: float = 15.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        m = re.search(pattern, text)
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}: no {pattern!r} within {timeout}s:\n{text}")
        time.sleep(0.05)


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ferrule",
            "--bind",
            "127.0.0.1:0",
            "--pythonpath",
            str(APPS),
            "--graceful-timeout",
            "3",
            "--error-logfile",
            str(tmp_path / "error.log"),
            "--access-logfile",
            str(tmp_path / "access.log"),
            *args,
            APP,
        ],
        cwd=str(APPS),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    m = _wait_file(tmp_path / "error.log", r"Listening at: http://127\.0\.0\.1:(\d+)")
    return proc, int(m.group(1))


def _rotate_and_check(tmp_path: Path, proc: subprocess.Popen, port: int, reopened: int) -> None:
    err, acc = tmp_path / "error.log", tmp_path / "access.log"
    for _ in range(5):
        assert get(port, "/before").status == 200
    _wait_file(acc, r"GET /before")
    err.rename(tmp_path / "error.log.1")
    acc.rename(tmp_path / "access.log.1")
    proc.send_signal(signal.SIGUSR1)
    # Every process that reopened says so in the new error log.
    deadline = time.monotonic() + 10
    while len(re.findall(r"reopening log files", err.read_text() if err.exists() else "")) < (
        reopened
    ):
        assert time.monotonic() < deadline, err.read_text() if err.exists() else "no error.log"
        time.sleep(0.05)
    for _ in range(20):
        assert get(port, "/after").status == 200
    # The line is written just after the response went out: wait for the last one.
    _wait_file(acc, r"(GET /after[^\n]*\n[^\n]*){20}")
    old = (tmp_path / "access.log.1").read_text()
    assert "/after" not in old and "/before" in old
    assert "/before" not in acc.read_text()
    assert len(re.findall(r"GET /after", acc.read_text())) == 20


def test_usr1_reopens_the_logs_of_a_single_process(tmp_path):
    proc, port = _start(tmp_path)
    try:
        _rotate_and_check(tmp_path, proc, port, reopened=1)
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


def test_usr1_reopens_the_logs_of_the_master_and_every_worker(tmp_path):
    proc, port = _start(tmp_path, "-w", "2")
    try:
        _wait_file(tmp_path / "error.log", r"Worker 2 \(pid \d+\) ready")
        _rotate_and_check(tmp_path, proc, port, reopened=3)
        text = (tmp_path / "error.log").read_text()
        pids = set(re.findall(r"\[(\d+)\] \[INFO\] Handling signal: usr1", text))
        assert str(proc.pid) in pids and len(pids) == 3, text
        assert proc.poll() is None and not os.path.exists(tmp_path / "error.log.2")
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
