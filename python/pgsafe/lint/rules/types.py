"""Lint rules: column types. Changing a column's type (a rewrite unless PostgreSQL can prove
the change binary-coercible), narrowing it (data lost or the ALTER fails), and the schema
warnings about types that age badly (int, serial, varchar(n), timestamp, json, char(n))."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pgsafe.lint.context import Context
from pgsafe.lint.model import Hit, Stmt, alter_cmds, range_name, rule, strings, walk
from pgsafe.lint.rules._tracking import Tracker, tracked

# -- column types as the parser wrote them ---------------------------------------------------


@dataclass(frozen=True)
class ColType:
    """A column type: canonical name (`varchar`, `int4`; `schema.name` for a type outside
    pg_catalog), integer typmods (`(10, 2)` for numeric(10,2); `None` when one is not an integer
    literal) and whether it is an array."""

    name: str
    mods: tuple[int, ...] | None
    array: bool

    @property
    def length(self) -> int | None:
        """The first typmod (a length or a precision), or None when unbounded or unknown."""
        return self.mods[0] if self.mods else None

    def __str__(self) -> str:
        mods = f"({','.join(map(str, self.mods))})" if self.mods else ""
        return f"{_SHOWN.get(self.name, self.name)}{mods}{'[]' if self.array else ''}"


_SHOWN = {
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
    "bpchar": "char",
    "float4": "real",
    "float8": "double precision",
    "varbit": "bit varying",
}


def _int_const(node: dict[str, Any]) -> int | None:
    const = node.get("A_Const")
    if const is None or "ival" not in const:
        return None
    return int(const["ival"].get("ival", 0))  # libpg_query leaves out a zero


def col_type(type_node: dict[str, Any] | None) -> ColType:
    tn = type_node or {}
    names = strings(tn.get("names"))
    if len(names) > 1 and names[0] != "pg_catalog":
        name = ".".join(names)
    else:
        name = names[-1] if names else ""
    values = [_int_const(m) for m in tn.get("typmods") or []]
    ints = [v for v in values if v is not None]
    mods = tuple(ints) if len(ints) == len(values) else None
    return ColType(name, mods, bool(tn.get("arrayBounds")))


def _bare(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def column_defs(stmt: Stmt) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(table, column, ColumnDef) of every column a statement defines or re-types: CREATE TABLE
    columns, ALTER TABLE ADD COLUMN and ALTER COLUMN TYPE."""
    if stmt.kind == "CreateStmt":
        table = range_name(stmt.node.get("relation"))
        for elt in stmt.node.get("tableElts") or []:
            cd = elt.get("ColumnDef")
            if cd and cd.get("typeName"):
                yield table, cd.get("colname", ""), cd
    elif stmt.kind == "AlterTableStmt":
        table = range_name(stmt.node.get("relation"))
        for cmd in alter_cmds(stmt):
            cd = (cmd.get("def") or {}).get("ColumnDef")
            if not cd or not cd.get("typeName"):
                continue
            if cmd.get("subtype") == "AT_AddColumn":
                yield table, cd.get("colname", ""), cd
            elif cmd.get("subtype") == "AT_AlterColumnType":
                yield table, cmd.get("name", ""), cd


def _note_types(types: dict[tuple[str, str], ColType], stmt: Stmt) -> None:
    """Update `types` with what one statement does to column types: CREATE TABLE, ADD COLUMN
    and ALTER COLUMN TYPE set a column's type, DROP COLUMN forgets it, renames follow it."""
    for table, column, cd in column_defs(stmt):
        types[(_bare(table), column)] = col_type(cd["typeName"])
    if stmt.kind == "AlterTableStmt":
        table = _bare(range_name(stmt.node.get("relation")))
        for cmd in alter_cmds(stmt):
            if cmd.get("subtype") == "AT_DropColumn":
                types.pop((table, cmd.get("name", "")), None)
    elif stmt.kind == "RenameStmt":
        table = _bare(range_name(stmt.node.get("relation")))
        kind = stmt.node.get("renameType")
        new = stmt.node.get("newname", "")
        if kind == "OBJECT_COLUMN" and (table, stmt.node.get("subname", "")) in types:
            types[(table, new)] = types.pop((table, stmt.node.get("subname", "")))
        elif kind == "OBJECT_TABLE":
            for key in [k for k in types if k[0] == table]:
                types[(new, key[1])] = types.pop(key)


