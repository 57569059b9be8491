"""Sends every request in tests/requests/{valid,invalid}/ whole, byte by byte and in random
fragments, and checks the environ the app saw (valid) or the status, the close, and that the app
was never called (invalid). The format is described in README.md beside this file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.rawhttp import build_request

HERE = Path(__file__).parent
APP = "corpus_app:application"
#: Matches the 4096-byte limit the corpus's 413 cases are written against.
SERVER_ARGS = ("--limit-request-body", "4096")
MODES = ["whole", "bytes", "fragments"]


def corpus(kind: str) -> list[Path]:
    files = sorted((HERE / kind).glob("*.http"))
    assert files, f"no corpus files in {HERE / kind}"
    return files


def load(path: Path) -> tuple[bytes, dict]:
    return path.read_bytes(), json.loads(path.with_suffix(".expect.json").read_text())


def app_calls(srv) -> int:
    resp = srv.get("/__corpus/calls")
    assert resp.status == 200, resp
    return resp.json()["calls"]


@pytest.fixture
def srv(shared_server):
    return shared_server(APP, *SERVER_ARGS)


def test_corpus_files_are_paired():
    for kind in ("valid", "invalid"):
        for path in corpus(kind):
            assert path.with_suffix(".expect.json").is_file(), f"{path.name} has no expect.json"
        for exp in (HERE / kind).glob("*.expect.json"):
            assert exp.with_name(exp.name.replace(".expect.json", ".http")).is_file(), exp


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", corpus("valid"), ids=lambda p: p.stem)
def test_valid(srv, path, mode):
    data, expect = load(path)
    with srv.client() as c:
        c.send(data, mode, seed=path.name)
        for i, want in enumerate(expect["responses"]):
            resp = c.read_response()
            assert resp.status == want["status"], f"response {i}: {resp!r}"
            got = resp.json()
            env = got["environ"]
            for key, value in want["environ"].items():
                assert key in env, f"response {i}: {key} missing; environ keys: {sorted(env)}"
                assert env[key]["value"] == value, f"response {i}: {key}"
            for key in want.get("absent", []):
                assert key not in env, f"response {i}: {key} must be absent, is {env[key]!r}"
            assert (got["body_len"], got["body_sha256"]) == (
                want["body_length"],
                want["body_sha256"],
            ), f"response {i}: body the app read"
        if expect["then"] == "closed":
            c.expect_closed()
        else:
            c.send(build_request("GET", "/__corpus/calls"))
            assert c.read_response().status == 200


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", corpus("invalid"), ids=lambda p: p.stem)
def test_invalid(srv, path, mode):
    data, expect = load(path)
    allowed = expect["status"] if isinstance(expect["status"], list) else [expect["status"]]
    before = app_calls(srv)
    with srv.client() as c:
        c.send(data, mode, seed=path.name, stop_on_reply=True)
        resp = c.read_response()
        assert resp.status in allowed, resp
        c.expect_closed()
    assert app_calls(srv) == before, "the app was called for an invalid request"
