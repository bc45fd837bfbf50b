"""Runs the rules over migration files: parse with libpg_query, walk the statements with a
Context, apply `-- pgsafe: ignore RULE reason: TEXT` suppressions, report unused ones."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from pgsafe.analysis.statement import Comment, is_step_marker, scan_comments
from pgsafe.errors import ParseError
from pgsafe.lint import rules as _rules  # noqa: F401  (registers every rule)
from pgsafe.lint.config import LintConfig
from pgsafe.lint.context import Context
from pgsafe.lint.model import (
    RULES,
    Finding,
    Hit,
    Rule,
    Stmt,
    alter_cmds,
    lock_hazards,
    range_name,
)
from pgsafe.render import Report, Section, Table, Text
from pgsafe.sources.files import parse_sql

_RULE_LIST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-, \t")


def read_directive(body: str) -> tuple[str, list[str], str] | None:
    """A suppression comment's words: "pgsafe: ignore rule-a, rule-b reason: why" (one
    statement) or "pgsafe: ignore-file ..." (the whole file) -> (scope, rules, reason); None
    when it is not of that form. `body` is the comment token's text without its -- or /* */.
    "pgsafe: irreversible reason: why" (a migration without a down, on purpose: read by the
    require-down-migration check) is ("irreversible", [], reason)."""
    if not body.lower().startswith("pgsafe:"):
        return None
    rest = body[len("pgsafe:") :].strip()
    if rest.endswith("*/"):
        rest = rest[:-2].rstrip()
    if rest.lower() == "irreversible":
        return "irreversible", [], ""
    words = rest.split(None, 1)
    if len(words) == 2 and words[0].lower() == "irreversible":
        if not words[1].lower().startswith("reason:"):
            return None
        return "irreversible", [], words[1][len("reason:") :].strip()
    if len(words) != 2 or words[0].lower() not in ("ignore", "ignore-file"):
        return None
    scope, tail = words[0].lower(), words[1]
    at = tail.lower().find("reason:")
    rules_text, reason = (tail, "") if at < 0 else (tail[:at], tail[at + len("reason:") :])
    if at > 0 and not tail[at - 1].isspace():
        return None
    if not rules_text.strip() or not set(rules_text.lower()) <= _RULE_LIST_CHARS:
        return None
    rules = [r.strip() for r in rules_text.split(",") if r.strip()]
    return scope, rules, reason.strip()


@dataclass
class Suppression:
    rules: list[str]
    reason: str
    line: int
    column: int
    file_wide: bool
    statement: int | None  # index of the statement it applies to
    used: set[str] = field(default_factory=set)


@dataclass
class LintResult(Report):
    findings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # The statements of the last file linted (not reported): lint_paths reads the constraints
    # they add for the next migration of the directory.
    statements: list[Stmt] = field(default_factory=list, repr=False, compare=False)

    title = "pgsafe lint"

    @property
    def failed(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    def to_json(self) -> dict[str, object]:
        return {"findings": [f.to_json() for f in self.findings]}

    def to_dict(self) -> dict[str, Any]:
        return self.to_json()

    def summary(self) -> str:
        errors = sum(1 for f in self.findings if f.severity == "error")
        verdict = "FAILED" if errors else "passed"
        return (
            f"{verdict}: {len(self.files)} file(s), {errors} error(s), "
            f"{len(self.findings) - errors} warning(s)"
        )

    def sections(self) -> list[Section]:
        rows = [
            (f"{f.file}:{f.line}:{f.column}", f.severity, f.rule, f.lock, f.message)
            for f in self.findings
        ]
        out = [
            Section(
                "Findings",
                [Table(("where", "severity", "rule", "lock", "message"), rows, "no findings")],
            )
        ]
        fixes = [(f"{f.file}:{f.line}", f.rule, f.fix) for f in self.findings if f.fix]
        if fixes:
            out.append(Section("Safer recipes", [Table(("where", "rule", "fix"), fixes)]))
        if any(f.destructive for f in self.findings):
            out.append(
                Section(
                    "Destructive",
                    [Text("Destructive statements need approval before they run in production.")],
                )
            )
        return out


def _suppressions(
    text: str, statements: list[Stmt], file: str
) -> tuple[list[Suppression], list[Finding]]:
    out: list[Suppression] = []
    problems: list[Finding] = []
    for c in scan_comments(text) if "pgsafe:" in text.lower() else ():
        body = c.text.lstrip("-/* ").rstrip()
        if not body.lower().startswith("pgsafe:") or is_step_marker(c.text):
            continue  # a step marker splits transactions (analysis.statement), no suppression

        def problem(message: str, c: Comment = c) -> None:
            problems.append(_meta(file, c.line, c.column, "invalid-suppression", message))

        directive = read_directive(body)
        if directive is None:
            problem(
                f"cannot read this pgsafe comment: {body!r}; expected "
                "'pgsafe: ignore RULE reason: TEXT'"
            )
            continue
        scope, names, reason = directive
        if scope == "irreversible":
            if not reason:
                problem(
                    "an irreversible marker needs a reason: '-- pgsafe: irreversible reason: TEXT'"
                )
            continue  # read by the require-down-migration check, not a suppression
        unknown = [r for r in names if r not in RULES]
        if unknown:
            problem(f"unknown rule {', '.join(unknown)} in a suppression")
        if not reason:
            problem(
                f"a suppression needs a reason: '-- pgsafe: ignore {', '.join(names)} reason: TEXT'"
            )
            continue
        file_wide = scope == "ignore-file"
        target = None if file_wide else _statement_for(c, statements)
        out.append(Suppression(names, reason, c.line, c.column, file_wide, target))
    return out, problems


def _statement_for(comment: Comment, statements: list[Stmt]) -> int | None:
    """The statement a suppression comment belongs to: the one it is inside, or the one whose
    last line it trails (`DROP ...; -- pgsafe: ignore ...`), or else the next one."""
    trailing = None
    for s in statements:
        end = s.offset + len(s.sql.encode())
        if s.offset <= comment.offset < end:
            return s.index
        if end <= comment.offset and s.raw.end_line == comment.line:
            trailing = s.index
        if s.offset > comment.offset:
            return trailing if trailing is not None else s.index
    return trailing


def _meta(file: str, line: int, column: int, rule_id: str, message: str) -> Finding:
    return Finding(
        rule_id,
        [],
        "error" if rule_id == "invalid-suppression" else "warning",
        file,
        line,
        column,
        "",
        None,
        message,
        "",
    )


class _Positions:
    """Line and column of byte offsets, from a table of line starts built once per file, on
    the first finding that needs it (the core's line_column scans from the start each time:
    quadratic over many findings)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = b""
        self.starts: list[int] = []

    def __call__(self, offset: int) -> tuple[int, int]:
        if not self.starts:
            self.data = self.text.encode()
            self.starts = [0]
            at = self.data.find(b"\n")
            while at >= 0:
                self.starts.append(at + 1)
                at = self.data.find(b"\n", at + 1)
        line = bisect.bisect_right(self.starts, offset)
        start = self.starts[line - 1]
        return line, len(self.data[start:offset].decode("utf-8", "replace")) + 1


