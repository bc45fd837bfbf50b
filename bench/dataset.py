"""The generated database that bench_backup.py and bench_datafp.py measure on: pgbench's tables
(``pgbench -i``, generated server-side, so the load is not what is timed), 20,000 history rows
(pgbench -i leaves that table empty) and a wide text/jsonb/timestamptz/numeric table."""

from __future__ import annotations

import os
import subprocess

from pgsafe.server import TemporaryServer

DB = "bench"

# (table, ORDER BY for an md5 query over it): a key where there is one, the whole row where not.
TABLES = [
    ("pgbench_accounts", "aid"),
    ("pgbench_branches", "bid"),
    ("pgbench_tellers", "tid"),
    ("pgbench_history", "r::text"),
    ("wide", "id"),
]


def clean_env() -> dict[str, str]:
    """The environment without libpq variables, so every tool connects where it is told."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}


def load(server: TemporaryServer, scale: int, wide_rows: int) -> list[tuple[str, str]]:
    """Creates and fills database DB; returns TABLES."""
    server.create_database(DB)
    subprocess.run(
        [str(server.bindir / "pgbench"), "-i", "-q", "-I", "dtGvp", "-s", str(scale),
         server.dsn(DB)],
        check=True,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with server.connect(DB) as conn:
        conn.execute(
            "INSERT INTO pgbench_history SELECT 1 + g % 500, 1 + g % 50, g, g % 5000 - 2500, "
            "now() FROM generate_series(1, 20000) g"
        )
        conn.execute(
            "CREATE TABLE wide (id bigint PRIMARY KEY, title text, body text, doc jsonb, "
            "created timestamptz, price numeric(12, 2))"
        )
        conn.execute(
            "INSERT INTO wide SELECT g, 'item ' || g, repeat(md5(g::text), 6), "
            "jsonb_build_object('id', g, 'tags', jsonb_build_array('t' || g % 7, 't' || g % 11),"
            " 'note', md5((g * 7)::text), 'nested', jsonb_build_object('a', g % 3, 'b', NULL)), "
            "timestamptz '2024-01-01 00:00+00' + g * interval '1 second', g * 0.37 "
            f"FROM generate_series(1, {wide_rows}) g"
        )
        conn.execute("VACUUM ANALYZE")
    return list(TABLES)
