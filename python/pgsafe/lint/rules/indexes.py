"""Lint rules: building, dropping and rebuilding indexes, and the other CONCURRENTLY operations
(detaching a partition)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pgsafe.lint.context import Context
from pgsafe.lint.model import Hit, Stmt, alter_cmds, range_name, rule, strings
from pgsafe.lint.rules._tracking import Tracker, tracked


def _bare(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class CreatedIndexes(Tracker):
    """Index name -> the table of the latest CREATE INDEX of that name in this file."""

    def __init__(self) -> None:
        self.tables: dict[str, str] = {}

    def feed(self, stmt: Stmt) -> None:
        if stmt.kind == "IndexStmt" and stmt.node.get("idxname"):
            self.tables[stmt.node["idxname"]] = range_name(stmt.node.get("relation"))


def _index_table(ctx: Context, index: str) -> str | None:
    """The table of an index created earlier in this file, or None when it is not ours."""
    return tracked(ctx, CreatedIndexes).tables.get(_bare(index))


def _on_new_table(ctx: Context, index: str) -> bool:
    """True when the index was created in this file on a table this file also created."""
    table = _index_table(ctx, index)
    return table is not None and ctx.is_new_table(table)


def _dropped_indexes(stmt: Stmt) -> list[str]:
    out = []
    for obj in stmt.node.get("objects", []):
        if "List" in obj:
            out.append(".".join(strings(obj["List"].get("items"))))
    return out


def _reindex_concurrently(node: dict[str, Any]) -> bool:
    return any(
        p.get("DefElem", {}).get("defname") == "concurrently" for p in node.get("params", [])
    )


class Partitioned(Tracker):
    """Tables this file shows to be partitioned: created PARTITION BY, given a partition
    (CREATE TABLE ... PARTITION OF), or attaching or detaching one. Bare name -> the line of
    the first statement that showed it."""

    def __init__(self) -> None:
        self.tables: dict[str, int] = {}

    def _add(self, name: str, stmt: Stmt) -> None:
        if name:
            self.tables.setdefault(_bare(name), stmt.line)

    def feed(self, stmt: Stmt) -> None:
        n = stmt.node
        if stmt.kind == "CreateStmt":
            if n.get("partspec"):
                self._add(range_name(n.get("relation")), stmt)
            if n.get("partbound"):
                for parent in n.get("inhRelations") or []:
                    self._add(range_name(parent.get("RangeVar")), stmt)
        elif any(
            c.get("subtype") in ("AT_AttachPartition", "AT_DetachPartition")
            for c in alter_cmds(stmt)
        ):
            self._add(range_name(n.get("relation")), stmt)


@rule(
    "require-concurrent-index",
    severity="error",
    hazards=("blocks-writes",),
    lock="ShareLock",
    summary="CREATE INDEX without CONCURRENTLY blocks writes to the table while it builds.",
    why="the SHARE lock blocks INSERT, UPDATE and DELETE for the whole build, which on a large "
    "table takes minutes. CREATE INDEX ... ON ONLY a partitioned table builds nothing (it only "
    "records an invalid index on the parent) and is not reported; on a partitioned table "
    "CONCURRENTLY is refused, so the index is built partition by partition",
    fix="CREATE INDEX CONCURRENTLY (pgsafe runs it outside the transaction for you and cleans "
    "up an INVALID index if the build fails). On a partitioned table: CREATE INDEX name ON ONLY "
    "parent (...); then for each partition CREATE INDEX CONCURRENTLY part_name ON partition "
    "(...) and ALTER INDEX name ATTACH PARTITION part_name (the parent index becomes valid once "
    "every partition's is attached)",
)
def require_concurrent_index(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "IndexStmt" or stmt.node.get("concurrent"):
        return
    relation = stmt.node.get("relation") or {}
    table = range_name(relation)
    if ctx.is_new_table(table):
        return  # an empty table nobody else can see yet
    if not relation.get("inh", False):
        # ON ONLY: on a partitioned table it builds nothing and only writes the catalog (on a
        # plain table ONLY would change nothing; nobody writes it there).
        return
    name = stmt.node.get("idxname") or "an index"
    line = tracked(ctx, Partitioned).tables.get(_bare(table))
    if line is not None:
        yield Hit(
            f"builds {name} on every partition of {table} (partitioned, see line {line}) under "
            "SHARE locks, blocking writes until it is done; CONCURRENTLY is refused on a "
            f"partitioned table: CREATE INDEX {stmt.node.get('idxname') or 'name'} ON ONLY "
            f"{table} (...), CREATE INDEX CONCURRENTLY on each partition, then ALTER INDEX ... "
            "ATTACH PARTITION each of them"
        )
        return
    yield Hit(f"builds {name} on {table} under a SHARE lock, blocking writes until it is done")


@rule(
    "require-concurrent-index-deletion",
    severity="error",
    hazards=("blocks-reads", "blocks-writes"),
    lock="AccessExclusiveLock",
    summary="DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the index's table.",
    why="the lock blocks every read and write of the table; it has to wait for running queries "
    "first, and everything queued behind it waits too. Queries that relied on the index may also "
    "get slower once it is gone",
    fix="DROP INDEX CONCURRENTLY IF EXISTS name; one index per statement, without CASCADE (pgsafe "
    "runs it outside the transaction). An index that backs a constraint goes with ALTER TABLE "
    "... DROP CONSTRAINT instead",
    destructive=True,
)
def require_concurrent_index_deletion(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "DropStmt" or stmt.node.get("removeType") != "OBJECT_INDEX":
        return
    if stmt.node.get("concurrent"):
        return
    for name in _dropped_indexes(stmt):
        if not _on_new_table(ctx, name):
            yield Hit(
                f"drops index {name} under an ACCESS EXCLUSIVE lock on its table, "
                "blocking reads and writes"
            )


def _concurrent_operation(stmt: Stmt) -> str | None:
    """What CONCURRENTLY operation the statement is, if any."""
    n = stmt.node
    if stmt.kind == "IndexStmt" and n.get("concurrent"):
        return "CREATE INDEX CONCURRENTLY"
    if stmt.kind == "DropStmt" and n.get("removeType") == "OBJECT_INDEX" and n.get("concurrent"):
        return "DROP INDEX CONCURRENTLY"
    if stmt.kind == "ReindexStmt" and _reindex_concurrently(n):
        return "REINDEX CONCURRENTLY"
    for cmd in alter_cmds(stmt):
        if cmd.get("subtype") == "AT_DetachPartition" and (cmd.get("def") or {}).get(
            "PartitionCmd", {}
        ).get("concurrent"):
            return "DETACH PARTITION CONCURRENTLY"
    return None


@rule(
    "ban-concurrent-index-creation-in-transaction",
    severity="error",
    hazards=("not-transactional",),
    lock=None,
    summary="CREATE INDEX CONCURRENTLY (or DROP INDEX / REINDEX / DETACH PARTITION ... "
    "CONCURRENTLY) inside an explicit BEGIN ... COMMIT fails.",
    why="PostgreSQL refuses to run a CONCURRENTLY operation inside a transaction block, so the "
    "migration fails at that statement and everything before it in the block is rolled back",
    fix="move the statement out of the BEGIN ... COMMIT block: pgsafe already runs every other "
    "statement of the file in one transaction and runs CONCURRENTLY statements as autocommit "
    "steps between them, so the file does not need its own BEGIN/COMMIT",
)
def ban_concurrent_index_creation_in_transaction(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if not ctx.explicit_transaction:
        return
    op = _concurrent_operation(stmt)
    if op is not None:
        yield Hit(f"{op} cannot run inside the BEGIN ... COMMIT block this file opened")


@rule(
    "ban-reindex",
    severity="error",
    hazards=("blocks-reads", "blocks-writes"),
    lock="AccessExclusiveLock",
    summary="REINDEX without CONCURRENTLY locks the table against writes and its indexes "
    "against use.",
    why="REINDEX takes a SHARE lock on the table (blocking writes) and an ACCESS EXCLUSIVE lock "
    "on each index it rebuilds; since the planner opens every index of a table, queries on the "
    "table block too, for the whole rebuild",
    fix="REINDEX INDEX CONCURRENTLY name (PostgreSQL 12 and later; pgsafe runs it outside the "
    "transaction). Before 12: CREATE INDEX CONCURRENTLY a replacement, DROP INDEX CONCURRENTLY "
    "the old one, then ALTER INDEX ... RENAME",
)
def ban_reindex(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "ReindexStmt" or _reindex_concurrently(stmt.node):
        return
    kind = stmt.node.get("kind", "")
    if kind == "REINDEX_OBJECT_INDEX":
        name = range_name(stmt.node.get("relation"))
        if _on_new_table(ctx, name):
            return
        what = f"index {name}"
    elif kind == "REINDEX_OBJECT_TABLE":
        name = range_name(stmt.node.get("relation"))
        if ctx.is_new_table(name):
            return
        what = f"every index of {name}"
    else:
        scope = kind.removeprefix("REINDEX_OBJECT_").lower()
        what = f"every index of {scope} {stmt.node.get('name') or ''}".rstrip()
    yield Hit(
        f"rebuilds {what} without CONCURRENTLY, blocking writes and the queries that use "
        "those indexes meanwhile"
    )


@rule(
    "require-concurrent-detach",
    severity="error",
    hazards=("blocks-reads", "blocks-writes"),
    lock="AccessExclusiveLock",
    summary="ALTER TABLE ... DETACH PARTITION without CONCURRENTLY locks the partitioned table.",
    why="a plain DETACH takes an ACCESS EXCLUSIVE lock on the parent and the partition, blocking "
    "every read and write of the whole partitioned table",
    fix="ALTER TABLE parent DETACH PARTITION part CONCURRENTLY (PostgreSQL 14 and later; it runs "
    "outside a transaction, which pgsafe arranges, and needs no default partition); if it is "
    "interrupted, finish with ALTER TABLE parent DETACH PARTITION part FINALIZE",
    min_pg=14,
)
def require_concurrent_detach(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    table = range_name(stmt.node.get("relation")) if stmt.kind == "AlterTableStmt" else ""
    for cmd in alter_cmds(stmt):
        if cmd.get("subtype") != "AT_DetachPartition":
            continue
        part = (cmd.get("def") or {}).get("PartitionCmd", {})
        if part.get("concurrent") or ctx.is_new_table(table):
            continue
        name = range_name(part.get("name"))
        yield Hit(
            f"detaches {name} from {table} under an ACCESS EXCLUSIVE lock on both",
            location=(part.get("name") or {}).get("location"),
        )


@rule(
    "index-too-many-columns",
    severity="warning",
    hazards=(),
    lock=None,
    summary="A non-unique index with more than three key columns rarely pays for itself.",
    why="each extra key column makes the index larger and every write to the table slower, while "
    "queries seldom use more than the leading columns (strong_migrations' best practice)",
    fix="index the two or three most selective leading columns; put columns that are only "
    "returned, not searched, in INCLUDE (...)",
)
def index_too_many_columns(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    # Fires on new tables too: this is about the index's design, not about locks.
    if stmt.kind != "IndexStmt" or stmt.node.get("unique"):
        return
    count = len(stmt.node.get("indexParams", []))
    if count > 3:
        name = stmt.node.get("idxname") or "the index"
        yield Hit(f"{name} has {count} key columns; more than three rarely helps")
