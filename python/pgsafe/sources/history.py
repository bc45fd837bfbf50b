"""What another tool already applied to a database: its own history table, read so pgsafe does
not apply those migrations again (status shows them applied by that tool), and so
`pgsafe repair --adopt` can write pgsafe's ledger from it.

golang-migrate and dbmate: ``schema_migrations`` (golang-migrate's has one row, ``version
bigint`` and ``dirty``; dbmate's a ``version varchar`` per migration); diesel:
``__diesel_schema_migrations``; Flyway: ``flyway_schema_history``; Prisma: ``_prisma_migrations``;
sqitch: ``sqitch.changes``; Supabase CLI: ``supabase_migrations.schema_migrations``;
node-pg-migrate: ``pgmigrations``; Alembic: ``alembic_version`` (its heads and every revision
below them). Tables are found on the session's search_path, as the tools create them."""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pgsafe import _core
from pgsafe.errors import ConfigError, DatabaseError
from pgsafe.sources.alembic import load_config, script_directory
from pgsafe.sources.files import Migration, read_sql
from pgsafe.sources.layouts import flyway_version, layout_of, sqitch_plan

log = logging.getLogger("pgsafe")


# The tables (and schemas) other migration tools keep their history in: bookkeeping, not the
# application's data (pgsafe test generates no rows into them).
HISTORY_TABLES = frozenset(
    {
        "alembic_version",
        "schema_migrations",
        "__diesel_schema_migrations",
        "flyway_schema_history",
        "_prisma_migrations",
        "pgmigrations",
        "django_migrations",
    }
)
HISTORY_SCHEMAS = frozenset({"sqitch", "supabase_migrations"})


@dataclass
class Applied:
    """One migration as the other tool's history has it."""

    state: str  # "applied", "dirty" (failed half-way), or "pending" (a repeatable changed since)
    tool: str
    table: str
    applied_at: str | None = None
    reason: str | None = None

    @property
    def source(self) -> str:
        return f"{self.tool} ({self.table})"


@dataclass
class History:
    """The other tool's table found on the target, and what it says of each migration (by
    pgsafe version); `table` is None when there is none."""

    tool: str
    table: str | None
    applied: dict[str, Applied]
    looked_for: str

    def source_label(self) -> str:
        return f"{self.tool} ({self.table or self.looked_for})"


Reader = Callable[[_core.Connection, Sequence[Migration], Path], History]


def _columns(conn: _core.Connection, table: str) -> dict[str, str] | None:
    """{column: type} of `table` as the search_path resolves it, None when there is none."""
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
        [table],
    ).rows
    return {str(r[0]): str(r[1]) for r in rows} or None


def _rows(
    conn: _core.Connection, sql: str, params: Sequence[str] = ()
) -> list[tuple[str | None, ...]]:
    return list(conn.execute(sql, list(params)).rows)


def read_golang_migrate(conn: _core.Connection, migs: Sequence[Migration], source: Path) -> History:
    """golang-migrate's ``schema_migrations`` (one row: the last version, and whether it failed
    half-way). Only a table of that shape: another framework's schema_migrations (Rails, say)
    says nothing about pgsafe's files. Without one, Django's ``django_migrations`` for files
    made by the docs/layouts.md recipe (NNN_<app>_<migration>.up.sql)."""
    cols = _columns(conn, "schema_migrations")
    if cols is None or "dirty" not in cols:
        django = read_django(conn, migs, source)
        if django.table is not None:
            return django
        return History("golang-migrate", None, {}, "schema_migrations (version, dirty)")
    return read_schema_migrations(conn, migs, source)


def read_django(conn: _core.Connection, migs: Sequence[Migration], _source: Path) -> History:
    """``django_migrations`` (app, name, applied): migration NNN_<app>_<name> is applied when
    Django recorded <app>.<name> (the file names `manage.py sqlmigrate` was written to)."""
    table = "django_migrations"
    if _columns(conn, table) is None:
        return History("django", None, {}, table)
    when = {
        f"{app}_{name}": applied
        for app, name, applied in _rows(conn, f"SELECT app, name, applied::text FROM {table}")
    }
    out = {
        m.version: Applied("applied", "django", table, when[m.name]) for m in migs if m.name in when
    }
    return History("django", table, out, table)


