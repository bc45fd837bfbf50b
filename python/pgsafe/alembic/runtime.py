"""pgsafe inside an Alembic env.py: one call, ``pgsafe.alembic.configure(context, connection)``,
that passes pgsafe's hooks through Alembic's own ``context.configure`` (transaction per
revision, timeouts at each step's start, the migration lock shared with `pgsafe apply`, a ledger
row per revision written before the step commits, invariant checks that abort the step)."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgsafe import _core
from pgsafe.config import applied_by, parse_duration, parse_timeout
from pgsafe.errors import ConfigError, MigrationError, MigrationLockTimeout
from pgsafe.quoting import quote_ident
from pgsafe.sources.alembic import RENDERING, revision_name

log = logging.getLogger("pgsafe")

# Settings that `alembic -x NAME=VALUE` may override.
X_SETTINGS = ("lock_timeout", "statement_timeout", "lock_wait")


class InvariantViolation(MigrationError):
    """A revision left the database in a state pgsafe does not accept (an invalid index, a
    constraint left NOT VALID); its step was aborted and rolled back."""


def _duration(name: str, value: object, where: str) -> str:
    """`value` read by pgsafe.config's one duration parser, as text PostgreSQL's SET reads
    ("2s", "1500ms"). The timeouts must be more than 0 (PostgreSQL's 0 disables them);
    lock_wait 0 means: fail at once when another run holds the migration lock."""
    at = f"{where} {name}={value}"
    if name == "lock_wait":
        ms = round(parse_duration(value, at, zero="no wait"))
    else:
        ms = parse_timeout(value, at)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1_000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _seconds(text: str) -> float:
    return parse_duration(text, "lock_wait", zero="no wait") / 1000


@dataclass
class _Run:
    """State of one env.py run."""

    lock_timeout: str
    statement_timeout: str
    ledger_schema: str
    ledger: bool
    check_invariants: bool
    allow_not_valid: set[str]
    allow_invalid_indexes: set[str]
    baseline_invalid: set[str] = field(default_factory=set)
    baseline_not_valid: set[str] = field(default_factory=set)
    step_started: float = field(default_factory=time.monotonic)


# Names of constraints an op helper left NOT VALID on purpose (validate=False), per migration
# context: the invariant check accepts them.
_intended_not_valid: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def allow_not_valid(migration_context: Any, name: str) -> None:
    """Tell the invariant check that constraint `name` is left NOT VALID on purpose."""
    _intended_not_valid.setdefault(migration_context, set()).add(name)


def configure(
    context: Any,
    connection: Any = None,
    *,
    lock_timeout: str = "5s",
    statement_timeout: str = "5min",
    lock_wait: str = "5min",
    ledger_schema: str = "pgsafe",
    ledger: bool = True,
    check_invariants: bool = True,
    allow_not_valid: Iterable[str] = (),
    allow_invalid_indexes: Iterable[str] = (),
    preflight: bool | Callable[[str], Any] = False,
    backup: bool | Callable[[str], Any] = False,
    on_version_apply: Callable[..., None] | Sequence[Callable[..., None]] = (),
    **options: Any,
) -> None:
    """Configure Alembic's migration context with pgsafe's safety hooks; call it in env.py
    instead of ``context.configure(...)`` (every other keyword goes through to it).

    Online, `connection` is the SQLAlchemy Connection (None: ``config.attributes['connection']``);
    offline (``alembic upgrade --sql``) it only emits the SET statements. ``alembic -x
    lock_timeout=2s -x statement_timeout=1min`` overrides the timeouts for one run."""
    x = context.get_x_argument(as_dictionary=True)
    settings = {"lock_timeout": lock_timeout, "statement_timeout": statement_timeout}
    settings["lock_wait"] = lock_wait
    for name in X_SETTINGS:
        if name in x:
            settings[name] = x[name]
    for name, value in settings.items():
        settings[name] = _duration(name, value, "-x" if name in x else "pgsafe.alembic.configure")
    callbacks = [on_version_apply] if callable(on_version_apply) else list(on_version_apply)
    options.setdefault("transaction_per_migration", True)

    if context.is_offline_mode():
        if connection is None and "url" not in options and "dialect_name" not in options:
            options["dialect_name"] = "postgresql"
        options.setdefault("literal_binds", True)
        context.configure(connection=connection, on_version_apply=callbacks, **options)
        if context.config.attributes.get(RENDERING):
            return  # pgsafe renders the project: its runner sets the timeouts itself
        impl = context.get_context().impl
        impl.static_output(f"SET lock_timeout = '{settings['lock_timeout']}';")
        impl.static_output(f"SET statement_timeout = '{settings['statement_timeout']}';")
        return

    if connection is None:
        connection = context.config.attributes.get("connection")
    if connection is None:
        raise ConfigError(
            "pgsafe.alembic.configure: no connection (pass the SQLAlchemy Connection, or set "
            "config.attributes['connection'])"
        )
    run = _Run(
        settings["lock_timeout"],
        settings["statement_timeout"],
        ledger_schema,
        ledger,
        check_invariants,
        set(allow_not_valid),
        set(allow_invalid_indexes),
    )
    dbapi = connection.connection.dbapi_connection
    own = not connection.in_transaction()
    _take_lock(connection, dbapi, ledger_schema, _seconds(settings["lock_wait"]), own)
    _before_run(connection, preflight, backup)  # before pgsafe writes anything itself
    if ledger:
        _raw(dbapi, _ledger_ddl(ledger_schema), commit=own)
    if check_invariants:
        run.baseline_invalid = {r[0] for r in _raw(dbapi, _INVALID_INDEXES, commit=own)}
        run.baseline_not_valid = {r[0] for r in _raw(dbapi, _NOT_VALID, commit=own)}
    _listen_begin(connection, run, context)
    if connection.in_transaction():  # the caller's own transaction: one for the whole run
        _set_local(connection.connection.dbapi_connection, run)

    def after_step(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        _after_step(run, ctx, step)

    context.configure(connection=connection, on_version_apply=[*callbacks, after_step], **options)


# -- the lock ---------------------------------------------------------------------------------


def _raw(
    dbapi: Any, sql: str, params: Sequence[Any] = (), commit: bool = True
) -> list[tuple[Any, ...]]:
    """Run on the DBAPI connection and commit: SQLAlchemy's Connection does not see it, so
    Alembic still starts a transaction per revision (it would not inside ours). No commit when
    the caller's connection is already in a transaction of its own."""
    cur = dbapi.cursor()
    try:
        cur.execute(sql, tuple(params) if params else None)
        rows = cur.fetchall() if cur.description is not None else []
    except Exception:
        if commit:
            dbapi.rollback()
        raise
    finally:
        cur.close()
    if commit:
        dbapi.commit()
    return list(rows)


def _take_lock(
    connection: Any, dbapi: Any, ledger_schema: str, wait_s: float, commit: bool
) -> None:
    """The session-level advisory lock `pgsafe apply` takes (same key): the two tools exclude
    each other. Released when the connection goes back to its pool or is closed."""
    from sqlalchemy import event

    key = _core.migration_lock_key(ledger_schema)
    deadline = time.monotonic() + wait_s
    waited = False
    while not _raw(dbapi, "SELECT pg_try_advisory_lock(%s)", (key,), commit)[0][0]:
        if time.monotonic() >= deadline:
            holder = _raw(
                dbapi,
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND objsubid = 1 AND classid::bigint = ((%s::bigint >> 32) & 4294967295)"
                " AND objid::bigint = (%s::bigint & 4294967295) LIMIT 1",
                (key, key),
                commit,
            )
            raise MigrationLockTimeout(
                timeout_s=wait_s, holder_pid=holder[0][0] if holder else None
            )
        if not waited:
            log.warning("waiting for the migration lock (another migration run holds it)")
            waited = True
        time.sleep(0.2)

    held = [True]

    def release(dbapi_connection: Any, record: Any) -> None:
        # SQLAlchemy forbids removing a listener while it runs: it stays, idle, once released.
        if dbapi_connection is not dbapi or not held[0]:
            return
        held[0] = False
        try:
            _raw(dbapi, "SELECT pg_advisory_unlock(%s)", (key,))
        except Exception as exc:  # the session is gone, and the lock with it
            log.debug("releasing the migration lock: %s", exc)

    event.listen(connection.engine, "checkin", release)


def release_lock(connection: Any, ledger_schema: str = "pgsafe") -> None:
    """Release the migration lock now, for a connection the caller keeps open afterwards
    (the ``config.attributes['connection']`` pattern)."""
    _raw(
        connection.connection.dbapi_connection,
        "SELECT pg_advisory_unlock(%s)",
        (_core.migration_lock_key(ledger_schema),),
    )


# -- per step ---------------------------------------------------------------------------------


def _set_local(dbapi: Any, run: _Run) -> None:
    cur = dbapi.cursor()
    try:
        cur.execute(
            # set_config(..., true) is SET LOCAL with bind parameters.
            "SELECT set_config('lock_timeout', %s, true),"
            " set_config('statement_timeout', %s, true)",
            (run.lock_timeout, run.statement_timeout),
        )
    finally:
        cur.close()


def _listen_begin(connection: Any, run: _Run, context: Any) -> None:
    """SET LOCAL the timeouts as each revision's transaction begins (Alembic has no hook at a
    step's start; SQLAlchemy's begin event is the documented one). On the DBAPI connection,
    whose implicit BEGIN then opens the very transaction the revision runs in."""
    import alembic.context
    from sqlalchemy import event

    # env.py passes the alembic.context module, a proxy of this run's EnvironmentContext.
    env = getattr(context, "_proxy", None) or context

    def on_begin(conn: Any) -> None:
        if getattr(alembic.context, "_proxy", None) is not env:
            return  # the run is over: a caller's own connection gets its transactions back
        run.step_started = time.monotonic()
        _set_local(conn.connection.dbapi_connection, run)

    event.listen(connection, "begin", on_begin)


def _after_step(run: _Run, ctx: Any, step: Any) -> None:
    """Alembic's on_version_apply: inside the step's transaction, after its last statement."""
    if getattr(step, "is_stamp", False):
        return
    dbapi = ctx.connection.connection.dbapi_connection
    revision = step.up_revision_id
    if run.check_invariants:
        _check_invariants(run, ctx, dbapi, revision)
    if run.ledger:
        script = step.up_revision
        path = Path(script.path)
        _record(
            dbapi,
            run.ledger_schema,
            revision,
            revision_name(script),
            _core.sha256_file(str(path)),
            "applied" if step.is_upgrade else "rolled_back",
            time.monotonic() - run.step_started,
        )
    run.step_started = time.monotonic()


_INVALID_INDEXES = (
    "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i"
    " JOIN pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid"
)
_NOT_VALID = (
    "SELECT format('%I.%I', n.nspname, con.conname) FROM pg_constraint con"
    " JOIN pg_namespace n ON n.oid = con.connamespace WHERE NOT con.convalidated"
)


def _allowed(name: str, allowed: set[str]) -> bool:
    return name in allowed or name.split(".", 1)[-1] in allowed


def _check_invariants(run: _Run, ctx: Any, dbapi: Any, revision: str) -> None:
    problems = []
    invalid = {r[0] for r in _raw(dbapi, _INVALID_INDEXES, commit=False)}
    not_valid = {r[0] for r in _raw(dbapi, _NOT_VALID, commit=False)}
    for name in sorted(invalid - run.baseline_invalid):
        if not _allowed(name, run.allow_invalid_indexes):
            problems.append(
                f"index {name} is INVALID (a failed CREATE INDEX CONCURRENTLY leaves one): "
                "drop it and build it again"
            )
    intended = _intended_not_valid.get(ctx, set()) | run.allow_not_valid
    for name in sorted(not_valid - run.baseline_not_valid):
        if not _allowed(name, intended):
            problems.append(
                f"constraint {name} is left NOT VALID: VALIDATE CONSTRAINT it in the revision, "
                "or pass allow_not_valid=[...] to pgsafe.alembic.configure"
            )
    if problems:
        raise InvariantViolation(
            f"revision {revision}: " + "; ".join(problems) + "; the step was rolled back"
        )


# -- the ledger -------------------------------------------------------------------------------


def _ledger_ddl(schema: str) -> str:
    # The same tables as the C++ Ledger::ensure (cpp/src/executor.cpp): `pgsafe status` on the
    # project reads what this wrote, and `pgsafe apply` continues where Alembic stopped.
    s = quote_ident(schema)
    return (
        f"CREATE SCHEMA IF NOT EXISTS {s};"
        f"CREATE TABLE IF NOT EXISTS {s}.migrations ("
        " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
        " status text NOT NULL CHECK (status IN ('applied', 'dirty', 'rolled_back')),"
        " applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
        " duration_s double precision NOT NULL DEFAULT 0, applied_by text NOT NULL,"
        " pgsafe_version text NOT NULL, retries integer NOT NULL DEFAULT 0, dirty_reason text);"
        f"CREATE TABLE IF NOT EXISTS {s}.history ("
        " id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(),"
        " version text NOT NULL, action text NOT NULL, status text NOT NULL, checksum text,"
        " by text NOT NULL, detail text);"
    )


def _record(
    dbapi: Any,
    schema: str,
    revision: str,
    name: str,
    checksum: str,
    status: str,
    duration_s: float,
) -> None:
    """The ledger row and its history entry, in the step's transaction (not committed here)."""
    s = quote_ident(schema)
    cur = dbapi.cursor()
    try:
        cur.execute(
            f"INSERT INTO {s}.migrations AS m (version, name, checksum, status, applied_at,"
            " duration_s, applied_by, pgsafe_version, retries, dirty_reason)"
            " VALUES (%s, %s, %s, %s, clock_timestamp(), %s, %s, %s, 0, NULL)"
            " ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name,"
            " checksum = EXCLUDED.checksum, status = EXCLUDED.status,"
            " applied_at = EXCLUDED.applied_at, duration_s = EXCLUDED.duration_s,"
            " applied_by = EXCLUDED.applied_by, pgsafe_version = EXCLUDED.pgsafe_version,"
            " retries = 0, dirty_reason = NULL",
            (revision, name, checksum, status, duration_s, applied_by(), _version()),
        )
        cur.execute(
            f"INSERT INTO {s}.history (version, action, status, checksum, by, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                revision,
                "apply" if status == "applied" else "rollback",
                status,
                checksum,
                applied_by(),
                "alembic",
            ),
        )
    finally:
        cur.close()


