"""Safe recipes as Alembic ``op`` helpers (registered with ``Operations.register_operation``):
NOT NULL columns by add-nullable → batched backfill → CHECK NOT VALID → VALIDATE → SET NOT NULL;
concurrent index builds and drops that clean up invalid leftovers; foreign keys added NOT VALID
then validated; batched, resumable backfills. Each has a reverse for downgrade(); offline
(``--sql``) each emits the equivalent SQL."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

from alembic.operations import MigrateOperation, Operations
from alembic.operations.ops import DropColumnOp
from sqlalchemy import Column, text

from pgsafe.progress import Progress

# Where resumable backfills keep their cursor (the ledger schema).
CURSOR_TABLE = "pgsafe.backfill_cursors"


def _q(operations: Any, ident: str) -> str:
    return str(operations.impl.dialect.identifier_preparer.quote(ident))


def _table(operations: Any, name: str, schema: str | None) -> str:
    t = _q(operations, name)
    return f"{_q(operations, schema)}.{t}" if schema else t


def _offline(operations: Any) -> bool:
    return bool(operations.get_context().as_sql)


def _scalar(operations: Any, sql: str, params: Mapping[str, Any] | None = None) -> Any:
    return operations.get_bind().execute(text(sql), dict(params or {})).scalar()


def _invalid_index(operations: Any, name: str, schema: str | None) -> bool:
    """Whether index `name` exists and is INVALID (a failed concurrent build left it)."""
    return bool(
        _scalar(
            operations,
            "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = :name"
            " AND n.nspname = coalesce(:schema, current_schema())",
            {"name": name, "schema": schema},
        )
    )


# -- backfill -----------------------------------------------------------------------------------


@Operations.register_operation("backfill")
class BackfillOp(MigrateOperation):
    """``op.backfill(table, {"col": "sql expression"}, where="col IS NULL")``: UPDATE in
    batches of `batch_size` rows in key order, each batch committed on its own (so locks are
    short and a VACUUM can keep up), `sleep` seconds between batches, progress shown; the cursor
    is kept in pgsafe.backfill_cursors so a re-run resumes after the last committed batch."""

    def __init__(
        self,
        table_name: str,
        set_: Mapping[str, str],
        *,
        where: str | None = None,
        key: str = "id",
        batch_size: int = 10_000,
        sleep: float = 0.0,
        schema: str | None = None,
        name: str | None = None,
        undo: Mapping[str, str] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"backfill of {table_name}: batch_size must be 1 or more")
        self.table_name = table_name
        self.set_ = dict(set_)
        self.where = where
        self.key = key
        self.batch_size = batch_size
        self.sleep = sleep
        self.schema = schema
        self.name = name or f"{schema + '.' if schema else ''}{table_name}:{','.join(set_)}"
        self.undo = dict(undo) if undo is not None else None

    @classmethod
    def backfill(
        cls, operations: Operations, table_name: str, set_: Mapping[str, str], **kw: Any
    ) -> int:
        """Batched UPDATE; returns the number of rows updated (0 offline)."""
        return int(operations.invoke(cls(table_name, set_, **kw)) or 0)

    def reverse(self) -> BackfillOp:
        if self.undo is None:
            raise ValueError(f"backfill {self.name}: pass undo={{...}} to make it reversible")
        return BackfillOp(
            self.table_name,
            self.undo,
            where=None,
            key=self.key,
            batch_size=self.batch_size,
            sleep=self.sleep,
            schema=self.schema,
            name=self.name + ":undo",
            undo=self.set_,
        )


@Operations.implementation_for(BackfillOp)
def _backfill(operations: Operations, op: BackfillOp) -> int:
    with operations.get_context().autocommit_block():
        return _backfill_batches(operations, op)


def _backfill_batches(operations: Operations, op: BackfillOp) -> int:
    """The batches, inside an autocommit block (each batch commits on its own)."""
    table = _table(operations, op.table_name, op.schema)
    assignments = ", ".join(f"{_q(operations, c)} = {expr}" for c, expr in op.set_.items())
    where = f"({op.where})" if op.where else "true"
    if _offline(operations):
        # A script for psql cannot loop and commit outside a procedure; one UPDATE has the same
        # effect (the online helper batches it).
        operations.execute(f"UPDATE {table} SET {assignments} WHERE {where}")
        return 0
    key = _q(operations, op.key)
    bind = operations.get_bind()
    bind.exec_driver_sql(
        "CREATE SCHEMA IF NOT EXISTS pgsafe;"
        f"CREATE TABLE IF NOT EXISTS {CURSOR_TABLE} (name text PRIMARY KEY,"
        " last_key text, rows bigint NOT NULL DEFAULT 0,"
        " updated_at timestamptz NOT NULL DEFAULT clock_timestamp())"
    )
    key_type = _scalar(
        operations,
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = CAST(:t AS regclass) AND a.attname = :k AND NOT a.attisdropped",
        {"t": table, "k": op.key},
    )
    if key_type is None:
        raise ValueError(f"backfill {op.name}: {table} has no column {op.key!r} to batch by")
    # A row here is an interrupted run's last committed batch: resume after it.
    row = bind.execute(
        text(f"SELECT last_key, rows FROM {CURSOR_TABLE} WHERE name = :n"), {"n": op.name}
    ).first()
    cursor, total_rows = (row.last_key, int(row.rows)) if row is not None else (None, 0)
    estimate = _scalar(
        operations,
        "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = CAST(:t AS regclass)",
        {"t": table},
    )
    batch = (
        f"WITH batch AS (SELECT {key} AS k FROM {table}"
        f" WHERE {where} AND (CAST(:cursor AS {key_type}) IS NULL"
        f" OR {key} > CAST(:cursor AS {key_type})) ORDER BY {key} LIMIT :n),"
        f" upd AS (UPDATE {table} AS t SET {assignments} FROM batch"
        f" WHERE t.{key} = batch.k RETURNING batch.k),"
        " agg AS (SELECT count(*) AS c, max(k)::text AS last FROM upd),"
        f" mark AS (INSERT INTO {CURSOR_TABLE} AS cur (name, last_key, rows)"
        " SELECT :name, coalesce(agg.last, :cursor), agg.c FROM agg"
        " ON CONFLICT (name) DO UPDATE SET last_key = EXCLUDED.last_key,"
        " rows = cur.rows + EXCLUDED.rows,"
        " updated_at = clock_timestamp())"
        " SELECT c, last FROM agg"
    )
    with Progress(f"backfill {op.table_name}", estimate or None, unit="rows") as progress:
        progress.update(total_rows)
        while True:
            got = bind.execute(
                text(batch), {"cursor": cursor, "n": op.batch_size, "name": op.name}
            ).one()
            count, last = int(got[0]), got[1]
            total_rows += count
            progress.update(total_rows)
            if count == 0:
                bind.execute(text(f"DELETE FROM {CURSOR_TABLE} WHERE name = :n"), {"n": op.name})
                break
            cursor = last
            if op.sleep > 0:
                time.sleep(op.sleep)
    return total_rows


# -- NOT NULL column ----------------------------------------------------------------------------


@Operations.register_operation("add_column_not_null_safe")
@dataclass(eq=False)  # a record of its arguments; eq=False: Alembic's identity hashing
class AddColumnNotNullSafeOp(MigrateOperation):
    """``op.add_column_not_null_safe("t", Column("c", Text), backfill="'x'")``: add the column
    nullable (with its server default, which PostgreSQL 11+ fills in without a rewrite), backfill
    the NULLs in batches, add CHECK (c IS NOT NULL) NOT VALID, VALIDATE it (no write block),
    SET NOT NULL (which then skips its scan), drop the check. Each step commits on its own."""

    table_name: str
    column: Column[Any]
    _: KW_ONLY
    backfill: str | None = None
    schema: str | None = None
    key: str = "id"
    batch_size: int = 10_000
    sleep: float = 0.0

    @classmethod
    def add_column_not_null_safe(
        cls, operations: Operations, table_name: str, column: Column[Any], **kw: Any
    ) -> None:
        operations.invoke(cls(table_name, column, **kw))

    def reverse(self) -> DropColumnOp:
        return DropColumnOp(self.table_name, self.column.name, schema=self.schema)


@Operations.implementation_for(AddColumnNotNullSafeOp)
def _add_column_not_null_safe(operations: Operations, op: AddColumnNotNullSafeOp) -> None:
    col = op.column._copy()  # a copy: the caller's Column keeps its nullable=False
    col.nullable = True
    operations.add_column(op.table_name, col, schema=op.schema)
    table = _table(operations, op.table_name, op.schema)
    name = _q(operations, op.column.name)
    check = _q(operations, f"{op.table_name}_{op.column.name}_not_null"[:63])
    ctx = operations.get_context()
    if op.backfill is not None:
        with ctx.autocommit_block():  # each batch commits on its own
            fill = BackfillOp(
                op.table_name,
                {op.column.name: op.backfill},
                where=f"{name} IS NULL",
                key=op.key,
                batch_size=op.batch_size,
                sleep=op.sleep,
                schema=op.schema,
                name=f"{table}.{op.column.name}:not-null",
            )
            _backfill_batches(operations, fill)
    operations.execute(
        f"ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({name} IS NOT NULL) NOT VALID"
    )
    with ctx.autocommit_block():  # commits the ADD first: VALIDATE then blocks no writes
        operations.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {check}")
    # With the validated check in place SET NOT NULL skips its scan (PostgreSQL 12+).
    operations.execute(f"ALTER TABLE {table} ALTER COLUMN {name} SET NOT NULL")
    operations.execute(f"ALTER TABLE {table} DROP CONSTRAINT {check}")


# -- indexes ------------------------------------------------------------------------------------


@Operations.register_operation("create_index_concurrently")
@dataclass(eq=False)  # a record of its arguments; eq=False: Alembic's identity hashing
class CreateIndexConcurrentlyOp(MigrateOperation):
    """``op.create_index_concurrently("ix", "t", ["a", "b"])``: CREATE INDEX CONCURRENTLY IF NOT
    EXISTS in an autocommit block (writes go on while it builds); an INVALID index of that name
    left by an earlier failed build is dropped first, and one this build leaves is dropped
    before the error is raised."""

    index_name: str
    table_name: str
    columns: Sequence[str]
    _: KW_ONLY
    schema: str | None = None
    unique: bool = False
    where: str | None = None
    using: str | None = None

    def __post_init__(self) -> None:
        self.columns = list(self.columns)

    @classmethod
    def create_index_concurrently(
        cls,
        operations: Operations,
        index_name: str,
        table_name: str,
        columns: Sequence[str],
        **kw: Any,
    ) -> None:
        operations.invoke(cls(index_name, table_name, columns, **kw))

    def reverse(self) -> DropIndexConcurrentlyOp:
        return DropIndexConcurrentlyOp(self.index_name, schema=self.schema, _reverse=self)


@Operations.register_operation("drop_index_concurrently")
@dataclass(eq=False)  # a record of its arguments; eq=False: Alembic's identity hashing
class DropIndexConcurrentlyOp(MigrateOperation):
    """``op.drop_index_concurrently("ix")``: DROP INDEX CONCURRENTLY IF EXISTS in an autocommit
    block (no ACCESS EXCLUSIVE lock on the table)."""

    index_name: str
    _: KW_ONLY
    schema: str | None = None
    _reverse: CreateIndexConcurrentlyOp | None = None

    @classmethod
    def drop_index_concurrently(cls, operations: Operations, index_name: str, **kw: Any) -> None:
        operations.invoke(cls(index_name, **kw))

    def reverse(self) -> CreateIndexConcurrentlyOp:
        if self._reverse is None:
            raise ValueError(f"drop_index_concurrently {self.index_name}: columns unknown")
        return self._reverse


def _index_name(operations: Any, name: str, schema: str | None) -> str:
    return _table(operations, name, schema)


@Operations.implementation_for(CreateIndexConcurrentlyOp)
def _create_index_concurrently(operations: Operations, op: CreateIndexConcurrentlyOp) -> None:
    index = _index_name(operations, op.index_name, op.schema)
    cols = ", ".join(c if "(" in c else _q(operations, c) for c in op.columns)
    sql = (
        f"CREATE {'UNIQUE ' if op.unique else ''}INDEX CONCURRENTLY IF NOT EXISTS "
        f"{_q(operations, op.index_name)} ON {_table(operations, op.table_name, op.schema)}"
        f"{' USING ' + op.using if op.using else ''} ({cols})"
        f"{' WHERE ' + op.where if op.where else ''}"
    )
    with operations.get_context().autocommit_block():
        if _offline(operations):
            operations.execute(sql)
            return
        if _invalid_index(operations, op.index_name, op.schema):
            # IF NOT EXISTS would keep the broken leftover of an earlier failed build.
            operations.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index}")
        try:
            operations.execute(sql)
        except Exception:
            if _invalid_index(operations, op.index_name, op.schema):
                operations.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index}")
            raise


@Operations.implementation_for(DropIndexConcurrentlyOp)
def _drop_index_concurrently(operations: Operations, op: DropIndexConcurrentlyOp) -> None:
    with operations.get_context().autocommit_block():
        operations.execute(
            f"DROP INDEX CONCURRENTLY IF EXISTS {_index_name(operations, op.index_name, op.schema)}"
        )


# -- foreign keys -------------------------------------------------------------------------------


@Operations.register_operation("add_foreign_key_not_valid")
@dataclass(eq=False)  # a record of its arguments; eq=False: Alembic's identity hashing
class AddForeignKeyNotValidOp(MigrateOperation):
    """``op.add_foreign_key_not_valid("fk", "child", "parent", ["parent_id"], ["id"])``: ADD
    CONSTRAINT ... NOT VALID (a brief lock, no scan), then VALIDATE CONSTRAINT in its own
    transaction (reads and writes go on). validate=False leaves it NOT VALID on purpose (the
    invariant check of pgsafe.alembic.configure accepts it); validate later with
    ``op.validate_constraint``."""

    constraint_name: str
    source_table: str
    referent_table: str
    local_cols: Sequence[str]
    remote_cols: Sequence[str]
    _: KW_ONLY
    validate: bool = True
    source_schema: str | None = None
    referent_schema: str | None = None
    ondelete: str | None = None
    onupdate: str | None = None

    def __post_init__(self) -> None:
        self.local_cols = list(self.local_cols)
        self.remote_cols = list(self.remote_cols)

    @classmethod
    def add_foreign_key_not_valid(
        cls,
        operations: Operations,
        constraint_name: str,
        source_table: str,
        referent_table: str,
        local_cols: Sequence[str],
        remote_cols: Sequence[str],
        **kw: Any,
    ) -> None:
        operations.invoke(
            cls(constraint_name, source_table, referent_table, local_cols, remote_cols, **kw)
        )

    def reverse(self) -> MigrateOperation:
        from alembic.operations.ops import DropConstraintOp

        return DropConstraintOp(
            self.constraint_name, self.source_table, type_="foreignkey", schema=self.source_schema
        )


@Operations.implementation_for(AddForeignKeyNotValidOp)
def _add_foreign_key_not_valid(operations: Operations, op: AddForeignKeyNotValidOp) -> None:
    source = _table(operations, op.source_table, op.source_schema)
    name = _q(operations, op.constraint_name)
    local = ", ".join(_q(operations, c) for c in op.local_cols)
    remote = ", ".join(_q(operations, c) for c in op.remote_cols)
    actions = (f" ON DELETE {op.ondelete}" if op.ondelete else "") + (
        f" ON UPDATE {op.onupdate}" if op.onupdate else ""
    )
    operations.execute(
        f"ALTER TABLE {source} ADD CONSTRAINT {name} FOREIGN KEY ({local}) REFERENCES "
        f"{_table(operations, op.referent_table, op.referent_schema)} ({remote}){actions} "
        "NOT VALID"
    )
    if not op.validate:
        from pgsafe.alembic.runtime import allow_not_valid

        allow_not_valid(operations.get_context(), op.constraint_name)
        return
    with operations.get_context().autocommit_block():  # commits the ADD: its lock is released
        operations.execute(f"ALTER TABLE {source} VALIDATE CONSTRAINT {name}")


@Operations.register_operation("validate_constraint")
@dataclass(eq=False)  # a record of its arguments; eq=False: Alembic's identity hashing
class ValidateConstraintOp(MigrateOperation):
    """``op.validate_constraint("fk", "t")``: VALIDATE CONSTRAINT in its own transaction."""

    constraint_name: str
    table_name: str
    _: KW_ONLY
    schema: str | None = None

    @classmethod
    def validate_constraint(
        cls, operations: Operations, constraint_name: str, table_name: str, **kw: Any
    ) -> None:
        operations.invoke(cls(constraint_name, table_name, **kw))


@Operations.implementation_for(ValidateConstraintOp)
def _validate_constraint(operations: Operations, op: ValidateConstraintOp) -> None:
    with operations.get_context().autocommit_block():
        operations.execute(
            f"ALTER TABLE {_table(operations, op.table_name, op.schema)} "
            f"VALIDATE CONSTRAINT {_q(operations, op.constraint_name)}"
        )
