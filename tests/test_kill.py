"""kill -9 of the runner in the middle of a migration: nothing half-applied survives, and the
next run sees the migration as it really is (pending, or dirty after an autocommit step).

The sleep inside each migration reads its length from a custom setting attached to the
database, so the very same file (same checksum) runs long while we kill it and instantly when
it is run again."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from helpers import exists, pgsafe, query, spawn, wait_for, write
from pgsafe.server import TemporaryDatabase

SLEEP = "SELECT pg_sleep(coalesce(current_setting('pgsafe_test.sleep', true), '0')::float8);\n"


def set_sleep(db: TemporaryDatabase, seconds: float | None) -> None:
    with db.server.connect("postgres", application_name="pgsafe-test") as conn:
        if seconds is None:
            conn.execute(f'ALTER DATABASE "{db.name}" RESET pgsafe_test.sleep')
        else:
            conn.execute(f"ALTER DATABASE \"{db.name}\" SET pgsafe_test.sleep = '{seconds}'")


def sleeping_backends(db: TemporaryDatabase) -> list[tuple[Any, ...]]:
    return query(
        db,
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND state = 'active' "
        "AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep%'",
        [db.name],
    )


def backend_alive(db: TemporaryDatabase, pid: str) -> bool:
    return bool(query(db, "SELECT 1 FROM pg_stat_activity WHERE pid = $1::int", [pid]))


def runner_sessions(db: TemporaryDatabase) -> list[tuple[Any, ...]]:
    return query(
        db,
        "SELECT pid, application_name FROM pg_stat_activity WHERE datname = $1 "
        "AND application_name IN ('pgsafe', 'pgsafe lock')",
        [db.name],
    )


def status(migs: Path, db: TemporaryDatabase) -> dict[str, dict[str, Any]]:
    res = pgsafe("status", str(migs), "--db", db.dsn, "--json", timeout=60)
    states = {m["version"]: m for m in json.loads(res.stdout)["migrations"]}
    # status exits 1 exactly when it shows a migration that needs attention (dirty here).
    attention = any(m["state"] in ("dirty", "changed", "missing-file") for m in states.values())
    assert res.returncode == (1 if attention else 0), (res.stdout, res.stderr)
    return states


def kill_during_sleep(migs: Path, db: TemporaryDatabase, logs: Path) -> str:
    """Starts `pgsafe apply`, SIGKILLs it while the migration sleeps on the server; returns the
    pid of the backend that was running the sleep, once the server has got rid of it."""
    set_sleep(db, 20)
    proc = spawn("apply", str(migs), "--db", db.dsn, "--apply", "--log-dir", str(logs))
    try:
        backend = wait_for(lambda: sleeping_backends(db), 20, "the migration's pg_sleep")[0][0]
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    set_sleep(db, None)
    # pgsafe sets client_connection_check_interval = 2s: the server must notice the dead
    # client long before the 20 s sleep would end on its own.
    t0 = time.monotonic()
    wait_for(lambda: not backend_alive(db, backend), 10, f"backend {backend} to go away")
    assert time.monotonic() - t0 < 10
    return str(backend)


def rerun(migs: Path, db: TemporaryDatabase, logs: Path) -> subprocess.CompletedProcess[str]:
    return pgsafe(
        "apply",
        str(migs),
        "--db",
        db.dsn,
        "--apply",
        "--log-dir",
        str(logs),
        "--lock-wait",
        "10s",
        timeout=60,
    )


def test_kill_mid_transaction_leaves_nothing_and_rerun_applies(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    migs = write(
        tmp_path / "m",
        {
            "001_base.sql": "CREATE TABLE base (id int);\n",
            "002_multi.sql": "CREATE TABLE a (id int);\n" + SLEEP + "CREATE TABLE b (id int);\n",
        },
    )
    logs = tmp_path / "logs"
    kill_during_sleep(migs, pgsafe_db, logs)

    assert exists(pgsafe_db, "base")
    assert not exists(pgsafe_db, "a"), "a statement of the killed migration survived"
    assert not exists(pgsafe_db, "b")
    # No session of the killed run (work or migration-lock session) is left holding locks.
    wait_for(lambda: not runner_sessions(pgsafe_db), 5, "the killed run's sessions to go away")

    states = status(migs, pgsafe_db)
    assert states["001"]["state"] == "applied"
    assert states["002"]["state"] == "pending"

    res = rerun(migs, pgsafe_db, logs)
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert exists(pgsafe_db, "a") and exists(pgsafe_db, "b")
    states = status(migs, pgsafe_db)
    assert {v: s["state"] for v, s in states.items()} == {"001": "applied", "002": "applied"}
    assert query(pgsafe_db, "SELECT version, action, status FROM pgsafe.history ORDER BY id") == [
        ("001", "apply", "applied"),
        ("002", "apply", "applied"),
    ]


def test_kill_after_autocommit_step_reports_dirty(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    migs = write(
        tmp_path / "m",
        {
            "001_mixed.sql": "CREATE TABLE a (id int);\n"
            "CREATE INDEX CONCURRENTLY a_id_idx ON a (id);\n"
            + SLEEP
            + "CREATE TABLE b (id int);\n",
            "002_next.sql": "CREATE TABLE c (id int);\n",
        },
    )
    logs = tmp_path / "logs"
    kill_during_sleep(migs, pgsafe_db, logs)

    # The steps before the autocommit one are committed; the segment after it is not.
    assert exists(pgsafe_db, "a") and exists(pgsafe_db, "a_id_idx")
    assert not exists(pgsafe_db, "b")
    states = status(migs, pgsafe_db)
    assert states["001"]["state"] == "dirty"
    assert states["001"]["dirty_reason"]
    assert states["002"]["state"] == "pending"

    res = rerun(migs, pgsafe_db, logs)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "pgsafe repair 001" in res.stderr
    assert not exists(pgsafe_db, "c")
