"""Lock tracing against a real server: the lock mode PostgreSQL documents for each statement
kind is the one observed on the pre-existing table, rewrites are seen as relfilenode changes,
predicted-vs-observed mismatches are reported, and dry-run carries the observations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import pgsafe, query, write
from pgsafe.errors import ConfigError
from pgsafe.lifecycle.trace import assert_max_lock, assert_no_rewrite, trace, trace_sql

# Runs on every major of the version matrix (tests/conftest.py).
pytestmark = pytest.mark.pg_matrix

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "migrations"

AS, RS, RE = "AccessShareLock", "RowShareLock", "RowExclusiveLock"
SUE, SH, SRE = "ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock"
EX, AE = "ExclusiveLock", "AccessExclusiveLock"

SCHEMA = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'trace_reader') THEN
    CREATE ROLE trace_reader NOLOGIN;
  END IF;
END $$;
CREATE TABLE t (id int PRIMARY KEY, v varchar(10), n int, c text);
INSERT INTO t SELECT g, g::text, g, 'row ' || g FROM generate_series(1, 2000) g;
CREATE INDEX t_n_idx ON t (n);
CREATE TABLE p (id int PRIMARY KEY);
INSERT INTO p SELECT generate_series(1, 2000);
ALTER TABLE t ADD CONSTRAINT t_n_pos CHECK (n > 0) NOT VALID;
CREATE FUNCTION trace_trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER t_trg BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION trace_trg();
CREATE TABLE parted (k int NOT NULL) PARTITION BY RANGE (k);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
CREATE TABLE loose (k int NOT NULL);
CREATE MATERIALIZED VIEW mv AS SELECT id FROM t;
CREATE UNIQUE INDEX mv_id ON mv (id);
CREATE SEQUENCE s;
"""

