"""Regression tests for the ways a migration run could go wrong silently: a lost migration lock,
settings leaking from one migration into the next, renamed or vanished files, statements that
commit part of their work before failing, and a signal arriving while the core waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from helpers import PGSAFE, apply_args, pgsafe, spawn, write
from helpers import query as rows
from pgsafe import Runner, Settings, _core
from pgsafe.errors import ConfigError, UnsafeError, mask_password


def test_lost_migration_lock_stops_before_commit(pgsafe_db, tmp_path):
    """If the session holding the migration lock dies mid-migration, another runner may start:
    the first must not commit. Here the lock session is terminated during a pg_sleep."""
    with pgsafe_db.connect() as conn:
        conn.execute("CREATE TABLE counter (n int); INSERT INTO counter VALUES (0)")
    migs = write(
        tmp_path / "m",
        {
            "001_bump.sql": "UPDATE counter SET n = n + 1;\nSELECT pg_sleep(1.5);\n",
        },
    )
    proc = spawn(*apply_args(migs, pgsafe_db, ""))
    with pgsafe_db.connect() as conn:
        deadline = time.monotonic() + 20
        while not conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
            " AND state = 'active'"
        ).rows:
            assert time.monotonic() < deadline, "the migration never started"
            time.sleep(0.05)
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'pgsafe lock'"
        ).rows
    assert killed == [("t",)]
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    assert "migration lock is no longer held" in err
    assert rows(pgsafe_db, "SELECT n FROM counter") == [("0",)]
    assert rows(pgsafe_db, "SELECT count(*) FROM pgsafe.migrations") == [("0",)]
    # A clean rerun applies it exactly once.
    assert pgsafe(*apply_args(migs, pgsafe_db, "")).returncode == 0
    assert rows(pgsafe_db, "SELECT n FROM counter") == [("1",)]


def test_session_settings_do_not_leak_into_the_next_migration(pgsafe_db, tmp_path):
    migs = write(
        tmp_path / "m",
        {
            "001_audit.sql": "CREATE SCHEMA audit;\nSET search_path = audit;\n"
            "CREATE TABLE events (id int);\nCREATE TEMP TABLE scratch (x int);\n",
            "002_customers.sql": "CREATE TABLE customers (id int);\n"
            "CREATE TEMP TABLE scratch (x int);\n",
        },
    )
    Runner(migs, pgsafe_db.dsn).apply()
    placed = rows(
        pgsafe_db,
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_name IN ('events', 'customers') ORDER BY 2",
    )
    assert placed == [("public", "customers"), ("audit", "events")]


def test_renamed_version_is_refused_not_applied_twice(pgsafe_db, tmp_path):
    with pgsafe_db.connect() as conn:
        conn.execute("CREATE TABLE counter (n int); INSERT INTO counter VALUES (0)")
    migs = write(tmp_path / "m", {"01_bump.sql": "UPDATE counter SET n = n + 1;\n"})
    Runner(migs, pgsafe_db.dsn).apply()
    (migs / "01_bump.sql").rename(migs / "001_bump.sql")
    res = pgsafe(*apply_args(migs, pgsafe_db, ""))
    assert res.returncode == 5
    assert "ledger knows this migration as version 01" in res.stderr
    assert rows(pgsafe_db, "SELECT n FROM counter") == [("1",)]


def test_applied_migration_without_its_file_blocks_apply(pgsafe_db, tmp_path):
    migs = write(
        tmp_path / "m",
        {"001_a.sql": "CREATE TABLE a (id int);\n", "002_b.sql": "CREATE TABLE b (id int);\n"},
    )
    Runner(migs, pgsafe_db.dsn).apply(to="001")
    (migs / "001_a.sql").unlink()
    runner = Runner(migs, pgsafe_db.dsn)
    assert [m.state for m in runner.status().migrations] == ["missing-file", "pending"]
    try:
        runner.apply()
    except UnsafeError as exc:
        assert "001_a" in str(exc) and "restore the file" in str(exc)
    else:
        raise AssertionError("apply ran with an applied migration's file missing")
    assert rows(pgsafe_db, "SELECT to_regclass('b') IS NULL") == [("t",)]


def test_detach_partition_concurrently_failure_is_dirty_not_retried(pgsafe_db, tmp_path):
    """DETACH ... CONCURRENTLY commits its first phase before it can time out waiting for
    readers: a retry would fail on the half state, and 'nothing committed' would be a lie."""
    with pgsafe_db.connect() as conn:
        conn.execute(
            "CREATE TABLE p (id int) PARTITION BY RANGE (id);"
            " CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)"
        )
    migs = write(
        tmp_path / "m",
        {
            "001_detach.sql": "ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;\n",
        },
    )
    reader = pgsafe_db.connect()
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM p")
    try:
        res = pgsafe(
            *apply_args(migs, pgsafe_db, ""),
            "--lock-timeout",
            "200ms",
            "--retries",
            "3",
            "--retry-base",
            "10ms",
        )
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    assert res.returncode == 2, res.stderr
    assert "retrying" not in res.stderr
    assert "dirty" in res.stderr and "pgsafe repair 001" in res.stderr
    assert rows(pgsafe_db, "SELECT status FROM pgsafe.migrations") == [("dirty",)]
    pending = rows(
        pgsafe_db, "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = 'p1'::regclass"
    )
    assert pending == [("t",)]


def test_close_from_another_thread_does_not_block_or_free_a_busy_connection(pgsafe_db):
    conn = pgsafe_db.connect()
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            conn.execute("SELECT pg_sleep(5)")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    start = time.monotonic()
    conn.close()  # returns at once: cancels, and the running execute closes on its way out
    assert time.monotonic() - start < 1.0
    t.join(10)
    assert not t.is_alive()
    assert outcome and outcome[0] is not None  # cancelled
    assert conn.closed
    assert rows(
        pgsafe_db,
        "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)'"
        " AND state = 'active'",
    ) == [("0",)]


def test_sigterm_during_a_server_query_exits_and_cleans_up(tmp_path):
    script = textwrap.dedent("""
        import sys
        from pgsafe.server import TemporaryServer
        s = TemporaryServer().start()
        print(s.tempdir, flush=True)
        s.execute("SELECT pg_sleep(30)")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    tempdir = Path(proc.stdout.readline().strip())
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)
    deadline = time.monotonic() + 15
    while tempdir.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not tempdir.exists()


