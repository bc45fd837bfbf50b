"""`pgsafe fix`: rewrites the statements lint reports into the recipes its rules recommend.

Which statements: those with an error finding of a rule listed in FIXERS (and, when timeouts are
required, the file's missing lock_timeout). How: the statement's SQL is parsed again into pglast's
AST (pgsafe.analysis.rewrite), changed, and printed; only the statement's own bytes (up to its
semicolon) are replaced, the rest of the file is kept byte for byte. A recipe that needs its own
transaction (VALIDATE CONSTRAINT after ADD ... NOT VALID) is put after a `-- pgsafe: step` marker,
which `pgsafe apply` honours (analysis.statement, the executor); CONCURRENTLY statements need none
(pgsafe runs them as autocommit steps). A fix never adds a suppression comment. What cannot be
fixed safely is left as it is and reported with the rule's manual recipe (docs/fix.md)."""

from __future__ import annotations

import bisect
import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pgsafe.analysis import rewrite
from pgsafe.analysis.statement import STEP_MARKER, Comment, Statement, scan_comments
from pgsafe.lint.config import LintConfig
from pgsafe.lint.context import Context
from pgsafe.lint.engine import lint_text
from pgsafe.lint.model import RULES, Finding, Stmt, range_name
from pgsafe.lint.rules._tracking import tracked
from pgsafe.lint.rules.constraints import FileConstraints, _filled
from pgsafe.lint.rules.indexes import Partitioned
from pgsafe.render import Report, Section, Table
from pgsafe.sources.files import parse_sql

TIMEOUT_RULE = "require-timeout-settings"
NAMEDATALEN = 64


@dataclass
class FixOptions:
    """What a fix may add besides the recipes: the session timeouts it prepends when they are
    required (the require-timeout-settings rule is enabled, or the environment's policy says
    timeouts are required)."""

    timeouts: bool = False
    lock_timeout: str = "5s"
    statement_timeout: str = "5min"  # seed 003


@dataclass
class Fixed:
    """One statement rewritten."""

    line: int
    rules: list[str]
    what: str


@dataclass
class NotFixable:
    """An error pgsafe leaves as it is, with the manual recipe."""

    file: str
    line: int
    column: int
    rule: str
    message: str
    recipe: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FileFix:
    path: str
    original: str
    fixed: str
    changes: list[Fixed] = field(default_factory=list)
    not_fixable: list[NotFixable] = field(default_factory=list)
    remaining: list[Finding] = field(default_factory=list)  # errors lint still reports
    # For the down file: constraints whose recipe now spans transactions (their DROP gets IF
    # EXISTS) and clean-up of what a partly applied recipe may leave behind.
    split_constraints: set[tuple[str, str]] = field(default_factory=set)
    cleanup: list[str] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list, repr=False)  # of the original

    @property
    def changed(self) -> bool:
        return self.fixed != self.original

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.original.splitlines(keepends=True),
                self.fixed.splitlines(keepends=True),
                f"a/{self.path.lstrip('/')}",
                f"b/{self.path.lstrip('/')}",
            )
        )


@dataclass
class FixResult(Report):
    files: list[FileFix] = field(default_factory=list)

    title = "pgsafe fix"

    @property
    def not_fixable(self) -> list[NotFixable]:
        return [n for f in self.files for n in f.not_fixable]

    @property
    def remaining(self) -> list[Finding]:
        return [r for f in self.files for r in f.remaining]

    def diff(self) -> str:
        return "".join(f.diff() for f in self.files if f.changed)

    def to_json(self) -> dict[str, Any]:
        return {
            "files": [
                {
                    "file": f.path,
                    "changed": f.changed,
                    "fixed": [dataclasses.asdict(c) for c in f.changes],
                    "not_fixable": [n.to_json() for n in f.not_fixable],
                    "remaining": [r.to_json() for r in f.remaining],
                }
                for f in self.files
            ]
        }

    def to_dict(self) -> dict[str, Any]:
        return self.to_json()

    def summary(self) -> str:
        fixed = sum(len(f.changes) for f in self.files)
        changed = sum(1 for f in self.files if f.changed)
        return (
            f"{fixed} statement(s) fixed in {changed} file(s); {len(self.not_fixable)} not fixable"
        )

    def sections(self) -> list[Section]:
        rows = [
            (f"{f.path}:{c.line}", ", ".join(c.rules), c.what)
            for f in self.files
            for c in f.changes
        ]
        out = [Section("Fixed", [Table(("where", "rule", "change"), rows, "nothing to fix")])]
        if self.not_fixable:
            out.append(
                Section(
                    "Not fixable",
                    [
                        Table(
                            ("where", "rule", "message", "manual recipe"),
                            [
                                (f"{n.file}:{n.line}", n.rule, n.message, n.recipe)
                                for n in self.not_fixable
                            ],
                        )
                    ],
                )
            )
        return out