def _version() -> str:
    return f"{_core.__version__} (alembic)"


# -- before the run ---------------------------------------------------------------------------


def _dsn(connection: Any) -> str:
    """A libpq URL of the connection's database, for pgsafe's own tools."""
    url = connection.engine.url.set(drivername="postgresql")
    return str(url.render_as_string(hide_password=False))


def _before_run(
    connection: Any,
    preflight: bool | Callable[[str], Any],
    backup: bool | Callable[[str], Any],
) -> None:
    """Integration points for pgsafe.lifecycle.preflight and pgsafe.backup.core: True uses
    pgsafe's own, a
    callable gets the database URL. A preflight report whose ``failed`` is true stops the run."""
    if preflight:
        if callable(preflight):
            report = preflight(_dsn(connection))
        else:
            try:
                from pgsafe.lifecycle import preflight as _pre
            except ImportError:
                raise ConfigError(
                    "preflight=True needs pgsafe.lifecycle.preflight, which this pgsafe "
                    "does not have"
                ) from None
            report = _pre.preflight(_dsn(connection))
        if getattr(report, "failed", False):
            from pgsafe.errors import UnsafeError

            raise UnsafeError(f"preflight failed: {report}")
    if backup:
        if callable(backup):
            backup(_dsn(connection))
        else:
            from pgsafe.backup.core import backup as _backup

            _backup(_dsn(connection))
