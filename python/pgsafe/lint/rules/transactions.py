"""Lint rules: transactions and what they hold. pgsafe runs each migration file as one
transaction (autocommit steps such as CREATE INDEX CONCURRENTLY on their own), so a lock taken
early is held until the file ends, and the file's own BEGIN/COMMIT can only wrap all of it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from pgsafe.analysis.statement import walk_dicts
from pgsafe.lint.context import Context
from pgsafe.lint.model import LOCKS, Hit, Stmt, alter_cmds, range_name, rule, stronger_lock
from pgsafe.lint.rules._tracking import Tracker, tracked

_BEGIN = ("begin", "start transaction")
_END = ("commit", "rollback", "prepare transaction")


def _line(ctx: Context, index: int | None) -> str:
    if index is None or index >= len(ctx.statements):
        return "earlier"
    return f"at line {ctx.statements[index].line}"


@rule(
    "require-timeout-settings",
    severity="warning",
    hazards=("missing-timeout",),
    lock=None,
    summary="A statement locks an existing table before the file set lock_timeout and "
    "statement_timeout.",
    why="without lock_timeout, a statement that waits for its lock behind a long-running "
    "transaction makes every later query on the table queue behind it: an outage that lasts "
    "as long as that transaction; without statement_timeout, a slow statement holds its lock "
    "for as long as it runs",
    fix="`pgsafe apply` sets both for every statement, per statement class (short for DDL, "
    "longer for index builds and validation), and retries on lock timeout, so nothing is "
    "needed there. With any other runner (psql, a framework) start the file with "
    "`SET lock_timeout = '2s'; SET statement_timeout = '60s';` (or SET LOCAL inside its "
    "transaction) and retry the migration when it times out",
    opt_in=True,  # moot under `pgsafe apply`; for teams whose migrations another runner applies
)
def require_timeout_settings(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if ctx.timeouts_set or ctx.unguarded_lock_at is not None:
        return  # set, or already reported for this file
    locks = ctx.existing_locks(stmt)
    blocking = {t: m for t, m in locks.items() if LOCKS[m] & {"reads", "writes"}}
    if not blocking:
        return
    strongest = None
    for mode in blocking.values():
        strongest = stronger_lock(strongest, mode)
    missing = [
        name
        for name, on in (
            ("lock_timeout", ctx.lock_timeout_set),
            ("statement_timeout", ctx.statement_timeout_set),
        )
        if not on
    ]
    yield Hit(
        f"takes {strongest} on {', '.join(sorted(blocking))} with no {' or '.join(missing)} "
        "set earlier in the file: while it waits for the lock, every query on the table "
        "queues behind it",
        lock=strongest,
    )


@rule(
    "transaction-nesting",
    severity="error",
    hazards=("not-transactional",),
    lock=None,
    summary="BEGIN, COMMIT, ROLLBACK or SAVEPOINT inside a migration that already runs in a "
    "transaction.",
    why="pgsafe runs each file in its own transaction and accepts only a BEGIN ... COMMIT "
    "around the whole file; any other transaction control is refused by `pgsafe apply`, and "
    "with other runners a BEGIN inside a transaction is ignored while the first COMMIT ends "
    "it early, so the statements after it run outside any transaction and a failure leaves "
    "the migration half-applied",
    fix="remove the BEGIN/COMMIT statements (pgsafe wraps the file for you), or keep exactly "
    "one BEGIN at the top and one COMMIT at the end; split work that needs several "
    "transactions into several migration files",
)
def transaction_nesting(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    tx = stmt.raw.transaction_control
    if not tx:
        return
    if tx in _BEGIN:
        if ctx.explicit_transaction:
            yield Hit(
                f"{tx.upper()} inside the transaction opened "
                f"{_line(ctx, ctx.transaction_began_at)}: PostgreSQL ignores it, and the next "
                "COMMIT ends the outer transaction"
            )
        elif ctx.statements:
            yield Hit(
                f"{tx.upper()} after other statements: pgsafe already runs the file in one "
                "transaction and accepts only a BEGIN ... COMMIT around all of it; the "
                "statements before it commit separately"
            )
        return
    if tx == "commit":
        if not ctx.explicit_transaction:
            yield Hit(
                "COMMIT with no BEGIN in this file: it would end the migration's transaction "
                "early (what follows runs outside it), and `pgsafe apply` refuses it"
            )
            return
        later = ctx.later_statements(stmt)
        if later:
            yield Hit(
                f"COMMIT before the end of the file ({len(later)} more statement(s) follow): "
                "they run outside the migration's transaction, so a failure there leaves it "
                "half-applied"
            )
        return
    if tx == "rollback":
        yield Hit(
            "ROLLBACK in a migration: it throws away the migration's own work (or, with no "
            "transaction open, does nothing)"
        )
        return
    yield Hit(
        f"{tx.upper()} in a migration: pgsafe runs the file as one transaction and refuses "
        "transaction control inside it"
    )


@rule(
    "ban-uncommitted-transaction",
    severity="error",
    hazards=(),
    lock=None,
    summary="A BEGIN that the file never commits.",
    why="with a runner that does not wrap the file, the open transaction is rolled back when "
    "the session ends: the migration silently does nothing (or its locks stay held until the "
    "session ends); `pgsafe apply` refuses the file",
    fix="end the file with COMMIT, or drop the BEGIN and let pgsafe wrap the file in its own "
    "transaction",
)
def ban_uncommitted_transaction(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.raw.transaction_control not in _BEGIN:
        return
    later = ctx.later_statements(stmt)
    if later is None:
        return  # cannot tell without the rest of the file
    if not any(s.raw.transaction_control in _END for s in later):
        yield Hit(f"{stmt.raw.transaction_control.upper()} is never committed in this file")


def _relations(node: Any) -> Iterator[str]:
    """Every relation a parse tree names: RangeVar nodes, and the RangeVar-shaped fields such as
    an UPDATE's target (`relation`), which are not wrapped in a node type."""
    return (range_name(d) for d in walk_dicts(node) if "relname" in d)


