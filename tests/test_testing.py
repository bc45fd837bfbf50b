"""pgsafe.testing.harness without pytester: what the assertions accept, what their messages say, and
that a DSN's password never reaches a failure message."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import write
from pgsafe.schema import fingerprint
from pgsafe.server import TemporaryDatabase, TemporaryServer
from pgsafe.testing.harness import (
    DataLossError,
    MigrationHarness,
    assert_no_data_loss,
    assert_schema_parity,
    no_data_loss,
)

# Runs on every major of the version matrix (tests/conftest.py).
pytestmark = pytest.mark.pg_matrix


def test_parity_takes_connections_and_ignores_patterns(
    pgsafe_server: TemporaryServer, pgsafe_db: TemporaryDatabase
) -> None:
    with pgsafe_server.new_database() as other, other.connect() as a, pgsafe_db.connect() as b:
        assert_schema_parity(a, b)
        for i in range(7):
            b.execute(f"CREATE TABLE t{i} (id int)")
        with pytest.raises(AssertionError) as err:
            assert_schema_parity(a, b, max_shown=2)
        lines = str(err.value).splitlines()
        assert lines[0] == (
            "schemas differ in 14 object(s): added column public.t0.id, "
            "added column public.t1.id (+12 more)"
        )
        assert lines[-1] == "... and 12 more"
        assert_schema_parity(a, b, ignore=["table public.t*", "column public.t?.id"])
        # A fingerprint taken earlier compares with the database as it is now.
        assert_schema_parity(fingerprint(a), other.dsn)


def test_parity_message_never_shows_a_password(
    pgsafe_server: TemporaryServer, password_user: str, password_user_password: str
) -> None:
    pgsafe_server.execute(f"GRANT CREATE ON SCHEMA public TO {password_user}")
    dsn = (
        f"host={pgsafe_server.host} port={pgsafe_server.port} dbname=postgres "
        f"user={password_user} password={password_user_password}"
    )
    before = fingerprint(dsn)
    pgsafe_server.execute("CREATE TABLE pw_probe (id int)")
    try:
        with pytest.raises(AssertionError) as err:
            assert_schema_parity(before, dsn)
    finally:
        pgsafe_server.execute("DROP TABLE pw_probe")
        pgsafe_server.execute(f"REVOKE CREATE ON SCHEMA public FROM {password_user}")
    assert "added table public.pw_probe" in str(err.value)
    assert password_user_password not in str(err.value)


def test_data_loss_names_gone_and_changed_tables(pgsafe_db: TemporaryDatabase) -> None:
    with pgsafe_db.connect() as conn:
        conn.execute("CREATE TABLE kept (id int, v text)")
        conn.execute("CREATE TABLE dropped (id int)")
        conn.execute("INSERT INTO kept SELECT g, 'x' FROM generate_series(1, 10) g")
        conn.execute("INSERT INTO dropped SELECT generate_series(1, 4)")
        with pytest.raises(DataLossError) as err, no_data_loss(pgsafe_db) as before:
            assert {f.table: f.rows for f in before} == {"public.dropped": 4, "public.kept": 10}
            conn.execute("UPDATE kept SET v = 'y' WHERE id = 3")
            conn.execute("DROP TABLE dropped")
            conn.execute("CREATE TABLE new_one (id int)")  # new tables are not loss
    gone, changed = err.value.problems
    assert gone == "public.dropped: gone (had 4 rows)"
    assert changed.startswith(
        "public.kept: 10 rows before and after, but their contents changed (digest "
        f"{before[1].digest[:12]} -> "
    )
    # A rewrite keeps the rows: not a loss.
    with pgsafe_db.connect() as conn:
        after_update = MigrationHarness("unused", pgsafe_db.dsn).data_fingerprint(["kept"])
        conn.execute("VACUUM FULL kept")
        assert_no_data_loss(after_update, pgsafe_db, tables=["kept"])
        conn.execute("ALTER TABLE kept ADD COLUMN extra int")
        assert_no_data_loss(after_update, pgsafe_db, counts_only=True)
        with pytest.raises(DataLossError):
            assert_no_data_loss(after_update, pgsafe_db)


def test_lock_assertions_and_harness_trace_come_from_pgsafe_trace(
    tmp_path: Path, pgsafe_server: TemporaryServer, pgsafe_db: TemporaryDatabase
) -> None:
    from pgsafe.lifecycle import trace
    from pgsafe.testing import harness as testing

    assert testing.assert_max_lock is trace.assert_max_lock
    assert testing.assert_no_rewrite is trace.assert_no_rewrite
    src = write(
        tmp_path / "m",
        {
            "001_t.up.sql": "CREATE TABLE t (id int);\n",
            "002_idx.up.sql": "CREATE INDEX t_id ON t (id);\n",
        },
    )
    harness = MigrationHarness(src, pgsafe_db.dsn)
    harness.apply(to="001")
    report = harness.trace(server=pgsafe_server)  # only 002 is pending on the test database
    assert [(s.sql.strip(), s.observed_lock) for s in report.statements] == [
        ("CREATE INDEX t_id ON t (id)", "ShareLock")
    ]
