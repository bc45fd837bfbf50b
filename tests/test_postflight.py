"""Postflight on real PostgreSQL: each check fails on the broken state it exists for and passes
once the state is fixed; the CLI exits 3 and writes its JSON report; the fingerprint is
recorded in the ledger and drift is noticed."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from helpers import pgsafe, query, write
from pgsafe import Runner
from pgsafe.errors import ConfigError, DatabaseError, PostflightError
from pgsafe.lifecycle.postflight import (
    last_fingerprint,
    load_expectations,
    postflight,
    record_fingerprint,
)

# Runs on every major of the version matrix (tests/conftest.py).
pytestmark = pytest.mark.pg_matrix

_roles = itertools.count(1)


def run(db, sql: str) -> None:
    with db.connect(application_name="pgsafe-test") as conn:
        conn.execute(sql)


def test_not_valid_fk_with_orphans_fails_until_fixed(pgsafe_db, tmp_path: Path) -> None:
    migrations = write(
        tmp_path / "m",
        {
            "001_tables.sql": "CREATE TABLE parent (id int PRIMARY KEY);\n"
            "CREATE TABLE child (id int PRIMARY KEY, parent_id int);\n",
            "002_fk.sql": "ALTER TABLE child ADD CONSTRAINT child_parent_fk\n"
            "  FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID;\n",
        },
    )
    Runner(migrations, pgsafe_db.dsn).apply(to="001")
    run(pgsafe_db, "INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1), (2, 42)")
    Runner(migrations, pgsafe_db.dsn).apply()

    report = postflight(pgsafe_db.dsn, migrations_path=migrations)
    assert report.failed
    orphans = report.check("orphaned-rows")
    assert orphans.status == "fail"
    [fk] = orphans.evidence
    assert fk["constraint"] == "child_parent_fk"
    assert fk["orphaned_rows"] == 1
    assert fk["example_key"] == "(42)"
    not_valid = report.check("not-valid-constraints")
    assert not_valid.status == "warn"
    assert not_valid.evidence[0]["added_by"] == "002"
    assert not_valid.evidence[0]["not_valid_for"] != "unknown"

    run(pgsafe_db, "DELETE FROM child WHERE id = 2")
    report = postflight(pgsafe_db.dsn, migrations_path=migrations)
    assert report.check("orphaned-rows").status == "pass"
    assert report.ok
    run(pgsafe_db, "ALTER TABLE child VALIDATE CONSTRAINT child_parent_fk")
    assert postflight(pgsafe_db.dsn).check("not-valid-constraints").status == "pass"


def test_fk_just_added_is_checked_for_orphans(pgsafe_db, tmp_path: Path) -> None:
    # A valid FK has no orphans unless triggers were bypassed; the check still runs on it.
    migrations = write(
        tmp_path / "m",
        {
            "001_t.sql": "CREATE TABLE a (id int PRIMARY KEY);\n"
            "CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a);\n",
        },
    )
    Runner(migrations, pgsafe_db.dsn).apply()
    report = postflight(pgsafe_db.dsn, migrations_path=migrations)
    [fk] = report.check("orphaned-rows").evidence
    assert fk["why_checked"] == "added by 001"
    assert fk["orphaned_rows"] == 0


def test_invalid_index_from_failed_concurrent_build(pgsafe_db) -> None:
    run(pgsafe_db, "CREATE TABLE users (email text); INSERT INTO users VALUES ('a'), ('a')")
    with pytest.raises(DatabaseError, match="duplicated"):
        run(pgsafe_db, "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email)")
    report = postflight(pgsafe_db.dsn)
    check = report.check("invalid-indexes")
    assert check.status == "fail"
    assert check.evidence[0]["index"] == "public.users_email_key"
    run(pgsafe_db, "DROP INDEX users_email_key")
    assert postflight(pgsafe_db.dsn).check("invalid-indexes").status == "pass"


def test_rls_without_policies_and_policies_without_rls(pgsafe_db) -> None:
    run(pgsafe_db, "CREATE TABLE docs (id int); ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
    check = postflight(pgsafe_db.dsn).check("row-level-security")
    assert check.status == "fail"
    assert "no policies" in check.evidence[0]["problem"]

    run(pgsafe_db, "CREATE POLICY p ON docs USING (true)")
    assert postflight(pgsafe_db.dsn).check("row-level-security").status == "pass"

    run(pgsafe_db, "ALTER TABLE docs DISABLE ROW LEVEL SECURITY")
    check = postflight(pgsafe_db.dsn).check("row-level-security")
    assert check.status == "fail"
    assert "not enforced" in check.evidence[0]["problem"]


def test_missing_expected_view_from_expectations_file(pgsafe_db, tmp_path: Path) -> None:
    expect = tmp_path / "expectations.toml"
    expect.write_text(
        '[expect]\ntables = ["tenants"]\nviews = ["active_tenants"]\n'
        'materialized_views = ["mv_revenue"]\n'
    )
    run(pgsafe_db, "CREATE TABLE tenants (id int, active bool)")
    run(pgsafe_db, "CREATE MATERIALIZED VIEW mv_revenue AS SELECT 1 AS x")
    check = postflight(pgsafe_db.dsn, expectations=expect).check("expected-objects")
    assert check.status == "fail"
    found = {e["object"]: e["found"] for e in check.evidence}
    assert found == {"tenants": "ok", "active_tenants": "missing", "mv_revenue": "ok"}
    with pytest.raises(PostflightError, match="expected-objects: 1 of 3") as info:
        postflight(pgsafe_db.dsn, expectations=expect).raise_on_failure()
    assert info.value.exit_code == 3

    run(pgsafe_db, "CREATE VIEW active_tenants AS SELECT id FROM tenants WHERE active")
    assert postflight(pgsafe_db.dsn, expectations=expect).check("expected-objects").status == (
        "pass"
    )


@pytest.fixture
def tenant_role(pgsafe_server):
    name = f"pf_tenant_{next(_roles)}"
    pgsafe_server.execute(f"CREATE ROLE {name} NOLOGIN")
    yield name
    for db in pgsafe_server.execute(
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate"
    ).rows:
        with pgsafe_server.connect(db[0]) as conn:
            conn.execute(f"DROP OWNED BY {name}")
    pgsafe_server.execute(f"DROP ROLE {name}")


def test_tenant_probe_catches_a_leaky_policy(pgsafe_db, tenant_role: str) -> None:
    run(
        pgsafe_db,
        "CREATE TABLE docs (id int, tenant_id text);"
        "INSERT INTO docs VALUES (1, 'acme'), (2, 'acme'), (3, 'globex');"
        "ALTER TABLE docs ENABLE ROW LEVEL SECURITY;"
        f"GRANT SELECT ON docs TO {tenant_role};"
        # The classic mistake: a permissive policy meant for admins applies to everyone.
        "CREATE POLICY tenant ON docs USING (tenant_id = current_setting('app.tenant_id', true));"
        "CREATE POLICY admins ON docs USING (true)",
    )
    expectations = {"tenant_isolation": {"role": tenant_role, "tables": ["docs"]}}
    check = postflight(pgsafe_db.dsn, expectations=expectations).check("tenant-isolation")
    assert check.status == "fail"
    assert check.evidence[0]["result"].startswith("LEAK: with app.tenant_id=acme, 1 row(s)")

    run(pgsafe_db, "DROP POLICY admins ON docs")
    check = postflight(pgsafe_db.dsn, expectations=expectations).check("tenant-isolation")
    assert check.status == "pass", check.evidence
    assert "acme sees 2 own row(s)" in check.evidence[0]["result"]


def test_index_usage_spot_check(pgsafe_db) -> None:
    run(
        pgsafe_db,
        "CREATE TABLE jobs (id int, beat timestamptz); CREATE INDEX jobs_beat ON jobs (beat)",
    )
    q = "SELECT id FROM jobs WHERE beat < now()"
    good = {"index_usage": [{"query": q, "index": "jobs_beat", "enable_seqscan": False}]}
    assert postflight(pgsafe_db.dsn, expectations=good).check("index-usage").status == "pass"
    bad = {"index_usage": [{"query": "SELECT id FROM jobs WHERE id = 1", "index": "jobs_beat"}]}
    check = postflight(pgsafe_db.dsn, expectations=bad).check("index-usage")
    assert check.status == "fail"
    assert check.evidence[0]["used"] is False


def test_fingerprint_recorded_and_drift_noticed(pgsafe_db) -> None:
    assert last_fingerprint(pgsafe_db.dsn) is None
    first = postflight(pgsafe_db.dsn)
    assert first.fingerprint_recorded
    recorded = last_fingerprint(pgsafe_db.dsn)
    assert recorded is not None and recorded.sha256 == first.fingerprint_sha256
    assert recorded.source == "postflight"

    second = postflight(pgsafe_db.dsn)  # nothing changed: nothing new to record
    assert not second.fingerprint_recorded
    assert last_fingerprint(pgsafe_db.dsn).id == recorded.id  # type: ignore[union-attr]

    run(pgsafe_db, "CREATE TABLE sneaky (id int)")
    check = postflight(pgsafe_db.dsn).check("schema-fingerprint")
    assert check.status == "warn"
    assert "drift" in check.message and "sneaky" in check.message
    assert last_fingerprint(pgsafe_db.dsn).sha256 == recorded.sha256  # type: ignore[union-attr]
    again = record_fingerprint(pgsafe_db.dsn, source="test")
    assert last_fingerprint(pgsafe_db.dsn).sha256 == again.sha256 != recorded.sha256  # type: ignore[union-attr]


def test_dirty_migration_fails(pgsafe_db, tmp_path: Path) -> None:
    migrations = write(tmp_path / "m", {"001_t.sql": "CREATE TABLE t (id int);\n"})
    Runner(migrations, pgsafe_db.dsn).apply()
    run(pgsafe_db, "UPDATE pgsafe.migrations SET status = 'dirty', dirty_reason = 'test'")
    check = postflight(pgsafe_db.dsn, migrations_path=migrations).check("dirty-migrations")
    assert check.status == "fail"
    assert check.evidence == [{"version": "001", "name": "t", "reason": "test"}]


def test_cli_exit_3_and_json_report(pgsafe_db, tmp_path: Path) -> None:
    migrations = write(tmp_path / "m", {"001_t.sql": "CREATE TABLE t (id int);\n"})
    (migrations / "expectations.toml").write_text('[expect]\nviews = ["missing_view"]\n')
    logs = tmp_path / "logs"
    res = pgsafe("postflight", str(migrations), "--db", pgsafe_db.url, "--log-dir", str(logs))
    assert res.returncode == 3, res.stderr
    assert "expected-objects       FAIL" in res.stdout
    [path] = logs.glob("postflight-report-*.json")
    doc = json.loads(path.read_text())
    assert doc["status"] == "fail"
    assert {c["name"]: c["status"] for c in doc["checks"]}["expected-objects"] == "fail"

    run(pgsafe_db, "CREATE VIEW missing_view AS SELECT 1 AS x")
    res = pgsafe(
        "postflight", str(migrations), "--db", pgsafe_db.url, "--log-dir", "", "--format", "json"
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["passed"] is True


def test_bad_expectations_file_is_a_config_error(pgsafe_db, tmp_path: Path) -> None:
    bad = tmp_path / "e.toml"
    bad.write_text("[expect]\ntabels = ['x']\n")
    with pytest.raises(ConfigError, match="unknown key 'tabels'"):
        load_expectations(bad)
    res = pgsafe("postflight", "--db", pgsafe_db.url, "--expect", str(bad), "--log-dir", "")
    assert res.returncode == 5
    assert "tabels" in res.stderr
    assert query(pgsafe_db, "SELECT to_regclass('pgsafe.fingerprints') IS NULL") == [("t",)]
