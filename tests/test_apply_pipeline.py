"""`pgsafe apply --apply` as the seed-002 pipeline (preflight -> backup -> apply -> postflight)
and `pgsafe rollback` with its data-loss warnings: every exit code from a real scenario, the
read-only guardrail, the event log, timing, and confirmation outside local/ci."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from helpers import pgsafe as run
from helpers import query, read_jsonl, write
from pgsafe.schema import fingerprint
from pgsafe.sources.checksums import write_manifest

ITEMS = {
    "001_items.up.sql": "CREATE TABLE items (id int PRIMARY KEY, label text);\n"
    "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 3) g;\n",
    "001_items.down.sql": "DROP TABLE items;\n",
    "002_items_note.up.sql": "ALTER TABLE items ADD COLUMN note text;\n"
    "UPDATE items SET note = 'n' WHERE id < 3;\n",
    "002_items_note.down.sql": "ALTER TABLE items DROP COLUMN note;\n",
}


def events(path: Path) -> list[dict]:
    return read_jsonl(path)


def apply(db, migs: Path, cwd: Path, *extra: str):
    return run("apply", str(migs), "--db", db.dsn, "--apply", *extra, cwd=cwd)


def rollback(db, migs: Path, cwd: Path, *extra: str):
    return run("rollback", str(migs), "--db", db.dsn, *extra, cwd=cwd)


def production_preflight(db, migs: Path, cwd: Path, backups: Path):
    """`pgsafe preflight --env production` with this backup directory: the result and its
    checks by name."""
    res = run(
        "preflight",
        str(migs),
        "--db",
        db.dsn,
        "--env",
        "production",
        "--backup-dir",
        str(backups),
        "--format",
        "json",
        cwd=cwd,
    )
    return res, {c["name"]: c for c in json.loads(res.stdout)["checks"]}


def test_pipeline_runs_every_step_in_order_and_logs_it(pgsafe_db, tmp_path):
    migs = write(tmp_path / "m", ITEMS)
    res = apply(pgsafe_db, migs, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    # The human summary: every step with its outcome, each migration with its time.
    assert "pgsafe apply" in out and "succeeded" in out
    for step in ("preflight", "backup", "apply", "postflight"):
        assert f"\n{step} " in out, out
    assert "not required by the local policy" in out
    assert "001_items" in out and "2 applied, 0 pending" in out
    kinds = [e["event"] for e in events(tmp_path / "logs/migrations.jsonl")]
    order = ["pipeline_start", "preflight_start", "preflight_done", "apply_start"]
    assert [kinds.index(k) for k in order] == sorted(kinds.index(k) for k in order)
    assert kinds.index("apply_done") < kinds.index("pipeline_done") == len(kinds) - 1
    assert kinds.count("migration_done") == 2
    (report,) = (tmp_path / "logs").glob("preflight-report-*.json")
    assert json.loads(report.read_text())["ok"] is True
    if importlib.util.find_spec("pgsafe.lifecycle.postflight") is not None:
        (post,) = (tmp_path / "logs").glob("postflight-report-*.json")
        assert f"postflight report: logs/{post.name}" in out
    # The fingerprint left by the run is recorded for the next preflight's drift check.
    recorded = query(pgsafe_db, "SELECT source, versions::text, sha256 FROM pgsafe.fingerprints")
    assert recorded == [("apply", "{001,002}", fingerprint(pgsafe_db.dsn).sha256)]


def test_without_apply_nothing_is_written(pgsafe_db, tmp_path):
    migs = write(tmp_path / "m", ITEMS)
    before = fingerprint(pgsafe_db.dsn, exclude=())  # the ledger schema included
    res = run("apply", str(migs), "--db", pgsafe_db.dsn, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "PASSED" in res.stdout and "read-only: pass --apply" in res.stdout
    assert fingerprint(pgsafe_db.dsn, exclude=()) == before
    assert list(tmp_path.iterdir()) == [migs]  # no log, no report
    # Also on a database with applied migrations and a ledger.
    assert apply(pgsafe_db, migs, tmp_path, "--to", "001", "--log-dir", "").returncode == 0
    before = fingerprint(pgsafe_db.dsn, exclude=())
    rows = query(pgsafe_db, "SELECT count(*) FROM pgsafe.fingerprints")
    res = run("apply", str(migs), "--db", pgsafe_db.dsn, cwd=tmp_path)
    assert res.returncode == 0 and "002_items_note: 2 statements" in res.stdout
    assert fingerprint(pgsafe_db.dsn, exclude=()) == before
    assert query(pgsafe_db, "SELECT count(*) FROM pgsafe.fingerprints") == rows


def test_exit_1_preflight_failure_stops_before_anything_runs(pgsafe_db, tmp_path):
    migs = write(tmp_path / "m", ITEMS)
    assert apply(pgsafe_db, migs, tmp_path, "--to", "001").returncode == 0
    with pgsafe_db.connect() as conn:
        conn.execute("CREATE INDEX items_label_idx ON items (label)")  # by hand: drift
    res = apply(pgsafe_db, migs, tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.startswith("pgsafe: error: preflight failed: schema-drift")
    assert len(res.stderr.strip().splitlines()) == 1
    assert "added: index public.items_label_idx" in res.stdout
    assert "not-run" in res.stdout  # backup, apply and postflight did not run
    assert query(pgsafe_db, "SELECT version FROM pgsafe.migrations") == [("001",)]
    log = events(tmp_path / "logs/migrations.jsonl")
    assert log[-1]["event"] == "pipeline_failed" and log[-1]["exit_code"] == 1
    # The plan says the same without --apply.
    res = run("apply", str(migs), "--db", pgsafe_db.dsn, cwd=tmp_path)
    assert res.returncode == 1 and "apply --apply would stop here" in res.stderr

    res = apply(pgsafe_db, migs, tmp_path, "--force")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "forced" in res.stdout
    assert query(pgsafe_db, "SELECT version FROM pgsafe.migrations ORDER BY 1") == [
        ("001",),
        ("002",),
    ]
    forced = [
        e for e in events(tmp_path / "logs/migrations.jsonl") if e["event"] == "preflight_forced"
    ]
    assert forced and forced[-1]["failed"] == ["schema-drift"]
    # The forced run recorded the schema it left: no drift any more.
    res = run("preflight", str(migs), "--db", pgsafe_db.dsn, cwd=tmp_path)
    assert res.returncode == 0, res.stdout


def test_exit_2_migration_failure_and_slow_warning(pgsafe_db, tmp_path):
    migs = write(
        tmp_path / "m",
        {
            "001_slow.sql": "CREATE TABLE s (id int);\nSELECT pg_sleep(0.05);\n",
            "002_broken.sql": "INSERT INTO s VALUES (1);\nSELECT 1 / 0;\n",
        },
    )
    res = apply(pgsafe_db, migs, tmp_path, "--slow-warning", "10ms")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "002_broken failed at" in res.stderr and "22012" in res.stderr
    assert "warning: 001_slow took" in res.stdout and "longer than 0.01s" in res.stdout
    assert "SLOW" in res.stdout and "stopped (exit 2)" in res.stdout
    log = events(tmp_path / "logs/migrations.jsonl")
    slow = [e for e in log if e["event"] == "slow_migration"]
    assert [e["version"] for e in slow] == ["001"] and slow[0]["seconds"] >= 0.05
    assert slow[0]["estimate"]  # the dry-run's estimate beside the actual
    assert log[-1]["event"] == "pipeline_failed" and log[-1]["step"] == "apply"
    assert query(pgsafe_db, "SELECT count(*) FROM s") == [("0",)]
    # Fixed, it runs; under the default threshold (5 min) nothing is flagged.
    write(migs, {"002_broken.sql": "INSERT INTO s VALUES (1);\nSELECT pg_sleep(0.05);\n"})
    res = apply(pgsafe_db, migs, tmp_path, "--log-dir", "")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "longer than" not in res.stdout and "slower than" not in res.stdout


def _production_ready(migs: Path) -> None:
    write_manifest(migs)


def test_exit_2_when_the_backup_step_fails(pgsafe_db, tmp_path):
    migs = write(
        tmp_path / "m",
        {"001_t.up.sql": "CREATE TABLE t (id int);\n", "001_t.down.sql": "DROP TABLE t;\n"},
    )
    _production_ready(migs)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    res = apply(
        pgsafe_db, migs, tmp_path, "--env", "production", "--backup-dir", str(blocker / "sub")
    )
    assert res.returncode == 2, res.stdout + res.stderr
    if importlib.util.find_spec("pgsafe.backup.core") is None:
        assert "requires a backup" in res.stderr
    else:
        assert "backup failed" in res.stderr
    assert "nothing was applied" in res.stderr
    assert query(pgsafe_db, "SELECT to_regclass('t') IS NULL") == [("t",)]
    # Production refuses to skip the backup: a usage error, nothing touched.
    res = apply(pgsafe_db, migs, tmp_path, "--env", "production", "--no-backup")
    assert res.returncode == 5 and "--no-backup is refused by the production policy" in res.stderr
    assert query(pgsafe_db, "SELECT to_regclass('t') IS NULL") == [("t",)]


def test_exit_3_postflight_failure(pgsafe_db, tmp_path):
    pytest.importorskip("pgsafe.lifecycle.postflight", reason="postflight is not in this build")
    migs = write(
        tmp_path / "m",
        {
            "001_parent.sql": "CREATE TABLE parent (id int PRIMARY KEY);\n"
            "CREATE TABLE child (id int, parent_id int);\n"
            "INSERT INTO child VALUES (1, 42);\n",
            "002_fk.sql": "ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY "
            "(parent_id) REFERENCES parent (id) NOT VALID;\n",
        },
    )
    res = apply(pgsafe_db, migs, tmp_path)
    assert res.returncode == 3, res.stdout + res.stderr
    assert res.stderr.startswith("pgsafe: error: postflight failed")
    assert "child_parent_fk" in res.stdout and "orphan" in res.stdout.lower(), res.stdout
    assert list((tmp_path / "logs").glob("postflight-report-*.json"))
    log = events(tmp_path / "logs/migrations.jsonl")
    assert log[-1]["event"] == "pipeline_failed" and log[-1]["exit_code"] == 3
    assert query(pgsafe_db, "SELECT count(*) FROM pgsafe.migrations") == [("2",)]


def test_rollback_warns_about_data_loss_and_needs_confirmation(pgsafe_db, tmp_path):
    migs = write(tmp_path / "m", ITEMS)
    assert apply(pgsafe_db, migs, tmp_path, "--log-dir", "").returncode == 0

    res = rollback(pgsafe_db, migs, tmp_path, "--steps", "2")
    assert res.returncode == 0, res.stderr
    assert (
        "warning: data loss: 002_items_note (002_items_note.down.sql:1): DROP COLUMN "
        "items.note: 2 non-null values lost" in res.stdout
    )
    assert "001_items (001_items.down.sql:1): DROP TABLE items: 3 rows lost" in res.stdout

    # Staging: no terminal and no --yes: refused with the usage code, nothing touched.
    res = rollback(pgsafe_db, migs, tmp_path, "--steps", "2", "--apply", "--env", "staging")
    assert res.returncode == 5, res.stdout + res.stderr
    assert "needs confirmation" in res.stderr and "--yes" in res.stderr
    assert query(pgsafe_db, "SELECT count(*) FROM items") == [("3",)]

    res = rollback(pgsafe_db, migs, tmp_path, "--apply", "--env", "staging", "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "rolled back 1 migration(s)" in res.stdout
    log = events(tmp_path / "logs/migrations.jsonl")
    confirmed = [e for e in log if e["event"] == "rollback_confirmed"]
    assert confirmed[0]["confirmed_by"] == "--yes"
    assert confirmed[0]["data_loss"][0]["target"] == "items.note"
    assert confirmed[0]["data_loss"][0]["rows"] == 2
    # The rollback recorded its schema too: preflight sees no drift.
    assert query(pgsafe_db, "SELECT source FROM pgsafe.fingerprints ORDER BY id DESC LIMIT 1") == [
        ("rollback",)
    ]
    assert run("preflight", str(migs), "--db", pgsafe_db.dsn, cwd=tmp_path).returncode == 0

    # Local needs no confirmation.
    res = rollback(pgsafe_db, migs, tmp_path, "--apply")
    assert res.returncode == 0 and query(pgsafe_db, "SELECT to_regclass('items')") == [(None,)]


def test_exit_4_irreversible_and_5_config(pgsafe_db, tmp_path):
    migs = write(tmp_path / "m", {"001_a.sql": "CREATE TABLE a (id int);\n"})
    assert apply(pgsafe_db, migs, tmp_path, "--log-dir", "").returncode == 0
    res = rollback(pgsafe_db, migs, tmp_path, "--apply", "--yes")
    assert res.returncode == 4
    assert "001_a: no down file (irreversible)" in res.stderr
    # A backup can undo it: without one (or without pgsafe.backup.core) nothing is touched.
    res = rollback(pgsafe_db, migs, tmp_path, "--apply", "--from-backup", "--yes")
    if importlib.util.find_spec("pgsafe.backup.core") is None:
        assert res.returncode == 5 and "needs pgsafe.backup.core" in res.stderr
    else:
        assert res.returncode == 4 and "no backup in backups/migrations" in res.stderr
    assert query(pgsafe_db, "SELECT to_regclass('a') IS NOT NULL") == [("t",)]
    res = run("apply", str(migs), "--db", pgsafe_db.dsn, "--apply", "--env", "qa")
    assert res.returncode == 5 and "invalid choice: 'qa'" in res.stderr
    (tmp_path / "pgsafe.toml").write_text("[policy.local]\nbackup = 'sometimes'\n")
    res = apply(pgsafe_db, migs, tmp_path)
    assert res.returncode == 5
    assert "pgsafe.toml: policy.local.backup must be one of" in res.stderr


def _on_terminal(argv: list[str], answer: bytes, cwd: Path) -> tuple[int, str]:
    """Runs the CLI with a pseudo-terminal as stdin/stdout, answers its prompt with `answer`."""
    import os
    import pty
    import subprocess
    import time

    from helpers import PGSAFE, cli_env

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(PGSAFE), *argv], stdin=slave, stdout=slave, stderr=slave, env=cli_env(), cwd=cwd
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    try:
        while b"Type 'yes'" not in out:
            assert time.monotonic() < deadline, out
            out += os.read(master, 4096)
        os.write(master, answer)
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        return proc.wait(timeout=60), out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_rollback_confirmation_at_a_terminal(pgsafe_db, tmp_path):
    migs = write(tmp_path / "m", ITEMS)
    assert apply(pgsafe_db, migs, tmp_path, "--log-dir", "").returncode == 0
    argv = ["rollback", str(migs), "--db", pgsafe_db.dsn, "--apply", "--env", "production"]
    code, out = _on_terminal(argv, b"no\n", tmp_path)
    assert code == 5 and "not confirmed; nothing was touched" in out, out
    assert "items.note: 2 non-null values lost" in out
    assert query(pgsafe_db, "SELECT count(note) FROM items") == [("2",)]
    code, out = _on_terminal(argv, b"yes\n", tmp_path)
    assert code == 0 and "rolled back 1 migration(s)" in out, out
    assert query(pgsafe_db, "SELECT count(*) FROM pgsafe.migrations WHERE status = 'applied'") == [
        ("1",)
    ]


def test_production_pipeline_backs_up_verifies_and_restores(pgsafe_db, tmp_path):
    pytest.importorskip(
        "pgsafe.backup.core", reason="backups (pgsafe.backup.core) are not in this build"
    )
    migs = write(tmp_path / "m", ITEMS)
    assert apply(pgsafe_db, migs, tmp_path, "--to", "001", "--log-dir", "").returncode == 0
    write_manifest(migs)
    backups = tmp_path / "backups"

    # Standalone preflight in production wants a recent verified backup.
    res, checks = production_preflight(pgsafe_db, migs, tmp_path, backups)
    assert res.returncode == 1 and checks["backup"]["status"] == "fail"
    assert "no backup in" in checks["backup"]["summary"]

    # apply --apply takes the backup itself (the touched table only), verified, then applies.
    res = apply(pgsafe_db, migs, tmp_path, "--env", "production", "--backup-dir", str(backups))
    assert res.returncode == 0, res.stdout + res.stderr
    (path,) = backups.glob("backup-*.sql.zst")
    (line,) = [x for x in res.stdout.splitlines() if x.startswith("backup ")]
    assert line.split()[1] == "ok" and f"{path} (items)" in line, line
    log = events(tmp_path / "logs/migrations.jsonl")
    done = [e for e in log if e["event"] == "backup_done"]
    assert done and done[0]["path"] == str(path) and done[0]["verified"] is True
    assert query(pgsafe_db, "SELECT count(note) FROM items") == [("2",)]

    # Now the standalone preflight finds it (verified, fresh); a 0-hour limit makes it too old.
    res, checks = production_preflight(pgsafe_db, migs, tmp_path, backups)
    assert checks["backup"]["status"] in ("pass", "skip"), checks["backup"]  # nothing pending
    write(
        migs,
        {
            "003_more.up.sql": "ALTER TABLE items ADD COLUMN more int;\n",
            "003_more.down.sql": "ALTER TABLE items DROP COLUMN more;\n",
        },
    )
    write_manifest(migs)
    res, checks = production_preflight(pgsafe_db, migs, tmp_path, backups)
    assert checks["backup"]["status"] == "pass", checks["backup"]
    assert "verified backup" in checks["backup"]["summary"]
    (tmp_path / "pgsafe.toml").write_text("[policy.production]\nmax_backup_age_hours = 0\n")
    res, checks = production_preflight(pgsafe_db, migs, tmp_path, backups)
    assert checks["backup"]["status"] == "fail" and "too old" in checks["backup"]["summary"]
    (tmp_path / "pgsafe.toml").unlink()
    (migs / "003_more.up.sql").unlink()
    (migs / "003_more.down.sql").unlink()
    write_manifest(migs)

    # Roll 002 back from that backup: items as it was before 002 (no note column).
    res = rollback(
        pgsafe_db,
        migs,
        tmp_path,
        "--apply",
        "--from-backup",
        "--backup-dir",
        str(backups),
        "--env",
        "production",
        "--yes",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert query(pgsafe_db, "SELECT count(*) FROM items") == [("3",)]
    assert query(
        pgsafe_db,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'items'"
        " AND column_name = 'note'",
    ) == [("0",)]
    assert query(pgsafe_db, "SELECT version, status FROM pgsafe.migrations ORDER BY 1") == [
        ("001", "applied"),
        ("002", "rolled_back"),
    ]
    res = run("preflight", str(migs), "--db", pgsafe_db.dsn, "--format", "json", cwd=tmp_path)
    assert res.returncode == 0, res.stdout  # the restore recorded its schema: no drift
