"""Runs a real `ferrule` process for a test.

The server binds `127.0.0.1:0`; the test learns the port from the error-log line
`Listening at: http://127.0.0.1:PORT (PID)` (readiness is that line, never a sleep). Background
threads drain stderr (error log) and stdout (access log) into lists, so tests can wait for and
assert on log lines and the pipes never fill. Stopping sends SIGTERM, waits, then SIGKILLs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from helpers import rawhttp

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps"

#: Seconds a server may take to report its address (debug builds importing Django are slow).
READY_TIMEOUT = 30.0
#: Seconds a server may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 15.0
#: Graceful drain given to every test server, so shutdown stays within the test's time budget.
GRACEFUL_TIMEOUT = "3"

LISTEN_RE = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+) \((\d+)\)")
#: Lines that always mean a broken server, whatever the test expects.
FATAL_RE = re.compile(r"panicked at|RUST_BACKTRACE|Fatal Python error|SIGSEGV")
#: Lines that mean an app or validator complained; a test that provokes them says so.
ERROR_RE = re.compile(
    r"Traceback \(most recent call last\)|Exception ignored|WSGIWarning|\[ERROR\]|\[CRITICAL\]"
)


class ServerFailed(AssertionError):
    pass


class _LogPipe:
    """Collects the lines of one pipe in a background thread and lets tests wait for a line."""

    def __init__(self, stream, name: str):
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._drain, args=(stream,), name=name, daemon=True)
        self._thread.start()

    def _drain(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_for(
        self, pattern: str | re.Pattern, timeout: float, since: int = 0
    ) -> re.Match | None:
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            checked = since
            while True:
                for line in self.lines[checked:]:
                    m = rx.search(line)
                    if m:
                        return m
                checked = max(checked, len(self.lines))
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._cond.wait(left)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class FerruleProcess:
    def __init__(
        self,
        app: str,
        *args: str,
        env: dict[str, str] | None = None,
        warnings_as_errors: bool = True,
        cwd: str | Path | None = None,
    ):
        self.app = app
        #: Working directory of the process (the test apps' directory unless given).
        self.cwd = str(cwd or APPS)
        self.args = list(args)
        self.argv = [sys.executable]
        if warnings_as_errors:
            # PEP 3333 tests run the apps under wsgiref.validate with warnings as errors.
            self.argv += ["-W", "error"]
        self.argv += [
            "-m", "ferrule",
            "--bind", "127.0.0.1:0",
            "--pythonpath", str(APPS),
            "--graceful-timeout", GRACEFUL_TIMEOUT,
            *self.args,
            app,
        ]  # fmt: skip
        self.env = dict(os.environ, **(env or {}))
        self.env.pop("PYTHONWARNINGS", None)
        self.port = 0
        self.pid = 0
        #: Set by a test that provokes app errors on purpose (tracebacks, [ERROR] lines).
        self.errors_expected = False
        #: Set when the test itself stopped the server.
        self.exited_on_purpose = False
        self.proc: subprocess.Popen | None = None

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> FerruleProcess:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.err = _LogPipe(self.proc.stderr, f"ferrule-stderr-{self.proc.pid}")
        self.out = _LogPipe(self.proc.stdout, f"ferrule-stdout-{self.proc.pid}")
        m = self.err.wait_for(LISTEN_RE, READY_TIMEOUT)
        if m is None:
            try:
                code = self.proc.wait(2)
                what = f"ferrule exited with code {code} before reporting its address"
            except subprocess.TimeoutExpired:
                what = f"ferrule did not report its address within {READY_TIMEOUT}s"
            self._kill()
            raise ServerFailed(f"{what}; argv={self.argv}\nstderr:\n{self.log_text()}")
        self.port = int(m.group(1))
        self.pid = int(m.group(2))
        if self.pid != self.proc.pid:
            self._kill()
            raise ServerFailed(f"Listening line names pid {self.pid}, process is {self.proc.pid}")
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM, wait, SIGKILL if needed. Returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill()
                raise ServerFailed(
                    f"ferrule did not exit within {STOP_TIMEOUT}s of SIGTERM\n{self.log_text()}"
                ) from None
        self._close_pipes()
        return self.proc.returncode

    def send_signal(self, sig: int) -> None:
        """Sends `sig` to test shutdown behaviour; the fixture then does not count the exit as
        unexpected."""
        assert self.proc is not None
        self.exited_on_purpose = True
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Waits for the process to exit (after `send_signal`) and returns its exit code."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ServerFailed(f"ferrule did not exit within {timeout}s") from None
        self._close_pipes()
        return code

    def _kill(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
        self._close_pipes()

    def _close_pipes(self) -> None:
        assert self.proc is not None
        self.err.join(5)
        self.out.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    # -- logs -----------------------------------------------------------------------------------
    @property
    def lines(self) -> list[str]:
        """Error-log (stderr) lines so far."""
        return list(self.err.lines)

    @property
    def access_lines(self) -> list[str]:
        """Access-log (stdout) lines so far."""
        return list(self.out.lines)

    def mark(self) -> int:
        """Index of the next error-log line, to look only at lines a step produced."""
        return len(self.err.lines)

    def log_text(self, since: int = 0) -> str:
        return "\n".join(self.err.lines[since:])

    def wait_for_log(self, pattern: str, timeout: float = 10.0, since: int = 0) -> str:
        m = self.err.wait_for(pattern, timeout, since)
        if m is None:
            raise AssertionError(
                f"no error-log line matching {pattern!r} within {timeout}s; log since mark:\n"
                f"{self.log_text(since)}"
            )
        return m.string

    def problems(self, since: int = 0) -> list[str]:
        """Log lines that fail a test: always panics; app errors unless the test expected them."""
        lines = self.err.lines[since:]
        rx = (
            FATAL_RE
            if self.errors_expected
            else re.compile(f"{FATAL_RE.pattern}|{ERROR_RE.pattern}")
        )
        return [ln for ln in lines if rx.search(ln)]

    # -- clients --------------------------------------------------------------------------------
    def client(self, timeout: float = rawhttp.DEFAULT_TIMEOUT) -> rawhttp.Client:
        return rawhttp.Client(self.port, timeout=timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, target: str, headers=None, **kw) -> rawhttp.Response:
        return rawhttp.get(self.port, target, headers, **kw)
