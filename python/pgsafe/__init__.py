"""pgsafe: makes every PostgreSQL schema migration provably safe before, during and after it
runs. The public API is re-exported here; the compiled core (`pgsafe._core`) is private.
The ground floor's names load with the package; the rest (Runner, discover, ...) on first use,
so `import pgsafe` (and every pytest run, through the plugin) stays light."""

import importlib
import sys
from collections.abc import Callable
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


def lazy_attributes(
    package: str, names: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(__getattr__, __dir__) for a package whose public names live in its modules and load on
    first use (PEP 562): `names` maps each name to the module that defines it."""

    def getattr_(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def dir_() -> list[str]:
        return sorted([*vars(sys.modules[package]), *names])

    return getattr_, dir_


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
