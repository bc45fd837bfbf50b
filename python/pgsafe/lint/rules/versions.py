"""Syntax newer than the target: a statement that the target's PostgreSQL cannot parse."""

from __future__ import annotations

from collections.abc import Iterator

from pgsafe.analysis.statement import GRAMMAR_MAJOR
from pgsafe.analysis.versions import requirement
from pgsafe.lint.context import Context
from pgsafe.lint.model import Hit, Stmt, rule


@rule(
    "requires-newer-postgres",
    severity="error",
    hazards=(),
    lock=None,
    summary="The statement uses syntax that the target's PostgreSQL major does not have.",
    why="pgsafe parses with the newest PostgreSQL grammar, so a migration written for a newer "
    "major parses here and fails on the target with a syntax error, after the migrations "
    "before it have run. The target's major is the server's (when the command has a database), "
    "else pg_version in [tool.pgsafe] or --pg-version; without any, the newest grammar's",
    fix="rewrite the statement with syntax the target's major has (docs/versions.md lists what "
    "each major added), or upgrade the target first; set pg_version to the target's major",
)
def requires_newer_postgres(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if ctx.pg_version >= GRAMMAR_MAJOR:
        return  # nothing parses that the newest grammar's major lacks
    need = requirement(stmt.raw.tree)
    if need is not None and need.major > ctx.pg_version:
        yield Hit(
            f"{need.feature} requires PostgreSQL {need.major}; the target runs {ctx.pg_version}",
            location=need.location,
        )
