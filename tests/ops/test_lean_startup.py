"""A serving process imports nothing it does not need (issue 7: RSS of a hello worker).

Every module a worker imports stays in its memory for its whole life. The ones below cost
megabytes of RSS each (measured with a release build, `python -c 'import X'` against a bare
interpreter, docs/architecture.md "Memory") and serve no request: they may be imported on
demand (`ferrule --version`, `--log-config`), never on the way to serving.
"""

from __future__ import annotations

import pytest

#: Module -> why it must stay out of a serving process (RSS it adds, with what it pulls in).
NOT_IMPORTED = {
    "importlib.metadata": "about 7 MB (email, zipfile, csv, ...): only `ferrule --version`",
    "email": "pulled in by importlib.metadata",
    "zipfile": "pulled in by importlib.metadata",
    "logging.config": "about 4 MB (logging.handlers, socketserver, pickle): only --log-config",
    "logging.handlers": "pulled in by logging.config",
    "socketserver": "pulled in by logging.config",
}


@pytest.mark.parametrize("args", [(), ("--workers", "2")], ids=["single", "workers"])
def test_serving_process_skips_heavy_imports(ferrule_server, args):
    srv = ferrule_server("modules_app:application", *args)
    resp = srv.get("/")
    assert resp.status == 200, resp
    modules = set(resp.body.decode().split("\n"))
    assert "ferrule._ferrule" in modules, "the answer is not the server's module list"
    found = {name: why for name, why in NOT_IMPORTED.items() if name in modules}
    assert not found, f"a serving process imported {found}"
