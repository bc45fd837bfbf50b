"""pgsafe.alembic on examples/alembic_project and on small projects built per test: the env.py
hook on a real database (ledger, -x timeouts, invariants, the shared lock), offline SQL, lint
attribution to revision files, graph checks, and round trips through `pgsafe apply/rollback`."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("alembic")

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

from helpers import alembic_revision as _revision
from helpers import pgsafe, query
from pgsafe import _core
from pgsafe.alembic import InvariantViolation
from pgsafe.schema import fingerprint
from pgsafe.sources.alembic import _logging_kept

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "alembic_project"
REVISIONS = ["0001", "0002", "0003", "0004", "0005"]


@pytest.fixture(autouse=True)
def _keep_logging():
    """env.py's logging.config.fileConfig disables every existing logger (pgsafe's among them):
    the tests that run Alembic in this process must not take the other tests' logs away."""
    with _logging_kept():
        yield


def _project(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    """A copy of the example project with extra revision files."""
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__"))
    for name, body in (extra or {}).items():
        (root / "versions" / name).write_text(textwrap.dedent(body))
    return root


def _with_0006(tmp_path: Path, name: str, upgrade: str, downgrade: str = "pass") -> Path:
    """A copy of the example project with one more revision, 0006 on 0005, in
    versions/0006_<name>.py."""
    return _project(tmp_path, {f"0006_{name}.py": _revision("0006", "0005", upgrade, downgrade)})


def _sa(url: str) -> str:
    """The database URL with the driver installed in the dev extras (SQLAlchemy 2.1 would
    pick psycopg 3 for a bare postgresql://)."""
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def _config(root: Path, url: str | None = None, x: list[str] | None = None) -> Config:
    cfg = Config(str(root / "alembic.ini"), stdout=io.StringIO())
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", _sa(url).replace("%", "%%"))
    cfg.cmd_opts = argparse.Namespace(x=x or [])
    return cfg


def _upgrade_with_connection(root: Path, url: str, target: str = "head") -> str:
    """Alembic's documented pattern: the caller's connection in config.attributes. Returns
    the lock_timeout the caller's next transaction on that connection sees."""
    engine = create_engine(_sa(url))
    try:
        with engine.connect() as conn:
            cfg = _config(root)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)
            after = conn.exec_driver_sql("SHOW lock_timeout").scalar()
            conn.rollback()
            return str(after)
    finally:
        engine.dispose()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_upgrade_head_writes_ledger_rows_and_releases_the_lock(pgsafe_db):
    # The timeouts were SET LOCAL in the revisions' transactions, not left on the connection.
    assert _upgrade_with_connection(EXAMPLE, pgsafe_db.url) == "0"
    rows = query(
        pgsafe_db, "SELECT version, name, checksum, status FROM pgsafe.migrations ORDER BY 1"
    )
    files = sorted((EXAMPLE / "versions").glob("0*.py"))
    assert [r[0] for r in rows] == REVISIONS
    assert [r[2] for r in rows] == [_sha(f) for f in files]
    assert {r[3] for r in rows} == {"applied"}
    assert rows[4][1] == "event_source"
    assert query(pgsafe_db, "SELECT version_num FROM alembic_version") == [("0005",)]
    # The op helpers did their work: NOT NULL column, valid index and validated foreign key.
    assert query(
        pgsafe_db,
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'attribution_events'::regclass"
        " AND attname = 'source'",
    ) == [("t",)]
    assert query(
        pgsafe_db,
        "SELECT indisvalid FROM pg_index WHERE indexrelid ="
        " 'ix_attribution_events_tenant_occurred'::regclass",
    ) == [("t",)]
    assert query(
        pgsafe_db, "SELECT convalidated FROM pg_constraint WHERE conname = 'fk_dead_events_tenant'"
    ) == [("t",)]
    # pgsafe reads the same ledger: the revisions are applied, nothing pending.
    status = pgsafe("status", str(EXAMPLE / "alembic.ini"), "--db", pgsafe_db.url, "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert (doc["applied"], doc["pending"]) == (5, 0)
    # The connection went back to its pool: the migration lock is free for `pgsafe apply`.
    with pgsafe_db.connect() as conn:
        lock = _core.MigrationLock(conn, _core.migration_lock_key("pgsafe"))
        assert lock.try_acquire()
        lock.release()


def test_x_lock_timeout_is_set_local_in_each_step(tmp_path, pgsafe_db):
    root = _with_0006(
        tmp_path,
        "seen",
        """
        op.execute(
            "CREATE TABLE seen AS SELECT current_setting('lock_timeout') AS lt,"
            " current_setting('statement_timeout') AS st"
        )
        """,
        'op.drop_table("seen")',
    )
    cfg = _config(root, pgsafe_db.url, ["lock_timeout=2s", "statement_timeout=45s"])
    command.upgrade(cfg, "head")
    assert query(pgsafe_db, "SELECT lt, st FROM seen") == [("2s", "45s")]
    bad = _config(root, pgsafe_db.url, ["lock_timeout=soon"])
    with pytest.raises(Exception, match="lock_timeout=soon: not a duration"):
        command.downgrade(bad, "-1")


def test_invariant_check_aborts_the_step_that_leaves_an_invalid_index(tmp_path, pgsafe_db):
    root = _with_0006(
        tmp_path,
        "broken_index",
        """
        op.create_index("ix_dead_reason", "dead_events", ["reason"])
        # What a failed CREATE INDEX CONCURRENTLY leaves behind.
        op.execute(
            "UPDATE pg_index SET indisvalid = false"
            " WHERE indexrelid = 'ix_dead_reason'::regclass"
        )
        """,
    )
    with pytest.raises(InvariantViolation, match=r"index public\.ix_dead_reason is INVALID"):
        _upgrade_with_connection(root, pgsafe_db.url)
    assert query(pgsafe_db, "SELECT version_num FROM alembic_version") == [("0005",)]
    assert query(pgsafe_db, "SELECT count(*) FROM pgsafe.migrations WHERE version = '0006'") == [
        ("0",)
    ]
    assert query(pgsafe_db, "SELECT to_regclass('ix_dead_reason')") == [(None,)]


def test_invariant_check_aborts_a_constraint_left_not_valid(tmp_path, pgsafe_db):
    root = _with_0006(
        tmp_path,
        "not_valid",
        """
        op.execute(
            "ALTER TABLE revenue_ledger ADD CONSTRAINT positive"
            " CHECK (amount_cents >= 0) NOT VALID"
        )
        """,
    )
    with pytest.raises(InvariantViolation, match=r"constraint public\.positive is left NOT VALID"):
        _upgrade_with_connection(root, pgsafe_db.url)
    assert query(pgsafe_db, "SELECT count(*) FROM pg_constraint WHERE conname = 'positive'") == [
        ("0",)
    ]


def test_offline_mode_emits_only_the_set_statements():
    out = io.StringIO()
    cfg = Config(str(EXAMPLE / "alembic.ini"), output_buffer=out, stdout=io.StringIO())
    cfg.cmd_opts = argparse.Namespace(x=["lock_timeout=3s"])
    command.upgrade(cfg, "0004:0005", sql=True)
    sql = out.getvalue()
    assert sql.index("SET lock_timeout = '3s';") < sql.index("BEGIN;")
    assert "SET statement_timeout = '5min';" in sql
    assert "pgsafe.migrations" not in sql and "pg_try_advisory_lock" not in sql
    # The op helpers' offline SQL: the same recipe, with the concurrent build outside BEGIN.
    assert "CHECK (source IS NOT NULL) NOT VALID" in sql
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_attribution_events_tenant_occurred" in sql


def test_lint_attributes_create_index_on_existing_table_to_the_revision_file(tmp_path):
    body = _revision(
        "0006",
        "0005",
        'op.create_index("ix_events_type", "attribution_events", ["event_type"])',
        'op.drop_index("ix_events_type", table_name="attribution_events")',
    )
    root = _project(tmp_path, {"0006_events_type.py": body})
    res = pgsafe("lint", str(root / "alembic.ini"), "--format", "json")
    assert res.returncode == 1, res.stderr
    found = [
        f for f in json.loads(res.stdout)["findings"] if f["rule"] == "require-concurrent-index"
    ]
    assert len(found) == 1
    f = found[0]
    assert f["file"] == str(root / "versions" / "0006_events_type.py")
    assert (
        f["line"]
        == body.splitlines().index(
            '    op.create_index("ix_events_type", "attribution_events", ["event_type"])'
        )
        + 1
    )
    assert "upgrade() of revision 0006" in f["message"]
    # The example itself has no errors; the directory works like the ini.
    assert pgsafe("lint", str(EXAMPLE)).returncode == 0


def test_lint_flags_a_pass_downgrade_and_two_heads(tmp_path):
    root = _project(
        tmp_path,
        {
            "0006_a.py": _revision("0006", "0005", 'op.execute("SELECT 1")', "pass"),
            "0007_b.py": _revision(
                "0007", "0005", 'op.execute("SELECT 2")', 'op.execute("SELECT 3")'
            ),
        },
    )
    res = pgsafe("lint", str(root / "alembic.ini"), "--format", "json")
    assert res.returncode == 1
    findings = json.loads(res.stdout)["findings"]
    empty = [f for f in findings if f["rule"] == "alembic-empty-downgrade"]
    assert [Path(f["file"]).name for f in empty] == ["0006_a.py"]
    heads = [f for f in findings if f["rule"] == "alembic-multiple-heads"]
    assert sorted(Path(f["file"]).name for f in heads) == ["0006_a.py", "0007_b.py"]
    assert all("0005" in f["message"] for f in heads)  # where they split


def _schema(db) -> str:
    return fingerprint(db.dsn, ("pgsafe",)).sha256


def test_round_trip_through_pgsafe_apply_and_rollback_has_catalog_parity(pgsafe_db):
    ini = str(EXAMPLE / "alembic.ini")
    base = _schema(pgsafe_db)
    up = pgsafe("apply", ini, "--db", pgsafe_db.url, "--apply", "--log-dir", "")
    assert up.returncode == 0, up.stderr
    head = _schema(pgsafe_db)
    assert query(pgsafe_db, "SELECT version_num FROM alembic_version") == [("0005",)]
    rows = query(pgsafe_db, "SELECT version, checksum FROM pgsafe.migrations ORDER BY 1")
    assert rows == [(f.name[:4], _sha(f)) for f in sorted((EXAMPLE / "versions").glob("0*.py"))]
    down = pgsafe(
        "rollback", ini, "--db", pgsafe_db.url, "--steps", "5", "--apply", "--log-dir", ""
    )
    assert down.returncode == 0, down.stderr
    assert _schema(pgsafe_db) == base
    again = pgsafe("apply", ini, "--db", pgsafe_db.url, "--apply", "--log-dir", "")
    assert again.returncode == 0, again.stderr
    assert _schema(pgsafe_db) == head


def test_a_downgrade_that_leaves_an_enum_behind_breaks_parity(tmp_path, pgsafe_db):
    root = _project(tmp_path)
    first = root / "versions" / "0001_core_tables.py"
    first.write_text(first.read_text().replace('op.execute("DROP TYPE reconciliation_status")', ""))
    ini = str(root / "alembic.ini")
    base = fingerprint(pgsafe_db.dsn, ("pgsafe",))
    assert pgsafe("apply", ini, "--db", pgsafe_db.url, "--apply", "--log-dir", "").returncode == 0
    down = pgsafe(
        "rollback", ini, "--db", pgsafe_db.url, "--steps", "5", "--apply", "--log-dir", ""
    )
    assert down.returncode == 0, down.stderr
    after = fingerprint(pgsafe_db.dsn, ("pgsafe",))
    assert after.sha256 != base.sha256
    extra = {o.name for o in after.objects} - {o.name for o in base.objects}
    assert any("reconciliation_status" in name for name in extra), extra


def test_a_plain_alembic_project_works_with_lint_and_dry_run(tmp_path):
    root = tmp_path / "plain"
    root.mkdir()
    ini = root / "alembic.ini"
    command.init(Config(str(ini), stdout=io.StringIO()), str(root / "migrations"))
    versions = root / "migrations" / "versions"
    (versions / "a1_orders.py").write_text(
        _revision(
            "a1",
            None,
            'op.create_table("orders", sa.Column("id", sa.BigInteger, primary_key=True),'
            ' sa.Column("customer", sa.Text))',
            'op.drop_table("orders")',
        )
    )
    (versions / "b2_orders_customer.py").write_text(
        _revision(
            "b2",
            "a1",
            'op.create_index("ix_orders_customer", "orders", ["customer"])',
            'op.drop_index("ix_orders_customer", table_name="orders")',
        )
    )
    assert "driver://user:pass@localhost/dbname" in ini.read_text()  # elsewhere, on purpose
    res = pgsafe("lint", str(ini), "--format", "json")
    assert res.returncode == 1, res.stderr
    rules = {(Path(f["file"]).name, f["rule"]) for f in json.loads(res.stdout)["findings"]}
    assert ("b2_orders_customer.py", "require-concurrent-index") in rules
    dry = pgsafe("dry-run", str(ini), "--format", "json")
    assert dry.returncode == 1, dry.stderr
    migs = json.loads(dry.stdout)["migrations"]
    assert [m["checksum"] for m in migs] == [
        _sha(versions / "a1_orders.py"),
        _sha(versions / "b2_orders_customer.py"),
    ]


def test_the_migration_lock_excludes_alembic_while_pgsafe_holds_it(tmp_path, pgsafe_db):
    from pgsafe.errors import MigrationLockTimeout

    with pgsafe_db.connect() as conn:
        lock = _core.MigrationLock(conn, _core.migration_lock_key("pgsafe"))
        assert lock.try_acquire()
        with pytest.raises(MigrationLockTimeout, match="held by backend pid"):
            command.upgrade(_config(EXAMPLE, pgsafe_db.url, ["lock_wait=300ms"]), "head")
        lock.release()
    assert query(pgsafe_db, "SELECT to_regclass('alembic_version')") == [(None,)]


def test_backfill_batches_resume_after_the_last_committed_cursor(tmp_path, pgsafe_db):
    root = _with_0006(
        tmp_path,
        "fill",
        """
        import pgsafe.alembic  # noqa: F401
        op.create_table("items", sa.Column("id", sa.BigInteger, primary_key=True),
                        sa.Column("label", sa.Text))
        op.execute("INSERT INTO items SELECT g, NULL FROM generate_series(1, 1000) g")
        op.execute(
            "CREATE SCHEMA IF NOT EXISTS pgsafe;"
            " CREATE TABLE IF NOT EXISTS pgsafe.backfill_cursors"
            " (name text PRIMARY KEY, last_key text, rows bigint NOT NULL DEFAULT 0,"
            " updated_at timestamptz NOT NULL DEFAULT clock_timestamp());"
            " INSERT INTO pgsafe.backfill_cursors VALUES ('items-label', '600', 600)"
        )
        op.backfill("items", {"label": "'filled'"}, where="label IS NULL",
                    batch_size=150, name="items-label")
        """,
        'op.drop_table("items")',
    )
    _upgrade_with_connection(root, pgsafe_db.url)
    # An interrupted run had committed up to id 600: only the rest was updated, in batches.
    assert query(pgsafe_db, "SELECT count(*), min(id) FROM items WHERE label = 'filled'") == [
        ("400", "601")
    ]
    assert query(pgsafe_db, "SELECT count(*) FROM pgsafe.backfill_cursors") == [("0",)]


def test_create_index_concurrently_replaces_an_invalid_leftover(tmp_path, pgsafe_db):
    root = _with_0006(
        tmp_path,
        "ix",
        """
        import pgsafe.alembic  # noqa: F401
        op.create_index_concurrently("ix_dead_reason", "dead_events", ["reason"])
        """,
        'op.drop_index_concurrently("ix_dead_reason")',
    )
    _upgrade_with_connection(root, pgsafe_db.url, "0005")
    with pgsafe_db.connect() as conn:  # what a failed CREATE INDEX CONCURRENTLY leaves
        conn.execute("CREATE INDEX ix_dead_reason ON dead_events (event_id)")
        conn.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ix_dead_reason'::regclass"
        )
    _upgrade_with_connection(root, pgsafe_db.url)
    assert query(
        pgsafe_db,
        "SELECT indisvalid, pg_get_indexdef(indexrelid) LIKE '%(reason)' FROM pg_index"
        " WHERE indexrelid = 'ix_dead_reason'::regclass",
    ) == [("t", "t")]
    command.downgrade(_config(root, pgsafe_db.url), "0005")
    assert query(pgsafe_db, "SELECT to_regclass('ix_dead_reason')") == [(None,)]


