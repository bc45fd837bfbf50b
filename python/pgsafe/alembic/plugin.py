"""The ``alembic.plugins`` entry point: makes pgsafe's ``op`` helpers available to every
revision file without an import (Alembic 1.18+ loads it when it starts)."""

from __future__ import annotations

from typing import Any


def setup(plugin: Any) -> None:
    from pgsafe.alembic import ops  # noqa: F401  (Operations.register_operation at import)
