"""Benchmark lock tracing against a plain ``pgsafe apply`` of the same 50-statement migration,
each on a fresh database of one throwaway server whose tables were created (and filled) by an
earlier migration. Tracing also reads pg_locks from a second session and diffs the catalog
after every statement, and samples autocommit statements while they run; the figure is what
that costs. Run: ``python bench/bench_trace.py [--rows N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pgsafe import _core
from pgsafe.lifecycle.runner import Runner
from pgsafe.lifecycle.trace import (  # the per-migration step of pgsafe.lifecycle.trace.trace
    _trace_unit,
    _unit,
)
from pgsafe.server import TemporaryDatabase, TemporaryServer
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


def prepared(server: TemporaryServer, path: Path) -> tuple[TemporaryDatabase, Runner]:
    db = server.new_database(prefix="bench_trace")
    runner = Runner(path, db.dsn)
    runner.apply("001")
    return db, runner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=2000, help="rows per table (default 2000)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, TemporaryServer() as server:
        path = Path(tmp)
        count = write_migrations(path, args.rows)
        migration = discover(path)[1]
        applied, traced = [], []
        for _ in range(args.runs):
            db, runner = prepared(server, path)
            start = time.perf_counter()
            runner.apply()
            applied.append(time.perf_counter() - start)
            db.drop()

            db, _runner = prepared(server, path)
            start = time.perf_counter()
            result = _trace_unit(db.dsn, _unit(migration), server.version, _core.TraceOptions())
            traced.append(time.perf_counter() - start)
            assert not result.error, result.error
            db.drop()
        a, t = statistics.median(applied), statistics.median(traced)
        print(f"{count}-statement migration, {TABLES} tables x {args.rows} rows, {args.runs} runs")
        print(f"pgsafe apply (plain):  {a * 1000:8.1f} ms")
        print(f"pgsafe trace:          {t * 1000:8.1f} ms")
        print(f"tracing overhead:      {t / a:8.2f}x plain apply")


if __name__ == "__main__":
    main()
