"""The lint vocabulary: hazards (DESIGN.md), PostgreSQL's table lock modes and what each blocks,
rules and the findings they produce. Rules are data plus one check function, so their
documentation (`pgsafe rules ID`) is generated from the same object that runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pgsafe.analysis.statement import Statement, walk_nodes

HAZARDS = (
    "deletes-data",
    "rewrites-table",
    "blocks-reads",
    "blocks-writes",
    "breaks-clients",
    "may-fail-on-data",
    "not-transactional",
    "missing-timeout",
    "not-idempotent",
)

SEVERITIES = ("error", "warning")

# PostgreSQL's table lock modes, weakest first, with what each blocks among ordinary
# application work: reads (SELECT), writes (INSERT/UPDATE/DELETE, SELECT FOR UPDATE) and DDL.
LOCKS: dict[str, frozenset[str]] = {
    "AccessShareLock": frozenset({"ddl"}),
    "RowShareLock": frozenset({"ddl"}),
    "RowExclusiveLock": frozenset({"ddl"}),
    "ShareUpdateExclusiveLock": frozenset({"ddl"}),
    "ShareLock": frozenset({"writes", "ddl"}),
    "ShareRowExclusiveLock": frozenset({"writes", "ddl"}),
    "ExclusiveLock": frozenset({"writes", "ddl"}),
    "AccessExclusiveLock": frozenset({"reads", "writes", "ddl"}),
}
LOCK_ORDER = list(LOCKS)


def stronger_lock(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if LOCK_ORDER.index(a) >= LOCK_ORDER.index(b) else b


def lock_hazards(lock: str | None) -> tuple[str, ...]:
    blocks = LOCKS.get(lock or "", frozenset())
    out = []
    if "reads" in blocks:
        out.append("blocks-reads")
    if "writes" in blocks:
        out.append("blocks-writes")
    return tuple(out)


def describe_lock(lock: str | None) -> str:
    if lock is None:
        return "no table lock on existing tables"
    blocks = LOCKS[lock]
    what = [w for w in ("reads", "writes") if w in blocks]
    if lock == "AccessShareLock":  # conflicts with ACCESS EXCLUSIVE alone
        return f"{lock}: blocks only ACCESS EXCLUSIVE (DROP, most ALTER TABLE), not reads or writes"
    if not what:
        return f"{lock}: blocks other DDL and VACUUM, not reads or writes"
    return f"{lock}: blocks {' and '.join(what)} until the transaction ends"


@dataclass
class Hit:
    """What a rule's check reports for one statement."""

    message: str
    location: int | None = None  # byte offset in the file of the node at fault
    lock: str | None = None  # overrides the rule's lock
    hazards: tuple[str, ...] | None = None  # overrides the rule's hazards


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    hazards: tuple[str, ...]
    lock: str | None
    summary: str
    why: str
    fix: str
    check: Callable[[Stmt, Any], Iterable[Hit]] = field(compare=False, repr=False)
    destructive: bool = False  # seed 003: needs approval before it runs in production
    min_pg: int = 0  # the rule applies from this PostgreSQL major version
    max_pg: int = 99  # ... up to and including this one
    # Off unless enabled in the config: advice that `pgsafe apply` already makes moot (it sets
    # timeouts itself and runs each migration in one transaction) but other runners may need.
    opt_in: bool = False
    # "statement": `check` runs on every statement; "directory": the rule is about a migration
    # directory's files (pairs, names), checked by pgsafe.lint.directory when lint reads a
    # directory, and `check` finds nothing in statements.
    scope: str = "statement"
    suppress: str = ""  # how to silence it on purpose, when not a `pgsafe: ignore` comment

    def doc(self) -> str:
        """The rule's documentation page, as `pgsafe rules ID` prints it."""
        lines = [
            f"{self.id} ({self.severity})",
            "",
            self.summary,
            "",
            f"Why: {self.why}",
            f"Lock: {describe_lock(self.lock)}",
            f"Hazards: {', '.join(self.hazards) or 'none'}",
        ]
        if self.destructive:
            lines.append("Destructive: needs approval before it runs in production (seed 003)")
        if self.opt_in:
            lines.append('Off by default: enable it with lint.enable = ["' + self.id + '"]')
        if self.min_pg > 0 or self.max_pg < 99:
            lines.append(f"PostgreSQL versions: {self.min_pg or 'any'} to {self.max_pg}")
        if self.scope == "directory":
            lines.append("Checked: over a migration directory's files, when lint reads a directory")
        lines += [
            "",
            f"Safer: {self.fix}",
            "",
            "Suppress on purpose: "
            + (self.suppress or f"-- pgsafe: ignore {self.id} reason: <why it is safe here>"),
        ]
        return "\n".join(lines)


RULES: dict[str, Rule] = {}
SCOPES = ("statement", "directory")


