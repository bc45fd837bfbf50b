"""Migration layouts of other tools (pgsafe.sources.layouts) and their history tables
(pgsafe.sources.history), on real PostgreSQL.

Every layout gets the same small generated project: migration 1 creates `users` (its up has
`id int`, which lint warns about, at a known line) and its down drops it; migration 2 adds a
column and its down drops a column that does not exist, so it fails at a known line (Supabase
has no downs). The tests check that pgsafe reads each project as its tool does, and that lint,
status, apply, rollback and test name the tool's own files and lines."""

from __future__ import annotations

import hashlib
import json
import shutil
import textwrap
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from helpers import apply_args, pgsafe, query, write
from pgsafe.errors import ConfigError
from pgsafe.lifecycle.runner import MigrationFailed, Runner
from pgsafe.server import TemporaryDatabase, TemporaryServer
from pgsafe.sources.history import flyway_checksum
from pgsafe.sources.layouts import LayoutMigration, detect, discover, flyway_version, forced_layout
from pgsafe.testing.roundtrip import run_tests

M1_UP = "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);"
M1_DOWN = "DROP TABLE users;"
M2_UP = "ALTER TABLE users ADD COLUMN name text;"
M2_DOWN = "ALTER TABLE users DROP COLUMN nickname;"  # fails: there is no such column
BAD_DOWN_ERROR = 'column "nickname" of relation "users" does not exist'
LINT_COLUMN = M1_UP.index("id int") + 4  # prefer-bigint-over-int points at the type


@dataclass
class Project:
    layout: str  # what pgsafe detects
    path: Path  # what pgsafe is given
    labels: list[str]
    versions: list[str]
    up1: tuple[Path, int]  # the file and line of migration 1's CREATE TABLE
    down2: tuple[Path, int] | None  # the file and line of migration 2's failing down statement
    files: list[Path] = field(default_factory=list)  # every file of the project, up then down


def _pair_files(root: Path, v1: str, v2: str) -> Project:
    files = {
        f"{v1}_create_users.up.sql": M1_UP + "\n",
        f"{v1}_create_users.down.sql": M1_DOWN + "\n",
        f"{v2}_add_name.up.sql": M2_UP + "\n",
        f"{v2}_add_name.down.sql": "-- the column it added\n" + M2_DOWN + "\n",
    }
    write(root, files)
    return Project(
        "pgsafe",
        root,
        [f"{v1}_create_users", f"{v2}_add_name"],
        [v1, v2],
        (root / f"{v1}_create_users.up.sql", 1),
        (root / f"{v2}_add_name.down.sql", 2),
        [root / n for n in files],
    )


def make_pgsafe(root: Path) -> Project:
    return _pair_files(root, "001", "002")


def make_golang_migrate(root: Path) -> Project:
    return _pair_files(root, "20240101000000", "20240102000000")


def make_diesel(root: Path) -> Project:
    d1, d2 = root / "2024-01-01-000000_create_users", root / "2024-01-02-000000_add_name"
    write(d1, {"up.sql": f"-- Your SQL goes here\n{M1_UP}\n", "down.sql": M1_DOWN + "\n"})
    write(
        d2, {"up.sql": M2_UP + "\n", "down.sql": f"-- This file should undo anything\n{M2_DOWN}\n"}
    )
    # diesel's own setup migration is an ordinary migration to pgsafe: empty here
    return Project(
        "diesel",
        root,
        [d1.name, d2.name],
        ["2024-01-01-000000", "2024-01-02-000000"],
        (d1 / "up.sql", 2),
        (d2 / "down.sql", 2),
        [d1 / "up.sql", d1 / "down.sql", d2 / "up.sql", d2 / "down.sql"],
    )


def make_prisma(root: Path) -> Project:
    d1, d2 = root / "20240101000000_create_users", root / "20240102000000_add_name"
    write(root, {"migration_lock.toml": 'provider = "postgresql"\n'})
    write(d1, {"migration.sql": f"-- CreateTable\n{M1_UP}\n", "down.sql": M1_DOWN + "\n"})
    write(d2, {"migration.sql": f"-- AlterTable\n{M2_UP}\n", "down.sql": f"\n\n{M2_DOWN}\n"})
    return Project(
        "prisma",
        root,
        [d1.name, d2.name],
        ["20240101000000", "20240102000000"],
        (d1 / "migration.sql", 2),
        (d2 / "down.sql", 3),
        [d1 / "migration.sql", d1 / "down.sql", d2 / "migration.sql", d2 / "down.sql"],
    )


def make_flyway(root: Path) -> Project:
    files = {
        "V1__create_users.sql": M1_UP + "\n",
        "U1__create_users.sql": M1_DOWN + "\n",
        "V1.1__add_name.sql": M2_UP + "\n",
        "U1.1__add_name.sql": f"-- undo\n{M2_DOWN}\n",
    }
    write(root, files)
    return Project(
        "flyway",
        root,
        ["V1__create_users", "V1.1__add_name"],
        ["1", "1.1"],
        (root / "V1__create_users.sql", 1),
        (root / "U1.1__add_name.sql", 2),
        [root / n for n in files],
    )


def _sectioned(root: Path, layout: str, up: str, down: str, labels: list[str]) -> Project:
    """One file a migration, its up and down sections under the tool's marker comments; each
    label is `<version>_<name>`."""
    one, two = (root / f"{label}.sql" for label in labels)
    write(
        root,
        {
            one.name: f"-- create the users table\n{up}\n{M1_UP}\n\n{down}\n{M1_DOWN}\n",
            two.name: f"{up}\n{M2_UP}\n\n{down}\n-- oops: a column that is not there\n{M2_DOWN}\n",
        },
    )
    versions = [label.split("_")[0] for label in labels]
    return Project(layout, root, labels, versions, (one, 3), (two, 6), [one, two])