# (statement, {relation: documented mode (None: no lock)}, rewritten tables)
CASES: list[tuple[str, dict[str, str | None], set[str]]] = [
    ("ALTER TABLE t ADD COLUMN x int", {"t": AE}, set()),
    ("ALTER TABLE t ADD COLUMN x int DEFAULT 7", {"t": AE}, set()),
    ("ALTER TABLE t ADD COLUMN x float8 DEFAULT random()", {"t": AE}, {"t"}),
    ("ALTER TABLE t DROP COLUMN c", {"t": AE}, set()),
    ("ALTER TABLE t ALTER COLUMN n SET NOT NULL", {"t": AE}, set()),
    ("ALTER TABLE t ALTER COLUMN n SET DEFAULT 5", {"t": AE}, set()),
    ("ALTER TABLE t ALTER COLUMN n TYPE bigint", {"t": AE}, {"t"}),
    ("ALTER TABLE t ALTER COLUMN v TYPE varchar(50)", {"t": AE}, set()),
    ("ALTER TABLE t ALTER COLUMN n SET STATISTICS 500", {"t": SUE}, set()),
    ("ALTER TABLE t SET (fillfactor = 70)", {"t": SUE}, set()),
    ("ALTER TABLE t CLUSTER ON t_pkey", {"t": SUE}, set()),
    ("ALTER TABLE t ADD CONSTRAINT t_n_max CHECK (n < 1000000)", {"t": AE}, set()),
    ("ALTER TABLE t ADD CONSTRAINT t_n_max CHECK (n < 1000000) NOT VALID", {"t": AE}, set()),
    ("ALTER TABLE t VALIDATE CONSTRAINT t_n_pos", {"t": SUE}, set()),
    (
        "ALTER TABLE t ADD CONSTRAINT t_n_fk FOREIGN KEY (n) REFERENCES p (id)",
        {"t": SRE, "p": SRE},
        set(),
    ),
    (
        "ALTER TABLE parted ATTACH PARTITION loose FOR VALUES FROM (100) TO (200)",
        {"parted": SUE, "loose": AE},
        set(),
    ),
    ("ALTER TABLE parted DETACH PARTITION parted_1 CONCURRENTLY", {"parted": SUE}, set()),
    ("ALTER TABLE t SET UNLOGGED", {"t": AE}, {"t"}),
    ("ALTER TABLE t ENABLE ROW LEVEL SECURITY", {"t": AE}, set()),
    ("ALTER TABLE t DISABLE TRIGGER t_trg", {"t": SRE}, set()),
    ("ALTER TABLE t RENAME TO t_renamed", {"t": AE}, set()),
    ("ALTER TABLE t RENAME COLUMN c TO c2", {"t": AE}, set()),
    ("ALTER INDEX t_n_idx RENAME TO t_n_idx2", {"t_n_idx": SUE}, set()),
    ("CLUSTER t USING t_pkey", {"t": AE}, {"t"}),
    ("VACUUM FULL t", {"t": AE}, {"t"}),
    ("CREATE INDEX t_v_idx ON t (v)", {"t": SH}, set()),
    ("CREATE INDEX CONCURRENTLY t_v_idx ON t (v)", {"t": SUE}, set()),
    ("DROP INDEX t_n_idx", {"t": AE, "t_n_idx": AE}, set()),
    ("DROP INDEX CONCURRENTLY t_n_idx", {"t": SUE}, set()),
    ("REINDEX TABLE t", {"t": SH, "t_pkey": AE}, set()),
    ("REINDEX TABLE CONCURRENTLY t", {"t": SUE}, set()),
    ("TRUNCATE t", {"t": AE}, {"t"}),
    (
        "CREATE TRIGGER t_trg2 AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION trace_trg()",
        {"t": SRE},
        set(),
    ),
    ("CREATE RULE t_rule AS ON INSERT TO t DO INSTEAD NOTHING", {"t": AE}, set()),
    ("CREATE POLICY t_pol ON t USING (n > 0)", {"t": AE}, set()),
    ("CREATE STATISTICS t_stats ON n, v FROM t", {"t": SUE}, set()),
    ("COMMENT ON TABLE t IS 'traced'", {"t": SUE}, set()),
    ("COMMENT ON COLUMN t.n IS 'traced'", {"t": SUE}, set()),
    # PostgreSQL 18 locks a relation (AccessShareLock) while it grants on it or revokes from it;
    # 15 and 16 do not ...
    ("GRANT SELECT ON t TO trace_reader", {"t": lambda major: AS if major >= 18 else None}, set()),
    (
        "REVOKE SELECT ON t FROM trace_reader",
        {"t": lambda major: AS if major >= 18 else None},
        set(),
    ),
    ("GRANT USAGE ON SEQUENCE s TO trace_reader", {"s": lambda m: AS if m >= 18 else None}, set()),
    # ... but not the tables of a schema granted on as a whole.
    ("GRANT SELECT ON ALL TABLES IN SCHEMA public TO trace_reader", {"t": None}, set()),
    ("LOCK TABLE t IN SHARE MODE", {"t": SH}, set()),
    ("LOCK TABLE t", {"t": AE}, set()),
    ("CREATE VIEW t_view AS SELECT id, n FROM t", {"t": AS}, set()),
    ("REFRESH MATERIALIZED VIEW mv", {"mv": AE}, {"mv"}),
    ("REFRESH MATERIALIZED VIEW CONCURRENTLY mv", {"mv": EX}, set()),
    ("ALTER SEQUENCE s RESTART WITH 10", {"s": SRE}, {"s"}),  # RESTART: new relfilenode
    ("INSERT INTO t (id, n) VALUES (0, 1)", {"t": RE}, set()),
    ("UPDATE t SET n = n + 1 WHERE id = 1", {"t": RE}, set()),
    ("DELETE FROM t WHERE id = 2", {"t": RE}, set()),
    ("SELECT id FROM t WHERE id = 3 FOR UPDATE", {"t": RS}, set()),
    ("CREATE TABLE child (id int PRIMARY KEY, p_id int REFERENCES p (id))", {"p": SRE}, set()),
]


@pytest.fixture(scope="module")
def template(pgsafe_server):
    name = "pgsafe_trace_template"
    pgsafe_server.create_database(name)
    with pgsafe_server.connect(name, application_name="pgsafe-test") as conn:
        conn.execute(SCHEMA)
    return name


