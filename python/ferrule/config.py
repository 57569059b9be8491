"""Every ferrule option, defined once.

The `Config` dataclass below *is* the option table: each field carries, in its metadata, the CLI
flags (with gunicorn-compatible aliases), the value kind (parsing and range checks), the help text
and the `--help` section. From it come

- the argparse parser and its `--help` (`add_arguments`),
- the typed, validated `Config` object (`Config(...)` checks every value in `__post_init__`),
- the JSON sent to Rust (`Config.to_rust_json`), which holds exactly the fields of Rust's
  `ServerConfig` (crates/ferrule-core/src/config.rs, `deny_unknown_fields`); Python-only options
  (`app`, `chdir`, `pythonpath`) are not sent,
- the options table in README.md (`python -m ferrule.config --markdown`).

Defaults equal the Rust `DEFAULT_*` constants; tests/unit compares them by reading config.rs.
This module imports nothing from the compiled extension, so it works before the build.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import math
import os
import re
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable

__all__ = [
    "OPTIONS",
    "RUST_OPTIONS",
    "Config",
    "ConfigError",
    "OptionSpec",
    "add_arguments",
    "config_from_namespace",
    "options_markdown",
]

# Largest values the Rust side can hold (`usize`/`u64` on 64-bit targets, `u32`, listen's `int`).
_U64_MAX = 2**64 - 1
_USIZE_MAX = 2**63 - 1  # below every 64-bit usize; also fits the signed 64-bit range
_BACKLOG_MAX = 2**31 - 1

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(ValueError):
    """A value that cannot be used, with the option it belongs to (`option` is the config name)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


# --- value kinds: parse a CLI string, check (and normalise) a Python value -----------------------


class _Kind:
    """How one option's value is read from the command line and checked."""

    metavar = "VALUE"

    def parse(self, text: str) -> Any:
        """Turns a command-line string into a value (then `check` runs on it)."""
        return text

    def check(self, value: Any) -> Any:
        """Returns the value, normalised, or raises ValueError saying what is wrong."""
        return value

    def describe_default(self, value: Any) -> str:
        return "none" if value is None else str(value)


class _Int(_Kind):
    metavar = "N"

    def __init__(self, minimum: int, maximum: int = _USIZE_MAX, zero: str = "") -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.zero = zero  # what 0 means, for the help text

    def parse(self, text: str) -> Any:
        try:
            return int(text.strip().replace("_", ""), 10)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None

    def check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if value < self.minimum:
            raise ValueError(f"must be at least {self.minimum}, got {value}")
        if value > self.maximum:
            raise ValueError(f"must be at most {self.maximum}, got {value}")
        return value


_SIZE_SUFFIXES = {
    "": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*([0-9][0-9_]*)\s*([a-z]*)\s*$")


class _Size(_Int):
    """A byte count: an integer, or one with a binary suffix (`64K`, `1M`, `1G`)."""

    metavar = "BYTES"

    def parse(self, text: str) -> Any:
        m = _SIZE_RE.match(text.lower())
        if m is None or m.group(2) not in _SIZE_SUFFIXES:
            raise ValueError(f"expected a size in bytes (e.g. 65536, 64K, 1M), got {text!r}")
        return int(m.group(1).replace("_", "")) * _SIZE_SUFFIXES[m.group(2)]


class _Seconds(_Kind):
    metavar = "SECS"

    def parse(self, text: str) -> Any:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number of seconds, got {text!r}") from None

    def check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number of seconds, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"must be a finite number of seconds >= 0, got {value!r}")
        return float(value)

    def describe_default(self, value: Any) -> str:
        return f"{value:g}"


class _Choice(_Kind):
    def __init__(self, choices: Sequence[str]) -> None:
        self.choices = tuple(choices)
        self.metavar = "{" + ",".join(self.choices) + "}"

    def parse(self, text: str) -> Any:
        return text.strip().lower()

    def check(self, value: Any) -> Any:
        if not isinstance(value, str) or value.lower() not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}; got {value!r}")
        return value.lower()


