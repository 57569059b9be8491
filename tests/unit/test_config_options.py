"""ferrule.config: the option table, the CLI it generates, and its agreement with Rust."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ferrule.cli import build_parser
from ferrule.config import (
    OPTIONS,
    RUST_OPTIONS,
    Config,
    ConfigError,
    config_from_namespace,
    options_markdown,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG_RS = ROOT / "crates" / "ferrule-core" / "src" / "config.rs"


# --- reading the Rust side ----------------------------------------------------------------------


def _rust_source() -> str:
    return CONFIG_RS.read_text(encoding="utf-8")


def _eval_const(expr: str) -> int | float:
    """Evaluates a Rust numeric constant expression made of literals, `*` and `+`."""

    def ev(node: ast.expr) -> int | float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Add)):
            left, right = ev(node.left), ev(node.right)
            return left * right if isinstance(node.op, ast.Mult) else left + right
        raise AssertionError(f"config.rs constant {expr!r}: teach this test its syntax")

    return ev(ast.parse(expr.replace("_", ""), mode="eval").body)


def rust_constants() -> dict[str, int | float | str]:
    found = re.findall(r"pub const (DEFAULT_\w+): \w+ = ([^;]+);", _rust_source())
    assert found, "no DEFAULT_ constants found in config.rs"
    consts: dict[str, int | float | str] = {name: _eval_const(expr) for name, expr in found}
    # String constants, written as raw strings: `pub const NAME: &str = r#"..."#;`
    for name, text in re.findall(
        r'pub const (DEFAULT_\w+): &str =\s*r#"(.*?)"#;', _rust_source(), re.DOTALL
    ):
        consts[name] = text
    return consts


def rust_struct_fields() -> list[str]:
    body = re.search(r"pub struct ServerConfig \{(.*?)\n\}", _rust_source(), re.DOTALL)
    assert body, "struct ServerConfig not found in config.rs"
    return re.findall(r"^\s*pub (\w+):", body.group(1), re.MULTILINE)


def rust_defaults() -> dict[str, object]:
    """The values of `impl Default for ServerConfig`, turned into Python values."""
    block = re.search(
        r"impl Default for ServerConfig \{.*?ServerConfig \{(.*?)\n\s*\}", _rust_source(), re.DOTALL
    )
    assert block, "impl Default for ServerConfig not found in config.rs"
    consts = rust_constants()
    out: dict[str, object] = {}
    for name, expr in re.findall(r"^\s*(\w+): (.+),\s*$", block.group(1), re.MULTILINE):
        expr = expr.strip()
        if expr in consts:
            out[name] = consts[expr]
        elif expr.startswith("vec!["):
            out[name] = re.findall(r'"([^"]*)"', expr)
        elif (m := re.fullmatch(r"(DEFAULT_\w+)\.to_owned\(\)", expr)) and m.group(1) in consts:
            out[name] = consts[m.group(1)]
        elif m := re.fullmatch(r'"([^"]*)"\.to_owned\(\)', expr):
            out[name] = m.group(1)
        elif (
            (m := re.fullmatch(r"LogLevel::(\w+)", expr))
            or (m := re.fullmatch(r"crate::proxy_protocol::ProxyProtocolMode::(\w+)", expr))
            or (m := re.fullmatch(r"crate::uwsgi::Protocol::(\w+)", expr))
        ):
            out[name] = m.group(1).lower()
        elif expr == "crate::cidr::AddrAllowList::loopback()":
            out[name] = "127.0.0.1,::1"
        elif expr in ("None", "true", "false"):
            out[name] = {"None": None, "true": True, "false": False}[expr]
        else:
            raise AssertionError(f"config.rs default {name}: {expr!r}: teach this test its syntax")
    return out


# --- agreement with Rust ------------------------------------------------------------------------


def test_rust_json_has_exactly_the_rust_struct_fields():
    fields = rust_struct_fields()
    assert len(fields) >= 19
    assert list(json.loads(Config().to_rust_json())) == fields


def test_defaults_equal_rust_defaults():
    assert json.loads(Config().to_rust_json()) == rust_defaults()


def test_every_rust_constant_is_used_by_the_default_impl():
    used = set(
        re.findall(r"\bDEFAULT_\w+", _rust_source().split("impl Default for ServerConfig")[1])
    )
    assert set(rust_constants()) <= used


def test_python_only_options_are_not_sent():
    sent = json.loads(Config(app="x:y", chdir="/tmp", pythonpath=("a",)).to_rust_json())
    assert not {"app", "chdir", "pythonpath"} & set(sent)
    assert {s.name for s in OPTIONS} - {s.name for s in RUST_OPTIONS} == {
        "app",
        "capture_output",
        "hooks",
        "log_config",
        "log_config_dict",
        "reload_extra_files",
        "reload_engine",
        "middleware",
        "chdir",
        "pid_file",
        "preload",
        "pythonpath",
        "raw_env",
        "umask",
        "daemon",
    }


def test_importing_config_and_loader_does_not_import_the_extension():
    code = (
        "import sys, ferrule.config, ferrule.loader, ferrule.cli; "
        "assert 'ferrule._ferrule' not in sys.modules, 'extension imported'"
    )
    import ferrule

    env = dict(os.environ, PYTHONPATH=str(Path(ferrule.__file__).parents[1]))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr


# --- the command line ---------------------------------------------------------------------------


def parse(*argv: str) -> Config:
    return config_from_namespace(build_parser().parse_args([*argv, "app:application"]))


def test_no_options_gives_defaults():
    assert parse() == Config(app="app:application")


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["-b", "0.0.0.0:80"], "bind", ("0.0.0.0:80",)),
        (["--bind=[::1]:0"], "bind", ("[::1]:0",)),
        (["-b", "127.0.0.1:1", "--bind", "[::1]:2"], "bind", ("127.0.0.1:1", "[::1]:2")),
        (["--backlog", "64"], "backlog", 64),
        (["--threads", "16"], "threads", 16),
        (["--chdir", "/srv"], "chdir", "/srv"),
        (["--pythonpath", "a, b,c"], "pythonpath", ("a", "b", "c")),
        (["--max-buffered-body", "64K"], "max_buffered_body", 65536),
        (["--max-buffered-body", "2m"], "max_buffered_body", 2 * 1024 * 1024),
        (["--limit-request-line", "4094"], "limit_request_line", 4094),
        (["--limit-request-fields", "50"], "limit_request_fields", 50),
        (["--limit-request-field_size", "1000"], "limit_request_field_size", 1000),
        (["--limit-request-field-size", "1001"], "limit_request_field_size", 1001),
        (["--limit-request-head", "32768"], "limit_request_head", 32768),
        (["--limit-request-body", "0"], "limit_request_body", 0),
        (["--limit-request-body", "1G"], "limit_request_body", 1024**3),
        (["--keep-alive", "2"], "keepalive_timeout", 2.0),
        (["--keepalive", "0.5"], "keepalive_timeout", 0.5),
        (["--header-timeout", "10"], "header_timeout", 10.0),
        (["--body-timeout", "11"], "body_timeout", 11.0),
        (["--write-timeout", "12"], "write_timeout", 12.0),
        (["--graceful-timeout", "0"], "graceful_timeout", 0.0),
        (["--log-level", "DEBUG"], "log_level", "debug"),
        (["--access-logfile", "-"], "access_log", "-"),
        (["--access-log", "/tmp/a.log"], "access_log", "/tmp/a.log"),
        (["--error-logfile", "/tmp/e.log"], "error_log", "/tmp/e.log"),
        (["--log-file", "/tmp/f.log"], "error_log", "/tmp/f.log"),
        (["--server-header", ""], "server_header", ""),
        (["--server-header", "nginx/1"], "server_header", "nginx/1"),
        (["--worker-connections", "10"], "worker_connections", 10),
        (["--overload-503"], "overload_503", True),
        (["--http2"], "http2", True),
        (["--http2-max-concurrent-streams", "10"], "http2_max_concurrent_streams", 10),
        (["--http2-max-header-list-size", "16K"], "http2_max_header_list_size", 16384),
        (["--http2-initial-stream-window-size", "64K"], "http2_initial_stream_window_size", 65536),
        (
            ["--http2-initial-connection-window-size", "4M"],
            "http2_initial_connection_window_size",
            4 * 1024**2,
        ),
        (["--http2-keepalive-interval", "20"], "http2_keepalive_interval", 20.0),
        (["--metrics-bind", "127.0.0.1:9100"], "metrics_bind", "127.0.0.1:9100"),
        (["--max-queued-requests", "0"], "max_queued_requests", 0),
        (["--queue-timeout", "0.5"], "queue_timeout", 0.5),
        (["-w", "3"], "workers", 3),
        (["--workers", "2"], "workers", 2),
        (["--preload"], "preload", True),
        (["--pid", "/run/ferrule.pid"], "pid_file", "/run/ferrule.pid"),
        (["-p", "x.pid"], "pid_file", "x.pid"),
        (["--reload-one-by-one"], "reload_one_by_one", True),
        (["--reload"], "reload", True),
        (
            ["--reload-extra-file", "a/*.txt", "--reload-extra-file", "b/**"],
            "reload_extra_files",
            ("a/*.txt", "b/**"),
        ),
        (["--reload-engine", "poll"], "reload_engine", "poll"),
        (["--max-requests", "1000"], "max_requests", 1000),
        (["--max-requests-jitter", "50"], "max_requests_jitter", 50),
        (["--max-worker-memory", "512"], "max_worker_memory", 512),
        (["--max-worker-lifetime", "3600"], "max_worker_lifetime", 3600.0),
        (["--boot-timeout", "0"], "boot_timeout", 0.0),
        (["--boot-timeout", "120.5"], "boot_timeout", 120.5),
        (["-t", "10"], "timeout", 10.0),
        (["--timeout", "0"], "timeout", 0.0),
        (["--access-logformat", "%(h)s %({x-y}i)s"], "access_log_format", "%(h)s %({x-y}i)s"),
        (["--access-log-format", "%(s)s 100%%"], "access_log_format", "%(s)s 100%%"),
        (["--access-log-json"], "access_log_json", True),
        (["--capture-output"], "capture_output", True),
        (["--log-config", "log.json"], "log_config", "log.json"),
        (["--log-config-json", "l.json"], "log_config", "l.json"),
        (["--middleware", "a:b", "--middleware", "c:d(1)"], "middleware", ("a:b", "c:d(1)")),
        (["-e", "A=1", "--env", "B=x=y"], "raw_env", ("A=1", "B=x=y")),
        (["--static", "/s=d", "--static", "/=e"], "static_map", ("/s=d", "/=e")),
        (["--static-max-age", "60"], "static_max_age", 60),
        (["--static-follow-symlinks"], "static_follow_symlinks", True),
        (["--compress"], "compress", True),
        (["--compress-min-size", "2K"], "compress_min_size", 2048),
        (["--compress-types", "text/*,image/svg+xml"], "compress_types", "text/*,image/svg+xml"),
        (["--request-id"], "request_id", True),
        (["--certfile", "c.pem"], "certfile", "c.pem"),
        (["--keyfile", "k.pem"], "keyfile", "k.pem"),
        (["--ca-certs", "ca.pem"], "ca_certs", "ca.pem"),
        (["--cert-reqs", "2"], "cert_reqs", 2),
        (["--proxy-protocol", "V2"], "proxy_protocol", "v2"),
        (["--proxy-allow-from", "10.0.0.0/8, ::1"], "proxy_allow_from", "10.0.0.0/8,::1"),
        (["--forwarded-allow-ips", "*"], "forwarded_allow_ips", "*"),
        (["--protocol", "UWSGI"], "protocol", "uwsgi"),
        (["--uwsgi-allow-from", "10.0.0.0/8"], "uwsgi_allow_from", "10.0.0.0/8"),
        (["--reuse-port"], "reuse_port", True),
        (["-u", "nobody"], "user", "nobody"),
        (["--user", "65534"], "user", "65534"),
        (["-g", "nogroup"], "group", "nogroup"),
        (["--group", "0"], "group", "0"),
        (["-m", "027"], "umask", 0o27),
        (["--umask", "0o002"], "umask", 0o2),
        (["--umask", "18"], "umask", 18),  # decimal without a leading 0, as gunicorn reads it
        (["-D"], "daemon", True),
        (["--daemon"], "daemon", True),
        (["--bind", "fd://3"], "bind", ("fd://3",)),
        (["-b", "unix:/run/a.sock", "-b", "[::1]:0"], "bind", ("unix:/run/a.sock", "[::1]:0")),
        (["--unix-socket-mode", "666"], "unix_socket_mode", 0o666),  # octal, as chmod reads it
        (["--unix-socket-mode", "0o600"], "unix_socket_mode", 0o600),
        (["--unix-socket-mode", "0640"], "unix_socket_mode", 0o640),
    ],
)
def test_flag_sets_field(argv, field, value):
    config = parse(*argv)
    assert getattr(config, field) == value
    others = {s.name for s in OPTIONS} - {field, "app"}
    assert all(getattr(config, n) == getattr(Config(), n) for n in others)


def test_recycling_needs_a_master_even_for_one_worker():
    assert not parse().uses_master
    assert parse("-w", "2").uses_master
    assert parse("--max-requests", "100").uses_master
    assert parse("--max-worker-memory", "100").uses_master
    assert parse("--max-worker-lifetime", "60").uses_master
    assert not parse("--max-requests-jitter", "10").uses_master  # jitter alone recycles nothing
    assert not parse("--timeout", "5").uses_master
    assert not parse("--boot-timeout", "5").uses_master  # a deadline for workers, if any
    assert parse("--reload").uses_master  # the workers are replaced on a change
    assert parse("--user", "nobody").uses_master  # the app never runs as the master's user
    assert parse("--group", "nogroup").uses_master


def test_every_flag_is_exercised_above():
    params = test_flag_sets_field.pytestmark[0].args[1]
    given = {a.split("=")[0] for argv, _, _ in params for a in argv if a.startswith("-")}
    declared = {f for s in OPTIONS for f in s.flags}
    assert declared <= given


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--threads", "0"], "--threads"),
        (["--threads", "four"], "--threads"),
        (["--backlog", "0"], "--backlog"),
        (["--keep-alive", "-1"], "--keep-alive"),
        (["--header-timeout", "nan"], "--header-timeout"),
        (["--graceful-timeout", "inf"], "--graceful-timeout"),
        (["--limit-request-line", "15"], "--limit-request-line"),
        (["--limit-request-field_size", "8"], "--limit-request-field_size"),
        (["--limit-request-fields", "0"], "--limit-request-fields"),
        (["--max-buffered-body", "1T"], "--max-buffered-body"),
        (["--limit-request-body", "-5"], "--limit-request-body"),
        (["--log-level", "loud"], "--log-level"),
        (["--server-header", "a\tb\x01"], "--server-header"),
        (["--bind", "localhost"], "--bind"),
        (["--bind", "127.0.0.1:70000"], "--bind"),
        (["--bind", "unix:"], "--bind"),
        (["--bind", "unix:/" + "s" * 107], "--bind"),
        (["--unix-socket-mode", "1000"], "--unix-socket-mode"),
        (["--unix-socket-mode", "rw"], "--unix-socket-mode"),
        (["--unix-socket-mode", "9"], "--unix-socket-mode"),
        (["--bind", "fd://x"], "--bind"),
        (["--umask", "0o1000"], "--umask"),
        (["--umask", "rw"], "--umask"),
        (["--error-logfile", ""], "--error-logfile"),
        (["--access-logformat", "%(z)s"], "--access-logformat"),
        (["--access-logformat", "50% off"], "--access-logformat"),
        (["--middleware", "nocolon"], "--middleware"),
        (["-e", "NOEQUALS"], "--env"),
        (["--env", "=value"], "--env"),
        (["--static", "static=dir"], "--static"),
        (["--static", "/s="], "--static"),
        (["--compress-types", "text"], "--compress-types"),
        (["--protocol", "scgi"], "--protocol"),
        (["--uwsgi-allow-from", "10.0.0.0/33"], "--uwsgi-allow-from"),
    ],
)
def test_bad_value_names_the_option(argv, named, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert named in err, err
    assert "Traceback" not in err


def test_unknown_flag_is_rejected(capsys):
    with pytest.raises(SystemExit):
        parse("--workers-count", "3")
    assert "--workers-count" in capsys.readouterr().err


def test_app_is_required(capsys, monkeypatch, tmp_path):
    from ferrule.cli import main

    monkeypatch.chdir(tmp_path)  # no config file found
    monkeypatch.delenv("FERRULE_APP", raising=False)
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "APP" in capsys.readouterr().err


def test_help_lists_every_flag_in_its_section(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for spec in OPTIONS:
        for flag in spec.flags:
            assert flag in out
        assert spec.section + ":" in out
    assert "--check-config" in out
    assert "--version" in out


# --- the Config object --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"threads": 0}, "threads"),
        ({"threads": True}, "threads"),
        ({"threads": "4"}, "threads"),
        ({"bind": []}, "bind"),
        ({"bind": "nope"}, "bind"),
        ({"bind": ["127.0.0.1:1", 5]}, "bind"),
        ({"keepalive_timeout": -0.1}, "keepalive_timeout"),
        ({"log_level": "verbose"}, "log_level"),
        ({"multiprocess": 1}, "multiprocess"),
        ({"server_header": "x\r\ny: z"}, "server_header"),
        ({"limit_request_body": 2**64}, "limit_request_body"),
    ],
)
def test_config_rejects_bad_values_naming_the_option(kwargs, option):
    with pytest.raises(ConfigError) as exc:
        Config(**kwargs)
    assert exc.value.option == option
    assert str(exc.value).startswith(f"{option}: ")


def test_config_normalises_values():
    c = Config(bind="[::1]:8080", keepalive_timeout=3, log_level="WARNING", pythonpath="src")
    assert c.bind == ("[::1]:8080",)
    assert c.keepalive_timeout == 3.0 and isinstance(c.keepalive_timeout, float)
    assert c.log_level == "warning"
    assert c.pythonpath == ("src",)
    sent = json.loads(c.to_rust_json())
    assert sent["bind"] == ["[::1]:8080"]
    assert sent["access_log"] is None


def test_from_options_rejects_unknown_names():
    with pytest.raises(TypeError, match="'thread'"):
        Config.from_options(thread=3)
    assert Config.from_options(threads=3).threads == 3


def test_config_is_immutable():
    with pytest.raises(AttributeError):
        Config().threads = 2  # type: ignore[misc]


# --- documentation ------------------------------------------------------------------------------


def test_markdown_table_lists_every_flag():
    table = options_markdown()
    for spec in OPTIONS:
        for flag in spec.flags:
            assert f"`{flag}" in table


def test_readme_options_table_is_current():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- options:start -->\n(.*?)<!-- options:end -->", readme, re.DOTALL)
    assert m, "README.md lacks the <!-- options:start/end --> block"
    assert m.group(1) == options_markdown(), (
        "README.md options table is stale: regenerate it with `python -m ferrule.config --markdown`"
    )


@pytest.mark.parametrize(
    "master_options",
    [{"workers": 2}, {"max_requests": 100}, {"reload": True}, {"user": "nobody"}],
)
def test_metrics_bind_is_accepted_with_a_master(master_options):
    # The master serves the workers' metrics summed (tests/ops/test_metrics_workers.py).
    config = Config(app="app:app", metrics_bind="127.0.0.1:0", **master_options)
    assert config.uses_master
    assert config.metrics_bind == "127.0.0.1:0"
