"""Migration sources: a directory of ``NNN_name.up.sql`` + ``NNN_name.down.sql`` pairs (or a
lone ``NNN_name.sql``), or an Alembic project (its revisions rendered to SQL offline by
pgsafe.alembic); either way parsed with libpg_query before anything touches a database."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from pgsafe import _core
from pgsafe.analysis.statement import Statement as Statement
from pgsafe.analysis.statement import split_statements
from pgsafe.errors import ConfigError, ParseError

log = logging.getLogger("pgsafe")

# File names, not SQL: the numeric prefix orders migrations, the suffix says which direction.
_NAME = re.compile(
    r"^(?P<version>\d+)_(?P<name>[A-Za-z0-9][A-Za-z0-9_\-]*?)(?P<dir>\.up|\.down)?\.sql$"
)


@dataclass(frozen=True)
class SourceLines:
    """Where the statements of rendered SQL come from in the file the user wrote (an Alembic
    revision): ``lines[i]`` is the file line behind line i + 1 of the SQL, None for a line the
    tool wrote for itself (BEGIN/COMMIT, the alembic_version table); ``function`` is the line
    of the function that rendered it (``def upgrade():``), where those statements are placed."""

    lines: tuple[int | None, ...]
    function: int = 1

    def of(self, first: int, last: int) -> int | None:
        """The file line of a statement on SQL lines first..last (None: not the user's)."""
        for n in range(first, last + 1):
            if 1 <= n <= len(self.lines) and self.lines[n - 1] is not None:
                return self.lines[n - 1]
        return None


@dataclass
class Migration:
    """One migration. From a SQL directory: its up (and down) file. From an Alembic project:
    ``up_path``/``down_path`` name the revision file and ``up_sql``/``down_sql`` hold the SQL
    its upgrade()/downgrade() render to offline; ``order`` is its place in the revision graph."""

    version: str
    name: str
    up_path: Path
    down_path: Path | None = None
    _checksum: str | None = field(default=None, repr=False)
    up_sql: str | None = field(default=None, repr=False)
    down_sql: str | None = field(default=None, repr=False)
    order: int | None = None
    # Run again whenever its file changes (Flyway's R__ files); never rolled back.
    repeatable: bool = False
    # Rendered SQL only: the revision file line of each statement (errors, findings and
    # estimates name the line of the `op.` call, not a line of the rendered SQL).
    up_map: SourceLines | None = field(default=None, repr=False)
    down_map: SourceLines | None = field(default=None, repr=False)
    # (direction, own) -> the statements, read and parsed once per object, as the checksum is:
    # a run that applies and rolls back many times (pgsafe test) asks again and again.
    _parsed: dict[tuple[str, bool], list[Statement]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"

    @property
    def sort_key(self) -> int:
        return self.order if self.order is not None else int(self.version)

    @property
    def checksum(self) -> str:
        """SHA-256 of the up file (an Alembic revision file), as recorded in the ledger."""
        if self._checksum is None:
            self._checksum = _core.sha256_file(str(self.up_path))
        return self._checksum

    def up_text(self) -> str:
        """The up migration's SQL text."""
        return self.up_sql if self.up_sql is not None else read_sql(self.up_path)

    def down_text(self) -> str | None:
        """The down migration's SQL text, or None when it has none (irreversible)."""
        if self.down_sql is not None:
            return self.down_sql
        return read_sql(self.down_path) if self.down_path is not None else None

    def up_statements(self, own: bool = False) -> list[Statement]:
        """The up's statements; own=True leaves out those a tool wrote for itself (Alembic's
        alembic_version bookkeeping): what the user wrote, e.g. to run it a second time."""
        found = self._parsed.get(("up", own))
        if found is None:
            if self.up_sql is not None:
                found = rendered_statements(
                    self.up_sql, f"{self.up_path} upgrade()", self.up_map, own=own
                )
            else:
                found = load_statements(self.up_path)
            self._parsed[("up", own)] = found
        return list(found)

    def down_statements(self, own: bool = False) -> list[Statement]:
        if self.down_path is None:
            raise ConfigError(
                f"{self.label} has no down file ({self.version}_{self.name}.down.sql)"
                if self.up_sql is None
                else f"{self.label} has no downgrade ({self.up_path})"
            )
        found = self._parsed.get(("down", own))
        if found is None:
            if self.down_sql is not None:
                found = rendered_statements(
                    self.down_sql, f"{self.down_path} downgrade()", self.down_map, own=own
                )
            else:
                found = load_statements(self.down_path)
            self._parsed[("down", own)] = found
        return list(found)


def is_alembic_project(path: str | Path) -> bool:
    """An alembic.ini, a directory holding one, or an Alembic script directory (env.py and
    versions/). Decided from file names alone: the core package never imports alembic."""
    p = Path(path)
    if p.is_file():
        return p.suffix == ".ini"
    return p.is_dir() and (
        (p / "alembic.ini").is_file() or ((p / "env.py").is_file() and (p / "versions").is_dir())
    )


def migration_file_name(file_name: str) -> tuple[str, str, str | None] | None:
    """(version, name, "up" | "down" | None for a lone file) of a file name of pgsafe's layout
    (`NNN_name.up.sql`, `NNN_name.down.sql`, `NNN_name.sql`); None for any other name."""
    m = _NAME.match(file_name)
    if m is None:
        return None
    return m["version"], m["name"], m["dir"][1:] if m["dir"] else None


def read_files(root: Path) -> list[Migration]:
    """pgsafe's own layout (golang-migrate's too): NNN_name.up.sql + NNN_name.down.sql pairs
    or a lone NNN_name.sql in `root`, ordered by the numeric prefix."""
    ups: dict[str, Migration] = {}
    downs: dict[str, tuple[str, Path]] = {}
    for path in sorted(root.iterdir()):
        if not path.is_file() or path.suffix != ".sql":
            continue
        m = _NAME.match(path.name)
        if m is None:
            raise ConfigError(
                f"{path}: migration file names must look like NNN_name.up.sql, "
                "NNN_name.down.sql or NNN_name.sql"
            )
        version, name, direction = m["version"], m["name"], m["dir"]
        if direction == ".down":
            if version in downs:
                raise ConfigError(f"{path}: a second down file for version {version}")
            downs[version] = (name, path)
            continue
        if version in ups:
            raise ConfigError(f"{path}: version {version} is also {ups[version].up_path.name}")
        ups[version] = Migration(version, name, path)
    for version, (name, path) in downs.items():
        up = ups.get(version)
        if up is None:
            raise ConfigError(f"{path}: down file without an up file for version {version}")
        if up.name != name:
            raise ConfigError(f"{path}: name differs from its up file {up.up_path.name}")
        up.down_path = path
    found = sorted(ups.values(), key=lambda mig: mig.sort_key)
    seen: dict[int, Migration] = {}
    for mig in found:
        if mig.sort_key in seen:
            other = seen[mig.sort_key].up_path.name
            raise ConfigError(f"{mig.up_path}: version {mig.version} collides with {other}")
        seen[mig.sort_key] = mig
    return found


def read_sql(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")  # editors on Windows add a BOM; psql accepts it
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not valid UTF-8") from None


def parse_sql(text: str, source: str = "<sql>") -> list[Statement]:
    """Split SQL text with libpg_query (pgsafe.analysis.statement); errors name
    source:line:column."""
    return split_statements(text, source)


def rendered_statements(
    text: str, source: str, where: SourceLines | None = None, *, own: bool = False
) -> list[Statement]:
    """Statements of SQL rendered by Alembic's offline mode, without its BEGIN/COMMIT lines:
    pgsafe gives each migration its own transaction and runs what cannot run in one (what
    Alembic's autocommit_block brackets with COMMIT ... BEGIN) in autocommit steps. With
    `where`, each statement is placed at its revision file line (the tool's own statements at
    the function's line, or left out with own=True)."""
    try:
        statements = parse_sql(text, source)
    except ParseError as exc:
        line = where.of(exc.line, exc.line) if where is not None else None
        if line is None:
            raise
        raise ParseError(exc.file, line, 1, exc.message) from None
    out = []
    for s in statements:
        if s.transaction_control:
            continue
        if where is not None:
            line = where.of(s.line, s.end_line)
            if line is None and own:
                continue
            s.line = s.end_line = line if line is not None else where.function
            s.column = 1
        out.append(s)
    return out


def load_statements(path: Path) -> list[Statement]:
    """The statements of one migration file, without a redundant BEGIN ... COMMIT wrapper.

    pgsafe gives each migration its own transaction, so an outer BEGIN/COMMIT pair is dropped;
    any other transaction control would break that guarantee and is refused."""
    return file_statements(read_sql(path), str(path))


def file_statements(text: str, path: str) -> list[Statement]:
    """load_statements for the text of file `path` (or of one section of it, the rest blanked
    so lines and columns stay the file's own)."""
    statements = parse_sql(text, path)
    if (
        len(statements) >= 2
        and statements[0].transaction_control in ("begin", "start transaction")
        and statements[-1].transaction_control == "commit"
    ):
        log.debug("%s: dropping the file's own BEGIN/COMMIT; pgsafe wraps each migration", path)
        statements = statements[1:-1]
    for stmt in statements:
        if stmt.transaction_control:
            raise ParseError(
                path,
                stmt.line,
                stmt.column,
                f"{stmt.transaction_control.upper()} is not allowed here: pgsafe runs each "
                "migration in its own transaction (statements that cannot run in one, such as "
                "CREATE INDEX CONCURRENTLY, are run in autocommit steps automatically)",
            )
    return statements
