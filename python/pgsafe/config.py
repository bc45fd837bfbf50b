"""Where pgsafe connects and with which limits: --db, DATABASE_URL, libpq's PG* variables and
service files, or else the embedded throwaway server; timeouts and retries with their defaults."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field

from pgsafe import _core

# libpq variables that name a server; any of them means "the user chose a target".
_PG_TARGET_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


@dataclass(frozen=True)
class Target:
    dsn: str = field(repr=False)  # "" lets libpq read PG* variables and service files
    source: str  # "--db", "DATABASE_URL", "PG* environment", "embedded"

    @property
    def embedded(self) -> bool:
        return self.source == "embedded"

    @property
    def masked(self) -> str:
        if self.embedded:
            return "embedded throwaway server"
        if not self.dsn:
            return (
                "libpq defaults (" + ", ".join(v for v in _PG_TARGET_VARS if v in os.environ) + ")"
            )
        return _core.mask_dsn(self.dsn)


def resolve_target(db: str | None) -> Target:
    if db:
        return Target(db, "--db")
    url = os.environ.get("DATABASE_URL")
    if url:
        return Target(url, "DATABASE_URL")
    if any(os.environ.get(v) for v in _PG_TARGET_VARS):
        return Target("", "PG* environment")
    return Target("", "embedded")


@dataclass
class Settings:
    """Safety limits for apply and rollback; every one is a CLI flag too."""

    lock_timeout_ms: int = 5_000
    statement_timeout_ms: int = 5 * 60_000  # seed 003: 5 min for ordinary statements
    long_statement_timeout_ms: int = 15 * 60_000  # index builds, validations, maintenance
    idle_in_transaction_timeout_ms: int = 60_000
    max_attempts: int = 5
    retry_base_ms: int = 500
    retry_max_ms: int = 30_000
    lock_wait_s: float = 300.0  # how long to wait for another run's migration lock
    ledger_schema: str = "pgsafe"
    application_name: str = "pgsafe"
    connect_timeout_s: float = 10.0

    def timeouts(self) -> _core.Timeouts:
        t = _core.Timeouts()
        t.lock_timeout_ms = self.lock_timeout_ms
        t.statement_timeout_ms = self.statement_timeout_ms
        t.long_statement_timeout_ms = self.long_statement_timeout_ms
        t.idle_in_transaction_timeout_ms = self.idle_in_transaction_timeout_ms
        return t

    def retry(self) -> _core.RetryPolicy:
        r = _core.RetryPolicy()
        r.max_attempts = self.max_attempts
        r.base_delay_ms = self.retry_base_ms
        r.max_delay_ms = self.retry_max_ms
        return r

    def lock_backoff(self) -> _core.RetryPolicy:
        # Polling for the migration lock: quick at first, never more than 2 s apart.
        r = _core.RetryPolicy()
        r.base_delay_ms = 100
        r.max_delay_ms = 2_000
        return r


def applied_by() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def pgsafe_version() -> str:
    """This build's version, as the ledger records it."""
    return str(_core.__version__)
