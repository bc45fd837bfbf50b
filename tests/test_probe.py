"""The live probe (`pgsafe.lifecycle.probe`, `pgsafe locks`) against a real server: blocker and
blocked
sessions, long and idle transactions, lock queues, vacuums; the probe itself never waits."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from helpers import pgsafe, query, spawn, wait_for, write
from pgsafe import _core
from pgsafe import errors as e
from pgsafe.cli.locks import pending_relations
from pgsafe.lifecycle.probe import ProbeBlocked, ProbeReport, VacuumRun, probe
from pgsafe.server import TemporaryDatabase


@pytest.fixture
def table(pgsafe_db: TemporaryDatabase) -> TemporaryDatabase:
    query(pgsafe_db, "CREATE TABLE t (id int PRIMARY KEY, v int)")
    query(pgsafe_db, "INSERT INTO t SELECT g, g FROM generate_series(1, 100) g")
    return pgsafe_db


class Waiter:
    """A session running one statement on a thread (the core releases the GIL), e.g. one that
    waits for a lock; its lock_timeout bounds the wait if a test fails half-way."""

    def __init__(self, db: TemporaryDatabase, sql: str) -> None:
        self.conn = db.connect(application_name="pgsafe-test-blocked")
        self.conn.execute("SET lock_timeout = '60s'")
        self.pid = self.conn.backend_pid
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(sql,), daemon=True)

    def _run(self, sql: str) -> None:
        try:
            self.conn.execute(sql)
        except BaseException as exc:  # reported by the test if it matters
            self.error = exc

    def start(self, db: TemporaryDatabase) -> None:
        self.thread.start()
        wait_for(
            lambda: query(
                db,
                "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                [str(self.pid)],
            ),
            what=f"pid {self.pid} waiting for a lock",
        )

    def finish(self) -> None:
        self.thread.join(timeout=30)
        self.conn.close()


@contextlib.contextmanager
def blocked(
    db: TemporaryDatabase, holder_sql: str, waiter_sql: str
) -> Iterator[tuple[_core.Connection, Waiter]]:
    """A session holding a lock in an open transaction, and one waiting for it."""
    holder = db.connect(application_name="pgsafe-test-blocker")
    waiter = Waiter(db, waiter_sql)
    try:
        holder.execute("BEGIN")
        holder.execute(holder_sql)
        waiter.start(db)
        yield holder, waiter
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        waiter.finish()


@pytest.mark.parametrize(
    ("holder_sql", "waiter_sql", "wanted", "locktype", "held"),
    [
        (
            "ALTER TABLE t ADD COLUMN extra int",
            "SELECT count(*) FROM t",
            _core.LockMode.AccessShareLock,
            "relation",
            "AccessExclusiveLock",
        ),
        # A row lock: the waiter waits on the holder's transaction id; the table is still named.
        (
            "UPDATE t SET v = 0 WHERE id = 1",
            "UPDATE t SET v = 2 WHERE id = 1",
            _core.LockMode.ShareLock,
            "transactionid",
            "ExclusiveLock",
        ),
    ],
)
def test_blocker_and_blocked_are_reported(
    table: TemporaryDatabase,
    holder_sql: str,
    waiter_sql: str,
    wanted: _core.LockMode,
    locktype: str,
    held: str,
) -> None:
    with blocked(table, holder_sql, waiter_sql) as (holder, waiter):
        report = probe(table.dsn, relations=["t"])
        edges = [x for x in report.blocking if x.blocked_pid == waiter.pid]
        assert len(edges) == 1, report.blocking
        edge = edges[0]
        assert edge.blocking_pid == holder.backend_pid
        assert edge.blocked_query == waiter_sql
        assert edge.blocking_query == holder_sql
        assert edge.blocking_state == "idle in transaction"
        assert edge.blocked_mode == wanted
        assert edge.locktype == locktype
        assert edge.relation == "t"
        assert edge.blocking_granted
        assert held in edge.blocking_modes.split(", ")
        assert edge.blocked_wait_seconds > 0
        assert edge.blocking_xact_seconds >= edge.blocked_wait_seconds

        fails = [p for p in report.problems() if p.kind == "blocking"]
        assert [p.pid for p in fails] == [waiter.pid]
        assert fails[0].severity == "fail"
        assert f"pid {holder.backend_pid}" in fails[0].evidence
        assert holder_sql in fails[0].evidence
        assert report.failed

        [queue] = report.lock_queues
        assert queue.relation == "t"
        assert holder.backend_pid in {h.pid for h in queue.holders}
        if locktype == "relation":
            assert [(w.pid, w.mode) for w in queue.waiters] == [(waiter.pid, wanted)]
            assert queue.holders[0].mode == _core.LockMode.AccessExclusiveLock  # strongest first
            assert any(p.kind == "lock-queue" and p.relation == "t" for p in report.problems())
        else:  # row locks do not queue on the table lock
            assert queue.waiters == []
        assert report.probe_pid not in {h.pid for h in queue.holders}
        assert report.replication == []  # a lone server has no replicas
    assert waiter.error is None


def test_lock_modes_are_named_as_pg_locks_names_them(table: TemporaryDatabase) -> None:
    """Each table lock mode, taken with LOCK TABLE, comes back as the LockMode of that name and
    strength; the conflict matrix crosses the boundary with it."""
    sql_modes = ["ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE"]
    sql_modes += ["SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"]
    holder = table.connect(application_name="pgsafe-test-locker")
    try:
        for rank, sql_mode in enumerate(sql_modes, start=1):
            holder.execute(f"BEGIN; LOCK TABLE t IN {sql_mode} MODE")
            [queue] = probe(table.dsn, relations=["t"], long_tx_seconds=3600).lock_queues
            holder.execute("ROLLBACK")
            [held] = [h.mode for h in queue.holders if h.pid == holder.backend_pid]
            assert held.name == sql_mode.title().replace(" ", "") + "Lock"
            assert _core.lock_mode_rank(held) == rank
    finally:
        holder.close()
    mode = _core.LockMode
    assert _core.lock_conflicts(mode.AccessExclusiveLock, mode.AccessShareLock)
    assert not _core.lock_conflicts(mode.RowExclusiveLock, mode.RowExclusiveLock)
    assert not _core.lock_conflicts(mode.SIReadLock, mode.AccessExclusiveLock)
    assert _core.lock_mode_rank(mode.SIReadLock) == 0


def test_predicate_locks_are_reported(table: TemporaryDatabase) -> None:
    """A SERIALIZABLE reader holds SIReadLock beside AccessShareLock (pg_locks shows both); it
    ranks below every table lock mode and the JSON names it as pg_locks does."""
    reader = table.connect(application_name="pgsafe-test-serializable")
    try:
        reader.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        reader.execute("SELECT sum(v) FROM t")  # a sequential scan: a relation predicate lock
        report = probe(table.dsn, relations=["t"], long_tx_seconds=3600)
        [queue] = report.lock_queues
        mine = [h.mode for h in queue.holders if h.pid == reader.backend_pid]
        assert mine == [_core.LockMode.AccessShareLock, _core.LockMode.SIReadLock]
        doc = report.to_dict()
        assert [h["mode"] for h in doc["lock_queues"][0]["holders"]] == [
            "AccessShareLock",
            "SIReadLock",
        ]
        assert json.loads(json.dumps(doc)) == doc
    finally:
        reader.execute("ROLLBACK")
        reader.close()


def test_long_and_idle_transactions(table: TemporaryDatabase) -> None:
    old = table.connect(application_name="pgsafe-test-old")
    old_pid = old.backend_pid
    try:
        old.execute("BEGIN")
        old.execute("SELECT v FROM t WHERE id = 1")
        wait_for(
            lambda: query(
                table,
                "SELECT 1 FROM pg_stat_activity WHERE pid = $1"
                " AND clock_timestamp() - xact_start > interval '1.1 seconds'",
                [str(old.backend_pid)],
            ),
            what="a transaction older than 1s",
        )
        young = table.connect(application_name="pgsafe-test-young")
        try:
            young_pid = young.backend_pid
            young.execute("BEGIN")
            young.execute("SELECT 1")
            report = probe(table.dsn, long_tx_seconds=1.0)
            lenient = probe(table.dsn, long_tx_seconds=60.0)
        finally:
            young.close()
    finally:
        old.close()

    [long_tx] = report.long_transactions
    assert long_tx.pid == old_pid
    assert long_tx.xact_seconds > 1.0
    assert long_tx.state == "idle in transaction"
    assert long_tx.query == "SELECT v FROM t WHERE id = 1"
    assert long_tx.application_name == "pgsafe-test-old"
    idle = {s.pid: s for s in report.idle_in_transaction}
    assert set(idle) == {old_pid, young_pid}
    assert idle[old_pid].state_seconds > 1.0
    assert idle[young_pid].state_seconds < idle[old_pid].state_seconds
    [fail] = [p for p in report.problems() if p.severity == "fail"]
    assert fail.kind == "long-transaction" and fail.pid == old_pid
    assert report.failed

    # Above a 60 s threshold nothing is long: both are only idle in transaction (warnings).
    assert lenient.long_transactions == []
    assert {s.pid for s in lenient.idle_in_transaction} == {old_pid, young_pid}
    assert {(p.severity, p.kind) for p in lenient.problems()} == {("warn", "idle-in-transaction")}
    assert not lenient.failed


def test_probe_does_not_wait_for_locks_on_probed_tables(table: TemporaryDatabase) -> None:
    query(table, "CREATE SCHEMA app; CREATE TABLE app.orders (id int PRIMARY KEY)")
    names = ["t", "public.t", "t_pkey", "app.orders", "orders", "nope", "x.y.z.w"]
    holder = table.connect(application_name="pgsafe-test-blocker")
    waiter = Waiter(table, "ALTER TABLE t ADD COLUMN z int")
    try:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE t, app.orders IN ACCESS EXCLUSIVE MODE")
        holder.execute("ALTER INDEX t_pkey SET (fillfactor = 90)")
        waiter.start(table)
        # Every name resolves without a lock; waiting at all would end in lock_timeout (1 s)
        # and raise, so a report means the probe never waited on these tables.
        report = probe(table.dsn, relations=names, long_tx_seconds=3600)
        assert report.relations == ["t", "t_pkey", "app.orders"]
        assert report.unknown_relations == ["orders", "nope", "x.y.z.w"]
        queues = {q.relation: q for q in report.lock_queues}
        assert set(queues) == {"t", "t_pkey", "app.orders"}
        assert [h.mode for h in queues["t"].holders] == [_core.LockMode.AccessExclusiveLock]
        assert [(w.pid, w.mode) for w in queues["t"].waiters] == [
            (waiter.pid, _core.LockMode.AccessExclusiveLock)
        ]
        pids = {e.pid for q in report.lock_queues for e in (*q.holders, *q.waiters)}
        assert report.probe_pid not in pids
        assert holder.backend_pid in pids
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        waiter.finish()
    assert waiter.error is None
    # Nothing is left locked, and the probe's connection is gone.
    assert query(
        table, "SELECT count(*) FROM pg_locks WHERE pid = $1", [str(report.probe_pid)]
    ) == [("0",)]


def test_probe_gives_up_instead_of_waiting(pgsafe_db: TemporaryDatabase) -> None:
    """When a catalog the probe reads is locked, it fails after its own lock_timeout (1 s)
    with the server's lock error, rather than queueing (and queueing others behind it)."""
    conn = pgsafe_db.connect(application_name="pgsafe-test-probe")
    locker = pgsafe_db.connect(application_name="pgsafe-test-blocker")
    try:
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE pg_catalog.pg_database IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(e.LockNotAvailable):
            _core.probe(conn)
        assert conn.transaction_status == "idle"
        with pytest.raises(ProbeBlocked, match="lock_timeout 1s") as info:
            probe(conn)
        assert info.value.exit_code == 1
        locker.execute("ROLLBACK")
        assert conn.transaction_status == "idle"  # the probe's transaction was ended
        assert _core.probe(conn).probe_pid == conn.backend_pid
        # The caller's session settings are untouched (the probe uses SET LOCAL).
        assert conn.execute("SHOW lock_timeout").rows == [("0",)]
    finally:
        locker.close()
        conn.close()


