"""Environment policies (seed 003's checklist as data) and the reviewed approvals file.

A policy says, for `local`, `ci`, `staging` or `production` (``--env`` or ``PGSAFE_ENV``), whether
a backup is mandatory and how old it may be, whether timeouts are required, how many distinct
people must approve a destructive change, and whether a rollback needs confirmation. Settings can
be overridden per environment in ``[tool.pgsafe.policy.<env>]`` (pyproject.toml) or
``[policy.<env>]`` (pgsafe.toml), found like the lint configuration.

Approvals live in ``<migrations>/approvals.toml`` so they go through code review; each names
the checksum of the file it approves, and one for a file that changed since no longer counts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgsafe.config import parse_duration
from pgsafe.errors import ConfigError
from pgsafe.pgbin import check_config_keys, config_subtable, find_config_table

ENVIRONMENTS = ("local", "ci", "staging", "production")
ENV_VAR = "PGSAFE_ENV"
APPROVALS_FILE = "approvals.toml"

LEVELS = ("off", "recommended", "required")


@dataclass(frozen=True)
class Policy:
    """What one environment demands before and around a migration."""

    name: str
    backup: str = "off"  # off | recommended | required
    max_backup_age_hours: float | None = None  # None: any age
    timeouts: str = "optional"  # optional | recommended | required
    max_lock_timeout_ms: int = 30_000  # seed 003: lock_timeout = '30s'
    max_statement_timeout_ms: int = 5 * 60_000  # seed 003: statement_timeout = '5min'
    approvals: int = 0  # distinct approvers for each destructive change or lint error
    confirm_rollback: bool = False  # outside local/ci: --yes or an interactive "yes"
    allow_force: bool = True  # --force overrides a failed preflight (always recorded)
    allow_skip_backup: bool = True  # apply --no-backup
    checksum_manifest: str = "recommended"  # off | recommended | required
    long_transaction_s: float = 30.0  # seed 002: transactions older than this block preflight
    # A session waiting this long for a lock a pending migration does not need: a warning
    # (shorter waits there are ordinary traffic, e.g. row locks under load).
    long_lock_wait_s: float = 5.0
    min_server_version: int = 120000  # server_version_num the migrations may rely on
    slow_migration_s: float = 300.0  # seed 002: warn when one migration runs longer
    source: str = "built-in"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_DEFAULTS: dict[str, Policy] = {
    # Seed 003, "Environment-Specific Procedures".
    "local": Policy("local", timeouts="optional", checksum_manifest="off"),
    "ci": Policy("ci", timeouts="recommended"),
    "staging": Policy(
        "staging",
        backup="recommended",
        max_backup_age_hours=24.0,
        timeouts="required",
        approvals=1,
        confirm_rollback=True,
    ),
    "production": Policy(
        "production",
        backup="required",
        max_backup_age_hours=24.0,
        timeouts="required",
        approvals=2,
        confirm_rollback=True,
        allow_skip_backup=False,
        checksum_manifest="required",
    ),
}

# Duration keys: (unit of a plain number, ms per unit of the stored value, what 0 means or None
# when 0 is refused).
_DURATIONS: dict[str, tuple[str, float, str | None]] = {
    # false: any age; 0: no backup is recent enough (the check always fails)
    "max_backup_age_hours": ("h", 3_600_000.0, "no backup is recent enough"),
    "max_lock_timeout_ms": ("ms", 1.0, None),
    "max_statement_timeout_ms": ("ms", 1.0, None),
    "long_transaction_s": ("s", 1_000.0, "every open transaction fails preflight"),
    "long_lock_wait_s": ("s", 1_000.0, "every lock wait is a warning"),
    "slow_migration_s": ("s", 1_000.0, None),
}

_SETTABLE = {f.name for f in dataclasses.fields(Policy)} - {"name", "source"}


def environment(env: str | None = None) -> str:
    """The environment named by `env`, else PGSAFE_ENV, else local; ConfigError if unknown."""
    name = env or os.environ.get(ENV_VAR) or "local"
    if name not in ENVIRONMENTS:
        where = "--env" if env else ENV_VAR
        raise ConfigError(
            f"{where} {name!r}: unknown environment (one of {', '.join(ENVIRONMENTS)})"
        )
    return name


def _check_value(name: str, value: Any, source: str, env: str) -> Any:
    where = f"{source}: policy.{env}.{name}"
    if name in ("backup", "timeouts", "checksum_manifest"):
        allowed = LEVELS if name != "timeouts" else ("optional", "recommended", "required")
        if value not in allowed:
            raise ConfigError(f"{where} must be one of {', '.join(allowed)}")
        return value
    if name in ("confirm_rollback", "allow_force", "allow_skip_backup"):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if name == "max_backup_age_hours" and value is False:
        return None
    if name in _DURATIONS:
        # pgsafe.config's one duration parser: a number in the key's own unit, or text with a
        # unit ("30s", "24h").
        unit, size, zero = _DURATIONS[name]
        ms = parse_duration(value, where, unit=unit, zero=zero)
        return int(ms) if unit == "ms" else ms / size
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where} must be a number >= 0")
    if name in ("approvals", "max_lock_timeout_ms", "max_statement_timeout_ms"):
        if int(value) != value:
            raise ConfigError(f"{where} must be a whole number")
        return int(value)
    if name == "min_server_version":
        return int(value)
    return float(value)


def _config_table(start: Path | None) -> tuple[dict[str, Any], str] | None:
    """The `policy` table of the nearest pgsafe.toml / pyproject.toml, as lint finds its config."""
    found = find_config_table(start)
    if found is None:
        return None
    table, source = found
    return config_subtable(table, "policy", source, example="[policy.production]"), source


def load_policy(env: str | None = None, start: Path | None = None) -> Policy:
    """The policy of `env` (or PGSAFE_ENV, or local), with the config file's overrides."""
    name = environment(env)
    policy = _DEFAULTS[name]
    found = _config_table(start)
    if found is None:
        return policy
    table, source = found
    check_config_keys(table, ENVIRONMENTS, source, "environment", "policy.")
    overrides = config_subtable(table, name, source, f"policy.{name}")
    if not overrides:
        return policy
    check_config_keys(overrides, sorted(_SETTABLE), source, "policy setting", f"policy.{name}.")
    values = {k: _check_value(k, v, source, name) for k, v in overrides.items()}
    return dataclasses.replace(policy, source=source, **values)


