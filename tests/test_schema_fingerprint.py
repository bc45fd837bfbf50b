"""The schema fingerprint against real PostgreSQL: the same schema built two ways gives the same
digest, every kind of schema change gives a different one and a diff naming exactly the object
that changed, data and sequence values never count, and the CLI keeps its exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import PGSAFE, cli_env, query, require_extension
from helpers import pgsafe as run
from pgsafe import _core
from pgsafe.errors import ConfigError
from pgsafe.lifecycle.runner import Runner
from pgsafe.schema import SchemaFingerprint, diff, fingerprint, render_diff
from pgsafe.server import TemporaryDatabase, TemporaryServer

# Runs on every major of the version matrix (tests/conftest.py).
pytestmark = pytest.mark.pg_matrix

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

ROLES = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_reader') THEN
    CREATE ROLE app_reader NOLOGIN;
  END IF;
END
$$;
"""

# The reference schema, built in dependency order with everything declared inline.
SCHEMA_IN_ORDER = """
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN app.posint AS integer NOT NULL DEFAULT 1
  CONSTRAINT posint_positive CHECK (VALUE > 0);
CREATE SEQUENCE app.counter INCREMENT BY 2 MINVALUE 1 MAXVALUE 1000;
CREATE TABLE app.customers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL CONSTRAINT customers_email_key UNIQUE,
  mood app.mood NOT NULL DEFAULT 'ok'
);
CREATE TABLE app.orders (
  id bigserial PRIMARY KEY,
  customer_id bigint NOT NULL
    CONSTRAINT orders_customer_fk REFERENCES app.customers (id),
  qty app.posint,
  amount integer,
  price numeric(10, 2),
  total numeric GENERATED ALWAYS AS (price * 2) STORED,
  status text NOT NULL DEFAULT 'new',
  note text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz
);
ALTER TABLE app.orders ADD CONSTRAINT orders_status_check
  CHECK (status IN ('new', 'paid', 'shipped')) NOT VALID;
CREATE INDEX orders_customer_idx ON app.orders (customer_id);
CREATE INDEX orders_open_idx ON app.orders (created_at) WHERE status <> 'shipped';
CREATE VIEW app.open_orders AS
  SELECT id, customer_id, status FROM app.orders WHERE status <> 'shipped';
CREATE MATERIALIZED VIEW app.order_counts AS
  SELECT customer_id, count(*) AS n FROM app.orders GROUP BY customer_id;
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON app.orders
  FOR EACH ROW EXECUTE FUNCTION app.touch();
ALTER TABLE app.orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY orders_reader ON app.orders FOR SELECT TO app_reader USING (status <> 'new');
GRANT USAGE ON SCHEMA app TO app_reader;
GRANT SELECT ON app.customers TO app_reader;
COMMENT ON TABLE app.orders IS 'one row per order';
COMMENT ON COLUMN app.orders.status IS 'new, paid or shipped';
CREATE TABLE public.audit (id integer, at timestamptz) PARTITION BY RANGE (at);
CREATE TABLE public.audit_2024 PARTITION OF public.audit
  FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00');
"""

# Objects created first and dropped again, so every OID in the second database differs.
OID_SHIFT = """
CREATE TABLE junk_a (x int PRIMARY KEY);
CREATE TABLE junk_b (y text);
CREATE TYPE junk_e AS ENUM ('x');
CREATE FUNCTION junk_f() RETURNS int LANGUAGE sql AS 'SELECT 1';
DROP TABLE junk_a, junk_b;
DROP TYPE junk_e;
DROP FUNCTION junk_f();
"""

