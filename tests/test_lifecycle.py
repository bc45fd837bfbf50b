"""apply -> status -> rollback -> apply round trips on the example migrations/, with the ledger
and the catalog checked after every step."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

import pgsafe
from helpers import query
from pgsafe import Runner, Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def schema_dump(db, *exclude: str) -> str:
    """pg_dump --schema-only of the database, the ledger schema left out."""
    args = [str(db.server.bindir / "pg_dump"), "--schema-only", "--no-owner", "-d", db.dsn]
    for schema in ("pgsafe", *exclude):
        args += ["--exclude-schema", schema]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    # Lines that differ between two dumps of the same schema: version comments and the random
    # \restrict key newer pg_dump releases put around the script.
    variable = ("-- Dumped", "\\restrict", "\\unrestrict")
    return "\n".join(line for line in out.splitlines() if not line.startswith(variable))


def test_round_trip_on_example_migrations(pgsafe_db):
    empty = schema_dump(pgsafe_db)
    runner = Runner(MIGRATIONS, pgsafe_db.dsn, settings=Settings())

    before = runner.status()
    assert [m.state for m in before.migrations] == ["pending"] * 3

    applied = runner.apply()
    assert [r.version for r in applied] == ["000", "001", "002"]
    assert all(r.status == "applied" for r in applied)

    rows = query(
        pgsafe_db,
        "SELECT version, name, checksum, status, applied_by, pgsafe_version,"
        " retries, duration_s FROM pgsafe.migrations ORDER BY version",
    )
    for row, path in zip(rows, sorted(MIGRATIONS.glob("*.up.sql")), strict=True):
        version, name, checksum, status, applied_by, version_text, retries, duration = row
        assert path.name == f"{version}_{name}.up.sql"
        assert checksum == hashlib.sha256(path.read_bytes()).hexdigest()
        assert status == "applied"
        assert "@" in applied_by
        assert version_text == pgsafe.__version__
        assert retries == "0"
        assert float(duration) >= 0

    # What the seed promises: job_dlq with 6 indexes (+ primary key), trigger, RLS, 2 policies.
    idx = query(
        pgsafe_db,
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'job_dlq'"
        " AND indexname <> 'job_dlq_pkey'",
    )
    assert idx == [("6",)]
    assert query(pgsafe_db, "SELECT relrowsecurity FROM pg_class WHERE relname = 'job_dlq'") == [
        ("t",)
    ]
    assert query(pgsafe_db, "SELECT count(*) FROM pg_policies WHERE tablename = 'job_dlq'") == [
        ("2",)
    ]
    assert query(pgsafe_db, "SELECT tgname FROM pg_trigger WHERE tgname = 'job_dlq_updated_at'")
    assert query(
        pgsafe_db,
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'qc_jobs'"
        " AND column_name = 'last_heartbeat_at'",
    )
    full = schema_dump(pgsafe_db)

    status = runner.status()
    assert status.count("applied") == 3 and status.count("pending") == 0
    assert runner.apply() == []  # idempotent: nothing pending

    # Roll back one step: the heartbeat column goes, 002 is pending again.
    back = runner.rollback(steps=1)
    assert [r.version for r in back] == ["002"]
    assert not query(
        pgsafe_db,
        "SELECT 1 FROM information_schema.columns WHERE "
        "table_name = 'qc_jobs' AND column_name = 'last_heartbeat_at'",
    )
    assert [m.state for m in runner.status().migrations] == ["applied", "applied", "pending"]
    assert query(pgsafe_db, "SELECT status FROM pgsafe.migrations WHERE version = '002'") == [
        ("rolled_back",)
    ]

    # Roll back everything: the schema is what it was before the first apply.
    back = runner.rollback(to="000")
    assert [r.version for r in back] == ["001"]
    runner.rollback(steps=1)
    assert schema_dump(pgsafe_db) == empty

    # And forward again to the same schema as the first time.
    again = runner.apply()
    assert [r.version for r in again] == ["000", "001", "002"]
    assert schema_dump(pgsafe_db) == full

    history = query(pgsafe_db, "SELECT version, action, status FROM pgsafe.history ORDER BY id")
    assert history == [
        ("000", "apply", "applied"),
        ("001", "apply", "applied"),
        ("002", "apply", "applied"),
        ("002", "rollback", "rolled_back"),
        ("001", "rollback", "rolled_back"),
        ("000", "rollback", "rolled_back"),
        ("000", "apply", "applied"),
        ("001", "apply", "applied"),
        ("002", "apply", "applied"),
    ]


def test_apply_to_version_stops_there(pgsafe_db):
    runner = Runner(MIGRATIONS, pgsafe_db.dsn)
    assert [r.version for r in runner.apply(to="001")] == ["000", "001"]
    assert [m.state for m in runner.status().migrations] == ["applied", "applied", "pending"]
    with pytest.raises(pgsafe.ConfigError, match="--to 7"):
        runner.apply(to="7")


def test_plan_reads_but_never_writes(pgsafe_db):
    runner = Runner(MIGRATIONS, pgsafe_db.dsn)
    plan = runner.plan_apply()
    assert [m.version for m, _ in plan] == ["000", "001", "002"]
    assert [len(stmts) for _, stmts in plan][1] == 14
    assert query(pgsafe_db, "SELECT to_regnamespace('pgsafe') IS NULL") == [("t",)]
    assert query(pgsafe_db, "SELECT to_regclass('qc_jobs') IS NULL") == [("t",)]
