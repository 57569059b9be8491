"""ferrule.loader: every APP form and every way loading can fail, with tiny modules on disk."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ferrule import cli
from ferrule.loader import AppLoadError, load_app, parse_app_spec

APP_SOURCE = """
def {name}(environ, start_response):
    start_response("200 OK", [])
    return [b"{tag}"]
"""


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def app_source(name: str = "application", tag: str = "ok") -> str:
    return APP_SOURCE.format(name=name, tag=tag)


def tag_of(app) -> bytes:
    return b"".join(app({}, lambda status, headers: None))


@pytest.fixture
def tmp(isolated_import_state):
    return isolated_import_state


def load_error(spec: str, **kwargs) -> AppLoadError:
    with pytest.raises(AppLoadError) as exc:
        load_app(spec, **kwargs)
    return exc.value


# --- the forms ----------------------------------------------------------------------------------


def test_module_colon_attr(tmp):
    write(tmp / "fmod1.py", app_source("web", "web"))
    assert tag_of(load_app("fmod1:web")) == b"web"


def test_package_module_colon_attr(tmp):
    write(tmp / "fpkg2" / "__init__.py", "")
    write(tmp / "fpkg2" / "wsgi.py", app_source("application", "pkg"))
    assert tag_of(load_app("fpkg2.wsgi:application")) == b"pkg"


def test_module_alone_prefers_application_then_app(tmp):
    write(tmp / "fmod3a.py", app_source("application", "a") + app_source("app", "b"))
    write(tmp / "fmod3b.py", app_source("app", "b"))
    assert tag_of(load_app("fmod3a")) == b"a"
    assert tag_of(load_app("fmod3b")) == b"b"


def test_dotted_attribute_path(tmp):
    write(
        tmp / "fmod4.py",
        app_source("handler", "dotted") + "\nclass holder:\n    pass\nholder.inner = handler\n",
    )
    assert tag_of(load_app("fmod4:holder.inner")) == b"dotted"


def test_py_file_path_defines_application(tmp):
    write(tmp / "site4" / "helper5.py", "TAG = 'helped'\n")
    write(
        tmp / "site4" / "fapp5.py",
        "import helper5\n" + app_source("application", "file"),
    )
    app = load_app("site4/fapp5.py")
    assert tag_of(app) == b"file"
    assert str(tmp / "site4") == sys.path[0]  # the file's directory goes first on sys.path


def test_wsgi_file_path(tmp):
    write(tmp / "deploy" / "site.wsgi", app_source("application", "wsgi"))
    assert tag_of(load_app(str(tmp / "deploy" / "site.wsgi"))) == b"wsgi"


def test_dotted_wsgi_name_is_a_file_when_one_exists(tmp):
    write(tmp / "fsite23.wsgi", app_source("application", "plainfile"))
    assert tag_of(load_app("fsite23.wsgi")) == b"plainfile"


def test_file_path_with_attribute(tmp):
    write(tmp / "fapp6.py", app_source("other", "other"))
    assert tag_of(load_app("./fapp6.py:other")) == b"other"


def test_factory_with_literal_arguments(tmp):
    write(
        tmp / "fmod7.py",
        """
        seen = []
        def create(*args, **kwargs):
            seen.append((args, kwargs))
            def application(environ, start_response):
                start_response("200 OK", [])
                return [b"made"]
            return application
        class ns:
            create = staticmethod(create)
        """,
    )
    app = load_app("fmod7:create('x', 2, [1, (2, 3)], debug=True, opts={'a': None})")
    assert tag_of(app) == b"made"
    load_app("fmod7:ns.create()")
    import fmod7  # type: ignore[import-not-found]

    assert fmod7.seen == [
        (("x", 2, [1, (2, 3)]), {"debug": True, "opts": {"a": None}}),
        ((), {}),
    ]


def test_chdir_then_load_relative_module(tmp):
    write(tmp / "proj" / "fmod8.py", app_source("application", "chdir"))
    assert tag_of(load_app("fmod8", chdir=str(tmp / "proj"))) == b"chdir"
    assert os.getcwd() == str(tmp / "proj")
    assert sys.path[0] == str(tmp / "proj")


def test_pythonpath_entries_go_first_in_order(tmp):
    write(tmp / "lib1" / "fmod9.py", app_source("application", "one"))
    write(tmp / "lib2" / "fmod9.py", app_source("application", "two"))
    assert tag_of(load_app("fmod9", pythonpath=["lib1", "lib2"])) == b"one"
    assert sys.path[:3] == [str(tmp / "lib1"), str(tmp / "lib2"), str(tmp)]


# --- the errors ---------------------------------------------------------------------------------


def test_missing_module(tmp):
    err = load_error("no_such_module_x")
    assert "no module named 'no_such_module_x'" in str(err)
    assert not err.show_traceback


def test_missing_parent_package(tmp):
    err = load_error("no_such_pkg_y.wsgi:application")
    assert "'no_such_pkg_y'" in str(err)
    assert not err.show_traceback


def test_module_not_found_inside_the_app_is_an_import_time_error(tmp):
    write(tmp / "fmod10.py", "import not_installed_dependency_z\n" + app_source())
    err = load_error("fmod10:application")
    assert err.show_traceback
    assert isinstance(err.__cause__, ModuleNotFoundError)
    assert "importing 'fmod10'" in str(err)
    assert "not_installed_dependency_z" in str(err)


def test_exception_at_import_time(tmp):
    write(tmp / "fmod11.py", "raise RuntimeError('database is down')\n")
    err = load_error("fmod11")
    assert err.show_traceback
    assert isinstance(err.__cause__, RuntimeError)
    assert "importing 'fmod11' raised RuntimeError: database is down" == str(err)
    assert "fmod11" not in sys.modules


def test_syntax_error_at_import_time(tmp):
    write(tmp / "fmod12.py", "def broken(:\n")
    err = load_error("fmod12")
    assert err.show_traceback and isinstance(err.__cause__, SyntaxError)


def test_sys_exit_at_import_time(tmp):
    write(tmp / "fmod13.py", "import sys\nsys.exit(3)\n")
    err = load_error("fmod13")
    assert err.show_traceback and isinstance(err.__cause__, SystemExit)


def test_missing_attribute(tmp):
    write(tmp / "fmod14.py", "class obj:\n    pass\n")
    assert str(load_error("fmod14:nope")) == "module 'fmod14' has no attribute 'nope'"
    assert str(load_error("fmod14:obj.nope")) == "'fmod14:obj' has no attribute 'nope'"


def test_module_without_default_names(tmp):
    write(tmp / "fmod15.py", "x = 1\n")
    msg = str(load_error("fmod15"))
    assert "module 'fmod15'" in msg and "'application'" in msg and "'app'" in msg


def test_not_callable(tmp):
    write(tmp / "fmod16.py", "application = 42\n")
    assert str(load_error("fmod16")) == "fmod16:application is not callable: it is a int"


def test_file_not_found(tmp):
    assert str(load_error("missing/site.wsgi")) == "no such app file: 'missing/site.wsgi'"


def test_missing_dotted_wsgi_names_both_readings(tmp):
    assert str(load_error("nosite24.wsgi")) == (
        "no module named 'nosite24' (from app 'nosite24.wsgi'), and there is no file 'nosite24.wsgi'"
    )


def test_file_without_application(tmp):
    write(tmp / "fapp17.py", "app = None\n")
    assert "has no attribute 'application'" in str(load_error("fapp17.py"))


def test_file_raising_at_import(tmp):
    write(tmp / "fapp18.wsgi", "1 / 0\n")
    err = load_error("fapp18.wsgi")
    assert err.show_traceback and isinstance(err.__cause__, ZeroDivisionError)
    assert "fapp18.wsgi" in str(err)


def test_factory_raising(tmp):
    write(tmp / "fmod19.py", "def create():\n    raise ValueError('no config')\n")
    err = load_error("fmod19:create()")
    assert err.show_traceback
    assert str(err) == "calling factory fmod19:create(...) raised ValueError: no config"


def test_factory_returning_non_callable(tmp):
    write(tmp / "fmod20.py", "def create():\n    return 'nope'\n")
    assert "returned a str, not a WSGI callable" in str(load_error("fmod20:create()"))


def test_bad_chdir(tmp):
    msg = str(load_error("x", chdir=str(tmp / "nowhere")))
    assert "nowhere" in msg and "--chdir" in msg


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("m:create(os.getcwd())", "only Python literals"),
        ("m:create(__import__('os'))", "only Python literals"),
        ("m:create(*args)", "*args is not allowed"),
        ("m:create(**kw)", "**kwargs is not allowed"),
        ("m:create(", "bad app object"),
        ("m:1 + 2", "bad app object"),
        ("m:f()()", "bad app object"),
        ("m:", "object part after ':' is empty"),
        (":app", "module part before ':' is empty"),
        ("my-module:app", "not a module name or a file path"),
        ("", "no app given"),
    ],
)
def test_bad_spec_syntax(spec, fragment):
    with pytest.raises(AppLoadError, match=None) as exc:
        parse_app_spec(spec)
    assert fragment in str(exc.value)
    assert not exc.value.show_traceback


# --- the command's behaviour on load errors -----------------------------------------------------


def test_cli_missing_module_prints_one_line(tmp, capsys):
    assert cli.main(["no_such_module_w:app"]) == 1
    captured = capsys.readouterr()
    assert (
        captured.err == "Error: no module named 'no_such_module_w' (from app 'no_such_module_w')\n"
    )


def test_cli_import_time_exception_prints_traceback_then_one_line(tmp, capsys):
    write(tmp / "fmod21.py", "def boom():\n    raise KeyError('secret')\nboom()\n")
    assert cli.main(["fmod21"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "in boom" in err
    lines = err.rstrip("\n").split("\n")
    assert lines[-1] == "Error: importing 'fmod21' raised KeyError: 'secret'"
    assert sum(line.startswith("Error:") for line in lines) == 1


def test_cli_check_config_loads_and_exits_zero(tmp, capsys):
    write(tmp / "fmod22.py", app_source())
    assert cli.main(["--check-config", "--threads", "2", "fmod22"]) == 0
    assert "fmod22" in capsys.readouterr().out


def test_python_dash_m_ferrule_reports_load_errors(tmp):
    import ferrule

    env = dict(os.environ, PYTHONPATH=str(Path(ferrule.__file__).parents[1]))
    proc = subprocess.run(
        [sys.executable, "-m", "ferrule", "--bind", "127.0.0.1:0", "nowhere_v/site.wsgi"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr == "Error: no such app file: 'nowhere_v/site.wsgi'\n"
    assert "panic" not in proc.stderr