# -- names -------------------------------------------------------------------------------------


def _clip(name: str, limit: int) -> str:
    """The longest prefix of `name` of at most `limit` UTF-8 bytes (whole characters)."""
    out = name.encode("utf-8")[:limit]
    return out.decode("utf-8", "ignore")


def object_name(name1: str, name2: str | None, label: str) -> str:
    """The name PostgreSQL gives an unnamed constraint or index (makeObjectName): name1_name2_
    label, the longer of name1/name2 clipped until it fits NAMEDATALEN - 1 bytes."""
    overhead = len(label) + 1 + (1 if name2 else 0)
    avail = NAMEDATALEN - 1 - overhead
    n1 = len(name1.encode("utf-8"))
    n2 = len((name2 or "").encode("utf-8"))
    while n1 + n2 > avail:
        if n1 > n2:
            n1 -= 1
        else:
            n2 -= 1
    parts = [_clip(name1, n1)]
    if name2:
        parts.append(_clip(name2, n2))
    return "_".join([*parts, label])


def _sval(node: Any) -> str:
    return str(getattr(node, "sval", ""))


def _columns_of(expr: Any) -> list[str]:
    """Distinct column names an expression reads, in order."""
    a = rewrite.ast()
    seen: dict[str, None] = {}
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple | list):
            stack.extend(reversed(node))
        elif isinstance(node, a.ColumnRef):
            names = [_sval(f) for f in node.fields or () if isinstance(f, a.String)]
            if names:
                seen.setdefault(names[-1], None)
        elif isinstance(node, a.Node):
            stack.extend(reversed([getattr(node, attr) for attr in node]))
    return list(seen)


# -- the recipes -------------------------------------------------------------------------------


class Declined(Exception):
    """A statement a recipe will not touch: the reason names what to do by hand."""


@dataclass
class Recipe:
    """One statement's replacement: `now` runs where the statement ran (CONCURRENTLY ones as
    autocommit steps), `later` after a step marker, in a transaction of its own."""

    now: list[str] = field(default_factory=list)
    later: list[str] = field(default_factory=list)
    what: list[str] = field(default_factory=list)
    split_constraints: set[tuple[str, str]] = field(default_factory=set)
    cleanup: list[str] = field(default_factory=list)
    declined: dict[str, str] = field(default_factory=dict)  # rule -> why this part was left


def _table_cmd(relation: Any, *cmds: Any) -> Any:
    a, e = rewrite.ast(), rewrite.enums()
    return a.AlterTableStmt(
        relation=relation, cmds=tuple(cmds), objtype=e.ObjectType.OBJECT_TABLE, missing_ok=False
    )


def _cmd(subtype: str, **fields: Any) -> Any:
    a, e = rewrite.ast(), rewrite.enums()
    return a.AlterTableCmd(
        subtype=getattr(e.AlterTableType, subtype),
        behavior=e.DropBehavior.DROP_RESTRICT,
        **fields,
    )


def _validate(relation: Any, name: str) -> str:
    return rewrite.to_sql(_table_cmd(relation, _cmd("AT_ValidateConstraint", name=name)))


def _drop_constraint(relation: Any, name: str, if_exists: bool = False) -> str:
    return rewrite.to_sql(
        _table_cmd(relation, _cmd("AT_DropConstraint", name=name, missing_ok=if_exists))
    )


def _cleanup_drop_constraint(relation: Any, name: str) -> str:
    """ALTER TABLE IF EXISTS t DROP CONSTRAINT IF EXISTS name (for a down file)."""
    stmt = _table_cmd(relation, _cmd("AT_DropConstraint", name=name, missing_ok=True))
    stmt.missing_ok = True
    return rewrite.to_sql(stmt)


def _not_null_check(column: str) -> Any:
    """CHECK (column IS NOT NULL) NOT VALID, unnamed."""
    a, e = rewrite.ast(), rewrite.enums()
    test = a.NullTest(
        arg=a.ColumnRef(fields=(a.String(sval=column),)),
        nulltesttype=e.NullTestType.IS_NOT_NULL,
        argisrow=False,
    )
    return a.Constraint(
        contype=e.ConstrType.CONSTR_CHECK,
        raw_expr=test,
        skip_validation=True,
        initially_valid=False,
        is_enforced=True,
    )