def rule(
    id: str,
    *,
    severity: str,
    hazards: tuple[str, ...],
    lock: str | None,
    summary: str,
    why: str,
    fix: str,
    destructive: bool = False,
    min_pg: int = 0,
    max_pg: int = 99,
    opt_in: bool = False,
    scope: str = "statement",
    suppress: str = "",
) -> Callable[[Callable[[Stmt, Any], Iterable[Hit]]], Callable[[Stmt, Any], Iterable[Hit]]]:
    """Register a rule; the decorated function is its check."""
    assert severity in SEVERITIES, severity
    assert all(h in HAZARDS for h in hazards), hazards
    assert lock is None or lock in LOCKS, lock
    assert scope in SCOPES, scope

    def register(fn: Callable[[Stmt, Any], Iterable[Hit]]) -> Callable[[Stmt, Any], Iterable[Hit]]:
        if id in RULES:
            raise ValueError(f"rule {id} registered twice")
        RULES[id] = Rule(
            id,
            severity,
            hazards,
            lock,
            summary,
            why,
            fix,
            fn,
            destructive,
            min_pg,
            max_pg,
            opt_in,
            scope,
            suppress,
        )
        return fn

    return register


def no_statement_check(stmt: Stmt, ctx: Any) -> Iterable[Hit]:
    """The statement check of a directory rule: it finds nothing in statements."""
    return ()


@dataclass(slots=True)
class Stmt:
    """One statement with its parse tree: `node` is the statement's own node (the dict under
    its kind, e.g. the AlterTableStmt fields). A view of the parsed statement `raw`, which
    holds the text and the tree (a large file's data statements keep no tree: see
    pgsafe.analysis.statement.Statement)."""

    index: int
    raw: Statement
    _walked: list[tuple[str, dict[str, Any]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def nodes(self) -> list[tuple[str, dict[str, Any]]]:
        """walk(self.node), taken once: many rules and the context read it for each statement."""
        if self._walked is None:
            self._walked = list(walk_nodes(self.node))
        return self._walked

    def release(self) -> None:
        """Lets go of the parse tree and its walk once the rules are done with the statement:
        a large file's statements keep none (bounded memory; nodes() takes them again)."""
        self._walked = None
        self.raw.release_tree()

    def tree(self) -> list[tuple[str, dict[str, Any]]]:
        """walk({self.kind: self.node}): the statement's own node, then nodes()."""
        return [(self.kind, self.node), *self.nodes()]

    @property
    def sql(self) -> str:
        return self.raw.sql

    @property
    def line(self) -> int:
        return self.raw.line

    @property
    def column(self) -> int:
        return self.raw.column

    @property
    def offset(self) -> int:
        return self.raw.offset

    @property
    def kind(self) -> str:
        return self.raw.kind

    @property
    def node(self) -> dict[str, Any]:
        return self.raw.node

    @classmethod
    def from_statement(cls, index: int, s: Statement) -> Stmt:
        """The rules' view of a parsed statement."""
        return cls(index, s)

    from_core = from_statement  # the name callers used when statements came from the core


@dataclass
class Finding:
    rule: str
    hazards: list[str]
    severity: str
    file: str
    line: int
    column: int
    statement: str
    lock: str | None
    message: str
    fix: str
    destructive: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "hazards": self.hazards,
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "statement": self.statement,
            "lock": self.lock,
            "message": self.message,
            "fix": self.fix,
            "destructive": self.destructive,
        }


# -- parse-tree helpers shared by the rules ------------------------------------------------------


def walk(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (node type, fields) pair below `node`, depth first, without recursion (parse
    trees can be thousands of levels deep)."""
    return walk_nodes(node)


def range_name(rangevar: dict[str, Any] | None) -> str:
    """'schema.table' or 'table' of a RangeVar, as written (the parser already folded case)."""
    if not rangevar:
        return ""
    name = rangevar.get("relname", "")
    schema = rangevar.get("schemaname")
    return f"{schema}.{name}" if schema else name


def strings(nodes: list[dict[str, Any]] | None) -> list[str]:
    """The sval of a list of String nodes (qualified names, type names)."""
    return [n["String"]["sval"] for n in nodes or [] if "String" in n]


def type_name(type_node: dict[str, Any] | None) -> str:
    """The last part of a TypeName (`int4`, `varchar`, `timestamp`)."""
    names = strings((type_node or {}).get("names"))
    return names[-1] if names else ""


def alter_cmds(stmt: Stmt) -> list[dict[str, Any]]:
    """The AlterTableCmd fields of an ALTER TABLE statement."""
    if stmt.kind != "AlterTableStmt":
        return []
    return [c["AlterTableCmd"] for c in stmt.node.get("cmds", []) if "AlterTableCmd" in c]
