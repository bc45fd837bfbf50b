"""`pgsafe lint` for an Alembic project: every revision's rendered upgrade() and downgrade() SQL
through pgsafe's rules, each finding moved to the revision file line that emitted the statement;
plus the graph checks (one head, no unmerged branch) and a real downgrade() per revision."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pgsafe.lint.config import LintConfig
from pgsafe.lint.engine import LintResult, lint_text
from pgsafe.lint.model import RULES, Finding
from pgsafe.sources.alembic import Project, Rendered, Revision, analyse


def _finding(file: Path, line: int, rule: str, severity: str, message: str, fix: str) -> Finding:
    return Finding(rule, [], severity, str(file), line, 1, "", None, message, fix)


def graph_findings(project: Project) -> list[Finding]:
    out: list[Finding] = []
    if len(project.heads) > 1:
        by_id = {r.revision: r for r in project.revisions}
        for head in project.heads:
            rev = by_id.get(head)
            out.append(
                _finding(
                    rev.path if rev else project.script_dir,
                    1,
                    "alembic-multiple-heads",
                    "error",
                    f"revision {head} is one of {len(project.heads)} heads "
                    f"({', '.join(project.heads)}): `alembic upgrade head` refuses to run and "
                    "the order of the branches is undefined"
                    + (
                        f" (they split at {', '.join(project.branch_points)})"
                        if project.branch_points
                        else ""
                    ),
                    "merge them: alembic merge heads -m 'merge'",
                )
            )
    for rev in project.revisions:
        line = rev.function_lines.get("downgrade", 1)
        if rev.downgrade_def == "pass":
            out.append(
                _finding(
                    rev.path,
                    line,
                    "alembic-empty-downgrade",
                    "error",
                    f"revision {rev.revision}: downgrade() is only `pass`, so a rollback records "
                    "the revision as undone while everything upgrade() did stays",
                    "write the reverse of upgrade(), or raise NotImplementedError to say it is "
                    "irreversible",
                )
            )
        elif rev.downgrade_def == "missing":
            out.append(
                _finding(
                    rev.path,
                    1,
                    "alembic-empty-downgrade",
                    "error",
                    f"revision {rev.revision}: no downgrade() function",
                    "write the reverse of upgrade()",
                )
            )
        elif rev.downgrade_def == "raises":
            out.append(
                _finding(
                    rev.path,
                    line,
                    "alembic-irreversible",
                    "warning",
                    f"revision {rev.revision}: downgrade() raises: the revision is irreversible "
                    "and can only be undone by restoring a backup",
                    "take a backup before applying it (pgsafe backup)",
                )
            )
        for direction, error in (
            ("upgrade", rev.upgrade_error),
            ("downgrade", rev.downgrade_error),
        ):
            if error and not (direction == "downgrade" and rev.downgrade_def == "raises"):
                out.append(
                    _finding(
                        rev.path,
                        rev.function_lines.get(direction, 1),
                        "alembic-render-failed",
                        "error",
                        f"revision {rev.revision}: {error}",
                        "make the function work in offline (--sql) mode: no reads from the "
                        "database, op.execute for raw SQL",
                    )
                )
    return out


def _statement_findings(
    rev: Revision, rendered: Rendered, direction: str, config: LintConfig
) -> list[Finding]:
    result = lint_text(rendered.sql, str(rev.path), config)
    out = []
    for f in result.findings:
        line = rendered.revision_line(f.line)
        if line is None:
            continue  # Alembic's own bookkeeping (BEGIN/COMMIT, alembic_version), not the user's
        if direction == "downgrade":
            rule = RULES.get(f.rule)
            # Dropping what upgrade() created is a downgrade's job (SQL directories skip their
            # down files for the same reason).
            if rule is not None and rule.destructive:
                continue
        out.append(
            dataclasses.replace(
                f,
                line=line,
                column=1,
                message=f"{f.message} (in {direction}() of revision {rev.revision})",
            )
        )
    return out


def lint_project(path: str | Path, config: LintConfig | None = None) -> LintResult:
    """Lint an Alembic project (alembic.ini, its directory, or the script directory)."""
    config = config or LintConfig()
    project = analyse(path)
    result = LintResult(files=[str(r.path) for r in project.revisions])
    result.findings.extend(graph_findings(project))
    for rev in project.revisions:
        for direction, rendered in (("upgrade", rev.upgrade), ("downgrade", rev.downgrade)):
            if rendered is not None:
                result.findings.extend(_statement_findings(rev, rendered, direction, config))
    result.findings.sort(key=lambda f: (f.file, f.line, f.column, f.rule))
    return result
