"""Lint rules: adding, dropping and renaming columns (and renaming tables)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pgsafe.lint.context import Context
from pgsafe.lint.model import Hit, Stmt, alter_cmds, range_name, rule, strings, walk
from pgsafe.lint.rules._tracking import Tracker, tracked
from pgsafe.lint.rules.types import col_type

# Built-in and common extension functions that are VOLATILE: PostgreSQL evaluates them once
# per row, so a column added with one as its default is filled by rewriting the table. (now(),
# CURRENT_TIMESTAMP, statement_timestamp() and transaction_timestamp() are STABLE: evaluated
# once, stored as the "missing value", no rewrite since PostgreSQL 11.)
VOLATILE_FUNCTIONS = frozenset(
    {
        "random",
        "random_normal",
        "setseed",
        "gen_random_uuid",
        "uuidv4",
        "uuidv7",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "uuid_generate_v7",
        "gen_random_bytes",
        "gen_salt",
        "nextval",
        "currval",
        "lastval",
        "setval",
        "clock_timestamp",
        "timeofday",
        "current_query",
        "set_config",
        "lo_creat",
        "lo_create",
        "lo_import",
        "lo_from_bytea",
        "query_to_xml",
        "cursor_to_xml",
    }
)

SERIAL_TYPES = ("serial", "serial2", "serial4", "serial8", "smallserial", "bigserial")


def _constraints(cd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The column's constraints by contype (CONSTR_DEFAULT, CONSTR_NOTNULL, ...)."""
    out: dict[str, dict[str, Any]] = {}
    for c in cd.get("constraints") or []:
        con = c.get("Constraint")
        if con:
            out.setdefault(con.get("contype", ""), con)
    return out


def _is_null(expr: dict[str, Any] | None) -> bool:
    while expr and "TypeCast" in expr:  # NULL::text::int ...: a loop, for any depth
        expr = expr["TypeCast"].get("arg")
    if not expr:
        return True
    return bool(expr.get("A_Const", {}).get("isnull"))


class FileObjects(Tracker):
    """Functions (name -> volatility; PostgreSQL's default is VOLATILE) and views (with and
    without schema) this file created, as of the statements so far."""

    def __init__(self) -> None:
        self.functions: dict[str, str] = {}
        self.views: set[str] = set()

    def feed(self, stmt: Stmt) -> None:
        if stmt.kind == "ViewStmt":
            name = range_name(stmt.node.get("view"))
            self.views |= {name, name.rsplit(".", 1)[-1]}
        if stmt.kind != "CreateFunctionStmt":
            return
        name = (strings(stmt.node.get("funcname")) or [""])[-1].lower()
        volatility = "volatile"
        for opt in stmt.node.get("options") or []:
            d = opt.get("DefElem", {})
            if d.get("defname") == "volatility":
                volatility = d.get("arg", {}).get("String", {}).get("sval", volatility)
        self.functions[name] = volatility


def _file_functions(ctx: Context) -> dict[str, str]:
    """Volatility of the functions this file created (PostgreSQL's default is VOLATILE)."""
    return tracked(ctx, FileObjects).functions


def _volatile_calls(expr: dict[str, Any], ctx: Context) -> list[str]:
    defined = _file_functions(ctx)
    out = []
    for kind, n in walk({"expr": expr}):
        if kind != "FuncCall":
            continue
        name = (strings(n.get("funcname")) or [""])[-1].lower()
        if name in defined:
            if defined[name] == "volatile":
                out.append(f"{name}()")
        elif name in VOLATILE_FUNCTIONS:
            out.append(f"{name}()")
    return out


class ConstrainedDomains(Tracker):
    """Domains this file created or altered with a CHECK or NOT NULL constraint: bare name ->
    "CHECK" or "NOT NULL" (NOT NULL wins: it also fails on the NULLs of a column without a
    default)."""

    def __init__(self) -> None:
        self.domains: dict[str, str] = {}

    def _add(self, names: list[str], kind: str) -> None:
        if names and self.domains.get(names[-1]) != "NOT NULL":
            self.domains[names[-1]] = kind

    def feed(self, stmt: Stmt) -> None:
        n = stmt.node
        if stmt.kind == "CreateDomainStmt":
            for c in n.get("constraints") or []:
                kind = c.get("Constraint", {}).get("contype")
                if kind in ("CONSTR_CHECK", "CONSTR_NOTNULL"):
                    self._add(
                        strings(n.get("domainname")),
                        "CHECK" if kind == "CONSTR_CHECK" else "NOT NULL",
                    )
        elif stmt.kind == "AlterDomainStmt" and n.get("subtype") in ("C", "O"):
            con = (n.get("def") or {}).get("Constraint", {})
            kind = "NOT NULL" if n["subtype"] == "O" else "CHECK"
            if kind == "NOT NULL" or con.get("contype") == "CONSTR_CHECK":
                self._add(strings(n.get("typeName")), kind)