@pytest.fixture
def fresh(pgsafe_server, template):
    db = pgsafe_server.new_database(template=template)
    yield db
    db.drop()


def strongest_on(statement, relation: str) -> str | None:
    modes = [x["mode"] for x in statement.locks if x["relation"] == relation]
    order = [AS, RS, RE, SUE, SH, SRE, EX, AE]
    return max(modes, key=order.index) if modes else None


@pytest.mark.parametrize(("sql", "expected", "rewrites"), CASES, ids=[c[0][:60] for c in CASES])
def test_documented_lock_modes(fresh, sql, expected, rewrites, pg_major):
    result = trace_sql(sql, dsn=fresh.dsn)
    assert not result.error, result.error
    (st,) = result.statements
    for relation, mode in expected.items():
        want = mode(pg_major) if callable(mode) else mode
        assert strongest_on(st, relation) == want, (relation, st.locks)
    assert set(st.rewrites) == rewrites
    # The static prediction (pgsafe lint, dry-run) agrees with what PostgreSQL did. Sampled
    # (CONCURRENTLY) statements are left out: whether a sample catches e.g. REINDEX
    # CONCURRENTLY's brief ACCESS EXCLUSIVE on the old index when it swaps depends on timing.
    if st.sampled:
        return
    # The prediction assumes the traced server's major (GRANT locks the table from 18 on).
    assert st.mismatch is None, st.mismatch


def test_more_than_thirty_statement_kinds():
    assert len({c[0].split(" (")[0] for c in CASES}) >= 30


def test_catalog_changes_and_lock_hold(fresh):
    result = trace_sql(
        "ALTER TABLE t ALTER COLUMN n SET NOT NULL;\n"
        "ALTER TABLE t ALTER COLUMN v TYPE varchar(40);\n"
        "ALTER TABLE t VALIDATE CONSTRAINT t_n_pos;\n"
        "ALTER TABLE t ADD CONSTRAINT t_fk FOREIGN KEY (n) REFERENCES p (id);\n"
        "CREATE TABLE orphan (id int PRIMARY KEY);\n"
        "ALTER TABLE orphan ADD COLUMN t_id int REFERENCES t (id);\n",
        dsn=fresh.dsn,
    )
    assert not result.error
    s0, s1, s2, s3, _s4, s5 = result.statements
    assert {(c["column"], c["what"], c["after"]) for c in s0.column_changes} == {
        ("n", "nullability", "NOT NULL")
    }
    assert [(c["column"], c["before"], c["after"]) for c in s1.column_changes] == [
        ("v", "character varying(10)", "character varying(40)")
    ]
    assert [(c["name"], c["what"], c["validated"]) for c in s2.constraint_changes] == [
        ("t_n_pos", "validated", True)
    ]
    # Locks are held until commit: a statement's hold covers every statement after it.
    assert s0.lock_hold_s >= s0.duration_s + s1.duration_s + s2.duration_s + s5.duration_s
    # A later statement on a table already locked ACCESS EXCLUSIVE: still what it asked for,
    # and that table's lock from the first statement is in `held`.
    assert strongest_on(s3, "p") == SRE and strongest_on(s3, "t") == SRE
    assert (("t", AE) in {(x["relation"], x["mode"]) for x in s3.held}) and s3.mismatch is None
    fks = {(f["relation"], f["constraint"]) for f in result.unindexed_foreign_keys}
    assert ("orphan", "orphan_t_id_fkey") in fks  # new and without an index
    assert ("t", "t_fk") not in fks  # t_n_idx supports it


def test_mismatch_is_reported(fresh):
    # A DO block's dynamic SQL is invisible to the static prediction; the tracer sees what
    # PostgreSQL did.
    result = trace_sql(
        "CREATE TABLE doc (id int);\nDO $$ BEGIN EXECUTE 'LOCK TABLE p IN SHARE MODE'; END $$;\n",
        dsn=fresh.dsn,
    )
    do = result.statements[1]
    assert do.predicted_lock is None and do.observed_lock == SH
    assert do.mismatch == "predicted no lock, observed ShareLock on p"