def make_dbmate(root: Path) -> Project:
    labels = ["20240101000000_create_users", "20240102000000_add_name"]
    return _sectioned(root, "dbmate", "-- migrate:up", "-- migrate:down", labels)


def make_node_pg_migrate(root: Path) -> Project:
    labels = ["1704067200000_create-users", "1704153600000_add-name"]
    return _sectioned(root, "node-pg-migrate", "-- Up Migration", "-- Down Migration", labels)


def make_sqitch(root: Path) -> Project:
    write(
        root,
        {
            "sqitch.conf": "[core]\n\tengine = pg\n",
            "sqitch.plan": textwrap.dedent(
                """\
                %syntax-version=1.0.0
                %project=app
                %uri=https://example.com/app/

                create_users 2024-01-01T00:00:00Z Ada <ada@example.com> # Users.
                add_name [create_users] 2024-01-02T00:00:00Z Ada <ada@example.com> # Names.
                @v1.0 2024-01-03T00:00:00Z Ada <ada@example.com> # First release.
                """
            ),
        },
    )
    write(
        root / "deploy",
        {
            "create_users.sql": (
                f"-- Deploy app:create_users to pg\n\nBEGIN;\n\n{M1_UP}\n\nCOMMIT;\n"
            ),
            "add_name.sql": f"-- Deploy app:add_name to pg\n\nBEGIN;\n\n{M2_UP}\n\nCOMMIT;\n",
        },
    )
    write(
        root / "revert",
        {
            "create_users.sql": f"BEGIN;\n{M1_DOWN}\nCOMMIT;\n",
            "add_name.sql": f"-- Revert app:add_name from pg\nBEGIN;\n{M2_DOWN}\nCOMMIT;\n",
        },
    )
    write(
        root / "verify",
        {
            "create_users.sql": "BEGIN;\nSELECT id, email FROM users WHERE false;\nROLLBACK;\n",
            "add_name.sql": "BEGIN;\nSELECT name FROM users WHERE false;\nROLLBACK;\n",
        },
    )
    return Project(
        "sqitch",
        root,
        ["create_users", "add_name"],
        ["create_users", "add_name"],
        (root / "deploy" / "create_users.sql", 5),
        (root / "revert" / "add_name.sql", 3),
        [
            root / "deploy" / "create_users.sql",
            root / "revert" / "create_users.sql",
            root / "verify" / "create_users.sql",
            root / "deploy" / "add_name.sql",
            root / "revert" / "add_name.sql",
            root / "verify" / "add_name.sql",
        ],
    )


def make_supabase(root: Path) -> Project:
    migs = root / "supabase" / "migrations"
    write(root / "supabase", {"config.toml": 'project_id = "app"\n', "seed.sql": "SELECT 1;\n"})
    write(
        migs,
        {
            "20240101000000_create_users.sql": f"-- users\n{M1_UP}\n",
            "20240102000000_add_name.sql": M2_UP + "\n",
        },
    )
    return Project(
        "supabase",
        root,
        ["20240101000000_create_users", "20240102000000_add_name"],
        ["20240101000000", "20240102000000"],
        (migs / "20240101000000_create_users.sql", 2),
        None,
        [migs / "20240101000000_create_users.sql", migs / "20240102000000_add_name.sql"],
    )


MAKERS = {
    "pgsafe": make_pgsafe,
    "golang-migrate": make_golang_migrate,
    "diesel": make_diesel,
    "prisma": make_prisma,
    "flyway": make_flyway,
    "dbmate": make_dbmate,
    "node-pg-migrate": make_node_pg_migrate,
    "sqitch": make_sqitch,
    "supabase": make_supabase,
}


@pytest.fixture(params=list(MAKERS))
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return MAKERS[request.param](tmp_path / request.param)


def _apply(p: Project, db: TemporaryDatabase, cwd: Path, *extra: str) -> CompletedProcess[str]:
    """`pgsafe apply --apply` of the project, with no event log and no backup."""
    return pgsafe(*apply_args(p.path, db, "", "--no-backup", *extra), cwd=cwd)


def _adopt(p: Project, db: TemporaryDatabase, reason: str) -> CompletedProcess[str]:
    """`pgsafe repair --adopt`: the other tool's history taken into pgsafe's ledger."""
    return pgsafe(
        "repair", str(p.path), "--adopt", "--reason", reason, "--db", db.dsn, "--log-dir", ""
    )


def _status(p: Project, db: TemporaryDatabase, *extra: str, code: int = 0) -> dict:
    """`pgsafe status --json`; `code` 1 where a dirty or changed migration is expected."""
    res = pgsafe("status", str(p.path), "--db", db.dsn, "--json", *extra)
    assert res.returncode == code, res.stderr
    return json.loads(res.stdout)


# -- reading ---------------------------------------------------------------------------------


def test_each_layout_is_read_as_its_tool_reads_it(project: Project) -> None:
    migs = discover(project.path)
    assert [m.label for m in migs] == project.labels
    assert [m.version for m in migs] == project.versions
    assert migs[0].up_path == project.up1[0]
    up = migs[0].up_statements()
    assert [(s.line, s.sql) for s in up] == [(project.up1[1], M1_UP.rstrip(";"))]
    assert migs[0].checksum == hashlib.sha256(project.up1[0].read_bytes()).hexdigest()
    if project.down2 is None:
        assert all(m.down_path is None for m in migs)
        with pytest.raises(ConfigError, match="has no down"):
            migs[1].down_statements()
    else:
        assert migs[1].down_path == project.down2[0]
        (down,) = migs[1].down_statements()
        assert (down.line, down.sql) == (project.down2[1], M2_DOWN.rstrip(";"))
        assert [s.sql for s in migs[0].down_statements()] == [M1_DOWN.rstrip(";")]
    found = detect(project.path)
    assert found is not None and found[0] == project.layout


