"""`pgsafe rollback --from-backup` also drops the tables the rolled-back migrations created (the
backup, taken before them, does not hold them): listed before anything runs, confirmed outside
local/ci, refused when something else depends on them; afterwards the schema fingerprint is the
one from before the migration."""

from __future__ import annotations

import json

from helpers import exists, query, write
from helpers import pgsafe as run
from pgsafe.schema import fingerprint

BASE = {
    "001_orders.sql": "CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL);\n"
    "INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 5) g;\n",
}
# Creates two tables and alters an existing one; no down file (irreversible). customers is
# referenced by the altered orders, order_notes references orders: both directions of FK.
CUSTOMERS = {
    "002_customers.sql": "CREATE TABLE customers (id int PRIMARY KEY, name text);\n"
    "CREATE TABLE order_notes (id serial PRIMARY KEY, order_id int NOT NULL REFERENCES orders,"
    " note text);\n"
    "ALTER TABLE orders ADD COLUMN customer_id int REFERENCES customers (id);\n"
    "INSERT INTO customers VALUES (1, 'ada'), (2, 'bob');\n"
    "UPDATE orders SET customer_id = 1 WHERE id < 3;\n",
}


def rollback(db, migs, cwd, *extra: str):
    return run("rollback", str(migs), "--db", db.dsn, "--from-backup", *extra, cwd=cwd, timeout=180)


def test_from_backup_drops_created_tables_and_restores_the_schema(pgsafe_db, tmp_path):
    migs = write(tmp_path / "m", BASE)
    res = run("apply", str(migs), "--db", pgsafe_db.dsn, "--apply", "--log-dir", "", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    before = fingerprint(pgsafe_db.dsn)

    write(migs, CUSTOMERS)
    res = run("apply", str(migs), "--db", pgsafe_db.dsn, "--apply", "--backup", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    (backup,) = (tmp_path / "backups/migrations").glob("backup-*.sql.zst")
    res = run("verify-backup", str(backup), timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    with pgsafe_db.connect() as conn:
        conn.execute("INSERT INTO order_notes (order_id, note) VALUES (1, 'x'), (2, 'y')")
    assert fingerprint(pgsafe_db.dsn) != before

    # The plan (no --apply) lists what is dropped and what it holds; nothing changes.
    res = rollback(pgsafe_db, migs, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "warning: data loss: 002_customers (002_customers.sql:1): DROP TABLE customers: " in out
    assert "2 rows lost" in out
    assert "(002_customers.sql:2): DROP TABLE order_notes: 2 rows lost" in out
    assert "drop the tables the rolled-back migrations created (not in the backup): " in out
    assert "restore public.orders from" in out or "restore orders from" in out, out

    # Something else depending on a new table: refused before anything, exit 4.
    with pgsafe_db.connect() as conn:
        conn.execute("CREATE VIEW customer_names AS SELECT name FROM customers")
    res = rollback(pgsafe_db, migs, tmp_path, "--apply", "--yes")
    assert res.returncode == 4, res.stdout + res.stderr
    assert "customer_names depends on tables the rollback drops" in res.stderr
    assert "nothing was touched" in res.stderr
    assert exists(pgsafe_db, "customers") and exists(pgsafe_db, "order_notes")
    with pgsafe_db.connect() as conn:
        conn.execute("DROP VIEW customer_names")

    # Staging asks first: without --yes (and no terminal) exit 5, nothing touched.
    res = rollback(pgsafe_db, migs, tmp_path, "--apply", "--env", "staging")
    assert res.returncode == 5, res.stdout + res.stderr
    assert "needs confirmation to roll back 002_customers" in res.stderr
    assert "dropping customers, order_notes" in res.stderr
    assert exists(pgsafe_db, "customers") and exists(pgsafe_db, "order_notes")
    assert query(pgsafe_db, "SELECT count(customer_id) FROM orders") == [("2",)]

    res = rollback(pgsafe_db, migs, tmp_path, "--apply", "--env", "staging", "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "dropped customers, order_notes (created by the rolled-back migrations)" in res.stdout
    assert not exists(pgsafe_db, "customers") and not exists(pgsafe_db, "order_notes")
    assert fingerprint(pgsafe_db.dsn) == before
    assert query(pgsafe_db, "SELECT count(*), sum(total) FROM orders") == [("5", "150")]
    assert query(pgsafe_db, "SELECT version, status FROM pgsafe.migrations ORDER BY 1") == [
        ("001", "applied"),
        ("002", "rolled_back"),
    ]
    log = [json.loads(x) for x in (tmp_path / "logs/migrations.jsonl").read_text().splitlines()]
    (confirmed,) = [e for e in log if e["event"] == "rollback_confirmed"]
    assert confirmed["drop_tables"] == ["customers", "order_notes"]
    assert {d["target"] for d in confirmed["data_loss"]} == {"customers", "order_notes"}
    assert [e["tables"] for e in log if e["event"] == "created_tables_dropped"] == [
        ["customers", "order_notes"]
    ]


def test_if_not_exists_tables_are_left_to_the_operator(pgsafe_db, tmp_path):
    # CREATE TABLE IF NOT EXISTS may have found the table there already; a backup of chosen
    # tables cannot tell, so the rollback says so and leaves it (never drops what it may not own).
    migs = write(tmp_path / "m", BASE)
    res = run("apply", str(migs), "--db", pgsafe_db.dsn, "--apply", "--log-dir", "", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    write(
        migs,
        {
            "002_extra.sql": "CREATE TABLE IF NOT EXISTS extra (id int);\n"
            "ALTER TABLE orders ADD COLUMN extra_id int;\n"
        },
    )
    res = run("apply", str(migs), "--db", pgsafe_db.dsn, "--apply", "--backup", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    (backup,) = (tmp_path / "backups/migrations").glob("backup-*.sql.zst")
    assert run("verify-backup", str(backup), timeout=180).returncode == 0
    res = rollback(pgsafe_db, migs, tmp_path, "--apply")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "warning: extra is left in place: 002_extra.sql:1 creates it with IF NOT EXISTS" in (
        res.stdout
    )
    assert "DROP TABLE extra" not in res.stdout and exists(pgsafe_db, "extra")
    assert query(
        pgsafe_db,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders'"
        " AND column_name = 'extra_id'",
    ) == [("0",)]
