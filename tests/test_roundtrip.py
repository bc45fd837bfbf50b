"""`pgsafe test` on real PostgreSQL: it passes on the repository's migrations and names the
migration and the first differing object when a down forgets an enum type or an index, or when
a migration loses data; its JUnit XML is well-formed and names the failures."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import pgsafe, write
from pgsafe.testing.roundtrip import RoundtripReport, run_tests
from pgsafe.testing.rowgen import fill

# Runs on every major of the version matrix (tests/conftest.py).
pytestmark = pytest.mark.pg_matrix

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

TABLES_UP = """CREATE TABLE accounts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL UNIQUE,
  balance numeric(12, 2) NOT NULL
);
CREATE TABLE payments (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts,
  amount numeric(12, 2) NOT NULL,
  paid_at timestamptz NOT NULL
);
"""
TABLES_DOWN = "DROP TABLE payments;\nDROP TABLE accounts;\n"


def failures(report: RoundtripReport) -> dict[tuple[str, str, str], str | None]:
    return {(r.phase, r.check, r.migration): r.first_difference for r in report.failures}


def test_repository_migrations_pass(pgsafe_server) -> None:
    report = run_tests(MIGRATIONS, server=pgsafe_server, rows=3)
    assert report.ok, report.to_text()
    checks = {(r.phase, r.check) for r in report.results}
    assert {
        ("roundtrip", "down-parity"),
        ("roundtrip", "baseline-parity"),
        ("roundtrip", "reapply-parity"),
        ("stairway", "down-parity"),
        ("stairway", "reup-parity"),
        ("data", "data-up"),
        ("data", "data-down"),
    } <= checks
    # CREATE POLICY has no IF NOT EXISTS: 001 cannot run twice, the others can.
    assert report.idempotency() == {
        "000_baseline": True,
        "001_create_job_dlq": False,
        "002_add_heartbeat_column": True,
    }
    assert report.unfilled_tables == {}
    assert report.to_dict()["passed"] is True


def test_down_that_forgets_an_enum_type(pgsafe_server, tmp_path: Path) -> None:
    src = write(
        tmp_path / "m",
        {
            "001_accounts.up.sql": TABLES_UP,
            "001_accounts.down.sql": TABLES_DOWN,
            "002_status.up.sql": "CREATE TYPE account_status AS ENUM ('active', 'closed');\n"
            "ALTER TABLE accounts ADD COLUMN status account_status;\n",
            "002_status.down.sql": "ALTER TABLE accounts DROP COLUMN status;\n",
        },
    )
    report = run_tests(src, server=pgsafe_server, rows=3)
    found = failures(report)
    assert found[("stairway", "down-parity", "002_status")] == "added enum public.account_status"
    assert found[("roundtrip", "down-parity", "002_status")] == "added enum public.account_status"
    # Applying it again then fails on the type the down left behind.
    assert ("stairway", "reup", "002_status") in found
    assert not any(m == "001_accounts" for (_p, _c, m) in found)


def test_down_that_forgets_an_index(pgsafe_server, tmp_path: Path) -> None:
    src = write(
        tmp_path / "m",
        {
            "001_accounts.up.sql": TABLES_UP,
            "001_accounts.down.sql": TABLES_DOWN,
            "002_idx.up.sql": "CREATE INDEX CONCURRENTLY payments_paid_at_idx "
            "ON payments (paid_at);\n",
            "002_idx.down.sql": "-- forgot the index\nSELECT 1;\n",
        },
    )
    report = run_tests(src, server=pgsafe_server, rows=3, stairway=False)
    found = failures(report)
    assert (
        found[("roundtrip", "down-parity", "002_idx")] == "added index public.payments_paid_at_idx"
    )
    # Dropping the table takes the forgotten index with it: 001 is not blamed for it.
    assert ("roundtrip", "down-parity", "001_accounts") not in found
    # The data checks ran along the round trip instead of the stairway.
    assert any(r.phase == "data" for r in report.results)


def test_migration_that_loses_data(pgsafe_server, tmp_path: Path) -> None:
    # 002 "simplifies" balances to whole units: every cent is rounded away, and its down
    # cannot bring them back. 003's down drops a table 001 created (a copy-paste slip), so rows
    # that existed before 003 vanish on rollback.
    src = write(
        tmp_path / "m",
        {
            "001_accounts.up.sql": TABLES_UP,
            "001_accounts.down.sql": TABLES_DOWN,
            "002_whole_units.up.sql": "ALTER TABLE accounts ALTER COLUMN balance TYPE bigint;\n",
            "002_whole_units.down.sql": "ALTER TABLE accounts ALTER COLUMN balance "
            "TYPE numeric(12, 2);\n",
            "003_audit.up.sql": "CREATE TABLE audit (id bigint, note text);\n",
            "003_audit.down.sql": "DROP TABLE audit;\nDROP TABLE payments;\n",
            "004_purge.up.sql": "DELETE FROM audit;\n",
            "004_purge.down.sql": "SELECT 1;\n",
        },
    )
    report = run_tests(src, server=pgsafe_server, rows=4)
    by_key = {(r.check, r.migration): r for r in report.results if r.phase == "data"}
    lossy = by_key[("data-down", "002_whole_units")]
    assert lossy.status == "fail"
    assert "accounts: same 4 rows but different values" in lossy.message
    dropped = by_key[("data-down", "003_audit")]
    assert dropped.status == "fail"
    assert "payments existed before 003_audit with 8 row(s)" in dropped.message
    # (4 generated rows after each of 001 and 002.)
    # Deleting rows is what 004 is for: reported, not failed.
    purge = by_key[("data-up", "004_purge")]
    assert purge.status == "warn" and "by design" in purge.message
    assert by_key[("data-up", "002_whole_units")].status == "pass"  # counts kept


def test_junit_xml_names_the_failures(pgsafe_server, tmp_path: Path) -> None:
    src = write(
        tmp_path / "m",
        {
            "001_t.up.sql": "CREATE TABLE t (id int);\nCREATE INDEX t_id ON t (id);\n",
            "001_t.down.sql": "DROP INDEX t_id;\n",
        },
    )
    report = run_tests(src, server=pgsafe_server, rows=2)
    root = ET.fromstring(report.to_junit())
    assert root.tag == "testsuites"
    assert int(root.get("failures", "0")) == len(report.failures) > 0
    failed = {
        (case.get("classname"), case.get("name")): case.find("failure")
        for case in root.iter("testcase")
        if case.find("failure") is not None
    }
    el = failed[("pgsafe.stairway.001_t", "down-parity")]
    assert el is not None and "first: added table public.t" in el.get("message", "")
    assert "added table public.t" in (el.text or "")
    cases = sum(1 for _ in root.iter("testcase"))
    assert cases == len(report.results)


def test_cli_exit_codes_and_junit_file(tmp_path: Path) -> None:
    src = write(
        tmp_path / "m",
        {"001_t.up.sql": "CREATE TABLE t (id int);\n", "001_t.down.sql": "SELECT 1;\n"},
    )
    junit = tmp_path / "out" / "pgsafe-test.xml"
    res = pgsafe("test", str(src), "--junit", str(junit), "--rows", "2", "--no-idempotency")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAIL" in res.stdout and "001_t" in res.stdout
    ET.parse(junit)  # well-formed

    res = pgsafe("test", str(tmp_path / "nowhere"))
    assert res.returncode == 5
    assert "nowhere" in res.stderr


@pytest.mark.parametrize("fmt", ["json"])
def test_cli_passes_on_repository_migrations(tmp_path: Path, fmt: str) -> None:
    import json

    res = pgsafe("test", str(MIGRATIONS), "--format", fmt, "--rows", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["passed"] is True and doc["failures"] == 0


def test_generated_rows_respect_checks_and_unfillable_tables_are_named(
    pgsafe_server, tmp_path: Path
) -> None:
    src = write(
        tmp_path / "m",
        {
            "001_t.up.sql": "CREATE TABLE jobs (id int PRIMARY KEY, state text NOT NULL\n"
            "  CHECK (state IN ('queued', 'done')), kind text CHECK (kind = ANY\n"
            "  (ARRAY['a', 'b'])));\n"
            "CREATE TABLE devices (mac macaddr NOT NULL);\n",
            "001_t.down.sql": "DROP TABLE devices;\nDROP TABLE jobs;\n",
            "002_n.up.sql": "ALTER TABLE jobs ADD COLUMN note text;\n",
            "002_n.down.sql": "ALTER TABLE jobs DROP COLUMN note;\n",
        },
    )
    report = run_tests(src, server=pgsafe_server, rows=3, stairway=False)
    assert report.ok, report.to_text()
    assert list(report.unfilled_tables) == ["public.devices"]
    assert "mac (macaddr): no value generator" in report.unfilled_tables["public.devices"]


def test_irreversible_migration_stops_the_rollback(pgsafe_server, tmp_path: Path) -> None:
    src = write(
        tmp_path / "m",
        {
            "001_base.sql": "CREATE TABLE base (id int);\n",  # no down file: irreversible
            "002_more.up.sql": "CREATE TABLE more (id int);\n",
            "002_more.down.sql": "DROP TABLE more;\n",
        },
    )
    report = run_tests(src, server=pgsafe_server, rows=2)
    assert report.ok, report.to_text()
    skipped = {(r.phase, r.check, r.migration) for r in report.results if r.status == "skip"}
    assert ("roundtrip", "down", "001_base") in skipped
    assert ("stairway", "down-parity", "001_base") in skipped
    assert not any(r.check == "baseline-parity" for r in report.results)
    passed = {(r.phase, r.check, r.migration) for r in report.results if r.status == "pass"}
    assert ("roundtrip", "reapply-parity", "002_more") in passed


def test_stairway_on_its_own_server_tells_the_same_results(pgsafe_server, tmp_path: Path) -> None:
    """Without a server given, pgsafe test runs the stairway beside the round trip on a second
    server: every check, its outcome and its message are those of the two phases run one after
    the other on one server, in the same order (a down that forgets an index among them)."""
    src = write(
        tmp_path / "m",
        {
            "001_accounts.up.sql": TABLES_UP,
            "001_accounts.down.sql": TABLES_DOWN,
            "002_paid_day.up.sql": "ALTER TABLE payments ADD COLUMN paid_day date;\n"
            "UPDATE payments SET paid_day = paid_at::date;\n"
            "CREATE INDEX payments_paid_day ON payments (paid_day);\n",
            "002_paid_day.down.sql": "ALTER TABLE payments DROP COLUMN paid_day;\n"
            "CREATE INDEX payments_amount ON payments (amount);\n",
            "003_view.up.sql": "CREATE VIEW big_payments AS SELECT id, amount FROM payments "
            "WHERE amount > 100;\n",
            "003_view.down.sql": "DROP VIEW big_payments;\n",
        },
    )

    def outcome(report: RoundtripReport) -> list[tuple[str, str, str, str, str]]:
        return [(r.phase, r.check, r.migration, r.status, r.message) for r in report.results]

    one = run_tests(src, server=pgsafe_server, rows=2)
    two = run_tests(src, pg_version=pgsafe_server.version, rows=2)
    assert outcome(two) == outcome(one)
    assert ("stairway", "down-parity", "002_paid_day") in failures(two)
    assert ("roundtrip", "down-parity", "002_paid_day") in failures(two)
    assert two.idempotency() == one.idempotency() and two.idempotency()
    assert two.server == one.server


def test_generated_rows_skip_only_the_table_the_server_refuses(pgsafe_db) -> None:
    """The rows of every table go in one transaction; when the server refuses one table's
    (a CHECK the generator cannot know), that table alone is skipped with the server's reason
    and the others, parents and children, are still filled."""
    with contextlib.closing(pgsafe_db.connect()) as conn:
        conn.execute(
            "CREATE TABLE parents (id int PRIMARY KEY, name text NOT NULL);\n"
            "CREATE TABLE picky (code text NOT NULL CHECK (length(code) > 1000));\n"
            "CREATE TABLE children (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES "
            "parents)"
        )
        skipped = fill(conn, 3, 1)
        counts = {
            t: int(str(conn.execute(f"SELECT count(*) FROM {t}").rows[0][0]))
            for t in ("parents", "picky", "children")
        }
    assert list(skipped) == ["public.picky"]
    assert "picky_code_check" in skipped["public.picky"]
    assert counts == {"parents": 3, "picky": 0, "children": 3}