def test_ordered_as_the_tool_orders_them(tmp_path: Path) -> None:
    # Flyway: numeric by version part, 1.10 after 1.9, trailing zeros ignored; repeatables last.
    unordered = ["V1.10__c", "V1.9__b", "V1__a", "R__views", "R__functions", "V2_1__d"]
    fly = write(tmp_path / "flyway", {f"{name}.sql": "SELECT 1;" for name in unordered})
    write(fly / "nested", {"V3__e.sql": "SELECT 1;"})  # Flyway searches its location recursively
    migs = discover(fly)
    assert [m.label for m in migs] == [
        "V1__a",
        "V1.9__b",
        "V1.10__c",
        "V2_1__d",
        "V3__e",
        "R__functions",
        "R__views",
    ]
    assert [m.repeatable for m in migs] == [False] * 5 + [True] * 2
    assert flyway_version("1.0") == flyway_version("1") < flyway_version("1.0.1")
    with pytest.raises(ConfigError, match="Flyway refuses this too"):
        discover(write(tmp_path / "dup", {"V1__a.sql": "SELECT 1;", "V1.0__b.sql": "SELECT 1;"}))
    # sqitch: plan order, not names; a reworked change keeps its old scripts as name@tag.
    sq = tmp_path / "sqitch"
    write(
        sq,
        {
            "sqitch.plan": "%project=x\n\nzeta 2024-01-01T00:00:00Z A <a@x>\n"
            "alpha 2024-01-01T00:00:00Z A <a@x>\n@v1 2024-01-01T00:00:00Z A <a@x>\n"
            "zeta [zeta@v1] 2024-01-02T00:00:00Z A <a@x>\n"
        },
    )
    write(
        sq / "deploy",
        {"zeta.sql": "SELECT 2;", "zeta@v1.sql": "SELECT 1;", "alpha.sql": "SELECT 1;"},
    )
    migs = discover(sq)
    assert [m.version for m in migs] == ["zeta@v1", "alpha", "zeta"]
    assert migs[0].up_path == sq / "deploy" / "zeta@v1.sql"
    # diesel: by version without dashes, whatever the directory name's form.
    ds = tmp_path / "diesel"
    for name in ("20240102000000_b", "2024-01-01-000000_a", "00000000000000_diesel_initial_setup"):
        write(ds / name, {"up.sql": "SELECT 1;", "down.sql": "SELECT 1;"})
    assert [m.name for m in discover(ds)] == ["diesel_initial_setup", "a", "b"]


def test_dbmate_transaction_false_and_misplaced_sections(
    tmp_path: Path, pgsafe_db: TemporaryDatabase
) -> None:
    root = write(
        tmp_path / "db",
        {
            "20240101000000_users.sql": f"-- migrate:up\n{M1_UP}\n-- migrate:down\n{M1_DOWN}\n",
            "20240102000000_idx.sql": "-- migrate:up transaction:false\n"
            "ALTER TABLE users ADD COLUMN name text;\n"
            "CREATE INDEX CONCURRENTLY users_email ON users (email);\n"
            "-- migrate:down\nDROP INDEX users_email;\n",
        },
    )
    _, mig = discover(root)
    assert isinstance(mig, LayoutMigration)
    alter, index = mig.up_statements()
    assert alter.non_transactional and alter.reason == "a transaction:false section"
    assert index.non_transactional and (alter.line, index.line) == (2, 3)
    assert mig.down_statements()[0].line == 5
    assert not mig.down_statements()[0].non_transactional  # the option is the up section's
    # Each statement of the section commits on its own, as dbmate runs it: a failure after
    # the first leaves the first in place (and the migration dirty).
    (root / "20240102000000_idx.sql").write_text(
        "-- migrate:up transaction:false\nALTER TABLE users ADD COLUMN name text;\n"
        "ALTER TABLE users ADD COLUMN email text;\n"
    )
    with pytest.raises(MigrationFailed, match=r"20240102000000_idx.sql:3:"):
        Runner(root, pgsafe_db.dsn).apply()
    assert query(pgsafe_db, "SELECT version, status FROM pgsafe.migrations ORDER BY 1") == [
        ("20240101000000", "applied"),
        ("20240102000000", "dirty"),
    ]
    assert query(
        pgsafe_db,
        "SELECT count(*) FROM pg_attribute WHERE attname = 'name' AND attrelid = 'users'::regclass",
    ) == [("1",)]
    root = write(tmp_path / "db2", {})
    (root / "20240101000000_idx.sql").write_text("SELECT 1;\n-- migrate:up\nSELECT 2;\n")
    with pytest.raises(ConfigError, match="before the first marker"):
        discover(root)[0].up_statements()
    (root / "20240101000000_idx.sql").write_text("-- migrate:up\nSELECT 1;\n-- migrate:up\n")
    with pytest.raises(ConfigError, match="a second up marker"):
        discover(root)
    # A marker inside a string is not a marker: the scanner finds comments, not text.
    (root / "20240101000000_idx.sql").write_text("-- migrate:up\nSELECT '\n-- migrate:down\n';\n")
    (mig,) = discover(root)
    assert mig.down_path is None and len(mig.up_statements()) == 1


