"""The type stub `python/ferrule/_ferrule.pyi` matches the built extension (STYLE habit 7).

`mypy.stubtest` imports `ferrule._ferrule` and compares every class, method, signature and
`__all__` with the stub; any drift (a new method without a stub, a changed parameter) fails here,
so `make test` catches it as well as `make lint`.
"""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(180)


def test_stub_matches_extension() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "ferrule._ferrule"],
        check=False,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
