"""docs/migrating.md: the gunicorn table is the one generated from ferrule.compat, and the
compat table agrees with ferrule's options."""

from __future__ import annotations

import re
from pathlib import Path

from ferrule import compat
from ferrule.cli import build_parser
from ferrule.config import OPTIONS, option_flags

ROOT = Path(__file__).resolve().parents[2]
NAMES = [o.name for o in OPTIONS] + ["config", "check_config", "print_config"]


def test_gunicorn_table_is_current():
    doc = (ROOT / "docs" / "migrating.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- gunicorn:start -->\n(.*?)<!-- gunicorn:end -->", doc, re.DOTALL)
    assert m, "docs/migrating.md lacks the <!-- gunicorn:start/end --> block"
    assert m.group(1) == compat.markdown_table(NAMES, option_flags), (
        "the gunicorn table is stale: regenerate it with `python -m ferrule.compat`"
    )


def test_mapped_settings_keep_gunicorns_flags():
    """A gunicorn setting ferrule implements answers to gunicorn's flags."""
    parser_flags = set(build_parser()._option_string_actions)
    for s in compat.GUNICORN_SETTINGS:
        target, _ = compat.resolve(s, NAMES)
        assert set(s.flags) <= parser_flags, s.name
        if target is not None and target in {o.name for o in OPTIONS}:
            assert set(s.flags) <= set(option_flags(target)), (s.name, target)


def test_every_setting_has_one_fate():
    for s in compat.GUNICORN_SETTINGS:
        assert (s.target is not None) or (s.instead is not None), s.name
        assert not (s.instead and s.target), s.name
        if s.planned is None and s.target is not None:
            assert s.target in NAMES + ["app"], f"{s.name} maps to unknown option {s.target}"
    names = [s.name for s in compat.GUNICORN_SETTINGS]
    assert len(names) == len(set(names))
