"""Statements written back from parse trees, for `pgsafe fix`: the statement's SQL parsed again by
pglast into its AST (the same libpg_query grammar as analysis.statement), changed field by field,
and printed by pglast's own deparser. SQL is never assembled by matching text.

pglast is imported on first use (as in analysis.statement): importing pgsafe stays fast."""

from __future__ import annotations

from types import ModuleType
from typing import Any

__all__ = ["ast", "enums", "parse_one", "to_sql"]

_MODULES: dict[str, ModuleType] = {}


def _load() -> dict[str, ModuleType]:
    if not _MODULES:
        # Start-up time, as in analysis.statement: only `pgsafe fix` needs the printer.
        import pglast.ast  # noqa: PLC0415
        import pglast.enums  # noqa: PLC0415
        import pglast.parser  # noqa: PLC0415
        import pglast.stream  # noqa: PLC0415

        _MODULES.update(
            ast=pglast.ast, enums=pglast.enums, parser=pglast.parser, stream=pglast.stream
        )
    return _MODULES


def ast() -> ModuleType:
    """pglast.ast: the node classes (`ast().Constraint(contype=..., ...)`)."""
    return _load()["ast"]


def enums() -> ModuleType:
    """pglast.enums: ConstrType, AlterTableType, ObjectType, ..."""
    return _load()["enums"]


def parse_one(sql: str) -> Any:
    """The AST of one statement (the node under its RawStmt)."""
    stmts = _load()["parser"].parse_sql(sql)
    if len(stmts) != 1:
        raise ValueError(f"expected one statement, got {len(stmts)}")
    return stmts[0].stmt


def to_sql(node: Any) -> str:
    """The SQL of an AST node, on one line, as pglast's deparser prints it."""
    return str(_load()["stream"].RawStream()(node))