def read_schema_migrations(
    conn: _core.Connection, migs: Sequence[Migration], _source: Path
) -> History:
    """golang-migrate's (one row: the last version, and whether it failed half-way) or dbmate's
    (a row per applied version) ``schema_migrations``."""
    cols = _columns(conn, "schema_migrations")
    if cols is None:
        return History("dbmate", None, {}, "schema_migrations")
    if "dirty" in cols:
        found = _rows(conn, "SELECT version::text, dirty::text FROM schema_migrations")
        out: dict[str, Applied] = {}
        if found:
            version, dirty = max(found, key=lambda r: int(r[0] or 0))
            last = int(version or 0)
            for m in migs:
                if not m.version.isdigit() or int(m.version) > last:
                    continue
                if int(m.version) == last and dirty == "true":
                    out[m.version] = Applied(
                        "dirty",
                        "golang-migrate",
                        "schema_migrations",
                        reason=f"golang-migrate marks version {last} dirty: it failed half-way",
                    )
                else:
                    out[m.version] = Applied("applied", "golang-migrate", "schema_migrations")
        return History("golang-migrate", "schema_migrations", out, "schema_migrations")
    applied = {str(r[0]) for r in _rows(conn, "SELECT version::text FROM schema_migrations")}
    out = {
        m.version: Applied("applied", "dbmate", "schema_migrations")
        for m in migs
        if m.version in applied
    }
    return History("dbmate", "schema_migrations", out, "schema_migrations")


def read_diesel(conn: _core.Connection, migs: Sequence[Migration], _source: Path) -> History:
    table = "__diesel_schema_migrations"
    if _columns(conn, table) is None:
        return History("diesel", None, {}, table)
    when = {
        str(r[0]): r[1] for r in _rows(conn, f"SELECT version::text, run_on::text FROM {table}")
    }
    out = {}
    for m in migs:
        key = m.version.replace("-", "")
        if key in when:
            out[m.version] = Applied("applied", "diesel", table, when[key])
    return History("diesel", table, out, table)


def flyway_checksum(path: Path) -> int:
    """Flyway's checksum of a migration file: CRC-32 of its lines without line breaks (and
    without a byte order mark), as a signed 32-bit integer."""
    text = read_sql(path)
    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
        lines.pop()
    crc = 0
    for line in lines:
        crc = zlib.crc32(line.encode("utf-8"), crc)
    return crc - (1 << 32) if crc >= (1 << 31) else crc


def read_flyway(conn: _core.Connection, migs: Sequence[Migration], _source: Path) -> History:
    """Versioned migrations applied (or failed, or undone, or below a baseline) and repeatables
    applied with the file's current checksum (else pending: Flyway would run them again)."""

    table = "flyway_schema_history"
    if _columns(conn, table) is None:
        return History("flyway", None, {}, table)
    rows = _rows(
        conn,
        "SELECT version, description, type, checksum::text, installed_on::text, success::text"
        f" FROM {table} ORDER BY installed_rank",
    )
    versions: dict[tuple[int, ...], Applied | None] = {}
    repeatables: dict[str, tuple[str | None, str | None]] = {}  # description -> checksum, when
    baseline: tuple[int, ...] | None = None
    for version, description, kind, checksum, when, success in rows:
        kind = (kind or "").upper()
        if version is None:
            if success == "true" and description is not None and kind not in ("DELETE",):
                repeatables[description] = (checksum, when)
            continue
        key = flyway_version(version)
        if kind == "BASELINE":
            baseline = key
        elif kind in ("UNDO_SQL", "UNDO_JDBC", "UNDO_SCRIPT", "DELETE"):
            if success == "true":
                versions[key] = None
        elif kind != "SCHEMA":
            versions[key] = (
                Applied("applied", "flyway", table, when)
                if success == "true"
                else Applied(
                    "dirty",
                    "flyway",
                    table,
                    when,
                    f"failed in flyway_schema_history (version {version})",
                )
            )
    out: dict[str, Applied] = {}
    for m in migs:
        if m.repeatable:
            seen = repeatables.get(m.name.replace("_", " "))
            if seen is None:
                continue
            checksum, when = seen
            same = checksum is None or int(checksum) == flyway_checksum(m.up_path)
            out[m.version] = Applied(
                "applied" if same else "pending",
                "flyway",
                table,
                when,
                None if same else "changed since Flyway ran it: runs again",
            )
            continue
        try:
            key = flyway_version(m.version)
        except ValueError:
            continue
        state = versions.get(key)
        if state is not None:
            out[m.version] = state
        elif key not in versions and baseline is not None and key <= baseline:
            out[m.version] = Applied("applied", "flyway", table, reason="below Flyway's baseline")
    return History("flyway", table, out, table)


