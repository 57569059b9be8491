"""App for tests/ops/test_boot_timeout.py (`--boot-timeout`): a worker whose import is slow, or
hangs. Serves `workers_app.app` (`ok PID`).

- $BOOT_HANG_ONCE=PATH: an import that finds no file at PATH creates it and hangs for ever (an
  import stuck on a database); the imports after it, finding the file, go on. Exactly one
  import hangs, however many workers boot at once (the file is created with O_EXCL).
- $BOOT_SLEEP=SECS: every import sleeps that long (a slow but healthy boot).
"""

import os
import time

from workers_app import app  # noqa: F401 - the served app


def _hang_forever():
    while True:
        time.sleep(3600)  # HANGS HERE (the test looks for this line in the stack dump)


def _first_to_create(path: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


if os.environ.get("BOOT_HANG_ONCE") and _first_to_create(os.environ["BOOT_HANG_ONCE"]):
    _hang_forever()
time.sleep(float(os.environ.get("BOOT_SLEEP", "0")))
