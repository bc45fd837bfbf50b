"""Lint rules: dropping and emptying tables, views, databases and schemas, and rewriting a
whole table with ALTER TABLE."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field

from pgsafe.lint.context import Context
from pgsafe.lint.model import Hit, Stmt, alter_cmds, range_name, rule, strings
from pgsafe.lint.rules._tracking import Tracker, per_file, tracked


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


class CreatedHere(Tracker):
    """Schemas and views this file created (a view made with OR REPLACE may have existed
    before, so it does not count); bare names too."""

    def __init__(self) -> None:
        self.schemas: set[str] = set()
        self.views: set[str] = set()

    def feed(self, stmt: Stmt) -> None:
        n = stmt.node
        if stmt.kind == "CreateSchemaStmt" and n.get("schemaname") and not n.get("if_not_exists"):
            self.schemas.add(n["schemaname"])
        elif stmt.kind == "ViewStmt" and not n.get("replace"):
            name = range_name(n.get("view"))
            self.views |= {name, _bare(name)}


def _bare(name: str) -> str:
    return name.rsplit(".", 1)[-1]


@rule(
    "ban-drop-schema",
    severity="error",
    hazards=("deletes-data", "breaks-clients"),
    lock="AccessExclusiveLock",
    summary="DROP SCHEMA ... CASCADE deletes every table, view, function and type in the schema.",
    why="CASCADE drops whatever the schema holds, with every row of its tables, taking ACCESS "
    "EXCLUSIVE on each of them; code that uses any of it fails at once. Without CASCADE "
    "PostgreSQL drops only an empty schema (it refuses otherwise), so that is not reported; "
    "nor is a schema this file created",
    fix="drop the objects one by one, each after the application stopped using it and after a "
    "backup (ban-drop-table and the other rules then review each drop), and the empty schema "
    "last, without CASCADE",
    destructive=True,
)
def ban_drop_schema(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "DropStmt" or stmt.node.get("removeType") != "OBJECT_SCHEMA":
        return
    if stmt.node.get("behavior") != "DROP_CASCADE":
        return  # fails unless the schema is empty
    created = tracked(ctx, CreatedHere).schemas
    for name in _dropped_names(stmt):
        if name not in created:
            yield Hit(f"drops schema {name} and, through CASCADE, everything in it with its data")


@rule(
    "ban-drop-owned",
    severity="error",
    hazards=("deletes-data", "breaks-clients"),
    lock="AccessExclusiveLock",
    summary="DROP OWNED BY deletes every object the roles own in the database, and revokes "
    "their privileges.",
    why="every table the role owns is dropped with its rows (under ACCESS EXCLUSIVE), whatever "
    "schema it is in, and the privileges granted to the role are revoked, so its sessions start "
    "failing; the migration does not show which objects those are",
    fix="REASSIGN OWNED BY old_role TO new_role first (it keeps every object), then DROP OWNED "
    "BY old_role only removes the privileges left; or drop the role's objects one by one",
    destructive=True,
)
def ban_drop_owned(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "DropOwnedStmt":
        return
    roles = [
        r.get("RoleSpec", {}).get("rolename")
        or r.get("RoleSpec", {}).get("roletype", "").removeprefix("ROLESPEC_").lower()
        for r in stmt.node.get("roles") or []
    ]
    yield Hit(
        f"drops every object owned by {', '.join(roles)}, with the rows of its tables, and "
        "revokes its privileges"
    )


_VIEW_KINDS = {"OBJECT_VIEW": "view", "OBJECT_MATVIEW": "materialized view"}
_BEGINS = ("begin", "start transaction")
_ENDS = ("commit", "rollback", "prepare transaction")


@dataclass
class _ViewsMade:
    """Where the file creates views: (removeType, bare name) -> statement indexes, and the
    indexes of the statements that end a transaction (COMMIT, ROLLBACK, an autocommit step)."""

    made: dict[tuple[str, str], list[tuple[int, str]]] = field(default_factory=dict)
    ends: list[int] = field(default_factory=list)


def _views_made(statements: list[Stmt]) -> _ViewsMade:
    out = _ViewsMade()
    explicit = False
    for s in statements:
        n = s.node
        tx = s.raw.transaction_control
        if tx in _BEGINS:
            explicit = True
        elif tx in _ENDS:
            explicit = False
            out.ends.append(s.index)
        elif s.raw.non_transactional and not explicit:
            out.ends.append(s.index)
        if s.kind == "ViewStmt":
            name = range_name(n.get("view"))
            out.made.setdefault(("OBJECT_VIEW", _bare(name)), []).append((s.index, name))
        elif (
            s.kind == "CreateTableAsStmt"
            and n.get("objtype") == "OBJECT_MATVIEW"
            and not (n.get("into") or {}).get("skipData")
        ):
            name = range_name((n.get("into") or {}).get("rel"))
            out.made.setdefault(("OBJECT_MATVIEW", _bare(name)), []).append((s.index, name))
    return out


def _recreated(stmt: Stmt, ctx: Context, name: str, remove: str) -> bool:
    """Whether a later statement of the same transaction creates the view again (DROP VIEW +
    CREATE VIEW to change its columns): clients wait on the lock and then see the new one. A
    materialized view made WITH NO DATA does not count: reading it fails until REFRESH."""
    views = per_file(ctx, _views_made)
    if views is None or ctx.autocommit_step(stmt):
        return False
    end = bisect.bisect_right(views.ends, stmt.index)
    next_end = views.ends[end] if end < len(views.ends) else None
    for index, made in views.made.get((remove, _bare(name)), []):
        if index <= stmt.index or (next_end is not None and index > next_end):
            continue
        if made == name or (("." not in made or "." not in name) and _bare(made) == _bare(name)):
            return True
    return False


@rule(
    "ban-drop-view",
    severity="error",
    hazards=("breaks-clients", "deletes-data"),
    lock="AccessExclusiveLock",
    summary="DROP VIEW / DROP MATERIALIZED VIEW removes a relation clients query.",
    why="queries, reports and application code that read the view fail at once; a materialized "
    "view also takes its stored rows with it (rebuilding them means re-running the query). "
    "Not reported: a view this file created, or one created again later in the same "
    "transaction (DROP + CREATE to change its columns: clients wait on the lock, then see the "
    "new one)",
    fix="stop using the view in the application first, then drop it in a later release; to "
    "change a view's definition use CREATE OR REPLACE VIEW (it may add columns at the end), or "
    "DROP and CREATE it in the same migration",
    destructive=True,
)
def ban_drop_view(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    remove = stmt.node.get("removeType", "") if stmt.kind == "DropStmt" else ""
    what = _VIEW_KINDS.get(remove)
    if what is None:
        return
    created = tracked(ctx, CreatedHere).views
    cascade = stmt.node.get("behavior") == "DROP_CASCADE"
    for name in _dropped_names(stmt):
        if (
            name in created
            or (remove == "OBJECT_MATVIEW" and ctx.is_new_table(name))
            or _recreated(stmt, ctx, name, remove)
        ):
            continue
        extra = ", and through CASCADE every view built on it" if cascade else ""
        if remove == "OBJECT_MATVIEW":
            yield Hit(f"drops {what} {name} and its stored rows{extra}")
        else:
            yield Hit(f"drops {what} {name}{extra}", hazards=("breaks-clients",))


# ALTER TABLE subcommands that copy the whole table into new files under ACCESS EXCLUSIVE
# (each a no-op when the table is already logged / unlogged / in that tablespace / method).
_REWRITING = {
    "AT_SetLogged": "SET LOGGED",
    "AT_SetUnLogged": "SET UNLOGGED",
    "AT_SetTableSpace": "SET TABLESPACE",
    "AT_SetAccessMethod": "SET ACCESS METHOD",
}


@rule(
    "ban-rewriting-alter-table",
    severity="error",
    hazards=("rewrites-table",),
    lock="AccessExclusiveLock",
    summary="ALTER TABLE ... SET LOGGED / SET UNLOGGED / SET TABLESPACE / SET ACCESS METHOD "
    "copies the whole table under ACCESS EXCLUSIVE.",
    why="each writes every row of the table into new files (SET LOGGED also through the WAL) "
    "while reads and writes wait, minutes to hours on a large table (verified with "
    "pg_relation_filenode on PostgreSQL 15); each is a no-op only when the table already is "
    "that way. An unlogged table is also emptied after a crash and not replicated. ALTER TABLE "
    "ALL IN TABLESPACE moves every table of the tablespace, one lock and copy after another",
    fix="schedule it in a maintenance window, or rebuild the table online with a tool such as "
    "pg_repack (which can move it to another tablespace); for a new table, create it logged, "
    "in the right tablespace and access method to begin with",
)
def ban_rewriting_alter_table(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    n = stmt.node
    if stmt.kind == "AlterTableMoveAllStmt":
        kind = str(n.get("objtype", "")).removeprefix("OBJECT_").lower().replace("_", " ")
        yield Hit(
            f"moves every {kind} in tablespace {n.get('orig_tablespacename')} to "
            f"{n.get('new_tablespacename')}: each is copied under ACCESS EXCLUSIVE"
        )
        return
    if stmt.kind != "AlterTableStmt" or n.get("objtype") not in ("OBJECT_TABLE", "OBJECT_MATVIEW"):
        return
    table = range_name(n.get("relation"))
    if ctx.is_new_table(table):
        return  # empty, and nobody else can see it yet
    for cmd in alter_cmds(stmt):
        what = _REWRITING.get(cmd.get("subtype", ""))
        if what is None:
            continue
        target = f" {cmd['name']}" if cmd.get("name") else ""
        extra = ""
        if cmd.get("subtype") == "AT_SetUnLogged":
            extra = "; an unlogged table is emptied after a crash and not replicated"
        yield Hit(
            f"{what}{target} copies every row of {table} into new files under ACCESS "
            f"EXCLUSIVE, blocking reads and writes until it is done{extra}"
        )