def test_layout_forced_by_flag_and_by_config(tmp_path: Path, pgsafe_db: TemporaryDatabase) -> None:
    p = make_diesel(tmp_path / "diesel")
    res = pgsafe("status", str(p.path), "--db", pgsafe_db.dsn, "--layout", "flyway")
    assert res.returncode == 5
    assert res.stderr.strip().splitlines() == [
        f"pgsafe: error: {p.path}: no migration pgsafe can read (looked for flyway migrations: "
        "V{version}__{description}.sql, U{version}__{description}.sql, R__{description}.sql); "
        "found 2 directories with up.sql: a diesel layout (--layout diesel)"
    ]
    assert query(pgsafe_db, "SELECT to_regnamespace('pgsafe') IS NULL") == [("t",)]
    # [tool.pgsafe] layout: a dbmate file read as pgsafe's lone NNN_name.sql runs both sections.
    d = make_dbmate(tmp_path / "proj" / "db" / "migrations")
    write(tmp_path / "proj", {"pyproject.toml": '[tool.pgsafe]\nlayout = "pgsafe"\n'})
    res = pgsafe("lint", "db/migrations", "--format", "json", cwd=tmp_path / "proj")
    assert res.returncode == 1  # the down's DROP COLUMN linted as part of the file
    assert any(f["rule"] == "ban-drop-column" for f in json.loads(res.stdout)["findings"])
    assert (
        pgsafe("lint", "db/migrations", "--layout", "dbmate", cwd=tmp_path / "proj").returncode == 0
    )
    write(tmp_path / "proj", {"pyproject.toml": '[tool.pgsafe]\nlayout = "liquibase"\n'})
    res = pgsafe("status", str(d.path), "--db", pgsafe_db.dsn, cwd=tmp_path / "proj")
    assert res.returncode == 5 and "unknown layout 'liquibase'" in res.stderr
    with forced_layout("supabase"), pytest.raises(ConfigError, match="supabase migrations"):
        discover(p.path)


# -- no migration is never a pass --------------------------------------------------------------

# PATH stands for the migrations directory, DB for --db URL (and --log-dir '').
_COMMANDS = [
    ("lint", "PATH"),
    ("dry-run", "PATH", "--no-trace"),
    ("checksum", "PATH", "--write"),
    ("checksum", "PATH", "--check"),
    ("test", "PATH"),
    ("status", "PATH", "DB"),
    ("apply", "PATH", "DB"),
    ("apply", "PATH", "DB", "--apply"),
    ("rollback", "PATH", "DB", "--apply", "--yes"),
    ("preflight", "PATH", "DB"),
    ("postflight", "PATH", "DB"),
    ("locks", "PATH", "--db", "@dsn"),
    ("repair", "--adopt", "PATH", "--reason", "x", "DB"),
    ("repair", "001", "PATH", "--mark", "applied", "--reason", "x", "DB"),
]


