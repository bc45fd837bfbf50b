"""pgsafe._core.Connection against a real PostgreSQL: DSNs, results, server errors and their
exception classes, lock timeouts and deadlocks, the GIL, cancellation, lost servers,
unreachable targets, and passwords that must never show up in any text.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest

import pgsafe
from helpers import ctrl_c_after, ticking, wait_for
from pgsafe import _core
from pgsafe import errors as e

SECRET = "s3cr3t-PASSWORD"


def backend_state(observer: _core.Connection, pid: int) -> tuple[str | None, str | None]:
    rows = observer.execute(
        "SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = $1", [str(pid)]
    ).rows
    return rows[0] if rows else (None, None)


def is_waiting_on_lock(observer: _core.Connection, pid: int) -> bool:
    rows = observer.execute(
        "SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted", [str(pid)]
    ).rows
    return bool(rows)


class Runner(threading.Thread):
    """Runs one call in a thread and keeps its result or exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished_at: float | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:
            self.error = exc
        finally:
            self.finished_at = time.monotonic()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections (via the backlog) and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def assert_secret_absent(exc: BaseException, secret: str = SECRET) -> None:
    texts = [str(exc), repr(exc), *(str(a) for a in exc.args)]
    texts += [str(v) for v in vars(exc).values() if v is not None]
    for text in texts:
        assert secret not in text, text


# --- connecting ------------------------------------------------------------------------------


def test_connect_with_key_value_dsn(pgsafe_db) -> None:
    with _core.Connection(pgsafe_db.dsn) as conn:
        rows = conn.execute("SELECT current_database(), current_user, pg_backend_pid()").rows
        assert rows == [(pgsafe_db.name, "postgres", str(conn.backend_pid))]
        assert conn.dbname == pgsafe_db.name
        assert conn.user == "postgres"
        assert conn.host == pgsafe_db.server.host
        assert conn.port == str(pgsafe_db.server.port)
        assert conn.server_version >= 150000
        assert conn.transaction_status == "idle"
        assert not conn.closed
    assert conn.closed
    assert conn.backend_pid == 0


def test_connect_with_url(pgsafe_server, pgsafe_db) -> None:
    url = (
        f"postgresql://postgres@/{quote(pgsafe_db.name)}"
        f"?host={quote(pgsafe_server.host, safe='')}&port={pgsafe_server.port}"
    )
    with _core.Connection(url) as conn:
        assert conn.execute("SELECT current_database()").rows == [(pgsafe_db.name,)]
        assert conn.dsn == url


def test_application_name_default_and_dsn_override(pgsafe_db) -> None:
    with _core.Connection(pgsafe_db.dsn, application_name="pgsafe-test") as conn:
        assert conn.execute("SHOW application_name").rows == [("pgsafe-test",)]
    with _core.Connection(pgsafe_db.dsn + " application_name=mine", "pgsafe-test") as conn:
        assert conn.execute("SHOW application_name").rows == [("mine",)]


def test_dsn_from_pg_environment_variables(pgsafe_server, pgsafe_db, monkeypatch) -> None:
    monkeypatch.setenv("PGHOST", pgsafe_server.host)
    monkeypatch.setenv("PGPORT", str(pgsafe_server.port))
    monkeypatch.setenv("PGUSER", "postgres")
    monkeypatch.setenv("PGDATABASE", pgsafe_db.name)
    with _core.Connection("") as conn:
        assert conn.execute("SELECT current_database()").rows == [(pgsafe_db.name,)]


def test_connection_is_exported_from_the_package() -> None:
    assert pgsafe.Connection is _core.Connection


# --- results ---------------------------------------------------------------------------------


