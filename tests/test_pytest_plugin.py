"""The pytest plugin as a user meets it: a project with a migrations directory and one ini line,
run with pytester in a subprocess (the plugin loads through its pytest11 entry point). Fixtures,
the harness, the assertions' failure messages, every option as flag and ini key, xdist."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import read_jsonl
from pgsafe.server import TemporaryDatabase, TemporaryServer

MIGRATIONS = {
    "001_items.up.sql": "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);\n",
    "001_items.down.sql": "DROP TABLE items;\n",
    "002_mood.up.sql": (
        "CREATE TYPE mood AS ENUM ('ok', 'meh');\n"
        "ALTER TABLE items ADD COLUMN mood mood;\n"
        "CREATE INDEX items_name_idx ON items (name);\n"
    ),
    # Deliberately incomplete: the enum is left behind.
    "002_mood.down.sql": "DROP INDEX items_name_idx;\nALTER TABLE items DROP COLUMN mood;\n",
}

PASSING = """
import pytest
from pgsafe.testing.harness import assert_no_data_loss, assert_schema_parity, no_data_loss
from pgsafe.testing.pytest_plugin import database_fixture, migrations_fixture, template_fixture

# Factories, pytest-postgresql style: a second template migrated to head, and clones of it.
at_head_template = template_fixture(name="at_head", mode="migrated")
at_head_db = database_fixture(template="at_head_template")

@pytest.fixture
def at_head_dsn(at_head_db):
    return at_head_db.dsn

at_head = migrations_fixture("at_head_dsn")