def _domain_constraint(cd: dict[str, Any], ctx: Context) -> tuple[str, str] | None:
    """(domain, "CHECK" / "NOT NULL") when the column's type is a domain with a constraint,
    as far as this file shows."""
    t = col_type(cd.get("typeName"))
    if t.array:
        return None  # checked per element, but arrays of domains are rare: not claimed
    bare = t.name.rsplit(".", 1)[-1]
    kind = tracked(ctx, ConstrainedDomains).domains.get(bare)
    return (t.name, kind) if kind else None


def _added_columns(stmt: Stmt) -> Iterator[tuple[str, dict[str, Any]]]:
    if stmt.node.get("objtype") == "OBJECT_TYPE":
        return  # ALTER TYPE ... ADD ATTRIBUTE: no default, no table of its own
    table = range_name(stmt.node.get("relation"))
    for cmd in alter_cmds(stmt):
        cd = (cmd.get("def") or {}).get("ColumnDef")
        if cmd.get("subtype") == "AT_AddColumn" and cd:
            yield table, cd


def _fills_every_row(cd: dict[str, Any], ctx: Context) -> str | None:
    """Why adding this column writes a value into every existing row, if it does."""
    cons = _constraints(cd)
    column = cd.get("colname", "")
    t = col_type(cd.get("typeName"))
    if t.name in SERIAL_TYPES:
        return f"{column} is {t.name}: its nextval() default is evaluated for every row"
    if "CONSTR_IDENTITY" in cons:
        return f"{column} is an identity column: the sequence numbers every existing row"
    default = cons.get("CONSTR_DEFAULT", {}).get("raw_expr")
    domain = _domain_constraint(cd, ctx)
    if domain is not None and (domain[1] == "CHECK" or not _is_null(default)):
        return (
            f"{column} is of domain {domain[0]}, which has a {domain[1]} constraint: PostgreSQL "
            "checks it by rewriting every row (even a domain created in this file)"
        )
    if _is_null(default):
        return None
    assert default is not None
    volatile = _volatile_calls(default, ctx)
    if volatile:
        return f"the default of {column} calls volatile {', '.join(volatile)}, evaluated per row"
    if ctx.pg_version < 11:
        return f"before PostgreSQL 11 any default on {column} is written into every row"
    return None


