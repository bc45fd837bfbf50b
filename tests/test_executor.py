"""The transactional executor, end to end through the CLI, against a real PostgreSQL server.

Lock-timeout retries (bounded, jittered, then success or a clean failure), timeouts that really
apply, mixed transactional/autocommit migrations and their dirty marker, invalid indexes left
by a failed CREATE INDEX CONCURRENTLY, Ctrl-C, and transaction-control statements in files.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    apply_args,
    execute,
    exists,
    interrupt,
    query,
    read_jsonl,
    running,
    wait_for,
    write,
)
from helpers import pgsafe as run_pgsafe
from pgsafe.errors import UniqueViolation
from pgsafe.server import TemporaryDatabase

# Runs on every major of the version matrix (tests/conftest.py).
pytestmark = pytest.mark.pg_matrix

EXIT_OK, EXIT_MIGRATION, EXIT_CONFIG = 0, 2, 5
ALL_THREE = ("001", "002", "003")  # the versions of the three-migration directories below


# --- small helpers (the ones other modules use too are in helpers.py) -----------------------


def pgsafe(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI to completion, with this module's 60 s subprocess timeout."""
    return run_pgsafe(*args, timeout=timeout)


def scalar(db: TemporaryDatabase, sql: str, params: list[str] | None = None) -> Any:
    rows = query(db, sql, params)
    assert len(rows) == 1, rows
    return rows[0][0]


def ledger(db: TemporaryDatabase) -> dict[str, dict[str, Any]]:
    if not exists(db, "pgsafe.migrations"):
        return {}
    cols = ["version", "name", "checksum", "status", "retries", "dirty_reason"]
    rows = query(db, f"SELECT {', '.join(cols)} FROM pgsafe.migrations ORDER BY version")
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}


def history(db: TemporaryDatabase) -> list[tuple[Any, ...]]:
    """(version, action, status, detail) of every pgsafe.history row, oldest first."""
    if not exists(db, "pgsafe.history"):
        return []
    return query(db, "SELECT version, action, status, detail FROM pgsafe.history ORDER BY id")


def events(log_dir: Path) -> list[dict[str, Any]]:
    path = log_dir / "migrations.jsonl"
    if not path.exists():
        return []
    return read_jsonl(path)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("pgsafe: error:")]


def index_state(db: TemporaryDatabase, name: str) -> str | None:
    """'valid', 'invalid' or None (no such index)."""
    rows = query(
        db,
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = $1",
        [name],
    )
    if not rows:
        return None
    return "valid" if rows[0][0] == "t" else "invalid"


@contextmanager
def in_transaction(db: TemporaryDatabase, statement: str) -> Iterator[Any]:
    """A second session that has run `statement` in a transaction it keeps open; rolled back
    (if still open) and closed after."""
    conn = db.connect(application_name="pgsafe-test-holder")
    conn.execute("BEGIN")
    conn.execute(statement)
    try:
        yield conn
    finally:
        if not conn.closed:
            if conn.transaction_status != "idle":
                conn.execute("ROLLBACK")
            conn.close()