# The same schema, in another order and another style: tables before the types they do not
# need, constraints and defaults added afterwards, the enum built by ADD VALUE, a grant made
# and revoked (a non-NULL ACL equal to the default), comments before grants, the timezone of
# the partition bound spelled differently. Two scripts: a new enum label must be committed
# before a default can use it.
SCHEMA_OTHER_ORDER = [
    """
CREATE TABLE public.audit (id integer, at timestamptz) PARTITION BY RANGE (at);
SET TimeZone = 'Asia/Tokyo';
CREATE TABLE public.audit_2024 PARTITION OF public.audit
  FOR VALUES FROM ('2024-01-01 09:00:00+09') TO ('2025-01-01 09:00:00+09');
RESET TimeZone;
CREATE SCHEMA app;
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;
CREATE SEQUENCE app.counter;
ALTER SEQUENCE app.counter INCREMENT BY 2 MAXVALUE 1000;
CREATE DOMAIN app.posint AS integer NOT NULL DEFAULT 1
  CONSTRAINT posint_positive CHECK (VALUE > 0);
CREATE TYPE app.mood AS ENUM ('sad', 'happy');
ALTER TYPE app.mood ADD VALUE 'ok' BEFORE 'happy';
""",
    """
CREATE TABLE app.orders (
  id bigserial PRIMARY KEY,
  customer_id bigint,
  qty app.posint,
  amount integer,
  price numeric(10, 2),
  total numeric GENERATED ALWAYS AS (price * 2) STORED,
  status text,
  note text,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE app.orders ADD COLUMN updated_at timestamptz;
ALTER TABLE app.orders ALTER COLUMN customer_id SET NOT NULL;
ALTER TABLE app.orders ALTER COLUMN status SET DEFAULT 'new', ALTER COLUMN status SET NOT NULL;
COMMENT ON COLUMN app.orders.status IS 'new, paid or shipped';
COMMENT ON TABLE app.orders IS 'one row per order';
CREATE INDEX orders_open_idx ON app.orders (created_at) WHERE status <> 'shipped';
ALTER TABLE app.orders ADD CONSTRAINT orders_status_check
  CHECK (status IN ('new', 'paid', 'shipped')) NOT VALID;
CREATE TABLE app.customers (
  id bigint GENERATED ALWAYS AS IDENTITY,
  email text NOT NULL,
  mood app.mood NOT NULL DEFAULT 'ok'
);
ALTER TABLE app.customers ADD PRIMARY KEY (id);
ALTER TABLE app.customers ADD CONSTRAINT customers_email_key UNIQUE (email);
ALTER TABLE app.orders ADD CONSTRAINT orders_customer_fk
  FOREIGN KEY (customer_id) REFERENCES app.customers (id);
CREATE INDEX orders_customer_idx ON app.orders (customer_id);
CREATE TRIGGER orders_touch BEFORE UPDATE ON app.orders
  FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE POLICY orders_reader ON app.orders FOR SELECT TO app_reader USING (status <> 'new');
ALTER TABLE app.orders ENABLE ROW LEVEL SECURITY;
CREATE MATERIALIZED VIEW app.order_counts AS
  SELECT customer_id, count(*) AS n FROM app.orders GROUP BY customer_id;
CREATE VIEW app.open_orders AS
  SELECT id, customer_id, status FROM app.orders WHERE status <> 'shipped';
GRANT SELECT ON app.customers TO app_reader;
GRANT SELECT ON app.orders TO app_reader;
REVOKE SELECT ON app.orders FROM app_reader;
GRANT USAGE ON SCHEMA app TO app_reader;
""",
]


def sql(db: TemporaryDatabase, text: str) -> None:
    with db.connect(application_name="pgsafe-test") as conn:
        conn.execute(text)


def sql_each(db: TemporaryDatabase, *statements: str) -> None:
    """One statement at a time, outside any transaction block (VACUUM, CONCURRENTLY)."""
    with db.connect(application_name="pgsafe-test") as conn:
        for s in statements:
            conn.execute(s)


@pytest.fixture
def other_db(pgsafe_server: TemporaryServer, pgsafe_template: str) -> Iterator[TemporaryDatabase]:
    db = pgsafe_server.new_database(template=pgsafe_template)
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def two_schemas(
    pgsafe_db: TemporaryDatabase, other_db: TemporaryDatabase
) -> tuple[TemporaryDatabase, TemporaryDatabase]:
    """The reference schema in pgsafe_db, the same schema built the other way in other_db."""
    sql(pgsafe_db, ROLES + SCHEMA_IN_ORDER)
    sql(other_db, ROLES + OID_SHIFT)
    for script in SCHEMA_OTHER_ORDER:
        sql(other_db, script)
    return pgsafe_db, other_db