@rule(
    "adding-field-with-default",
    severity="error",
    hazards=("rewrites-table",),
    lock="AccessExclusiveLock",
    summary="ADD COLUMN with a volatile default (or any default before PostgreSQL 11, a "
    "serial/identity column, or a domain type with a constraint) rewrites the table.",
    why="PostgreSQL 11+ stores a constant or STABLE default (42, 'x', now(), CURRENT_TIMESTAMP) "
    "once in the catalog, but a VOLATILE one (random(), gen_random_uuid(), clock_timestamp(), "
    "nextval() of a serial or identity) must be computed for every row, so the whole table is "
    "rewritten while ACCESS EXCLUSIVE blocks reads and writes; before 11 every default did this. "
    "A column of a domain with a CHECK constraint (or a NOT NULL one, given a default) is "
    "rewritten too, default or not, so that every row is checked against the domain (verified "
    "with pg_relation_filenode on PostgreSQL 15); pgsafe knows a domain's constraints only when "
    "this file created or altered it",
    fix="add the column without a default (nullable), then ALTER COLUMN SET DEFAULT for new "
    "rows, backfill existing rows in batches (UPDATE ... WHERE id BETWEEN ...), and only then add "
    "NOT NULL (via a CHECK (col IS NOT NULL) NOT VALID constraint, VALIDATE, SET NOT NULL). "
    "For an identity or serial column: add a plain nullable bigint, backfill it in batches, set "
    "NOT NULL as above, then ALTER COLUMN ... ADD GENERATED BY DEFAULT AS IDENTITY (START WITH "
    "max + 1), which does not rewrite",
)
def adding_field_with_default(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, cd in _added_columns(stmt):
        if ctx.is_new_table(table):
            continue
        reason = _fills_every_row(cd, ctx)
        if reason is not None:
            yield Hit(
                f"adds {table}.{cd.get('colname', '')} and rewrites {table} under ACCESS "
                f"EXCLUSIVE: {reason}",
                location=cd.get("location"),
            )


@rule(
    "adding-required-field",
    severity="error",
    hazards=("may-fail-on-data", "breaks-clients"),
    lock="AccessExclusiveLock",
    summary="ADD COLUMN ... NOT NULL without a default fails on a table with rows.",
    why="existing rows would get NULL, so the statement fails as soon as the table has a row; "
    "where it succeeds, every client that inserts without naming the new column starts failing. "
    "A column of a NOT NULL domain (created or altered in this file) is the same",
    fix="add the column with a constant DEFAULT (no rewrite on PostgreSQL 11+), or add it "
    "nullable, backfill in batches, then enforce NOT NULL with a CHECK (col IS NOT NULL) NOT "
    "VALID constraint, VALIDATE CONSTRAINT and SET NOT NULL",
)
def adding_required_field(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, cd in _added_columns(stmt):
        if ctx.is_new_table(table):
            continue
        cons = _constraints(cd)
        domain = _domain_constraint(cd, ctx)
        not_null = "CONSTR_NOTNULL" in cons or "CONSTR_PRIMARY" in cons
        if not not_null and (domain is None or domain[1] != "NOT NULL"):
            continue
        default = cons.get("CONSTR_DEFAULT", {}).get("raw_expr")
        filled = (
            not _is_null(default)
            or "CONSTR_IDENTITY" in cons
            or "CONSTR_GENERATED" in cons
            or col_type(cd.get("typeName")).name in SERIAL_TYPES
        )
        if not filled:
            column = f"{table}.{cd.get('colname', '')}"
            what = (
                f"NOT NULL column {column}"
                if not_null or domain is None
                else f"column {column} of NOT NULL domain {domain[0]}"
            )
            yield Hit(
                f"adds {what} without a default: fails if the table has rows",
                location=cd.get("location"),
            )


@rule(
    "adding-stored-generated-column",
    severity="error",
    hazards=("rewrites-table",),
    lock="AccessExclusiveLock",
    summary="ADD COLUMN ... GENERATED ALWAYS AS (...) STORED rewrites the table.",
    why="the expression is computed and stored for every existing row, rewriting the table while "
    "ACCESS EXCLUSIVE blocks reads and writes",
    fix="compute the value on read (a VIRTUAL generated column on PostgreSQL 18, a view or an "
    "expression index), or add a plain nullable column kept up to date by a trigger and "
    "backfill it in batches",
)
def adding_stored_generated_column(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, cd in _added_columns(stmt):
        if ctx.is_new_table(table):
            continue
        generated = _constraints(cd).get("CONSTR_GENERATED")
        # VIRTUAL (PostgreSQL 18, and its default there) computes on read: no rewrite.
        if generated is not None and generated.get("generated_kind") != "v":
            yield Hit(
                f"adds stored generated column {table}.{cd.get('colname', '')}: rewrites "
                f"{table} under ACCESS EXCLUSIVE",
                location=cd.get("location"),
            )


def _added_earlier(stmt: Stmt, upto: dict[str, Any]) -> set[str]:
    """Columns added by commands of this ALTER TABLE that come before `upto`."""
    out = set()
    for cmd in alter_cmds(stmt):
        if cmd is upto:
            break
        cd = (cmd.get("def") or {}).get("ColumnDef")
        if cmd.get("subtype") == "AT_AddColumn" and cd:
            out.add(cd.get("colname", ""))
    return out


def _existing_column_cmds(stmt: Stmt, ctx: Context, subtype: str) -> Iterator[tuple[str, str]]:
    if stmt.node.get("objtype") == "OBJECT_TYPE":
        return  # ALTER TYPE ... DROP ATTRIBUTE: see ban-drop-attribute
    table = range_name(stmt.node.get("relation"))
    for cmd in alter_cmds(stmt):
        if cmd.get("subtype") != subtype:
            continue
        column = cmd.get("name", "")
        if ctx.is_new_column(table, column) or column in _added_earlier(stmt, cmd):
            continue
        yield table, column


@rule(
    "ban-drop-column",
    severity="error",
    hazards=("deletes-data", "breaks-clients"),
    lock="AccessExclusiveLock",
    summary="DROP COLUMN deletes the column's data.",
    why="the values are gone for good (IF EXISTS does not change that), and running code that "
    "still selects or inserts the column fails at once",
    fix="stop reading and writing the column in the application and deploy that first (for ORMs, "
    "mark it ignored), back up the values, then drop it in a later migration",
    destructive=True,
)
def ban_drop_column(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, column in _existing_column_cmds(stmt, ctx, "AT_DropColumn"):
        yield Hit(f"drops column {table}.{column} and its data")


@rule(
    "ban-drop-attribute",
    severity="error",
    hazards=("deletes-data", "breaks-clients"),
    lock=None,
    summary="ALTER TYPE ... DROP ATTRIBUTE removes a field from a composite type, and from every "
    "value of that type stored in tables.",
    why="values of the attribute stored in columns of the composite type become unreadable at "
    "once (the column keeps the other fields), with no lock on those tables and no error; with "
    "CASCADE the column is also dropped from every typed table (CREATE TABLE ... OF type), with "
    "its data, under ACCESS EXCLUSIVE. Without CASCADE PostgreSQL refuses it only when a typed "
    "table exists (verified on PostgreSQL 15)",
    fix="stop reading and writing the attribute first, copy its values out if they are needed, "
    "then drop it in a later migration; a composite type created in the same file is not "
    "reported",
    destructive=True,
)
def ban_drop_attribute(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.node.get("objtype") != "OBJECT_TYPE":
        return
    name = range_name(stmt.node.get("relation"))
    if name in ctx.created_types or name.rsplit(".", 1)[-1] in ctx.created_types:
        return  # nothing stores values of a type this file creates yet
    for cmd in alter_cmds(stmt):
        if cmd.get("subtype") != "AT_DropColumn":
            continue
        cascade = (
            f", and through CASCADE the column {cmd.get('name', '')} of every typed table of "
            f"{name} with its data"
            if cmd.get("behavior") == "DROP_CASCADE"
            else ""
        )
        yield Hit(
            f"drops attribute {cmd.get('name', '')} of composite type {name}: its values in "
            f"every column of type {name} are lost{cascade}"
        )


@rule(
    "ban-drop-not-null",
    severity="warning",
    hazards=("breaks-clients",),
    lock="AccessExclusiveLock",
    summary="DROP NOT NULL lets NULLs into a column readers assume is never NULL.",
    why="code, reports and downstream consumers written against the NOT NULL column break on "
    "the first NULL; putting the constraint back later needs a full-table scan",
    fix="make the readers NULL-safe first, or keep NOT NULL and give new writes a default",
)
def ban_drop_not_null(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, column in _existing_column_cmds(stmt, ctx, "AT_DropNotNull"):
        yield Hit(f"drops NOT NULL from {table}.{column}")


_RELATIONS = {
    "OBJECT_TABLE": "table",
    "OBJECT_VIEW": "view",
    "OBJECT_MATVIEW": "materialized view",
    "OBJECT_FOREIGN_TABLE": "foreign table",
}


def _created_views(ctx: Context) -> set[str]:
    return tracked(ctx, FileObjects).views


@rule(
    "renaming-column",
    severity="error",
    hazards=("breaks-clients",),
    lock="AccessExclusiveLock",
    summary="RENAME COLUMN breaks every client that uses the old name.",
    why="application code deployed before the migration keeps using the old name and fails the "
    "moment the rename commits; there is no window in which both names work",
    fix="expand/contract: add the new column, write both, backfill, move reads to the new one, "
    "then drop the old column in a later release",
)
def renaming_column(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    n = stmt.node
    if stmt.kind != "RenameStmt" or n.get("renameType") != "OBJECT_COLUMN":
        return
    kind = _RELATIONS.get(n.get("relationType", ""))
    table = range_name(n.get("relation"))
    if (
        kind is None
        or ctx.is_new_column(table, n.get("subname", ""))
        or table in _created_views(ctx)
    ):
        return
    yield Hit(f"renames column {table}.{n.get('subname', '')} to {n.get('newname', '')}")


@rule(
    "renaming-table",
    severity="error",
    hazards=("breaks-clients",),
    lock="AccessExclusiveLock",
    summary="RENAME TO on a table breaks every client that uses the old name.",
    why="queries, views' callers and application code still using the old name fail the moment "
    "the rename commits",
    fix="rename, then create a view with the old name (SELECT * FROM new_name; simple views are "
    "updatable) until every client has moved, then drop the view; or copy to a new table with "
    "dual writes",
)
def renaming_table(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    n = stmt.node
    if stmt.kind != "RenameStmt":
        return
    kind = _RELATIONS.get(n.get("renameType", ""))
    table = range_name(n.get("relation"))
    if kind is None or not table or ctx.is_new_table(table) or table in _created_views(ctx):
        return
    yield Hit(f"renames {kind} {table} to {n.get('newname', '')}")
