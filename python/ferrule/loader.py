"""Finding the WSGI application named on the command line.

APP forms (PEP 3333 only asks for "a callable"; these follow gunicorn and mod_wsgi):

- ``pkg.mod:name`` or ``pkg.mod:obj.attr``: import the module, follow the attribute path;
- ``pkg.mod``: the module's ``application``, else its ``app``;
- ``path/to/site.wsgi``, ``path/to/app.py`` (or any spec containing ``/``): the file is executed
  as a module, mod_wsgi style, and must define ``application`` (``file.py:name`` picks another
  name); the file's directory goes first on ``sys.path``. ``name.wsgi`` without a ``/`` is a file
  only if one exists, else the module (Django's ``myproject.wsgi``);
- ``pkg.mod:factory(args)``: call the factory with Python *literal* arguments, parsed with
  ``ast`` and ``ast.literal_eval`` (no names, calls or expressions are evaluated).

Before loading, ``prepare_sys_path`` changes to ``--chdir``, puts the ``--pythonpath`` entries and
the working directory first on ``sys.path`` (like gunicorn). Every failure is an `AppLoadError`
whose message names the module, attribute or file; when the app's own code raised, the original
exception is its ``__cause__`` and ``show_traceback`` is true.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import keyword
import os
import sys

# This module is imported by the process that serves: `ast` (for factory calls) is imported only
# when APP has one, and `typing` not at all (see `ferrule.lean`).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ast
    from collections.abc import Sequence
    from types import ModuleType
    from typing import Any, Callable

__all__ = ["AppLoadError", "load_app", "parse_app_spec", "prepare_sys_path", "wrap_middleware"]

#: Attribute names tried, in order, when APP names only a module.
DEFAULT_APP_NAMES = ("application", "app")
#: The attribute a mod_wsgi-style file must define.
FILE_APP_NAME = "application"
#: File suffixes that mark APP as a path rather than a module name.
FILE_SUFFIXES = (".py", ".wsgi")


class AppLoadError(Exception):
    """The app could not be loaded. The message names what was missing or failed.

    ``show_traceback`` is true when the app's own code raised (the exception is ``__cause__``):
    the CLI prints that traceback before the one-line error.
    """

    def __init__(self, message: str, *, show_traceback: bool = False) -> None:
        super().__init__(message)
        self.show_traceback = show_traceback


class AppSpec:
    """A parsed APP string: where the module comes from, the attribute path, factory arguments."""

    def __init__(
        self,
        module: str,
        is_file: bool,
        attrs: tuple[str, ...] | None,
        call: tuple[tuple[Any, ...], dict] | None,
    ) -> None:
        self.module = module  # a dotted module name, or a file path when is_file
        self.is_file = is_file
        self.attrs = attrs  # None: use the defaults
        self.call = call  # (args, kwargs) for a factory, or None

    def __repr__(self) -> str:
        return (
            f"AppSpec(module={self.module!r}, is_file={self.is_file}, attrs={self.attrs!r}, "
            f"call={self.call!r})"
        )


def _is_module_name(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _looks_like_file(module: str) -> bool:
    """A path for sure: contains '/', ends with .py, or ends with .wsgi without being a dotted
    name. `myproject.wsgi` (Django's module) stays ambiguous: see `_is_file_at_load`."""
    if "/" in module or module.endswith(".py"):
        return True
    return module.endswith(".wsgi") and not _is_module_name(module)


def _is_file_at_load(spec: AppSpec) -> bool:
    """`name.wsgi` is a file when such a file exists (after --chdir), else the module."""
    return spec.is_file or (spec.module.endswith(".wsgi") and os.path.isfile(spec.module))


def _attr_path(node: ast.expr, text: str) -> tuple[str, ...]:
    """`a.b.c` as ('a', 'b', 'c'); anything else is an error."""
    import ast

    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise AppLoadError(f"bad app object {text!r}: expected NAME, NAME.ATTR or NAME(ARGS)")
    parts.append(node.id)
    return tuple(reversed(parts))


def _literal(node: ast.expr, text: str) -> Any:
    import ast

    try:
        return ast.literal_eval(node)
    except ValueError:
        raise AppLoadError(
            f"bad factory arguments in {text!r}: only Python literals are allowed "
            f"(strings, numbers, True/False/None, tuples, lists, dicts, sets)"
        ) from None


def _parse_object(text: str) -> tuple[tuple[str, ...], tuple[tuple[Any, ...], dict] | None]:
    names = text.strip().split(".")
    if all(name.isidentifier() and not keyword.iskeyword(name) for name in names):
        return tuple(names), None  # NAME or NAME.ATTR: no need to parse
    import ast

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise AppLoadError(
            f"bad app object {text!r}: expected NAME, NAME.ATTR or NAME(ARGS)"
        ) from None
    body = tree.body
    if not isinstance(body, ast.Call):
        return _attr_path(body, text), None
    attrs = _attr_path(body.func, text)
    args = []
    for arg in body.args:
        if isinstance(arg, ast.Starred):
            raise AppLoadError(f"bad factory arguments in {text!r}: *args is not allowed")
        args.append(_literal(arg, text))
    kwargs = {}
    for kw in body.keywords:
        if kw.arg is None:
            raise AppLoadError(f"bad factory arguments in {text!r}: **kwargs is not allowed")
        kwargs[kw.arg] = _literal(kw.value, text)
    return attrs, (tuple(args), kwargs)


def parse_app_spec(spec: str) -> AppSpec:
    """Splits APP into module (or file) and object; checks the syntax, imports nothing."""
    if not spec or not spec.strip():
        raise AppLoadError("no app given")
    module, sep, obj = spec.partition(":")
    module = module.strip()
    if not module:
        raise AppLoadError(f"bad app {spec!r}: the module part before ':' is empty")
    if sep and not obj.strip():
        raise AppLoadError(f"bad app {spec!r}: the object part after ':' is empty")
    is_file = _looks_like_file(module)
    if not is_file and not _is_module_name(module):
        raise AppLoadError(f"bad app {spec!r}: {module!r} is not a module name or a file path")
    if not sep:
        return AppSpec(module, is_file, None, None)
    attrs, call = _parse_object(obj)
    return AppSpec(module, is_file, attrs, call)


def prepare_sys_path(chdir: str | None = None, pythonpath: Sequence[str] = ()) -> None:
    """Applies --chdir, then puts the --pythonpath entries (in the given order) and the working
    directory first on sys.path, as gunicorn does."""
    if chdir is not None:
        try:
            os.chdir(chdir)
        except OSError as e:
            raise AppLoadError(
                f"cannot change directory to {chdir!r} (--chdir): {e.strerror}"
            ) from None
    cwd = os.getcwd()
    front = [os.path.abspath(p) for p in pythonpath] + [cwd]
    for path in reversed(front):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        # Only "the module APP names (or a parent package) does not exist" is ours to report;
        # a ModuleNotFoundError from inside the app's own imports is the app failing to import.
        if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
            raise AppLoadError(f"no module named {e.name!r} (from app {name!r})") from None
        raise AppLoadError(
            f"importing {name!r} raised {type(e).__name__}: {e}", show_traceback=True
        ) from e
    except (Exception, SystemExit) as e:
        raise AppLoadError(
            f"importing {name!r} raised {type(e).__name__}: {e}", show_traceback=True
        ) from e


def _file_module_name(path: str) -> str:
    """The sys.modules name for an app file: its stem when free, else a private name."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem.isidentifier() and stem not in sys.modules:
        return stem
    base = "_ferrule_wsgi_" + "".join(c if c.isalnum() else "_" for c in stem)
    name, n = base, 1
    while name in sys.modules:
        n += 1
        name = f"{base}_{n}"
    return name


def _load_file(path: str) -> ModuleType:
    if not os.path.isfile(path):
        raise AppLoadError(f"no such app file: {path!r}")
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    if directory in sys.path:
        sys.path.remove(directory)
    sys.path.insert(0, directory)
    name = _file_module_name(path)
    # A .wsgi suffix is unknown to importlib, so name the source loader explicitly.
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None:  # pragma: no cover - only for paths importlib cannot describe
        raise AppLoadError(f"cannot load app file {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except (Exception, SystemExit) as e:
        sys.modules.pop(name, None)
        raise AppLoadError(
            f"executing {path!r} raised {type(e).__name__}: {e}", show_traceback=True
        ) from e
    return module


def _resolve(module: ModuleType, where: str, name: str, attrs: tuple[str, ...]) -> Any:
    """Follows `attrs` from the module; `where` describes the module, `name` is its APP part."""
    obj: Any = module
    for i, attr in enumerate(attrs):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            owner = where if i == 0 else repr(f"{name}:{'.'.join(attrs[:i])}")
            raise AppLoadError(f"{owner} has no attribute {attr!r}") from None
        except Exception as e:  # a property or module __getattr__ of the app raising
            raise AppLoadError(
                f"getting {name}:{'.'.join(attrs[: i + 1])} raised {type(e).__name__}: {e}",
                show_traceback=True,
            ) from e
    return obj


def load_app(
    spec: str, *, chdir: str | None = None, pythonpath: Sequence[str] = ()
) -> Callable[..., Any]:
    """Loads the WSGI callable APP names. Raises AppLoadError naming what failed."""
    parsed = parse_app_spec(spec)
    prepare_sys_path(chdir, pythonpath)
    if _is_file_at_load(parsed):
        module = _load_file(parsed.module)
        where = f"app file {parsed.module!r}"
        attrs = parsed.attrs or (FILE_APP_NAME,)
    else:
        try:
            module = _import_module(parsed.module)
        except AppLoadError as e:
            if e.show_traceback or not parsed.module.endswith(FILE_SUFFIXES):
                raise
            raise AppLoadError(f"{e}, and there is no file {parsed.module!r}") from None
        where = f"module {parsed.module!r}"
        if parsed.attrs is None:
            found = [n for n in DEFAULT_APP_NAMES if hasattr(module, n)]
            if not found:
                names = " or ".join(repr(n) for n in DEFAULT_APP_NAMES)
                raise AppLoadError(f"{where} has no attribute {names}; name one as MODULE:NAME")
            attrs = (found[0],)
        else:
            attrs = parsed.attrs
    obj = _resolve(module, where, parsed.module, attrs)
    label = f"{parsed.module}:{'.'.join(attrs)}"
    if parsed.call is not None:
        if not callable(obj):
            raise AppLoadError(f"factory {label} is not callable ({type(obj).__name__})")
        args, kwargs = parsed.call
        try:
            obj = obj(*args, **kwargs)
        except (Exception, SystemExit) as e:
            raise AppLoadError(
                f"calling factory {label}(...) raised {type(e).__name__}: {e}",
                show_traceback=True,
            ) from e
        if not callable(obj):
            raise AppLoadError(
                f"factory {label}(...) returned a {type(obj).__name__}, not a WSGI callable"
            )
        return obj  # type: ignore[no-any-return]
    if not callable(obj):
        raise AppLoadError(f"{label} is not callable: it is a {type(obj).__name__}")
    return obj  # type: ignore[no-any-return]


def wrap_middleware(app: Callable[..., Any], specs: Sequence[str]) -> Callable[..., Any]:
    """Wraps `app` in each `--middleware` in order, the WSGI way: ``app = factory(app)``.

    A spec is ``pkg.module:factory`` (or a file path, as for APP) found with the APP rules;
    ``pkg.module:factory(key="value")`` passes literal arguments after the app. The first spec
    wraps the app first (it is the innermost). Errors are `AppLoadError`s naming the middleware.
    """
    for spec in specs:
        try:
            parsed = parse_app_spec(spec)
        except AppLoadError as e:
            raise AppLoadError(f"middleware {spec!r}: {e}") from None
        if parsed.attrs is None:
            raise AppLoadError(f"middleware {spec!r}: name the factory as MODULE:FACTORY")
        try:
            if _is_file_at_load(parsed):
                module = _load_file(parsed.module)
                where = f"file {parsed.module!r}"
            else:
                module = _import_module(parsed.module)
                where = f"module {parsed.module!r}"
            factory = _resolve(module, where, parsed.module, parsed.attrs)
        except AppLoadError as e:
            raise AppLoadError(
                f"middleware {spec!r}: {e}", show_traceback=e.show_traceback
            ) from e.__cause__
        if not callable(factory):
            raise AppLoadError(
                f"middleware {spec!r}: {'.'.join(parsed.attrs)} is not callable "
                f"({type(factory).__name__})"
            )
        args, kwargs = parsed.call if parsed.call is not None else ((), {})
        try:
            wrapped = factory(app, *args, **kwargs)
        except (Exception, SystemExit) as e:
            raise AppLoadError(
                f"middleware {spec!r}: calling it raised {type(e).__name__}: {e}",
                show_traceback=True,
            ) from e
        if not callable(wrapped):
            raise AppLoadError(
                f"middleware {spec!r} returned a {type(wrapped).__name__}, not a WSGI callable"
            )
        app = wrapped
    return app
