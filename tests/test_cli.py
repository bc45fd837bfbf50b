"""The pgsafe command line as a user and a CI script see it: exit codes, one clear line per
failure, no password in any output, nothing touched on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import pgsafe as run
from helpers import query

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
SECRET = "s3cr3t-PASSWORD-9"


@pytest.fixture
def mig_dir(tmp_path: Path) -> Path:
    d = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, d)
    return d


def test_help_everywhere_and_usage_errors_exit_5():
    for cmd in ([], ["status"], ["apply"], ["rollback"], ["repair"]):
        res = run(*cmd, "--help")
        assert res.returncode == 0, res.stderr
        assert "usage: pgsafe" in res.stdout
    res = run("apply", "--no-such-flag")
    assert res.returncode == 5
    assert "unrecognized arguments: --no-such-flag" in res.stderr
    assert run("apply", "--lock-timeout", "soon").returncode == 5


def test_status_json_contract(pgsafe_db, mig_dir, tmp_path):
    res = run("status", str(mig_dir), "--db", pgsafe_db.dsn, "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["pending"] == 3 and doc["applied"] == 0 and doc["dirty"] == 0
    assert [m["version"] for m in doc["migrations"]] == ["000", "001", "002"]
    res = run(
        "apply", str(mig_dir), "--db", pgsafe_db.dsn, "--apply", "--log-dir", str(tmp_path / "logs")
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(run("status", str(mig_dir), "--db", pgsafe_db.dsn, "--json").stdout)
    assert doc["applied"] == 3
    first = doc["migrations"][0]
    assert set(first) >= {
        "version",
        "name",
        "state",
        "checksum",
        "applied_at",
        "duration_s",
        "retries",
        "dirty_reason",
    }
    assert first["state"] == "applied" and first["checksum"] == first["recorded_checksum"]
    events = [
        json.loads(line) for line in (tmp_path / "logs/migrations.jsonl").read_text().splitlines()
    ]
    kinds = [e["event"] for e in events]
    # apply --apply is the whole pipeline: preflight, backup, apply, postflight.
    assert kinds[0] == "pipeline_start" and kinds[-1] == "pipeline_done"
    assert kinds.index("preflight_done") < kinds.index("apply_start") < kinds.index("apply_done")
    assert kinds.count("migration_done") == 3
    assert len({e["run"] for e in events}) == 1


def test_apply_without_flag_writes_nothing(pgsafe_db, mig_dir):
    res = run("apply", str(mig_dir), "--db", pgsafe_db.dsn)
    assert res.returncode == 0, res.stderr
    assert "read-only" in res.stdout and "001_create_job_dlq: 14 statements" in res.stdout
    assert query(
        pgsafe_db, "SELECT count(*) FROM pg_namespace WHERE nspname IN ('pgsafe', 'auth')"
    ) == [("0",)]


def test_edited_file_after_apply_is_refused_until_rebaselined(pgsafe_db, mig_dir):
    assert (
        run("apply", str(mig_dir), "--db", pgsafe_db.dsn, "--apply", "--to", "001").returncode == 0
    )
    path = mig_dir / "001_create_job_dlq.up.sql"
    path.write_text(path.read_text() + "\n-- edited after it was applied\n")
    res = run("apply", str(mig_dir), "--db", pgsafe_db.dsn, "--apply")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "001" in res.stderr and "changed" in res.stderr.lower()
    assert len(res.stderr.strip().splitlines()) == 1
    # 002 was not applied behind the refusal.
    assert query(pgsafe_db, "SELECT version FROM pgsafe.migrations ORDER BY 1") == [
        ("000",),
        ("001",),
    ]
    doc = json.loads(run("status", str(mig_dir), "--db", pgsafe_db.dsn, "--json").stdout)
    assert doc["changed"] == 1 and doc["migrations"][1]["state"] == "changed"
    res = run(
        "repair",
        "001",
        str(mig_dir),
        "--db",
        pgsafe_db.dsn,
        "--rebaseline",
        "--reason",
        "comment only",
    )
    assert res.returncode == 0, res.stderr
    assert run("apply", str(mig_dir), "--db", pgsafe_db.dsn, "--apply").returncode == 0
    assert query(
        pgsafe_db, "SELECT action FROM pgsafe.history WHERE version = '001' ORDER BY id"
    ) == [("apply",), ("rebaseline",)]


def test_file_that_does_not_parse(pgsafe_db, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_ok.up.sql").write_text("CREATE TABLE ok (id int);\n")
    (d / "002_bad.up.sql").write_text(
        "CREATE TABLE fine (id int);\n\nALTER TABL broken ADD x int;\n"
    )
    res = run("apply", str(d), "--db", pgsafe_db.dsn, "--apply")
    assert res.returncode == 5
    line = res.stderr.strip()
    assert line == f'pgsafe: error: {d / "002_bad.up.sql"}:3:7: syntax error at or near "TABL"'
    # Nothing touched: not even 001, not even the ledger.
    assert query(
        pgsafe_db, "SELECT to_regclass('ok') IS NULL, to_regnamespace('pgsafe') IS NULL"
    ) == [("t", "t")]


def test_bad_file_names_and_missing_up(tmp_path, pgsafe_db):
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_a.down.sql").write_text("SELECT 1;")
    res = run("status", str(d), "--db", pgsafe_db.dsn)
    assert res.returncode == 5 and "down file without an up file" in res.stderr
    res = run("status", str(tmp_path / "nowhere"), "--db", pgsafe_db.dsn)
    assert res.returncode == 5 and "migrations directory not found" in res.stderr


def test_dsn_that_points_nowhere(mig_dir, tmp_path):
    res = run(
        "status", str(mig_dir), "--db", f"postgresql://app:{SECRET}@127.0.0.1:1/prod", timeout=60
    )
    assert res.returncode == 5
    assert "127.0.0.1:1" in res.stderr and "prod" in res.stderr
    assert SECRET not in res.stderr + res.stdout
    assert len(res.stderr.strip().splitlines()) == 1
    res = run(
        "apply",
        str(mig_dir),
        "--db",
        f"host={tmp_path}/nosock port=5999 password={SECRET}",
        "--apply",
        "--log-dir",
        str(tmp_path / "logs"),
    )
    assert res.returncode == 5
    assert SECRET not in res.stderr + res.stdout
    log = tmp_path / "logs/migrations.jsonl"
    assert not log.exists() or SECRET not in log.read_text()


def test_malformed_dsn_is_a_config_error(mig_dir):
    res = run("status", str(mig_dir), "--db", f"host=x password={SECRET} bogus")
    assert res.returncode == 5
    assert "invalid DSN" in res.stderr and SECRET not in res.stderr


@pytest.fixture
def password_user_password() -> str:
    """The password of conftest's `password_user` here: it contains SECRET, so the checks that
    SECRET shows nowhere cover the right password too."""
    return f"right-{SECRET}"


def test_wrong_password_message_has_no_password(pgsafe_server, password_user, mig_dir, tmp_path):
    dsn = (
        f"host={pgsafe_server.host} port={pgsafe_server.port} dbname=postgres "
        f"user={password_user} password={SECRET}"
    )
    res = run("status", str(mig_dir), "--db", dsn)
    assert res.returncode == 5
    assert "password authentication failed" in res.stderr
    assert SECRET not in res.stderr + res.stdout
    url = f"postgresql://{password_user}:{SECRET}@/postgres?host={pgsafe_server.host}&port={pgsafe_server.port}"
    res = run(
        "apply",
        str(mig_dir),
        "--apply",
        "-vv",
        "--log-dir",
        str(tmp_path / "logs"),
        env={"DATABASE_URL": url},
    )
    assert res.returncode == 5
    assert "password authentication failed" in res.stderr
    assert SECRET not in res.stderr + res.stdout
    # With the right password it works, and the password still shows nowhere.
    good = url.replace(SECRET, f"right-{SECRET}")
    res = run("status", str(mig_dir), "--db", good, "-vv")
    assert res.returncode == 0, res.stderr
    assert SECRET not in res.stderr + res.stdout


def test_target_from_pg_variables_and_service_file(pgsafe_db, mig_dir, tmp_path):
    server = pgsafe_db.server
    env = {
        "PGHOST": str(server.host),
        "PGPORT": str(server.port),
        "PGUSER": server.user,
        "PGDATABASE": pgsafe_db.name,
    }
    res = run("apply", str(mig_dir), "--apply", "--to", "000", env=env)
    assert res.returncode == 0, res.stderr
    service = tmp_path / "pg_service.conf"
    service.write_text(
        f"[staging]\nhost={server.host}\nport={server.port}\nuser={server.user}\n"
        f"dbname={pgsafe_db.name}\n"
    )
    res = run(
        "status",
        str(mig_dir),
        "--json",
        env={"PGSERVICEFILE": str(service), "PGSERVICE": "staging"},
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["applied"] == 1


def test_rollback_without_down_file_is_refused_before_running(pgsafe_db, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_a.up.sql").write_text("CREATE TABLE a (id int);")
    (d / "001_a.down.sql").write_text("DROP TABLE a;")
    (d / "002_b.sql").write_text("CREATE TABLE b (id int);")
    assert run("apply", str(d), "--db", pgsafe_db.dsn, "--apply").returncode == 0
    res = run("rollback", str(d), "--db", pgsafe_db.dsn, "--steps", "2", "--apply")
    assert res.returncode == 4
    assert "002_b" in res.stderr and "irreversible" in res.stderr
    assert query(
        pgsafe_db, "SELECT to_regclass('a') IS NOT NULL, to_regclass('b') IS NOT NULL"
    ) == [("t", "t")]


def test_failing_down_migration_exits_4(pgsafe_db, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_a.up.sql").write_text("CREATE TABLE a (id int);")
    (d / "001_a.down.sql").write_text("DROP TABLE a;\nSELECT 1 FROM not_there;\n")
    assert run("apply", str(d), "--db", pgsafe_db.dsn, "--apply").returncode == 0
    res = run("rollback", str(d), "--db", pgsafe_db.dsn, "--apply")
    assert res.returncode == 4
    assert f"rollback of 001_a failed at {d / '001_a.down.sql'}:2:15: " in res.stderr
    assert "42P01" in res.stderr and "nothing from it was committed" in res.stderr
    assert query(pgsafe_db, "SELECT to_regclass('a') IS NOT NULL") == [("t",)]


def test_embedded_default_applies_and_prints_status(mig_dir, tmp_path):
    res = run("apply", str(mig_dir), "--apply", "--log-dir", str(tmp_path / "logs"), timeout=180)
    assert res.returncode == 0, res.stderr
    assert "throwaway" in res.stdout
    assert "3 applied, 0 pending, 0 dirty, 0 changed" in res.stdout