def test_running_vacuum_on_probed_relation(table: TemporaryDatabase) -> None:
    # A cursor keeps a pin on the table's first page; VACUUM (FREEZE) must freeze its tuples,
    # so it waits for the pin while it shows in pg_stat_progress_vacuum.
    pinner = table.connect(application_name="pgsafe-test-pin")
    vacuum = table.connect(application_name="pgsafe-test-vacuum")
    vacuum_pid = vacuum.backend_pid
    thread = threading.Thread(target=vacuum.execute, args=("VACUUM (FREEZE) t",), daemon=True)
    try:
        pinner.execute("BEGIN")
        pinner.execute("DECLARE c CURSOR FOR SELECT * FROM t")
        pinner.execute("FETCH 1 FROM c")
        thread.start()
        wait_for(
            lambda: query(
                table,
                "SELECT 1 FROM pg_stat_progress_vacuum WHERE pid = $1",
                [str(vacuum.backend_pid)],
            ),
            what="VACUUM in progress",
        )
        report = probe(table.dsn, relations=["t"])
        other = probe(table.dsn, relations=["t_pkey"])
    finally:
        pinner.execute("ROLLBACK")
        thread.join(timeout=30)
        pinner.close()
        vacuum.close()
    [run] = report.autovacuum
    assert (run.pid, run.relation, run.autovacuum, run.wraparound) == (
        vacuum_pid,
        "t",
        False,
        False,
    )
    assert run.query == "VACUUM (FREEZE) t"
    # The pinning cursor's session is idle in its transaction: a warning of its own.
    assert [(p.severity, p.kind, p.relation) for p in report.problems()] == [
        ("warn", "idle-in-transaction", None),
        ("warn", "vacuum", "t"),
    ]
    assert other.autovacuum == []


