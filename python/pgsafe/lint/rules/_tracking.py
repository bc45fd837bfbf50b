"""Facts rules gather from the statements linted so far (ctx.statements), kept up to date one
statement at a time: a rule that asks "what did the file do before this statement?" costs the
same at statement 10 and at statement 10,000, so linting stays linear in the size of the file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pgsafe.lint.context import Context
from pgsafe.lint.model import Stmt


class Tracker:
    """Facts about ctx.statements, fed each statement once, in order."""

    def feed(self, stmt: Stmt) -> None:  # pragma: no cover - every tracker overrides it
        raise NotImplementedError


T = TypeVar("T", bound=Tracker)
R = TypeVar("R")

_KEY = "_pgsafe_rule_trackers"


def tracked(ctx: Context, cls: type[T]) -> T:
    """The `cls` tracker of this context, fed every statement of ctx.statements. Kept on the
    context itself, so it lives exactly as long as the lint run it belongs to."""
    cache: dict[type[Any], list[Any]] = ctx.__dict__.setdefault(_KEY, {})
    statements = ctx.statements
    entry = cache.get(cls)
    if entry is None or entry[0] is not statements or entry[1] > len(statements):
        entry = [statements, 0, cls()]  # new context, or its statements were replaced
        cache[cls] = entry
    tracker: T = entry[2]
    for stmt in statements[entry[1] :]:
        tracker.feed(stmt)
    entry[1] = len(statements)
    return tracker


def per_file(ctx: Context, build: Callable[[list[Stmt]], R]) -> R | None:
    """build(ctx.file_statements), computed once per context (the whole file is known up front);
    None when the engine did not supply the file's statements."""
    statements = ctx.file_statements
    if statements is None:
        return None
    cache: dict[Any, tuple[list[Stmt], Any]] = ctx.__dict__.setdefault(_KEY + "_file", {})
    entry = cache.get(build)
    if entry is None or entry[0] is not statements:
        entry = (statements, build(statements))
        cache[build] = entry
    result: R = entry[1]
    return result