def keys(differences: list) -> set[tuple[str, str, str]]:
    return {(d.change, d.kind, d.name) for d in differences}


def test_same_schema_built_in_another_order_with_other_oids_is_equal(two_schemas):
    a_db, b_db = two_schemas
    # The test means something only if the catalogs really differ underneath.
    oid = "SELECT 'app.orders'::regclass::oid, 'app.mood'::regtype::oid, 'app.touch'::regproc::oid"
    assert query(a_db, oid) != query(b_db, oid)
    a, b = fingerprint(a_db.dsn), fingerprint(b_db.dsn)
    assert diff(a, b) == [], render_diff(diff(a, b))
    assert a.sha256 == b.sha256 and a == b
    counts = a.counts()
    for kind in (
        "column",
        "constraint",
        "domain",
        "enum",
        "function",
        "index",
        "materialized view",
        "policy",
        "schema",
        "sequence",
        "table",
        "trigger",
        "view",
    ):
        assert counts.get(kind), f"no {kind} in the fingerprint: {counts}"
    assert a.get("table", "app.orders") is not None
    assert "row level security: yes" in a.get("table", "app.orders").definition
    assert "validated: no" in a.get("constraint", "app.orders.orders_status_check").definition
    assert "labels: 'sad', 'ok', 'happy'" in a.get("enum", "app.mood").definition
    # The partition bound is printed in UTC whatever the session's time zone was.
    assert "'2024-01-01 00:00:00+00'" in a.get("table", "public.audit_2024").definition


def test_session_settings_do_not_change_the_fingerprint_and_are_left_as_they_were(two_schemas):
    a_db, b_db = two_schemas
    expected = fingerprint(a_db.dsn)
    with b_db.connect(application_name="pgsafe-test") as conn:
        conn.execute(
            "SET search_path = app, public; SET TimeZone = 'America/New_York';"
            " SET DateStyle = 'SQL, DMY'; SET extra_float_digits = 0;"
            " SET quote_all_identifiers = on"
        )
        got = fingerprint(conn)
        assert got == expected, render_diff(diff(expected, got))
        assert conn.transaction_status == "idle"
        settings = conn.execute(
            "SELECT current_setting('search_path'), current_setting('TimeZone'),"
            " current_setting('DateStyle'), current_setting('quote_all_identifiers')"
        ).rows
        assert settings == [("app, public", "America/New_York", "SQL, DMY", "on")]


def test_connection_inside_a_transaction_is_refused_and_left_alone(pgsafe_db):
    with pgsafe_db.connect(application_name="pgsafe-test") as conn:
        conn.execute("BEGIN")
        conn.execute("CREATE TABLE inside (x int)")
        with pytest.raises(ConfigError, match="inside a transaction"):
            fingerprint(conn)
        assert conn.transaction_status == "in_transaction"
        conn.execute("COMMIT")
    assert fingerprint(pgsafe_db.dsn).get("table", "public.inside") is not None


def _index_left_invalid(db: TemporaryDatabase) -> None:
    # A unique index built CONCURRENTLY over duplicates fails and stays behind, invalid.
    sql(
        db,
        "INSERT INTO app.customers (email) VALUES ('a@example.com');"
        " INSERT INTO app.orders (customer_id, note) SELECT id, 'same' FROM app.customers;"
        " INSERT INTO app.orders (customer_id, note) SELECT id, 'same' FROM app.customers;",
    )
    with (
        db.connect(application_name="pgsafe-test") as conn,
        pytest.raises(Exception, match="could not create unique index"),
    ):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY orders_note_key ON app.orders (note)")


# name: (SQL run on A only, SQL or function run on B only, the differences diff(A, B) must list)
Change = tuple[str | None, str | Callable[[TemporaryDatabase], None], set[tuple[str, str, str]]]

