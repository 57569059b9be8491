"""Snapshot of `ferrule --help` (tests/unit/snapshots/help.txt).

The help text is user-facing: a change to it must be deliberate. After changing an option,
regenerate the snapshot and review the diff:

    UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/unit/test_help_snapshot.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).parent / "snapshots" / "help.txt"


def _help() -> str:
    # A fixed width, so the wrapping does not depend on the terminal running the tests.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRULE_")}
    env["COLUMNS"] = "100"
    proc = subprocess.run(
        [sys.executable, "-m", "ferrule", "--help"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.replace("python -m ferrule", "ferrule")


def test_help_matches_the_snapshot():
    text = _help()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(text, encoding="utf-8")
    expected = SNAPSHOT.read_text(encoding="utf-8")
    assert text == expected, (
        "`ferrule --help` changed; review and regenerate: "
        "UPDATE_SNAPSHOTS=1 pytest tests/unit/test_help_snapshot.py"
    )
