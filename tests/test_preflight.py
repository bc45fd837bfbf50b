"""`pgsafe preflight` against real databases: approvals under the production policy, schema drift
after a manual ALTER, a tampered applied file, the checksum manifest, long transactions, the
JSON report file and --force."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from helpers import apply_args, query, write
from helpers import pgsafe as run
from pgsafe.sources.checksums import write_manifest
from pgsafe.sources.layouts import discover

DROP_COLUMN = {
    "001_accounts.up.sql": "CREATE TABLE accounts (id bigint PRIMARY KEY, legacy text);\n",
    "001_accounts.down.sql": "DROP TABLE accounts;\n",
    "002_drop_legacy.up.sql": "ALTER TABLE accounts DROP COLUMN legacy;\n",
    "002_drop_legacy.down.sql": "ALTER TABLE accounts ADD COLUMN legacy text;\n",
}


def preflight(db, migs: Path, cwd: Path, *extra: str):
    res = run("preflight", str(migs), "--db", db.dsn, "--format", "json", *extra, cwd=cwd)
    assert res.returncode in (0, 1), res.stderr
    doc = json.loads(res.stdout)
    return res, doc, {c["name"]: c for c in doc["checks"]}


def first_applied(db, tmp_path: Path) -> Path:
    """DROP_COLUMN written to tmp_path/m, 001 applied and 002 pending."""
    migs = write(tmp_path / "m", DROP_COLUMN)
    assert run(*apply_args(migs, db, "", "--to", "001")).returncode == 0
    return migs


def needs_probe() -> None:
    pytest.importorskip(
        "pgsafe.lifecycle.probe",
        reason="lock probing (pgsafe.lifecycle.probe) is not in this build",
    )


def approval(migs: Path, approver: str, version: str = "002") -> str:
    mig = next(m for m in discover(migs) if m.version == version)
    return (
        f'[[approval]]\nmigration = "{mig.label}"\nrule = "DROP COLUMN"\n'
        f'approver = "{approver}"\nreason = "legacy unused since v2.3, exported (JIRA-123)"\n'
        f'date = 2026-11-20\nchecksum = "{mig.checksum}"\n'
    )


@pytest.fixture
def prod_cwd(tmp_path: Path) -> Path:
    """A working directory whose pgsafe.toml leaves the backup out of the production policy
    (this test is about approvals; backups have their own tests)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "pgsafe.toml").write_text('[policy.production]\nbackup = "off"\n')
    return cwd


def test_production_drop_column_needs_two_distinct_current_approvals(pgsafe_db, tmp_path, prod_cwd):
    migs = first_applied(pgsafe_db, tmp_path)
    write_manifest(migs)
    args = ("--env", "production")

    res, doc, checks = preflight(pgsafe_db, migs, prod_cwd, *args)
    assert res.returncode == 1 and doc["ok"] is False and doc["environment"] == "production"
    assert checks["approvals"]["status"] == "fail", checks["approvals"]
    assert "002_drop_legacy line 1: DROP COLUMN" in checks["approvals"]["evidence"][0]
    assert "approvals" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    # Everything else passes: the failure is the approvals alone.
    assert doc["failed"] == ["approvals"]

    # One approver, even listed twice, is not two.
    (migs / "approvals.toml").write_text(approval(migs, "alice") + approval(migs, "alice"))
    write_manifest(migs)
    res, doc, checks = preflight(pgsafe_db, migs, prod_cwd, *args)
    assert res.returncode == 1 and "(1/2)" in checks["approvals"]["evidence"][0]

    (migs / "approvals.toml").write_text(approval(migs, "alice") + approval(migs, "bob"))
    res, doc, checks = preflight(pgsafe_db, migs, prod_cwd, *args)
    assert res.returncode == 0, checks
    assert checks["approvals"]["status"] == "pass"
    assert "alice, bob (2/2)" in checks["approvals"]["evidence"][0]
    # Local needs no approval: the same changes only warn there.
    res, doc, checks = preflight(pgsafe_db, migs, prod_cwd, "--env", "local")
    assert res.returncode == 0 and checks["approvals"]["status"] == "warn"

    # Editing the approved file invalidates both approvals (and the manifest says so too).
    path = migs / "002_drop_legacy.up.sql"
    path.write_text(path.read_text() + "ALTER TABLE accounts DROP COLUMN IF EXISTS other;\n")
    res, doc, checks = preflight(pgsafe_db, migs, prod_cwd, *args)
    assert res.returncode == 1
    assert checks["approvals"]["status"] == "fail"
    assert "no longer counts" in " ".join(checks["approvals"]["evidence"])
    assert "alice, bob" in " ".join(checks["approvals"]["evidence"])
    assert checks["checksum-manifest"]["status"] == "fail"
    assert "002_drop_legacy.up.sql" in checks["checksum-manifest"]["summary"]