CHANGES: dict[str, Change] = {
    "column type": (
        None,
        "ALTER TABLE app.orders ALTER COLUMN amount TYPE bigint",
        {("changed", "column", "app.orders.amount")},
    ),
    "column default": (
        None,
        "ALTER TABLE app.orders ALTER COLUMN status SET DEFAULT 'paid'",
        {("changed", "column", "app.orders.status")},
    ),
    "column nullability": (
        None,
        "ALTER TABLE app.orders ALTER COLUMN note SET NOT NULL",
        {("changed", "column", "app.orders.note")},
    ),
    "column collation": (
        None,
        'ALTER TABLE app.orders ALTER COLUMN note TYPE text COLLATE "C"',
        {("changed", "column", "app.orders.note")},
    ),
    "identity kind": (
        None,
        "ALTER TABLE app.customers ALTER COLUMN id SET GENERATED BY DEFAULT",
        {("changed", "column", "app.customers.id")},
    ),
    "column added": (
        None,
        "ALTER TABLE app.customers ADD COLUMN name text",
        {("added", "column", "app.customers.name"), ("changed", "table", "app.customers")},
    ),
    "constraint validated": (
        None,
        "ALTER TABLE app.orders VALIDATE CONSTRAINT orders_status_check",
        {("changed", "constraint", "app.orders.orders_status_check")},
    ),
    "constraint deferrable": (
        None,
        "ALTER TABLE app.orders ALTER CONSTRAINT orders_customer_fk DEFERRABLE INITIALLY DEFERRED",
        {("changed", "constraint", "app.orders.orders_customer_fk")},
    ),
    "index validity": (
        "CREATE UNIQUE INDEX orders_note_key ON app.orders (note)",
        _index_left_invalid,
        {("changed", "index", "app.orders_note_key")},
    ),
    "index dropped": (
        None,
        "DROP INDEX app.orders_open_idx",
        {("removed", "index", "app.orders_open_idx")},
    ),
    "policy expression": (
        None,
        "ALTER POLICY orders_reader ON app.orders USING (status = 'shipped')",
        {("changed", "policy", "app.orders.orders_reader")},
    ),
    "policy added": (
        None,
        "CREATE POLICY orders_writer ON app.orders FOR INSERT TO app_reader WITH CHECK (true)",
        {("added", "policy", "app.orders.orders_writer")},
    ),
    "rls forced": (
        None,
        "ALTER TABLE app.orders FORCE ROW LEVEL SECURITY",
        {("changed", "table", "app.orders")},
    ),
    "rls enabled": (
        None,
        "ALTER TABLE app.customers ENABLE ROW LEVEL SECURITY",
        {("changed", "table", "app.customers")},
    ),
    "table grant": (
        None,
        "GRANT INSERT ON app.customers TO app_reader",
        {("changed", "table", "app.customers")},
    ),
    "column grant": (
        None,
        "GRANT UPDATE (note) ON app.orders TO app_reader",
        {("changed", "column", "app.orders.note")},
    ),
    "schema grant": (
        None,
        "GRANT CREATE ON SCHEMA app TO app_reader",
        {("changed", "schema", "app")},
    ),
    "function grant": (
        None,
        "REVOKE EXECUTE ON FUNCTION app.touch() FROM PUBLIC",
        {("changed", "function", "app.touch()")},
    ),
    "column comment": (
        None,
        "COMMENT ON COLUMN app.orders.note IS 'free text'",
        {("changed", "column", "app.orders.note")},
    ),
    "table comment": (
        None,
        "COMMENT ON TABLE app.orders IS 'orders'",
        {("changed", "table", "app.orders")},
    ),
    "enum label added": (
        None,
        "ALTER TYPE app.mood ADD VALUE 'ecstatic'",
        {("changed", "enum", "app.mood")},
    ),
    "enum label order": (
        "ALTER TYPE app.mood ADD VALUE 'meh' AFTER 'happy'",
        "ALTER TYPE app.mood ADD VALUE 'meh' BEFORE 'sad'",
        {("changed", "enum", "app.mood")},
    ),
    "domain constraint": (
        None,
        "ALTER DOMAIN app.posint ADD CONSTRAINT posint_small CHECK (VALUE < 1000) NOT VALID",
        {("changed", "domain", "app.posint")},
    ),
    "function body": (
        None,
        "CREATE OR REPLACE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n  NEW.updated_at := clock_timestamp();\n  RETURN NEW;\nEND\n$$",
        {("changed", "function", "app.touch()")},
    ),
    "trigger disabled": (
        None,
        "ALTER TABLE app.orders DISABLE TRIGGER orders_touch",
        {("changed", "trigger", "app.orders.orders_touch")},
    ),
    "sequence increment": (
        None,
        "ALTER SEQUENCE app.counter INCREMENT BY 5",
        {("changed", "sequence", "app.counter")},
    ),
    "view definition": (
        None,
        "CREATE OR REPLACE VIEW app.open_orders AS"
        " SELECT id, customer_id, status FROM app.orders WHERE status = 'new'",
        {("changed", "view", "app.open_orders")},
    ),
    "partition detached": (
        None,
        "ALTER TABLE public.audit DETACH PARTITION public.audit_2024",
        {("changed", "table", "public.audit_2024")},
    ),
    "extension": (
        None,
        "CREATE EXTENSION citext",
        {("added", "extension", "citext")},
    ),
}