def test_harness_round_trip(pgsafe_migrations, pgsafe_db, pgsafe_target):
    assert pgsafe_target == pgsafe_db.dsn
    empty = pgsafe_migrations.fingerprint()
    pgsafe_migrations.apply(to="001")
    assert pgsafe_migrations.status().count("applied") == 1
    pgsafe_migrations.execute("INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    at_001 = pgsafe_migrations.fingerprint()
    with no_data_loss(pgsafe_migrations, tables=["items"]) as before:
        assert [(f.table, f.rows) for f in before] == [("public.items", 3)]
        pgsafe_migrations.apply()
        pgsafe_migrations.rollback()
    assert_schema_parity(at_001, pgsafe_migrations, ignore=["enum public.mood"])
    assert_no_data_loss(before, pgsafe_db)
    pgsafe_migrations.execute("DROP TYPE mood")
    pgsafe_migrations.rollback()
    assert_schema_parity(empty, pgsafe_db.dsn)


def test_factories(at_head, at_head_db, pgsafe_db):
    assert at_head_db.name != pgsafe_db.name
    assert at_head.status().count("applied") == 2
    assert at_head.status().count("pending") == 0
    assert at_head.execute("SELECT count(*) FROM items").rows == [("0",)]


def test_report_renders(pgsafe_migrations):
    html = pgsafe_migrations.status()._repr_html_()
    assert "<table>" in html and "002" in html and "pending" in html
"""

FAILING = """
from pgsafe.testing.harness import assert_no_data_loss, assert_schema_parity


def test_broken_down_leaves_enum(pgsafe_migrations):
    base = pgsafe_migrations.fingerprint()
    pgsafe_migrations.apply()
    pgsafe_migrations.rollback(steps=2)
    assert_schema_parity(base, pgsafe_migrations)


def test_rows_lost(pgsafe_migrations):
    pgsafe_migrations.apply(to="001")
    pgsafe_migrations.execute("INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    before = pgsafe_migrations.data_fingerprint()
    pgsafe_migrations.execute("DELETE FROM items WHERE id = 2")
    assert_no_data_loss(before, pgsafe_migrations)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: migrations/ and `pgsafe_migrations = migrations` in pytest.ini."""
    for name, text in MIGRATIONS.items():
        (pytester.path / "migrations").mkdir(exist_ok=True)
        (pytester.path / "migrations" / name).write_text(text)
    pytester.makeini("[pytest]\npgsafe_migrations = migrations\n")
    return pytester


def test_fixtures_harness_and_factories(project: pytest.Pytester) -> None:
    project.makepyfile(PASSING)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([f"pgsafe: migrations={project.path / 'migrations'}, *"])


def test_failing_assertions_name_the_object_and_the_table(project: pytest.Pytester) -> None:
    project.makepyfile(FAILING)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            ">*assert_schema_parity(base, pgsafe_migrations)",
            "E *AssertionError: schemas differ in 1 object(s): added enum public.mood",
            "E *+++ *dbname=pgsafe_main_*_test_broken_down_leaves_enum",
            "E *added enum public.mood",
            "E *    +labels: 'ok', 'meh'",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines(
        [
            ">*assert_no_data_loss(before, pgsafe_migrations)",
            "E *pgsafe.testing.harness.DataLossError: data changed in 1 table(s):",
            "E *  public.items: 3 rows before, 2 after (1 lost)",
        ]
    )


@pytest.mark.parametrize("how", ["flag", "ini"])
def test_template_mode_and_migrations_as_flag_or_ini(project: pytest.Pytester, how: str) -> None:
    # A second source only the flag or the ini names: proves which one was used.
    (project.path / "other").mkdir()
    (project.path / "other" / "001_only.up.sql").write_text("CREATE TABLE only_here (id int);\n")
    project.makepyfile(
        "def test_starts_at_head(pgsafe_migrations):\n"
        "    assert pgsafe_migrations.source.name == 'other'\n"
        "    assert pgsafe_migrations.status().count('applied') == 1\n"
        "    assert pgsafe_migrations.execute('SELECT count(*) FROM only_here').rows == [('0',)]\n"
    )
    if how == "flag":
        args = ["--pgsafe-migrations", "other", "--pgsafe-template", "migrated"]
    else:
        project.makeini("[pytest]\npgsafe_migrations = other\npgsafe_template = migrated\n")
        args = []
    result = project.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)


def test_bad_template_mode_is_one_clear_line(project: pytest.Pytester) -> None:
    project.makepyfile("def test_x(pgsafe_db):\n    pass\n")
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--pgsafe-template", "full")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pgsafe template mode 'full' (--pgsafe-template*empty, migrated"])


def test_harness_without_a_source_says_how_to_set_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(pgsafe_migrations):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*pgsafe_migrations: no migrations source; set --pgsafe-migrations PATH or*"]
    )


@pytest.mark.parametrize("how", ["flag", "ini"])
def test_dsn_option_points_the_harness_at_an_existing_database(
    project: pytest.Pytester, pgsafe_db: TemporaryDatabase, how: str
) -> None:
    # The way to reuse any database (pytest-postgresql's, a CI service): no throwaway server.
    project.makepyfile(
        "def test_apply(pgsafe_migrations, request):\n"
        "    pgsafe_migrations.apply()\n"
        "    assert 'pgsafe_server' not in request.fixturenames\n"
    )
    if how == "flag":
        args = ["--pgsafe-dsn", pgsafe_db.dsn]
    else:
        project.makeini(f"[pytest]\npgsafe_migrations = migrations\npgsafe_dsn = {pgsafe_db.dsn}\n")
        args = []
    result = project.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    with pgsafe_db.connect() as conn:
        rows = conn.execute("SELECT version FROM pgsafe.migrations ORDER BY version").rows
    assert rows == [("001",), ("002",)]


def test_user_fixture_can_be_the_target(project: pytest.Pytester) -> None:
    # Any fixture of the user's that gives a database: pgsafe_target returns its DSN.
    project.makeconftest(
        "import pytest\n"
        "@pytest.fixture\n"
        "def users_db(pgsafe_server):\n"
        "    with pgsafe_server.new_database(name='users_own_db') as db:\n"
        "        yield db\n"
        "@pytest.fixture\n"
        "def pgsafe_target(users_db):\n"
        "    return users_db.dsn\n"
    )
    project.makepyfile(
        "def test_apply(pgsafe_migrations, request):\n"
        "    pgsafe_migrations.apply()\n"
        "    assert 'users_own_db' in pgsafe_migrations.dsn\n"
        "    assert 'pgsafe_db' not in request.fixturenames\n"
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


XDIST_TESTS = """
import json, os
import pytest

@pytest.mark.parametrize("i", range(6))
def test_db(pgsafe_migrations, pgsafe_db, i):
    pgsafe_migrations.apply()
    with open(os.environ["PGSAFE_RECORD"], "a") as f:
        f.write(json.dumps({"name": pgsafe_db.name, "worker": os.environ["PYTEST_XDIST_WORKER"],
                            "server": pgsafe_db.server.host}) + "\\n")
"""


def test_xdist_workers_get_unique_database_names(
    project: pytest.Pytester, record_file: Path
) -> None:
    project.makepyfile(XDIST_TESTS)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=6)
    runs = read_jsonl(record_file)
    assert len(runs) == 6
    assert len({r["name"] for r in runs}) == 6, "every test has its own database"
    for r in runs:
        assert r["name"].startswith(f"pgsafe_{r['worker']}_"), r
    workers = {r["worker"] for r in runs}
    assert workers <= {"gw0", "gw1"}
    # One server per worker: never two workers on one server.
    servers = {w: {r["server"] for r in runs if r["worker"] == w} for w in workers}
    assert all(len(s) == 1 for s in servers.values())
    assert len({next(iter(s)) for s in servers.values()}) == len(workers)


PYTEST_POSTGRESQL_CONFTEST = """
import pytest
from pytest_postgresql import factories

postgresql = factories.postgresql("postgresql_noproc")


@pytest.fixture
def pgsafe_target(postgresql):
    return postgresql.info.dsn
"""

PYTEST_POSTGRESQL_TESTS = """
from pgsafe.testing.harness import assert_schema_parity


def test_on_their_database(postgresql, pgsafe_migrations, request):
    pgsafe_migrations.apply()
    with postgresql.cursor() as cur:
        cur.execute("SELECT count(*) FROM pgsafe.migrations")
        assert cur.fetchone() == (2,)
    postgresql.rollback()
    assert_schema_parity(postgresql, pgsafe_migrations)
    assert "pgsafe_server" not in request.fixturenames
"""


def test_coexists_with_pytest_postgresql(
    project: pytest.Pytester, pgsafe_server: TemporaryServer
) -> None:
    project.makeconftest(PYTEST_POSTGRESQL_CONFTEST)
    project.makepyfile(PYTEST_POSTGRESQL_TESTS)
    result = project.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--postgresql-host={pgsafe_server.host}",
        f"--postgresql-port={pgsafe_server.port}",
        f"--postgresql-user={pgsafe_server.user}",
        "--postgresql-dbname=theirs",
    )
    result.assert_outcomes(passed=1)
