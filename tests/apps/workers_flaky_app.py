"""Like workers_app, but fails to import once the file named by $FLAKY_FLAG exists: a deploy
whose new code is broken (tests/ops/test_handover.py, USR2)."""

import os

from workers_app import app  # noqa: F401 - the served app

if os.path.exists(os.environ.get("FLAKY_FLAG", "/nonexistent")):
    raise RuntimeError("workers_flaky_app: the new code is broken")