class _Ctx:
    """What the recipes need to know about the file at a statement."""

    def __init__(self, lint: Context, pg_version: int, file_has_tx_control: bool) -> None:
        self.lint = lint
        self.pg_version = pg_version
        self.file_has_tx_control = file_has_tx_control


def _needs_own_transactions(ctx: _Ctx) -> None:
    if ctx.file_has_tx_control:
        raise Declined(
            "the file has its own transaction control (BEGIN/COMMIT inside it): the recipe needs "
            "statements outside a transaction; split the file first"
        )


def _fix_create_index(stmt: Stmt, node: Any, ctx: _Ctx, recipe: Recipe) -> None:
    table = range_name(stmt.node.get("relation"))
    if tracked(ctx.lint, Partitioned).tables.get(table.rsplit(".", 1)[-1]) is not None:
        raise Declined("partitioned table: CONCURRENTLY is refused on it")
    _needs_own_transactions(ctx)
    node.concurrent = True
    if node.idxname:
        node.if_not_exists = True
    recipe.now.append(rewrite.to_sql(node))
    recipe.what.append(
        "CREATE INDEX -> CREATE INDEX CONCURRENTLY" + (" IF NOT EXISTS" if node.idxname else "")
    )


def _fix_drop_index(stmt: Stmt, node: Any, ctx: _Ctx, recipe: Recipe) -> None:
    e = rewrite.enums()
    if node.behavior == e.DropBehavior.DROP_CASCADE:
        raise Declined(
            "DROP INDEX CONCURRENTLY does not take CASCADE: drop the dependent objects first"
        )
    _needs_own_transactions(ctx)
    for obj in node.objects or ():
        one = rewrite.ast().DropStmt(
            objects=(obj,),
            removeType=e.ObjectType.OBJECT_INDEX,
            behavior=e.DropBehavior.DROP_RESTRICT,
            missing_ok=True,
            concurrent=True,
        )
        recipe.now.append(rewrite.to_sql(one))
    recipe.what.append("DROP INDEX -> DROP INDEX CONCURRENTLY IF EXISTS, one index per statement")


_REINDEX_WORDS = {
    "REINDEX_OBJECT_INDEX": "INDEX",
    "REINDEX_OBJECT_TABLE": "TABLE",
    "REINDEX_OBJECT_SCHEMA": "SCHEMA",
    "REINDEX_OBJECT_DATABASE": "DATABASE",
}


def _fix_reindex(stmt: Stmt, node: Any, ctx: _Ctx, recipe: Recipe) -> None:
    if ctx.pg_version < 12:
        raise Declined("REINDEX CONCURRENTLY needs PostgreSQL 12")
    word = _REINDEX_WORDS.get(node.kind.name)
    if word is None:
        raise Declined("REINDEX SYSTEM cannot run CONCURRENTLY")
    _needs_own_transactions(ctx)
    a = rewrite.ast()
    # REINDEX [(options)] KIND CONCURRENTLY name: the spelling every major since 12 reads (the
    # printer's REINDEX (CONCURRENTLY) ... needs 14).
    params = [p for p in node.params or () if p.defname != "concurrently"]
    if node.relation is not None:
        name = rewrite.to_sql(node.relation)
    else:
        name = rewrite.to_sql(a.String(sval=node.name)) if node.name else ""
    options = ""
    if params:
        # Printed by the deparser, then cut to its parenthesised option list.
        probe = rewrite.to_sql(
            a.ReindexStmt(
                kind=node.kind, relation=node.relation, name=node.name, params=tuple(params)
            )
        )
        options = " " + probe[len("REINDEX ") :].split(")", 1)[0] + ")"
    recipe.now.append(f"REINDEX{options} {word} CONCURRENTLY {name}".rstrip())
    recipe.what.append("REINDEX -> REINDEX ... CONCURRENTLY")


def _constraint_name(table: str, con: Any, column: str | None) -> str:
    """The constraint's own name, or the one PostgreSQL would give it (written out, so VALIDATE
    CONSTRAINT can name it)."""
    e = rewrite.enums()
    if con.conname:
        return str(con.conname)
    bare = table.rsplit(".", 1)[-1]
    if con.contype == e.ConstrType.CONSTR_FOREIGN:
        cols = [_sval(c) for c in con.fk_attrs or ()] or [column or ""]
        return object_name(bare, "_".join(cols), "fkey")
    if con.contype == e.ConstrType.CONSTR_CHECK:
        cols = [column] if column else _columns_of(con.raw_expr)
        return object_name(bare, cols[0] if len(cols) == 1 else None, "check")
    if con.contype == e.ConstrType.CONSTR_PRIMARY:
        return object_name(bare, None, "pkey")
    cols = [_sval(c) for c in con.keys or ()] or [column or ""]
    return object_name(bare, "_".join(cols), "key")