@pytest.mark.parametrize("contents", ["empty", "readme", "js"])
def test_every_command_refuses_a_path_with_no_migration(
    contents: str, tmp_path: Path, pgsafe_db: TemporaryDatabase
) -> None:
    root = tmp_path / "migrations"
    root.mkdir()
    seen = "an empty directory"
    if contents == "readme":
        write(root, {"README.md": "# migrations\n", "notes.txt": "x"})
        seen = "2 other files (README.md, notes.txt)"
    elif contents == "js":
        write(root, {"1704067200000_init.js": "exports.up = () => {};\n"})
        seen = "1 JavaScript/TypeScript files: migrations written as code are not read"
    for command in _COMMANDS:
        args: list[str] = []
        for a in command:
            args += {"PATH": [str(root)], "DB": ["--db", pgsafe_db.dsn, "--log-dir", ""]}.get(
                a, [pgsafe_db.dsn] if a == "@dsn" else [a]
            )
        res = pgsafe(*args, cwd=tmp_path)
        assert res.returncode == 5, (command, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, (command, res.stderr)
        assert lines[0].startswith(f"pgsafe: error: {root}: no migration pgsafe can read"), lines
        assert f"found {seen}" in lines[0], lines
        assert "passed" not in res.stdout
    assert query(pgsafe_db, "SELECT to_regnamespace('pgsafe') IS NULL") == [("t",)]


def test_pgsafe_test_on_a_diesel_project_checks_it(tmp_path: Path) -> None:
    """The issue's first finding: `pgsafe test` on a diesel layout passed with 0 checks."""
    p = make_diesel(tmp_path / "migrations")
    res = pgsafe("test", str(p.path), "--no-data", timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "0 checks" not in res.stdout
    assert "on 2 migration(s)" in res.stdout
    path, line = p.down2  # type: ignore[misc]
    assert f"{path}:{line}:1: {BAD_DOWN_ERROR}" in res.stdout


# -- lint, status, apply, rollback and test, per layout ------------------------------------------


def test_lint_names_the_tools_own_files_and_lines(project: Project) -> None:
    res = pgsafe("lint", str(project.path), "--format", "json")
    assert res.returncode == 0, res.stdout + res.stderr  # downs (DROP TABLE) are not linted
    findings = json.loads(res.stdout)["findings"]
    assert [(f["rule"], f["file"], f["line"], f["column"]) for f in findings] == [
        ("prefer-bigint-over-int", str(project.up1[0]), project.up1[1], LINT_COLUMN)
    ]


def test_status_apply_and_rollback(project: Project, pgsafe_db: TemporaryDatabase) -> None:
    dsn = pgsafe_db.dsn
    cwd = project.path.parent
    doc = _status(project, pgsafe_db)
    assert [(m["label"], m["state"]) for m in doc["migrations"]] == [
        (label, "pending") for label in project.labels
    ]
    res = _apply(project, pgsafe_db, cwd, "--to", project.versions[0])
    assert res.returncode == 0, res.stdout + res.stderr
    assert query(pgsafe_db, "SELECT to_regclass('users') IS NOT NULL") == [("t",)]
    states = [m["state"] for m in _status(project, pgsafe_db)["migrations"]]
    assert states == ["applied", "pending"]
    rollback = ("rollback", str(project.path), "--db", dsn, "--apply", "--yes", "--log-dir", "")
    res = pgsafe(*rollback, cwd=cwd)
    if project.down2 is None:  # Supabase: no downs
        assert res.returncode == 4 and "no down" in res.stderr, res.stderr
        return
    assert res.returncode == 0, res.stdout + res.stderr
    assert query(pgsafe_db, "SELECT to_regclass('users') IS NULL") == [("t",)]
    res = _apply(project, pgsafe_db, cwd)
    assert res.returncode == 0, res.stdout + res.stderr
    assert [m["state"] for m in _status(project, pgsafe_db)["migrations"]] == ["applied"] * 2
    res = pgsafe(*rollback, cwd=cwd)
    assert res.returncode == 4
    path, line = project.down2
    assert f"{path}:{line}:1: {BAD_DOWN_ERROR}" in res.stderr
    # The checksums the ledger keeps are those of the tool's own up files.
    recorded = query(pgsafe_db, "SELECT checksum FROM pgsafe.migrations ORDER BY applied_at")
    assert recorded[0][0] == hashlib.sha256(project.up1[0].read_bytes()).hexdigest()


def test_pgsafe_test_runs_each_layout(project: Project, pgsafe_server: TemporaryServer) -> None:
    report = run_tests(project.path, server=pgsafe_server, rows=2, idempotency=False)
    assert report.migrations == project.labels
    ups = [r for r in report.results if r.phase == "roundtrip" and r.check == "up"]
    assert [(r.migration, r.status) for r in ups] == [(label, "pass") for label in project.labels]
    if project.down2 is None:
        assert not report.failed
        assert {r.status for r in report.results if r.check in ("down", "down-parity")} == {"skip"}
        return
    assert report.failed
    path, line = project.down2
    failures = {(r.phase, r.check, r.migration) for r in report.failures}
    assert failures == {
        ("roundtrip", "down", project.labels[1]),
        ("stairway", "down", project.labels[1]),
    }
    assert all(f"{path}:{line}:1: {BAD_DOWN_ERROR}" in r.message for r in report.failures)
    passed = {(r.phase, r.check, r.migration) for r in report.results if r.status == "pass"}
    assert ("stairway", "down-parity", project.labels[0]) in passed
    if project.layout == "sqitch":  # its verify scripts ran after every up
        verified = [r for r in report.results if r.phase == "verify"]
        assert verified and {r.status for r in verified} == {"pass"}


def test_a_failing_sqitch_verify_fails_pgsafe_test(
    tmp_path: Path, pgsafe_server: TemporaryServer
) -> None:
    p = make_sqitch(tmp_path / "sqitch")
    write(p.path / "revert", {"add_name.sql": "ALTER TABLE users DROP COLUMN name;\n"})
    write(p.path / "verify", {"add_name.sql": "BEGIN;\n\nSELECT nickname FROM users;\nROLLBACK;\n"})
    report = run_tests(p.path, server=pgsafe_server, rows=2, idempotency=False, data=False)
    bad = [r for r in report.failures if r.phase == "verify"]
    assert bad and all(r.migration == "add_name" for r in bad)
    assert (
        f'{p.path / "verify" / "add_name.sql"}:3: column "nickname" does not exist'
        in bad[0].message
    )
    assert {r.phase for r in report.failures} == {"verify"}


def test_a_failing_dbmate_up_names_its_line_in_the_file(
    tmp_path: Path, pgsafe_db: TemporaryDatabase
) -> None:
    p = make_dbmate(tmp_path / "db")
    text = p.files[1].read_text().replace(M2_UP, "ALTER TABLE users ADD COLUMN name nosuchtype;")
    p.files[1].write_text(text)
    res = _apply(p, pgsafe_db, tmp_path)
    assert res.returncode == 2
    assert f"{p.files[1]}:2:" in res.stderr and "nosuchtype" in res.stderr


def test_flyway_repeatables_run_again_when_changed(
    tmp_path: Path, pgsafe_db: TemporaryDatabase
) -> None:
    p = make_flyway(tmp_path / "flyway")
    view = p.path / "R__users_view.sql"
    view.write_text("CREATE OR REPLACE VIEW user_emails AS SELECT email FROM users;\n")
    runner = Runner(p.path, pgsafe_db.dsn)
    assert [r.version for r in runner.apply()] == ["1", "1.1", "R__users_view"]
    assert runner.apply() == []
    view.write_text("CREATE OR REPLACE VIEW user_emails AS SELECT email, name FROM users;\n")
    assert [s.state for s in runner.status().migrations] == ["applied", "applied", "pending"]
    assert [r.version for r in runner.apply()] == ["R__users_view"]
    assert query(
        pgsafe_db,
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'user_emails'::regclass AND attnum > 0",
    ) == [("2",)]
    checksum = hashlib.sha256(view.read_bytes()).hexdigest()
    assert query(
        pgsafe_db, "SELECT checksum, status FROM pgsafe.migrations WHERE version = 'R__users_view'"
    ) == [(checksum, "applied")]
    # The repeatable is not rolled back: the newest versioned migration is.
    p.files[3].write_text("ALTER TABLE users DROP COLUMN name CASCADE;\n")
    assert [r.version for r in runner.rollback()] == ["1.1"]


def test_checksum_manifest_of_a_layout_names_files_by_their_folders(project: Project) -> None:
    assert pgsafe("checksum", str(project.path), "--write").returncode == 0
    manifest = (project.path / "checksum.txt").read_text().splitlines()
    names = [line.split("  ", 1)[1] for line in manifest]
    assert names == [f.relative_to(project.path).as_posix() for f in project.files]
    assert pgsafe("checksum", str(project.path), "--check").returncode == 0
    project.files[0].write_text(project.files[0].read_text() + "\n-- changed\n")
    res = pgsafe("checksum", str(project.path), "--check")
    assert res.returncode == 1
    assert f"changed: {project.files[0].relative_to(project.path).as_posix()}" in res.stdout


# -- other tools' history tables ---------------------------------------------------------------


def _flyway_table(p: Project) -> list[str]:
    crc = flyway_checksum(p.up1[0])
    return [
        """CREATE TABLE flyway_schema_history (
            installed_rank integer NOT NULL, version varchar(50), description varchar(200) NOT NULL,
            type varchar(20) NOT NULL, script varchar(1000) NOT NULL, checksum integer,
            installed_by varchar(100) NOT NULL, installed_on timestamp NOT NULL DEFAULT now(),
            execution_time integer NOT NULL, success boolean NOT NULL,
            CONSTRAINT flyway_schema_history_pk PRIMARY KEY (installed_rank))""",
        "CREATE INDEX flyway_schema_history_s_idx ON flyway_schema_history (success)",
        "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script,"
        " checksum, installed_by, execution_time, success) VALUES"
        " (1, '1', 'create users', 'SQL', 'V1__create_users.sql', "
        f"{crc}, 'postgres', 12, true)",
    ]


# tool -> (layout, DDL and rows saying migration 1 is applied, as the tool writes them)
HISTORY: dict[str, tuple[str, Callable[[Project], list[str]]]] = {}


def _history(
    tool: str, layout: str
) -> Callable[[Callable[[Project], list[str]]], Callable[[Project], list[str]]]:
    def register(fn: Callable[[Project], list[str]]) -> Callable[[Project], list[str]]:
        HISTORY[tool] = (layout, fn)
        return fn

    return register


@_history("golang-migrate", "golang-migrate")
def _golang(p: Project) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)",
        "INSERT INTO schema_migrations (version, dirty) VALUES (20240101000000, false)",
    ]


