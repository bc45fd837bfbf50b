"""Table data fingerprints against real PostgreSQL: unchanged by rewrites (VACUUM FULL,
CLUSTER, a type change that keeps the values' text, dump and restore), changed by any lost,
added or altered row, independent of worker count, chunk size and session settings,
consistent under concurrent writes, and cancelled on the server by Ctrl-C. Also the
Connection.copy_out primitive the scan is built on."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from typing import Any

import pytest

from helpers import ctrl_c_after, interrupt, pgsafe, query, running, wait_for
from helpers import execute as run
from pgsafe import _core
from pgsafe import errors as e
from pgsafe.backup import datafp
from pgsafe.backup.datafp import TableFingerprint
from pgsafe.server import TemporaryDatabase

SECRET = "fp-s3cret-pass"
# A view whose COPY runs for ~1000 s unless cancelled.
SLOW = "SELECT g, pg_sleep(0.01)::text AS s FROM generate_series(1, 100000) g"


def fp(db: TemporaryDatabase, tables: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    return {f.table: f for f in datafp.fingerprint(db.dsn, tables, **kw)}


def make_orders(db: TemporaryDatabase, rows: int = 20_000) -> None:
    run(
        db,
        "CREATE TABLE orders (id int PRIMARY KEY, customer int, note text, amount numeric, "
        "placed timestamptz, tags text[], payload jsonb)",
        f"INSERT INTO orders SELECT g, g % 97, CASE WHEN g % 10 = 0 THEN NULL ELSE 'note ' || g "
        f"END, g * 1.25, timestamptz '2024-01-01 00:00+00' + g * interval '1 minute', "
        f"ARRAY['a' || g % 5, 'b'], jsonb_build_object('k', g, 'tab', E'x\\ty') "
        f"FROM generate_series(1, {rows}) g",
        # Dead tuples and rows moved around, so that rewrites really change the layout.
        "UPDATE orders SET customer = customer + 1 WHERE id % 3 = 0",
        "DELETE FROM orders WHERE id % 50 = 7",
        "ANALYZE orders",
    )


# --- what a fingerprint says -----------------------------------------------------------------


def test_rows_bytes_and_digest_match_the_copy_text(pgsafe_db: TemporaryDatabase) -> None:
    run(
        pgsafe_db,
        "CREATE TABLE t (id int, v text)",
        "INSERT INTO t SELECT g, repeat('x', g % 7) FROM generate_series(1, 5000) g",
    )
    got = fp(pgsafe_db)["public.t"]
    digest = _core.RowDigest()
    lines: list[bytes] = []

    def take(row: bytes) -> None:
        lines.append(row)
        digest.add(row)

    with pgsafe_db.connect() as conn:
        assert conn.copy_out("COPY t TO STDOUT", take) == 5000
    assert got.rows == 5000 == digest.rows
    assert got.bytes == sum(len(line) for line in lines)
    assert got.digest == digest.hex()
    assert len(got.digest) == 32 and int(got.digest, 16) != 0


def test_empty_table_has_zero_rows_and_a_zero_digest(pgsafe_db: TemporaryDatabase) -> None:
    run(pgsafe_db, "CREATE TABLE empty (x int)")
    assert fp(pgsafe_db)["public.empty"] == TableFingerprint("public.empty", 0, "0" * 32, 0)


def test_equal_after_vacuum_full_cluster_and_a_value_preserving_type_change(
    pgsafe_db: TemporaryDatabase,
) -> None:
    make_orders(pgsafe_db)
    before = fp(pgsafe_db, chunk_pages=16)["public.orders"]
    assert before.rows == 20_000 - 400
    for sql in (
        "VACUUM FULL orders",
        "CLUSTER orders USING orders_pkey",
        "ALTER TABLE orders SET (fillfactor = 40)",
        "VACUUM FULL orders",
        "ALTER TABLE orders ALTER COLUMN id TYPE bigint",
        "ALTER TABLE orders ALTER COLUMN customer TYPE numeric",
        "ALTER TABLE orders ALTER COLUMN note TYPE varchar(100)",
    ):
        run(pgsafe_db, sql)
        assert fp(pgsafe_db, chunk_pages=16)["public.orders"] == before, sql
    pages = query(pgsafe_db, "SELECT relpages FROM pg_class WHERE relname = 'orders'")
    assert int(pages[0][0]) > 16  # really scanned in several ranges


def test_equal_after_dump_and_restore(pgsafe_db: TemporaryDatabase) -> None:
    make_orders(pgsafe_db, 3000)
    run(pgsafe_db, 'CREATE TABLE odd ("Mixed Case" text, b bytea, f float8, i interval)')
    run(
        pgsafe_db,
        "INSERT INTO odd VALUES ('é🐘', '\\x00ff', 0.1, '1 day 2 hours'), "
        "(NULL, '', 1e300, '-3 s')",
    )
    before = fp(pgsafe_db)
    server = pgsafe_db.server
    copy = server.new_database(prefix="restored")
    try:
        dump = subprocess.run(
            [str(server.bindir / "pg_dump"), "-d", pgsafe_db.dsn],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
        subprocess.run(
            [str(server.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", copy.dsn],
            input=dump,
            capture_output=True,
            check=True,
            timeout=120,
        )
        assert fp(copy) == before
    finally:
        copy.drop()


def test_one_lost_changed_or_added_row_changes_it(pgsafe_db: TemporaryDatabase) -> None:
    make_orders(pgsafe_db, 5000)
    base = fp(pgsafe_db, chunk_pages=8)["public.orders"]
    row = query(pgsafe_db, "SELECT * FROM orders WHERE id = 1234")
    assert row

    run(pgsafe_db, "DELETE FROM orders WHERE id = 1234")
    lost = fp(pgsafe_db, chunk_pages=8)["public.orders"]
    assert lost.rows == base.rows - 1 and lost.digest != base.digest

    # Put the very same row back: the multiset is the old one again, wherever the row now is.
    with pgsafe_db.connect() as conn:
        cols = len(row[0])
        placeholders = ", ".join(f"${i + 1}" for i in range(cols))
        conn.execute(f"INSERT INTO orders VALUES ({placeholders})", list(row[0]))
    assert fp(pgsafe_db, chunk_pages=8)["public.orders"] == base

    run(pgsafe_db, "UPDATE orders SET amount = amount + 0.01 WHERE id = 4321")
    changed = fp(pgsafe_db, chunk_pages=8)["public.orders"]
    assert changed.rows == base.rows and changed.digest != base.digest
    run(pgsafe_db, "UPDATE orders SET amount = amount - 0.01 WHERE id = 4321")
    assert fp(pgsafe_db, chunk_pages=8)["public.orders"] == base

    run(pgsafe_db, "INSERT INTO orders (id) VALUES (999999)")
    added = fp(pgsafe_db, chunk_pages=8)["public.orders"]
    assert added.rows == base.rows + 1 and added.digest != base.digest


def test_a_duplicated_row_changes_it(pgsafe_db: TemporaryDatabase) -> None:
    run(pgsafe_db, "CREATE TABLE bag (v text)", "INSERT INTO bag VALUES ('a'), ('b')")
    once = fp(pgsafe_db)["public.bag"]
    run(pgsafe_db, "INSERT INTO bag VALUES ('b')")
    twice = fp(pgsafe_db)["public.bag"]
    assert twice.rows == 3 and twice.digest != once.digest


def test_null_and_empty_string_differ(pgsafe_db: TemporaryDatabase) -> None:
    run(
        pgsafe_db,
        "CREATE TABLE a (id int, v text)",
        "CREATE TABLE b (id int, v text)",
        "INSERT INTO a VALUES (1, NULL)",
        "INSERT INTO b VALUES (1, '')",
    )
    got = fp(pgsafe_db)
    assert got["public.a"].rows == got["public.b"].rows == 1
    assert got["public.a"].digest != got["public.b"].digest


def test_independent_of_the_sessions_display_settings(pgsafe_db: TemporaryDatabase) -> None:
    run(
        pgsafe_db,
        "CREATE TABLE vals (ts timestamptz, d date, f float8, r real, b bytea, i interval, "
        "m money, c regclass)",
        "INSERT INTO vals VALUES ('2024-02-29 13:14:15.5+02', '2024-02-29', 0.1, 1.1, "
        "'\\xdeadbeef', '1 year 2 days 03:04:05', 12.34, 'vals')",
    )
    before = fp(pgsafe_db)
    run(
        pgsafe_db,
        f"ALTER DATABASE \"{pgsafe_db.name}\" SET TimeZone = 'Asia/Kathmandu'",
        f"ALTER DATABASE \"{pgsafe_db.name}\" SET DateStyle = 'SQL, DMY'",
        f"ALTER DATABASE \"{pgsafe_db.name}\" SET IntervalStyle = 'sql_standard'",
        f'ALTER DATABASE "{pgsafe_db.name}" SET extra_float_digits = -3',
        f"ALTER DATABASE \"{pgsafe_db.name}\" SET bytea_output = 'escape'",
        f'ALTER DATABASE "{pgsafe_db.name}" SET search_path = pg_catalog',
    )
    # The new defaults are in force for ordinary sessions...
    with pgsafe_db.connect() as conn:
        assert conn.execute("SHOW TimeZone").rows == [("Asia/Kathmandu",)]
    # ...and make no difference to the fingerprint.
    assert fp(pgsafe_db) == before


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
def test_worker_count_and_chunk_size_do_not_matter(
    pgsafe_db: TemporaryDatabase, workers: int
) -> None:
    make_orders(pgsafe_db, 8000)
    run(
        pgsafe_db,
        "CREATE TABLE small (x int)",
        "INSERT INTO small VALUES (1), (2)",
        "CREATE TABLE nothing (x int)",
        "CREATE TABLE parent (x int)",
        "CREATE TABLE child () INHERITS (parent)",
        "INSERT INTO parent SELECT generate_series(1, 300)",
        "INSERT INTO child SELECT generate_series(1, 500)",
    )
    reference = fp(pgsafe_db, workers=1, chunk_pages=1_000_000)
    assert reference["public.parent"].rows == 300  # its children are tables of their own
    assert reference["public.child"].rows == 500
    for chunk_pages in (1, 2, 7, 64, None):
        got = fp(pgsafe_db, workers=workers, chunk_pages=chunk_pages)
        assert got == reference, (workers, chunk_pages)
    core = _core.fingerprint_tables(pgsafe_db.dsn, ["orders"], workers=workers, chunk_pages=3)
    assert core[0].chunks > 10
    assert core[0].digest == reference["public.orders"].digest


def test_partitioned_table_views_and_materialized_views(pgsafe_db: TemporaryDatabase) -> None:
    run(
        pgsafe_db,
        "CREATE TABLE events (id int, at date) PARTITION BY RANGE (at)",
        "CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') "
        "TO ('2024-01-01')",
        "CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') "
        "TO ('2025-01-01')",
        "INSERT INTO events SELECT g, date '2023-06-01' + g FROM generate_series(1, 400) g",
        "CREATE VIEW late AS SELECT * FROM events WHERE at >= '2024-01-01'",
        "CREATE MATERIALIZED VIEW late_m AS SELECT * FROM late",
    )
    default = fp(pgsafe_db)
    assert set(default) == {"public.events_2023", "public.events_2024"}  # ordinary tables only
    named = fp(pgsafe_db, ["events", "late", "late_m", "events_2024"], chunk_pages=1)
    assert list(named) == ["public.events", "public.late", "public.late_m", "public.events_2024"]
    assert named["public.events"].rows == 400
    late, part = named["public.late"], named["public.events_2024"]
    assert (late.rows, late.digest, late.bytes) == (part.rows, part.digest, part.bytes)
    assert named["public.late_m"].digest == named["public.late"].digest
    # A partitioned table's digest is the sum of its partitions' (a multiset hash adds up).
    parts = [default["public.events_2023"], default["public.events_2024"]]
    assert sum(p.rows for p in parts) == 400
    total = sum(int(p.digest, 16) for p in parts) % (1 << 128)
    assert named["public.events"].digest == f"{total:032x}"


def test_default_tables_skip_system_and_pgsafe_schemas(pgsafe_db: TemporaryDatabase) -> None:
    run(
        pgsafe_db,
        "CREATE SCHEMA pgsafe",
        "CREATE TABLE pgsafe.ledger (v text)",
        "CREATE SCHEMA app",
        'CREATE TABLE app."Order Lines" (v text)',
        "CREATE TABLE public.plain (v text)",
        "CREATE TABLE other_schema_excluded (v text)",
    )
    assert list(fp(pgsafe_db)) == [
        'app."Order Lines"',
        "public.other_schema_excluded",
        "public.plain",
    ]
    excluded = datafp.fingerprint(pgsafe_db.dsn, exclude_schemas=["app"])
    assert [f.table for f in excluded] == [
        "pgsafe.ledger",
        "public.other_schema_excluded",
        "public.plain",
    ]
    # Named explicitly, any schema's table is fingerprinted, in the order given.
    assert list(fp(pgsafe_db, ["pgsafe.ledger", 'app."Order Lines"', "plain", "public.plain"])) == [
        "pgsafe.ledger",
        'app."Order Lines"',
        "public.plain",
    ]


def test_unknown_or_unsuitable_names_are_config_errors(pgsafe_db: TemporaryDatabase) -> None:
    run(pgsafe_db, "CREATE TABLE t (id int PRIMARY KEY)", "CREATE SEQUENCE s")
    with pytest.raises(e.ConfigError, match="no table named nope"):
        fp(pgsafe_db, ["nope"])
    with pytest.raises(e.ConfigError, match="t_pkey is an index"):
        fp(pgsafe_db, ["t_pkey"])
    with pytest.raises(e.ConfigError, match="s is a sequence"):
        fp(pgsafe_db, ["s"])
    with pytest.raises(e.ConfigError, match="workers"):
        fp(pgsafe_db, workers=0)
    with pytest.raises(e.ConfigError, match="chunk_pages"):
        fp(pgsafe_db, chunk_pages=0)
    with pytest.raises(e.ConfigError, match="list of names"):
        datafp.fingerprint(pgsafe_db.dsn, "t")  # type: ignore[arg-type]


# --- one snapshot ----------------------------------------------------------------------------


def make_wide(db: TemporaryDatabase) -> int:
    run(
        db,
        "CREATE TABLE acct (id int PRIMARY KEY, balance int, filler text)",
        "INSERT INTO acct SELECT g, 100, repeat('f', 200) FROM generate_series(1, 30000) g",
        "VACUUM ANALYZE acct",
    )
    return int(query(db, "SELECT relpages FROM pg_class WHERE relname = 'acct'")[0][0])


@pytest.mark.parametrize("workers", [1, 3])
def test_concurrent_writes_during_the_scan_are_not_seen(
    pgsafe_db: TemporaryDatabase, workers: int
) -> None:
    pages = make_wide(pgsafe_db)
    assert pages > 500
    snapshot_content = fp(pgsafe_db, ["acct"])["public.acct"]
    writer = pgsafe_db.connect(application_name="pgsafe-test-writer")
    seen: list[tuple[int, int]] = []
    batches = iter(range(4))

    def write_while_scanning(p: _core.FingerprintProgress) -> None:
        if p.chunks_done == p.chunks_total:  # the final report, after the scan
            return
        batch = next(batches, None)
        if batch is None:
            return
        seen.append((p.chunks_done, p.chunks_total))
        # Moves rows between ranges already scanned and ranges still to come (an UPDATE writes
        # the new version elsewhere), deletes some, adds some: each batch one committed
        # transaction.
        writer.execute(
            "BEGIN; "
            f"UPDATE acct SET balance = balance - 1 WHERE id % 97 = {batch}; "
            f"UPDATE acct SET balance = balance + 1 WHERE id % 89 = {batch}; "
            f"DELETE FROM acct WHERE id % 1009 = {batch}; "
            f"INSERT INTO acct SELECT 100000 + g + {batch} * 1000, 1, 'new' "
            "FROM generate_series(1, 500) g; "
            "COMMIT"
        )

    try:
        during = datafp.fingerprint(
            pgsafe_db.dsn, ["acct"], workers, chunk_pages=1, progress=write_while_scanning
        )[0]
    finally:
        writer.close()
    # How many batches fit in the scan depends on the machine; each one that ran landed
    # mid-scan, with ranges both behind and ahead of the scan.
    assert seen, "no progress report"
    assert all(0 < done < total for done, total in seen), seen
    assert during == snapshot_content
    after = fp(pgsafe_db, ["acct"])["public.acct"]
    assert after != snapshot_content and after.rows > snapshot_content.rows


def test_a_rewrite_started_during_the_scan_waits_for_it(
    pgsafe_db: TemporaryDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    make_wide(pgsafe_db)
    run(
        pgsafe_db,
        "CREATE TABLE later (id int, v text)",
        "INSERT INTO later SELECT g, repeat('v', 100) FROM generate_series(1, 2000) g",
        "CREATE INDEX later_id ON later (id)",
    )
    before = fp(pgsafe_db, ["acct", "later"])
    # Gates that hold the workers where the scenario needs them, however the threads and
    # backends get scheduled: an open REINDEX holds its index's ACCESS EXCLUSIVE lock, which
    # planning a COPY of the table waits for, while its SHARE lock on the table lets the scan's
    # ACCESS SHARE through.
    gates: dict[str, _core.Connection] = {}
    for index in ("acct_pkey", "later_id"):
        gates[index] = pgsafe_db.connect(application_name="pgsafe-test-gate")
        gates[index].execute("BEGIN")
        gates[index].execute(f"REINDEX INDEX {index}")
    rewriter = pgsafe_db.connect(application_name="pgsafe-test-rewriter")
    observer = pgsafe_db.connect(application_name="pgsafe-test")
    outcome: list[object] = []
    failures: list[BaseException] = []

    def waits_for(application_name: str, relation: str) -> bool:
        return bool(
            observer.execute(
                "SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE a.application_name = $1 AND l.relation = $2::regclass AND NOT l.granted",
                [application_name, relation],
            ).rows
        )

    def contended() -> bool:
        return any("public.later is contended" in r.getMessage() for r in caplog.records)

    def open_gate(index: str) -> None:
        gate = gates.pop(index, None)
        if gate is not None:
            gate.execute("ROLLBACK")

    rewrite = threading.Thread(
        target=lambda: outcome.append(
            rewriter.execute("ALTER TABLE later ALTER COLUMN id TYPE bigint")
        )
    )

    def conduct() -> None:
        # One-page chunks keep the tables' order, so `acct`'s come first: both workers stop at
        # the acct gate on their first chunk, after the coordinating connection locked every
        # table. A rewrite of `later` now queues behind that lock. Past the acct gate, the
        # coordinator stops at the later gate on its first `later` chunk, so a helper has to
        # take the others. A helper asking for `later` would queue behind the rewrite, which
        # waits for the coordinator, which waits for the helper: the helper must leave `later`
        # to the coordinator instead.
        try:
            wait_for(lambda: waits_for("pgsafe-fingerprint", "acct_pkey"), 30, "the acct gate")
            rewrite.start()
            wait_for(lambda: waits_for("pgsafe-test-rewriter", "later"), 10, "the rewrite to wait")
            open_gate("acct_pkey")
            wait_for(contended, 30, "a helper to leave the contended table to the coordinator")
        except BaseException as exc:
            failures.append(exc)
        finally:
            for index in list(gates):
                open_gate(index)

    conductor = threading.Thread(target=conduct)
    caplog.set_level(logging.INFO, logger="pgsafe.core")
    try:
        conductor.start()
        during = fp(pgsafe_db, ["acct", "later"], workers=2, chunk_pages=1)
    finally:
        conductor.join(90)
        if rewrite.is_alive():
            rewrite.join(30)
        for conn in (rewriter, observer, *gates.values()):
            conn.close()
    assert not conductor.is_alive()
    if failures:
        raise failures[0]
    assert not rewrite.is_alive()
    assert during == before
    assert len(outcome) == 1  # the rewrite went ahead once the scan was done
    assert fp(pgsafe_db, ["acct", "later"]) == before  # int -> bigint kept every value
    assert contended()


def test_workers_that_cannot_connect_are_done_without(
    pgsafe_db: TemporaryDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pgsafe.core")
    make_orders(pgsafe_db, 3000)
    expected = fp(pgsafe_db, chunk_pages=2)
    run(
        pgsafe_db,
        "DROP ROLE IF EXISTS fp_limited",
        "CREATE ROLE fp_limited LOGIN CONNECTION LIMIT 1",
        "GRANT SELECT ON orders TO fp_limited",
    )
    try:
        got = datafp.fingerprint(f"{pgsafe_db.dsn} user=fp_limited", workers=4, chunk_pages=2)
        assert {f.table: f for f in got} == expected
        assert any("could not start" in r.getMessage() for r in caplog.records)
    finally:
        run(pgsafe_db, "DROP OWNED BY fp_limited", "DROP ROLE fp_limited")


def test_a_failing_progress_callback_stops_every_worker(pgsafe_db: TemporaryDatabase) -> None:
    run(
        pgsafe_db,
        "CREATE TABLE quick (x int)",
        "INSERT INTO quick VALUES (1)",
        f"CREATE VIEW slow_a AS {SLOW}",
        f"CREATE VIEW slow_b AS {SLOW}",
    )

    def stop(p: _core.FingerprintProgress) -> None:
        raise RuntimeError("enough")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="enough"):
        datafp.fingerprint(pgsafe_db.dsn, ["slow_a", "slow_b", "quick"], 3, progress=stop)
    assert time.monotonic() - started < 10
    wait_for(lambda: not active_copies(pgsafe_db), 5, "the COPYs to stop on the server")


# --- Ctrl-C ----------------------------------------------------------------------------------


def active_copies(db: TemporaryDatabase) -> list[tuple[Any, ...]]:
    return query(
        db,
        "SELECT pid, query FROM pg_stat_activity WHERE datname = $1 AND state = 'active' "
        "AND application_name = 'pgsafe-fingerprint' AND query LIKE 'COPY%'",
        [db.name],
    )


def test_ctrl_c_cancels_every_copy_on_the_server(pgsafe_db: TemporaryDatabase) -> None:
    run(
        pgsafe_db,
        f"CREATE VIEW slow_a AS {SLOW}",
        f"CREATE VIEW slow_b AS {SLOW}",
    )
    with running("fingerprint", "--db", pgsafe_db.dsn, "--tables", "slow_a,slow_b") as proc:
        copies = wait_for(
            lambda: len(active_copies(pgsafe_db)) == 2 and active_copies(pgsafe_db),
            20,
            "both COPYs to run on the server",
        )
        pids = {row[0] for row in copies}
        time.sleep(0.3)
        out, err, took = interrupt(proc, timeout=15)
    assert took < 5, took
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err, err
    assert "interrupted" in err and "cancelled on the server" in err
    # Cancelled on the server, not merely abandoned by the client.
    wait_for(lambda: not active_copies(pgsafe_db), 2, "the COPYs to disappear from the server")
    log = pgsafe_db.server.log_path.read_text(errors="replace").splitlines()
    for pid in pids:
        assert any(
            f"[{pid}]" in line and "canceling statement due to user request" in line for line in log
        ), f"no cancel request reached backend {pid}"


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_text_and_json(pgsafe_db: TemporaryDatabase) -> None:
    make_orders(pgsafe_db, 2000)
    run(pgsafe_db, "CREATE TABLE other (v text)", "INSERT INTO other VALUES ('x')")
    expected = fp(pgsafe_db)
    res = pgsafe("fingerprint", "--db", pgsafe_db.url, "--json", "--workers", "3")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["workers"] == 3 and doc["seconds"] > 0
    assert [t["table"] for t in doc["tables"]] == ["public.orders", "public.other"]
    for t in doc["tables"]:
        assert set(t) == {"table", "rows", "digest", "bytes", "seconds"}
        f = expected[t["table"]]
        assert (t["rows"], t["digest"], t["bytes"]) == (f.rows, f.digest, f.bytes)

    res = pgsafe("fingerprint", "--db", pgsafe_db.url, "--tables", "other", "--workers", "1")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["table", "rows", "MiB", "seconds", "digest"]
    assert (
        lines[1].split()[0] == "public.other"
        and lines[1].split()[-1] == expected["public.other"].digest
    )
    assert "1 tables, 1 rows" in lines[-1]


def test_cli_reads_database_url(pgsafe_db: TemporaryDatabase) -> None:
    run(pgsafe_db, "CREATE TABLE t (v int)")
    res = pgsafe("fingerprint", "--json", env={"DATABASE_URL": pgsafe_db.url})
    assert res.returncode == 0, res.stderr
    assert [t["table"] for t in json.loads(res.stdout)["tables"]] == ["public.t"]


def test_cli_config_errors_exit_5(pgsafe_db: TemporaryDatabase) -> None:
    res = pgsafe("fingerprint", "--db", pgsafe_db.url, "--tables", "missing")
    assert res.returncode == 5 and "no table named missing" in res.stderr
    assert pgsafe("fingerprint", "--db", pgsafe_db.url, "--workers", "0").returncode == 5
    assert pgsafe("fingerprint", "--db", pgsafe_db.url, "--tables", "a,,b").returncode == 5
    bad = pgsafe("fingerprint", "--db", f"{pgsafe_db.dsn} port=1 password={SECRET}")
    assert bad.returncode == 5
    assert SECRET not in bad.stderr + bad.stdout


# --- Connection.copy_out ---------------------------------------------------------------------


def test_copy_out_streams_rows_and_refuses_other_statements(pgsafe_db: TemporaryDatabase) -> None:
    rows: list[bytes] = []
    with pgsafe_db.connect() as conn:
        n = conn.copy_out(
            "COPY (SELECT g, NULL, '' , E'a\\tb' FROM generate_series(1, 3) g) TO STDOUT",
            rows.append,
        )
        assert n == 3
        assert rows[0] == b"1\t\\N\t\ta\\tb\n"
        csv: list[bytes] = []
        assert conn.copy_out("COPY (SELECT E'two\\nlines') TO STDOUT (FORMAT csv)", csv.append) == 1
        assert csv == [b'"two\nlines"\n']  # one row, even across a newline
        for sql in ("SELECT 1", "CREATE TABLE x (a int)", "SELECT 1; COPY (SELECT 1) TO STDOUT"):
            with pytest.raises(e.ConfigError, match=r"COPY \.\.\. TO STDOUT"):
                conn.copy_out(sql, rows.append)
        with pytest.raises(e.ConfigError):
            conn.copy_out("COPY x FROM STDIN", rows.append)
        assert conn.execute("SELECT 2").rows == [("2",)]
        assert conn.transaction_status == "idle"


def test_copy_out_callback_error_cancels_and_keeps_the_connection(
    pgsafe_db: TemporaryDatabase,
) -> None:
    with pgsafe_db.connect() as conn:
        seen = 0

        def stop_early(row: bytes) -> None:
            nonlocal seen
            seen += 1
            if seen == 10:
                raise ValueError("seen enough")

        started = time.monotonic()
        with pytest.raises(ValueError, match="seen enough"):
            conn.copy_out(
                "COPY (SELECT g, pg_sleep(0.001) FROM generate_series(1, 100000) g) TO STDOUT",
                stop_early,
            )
        assert time.monotonic() - started < 10
        assert seen == 10
        assert conn.execute("SELECT 3").rows == [("3",)]


def test_copy_out_server_error_mid_stream(pgsafe_db: TemporaryDatabase) -> None:
    rows: list[bytes] = []
    with pgsafe_db.connect() as conn:
        with pytest.raises(e.DivisionByZero) as info:
            conn.copy_out(
                "COPY (SELECT 10 / (5 - g) FROM generate_series(1, 9) g) TO STDOUT", rows.append
            )
        assert info.value.connection_usable is True
        assert len(rows) == 4
        assert conn.execute("SELECT 4").rows == [("4",)]


def test_copy_out_errors_never_show_the_password(pgsafe_db: TemporaryDatabase) -> None:
    # Trust authentication: the password is not checked, only carried.
    with (
        _core.Connection(f"{pgsafe_db.dsn} password={SECRET}") as conn,
        pytest.raises(e.InvalidTextRepresentation) as info,
    ):
        conn.copy_out(f"COPY (SELECT '{SECRET}'::int) TO STDOUT", lambda row: None)
    assert SECRET not in str(info.value)
    assert "****" in str(info.value)


def test_copy_out_ctrl_c_cancels_it_on_the_server(pgsafe_db: TemporaryDatabase) -> None:
    with pgsafe_db.connect() as conn, pgsafe_db.connect() as observer:
        pid = conn.backend_pid
        started = time.monotonic()
        with ctrl_c_after(0.5), pytest.raises(KeyboardInterrupt):
            conn.copy_out(
                "COPY (SELECT g, pg_sleep(0.01) FROM generate_series(1, 5000) g) TO STDOUT",
                lambda row: None,
            )
        assert time.monotonic() - started < 5
        wait_for(
            lambda: (
                observer.execute(
                    "SELECT state FROM pg_stat_activity WHERE pid = $1", [str(pid)]
                ).rows
                == [("idle",)]
            ),
            5,
            "the backend to go idle",
        )
        assert conn.execute("SELECT 5").rows == [("5",)]
