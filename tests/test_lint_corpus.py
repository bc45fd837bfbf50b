"""The lint corpus: every file under tests/lint_corpus/ is a small migration with its expected
findings in header comments, checked exactly (a missing finding and a false alarm both fail).

    -- expect: rule-a, rule-b        (or: -- expect: none)
    -- hazards: blocks-writes        (optional: must be among the findings' hazards)
    -- pg-version: 11                (optional, default 15)
    -- enable: rule-c                (optional: opt-in rules to turn on for this case)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pgsafe.lint import HAZARDS, RULES, LintConfig, lint_text

CORPUS = Path(__file__).resolve().parent / "lint_corpus"
CASES = sorted(CORPUS.rglob("*.sql"))
_HEADER = re.compile(r"^--\s*(expect|hazards|pg-version|enable):\s*(.*)$", re.MULTILINE)


def header(text: str) -> dict[str, str]:
    return {m[1]: m[2].strip() for m in _HEADER.finditer(text)}


def names(value: str) -> set[str]:
    return set() if value in ("", "none") else {v.strip() for v in value.split(",")}


@pytest.mark.parametrize("case", CASES, ids=[str(c.relative_to(CORPUS)) for c in CASES])
def test_corpus_case(case: Path) -> None:
    text = case.read_text()
    meta = header(text)
    assert "expect" in meta, f"{case}: no '-- expect:' header"
    expected = names(meta["expect"])
    unknown = expected - set(RULES)
    assert not unknown, f"{case}: expects unknown rules {unknown}"
    config = LintConfig(
        pg_version=int(meta.get("pg-version", "15")), enable=names(meta.get("enable", ""))
    )
    result = lint_text(text, str(case), config)
    got = {f.rule for f in result.findings}
    assert got == expected, "\n".join(
        f"{f.line}:{f.column} {f.rule}: {f.message}" for f in result.findings
    )
    want_hazards = names(meta.get("hazards", ""))
    assert want_hazards <= set(HAZARDS)
    seen = {h for f in result.findings for h in f.hazards}
    assert want_hazards <= seen, f"hazards {want_hazards - seen} missing"


def test_corpus_is_large_and_covers_every_rule() -> None:
    assert len(CASES) >= 80, f"only {len(CASES)} corpus cases"
    covered = set()
    for case in CASES:
        covered |= names(header(case.read_text()).get("expect", ""))
    # Rules over a directory's files (pairs, names) have no single-file case: tests/test_gate.py
    # checks them on directories.
    per_statement = {r.id for r in RULES.values() if r.scope == "statement"}
    assert per_statement - covered == set(), "rules without a corpus case"
    assert {r.id for r in RULES.values()} - per_statement == {
        "require-down-migration",
        "migration-naming",
    }
    safe = [c for c in CASES if names(header(c.read_text()).get("expect", "")) == set()]
    assert len(safe) >= 20, "too few safe cases to measure false alarms"