@_history("dbmate", "dbmate")
def _dbmate(p: Project) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS schema_migrations (version varchar(128) PRIMARY KEY)",
        "INSERT INTO schema_migrations (version) VALUES ('20240101000000')",
    ]


@_history("diesel", "diesel")
def _diesel(p: Project) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations ("
        " version VARCHAR(50) PRIMARY KEY NOT NULL,"
        " run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101000000')",
    ]


@_history("flyway", "flyway")
def _flyway(p: Project) -> list[str]:
    return _flyway_table(p)


@_history("prisma", "prisma")
def _prisma(p: Project) -> list[str]:
    sha = hashlib.sha256(p.up1[0].read_bytes()).hexdigest()
    return [
        'CREATE TABLE "_prisma_migrations" ("id" VARCHAR(36) NOT NULL,'
        ' "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ,'
        ' "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ,'
        ' "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),'
        ' "applied_steps_count" INTEGER NOT NULL DEFAULT 0,'
        ' CONSTRAINT "_prisma_migrations_pkey" PRIMARY KEY ("id"))',
        "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name,"
        f" applied_steps_count) VALUES ('0b9f1c2e-0000-4000-8000-000000000001', '{sha}', now(),"
        " '20240101000000_create_users', 1)",
    ]


@_history("sqitch", "sqitch")
def _sqitch(p: Project) -> list[str]:
    return [
        "CREATE SCHEMA sqitch",
        "CREATE TABLE sqitch.projects (project TEXT PRIMARY KEY, uri TEXT NULL UNIQUE,"
        " created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),"
        " creator_name TEXT NOT NULL, creator_email TEXT NOT NULL)",
        "CREATE TABLE sqitch.changes (change_id TEXT PRIMARY KEY, script_hash TEXT NULL,"
        " change TEXT NOT NULL, project TEXT NOT NULL REFERENCES sqitch.projects(project)"
        " ON UPDATE CASCADE, note TEXT NOT NULL DEFAULT '',"
        " committed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),"
        " committer_name TEXT NOT NULL, committer_email TEXT NOT NULL,"
        " planned_at TIMESTAMPTZ NOT NULL, planner_name TEXT NOT NULL,"
        " planner_email TEXT NOT NULL, UNIQUE(project, script_hash))",
        "INSERT INTO sqitch.projects VALUES ('app', 'https://example.com/app/', now(), 'Ada',"
        " 'ada@example.com')",
        # another project's change of the same name is not ours
        "INSERT INTO sqitch.projects VALUES ('other', NULL, now(), 'Bo', 'bo@example.com')",
        "INSERT INTO sqitch.changes (change_id, script_hash, change, project, committer_name,"
        " committer_email, planned_at, planner_name, planner_email) VALUES"
        " ('a1', 'h1', 'create_users', 'app', 'Ada', 'ada@example.com', now(), 'Ada',"
        " 'ada@example.com'), ('b1', 'h2', 'add_name', 'other', 'Bo', 'bo@example.com', now(),"
        " 'Bo', 'bo@example.com')",
    ]


@_history("supabase", "supabase")
def _supabase(p: Project) -> list[str]:
    return [
        "CREATE SCHEMA supabase_migrations",
        "CREATE TABLE supabase_migrations.schema_migrations"
        " (version text NOT NULL PRIMARY KEY, statements text[], name text)",
        "INSERT INTO supabase_migrations.schema_migrations VALUES"
        f" ('20240101000000', ARRAY[$s${M1_UP}$s$], 'create_users')",
    ]


