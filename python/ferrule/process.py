"""What the `ferrule` command does to its own process before serving (issue 4, systemd & co).

- **Socket activation** (systemd, `sd_listen_fds(3)`): when `LISTEN_PID` is this process's pid,
  the `LISTEN_FDS` sockets (descriptors 3, 4, ...) replace the configured binds, as `fd://N`.
  The variables are removed from the environment at once, so no child (a worker, the app's
  subprocesses, a USR2 re-exec) takes them again.
- **USR2 hand-over**: a master started by an old master's USR2 finds its sockets in
  `_FERRULE_INHERIT_BINDS`, the old master's pid in `_FERRULE_OLD_MASTER` and the metrics
  listener in `_FERRULE_INHERIT_METRICS` (names owned by
  `crates/ferrule-core/src/supervise/reexec.rs`); all are removed here likewise.
- **--user/--group** are resolved up front (an unknown name fails before anything starts) and
  applied in each worker after the fork (`drop_privileges`), as gunicorn does: the master keeps
  its privileges. As root, supplementary groups are reduced to the target group.
- **--umask** is applied at once, so the master, its workers and the app create files with it.
- **--daemon**: fork, `setsid`, fork again; the launching command exits 0. stdin and stdout go
  to /dev/null, stderr to the error-log file when there is one (else /dev/null).
- **Process titles**: `ferrule: master [APP]`, `ferrule: worker N [APP]` (see
  `crates/ferrule-core/src/supervise/title.rs`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass

from ferrule.config import Config

__all__ = ["Launch", "ProcessError", "drop_privileges", "prepare", "set_title"]

#: First descriptor systemd passes (`SD_LISTEN_FDS_START`).
LISTEN_FDS_START = 3
#: Set by an old master's USR2 for the new one (see the module docs).
ENV_INHERIT_BINDS = "_FERRULE_INHERIT_BINDS"
ENV_OLD_MASTER = "_FERRULE_OLD_MASTER"
#: The old master's metrics listener, `N,IP:PORT` (crates/ferrule-core/src/supervise/reexec.rs).
ENV_INHERIT_METRICS = "_FERRULE_INHERIT_METRICS"
_SYSTEMD_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class ProcessError(Exception):
    """A process setting that cannot be applied (unknown user, bad LISTEN_FDS, ...)."""


@dataclass(frozen=True)
class Ids:
    """Who the workers become (`--user`, `--group`)."""

    uid: int | None
    gid: int | None
    user_name: str | None


@dataclass(frozen=True)
class Launch:
    """What `prepare` found out about how this process was started."""

    #: The directory the command started in (a USR2 re-exec starts there again).
    cwd: str
    #: The master this one replaces (USR2), told to stop once our workers are ready.
    old_master: int | None = None
    #: The workers' user and group, if they switch.
    ids: Ids | None = None


def _take_socket_activation(config: Config, environ: MutableMapping[str, str]) -> Config:
    pid, fds = environ.get("LISTEN_PID", ""), environ.get("LISTEN_FDS", "")
    for var in _SYSTEMD_VARS:
        environ.pop(var, None)
    if not pid or not fds:
        return config
    try:
        ours = int(pid) == os.getpid()
        count = int(fds)
    except ValueError:
        raise ProcessError(f"bad LISTEN_PID/LISTEN_FDS: {pid!r}/{fds!r}") from None
    if not ours or count <= 0:
        return config  # meant for another process (or none)
    binds = tuple(f"fd://{LISTEN_FDS_START + i}" for i in range(count))
    return dataclasses.replace(config, bind=binds)


def _take_inherited(config: Config, environ: MutableMapping[str, str]) -> tuple[Config, int | None]:
    binds = environ.pop(ENV_INHERIT_BINDS, "")
    old = environ.pop(ENV_OLD_MASTER, "")
    config = _take_metrics(config, environ.pop(ENV_INHERIT_METRICS, ""))
    if not binds:
        return config, None
    try:
        old_master = int(old) if old else None
    except ValueError:
        raise ProcessError(f"bad {ENV_OLD_MASTER}: {old!r}") from None
    return dataclasses.replace(config, bind=tuple(binds.split(","))), old_master


def _take_metrics(config: Config, inherited: str) -> Config:
    """The old master's metrics listener (`N,IP:PORT`): adopted as `fd://N` when this master's
    `--metrics-bind` names that address (the same `IP:PORT` text), so /metrics answers
    throughout the hand-over; otherwise closed (this master binds its own address, retrying
    while the old master holds it, or has no metrics)."""
    if not inherited:
        return config
    fd_text, _, address = inherited.partition(",")
    try:
        fd = int(fd_text)
    except ValueError:
        raise ProcessError(f"bad {ENV_INHERIT_METRICS}: {inherited!r}") from None
    if config.metrics_bind == address:
        return dataclasses.replace(config, metrics_bind=f"fd://{fd}")
    try:
        os.close(fd)
    except OSError:
        pass
    return config


def _resolve_ids(config: Config) -> Ids | None:
    if not config.drops_privileges:
        return None
    import grp
    import pwd

    uid = gid = None
    name = None
    if config.user is not None:
        try:
            entry = (
                pwd.getpwuid(int(config.user))
                if config.user.isdigit()
                else pwd.getpwnam(config.user)
            )
        except KeyError:
            if not config.user.isdigit():
                raise ProcessError(f"--user {config.user}: no such user") from None
            uid = int(config.user)
        else:
            uid, gid, name = entry.pw_uid, entry.pw_gid, entry.pw_name
    if config.group is not None:
        try:
            gid = int(config.group) if config.group.isdigit() else grp.getgrnam(config.group).gr_gid
        except KeyError:
            raise ProcessError(f"--group {config.group}: no such group") from None
    return Ids(uid=uid, gid=gid, user_name=name)


def drop_privileges(ids: Ids | None) -> None:
    """Switches this process (a freshly forked worker) to `ids`; raises OSError on failure."""
    if ids is None:
        return
    if ids.gid is not None:
        if os.geteuid() == 0:
            os.setgroups([ids.gid])
        os.setgid(ids.gid)
    if ids.uid is not None:
        os.setuid(ids.uid)


def _daemonize(error_log: str) -> None:
    """Detaches (see the module docs). Returns in the daemon only."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    null = os.open(os.devnull, os.O_RDWR)
    err = null
    if error_log != "-":
        err = os.open(error_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(err, 2)
    for fd in {null, err}:
        if fd > 2:
            os.close(fd)


def prepare(
    config: Config, detach: bool = True, environ: MutableMapping[str, str] | None = None
) -> tuple[Config, Launch]:
    """Applies the process settings (module docs) before anything is bound or loaded; returns
    the config to serve (binds replaced by inherited sockets) and what the master needs.
    With `detach` False (--check-config), nothing is changed in the process."""
    environ = os.environ if environ is None else environ
    cwd = os.getcwd()
    if not detach:
        return config, Launch(cwd=cwd, ids=_resolve_ids(config))
    config = _take_socket_activation(config, environ)
    config, old_master = _take_inherited(config, environ)
    ids = _resolve_ids(config)
    if config.umask is not None:
        os.umask(config.umask)
    # A re-exec'd master is already detached (its parent, the old master, was).
    if config.daemon and old_master is None:
        _daemonize(config.error_log)
    return config, Launch(cwd=cwd, old_master=old_master, ids=ids)


def set_title(_ferrule: object, title: str, comm: str) -> None:
    """Sets the process title (best effort: a title that cannot be set is not an error)."""
    setter = getattr(_ferrule, "set_process_title", None)
    if setter is not None:
        setter(title, comm)