def test_local_approvals_only_warn_and_report_file_is_written(pgsafe_db, tmp_path):
    migs = write(tmp_path / "m", DROP_COLUMN)
    res = run("preflight", str(migs), "--db", pgsafe_db.dsn, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PASSED" in res.stdout and "approvals" in res.stdout
    reports = list((tmp_path / "logs").glob("preflight-report-*.json"))
    assert len(reports) == 1 and f"report: logs/{reports[0].name}" in res.stdout
    doc = json.loads(reports[0].read_text())
    checks = {c["name"]: c for c in doc["checks"]}
    assert doc["ok"] is True and doc["environment"] == "local"
    assert checks["ledger"]["summary"].startswith("2 pending, 0 applied")
    assert [p["version"] for p in doc["pending"]] == ["001", "002"]
    assert checks["approvals"]["status"] == "warn"
    assert (
        checks["server"]["status"] == "pass" and "server_version" in checks["server"]["evidence"][0]
    )
    assert checks["migration-files"]["status"] == "pass"
    # Read-only: preflight created nothing on the database.
    assert query(pgsafe_db, "SELECT to_regnamespace('pgsafe') IS NULL") == [("t",)]


def test_schema_drift_after_a_manual_alter(pgsafe_db, tmp_path):
    migs = first_applied(pgsafe_db, tmp_path)
    res, _doc, checks = preflight(pgsafe_db, migs, tmp_path)
    assert res.returncode == 0 and checks["schema-drift"]["status"] == "pass"
    assert "matches the one recorded by the last apply" in checks["schema-drift"]["summary"]
    assert checks["sizes"]["evidence"][0].startswith("accounts: ")

    with pgsafe_db.connect() as conn:
        conn.execute("ALTER TABLE accounts ADD COLUMN hotfix int")
    res, _doc, checks = preflight(pgsafe_db, migs, tmp_path)
    assert res.returncode == 1
    drift = checks["schema-drift"]
    assert drift["status"] == "fail" and "changed outside pgsafe" in drift["summary"]
    assert "added: column public.accounts.hotfix" in drift["evidence"], drift
    assert "schema-drift" in res.stderr

    # --force goes on, and says so in the report and the event log.
    res = run("preflight", str(migs), "--db", pgsafe_db.dsn, "--force", cwd=tmp_path)
    assert res.returncode == 0 and "forced" in res.stdout.lower()
    events = [json.loads(x) for x in (tmp_path / "logs/migrations.jsonl").read_text().splitlines()]
    forced = [e for e in events if e["event"] == "preflight_forced"]
    assert forced and forced[-1]["failed"] == ["schema-drift"]
    newest = sorted((tmp_path / "logs").glob("preflight-report-*.json"))[-1]
    assert json.loads(newest.read_text())["forced"] is True

    # Accepting the manual change (repair records the schema as it is) clears the drift.
    res = run(
        "repair",
        "001",
        str(migs),
        "--db",
        pgsafe_db.dsn,
        "--mark",
        "applied",
        "--reason",
        "hotfix column kept",
        "--log-dir",
        "",
    )
    assert res.returncode == 0, res.stderr
    res, _doc, checks = preflight(pgsafe_db, migs, tmp_path)
    assert res.returncode == 0 and checks["schema-drift"]["status"] == "pass", checks
    assert "recorded by the last repair" in checks["schema-drift"]["summary"]
    # And undoing it by hand is drift again.
    with pgsafe_db.connect() as conn:
        conn.execute("ALTER TABLE accounts DROP COLUMN hotfix")
    res, _doc, checks = preflight(pgsafe_db, migs, tmp_path)
    assert res.returncode == 1
    assert "removed: column public.accounts.hotfix" in checks["schema-drift"]["evidence"]


def test_tampered_applied_file_and_manifest(pgsafe_db, tmp_path):
    migs = first_applied(pgsafe_db, tmp_path)
    write_manifest(migs)
    res, doc, checks = preflight(pgsafe_db, migs, tmp_path, "--env", "ci")
    assert checks["checksum-manifest"]["status"] == "pass"
    path = migs / "001_accounts.up.sql"
    path.write_text(path.read_text().replace("legacy text", "legacy varchar"))
    res, doc, checks = preflight(pgsafe_db, migs, tmp_path, "--env", "ci")
    assert res.returncode == 1
    assert checks["ledger"]["status"] == "fail"
    assert "001_accounts: file changed after it was applied" in checks["ledger"]["evidence"][0]
    assert checks["checksum-manifest"]["status"] == "fail"
    assert set(doc["failed"]) == {"ledger", "checksum-manifest"}


def test_long_transaction_fails_preflight_until_it_ends(pgsafe_db, tmp_path):
    needs_probe()
    migs = write(tmp_path / "m", DROP_COLUMN)
    (tmp_path / "pgsafe.toml").write_text("[policy.local]\nlong_transaction_s = 1\n")
    holder = pgsafe_db.connect(application_name="long-report")
    try:
        holder.execute("BEGIN")
        holder.execute("SELECT txid_current()")
        time.sleep(1.5)
        res, _doc, checks = preflight(pgsafe_db, migs, tmp_path)
        assert res.returncode == 1
        assert checks["long-transactions"]["status"] == "fail", checks["long-transactions"]
        assert str(holder.backend_pid) in " ".join(checks["long-transactions"]["evidence"])
        holder.execute("COMMIT")
        res, _doc, checks = preflight(pgsafe_db, migs, tmp_path)
        assert res.returncode == 0, checks
        assert checks["long-transactions"]["status"] == "pass"
    finally:
        holder.close()


def test_blocked_session_fails_preflight_and_own_sessions_do_not(pgsafe_db, tmp_path):
    import threading

    needs_probe()
    migs = first_applied(pgsafe_db, tmp_path)
    holder = pgsafe_db.connect(application_name="app-holder")
    waiter = pgsafe_db.connect(application_name="app-reader")
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
    reader = threading.Thread(target=lambda: waiter.execute("SELECT count(*) FROM accounts"))
    reader.start()
    try:
        time.sleep(0.3)
        res, _doc, checks = preflight(pgsafe_db, migs, tmp_path)
        assert res.returncode == 1
        blocking = checks["blocking-locks"]
        assert blocking["status"] == "fail", blocking
        assert f"pid {waiter.backend_pid}" in " ".join(blocking["evidence"])
        # The locked table's size is estimated, not waited for.
        assert "locked by another session" in checks["sizes"]["evidence"][0]
    finally:
        holder.execute("COMMIT")
        reader.join(10)
        holder.close()
        waiter.close()
    res, _doc, checks = preflight(pgsafe_db, migs, tmp_path)
    assert res.returncode == 0 and checks["blocking-locks"]["status"] == "pass", checks
