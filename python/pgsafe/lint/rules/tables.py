"""Lint rules: dropping and emptying tables, databases and schemas."""

from __future__ import annotations

from collections.abc import Iterator

from pgsafe.lint.context import Context
from pgsafe.lint.model import Hit, Stmt, range_name, rule, strings


def _dropped_names(stmt: Stmt) -> list[str]:
    out = []
    for obj in stmt.node.get("objects", []):
        if "List" in obj:
            out.append(".".join(strings(obj["List"].get("items"))))
        elif "String" in obj:
            out.append(obj["String"]["sval"])
    return out


@rule(
    "ban-drop-table",
    severity="error",
    hazards=("deletes-data", "breaks-clients"),
    lock="AccessExclusiveLock",
    summary="DROP TABLE deletes the table and every row in it.",
    why="the data is gone for good, and code that still reads the table fails at once",
    fix="stop using the table in the application first, back it up, then drop it in a later "
    "release (or rename it away and drop it after a grace period)",
    destructive=True,
)
def ban_drop_table(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "DropStmt" or stmt.node.get("removeType") != "OBJECT_TABLE":
        return
    for name in _dropped_names(stmt):
        if not ctx.is_new_table(name):
            yield Hit(f"drops table {name} and all its rows")


@rule(
    "ban-drop-database",
    severity="error",
    hazards=("deletes-data", "breaks-clients", "not-transactional"),
    lock=None,
    summary="DROP DATABASE deletes a whole database.",
    why="everything in it is gone, and it cannot run inside the migration's transaction",
    fix="drop databases by hand, outside migrations, after a verified backup",
    destructive=True,
)
def ban_drop_database(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind == "DropdbStmt":
        yield Hit(f"drops database {stmt.node.get('dbname', '')}")


@rule(
    "ban-truncate",
    severity="error",
    hazards=("deletes-data",),
    lock="AccessExclusiveLock",
    summary="TRUNCATE deletes every row of the table (and, with CASCADE, of tables that "
    "reference it).",
    why="the rows are gone, and the ACCESS EXCLUSIVE lock blocks reads and writes meanwhile",
    fix="delete in batches with a WHERE clause if rows must go; back up first",
    destructive=True,
)
def ban_truncate(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "TruncateStmt":
        return
    names = [range_name(r.get("RangeVar")) for r in stmt.node.get("relations", [])]
    existing = [n for n in names if not ctx.is_new_table(n)]
    if not existing:
        return
    cascade = stmt.node.get("behavior") == "DROP_CASCADE"
    extra = " and, through CASCADE, every table that references them" if cascade else ""
    yield Hit(f"empties {', '.join(existing)}{extra}")