# Statements that can run for a long time when they touch a table with rows in it: holding
# ACCESS EXCLUSIVE through them keeps the locked table unreadable for that long.
_LONG_WORK = frozenset(
    {
        "InsertStmt",
        "UpdateStmt",
        "DeleteStmt",
        "MergeStmt",
        "CopyStmt",
        "IndexStmt",
        "ReindexStmt",
        "ClusterStmt",
        "VacuumStmt",
        "RefreshMatViewStmt",
    }
)


def _long_work(stmt: Stmt, ctx: Context) -> bool:
    if stmt.kind in ("DoStmt", "CallStmt"):
        return True  # cannot see what they do
    if stmt.kind in _LONG_WORK or stmt.kind == "SelectStmt":
        # Reads, writes or indexes a table that has rows (one this file created has none yet,
        # unless filled from an existing one, which the same test catches).
        return any(not ctx.is_new_relation(r) for r in _relations(stmt.node))
    table = range_name(stmt.node.get("relation"))
    # VALIDATE scans the table; validating a constraint this transaction added NOT VALID is
    # ban-validate-in-same-transaction's finding already.
    return any(
        c.get("subtype") == "AT_ValidateConstraint"
        and (table, c.get("name")) not in ctx.not_valid_constraints
        for c in alter_cmds(stmt)
    )


_SHOWN_LOCKS = 5  # tables named in a statements-after-access-exclusive message