# PostgreSQL 18 keeps NOT NULL as a named constraint in pg_constraint: the fingerprint lists it.
CHANGES_FROM_18 = {
    "column nullability": {("added", "constraint", "app.orders.orders_note_not_null")},
}


@pytest.mark.parametrize("case", list(CHANGES), ids=list(CHANGES))
def test_each_kind_of_change_is_detected_and_named(case, pgsafe_db, other_db, pg_major):
    a_only, b_only, expected = CHANGES[case]
    if pg_major >= 18:
        expected = expected | CHANGES_FROM_18.get(case, set())
    if case == "extension":
        require_extension(pgsafe_db, "citext")
    for db in (pgsafe_db, other_db):
        sql(db, ROLES + SCHEMA_IN_ORDER)
    assert fingerprint(pgsafe_db.dsn) == fingerprint(other_db.dsn)
    if a_only:
        sql_each(pgsafe_db, a_only)
    if callable(b_only):
        b_only(other_db)
    else:
        sql_each(other_db, b_only)
    a, b = fingerprint(pgsafe_db.dsn), fingerprint(other_db.dsn)
    assert a.sha256 != b.sha256
    differences = diff(a, b)
    assert keys(differences) == expected, render_diff(differences)
    for d in differences:  # each side's definition is the one that database reports
        old, new = a.get(d.kind, d.name), b.get(d.kind, d.name)
        assert d.before == (old.definition if old else None)
        assert d.after == (new.definition if new else None)
        assert d.before != d.after


def test_data_changes_and_sequence_values_do_not_count(pgsafe_db):
    sql(pgsafe_db, ROLES + SCHEMA_IN_ORDER)
    before = fingerprint(pgsafe_db.dsn)
    sql(
        pgsafe_db,
        "INSERT INTO app.customers (email) SELECT 'c' || g || '@example.com'"
        " FROM generate_series(1, 50) g;"
        " INSERT INTO app.orders (customer_id, amount, price)"
        " SELECT id, id, id FROM app.customers;"
        " UPDATE app.orders SET status = 'paid', note = 'x' WHERE id % 2 = 0;"
        " DELETE FROM app.orders WHERE id % 5 = 0;"
        " SELECT nextval('app.counter'), nextval('app.counter');"
        " SELECT setval('app.orders_id_seq', 900);"
        " INSERT INTO public.audit VALUES (1, '2024-06-01');",
    )
    sql_each(
        pgsafe_db,
        "VACUUM FULL app.orders",
        "REINDEX TABLE app.customers",
        "ANALYZE",
        "REFRESH MATERIALIZED VIEW app.order_counts",
        # A column added and dropped again leaves only a dropped attribute behind.
        "ALTER TABLE app.customers ADD COLUMN scratch int",
        "ALTER TABLE app.customers DROP COLUMN scratch",
        # A grant and its revoke leave a non-NULL ACL equal to the default.
        "GRANT ALL ON app.orders TO app_reader",
        "REVOKE ALL ON app.orders FROM app_reader",
    )
    assert query(pgsafe_db, "SELECT last_value FROM app.counter") == [("3",)]
    assert query(
        pgsafe_db, "SELECT relacl IS NOT NULL FROM pg_class WHERE oid = 'app.orders'::regclass"
    ) == [("t",)]
    after = fingerprint(pgsafe_db.dsn)
    assert diff(before, after) == [], render_diff(diff(before, after))
    assert after.sha256 == before.sha256