class FileTypes(Tracker):
    """The type of every column the statements so far defined, keyed by (bare table name,
    column), and whether the session time zone is UTC; kept up to date statement by statement
    (see _tracking)."""

    def __init__(self) -> None:
        self.types: dict[tuple[str, str], ColType] = {}
        self.utc = False  # an earlier SET TIME ZONE left the session in UTC

    def feed(self, stmt: Stmt) -> None:
        _note_types(self.types, stmt)
        if stmt.kind == "VariableSetStmt":
            self.utc = _utc_after(stmt, self.utc)


def file_column_type(ctx: Context, table: str, column: str) -> ColType | None:
    """The type of table.column as the statements before this one left it, when this file
    shows it."""
    return tracked(ctx, FileTypes).types.get((_bare(table), column))


def _type_before(
    stmt: Stmt, ctx: Context, upto: dict[str, Any], table: str, column: str
) -> ColType | None:
    """The column's type just before the ALTER TABLE command `upto`, when this file shows it
    (earlier statements, or earlier commands of the same ALTER TABLE)."""
    found = file_column_type(ctx, table, column)
    for cmd in alter_cmds(stmt):
        if cmd is upto:
            break
        sub = cmd.get("subtype")
        cd = (cmd.get("def") or {}).get("ColumnDef")
        if sub == "AT_AddColumn" and cd and cd.get("typeName") and cd.get("colname") == column:
            found = col_type(cd["typeName"])
        elif sub == "AT_AlterColumnType" and cd and cd.get("typeName"):
            if cmd.get("name") == column:
                found = col_type(cd["typeName"])
        elif sub == "AT_DropColumn" and cmd.get("name") == column:
            found = None
    return found


_UTC = {
    "utc",
    "etc/utc",
    "uct",
    "etc/uct",
    "gmt",
    "etc/gmt",
    "gmt0",
    "etc/gmt0",
    "greenwich",
    "universal",
    "etc/universal",
    "zulu",
    "etc/zulu",
    "z",
}


def _utc_after(stmt: Stmt, utc: bool) -> bool:
    """Whether the session is in UTC after the SET statement `stmt`, given whether it was."""
    n = stmt.node
    if n.get("kind") == "VAR_RESET_ALL":
        utc = False
    if n.get("name") != "timezone":
        return utc
    args = n.get("args") or []
    if n.get("kind") != "VAR_SET_VALUE" or len(args) != 1 or "A_Const" not in args[0]:
        return False
    const = args[0]["A_Const"]
    if "sval" in const:
        return bool(const["sval"].get("sval", "").lower() in _UTC)
    return _int_const(args[0]) == 0


def _session_in_utc(ctx: Context) -> bool:
    """Whether an earlier SET TIME ZONE of this file left the session in UTC."""
    return tracked(ctx, FileTypes).utc


_BOUNDED = ("varchar", "varbit", "timestamp", "timestamptz", "time", "timetz")
_STRINGS = ("varchar", "text")


def no_rewrite(old: ColType, new: ColType, ctx: Context) -> bool:
    """True when PostgreSQL changes `old` to `new` without rewriting the table (and keeps the
    indexes): the binary-coercible changes its ALTER COLUMN TYPE recognises."""
    if old == new:
        return True
    if old.array or new.array or old.mods is None or new.mods is None:
        return False  # array element coercions rewrite, even varchar(n)[] widening
    if old.name == new.name and old.name in _BOUNDED:
        # varchar(n) -> varchar(m >= n) or varchar; the same for bit varying and the
        # precision of timestamp / timestamptz / time / timetz
        return not new.mods or (bool(old.mods) and new.mods[0] >= old.mods[0])
    if old.name in _STRINGS and new.name == "text":
        return True
    if old.name in _STRINGS and new.name == "varchar" and not new.mods:
        return True
    if old.name == new.name == "numeric":
        if not new.mods:
            return True  # numeric(p,s) -> numeric
        if not old.mods:
            return False
        old_p, old_s = old.mods[0], (old.mods[1] if len(old.mods) > 1 else 0)
        new_p, new_s = new.mods[0], (new.mods[1] if len(new.mods) > 1 else 0)
        return new_s == old_s and new_p >= old_p
    if (old.name, new.name) == ("cidr", "inet"):
        return True
    if {old.name, new.name} == {"timestamp", "timestamptz"}:
        # PostgreSQL 12+ skips the rewrite when the session time zone is UTC.
        same_precision = not new.mods or (bool(old.mods) and new.mods[0] >= old.mods[0])
        return ctx.pg_version >= 12 and _session_in_utc(ctx) and same_precision
    return False


