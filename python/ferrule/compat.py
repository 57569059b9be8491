"""gunicorn compatibility: every gunicorn setting, and what ferrule does with it.

ferrule takes a gunicorn command line or ``gunicorn.conf.py`` unchanged. Each gunicorn setting
(gunicorn 23-27, its settings documentation) is one `GunicornSetting` here:

- ``target`` set: ferrule implements it as that option (``convert`` adapts the value when
  gunicorn's differs, e.g. a bare ``HOST`` bind). gunicorn's flags are flags of that option.
- ``planned`` set: a later ferrule version implements it (``target`` names the option it will
  be). While the option does not exist the setting is accepted with a warning "not implemented
  yet in this version"; once it exists, it maps to it like any other.
- ``instead`` set: it does not apply to ferrule; it is accepted with a one-line warning saying
  what ferrule does instead.
- ``hook``: a server hook (a function in a Python config file), stored in ``Config.hooks``.

`docs/migrating.md` holds a table generated from this one (`python -m ferrule.compat`), and a
unit test keeps the two equal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["GUNICORN_SETTINGS", "HOOKS", "GunicornSetting", "by_name", "markdown_table"]


def _bind(value: Any) -> Any:
    """gunicorn binds: a string or a list; a bare HOST means HOST:8000 (gunicorn's default)."""
    if not isinstance(value, (str, list, tuple)):
        return value  # the option's check reports it
    items = [value] if isinstance(value, str) else list(value)
    out = []
    for item in items:
        if isinstance(item, str) and ":" not in item and not item.startswith("["):
            item = f"{item}:8000"
        out.append(item)
    return tuple(out)


def _pythonpath(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return value


def _unlimited_as(limit: int) -> Callable[[Any], Any]:
    """gunicorn reads 0 as "no limit" for some limits; ferrule always keeps a limit."""

    def convert(value: Any) -> Any:
        return limit if value == 0 else value

    return convert


@dataclass(frozen=True)
class GunicornSetting:
    name: str
    flags: tuple[str, ...] = ()
    takes_value: bool = True  # False: a flag without a value (store_true)
    repeat: bool = False
    target: str | None = None
    convert: Callable[[Any], Any] | None = None
    planned: str | None = None  # the issue or version that brings it
    instead: str | None = None
    hook: bool = False


def _s(name: str, *flags: str, **kw: Any) -> GunicornSetting:
    return GunicornSetting(name, tuple(flags), **kw)


_TLS = "TLS (rustls) comes with the edge/proxy work (issue 5)"
_H2 = "HTTP/2 comes with the edge/proxy work (issue 5)"
_PROXY = "proxies and forwarding come with the edge/proxy work (issue 5)"
_PROC = "process options come with the process manager work (issue 4)"
_SYSLOG = (
    "ferrule does not speak syslog: it logs to stderr/stdout or files (--error-logfile, "
    "--access-logfile); journald or your log shipper collects them"
)
_STATSD = "ferrule does not send statsd: metrics will be served for Prometheus (--metrics-bind)"
_ASGI = "ferrule serves WSGI only; ASGI settings do not apply"
_DIRTY = "ferrule has no dirty arbiters; run such jobs in a separate process"

GUNICORN_SETTINGS: tuple[GunicornSetting, ...] = (
    # Config file
    _s("config", "-c", "--config", target="config"),
    _s("wsgi_app", target="app"),
    # Server socket
    _s("bind", "-b", "--bind", repeat=True, target="bind", convert=_bind),
    _s("backlog", "--backlog", target="backlog"),
    # Worker processes
    _s("workers", "-w", "--workers", target="workers"),
    _s(
        "worker_class",
        "-k",
        "--worker-class",
        instead="ferrule has one worker type: Rust I/O (tokio) and --threads Python threads per "
        "worker process; gevent/eventlet monkey-patching is not needed",
    ),
    _s("threads", "--threads", target="threads"),
    _s("worker_connections", "--worker-connections", target="worker_connections"),
    _s("max_requests", "--max-requests", target="max_requests"),
    _s("max_requests_jitter", "--max-requests-jitter", target="max_requests_jitter"),
    _s("timeout", "-t", "--timeout", target="timeout"),
    _s("graceful_timeout", "--graceful-timeout", target="graceful_timeout"),
    _s("keepalive", "--keep-alive", target="keepalive_timeout"),
    _s("asgi_loop", "--asgi-loop", instead=_ASGI),
    _s("asgi_lifespan", "--asgi-lifespan", instead=_ASGI),
    _s("asgi_disconnect_grace_period", "--asgi-disconnect-grace-period", instead=_ASGI),
    _s("websocket_max_message_size", "--websocket-max-message-size", instead=_ASGI),
    _s(
        "http_parser",
        "--http-parser",
        instead="ferrule always uses its own strict HTTP/1 parser, written in Rust",
    ),
    # Security
    _s(
        "limit_request_line",
        "--limit-request-line",
        target="limit_request_line",
        convert=_unlimited_as(8190),
    ),
    _s("limit_request_fields", "--limit-request-fields", target="limit_request_fields"),
    _s(
        "limit_request_field_size",
        "--limit-request-field_size",
        target="limit_request_field_size",
        convert=_unlimited_as(8190),
    ),
    # Debugging
    _s("reload", "--reload", takes_value=False, target="reload"),
    _s("reload_engine", "--reload-engine", target="reload_engine"),
    _s(
        "reload_extra_files",
        "--reload-extra-file",
        repeat=True,
        target="reload_extra_files",
    ),
    _s(
        "spew",
        "--spew",
        takes_value=False,
        instead="ferrule does not trace every executed line; use python -X importtime or a "
        "profiler",
    ),
    _s("check_config", "--check-config", takes_value=False, target="check_config"),
    _s("print_config", "--print-config", takes_value=False, target="print_config"),
    # Server mechanics
    _s("preload_app", "--preload", takes_value=False, target="preload"),
    _s(
        "sendfile",
        "--no-sendfile",
        takes_value=False,
        instead="ferrule always uses sendfile() for wsgi.file_wrapper bodies when it can",
    ),
    _s("reuse_port", "--reuse-port", takes_value=False, target="reuse_port", planned=_PROC),
    _s("chdir", "--chdir", target="chdir"),
    _s("daemon", "-D", "--daemon", takes_value=False, target="daemon", planned=_PROC),
    _s("raw_env", "-e", "--env", repeat=True, target="raw_env"),
    _s("pidfile", "-p", "--pid", target="pid_file"),
    _s(
        "worker_tmp_dir",
        "--worker-tmp-dir",
        instead="ferrule workers report to the master over a pipe, not through a heartbeat file",
    ),
    _s("user", "-u", "--user", target="user", planned=_PROC),
    _s("group", "-g", "--group", target="group", planned=_PROC),
    _s("umask", "-m", "--umask", target="umask", planned=_PROC),
    _s("initgroups", "--initgroups", takes_value=False, target="initgroups", planned=_PROC),
    _s(
        "tmp_upload_dir",
        instead="ferrule buffers bodies up to --max-buffered-body in memory and streams "
        "larger ones to the app; nothing is written to disk",
    ),
    _s(
        "secure_scheme_headers",
        target="secure_scheme_headers",
        planned=_PROXY,
    ),
    _s(
        "forwarded_allow_ips",
        "--forwarded-allow-ips",
        target="forwarded_allow_ips",
        planned=_PROXY,
    ),
    _s("pythonpath", "--pythonpath", target="pythonpath", convert=_pythonpath),
    _s(
        "paste",
        "--paste",
        "--paster",
        instead="ferrule does not read PasteDeploy files: name the app as pkg.module:factory(...)",
    ),
    _s(
        "raw_paste_global_conf",
        "--paste-global",
        repeat=True,
        instead="ferrule does not read PasteDeploy files: name the app as pkg.module:factory(...)",
    ),
    _s("proxy_protocol", "--proxy-protocol", target="proxy_protocol", planned=_PROXY),
    _s("proxy_allow_ips", "--proxy-allow-from", target="proxy_allow_from", planned=_PROXY),
    _s("protocol", "--protocol", target="protocol", planned=_PROXY),
    _s("uwsgi_allow_ips", "--uwsgi-allow-from", target="uwsgi_allow_from", planned=_PROXY),
    _s(
        "permit_obsolete_folding",
        "--permit-obsolete-folding",
        takes_value=False,
        instead="ferrule always rejects obsolete line folding (RFC 9112 5.2) with 400",
    ),
    _s(
        "strip_header_spaces",
        "--strip-header-spaces",
        takes_value=False,
        instead="ferrule always rejects whitespace before the colon (RFC 9112 5.1) with 400",
    ),
    _s(
        "permit_unconventional_http_method",
        "--permit-unconventional-http-method",
        takes_value=False,
        instead="ferrule accepts any method that is a valid token (RFC 9110 9.1)",
    ),
    _s(
        "permit_unconventional_http_version",
        "--permit-unconventional-http-version",
        takes_value=False,
        instead="ferrule accepts HTTP/1.0 and HTTP/1.1 only (505 otherwise)",
    ),
    _s(
        "casefold_http_method",
        "--casefold-http-method",
        takes_value=False,
        instead="ferrule passes the method as sent (methods are case-sensitive, RFC 9110 9.1)",
    ),
    _s(
        "forwarder_headers",
        "--forwarder-headers",
        instead="ferrule's trusted forwarding (--forwarded-allow-ips) decides which headers "
        "set SCRIPT_NAME and the rest",
    ),
    _s(
        "header_map",
        "--header-map",
        instead="ferrule always drops header fields whose names contain '_' (they could spoof "
        "their '-' twin in the environ)",
    ),
    _s("root_path", "--root-path", instead=_ASGI),
    # Logging
    _s("accesslog", "--access-logfile", target="access_log"),
    _s(
        "disable_redirect_access_to_syslog",
        "--disable-redirect-access-to-syslog",
        takes_value=False,
        instead=_SYSLOG,
    ),
    _s("access_log_format", "--access-logformat", target="access_log_format"),
    _s("errorlog", "--error-logfile", "--log-file", target="error_log"),
    _s("loglevel", "--log-level", target="log_level"),
    _s("capture_output", "--capture-output", takes_value=False, target="capture_output"),
    _s(
        "logger_class",
        "--logger-class",
        instead="ferrule's logs are written in Rust; use --log-config for the app's Python "
        "loggers and --access-log-json for structured access logs",
    ),
    _s("logconfig", "--log-config", target="log_config"),
    _s("logconfig_dict", target="log_config_dict"),
    _s("logconfig_json", "--log-config-json", target="log_config"),
    _s("syslog_addr", "--log-syslog-to", instead=_SYSLOG),
    _s("syslog", "--log-syslog", takes_value=False, instead=_SYSLOG),
    _s("syslog_prefix", "--log-syslog-prefix", instead=_SYSLOG),
    _s("syslog_facility", "--log-syslog-facility", instead=_SYSLOG),
    _s(
        "enable_stdio_inheritance",
        "-R",
        "--enable-stdio-inheritance",
        takes_value=False,
        instead="ferrule never closes stdio; workers always inherit it",
    ),
    _s("statsd_host", "--statsd-host", instead=_STATSD),
    _s("dogstatsd_tags", "--dogstatsd-tags", instead=_STATSD),
    _s("statsd_prefix", "--statsd-prefix", instead=_STATSD),
    _s(
        "enable_backlog_metric",
        "--enable-backlog-metric",
        takes_value=False,
        instead=_STATSD,
    ),
    # Process naming
    _s(
        "proc_name",
        "-n",
        "--name",
        instead="ferrule does not rename its processes; they show as the ferrule command line",
    ),
    _s(
        "default_proc_name",
        instead="ferrule does not rename its processes; they show as the ferrule command line",
    ),
    # SSL
    _s("keyfile", "--keyfile", target="keyfile", planned=_TLS),
    _s("certfile", "--certfile", target="certfile", planned=_TLS),
    _s(
        "ssl_version",
        "--ssl-version",
        instead="ferrule's TLS (rustls) negotiates TLS 1.2 or 1.3 only",
    ),
    _s("cert_reqs", "--cert-reqs", target="cert_reqs", planned=_TLS),
    _s("ca_certs", "--ca-certs", target="ca_certs", planned=_TLS),
    _s(
        "suppress_ragged_eofs",
        "--suppress-ragged-eofs",
        takes_value=False,
        instead="rustls handles TLS close itself; nothing to set",
    ),
    _s(
        "do_handshake_on_connect",
        "--do-handshake-on-connect",
        takes_value=False,
        instead="rustls handles the handshake itself; nothing to set",
    ),
    _s(
        "ciphers",
        "--ciphers",
        instead="ferrule's TLS (rustls) uses its own safe cipher suites",
    ),
    # HTTP/2
    _s("http_protocols", "--http-protocols", target="http_protocols", planned=_H2),
    _s("http2_cleartext", "--http2-cleartext", target="http2_cleartext", planned=_H2),
    _s(
        "http2_max_concurrent_streams",
        "--http2-max-concurrent-streams",
        target="http2_max_concurrent_streams",
        planned=_H2,
    ),
    _s(
        "http2_initial_window_size",
        "--http2-initial-window-size",
        target="http2_initial_window_size",
        planned=_H2,
    ),
    _s(
        "http2_max_frame_size", "--http2-max-frame-size", target="http2_max_frame_size", planned=_H2
    ),
    _s(
        "http2_max_header_list_size",
        "--http2-max-header-list-size",
        target="http2_max_header_list_size",
        planned=_H2,
    ),
    # Dirty arbiters (gunicorn 25+)
    _s("dirty_apps", "--dirty-app", repeat=True, instead=_DIRTY),
    _s("dirty_workers", "--dirty-workers", instead=_DIRTY),
    _s("dirty_timeout", "--dirty-timeout", instead=_DIRTY),
    _s("dirty_threads", "--dirty-threads", instead=_DIRTY),
    _s("dirty_graceful_timeout", "--dirty-graceful-timeout", instead=_DIRTY),
    # Control socket (gunicorn 25+)
    _s(
        "control_socket",
        "--control-socket",
        instead="ferrule is controlled with signals (HUP, TERM, USR1, TTIN/TTOU)",
    ),
    _s(
        "control_socket_mode",
        "--control-socket-mode",
        instead="ferrule is controlled with signals (HUP, TERM, USR1, TTIN/TTOU)",
    ),
    _s(
        "control_socket_disable",
        "--no-control-socket",
        takes_value=False,
        instead="ferrule has no control socket",
    ),
)

#: gunicorn's server hooks, in the order of a server's life. A function of this name in a
#: Python config file is stored in `Config.hooks`.
HOOKS: tuple[str, ...] = (
    "on_starting",
    "on_reload",
    "when_ready",
    "pre_fork",
    "post_fork",
    "post_worker_init",
    "worker_int",
    "worker_abort",
    "pre_exec",
    "pre_request",
    "post_request",
    "child_exit",
    "worker_exit",
    "nworkers_changed",
    "on_exit",
    "ssl_context",
    "on_dirty_starting",
    "dirty_post_fork",
    "dirty_worker_init",
    "dirty_worker_exit",
)

_BY_NAME = {s.name: s for s in GUNICORN_SETTINGS}


def by_name(name: str) -> GunicornSetting | None:
    return _BY_NAME.get(name)


def resolve(setting: GunicornSetting, options: Sequence[str]) -> tuple[str | None, str | None]:
    """(ferrule option, warning): the option the setting maps to (None: not used) and the
    warning to print (None: silently mapped). `options` are ferrule's option names."""
    if setting.target is not None and (setting.target in options or setting.planned is None):
        return setting.target, None
    if setting.planned is not None:
        return None, f"not implemented yet in this version ({setting.planned}); ignored"
    return None, f"ignored: {setting.instead}"


def markdown_table(options: Sequence[str], flags_of: Callable[[str], Sequence[str]]) -> str:
    """The gunicorn → ferrule table of docs/migrating.md."""
    lines = ["| gunicorn setting | flags | ferrule |", "|---|---|---|"]
    for s in GUNICORN_SETTINGS:
        flags = ", ".join(f"`{f}`" for f in s.flags) or "(config file only)"
        target, _ = resolve(s, options)
        if target in ("config", "check_config", "print_config", "app"):
            what = "same" if target != "app" else "the APP argument"
        elif target is not None:
            ours = [f for f in flags_of(target) if f not in s.flags]
            same = "same" if not ours else "same; also " + ", ".join(f"`{f}`" for f in ours)
            what = f"`{target}`: {same}" + (
                " (0 keeps ferrule's limit)" if s.convert and "limit" in s.name else ""
            )
        elif s.planned is not None:
            what = f"accepted, warns: not implemented yet ({s.planned})"
        else:
            what = f"accepted, warns: {s.instead}"
        lines.append(f"| `{s.name}` | {flags} | {what} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    from ferrule.config import OPTIONS, option_flags

    names = [o.name for o in OPTIONS] + ["config", "check_config", "print_config"]
    sys.stdout.write(markdown_table(names, option_flags))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
