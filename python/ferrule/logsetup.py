"""The app's Python logging and output: ``--log-config`` and ``--capture-output``.

ferrule's own error log (startup, warnings, `wsgi.errors`) is written by Rust to
``--error-logfile``; Python's `logging` module is the app's. ``--log-config FILE`` configures the
app's loggers at start, before the app is imported: a `logging.config.dictConfig` dict in a
``.json`` or ``.toml`` file, or an INI file for `logging.config.fileConfig` (gunicorn's
``--log-config`` format). ``logconfig_dict`` from a Python config file is applied after it.
ferrule's own log lines are not Python log records and are not affected.

``--capture-output`` sends what the app writes to its standard output and error into the error
log, one log line per line written. It works on file descriptors 1 and 2 (``dup2`` of a pipe
read by a thread), so output of C extensions and child processes is captured too, not only
`sys.stdout`. Standard output lines are logged at INFO, standard error lines at ERROR. A stream
that is already where the log goes is left alone: stderr while the error log is stderr (``-``),
stdout while the access log is stdout (``--access-logfile -``).
"""

from __future__ import annotations

import os
import sys
import threading

# Imported by the process that serves: `json` only for a JSON --log-config, `typing` not at all
# (see `ferrule.lean`).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

__all__ = ["LogSetupError", "apply_log_config", "capture_output"]

#: Longest captured line logged as one line; longer output is split.
MAX_LINE = 16 * 1024


class LogSetupError(Exception):
    """The logging configuration cannot be applied (names the file)."""


def _load_dict(path: str) -> Mapping[str, Any]:
    if path.endswith(".toml"):
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            try:
                import tomli as tomllib  # type: ignore[import-not-found,no-redef]
            except ImportError:
                raise LogSetupError(f"--log-config {path}: TOML needs 'tomli' on Python < 3.11")
        with open(path, "rb") as f:
            return tomllib.load(f)
    import json

    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise LogSetupError(f"--log-config {path}: expected a JSON object")
    return data


def apply_log_config(path: str | None, config_dict: Mapping[str, Any] | None) -> None:
    """Applies --log-config, then logconfig_dict. Raises LogSetupError naming what failed."""
    if path is None and not config_dict:
        return
    # Imported only when there is something to apply: logging.config (with logging.handlers,
    # socketserver, pickle, ...) adds about 4 MB to the RSS of every process that imports it.
    import logging.config

    if path is not None:
        try:
            if path.endswith((".json", ".toml")):
                data = dict(_load_dict(path))
                data.setdefault("version", 1)
                logging.config.dictConfig(data)
            else:
                if not os.path.isfile(path):
                    raise LogSetupError(f"--log-config {path}: no such file")
                logging.config.fileConfig(path, disable_existing_loggers=False)
        except LogSetupError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError) as e:
            raise LogSetupError(f"--log-config {path}: {type(e).__name__}: {e}") from None
    if config_dict:
        try:
            data = dict(config_dict)
            data.setdefault("version", 1)
            logging.config.dictConfig(data)
        except (ValueError, KeyError, TypeError, AttributeError, ImportError) as e:
            raise LogSetupError(f"logconfig_dict: {type(e).__name__}: {e}") from None


def _pump(fd: int, level: str, log: Callable[[str, str], None]) -> None:
    pending = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            if pending:
                log(level, pending.decode("utf-8", "backslashreplace"))
            return
        pending += data
        *lines, pending = pending.split(b"\n")
        while len(pending) > MAX_LINE:
            lines.append(pending[:MAX_LINE])
            pending = pending[MAX_LINE:]
        for line in lines:
            log(level, line.rstrip(b"\r").decode("utf-8", "backslashreplace"))


def capture_output(
    log: Callable[[str, str], None], error_log: str, access_log: str | None
) -> list[int]:
    """Redirects fds 1 and 2 (see the module docs) to pipes read by daemon threads that write
    each line to `log(level, line)`. Returns the fds redirected."""
    redirected = []
    for fd, stream, level in ((1, sys.stdout, "info"), (2, sys.stderr, "error")):
        if fd == 2 and error_log == "-":
            continue
        if fd == 1 and access_log == "-":
            continue
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        threading.Thread(
            target=_pump, args=(read_end, level, log), daemon=True, name=f"ferrule-capture-{fd}"
        ).start()
        redirected.append(fd)
        # fd 1 is a pipe now, which Python would block-buffer: keep print() line by line.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(line_buffering=True)
            except (OSError, ValueError):
                pass
    return redirected