def test_a_merged_branch_lints_clean_and_applies_with_the_right_alembic_version(
    tmp_path, pgsafe_db
):
    merge = (
        '"""merge"""\nrevision = "0008"\ndown_revision = ("0006", "0007")\n'
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    pass\n\n\n"
        "def downgrade():\n    pass\n"
    )
    root = _project(
        tmp_path,
        {
            "0006_a.py": _revision(
                "0006", "0005", 'op.execute("CREATE TABLE a (id int)")', 'op.drop_table("a")'
            ),
            "0007_b.py": _revision(
                "0007", "0005", 'op.execute("CREATE TABLE b (id int)")', 'op.drop_table("b")'
            ),
            "0008_merge.py": merge,
        },
    )
    ini = str(root / "alembic.ini")
    lint = pgsafe("lint", ini)
    assert lint.returncode == 0, lint.stdout  # a no-op merge may have a `pass` downgrade
    up = pgsafe("apply", ini, "--db", pgsafe_db.url, "--apply", "--log-dir", "")
    assert up.returncode == 0, up.stderr
    assert query(pgsafe_db, "SELECT version_num FROM alembic_version") == [("0008",)]
    down = pgsafe(
        "rollback", ini, "--db", pgsafe_db.url, "--steps", "2", "--apply", "--log-dir", ""
    )
    assert down.returncode == 0, down.stderr
    # Rolled back the merge and the branch applied last: one head of the other branch is left.
    assert len(query(pgsafe_db, "SELECT version_num FROM alembic_version")) == 1