def _unique_index(relation: Any, con: Any, name: str) -> str:
    """CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS name ON table (keys) for a UNIQUE or
    PRIMARY KEY constraint, with its INCLUDE, WITH, TABLESPACE and NULLS NOT DISTINCT."""
    a, e = rewrite.ast(), rewrite.enums()

    def columns(names: Any) -> tuple[Any, ...]:
        return tuple(
            a.IndexElem(
                name=_sval(k),
                ordering=e.SortByDir.SORTBY_DEFAULT,
                nulls_ordering=e.SortByNulls.SORTBY_NULLS_DEFAULT,
            )
            for k in names or ()
        )

    params, including = columns(con.keys), columns(con.including)
    index = a.IndexStmt(
        idxname=name,
        relation=relation,
        accessMethod="btree",
        tableSpace=con.indexspace,
        indexParams=params,
        indexIncludingParams=including or None,
        options=con.options,
        unique=True,
        nulls_not_distinct=bool(con.nulls_not_distinct),
        concurrent=True,
        if_not_exists=True,
    )
    return rewrite.to_sql(index)


def _attach(relation: Any, con: Any, name: str) -> str:
    """ALTER TABLE t ADD CONSTRAINT name UNIQUE|PRIMARY KEY USING INDEX name [DEFERRABLE ...]."""
    a = rewrite.ast()
    using = a.Constraint(
        contype=con.contype,
        conname=name,
        indexname=name,
        deferrable=con.deferrable,
        initdeferred=con.initdeferred,
    )
    return rewrite.to_sql(_table_cmd(relation, _cmd("AT_AddConstraint", def_=using)))


def _add_rerunnable(keep: list[Any], name: str, con: Any) -> None:
    """DROP CONSTRAINT IF EXISTS name, ADD CONSTRAINT name ... NOT VALID: the step that adds it
    commits before the validation, so a re-run after a failed validation (the migration is left
    dirty) must not stop at "already exists" (prefer-robust-stmts)."""
    keep.append(_cmd("AT_DropConstraint", name=name, missing_ok=True))
    keep.append(_cmd("AT_AddConstraint", def_=con))


def _not_null_recipe(
    relation: Any, table: str, column: str, ctx: _Ctx, recipe: Recipe, keep: list[Any]
) -> None:
    """The SET NOT NULL recipe of the target's major: a NOT VALID constraint now (appended to
    `keep`, the subcommands that stay in the statement), its validation later."""
    a, e = rewrite.ast(), rewrite.enums()
    bare = table.rsplit(".", 1)[-1]
    name = object_name(bare, column, "not_null")
    if ctx.pg_version >= 18:
        con = a.Constraint(
            contype=e.ConstrType.CONSTR_NOTNULL,
            conname=name,
            keys=(a.String(sval=column),),
            skip_validation=True,
            initially_valid=False,
        )
        _add_rerunnable(keep, name, con)
        recipe.later.append(_validate(relation, name))
        recipe.what.append(
            f"SET NOT NULL {column} -> ADD CONSTRAINT {name} NOT NULL {column} NOT VALID, "
            "VALIDATE in its own transaction (PostgreSQL 18)"
        )
        return
    if ctx.pg_version < 12:
        raise Declined("before PostgreSQL 12 SET NOT NULL always scans: keep a CHECK instead")
    con = _not_null_check(column)
    con.conname = name
    _add_rerunnable(keep, name, con)
    recipe.later += [
        _validate(relation, name),
        rewrite.to_sql(_table_cmd(relation, _cmd("AT_SetNotNull", name=column))),
        _drop_constraint(relation, name),
    ]
    recipe.cleanup.append(_cleanup_drop_constraint(relation, name))
    recipe.what.append(
        f"SET NOT NULL {column} -> CHECK ({column} IS NOT NULL) NOT VALID, then VALIDATE, "
        "SET NOT NULL and DROP CONSTRAINT in their own transaction"
    )


