"""pgsafe: makes every PostgreSQL schema migration provably safe before, during and after it
runs. The public API is re-exported here; the compiled core (`pgsafe._core`) is private."""

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
from pgsafe.lifecycle.runner import Runner, StatusReport
from pgsafe.schema import Difference, SchemaFingerprint, SchemaObject
from pgsafe.sources.files import Migration, load_statements, parse_sql
from pgsafe.sources.layouts import discover

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
