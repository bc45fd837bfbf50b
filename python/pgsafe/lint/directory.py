"""Seed 002's file checks over a migration directory, run when lint reads a directory: every
migration has its down (require-down-migration: up/down pairs) and every name follows the
convention (migration-naming: `naming` in [tool.pgsafe], else what the layout's tool reads).

Regular expressions here read file names; the markers (`-- pgsafe: irreversible reason: ...`,
`-- pgsafe: ignore-file RULE reason: ...`) are read from the comments the PostgreSQL scanner
finds, as the engine reads its suppressions."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pgsafe.analysis.statement import scan_comments
from pgsafe.errors import ConfigError, ParseError
from pgsafe.lint.config import LintConfig
from pgsafe.lint.engine import read_directive
from pgsafe.lint.model import RULES, Finding, no_statement_check, rule
from pgsafe.sources.files import Migration, migration_file_name, read_sql
from pgsafe.sources.layouts import (
    LAYOUTS,
    LayoutMigration,
    flyway_version,
    layout_here,
    read_layout,
)

REQUIRE_DOWN = "require-down-migration"
NAMING = "migration-naming"

# Layouts whose tool runs a down: a migration of theirs without one cannot be rolled back.
# Prisma and the Supabase CLI have no downs; Flyway's undo files are a paid edition's feature;
# Alembic projects have their own check (alembic-empty-downgrade).
_DOWN_LAYOUTS = {"pgsafe", "golang-migrate", "diesel", "dbmate", "node-pg-migrate", "sqitch"}


def _directory_rule(id: str, *, summary: str, why: str, fix: str, suppress: str) -> None:
    """Registers a rule lint checks over a migration directory's files (the layout, names,
    pairs of up and down): an error, taking no lock, finding nothing in statements."""
    rule(
        id,
        severity="error",
        hazards=(),
        lock=None,
        scope="directory",
        summary=summary,
        why=why,
        fix=fix,
        suppress=suppress,
    )(no_statement_check)


_directory_rule(
    REQUIRE_DOWN,
    summary="A migration without its down migration (or a down without its up).",
    why="seed 002's gate: every up migration has a down, so `pgsafe rollback` and `pgsafe test` "
    "(up, down, up) can undo it. Without one, undoing the migration in production means "
    "restoring a backup. Checked for the layouts whose tool runs downs (pgsafe's, "
    "golang-migrate, diesel, dbmate, node-pg-migrate, sqitch); Prisma, Supabase and Flyway "
    "migrations are not required to have one. A down file with no statement counts as none",
    fix="write the down: the statements that undo the up (NNN_name.down.sql beside "
    "NNN_name.up.sql, or the layout's own: down.sql, a '-- migrate:down' section, revert/)",
    suppress="-- pgsafe: irreversible reason: <why it cannot be undone> in the up file, or "
    'irreversible_before = "VERSION" in [tool.pgsafe] for the migrations older than VERSION',
)

_directory_rule(
    NAMING,
    summary="A migration file whose name breaks the naming convention.",
    why="seed 002's gate validates naming conventions. With `naming` in [tool.pgsafe], every "
    "migration's name (its file name without .up.sql, .down.sql or .sql; the directory name "
    "for diesel and Prisma; the change name for sqitch) must match that regular expression "
    "as a whole. With or without it, the layout's own: a .sql file the layout's tool would "
    "not read is reported (pgsafe's own refuses the whole directory, other tools skip the "
    "file silently, so it never runs)",
    fix="rename the file (pgsafe's layout: NNN_name.up.sql, NNN_name.down.sql or NNN_name.sql)",
    suppress="-- pgsafe: ignore-file migration-naming reason: <why> in the file, or lint.disable",
)


def _ignored_here(path: Path, rule_id: str) -> bool:
    """True when the file says it is exempt from `rule_id` (with a reason): an `irreversible`
    marker for require-down-migration, or an `ignore`/`ignore-file` comment naming the rule.
    Markers without a reason are reported by the engine and do not count."""
    try:
        text = read_sql(path)
    except ConfigError:
        return False
    if "pgsafe:" not in text.lower():
        return False
    for c in scan_comments(text):
        directive = read_directive(c.text.lstrip("-/* ").rstrip())
        if directive is None:
            continue
        scope, names, reason = directive
        if not reason:
            continue
        if scope == "irreversible" and rule_id == REQUIRE_DOWN:
            return True
        if scope in ("ignore", "ignore-file") and rule_id in names:
            return True
    return False


class _Checks:
    def __init__(self, root: Path, config: LintConfig) -> None:
        self.root = root
        self.config = config
        self.findings: list[Finding] = []

    def report(self, rule_id: str, path: Path, message: str) -> None:
        r = RULES[rule_id]
        if not self.config.enabled(r) or self.config.excluded(path):
            return
        if _ignored_here(path, rule_id):
            return
        self.findings.append(
            Finding(
                r.id,
                list(r.hazards),
                self.config.severity(r),
                str(path),
                1,
                1,
                "",
                None,
                message,
                r.fix,
            )
        )

    # -- names ---------------------------------------------------------------------------

    def name(self, path: Path, name: str) -> None:
        """`name` (a migration's name as its tool shows it) against the configured pattern."""
        pattern = self.config.naming
        if pattern is not None and pattern.fullmatch(name) is None:
            self.report(
                NAMING,
                path,
                f"{name!r} does not match the naming convention {pattern.pattern!r}"
                + (f" ({self.config.source})" if self.config.source else ""),
            )

    # -- downs ---------------------------------------------------------------------------

    def historical(self, mig: Migration, layout: str, migs: list[Migration]) -> bool:
        """True when `mig` is older than irreversible_before: it needs no down."""
        before = self.config.irreversible_before
        if before is None:
            return False
        where = f"irreversible_before = {before!r}" + (
            f" in {self.config.source}" if self.config.source else ""
        )
        if layout == "sqitch":
            at = next((m.order for m in migs if before in (m.version, m.name)), None)
            if at is None or mig.order is None:
                raise ConfigError(f"{where}: no change {before} in {self.root}/sqitch.plan")
            return mig.order < at
        if layout == "flyway":
            try:
                return flyway_version(mig.version) < flyway_version(before)
            except ValueError:
                raise ConfigError(f"{where}: not a Flyway version such as 1.2") from None
        digits = before.replace("-", "")
        if not digits.isdigit():
            raise ConfigError(f"{where}: not a migration version (the number its names start with)")
        return int(mig.version.replace("-", "")) < int(digits)

    def needs_down(self, mig: Migration, layout: str, migs: list[Migration], expected: str) -> None:
        if mig.repeatable or self.historical(mig, layout, migs):
            return
        if mig.down_path is None:
            self.report(
                REQUIRE_DOWN,
                mig.up_path,
                f"{mig.label} has no down migration ({expected}): a rollback cannot undo it",
            )
            return
        try:
            empty = not mig.down_statements()
        except (ConfigError, ParseError):
            return  # there is a down; `pgsafe test` reports what is wrong with it
        if empty:
            self.report(
                REQUIRE_DOWN,
                mig.up_path,
                f"{mig.label}: its down ({mig.down_path.name}) has no statement, so a rollback "
                "records it as undone while everything the up did stays",
            )


def _pgsafe_layout(checks: _Checks, where: Path) -> None:
    """pgsafe's own layout (golang-migrate's too), read file by file so that one bad name is a
    finding instead of the error `pgsafe apply` stops at."""
    ups: dict[str, Path] = {}
    downs: dict[str, Path] = {}
    for path in sorted(p for p in where.iterdir() if p.is_file() and p.suffix == ".sql"):
        parts = migration_file_name(path.name)
        if parts is None:
            checks.report(
                NAMING,
                path,
                f"{path.name} is not a migration file name pgsafe reads ({LAYOUTS['pgsafe']}): "
                "`pgsafe apply` refuses the directory",
            )
            continue
        checks.name(path, path.name.removesuffix(".sql").removesuffix(".up").removesuffix(".down"))
        version, _name, direction = parts
        (downs if direction == "down" else ups).setdefault(version, path)
    migs: list[Migration] = []
    for version, up in ups.items():
        name = migration_file_name(up.name)
        assert name is not None
        down = downs.get(version)
        if down is not None and migration_file_name(down.name) != (version, name[1], "down"):
            checks.report(
                REQUIRE_DOWN,
                down,
                f"{down.name}: its name differs from its up file {up.name} (the pair is "
                "matched by version and name)",
            )
        migs.append(Migration(version, name[1], up, down))
    for version, down in downs.items():
        if version not in ups:
            checks.report(
                REQUIRE_DOWN, down, f"{down.name}: a down file without its up file ({version})"
            )
    for mig in migs:
        checks.needs_down(mig, "pgsafe", migs, f"{mig.version}_{mig.name}.down.sql")


def _other_layout(checks: _Checks, root: Path, layout: str, where: Path) -> None:
    migs = read_layout(root, layout)
    used: set[Path] = set()
    for mig in migs:
        used.add(mig.up_path)
        if mig.down_path is not None:
            used.add(mig.down_path)
        if isinstance(mig, LayoutMigration) and mig.verify_path is not None:
            used.add(mig.verify_path)
        checks.name(mig.up_path, mig.label)
        if layout in _DOWN_LAYOUTS:
            hint = mig.down_hint if isinstance(mig, LayoutMigration) else ""
            checks.needs_down(mig, layout, migs, hint or "none")
    for path in sorted(p for p in where.rglob("*.sql") if p.is_file() and p not in used):
        checks.report(
            NAMING,
            path,
            f"{path.relative_to(where)} is not read as a {layout} migration "
            f"({LAYOUTS[layout]}): it would never run",
        )


def directory_findings(root: Path, config: LintConfig, files_read: Iterable[str]) -> list[Finding]:
    """The file checks of directory `root` as lint read it (`files_read`: the files it linted
    there). Nothing for an Alembic project (its own checks) or loose SQL files in no layout,
    except the configured naming convention over the files read."""
    checks = _Checks(root, config)
    found = layout_here(root)
    if found is None:
        if config.naming is not None:
            for file in files_read:
                path = Path(file)
                checks.name(path, path.name.removesuffix(".sql"))
        return checks.findings
    layout, where = found
    if layout == "alembic":
        return []
    if layout in ("pgsafe", "golang-migrate"):
        _pgsafe_layout(checks, where)
    else:
        _other_layout(checks, root, layout, where)
    return checks.findings
