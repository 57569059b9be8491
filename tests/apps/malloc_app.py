"""Allocates and frees a request-sized buffer twice in the app thread and answers with the page
faults the second one took (tests/ops/test_malloc_trim.py). With glibc's defaults the freed
buffer's memory goes back to the kernel and the second one faults every page in again; with
ferrule's thresholds (crates/ferrule-core/src/server/malloc_trim.rs) it is reused."""

import resource

#: Above glibc's default mmap threshold (128 KiB), below ferrule's (1 MiB).
SIZE = 300 * 1024


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def application(environ, start_response):
    warm = b"x" * SIZE  # written through: every page touched
    del warm
    before = _faults()
    again = b"y" * SIZE
    after = _faults()
    del again
    body = str(after - before).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