def _report(**fields: object) -> ProbeReport:
    base: dict[str, object] = {
        "target": "db",
        "database": "db",
        "probed_at": "2026-01-01T00:00:00Z",
        "server_version": 150000,
        "probe_pid": 1,
        "long_tx_seconds": 30.0,
    }
    return ProbeReport(**{**base, **fields})  # type: ignore[arg-type]


def test_anti_wraparound_vacuum_severity() -> None:
    """An anti-wraparound vacuum never yields to a lock request: it fails a probed relation,
    and is a warning elsewhere; an ordinary autovacuum on a probed relation is a warning."""

    def vac(relation: str, wraparound: bool) -> VacuumRun:
        q = f"autovacuum: VACUUM public.{relation}" + (" (to prevent wraparound)" * wraparound)
        return VacuumRun(7, relation, "scanning heap", True, wraparound, 5.0, 10, 5, q)

    report = _report(
        relations=["t"],
        autovacuum=[vac("t", True), vac("u", True), vac("t", False), vac("v", False)],
    )
    assert [(p.severity, p.relation) for p in report.problems()] == [
        ("fail", "t"),
        ("warn", "u"),
        ("warn", "t"),
    ]


def test_pending_relations(pgsafe_db: TemporaryDatabase, tmp_path: Path) -> None:
    query(pgsafe_db, "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE u (id int)")
    path = write(
        tmp_path / "migrations",
        {
            "001_new.up.sql": "CREATE TABLE fresh (id int);\nALTER TABLE fresh ADD COLUMN x int;\n",
            "002_alter.up.sql": "ALTER TABLE t ADD COLUMN y int;\n"
            "CREATE INDEX CONCURRENTLY u_id ON public.u (id);\n",
        },
    )
    assert pending_relations(path, pgsafe_db.dsn, "db") == ["t", "public.u"]
    assert (
        pgsafe("apply", str(path), "--db", pgsafe_db.url, "--to", "001", "--apply").returncode == 0
    )
    assert pending_relations(path, pgsafe_db.dsn, "db") == ["t", "public.u"]
    assert pgsafe("apply", str(path), "--db", pgsafe_db.url, "--apply").returncode == 0
    assert pending_relations(path, pgsafe_db.dsn, "db") == []


