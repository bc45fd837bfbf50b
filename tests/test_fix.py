"""`pgsafe fix`: each recipe rewritten from the parse tree, lint-clean afterwards, the rest of the
file kept byte for byte; and end to end on a real server: the fixed migration applies with
`pgsafe apply` while another session keeps inserting into the table, the intended object is
there and valid, no insert waited longer than a catalog update, and the down file rolls back."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import PGSAFE, cli_env, pgsafe, query, write
from pgsafe.analysis.statement import split_statements
from pgsafe.errors import ParseError
from pgsafe.lint import LintConfig, lint_text
from pgsafe.lint.fix import FixOptions, fix_text, follow_down, object_name
from pgsafe.server import TemporaryDatabase

# -- rewriting, without a server ---------------------------------------------------------------


def _errors(text: str, pg: int = 15) -> list[str]:
    return [
        f.rule
        for f in lint_text(text, "m.sql", LintConfig(pg_version=pg)).findings
        if f.severity == "error"
    ]


def _fix(text: str, pg: int = 15, **options: object) -> str:
    result = fix_text(text, "m.sql", LintConfig(pg_version=pg), FixOptions(**options))  # type: ignore[arg-type]
    return result.fixed


RECIPES = {
    "CREATE INDEX idx_t_a ON t (a, lower(b)) WHERE a > 0;": (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_t_a ON t (a, (lower(b))) WHERE a > 0;"
    ),
    "CREATE UNIQUE INDEX ON app.t (a);": "CREATE UNIQUE INDEX CONCURRENTLY ON app.t (a);",
    "DROP INDEX idx_a, app.idx_b;": (
        "DROP INDEX CONCURRENTLY IF EXISTS idx_a;\nDROP INDEX CONCURRENTLY IF EXISTS app.idx_b;"
    ),
    "REINDEX INDEX idx_a;": "REINDEX INDEX CONCURRENTLY idx_a;",
    "REINDEX (VERBOSE) TABLE t;": "REINDEX (VERBOSE) TABLE CONCURRENTLY t;",
    "ALTER TABLE t ADD CONSTRAINT t_o_fk FOREIGN KEY (o_id) REFERENCES o (id);": (
        "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_o_fk,"
        " ADD CONSTRAINT t_o_fk FOREIGN KEY (o_id) REFERENCES o (id) NOT VALID;\n"
        "-- pgsafe: step\nALTER TABLE t VALIDATE CONSTRAINT t_o_fk;"
    ),
    "ALTER TABLE t ADD FOREIGN KEY (o_id) REFERENCES o;": (
        "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_o_id_fkey,"
        " ADD CONSTRAINT t_o_id_fkey FOREIGN KEY (o_id) REFERENCES o NOT VALID;\n"
        "-- pgsafe: step\nALTER TABLE t VALIDATE CONSTRAINT t_o_id_fkey;"
    ),
    "ALTER TABLE t ADD CHECK (a > 0 AND a < 100);": (
        "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_a_check,"
        " ADD CONSTRAINT t_a_check CHECK (a > 0 AND a < 100) NOT VALID;\n"
        "-- pgsafe: step\nALTER TABLE t VALIDATE CONSTRAINT t_a_check;"
    ),
    "ALTER TABLE t ALTER COLUMN b SET NOT NULL;": (
        "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_b_not_null,"
        " ADD CONSTRAINT t_b_not_null CHECK (b IS NOT NULL) NOT VALID;\n"
        "-- pgsafe: step\nALTER TABLE t VALIDATE CONSTRAINT t_b_not_null;\n"
        "ALTER TABLE t ALTER COLUMN b SET NOT NULL;\nALTER TABLE t DROP CONSTRAINT t_b_not_null;"
    ),
    "ALTER TABLE t ADD CONSTRAINT t_c_key UNIQUE (c);": (
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_c_key ON t (c);\n"
        "ALTER TABLE t ADD CONSTRAINT t_c_key UNIQUE USING INDEX t_c_key;"
    ),
}


@pytest.mark.parametrize("sql", list(RECIPES))
def test_each_recipe_is_printed_from_the_tree_and_lints_clean(sql: str) -> None:
    assert _errors(sql), f"the test's statement must be unsafe: {sql}"
    fixed = _fix(sql)
    assert fixed == RECIPES[sql]
    assert _errors(fixed) == []
    assert _fix(fixed) == fixed  # nothing left to fix: a second run changes nothing


def test_set_not_null_on_postgresql_18_uses_not_null_not_valid() -> None:
    fixed = _fix("ALTER TABLE t ALTER COLUMN b SET NOT NULL;", pg=18)
    assert fixed == (
        "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_b_not_null,"
        " ADD CONSTRAINT t_b_not_null NOT NULL b NOT VALID;\n"
        "-- pgsafe: step\nALTER TABLE t VALIDATE CONSTRAINT t_b_not_null;"
    )
    assert _errors(fixed, pg=18) == []


def test_the_rest_of_the_file_is_kept_byte_for_byte() -> None:
    head = "-- header: ünïcode kept\r\nCREATE TABLE n (id int);  /* trailing */\r\n\r\n"
    tail = (
        "  -- after\r\n-- pgsafe: ignore ban-drop-column reason: unused since v3\r\n"
        "ALTER TABLE t DROP COLUMN x;\r\n"
    )
    text = head + "CREATE INDEX i ON t (a);" + tail
    fixed = _fix(text)
    assert fixed == head + "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);" + tail
    assert "ban-drop-column" not in _errors(fixed)  # the suppression still holds its statement


def test_a_fix_never_adds_a_suppression_and_reports_what_it_cannot_fix() -> None:
    text = (
        "ALTER TABLE t ALTER COLUMN a TYPE bigint;\n"
        "ALTER TABLE t ADD COLUMN z int NOT NULL;\n"
        "CREATE INDEX i ON t (a);\n"
    )
    result = fix_text(text, "m.sql", LintConfig(pg_version=15))
    assert "ignore" not in result.fixed.replace(text, "")
    assert result.fixed.startswith(
        "ALTER TABLE t ALTER COLUMN a TYPE bigint;\nALTER TABLE t ADD COLUMN z int NOT NULL;\n"
    )
    rules = {n.rule: n for n in result.not_fixable}
    assert set(rules) == {"changing-column-type", "adding-required-field"}
    assert "DEFAULT" in rules["adding-required-field"].recipe  # the manual recipe is given
    assert result.remaining == []


def test_partitioned_tables_and_cascade_are_left_alone() -> None:
    text = (
        "ALTER TABLE p ATTACH PARTITION p1 FOR VALUES FROM (1) TO (10);\n"
        "CREATE INDEX pi ON p (id);\n"
        "DROP INDEX old_i CASCADE;\n"
    )
    result = fix_text(text, "m.sql", LintConfig(pg_version=15))
    assert "CREATE INDEX pi ON p (id);" in result.fixed
    assert "DROP INDEX old_i CASCADE;" in result.fixed
    assert {n.rule for n in result.not_fixable} >= {
        "require-concurrent-index",
        "require-concurrent-index-deletion",
    }


def test_missing_timeouts_are_prepended_when_required_below_a_header() -> None:
    text = (
        "-- 005: add an index\n-- pgsafe: ignore ban-drop-column reason: gone\n"
        "ALTER TABLE t DROP COLUMN x;\n"
    )
    config = LintConfig(pg_version=15, enable={"require-timeout-settings"})
    assert "require-timeout-settings" in {f.rule for f in lint_text(text, "m.sql", config).findings}
    fixed = fix_text(text, "m.sql", config, FixOptions(timeouts=True)).fixed
    assert fixed == (
        "-- 005: add an index\nSET lock_timeout TO '5s';\nSET statement_timeout TO '5min';\n"
        "-- pgsafe: ignore ban-drop-column reason: gone\nALTER TABLE t DROP COLUMN x;\n"
    )
    assert not lint_text(fixed, "m.sql", config).findings


def test_the_file_own_begin_commit_goes_when_a_recipe_needs_autocommit() -> None:
    text = "BEGIN;\nCREATE INDEX i ON t (a);\nCOMMIT;\n"
    fixed = _fix(text)
    assert fixed == "\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);\n\n"
    assert _errors(fixed) == []


def test_names_follow_postgresql_when_too_long() -> None:
    long_table = "t" * 60
    name = object_name(long_table, "customer_id", "fkey")
    assert len(name.encode()) == 63 and name.endswith("_customer_id_fkey")


def test_the_down_file_follows() -> None:
    up = fix_text(
        "ALTER TABLE t ADD CONSTRAINT t_c_key UNIQUE (c);\n"
        "ALTER TABLE t ALTER COLUMN b SET NOT NULL;\n",
        "001_x.up.sql",
        LintConfig(pg_version=15),
    )
    down = follow_down(
        "ALTER TABLE t ALTER COLUMN b DROP NOT NULL;\nALTER TABLE t DROP CONSTRAINT t_c_key;\n",
        "001_x.down.sql",
        up,
        LintConfig(pg_version=15),
    ).fixed
    assert "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_c_key;" in down
    assert "ALTER TABLE IF EXISTS t DROP CONSTRAINT IF EXISTS t_b_not_null;" in down
    assert "DROP INDEX CONCURRENTLY IF EXISTS t_c_key;" in down


# -- the step marker ---------------------------------------------------------------------------


def test_step_marker_starts_a_new_transaction_for_lint_and_the_runner() -> None:
    text = (
        "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\n"
        "-- pgsafe: step  (validate on its own)\n"
        "ALTER TABLE t VALIDATE CONSTRAINT c;\n"
    )
    stmts = split_statements(text, "m.sql")
    assert [s.new_step for s in stmts] == [False, True]
    assert stmts[1].to_core().new_step
    assert _errors(text) == []
    together = text.replace("-- pgsafe: step  (validate on its own)\n", "")
    assert "ban-validate-in-same-transaction" in _errors(together)
    assert _fix(together) == text.replace("  (validate on its own)", "")


def test_a_step_marker_inside_a_statement_is_refused() -> None:
    with pytest.raises(ParseError, match="between two statements"):
        split_statements("ALTER TABLE t\n-- pgsafe: step\nADD COLUMN x int;", "m.sql")


# -- end to end on a real server ---------------------------------------------------------------

# slow_ok() takes ~0.2 ms a row: 8,000 rows make a CHECK or an index on it take ~2 s, so a
# statement that holds a write-blocking lock through the scan is seen by the writer.
SETUP = """
CREATE TABLE o (id int PRIMARY KEY);
INSERT INTO o SELECT g FROM generate_series(1, 10) g;
CREATE FUNCTION slow_ok(v int) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_sleep(0.0002); RETURN v IS NOT NULL; END $$;
CREATE TABLE t (id bigint, a int, b int, c bigint, o_id int);
CREATE SEQUENCE t_ids;
INSERT INTO t SELECT nextval('t_ids'), 1, 1, g, 1 FROM generate_series(1, 8000) g;
"""


class Writer(threading.Thread):
    """Inserts into t in a loop on its own session, timing each insert."""

    def __init__(self, db: TemporaryDatabase) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        with self.db.connect(application_name="pgsafe-test-writer") as conn:
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    conn.execute(
                        "INSERT INTO t (id, a, b, c, o_id) "
                        "SELECT n, 1, 1, n + 1000000, 1 FROM nextval('t_ids') n"
                    )
                except Exception as exc:  # reported by the test, not swallowed
                    self.errors.append(str(exc))
                    return
                self.latencies.append(time.monotonic() - t0)
                time.sleep(0.01)


def _apply_with_writer(db: TemporaryDatabase, migs: Path) -> tuple[Writer, str]:
    writer = Writer(db)
    writer.start()
    time.sleep(0.3)
    try:
        res = pgsafe("apply", str(migs), "--db", db.url, "--apply", "--no-backup", "--log-dir", "")
    finally:
        writer.stop.set()
        writer.join(30)
    assert res.returncode == 0, res.stdout + res.stderr
    return writer, res.stdout


E2E = {
    "index": (
        "CREATE INDEX idx_t_slow ON t (slow_ok(a));",
        "DROP INDEX idx_t_slow;",
        "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = 'idx_t_slow'::regclass",
    ),
    "check": (
        "ALTER TABLE t ADD CONSTRAINT t_a_slow CHECK (slow_ok(a));",
        "ALTER TABLE t DROP CONSTRAINT t_a_slow;",
        "SELECT convalidated FROM pg_constraint WHERE conname = 't_a_slow'",
    ),
    "foreign key": (
        "ALTER TABLE t ADD CONSTRAINT t_o_fk FOREIGN KEY (o_id) REFERENCES o (id);",
        "ALTER TABLE t DROP CONSTRAINT t_o_fk;",
        "SELECT convalidated FROM pg_constraint WHERE conname = 't_o_fk'",
    ),
    "unique": (
        "ALTER TABLE t ADD CONSTRAINT t_c_key UNIQUE (c);",
        "ALTER TABLE t DROP CONSTRAINT t_c_key;",
        "SELECT i.indisvalid AND i.indisunique FROM pg_constraint c JOIN pg_index i"
        " ON i.indexrelid = c.conindid WHERE c.conname = 't_c_key' AND c.contype = 'u'",
    ),
    "primary key": (
        "ALTER TABLE t ADD PRIMARY KEY (id);",
        "ALTER TABLE t DROP CONSTRAINT t_pkey;\nALTER TABLE t ALTER COLUMN id DROP NOT NULL;",
        "SELECT i.indisvalid AND a.attnotnull FROM pg_constraint c JOIN pg_index i"
        " ON i.indexrelid = c.conindid JOIN pg_attribute a ON a.attrelid = c.conrelid"
        " AND a.attname = 'id' WHERE c.conname = 't_pkey' AND c.contype = 'p'",
    ),
    "drop and reindex": (
        "DROP INDEX idx_t_old;\nREINDEX INDEX idx_t_keep;",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_t_old ON t (a);",
        "SELECT to_regclass('idx_t_old') IS NULL AND i.indisvalid FROM pg_index i"
        " WHERE i.indexrelid = 'idx_t_keep'::regclass",
    ),
}


def _setup(db: TemporaryDatabase) -> None:
    with db.connect(application_name="pgsafe-test") as conn:
        conn.execute(SETUP)
        conn.execute("CREATE INDEX idx_t_old ON t (a); CREATE INDEX idx_t_keep ON t (c)")


def _end_to_end(
    db: TemporaryDatabase, tmp_path: Path, up: str, down: str, check: str, pg: int
) -> Writer:
    _setup(db)
    migs = write(
        tmp_path / "migrations",
        {"001_change.up.sql": up + "\n", "001_change.down.sql": down + "\n"},
    )
    version = ["--pg-version", str(pg)]
    assert pgsafe("lint", str(migs), *version).returncode == 1  # unsafe as written
    fixed = pgsafe("fix", str(migs), "--write", *version)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "-- pgsafe: ignore" not in (migs / "001_change.up.sql").read_text()
    lint = pgsafe("lint", str(migs), *version)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    writer, _ = _apply_with_writer(db, migs)
    assert query(db, check) == [("t",)], (migs / "001_change.up.sql").read_text()
    rolled = pgsafe("rollback", str(migs), "--db", db.url, "--apply", "--log-dir", "", "--yes")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    return writer


@pytest.mark.parametrize("case", list(E2E))
def test_fixed_migration_applies_without_blocking_a_writer(
    case: str, pgsafe_db: TemporaryDatabase, tmp_path: Path, pg_major: int
) -> None:
    up, down, check = E2E[case]
    writer = _end_to_end(pgsafe_db, tmp_path, up, down, check, pg_major)
    assert not writer.errors, writer.errors
    assert len(writer.latencies) > 5, "the writer must have run while the migration did"
    assert max(writer.latencies) < 1.0, f"an insert waited {max(writer.latencies):.2f}s"


@pytest.mark.pg_matrix
def test_set_not_null_recipe_of_each_major(
    pgsafe_db: TemporaryDatabase, tmp_path: Path, pg_major: int
) -> None:
    writer = _end_to_end(
        pgsafe_db,
        tmp_path,
        "ALTER TABLE t ALTER COLUMN b SET NOT NULL;",
        "ALTER TABLE t ALTER COLUMN b DROP NOT NULL;",
        "SELECT a.attnotnull FROM pg_attribute a"
        " WHERE a.attrelid = 't'::regclass AND a.attname = 'b'",
        pg_major,
    )
    assert not writer.errors and writer.latencies and max(writer.latencies) < 1.0
    # Rolled back: nullable again, the temporary check gone.
    assert query(
        pgsafe_db, "SELECT count(*) FROM pg_constraint WHERE conname = 't_b_not_null'"
    ) in ([("0",)],)


def test_the_unfixed_check_blocks_the_writer(pgsafe_db: TemporaryDatabase, tmp_path: Path) -> None:
    """The control: as written, the CHECK holds ACCESS EXCLUSIVE through its 2 s scan, and the
    writer sees it; the same harness passes the fixed migration above."""
    _setup(pgsafe_db)
    migs = write(tmp_path / "m", {"001_check.up.sql": E2E["check"][0] + "\n"})
    writer, _ = _apply_with_writer(pgsafe_db, migs)
    assert max(writer.latencies) > 1.0


def test_apply_commits_at_each_step_marker(pgsafe_db: TemporaryDatabase, tmp_path: Path) -> None:
    """The runner honours the marker: the step before a failure stays committed and the ledger
    says dirty; without the marker the whole migration rolls back."""
    body = "CREATE TABLE first_step (id int);\n{marker}SELECT 1 / 0;\n"
    for marker, committed in (("", False), ("-- pgsafe: step\n", True)):
        migs = write(tmp_path / f"m{int(committed)}", {"001_x.up.sql": body.format(marker=marker)})
        res = pgsafe(
            "apply", str(migs), "--db", pgsafe_db.url, "--apply", "--no-backup", "--log-dir", ""
        )
        assert res.returncode == 2, res.stdout + res.stderr
        made = query(pgsafe_db, "SELECT to_regclass('first_step') IS NOT NULL")
        assert made == [("t" if committed else "f",)]
        status = query(pgsafe_db, "SELECT status FROM pgsafe.migrations WHERE version = '001'")
        assert status == ([("dirty",)] if committed else [])


def test_lint_recognises_a_recipe_split_over_two_migrations(tmp_path: Path) -> None:
    """A CHECK (col IS NOT NULL) added NOT VALID by one migration and validated by the next
    spares SET NOT NULL its scan: linting the directory knows it, whatever the check's name."""
    migs = write(
        tmp_path / "m",
        {
            "001_a.up.sql": (
                "ALTER TABLE t ADD CONSTRAINT b_present CHECK (b IS NOT NULL) NOT VALID;\n"
            ),
            "001_a.down.sql": "ALTER TABLE t DROP CONSTRAINT b_present;\n",
            "002_b.up.sql": (
                "ALTER TABLE t VALIDATE CONSTRAINT b_present;\n"
                "ALTER TABLE t ALTER COLUMN b SET NOT NULL;\n"
            ),
            "002_b.down.sql": "ALTER TABLE t ALTER COLUMN b DROP NOT NULL;\n",
        },
    )
    assert pgsafe("lint", str(migs), "--pg-version", "15").returncode == 0
    alone = pgsafe("lint", str(migs / "002_b.up.sql"), "--pg-version", "15")
    assert alone.returncode == 1 and "setting-not-nullable-field" in alone.stdout
    fixed = pgsafe("fix", str(migs), "--pg-version", "15")
    assert fixed.returncode == 0 and fixed.stdout == "", fixed.stdout + fixed.stderr


