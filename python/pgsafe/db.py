"""The ground floor's connection to a target: `connect` with pgsafe's application name and
connect timeout, failing with one ConnectError line that names the target (password masked)."""

from __future__ import annotations

import contextlib

from pgsafe import _core
from pgsafe.config import Settings
from pgsafe.errors import ConnectError, DatabaseError


def connect(dsn: str, settings: Settings, purpose: str = "") -> _core.Connection:
    """A connection, or ConnectError naming the target (password masked) and the reason."""
    name = settings.application_name + (f" {purpose}" if purpose else "")
    try:
        return _core.Connection(dsn, name, settings.connect_timeout_s)
    except DatabaseError as exc:
        raise ConnectError(exc.message) from exc


def server_major(dsn: str) -> int:
    """The major version of the server at `dsn` (one short connection)."""
    with contextlib.closing(_core.Connection(dsn, "pgsafe-version")) as conn:
        return int(conn.server_version) // 10000
