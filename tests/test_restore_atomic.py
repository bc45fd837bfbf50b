"""`pgsafe restore` is all or nothing: a damaged chunk, a failing step, Ctrl-C or SIGTERM undo
everything the restore created (schema, indexes, other tables' rows) and the one error line
says so; a restore killed with -9 leaves a marker that the next `pgsafe restore` and `pgsafe
status` report, and `restore --force` clears."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import execute as run
from helpers import pgsafe, query, spawn, wait_for, write
from pgsafe.backup import core as bk
from pgsafe.server import TemporaryDatabase

# A function an index is built with, slow only where the database says so: the backup is
# taken quickly, and the restore's index build sleeps on the target, long enough to be stopped.
SLOW = (
    "CREATE FUNCTION slow_key(i int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT i FROM "
    "(SELECT pg_sleep(coalesce(current_setting('pgsafe_test.sleep', true), '0')::float8)) s $$"
)


def source(db: TemporaryDatabase, rows: int = 2000) -> None:
    """Several tables (so some are loaded before a damaged one), indexes, a view, a sequence."""
    run(
        db,
        "CREATE SCHEMA app",
        "CREATE TABLE app.a (id bigint PRIMARY KEY, v text)",
        "CREATE TABLE app.b (id bigint PRIMARY KEY, a bigint REFERENCES app.a (id), v text)",
        "CREATE TABLE app.c (id bigint PRIMARY KEY, v text)",
        f"INSERT INTO app.a SELECT g, repeat('a', 100) FROM generate_series(1, {rows}) g",
        f"INSERT INTO app.b SELECT g, g, repeat('b', 100) FROM generate_series(1, {rows}) g",
        f"INSERT INTO app.c SELECT g, repeat('c', 100) FROM generate_series(1, {rows}) g",
        "CREATE INDEX b_v ON app.b (v)",
        "CREATE INDEX c_v ON app.c (v)",
        "CREATE VIEW app.ab AS SELECT a.id, b.v FROM app.a JOIN app.b ON b.a = a.id",
        "CREATE SEQUENCE app.s START 7",
    )


def user_objects(db: TemporaryDatabase) -> list[tuple[Any, ...]]:
    """Every object initdb did not create, named: what a failed restore must not leave."""
    catalogs = ("pg_namespace", "pg_class", "pg_type", "pg_proc", "pg_extension")
    union = " UNION ALL ".join(
        f"SELECT i.type, i.identity FROM {c} x, pg_identify_object('{c}'::regclass, x.oid, 0) i "
        "WHERE x.oid >= 16384"
        for c in catalogs
    )
    return sorted(query(db, union))


def data_chunks(result: bk.BackupResult) -> list[dict[str, Any]]:
    doc = json.loads(result.manifest_path.read_text())
    return [c for c in doc["chunks"] if c["kind"] == "data"]


def flip(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def test_flipped_byte_leaves_the_target_empty(
    pgsafe_db: TemporaryDatabase, target: TemporaryDatabase, tmp_path: Path
) -> None:
    """The issue's case: one flipped byte in a table's chunk used to leave the schema, the
    indexes and the other tables' rows behind. Now: exit 4 naming the chunk, and nothing left."""
    source(pgsafe_db)
    result = bk.backup(pgsafe_db.dsn, out_dir=tmp_path, chunk_pages=4, workers=2)
    chunks = data_chunks(result)
    victim = [c for c in chunks if c["table"] == "app.c"][-1]  # loaded after other tables' rows
    flip(result.path, victim["offset"] + victim["length"] // 2)
    assert user_objects(target) == []

    r = pgsafe("restore", str(result.path), "--db", target.dsn, "--workers", "2")
    assert r.returncode == 4, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"chunk {victim['index']} (app.c, offset {victim['offset']}," in lines[0]
    assert "undone" in lines[0] and "as it was before" in lines[0]
    assert user_objects(target) == []  # no schema, no table, no index, no rows, no marker

    # The same file, repaired, restores into the same target: the undo left it usable.
    flip(result.path, victim["offset"] + victim["length"] // 2)
    r = pgsafe("restore", str(result.path), "--db", target.dsn)
    assert r.returncode == 0, r.stderr
    assert query(target, "SELECT count(*) FROM app.c") == [("2000",)]
    assert query(target, "SELECT to_regnamespace('pgsafe_restore') IS NULL") == [("t",)]


def test_what_was_there_before_stays_and_only_that(
    pgsafe_db: TemporaryDatabase, target: TemporaryDatabase, tmp_path: Path
) -> None:
    """An existing database without tables (a schema, a function, an extension-free type of
    its own): a failed restore drops what it created and keeps exactly what was there."""
    source(pgsafe_db, rows=500)
    result = bk.backup(pgsafe_db.dsn, out_dir=tmp_path, chunk_pages=2, workers=2)
    victim = data_chunks(result)[-1]
    flip(result.path, victim["offset"] + 3)
    run(
        target,
        "CREATE SCHEMA keep",
        "CREATE FUNCTION keep.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE TYPE keep.color AS ENUM ('red')",
    )
    before = user_objects(target)
    with pytest.raises(bk.CorruptChunk, match="the target is as it was before"):
        bk.restore(result.path, target.dsn, progress=False)
    assert user_objects(target) == before


def test_a_failing_step_is_undone_too(
    pgsafe_db: TemporaryDatabase, target: TemporaryDatabase, tmp_path: Path
) -> None:
    """Not a damaged file: the post-data step fails on the target (an event trigger there
    refuses CREATE TRIGGER) after the schema and every row are in. All of it goes; the
    target's own event trigger and its function stay."""
    source(pgsafe_db, rows=300)
    run(
        pgsafe_db,
        "CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
        "CREATE TRIGGER a_touch BEFORE INSERT ON app.a FOR EACH ROW EXECUTE FUNCTION app.touch()",
    )
    result = bk.backup(pgsafe_db.dsn, out_dir=tmp_path, workers=2)
    run(
        target,
        "CREATE FUNCTION no_triggers() RETURNS event_trigger LANGUAGE plpgsql AS "
        "$$BEGIN RAISE EXCEPTION 'no triggers in this database'; END$$",
        "CREATE EVENT TRIGGER no_triggers ON ddl_command_end WHEN TAG IN ('CREATE TRIGGER') "
        "EXECUTE FUNCTION no_triggers()",
    )
    before = user_objects(target)
    r = pgsafe("restore", str(result.path), "--db", target.dsn)
    assert r.returncode == 4, (r.stdout, r.stderr)
    assert "post-data" in r.stderr and "no triggers in this database" in r.stderr, r.stderr
    assert "undone" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert user_objects(target) == before
    assert query(target, "SELECT evtname FROM pg_event_trigger") == [("no_triggers",)]


def _restore_in_index_build(
    pgsafe_db: TemporaryDatabase, target: TemporaryDatabase, tmp_path: Path
) -> tuple[subprocess.Popen[str], Path]:
    """Starts `pgsafe restore` of a backup whose index build sleeps on the target; returns it
    once that build runs (the schema and the tables' rows are in by then)."""
    run(pgsafe_db, SLOW)
    source(pgsafe_db, rows=200)
    run(pgsafe_db, "CREATE INDEX a_slow ON app.a (slow_key(id::int))")
    result = bk.backup(pgsafe_db.dsn, out_dir=tmp_path, workers=2)
    target.server.execute(f"ALTER DATABASE \"{target.name}\" SET pgsafe_test.sleep = '0.2'")
    proc = spawn("restore", str(result.path), "--db", target.dsn)
    wait_for(
        lambda: (
            query(
                target,
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE '%slow_key%' AND state = 'active' AND pid <> pg_backend_pid()",
            )
            or proc.poll() is not None
        ),
        60,
        "the restore's slow index build",
    )
    assert proc.poll() is None, proc.communicate()
    assert query(target, "SELECT count(*) FROM app.a") == [("200",)]  # rows are in, committed
    return proc, result.path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_undo_the_restore(
    pgsafe_db: TemporaryDatabase, target: TemporaryDatabase, tmp_path: Path, sig: int
) -> None:
    proc, _file = _restore_in_index_build(pgsafe_db, target, tmp_path)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    word = "terminated" if sig == signal.SIGTERM else "interrupted"
    assert f"restore {word}" in err and "as it was before" in err, err
    assert "Traceback" not in err
    target.server.execute(f'ALTER DATABASE "{target.name}" RESET pgsafe_test.sleep')
    assert user_objects(target) == []


def test_kill_9_leaves_a_marker_that_restore_and_status_report(
    pgsafe_db: TemporaryDatabase, target: TemporaryDatabase, tmp_path: Path
) -> None:
    proc, file = _restore_in_index_build(pgsafe_db, target, tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    target.server.execute(f'ALTER DATABASE "{target.name}" RESET pgsafe_test.sleep')
    # Its index build still runs on the server (it notices the dead client only when it next
    # writes to it): restore and status report the partial restore all the same, and --force
    # ends those sessions before it clears what they hold.
    assert query(
        target,
        "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'pgsafe-restore'",
    ) == [("t",)]

    again = pgsafe("restore", str(file), "--db", target.dsn)
    assert again.returncode == 1, again.stderr
    assert "partial restore of" in again.stderr and str(file) in again.stderr
    assert "--force" in again.stderr and len(again.stderr.strip().splitlines()) == 1

    migs = write(tmp_path / "m", {"001_x.sql": "CREATE TABLE x (id bigint);\n"})
    status = pgsafe("status", str(migs), "--db", target.dsn, "--json")
    assert status.returncode == 1, status.stderr
    assert json.loads(status.stdout)["partial_restore"]["file"] == str(file)
    assert "partial restore" in status.stderr

    forced = pgsafe("restore", str(file), "--db", target.dsn, "--force")
    assert forced.returncode == 0, forced.stderr
    assert query(target, "SELECT count(*) FROM app.b") == [("200",)]
    assert query(target, "SELECT to_regnamespace('pgsafe_restore') IS NULL") == [("t",)]
    assert pgsafe("status", str(migs), "--db", target.dsn).returncode == 0