def test_cli_diff_exit_codes_and_bad_input(tmp_path: Path) -> None:
    migs = write(
        tmp_path / "m",
        {
            "001_a.up.sql": "CREATE INDEX i ON t (a);\n",
            "001_a.down.sql": "DROP INDEX i;\n",
            "002_b.up.sql": "ALTER TABLE t ADD COLUMN x int, ADD UNIQUE (x);\n",
        },
    )
    shown = pgsafe("fix", str(migs), "--pg-version", "15")
    assert shown.returncode == 1  # 002's UNIQUE on a column the statement adds stays
    assert f"+++ b/{str(migs).lstrip('/')}/001_a.up.sql" in shown.stdout
    assert "+CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);" in shown.stdout
    assert "+DROP INDEX CONCURRENTLY IF EXISTS i;" in shown.stdout
    assert "not fixable" in shown.stderr and "disallowed-unique-constraint" in shown.stderr
    assert "manual recipe: CREATE UNIQUE INDEX CONCURRENTLY" in shown.stderr
    assert (migs / "001_a.up.sql").read_text() == "CREATE INDEX i ON t (a);\n"  # no --write
    stdin = subprocess.run(
        [str(PGSAFE), "fix", "-", "--pg-version", "15"],
        input="DROP INDEX i;\n",
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
    )
    assert stdin.returncode == 0 and "+DROP INDEX CONCURRENTLY IF EXISTS i;" in stdin.stdout
    for argv in (["fix", str(tmp_path / "nowhere")], ["fix", "-", "--write"]):
        bad = pgsafe(*argv)
        assert bad.returncode == 5 and bad.stderr.count("\n") == 1, bad.stderr
        assert "Traceback" not in bad.stderr


