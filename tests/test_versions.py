"""Version-aware analysis (issue 13): today's SQL parses (PostgreSQL 18's grammar), the first
major whose grammar accepts a statement is read from its parse tree, and syntax newer than the
target is an error finding (requires-newer-postgres) with the target's major taken from the
server, pg_version in the config or --pg-version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import pgsafe, write
from pgsafe.analysis.statement import GRAMMAR_MAJOR, split_statements
from pgsafe.analysis.versions import requirement
from pgsafe.lint import LintConfig, lint_text, load_config
from pgsafe.server import TemporaryDatabase


def need(sql: str) -> int | None:
    (stmt,) = split_statements(sql)
    r = requirement(stmt.tree)
    return None if r is None else r.major


def test_the_grammar_is_postgresql_18_the_one_pglast_bundles() -> None:
    from pglast import parser

    assert GRAMMAR_MAJOR == parser.get_postgresql_version()[0] == 18


@pytest.mark.parametrize(
    ("sql", "major"),
    [
        # issue 13's statements, which the old parser (PostgreSQL 15's grammar) refused
        ("ALTER TABLE t ADD COLUMN b int GENERATED ALWAYS AS (a * 2) VIRTUAL", 18),
        ("ALTER TABLE t ADD CONSTRAINT c NOT NULL col NOT VALID", 18),
        (
            "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE "
            "RETURNING merge_action(), t.*",
            17,
        ),
        ("SELECT * FROM (SELECT 1)", 16),
        # more of each major
        ("ALTER TABLE t ADD COLUMN b int GENERATED ALWAYS AS (a * 2)", 18),  # VIRTUAL by default
        ("CREATE TABLE t (a int, CONSTRAINT n NOT NULL a)", 18),
        ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT ENFORCED", 18),
        ("CREATE TABLE r (id int, p tstzrange, PRIMARY KEY (id, p WITHOUT OVERLAPS))", 18),
        ("UPDATE t SET a = 1 RETURNING WITH (OLD AS o) o.a", 18),
        ("SELECT * FROM JSON_TABLE('[]'::jsonb, '$[*]' COLUMNS (a int PATH '$.a')) jt", 17),
        ("SELECT JSON_QUERY('{}'::jsonb, '$.a')", 17),
        (
            "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE "
            "WHEN NOT MATCHED BY SOURCE THEN DELETE",
            17,
        ),
        ("ALTER TABLE t ALTER COLUMN b SET EXPRESSION AS (a * 3)", 17),
        ("COPY t FROM STDIN WITH (ON_ERROR ignore)", 17),
        ("SELECT '{}' IS JSON", 16),
        ("SELECT JSON_OBJECT('a': 1)", 16),
        ("VACUUM (BUFFER_USAGE_LIMIT '1MB') t", 16),
        ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", 15),
        ("CREATE UNIQUE INDEX i ON t (a) NULLS NOT DISTINCT", 15),
        ("CREATE OR REPLACE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", 14),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1", 14),
        ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY", 14),
        ("SELECT a FROM t GROUP BY DISTINCT a", 14),
    ],
)
def test_newer_syntax_parses_and_says_its_major(sql: str, major: int) -> None:
    assert need(sql) == major


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE t (a int CHECK (a > 0), b int REFERENCES p, FOREIGN KEY (a) REFERENCES p)",
        "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID",
        "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES p NOT VALID",
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
        "CREATE TABLE t (a int NOT NULL, b int CONSTRAINT n NOT NULL)",
        "CREATE TABLE t (a int GENERATED ALWAYS AS IDENTITY, b int GENERATED ALWAYS AS (a) STORED)",
        "SELECT * FROM (SELECT 1) AS x, LATERAL (SELECT 2) y, generate_series(1, 2)",
        "CREATE DOMAIN d AS int CHECK (VALUE > 0)",
        "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING RETURNING *",
        "CREATE INDEX CONCURRENTLY i ON t (a) INCLUDE (b) WHERE a > 0",
    ],
)
def test_syntax_every_supported_major_has_needs_nothing(sql: str) -> None:
    assert need(sql) is None


def test_lint_reports_syntax_newer_than_the_target() -> None:
    text = (
        "CREATE TABLE t (a int, b int);\n"
        "ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS (a * 2) VIRTUAL;\n"
    )
    on16 = [f for f in lint_text(text, "m.sql", LintConfig(pg_version=16)).findings]
    (f,) = [f for f in on16 if f.rule == "requires-newer-postgres"]
    assert f.severity == "error"
    assert f.message.endswith("requires PostgreSQL 18; the target runs 16")
    assert (f.line, f.column) == (2, 32)  # the GENERATED constraint itself
    on18 = lint_text(text, "m.sql", LintConfig(pg_version=18)).findings
    assert not [f for f in on18 if f.rule == "requires-newer-postgres"]
    # Without a target (no config, option or server), the newest grammar is the target.
    default = lint_text(text, "m.sql", LintConfig()).findings
    assert not [f for f in default if f.rule == "requires-newer-postgres"]


def test_target_major_from_the_config_and_the_option(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": "[tool.pgsafe]\npg_version = 15\n"})
    cfg = load_config(tmp_path)
    assert cfg.pg_version == 15 and "pg_version" in cfg.pg_version_source
    migs = write(
        tmp_path / "migrations",
        {
            "001_v.up.sql": "SET lock_timeout = '2s';\nSELECT * FROM (SELECT 1);\n",
            "001_v.down.sql": "SELECT 1;\n",
        },
    )
    res = pgsafe("lint", str(migs), "--format", "json", cwd=tmp_path)
    assert res.returncode == 1, (res.stdout, res.stderr)
    (f,) = json.loads(res.stdout)["findings"]
    assert f["rule"] == "requires-newer-postgres"
    assert f["message"].endswith("requires PostgreSQL 16; the target runs 15")
    assert (f["line"], f["column"]) == (2, 1)
    # --pg-version overrides the config.
    res = pgsafe("lint", str(migs), "--pg-version", "16", cwd=tmp_path)
    assert res.returncode == 0, (res.stdout, res.stderr)


def test_dry_run_takes_the_target_major_from_the_server(
    pgsafe_db: TemporaryDatabase, tmp_path: Path
) -> None:
    with pgsafe_db.connect() as conn:
        major = conn.server_version // 10000
    migs = write(
        tmp_path / "migrations",
        {
            "001_v.sql": "SET lock_timeout = '2s';\nCREATE TABLE t (a int);\n"
            "ALTER TABLE t ADD COLUMN b int GENERATED ALWAYS AS (a * 2) VIRTUAL;\n"
        },
    )
    # The config says 18; the server's own major wins.
    write(tmp_path, {"pyproject.toml": "[tool.pgsafe]\npg_version = 18\n"})
    res = pgsafe(
        "dry-run", str(migs), "--db", pgsafe_db.dsn, "--no-trace", "--format", "json", cwd=tmp_path
    )
    if major >= 18:
        assert res.returncode == 0, (res.stdout, res.stderr)
        return
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert f"requires PostgreSQL 18; the target runs {major}" in res.stdout
