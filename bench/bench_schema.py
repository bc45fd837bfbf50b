"""Benchmark the schema fingerprint against what a user would do instead to detect drift:
``pg_dump --schema-only | sha256sum`` (a well-kept tool, but its text carries pg_dump's version
banner and object order, and it says nothing about *which* object changed).

The database gets --tables tables (default 200), each with a primary key, a foreign key to the
previous table, a check constraint, two indexes, a default, a comment and a grant, plus a view
per ten tables, a trigger function and a trigger per table, an enum and a sequence. Run:
``python bench/bench_schema.py [--tables N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pgsafe import _core
from pgsafe.schema import fingerprint
from pgsafe.server import TemporaryServer

PGSAFE = str(Path(sys.executable).parent / "pgsafe")


def build_schema(tables: int) -> str:
    parts = [
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_reader') THEN"
        " CREATE ROLE bench_reader NOLOGIN; END IF; END $$;",
        "CREATE SCHEMA app;",
        "CREATE TYPE app.state AS ENUM ('new', 'active', 'done');",
        "CREATE SEQUENCE app.ticket INCREMENT BY 10;",
        "CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;",
    ]
    for n in range(1, tables + 1):
        fk = f" REFERENCES app.t{n - 1} (id)" if n > 1 else ""
        parts.append(
            f"CREATE TABLE app.t{n} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            f" parent_id bigint{fk}, name text NOT NULL, state app.state NOT NULL DEFAULT 'new',"
            f" qty integer NOT NULL DEFAULT 0 CHECK (qty >= 0), payload jsonb,"
            f" created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz);"
            f" CREATE INDEX t{n}_parent_idx ON app.t{n} (parent_id);"
            f" CREATE INDEX t{n}_open_idx ON app.t{n} (created_at) WHERE state <> 'done';"
            f" CREATE TRIGGER t{n}_touch BEFORE UPDATE ON app.t{n}"
            f" FOR EACH ROW EXECUTE FUNCTION app.touch();"
            f" COMMENT ON TABLE app.t{n} IS 'table {n}';"
            f" GRANT SELECT ON app.t{n} TO bench_reader;"
        )
        if n % 10 == 0:
            parts.append(
                f"CREATE VIEW app.v{n} AS"
                f" SELECT id, name, qty FROM app.t{n} WHERE state = 'active';"
            )
    return "\n".join(parts)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with TemporaryServer() as server:
        server.create_database("bench_schema")
        dsn = server.dsn("bench_schema")
        with _core.Connection(dsn) as conn:
            conn.execute(build_schema(args.tables))
        pg_dump = str(server.bindir / "pg_dump")
        dump_cmd = f"'{pg_dump}' --schema-only --no-password -d \"$DSN\" | sha256sum"

        def run_pg_dump() -> None:
            subprocess.run(
                ["sh", "-c", dump_cmd],
                env={**clean_env(), "DSN": dsn},
                check=True,
                stdout=subprocess.DEVNULL,
            )

        def run_cli() -> None:
            subprocess.run(
                [PGSAFE, "schema", "fingerprint", "--db", dsn],
                env=clean_env(),
                check=True,
                stdout=subprocess.DEVNULL,
            )

        fp = fingerprint(dsn)  # warm-up, and the object count for the header
        with _core.Connection(dsn) as conn:
            open_conn = timed(lambda: fingerprint(conn), args.runs)
        results = {
            "api": timed(lambda: fingerprint(dsn), args.runs),
            "api_open": open_conn,
            "cli": timed(run_cli, args.runs),
            "pg_dump": timed(run_pg_dump, args.runs),
        }
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"{args.tables} tables, {len(fp.objects)} objects in the fingerprint; median of "
        f"{args.runs} runs, one throwaway server (PostgreSQL {fp.server_major})\n"
    )
    print(f"{'how':<58} {'ms':>9} {'vs pg_dump':>11}")
    rows = [
        ("pgsafe.schema.fingerprint(dsn) (connect, read, hash)", "api"),
        ("pgsafe.schema.fingerprint(conn) on an open connection", "api_open"),
        ("pgsafe schema fingerprint --db (CLI, process start)", "cli"),
        ("pg_dump --schema-only | sha256sum", "pg_dump"),
    ]
    for label, key in rows:
        print(f"{label:<58} {med[key] * 1000:>9.1f} {med[key] / med['pg_dump']:>10.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
