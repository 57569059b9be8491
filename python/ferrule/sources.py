"""Where settings come from, and which one wins.

One `Config` is filled from these sources, each overriding the ones before it:

1. ferrule's defaults;
2. the platform variables gunicorn reads as *defaults* (so anything below overrides them):
   ``WEB_CONCURRENCY`` (workers), ``PORT`` (bind ``0.0.0.0:$PORT``), ``FORWARDED_ALLOW_IPS``
   (once the option exists);
3. a config file: ``-c FILE`` (``ferrule.toml``, any ``.toml``, ``pyproject.toml`` whose
   ``[tool.ferrule]`` table is read, or a Python file such as ``gunicorn.conf.py``; gunicorn's
   ``python:MODULE`` and ``file:PATH`` forms too). Without ``-c``, the first of ``./ferrule.toml``,
   ``./pyproject.toml`` (only if it has ``[tool.ferrule]``) and ``./gunicorn.conf.py`` that exists is
   read; ``-c ''`` reads none;
4. ``FERRULE_<OPTION>`` environment variables, one per option (``FERRULE_THREADS=8``,
   ``FERRULE_BIND=127.0.0.1:8000,[::1]:8000``: lists are comma-separated; flags take
   true/false/1/0/yes/no/on/off). Other ``FERRULE_*`` names are left alone (they may be the app's),
   except near-misses of an option name, which are errors ("did you mean");
5. ``FERRULE_CMD_ARGS``: command-line arguments (shell-quoted) read before the real ones;
6. the command line.

Settings in files use ferrule's option names or gunicorn's setting names (`ferrule.compat`);
``-`` and ``_`` are the same in names. A setting that is unknown or has a bad value is an error
naming the setting and its source. In a Python file, names that are no setting are ignored, as
gunicorn does (helper variables, imports), unless they look like a misspelt setting.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.util
import json
import os
import shlex
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ferrule import compat
from ferrule.config import OPTIONS, Config, ConfigError, OptionSpec, _Kind, option_spec

__all__ = [
    "AUTO_CONFIG_FILES",
    "CMD_ARGS_VAR",
    "ENV_PREFIX",
    "Resolved",
    "SourceError",
    "config_to_toml",
    "load_config_file",
    "resolve",
]

#: Prefix of the per-option environment variables.
ENV_PREFIX = "FERRULE_"
#: Extra command-line arguments, read before the real ones.
CMD_ARGS_VAR = "FERRULE_CMD_ARGS"
#: Files read, first found, when no -c is given (relative to the working directory at start).
AUTO_CONFIG_FILES = ("ferrule.toml", "pyproject.toml", "gunicorn.conf.py")
#: How similar an unknown name must be to a setting to be reported as a misspelling.
_NEAR_MISS = 0.85

#: Source labels.
DEFAULTS = "default"
COMMAND_LINE = "command line"

_COMMAND_ONLY = {"config", "check_config", "print_config"}


class SourceError(ValueError):
    """A setting that cannot be used: names the setting and where it came from."""

    def __init__(self, source: str, setting: str, message: str) -> None:
        super().__init__(f"{source}: {setting}: {message}")
        self.source = source
        self.setting = setting
        self.message = message


@dataclass
class Resolved:
    """The outcome of reading every source."""

    config: Config
    origins: dict[str, str]  # option name -> the source that set it
    checked: list[str]  # every source consulted, in order of priority (lowest first)
    warnings: list[str] = field(default_factory=list)
    config_file: str | None = None


# --- values --------------------------------------------------------------------------------------


def _parses_text(spec: OptionSpec) -> bool:
    """The kind reads text into another type (numbers, flags, sizes): a string in a file is
    then read like a command-line value (gunicorn.conf.py files often hold `workers = "4"`)."""
    return type(spec.kind).parse is not _Kind.parse


def _from_text(spec: OptionSpec, text: str) -> Any:
    """A value given as text (environment variable): lists are comma-separated."""
    if spec.repeat or spec.name in ("bind", "middleware"):
        return tuple(t.strip() for t in text.split(",") if t.strip())
    return spec.kind.parse(text)


def _checked(spec: OptionSpec, value: Any, source: str, setting: str, text: bool) -> Any:
    try:
        if isinstance(value, str) and (text or _parses_text(spec)):
            value = _from_text(spec, value) if text else spec.kind.parse(value)
        return spec.kind.check(value)
    except ValueError as e:
        raise SourceError(source, setting, str(e)) from None


def _option_names() -> list[str]:
    return [s.name for s in OPTIONS]


def _near_miss(name: str, candidates: Sequence[str]) -> str | None:
    found = difflib.get_close_matches(name, candidates, n=1, cutoff=_NEAR_MISS)
    return found[0] if found else None


# --- config files --------------------------------------------------------------------------------


@dataclass
class FileSettings:
    values: dict[str, Any]
    warnings: list[str]
    label: str


def _read_toml(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.9/3.10
        try:
            import tomli as tomllib  # type: ignore[import-not-found,no-redef]
        except ImportError:
            raise SourceError(
                path,
                "config",
                "reading TOML on Python < 3.11 needs the 'tomli' package "
                "(pip install tomli), or use a Python config file",
            ) from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise SourceError(path, "config", f"cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise SourceError(path, "config", f"invalid TOML: {e}") from None


def _pyproject_table(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    tool = data.get("tool")
    table = tool.get("ferrule") if isinstance(tool, Mapping) else None
    return table if isinstance(table, Mapping) else None


def _exec_python(path: str | None, module: str | None) -> dict[str, Any]:
    """Runs a Python config file (or imports `python:MODULE`); returns its globals."""
    label = path or f"python:{module}"
    try:
        if module is not None:
            mod = importlib.import_module(module)
        else:
            assert path is not None
            if not os.path.isfile(path):
                raise SourceError(path, "config", "no such file")
            loader = importlib.machinery.SourceFileLoader("__ferrule_config__", path)
            spec = importlib.util.spec_from_file_location("__ferrule_config__", path, loader=loader)
            assert spec is not None
            mod = importlib.util.module_from_spec(spec)
            loader.exec_module(mod)
    except SourceError:
        raise
    except (Exception, SystemExit) as e:
        raise SourceError(label, "config", f"executing it raised {type(e).__name__}: {e}") from e
    return dict(vars(mod))


def _settings_from_mapping(items: Mapping[str, Any], label: str, python: bool) -> FileSettings:
    """Maps file settings (ferrule or gunicorn names) to option values, checked."""
    names = _option_names()
    known = set(names) | {s.name for s in compat.GUNICORN_SETTINGS} | set(compat.HOOKS)
    values: dict[str, Any] = {}
    warnings: list[str] = []
    hooks: dict[str, Any] = {}
    for raw_name, value in items.items():
        name = raw_name.replace("-", "_")
        if python:
            if name.startswith("_") or isinstance(value, (types.ModuleType, type)):
                continue
            if name in compat.HOOKS:
                if not callable(value):
                    raise SourceError(label, raw_name, "a server hook must be a function")
                hooks[name] = value
                continue
            if name not in known:
                guess = _near_miss(name, sorted(known))
                if guess is not None:
                    raise SourceError(label, raw_name, f"unknown setting; did you mean {guess}?")
                continue  # a helper variable of the file, as gunicorn allows
        spec = option_spec(name) if name != "hooks" else None
        if spec is not None:
            same = compat.by_name(name)  # gunicorn's reading of the shared name, e.g. bind
            if same is not None and same.target == name and same.convert is not None:
                value = same.convert(value)
            values[name] = _checked(spec, value, label, raw_name, text=False)
            continue
        gs = compat.by_name(name)
        if gs is None:
            guess = _near_miss(name, sorted(known))
            hint = f"; did you mean {guess}?" if guess else ""
            raise SourceError(label, raw_name, f"unknown setting{hint}")
        if gs.name in _COMMAND_ONLY:
            raise SourceError(label, raw_name, "only valid on the command line")
        target, warning = compat.resolve(gs, names)
        if target is None:
            warnings.append(f"{label}: gunicorn setting {raw_name}: {warning}")
            continue
        if gs.convert is not None:
            value = gs.convert(value)
        spec = option_spec(target)
        assert spec is not None, target
        values[target] = _checked(spec, value, label, raw_name, text=False)
    if hooks:
        values["hooks"] = hooks
    return FileSettings(values, warnings, label)


def load_config_file(spec: str) -> FileSettings:
    """Reads one config file (`-c` value): TOML, pyproject.toml or Python."""
    if spec.startswith("python:"):
        module = spec[len("python:") :]
        return _settings_from_mapping(_exec_python(None, module), spec, python=True)
    path = spec.removeprefix("file:")
    if path.endswith(".toml"):
        if not os.path.isfile(path):
            raise SourceError(path, "config", "no such file")
        data = _read_toml(path)
        if os.path.basename(path) == "pyproject.toml":
            table = _pyproject_table(data)
            if table is None:
                raise SourceError(path, "config", "has no [tool.ferrule] table")
            return _settings_from_mapping(table, f"{path} [tool.ferrule]", python=False)
        return _settings_from_mapping(data, path, python=False)
    return _settings_from_mapping(_exec_python(path, None), path, python=True)


def _auto_config_file() -> str | None:
    for name in AUTO_CONFIG_FILES:
        if not os.path.isfile(name):
            continue
        if name == "pyproject.toml":
            try:
                if _pyproject_table(_read_toml(name)) is None:
                    continue
            except SourceError:
                continue  # not ours to complain about
        return name
    return None


# --- environment ---------------------------------------------------------------------------------


def _platform_defaults(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """gunicorn's platform variables, read as defaults."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    pairs = [("workers", "WEB_CONCURRENCY"), ("forwarded_allow_ips", "FORWARDED_ALLOW_IPS")]
    for name, var in pairs:
        text = environ.get(var, "").strip()
        spec = option_spec(name)
        if not text or spec is None:
            continue
        values[name] = _checked(spec, text, f"environment variable {var}", var, text=True)
        origins[name] = f"environment variable {var}"
    port = environ.get("PORT", "").strip()
    if port:
        spec = option_spec("bind")
        assert spec is not None
        values["bind"] = _checked(
            spec, f"0.0.0.0:{port}", "environment variable PORT", "PORT", text=True
        )
        origins["bind"] = "environment variable PORT"
    return values, origins