def test_mask_dsn_hides_passwords_with_url_delimiters():
    for dsn in (
        "postgresql://app:pa?ss99word@/t1?host=/tmp",
        "postgresql://app:p@ss99word@db.example/prod",
        "postgresql://app:pa/ss99word@db.example/prod",
        "postgres://app:pa#ss99word@db:5432/prod?sslmode=require",
    ):
        masked = mask_password(dsn)
        assert "ss99word" not in masked, masked
        assert "****" in masked


def test_unparseable_dsn_error_does_not_echo_the_password():
    for dsn in (
        "host=localhost password=secretpw99 bogus",
        "postgresql://app:sec%zzretpw99@db/prod",
    ):
        try:
            _core.Connection(dsn)
        except ConfigError as exc:
            assert "invalid DSN" in str(exc)
            assert "retpw99" not in str(exc) and "secretpw99" not in str(exc), str(exc)
        else:
            raise AssertionError(f"{dsn} connected")


def test_target_repr_has_no_dsn():
    from pgsafe.config import Target

    assert "hunter2" not in repr(Target("postgresql://app:hunter2@db/prod", "--db"))


def test_run_settings_are_validated_before_anything_is_touched(pgsafe_db, tmp_path):
    migs = write(tmp_path / "m", {"001_a.sql": "CREATE TABLE a (id int);\n"})
    for args in (
        ["apply", "--apply", "--to", "abc"],
        ["rollback", "--apply", "--to", "1.5"],
        ["rollback", "--apply", "--steps", "-1"],
        ["rollback", "--steps", "0"],
        ["apply", "--apply", "--lock-timeout", "600h"],
        ["apply", "--apply", "--to", "99"],
    ):
        res = pgsafe(args[0], str(migs), "--db", pgsafe_db.dsn, *args[1:], "--log-dir", "")
        assert res.returncode == 5, (args, res.stderr)
        assert "Traceback" not in res.stderr
    assert rows(pgsafe_db, "SELECT to_regnamespace('pgsafe') IS NULL") == [("t",)]
    try:
        Runner(migs, pgsafe_db.dsn, settings=Settings()).rollback(steps=-1)
    except ConfigError as exc:
        assert "--steps -1" in str(exc)
    else:
        raise AssertionError("rollback(steps=-1) ran")


def test_rollback_refused_by_a_dirty_ledger_exits_4(pgsafe_db, tmp_path):
    migs = write(
        tmp_path / "m",
        {"001_a.up.sql": "CREATE TABLE a (id int);\n", "001_a.down.sql": "DROP TABLE a;\n"},
    )
    Runner(migs, pgsafe_db.dsn).apply()
    with pgsafe_db.connect() as conn:
        conn.execute("UPDATE pgsafe.migrations SET status = 'dirty'")
    res = pgsafe("rollback", str(migs), "--db", pgsafe_db.dsn, "--apply", "--log-dir", "")
    assert res.returncode == 4, res.stderr
    assert "dirty" in res.stderr


def test_read_only_commands_write_no_files_and_bad_log_dir_is_config(pgsafe_db, tmp_path):
    migs = write(tmp_path / "m", {"001_a.sql": "CREATE TABLE a (id int);\n"})
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for args in (["status", str(migs)], ["apply", str(migs)], ["status", str(tmp_path / "no")]):
        subprocess.run(
            [PGSAFE, *args, "--db", pgsafe_db.dsn],
            cwd=cwd,
            env=env,
            capture_output=True,
            timeout=60,
        )
    assert list(cwd.iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = pgsafe(*apply_args(migs, pgsafe_db, blocker / "sub"))
    assert res.returncode == 5 and "cannot write the event log" in res.stderr
    assert rows(pgsafe_db, "SELECT to_regclass('a') IS NULL") == [("t",)]
