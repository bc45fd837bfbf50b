"""pgsafe's pytest plugin next to pytest-alembic (issue 7), as docs/pytest.md sets it up: a copy of
examples/alembic_project, pytest-alembic's built-in tests with `alembic_engine` built from
pgsafe's per-test database, and pgsafe's harness and assertions in the same session. Run with
pytester in a subprocess, so both plugins load through their pytest11 entry points."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("pytest_alembic")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "alembic_project"

CONFTEST = """
import pytest
import sqlalchemy


@pytest.fixture
def alembic_engine(pgsafe_db):
    engine = sqlalchemy.create_engine(
        pgsafe_db.url.replace("postgresql://", "postgresql+psycopg2://", 1)
    )
    yield engine
    engine.dispose()  # the database is dropped after the test: no connection may be left
"""

TESTS = """
from pytest_alembic.tests import test_single_head_revision, test_up_down_consistency, test_upgrade

from pgsafe import schema
from pgsafe.testing.harness import assert_schema_parity


def test_same_database(
    alembic_runner, alembic_engine, pgsafe_db, pgsafe_target, pgsafe_migrations
):
    assert pgsafe_target == pgsafe_db.dsn
    empty = pgsafe_migrations.fingerprint()
    alembic_runner.migrate_up_to("heads")
    # What pytest-alembic applied is in pgsafe's database, and pgsafe's harness sees it.
    names = {o.name for o in schema.fingerprint(pgsafe_db.dsn).objects}
    assert any("attribution_events" in n for n in names), sorted(names)[:20]
    with alembic_engine.connect() as conn:
        head = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    assert head == alembic_runner.heads[0]
    # env.py's pgsafe.alembic.configure kept pgsafe's ledger while pytest-alembic migrated.
    assert pgsafe_migrations.status().count("pending") == 0
    alembic_runner.migrate_down_to("base")
    # Down to base leaves only Alembic's (empty) version table behind.
    assert_schema_parity(empty, pgsafe_db, ignore=["*alembic_version*"])


def test_pgsafe_harness_round_trip(pgsafe_migrations):
    empty = pgsafe_migrations.fingerprint()
    pgsafe_migrations.apply()
    assert pgsafe_migrations.status().count("pending") == 0
    pgsafe_migrations.rollback_all()
    assert_schema_parity(empty, pgsafe_migrations)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(
        EXAMPLE, pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    pytester.makeini("[pytest]\npgsafe_migrations = alembic.ini\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_migrations=TESTS)
    return pytester


def test_builtin_tests_run_on_pgsafe_database(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.stdout.fnmatch_lines(
        [
            "*test_single_head_revision PASSED*",
            "*test_up_down_consistency PASSED*",
            "*test_upgrade PASSED*",
            "*test_same_database PASSED*",
            "*test_pgsafe_harness_round_trip PASSED*",
        ]
    )
    result.assert_outcomes(passed=5)


def test_builtin_test_fails_on_a_broken_revision(project: pytest.Pytester) -> None:
    # A second head: pytest-alembic's check fails in the same session pgsafe's fixtures run in.
    versions = project.path / "versions"
    first = sorted(versions.glob("0001_*.py"))[0]
    text = first.read_text()
    branch = text.replace('revision = "0001"', 'revision = "0001b"', 1)
    assert branch != text, "examples/alembic_project/versions/0001_*.py: revision id not found"
    branch = branch.replace("down_revision = None", 'down_revision = "0001"', 1)
    (versions / "0001b_branch.py").write_text(branch)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-v", "-k", "single_head")
    result.stdout.fnmatch_lines(["*test_single_head_revision FAILED*"])
    result.assert_outcomes(failed=1)
