"""Instructions per request under callgrind: the A/B measure that does not depend on machine load.

Starts `ferrule APP` under `valgrind --tool=callgrind` (with the Python of the venv given by
--python, default benchmarks/.venv), sends --warmup keep-alive requests, zeroes the counters,
sends exactly --requests requests over --connections connections (one in flight each), dumps
the counters and prints Ir/request, then the top functions (inclusive) from callgrind_annotate.
With --atomics, also the atomic read-modify-write instructions per request (`atomics.py`),
which cost far more than their count says.

    benchmarks/.venv/bin/python benchmarks/callgrind.py [--app benchmarks/apps/hello.py] [--atomics]

Method and results: docs/architecture.md "Where the time goes (hello)".
"""

from __future__ import annotations

import argparse
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import atomics

HERE = Path(__file__).resolve().parent
#: The requests --request picks from: a minimal client's, and what a desktop browser sends for a
#: page (12 header fields).
REQUESTS = {
    "curl": b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: callgrind\r\nAccept: */*\r\n\r\n",
    "browser": (
        b"GET /articles/2026/11/ferrule?page=2 HTTP/1.1\r\n"
        b"Host: www.example.com\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0\r\n"
        b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        b"Accept-Language: en-GB,en;q=0.5\r\n"
        b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
        b"Referer: https://www.example.com/articles/2026/11/\r\n"
        b"Connection: keep-alive\r\n"
        b"Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n"
        b"Upgrade-Insecure-Requests: 1\r\n"
        b"Sec-Fetch-Dest: document\r\n"
        b"Sec-Fetch-Mode: navigate\r\n"
        b"Sec-Fetch-Site: same-origin\r\n\r\n"
    ),
}


def drive(port: int, total: int, connections: int, request: bytes) -> None:
    """Sends `total` copies of `request` over `connections` keep-alive connections, one in flight
    each."""
    sel = selectors.DefaultSelector()
    left = total
    for _ in range(min(connections, total)):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.setblocking(False)
        s.sendall(request)
        left -= 1
        sel.register(s, selectors.EVENT_READ, bytearray())
    done = 0
    deadline = time.monotonic() + 600
    while done < total:
        if time.monotonic() > deadline:
            raise SystemExit("callgrind drive: timed out")
        for key, _ in sel.select(timeout=5):
            s, buf = key.fileobj, key.data
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("callgrind drive: server closed a connection")
            buf += chunk
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                m = re.search(rb"(?i)content-length: *(\d+)", bytes(buf[:end]))
                if m is None:
                    raise SystemExit("callgrind drive: response without Content-Length")
                size = end + 4 + int(m.group(1))
                if len(buf) < size:
                    break
                del buf[:size]
                done += 1
                if left > 0:
                    s.sendall(request)
                    left -= 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app", default=str(HERE / "apps" / "hello.py"))
    ap.add_argument("--python", default=str(HERE / ".venv" / "bin" / "python"))
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--keep", help="directory to keep callgrind.out in")
    ap.add_argument(
        "--request", choices=sorted(REQUESTS), default="curl", help="what each request is"
    )
    ap.add_argument(
        "--server", choices=["ferrule", "bjoern"], default="ferrule", help="whose instructions"
    )
    ap.add_argument(
        "--atomics",
        action="store_true",
        help="also count atomic read-modify-write instructions per request (atomics.py)",
    )
    args = ap.parse_args()
    request = REQUESTS[args.request]

    tmp = Path(args.keep or tempfile.mkdtemp(prefix="ferrule-callgrind-"))
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / "callgrind.out"
    log = tmp / "server.log"
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--collect-atstart=yes",
        *(["--dump-instr=yes"] if args.atomics else []),
        # The command re-executes itself as `python -m ferrule.lean` (same pid): follow it.
        "--trace-children=yes",
        args.python,
    ]
    fixed_port = 0
    if args.server == "bjoern":
        # The peer measured the same way (its one thread runs everything): the instruction
        # count ferrule's is compared with.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            fixed_port = s.getsockname()[1]
        cmd += [
            "-c",
            (
                "import bjoern, runpy, sys; bjoern.run("
                "runpy.run_path(sys.argv[1])['application'], '127.0.0.1', int(sys.argv[2]))"
            ),
            args.app,
            str(fixed_port),
        ]
    else:
        cmd += ["-m", "ferrule", "--threads", str(args.threads), "-b", "127.0.0.1:0", args.app]
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
    try:
        port = 0
        deadline = time.monotonic() + 120
        while not port:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start:\n{log.read_text(errors='replace')}")
            if fixed_port:
                try:
                    socket.create_connection(("127.0.0.1", fixed_port), timeout=1).close()
                    port = fixed_port
                except OSError:
                    pass
            else:
                m = re.search(
                    r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace")
                )
                if m:
                    port = int(m.group(1))
            time.sleep(0.2)
        drive(port, args.warmup, args.connections, request)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
        drive(port, args.requests, args.connections, request)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    dumps = sorted(tmp.glob("callgrind.out*"), key=lambda p: p.stat().st_mtime)
    # The dump after zeroing is the one with the most recent part number before the final one.
    parts = [p for p in dumps if re.search(r"\.\d+$", p.name)]
    dump = parts[-1] if parts else dumps[-1]
    text = dump.read_text(errors="replace")
    m = re.search(r"^summary: (\d+)", text, re.MULTILINE) or re.search(
        r"^totals: (\d+)", text, re.MULTILINE
    )
    if m is None:
        raise SystemExit(f"no totals in {dump}")
    total = int(m.group(1))
    print(f"{args.app}: {total / args.requests:,.0f} Ir/request ({dump})")
    ann = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", str(dump)],
        check=False,
        capture_output=True,
        text=True,
    ).stdout
    rows = [line for line in ann.splitlines() if re.match(r"^\s*[\d,]+ \(", line)]
    for line in rows[: args.top]:
        ir = int(line.split()[0].replace(",", ""))
        print(f"{ir / args.requests:10,.0f}  {line.split(None, 2)[-1][:150]}")
    if args.atomics:
        atomics.report(dump, args.requests, args.top)


if __name__ == "__main__":
    sys.exit(main())