# -- approvals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Approval:
    """One reviewed sign-off: `approver` accepts `rule` (a lint rule id, a destructive kind such
    as "DROP COLUMN", or "*") in `migration`, whose up file had `checksum` when approved."""

    migration: str
    rule: str
    approver: str
    reason: str
    date: str
    checksum: str
    role: str = ""
    line: int = 0  # entry number in the file, for messages

    def matches_migration(self, version: str, label: str, file_name: str) -> bool:
        return self.migration in (version, label, file_name) or (
            self.migration.isdigit() and version.isdigit() and int(self.migration) == int(version)
        )

    def matches_rule(self, names: set[str]) -> bool:
        if self.rule == "*":
            return True
        wanted = self.rule.strip().casefold()
        return any(wanted == n.casefold() for n in names)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("line")
        return d


@dataclass
class Approvals:
    path: Path
    entries: list[Approval] = field(default_factory=list)
    exists: bool = False


_REQUIRED = ("migration", "rule", "approver", "reason", "date", "checksum")


def load_approvals(path: str | Path) -> Approvals:
    """Reads an approvals file (``[[approval]]`` entries); a missing file is no approvals, a
    malformed one a ConfigError naming the entry and field."""
    p = Path(path)
    if not p.exists():
        return Approvals(p)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{p}: {exc}") from None
    unknown = set(data) - {"approval"}
    if unknown:
        raise ConfigError(f"{p}: unknown key {sorted(unknown)[0]!r} (entries are [[approval]])")
    raw = data.get("approval", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{p}: approval must be an array of tables ([[approval]])")
    out = Approvals(p, exists=True)
    for number, item in enumerate(raw, start=1):
        where = f"{p}: approval #{number}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: not a table")
        missing = [k for k in _REQUIRED if k not in item]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)}")
        extra = set(item) - {*_REQUIRED, "role"}
        if extra:
            raise ConfigError(f"{where}: unknown field {sorted(extra)[0]!r}")
        date = item["date"]
        if isinstance(date, dt.date | dt.datetime):
            date = date.isoformat()
        values = {k: item[k] for k in ("migration", "rule", "approver", "reason", "checksum")}
        for key, value in [*values.items(), ("date", date), ("role", item.get("role", ""))]:
            if not isinstance(value, str):
                raise ConfigError(f"{where}: {key} must be a string")
        for key in ("migration", "rule", "approver", "reason"):
            if not values[key].strip():
                raise ConfigError(f"{where}: {key} is empty")
        checksum = values["checksum"].strip().lower()
        if len(checksum) != 64 or any(c not in "0123456789abcdef" for c in checksum):
            raise ConfigError(f"{where}: checksum must be the file's SHA-256 (64 hex digits)")
        out.entries.append(
            Approval(
                migration=values["migration"].strip(),
                rule=values["rule"].strip(),
                approver=values["approver"].strip(),
                reason=values["reason"].strip(),
                date=str(date),
                checksum=checksum,
                role=str(item.get("role", "")).strip(),
                line=number,
            )
        )
    return out


@dataclass
class ApprovalStatus:
    """Whether one statement that needs approval has enough valid approvals."""

    migration: str  # label
    line: int
    what: str  # destructive kind or rule ids, for people
    names: set[str]  # what an approval's `rule` may name
    needed: int
    approvers: list[str] = field(default_factory=list)  # distinct, valid
    stale: list[str] = field(default_factory=list)  # approvers whose approval is for old content

    @property
    def satisfied(self) -> bool:
        return len(self.approvers) >= self.needed


def evaluate(
    needs: list[tuple[str, str, str, int, str, set[str]]],
    checksums: dict[str, str],
    approvals: Approvals,
    required: int,
) -> list[ApprovalStatus]:
    """For each (version, label, file name, line, what, names) needing approval: the distinct
    approvers whose entry names this migration and statement and the file's current checksum.
    Entries for an older checksum are listed as stale and do not count."""
    out: list[ApprovalStatus] = []
    for version, label, file_name, line, what, names in needs:
        st = ApprovalStatus(label, line, what, names, required)
        current = checksums[version]
        for a in approvals.entries:
            if not a.matches_migration(version, label, file_name) or not a.matches_rule(names):
                continue
            if a.checksum != current:
                if a.approver not in st.stale:
                    st.stale.append(a.approver)
            elif a.approver.casefold() not in {x.casefold() for x in st.approvers}:
                st.approvers.append(a.approver)
        out.append(st)
    return out
