"""Where pgsafe connects and with which limits: --db, DATABASE_URL, libpq's PG* variables and
service files, or else the embedded throwaway server; timeouts and retries with their defaults."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field

from pgsafe import _core
from pgsafe.errors import ConfigError, mask_password

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
        return mask_password(self.dsn)


def resolve_target(db: str | None) -> Target:
    if db:
        return Target(db, "--db")
    url = os.environ.get("DATABASE_URL")
    if url:
        return Target(url, "DATABASE_URL")
    if any(os.environ.get(v) for v in _PG_TARGET_VARS):
        return Target("", "PG* environment")
    return Target("", "embedded")


# -- durations --------------------------------------------------------------------------------
# One parser for every duration pgsafe reads: CLI flags, pgsafe.toml/pyproject policy keys,
# postflight expectations, backup retention, the Alembic hook's -x settings. Same units, same
# rules everywhere (README, "Durations"):
#   - a number and a unit: us, ms, s (sec), min (m), h, d, w; "1.5s" and "1500ms" are equal;
#   - text without a unit is refused ("5000" of what?), except "0", which needs none; a number
#     (TOML, Python) is read in the unit the key's own name carries (policy long_transaction_s =
#     30), and refused where the name carries none;
#   - 0 is accepted only where the caller documents what it means (`zero`); for PostgreSQL's
#     timeouts 0 means "disabled", which for a safety bound would be "wait forever": refused.

DURATION_UNITS_MS: dict[str, float] = {
    "us": 0.001,
    "ms": 1.0,
    "s": 1_000.0,
    "sec": 1_000.0,
    "m": 60_000.0,
    "min": 60_000.0,
    "h": 3_600_000.0,
    "d": 86_400_000.0,
    "w": 604_800_000.0,
}
DURATION_EXAMPLES = "e.g. 500ms, 5s, 15min, 24h"
MAX_TIMEOUT_MS = 2_147_483_647  # PostgreSQL's timeouts are int milliseconds (~24.8 days)


def _split_duration(text: str) -> tuple[float, str] | None:
    """(number, unit) of "1.5 s", "200ms", "7d"; unit "" when there is none; None if malformed."""
    s = text.strip()
    end = 0
    while end < len(s) and (s[end].isdigit() or s[end] == "."):
        end += 1
    number, unit = s[:end], s[end:].strip().lower()
    if not number or number.count(".") > 1 or number == "." or not number.isascii():
        return None
    if unit and unit not in DURATION_UNITS_MS:
        return None
    return float(number), unit


def _at(where: str) -> str:
    return f"{where}: " if where else ""


def parse_duration(
    value: object,
    where: str,
    *,
    unit: str | None = None,
    zero: str | None = None,
    no_zero: str = "",
    minimum_ms: float = 0.0,
    maximum_ms: float | None = None,
) -> float:
    """Milliseconds of `value`: text such as "5s" or "200ms" (always with a unit, unless 0), or
    a number when `unit` says what it counts (a policy key named ``..._s``). `zero` is what 0
    means where it is allowed (None: refused, `no_zero` saying why). `where` names the flag or
    key in the one-line ConfigError."""
    if isinstance(value, bool):
        raise ConfigError(f"{_at(where)}not a duration: {value!r} ({DURATION_EXAMPLES})")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{_at(where)}not a duration: {value!r} ({DURATION_EXAMPLES})")
        if unit is None and value != 0:
            raise ConfigError(
                f"{_at(where)}{value!r} has no unit; write it as a string with one "
                f'("{value}s", "{value}ms"; {DURATION_EXAMPLES})'
            )
        if value < 0:
            raise ConfigError(f"{_at(where)}a duration cannot be negative ({value!r})")
        ms = float(value) * DURATION_UNITS_MS[unit or "ms"]
    else:
        text = str(value)
        parsed = _split_duration(text)
        if parsed is None:
            hint = "a duration cannot be negative" if text.strip().startswith("-") else ""
            raise ConfigError(f"{_at(where)}not a duration: {text!r} ({hint or DURATION_EXAMPLES})")
        number, found = parsed
        if not found and number != 0:
            raise ConfigError(
                f"{_at(where)}{text.strip()!r} has no unit; say which "
                f"({text.strip()}ms? {text.strip()}s?; {DURATION_EXAMPLES})"
            )
        ms = number * DURATION_UNITS_MS[found or "ms"]
    if ms == 0:
        if zero is None:
            why = no_zero or DURATION_EXAMPLES
            raise ConfigError(f"{_at(where)}must be more than 0 ({why})")
        return 0.0
    if ms < minimum_ms:
        raise ConfigError(f"{_at(where)}at least {format_duration(minimum_ms)}, not {value!r}")
    if maximum_ms is not None and ms > maximum_ms:
        raise ConfigError(
            f"{_at(where)}{value!r} is longer than allowed (at most {format_duration(maximum_ms)})"
        )
    return ms


TIMEOUT_NO_ZERO = (
    "PostgreSQL reads 0 as 'no timeout', so pgsafe would wait forever; give a bound such as 5s"
)


def parse_timeout(
    value: object, where: str, *, zero: str | None = None, unit: str | None = None
) -> int:
    """A PostgreSQL timeout in whole milliseconds (lock_timeout, statement_timeout, ...): more
    than 0 unless `zero` says what 0 means, at most ~24.8 days, at least 1ms once rounded."""
    ms = parse_duration(
        value, where, unit=unit, zero=zero, no_zero=TIMEOUT_NO_ZERO, maximum_ms=MAX_TIMEOUT_MS
    )
    return 0 if ms == 0 else max(1, round(ms))


def format_duration(ms: float) -> str:
    """`ms` in the parser's units: exact in a unit that divides it, without an unreadable
    number (5000 -> "5s", 1500 -> "1500ms"), else rounded in days ("about 24.9d")."""
    for unit in ("d", "h", "min", "s", "ms"):
        size = DURATION_UNITS_MS[unit]
        if ms >= size and ms % size == 0 and ms / size < 100_000:
            return f"{ms / size:.0f}{unit}"
    if ms >= DURATION_UNITS_MS["d"]:
        return f"about {ms / DURATION_UNITS_MS['d']:.3g}d"
    return f"{ms:g}ms"


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
        # Set through the Python API too: a 0 would reach PostgreSQL as "no timeout".
        for name in (
            "lock_timeout_ms",
            "statement_timeout_ms",
            "long_statement_timeout_ms",
            "idle_in_transaction_timeout_ms",
        ):
            parse_timeout(getattr(self, name), f"Settings.{name}", unit="ms")
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
