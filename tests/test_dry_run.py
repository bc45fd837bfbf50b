"""`pgsafe dry-run`: the seed-000 report from the example migrations, as JSON (the contract in
DESIGN.md) and Markdown (a snapshot), with checksums that `sha256sum -c` accepts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from pgsafe.lifecycle.dryrun import dry_run
from pgsafe.sources.layouts import discover

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "migrations"
SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "dry_run_migrations.md"
PGSAFE = str(Path(sys.executable).parent / "pgsafe")


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    return subprocess.run(
        [PGSAFE, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def test_json_contract_on_the_example_migrations():
    res = run("dry-run", "migrations", "--format", "json")
    assert res.returncode in (0, 1), res.stderr
    doc = json.loads(res.stdout)
    names = [m["name"] for m in doc["migrations"]]
    assert names == ["000_baseline", "001_create_job_dlq", "002_add_heartbeat_column"]
    for m in doc["migrations"]:
        assert re.fullmatch(r"[0-9a-f]{64}", m["checksum"])
        for s in m["statements"]:
            assert set(s) >= {
                "sql",
                "line",
                "hazards",
                "predicted_lock",
                "observed_locks",
                "rewrites",
            }
    m1 = doc["migrations"][1]
    # Traced: the policy's subquery reads org_members (a lock that blocks only DDL).
    assert m1["lock_impact"].startswith("AccessShareLock on org_members (blocks DDL only")
    assert m1["risk"] == "LOW"
    assert "CREATE INDEX (6 indexes)" in m1["operations"]
    assert "CREATE POLICY (2 policies)" in m1["operations"]
    predicted = [(s["line"], s["predicted_lock"]) for s in m1["statements"] if s["predicted_lock"]]
    # the two policies' subqueries read org_members
    assert predicted == [(50, "AccessShareLock"), (54, "AccessShareLock")]
    m2 = doc["migrations"][2]
    locks = [(s["predicted_lock"], s["relation"]) for s in m2["statements"]]
    sue = ("ShareUpdateExclusiveLock", "qc_jobs")
    assert locks == [("AccessExclusiveLock", "qc_jobs"), sue, sue, sue]
    assert ["not-transactional" in s["hazards"] for s in m2["statements"]] == [
        False,
        True,
        True,
        False,
    ]
    assert {"blocks-reads", "blocks-writes"} <= set(m2["statements"][0]["hazards"])
    assert m2["rollback"]["sql"].count("DROP") == 3


def normalise(markdown: str) -> str:
    return re.sub(r"\*\*Generated:\*\* \S+", "**Generated:** DATE", markdown)


def test_markdown_snapshot():
    report = dry_run(discover(MIGRATIONS))
    text = normalise(report.to_markdown()).replace(str(MIGRATIONS), "migrations")
    if os.environ.get("PGSAFE_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), "run with PGSAFE_UPDATE_SNAPSHOTS=1 to accept changes"
    # The seed-000 structure.
    for heading in (
        "# Migration Dry-Run Report",
        "## Executive Summary",
        "| Migration | Status | Risk | Lock Impact | Est. Runtime |",
        "## Migration 001: ",
        "### SQL Analysis",
        "**Operations:**",
        "**Lock Analysis:**",
        "**Risk Assessment:**",
        "### Rollback SQL",
        "## Destructive Statement Analysis",
        "## Checksum Verification",
    ):
        assert heading in text


def test_checksums_verify_with_sha256sum(tmp_path: Path):
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, copy)
    res = run("dry-run", str(copy), "--write-checksums", "--out", str(tmp_path / "r.md"))
    assert res.returncode in (0, 1), res.stderr
    lines = (copy / "checksum.txt").read_text().splitlines()
    assert len(lines) == 6
    ok = subprocess.run(
        ["sha256sum", "-c", "checksum.txt"], cwd=copy, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (copy / "001_create_job_dlq.up.sql").write_text("-- tampered\n")
    bad = subprocess.run(
        ["sha256sum", "-c", "checksum.txt"], cwd=copy, capture_output=True, text=True
    )
    assert bad.returncode == 1 and "001_create_job_dlq.up.sql: FAILED" in bad.stdout


def test_irreversible_and_destructive_migrations(tmp_path: Path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_drop_legacy.sql").write_text("ALTER TABLE accounts DROP COLUMN IF EXISTS legacy;\n")
    res = run("dry-run", str(d))
    assert "**none — irreversible**" in res.stdout
    assert "## Destructive Statement Analysis" in res.stdout
    section = res.stdout.split("## Destructive Statement Analysis", 1)[1]
    assert "NONE DETECTED" not in section.split("## Checksum", 1)[0]


def test_destructive_statements_need_approval_even_when_suppressed(tmp_path: Path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_a.sql").write_text(
        "-- pgsafe: ignore ban-drop-column reason: unused since v2\n"
        "ALTER TABLE users DROP COLUMN legacy;\n"
    )
    (d / "002_b.sql").write_text("DROP INDEX CONCURRENTLY IF EXISTS idx_users_hot;\n")
    (d / "003_c.sql").write_text("TRUNCATE audit_log;\n")
    res = run("dry-run", str(d), "--format", "json")
    doc = json.loads(res.stdout)
    assert doc["status"] != "ready"
    whats = [x["what"] for m in doc["migrations"] for x in m["destructive"]]
    assert whats == ["DROP COLUMN", "DROP INDEX", "TRUNCATE"]
    assert doc["migrations"][0]["status"] == "Needs approval"


def test_only_pending_migrations_with_db(pgsafe_db, tmp_path: Path):
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, copy)
    assert (
        run(
            "apply", str(copy), "--db", pgsafe_db.dsn, "--apply", "--to", "001", "--log-dir", ""
        ).returncode
        == 0
    )
    res = run("dry-run", str(copy), "--db", pgsafe_db.dsn, "--format", "json")
    doc = json.loads(res.stdout)
    assert [m["name"] for m in doc["migrations"]] == ["002_add_heartbeat_column"]
    assert "pending on" in doc["environment"]
