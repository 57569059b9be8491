"""glibc's trim and mmap thresholds in the serving process (issue 7: the `echo` benchmark spent
half its CPU re-faulting the pages of each request's body; see
crates/ferrule-core/src/server/malloc_trim.rs). The app allocates a 300 KiB buffer, frees it,
allocates another, and reports the page faults of the second."""

from __future__ import annotations

import pytest

#: Pages in the app's buffer: what the second allocation faults in when the first one's memory
#: was given back to the kernel.
BUFFER_PAGES = 300 * 1024 // 4096


def _faults(srv) -> int:
    resp = srv.get("/")
    assert resp.status == 200, resp
    return int(resp.body)


@pytest.mark.parametrize("args", [(), ("--workers", "2")], ids=["single", "workers"])
def test_a_freed_request_buffer_is_reused(ferrule_server, args):
    srv = ferrule_server("malloc_app:application", *args)
    faults = [_faults(srv) for _ in range(5)]
    assert max(faults) < BUFFER_PAGES // 4, faults


def test_the_operators_malloc_settings_win(ferrule_server):
    # glibc's own default thresholds, set explicitly: ferrule must not override them.
    env = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    srv = ferrule_server("malloc_app:application", env=env)
    faults = [_faults(srv) for _ in range(5)]
    assert min(faults) >= BUFFER_PAGES // 2, faults
