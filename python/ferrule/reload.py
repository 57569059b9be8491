"""`--reload`: a worker watches the app's files and asks its master for a replacement when one
changes (issue 6, dev reload).

`--reload` implies a master, even with `-w 1` (`Config.uses_master`). Each worker, once its app
is loaded, starts a daemon thread that watches

- the Python files of the modules it imported, except the standard library, site-packages and
  ferrule itself (modules imported later are picked up within a second), and
- the files matching `--reload-extra-file` globs (relative to the worker's directory).

A change to a `.py` file is compiled first: if it does not compile, the error goes to the error
log and nothing restarts (the running workers keep the previous code). Otherwise the worker sends
`RETIRING` (the recycling path, docs/architecture.md "Processes"): the master forks a replacement,
which imports the new code, and stops the old worker once the replacement is ready. New code that
compiles but fails to import (a `NameError` at import time) makes the replacement fail to boot;
with `--reload` the master then keeps the running workers instead of stopping the server, and
the next change tries again.

Changes are seen with Linux inotify (through libc, `ctypes`) on the watched files' directories,
so editors that save by renaming a temporary file are seen too; `--reload-engine poll` (or auto,
when inotify is unavailable) compares the files' modification times every second instead.
"""

from __future__ import annotations

import ctypes
import errno
import fnmatch
import glob
import os
import select
import site
import struct
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence

from ferrule.config import Config

__all__ = ["Watcher", "project_files", "start_watcher"]

#: How often, in seconds, the watcher looks for newly imported modules (and polls, in poll mode).
SCAN_INTERVAL = 1.0
#: After a first change, events arriving within this many seconds are taken together (an editor
#: writes a file in several steps; a `git checkout` changes several files).
SETTLE = 0.1
#: Most inotify watches (directories) one worker adds; the kernel's per-user default is 8192+.
MAX_WATCHES = 4096

# <sys/inotify.h>
_IN_MODIFY = 0x002
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_TO = 0x080
_IN_DELETE = 0x200
_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000
_WATCH_MASK = _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_DELETE | _IN_MODIFY
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of name


def _excluded_roots() -> tuple[str, ...]:
    """Directories whose modules are not the app's: the standard library, site-packages, and
    ferrule itself."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(path)
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:  # a virtualenv's old site module
        pass
    roots.add(os.path.dirname(os.path.abspath(__file__)))  # ferrule's own package
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots if r)


def project_files(excluded: Sequence[str] | None = None) -> set[str]:
    """The source files of the imported modules that belong to the app (see the module docs)."""
    excluded = _excluded_roots() if excluded is None else excluded
    out = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        if path.endswith(".pyc"):
            path = path[:-1]
        if not path.endswith((".py", ".wsgi")):
            continue
        path = os.path.realpath(path)
        if not path.startswith(excluded) and os.path.isfile(path):
            out.add(path)
    return out


class _Inotify:
    """The few inotify calls the watcher needs (libc through ctypes)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._add.restype = ctypes.c_int
        fd = libc.inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd = fd
        self.dirs: dict[int, str] = {}  # watch descriptor -> directory
        self._watched: set[str] = set()

    def watch_dir(self, directory: str) -> None:
        if directory in self._watched or len(self._watched) >= MAX_WATCHES:
            return
        wd = self._add(self.fd, os.fsencode(directory), _WATCH_MASK)
        if wd < 0:
            return  # gone, or no permission: nothing to see there
        self._watched.add(directory)
        self.dirs[wd] = directory

    def read(self) -> set[str]:
        """The paths of the events queued now."""
        paths = set()
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return paths
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                name = data[offset : offset + length].rstrip(b"\0")
                offset += length
                directory = self.dirs.get(wd)
                if directory is not None and name:
                    paths.add(os.path.join(directory, os.fsdecode(name)))


