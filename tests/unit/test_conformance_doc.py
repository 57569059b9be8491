"""docs/conformance.md cannot rot: every test, corpus file and Rust test it names must exist, and
every rule row must name at least one proof or point to a deviation.

References are the backticked spans of the page's sections:
- `tests/DIR/FILE.py::test_name` (optionally `[param]`): FILE exists and defines `test_name`
  (module level or in a class), found by reading the file, not by importing it;
- `tests/requests/{valid,invalid}/NAME.http`: the file and its `.expect.json` exist;
- `crates/CRATE/.../FILE.rs::name`: FILE exists and contains `fn name(`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "conformance.md"

SPAN_RE = re.compile(r"`([^`]+)`")
PY_REF_RE = re.compile(r"^(tests/[\w/]+\.py)::(\w+)(\[[^\]]*\])?$")
CORPUS_REF_RE = re.compile(r"^tests/requests/(valid|invalid)/[\w.-]+\.http$")
RUST_REF_RE = re.compile(r"^(crates/[\w/-]+\.rs)::(\w+)$")
#: A backticked span that looks like a proof reference but matches none of the forms above.
LOOKS_LIKE_REF_RE = re.compile(r"^(tests|crates)/")


def doc_text() -> str:
    """The page from its first section on (the introduction describes the reference forms with
    placeholder paths)."""
    text = DOC.read_text(encoding="utf-8")
    return text[text.index("\n## ") :]


def references(text: str) -> list[str]:
    return [s for s in SPAN_RE.findall(text) if LOOKS_LIKE_REF_RE.match(s)]


def python_test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(
                item.name
                for item in node.body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
            )
    return names


def check_reference(ref: str, root: Path = ROOT) -> str | None:
    """None when `ref` resolves, else why not."""
    if m := PY_REF_RE.match(ref):
        path = root / m.group(1)
        if not path.is_file():
            return f"{ref}: no file {m.group(1)}"
        if m.group(2) not in python_test_names(path):
            return f"{ref}: {m.group(1)} defines no {m.group(2)}"
        return None
    if CORPUS_REF_RE.match(ref):
        path = root / ref
        if not path.is_file():
            return f"{ref}: no such corpus file"
        if not path.with_suffix(".expect.json").is_file():
            return f"{ref}: no .expect.json beside it"
        return None
    if m := RUST_REF_RE.match(ref):
        path = root / m.group(1)
        if not path.is_file():
            return f"{ref}: no file {m.group(1)}"
        if not re.search(rf"\bfn {re.escape(m.group(2))}\s*\(", path.read_text(encoding="utf-8")):
            return f"{ref}: no `fn {m.group(2)}(` in {m.group(1)}"
        return None
    return f"{ref}: not a recognised reference form (FILE.py::test, corpus .http, FILE.rs::fn)"


def rule_rows(text: str) -> list[str]:
    """Table rows of the rule tables (header and separator rows left out)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        if line.startswith("| rule |"):
            continue
        rows.append(line)
    return rows


def test_doc_exists_and_has_the_sections():
    text = doc_text()
    for heading in ("## PEP 3333", "## RFC 9112", "## Deviations"):
        assert heading in text, f"missing section {heading!r}"


def test_every_reference_resolves():
    refs = references(doc_text())
    assert len(refs) > 150, f"only {len(refs)} references: did the span syntax change?"
    broken = [why for ref in refs if (why := check_reference(ref)) is not None]
    assert not broken, "broken references in docs/conformance.md:\n" + "\n".join(broken)


def test_every_rule_row_has_a_proof_or_a_deviation():
    rows = rule_rows(doc_text())
    assert len(rows) > 60, f"only {len(rows)} rule rows found"
    bare = [row for row in rows if not references(row) and "Deviations" not in row]
    assert not bare, "rows without a test or a deviation:\n" + "\n".join(bare)


def test_every_deviation_link_has_a_section():
    text = doc_text()
    assert "(#deviations)" in text and "\n## Deviations\n" in text


# -- the checker itself must be able to fail -----------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "tests/pep3333/test_environ.py::test_no_such_test",
        "tests/nowhere/test_x.py::test_a",
        "tests/requests/valid/no_such_request.http",
        "crates/ferrule-core/src/http1/head.rs::no_such_fn",
        "crates/ferrule-core/src/nowhere.rs::rejections",
        "tests/pep3333/test_environ.py",
    ],
)
def test_checker_rejects_broken_references(ref):
    assert check_reference(ref) is not None


@pytest.mark.parametrize(
    "ref",
    [
        "tests/pep3333/test_environ.py::test_request_method",
        "tests/pep3333/test_input.py::test_input[64KiB-read]",
        "tests/requests/invalid/cl_and_te.http",
        "crates/ferrule-core/src/http1/head.rs::rejections",
    ],
)
def test_checker_accepts_good_references(ref):
    assert check_reference(ref) is None