def _assumed_timestamptz_fix(new: ColType, ctx: Context) -> bool:
    """A change to timestamptz in a UTC session on PostgreSQL 12+, when the file does not show
    the old type, is taken to be the timestamp -> timestamptz fix prefer-timestamptz recommends,
    which then needs no rewrite. (No such guess for text or varchar: int, numeric or date ->
    text rewrites as surely as any other change.)"""
    return (
        new.name == "timestamptz"
        and not new.array
        and ctx.pg_version >= 12
        and _session_in_utc(ctx)
    )


def _column_ref(expr: dict[str, Any] | None, column: str) -> bool:
    ref = (expr or {}).get("ColumnRef")
    return ref is not None and strings(ref.get("fields"))[-1:] == [column]


def _plain_using(using: dict[str, Any] | None, column: str, new: ColType) -> bool:
    """No USING, `USING col`, or `USING col::newtype`: nothing the plain ALTER would not do."""
    if using is None or _column_ref(using, column):
        return True
    cast = using.get("TypeCast")
    return (
        cast is not None
        and _column_ref(cast.get("arg"), column)
        and col_type(cast.get("typeName")) == new
    )


def _type_changes(
    stmt: Stmt, *, composite: bool = False
) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(table, column, ColumnDef, AlterTableCmd) of every ALTER COLUMN TYPE of an ALTER TABLE.
    ALTER FOREIGN TABLE changes no stored data; ALTER TYPE ... ALTER ATTRIBUTE (a composite
    type) only with `composite`."""
    objtype = stmt.node.get("objtype")
    if objtype != "OBJECT_TABLE" and not (composite and objtype == "OBJECT_TYPE"):
        return
    table = range_name(stmt.node.get("relation"))
    for cmd in alter_cmds(stmt):
        cd = (cmd.get("def") or {}).get("ColumnDef")
        if cmd.get("subtype") == "AT_AlterColumnType" and cd:
            yield table, cmd.get("name", ""), cd, cmd


@rule(
    "changing-column-type",
    severity="error",
    hazards=("rewrites-table",),
    lock="AccessExclusiveLock",
    summary="ALTER COLUMN TYPE rewrites the table and rebuilds its indexes under ACCESS "
    "EXCLUSIVE, unless the change is binary-coercible.",
    why="every row is rewritten and every index rebuilt while reads and writes wait; on a large "
    "table that is minutes of downtime. No rewrite is needed only for varchar(n) -> varchar(m>=n) "
    "/ varchar / text, text -> varchar, numeric(p,s) -> numeric(p'>=p,s) / numeric, cidr -> inet, "
    "bit varying and timestamp/time precision widening, and timestamp <-> timestamptz on "
    "PostgreSQL 12+ when the session time zone is UTC. pgsafe checks these against the column's "
    "type as this file defines it; when the file does not show it, the change is reported, "
    "since pgsafe cannot prove it binary-coercible (int -> text, say, rewrites), except a change "
    "to timestamptz in a UTC session, taken to be the timestamp -> timestamptz fix. ALTER TYPE "
    "... ALTER ATTRIBUTE ... CASCADE rewrites every typed table (CREATE TABLE ... OF) of the "
    "composite type the same way",
    fix="add a new column of the new type, keep it in sync with a trigger, backfill it in "
    "batches, switch the application over, then drop the old column (expand/contract); "
    "for a varchar limit, change to text and add a CHECK (length(col) <= n) NOT VALID "
    "constraint validated in a later step. To drop a varchar limit without a report, state the "
    "old type in a suppression reason: -- pgsafe: ignore changing-column-type reason: "
    "varchar(n) -> text is binary-coercible",
    destructive=True,
)
def changing_column_type(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, column, cd, cmd in _type_changes(stmt, composite=True):
        new = col_type(cd.get("typeName"))
        if stmt.node.get("objtype") == "OBJECT_TYPE":
            # Without CASCADE it changes the type only (or fails, if a table uses it).
            if cmd.get("behavior") == "DROP_CASCADE" and table not in ctx.created_types:
                yield Hit(
                    f"changes attribute {column} of composite type {table} to {new} with "
                    f"CASCADE: rewrites every typed table of {table} (CREATE TABLE ... OF "
                    f"{table}) and rebuilds its indexes under ACCESS EXCLUSIVE",
                    location=cd.get("location"),
                )
            continue
        if ctx.is_new_table(table):
            continue  # an empty table nobody else can see yet
        old = _type_before(stmt, ctx, cmd, table, column)
        using = cd.get("raw_default")
        plain = _plain_using(using, column, new) and not cd.get("collClause")
        if old is not None and plain and no_rewrite(old, new, ctx):
            continue
        if (
            old is None
            and using is None
            and not cd.get("collClause")
            and _assumed_timestamptz_fix(new, ctx)
        ):
            continue
        rewrite = f"rewrites {table} and rebuilds its indexes"
        if old is None:
            detail = (
                f"{rewrite} unless the change is binary-coercible, which pgsafe cannot prove "
                f"without the old type: the column's current type is not in this file"
            )
            if new.name in ("text", "varchar") and not new.array and not new.mods and plain:
                detail += (
                    " (from varchar or text it would be free; from int, numeric, date or any "
                    "other type it rewrites)"
                )
        elif cd.get("collClause") and old == new:
            detail = "the new collation rebuilds every index on the column"
        elif no_rewrite(old, new, ctx):
            detail = f"{old} -> {new} would be binary-coercible, but the USING clause {rewrite}"
        else:
            detail = f"{old} -> {new} is not binary-coercible: {rewrite}"
        if old is not None and ctx.is_new_column(table, column):
            detail += (
                f"; {column} was added earlier in this file, yet every existing row of {table} "
                "is rewritten (declare the final type in ADD COLUMN instead)"
            )
        yield Hit(
            f"changes {table}.{column} to {new} under ACCESS EXCLUSIVE: {detail}",
            location=cd.get("location"),
        )


_INT_RANK = {"int2": 1, "int4": 2, "int8": 3}
_FLOAT = ("float4", "float8")
_TIMESTAMPS = ("timestamp", "timestamptz")
_CHARS = ("varchar", "bpchar")
_TRUNCATING = {
    "left",
    "right",
    "substr",
    "substring",
    "trunc",
    "round",
    "floor",
    "ceil",
    "ceiling",
    "date_trunc",
    "split_part",
    "overlay",
}
_DELETES = ("deletes-data", "rewrites-table")
_MAY_FAIL = ("may-fail-on-data", "rewrites-table")


def _narrowing(old: ColType, new: ColType) -> tuple[str, tuple[str, ...]] | None:
    """Why changing `old` to `new` loses or rejects existing values, if it visibly does."""
    if old.array != new.array or old.mods is None or new.mods is None:
        return None
    shorter = new.length is not None and (old.length is None or new.length < old.length)
    if new.name in _CHARS and old.name in ("text", "varchar", "bpchar") and shorter:
        return (f"values longer than {new.length} characters make the ALTER fail", _MAY_FAIL)
    if new.name in _INT_RANK:
        if old.name in _INT_RANK and _INT_RANK[new.name] < _INT_RANK[old.name]:
            return (f"values outside the {new} range make the ALTER fail", _MAY_FAIL)
        if old.name in (*_FLOAT, "numeric"):
            return ("fractions are rounded away", _DELETES)
    if (old.name, new.name) == ("float8", "float4"):
        return ("values lose precision (float8 has 15 digits, float4 6)", _DELETES)
    if old.name == "numeric" and new.name in _FLOAT:
        return ("exact decimals become approximate binary floats", _DELETES)
    if old.name == new.name == "numeric" and new.mods:
        old_s = (old.mods[1] if len(old.mods) > 1 else 0) if old.mods else None
        new_p, new_s = new.mods[0], (new.mods[1] if len(new.mods) > 1 else 0)
        if old_s is None or new_s < old_s:
            return (f"values are rounded to {new_s} decimal places", _DELETES)
        if new_p - new_s < old.mods[0] - old_s:
            return ("values with more integer digits than fit make the ALTER fail", _MAY_FAIL)
    if old.name in _TIMESTAMPS and new.name == "date":
        return ("the time of day is cut off every value", _DELETES)
    if old.name == new.name and old.name in (*_TIMESTAMPS, "time", "timetz"):
        old_p = old.length if old.length is not None else 6
        if new.length is not None and new.length < old_p:
            return (f"fractional seconds are rounded to {new.length} digits", _DELETES)
    if old.name == new.name == "varbit" and shorter:
        return (f"bit strings longer than {new.length} make the ALTER fail", _MAY_FAIL)
    return None


def _using_loses(using: dict[str, Any], column: str, old: ColType | None) -> str | None:
    """Why a USING expression visibly throws data away, if it does."""
    refs = [n for kind, n in walk({"x": using}) if kind == "ColumnRef"]
    if not any(strings(r.get("fields"))[-1:] == [column] for r in refs):
        return f"USING does not read {column}: every value is replaced"
    for kind, n in walk({"x": using}):
        if kind == "FuncCall":
            name = (strings(n.get("funcname")) or [""])[-1].lower()
            if name in _TRUNCATING:
                return f"USING {name}() cuts values down"
        if kind == "TypeCast":
            cast = col_type(n.get("typeName"))
            if (
                cast.name in (*_CHARS, "varbit", "bit")
                and cast.length is not None
                and not (
                    old is not None
                    and old.name == cast.name
                    and old.length is not None
                    and old.length <= cast.length
                )
            ):
                return f"USING ...::{cast} silently truncates longer values"
    return None


@rule(
    "ban-narrowing-column-type",
    severity="error",
    hazards=("deletes-data", "may-fail-on-data", "rewrites-table"),
    lock="AccessExclusiveLock",
    summary="ALTER COLUMN TYPE to a narrower type truncates, rounds or rejects existing values.",
    why="a USING that truncates (left(), substring(), an explicit ::varchar(n) cast) or replaces "
    "the values, a lower numeric scale, float8 -> float4 or timestamp -> date silently destroys "
    "data; a shorter length or a smaller integer makes the statement fail halfway on the first "
    "value that does not fit, after holding ACCESS EXCLUSIVE for the scan",
    fix="check the data first (SELECT count(*) WHERE length(col) > n, or max(col)); keep the "
    "wide column and add a CHECK constraint NOT VALID then VALIDATE it; if values must change, "
    "copy them to a new column in batches and back up the old one before dropping it",
    destructive=True,
)
def ban_narrowing_column_type(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, column, cd, cmd in _type_changes(stmt):
        if ctx.is_new_column(table, column):
            continue  # no existing values to lose
        new = col_type(cd.get("typeName"))
        old = _type_before(stmt, ctx, cmd, table, column)
        using = cd.get("raw_default")
        loss = _using_loses(using, column, old) if using is not None else None
        if loss is not None:
            yield Hit(
                f"changes {table}.{column} to {new}: {loss}",
                location=cd.get("location"),
                hazards=_DELETES,
            )
            continue
        if old is None:
            continue
        narrowing = _narrowing(old, new)
        if narrowing is not None:
            reason, hazards = narrowing
            yield Hit(
                f"narrows {table}.{column} from {old} to {new}: {reason}",
                location=cd.get("location"),
                hazards=hazards,
            )


# -- schema warnings: types that age badly ---------------------------------------------------


def _typed_columns(
    stmt: Stmt, names: tuple[str, ...]
) -> Iterator[tuple[str, str, ColType, dict[str, Any]]]:
    for table, column, cd in column_defs(stmt):
        t = col_type(cd.get("typeName"))
        if t.name in names:
            yield table, column, t, cd["typeName"]


@rule(
    "prefer-bigint-over-int",
    severity="warning",
    hazards=(),
    lock=None,
    summary="int (and serial) columns overflow at 2,147,483,647.",
    why="ids and counters outgrow 32 bits; when they do every insert fails, and widening the "
    "column then means rewriting a large table under ACCESS EXCLUSIVE",
    fix="use bigint (bigint GENERATED ALWAYS AS IDENTITY for ids); the extra 4 bytes are "
    "usually lost to alignment anyway",
)
def prefer_bigint_over_int(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, column, t, tn in _typed_columns(stmt, ("int4", "serial", "serial4")):
        yield Hit(f"{table}.{column} is {t}, a 32-bit integer", location=tn.get("location"))


@rule(
    "prefer-bigint-over-smallint",
    severity="warning",
    hazards=(),
    lock=None,
    summary="smallint (and smallserial) columns overflow at 32,767.",
    why="a 16-bit column runs out quickly; when it does every insert fails, and widening it "
    "means rewriting the table under ACCESS EXCLUSIVE",
    fix="use bigint (or int when the range is provably small); the space saved is usually "
    "lost to alignment",
)
def prefer_bigint_over_smallint(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, column, t, tn in _typed_columns(stmt, ("int2", "smallserial", "serial2")):
        yield Hit(f"{table}.{column} is {t}, a 16-bit integer", location=tn.get("location"))


@rule(
    "prefer-identity",
    severity="warning",
    hazards=(),
    lock=None,
    summary="serial types create a loosely attached sequence; identity columns are the "
    "standard replacement.",
    why="a serial's sequence has its own owner and permissions, is not copied by CREATE TABLE "
    "LIKE, and lets inserts bypass it silently, which leads to duplicate-key failures later",
    fix="bigint GENERATED ALWAYS AS IDENTITY (or GENERATED BY DEFAULT AS IDENTITY when rows "
    "must be inserted with explicit ids)",
)
def prefer_identity(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    serials = ("serial", "serial2", "serial4", "serial8", "smallserial", "bigserial")
    for table, column, t, tn in _typed_columns(stmt, serials):
        yield Hit(f"{table}.{column} is {t.name}", location=tn.get("location"))


@rule(
    "prefer-text-field",
    severity="warning",
    hazards=(),
    lock=None,
    summary="varchar(n) bakes a length limit into the type.",
    why="raising the limit later is cheap, but lowering it or changing it on an array rewrites "
    "the table under ACCESS EXCLUSIVE, and the limit rejects inserts the application did not "
    "expect",
    fix="use text, with a CHECK (length(col) <= n) constraint if a limit is a business rule "
    "(a CHECK can be added NOT VALID and changed without a rewrite)",
)
def prefer_text_field(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, column, t, tn in _typed_columns(stmt, ("varchar",)):
        if t.mods:
            yield Hit(f"{table}.{column} is {t}", location=tn.get("location"))


@rule(
    "prefer-timestamptz",
    severity="warning",
    hazards=(),
    lock=None,
    summary="timestamp without time zone stores wall-clock time with no zone.",
    why="values written from sessions in different time zones (or across a DST change) cannot "
    "be compared or converted correctly afterwards",
    fix="use timestamptz (timestamp with time zone); it stores an absolute instant and takes "
    "no more space. To convert an existing column without a rewrite on PostgreSQL 12+, run "
    "SET timezone = 'UTC' before ALTER COLUMN ... TYPE timestamptz (old values are read as UTC)",
)
def prefer_timestamptz(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, column, t, tn in _typed_columns(stmt, ("timestamp",)):
        yield Hit(f"{table}.{column} is {t} without time zone", location=tn.get("location"))


@rule(
    "prefer-jsonb",
    severity="warning",
    hazards=(),
    lock=None,
    summary="json stores the text as written; jsonb is the type to query and index.",
    why="json has no equality operator (DISTINCT, GROUP BY, UNION and some replication setups "
    "fail on it), cannot be indexed with GIN, and is reparsed on every access",
    fix="use jsonb (it keeps no key order or duplicate keys; keep json only if you need those)",
)
def prefer_jsonb(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, column, _, tn in _typed_columns(stmt, ("json",)):
        yield Hit(f"{table}.{column} is json", location=tn.get("location"))


@rule(
    "ban-char-field",
    severity="warning",
    hazards=(),
    lock=None,
    summary="char(n) pads values with spaces and is never faster than text.",
    why="the padding changes comparisons and lengths in surprising ways, and the fixed length "
    "rejects longer values just like varchar(n)",
    fix="use text (with a CHECK (length(col) = n) constraint if the length is a rule)",
)
def ban_char_field(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, column, t, tn in _typed_columns(stmt, ("bpchar",)):
        shown = f"char({t.length})" if t.length is not None else "bpchar"
        yield Hit(f"{table}.{column} is {shown}", location=tn.get("location"))