class Watcher:
    """Watches the app's files in a worker; `retire(reason)` asks the master for a replacement.
    See the module docs."""

    def __init__(
        self,
        config: Config,
        retire: Callable[[str], None],
        log: Callable[[str, str], None],
    ) -> None:
        self.retire = retire
        self.log = log
        self.engine = config.reload_engine
        cwd = os.getcwd()
        self.patterns = tuple(os.path.join(cwd, p) for p in config.reload_extra_files)
        self._excluded = _excluded_roots()
        self.files: set[str] = set()
        self._modules_seen = -1
        self._inotify: _Inotify | None = None
        self._mtimes: dict[str, tuple[int, int] | None] = {}

    # -- what to watch ---------------------------------------------------------------------------

    def _extra_files(self) -> set[str]:
        out = set()
        for pattern in self.patterns:
            out.update(os.path.realpath(p) for p in glob.glob(pattern, recursive=True))
        return {p for p in out if os.path.isfile(p)}

    def _pattern_dirs(self) -> set[str]:
        """Directories where a file matching an extra glob may appear: the pattern's fixed
        prefix, and every directory below it for `**` (bounded by MAX_WATCHES)."""
        out = set()
        for pattern in self.patterns:
            parts = pattern.split(os.sep)
            fixed = []
            for part in parts[:-1]:
                if glob.has_magic(part):
                    break
                fixed.append(part)
            base = os.sep.join(fixed) or os.sep
            if not os.path.isdir(base):
                continue
            base = os.path.realpath(base)
            out.add(base)
            if len(fixed) < len(parts) - 1:  # a wildcard in the directories: watch below too
                for root, dirs, _ in os.walk(base):
                    dirs[:] = [d for d in dirs if not d.startswith(".")]
                    out.add(root)
                    if len(out) >= MAX_WATCHES:
                        break
        return out

    def _matches_extra(self, path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) for p in self.patterns)

    def _scan(self, force: bool = False) -> None:
        """Picks up modules imported since the last scan."""
        if not force and len(sys.modules) == self._modules_seen:
            return
        self._modules_seen = len(sys.modules)
        self.files |= project_files(self._excluded)
        if self._inotify is not None:
            for directory in {os.path.dirname(f) for f in self.files} | self._pattern_dirs():
                self._inotify.watch_dir(directory)
        else:
            for path in self.files | self._extra_files():
                self._mtimes.setdefault(path, _stamp(path))

    # -- the loop --------------------------------------------------------------------------------

    def start(self) -> threading.Thread:
        if self.engine in ("auto", "inotify"):
            try:
                self._inotify = _Inotify()
            except (OSError, AttributeError) as e:
                if self.engine == "inotify":
                    self.log("warning", f"--reload: inotify unavailable ({e}); polling instead")
        self._scan(force=True)
        thread = threading.Thread(target=self._run, name="ferrule-reload", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        try:
            while True:
                changed = self._wait()
                if changed:
                    # Keeps watching after asking: if the replacement cannot load the new
                    # code, the master keeps this worker, and the fix must be seen here.
                    self._should_reload(changed)
        except Exception:  # noqa: BLE001 - a broken watcher must not go unnoticed
            self.log("error", f"--reload: the file watcher stopped:\n{traceback.format_exc()}")

    def _wait(self) -> set[str]:
        """Changed paths that matter (blocks up to SCAN_INTERVAL)."""
        if self._inotify is None:
            time.sleep(SCAN_INTERVAL)
            self._scan()
            changed = set()
            for path in set(self._mtimes) | self._extra_files():
                stamp = _stamp(path)
                if self._mtimes.get(path, "new") != stamp:
                    self._mtimes[path] = stamp
                    changed.add(path)
            return changed
        ready, _, _ = select.select([self._inotify.fd], [], [], SCAN_INTERVAL)
        self._scan()
        if not ready:
            return set()
        time.sleep(SETTLE)
        paths = self._inotify.read()
        out = set()
        for path in paths:
            real = os.path.realpath(path)
            if real in self.files or path in self.files or self._matches_extra(path):
                out.add(path)
        return out

    def _should_reload(self, changed: Iterable[str]) -> bool:
        """Compiles the changed Python files; asks for a replacement when all compile."""
        changed = sorted(changed)
        for path in changed:
            if not path.endswith(".py") or not os.path.exists(path):
                continue
            try:
                with open(path, "rb") as f:
                    compile(f.read(), path, "exec")
            except (SyntaxError, ValueError) as e:
                text = "".join(traceback.format_exception_only(type(e), e)).rstrip()
                self.log(
                    "error",
                    f"--reload: {path} does not compile; the workers keep the previous code "
                    f"until it is fixed:\n{text}",
                )
                return False
            except OSError:
                pass  # being replaced right now: the next event tells
        names = ", ".join(changed[:3]) + (
            f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        )
        try:
            self.retire(f"saw {names} change (--reload)")
        except OSError as e:
            self.log("error", f"--reload: cannot ask the master for a replacement: {e}")
            return False
        return True


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def start_watcher(
    config: Config, retire: Callable[[str], None], log: Callable[[str, str], None]
) -> threading.Thread:
    """Starts the watcher thread of this worker (see the module docs)."""
    return Watcher(config, retire, log).start()