def test_cli_text_and_json(table: TemporaryDatabase, tmp_path: Path) -> None:
    write(tmp_path / "migrations", {"001_add.up.sql": "ALTER TABLE t ADD COLUMN y int;\n"})
    with blocked(table, "LOCK TABLE t IN SHARE MODE", "UPDATE t SET v = 1") as (holder, waiter):
        # PATH defaults to ./migrations: its pending migration locks t.
        out = pgsafe("locks", "--db", table.url, "--format", "json", cwd=tmp_path)
        assert out.returncode == 1, out.stderr
        doc = json.loads(out.stdout)
        assert doc["relations"] == ["t"]
        assert doc["ok"] is False
        [edge] = [x for x in doc["blocking"] if x["blocked_pid"] == waiter.pid]
        assert edge["blocking_pid"] == holder.backend_pid
        assert edge["blocking_query"] == "LOCK TABLE t IN SHARE MODE"
        assert edge["blocked_mode"] == "RowExclusiveLock"
        kinds = {(p["severity"], p["kind"]) for p in doc["problems"]}
        assert kinds == {
            ("fail", "blocking"),
            ("fail", "lock-queue"),
            ("warn", "idle-in-transaction"),  # the holder, idle in its open transaction
        }
        [queue] = doc["lock_queues"]
        assert [h["pid"] for h in queue["holders"]] == [holder.backend_pid]
        assert [w["pid"] for w in queue["waiters"]] == [waiter.pid]

        text = pgsafe("locks", str(tmp_path / "migrations"), "--db", table.url)
        assert text.returncode == 1, text.stderr
        assert text.stdout.startswith("pgsafe locks\nUNSAFE: 2 problem(s), 1 warning(s)")
        assert "Relations probed: t" in text.stdout
        blocking = text.stdout.split("\nBlocking\n")[1].split("\n\n")[0]
        row = next(line for line in blocking.splitlines() if line.startswith(str(waiter.pid)))
        assert str(holder.backend_pid) in row
        assert "RowExclusiveLock" in row and "ShareLock" in row
        assert "UPDATE t SET v = 1" in row and "LOCK TABLE t IN SHARE MODE" in row
    assert waiter.error is None

    # Once the holder is gone: exit 0, and --tables names the relations directly.
    out = pgsafe("locks", "--db", table.url, "--tables", "t,nope", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["ok"], doc["relations"], doc["unknown_relations"]) == (True, ["t"], ["nope"])
    assert doc["problems"] == [] and doc["blocking"] == []


