"""Lint configuration: `[tool.pgsafe]` in pyproject.toml, or a pgsafe.toml (same keys at the top
level), found from the current directory upwards. Keys: `pg_version`, `naming` (a regular
expression every migration's name must match: the migration-naming rule), `irreversible_before`
(a version: older migrations need no down file), and under `lint`: `enable` (opt-in rule ids),
`disable` (rule ids), `severity` (rule id -> error|warning) and `exclude` (glob patterns)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgsafe.analysis.statement import GRAMMAR_MAJOR
from pgsafe.errors import ConfigError
from pgsafe.lint.model import RULES, SEVERITIES, Rule


@dataclass
class LintConfig:
    # The target's PostgreSQL major: the server's when a command has one, else pg_version in
    # the config (or --pg-version), else the newest grammar's. `pg_version_source` says which
    # ("" for the default).
    pg_version: int = GRAMMAR_MAJOR
    pg_version_source: str = ""
    disable: set[str] = field(default_factory=set)
    enable: set[str] = field(default_factory=set)  # opt-in rules to turn on
    severities: dict[str, str] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    source: str | None = None
    # Seed 002's file checks: the pattern a migration's name must match (None: its layout's
    # own), and the version before which migrations need no down (historical ones).
    naming: re.Pattern[str] | None = None
    irreversible_before: str | None = None

    def enabled(self, rule: Rule) -> bool:
        if rule.id in self.disable:
            return False
        return not rule.opt_in or rule.id in self.enable

    def severity(self, rule: Rule) -> str:
        return self.severities.get(rule.id, rule.severity)

    def excluded(self, path: Path) -> bool:
        return any(fnmatch.fnmatch(str(path), pat) for pat in self.exclude)


_LINT_KEYS = {"enable", "disable", "severity", "exclude"}


def _names(value: Any, key: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{source}: lint.{key} must be a list of strings, e.g. ["rule-id"]')
    return value


def _from_table(table: dict[str, Any], source: str) -> LintConfig:
    cfg = LintConfig(source=source)
    # Only the keys lint reads are checked here; other pgsafe commands own the rest.
    version = table.get("pg_version", cfg.pg_version)
    if not isinstance(version, int) or isinstance(version, bool) or not 9 <= version <= 99:
        raise ConfigError(f"{source}: pg_version must be a PostgreSQL major version such as 15")
    cfg.pg_version = version
    if "pg_version" in table:
        cfg.pg_version_source = f"pg_version in {source}"
    naming = table.get("naming")
    if naming is not None:
        if not isinstance(naming, str) or not naming:
            raise ConfigError(
                f'{source}: naming must be a regular expression, e.g. "^[0-9]{{3,}}_[a-z0-9_]+$"'
            )
        try:
            cfg.naming = re.compile(naming)
        except re.error as exc:
            raise ConfigError(
                f"{source}: naming {naming!r} is not a regular expression: {exc}"
            ) from None
    before = table.get("irreversible_before")
    if before is not None:
        if isinstance(before, bool) or not isinstance(before, str | int) or not str(before).strip():
            raise ConfigError(
                f'{source}: irreversible_before must be a migration version, e.g. "024"'
            )
        cfg.irreversible_before = str(before).strip()
    lint = table.get("lint", {})
    if not isinstance(lint, dict):
        raise ConfigError(f"{source}: lint must be a table ([tool.pgsafe.lint])")
    unknown = set(lint) - _LINT_KEYS
    if unknown:
        raise ConfigError(
            f"{source}: unknown lint setting {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(_LINT_KEYS))})"
        )
    cfg.disable = set(_names(lint.get("disable", []), "disable", source))
    cfg.enable = set(_names(lint.get("enable", []), "enable", source))
    severities = lint.get("severity", {})
    if not isinstance(severities, dict):
        raise ConfigError(f'{source}: lint.severity must be a table of rule = "error"|"warning"')
    cfg.severities = dict(severities)
    cfg.exclude = _names(lint.get("exclude", []), "exclude", source)
    for name in [*cfg.disable, *cfg.enable, *cfg.severities]:
        if name not in RULES:
            raise ConfigError(f"{source}: unknown rule {name!r}")
    for name, level in cfg.severities.items():
        if level not in SEVERITIES:
            raise ConfigError(f"{source}: severity of {name} must be error or warning")
    return cfg


def find_config_table(start: Path | None = None) -> tuple[dict[str, Any], str] | None:
    """The pgsafe table of the nearest pgsafe.toml (the whole file) or pyproject.toml
    (`[tool.pgsafe]`), searching `start` (default: the current directory) and its parents,
    with the file's path; None when there is none. Used by lint and by pgsafe.lifecycle.policy."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for name in ("pgsafe.toml", "pyproject.toml"):
            path = folder / name
            if not path.is_file():
                continue
            try:
                data = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"{path}: {exc}") from None
            table = data if name == "pgsafe.toml" else data.get("tool", {}).get("pgsafe")
            if table is not None:
                return table, str(path)
    return None


def load_config(start: Path | None = None) -> LintConfig:
    found = find_config_table(start)
    if found is None:
        return LintConfig()
    table, source = found
    return _from_table(table, source)
