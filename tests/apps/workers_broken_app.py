"""An app module that fails at import time (tests/ops/test_workers.py: boot failure)."""

raise RuntimeError("workers_broken_app refuses to load")