def test_ledger_schema_is_excluded_by_default(pgsafe_db, other_db):
    sql(pgsafe_db, ROLES + SCHEMA_IN_ORDER)
    sql(other_db, ROLES + SCHEMA_IN_ORDER)
    with pgsafe_db.connect(application_name="pgsafe-test") as conn:
        _core.Ledger("pgsafe").ensure(conn)
    assert fingerprint(pgsafe_db.dsn) == fingerprint(other_db.dsn)
    with_ledger = fingerprint(pgsafe_db.dsn, exclude=())
    differences = diff(fingerprint(other_db.dsn, exclude=()), with_ledger)
    assert ("added", "schema", "pgsafe") in keys(differences)
    assert ("added", "table", "pgsafe.migrations") in keys(differences)
    assert {d.change for d in differences} == {"added"}
    assert all(d.name.startswith("pgsafe") for d in differences), keys(differences)


def test_other_schemas_can_be_excluded(pgsafe_db, other_db):
    sql(pgsafe_db, ROLES + SCHEMA_IN_ORDER)
    sql(other_db, ROLES + SCHEMA_IN_ORDER + "ALTER TABLE app.orders DROP COLUMN note;")
    assert fingerprint(pgsafe_db.dsn) != fingerprint(other_db.dsn)
    a = fingerprint(pgsafe_db.dsn, exclude=("pgsafe", "app"))
    assert a == fingerprint(other_db.dsn, exclude=("pgsafe", "app"))
    assert not [o for o in a.objects if o.name.startswith("app.") or o.name == "app"]
    assert a.get("table", "public.audit") is not None


def test_example_migrations_up_then_down_equal_the_empty_database(pgsafe_db, other_db, tmp_path):
    mig_dir = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, mig_dir)
    empty = fingerprint(other_db.dsn)
    assert empty == fingerprint(pgsafe_db.dsn)
    runner = Runner(mig_dir, pgsafe_db.dsn)
    assert len(runner.apply()) == 3
    applied = fingerprint(pgsafe_db.dsn)
    changes = keys(diff(empty, applied))
    assert ("added", "table", "public.job_dlq") in changes
    assert ("added", "policy", 'public.job_dlq."Users can view own org DLQ entries"') in changes
    assert ("added", "column", "public.qc_jobs.last_heartbeat_at") in changes
    assert ("added", "function", "auth.uid()") in changes
    assert ("added", "schema", "auth") in changes
    assert not [c for c in changes if "pgsafe" in c[2]], "the ledger must not show"
    assert len(runner.rollback(steps=3)) == 3
    rolled_back = fingerprint(pgsafe_db.dsn)
    assert rolled_back == empty, render_diff(diff(empty, rolled_back))
    # Up, down, up again: the same schema as the first up.
    runner.apply()
    assert fingerprint(pgsafe_db.dsn) == applied


def test_partial_rollback_is_named_object_by_object(pgsafe_db, tmp_path):
    mig_dir = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, mig_dir)
    runner = Runner(mig_dir, pgsafe_db.dsn)
    runner.apply()
    applied = fingerprint(pgsafe_db.dsn)
    runner.rollback(steps=1)  # 002: the heartbeat column and its two indexes
    differences = diff(applied, fingerprint(pgsafe_db.dsn))
    assert keys(differences) == {
        ("removed", "column", "public.qc_jobs.last_heartbeat_at"),
        ("removed", "index", "public.idx_qc_jobs_heartbeat"),
        ("removed", "index", "public.idx_qc_jobs_running_heartbeat"),
        ("changed", "table", "public.qc_jobs"),
    }
    table = next(d for d in differences if d.kind == "table")
    assert "-columns: id, org_id" in table.render()