def _ferrule_env(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    by_var = {ENV_PREFIX + s.name.upper(): s for s in OPTIONS if s.name != "hooks"}
    for var, text in environ.items():
        if not var.startswith(ENV_PREFIX) or var == CMD_ARGS_VAR:
            continue
        spec = by_var.get(var)
        if spec is None:
            guess = _near_miss(var, sorted(by_var))
            if guess is not None:
                raise SourceError(
                    f"environment variable {var}", var, f"unknown option; did you mean {guess}?"
                )
            continue
        if spec.name == "log_config_dict":
            try:
                value: Any = json.loads(text)
            except ValueError as e:
                raise SourceError(f"environment variable {var}", var, f"bad JSON: {e}") from None
            values[spec.name] = _checked(spec, value, f"environment variable {var}", var, False)
        else:
            values[spec.name] = _checked(spec, text, f"environment variable {var}", var, True)
        origins[spec.name] = f"environment variable {var}"
    return values, origins


def cmd_args(environ: Mapping[str, str]) -> list[str]:
    text = environ.get(CMD_ARGS_VAR, "")
    try:
        return shlex.split(text)
    except ValueError as e:
        raise SourceError(f"environment variable {CMD_ARGS_VAR}", CMD_ARGS_VAR, str(e)) from None


# --- the command line ------------------------------------------------------------------------------


def _given(ns: argparse.Namespace) -> dict[str, Any]:
    return {
        spec.name: getattr(ns, spec.name)
        for spec in OPTIONS
        if getattr(ns, spec.name, None) is not None
    }


def gunicorn_flag_warnings(ns: argparse.Namespace, source: str) -> list[str]:
    """Warnings for gunicorn flags that ferrule accepts but does not use."""
    out = []
    names = _option_names()
    for gs in compat.GUNICORN_SETTINGS:
        if getattr(ns, f"gunicorn_{gs.name}", None) is None:
            continue
        target, warning = compat.resolve(gs, names)
        if target is None:
            flag = next((f for f in gs.flags if f.startswith("--")), gs.flags[0])
            out.append(f"{source}: gunicorn flag {flag}: {warning}")
    return out


def resolve(
    env_ns: argparse.Namespace,
    cli_ns: argparse.Namespace,
    environ: Mapping[str, str],
) -> Resolved:
    """Every source, lowest priority first, into one Config. `env_ns` is FERRULE_CMD_ARGS
    parsed, `cli_ns` the command line parsed."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    checked = [DEFAULTS]
    warnings: list[str] = []

    platform, platform_origins = _platform_defaults(environ)
    checked.append("environment WEB_CONCURRENCY, PORT, FORWARDED_ALLOW_IPS")
    values.update(platform)
    origins.update(platform_origins)

    config_spec = cli_ns.config if cli_ns.config is not None else env_ns.config
    if config_spec is None:
        config_spec = environ.get(ENV_PREFIX + "CONFIG") or _auto_config_file()
    config_file = config_spec or None
    if config_file:
        settings = load_config_file(config_file)
        checked.append(f"config file {settings.label}")
        values.update(settings.values)
        origins.update({k: settings.label for k in settings.values})
        warnings.extend(settings.warnings)
    else:
        checked.append("config file (none)")

    env_values, env_origins = _ferrule_env(environ)
    checked.append(f"environment {ENV_PREFIX}*")
    values.update(env_values)
    origins.update(env_origins)

    for ns, label in ((env_ns, f"environment variable {CMD_ARGS_VAR}"), (cli_ns, COMMAND_LINE)):
        given = _given(ns)
        checked.append(label)
        values.update(given)
        origins.update({k: label for k in given})
        warnings.extend(gunicorn_flag_warnings(ns, label))

    try:
        config = Config(**values)
    except ConfigError as e:  # every value was checked at its source; this is a combination
        raise SourceError(origins.get(e.option, DEFAULTS), e.option, e.message) from None
    return Resolved(config, origins, checked, warnings, config_file)


# --- printing ------------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    return json.dumps(repr(value))


def config_to_toml(resolved: Resolved) -> str:
    """The effective configuration as TOML (loadable as ferrule.toml), each value followed by a
    comment naming its source."""
    lines = [
        "# ferrule: effective configuration",
        "# sources, lowest priority first: " + "; ".join(resolved.checked),
    ]
    for spec in OPTIONS:
        value = getattr(resolved.config, spec.name)
        source = resolved.origins.get(spec.name, DEFAULTS)
        if spec.name == "hooks":
            names = ", ".join(f"{k} ({getattr(v, '__qualname__', v)})" for k, v in value.items())
            lines.append(f"# hooks: {names or 'none'}  # {source}")
            continue
        if value is None:
            lines.append(f"# {spec.name} is not set  # {source}")
            continue
        lines.append(f"{spec.name} = {_toml_value(value)}  # {source}")
    return "\n".join(lines) + "\n"