def test_statements_that_drop_the_sessions_prepared_statements(fresh):
    # The tracer reads locks and catalog after each statement with a prepared statement of the
    # tracing session, in the statement's own round trip; DEALLOCATE ALL (in the transaction)
    # and DISCARD ALL (autocommit) drop it, and the statements after them are still observed.
    result = trace_sql(
        "DEALLOCATE ALL;\nALTER TABLE t ADD COLUMN x int;\nSELECT pg_sleep(0.05);\n"
        "DISCARD ALL;\nALTER TABLE t ALTER COLUMN x SET DEFAULT 3;\nCOMMENT ON TABLE p IS 'x';\n",
        dsn=fresh.dsn,
    )
    assert not result.error, result.error
    dealloc, add, sleep, discard, default, comment = result.statements
    assert [s.observed_lock for s in result.statements] == [None, AE, None, None, AE, SUE]
    assert [(c["column"], c["what"]) for c in add.column_changes] == [("x", "added")]
    assert [(c["column"], c["what"], c["after"]) for c in default.column_changes] == [
        ("x", "default", "3")
    ]
    # Each statement's own run time (the server's, without the lock and catalog read).
    assert sleep.duration_s >= 0.05 and add.lock_hold_s >= sleep.duration_s
    assert discard.non_transactional and not dealloc.non_transactional
    assert [x["relation"] for x in comment.locks] == ["p"]  # t's lock is from before it


def test_failing_statement_stops_the_trace(fresh):
    result = trace_sql(
        "ALTER TABLE t ADD COLUMN y int;\nALTER TABLE nope ADD COLUMN y int;\n", dsn=fresh.dsn
    )
    assert "nope" in result.error and len(result.statements) == 2
    assert result.statements[1].error and result.statements[1].sqlstate == "42P01"
    # The failed transaction rolled back: the first column is not there either.
    assert query(
        fresh, "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'y'"
    ) == [("0",)]


def test_assert_max_lock_passes_and_fails(fresh):
    assert_max_lock("CREATE INDEX CONCURRENTLY t_c ON t (c)", SUE, dsn=fresh.dsn)
    with pytest.raises(AssertionError) as info:
        assert_max_lock(
            "ALTER TABLE t ADD COLUMN z int;\nCOMMENT ON TABLE t IS 'x';", SUE, dsn=fresh.dsn
        )
    msg = str(info.value)
    assert "stronger than ShareUpdateExclusiveLock" in msg
    assert "line 1: AccessExclusiveLock on t" in msg and "ALTER TABLE t ADD COLUMN z int" in msg
    assert "COMMENT" not in msg
    with pytest.raises(ValueError, match="unknown lock mode"):
        assert_max_lock("SELECT 1", "BigLock", dsn=fresh.dsn)


def test_assert_no_rewrite_passes_and_fails(fresh):
    assert_no_rewrite("ALTER TABLE t ALTER COLUMN v TYPE varchar(99)", "t", dsn=fresh.dsn)
    with pytest.raises(AssertionError) as info:
        assert_no_rewrite("ALTER TABLE t ALTER COLUMN n TYPE bigint", "t", dsn=fresh.dsn)
    assert "rewrites t" in str(info.value) and "line 1" in str(info.value)
    assert "ALTER COLUMN n TYPE bigint" in str(info.value)


def test_assertions_on_migration_files_apply_earlier_ones(tmp_path):
    d = write(
        tmp_path / "m",
        {
            "001_t.sql": "CREATE TABLE acct (id int PRIMARY KEY, n int);\n",
            "002_idx.sql": "CREATE INDEX CONCURRENTLY acct_n ON acct (n);\n",
            "003_type.sql": "ALTER TABLE acct ALTER COLUMN n TYPE bigint;\n",
        },
    )
    assert_max_lock(d / "002_idx.sql", SUE)
    with pytest.raises(AssertionError, match="003_type: rewrites acct"):
        assert_no_rewrite(d / "003_type.sql", "acct")
    with pytest.raises(ConfigError, match=r"004_missing\.sql: migration file not found"):
        assert_no_rewrite(str(d / "004_missing.sql"), "acct")