def test_a_failing_preflight_hook_stops_the_run_before_any_revision(tmp_path, pgsafe_db):
    from pgsafe.errors import UnsafeError

    root = _project(tmp_path)
    env = root / "env.py"
    env.write_text(
        env.read_text().replace(
            "pgsafe.alembic.configure(context, connection, target_metadata=target_metadata)",
            "pgsafe.alembic.configure(context, connection, target_metadata=target_metadata,"
            ' preflight=config.attributes["preflight"])',
        )
    )
    seen: list[str] = []

    class Report:
        failed = True

        def __str__(self) -> str:
            return "1 long-running transaction"

    def preflight(dsn: str) -> Report:
        seen.append(dsn)
        return Report()

    engine = create_engine(_sa(pgsafe_db.url))
    try:
        with engine.connect() as conn:
            cfg = _config(root)
            cfg.attributes.update(connection=conn, preflight=preflight)
            with pytest.raises(UnsafeError, match="preflight failed: 1 long-running"):
                command.upgrade(cfg, "head")
    finally:
        engine.dispose()
    assert seen and pgsafe_db.name in seen[0]
    assert query(pgsafe_db, "SELECT to_regclass('tenants')") == [(None,)]
    assert query(pgsafe_db, "SELECT to_regnamespace('pgsafe')") == [(None,)]
