"""Lint rules: data changes inside migrations. DELETE or UPDATE without WHERE rewrites every
row of a table that users' data lives in; a column assigned twice fails at run time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pgsafe.lint.context import Context
from pgsafe.lint.model import Hit, Stmt, range_name, rule

# Statements that store a DELETE or UPDATE to run later rather than running it now.
_DEFINES = frozenset({"CreateFunctionStmt", "RuleStmt", "PrepareStmt"})


def _option_on(option: dict[str, Any]) -> bool:
    """The value of a boolean option as PostgreSQL's defGetBoolean reads it: no value, true,
    on or 1 is on; false, off or 0 is off."""
    arg = option.get("arg")
    if not arg:
        return True
    if "Integer" in arg:
        return bool(arg["Integer"].get("ival", 0))  # libpg_query leaves out a zero
    if "Boolean" in arg:
        return bool(arg["Boolean"].get("boolval", False))
    text = str(arg.get("String", {}).get("sval", "")).lower()
    # parse_bool: any prefix of "false" or "no", "of"/"off", "0"
    return not (text in ("0", "of", "off", "n", "no") or (text and "false".startswith(text)))


def _explain_analyze(node: dict[str, Any]) -> bool:
    """Whether an EXPLAIN runs its statement: EXPLAIN ANALYZE or (ANALYZE [true]), the last
    ANALYZE option winning; plain EXPLAIN and (ANALYZE false) only plan it."""
    on = False
    for option in node.get("options") or []:
        d = option.get("DefElem", {})
        if d.get("defname") == "analyze":
            on = _option_on(d)
    return on


def _nodes(stmt: Stmt, kind: str) -> list[dict[str, Any]]:
    """The statement's own node if it is `kind`, and every `kind` node nested in it (CTEs),
    when the statement runs them now: not a function body (BEGIN ATOMIC), rule or prepared
    statement, nor a plain EXPLAIN."""
    if stmt.kind in _DEFINES:
        return []
    if stmt.kind == "ExplainStmt" and not _explain_analyze(stmt.node):
        return []
    found = [stmt.node] if stmt.kind == kind else []
    return found + [n for k, n in stmt.nodes() if k == kind]


@rule(
    "ban-delete-without-where",
    severity="error",
    hazards=("deletes-data",),
    lock="RowExclusiveLock",
    summary="DELETE without WHERE removes every row of an existing table.",
    why="it is TRUNCATE done slowly: all the rows are gone, every one of them is locked until "
    "the migration commits, and the table is left full of dead tuples for VACUUM",
    fix="add the WHERE clause that selects the rows meant to go; back the table up first, "
    "and delete large sets in batches (DELETE ... WHERE id IN (SELECT id ... LIMIT 10000)) in "
    "separate transactions",
    destructive=True,
)
def ban_delete_without_where(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for delete in _nodes(stmt, "DeleteStmt"):
        table = range_name(delete.get("relation"))
        if delete.get("whereClause") is None and not ctx.is_new_table(table):
            yield Hit(f"deletes every row of {table}", location=delete["relation"].get("location"))


@rule(
    "ban-update-without-where",
    severity="error",
    hazards=("deletes-data",),
    lock="RowExclusiveLock",
    summary="UPDATE without WHERE overwrites a column in every row of an existing table.",
    why="the previous values are lost for every row, each row is locked until the migration "
    "commits (blocking the application's writes to any of them), and the table doubles in "
    "size until VACUUM catches up",
    fix="add a WHERE clause naming the rows to change; to backfill a new column, update in "
    "batches (UPDATE t SET c = ... WHERE id BETWEEN ... AND c IS NULL) in separate "
    "transactions, outside the migration that added the column",
    destructive=True,
)
def ban_update_without_where(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for update in _nodes(stmt, "UpdateStmt"):
        table = range_name(update.get("relation"))
        if update.get("whereClause") is not None or ctx.is_new_table(table):
            continue
        columns = [t.get("ResTarget", {}).get("name", "") for t in update.get("targetList", [])]
        overwritten = [c for c in columns if not ctx.is_new_column(table, c)]
        if not overwritten:
            continue  # only fills columns this migration added: nothing is lost
        yield Hit(
            f"overwrites {', '.join(overwritten)} in every row of {table}",
            location=update["relation"].get("location"),
        )


def _duplicates(
    targets: list[tuple[str, bool, int | None]],
) -> list[tuple[str, int | None]]:
    """Names listed twice among (name, has indirection, location): `a[1] = x, a[2] = y` is
    allowed, any other repeat is an error."""
    seen: dict[str, list[tuple[bool, int | None]]] = {}
    out = []
    for name, indirect, location in targets:
        earlier = seen.setdefault(name, [])
        if earlier and not (indirect and all(i for i, _ in earlier)):
            out.append((name, location))
        earlier.append((indirect, location))
    return out


def _res_targets(items: list[dict[str, Any]] | None) -> list[tuple[str, bool, int | None]]:
    out = []
    for item in items or []:
        t = item.get("ResTarget")
        if t and t.get("name"):
            out.append((t["name"], bool(t.get("indirection")), t.get("location")))
    return out


def _column_defs(items: list[dict[str, Any]] | None) -> list[tuple[str, bool, int | None]]:
    out = []
    for item in items or []:
        c = item.get("ColumnDef")
        if c and c.get("colname"):
            out.append((c["colname"], False, c.get("location")))
    return out


def _names(items: list[dict[str, Any]] | None) -> list[tuple[str, bool, int | None]]:
    return [(i["String"]["sval"], False, None) for i in items or [] if "String" in i]


@rule(
    "ban-duplicate-column-assignments",
    severity="error",
    hazards=(),
    lock=None,
    summary="A column assigned or declared twice in one statement.",
    why="PostgreSQL rejects it at run time (multiple assignments to same column / column "
    "specified more than once), so the migration fails part-way through its rollout",
    fix="list each column once: UPDATE t SET a = 2; INSERT INTO t (a, b) ...; "
    "CREATE TABLE t (a int, b text)",
)
def ban_duplicate_column_assignments(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    groups: list[tuple[str, list[tuple[str, bool, int | None]]]] = []
    for kind, n in stmt.tree():
        if kind == "UpdateStmt":
            groups.append(("assigns", _res_targets(n.get("targetList"))))
        elif kind == "InsertStmt":
            groups.append(("inserts into", _res_targets(n.get("cols"))))
            conflict = n.get("onConflictClause") or {}
            groups.append(("assigns", _res_targets(conflict.get("targetList"))))
        elif kind == "MergeWhenClause":
            verb = "inserts into" if n.get("commandType") == "CMD_INSERT" else "assigns"
            groups.append((verb, _res_targets(n.get("targetList"))))
        elif kind in ("CreateStmt", "CompositeTypeStmt"):
            groups.append(("declares", _column_defs(n.get("tableElts") or n.get("coldeflist"))))
        elif kind == "AlterTableStmt":
            added = [
                c["AlterTableCmd"].get("def", {})
                for c in n.get("cmds", [])
                if c.get("AlterTableCmd", {}).get("subtype") == "AT_AddColumn"
            ]
            groups.append(("adds", _column_defs(added)))
        elif kind == "ViewStmt":
            groups.append(("names", _names(n.get("aliases"))))
        elif kind == "CreateTableAsStmt":
            groups.append(("names", _names((n.get("into") or {}).get("colNames"))))
    for verb, targets in groups:
        for name, location in _duplicates(targets):
            yield Hit(
                f"{verb} column {name} more than once: PostgreSQL rejects the statement",
                location=location,
            )