def test_dry_run_traces_each_step_as_its_own_transaction(tmp_path: Path) -> None:
    """The ADD ... NOT VALID's lock is held until its step commits: with the marker its hold
    ends before the slow VALIDATE; without it the hold runs through the validation."""
    base = (
        "CREATE FUNCTION slow_ok(v int) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS\n"
        "  $$ BEGIN PERFORM pg_sleep(0.0002); RETURN v IS NOT NULL; END $$;\n"
        "CREATE TABLE t (a int);\n"
        "INSERT INTO t SELECT g FROM generate_series(1, 3000) g;\n"
    )
    change = (
        "ALTER TABLE t ADD CONSTRAINT t_a_slow CHECK (slow_ok(a)) NOT VALID;\n{marker}"
        "ALTER TABLE t VALIDATE CONSTRAINT t_a_slow;\n"
    )
    holds = {}
    for marker in ("", "-- pgsafe: step\n"):
        migs = write(
            tmp_path / f"m{len(marker)}",
            {"000_base.up.sql": base, "001_check.up.sql": change.format(marker=marker)},
        )
        res = pgsafe("dry-run", str(migs), "--format", "json", timeout=300)
        assert res.returncode in (0, 1), res.stderr
        doc = json.loads(res.stdout)
        add, validate = doc["migrations"][1]["statements"]
        assert validate["duration_s"] > 0.3  # the scan is slow enough to tell
        holds[bool(marker)] = add["lock_hold_s"]
    assert holds[False] > 0.3 and holds[True] < 0.2, holds