def read_prisma(conn: _core.Connection, migs: Sequence[Migration], _source: Path) -> History:
    table = "_prisma_migrations"
    if _columns(conn, table) is None:
        return History("prisma", None, {}, table)
    latest: dict[str, tuple[str | None, str | None, str | None]] = {}
    for name, finished, rolled_back, logs in _rows(
        conn,
        "SELECT migration_name, finished_at::text, rolled_back_at::text, logs"
        f" FROM {table} ORDER BY started_at",
    ):
        latest[str(name)] = (finished, rolled_back, logs)
    out = {}
    for m in migs:
        row = latest.get(m.label)
        if row is None or row[1] is not None:  # never run, or marked rolled back
            continue
        finished, _, logs = row
        if finished is not None:
            out[m.version] = Applied("applied", "prisma", table, finished)
        else:
            why = (logs or "").strip().splitlines()
            out[m.version] = Applied(
                "dirty",
                "prisma",
                table,
                reason="failed in _prisma_migrations" + (f": {why[0]}" if why else ""),
            )
    return History("prisma", table, out, table)


def read_sqitch(conn: _core.Connection, migs: Sequence[Migration], source: Path) -> History:
    table = "sqitch.changes"
    if _columns(conn, table) is None:
        return History("sqitch", None, {}, table)
    project, _ = sqitch_plan(source)
    rows = _rows(
        conn,
        "SELECT change, committed_at::text FROM sqitch.changes"
        " WHERE $1 = '' OR project = $1 ORDER BY committed_at",
        [project],
    )
    # A reworked change is deployed once per instance: the first rows go to the first ones.
    deployed: dict[str, list[str | None]] = {}
    for change, when in rows:
        deployed.setdefault(str(change), []).append(when)
    out = {}
    for m in migs:
        times = deployed.get(m.name)
        if times:
            out[m.version] = Applied("applied", "sqitch", table, times.pop(0))
    return History("sqitch", table, out, table)


def read_supabase(conn: _core.Connection, migs: Sequence[Migration], _source: Path) -> History:
    table = "supabase_migrations.schema_migrations"
    if _columns(conn, table) is None:
        return History("supabase", None, {}, table)
    applied = {str(r[0]) for r in _rows(conn, f"SELECT version::text FROM {table}")}
    out = {m.version: Applied("applied", "supabase", table) for m in migs if m.version in applied}
    return History("supabase", table, out, table)


def read_node_pg_migrate(
    conn: _core.Connection, migs: Sequence[Migration], _source: Path
) -> History:
    table = "pgmigrations"
    if _columns(conn, table) is None:
        return History("node-pg-migrate", None, {}, table)
    when = {str(r[0]): r[1] for r in _rows(conn, f"SELECT name, run_on::text FROM {table}")}
    out = {
        m.version: Applied("applied", "node-pg-migrate", table, when[m.label])
        for m in migs
        if m.label in when
    }
    return History("node-pg-migrate", table, out, table)


def read_alembic(conn: _core.Connection, migs: Sequence[Migration], source: Path) -> History:
    """alembic_version holds the heads: they and every revision below them are applied."""
    table = "alembic_version"
    if _columns(conn, table) is None:
        return History("alembic", None, {}, table)
    heads = [str(r[0]) for r in _rows(conn, f"SELECT version_num FROM {table}")]
    if not heads:
        return History("alembic", table, {}, table)

    script = script_directory(load_config(source))
    try:
        below = {rev.revision for rev in script.iterate_revisions(tuple(heads), "base")}
    except Exception as exc:  # alembic's CommandError/ResolutionError: an unknown head
        raise ConfigError(
            f"{table} names {', '.join(heads)}, which {source} does not have: {exc}"
        ) from None
    out = {m.version: Applied("applied", "alembic", table) for m in migs if m.version in below}
    return History("alembic", table, out, table)


READERS: dict[str, Reader] = {
    "pgsafe": read_golang_migrate,
    "golang-migrate": read_golang_migrate,
    "dbmate": read_schema_migrations,
    "diesel": read_diesel,
    "flyway": read_flyway,
    "prisma": read_prisma,
    "sqitch": read_sqitch,
    "supabase": read_supabase,
    "node-pg-migrate": read_node_pg_migrate,
    "alembic": read_alembic,
}


def read_history(conn: _core.Connection, source: str | Path, migs: Sequence[Migration]) -> History:
    """The history table of the tool whose layout `source` is, read on `conn`."""

    layout = layout_of(source)
    try:
        return READERS[layout](conn, migs, Path(source))
    except DatabaseError as exc:  # e.g. no privilege on the other tool's table: say so, go on
        log.warning("could not read the %s history table: %s", layout, exc)
        return History(layout, None, {}, f"{layout}'s history table")