def test_execute_with_params_and_nulls(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn:
        r = conn.execute(
            "SELECT $1::int + 1 AS n, $2::text IS NULL AS is_null, $3::text AS t, NULL::int AS z",
            ["41", None, "é日本🐘 'quoted'; --"],
        )
        assert r.columns == ["n", "is_null", "t", "z"]
        assert r.rows == [("42", "t", "é日本🐘 'quoted'; --", None)]
        assert r.status == "SELECT 1"
        assert r.rowcount == 1


def test_rows_are_text(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn:
        r = conn.execute(
            "SELECT 1.50::numeric, true, false, '{1,2}'::int[], '{\"a\": 1}'::jsonb, "
            "'\\x00ff'::bytea, '2024-01-02'::date, ''::text"
        )
        assert r.rows == [("1.50", "t", "f", "{1,2}", '{"a": 1}', "\\x00ff", "2024-01-02", "")]


def test_rowcount_and_status(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn:
        r = conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        assert (r.status, r.rowcount, r.rows, r.columns) == ("CREATE TABLE", -1, [], [])
        r = conn.execute("INSERT INTO t SELECT g, NULL FROM generate_series(1, 5) g")
        assert (r.status, r.rowcount) == ("INSERT 0 5", 5)
        r = conn.execute("UPDATE t SET v = $1 WHERE id > $2", ["x", "2"])
        assert (r.status, r.rowcount) == ("UPDATE 3", 3)
        r = conn.execute("DELETE FROM t WHERE v IS NULL")
        assert (r.status, r.rowcount) == ("DELETE 2", 2)
        r = conn.execute("SELECT id, v FROM t ORDER BY id")
        assert r.rows == [("3", "x"), ("4", "x"), ("5", "x")]
        assert r.rowcount == 3
        r = conn.execute("SELECT * FROM t WHERE false")
        assert (r.rows, r.rowcount, r.columns) == ([], 0, ["id", "v"])


def test_several_commands_without_params_return_the_last_result(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn:
        r = conn.execute(
            "CREATE TABLE a (x int); INSERT INTO a VALUES (1), (2); SELECT count(*) FROM a"
        )
        assert r.rows == [("2",)]


def test_transaction_status_follows_the_session(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn:
        assert conn.transaction_status == "idle"
        conn.execute("BEGIN")
        assert conn.transaction_status == "in_transaction"
        with pytest.raises(e.DivisionByZero):
            conn.execute("SELECT 1/0")
        assert conn.transaction_status == "in_error"
        with pytest.raises(e.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.execute("ROLLBACK")
        assert conn.transaction_status == "idle"
        assert conn.execute("SELECT 1").rows == [("1",)]


def test_execute_on_a_closed_connection_raises(pgsafe_db) -> None:
    conn = pgsafe_db.connect()
    conn.close()
    assert conn.closed
    with pytest.raises(pgsafe.Error, match="closed"):
        conn.execute("SELECT 1")
    assert conn.cancel() is False


def test_nul_characters_are_refused_not_truncated(pgsafe_db) -> None:
    # libpq takes C strings: a NUL would silently cut the value or the SQL short.
    with pgsafe_db.connect() as conn:
        conn.execute("CREATE TABLE n (v text)")
        with pytest.raises(pgsafe.Error):
            conn.execute("INSERT INTO n VALUES ($1)", ["before\x00after"])
        with pytest.raises(pgsafe.Error):
            conn.execute("INSERT INTO n VALUES ('x')\x00; DROP TABLE n")
        assert conn.execute("SELECT count(*) FROM n").rows == [("0",)]


# --- server errors ---------------------------------------------------------------------------

E = TypeVar("E", bound=BaseException)


def server_error(
    conn: _core.Connection, kind: type[E], sql: str, params: list[str] | None = None
) -> E:
    """The error of class `kind` that executing `sql` raises (the test fails on any other)."""
    with pytest.raises(kind) as info:
        conn.execute(sql, params)
    return info.value


def test_unique_violation_fields_and_hierarchy(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn:
        conn.execute("CREATE TABLE items (id int CONSTRAINT items_pkey PRIMARY KEY)")
        conn.execute("INSERT INTO items VALUES (1)")
        err = server_error(conn, e.UniqueViolation, "INSERT INTO items VALUES ($1)", ["1"])
        assert type(err) is e.UniqueViolation
        assert isinstance(err, e.IntegrityConstraintViolation)
        assert isinstance(err, e.DatabaseError)
        assert isinstance(err, pgsafe.Error)
        assert isinstance(err, pgsafe.DatabaseError)
        assert err.sqlstate == "23505"
        assert err.message == 'duplicate key value violates unique constraint "items_pkey"'
        assert err.detail == "Key (id)=(1) already exists."
        assert err.severity == "ERROR"
        assert err.schema_name == "public"
        assert err.table_name == "items"
        assert err.constraint_name == "items_pkey"
        assert err.statement == "INSERT INTO items VALUES ($1)"
        assert err.connection_usable is True
        assert "SQLSTATE 23505" in str(err)
        assert "Key (id)=(1) already exists." in str(err)
        # The connection is still usable after a statement error.
        assert conn.transaction_status == "idle"
        assert conn.execute("SELECT count(*) FROM items").rows == [("1",)]


def test_undefined_table_with_position(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn:
        sql = "SELECT *\nFROM no_such_table"
        err = server_error(conn, e.UndefinedTable, sql)
        assert err.sqlstate == "42P01"
        assert err.message == 'relation "no_such_table" does not exist'
        assert err.position == sql.index("no_such_table") + 1
        assert isinstance(err, e.SyntaxErrorOrAccessRuleViolation)
        assert not isinstance(err, e.IntegrityConstraintViolation)


def test_position_counts_characters_and_hint_is_carried(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn:
        sql = "SELECT 'é日本' || lenght('x')"
        err = server_error(conn, e.UndefinedFunction, sql)
        assert err.position == sql.index("lenght") + 1  # characters, not bytes
        assert err.hint is not None and "explicit type casts" in err.hint
        assert "HINT:" in str(err)


def test_not_null_and_check_violation_fields(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn:
        conn.execute("CREATE TABLE c (a int NOT NULL, b int CONSTRAINT b_pos CHECK (b > 0))")
        null = server_error(conn, e.NotNullViolation, "INSERT INTO c VALUES (NULL, 1)")
        assert (null.table_name, null.column_name) == ("c", "a")
        check = server_error(conn, e.CheckViolation, "INSERT INTO c VALUES (1, -1)")
        assert check.constraint_name == "b_pos"


def test_raise_exception_with_detail_and_hint(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn:
        err = server_error(
            conn,
            e.RaiseException,
            "DO $$ BEGIN RAISE EXCEPTION 'custom failure' "
            "USING DETAIL = 'the detail', HINT = 'the hint'; END $$",
        )
        assert (err.message, err.detail, err.hint) == ("custom failure", "the detail", "the hint")
        assert err.context is not None and "PL/pgSQL" in err.context


def test_lock_not_available(pgsafe_db) -> None:
    with pgsafe_db.connect() as holder, pgsafe_db.connect() as waiter:
        holder.execute("CREATE TABLE locked (id int)")
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        waiter.execute("SET lock_timeout = '100ms'")
        started = time.monotonic()
        with pytest.raises(e.LockNotAvailable) as info:
            waiter.execute("SELECT * FROM locked")
        elapsed = time.monotonic() - started
        err = info.value
        assert err.sqlstate == "55P03"
        assert "lock timeout" in err.message
        assert isinstance(err, e.ObjectNotInPrerequisiteState)
        assert not isinstance(err, e.TransactionRollback)
        assert not isinstance(err, e.DeadlockDetected)
        assert err.connection_usable is True
        assert 0.09 <= elapsed < 5
        holder.execute("ROLLBACK")
        assert waiter.execute("SELECT count(*) FROM locked").rows == [("0",)]


def test_deadlock_detected(pgsafe_db) -> None:
    with (
        pgsafe_db.connect() as a,
        pgsafe_db.connect() as b,
        pgsafe_db.connect() as observer,
    ):
        a.execute("CREATE TABLE d (id int PRIMARY KEY, v int); INSERT INTO d VALUES (1, 0), (2, 0)")
        for conn in (a, b):
            conn.execute("SET deadlock_timeout = '100ms'")
            conn.execute("SET lock_timeout = '20s'")
            conn.execute("BEGIN")
        a.execute("UPDATE d SET v = v + 1 WHERE id = 1")
        b.execute("UPDATE d SET v = v + 1 WHERE id = 2")
        ta = Runner(lambda: a.execute("UPDATE d SET v = v + 1 WHERE id = 2"))
        ta.start()
        wait_for(lambda: is_waiting_on_lock(observer, a.backend_pid), what="a to wait on b")
        tb = Runner(lambda: b.execute("UPDATE d SET v = v + 1 WHERE id = 1"))
        tb.start()
        ta.join(15)
        tb.join(15)
        assert not ta.is_alive() and not tb.is_alive()
        errors = [r.error for r in (ta, tb) if r.error is not None]
        assert len(errors) == 1, errors  # exactly one victim; the other one proceeds
        err = errors[0]
        assert isinstance(err, e.DeadlockDetected)
        assert err.sqlstate == "40P01"
        assert isinstance(err, e.TransactionRollback)
        assert not isinstance(err, e.LockNotAvailable)
        assert err.detail is not None and "blocked by process" in err.detail
        for conn in (a, b):
            conn.execute("ROLLBACK")


# --- the GIL, cancellation, Ctrl-C -----------------------------------------------------------


def ticks_during(action: Callable[[], Any]) -> tuple[int, float, BaseException | None]:
    """How often a Python thread got to run while `action` ran in this thread."""
    with ticking(0.005, settle=0.05) as ticker:
        before = ticker.count
        started = time.monotonic()
        error = None
        try:
            action()
        except BaseException as exc:
            error = exc
        elapsed = time.monotonic() - started
        during = ticker.count - before
    return during, elapsed, error


def test_gil_is_released_during_a_query(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn:
        during, elapsed, error = ticks_during(lambda: conn.execute("SELECT pg_sleep(1)"))
        assert error is None
        assert elapsed >= 0.95
        # With the GIL held for the whole second, the spinning thread would not run at all.
        assert during >= 50, during


def test_gil_is_released_while_connecting() -> None:
    with silent_listener() as port:
        during, elapsed, error = ticks_during(
            lambda: _core.Connection(f"host=127.0.0.1 port={port}", "pgsafe", 1.0)
        )
    assert isinstance(error, e.DatabaseError)
    assert elapsed >= 0.9
    assert during >= 40, during


def test_cancel_from_another_thread(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn, pgsafe_db.connect() as observer:
        runner = Runner(lambda: conn.execute("SELECT pg_sleep(30)"))
        started = time.monotonic()
        runner.start()
        wait_for(
            lambda: backend_state(observer, conn.backend_pid)[0] == "active",
            what="pg_sleep to start",
        )
        assert conn.cancel() is True
        runner.join(10)
        assert not runner.is_alive()
        assert isinstance(runner.error, e.QueryCanceled), runner.error
        assert runner.error.sqlstate == "57014"
        assert "canceling statement due to user request" in runner.error.message
        assert runner.error.connection_usable is True
        assert runner.finished_at is not None and runner.finished_at - started < 10
        assert conn.execute("SELECT 1").rows == [("1",)]


def test_ctrl_c_cancels_the_statement_on_the_server(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn, pgsafe_db.connect() as observer:
        pid = conn.backend_pid
        started = time.monotonic()
        with ctrl_c_after(0.5), pytest.raises(KeyboardInterrupt):
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 5
        # The server stopped the statement, not just the client waiting for it.
        wait_for(lambda: backend_state(observer, pid)[0] == "idle", 5, "backend to go idle")
        assert conn.execute("SELECT 2").rows == [("2",)]


# --- a server that goes away -----------------------------------------------------------------


def test_terminated_backend_gives_a_connection_error(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn, pgsafe_db.connect() as admin:
        pid = conn.backend_pid
        assert admin.execute("SELECT pg_terminate_backend($1)", [str(pid)]).rows == [("t",)]
        wait_for(lambda: backend_state(admin, pid) == (None, None), what="backend to exit")
        with pytest.raises(e.DatabaseError) as info:
            conn.execute("SELECT 1")
        err = info.value
        assert isinstance(err, (e.ConnectionException, e.AdminShutdown)), err
        assert err.connection_usable is False
        assert "terminating connection due to administrator command" in str(err)
        assert "\n" not in str(err)
        # Later calls fail fast with a connection error too, never hang or crash.
        started = time.monotonic()
        with pytest.raises(e.ConnectionException) as again:
            conn.execute("SELECT 1")
        assert again.value.connection_usable is False
        assert time.monotonic() - started < 2


def test_backend_terminated_while_running(pgsafe_db) -> None:
    with pgsafe_db.connect() as conn, pgsafe_db.connect() as admin:
        pid = conn.backend_pid
        runner = Runner(lambda: conn.execute("SELECT pg_sleep(30)"))
        runner.start()
        wait_for(lambda: backend_state(admin, pid)[0] == "active", what="pg_sleep to start")
        admin.execute("SELECT pg_terminate_backend($1)", [str(pid)])
        runner.join(10)
        assert not runner.is_alive()
        assert isinstance(runner.error, e.DatabaseError), runner.error
        assert runner.error.connection_usable is False
        assert "terminating connection" in str(runner.error)


# --- targets that cannot be reached ----------------------------------------------------------


def test_nothing_listening_on_the_port() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(e.ConnectionException) as info:
        _core.Connection(f"host=127.0.0.1 port={port} dbname=x", "pgsafe", 5.0)
    assert time.monotonic() - started < 5
    err = info.value
    assert isinstance(err, e.SqlclientUnableToEstablishSqlconnection)
    assert err.connection_usable is False
    assert "127.0.0.1" in str(err)
    assert str(port) in str(err)
    assert err.exit_code == 2


def test_refused_connection_message_says_why() -> None:
    port = free_port()
    with pytest.raises(e.ConnectionException) as info:
        _core.Connection(f"host=127.0.0.1 port={port}", "pgsafe", 5.0)
    # The reason libpq gives ("Connection refused") must be in the one-line message itself.
    assert "Connection refused" in info.value.message, info.value.message


def test_socket_directory_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    started = time.monotonic()
    with pytest.raises(e.ConnectionException) as info:
        _core.Connection(f"host={missing} port=5999", "pgsafe", 5.0)
    assert time.monotonic() - started < 5
    assert str(missing) in str(info.value)
    assert "5999" in str(info.value)
    assert "No such file or directory" in info.value.message, info.value.message


def test_unknown_database_is_invalid_catalog_name(pgsafe_server) -> None:
    dsn = f"host={pgsafe_server.host} port={pgsafe_server.port} user=postgres dbname=no_such_db"
    with pytest.raises(e.InvalidCatalogName) as info:
        _core.Connection(dsn, "pgsafe", 5.0)
    assert info.value.sqlstate == "3D000"
    assert 'database "no_such_db" does not exist' in str(info.value)
    assert info.value.connection_usable is False


@pytest.mark.parametrize("role", ["ghost", "database_owner"])
def test_unknown_role_is_an_authorization_error(pgsafe_server, role: str) -> None:
    # The server reports 28000 (invalid_authorization_specification) for an unknown role.
    dsn = f"host={pgsafe_server.host} port={pgsafe_server.port} user={role} dbname=postgres"
    with pytest.raises(e.DatabaseError) as info:
        _core.Connection(dsn, "pgsafe", 5.0)
    assert f'role "{role}" does not exist' in str(info.value)
    assert type(info.value) is e.InvalidAuthorizationSpecification, repr(info.value)


def test_connect_timeout_is_enforced() -> None:
    with silent_listener() as port:
        started = time.monotonic()
        with pytest.raises(e.ConnectionException) as info:
            _core.Connection(f"host=127.0.0.1 port={port} sslmode=disable", "pgsafe", 1.0)
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 2.5, elapsed
    assert "127.0.0.1" in str(info.value)
    assert str(port) in str(info.value)
    assert info.value.connection_usable is False


def test_connect_timeout_message_says_it_timed_out() -> None:
    with silent_listener() as port, pytest.raises(e.ConnectionException) as info:
        _core.Connection(f"host=127.0.0.1 port={port}", "pgsafe", 0.5)
    assert "timed out" in str(info.value) or "timeout" in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "dsn",
    [
        "not a dsn",
        "host=localhost bogus_option=1",
        "postgresql://[bad",
        "host='unterminated password=" + SECRET,
        "postgresql://u:" + SECRET + "@localhost:notaport/db",
    ],
)
def test_malformed_dsn_is_a_config_error(dsn: str) -> None:
    started = time.monotonic()
    with pytest.raises(e.ConfigError) as info:
        _core.Connection(dsn, "pgsafe", 5.0)
    assert time.monotonic() - started < 1
    err = info.value
    assert not isinstance(err, e.DatabaseError)
    assert err.exit_code == 5
    assert "DSN" in str(err)
    assert_secret_absent(err)


# --- passwords -------------------------------------------------------------------------------


def test_password_is_masked_in_dsn_and_repr(pgsafe_server, pgsafe_db, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="pgsafe.core")
    url = (
        f"postgresql://postgres:{SECRET}@/{quote(pgsafe_db.name)}"
        f"?host={quote(pgsafe_server.host, safe='')}&port={pgsafe_server.port}"
    )
    kv = f"{pgsafe_db.dsn} password={SECRET}"
    for dsn in (url, kv):
        with _core.Connection(dsn) as conn:  # trust auth: the password is not even checked
            assert conn.execute("SELECT 1").rows == [("1",)]
            assert SECRET not in conn.dsn
            assert "****" in conn.dsn
            assert SECRET not in repr(conn)
            with pytest.raises(e.UndefinedTable) as info:
                conn.execute("SELECT * FROM nope")
            assert_secret_absent(info.value)
    assert caplog.records, "connecting logs at debug level"
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_mask_dsn() -> None:
    # pgsafe.errors.mask_password is the one masker; the core shows DSNs through it.
    assert e.mask_password(f"postgresql://u:{SECRET}@h:5432/db") == "postgresql://u:****@h:5432/db"
    assert e.mask_password(f"postgresql://u:p@ss{SECRET}@h/db") == "postgresql://u:****@h/db"
    assert e.mask_password(f"host=h password={SECRET} user=u") == "host=h password=**** user=u"
    assert (
        e.mask_password(f"host=h password='a b {SECRET}' user=u") == "host=h password=**** user=u"
    )
    assert e.mask_password(f"postgresql://u@h/db?password={SECRET}&x=1") == (
        "postgresql://u@h/db?password=****&x=1"
    )
    assert e.mask_password("postgresql://u@h:5432/db") == "postgresql://u@h:5432/db"
    assert e.mask_password("host=h user=u") == "host=h user=u"


def test_mask_dsn_masks_sslpassword(pgsafe_db) -> None:
    # libpq's sslpassword (the client key's passphrase) is as secret as password.
    assert SECRET not in e.mask_password(f"host=h sslpassword={SECRET}")
    assert SECRET not in e.mask_password(f"postgresql://u@h/db?sslpassword={SECRET}")
    with _core.Connection(f"{pgsafe_db.dsn} sslpassword={SECRET}") as conn:
        assert SECRET not in conn.dsn
        assert SECRET not in repr(conn)


def test_wrong_password_is_never_shown(pgsafe_server, password_user, monkeypatch, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="pgsafe.core")
    base = (
        f"host={pgsafe_server.host} port={pgsafe_server.port} dbname=postgres user={password_user}"
    )
    # The right password works, so the failures below are about the password alone.
    with _core.Connection(base + " password=right-pass") as conn:
        assert conn.execute("SELECT current_user").rows == [(password_user,)]

    url = (
        f"postgresql://{password_user}:{SECRET}@/postgres"
        f"?host={quote(pgsafe_server.host, safe='')}&port={pgsafe_server.port}"
    )
    for dsn in (base + f" password={SECRET}", base + f" password='{SECRET}'", url):
        with pytest.raises(e.InvalidPassword) as info:
            _core.Connection(dsn, "pgsafe", 5.0)
        err = info.value
        assert err.sqlstate == "28P01"
        assert isinstance(err, e.InvalidAuthorizationSpecification)
        assert err.connection_usable is False
        assert "password authentication failed" in str(err)
        assert password_user in str(err)
        assert_secret_absent(err)

    monkeypatch.setenv("PGPASSWORD", SECRET)
    with pytest.raises(e.InvalidPassword) as env_info:
        _core.Connection(base, "pgsafe", 5.0)
    assert_secret_absent(env_info.value)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_missing_password(pgsafe_server, password_user, monkeypatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
    base = (
        f"host={pgsafe_server.host} port={pgsafe_server.port} dbname=postgres user={password_user}"
    )
    with pytest.raises(e.InvalidPassword) as info:
        _core.Connection(base, "pgsafe", 5.0)
    assert "no password supplied" in str(info.value)