def test_trace_from_scratch_on_the_example_migrations(pgsafe_server):
    report = trace(MIGRATIONS, server=pgsafe_server)
    assert [m.label for m in report.migrations] == [
        "000_baseline",
        "001_create_job_dlq",
        "002_add_heartbeat_column",
    ]
    m2 = report.migration("002_add_heartbeat_column")
    assert [s.observed_lock for s in m2.statements] == [AE, SUE, SUE, SUE]
    assert m2.statements[1].sampled and m2.statements[1].samples > 0
    doc = report.to_dict()
    # The policy's subquery read-locks org_members, as predicted: nothing differs.
    assert doc["mismatches"] == []
    assert "pgsafe lock trace" in report.to_markdown()


def test_dry_run_json_has_observed_locks():
    res = pgsafe("dry-run", str(MIGRATIONS), "--format", "json", cwd=ROOT)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    m2 = doc["migrations"][2]
    observed = [[(x["relation"], x["mode"]) for x in s["observed_locks"]] for s in m2["statements"]]
    assert observed[0] == [("qc_jobs", AE)]
    assert observed[1] == [("qc_jobs", SUE)]
    assert all(s["rewrites"] == [] for s in m2["statements"])
    mism = doc["migrations"][1]["trace"]["mismatches"]
    assert mism == []
    static = json.loads(pgsafe("dry-run", str(MIGRATIONS), "--format", "json", "--no-trace").stdout)
    assert all(s["observed_locks"] == [] for m in static["migrations"] for s in m["statements"])


def test_dry_run_with_db_uses_target_sizes(pgsafe_db, tmp_path):
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, copy)
    res = pgsafe(
        "apply", str(copy), "--db", pgsafe_db.dsn, "--apply", "--to", "001", "--log-dir", ""
    )
    assert res.returncode == 0, res.stderr
    query(
        pgsafe_db,
        "INSERT INTO qc_jobs (org_id, job_type) SELECT gen_random_uuid(), 'x' "
        "FROM generate_series(1, 50000); ANALYZE qc_jobs",
    )
    res = pgsafe("dry-run", str(copy), "--db", pgsafe_db.dsn, "--format", "json")
    assert res.returncode == 0, res.stderr
    (m,) = json.loads(res.stdout)["migrations"]
    cic = m["statements"][1]
    assert cic["observed_locks"][0]["mode"] == SUE
    basis = " ".join(cic["estimate"]["basis"])
    assert "50,000 rows on the target" in basis and "sample rows" in basis
    assert m["statements"][0]["estimate"]["risk"] in ("LOW", "MEDIUM", "HIGH")
    assert "at the target's size" in m["est_runtime"]
    md = pgsafe("dry-run", str(copy), "--db", pgsafe_db.dsn)
    assert "**Observed Locks**" in md.stdout and "**Estimate basis:**" in md.stdout
    assert "50,000 rows on the target" in md.stdout


def test_sample_rows_by_column_type(pgsafe_db):
    from pgsafe.analysis.estimate import generate_sample

    query(
        pgsafe_db,
        "CREATE TYPE mood AS ENUM ('a', 'b');"
        "CREATE TABLE gen (id serial PRIMARY KEY, m mood NOT NULL, u uuid NOT NULL,"
        " at timestamptz NOT NULL, v varchar(3) NOT NULL, ok bool, k int CHECK (k < 0));"
        "CREATE TABLE shape (p point NOT NULL)",
    )
    with pgsafe_db.connect(application_name="pgsafe-test") as conn:
        # k's generated values break its CHECK: the second try leaves the nullable ones NULL.
        assert generate_sample(conn, "gen", 300) == 300
        assert generate_sample(conn, "shape", 300) == 0  # no generator for point
    assert query(pgsafe_db, "SELECT count(DISTINCT u), count(k) FROM gen") == [("300", "0")]