@rule(
    "statements-after-access-exclusive",
    severity="warning",
    hazards=(),
    lock="AccessExclusiveLock",
    summary="More work in the same transaction after a statement took ACCESS EXCLUSIVE on an "
    "existing table.",
    why="the ACCESS EXCLUSIVE lock is held until the transaction commits, so every later "
    "statement in it keeps the table unreadable and unwritable for as long as it runs, "
    "and for as long as it waits for its own locks",
    fix="put the statement that takes ACCESS EXCLUSIVE last in its migration, and move "
    "backfills, index builds and changes to other tables into their own migrations, so the "
    "lock is held for milliseconds",
)
def statements_after_access_exclusive(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if not ctx.access_exclusive or stmt.raw.transaction_control:
        return
    if ctx.autocommit_step(stmt) or stmt.kind in ("VariableSetStmt", "VariableShowStmt"):
        return  # pgsafe commits before an autocommit step; SET neither waits nor runs long
    locks = ctx.existing_locks(stmt)
    # ACCESS SHARE (a view or policy reading a table) waits only behind ACCESS EXCLUSIVE on
    # that table, which preflight's live probe reports; flagging every read would be noise.
    new_waits = sorted(
        t
        for t, mode in locks.items()
        if t not in ctx.access_exclusive and mode != "AccessShareLock"
    )
    if not new_waits and not _long_work(stmt, ctx):
        return
    # access_exclusive is filled in statement order: its first entries are the oldest locks.
    held = list(itertools.islice(ctx.access_exclusive.items(), _SHOWN_LOCKS + 1))
    held.sort(key=lambda kv: kv[1])
    what = ", ".join(f"{t} (taken {_line(ctx, i)})" for t, i in held[:_SHOWN_LOCKS])
    if len(ctx.access_exclusive) > _SHOWN_LOCKS:
        what += f" and {len(ctx.access_exclusive) - _SHOWN_LOCKS} more table(s)"
    doing = f"waits for locks on {', '.join(new_waits)}" if new_waits else "can run for a long time"
    yield Hit(
        f"runs while this transaction holds ACCESS EXCLUSIVE on {what}: it {doing}, and "
        "reads and writes of those tables wait until the transaction commits",
        hazards=("blocks-reads", "blocks-writes"),
    )


# ALTER TABLE forms that cannot share a statement with other subcommands (PostgreSQL grammar).
_ALONE = frozenset({"AT_AttachPartition", "AT_DetachPartition", "AT_DetachPartitionFinalize"})


def _combinable(stmt: Stmt) -> bool:
    cmds = alter_cmds(stmt)
    return (
        stmt.node.get("objtype") == "OBJECT_TABLE"
        and bool(cmds)
        and not any(c.get("subtype") in _ALONE for c in cmds)
        # NOT VALID + VALIDATE are split on purpose (and flagged by the constraint rules).
        and not any(c.get("subtype") == "AT_ValidateConstraint" for c in cmds)
    )


# Subcommands PostgreSQL runs before every ADD/SET of the same ALTER TABLE (tablecmds.c passes):
# merged, they would act before the earlier statement's work instead of after it.
_EARLY_PASS = frozenset(
    {
        "AT_DropColumn",
        "AT_DropConstraint",
        "AT_DropNotNull",
        "AT_DropIdentity",
        "AT_DropExpression",
        "AT_AlterColumnType",
    }
)


def _early(cmd: dict[str, Any]) -> bool:
    sub = cmd.get("subtype")
    return sub in _EARLY_PASS or (sub == "AT_ColumnDefault" and not cmd.get("def"))


def _mergeable(first: Stmt, second: Stmt) -> bool:
    """Whether `second` could join `first` as more subcommands with the same effect. Not when
    it drops or retypes a column `first` added or retyped (PostgreSQL: column does not exist /
    cannot alter type of column twice), nor when it drops a constraint after `first` changed
    the table (the drop would run first: SET NOT NULL would lose the CHECK that spares its
    scan)."""
    touched = set()
    for cmd in alter_cmds(first):
        sub = cmd.get("subtype")
        if sub == "AT_AddColumn":
            touched.add((cmd.get("def") or {}).get("ColumnDef", {}).get("colname"))
        elif sub == "AT_AlterColumnType":
            touched.add(cmd.get("name"))
    first_changes = any(not _early(c) for c in alter_cmds(first))
    for cmd in alter_cmds(second):
        if not _early(cmd):
            continue
        if cmd.get("name") in touched:
            return False
        if cmd.get("subtype") == "AT_DropConstraint" and first_changes:
            return False
    return True


class AlterHistory(Tracker):
    """For multiple-alter-table (see _tracking): the index of the last statement that mentions
    each relation name, of the last DO / CALL (which may use any table), and whether each
    ALTER TABLE can be merged with others."""

    def __init__(self) -> None:
        self.mentioned: dict[str, int] = {}
        self.opaque = -1
        self.combinable: dict[int, Stmt] = {}  # index -> each combinable ALTER TABLE
        # table -> (its ctx.altered_tables list, how much of it was read, last combinable index)
        self.last: dict[str, tuple[list[int], int, int | None]] = {}

    def feed(self, stmt: Stmt) -> None:
        if stmt.kind in ("DoStmt", "CallStmt"):
            self.opaque = stmt.index  # cannot see inside: assume it uses every table
        for name in _relations(stmt.node):
            self.mentioned[name] = stmt.index
        if stmt.kind == "AlterTableStmt" and _combinable(stmt):
            self.combinable[stmt.index] = stmt

    def last_combinable(self, table: str, altered: list[int]) -> int | None:
        """The last combinable ALTER TABLE of `table` in this transaction (`altered` is its
        ctx.altered_tables list, which only grows until the transaction ends)."""
        seen, read, last = self.last.get(table, (altered, 0, None))
        if seen is not altered or read > len(altered):
            read, last = 0, None  # a new transaction
        for index in altered[read:]:
            if index in self.combinable:
                last = index
        self.last[table] = (altered, len(altered), last)
        return last

    def mentioned_after(self, table: str, index: int) -> bool:
        """Whether a statement after `index` (and before the current one) uses the table."""
        bare = table.rsplit(".", 1)[-1]
        return max(self.mentioned.get(table, -1), self.mentioned.get(bare, -1), self.opaque) > index


@rule(
    "multiple-alter-table",
    severity="warning",
    hazards=(),
    lock="AccessExclusiveLock",
    summary="Several ALTER TABLE statements on one existing table in one transaction that "
    "could be one statement.",
    why="each ALTER TABLE queues for its lock again and may scan or rewrite the whole table "
    "again (type changes of two columns rewrite it twice); one ALTER TABLE with several "
    "subcommands does all of it in one pass",
    fix="combine them: ALTER TABLE t ADD COLUMN a bigint, ADD COLUMN b text, ALTER COLUMN c "
    "SET DEFAULT 0; (keep apart what cannot merge: a backfill in between, or a later DROP or "
    "type change of a column the first statement added)",
)
def multiple_alter_table(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "AlterTableStmt" or not _combinable(stmt) or ctx.autocommit_step(stmt):
        return
    table = range_name(stmt.node.get("relation"))
    if ctx.is_new_table(table):
        return
    history = tracked(ctx, AlterHistory)
    last = history.last_combinable(table, ctx.altered_tables.get(table, []))
    if last is None:
        return
    # A statement in between that uses the table (a backfill, say) may need the first ALTER
    # done: then the two cannot be merged.
    if history.mentioned_after(table, last) or not _mergeable(history.combinable[last], stmt):
        return
    yield Hit(
        f"another ALTER TABLE {table} in this transaction (the last {_line(ctx, last)}): "
        "combine them into one statement"
    )
