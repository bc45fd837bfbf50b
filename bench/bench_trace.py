"""Benchmark lock tracing against a plain ``pgsafe apply`` of the same 50-statement migration
(what a user runs instead of a traced dry-run), each on a fresh database of one throwaway server
whose tables were created and filled by an earlier migration. Tracing also reads the locks each
statement took and diffs the catalog after it, and samples the autocommit statements (CREATE
INDEX CONCURRENTLY) while they run; the ratio is what that costs.

Run: ``python bench/bench_trace.py`` (one command; it prints one row per major and size).

Flags:
  --rows N[,N...]         rows per table (default 2000,20000)
  --pg-version N[,N...]   PostgreSQL majors, each on a throwaway server of that major's own
                          programs (default 15,18; a major not installed is named and skipped)
  --runs N                paired rounds per major and size (default 5)

Each round times both on a database of their own, alternating which goes first (A-B, then B-A),
so a load spike on a shared machine falls on both; the ratio is the median of the rounds' own
ratios (trace time / apply time).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pgsafe import _core, pgbin
from pgsafe.lifecycle.runner import Runner
from pgsafe.lifecycle.trace import (  # the per-migration step of pgsafe.lifecycle.trace.trace
    _trace_unit,
    _unit,
)
from pgsafe.server import TemporaryServer
from pgsafe.sources.files import Migration
from pgsafe.sources.layouts import discover

TABLES = 5


def write_migrations(root: Path, rows: int) -> int:
    setup = []
    for n in range(TABLES):
        setup.append(
            f"CREATE TABLE t{n} (id bigint PRIMARY KEY, owner bigint, note text, v varchar(20));\n"
            f"INSERT INTO t{n} SELECT g, g % 10, 'row ' || g, g::text "
            f"FROM generate_series(1, {rows}) g;\n"
        )
    (root / "001_tables.sql").write_text("".join(setup))
    body = []
    for n in range(TABLES):  # 10 statements per table, 50 in all
        body += [
            f"ALTER TABLE t{n} ADD COLUMN created_at timestamptz",
            f"ALTER TABLE t{n} ADD COLUMN flag boolean NOT NULL DEFAULT false",
            f"ALTER TABLE t{n} ALTER COLUMN v TYPE varchar(40)",
            f"ALTER TABLE t{n} ALTER COLUMN owner SET STATISTICS 200",
            f"ALTER TABLE t{n} ADD CONSTRAINT t{n}_owner_pos CHECK (owner >= 0) NOT VALID",
            f"ALTER TABLE t{n} VALIDATE CONSTRAINT t{n}_owner_pos",
            f"CREATE INDEX t{n}_owner ON t{n} (owner)",
            f"COMMENT ON TABLE t{n} IS 'traced'",
            f"UPDATE t{n} SET note = 'x' WHERE id <= 10",
            f"CREATE INDEX CONCURRENTLY t{n}_note ON t{n} (note)",
        ]
    (root / "002_fifty.sql").write_text(";\n".join(body) + ";\n")
    return len(body)


def _timed(server: TemporaryServer, path: Path, run: Callable[[str, Runner], None]) -> float:
    """Seconds `run` takes on a fresh database with the first migration applied."""
    db = server.new_database(prefix="bench_trace")
    try:
        runner = Runner(path, db.dsn)
        runner.apply("001")
        start = time.perf_counter()
        run(db.dsn, runner)
        return time.perf_counter() - start
    finally:
        db.drop()


def _apply(_dsn: str, runner: Runner) -> None:
    runner.apply()


def _tracer(migration: Migration, major: int) -> Callable[[str, Runner], None]:
    def run(dsn: str, _runner: Runner) -> None:
        result = _trace_unit(dsn, _unit(migration), major, _core.TraceOptions())
        if result.error:
            sys.exit(f"bench_trace: the traced migration failed: {result.error}")

    return run


def bench(server: TemporaryServer, rows: int, runs: int) -> tuple[float, float, float]:
    """(median apply s, median trace s, median of the per-round ratios)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        write_migrations(path, rows)
        trace = _tracer(discover(path)[1], int(server.version))
        applied: list[float] = []
        traced: list[float] = []
        for n in range(runs):
            if n % 2 == 0:
                applied.append(_timed(server, path, _apply))
                traced.append(_timed(server, path, trace))
            else:
                traced.append(_timed(server, path, trace))
                applied.append(_timed(server, path, _apply))
        ratios = [t / a for a, t in zip(applied, traced, strict=True)]
        return statistics.median(applied), statistics.median(traced), statistics.median(ratios)


def _numbers(text: str, flag: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        sys.exit(f"bench_trace: {flag} takes whole numbers separated by commas, not {text!r}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", default="2000,20000", help="rows per table (default 2000,20000)")
    ap.add_argument("--pg-version", default="15,18", help="PostgreSQL majors (default 15,18)")
    ap.add_argument("--runs", type=int, default=5, help="paired rounds (default 5)")
    args = ap.parse_args()
    sizes = _numbers(args.rows, "--rows")
    majors = _numbers(args.pg_version, "--pg-version")
    found = {i.major for i in pgbin.installations() if i.server}
    print(
        f"50-statement migration, {TABLES} tables; {args.runs} paired rounds each, alternating "
        "which runs first; ratio = median of the rounds' trace/apply"
    )
    print(f"{'major':>5} {'rows':>7} {'apply ms':>10} {'trace ms':>10} {'trace/apply':>12}")
    for major in majors:
        if major not in found:
            print(f"{major:>5}  not installed, skipped: {pgbin.how_to_get(major)}")
            continue
        with TemporaryServer(pg_version=major) as server:
            for rows in sizes:
                a, t, ratio = bench(server, rows, args.runs)
                print(f"{major:>5} {rows:>7} {a * 1000:>10.1f} {t * 1000:>10.1f} {ratio:>11.2f}x")


if __name__ == "__main__":
    main()
