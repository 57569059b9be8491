"""`--pid FILE`: the serving process's pid in a file, as gunicorn writes it.

The `ferrule` command writes it before serving; the process that serves removes it at exit (the
same process, or the lean one the command re-executes into: `ferrule.lean`, same pid).
"""

from __future__ import annotations

import os

__all__ = ["PidFile"]


class PidFile:
    """`--pid FILE`: this process's pid in FILE while it serves (written atomically, removed
    at exit if it still names us); refused when FILE names another live process."""

    def __init__(self, path: str | None, replaces: int | None = None) -> None:
        self.path = path
        #: The old master a USR2 re-exec replaces: its pid in FILE is expected, not a conflict.
        self.replaces = replaces

    def write(self) -> None:
        if self.path is None:
            return
        try:
            with open(self.path, encoding="ascii") as f:
                other = int(f.read().strip() or "0")
        except (OSError, ValueError):
            other = 0
        if other > 0 and other != os.getpid() and other != self.replaces:
            try:
                os.kill(other, 0)
            except ProcessLookupError:
                pass  # a stale file from a process that is gone
            except PermissionError:
                raise OSError(f"--pid {self.path}: already running as pid {other}") from None
            else:
                raise OSError(f"--pid {self.path}: already running as pid {other}")
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        if self.path is None:
            return
        try:
            with open(self.path, encoding="ascii") as f:
                if f.read().strip() == str(os.getpid()):
                    os.unlink(self.path)
        except OSError:
            pass
