"""Runs the rules over migration files: parse with libpg_query, walk the statements with a
Context, apply `-- pgsafe: ignore RULE reason: TEXT` suppressions, report unused ones."""

from __future__ import annotations

import bisect
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgsafe import _core
from pgsafe.errors import ConfigError, ParseError
from pgsafe.lint import rules as _rules  # noqa: F401  (registers every rule)
from pgsafe.lint.config import LintConfig
from pgsafe.lint.context import Context
from pgsafe.lint.locks import predict
from pgsafe.lint.model import RULES, Finding, Hit, Rule, Stmt, lock_hazards
from pgsafe.migrations import is_alembic_project, parse_sql, read_sql
from pgsafe.render import Report, Section, Table, Text

# "-- pgsafe: ignore rule-a, rule-b reason: why" (statement) or "ignore-file" (whole file).
_SUPPRESS = re.compile(
    r"pgsafe:\s*(?P<scope>ignore-file|ignore)\s+(?P<rules>[a-z0-9\-,\s]+?)"
    r"(?:\s+reason:\s*(?P<reason>.*?))?\s*(?:\*/)?\s*$",
    re.IGNORECASE,
)


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
    for c in _core.scan_comments(text):
        body = c.text.lstrip("-/* ").rstrip()
        if not body.lower().startswith("pgsafe:"):
            continue

        def problem(message: str, c: _core.Comment = c) -> None:
            problems.append(_meta(file, c.line, c.column, "invalid-suppression", message))

        m = _SUPPRESS.search(body)
        if m is None:
            problem(
                f"cannot read this pgsafe comment: {body!r}; expected "
                "'pgsafe: ignore RULE reason: TEXT'"
            )
            continue
        names = [r.strip() for r in m["rules"].split(",") if r.strip()]
        unknown = [r for r in names if r not in RULES]
        if unknown:
            problem(f"unknown rule {', '.join(unknown)} in a suppression")
        reason = (m["reason"] or "").strip()
        if not reason:
            problem(
                f"a suppression needs a reason: '-- pgsafe: ignore {', '.join(names)} reason: TEXT'"
            )
            continue
        file_wide = m["scope"].lower() == "ignore-file"
        target = None if file_wide else _statement_for(c, statements)
        out.append(Suppression(names, reason, c.line, c.column, file_wide, target))
    return out, problems


def _statement_for(comment: _core.Comment, statements: list[Stmt]) -> int | None:
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
    """Line and column of byte offsets, from a table of line starts built once per file (the
    core's line_column scans from the start each time: quadratic over many findings)."""

    def __init__(self, text: str) -> None:
        self.data = text.encode()
        self.starts = [0] + [i + 1 for i, b in enumerate(self.data) if b == 0x0A]

    def __call__(self, offset: int) -> tuple[int, int]:
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


def lint_text(text: str, file: str = "<stdin>", config: LintConfig | None = None) -> LintResult:
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
    where = _Positions(text)
    for stmt in statements:
        predicted = predict(stmt, ctx).lock
        for rule in RULES.values():
            if not config.enabled(rule) or not rule.min_pg <= config.pg_version <= rule.max_pg:
                continue
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
    for sup in suppressions:
        for name in sup.rules:
            if name in RULES and name not in sup.used:
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


def lint_paths(paths: Iterable[str], config: LintConfig | None = None) -> LintResult:
    """Lint files, directories (every *.sql in them, sorted), Alembic projects (an alembic.ini
    or its directory: every revision rendered offline) and '-' for stdin."""
    config = config or LintConfig()
    total = LintResult()
    for p in paths:
        if p == "-":
            files: list[tuple[str, str]] = [("<stdin>", sys.stdin.read())]
        else:
            path = Path(p)
            if is_alembic_project(path):
                from pgsafe.alembic.lint import lint_project

                one = lint_project(path, config)
                total.findings.extend(one.findings)
                total.files.extend(one.files)
                continue
            if path.is_dir():
                from pgsafe.sources.layouts import lint_sources, nothing_found

                # Another tool's layout (diesel, Flyway, dbmate, ...): the ups it runs, with
                # the file's own lines (a dbmate file's down section is not linted).
                layout_files = lint_sources(path)
                if layout_files is not None:
                    files = [(n, t) for n, t in layout_files if not config.excluded(Path(n))]
                else:
                    # Down files undo what their up file did (dropping is their job): linted
                    # only when named explicitly.
                    found = sorted(
                        f
                        for f in path.rglob("*.sql")
                        if f.is_file() and not f.name.endswith(".down.sql")
                    )
                    if not found:
                        raise ConfigError(nothing_found(path, None))
                    files = [(str(f), read_sql(f)) for f in found if not config.excluded(f)]
            elif path.is_file():
                from pgsafe.sources.layouts import lint_file_text

                files = [(str(path), lint_file_text(path))]
            else:
                raise ConfigError(f"{p}: no such file or directory")
        for name, text in files:
            one = lint_text(text, name, config)
            total.findings.extend(one.findings)
            total.files.extend(one.files)
    return total