def test_cli_watch_refreshes_until_interrupted(table: TemporaryDatabase) -> None:
    proc = spawn("locks", "--db", table.url, "--format", "json", "--watch", "100ms")
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        second = json.loads(proc.stdout.readline())
        assert first["ok"] and second["ok"]
        assert second["probed_at"] > first["probed_at"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err


def test_cli_bad_input(pgsafe_server, password_user: str, tmp_path: Path) -> None:
    secret = "wr0ng-s3cret"
    url = (
        f"postgresql://{password_user}:{secret}@/postgres"
        f"?host={quote(pgsafe_server.host, safe='')}&port={pgsafe_server.port}"
    )
    out = pgsafe("locks", "--db", url, cwd=tmp_path)
    assert out.returncode == 5
    assert secret not in out.stdout + out.stderr
    [line] = out.stderr.splitlines()
    assert line.startswith("pgsafe: error: ") and "password authentication failed" in line

    missing = pgsafe("locks", str(tmp_path / "nowhere"), "--db", pgsafe_server.url())
    assert missing.returncode == 5
    assert "nowhere: migrations directory not found" in missing.stderr
    bad = pgsafe("locks", "--long-tx", "-1", "--db", pgsafe_server.url())
    assert bad.returncode == 5 and "--long-tx" in bad.stderr


def test_cli_embedded_default(tmp_path: Path) -> None:
    """--embedded (no --db, DATABASE_URL or PG*): the embedded throwaway server is probed, and
    the note saying so goes to stderr, so stdout stays one JSON document."""
    out = pgsafe("locks", "--embedded", "--format", "json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is True and doc["relations"] == [] and doc["problems"] == []
    assert doc["target"].startswith("embedded throwaway server")
    assert "throwaway local PostgreSQL" in out.stderr
