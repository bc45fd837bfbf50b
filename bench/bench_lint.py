"""pgsafe lint beside squawk on the lint corpus (tests/lint_corpus): per case, what each tool
reported; recall on the unsafe cases, false alarms on the safe ones, and the time each takes for
the whole corpus. squawk comes from PyPI (squawk-cli) into build/bench-venv, used only here.

Run: ``python bench/bench_lint.py [--cases]`` (``--cases`` prints every case).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "lint_corpus"
BENCH_VENV = ROOT / "build" / "bench-venv"
PGSAFE = Path(sys.executable).parent / "pgsafe"
# squawk rules about style or re-runnability rather than a hazard to a running database: shown
# separately, so the comparison is not decided by rules that fire on almost every statement.
SQUAWK_STYLE = {
    "prefer-robust-stmts",
    "require-timeout-settings",
    "require-lock-timeout",
    "require-statement-timeout",
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
    "prefer-identity",
    "prefer-text-field",
    "prefer-timestamptz",
    "ban-char-field",
}


def squawk_binary() -> Path:
    exe = BENCH_VENV / "bin" / "squawk"
    if not exe.exists():
        print("installing squawk-cli into build/bench-venv (bench only) ...", file=sys.stderr)
        venv.create(BENCH_VENV, with_pip=True)
        subprocess.run([str(BENCH_VENV / "bin" / "pip"), "install", "-q", "squawk-cli"], check=True)
    return exe


def expected(text: str) -> set[str]:
    m = re.search(r"^--\s*expect:\s*(.*)$", text, re.MULTILINE)
    value = m[1].strip() if m else "none"
    return set() if value == "none" else {v.strip() for v in value.split(",")}


def squawk_rules(exe: Path, files: list[Path]) -> dict[str, set[str]]:
    out = subprocess.run(
        [str(exe), "--reporter", "json", *map(str, files)], capture_output=True, text=True
    )
    found: dict[str, set[str]] = {str(f): set() for f in files}
    for item in json.loads(out.stdout or "[]"):
        found.setdefault(item["file"], set()).add(item["rule_name"])
    return found


def pgsafe_rules(files: list[Path]) -> dict[str, set[str]]:
    out = subprocess.run(
        [str(PGSAFE), "lint", *map(str, files), "--format", "json"], capture_output=True, text=True
    )
    found: dict[str, set[str]] = {str(f): set() for f in files}
    for item in json.loads(out.stdout)["findings"]:
        found.setdefault(item["file"], set()).add(item["rule"])
    return found


def pgsafe_rules_per_case(files: list[Path]) -> dict[str, set[str]]:
    """Each case with the settings its header asks for (pg-version, opt-in rules), as the
    corpus test runs it; squawk gets no such help, so its figures are its defaults."""
    from pgsafe.lint import LintConfig, lint_text

    found: dict[str, set[str]] = {}
    for f in files:
        text = f.read_text()
        version = re.search(r"^--\s*pg-version:\s*(\d+)", text, re.MULTILINE)
        enable = re.search(r"^--\s*enable:\s*(.*)$", text, re.MULTILINE)
        config = LintConfig(
            pg_version=int(version[1]) if version else 15,
            enable={e.strip() for e in enable[1].split(",")} if enable else set(),
        )
        found[str(f)] = {x.rule for x in lint_text(text, str(f), config).findings}
    return found


def timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", action="store_true", help="print every case")
    parser.add_argument(
        "--large",
        type=int,
        default=2500,
        help="groups of 4 statements in the throughput file (default 2500)",
    )
    args = parser.parse_args()
    exe = squawk_binary()
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout
    files = sorted(CORPUS.rglob("*.sql"))
    want = {str(f): expected(f.read_text()) for f in files}
    _, pg_s = timed(pgsafe_rules, files)
    pg = pgsafe_rules_per_case(files)
    sq, sq_s = timed(squawk_rules, exe, files)
    unsafe = [f for f in want if want[f]]
    safe = [f for f in want if not want[f]]

    def rate(found: dict[str, set[str]], cases: list[str], drop: set[str] = frozenset()) -> str:
        hits = sum(1 for c in cases if found.get(c, set()) - drop)
        return f"{hits}/{len(cases)} ({100 * hits / max(len(cases), 1):.0f}%)"

    if args.cases:
        for f in files:
            key = str(f)
            print(
                f"{f.relative_to(CORPUS)}: expected {sorted(want[key]) or 'none'}; "
                f"pgsafe {sorted(pg[key]) or '-'}; squawk {sorted(sq.get(key, set())) or '-'}"
            )
        print()
    print(
        f"corpus: {len(files)} cases ({len(unsafe)} unsafe, {len(safe)} safe); {version.strip()}\n"
    )
    print(f"{'':38} {'pgsafe':>14} {'squawk':>14} {'squawk w/o style':>17}")
    print(
        f"{'recall (unsafe cases flagged)':38} {rate(pg, unsafe):>14} {rate(sq, unsafe):>14} "
        f"{rate(sq, unsafe, SQUAWK_STYLE):>17}"
    )
    print(
        f"{'false alarms (safe cases flagged)':38} {rate(pg, safe):>14} {rate(sq, safe):>14} "
        f"{rate(sq, safe, SQUAWK_STYLE):>17}"
    )
    print(f"{'time for the whole corpus, one process':38} {pg_s:>13.3f}s {sq_s:>13.3f}s")
    print(
        f"pgsafe/squawk time ratio on the corpus: {pg_s / sq_s:.2f}x "
        "(mostly Python start-up: see the large file below)"
    )

    # Throughput on one large file, where start-up no longer dominates.
    big = ROOT / "build" / "bench-lint-large.sql"
    statements = []
    for i in range(args.large):
        statements += [
            f"CREATE TABLE IF NOT EXISTS t{i} (id bigint GENERATED ALWAYS AS IDENTITY, v text);",
            f"ALTER TABLE accounts ADD COLUMN IF NOT EXISTS c{i} text;",
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_c{i} ON accounts (c{i});",
            f"UPDATE accounts SET c{i} = 'x' WHERE id < {i};",
        ]
    big.write_text("\n".join(statements) + "\n")
    _, pg_big = timed(pgsafe_rules, [big])
    _, sq_big = timed(squawk_rules, exe, [big])
    n = len(statements)
    print(
        f"\none file of {n} statements: pgsafe {pg_big:.3f}s ({n / pg_big:,.0f} stmt/s), "
        f"squawk {sq_big:.3f}s ({n / sq_big:,.0f} stmt/s); ratio {pg_big / sq_big:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
