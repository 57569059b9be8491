"""Unit tests of the pure-Python modules (config, loader): no server, no compiled extension.

They import the installed `ferrule` package; when it was never installed (a fresh clone before
`make build`), they fall back to the source tree, which these modules need nothing else from.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

if importlib.util.find_spec("ferrule") is None:
    sys.path.insert(0, str(ROOT / "python"))


@pytest.fixture
def isolated_import_state(tmp_path, monkeypatch):
    """Restores sys.path, sys.modules and the working directory after a loader test, and runs
    it inside an empty temporary directory."""
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    saved_cwd = os.getcwd()
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    os.chdir(saved_cwd)
    sys.path[:] = saved_path
    for name in set(sys.modules) - saved_modules:
        del sys.modules[name]
    importlib.invalidate_caches()
