"""Preflight never cries wolf under load: with `pgbench -c 4` running (its clients wait for each
other's row locks on pgbench_branches all the time, for milliseconds), preflight of a migration
that touches another table passes every time. A wait on a table the migrations touch still
fails, and a long wait anywhere is a warning."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import pgsafe, wait_for, write
from pgsafe.errors import ConfigError
from pgsafe.server import TemporaryDatabase, find_pg_bindir

ROUNDS = int(os.environ.get("PGSAFE_LOAD_ROUNDS", "10"))  # the figure: 50


def _pgbench() -> str:
    try:
        found = find_pg_bindir() / "pgbench"
        if found.exists():
            return str(found)
    except ConfigError:
        pass
    path = shutil.which("pgbench")
    if path is None:
        pytest.skip("pgbench is not installed (postgresql-contrib / the client package)")
    return path


@pytest.fixture
def under_load(pgsafe_db: TemporaryDatabase) -> Iterator[TemporaryDatabase]:
    """pgsafe_db with pgbench's tables (scale 1: one branch row, so its 4 clients contend on
    it) and `pgbench -c 4` running until the test ends."""
    bench = _pgbench()
    init = subprocess.run(
        [bench, "-i", "-s", "1", "-q", pgsafe_db.dsn], capture_output=True, text=True, check=False
    )
    assert init.returncode == 0, init.stderr
    proc = subprocess.Popen(
        [bench, "-n", "-c", "4", "-j", "2", "-T", "600", pgsafe_db.dsn],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Running: its clients wait for each other's row locks.
        wait_for(
            lambda: _row_lock_waits(pgsafe_db) or proc.poll() is not None,
            30,
            "pgbench's clients to wait for row locks",
            interval=0.02,
        )
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield pgsafe_db
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _row_lock_waits(db: TemporaryDatabase) -> bool:
    with db.connect(application_name="pgsafe-test") as conn:
        rows = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND application_name = 'pgbench'"
        ).rows
    return int(str(rows[0][0])) > 0


def test_preflight_under_pgbench_has_no_false_failures(under_load, tmp_path: Path) -> None:
    db = under_load
    with db.connect(application_name="pgsafe-test") as conn:
        conn.execute("CREATE TABLE notes (id bigint PRIMARY KEY)")
    migs = write(tmp_path / "m", {"001_note.sql": "ALTER TABLE notes ADD COLUMN body text;\n"})
    failures: list[str] = []
    waits_seen = 0
    for _ in range(ROUNDS):
        waits_seen += _row_lock_waits(db)
        res = pgsafe("preflight", str(migs), "--db", db.dsn, "--format", "json", "--log-dir", "")
        assert res.returncode in (0, 1), res.stderr
        doc = json.loads(res.stdout)
        if res.returncode:
            failures += [
                f"{c['name']}: {c['summary']}" for c in doc["checks"] if c["status"] == "fail"
            ]
    print(f"{ROUNDS} preflights under pgbench -c 4: {len(failures)} false failures")
    assert failures == [], failures
    assert waits_seen > 0, "pgbench produced no row-lock waits: the test proved nothing"


def test_a_wait_on_a_touched_table_still_fails_and_a_long_one_elsewhere_warns(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    with pgsafe_db.connect(application_name="pgsafe-test") as conn:
        for table in ("notes", "other"):
            conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY)")
            conn.execute(f"INSERT INTO {table} VALUES (1)")
    migs = write(tmp_path / "m", {"001_note.sql": "ALTER TABLE notes ADD COLUMN body text;\n"})
    (tmp_path / "pgsafe.toml").write_text('[policy.local]\nlong_lock_wait_s = "1s"\n')

    def preflight() -> dict[str, dict[str, str]]:
        res = pgsafe(
            "preflight", str(migs), "--db", pgsafe_db.dsn, "--format", "json", "--log-dir", "",
            cwd=tmp_path,
        )  # fmt: skip
        assert res.returncode in (0, 1), res.stderr
        checks = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
        assert (res.returncode == 1) == any(c["status"] == "fail" for c in checks.values())
        return checks

    for table, wanted in (("other", "warn"), ("notes", "fail")):
        holder = pgsafe_db.connect(application_name="app-holder")
        waiter = pgsafe_db.connect(application_name="app-waiter")
        holder.execute("BEGIN")
        holder.execute(f"UPDATE {table} SET id = id WHERE id = 1")
        blocked = threading.Thread(
            target=waiter.execute, args=(f"UPDATE {table} SET id = id WHERE id = 1",)
        )
        blocked.start()
        try:
            time.sleep(1.5)  # past long_lock_wait_s
            check = preflight()["blocking-locks"]
            assert check["status"] == wanted, check
            assert f"pid {waiter.backend_pid}" in " ".join(check["evidence"]), check
        finally:
            holder.execute("COMMIT")
            blocked.join(10)
            holder.close()
            waiter.close()
