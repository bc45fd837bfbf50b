"""pgsafe: makes every PostgreSQL schema migration provably safe before, during and after it
runs. The public API is re-exported here; the compiled core (`pgsafe._core`) is private.
The ground floor's names load with the package; the rest (Runner, discover, ...) on first use,
so `import pgsafe` (and every pytest run, through the plugin) stays light."""

import importlib
from typing import Any

from pgsafe import _core
from pgsafe.config import Settings, Target, resolve_target
from pgsafe.db import connect
from pgsafe.errors import (
    ConfigError,
    ConnectError,
    DatabaseError,
    Error,
    MigrationError,
    MigrationFailed,
    ParseError,
    RollbackError,
    RollbackFailed,
    UnsafeError,
)

__version__ = _core.__version__
Connection = _core.Connection

__all__ = [
    "ConfigError",
    "ConnectError",
    "Connection",
    "DatabaseError",
    "Difference",
    "Error",
    "Migration",
    "MigrationError",
    "MigrationFailed",
    "ParseError",
    "RollbackError",
    "RollbackFailed",
    "Runner",
    "SchemaFingerprint",
    "SchemaObject",
    "Settings",
    "StatusReport",
    "Target",
    "UnsafeError",
    "__version__",
    "connect",
    "discover",
    "load_statements",
    "parse_sql",
    "resolve_target",
]

# Names from the packages above the ground floor, imported on first use (PEP 562).
_LAZY = {
    "Runner": "pgsafe.lifecycle.runner",
    "StatusReport": "pgsafe.lifecycle.runner",
    "Difference": "pgsafe.schema",
    "SchemaFingerprint": "pgsafe.schema",
    "SchemaObject": "pgsafe.schema",
    "Migration": "pgsafe.sources.files",
    "load_statements": "pgsafe.sources.files",
    "parse_sql": "pgsafe.sources.files",
    "discover": "pgsafe.sources.layouts",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pgsafe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