@pytest.fixture
def blocker(pgsafe_db: TemporaryDatabase) -> Iterator[Any]:
    """A second session holding ACCESS EXCLUSIVE on table `t` in an open transaction."""
    execute(pgsafe_db, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
    with in_transaction(pgsafe_db, "LOCK TABLE t IN ACCESS EXCLUSIVE MODE") as conn:
        yield conn


@pytest.fixture
def writer(pgsafe_db: TemporaryDatabase) -> Iterator[Any]:
    """A second session whose open transaction has inserted into a new table `items (id, v)`:
    it holds RowExclusiveLock there until it commits, which CREATE INDEX CONCURRENTLY waits for."""
    execute(pgsafe_db, "CREATE TABLE items (id int, v text)")
    with in_transaction(pgsafe_db, "INSERT INTO items VALUES (1, 'one')") as conn:
        yield conn


def retrying(lock_timeout: str, retries: int, base: str, most: str) -> tuple[str, ...]:
    """The flags of a lock timeout retried `retries` times, waiting from `base` up to `most`."""
    return (
        "--lock-timeout",
        lock_timeout,
        "--retries",
        str(retries),
        "--retry-base",
        base,
        "--retry-max",
        most,
    )


# --- lock timeouts and retries ---------------------------------------------------------------


def test_lock_timeout_retries_until_the_blocker_commits(
    pgsafe_db: TemporaryDatabase, blocker: Any, tmp_path: Path
) -> None:
    migs = write(
        tmp_path / "m",
        {
            "001_add_column.sql": "ALTER TABLE t ADD COLUMN note text;\n",
        },
    )
    logs = tmp_path / "logs"
    base_ms, max_ms, attempts = 100, 300, 20
    retries = retrying("200ms", attempts, f"{base_ms}ms", f"{max_ms}ms")
    with running(*apply_args(migs, pgsafe_db, logs, *retries)) as proc:
        # The migration keeps hitting the lock: wait for two retries, and at least ~1 s.
        started = time.monotonic()
        wait_for(
            lambda: sum(e["event"] == "retry" for e in events(logs)) >= 2,
            20,
            "two retry events in the event log",
        )
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        assert proc.poll() is None, "the run ended while the table was still locked"
        blocker.execute("COMMIT")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_OK, (out, err)

    row = ledger(pgsafe_db)["001"]
    assert row["status"] == "applied"
    retries = [e for e in events(logs) if e["event"] == "retry" and e["version"] == "001"]
    assert 2 <= len(retries) < attempts, "retries must happen and stay within the bound"
    assert int(row["retries"]) == len(retries), "the ledger's retry count matches the log"
    assert [e["attempt"] for e in retries] == list(range(2, len(retries) + 2))
    for e in retries:
        assert e["sqlstate"] == "55P03"
        ceiling = min(max_ms, base_ms * 2 ** (e["attempt"] - 2)) / 1000
        assert ceiling / 2 - 1e-3 <= e["seconds"] <= ceiling + 1e-3, e
    done = [e for e in events(logs) if e["event"] == "migration_done"]
    assert done and done[-1]["retries"] == len(retries)
    assert (
        scalar(
            pgsafe_db,
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 't' AND column_name = 'note'",
        )
        == "1"
    )


def test_lock_timeout_exhausted_fails_cleanly(
    pgsafe_db: TemporaryDatabase, blocker: Any, tmp_path: Path
) -> None:
    migs = write(
        tmp_path / "m",
        {
            "001_blocked.sql": "CREATE TABLE before_the_lock (id int);\n"
            "ALTER TABLE t ADD COLUMN note text;\n",
        },
    )
    logs = tmp_path / "logs"
    t0 = time.monotonic()
    res = pgsafe(*apply_args(migs, pgsafe_db, logs, *retrying("200ms", 3, "50ms", "200ms")))
    elapsed = time.monotonic() - t0
    assert res.returncode == EXIT_MIGRATION, (res.stdout, res.stderr)
    assert elapsed < 20

    errors = error_lines(res.stderr)
    assert len(errors) == 1, res.stderr
    line = errors[0]
    assert "001_blocked" in line
    assert f"{migs / '001_blocked.sql'}:2:" in line, line
    assert "lock" in line.lower()

    evs = [e for e in events(logs) if e.get("version") == "001"]
    starts = [e for e in evs if e["event"] == "segment_start"]
    assert len(starts) == 3, "attempts must be exactly --retries"
    assert [e["attempt"] for e in starts] == [1, 2, 3]
    assert len([e for e in evs if e["event"] == "retry"]) == 2
    assert [e["attempt"] for e in evs if e["event"] == "retries_exhausted"] == [3]
    failed = [e for e in evs if e["event"] == "migration_failed"]
    assert len(failed) == 1 and failed[0]["sqlstate"] == "55P03" and failed[0]["dirty"] is False

    # No partial change: the first statement of the migration did not survive.
    blocker.execute("ROLLBACK")
    assert not exists(pgsafe_db, "before_the_lock")
    assert "001" not in ledger(pgsafe_db)
    assert history(pgsafe_db) == []
    assert (
        scalar(
            pgsafe_db,
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 't' AND column_name = 'note'",
        )
        == "0"
    )


# --- timeouts and mixed migrations -----------------------------------------------------------


def test_mixed_migration_runs_and_timeouts_apply(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    migs = write(
        tmp_path / "m",
        {
            "001_mixed.sql": (
                "CREATE TABLE items (id int PRIMARY KEY, v text);\n"
                "INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g;\n"
                "CREATE TABLE seen_before AS\n"
                "  SELECT current_setting('lock_timeout') AS lock_timeout,\n"
                "  current_setting('statement_timeout') AS statement_timeout,\n"
                "  current_setting('idle_in_transaction_session_timeout') AS idle;\n"
                "CREATE INDEX CONCURRENTLY items_v_idx ON items (v);\n"
                "CREATE TABLE seen_after AS\n"
                "  SELECT current_setting('lock_timeout') AS lock_timeout,\n"
                "  current_setting('statement_timeout') AS statement_timeout,\n"
                "  current_setting('idle_in_transaction_session_timeout') AS idle;\n"
            ),
            "002_own_timeout.sql": (
                "SET lock_timeout = '3s';\n"
                "CREATE TABLE seen_own AS SELECT current_setting('lock_timeout') AS lock_timeout;\n"
            ),
            "003_defaults_again.sql": (
                "CREATE TABLE seen_next AS\n"
                "  SELECT current_setting('lock_timeout') AS lock_timeout,\n"
                "  current_setting('statement_timeout') AS statement_timeout;\n"
            ),
        },
    )
    logs = tmp_path / "logs"
    res = pgsafe(
        *apply_args(
            migs,
            pgsafe_db,
            logs,
            "--lock-timeout",
            "1234ms",
            "--statement-timeout",
            "77s",
            "--idle-timeout",
            "45s",
        )
    )
    assert res.returncode == EXIT_OK, (res.stdout, res.stderr)

    assert index_state(pgsafe_db, "items_v_idx") == "valid"
    rows = ledger(pgsafe_db)
    assert {v: r["status"] for v, r in rows.items()} == dict.fromkeys(ALL_THREE, "applied")
    assert rows["001"]["dirty_reason"] is None
    expected = ("1234ms", "77s", "45s")
    assert tuple(query(pgsafe_db, "SELECT * FROM seen_before")[0]) == expected
    assert tuple(query(pgsafe_db, "SELECT * FROM seen_after")[0]) == expected
    # A migration's own SET wins over the configured default ...
    assert scalar(pgsafe_db, "SELECT lock_timeout FROM seen_own") == "3s"
    # ... and does not leak into the next migration on the same session.
    assert tuple(query(pgsafe_db, "SELECT * FROM seen_next")[0]) == ("1234ms", "77s")
    kinds = [e["event"] for e in events(logs) if e.get("version") == "001"]
    assert "dirty" in kinds and "committed" in kinds, kinds


@pytest.mark.parametrize("own_setting", ["SET", "SET LOCAL"])
def test_own_lock_timeout_is_not_lost_after_an_autocommit_step(
    pgsafe_db: TemporaryDatabase, tmp_path: Path, own_setting: str
) -> None:
    """A migration that sets its own lock_timeout must never end up with none at all (0) for
    the statements after a CREATE INDEX CONCURRENTLY: that is the wait-forever outage pgsafe
    exists to prevent. SET keeps the migration's value; SET LOCAL ends with its transaction,
    after which pgsafe's configured value applies again."""
    migs = write(
        tmp_path / "m",
        {
            "001_own.sql": (
                f"{own_setting} lock_timeout = '3s';\n"
                "CREATE TABLE a (id int);\n"
                "CREATE INDEX CONCURRENTLY a_id_idx ON a (id);\n"
                "CREATE TABLE seen AS SELECT current_setting('lock_timeout') AS lock_timeout;\n"
            ),
        },
    )
    res = pgsafe(*apply_args(migs, pgsafe_db, tmp_path / "logs", "--lock-timeout", "1234ms"))
    assert res.returncode == EXIT_OK, (res.stdout, res.stderr)
    value = scalar(pgsafe_db, "SELECT lock_timeout FROM seen")
    assert value != "0", "the statements after the autocommit step ran without any lock_timeout"
    assert value == ("3s" if own_setting == "SET" else "1234ms")


def test_concurrent_index_after_set_local_lock_timeout_still_times_out(
    pgsafe_db: TemporaryDatabase, writer: Any, tmp_path: Path
) -> None:
    """SET LOCAL lock_timeout in the migration's first transaction must not leave the following
    CREATE INDEX CONCURRENTLY (its own autocommit step) waiting for a writer forever."""
    migs = write(
        tmp_path / "m",
        {
            "001_index.sql": "SET LOCAL lock_timeout = '300ms';\n"
            "CREATE INDEX CONCURRENTLY items_v_idx ON items (v);\n",
        },
    )
    logs = tmp_path / "logs"
    retries = retrying("300ms", 30, "100ms", "200ms")
    with running(*apply_args(migs, pgsafe_db, logs, *retries)) as proc:
        try:
            wait_for(
                lambda: any(e["event"] == "retry" for e in events(logs)),
                3,
                "a lock-timeout retry of the CREATE INDEX CONCURRENTLY",
            )
            timed_out = True
        except AssertionError:
            timed_out = False
        writer.execute("COMMIT")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_OK, (out, err)
    assert timed_out, (
        "CREATE INDEX CONCURRENTLY waited 3 s for a writer although every "
        "lock_timeout in play was 300ms: it ran with lock_timeout = 0"
    )


def test_history_has_one_row_per_apply_of_a_mixed_migration(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    """pgsafe.history keeps one row per apply / rollback / repair action: the interim dirty
    marker covering a mixed migration's autocommit steps is not a second apply."""
    migs = write(
        tmp_path / "m",
        {
            "001_plain.sql": "CREATE TABLE a (id int);\n",
            "002_mixed.sql": "CREATE TABLE b (id int);\n"
            "CREATE INDEX CONCURRENTLY b_id_idx ON b (id);\n",
        },
    )
    res = pgsafe(*apply_args(migs, pgsafe_db, tmp_path / "logs"))
    assert res.returncode == EXIT_OK, (res.stdout, res.stderr)
    assert [(v, action, status) for v, action, status, _ in history(pgsafe_db)] == [
        ("001", "apply", "applied"),
        ("002", "apply", "applied"),
    ]


def test_failed_mixed_migration_is_dirty_until_repaired(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    migs = write(
        tmp_path / "m",
        {
            "001_items.sql": "CREATE TABLE items (id int PRIMARY KEY, v text);\n",
            "002_index_then_fail.sql": (
                "CREATE INDEX CONCURRENTLY items_v_idx ON items (v);\n"
                "INSERT INTO no_such_table VALUES (1);\n"
            ),
            "003_after.sql": "CREATE TABLE after_the_dirty_one (id int);\n",
        },
    )
    logs = tmp_path / "logs"
    res = pgsafe(*apply_args(migs, pgsafe_db, logs))
    assert res.returncode == EXIT_MIGRATION, (res.stdout, res.stderr)
    err = error_lines(res.stderr)
    assert len(err) == 1, res.stderr
    assert "002_index_then_fail" in err[0] and "pgsafe repair 002" in err[0]
    assert f"{migs / '002_index_then_fail.sql'}:2:" in err[0]

    rows = ledger(pgsafe_db)
    assert rows["001"]["status"] == "applied"
    assert rows["002"]["status"] == "dirty"
    assert "no_such_table" in (rows["002"]["dirty_reason"] or "")
    assert index_state(pgsafe_db, "items_v_idx") == "valid"  # the autocommit step committed
    assert not exists(pgsafe_db, "after_the_dirty_one")

    status = pgsafe("status", str(migs), "--db", pgsafe_db.dsn, "--json")
    assert status.returncode == 1, status.stderr  # a dirty migration needs attention
    assert "002_" in status.stderr and "dirty" in status.stderr
    states = {m["version"]: m["state"] for m in json.loads(status.stdout)["migrations"]}
    assert states == {"001": "applied", "002": "dirty", "003": "pending"}

    again = pgsafe(*apply_args(migs, pgsafe_db, logs))
    assert again.returncode == EXIT_MIGRATION, (again.stdout, again.stderr)
    assert "pgsafe repair" in again.stderr
    assert not exists(pgsafe_db, "after_the_dirty_one")

    # Fix by hand (undo the index), record it, fix the file: the next apply goes through.
    with pgsafe_db.connect() as conn:
        conn.execute("DROP INDEX items_v_idx")
    repair = pgsafe(
        "repair",
        "002",
        str(migs),
        "--db",
        pgsafe_db.dsn,
        "--log-dir",
        str(logs),
        "--mark",
        "rolled-back",
        "--reason",
        "dropped items_v_idx by hand",
    )
    assert repair.returncode == EXIT_OK, (repair.stdout, repair.stderr)
    assert ledger(pgsafe_db)["002"]["status"] == "rolled_back"
    assert ("002", "repair", "rolled_back", "dropped items_v_idx by hand") in history(pgsafe_db)

    (migs / "002_index_then_fail.sql").write_text(
        "CREATE INDEX CONCURRENTLY items_v_idx ON items (v);\n"
        "INSERT INTO items VALUES (1, 'one');\n"
    )
    final = pgsafe(*apply_args(migs, pgsafe_db, logs))
    assert final.returncode == EXIT_OK, (final.stdout, final.stderr)
    rows = ledger(pgsafe_db)
    assert {v: r["status"] for v, r in rows.items()} == dict.fromkeys(ALL_THREE, "applied")
    assert rows["002"]["dirty_reason"] is None
    assert index_state(pgsafe_db, "items_v_idx") == "valid"
    assert exists(pgsafe_db, "after_the_dirty_one")


@pytest.mark.parametrize("name", ["items_email_key", ""], ids=["named", "unnamed"])
def test_failed_unique_index_build_leaves_no_invalid_index(
    pgsafe_db: TemporaryDatabase, tmp_path: Path, name: str
) -> None:
    """A concurrent build that fails on duplicates leaves an INVALID index, which every write
    would still maintain: pgsafe reports it and drops it, so the database is as before and the
    migration is pending, not dirty; after the data is fixed it builds cleanly."""
    migs = write(
        tmp_path / "m",
        {
            "001_items.sql": "CREATE TABLE items (id int, email text);\n"
            "INSERT INTO items VALUES (1, 'a@x'), (2, 'b@x'), (3, 'a@x');\n",
            "002_unique_email.sql": f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON items (email);\n",
        },
    )
    logs = tmp_path / "logs"
    res = pgsafe(*apply_args(migs, pgsafe_db, logs))
    assert res.returncode == EXIT_MIGRATION, (res.stdout, res.stderr)
    err = error_lines(res.stderr)
    assert len(err) == 1 and "002_unique_email" in err[0], res.stderr
    assert "nothing from it was committed" in err[0]
    with pgsafe_db.connect() as conn:
        left = conn.execute("SELECT count(*) FROM pg_index WHERE indrelid = 'items'::regclass").rows
    assert left == [("0",)]
    invalid = [e["message"] for e in events(logs) if e["event"] == "index_invalid"]
    dropped = [e["message"] for e in events(logs) if e["event"] == "index_dropped"]
    assert len(invalid) == 1 and dropped == invalid
    if name:
        assert invalid == [f"public.{name}"]
    assert [e["sqlstate"] for e in events(logs) if e["event"] == "migration_failed"] == ["23505"]
    rows = ledger(pgsafe_db)
    assert rows["001"]["status"] == "applied" and "002" not in rows

    with pgsafe_db.connect() as conn:
        conn.execute("DELETE FROM items WHERE id = 3")
    again = pgsafe(*apply_args(migs, pgsafe_db, logs))
    assert again.returncode == EXIT_OK, (again.stdout, again.stderr)
    with pgsafe_db.connect() as conn:
        built = conn.execute(
            "SELECT indisvalid, indisunique FROM pg_index WHERE indrelid = 'items'::regclass"
        ).rows
    assert built == [("t", "t")]
    assert ledger(pgsafe_db)["002"]["status"] == "applied"


def test_invalid_index_left_by_an_earlier_run_is_dropped_and_rebuilt(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    """An INVALID index of the same name, left behind by a run that died (or by hand), would
    make CREATE INDEX CONCURRENTLY IF NOT EXISTS skip silently: pgsafe drops and rebuilds it."""
    with pgsafe_db.connect() as conn:
        conn.execute("CREATE TABLE items (id int, email text)")
        conn.execute("INSERT INTO items VALUES (1, 'a@x'), (2, 'a@x')")
        with pytest.raises(UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY items_email_key ON items (email)")
        conn.execute("DELETE FROM items WHERE id = 2")
    assert index_state(pgsafe_db, "items_email_key") == "invalid"
    migs = write(
        tmp_path / "m",
        {
            "001_unique_email.sql": "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "
            "items_email_key ON items (email);\n",
        },
    )
    logs = tmp_path / "logs"
    res = pgsafe(*apply_args(migs, pgsafe_db, logs))
    assert res.returncode == EXIT_OK, (res.stdout, res.stderr)
    assert index_state(pgsafe_db, "items_email_key") == "valid"
    rebuilt = [e for e in events(logs) if e["event"] == "index_rebuilt"]
    assert len(rebuilt) == 1 and rebuilt[0]["message"] == "public.items_email_key"


def test_concurrent_index_timed_out_waiting_is_dropped_and_rebuilt_on_retry(
    pgsafe_db: TemporaryDatabase, writer: Any, tmp_path: Path
) -> None:
    """CREATE INDEX CONCURRENTLY that times out waiting for a writer leaves an INVALID index;
    the executor's own retry drops it and builds it again once the writer is gone."""
    migs = write(
        tmp_path / "m",
        {
            "001_index.sql": "CREATE INDEX CONCURRENTLY items_v_idx ON items (v);\n",
        },
    )
    logs = tmp_path / "logs"
    retries = retrying("200ms", 30, "100ms", "200ms")
    with running(*apply_args(migs, pgsafe_db, logs, *retries)) as proc:
        wait_for(
            lambda: any(e["event"] == "index_invalid" for e in events(logs)),
            20,
            "the executor to notice the invalid index",
        )
        writer.execute("COMMIT")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_OK, (out, err)
    assert index_state(pgsafe_db, "items_v_idx") == "valid"
    assert any(e["event"] == "index_rebuilt" for e in events(logs))
    row = ledger(pgsafe_db)["001"]
    assert row["status"] == "applied" and int(row["retries"]) >= 1


# --- Ctrl-C ----------------------------------------------------------------------------------


def active_sleeps(db: TemporaryDatabase) -> list[tuple[Any, ...]]:
    return query(
        db,
        "SELECT pid, state, query FROM pg_stat_activity WHERE datname = $1 "
        "AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep(30)%' "
        "AND state = 'active'",
        [db.name],
    )


def test_ctrl_c_cancels_the_statement_and_commits_nothing(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    migs = write(
        tmp_path / "m",
        {
            "001_slow.sql": "CREATE TABLE half_done (id int);\nSELECT pg_sleep(30);\n",
        },
    )
    logs = tmp_path / "logs"
    with running(*apply_args(migs, pgsafe_db, logs)) as proc:
        sleeping = wait_for(lambda: active_sleeps(pgsafe_db), 20, "pg_sleep to run on the server")
        backend_pid = sleeping[0][0]
        time.sleep(0.5)
        out, err, took = interrupt(proc, timeout=10)
    assert took < 10
    assert proc.returncode != EXIT_OK, (out, err)
    assert "Traceback" not in err, err
    assert "interrupted" in err
    # The statement was cancelled on the server, not merely abandoned by the client (which the
    # server would only notice after client_connection_check_interval, or after 30 s).
    wait_for(lambda: not active_sleeps(pgsafe_db), 1.0, "pg_sleep to disappear from the server")
    server_log = pgsafe_db.server.log_path.read_text(errors="replace")
    assert any(
        f"[{backend_pid}]" in line and "canceling statement due to user request" in line
        for line in server_log.splitlines()
    ), "no cancel request reached the backend"
    assert not exists(pgsafe_db, "half_done")
    assert "001" not in ledger(pgsafe_db)


# --- transaction control in files ------------------------------------------------------------


def test_begin_commit_wrapper_is_accepted(pgsafe_db: TemporaryDatabase, tmp_path: Path) -> None:
    migs = write(
        tmp_path / "m",
        {
            "001_wrapped.sql": "BEGIN;\nCREATE TABLE wrapped (id int);\n"
            "INSERT INTO wrapped VALUES (1);\nCOMMIT;\n",
        },
    )
    res = pgsafe(*apply_args(migs, pgsafe_db, tmp_path / "logs"))
    assert res.returncode == EXIT_OK, (res.stdout, res.stderr)
    assert scalar(pgsafe_db, "SELECT count(*) FROM wrapped") == "1"
    assert ledger(pgsafe_db)["001"]["status"] == "applied"
    assert "WARNING" not in res.stderr, res.stderr  # no "already a transaction in progress"


def test_commit_in_the_middle_is_refused(pgsafe_db: TemporaryDatabase, tmp_path: Path) -> None:
    migs = write(
        tmp_path / "m",
        {
            "001_ok.sql": "CREATE TABLE fine (id int);\n",
            "002_split.sql": "CREATE TABLE first_half (id int);\n"
            "  COMMIT;\n"
            "CREATE TABLE second_half (id int);\n",
        },
    )
    res = pgsafe(*apply_args(migs, pgsafe_db, tmp_path / "logs"))
    assert res.returncode == EXIT_CONFIG, (res.stdout, res.stderr)
    err = error_lines(res.stderr)
    assert len(err) == 1, res.stderr
    assert f"{migs / '002_split.sql'}:2:3:" in err[0], err[0]
    assert "COMMIT" in err[0]
    # Refused before anything touched the database, 001 included.
    for rel in ("fine", "first_half", "second_half", "pgsafe.migrations"):
        assert not exists(pgsafe_db, rel), rel


# --- data migrations: runs of INSERTs go as batches, errors keep their exact place ------------


def data_migration(rows: int, broken: dict[int, str] | None = None) -> str:
    """CREATE TABLE items, then `rows` single-row INSERTs, row n (1-based) on line n + 1;
    `broken` replaces some rows by other statements."""
    lines = [f"INSERT INTO items VALUES ({n}, {n});" for n in range(1, rows + 1)]
    for n, sql in (broken or {}).items():
        lines[n - 1] = sql
    return "CREATE TABLE items (id int PRIMARY KEY, n int);\n" + "\n".join(lines) + "\n"


def test_data_migration_runs_in_batches_with_every_statement_counted(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    migs = write(tmp_path / "m", {"001_load.sql": data_migration(3000)})
    logs = tmp_path / "logs"
    res = pgsafe(*apply_args(migs, pgsafe_db, logs))
    assert res.returncode == EXIT_OK, (res.stdout, res.stderr)
    assert scalar(pgsafe_db, "SELECT count(*) FROM items") == "3000"
    assert ledger(pgsafe_db)["001"]["status"] == "applied"
    log = events(logs)
    (done,) = [e for e in log if e["event"] == "migration_done"]
    assert done["statements"] == 3001
    # One round trip for the CREATE TABLE, one for the 3,000 INSERTs (a batch).
    assert len([e for e in log if e["event"] == "statement_done"]) == 2


@pytest.mark.parametrize(
    ("row", "sql", "column", "error"),
    [
        (2400, "INSERT INTO items VALUES (1, 0);", 1, "duplicate key"),
        (2800, "INSERT INTO items VALUES (2800, 'abc');", 33, "invalid input syntax"),
        (2999, "INSERT INTO items VALUES (2999,\n  'abc');", 3, "invalid input syntax"),
    ],
    ids=["no-position", "position", "position-next-line"],
)
def test_error_deep_in_a_data_migration_names_its_line(
    pgsafe_db: TemporaryDatabase, tmp_path: Path, row: int, sql: str, column: int, error: str
) -> None:
    migs = write(tmp_path / "m", {"001_load.sql": data_migration(3000, {row: sql})})
    res = pgsafe(*apply_args(migs, pgsafe_db, tmp_path / "logs"))
    assert res.returncode == EXIT_MIGRATION, (res.stdout, res.stderr)
    (err,) = error_lines(res.stderr)
    line = row + 1 + sql.count("\n")
    assert f"{migs / '001_load.sql'}:{line}:{column}:" in err, err
    assert error in err and "nothing from it was committed" in err, err
    assert not exists(pgsafe_db, "items")  # the one transaction rolled back, CREATE included
    assert "001" not in ledger(pgsafe_db)