def _fix_alter_table(stmt: Stmt, node: Any, ctx: _Ctx, recipe: Recipe, rules: set[str]) -> None:
    a, e = rewrite.ast(), rewrite.enums()
    T, C = e.AlterTableType, e.ConstrType
    relation = node.relation
    table = range_name(stmt.node.get("relation"))
    keep: list[Any] = []
    builds: list[str] = []  # unique indexes, built concurrently after the statement
    attach_now: list[str] = []  # ADD CONSTRAINT ... UNIQUE USING INDEX
    added_here: dict[str, Any] = {}  # columns this statement adds
    # The rule that reports each kind of constraint this fixes.
    reported_by = {
        C.CONSTR_FOREIGN: "adding-foreign-key-constraint",
        C.CONSTR_CHECK: "constraint-missing-not-valid",
        C.CONSTR_UNIQUE: "disallowed-unique-constraint",
        C.CONSTR_PRIMARY: "adding-serial-primary-key-field",
    }
    for cmd in node.cmds or ():
        if cmd.subtype == T.AT_AddColumn and isinstance(cmd.def_, a.ColumnDef):
            added_here[cmd.def_.colname] = cmd.def_
    for cmd in node.cmds or ():
        d = cmd.def_
        if cmd.subtype == T.AT_AddConstraint and isinstance(d, a.Constraint):
            rule = reported_by.get(d.contype, "")
            if rule not in rules:  # not a constraint this run fixes: it stays as written
                keep.append(cmd)
                continue
            if d.contype in (C.CONSTR_FOREIGN, C.CONSTR_CHECK) and not d.skip_validation:
                name = _constraint_name(table, d, None)
                d.conname, d.skip_validation, d.initially_valid = name, True, False
                _add_rerunnable(keep, name, d)
                recipe.later.append(_validate(relation, name))
                recipe.split_constraints.add((table, name))
                kind = "FOREIGN KEY" if d.contype == C.CONSTR_FOREIGN else "CHECK"
                recipe.what.append(
                    f"ADD {kind} {name} -> NOT VALID, VALIDATE in its own transaction"
                )
                continue
            if d.contype in (C.CONSTR_UNIQUE, C.CONSTR_PRIMARY) and not d.indexname:
                if any(_sval(k) in added_here for k in d.keys or ()):
                    recipe.declined[rule] = "a key column is added by the same statement"
                    keep.append(cmd)
                    continue
                if d.exclusions or d.without_overlaps:
                    recipe.declined[rule] = "WITHOUT OVERLAPS has no USING INDEX form"
                    keep.append(cmd)
                    continue
                name = _constraint_name(table, d, None)
                builds.append(_unique_index(relation, d, name))
                recipe.split_constraints.add((table, name))
                recipe.cleanup.append(_cleanup_index(node.relation, name))
                if d.contype == C.CONSTR_PRIMARY:
                    # The key columns become NOT NULL through a validated CHECK first, or
                    # ADD PRIMARY KEY scans the table for NULLs under ACCESS EXCLUSIVE.
                    for key in d.keys or ():
                        _not_null_recipe(relation, table, _sval(key), ctx, recipe, keep)
                    later_attach = _attach(relation, d, name)
                    # After the NOT NULL recipe's SET NOT NULL, before its DROP CONSTRAINT.
                    drops = [s for s in recipe.later if "DROP CONSTRAINT" in s]
                    recipe.later = [s for s in recipe.later if s not in drops]
                    recipe.later += [later_attach, *drops]
                    recipe.what.append(
                        f"ADD PRIMARY KEY -> CREATE UNIQUE INDEX CONCURRENTLY {name}, then ADD "
                        "CONSTRAINT ... USING INDEX once the key columns are NOT NULL"
                    )
                else:
                    attach_now.append(_attach(relation, d, name))
                    recipe.what.append(
                        f"ADD UNIQUE -> CREATE UNIQUE INDEX CONCURRENTLY {name}, then ADD "
                        "CONSTRAINT ... USING INDEX"
                    )
                continue
            keep.append(cmd)
            continue
        if cmd.subtype == T.AT_AddColumn and isinstance(d, a.ColumnDef):
            moved = []
            stay = []
            for c in d.constraints or ():
                if (
                    isinstance(c, a.Constraint)
                    and c.contype in (C.CONSTR_FOREIGN, C.CONSTR_CHECK)
                    and not c.skip_validation
                    and reported_by[c.contype] in rules
                ):
                    moved.append(c)
                else:
                    stay.append(c)
            d.constraints = tuple(stay) or None
            keep.append(cmd)
            for c in moved:
                name = _constraint_name(table, c, d.colname)
                c.conname, c.skip_validation, c.initially_valid = name, True, False
                if c.contype == C.CONSTR_FOREIGN and not c.fk_attrs:
                    c.fk_attrs = (a.String(sval=d.colname),)
                keep.append(_cmd("AT_AddConstraint", def_=c))
                recipe.later.append(_validate(relation, name))
                recipe.split_constraints.add((table, name))
                recipe.what.append(
                    f"{d.colname}'s inline constraint -> ADD CONSTRAINT {name} ... NOT VALID, "
                    "VALIDATE in its own transaction"
                )
            continue
        if cmd.subtype == T.AT_SetNotNull and "setting-not-nullable-field" in rules:
            column = str(cmd.name)
            added = added_here.get(column)
            facts = tracked(ctx.lint, FileConstraints)
            earlier = facts.added_columns.get((table.rsplit(".", 1)[-1], column))
            if added is not None or (earlier is not None and ctx.lint.is_new_column(table, column)):
                cd = added if added is not None else earlier
                if added is not None or not _filled(cd or {}):
                    recipe.declined["setting-not-nullable-field"] = (
                        "the column is added in this migration: declare it NOT NULL with a "
                        "constant DEFAULT in the ADD COLUMN"
                    )
                    keep.append(cmd)
                    continue
            _not_null_recipe(relation, table, column, ctx, recipe, keep)
            continue
        keep.append(cmd)
    if recipe.declined and not recipe.what:
        raise Declined("; ".join(recipe.declined.values()))
    if builds or recipe.later:
        _needs_own_transactions(ctx)
    if keep:
        node.cmds = tuple(keep)
        recipe.now.append(rewrite.to_sql(node))
    recipe.now += builds + attach_now


