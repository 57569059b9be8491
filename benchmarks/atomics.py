"""Atomic read-modify-write instructions per request, from a callgrind dump made with
`--dump-instr=yes` (`callgrind.py --atomics`).

A `lock`-prefixed instruction (or an `xchg` with memory, locked implicitly) costs about 5 ns on
the benchmark machine against 0.3 ns for the plain instruction (a C loop of 200 million
increments each way), and callgrind counts it as one instruction like any other: two builds
with the same Ir/request can differ by a hundred of these. This counts them: each executed
instruction's address is matched against `objdump -d` of its object.

    benchmarks/.venv/bin/python benchmarks/callgrind.py --atomics [--top N]

Method and results: docs/architecture.md "Where the time goes (hello)", session 8.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

#: `ob=(3) /path`, `fn=(12)`, ... : the name compression of callgrind's format.
NAMED = re.compile(r"^(ob|fn|cob|cfn)=\((\d+)\)(?: (.*))?$")
#: An instruction of objdump's listing: address, then the mnemonic and operands.
LISTED = re.compile(r"^\s*([0-9a-f]+):\s+(.*)$")


def locked_addresses(obj: str) -> set[int]:
    """Addresses of the atomic read-modify-write instructions in `obj`."""
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", obj], check=True, capture_output=True, text=True
    ).stdout
    found = set()
    for line in listing.splitlines():
        m = LISTED.match(line)
        if m is None:
            continue
        insn = m.group(2)
        if insn.startswith("lock ") or (insn.startswith("xchg") and "(" in insn):
            found.add(int(m.group(1), 16))
    return found


def position(token: str, previous: int) -> int:
    """One position of a cost line: absolute (`0x1a2b`), relative (`+3`, `-0x10`) or `*`."""
    if token == "*":
        return previous
    if token[0] in "+-":
        sign = -1 if token[0] == "-" else 1
        return previous + sign * int(token[1:], 0)
    return int(token, 0)


def executed(dump: Path) -> Counter[tuple[str, str, int]]:
    """Self cost (Ir) per (object, function, instruction address) of a `--dump-instr` dump."""
    names: dict[str, dict[str, str]] = {"ob": {}, "fn": {}}
    obj = fn = ""
    addr = 0
    after_call = False
    cost: Counter[tuple[str, str, int]] = Counter()
    with dump.open(errors="replace") as f:
        for line in f:
            m = NAMED.match(line.rstrip("\n"))
            if m:
                kind, ident, name = m.groups()
                table = names["ob" if kind.endswith("ob") else "fn"]
                if name:
                    table[ident] = name
                if kind == "ob":
                    obj = table.get(ident, ident)
                elif kind == "fn":
                    fn = table.get(ident, ident)
                continue
            if line.startswith("calls="):
                # The next cost line is the call's inclusive cost, not this function's own.
                after_call = True
                continue
            if not line[:1].isdigit() and line[:1] not in "+-*":
                continue
            fields = line.split()
            addr = position(fields[0], addr)
            if after_call:
                after_call = False
                continue
            if len(fields) >= 3:
                cost[(obj, fn, addr)] += int(fields[2])
    return cost


def report(dump: Path, requests: int, top: int) -> None:
    """Prints atomic instructions per request, by object, then the `top` functions."""
    cost = executed(dump)
    by_object: Counter[str] = Counter()
    by_function: Counter[tuple[str, str]] = Counter()
    for obj in {o for o, _, _ in cost if o.startswith("/")}:
        locked = locked_addresses(obj)
        for (o, fn, addr), n in cost.items():
            if o == obj and addr in locked:
                by_object[Path(obj).name] += n
                by_function[(Path(obj).name, fn)] += n
    total = sum(by_object.values())
    print(f"{total / requests:.1f} atomic instructions/request")
    for name, n in by_object.most_common():
        print(f"{n / requests:10.1f}  {name}")
    for (name, fn), n in by_function.most_common(top):
        print(f"{n / requests:10.2f}  {name[:20]:20}  {fn[:120]}")