def test_extension_members_are_not_listed_one_by_one(pgsafe_db, other_db):
    require_extension(pgsafe_db, "citext")
    sql(pgsafe_db, "CREATE EXTENSION citext; CREATE TABLE emails (e citext)")
    sql(
        other_db,
        "CREATE TABLE emails (e text); CREATE EXTENSION citext;"
        " ALTER TABLE emails ALTER COLUMN e TYPE citext",
    )
    a, b = fingerprint(pgsafe_db.dsn), fingerprint(other_db.dsn)
    assert a == b
    assert "version: " in a.get("extension", "citext").definition
    assert [o.label for o in a.objects if "citext" in o.name] == ["extension citext"]
    assert "type: public.citext" in a.get("column", "public.emails.e").definition


def test_saved_fingerprint_round_trips_and_refuses_tampering(pgsafe_db, tmp_path):
    sql(pgsafe_db, ROLES + SCHEMA_IN_ORDER)
    fp = fingerprint(pgsafe_db.dsn)
    path = tmp_path / "schema.json"
    fp.save(path)
    loaded = SchemaFingerprint.load(path)
    assert loaded == fp and loaded.sha256 == fp.sha256
    assert loaded.server_version == fp.server_version and loaded.exclude == ("pgsafe",)
    assert _core.sha256_hex(loaded.canonical_text().encode()) == fp.sha256
    doc = json.loads(path.read_text())
    doc["objects"][0]["definition"] += "tampered\n"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="do not match its sha256"):
        SchemaFingerprint.load(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        SchemaFingerprint.load(path)
    with pytest.raises(ConfigError, match="not a pgsafe schema fingerprint"):
        SchemaFingerprint.from_json({"objects": []}, "x.json")


def test_canonical_text_does_not_depend_on_input_order():
    objs = [
        _core.SchemaObject("table", "public.b", "kind: table\n"),
        _core.SchemaObject("column", "public.b.x", 'type: text\ncomment: a "quoted"\tline\n'),
        _core.SchemaObject("table", "public.a", "kind: table\n"),
    ]
    text = _core.schema_canonical_text(objs)
    assert text == _core.schema_canonical_text(list(reversed(objs)))
    assert _core.schema_digest(objs) == _core.sha256_hex(text.encode())
    lines = text.splitlines()
    assert lines[0] == "pgsafe-schema-fingerprint 1"
    assert [json.loads(line)[:2] for line in lines[1:]] == [
        ["column", "public.b.x"],
        ["table", "public.a"],
        ["table", "public.b"],
    ]
    assert json.loads(lines[1])[2] == 'type: text\ncomment: a "quoted"\tline\n'
    # Moving text between fields changes the digest: the serialisation is unambiguous.
    shifted = [_core.SchemaObject("table", "public.a\nkind: table", "")]
    assert _core.schema_digest(shifted) != _core.schema_digest(objs[2:])


# ---------------------------------------------------------------------------------------------
# The CLI


def test_cli_help_and_usage_errors():
    for cmd in (["schema"], ["schema", "fingerprint"], ["schema", "diff"]):
        res = run(*cmd, "--help")
        assert res.returncode == 0, res.stderr
        assert "usage: pgsafe schema" in res.stdout
    assert run("schema").returncode == 5
    res = run("schema", "diff", "only-one")
    assert res.returncode == 5 and "required: B" in res.stderr
    assert run("schema", "fingerprint", "--bogus").returncode == 5


def test_cli_fingerprint_text_and_json(pgsafe_db):
    sql(pgsafe_db, ROLES + SCHEMA_IN_ORDER)
    expected = fingerprint(pgsafe_db.dsn)
    res = run("schema", "fingerprint", "--db", pgsafe_db.url)
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    assert first.split()[0] == expected.sha256
    assert "excluded schemas: pgsafe" in res.stdout
    res = run("schema", "fingerprint", "--json", env={"DATABASE_URL": pgsafe_db.url})
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["sha256"] == expected.sha256 and doc["exclude"] == ["pgsafe"]
    assert SchemaFingerprint.from_json(doc) == expected
    res = run("schema", "fingerprint", "--db", pgsafe_db.url, "--exclude", "app,other", "--json")
    assert json.loads(res.stdout)["exclude"] == ["pgsafe", "app", "other"]
    res = run("schema", "fingerprint", "--db", pgsafe_db.url, "--include-ledger", "--json")
    assert json.loads(res.stdout)["exclude"] == []


def test_cli_fingerprint_of_the_embedded_server_keeps_json_on_stdout():
    res = run("schema", "fingerprint", "--embedded", "--json", timeout=180)
    assert res.returncode == 0, res.stderr
    assert "throwaway" in res.stderr
    doc = json.loads(res.stdout)
    assert {o["name"] for o in doc["objects"] if o["kind"] == "schema"} == {"public"}


def test_cli_diff_exit_codes_and_output(two_schemas, tmp_path):
    a_db, b_db = two_schemas
    res = run("schema", "diff", a_db.url, b_db.dsn)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("equal: sha256 ")
    saved = tmp_path / "before.json"
    saved.write_text(run("schema", "fingerprint", "--db", a_db.url, "--json").stdout)
    sql(b_db, "ALTER TABLE app.orders ALTER COLUMN amount TYPE bigint")
    res = run("schema", "diff", str(saved), b_db.url)
    assert res.returncode == 1, res.stderr
    assert "changed column app.orders.amount" in res.stdout
    assert "    -type: integer" in res.stdout and "    +type: bigint" in res.stdout
    assert res.stdout.rstrip().endswith("1 objects differ: 1 changed")
    res = run("schema", "diff", b_db.url, str(saved), "--json")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["equal"] is False
    assert [(d["change"], d["kind"], d["name"]) for d in doc["differences"]] == [
        ("changed", "column", "app.orders.amount")
    ]
    # A saved fingerprint from stdin, compared with itself through a file.
    proc = subprocess.run(
        [str(PGSAFE), "schema", "diff", "-", str(saved)],
        input=saved.read_text(),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_cli_diff_config_errors_exit_5(pgsafe_db, tmp_path):
    res = run("schema", "diff", "missing.json", pgsafe_db.url)
    assert res.returncode == 5 and "missing.json: no such file" in res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    res = run("schema", "diff", str(bad), pgsafe_db.url)
    assert res.returncode == 5 and "not a pgsafe schema fingerprint" in res.stderr
    res = run("schema", "diff", pgsafe_db.url, "postgresql://nobody@/nowhere?host=/nonexistent")
    assert res.returncode == 5, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1, res.stderr


@pytest.fixture
def password_user_password() -> str:
    return "Sch3ma-s3cret-PW"


def test_cli_masks_passwords(pgsafe_db, other_db, password_user, password_user_password):
    secret = password_user_password
    server = pgsafe_db.server
    url = (
        f"postgresql://{password_user}:{secret}@/{pgsafe_db.name}"
        f"?host={server.host}&port={server.port}"
    )
    res = run("schema", "fingerprint", "--db", url)
    assert res.returncode == 0, res.stderr
    assert secret not in res.stdout + res.stderr and "pwuser:****@" in res.stdout
    res = run("schema", "diff", url, other_db.url)
    assert res.returncode == 0, res.stderr
    assert secret not in res.stdout + res.stderr
    sql(other_db, "CREATE TABLE t (x int)")
    res = run("schema", "diff", url, other_db.url)
    assert res.returncode == 1, res.stderr
    assert "added table public.t" in res.stdout
    assert secret not in res.stdout + res.stderr and "--- A postgresql://pwuser:****@" in res.stdout
    wrong = url.replace(secret, "Wr0ng-" + secret)
    res = run("schema", "diff", wrong, other_db.url)
    assert res.returncode == 5
    assert "password" in res.stderr and secret not in res.stdout + res.stderr


def test_closed_connection_is_a_config_error(pgsafe_db):
    conn = pgsafe_db.connect(application_name="pgsafe-test")
    conn.close()
    with pytest.raises(ConfigError, match="connection is closed"):
        fingerprint(conn)