def _finding(
    rule: Rule,
    hit: Hit,
    stmt: Stmt,
    where: _Positions,
    file: str,
    severity: str,
    predicted: str | None,
) -> Finding:
    line, column = stmt.line, stmt.column
    if hit.location is not None and hit.location >= stmt.offset:
        line, column = where(hit.location)
    # DESIGN.md: the strongest lock the statement takes on an object that existed before the
    # migration; the rule's own lock is the fallback for statements the predictor cannot see.
    lock = hit.lock if hit.lock is not None else predicted if predicted is not None else rule.lock
    hazards = list(hit.hazards if hit.hazards is not None else rule.hazards)
    if rule.lock is not None or hit.lock is not None:  # a rule about blocking, not about style
        for h in lock_hazards(lock):
            if h not in hazards:
                hazards.append(h)
    return Finding(
        rule.id,
        hazards,
        severity,
        file,
        line,
        column,
        stmt.sql,
        lock,
        hit.message,
        rule.fix,
        rule.destructive,
    )


def added_constraints(statements: list[Stmt]) -> dict[tuple[str, str], dict[str, Any]]:
    """(bare table, name) -> Constraint fields of every named constraint the statements add with
    ALTER TABLE ... ADD CONSTRAINT: what a later migration of the directory may rely on."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for stmt in statements:
        if stmt.kind != "AlterTableStmt":
            continue  # (and no tree parsed again for a large file's data statements)
        table = range_name(stmt.node.get("relation")).rsplit(".", 1)[-1]
        for cmd in alter_cmds(stmt):
            con = (cmd.get("def") or {}).get("Constraint") or {}
            if cmd.get("subtype") == "AT_AddConstraint" and con.get("conname"):
                out[(table, con["conname"])] = con
    return out


def lint_text(
    text: str,
    file: str = "<stdin>",
    config: LintConfig | None = None,
    earlier: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> LintResult:
    """Lint one file. `earlier`: the constraints earlier migrations of its directory added
    (added_constraints), so a recipe split over several migrations is recognised."""
    config = config or LintConfig()
    result = LintResult(files=[file])
    try:
        statements = [Stmt.from_core(i, s) for i, s in enumerate(parse_sql(text, file))]
    except ParseError as exc:
        result.findings.append(
            Finding(
                "syntax-error",
                [],
                "error",
                file,
                exc.line,
                exc.column,
                "",
                None,
                exc.message,
                "fix the SQL",
            )
        )
        return result
    suppressions, problems = _suppressions(text, statements, file)
    result.findings.extend(problems)
    ctx = Context(pg_version=config.pg_version, file=file, file_statements=statements)
    if earlier:
        ctx.earlier_constraints = earlier
    result.statements = statements
    where = _Positions(text)
    active = [
        rule
        for rule in RULES.values()
        if rule.scope == "statement"
        and config.enabled(rule)
        and rule.min_pg <= config.pg_version <= rule.max_pg
    ]
    for stmt in statements:
        stmt.raw.hold_tree()  # parsed once for every rule (see Statement.release_tree)
        predicted = ctx.prediction(stmt).lock
        for rule in active:
            for hit in rule.check(stmt, ctx) or ():
                sup = next(
                    (
                        s
                        for s in suppressions
                        if rule.id in s.rules and (s.file_wide or s.statement == stmt.index)
                    ),
                    None,
                )
                if sup is not None:
                    sup.used.add(rule.id)
                    continue
                result.findings.append(
                    _finding(rule, hit, stmt, where, file, config.severity(rule), predicted)
                )
        ctx.note(stmt)
        if stmt.index:  # kept one statement longer: the rules' trackers read it next
            statements[stmt.index - 1].release()
    if statements:
        statements[-1].release()
    for sup in suppressions:
        for name in sup.rules:
            # Rules over a directory's files (require-down-migration, migration-naming) read
            # their suppressions themselves: unused or not, the statements cannot tell.
            if name in RULES and name not in sup.used and RULES[name].scope == "statement":
                result.findings.append(
                    _meta(
                        file,
                        sup.line,
                        sup.column,
                        "unused-suppression",
                        f"suppression of {name} matches no finding",
                    )
                )
    result.findings.sort(key=lambda f: (f.line, f.column, f.rule))
    return result
