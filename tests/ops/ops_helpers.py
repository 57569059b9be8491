"""Constants shared by the operations suite and its fixtures."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

#: The console script installed beside the interpreter running the tests.
FERRULE_SCRIPT = Path(sys.executable).parent / "ferrule"
#: Seconds a command that must exit (load error, --version) may take.
CLI_TIMEOUT = 30.0
#: Text that means Rust panicked or Python crashed instead of reporting an error.
CRASH_RE = re.compile(r"panicked at|RUST_BACKTRACE|Fatal Python error|thread '.*' panicked")


def listening_ports(pid: int) -> list[int]:
    """TCP ports the process `pid` listens on, read from /proc (for servers whose log level hides
    the `Listening at` line). Linux only."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            # cols: sl local_address rem_address st ... inode (index 9); st 0A = LISTEN
            if cols[3] == "0A" and cols[9] in inodes:
                ports.append(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def wait_listening_port(pid: int, timeout: float = 30.0) -> int:
    """Polls `listening_ports` until the process listens (or raises after `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ports = listening_ports(pid)
        if ports:
            return ports[0]
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not listen within {timeout}s")
