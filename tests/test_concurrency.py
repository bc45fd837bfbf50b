"""Many runners, one database: the migration lock makes every migration run exactly once, and a
lock held elsewhere ends a run with a message naming who holds it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from helpers import apply_args, pgsafe, query, running, spawn, wait_for, write
from pgsafe import _core
from pgsafe.server import TemporaryDatabase

RUNNERS = 10

MIGRATIONS = {
    "001_accounts.sql": "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL);\n",
    "002_seed.sql": "INSERT INTO accounts SELECT g, 'user' || g || '@example.com'\n"
    "  FROM generate_series(1, 1000) g;\n",
    "003_slow.sql": "SELECT pg_sleep(0.3);\nALTER TABLE accounts ADD COLUMN note text;\n",
    "004_index.sql": "CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);\n",
    "005_counter.sql": "CREATE TABLE apply_counter (n int);\n"
    "INSERT INTO apply_counter VALUES (1);\n",
}


def test_ten_concurrent_runners_apply_each_migration_once(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    migs = write(tmp_path / "m", MIGRATIONS)
    logs = tmp_path / "logs"
    argv = apply_args(migs, pgsafe_db, logs)
    procs = [spawn(*argv) for _ in range(RUNNERS)]
    outputs: list[tuple[int, str, str]] = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=90)
            outputs.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    for code, out, err in outputs:
        assert code == 0, (out, err)
        assert "error" not in err.lower(), err

    versions = sorted(name.split("_")[0] for name in MIGRATIONS)
    # Exactly one run applied each version. (A mixed migration such as 004 also leaves the
    # interim dirty marker of that same run in the history: counted apart, at most one.)
    applies = query(
        pgsafe_db,
        "SELECT version, count(*) FILTER (WHERE status = 'applied'), "
        "count(*) FILTER (WHERE status = 'dirty') FROM pgsafe.history "
        "WHERE action = 'apply' GROUP BY version ORDER BY version",
    )
    assert [(v, n) for v, n, _ in applies] == [(v, "1") for v in versions]
    assert all(int(markers) <= 1 for _, _, markers in applies), applies
    assert query(pgsafe_db, "SELECT version, status FROM pgsafe.migrations ORDER BY version") == [
        (v, "applied") for v in versions
    ]
    assert query(pgsafe_db, "SELECT count(*), sum(n) FROM apply_counter") == [("1", "1")]
    assert query(pgsafe_db, "SELECT count(*) FROM accounts") == [("1000",)]

    # The lock is held for the whole run, so one process applies everything and the other nine
    # say there was nothing left to do; the ones that started meanwhile say they waited.
    winners = [out for _, out, _ in outputs if "applying " in out]
    losers = [out for _, out, _ in outputs if "applying " not in out]
    assert len(winners) == 1, winners
    assert all(f"applying {Path(n).stem}" in winners[0] for n in MIGRATIONS), winners[0]
    assert len(losers) == RUNNERS - 1
    for out in losers:
        assert "nothing to apply" in out, out
    waited = [out for out in losers if "waiting for the migration lock" in out]
    assert waited, "no runner ever had to wait: the runs were not concurrent"


def test_lock_held_elsewhere_times_out_naming_the_holder(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    migs = write(tmp_path / "m", {"001_t.sql": "CREATE TABLE t (id int);\n"})
    key = _core.migration_lock_key("pgsafe")
    with pgsafe_db.connect(application_name="deploy-bot-42") as holder:
        got = holder.execute("SELECT pg_try_advisory_lock($1::bigint)", [str(key)]).rows
        assert got == [("t",)]
        t0 = time.monotonic()
        res = pgsafe(
            *apply_args(migs, pgsafe_db, tmp_path / "logs", "--lock-wait", "1s"), timeout=60
        )
        elapsed = time.monotonic() - t0
        pid = holder.backend_pid

    assert res.returncode == 2, (res.stdout, res.stderr)
    assert 1.0 <= elapsed < 15, elapsed
    errors = [line for line in res.stderr.splitlines() if line.startswith("pgsafe: error:")]
    assert len(errors) == 1, res.stderr
    assert f"pid {pid}" in errors[0], errors[0]
    assert "deploy-bot-42" in errors[0], errors[0]
    assert query(
        pgsafe_db, "SELECT to_regclass('t') IS NULL, to_regclass('pgsafe.migrations') IS NULL"
    ) == [("t", "t")]


def test_a_run_that_finds_a_migration_being_applied_waits_for_it(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    # 002 is mixed: the ledger marks it dirty ("in progress") before its CREATE INDEX
    # CONCURRENTLY and keeps it so while the sleep after it runs, all under the migration lock.
    migs = write(
        tmp_path / "m",
        {
            "001_t.sql": "CREATE TABLE t (id int);\n",
            "002_slow_index.sql": "CREATE INDEX CONCURRENTLY t_id ON t (id);\n"
            "SELECT pg_sleep(3);\n",
        },
    )

    with running(*apply_args(migs, pgsafe_db, tmp_path / "a")) as first:
        in_progress = "SELECT 1 FROM pgsafe.migrations WHERE version = '002' AND status = 'dirty'"
        ledger_exists = "SELECT to_regclass('pgsafe.migrations') IS NOT NULL"
        wait_for(
            lambda: query(pgsafe_db, ledger_exists) == [("t",)] and query(pgsafe_db, in_progress),
            timeout=30,
            what="002 to be marked in progress",
        )
        second = pgsafe(*apply_args(migs, pgsafe_db, tmp_path / "b"), timeout=60)
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, (out, err)
    # Not "dirty, fix by hand": the second run saw who was applying it, waited, found it done.
    assert second.returncode == 0, (second.stdout, second.stderr)
    (report,) = (tmp_path / "b").glob("preflight-report-*.json")
    ledger = [c for c in json.loads(report.read_text())["checks"] if c["name"] == "ledger"]
    assert ledger[0]["status"] == "warn", ledger
    assert "002_slow_index being applied by another run" in ledger[0]["summary"], ledger
    assert "nothing to apply" in second.stdout
    assert query(pgsafe_db, "SELECT version, status FROM pgsafe.migrations ORDER BY 1") == [
        ("001", "applied"),
        ("002", "applied"),
    ]