@_history("node-pg-migrate", "node-pg-migrate")
def _node(p: Project) -> list[str]:
    return [
        "CREATE TABLE pgmigrations (id SERIAL PRIMARY KEY, name varchar(255) NOT NULL,"
        " run_on timestamp NOT NULL)",
        "INSERT INTO pgmigrations (name, run_on) VALUES ('1704067200000_create-users', now())",
    ]


@pytest.mark.parametrize("tool", list(HISTORY))
def test_other_tools_history_is_read_and_adopted(
    tool: str, tmp_path: Path, pgsafe_db: TemporaryDatabase
) -> None:
    layout, ddl = HISTORY[tool]
    p = MAKERS[layout](tmp_path / layout)
    with pgsafe_db.connect() as conn:
        conn.execute(M1_UP)  # what the tool applied
        for sql in ddl(p):
            conn.execute(sql)
    doc = _status(p, pgsafe_db)
    first, second = doc["migrations"]
    assert (first["state"], first["applied_by_tool"]) == ("applied", tool)
    assert first["applied_by"].startswith(f"{tool} (")
    assert (second["state"], second["applied_by_tool"]) == ("pending", None)
    res = pgsafe("status", str(p.path), "--db", pgsafe_db.dsn)
    assert f"applied by {tool} (" in res.stdout
    # Adopt: pgsafe's ledger written from the other tool's table, checksums from the files.
    res = _adopt(p, pgsafe_db, "moving to pgsafe")
    assert res.returncode == 0, res.stderr
    assert f"adopted 1 migration(s) applied by {tool}" in res.stdout
    sha = hashlib.sha256(p.up1[0].read_bytes()).hexdigest()
    assert query(
        pgsafe_db, "SELECT version, checksum, status, applied_by FROM pgsafe.migrations"
    ) == [(p.versions[0], sha, "applied", f"adopted from {first['applied_by']}")]
    assert query(pgsafe_db, "SELECT action, status, detail FROM pgsafe.history") == [
        ("adopt", "applied", f"moving to pgsafe (from {first['applied_by']})")
    ]
    first = _status(p, pgsafe_db)["migrations"][0]
    assert (first["state"], first["applied_by_tool"]) == ("applied", None)
    # apply runs only what the other tool did not (its CREATE TABLE would fail if run again).
    res = _apply(p, pgsafe_db, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert [m["state"] for m in _status(p, pgsafe_db)["migrations"]] == ["applied", "applied"]
    again = _adopt(p, pgsafe_db, "again")
    assert again.returncode == 0 and "nothing to adopt" in again.stdout


def test_apply_skips_what_another_tool_applied_without_adopting(
    tmp_path: Path, pgsafe_db: TemporaryDatabase
) -> None:
    p = make_diesel(tmp_path / "diesel")
    with pgsafe_db.connect() as conn:
        conn.execute(M1_UP)
        for sql in _diesel(p):
            conn.execute(sql)
    runner = Runner(p.path, pgsafe_db.dsn)
    assert [r.version for r in runner.apply()] == ["2024-01-02-000000"]
    # rolled back by pgsafe, the ledger's word wins over diesel's table from then on
    p.files[3].write_text("ALTER TABLE users DROP COLUMN name;\n")
    assert [r.version for r in runner.rollback(steps=2)] == [
        "2024-01-02-000000",
        "2024-01-01-000000",
    ]
    assert [s.state for s in runner.status().migrations] == ["pending", "pending"]


def test_dirty_or_failed_in_the_other_tool_stops_apply(
    tmp_path: Path, pgsafe_db: TemporaryDatabase
) -> None:
    p = make_golang_migrate(tmp_path / "gm")
    with pgsafe_db.connect() as conn:
        conn.execute(M1_UP)
        conn.execute(
            "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY,"
            " dirty boolean NOT NULL)"
        )
        conn.execute("INSERT INTO schema_migrations VALUES (20240102000000, true)")
    first, second = _status(p, pgsafe_db, code=1)["migrations"]
    assert first["state"] == "applied" and second["state"] == "dirty"
    assert "dirty" in second["dirty_reason"]
    res = _apply(p, pgsafe_db, tmp_path)
    assert res.returncode == 2 and "is dirty" in res.stderr
    res = _adopt(p, pgsafe_db, "x")
    assert res.returncode == 1 and "nothing adopted" in res.stderr
    assert query(pgsafe_db, "SELECT to_regnamespace('pgsafe') IS NULL") == [("t",)]
    # fixed by hand: repair records what it really is, then adopt takes the rest
    with pgsafe_db.connect() as conn:
        conn.execute(M2_UP)
    res = pgsafe(
        "repair",
        "20240102000000",
        str(p.path),
        "--mark",
        "applied",
        "--reason",
        "fixed by hand",
        "--db",
        pgsafe_db.dsn,
        "--log-dir",
        "",
    )
    assert res.returncode == 0, res.stderr
    assert _adopt(p, pgsafe_db, "x").returncode == 0
    assert [m["state"] for m in _status(p, pgsafe_db)["migrations"]] == ["applied", "applied"]
    # Flyway: a failed row is dirty too.
    f = make_flyway(tmp_path / "fw")
    with pgsafe_db.connect() as conn:
        conn.execute("DROP SCHEMA pgsafe CASCADE")
        for sql in _flyway_table(f):
            conn.execute(sql)
        conn.execute(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type,"
            " script, checksum, installed_by, execution_time, success) VALUES (2, '1.1',"
            " 'add name', 'SQL', 'V1.1__add_name.sql', 0, 'postgres', 3, false)"
        )
    states = [m["state"] for m in _status(f, pgsafe_db, code=1)["migrations"]]
    assert states == ["applied", "dirty"]


def test_alembic_version_is_read(tmp_path: Path, pgsafe_db: TemporaryDatabase) -> None:
    pytest.importorskip("alembic")
    root = tmp_path / "project"
    shutil.copytree(
        Path(__file__).resolve().parent.parent / "examples" / "alembic_project",
        root,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    Runner(root, pgsafe_db.dsn).apply(to="0002")
    with pgsafe_db.connect() as conn:  # as if Alembic itself had run them
        conn.execute("DROP SCHEMA pgsafe CASCADE")
    assert query(pgsafe_db, "SELECT version_num FROM alembic_version") == [("0002",)]
    states = [
        (s.version, s.state, s.applied_by_tool)
        for s in Runner(root, pgsafe_db.dsn).status().migrations
    ]
    assert states[:3] == [
        ("0001", "applied", "alembic"),
        ("0002", "applied", "alembic"),
        ("0003", "pending", None),
    ]
    assert Runner(root, pgsafe_db.dsn).adopt("from alembic").startswith("adopted 2 migration(s)")


def test_flyway_checksum_ignores_line_endings_and_bom(tmp_path: Path) -> None:
    a = tmp_path / "a.sql"
    b = tmp_path / "b.sql"
    a.write_bytes(b"CREATE TABLE t (id int);\nSELECT 1;\n")
    b.write_bytes(b"\xef\xbb\xbfCREATE TABLE t (id int);\r\nSELECT 1;")
    assert flyway_checksum(a) == flyway_checksum(b)
    assert -(2**31) <= flyway_checksum(a) < 2**31

    assert flyway_checksum(a) % 2**32 == zlib.crc32(
        b"SELECT 1;", zlib.crc32(b"CREATE TABLE t (id int);")
    )


def test_django_recipe_files_read_django_migrations(
    tmp_path: Path, pgsafe_db: TemporaryDatabase
) -> None:
    """docs/layouts.md's Django recipe writes NNN_<app>_<migration>.up.sql; a database Django
    migrated records <app>.<migration> in django_migrations."""
    root = write(
        tmp_path / "pgsafe_migrations",
        {
            "0001_accounts_0001_initial.up.sql": f"BEGIN;\n{M1_UP}\nCOMMIT;\n",
            "0001_accounts_0001_initial.down.sql": f"BEGIN;\n{M1_DOWN}\nCOMMIT;\n",
            "0002_accounts_0002_user_name.up.sql": f"BEGIN;\n{M2_UP}\nCOMMIT;\n",
        },
    )
    with pgsafe_db.connect() as conn:
        conn.execute(M1_UP)
        conn.execute(
            'CREATE TABLE "django_migrations" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY'
            ' DEFAULT AS IDENTITY, "app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL,'
            ' "applied" timestamp with time zone NOT NULL)'
        )
        conn.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES"
            " ('accounts', '0001_initial', now()), ('auth', '0001_initial', now())"
        )
    runner = Runner(root, pgsafe_db.dsn)
    states = [(s.version, s.state, s.applied_by_tool) for s in runner.status().migrations]
    assert states == [("0001", "applied", "django"), ("0002", "pending", None)]
    assert [r.version for r in runner.apply()] == ["0002"]


def test_flyway_baseline_and_undo_rows(tmp_path: Path, pgsafe_db: TemporaryDatabase) -> None:
    p = make_flyway(tmp_path / "fw")
    write(p.path, {"V2__more.sql": "SELECT 1;\n"})
    with pgsafe_db.connect() as conn:
        for sql in _flyway_table(p)[:2]:
            conn.execute(sql)
        conn.execute(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type,"
            " script, checksum, installed_by, execution_time, success) VALUES"
            " (1, '1.1', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', NULL,"
            " 'postgres', 0, true),"
            " (2, '2', 'more', 'SQL', 'V2__more.sql', 0, 'postgres', 1, true),"
            " (3, '2', 'more', 'UNDO_SQL', 'U2__more.sql', 0, 'postgres', 1, true)"
        )
    states = [(s.version, s.state) for s in Runner(p.path, pgsafe_db.dsn).status().migrations]
    assert states == [("1", "applied"), ("1.1", "applied"), ("2", "pending")]


def test_supabase_given_its_migrations_folder(tmp_path: Path) -> None:
    p = make_supabase(tmp_path / "app")
    folder = p.path / "supabase" / "migrations"
    assert detect(folder) == ("supabase", folder)
    assert [m.label for m in discover(folder)] == p.labels
    assert [m.label for m in discover(p.path)] == p.labels  # seed.sql is not a migration


def test_lint_of_one_dbmate_file_reads_its_up_section(tmp_path: Path) -> None:
    p = make_dbmate(tmp_path / "db")
    res = pgsafe("lint", str(p.files[1]), "--format", "json")  # its down drops a column
    assert res.returncode == 0, res.stdout
    res = pgsafe("lint", str(p.files[0]), "--format", "json")
    (finding,) = json.loads(res.stdout)["findings"]
    assert (finding["file"], finding["line"]) == (str(p.up1[0]), p.up1[1])


def test_dbmate_files_named_by_version_alone(tmp_path: Path) -> None:
    root = write(tmp_path / "db", {"20240101000000.sql": f"-- migrate:up\n{M1_UP}\n"})
    assert detect(root) == ("dbmate", root)
    (mig,) = discover(root)
    assert (mig.version, mig.name, mig.down_path) == ("20240101000000", "", None)
