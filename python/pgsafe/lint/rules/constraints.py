"""Lint rules: constraints (primary keys, unique, foreign keys, checks, exclusion, NOT NULL) and
domains with constraints.

A constraint on a table created earlier in the same file is not reported: the table is empty
and invisible to other sessions. A constraint on a column added earlier in the same file to an
existing table is: the column holds only NULLs or its default, but PostgreSQL still builds the
index over, or checks, every existing row (and a primary key or NOT NULL fails on the NULLs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from pgsafe.lint.context import Context
from pgsafe.lint.model import Hit, Stmt, alter_cmds, range_name, rule, strings, walk
from pgsafe.lint.rules._tracking import Tracker, tracked


def _bare(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _same_name(a: str, b: str) -> bool:
    """Same object, as far as the text tells: equal, or equal bare names when one of them is
    written without a schema."""
    return a == b or (("." not in a or "." not in b) and _bare(a) == _bare(b))


def _constraint_columns(con: dict[str, Any]) -> list[str]:
    """The columns a table constraint is about: its keys, FK columns or the columns its CHECK
    expression reads."""
    if con.get("contype") == "CONSTR_FOREIGN":
        return strings(con.get("fk_attrs"))
    if con.get("contype") == "CONSTR_CHECK":
        cols = []
        for kind, node in walk(con.get("raw_expr")):
            if kind == "ColumnRef":
                names = strings(node.get("fields"))
                if names:
                    cols.append(names[-1])
        return cols
    return strings(con.get("keys"))


def _new_columns_note(ctx: Context, table: str, con: dict[str, Any]) -> str:
    """A note for a constraint only on columns added earlier in this file: new, yet checked."""
    cols = _constraint_columns(con)
    if not cols or not all(ctx.is_new_column(table, c) for c in cols):
        return ""
    return (
        f" ({', '.join(dict.fromkeys(cols))} {'was' if len(set(cols)) == 1 else 'were'} added "
        f"earlier in this file, but {table} is not new: its existing rows are still checked)"
    )


def _added_constraints(stmt: Stmt) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """(table, Constraint fields, column being added or None) for every constraint an ALTER TABLE
    adds: ADD CONSTRAINT ... and the inline constraints of ADD COLUMN."""
    if stmt.kind != "AlterTableStmt":
        return
    table = range_name(stmt.node.get("relation"))
    for cmd in alter_cmds(stmt):
        sub = cmd.get("subtype")
        definition = cmd.get("def") or {}
        if sub == "AT_AddConstraint" and "Constraint" in definition:
            yield table, definition["Constraint"], None
        elif sub == "AT_AddColumn" and "ColumnDef" in definition:
            col = definition["ColumnDef"]
            for c in col.get("constraints", []):
                if "Constraint" in c:
                    yield table, c["Constraint"], col.get("colname")


def _reportable(ctx: Context, table: str) -> bool:
    """Whether adding a constraint to `table` touches existing rows: unless this file created
    the table, it may have rows, and even a column this file added is checked in every one."""
    return not ctx.is_new_table(table)


def _label(con: dict[str, Any], what: str) -> str:
    name = con.get("conname")
    return f"{what} {name}" if name else what


# -- primary keys and unique constraints ---------------------------------------------------------

_INDEX_FIX = (
    "CREATE UNIQUE INDEX CONCURRENTLY name ON table (cols); then ALTER TABLE table ADD "
    "CONSTRAINT name {kind} USING INDEX name, which only takes a brief lock"
)


def _index_building(stmt: Stmt, ctx: Context, contype: str, what: str) -> Iterator[Hit]:
    for table, con, column in _added_constraints(stmt):
        if con.get("contype") != contype or con.get("indexname"):
            continue
        if not _reportable(ctx, table):
            continue
        where = f" on new column {column}" if column else ""
        note = "" if column else _new_columns_note(ctx, table, con)
        if note and contype == "CONSTR_PRIMARY":
            facts = tracked(ctx, FileConstraints)
            empty = [
                c
                for c in dict.fromkeys(_constraint_columns(con))
                if not _filled(facts.added_columns.get((_bare(table), c), {}))
            ]
            if empty:
                note += (
                    f"; every existing row holds NULL in {', '.join(empty)}, so the primary key "
                    "fails unless the table is empty"
                )
        yield Hit(
            f"adds {_label(con, what)}{where} to {table}: builds its index under an ACCESS "
            f"EXCLUSIVE lock, blocking reads and writes for the whole build{note}",
            location=con.get("location"),
        )


@rule(
    "adding-serial-primary-key-field",
    severity="error",
    hazards=("blocks-reads", "blocks-writes", "may-fail-on-data"),
    lock="AccessExclusiveLock",
    summary="ADD PRIMARY KEY on an existing table (without USING INDEX) builds the index under "
    "an ACCESS EXCLUSIVE lock.",
    why="the table is locked against reads and writes while the unique index is built and, for "
    "nullable columns, while every row is checked for NULLs; it fails on duplicates or NULLs",
    fix=_INDEX_FIX.format(kind="PRIMARY KEY")
    + ". Make the columns NOT NULL first (see setting-not-nullable-field), or the ADD PRIMARY "
    "KEY scans the table for NULLs under the ACCESS EXCLUSIVE lock",
)
def adding_serial_primary_key_field(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    yield from _index_building(stmt, ctx, "CONSTR_PRIMARY", "primary key")


@rule(
    "disallowed-unique-constraint",
    severity="error",
    hazards=("blocks-reads", "blocks-writes", "may-fail-on-data"),
    lock="AccessExclusiveLock",
    summary="ADD UNIQUE on an existing table (without USING INDEX) builds the index under an "
    "ACCESS EXCLUSIVE lock.",
    why="the table is locked against reads and writes while the unique index is built, and the "
    "statement fails if existing rows have duplicates",
    fix=_INDEX_FIX.format(kind="UNIQUE"),
)
def disallowed_unique_constraint(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    yield from _index_building(stmt, ctx, "CONSTR_UNIQUE", "unique constraint")


@rule(
    "ban-exclusion-constraint",
    severity="error",
    hazards=("blocks-reads", "blocks-writes", "may-fail-on-data"),
    lock="AccessExclusiveLock",
    summary="Adding an EXCLUDE constraint to an existing table builds its index under an ACCESS "
    "EXCLUSIVE lock.",
    why="the table is locked against reads and writes while the index is built and every row is "
    "checked against every other; unlike UNIQUE there is no USING INDEX or NOT VALID way round it",
    fix="declare exclusion constraints when the table is created; on an existing table, enforce "
    "the rule in the application or a trigger, or schedule the ADD in a maintenance window with a "
    "short lock_timeout",
)
def ban_exclusion_constraint(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, con, column in _added_constraints(stmt):
        if con.get("contype") == "CONSTR_EXCLUSION" and _reportable(ctx, table):
            note = "" if column else _new_columns_note(ctx, table, con)
            yield Hit(
                f"adds {_label(con, 'exclusion constraint')} to {table} under an ACCESS "
                f"EXCLUSIVE lock while its index is built{note}",
                location=con.get("location"),
            )


# -- foreign keys and checks: NOT VALID ------------------------------------------------------------


@rule(
    "adding-foreign-key-constraint",
    severity="error",
    hazards=("blocks-writes", "may-fail-on-data"),
    lock="ShareRowExclusiveLock",
    summary="Adding a foreign key to an existing table without NOT VALID checks every row while "
    "both tables are locked against writes.",
    why="ADD FOREIGN KEY takes a SHARE ROW EXCLUSIVE lock on the table and on the table it "
    "references and keeps them while it scans every row; ADD COLUMN ... REFERENCES does the scan "
    "under the ACCESS EXCLUSIVE lock of the ADD COLUMN. A new table (created in the same file) "
    "that references an existing one is not reported: it has no rows to check, though the "
    "referenced table stays locked against writes until the migration commits",
    fix="ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (col) REFERENCES other (id) NOT VALID; "
    "then, in a later migration (its own transaction), ALTER TABLE t VALIDATE CONSTRAINT fk, "
    "which only takes SHARE UPDATE EXCLUSIVE on t and ROW SHARE on other",
)
def adding_foreign_key_constraint(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, con, column in _added_constraints(stmt):
        if con.get("contype") != "CONSTR_FOREIGN" or con.get("skip_validation"):
            continue
        if not _reportable(ctx, table):
            continue
        other = range_name(con.get("pktable"))
        if column is not None:
            yield Hit(
                f"adds column {column} referencing {other}: checks every row of {table} "
                "under the ACCESS EXCLUSIVE lock of the ADD COLUMN",
                location=con.get("location"),
                lock="AccessExclusiveLock",
                hazards=("blocks-reads", "blocks-writes", "may-fail-on-data"),
            )
        else:
            yield Hit(
                f"adds {_label(con, 'foreign key')} from {table} to {other} without NOT "
                "VALID: checks every row while writes to both tables are blocked"
                + _new_columns_note(ctx, table, con),
                location=con.get("location"),
            )


@rule(
    "constraint-missing-not-valid",
    severity="error",
    hazards=("blocks-reads", "blocks-writes", "may-fail-on-data"),
    lock="AccessExclusiveLock",
    summary="ADD CHECK on an existing table without NOT VALID scans every row under an ACCESS "
    "EXCLUSIVE lock.",
    why="the table is locked against reads and writes while every row is checked, and the "
    "statement fails if one does not pass. (Foreign keys without NOT VALID are reported by "
    "adding-foreign-key-constraint; UNIQUE and PRIMARY KEY cannot be NOT VALID.)",
    fix="ALTER TABLE t ADD CONSTRAINT c CHECK (...) NOT VALID (a brief lock, new rows checked "
    "from then on); then, in a later migration, ALTER TABLE t VALIDATE CONSTRAINT c, which scans "
    "under SHARE UPDATE EXCLUSIVE and blocks neither reads nor writes",
)
def constraint_missing_not_valid(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    for table, con, column in _added_constraints(stmt):
        if con.get("contype") != "CONSTR_CHECK" or con.get("skip_validation"):
            continue
        if not _reportable(ctx, table):
            continue
        if column is not None:
            yield Hit(
                f"adds column {column} with a CHECK: every row of {table} is checked under "
                "the ACCESS EXCLUSIVE lock; add the CHECK separately as NOT VALID",
                location=con.get("location"),
            )
        else:
            yield Hit(
                f"adds {_label(con, 'check constraint')} to {table} without NOT VALID: "
                "every row is checked under an ACCESS EXCLUSIVE lock"
                + _new_columns_note(ctx, table, con),
                location=con.get("location"),
            )


class FileConstraints(Tracker):
    """What the statements so far did with constraints (see _tracking): keyed by bare table
    name, then matched with _same_name, so a lookup costs the same however long the file is."""

    def __init__(self) -> None:
        # (bare table, constraint) -> [(table, Constraint)], oldest first
        self.added: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        # bare table -> [(table, Constraint)] of table CHECKs added without NOT VALID
        self.checks: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        # bare table -> [(table, constraint)] of every VALIDATE CONSTRAINT
        self.validated: dict[str, list[tuple[str, str]]] = {}
        # (bare table, column) -> ColumnDef of the latest ADD COLUMN of it
        self.added_columns: dict[tuple[str, str], dict[str, Any]] = {}
        self.domains: list[str] = []  # domains created

    def feed(self, stmt: Stmt) -> None:
        for table, con, column in _added_constraints(stmt):
            if con.get("conname"):
                self.added.setdefault((_bare(table), con["conname"]), []).append((table, con))
            if (
                column is None
                and con.get("contype") == "CONSTR_CHECK"
                and not con.get("skip_validation")
            ):
                self.checks.setdefault(_bare(table), []).append((table, con))
        for table, name in _validated(stmt):
            self.validated.setdefault(_bare(table), []).append((table, name))
        if stmt.kind == "AlterTableStmt":
            table = _bare(range_name(stmt.node.get("relation")))
            for cmd in alter_cmds(stmt):
                cd = (cmd.get("def") or {}).get("ColumnDef")
                if cmd.get("subtype") == "AT_AddColumn" and cd and cd.get("colname"):
                    self.added_columns[(table, cd["colname"])] = cd
        elif stmt.kind == "CreateDomainStmt":
            self.domains.append(".".join(strings(stmt.node.get("domainname"))))

    def find(self, table: str, name: str) -> dict[str, Any] | None:
        """The latest definition of constraint `name` on `table` added so far, if any."""
        found: list[tuple[str, dict[str, Any]]] = self.added.get((_bare(table), name), [])
        for t, con in reversed(found):
            if _same_name(t, table):
                return cast("dict[str, Any]", con)
        return None


def _find_added_constraint(ctx: Context, table: str, name: str) -> dict[str, Any] | None:
    """The definition of constraint `name` on `table` added earlier in this file, if any."""
    return tracked(ctx, FileConstraints).find(table, name)


def _validated(stmt: Stmt) -> Iterator[tuple[str, str]]:
    """(table, constraint) for every VALIDATE CONSTRAINT of an ALTER TABLE."""
    table = range_name(stmt.node.get("relation")) if stmt.kind == "AlterTableStmt" else ""
    for cmd in alter_cmds(stmt):
        if cmd.get("subtype") == "AT_ValidateConstraint" and cmd.get("name"):
            yield table, cmd["name"]


def _pending_not_valid(ctx: Context, table: str, name: str) -> bool:
    """Whether this transaction added constraint `name` to `table` NOT VALID (and has not
    committed since)."""
    pending = ctx.not_valid_constraints
    # Every spelling of the table it can be pending under was used by an ADD of this file.
    added = tracked(ctx, FileConstraints).added.get((_bare(table), name), [])
    return any((t, name) in pending and _same_name(t, table) for t, _ in added)


@rule(
    "ban-validate-in-same-transaction",
    severity="error",
    hazards=("blocks-reads", "blocks-writes"),
    lock="AccessExclusiveLock",
    summary="VALIDATE CONSTRAINT in the same transaction as the ADD ... NOT VALID gains nothing.",
    why="the ADD took its lock (ACCESS EXCLUSIVE for a CHECK, SHARE ROW EXCLUSIVE on both tables "
    "for a foreign key) and holds it until the transaction ends, so the validation scan runs "
    "under it: exactly what NOT VALID was meant to avoid. pgsafe runs a whole file as one "
    "transaction unless the file has its own BEGIN/COMMIT; ADD ... NOT VALID, VALIDATE "
    "CONSTRAINT in one ALTER TABLE is the same thing in one statement",
    fix="put VALIDATE CONSTRAINT in the next migration file (or after the COMMIT of the "
    "transaction that added the constraint); on its own it only takes SHARE UPDATE EXCLUSIVE",
)
def ban_validate_in_same_transaction(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "AlterTableStmt":
        return
    table = range_name(stmt.node.get("relation"))
    if ctx.is_new_table(table):
        return
    here: dict[str, dict[str, Any]] = {}  # added NOT VALID by an earlier subcommand of stmt
    for cmd in alter_cmds(stmt):
        sub = cmd.get("subtype")
        if sub == "AT_AddConstraint":
            con = (cmd.get("def") or {}).get("Constraint", {})
            if con.get("skip_validation") and con.get("conname"):
                here[con["conname"]] = con
            continue
        name = cmd.get("name")
        if sub != "AT_ValidateConstraint" or not name:
            continue
        if name in here:
            con, when = here[name], "in the ALTER TABLE that adds it NOT VALID"
        elif _pending_not_valid(ctx, table, name):
            con = _find_added_constraint(ctx, table, name) or {}
            when = "in the transaction that added it"
        else:
            continue
        if con.get("contype") == "CONSTR_FOREIGN":
            other = range_name(con.get("pktable"))
            yield Hit(
                f"validates {name} {when}: the scan of {table} runs while writes to {table} "
                f"and {other} are blocked",
                lock="ShareRowExclusiveLock",
                hazards=("blocks-writes",),
            )
        else:
            yield Hit(
                f"validates {name} {when}: the scan of {table} runs under the ACCESS "
                "EXCLUSIVE lock the ADD took",
                lock="AccessExclusiveLock",
            )


# -- SET NOT NULL ------------------------------------------------------------------------------

_NOT_NULL = ("not_null", "notnull", "non_null", "nonnull", "nn")
_CHECK = ("chk", "ck", "check")


def _proves_not_null(con: dict[str, Any], column: str) -> bool:
    """True for CHECK (column IS NOT NULL), alone or as one term of an AND."""
    if con.get("contype") != "CONSTR_CHECK":
        return False
    expr = con.get("raw_expr") or {}
    terms = [expr]
    if expr.get("BoolExpr", {}).get("boolop") == "AND_EXPR":
        terms = expr["BoolExpr"].get("args", [])
    for term in terms:
        test = term.get("NullTest")
        if test and test.get("nulltesttype") == "IS_NOT_NULL":
            names = strings(test.get("arg", {}).get("ColumnRef", {}).get("fields"))
            if names and names[-1] == column:
                return True
    return False


def _looks_like_not_null_check(name: str, table: str, column: str) -> bool:
    """A constraint defined in an earlier migration, named for this column's NOT NULL check:
    the column's whole name next to the marker, with at most the table's name and a chk/check
    word around them (`orders_customer_id_not_null`, `customer_id_nn`, `chk_customer_id_notnull`;
    not `users_org_id_not_null` for users.id, nor `email_not_null` for mail)."""
    col, tab = column.lower(), _bare(table).lower()
    cores = [f"{col}_{nn}" for nn in _NOT_NULL] + [f"{nn}_{col}" for nn in _NOT_NULL]
    return name.lower() in {
        f"{prefix}{t}{core}{suffix}"
        for prefix in ("", *(f"{c}_" for c in _CHECK))
        for t in ("", f"{tab}_")
        for core in cores
        for suffix in ("", *(f"_{c}" for c in _CHECK))
    }


def _validated_not_null_check(ctx: Context, table: str, column: str) -> bool:
    """An earlier statement of the file left a validated CHECK (column IS NOT NULL) on table."""
    facts = tracked(ctx, FileConstraints)
    for t, con in facts.checks.get(_bare(table), []):
        if _same_name(t, table) and _proves_not_null(con, column):
            return True
    for t, name in facts.validated.get(_bare(table), []):
        if not _same_name(t, table):
            continue
        found = facts.find(t, name) or ctx.earlier_constraints.get((_bare(t), name))
        if found is not None:
            if _proves_not_null(found, column):
                return True
        elif _looks_like_not_null_check(name, t, column):
            return True  # added NOT VALID by an earlier migration
    return False


def _column_added(
    stmt: Stmt, ctx: Context, upto: dict[str, Any], table: str, column: str
) -> dict[str, Any] | None:
    """The ColumnDef that added table.column to an existing table, earlier in this file or by
    an earlier subcommand of this ALTER TABLE; None when the column is not new."""
    found = None
    if ctx.is_new_column(table, column):
        found = tracked(ctx, FileConstraints).added_columns.get((_bare(table), column), {})
    for cmd in alter_cmds(stmt):
        if cmd is upto:
            break
        cd = (cmd.get("def") or {}).get("ColumnDef")
        if cmd.get("subtype") == "AT_AddColumn" and cd and cd.get("colname") == column:
            found = cd
    return found


def _filled(cd: dict[str, Any]) -> bool:
    """Whether ADD COLUMN gives the existing rows a value (a non-null default, an identity or a
    generated column)."""
    for c in cd.get("constraints") or []:
        con = c.get("Constraint", {})
        kind = con.get("contype")
        if kind in ("CONSTR_IDENTITY", "CONSTR_GENERATED"):
            return True
        if kind == "CONSTR_DEFAULT":
            expr = con.get("raw_expr") or {}
            expr = expr.get("TypeCast", {}).get("arg", expr)
            if not expr.get("A_Const", {}).get("isnull"):
                return True
    return strings((cd.get("typeName") or {}).get("names"))[-1:] in (
        ["serial"],
        ["bigserial"],
        ["smallserial"],
        ["serial2"],
        ["serial4"],
        ["serial8"],
    )


@rule(
    "setting-not-nullable-field",
    severity="error",
    hazards=("blocks-reads", "blocks-writes", "may-fail-on-data"),
    lock="AccessExclusiveLock",
    summary="ALTER COLUMN ... SET NOT NULL on an existing table scans the whole table under an "
    "ACCESS EXCLUSIVE lock.",
    why="reads and writes are blocked while every row is checked for NULL, and the statement "
    "fails if one is found: on a column added earlier in the same file without a default, "
    "every existing row holds NULL. Since PostgreSQL 12 the scan is skipped when a validated "
    "CHECK (col IS NOT NULL) already proves it; pgsafe does not report that case when an earlier "
    "statement of the file validated such a check (or a check named like <table>_<col>_not_null)",
    fix="migration 1: ALTER TABLE t ADD CONSTRAINT t_col_not_null CHECK (col IS NOT NULL) NOT "
    "VALID; migration 2: ALTER TABLE t VALIDATE CONSTRAINT t_col_not_null; ALTER TABLE t ALTER "
    "COLUMN col SET NOT NULL; ALTER TABLE t DROP CONSTRAINT t_col_not_null (PostgreSQL 12 and "
    "later; before 12 keep the CHECK instead of SET NOT NULL). On PostgreSQL 18 and later: "
    "ALTER TABLE t ADD CONSTRAINT t_col_not_null NOT NULL col NOT VALID, then (another "
    "migration) ALTER TABLE t VALIDATE CONSTRAINT t_col_not_null, which scans under SHARE UPDATE "
    "EXCLUSIVE and leaves the column NOT NULL. For a new column, declare it NOT NULL with a "
    "constant DEFAULT in the ADD COLUMN itself: no scan on PostgreSQL 11+",
)
def setting_not_nullable_field(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "AlterTableStmt":
        return
    table = range_name(stmt.node.get("relation"))
    if ctx.is_new_table(table):
        return  # empty: nothing to scan
    for cmd in alter_cmds(stmt):
        column = cmd.get("name")
        if cmd.get("subtype") != "AT_SetNotNull" or not column:
            continue
        if ctx.pg_version >= 12 and _validated_not_null_check(ctx, table, column):
            continue
        added = _column_added(stmt, ctx, cmd, table, column)
        if added is not None and not _filled(added):
            yield Hit(
                f"sets {table}.{column} NOT NULL, but {column} was added in this file without "
                f"a default: every existing row of {table} holds NULL, so it fails unless the "
                "table is empty or a backfill filled them, after scanning it under an ACCESS "
                "EXCLUSIVE lock",
                hazards=("may-fail-on-data", "blocks-reads", "blocks-writes"),
            )
        elif added is not None:
            yield Hit(
                f"sets {table}.{column} NOT NULL: {column} was added in this file with a "
                f"default, yet every row of {table} is scanned under an ACCESS EXCLUSIVE lock "
                "(NOT NULL in the ADD COLUMN itself needs no scan)"
            )
        else:
            yield Hit(
                f"sets {table}.{column} NOT NULL: every row is scanned under an ACCESS "
                "EXCLUSIVE lock"
                + (
                    f" (on PostgreSQL {ctx.pg_version}: ADD CONSTRAINT ... NOT NULL {column} "
                    "NOT VALID, then VALIDATE CONSTRAINT, scans without blocking reads or writes)"
                    if ctx.pg_version >= 18
                    else ""
                )
            )


# -- domains -----------------------------------------------------------------------------------

_DOMAIN_CONSTRAINTS = ("CONSTR_CHECK", "CONSTR_NOTNULL")


@rule(
    "ban-create-domain-with-constraint",
    severity="warning",
    hazards=(),
    lock=None,
    summary="CREATE DOMAIN with a CHECK or NOT NULL constraint makes later changes expensive.",
    why="adding a column of a constrained domain to an existing table rewrites the table, and "
    "changing the domain's constraints later locks every table that uses it against writes while "
    "it checks all their rows; domain constraints have no cheap NOT VALID + VALIDATE path",
    fix="create the domain without constraints (or use the base type) and put CHECK constraints "
    "on the columns, where they can be added NOT VALID and validated online",
)
def ban_create_domain_with_constraint(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "CreateDomainStmt":
        return
    name = ".".join(strings(stmt.node.get("domainname")))
    for c in stmt.node.get("constraints", []):
        con = c.get("Constraint", {})
        if con.get("contype") in _DOMAIN_CONSTRAINTS:
            kind = "CHECK" if con["contype"] == "CONSTR_CHECK" else "NOT NULL"
            yield Hit(f"domain {name} has a {kind} constraint", location=con.get("location"))
            return


def _domain_created_here(ctx: Context, name: str) -> bool:
    return any(_same_name(d, name) for d in tracked(ctx, FileConstraints).domains)


@rule(
    "ban-alter-domain-with-add-constraint",
    severity="error",
    hazards=("blocks-writes", "may-fail-on-data"),
    lock="ShareLock",
    summary="ALTER DOMAIN ADD CONSTRAINT / SET NOT NULL / VALIDATE CONSTRAINT checks every column "
    "that uses the domain.",
    why="PostgreSQL takes a SHARE lock on every table with a column of the domain (blocking "
    "writes) and scans them all; it fails if one value does not pass. Unlike on a table, VALIDATE "
    "CONSTRAINT of a domain takes that same SHARE lock",
    fix="put the rule on the columns instead: ALTER TABLE t ADD CONSTRAINT c CHECK (...) NOT "
    "VALID, then VALIDATE CONSTRAINT in a later migration. If it must be on the domain, ADD it "
    "NOT VALID (no scan; new values are checked) and validate in a quiet period",
)
def ban_alter_domain_with_add_constraint(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "AlterDomainStmt":
        return
    name = ".".join(strings(stmt.node.get("typeName")))
    if _domain_created_here(ctx, name):
        return  # only columns this migration added can use a domain it created
    sub = stmt.node.get("subtype")
    con = (stmt.node.get("def") or {}).get("Constraint", {})
    if sub == "C" and not con.get("skip_validation"):
        yield Hit(
            f"adds a constraint to domain {name}: every column using it is checked while "
            "its table is locked against writes",
            location=con.get("location"),
        )
    elif sub == "O":
        yield Hit(
            f"sets domain {name} NOT NULL: every column using it is checked while its "
            "table is locked against writes"
        )
    elif sub == "V":
        yield Hit(
            f"validates {stmt.node.get('name')} on domain {name}: every column using it is "
            "checked while its table is locked against writes"
        )