def _cleanup_index(relation: Any, name: str) -> str:
    a, e = rewrite.ast(), rewrite.enums()
    qualified = (
        (a.String(sval=relation.schemaname), a.String(sval=name))
        if relation.schemaname
        else (a.String(sval=name),)
    )
    return rewrite.to_sql(
        a.DropStmt(
            objects=(qualified,),
            removeType=e.ObjectType.OBJECT_INDEX,
            behavior=e.DropBehavior.DROP_RESTRICT,
            missing_ok=True,
            concurrent=True,
        )
    )


Fixer = Callable[[Stmt, Any, _Ctx, Recipe], None]

#: rule id -> the statement kind it is about. ALTER TABLE rules share one fixer that handles
#: every subcommand of the statement.
FIXERS: dict[str, str] = {
    "require-concurrent-index": "IndexStmt",
    "require-concurrent-index-deletion": "DropStmt",
    "ban-reindex": "ReindexStmt",
    "adding-foreign-key-constraint": "AlterTableStmt",
    "constraint-missing-not-valid": "AlterTableStmt",
    "setting-not-nullable-field": "AlterTableStmt",
    "disallowed-unique-constraint": "AlterTableStmt",
    "adding-serial-primary-key-field": "AlterTableStmt",
    "ban-validate-in-same-transaction": "AlterTableStmt",
}

_SIMPLE: dict[str, Fixer] = {
    "IndexStmt": _fix_create_index,
    "DropStmt": _fix_drop_index,
    "ReindexStmt": _fix_reindex,
}


# -- the file --------------------------------------------------------------------------------


@dataclass
class _Edit:
    start: int  # byte offsets into the file
    end: int
    text: str


def _statement_end(data: bytes, stmt: Stmt, limit: int, comments: list[Comment]) -> int:
    """Byte offset just past the statement's terminating semicolon (comments and white space
    between them skipped), or the end of its last token when it has none."""
    pos = stmt.offset + len(stmt.sql.encode("utf-8"))
    by_offset = {c.offset: c for c in comments}
    while pos < limit:
        if data[pos : pos + 1] in (b" ", b"\t", b"\n", b"\r", b"\f", b"\v"):
            pos += 1
        elif pos in by_offset:
            pos += len(by_offset[pos].text.encode("utf-8"))
        elif data[pos : pos + 1] == b";":
            return pos + 1
        else:
            break
    return stmt.offset + len(stmt.sql.encode("utf-8"))


def _wrapper(stmts: list[Stmt]) -> tuple[Stmt, Stmt] | None:
    """The file's own BEGIN ... COMMIT around everything, if it has one."""
    if (
        len(stmts) >= 2
        and stmts[0].raw.transaction_control in ("begin", "start transaction")
        and stmts[-1].raw.transaction_control == "commit"
    ):
        return stmts[0], stmts[-1]
    return None


def _map_findings(findings: list[Finding], stmts: list[Stmt]) -> dict[int, list[Finding]]:
    """statement index -> its findings (a finding is at or after its statement's start and
    before the next one's)."""
    out: dict[int, list[Finding]] = {}
    starts = [(s.line, s.column) for s in stmts]
    for f in findings:
        if not f.statement:
            continue
        at = bisect.bisect_right(starts, (f.line, f.column)) - 1  # linear files stay linear
        if at >= 0:
            out.setdefault(at, []).append(f)
    return out


