"""Every major of the version matrix, as a user meets it with nothing set but the installed
binaries (the server wheels for 16 and 18): apply, dry-run with observed locks, backup, restore
with the schema fingerprint equal, verify-backup and `pgsafe test` on a target of that major;
dry-run and `pgsafe test` on a throwaway server of the major asked for; a migration needing an
extension the server lacks is "not checked", not failed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import has_extension, pgsafe, write
from pgsafe.server import TemporaryDatabase, TemporaryServer

pytestmark = pytest.mark.pg_matrix

ROOT = Path(__file__).resolve().parent.parent


def test_lifecycle_on_a_target_of_each_major(
    pgsafe_db: TemporaryDatabase, target: TemporaryDatabase, pg_major: int, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", migrations)
    db = pgsafe_db.dsn
    res = pgsafe("apply", str(migrations), "--db", db, "--apply", "--to", "001", "--log-dir", "")
    assert res.returncode == 0, res.stderr

    # dry-run: the pending migration traced on a throwaway server of the target's major.
    res = pgsafe("dry-run", str(migrations), "--db", db, "--format", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["traced"] is True and doc["reason"] is None, res.stderr
    assert doc["server_version"] == pg_major
    assert doc["server"].startswith(f"PostgreSQL {pg_major}.")
    (mig,) = doc["migrations"]
    assert mig["traced"] is True
    observed = [s["observed_locks"] for s in mig["statements"]]
    assert observed[0][0]["mode"] == "AccessExclusiveLock"  # ADD COLUMN
    assert observed[1][0]["mode"] == "ShareUpdateExclusiveLock"  # CREATE INDEX CONCURRENTLY
    md = pgsafe("dry-run", str(migrations), "--db", db)
    assert f"**Observed locks:** traced on PostgreSQL {pg_major}." in md.stdout

    res = pgsafe("apply", str(migrations), "--db", db, "--apply", "--log-dir", "")
    assert res.returncode == 0, res.stderr
    with pgsafe_db.connect() as conn:
        conn.execute(
            "INSERT INTO qc_jobs (org_id, job_type)"
            " SELECT gen_random_uuid(), 'x' FROM generate_series(1, 500)"
        )

    # backup (pg_dump of the target's major), restore, schema and data equal.
    out = tmp_path / "backups"
    res = pgsafe("backup", "--db", db, "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    backup = Path(json.loads(res.stdout)["path"])
    manifest = json.loads(Path(f"{backup}.manifest.json").read_text())
    assert manifest["server_version"] // 10000 == pg_major
    assert manifest["pg_dump_version"].startswith(f"{pg_major}.")
    res = pgsafe("restore", str(backup), "--db", target.dsn)
    assert res.returncode == 0, res.stderr
    res = pgsafe("schema", "diff", db, target.dsn)
    assert res.returncode == 0, res.stdout + res.stderr
    with target.connect() as conn:
        assert conn.execute("SELECT count(*) FROM qc_jobs").rows == [("500",)]

    # verify-backup: restored on a throwaway server of the backup's major.
    res = pgsafe("verify-backup", str(backup), "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["ok"] is True

    # pgsafe test on a throwaway server of this major.
    res = pgsafe("test", str(migrations), "--pg-version", str(pg_major), "--format", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["passed"] is True and report["server_version"] == pg_major
    assert report["not_checked"] == {}
    text = pgsafe("test", str(migrations), "--pg-version", str(pg_major), "--no-stairway")
    assert f" on PostgreSQL {pg_major}." in text.stdout.splitlines()[1]


def test_dry_run_from_scratch_runs_on_the_major_asked_for(pg_major: int, tmp_path: Path) -> None:
    migrations = write(
        tmp_path / "migrations",
        {
            "001_t.up.sql": "CREATE TABLE t (id int PRIMARY KEY, v text);\n",
            "002_v.up.sql": "CREATE INDEX CONCURRENTLY t_v ON t (v);\n",
        },
    )
    res = pgsafe("dry-run", str(migrations), "--pg-version", str(pg_major), "--format", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["traced"] is True and doc["server_version"] == pg_major
    locks = doc["migrations"][1]["statements"][0]["observed_locks"]
    assert [x["mode"] for x in locks] == ["ShareUpdateExclusiveLock"]
    # The major from the environment, as from the flag.
    env = {"PGSAFE_PG_VERSION": str(pg_major)}
    res = pgsafe("dry-run", str(migrations), "--format", "json", env=env)
    assert json.loads(res.stdout)["server_version"] == pg_major, res.stderr


def test_a_missing_extension_is_not_checked_rather_than_failed(
    pgsafe_server: TemporaryServer, pg_major: int, tmp_path: Path
) -> None:
    missing = next(
        (e for e in ("pgcrypto", "citext", "hstore") if not has_extension(pgsafe_server, e)),
        None,
    )
    if missing is None:
        pytest.skip(f"{pgsafe_server.installation.describe()} has every extension tried")
    migrations = write(
        tmp_path / "migrations",
        {
            "001_t.up.sql": "CREATE TABLE t (id int PRIMARY KEY);\n",
            "001_t.down.sql": "DROP TABLE t;\n",
            "002_ext.up.sql": f"CREATE EXTENSION IF NOT EXISTS {missing};\n",
            "002_ext.down.sql": f"DROP EXTENSION {missing};\n",
            "003_u.up.sql": "ALTER TABLE t ADD COLUMN u int;\n",
        },
    )
    version = str(pg_major)
    res = pgsafe("test", str(migrations), "--pg-version", version, "--format", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["passed"] is True
    # 002_ext is not checked, and 003_u, which comes after it, is named as not reached.
    assert set(report["not_checked"]) == {"002_ext"}
    why = report["not_checked"]["002_ext"]
    assert f"extension {missing}" in why and f"PostgreSQL {pg_major}" in why
    passed = {c["migration"] for c in report["checks"] if c["status"] == "pass"}
    assert passed - {None} == {"001_t"}  # None: the whole run's baseline parity
    skipped = [c for c in report["checks"] if c["status"] == "skip"]
    assert any("003_u" in json.dumps(c) for c in skipped)
    assert f"002_ext not checked: needs the extension {missing}" in res.stderr

    res = pgsafe("dry-run", str(migrations), "--pg-version", version, "--format", "json")
    doc = json.loads(res.stdout)
    assert doc["traced"] is True
    notes = {m["name"]: (m["traced"], m["trace_note"]) for m in doc["migrations"]}
    assert notes["001_t"] == (True, None)
    assert notes["002_ext"][0] is False and f"extension {missing}" in notes["002_ext"][1]
    assert notes["003_u"][0] is False

    # Nothing left to check: one line, exit 5.
    (migrations / "001_t.up.sql").unlink()
    (migrations / "001_t.down.sql").unlink()
    res = pgsafe("test", str(migrations), "--pg-version", version)
    assert res.returncode == 5, res.stdout + res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("pgsafe: error: nothing to check:")