class _Text(_Kind):
    """A string; `optional` allows None (for example: no access log)."""

    def __init__(self, metavar: str, optional: bool = False, nonempty: bool = True) -> None:
        self.metavar = metavar
        self.optional = optional
        self.nonempty = nonempty

    def check(self, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        if self.nonempty and not value:
            raise ValueError("must not be empty")
        if "\x00" in value:
            raise ValueError("must not contain NUL")
        return value


class _HeaderValue(_Kind):
    """A value sent as a response header: visible ASCII, spaces and tabs only (RFC 9110 5.5)."""

    metavar = "STR"
    _BAD = re.compile(r"[^\t\x20-\x7e]")

    def check(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        if self._BAD.search(value) or value != value.strip(" \t"):
            raise ValueError(
                f"must be visible ASCII without leading/trailing whitespace, got {value!r}"
            )
        return value

    def describe_default(self, value: Any) -> str:
        return repr(value) if value else "''"


_PORT_RE = re.compile(r"^(\[[0-9A-Fa-f:.%\w]+\]|[^\[\]:]+):([0-9]{1,5})$")


_FD_RE = re.compile(r"^fd://([0-9]{1,9})$")

#: Longest Unix socket path in bytes: `sun_path` holds 108 bytes with the terminating NUL.
_UNIX_PATH_MAX = 107


class _Binds(_Kind):
    """One or more listen addresses, `HOST:PORT` or `[IPV6]:PORT` (port 0 picks a free port),
    `unix:PATH` (a Unix stream socket), or `fd://N`: descriptor N, a listening TCP or Unix
    socket handed over by the parent (systemd)."""

    metavar = "ADDRESS"

    def check(self, value: Any) -> Any:
        items = (value,) if isinstance(value, str) else value
        try:
            items = tuple(items)
        except TypeError:
            raise ValueError(f"expected an address or a list of addresses, got {value!r}") from None
        if not items:
            raise ValueError("at least one address is needed")
        for item in items:
            if not isinstance(item, str):
                raise ValueError(f"expected an address string, got {item!r}")
            if item.startswith("fd://"):
                if _FD_RE.match(item) is None:
                    raise ValueError(f"{item!r} is not fd://N (N a descriptor number)")
                continue
            if item.startswith("unix:"):
                path = item[len("unix:") :]
                if not path or "\0" in path:
                    raise ValueError(f"{item!r} is not unix:PATH")
                if len(os.fsencode(path)) > _UNIX_PATH_MAX:
                    raise ValueError(
                        f"{item!r}: a Unix socket path is at most {_UNIX_PATH_MAX} bytes"
                    )
                continue
            m = _PORT_RE.match(item)
            if m is None:
                raise ValueError(f"{item!r} is not HOST:PORT or [IPV6]:PORT")
            if int(m.group(2)) > 65535:
                raise ValueError(f"{item!r}: port must be 0-65535")
        return items

    def describe_default(self, value: Any) -> str:
        return ", ".join(value)


class _AllowList(_Kind):
    """Comma-separated addresses and CIDR networks (`10.0.0.0/8,::1`), or `*` for every
    address; sent to Rust as one string (`cidr::AddrAllowList`)."""

    metavar = "CIDRS"

    def check(self, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else value
        try:
            items = [str(i).strip() for i in items]
        except TypeError:
            raise ValueError(f"expected a comma-separated list, got {value!r}") from None
        for item in items:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=True)
            except ValueError as e:
                raise ValueError(f"{item!r} is not an address, a CIDR network or *: {e}") from None
        return ",".join(items)


class _Umask(_Kind):
    """A umask, read like gunicorn's integers: `022`/`0o22` octal, `0x12` hex, `18` decimal."""

    metavar = "MODE"

    def parse(self, text: str) -> Any:
        text = text.strip().lower()
        try:
            if len(text) > 1 and text[0] == "0" and text[1].isdigit():
                return int(text[1:], 8)
            return int(text, 0)
        except ValueError:
            raise ValueError(f"expected a mode such as 022 or 0o22, got {text!r}") from None

    def check(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer mode, got {value!r}")
        if not 0 <= value <= 0o777:
            raise ValueError(f"must be between 0 and 0o777, got {oct(value)}")
        return value

    def describe_default(self, value: Any) -> str:
        return "none" if value is None else f"0o{value:03o}"


class _FileMode(_Kind):
    """Permission bits, always read as octal like chmod's: `660`, `0660` and `0o660` alike."""

    metavar = "MODE"

    def parse(self, text: str) -> Any:
        digits = text.strip().lower().removeprefix("0o")
        try:
            return int(digits, 8)
        except ValueError:
            raise ValueError(f"expected octal permission bits such as 660, got {text!r}") from None

    def check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer mode, got {value!r}")
        if not 0 <= value <= 0o777:
            raise ValueError(f"must be between 0 and 0o777, got {oct(value)}")
        return value

    def describe_default(self, value: Any) -> str:
        return f"0o{value:03o}"


class _PathList(_Kind):
    """Comma-separated directories (gunicorn `--pythonpath`)."""

    metavar = "DIRS"

    def parse(self, text: str) -> Any:
        return tuple(p.strip() for p in text.split(",") if p.strip())

    def check(self, value: Any) -> Any:
        items = (value,) if isinstance(value, str) else value
        try:
            items = tuple(items)
        except TypeError:
            raise ValueError(f"expected a list of directories, got {value!r}") from None
        if not all(isinstance(p, str) and p for p in items):
            raise ValueError(f"expected non-empty directory names, got {value!r}")
        return items

    def describe_default(self, value: Any) -> str:
        return ",".join(value) or "none"


class _EnvPairs(_Kind):
    """Repeatable `KEY=VALUE` environment settings (gunicorn `raw_env`, `-e/--env`)."""

    metavar = "KEY=VALUE"

    def check(self, value: Any) -> Any:
        items = (value,) if isinstance(value, str) else value
        try:
            items = tuple(items)
        except TypeError:
            raise ValueError(f"expected a list of KEY=VALUE, got {value!r}") from None
        for item in items:
            if not isinstance(item, str) or "=" not in item or "\x00" in item:
                raise ValueError(f"expected KEY=VALUE, got {item!r}")
            if not item.split("=", 1)[0].strip():
                raise ValueError(f"expected KEY=VALUE with a non-empty KEY, got {item!r}")
        return items

    def describe_default(self, value: Any) -> str:
        return ",".join(value) or "none"

    def environ(self, value: Sequence[str]) -> dict[str, str]:
        """The settings as a dict (a later KEY wins, as in gunicorn)."""
        pairs = (item.split("=", 1) for item in value)
        return {key.strip(): val for key, val in pairs}


class _Flag(_Kind):
    _WORDS: Mapping[str, bool] = types.MappingProxyType(
        {"1": True, "true": True, "yes": True, "on": True}
        | {"0": False, "false": False, "no": False, "off": False}
    )

    def parse(self, text: str) -> Any:
        """From an environment variable or a config file string: true/false, 1/0, yes/no."""
        try:
            return self._WORDS[text.strip().lower()]
        except KeyError:
            raise ValueError(f"expected true or false, got {text!r}") from None

    def check(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"expected True or False, got {value!r}")
        return value


#: One access-log directive, `%(NAME)s` (gunicorn's syntax; Rust compiles it, server/access.rs).
_ACCESS_DIRECTIVE = re.compile(r"%\((\{[^}]*\}[ioe]|[^)]*)\)[sd]|%%|%")
_ACCESS_ATOMS = frozenset(
    ["h", "l", "u", "t", "r", "m", "U", "q", "H", "s", "b", "B", "f", "a", "T", "M", "D", "L", "p"]
)


class _AccessFormat(_Text):
    """gunicorn's access_log_format: literal text and `%(NAME)s` directives."""

    def __init__(self) -> None:
        super().__init__("FORMAT")

    def check(self, value: Any) -> Any:
        value = super().check(value)
        for m in _ACCESS_DIRECTIVE.finditer(value):
            if m.group(0) == "%%":
                continue
            name = m.group(1)
            if name is None:
                raise ValueError(
                    f"a '%' must start %(NAME)s or be doubled as %%, at {value[m.start() :][:12]!r}"
                )
            if name not in _ACCESS_ATOMS and not re.fullmatch(r"\{[^}]+\}[ioe]", name):
                raise ValueError(f"unknown directive %({name})s")
        return value

    def describe_default(self, value: Any) -> str:
        return value


class _Dict(_Kind):
    """A mapping (config files only), e.g. gunicorn's logconfig_dict."""

    def check(self, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a table/dict, got {value!r}")
        return dict(value)


class _Specs(_Kind):
    """Repeatable `pkg.module:callable` names (middleware)."""

    metavar = "MODULE:FACTORY"

    def check(self, value: Any) -> Any:
        items = (value,) if isinstance(value, str) else value
        try:
            items = tuple(items)
        except TypeError:
            raise ValueError(f"expected a list of MODULE:FACTORY, got {value!r}") from None
        for item in items:
            if not isinstance(item, str) or ":" not in item or not item.strip():
                raise ValueError(f"expected MODULE:FACTORY, got {item!r}")
        return items

    def describe_default(self, value: Any) -> str:
        return ",".join(value) or "none"


class _Globs(_Kind):
    """Repeatable file name patterns (glob syntax, `**` for any depth)."""

    metavar = "GLOB"

    def check(self, value: Any) -> Any:
        items = (value,) if isinstance(value, str) else value
        try:
            items = tuple(items)
        except TypeError:
            raise ValueError(f"expected a list of file patterns, got {value!r}") from None
        for item in items:
            if not isinstance(item, str) or not item.strip() or "\x00" in item:
                raise ValueError(f"expected a file pattern, got {item!r}")
        return items

    def describe_default(self, value: Any) -> str:
        return ",".join(value) or "none"


class _StaticMounts(_Kind):
    """Repeatable `/url/prefix=path/to/dir` static file mounts (Rust checks the directories)."""

    metavar = "PREFIX=DIR"

    def check(self, value: Any) -> Any:
        items = (value,) if isinstance(value, str) else value
        try:
            items = tuple(items)
        except TypeError:
            raise ValueError(f"expected a list of /url/prefix=dir, got {value!r}") from None
        for item in items:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"expected /url/prefix=path/to/dir, got {item!r}")
            prefix, directory = item.split("=", 1)
            if not prefix.startswith("/") or not directory:
                raise ValueError(f"expected /url/prefix=path/to/dir, got {item!r}")
        return items

    def describe_default(self, value: Any) -> str:
        return ",".join(value) or "none"


#: A media type pattern of --compress-types: `type/subtype` or `type/*`.
_MEDIA_PATTERN = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/(\*|[A-Za-z0-9!#$&^_.+-]+)")


class _MediaTypes(_Text):
    """Comma-separated media types (`type/subtype` or `type/*`)."""

    def __init__(self) -> None:
        super().__init__("TYPES")

    def check(self, value: Any) -> Any:
        value = super().check(value)
        for item in value.split(","):
            if item.strip() and not _MEDIA_PATTERN.fullmatch(item.strip()):
                raise ValueError(f"{item.strip()!r} is not a media type (type/subtype or type/*)")
        return value

    def describe_default(self, value: Any) -> str:
        return value


class _Hooks(_Kind):
    """gunicorn server hooks by name (functions in a Python config file)."""

    def check(self, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a mapping of hook names to functions, got {value!r}")
        from ferrule.compat import HOOKS

        for name, fn in value.items():
            if name not in HOOKS:
                raise ValueError(f"unknown server hook {name!r}")
            if not callable(fn):
                raise ValueError(f"hook {name!r} is not callable")
        return dict(value)

    def describe_default(self, value: Any) -> str:
        return ", ".join(value or ()) or "none"


# --- the table ---------------------------------------------------------------------------------

SECTION_APP = "Application"
SECTION_SOCKET = "Listening"
SECTION_TLS = "TLS"
SECTION_PROXIES = "Proxies"
SECTION_WORKER = "Threads"
SECTION_PROCESSES = "Worker processes"
SECTION_LIMITS = "Request limits"
SECTION_OVERLOAD = "Overload"
SECTION_TIMEOUTS = "Timeouts"
SECTION_LOGGING = "Logging"
SECTION_HTTP = "HTTP"
SECTION_STATIC = "Static files"
SECTION_COMPRESSION = "Compression"
SECTION_HTTP2 = "HTTP/2"
SECTION_METRICS = "Metrics"
SECTION_DEV = "Development"
SECTIONS = (
    SECTION_APP,
    SECTION_SOCKET,
    SECTION_TLS,
    SECTION_PROXIES,
    SECTION_PROCESSES,
    SECTION_WORKER,
    SECTION_LIMITS,
    SECTION_OVERLOAD,
    SECTION_TIMEOUTS,
    SECTION_LOGGING,
    SECTION_HTTP,
    SECTION_STATIC,
    SECTION_COMPRESSION,
    SECTION_HTTP2,
    SECTION_METRICS,
    SECTION_DEV,
)


@dataclass(frozen=True)
class OptionSpec:
    """One option: its config name, CLI flags, kind, help text and section."""

    name: str
    flags: tuple[str, ...]
    kind: _Kind
    help: str
    section: str
    rust: bool  # sent to Rust's ServerConfig
    positional: bool = False
    repeat: bool = False  # the flag may be given several times (values accumulate)
    default: Any = None  # filled from the dataclass field

    @property
    def metavar(self) -> str:
        return "APP" if self.positional else self.kind.metavar

    def check(self, value: Any) -> Any:
        try:
            return self.kind.check(value)
        except ValueError as e:
            raise ConfigError(self.name, str(e)) from None


def _option(
    default: Any,
    kind: _Kind,
    help: str,
    section: str,
    flags: Sequence[str] = (),
    rust: bool = True,
    positional: bool = False,
    repeat: bool = False,
) -> Any:
    spec = OptionSpec(
        name="",
        flags=tuple(flags),
        kind=kind,
        help=help,
        section=section,
        rust=rust,
        positional=positional,
        repeat=repeat,
    )
    return dataclasses.field(default=default, metadata={"ferrule": spec})


@dataclass(frozen=True)
class Config:
    """The whole configuration of one ferrule process. Every value is checked on construction;
    a bad one raises `ConfigError` naming the option."""

    app: str | None = _option(
        None,
        _Text("APP", optional=True),
        "The WSGI app: 'pkg.module:attr', 'pkg.module' (uses 'application', then 'app'), "
        "'path/to/site.wsgi' or 'path/to/app.py' (defines 'application'), "
        "or a factory call 'pkg.module:create_app(\"arg\", debug=True)' with literal arguments.",
        SECTION_APP,
        rust=False,
        positional=True,
    )
    chdir: str | None = _option(
        None,
        _Text("DIR", optional=True),
        "Change to this directory before loading the app.",
        SECTION_APP,
        flags=("--chdir",),
        rust=False,
    )
    pythonpath: tuple[str, ...] = _option(
        (),
        _PathList(),
        "Comma-separated directories put in front of sys.path before loading the app.",
        SECTION_APP,
        flags=("--pythonpath",),
        rust=False,
    )
    raw_env: tuple[str, ...] = _option(
        (),
        _EnvPairs(),
        "Set the environment variable KEY to VALUE (os.environ) at start, before the app loads; "
        "repeat for several. Workers inherit it (gunicorn's raw_env).",
        SECTION_APP,
        flags=("-e", "--env"),
        rust=False,
        repeat=True,
    )
    middleware: tuple[str, ...] = _option(
        (),
        _Specs(),
        "Wrap the app in this WSGI middleware, 'pkg.module:factory' called as app = "
        "factory(app); repeat to stack them: the first given wraps the app first (innermost).",
        SECTION_APP,
        flags=("--middleware",),
        rust=False,
        repeat=True,
    )
    hooks: Mapping[str, Any] | None = _option(
        None,
        _Hooks(),
        "gunicorn server hooks (functions named on_starting, post_fork, ... in a Python config "
        "file).",
        SECTION_APP,
        rust=False,
    )
    bind: tuple[str, ...] = _option(
        ("127.0.0.1:8000",),
        _Binds(),
        "Address to listen on, HOST:PORT or [IPV6]:PORT, unix:PATH (a Unix socket; a stale "
        "socket file there is replaced, a live one or any other file is refused) or fd://N "
        "(an inherited listening socket); repeat to listen on several. Port 0 picks a free "
        "port (the log says which).",
        SECTION_SOCKET,
        flags=("-b", "--bind"),
        repeat=True,
    )
    unix_socket_mode: int = _option(
        0o660,
        _FileMode(),
        "Permission bits of the socket files of unix:PATH binds, octal (660, 0o660), set "
        "exactly whatever the umask. Connecting needs write permission: 660 lets the file's "
        "group in (put nginx's user in it), 666 everyone who can reach the directory.",
        SECTION_SOCKET,
        flags=("--unix-socket-mode",),
    )
    certfile: str | None = _option(
        None,
        _Text("FILE", optional=True),
        "Serve TLS (HTTPS) on every TCP listener with this PEM certificate chain (rustls; "
        "ALPN http/1.1). SIGHUP reloads the certificate and key (with workers, HUP replaces "
        "the workers, which load them anew).",
        SECTION_TLS,
        flags=("--certfile",),
    )
    keyfile: str | None = _option(
        None,
        _Text("FILE", optional=True),
        "The PEM private key of --certfile (default: read from --certfile).",
        SECTION_TLS,
        flags=("--keyfile",),
    )
    ca_certs: str | None = _option(
        None,
        _Text("FILE", optional=True),
        "PEM CA certificates that client certificates are verified against (mutual TLS).",
        SECTION_TLS,
        flags=("--ca-certs",),
    )
    cert_reqs: int = _option(
        0,
        _Int(0, 2),
        "Client certificates (gunicorn's numbers): 0 not asked for, 1 optional (verified when "
        "sent), 2 required. The environ gets SSL_CLIENT_VERIFY (SUCCESS/NONE) and "
        "SSL_CLIENT_S_DN (the subject, RFC 4514).",
        SECTION_TLS,
        flags=("--cert-reqs",),
    )
    proxy_protocol: str = _option(
        "off",
        _Choice(("off", "v1", "v2", "auto")),
        "Every TCP connection starts with a HAProxy PROXY protocol header (v1 text, v2 binary, "
        "auto: either); REMOTE_ADDR/REMOTE_PORT come from it. A connection without a valid "
        "header is closed without a response.",
        SECTION_PROXIES,
        flags=("--proxy-protocol",),
    )
    proxy_allow_from: str = _option(
        "127.0.0.1,::1",
        _AllowList(),
        "Peers allowed to send a PROXY header (addresses, CIDR networks, or *); connections "
        "from others are closed at once.",
        SECTION_PROXIES,
        flags=("--proxy-allow-from",),
    )
    forwarded_allow_ips: str = _option(
        "127.0.0.1,::1",
        _AllowList(),
        "Proxies whose Forwarded / X-Forwarded-For/-Proto/-Host/-Port/-Prefix headers are "
        "believed (addresses, CIDR networks, or *; a Unix socket peer always is): they set "
        "REMOTE_ADDR, wsgi.url_scheme, HTTP_HOST/SERVER_NAME/SERVER_PORT and SCRIPT_NAME. "
        "From other peers these headers are removed. Default from the FORWARDED_ALLOW_IPS "
        "environment variable when set.",
        SECTION_PROXIES,
        flags=("--forwarded-allow-ips",),
    )
    protocol: str = _option(
        "http",
        _Choice(("http", "uwsgi")),
        "What every listener speaks: http, or uwsgi, the binary protocol of nginx uwsgi_pass "
        "and Apache mod_proxy_uwsgi (one request per connection; the environ comes from the "
        "front server's variables: REMOTE_ADDR, scheme, SCRIPT_NAME/PATH_INFO, HTTP_*). "
        "Not with TLS, --proxy-protocol or --http2.",
        SECTION_PROXIES,
        flags=("--protocol",),
    )
    uwsgi_allow_from: str = _option(
        "127.0.0.1,::1",
        _AllowList(),
        "Peers allowed to speak uwsgi (addresses, CIDR networks, or *; a Unix socket peer "
        "always is); connections from others are closed at once, with a warning.",
        SECTION_PROXIES,
        flags=("--uwsgi-allow-from",),
    )
    threads: int = _option(
        4,
        _Int(1, 100_000),
        "Python threads running the app in this process.",
        SECTION_WORKER,
        flags=("--threads",),
    )
    workers: int = _option(
        1,
        _Int(1, 10_000),
        "Worker processes. More than 1 starts a master process that binds the listeners, forks "
        "the workers and replaces any that die; the default comes from the WEB_CONCURRENCY "
        "environment variable when it is set.",
        SECTION_PROCESSES,
        flags=("-w", "--workers"),
    )
    reload_one_by_one: bool = _option(
        False,
        _Flag(),
        "On SIGHUP, replace the workers one at a time (each old one leaves once its replacement "
        "is ready), so memory never doubles; by default a whole new set starts first.",
        SECTION_PROCESSES,
        flags=("--reload-one-by-one",),
    )
    reload: bool = _option(
        False,
        _Flag(),
        "Development: replace the workers when a Python file of the app changes (the modules "
        "it imported from outside the standard library and site-packages) or a "
        "--reload-extra-file matches a changed file. A changed file that does not compile "
        "keeps the running workers, and so does new code that fails to import; the error "
        "goes to the error log. Implies a master, even with -w 1; --preload is ignored.",
        SECTION_DEV,
        flags=("--reload",),
    )
    reload_extra_files: tuple[str, ...] = _option(
        (),
        _Globs(),
        "With --reload, also reload when a file matching this glob changes (templates, "
        "config; '**' matches any depth); repeat for several.",
        SECTION_DEV,
        flags=("--reload-extra-file",),
        rust=False,
        repeat=True,
    )
    reload_engine: str = _option(
        "auto",
        _Choice(("auto", "inotify", "poll")),
        "How --reload notices changes: inotify (Linux), poll (the files' mtimes every second), "
        "or auto: inotify when available, else poll.",
        SECTION_DEV,
        flags=("--reload-engine",),
        rust=False,
    )
    max_requests: int = _option(
        0,
        _Int(0, _U64_MAX),
        "Recycle a worker after it has served this many requests (plus --max-requests-jitter): "
        "its replacement starts first, then it finishes its in-flight requests and exits. "
        "0 means never. Recycling needs a master process, so with -w 1 one is started.",
        SECTION_PROCESSES,
        flags=("--max-requests",),
    )
    max_requests_jitter: int = _option(
        0,
        _Int(0, _U64_MAX),
        "Add a random 0..N to --max-requests for each worker, so workers do not all recycle "
        "at the same moment.",
        SECTION_PROCESSES,
        flags=("--max-requests-jitter",),
    )
    max_worker_memory: int = _option(
        0,
        _Int(0, 2**44),
        "Recycle a worker whose resident memory exceeds this many MiB (checked by the worker "
        "after each request and by the master every second), like --max-requests. 0 means no "
        "limit.",
        SECTION_PROCESSES,
        flags=("--max-worker-memory",),
    )
    max_worker_lifetime: float = _option(
        0.0,
        _Seconds(),
        "Recycle a worker after this many seconds (plus a random tenth at most, so workers started "
        "together do not recycle together), like --max-requests. 0 means no limit.",
        SECTION_PROCESSES,
        flags=("--max-worker-lifetime",),
    )
    boot_timeout: float = _option(
        60.0,
        _Seconds(),
        "Seconds a worker process under a master (-w 2 or more, or an option that starts one) "
        "may take from its fork to being ready to serve, loading the app included, with or "
        "without --preload. Past it the worker writes its threads' Python stacks to the error "
        "log (when it is still loading the app) and the master kills it (SIGKILL) and starts "
        "another: a hung import does not stop the server, unlike one that raises. 0 means no "
        "deadline.",
        SECTION_PROCESSES,
        flags=("--boot-timeout",),
    )
    preload: bool = _option(
        False,
        _Flag(),
        "With several workers, load the app in the master before forking (memory shared "
        "copy-on-write, gc.freeze() before the fork) instead of in each worker.",
        SECTION_PROCESSES,
        flags=("--preload",),
        rust=False,
    )
    user: str | None = _option(
        None,
        _Text("USER", optional=True),
        "Run the worker processes as this user (a name or a number), switched to after the "
        "fork and before the app is loaded; the master keeps its user (it bound the listeners "
        "and can re-exec on USR2). Implies a master, even with -w 1. Log files must be writable "
        "by this user; unix:PATH socket files are chowned to it.",
        SECTION_PROCESSES,
        flags=("-u", "--user"),
    )
    group: str | None = _option(
        None,
        _Text("GROUP", optional=True),
        "Run the worker processes with this group (a name or a number); with --user alone, that "
        "user's primary group. Supplementary groups are dropped. unix:PATH socket files are "
        "chowned to it.",
        SECTION_PROCESSES,
        flags=("-g", "--group"),
    )
    umask: int | None = _option(
        None,
        _Umask(),
        "File mode creation mask of the ferrule processes, e.g. 022 or 0o22 (a leading 0 "
        "means octal; plain digits are decimal, as gunicorn reads them). Unset: inherited.",
        SECTION_PROCESSES,
        flags=("-m", "--umask"),
        rust=False,
    )
    daemon: bool = _option(
        False,
        _Flag(),
        "Detach from the terminal (fork twice, new session); stdin and stdout go to /dev/null, "
        "stderr to the --error-logfile file (else /dev/null). The launching command exits 0 at "
        "once; use --pid to find the server.",
        SECTION_PROCESSES,
        flags=("-D", "--daemon"),
        rust=False,
    )
    pid_file: str | None = _option(
        None,
        _Text("FILE", optional=True),
        "Write the pid of the ferrule process (the master, with workers) to this file while it "
        "runs; refused if the file names a process that is still running.",
        SECTION_PROCESSES,
        flags=("-p", "--pid"),
        rust=False,
    )
    reuse_port: bool = _option(
        False,
        _Flag(),
        "Give each worker process its own SO_REUSEPORT listening socket on the bound address, "
        "so the kernel spreads connections evenly over the workers (the master only holds the "
        "address; port 0 is resolved once, by the master). Connections still queued on a "
        "worker that stops are reset unless net.ipv4.tcp_migrate_req=1 (Linux 5.14+).",
        SECTION_SOCKET,
        flags=("--reuse-port",),
    )
    backlog: int = _option(
        2048,
        _Int(1, _BACKLOG_MAX),
        "Listen backlog: connections the kernel queues before they are accepted.",
        SECTION_SOCKET,
        flags=("--backlog",),
    )
    max_buffered_body: int = _option(
        1024 * 1024,
        _Size(0),
        "Request bodies up to this size are read completely before the app is called; "
        "larger ones stream to the app as it reads.",
        SECTION_LIMITS,
        flags=("--max-buffered-body",),
    )
    limit_request_line: int = _option(
        8190,
        _Size(16),
        "Longest request line accepted, in bytes (longer: 414).",
        SECTION_LIMITS,
        flags=("--limit-request-line",),
    )
    limit_request_fields: int = _option(
        100,
        _Int(1),
        "Most header fields accepted in one request (more: 431).",
        SECTION_LIMITS,
        flags=("--limit-request-fields",),
    )
    limit_request_field_size: int = _option(
        8190,
        _Size(16),
        "Longest header field line accepted, in bytes (longer: 431).",
        SECTION_LIMITS,
        flags=("--limit-request-field_size", "--limit-request-field-size"),
    )
    limit_request_head: int = _option(
        64 * 1024,
        _Size(16),
        "Largest request head (request line and all headers), in bytes (larger: 431).",
        SECTION_LIMITS,
        flags=("--limit-request-head",),
    )
    limit_request_body: int = _option(
        1024**3,
        _Size(0, _U64_MAX),
        "Largest request body, in bytes; 0 means unlimited (larger: 413).",
        SECTION_LIMITS,
        flags=("--limit-request-body",),
    )
    worker_connections: int = _option(
        10_000,
        _Int(1),
        "Most connections open at once in this process (an idle one costs no thread); past it, "
        "new connections wait in the listen backlog (or get a 503, see --overload-503).",
        SECTION_OVERLOAD,
        flags=("--worker-connections",),
    )
    overload_503: bool = _option(
        False,
        _Flag(),
        "Past --worker-connections, accept and answer 503 with Retry-After at once instead of "
        "leaving new connections in the backlog.",
        SECTION_OVERLOAD,
        flags=("--overload-503",),
    )
    max_queued_requests: int = _option(
        1000,
        _Int(0),
        "Most requests waiting for an application thread; past it a request gets 503 with "
        "Retry-After and the app does not run. 0 means unlimited.",
        SECTION_OVERLOAD,
        flags=("--max-queued-requests",),
    )
    queue_timeout: float = _option(
        30.0,
        _Seconds(),
        "Seconds a request may wait for an application thread before it gets 503 with "
        "Retry-After (the app does not run); 0 means no limit. Checked every 0.1 s.",
        SECTION_OVERLOAD,
        flags=("--queue-timeout",),
    )
    keepalive_timeout: float = _option(
        5.0,
        _Seconds(),
        "Seconds an idle keep-alive connection waits for its next request (checked every 0.1 s).",
        SECTION_TIMEOUTS,
        flags=("--keep-alive", "--keepalive"),
    )
    header_timeout: float = _option(
        30.0,
        _Seconds(),
        "Seconds a client has to send a complete request head.",
        SECTION_TIMEOUTS,
        flags=("--header-timeout",),
    )
    body_timeout: float = _option(
        30.0,
        _Seconds(),
        "Seconds a request body may go without making progress.",
        SECTION_TIMEOUTS,
        flags=("--body-timeout",),
    )
    write_timeout: float = _option(
        30.0,
        _Seconds(),
        "Seconds one write to a client may go without making progress.",
        SECTION_TIMEOUTS,
        flags=("--write-timeout",),
    )
    graceful_timeout: float = _option(
        30.0,
        _Seconds(),
        "Seconds in-flight requests get to finish on shutdown.",
        SECTION_TIMEOUTS,
        flags=("--graceful-timeout",),
    )
    timeout: float = _option(
        30.0,
        _Seconds(),
        "Per-request deadline: a request whose app has not produced its response head this many "
        "seconds after an application thread took it gets 504 Gateway Timeout; the thread's "
        "Python stack is logged and ferrule.RequestTimeout is raised in it. A thread that does "
        "not unwind within 5 s gets its worker replaced. 0 means no deadline.",
        SECTION_TIMEOUTS,
        flags=("-t", "--timeout"),
    )
    log_level: str = _option(
        "info",
        _Choice(LOG_LEVELS),
        "Error log verbosity.",
        SECTION_LOGGING,
        flags=("--log-level",),
    )
    access_log: str | None = _option(
        None,
        _Text("PATH", optional=True),
        "Write an access log line per request to this file ('-' for stdout); off by default.",
        SECTION_LOGGING,
        flags=("--access-logfile", "--access-log"),
    )
    access_log_format: str = _option(
        '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
        _AccessFormat(),
        "Access log line, gunicorn's directives: %(h)s peer, %(l)s '-', %(u)s Basic-auth user, "
        "%(t)s time, %(r)s request line, %(m)s method, %(U)s path, %(q)s query, %(H)s protocol, "
        "%(s)s status, %(B)s bytes, %(b)s bytes or '-', %(f)s referer, %(a)s user agent, "
        "%(T)s/%(M)s/%(D)s/%(L)s duration in s/ms/us/decimal s, %(p)s pid, %({name}i)s request "
        "header, %({name}o)s response header, %({VAR}e)s CGI variable; %% for '%'.",
        SECTION_LOGGING,
        flags=("--access-logformat", "--access-log-format"),
    )
    access_log_json: bool = _option(
        False,
        _Flag(),
        "Write the access log as one JSON object per request (keys: time, remote_addr, "
        "remote_port, method, path, query, protocol, status, bytes, duration_ms, referer, "
        "user_agent, pid) instead of --access-logformat.",
        SECTION_LOGGING,
        flags=("--access-log-json",),
    )
    error_log: str = _option(
        "-",
        _Text("PATH"),
        "Write the error log to this file ('-' for stderr).",
        SECTION_LOGGING,
        flags=("--error-logfile", "--log-file"),
    )
    capture_output: bool = _option(
        False,
        _Flag(),
        "Send the app's stdout and stderr (file descriptors 1 and 2, so C extensions and "
        "subprocesses too) to the error log, one line per line written, at INFO.",
        SECTION_LOGGING,
        flags=("--capture-output",),
        rust=False,
    )
    log_config: str | None = _option(
        None,
        _Text("FILE", optional=True),
        "Configure Python's logging (the app's loggers) from this file at start: a "
        "logging.config.dictConfig in JSON (.json) or TOML (.toml), else an INI file for "
        "logging.config.fileConfig (gunicorn's --log-config). ferrule's own log is not affected.",
        SECTION_LOGGING,
        flags=("--log-config", "--log-config-json"),
        rust=False,
    )
    log_config_dict: Mapping[str, Any] | None = _option(
        None,
        _Dict(),
        "A logging.config.dictConfig dict (config files only: gunicorn's logconfig_dict); "
        "applied after --log-config.",
        SECTION_LOGGING,
        rust=False,
    )
    server_header: str = _option(
        "ferrule",
        _HeaderValue(),
        "Value of the Server response header; empty sends none.",
        SECTION_HTTP,
        flags=("--server-header",),
    )
    multiprocess: bool = _option(
        False,
        _Flag(),
        "Reported to the app as wsgi.multiprocess; set by the process manager, not a flag.",
        SECTION_WORKER,
    )
    static_map: tuple[str, ...] = _option(
        (),
        _StaticMounts(),
        "Serve the files of DIR under the URL PREFIX from Rust, before the app (repeatable): "
        "GET/HEAD only, sendfile, ETag/Last-Modified with 304s, single Range requests (206/416), "
        "precompressed .br/.gz siblings chosen by Accept-Encoding, Content-Type by extension. "
        "The mount owns its prefix: a missing file, a directory, a dotfile or a path with '..', "
        "an encoded slash or a symlink out of DIR is 404.",
        SECTION_STATIC,
        flags=("--static",),
        repeat=True,
    )
    static_max_age: int = _option(
        0,
        _Int(0, _U64_MAX, zero="no Cache-Control"),
        "Send 'Cache-Control: public, max-age=SECS' with static files; 0 sends none.",
        SECTION_STATIC,
        flags=("--static-max-age",),
    )
    static_follow_symlinks: bool = _option(
        False,
        _Flag(),
        "Serve static files through symlinks whose target is outside the mounted directory.",
        SECTION_STATIC,
        flags=("--static-follow-symlinks",),
    )
    compress: bool = _option(
        False,
        _Flag(),
        "Compress app responses with brotli or gzip, as the client's Accept-Encoding prefers "
        "(in Rust, off the GIL). Not compressed: HEAD, 204/206/304, responses with "
        "Content-Encoding or Cache-Control: no-transform, file_wrapper bodies, other types than "
        "--compress-types, bodies under --compress-min-size. Streamed bodies are flushed per "
        "chunk.",
        SECTION_COMPRESSION,
        flags=("--compress",),
    )
    compress_min_size: int = _option(
        1024,
        _Size(0),
        "Bodies known whole (or with a Content-Length) below this many bytes are not "
        "compressed; streamed bodies without a length are compressed by type alone.",
        SECTION_COMPRESSION,
        flags=("--compress-min-size",),
    )
    compress_types: str = _option(
        "text/*,application/json,application/javascript,application/xml,application/xhtml+xml,"
        "application/rss+xml,application/atom+xml,application/manifest+json,application/ld+json,"
        "application/wasm,image/svg+xml",
        _MediaTypes(),
        "Comma-separated Content-Types that --compress compresses (type/subtype or type/*).",
        SECTION_COMPRESSION,
        flags=("--compress-types",),
    )
    request_id: bool = _option(
        False,
        _Flag(),
        "X-Request-ID: keep a valid incoming one (visible ASCII, at most 200 bytes) or generate "
        "one (32 hex digits); the app sees it as HTTP_X_REQUEST_ID, the response carries it, the "
        "access log has it (%({x-request-id}i)s; key request_id in JSON).",
        SECTION_HTTP,
        flags=("--request-id",),
    )
    http2: bool = _option(
        False,
        _Flag(),
        "Serve HTTP/2: over TLS, offered by ALPN (h2, preferred to http/1.1); over plain TCP, to "
        "clients that open with the HTTP/2 preface (h2c with prior knowledge). Other "
        "connections stay HTTP/1.",
        SECTION_HTTP2,
        flags=("--http2",),
    )
    http2_max_concurrent_streams: int = _option(
        100,
        _Int(1, 2**32 - 1),
        "Most concurrent streams (requests) per HTTP/2 connection.",
        SECTION_HTTP2,
        flags=("--http2-max-concurrent-streams",),
    )
    http2_max_header_list_size: int = _option(
        0,
        _Size(0, 2**32 - 1),
        "Largest HTTP/2 header list, in bytes (larger: 431); 0 means --limit-request-head.",
        SECTION_HTTP2,
        flags=("--http2-max-header-list-size",),
    )
    http2_initial_stream_window_size: int = _option(
        1024**2,
        _Size(65_535, 2**31 - 1),
        "HTTP/2 receive window per stream, in bytes: request-body bytes a client may send "
        "ahead of the app reading them.",
        SECTION_HTTP2,
        flags=("--http2-initial-stream-window-size",),
    )
    http2_initial_connection_window_size: int = _option(
        2 * 1024**2,
        _Size(65_535, 2**31 - 1),
        "HTTP/2 receive window per connection, in bytes (all its streams together).",
        SECTION_HTTP2,
        flags=("--http2-initial-connection-window-size",),
    )
    http2_keepalive_interval: float = _option(
        0.0,
        _Seconds(),
        "Seconds between HTTP/2 keep-alive PINGs (one unanswered for --write-timeout closes "
        "the connection); 0 means none.",
        SECTION_HTTP2,
        flags=("--http2-keepalive-interval",),
    )
    metrics_bind: str | None = _option(
        None,
        _Text("HOST:PORT", optional=True),
        "Serve metrics on this separate address: /metrics (Prometheus text format), "
        "/status.json and /status (a live HTML dashboard); off by default. With workers the "
        "master serves it: the workers' counters summed, worker restarts by reason and each "
        "worker's memory.",
        SECTION_METRICS,
        flags=("--metrics-bind",),
    )

    def __post_init__(self) -> None:
        for spec in OPTIONS:
            value = spec.check(getattr(self, spec.name))
            object.__setattr__(self, spec.name, value)

    @property
    def env(self) -> dict[str, str]:
        """`raw_env` as a dict: what `apply_env` puts in os.environ."""
        return _EnvPairs().environ(self.raw_env)

    def apply_env(self) -> None:
        """Sets `raw_env` in os.environ (in this process; forked workers inherit it)."""
        os.environ.update(self.env)

    @property
    def recycles(self) -> bool:
        """An option asks for worker recycling (Rust's `ServerConfig::recycles`)."""
        return bool(self.max_requests or self.max_worker_memory or self.max_worker_lifetime)

    @property
    def uses_master(self) -> bool:
        """Serve through a master and forked workers: several workers, or recycling (a
        recycled worker needs someone to start its replacement). Otherwise one process serves
        directly (docs/architecture.md, "Processes"). --reload too: the workers are replaced
        when the code changes."""
        return self.workers > 1 or self.recycles or self.drops_privileges or self.reload

    @property
    def drops_privileges(self) -> bool:
        """--user or --group: the workers switch to them, so a master starts even for one
        worker (the app is never loaded with the master's privileges, unless --preload)."""
        return self.user is not None or self.group is not None

    @classmethod
    def from_options(cls, **options: Any) -> Config:
        """Builds a Config from option names; an unknown name raises TypeError naming it."""
        for name in options:
            if name not in _BY_NAME:
                raise TypeError(f"unknown ferrule option {name!r}")
        return cls(**options)

    def rust_dict(self) -> dict[str, Any]:
        """The values Rust's `ServerConfig` takes, under its field names."""
        out: dict[str, Any] = {}
        for spec in RUST_OPTIONS:
            value = getattr(self, spec.name)
            out[spec.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_rust_json(self) -> str:
        """The JSON handed to `_ferrule.Server`: exactly the fields of Rust's `ServerConfig`."""
        return json.dumps(self.rust_dict())


def _collect() -> tuple[OptionSpec, ...]:
    specs = []
    for f in dataclasses.fields(Config):
        spec = f.metadata["ferrule"]
        specs.append(dataclasses.replace(spec, name=f.name, default=f.default))
    return tuple(specs)


OPTIONS: tuple[OptionSpec, ...] = _collect()
RUST_OPTIONS: tuple[OptionSpec, ...] = tuple(s for s in OPTIONS if s.rust)
_BY_NAME = {s.name: s for s in OPTIONS}


# --- argparse ----------------------------------------------------------------------------------


def _arg_type(spec: OptionSpec) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = spec.kind.parse(text)
            if spec.repeat:  # each occurrence is one item of the list
                return spec.kind.check((value,))[0]
            return spec.kind.check(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = spec.name  # argparse names the type in some messages
    return convert


def _help_text(spec: OptionSpec) -> str:
    """The --help text; '%' doubled, since argparse %-formats help strings."""
    if spec.positional:
        return spec.help.replace("%", "%%")
    text = f"{spec.help} [default: {spec.kind.describe_default(spec.default)}]"
    return text.replace("%", "%%")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds every option with CLI flags (and the APP positional), grouped by section. Values
    default to None in the namespace so `config_from_namespace` sees what was given."""
    groups = {section: parser.add_argument_group(section) for section in SECTIONS}
    for spec in OPTIONS:
        group = groups[spec.section]
        if spec.positional:  # optional here: a config file or FERRULE_APP may name it
            group.add_argument(spec.name, metavar=spec.metavar, nargs="?", help=_help_text(spec))
        elif spec.flags and isinstance(spec.kind, _Flag):
            group.add_argument(
                *spec.flags,
                dest=spec.name,
                action="store_true",
                default=None,
                help=_help_text(spec),
            )
        elif spec.flags:
            group.add_argument(
                *spec.flags,
                dest=spec.name,
                metavar=spec.metavar,
                type=_arg_type(spec),
                action="append" if spec.repeat else "store",
                default=None,
                help=_help_text(spec),
            )


#: Environment variables that give an option its default when the command line does not
#: (the convention of Heroku-style platforms, also read by gunicorn).
ENV_DEFAULTS = {"workers": "WEB_CONCURRENCY", "forwarded_allow_ips": "FORWARDED_ALLOW_IPS"}


def env_defaults(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Option values from the environment (`ENV_DEFAULTS`); a bad value raises ConfigError
    naming the variable."""
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name, var in ENV_DEFAULTS.items():
        text = environ.get(var, "").strip()
        if not text:
            continue
        spec = _BY_NAME[name]
        try:
            out[name] = spec.kind.check(spec.kind.parse(text))
        except ValueError as e:
            raise ConfigError(name, f"environment variable {var}: {e}") from None
    return out


def config_from_namespace(
    ns: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Config:
    """The Config for parsed arguments; options not given come from the environment
    (`ENV_DEFAULTS`), else keep their defaults."""
    given = env_defaults(environ)
    given.update(
        {
            spec.name: getattr(ns, spec.name)
            for spec in OPTIONS
            if getattr(ns, spec.name, None) is not None
        }
    )
    return Config(**given)


def option_label(name: str) -> str:
    """How an option is named to a command-line user: its long flag, else its name."""
    spec = _BY_NAME.get(name)
    if spec is None or spec.positional or not spec.flags:
        return name.upper() if spec is not None and spec.positional else name
    return next((f for f in spec.flags if f.startswith("--")), spec.flags[0])


def option_flags(name: str) -> tuple[str, ...]:
    """The command-line flags of an option (empty for config-file-only options)."""
    spec = _BY_NAME.get(name)
    return spec.flags if spec is not None else ()


def option_spec(name: str) -> OptionSpec | None:
    """The spec of an option by config name, or None."""
    return _BY_NAME.get(name)


def iter_cli_options() -> Iterator[OptionSpec]:
    """Options settable on the command line (the APP positional excluded)."""
    return (s for s in OPTIONS if s.flags)


# --- documentation -----------------------------------------------------------------------------


def options_markdown() -> str:
    """The options table pasted into README.md (a unit test keeps the two equal)."""
    lines = ["| Option | Default | Meaning |", "|---|---|---|"]
    for spec in iter_cli_options():
        metavar = "" if isinstance(spec.kind, _Flag) else f" {spec.metavar}"
        flags = ", ".join(
            f"`{f}{metavar}`" if i == 0 else f"`{f}`" for i, f in enumerate(spec.flags)
        )
        default = spec.kind.describe_default(spec.default)
        lines.append(f"| {flags} | `{default}` | {spec.help} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ferrule.config", description="Print ferrule's options."
    )
    parser.add_argument("--markdown", action="store_true", help="the README options table")
    parser.add_argument("--json", action="store_true", help="the default config sent to Rust")
    args = parser.parse_args(argv)
    if args.json:
        sys.stdout.write(Config().to_rust_json() + "\n")
    else:
        sys.stdout.write(options_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