def _timeouts_insert(
    stmts: list[Stmt], comments: list[Comment], options: FixOptions
) -> tuple[int, str] | None:
    """Where and what to prepend so the file sets the timeouts it lacks: before the first
    statement, above a suppression comment that belongs to it (so the comment keeps its
    statement)."""
    sets = {s.raw.setting for s in stmts if s.kind == "VariableSetStmt"}
    a = rewrite.ast()
    lines = []
    for name, value in (
        ("lock_timeout", options.lock_timeout),
        ("statement_timeout", options.statement_timeout),
    ):
        if name not in sets:
            e = rewrite.enums()
            node = a.VariableSetStmt(
                kind=e.VariableSetKind.VAR_SET_VALUE,
                name=name,
                args=(a.A_Const(val=a.String(sval=value)),),
                is_local=False,
            )
            lines.append(rewrite.to_sql(node) + ";\n")
    if not lines or not stmts:
        return None
    first = stmts[0]
    at = first.offset
    for c in comments:
        if c.offset < first.offset and c.text.lstrip("-/* ").lower().startswith("pgsafe:"):
            at = min(at, c.offset)
    return at, "".join(lines)


def fix_text(
    text: str,
    file: str = "<stdin>",
    config: LintConfig | None = None,
    options: FixOptions | None = None,
    earlier: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> FileFix:
    """The fixed text of one migration file, with what changed and what could not be fixed.
    `earlier`: the constraints earlier migrations of its directory added (as lint_paths)."""
    config = config or LintConfig()
    options = options or FixOptions()
    lint_config = config
    if options.timeouts and TIMEOUT_RULE not in config.enable:
        lint_config = dataclasses.replace(config, enable=config.enable | {TIMEOUT_RULE})
    result = FileFix(file, text, text)
    raw = parse_sql(text, file)
    result.statements = raw
    stmts = [Stmt.from_statement(i, s) for i, s in enumerate(raw)]
    findings = lint_text(text, file, lint_config, earlier).findings
    wanted = [
        f
        for f in findings
        if f.severity == "error" or (f.rule == TIMEOUT_RULE and options.timeouts)
    ]
    by_stmt = _map_findings(wanted, stmts)
    comments = scan_comments(text)
    data = text.encode("utf-8")
    wrapper = _wrapper(stmts)
    inner_tx = any(
        s.raw.transaction_control and (wrapper is None or s not in wrapper) for s in stmts
    )
    lint_ctx = Context(pg_version=config.pg_version, file=file, file_statements=stmts)
    ctx = _Ctx(lint_ctx, config.pg_version, inner_tx)
    edits: list[_Edit] = []
    needs_autocommit = False
    timeouts_wanted = False
    for i, stmt in enumerate(stmts):
        mine = by_stmt.get(i, [])
        rules = {f.rule for f in mine}
        if TIMEOUT_RULE in rules:
            timeouts_wanted = True
            rules.discard(TIMEOUT_RULE)
        fixable = {r for r in rules if FIXERS.get(r) == stmt.kind}
        recipe = Recipe()
        declined = ""
        if fixable:
            try:
                node = rewrite.parse_one(stmt.sql)
                if fixable == {"ban-validate-in-same-transaction"}:
                    # Nothing to rewrite: a step marker before the VALIDATE commits the ADD.
                    _needs_own_transactions(ctx)
                    edits.append(_Edit(stmt.offset, stmt.offset, f"-- {STEP_MARKER}\n"))
                    recipe.what.append("VALIDATE CONSTRAINT -> after a step marker")
                    result.changes.append(Fixed(stmt.line, sorted(fixable), recipe.what[0]))
                    needs_autocommit = True
                elif stmt.kind == "AlterTableStmt":
                    _fix_alter_table(stmt, node, ctx, recipe, fixable)
                else:
                    _SIMPLE[stmt.kind](stmt, node, ctx, recipe)
            except Declined as exc:
                declined = str(exc)
            except RecursionError:
                declined = "the statement nests too deeply to print again"
        if recipe.now or recipe.later:
            end = _statement_end(
                data,
                stmt,
                stmts[i + 1].offset if i + 1 < len(stmts) else len(data),
                comments,
            )
            piece = ";\n".join(recipe.now) + ";" if recipe.now else ""
            if recipe.later:
                piece += (
                    ("\n" if piece else "") + f"-- {STEP_MARKER}\n" + ";\n".join(recipe.later) + ";"
                )
                following = stmts[i + 1] if i + 1 < len(stmts) else None
                if (
                    following is not None
                    and not following.raw.non_transactional
                    and not following.raw.new_step
                    and not following.raw.transaction_control
                ):
                    piece += f"\n-- {STEP_MARKER}"
            edits.append(_Edit(stmt.offset, end, piece))
            needs_autocommit = True
            result.changes.append(
                Fixed(stmt.line, sorted(fixable - set(recipe.declined)), "; ".join(recipe.what))
            )
            result.split_constraints |= recipe.split_constraints
            result.cleanup += recipe.cleanup
        for f in mine:
            if f.rule == TIMEOUT_RULE:
                continue
            if f.rule in fixable and not declined and recipe.what and f.rule not in recipe.declined:
                continue
            why = (
                declined
                or recipe.declined.get(f.rule)
                or ("" if f.rule not in FIXERS else "pgsafe could not apply the recipe here")
            )
            result.not_fixable.append(
                NotFixable(
                    file,
                    f.line,
                    f.column,
                    f.rule,
                    f.message + (f" (not fixed: {why})" if why else ""),
                    RULES[f.rule].fix if f.rule in RULES else f.fix,
                )
            )
        lint_ctx.note(stmt)
    if timeouts_wanted:
        insert = _timeouts_insert(stmts, comments, options)
        if insert is not None:
            edits.append(_Edit(insert[0], insert[0], insert[1]))
            result.changes.append(
                Fixed(
                    stmts[0].line,
                    [TIMEOUT_RULE],
                    "prepended " + insert[1].strip().replace("\n", " "),
                )
            )
    if needs_autocommit and wrapper is not None:
        for s in wrapper:
            end = _statement_end(
                data,
                s,
                stmts[s.index + 1].offset if s.index + 1 < len(stmts) else len(data),
                comments,
            )
            edits.append(_Edit(s.offset, end, ""))
        result.changes.append(
            Fixed(
                wrapper[0].line,
                [],
                "removed the file's BEGIN/COMMIT: pgsafe wraps each transaction",
            )
        )
    result.fixed = _apply(data, edits)
    if result.changed:
        after = lint_text(result.fixed, file, lint_config, earlier).findings
        known = {(n.rule, n.message.split(" (not fixed:")[0]) for n in result.not_fixable}
        result.remaining = [
            f for f in after if f.severity == "error" and (f.rule, f.message) not in known
        ]
    return result


def _apply(data: bytes, edits: list[_Edit]) -> str:
    out = data
    for e in sorted(edits, key=lambda e: (e.start, e.end), reverse=True):
        out = out[: e.start] + e.text.encode("utf-8") + out[e.end :]
    return out.decode("utf-8")


# -- down files --------------------------------------------------------------------------------


def follow_down(
    text: str,
    file: str,
    up: FileFix,
    config: LintConfig | None = None,
) -> FileFix:
    """The down file of a fixed up file: its own unsafe statements fixed as any file's (DROP
    INDEX -> CONCURRENTLY IF EXISTS, ...), DROP CONSTRAINT of a constraint whose recipe now spans
    transactions made IF EXISTS (the up may have stopped half way), and clean-up of what such a
    stop can leave (the temporary NOT NULL check, a unique index not yet attached) appended.
    Findings a down file is meant to have (dropping what the up made) are not reported."""
    fixed = fix_text(text, file, config)
    fixed.not_fixable = [n for n in fixed.not_fixable if n.rule in FIXERS]
    fixed.remaining = [r for r in fixed.remaining if r.rule in FIXERS]
    current = fixed.fixed
    edits: list[_Edit] = []
    split = {name for _, name in up.split_constraints}
    if split:
        data = current.encode("utf-8")
        e = rewrite.enums()
        for s in parse_sql(current, file):
            if s.kind != "AlterTableStmt":
                continue
            node = rewrite.parse_one(s.sql)
            touched = False
            for cmd in node.cmds or ():
                if (
                    cmd.subtype == e.AlterTableType.AT_DropConstraint
                    and cmd.name in split
                    and not cmd.missing_ok
                ):
                    cmd.missing_ok = True
                    touched = True
            if touched:
                start = s.offset
                edits.append(_Edit(start, start + len(s.sql.encode("utf-8")), rewrite.to_sql(node)))
                fixed.changes.append(
                    Fixed(
                        s.line,
                        [],
                        "DROP CONSTRAINT -> IF EXISTS (the up recipe spans transactions)",
                    )
                )
        current = _apply(data, edits)
    if up.cleanup:
        tail = "" if current.endswith("\n") or not current else "\n"
        current += tail + (
            "-- Clean-up after an up migration stopped between its steps (pgsafe fix)\n"
            + "".join(f"{sql};\n" for sql in up.cleanup)
        )
        fixed.changes.append(Fixed(0, [], "appended clean-up of the up recipe's temporary objects"))
    fixed.fixed = current
    return fixed
