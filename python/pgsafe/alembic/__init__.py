"""pgsafe for Alembic projects: ``pgsafe.alembic.configure(context, connection)`` in env.py,
safe ``op`` helpers for revision files, and offline analysis of every revision (lint, graph
checks, checksums). Alembic is imported only here, so pgsafe itself needs no dependency."""

from __future__ import annotations

import importlib.util
from typing import Any

from pgsafe.alembic.runtime import InvariantViolation, allow_not_valid, configure, release_lock

if importlib.util.find_spec("alembic") is not None:
    from pgsafe.alembic import ops as _ops  # noqa: F401  (registers op.add_column_not_null_safe...)

__all__ = [
    "InvariantViolation",
    "allow_not_valid",
    "configure",
    "lint_project",
    "release_lock",
]


def __getattr__(name: str) -> Any:
    if name == "lint_project":
        from pgsafe.lint.alembic import lint_project

        return lint_project
    raise AttributeError(name)
