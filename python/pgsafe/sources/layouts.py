"""The migration layouts teams keep, read into pgsafe's one Migration model: pgsafe's own (and
golang-migrate's), diesel, Prisma, Flyway, dbmate, sqitch, Supabase CLI and node-pg-migrate SQL
files. Each is ordered as its tool orders it, with the down where the tool has one; the files
stay the source of truth (checksums, findings and failures name them, with their own lines).

A layout is detected from the directory (file and directory names, a marker file, and the
scanner's comments for the section markers of one-file layouts), or forced with ``--layout``
or ``layout = "..."`` in ``[tool.pgsafe]``. Regular expressions here read file names and the
text of comments the PostgreSQL scanner found, never SQL: statements are split by the parser.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pgsafe import _core
from pgsafe.analysis.statement import scan_comments
from pgsafe.errors import ConfigError, DatabaseError
from pgsafe.sources.alembic import discover_alembic
from pgsafe.sources.files import (
    Migration,
    Statement,
    file_statements,
    is_alembic_project,
    parse_sql,
    read_files,
    read_sql,
)

log = logging.getLogger("pgsafe")

# name -> what pgsafe looks for, as the one-line error says it.
LAYOUTS: dict[str, str] = {
    "pgsafe": "NNN_name.up.sql + NNN_name.down.sql, or NNN_name.sql",
    "golang-migrate": "{version}_{title}.up.sql + {version}_{title}.down.sql",
    "diesel": "{version}_{name}/up.sql + down.sql",
    "prisma": "{timestamp}_{name}/migration.sql",
    "flyway": "V{version}__{description}.sql, U{version}__{description}.sql, R__{description}.sql",
    "dbmate": "{version}_{name}.sql with -- migrate:up / -- migrate:down",
    "sqitch": "sqitch.plan with deploy/, revert/, verify/",
    "supabase": "supabase/migrations/{timestamp}_{name}.sql",
    "node-pg-migrate": "{timestamp}_{name}.sql with -- Up Migration / -- Down Migration",
    "alembic": "alembic.ini, or env.py + versions/",
}

# File and directory names (never SQL).
_UPDOWN = re.compile(r"^\d+_.+\.(?:up|down)\.sql$")
_LONE = re.compile(r"^(?P<version>\d+)_(?P<name>.+)\.sql$")
_FLYWAY = re.compile(r"^(?P<kind>[VU])(?P<version>\d+(?:[._]\d+)*)__(?P<desc>.+)\.sql$")
_FLYWAY_R = re.compile(r"^R__(?P<desc>.+)\.sql$")
_DIESEL_DIR = re.compile(r"^(?P<version>\d[\d-]*)_(?P<name>.+)$")
_PRISMA_DIR = re.compile(r"^(?P<version>\d+)_(?P<name>.+)$")
_DBMATE = re.compile(r"^(?P<version>\d+)(?:_(?P<name>.*))?\.sql$")

# The text of a comment the scanner found at the start of a line (one-file layouts).
_DBMATE_MARK = re.compile(r"^--\s*migrate:(?P<dir>up|down)\b(?P<options>.*)$")
_NODE_MARK = re.compile(r"^--[\s-]*(?P<dir>up|down)\s+migration\b(?P<options>.*)$", re.I)


# -- which layout --------------------------------------------------------------------------------

_forced: str | None = None


def check_layout(name: str, source: str = "--layout") -> str:
    """`name` if it is a layout pgsafe reads, else a ConfigError listing them."""
    if name not in LAYOUTS:
        raise ConfigError(f"{source}: unknown layout {name!r} (known: {', '.join(LAYOUTS)})")
    return name


def force_layout(name: str | None) -> None:
    """The layout every directory is read as from now on (the CLI's --layout, or [tool.pgsafe]
    layout); None: detect it from each directory."""
    global _forced
    _forced = check_layout(name) if name is not None else None


@contextlib.contextmanager
def forced_layout(name: str | None) -> Iterator[None]:
    """force_layout for the duration of a block."""
    global _forced
    before = _forced
    force_layout(name)
    try:
        yield
    finally:
        _forced = before


def chosen_layout(layout: str | None = None) -> str | None:
    """`layout` when given, else the forced one, else None (detect)."""
    return check_layout(layout) if layout is not None else _forced


def detect(root: Path) -> tuple[str, Path] | None:
    """(layout, the directory its migrations are in) for what `root` holds, or None."""
    if (root / "sqitch.plan").is_file():
        return "sqitch", root
    if (root / "supabase" / "migrations").is_dir():
        return "supabase", root / "supabase" / "migrations"
    if root.resolve().name == "migrations" and root.resolve().parent.name == "supabase":
        return "supabase", root
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise ConfigError(f"{root}: cannot read: {exc.strerror or exc}") from None
    dirs = [p for p in entries if p.is_dir()]
    if (root / "migration_lock.toml").is_file() or any(
        (d / "migration.sql").is_file() for d in dirs
    ):
        return "prisma", root
    if any((d / "up.sql").is_file() for d in dirs):
        return "diesel", root
    sql = [p.name for p in entries if p.suffix == ".sql" and p.is_file()]
    flyway = [n for n in sql if _FLYWAY.match(n) or _FLYWAY_R.match(n)]
    numbered = [n for n in sql if _DBMATE.match(n)]  # NNN_name.sql, NNN.sql, NNN_x.up.sql
    if flyway and numbered:
        raise ConfigError(
            f"{root}: holds both Flyway files ({flyway[0]}) and numbered files ({numbered[0]}); "
            "say which layout it is with --layout"
        )
    if flyway:
        return "flyway", root
    if any(_UPDOWN.match(n) for n in sql):
        return "pgsafe", root
    lone = numbered
    if lone:
        # Both tools refuse a file without its up marker: the first file tells.
        return _one_file_layout(root / lone[0]) or "pgsafe", root
    return None


def _one_file_layout(path: Path) -> str | None:
    try:
        text = read_sql(path)
    except ConfigError:
        return None
    if "migrate:" not in text and "migration" not in text.lower():
        return None  # neither tool's marker can be in it: no need to find its comments
    for c in scan_comments(text):
        if c.column != 1:
            continue
        if _DBMATE_MARK.match(c.text):
            return "dbmate"
        if _NODE_MARK.match(c.text):
            return "node-pg-migrate"
    return None


def read_layout(root: Path, layout: str | None = None) -> list[Migration]:
    """The migrations in directory `root` as `layout` (detected when None) reads them; a
    ConfigError saying what was looked for and what is there when there is none."""
    if layout is None:
        found = detect(root)
        if found is None:
            raise ConfigError(nothing_found(root, None))
        layout, where = found
    else:
        where = _where(root, layout)
    if layout == "alembic":
        return discover_alembic(root)
    migs = READERS[layout](where)
    if not migs:
        raise ConfigError(nothing_found(root, layout))
    return migs


def _where(root: Path, layout: str) -> Path:
    if layout == "supabase" and (root / "supabase" / "migrations").is_dir():
        return root / "supabase" / "migrations"
    return root


def layout_of(root: str | Path, layout: str | None = None) -> str:
    """The layout `root` is read as (for the history table of its tool)."""
    path = Path(root)
    chosen = chosen_layout(layout)
    if chosen is not None:
        return chosen
    if is_alembic_project(path):
        return "alembic"
    found = detect(path) if path.is_dir() else None
    return found[0] if found else "pgsafe"


# -- what is there when nothing is -----------------------------------------------------------


def nothing_found(root: Path, layout: str | None) -> str:
    """One line: what pgsafe looked for in `root` and what it saw there."""
    looked = (
        f"{layout} migrations: {LAYOUTS[layout]}"
        if layout
        else "pgsafe's NNN_name.up.sql/.down.sql or NNN_name.sql, golang-migrate, diesel, "
        "Prisma, Flyway, dbmate, sqitch, Supabase and node-pg-migrate layouts, an Alembic project"
    )
    return f"{root}: no migration pgsafe can read (looked for {looked}); found {survey(root)}"


def survey(root: Path) -> str:
    """What `root` holds, in a few words, naming the layout it looks like when pgsafe knows it."""
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        return f"nothing readable ({exc.strerror or exc})"
    if not entries:
        return "an empty directory"
    dirs = [p for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file()]
    parts: list[str] = []

    def some(n: int, what: str, hint: str = "") -> None:
        if n:
            parts.append(f"{n} {what}" + (f": {hint}" if hint else ""))

    found = None
    with contextlib.suppress(ConfigError):
        found = detect(root)
    hint = f"a {found[0]} layout (--layout {found[0]})" if found else ""
    diesel = sum((d / "up.sql").is_file() for d in dirs)
    prisma = sum((d / "migration.sql").is_file() for d in dirs)
    some(diesel, "directories with up.sql" if diesel != 1 else "directory with up.sql", hint)
    some(prisma, "directories with migration.sql", hint if not diesel else "")
    sql = [p.name for p in files if p.suffix == ".sql"]
    if sql:
        names = ", ".join(sql[:3]) + (", ..." if len(sql) > 3 else "")
        some(len(sql), f".sql file{'s' if len(sql) != 1 else ''} ({names})", hint)
    code = [p for p in files if p.suffix in (".js", ".ts", ".cjs", ".mjs")]
    some(
        len(code),
        "JavaScript/TypeScript files",
        "migrations written as code are not read (write them as SQL files)",
    )
    py = [p for p in files if p.suffix == ".py"]
    some(len(py), "Python files", "not an Alembic project (no alembic.ini, or env.py + versions/)")
    other = [p.name for p in files if p.suffix not in (".sql", ".py", ".js", ".ts", ".cjs", ".mjs")]
    if other:
        names = ", ".join(other[:3]) + (", ..." if len(other) > 3 else "")
        parts.append(f"{len(other)} other file{'s' if len(other) != 1 else ''} ({names})")
    plain = [
        d.name for d in dirs if not (d / "up.sql").is_file() and not (d / "migration.sql").is_file()
    ]
    if plain:
        names = ", ".join(plain[:3]) + (", ..." if len(plain) > 3 else "")
        parts.append(f"{len(plain)} director{'ies' if len(plain) != 1 else 'y'} ({names})")
    return "; ".join(parts)


# -- the model ---------------------------------------------------------------------------------


@dataclass
class LayoutMigration(Migration):
    """A migration of another tool's layout. `up_path`/`down_path` are that tool's files; for
    a one-file layout (dbmate, node-pg-migrate) both are the same file, and its up and down are
    the sections after each marker comment, read with the rest of the file blanked so every
    line and column is the file's own."""

    layout: str = "pgsafe"
    display: str | None = None  # the label the tool shows (a file or directory name)
    down_hint: str = ""  # why there is no down, for the error when one is asked for
    verify_path: Path | None = None  # sqitch's verify script, run by `pgsafe test`
    sections: str | None = None  # "dbmate" | "node-pg-migrate": the up and down are sections

    @property
    def label(self) -> str:
        return self.display or f"{self.version}_{self.name}"

    # one-file layouts: the sections

    def _section(self, direction: str) -> tuple[str, dict[str, str]]:
        assert self.sections is not None
        text = read_sql(self.up_path)
        ranges, options = split_sections(self.up_path, text, self.sections)
        if direction not in ranges:
            raise ConfigError(self._no_down())
        start, end = ranges[direction]
        data = text.encode("utf-8")
        # Everything before the section becomes spaces (same byte length, newlines kept): the
        # parser's lines, columns and offsets are then the file's own.
        blank = re.sub(rb"[^\n]", b" ", data[:start])
        return (blank + data[start:end]).decode("utf-8"), options.get(direction, {})

    def _statements(self, direction: str) -> list[Statement]:
        found = self._parsed.get((direction, False))
        if found is None:
            found = self._parsed[(direction, False)] = self._read_statements(direction)
        return list(found)

    def _read_statements(self, direction: str) -> list[Statement]:
        text, options = self._section(direction)
        statements = file_statements(text, str(self.up_path))
        if options.get("transaction") == "false":
            # dbmate's transaction:false: every statement runs on its own, outside a transaction.
            for s in statements:
                if not s.non_transactional:
                    s.non_transactional = True
                    s.reason = "a transaction:false section"
        return statements

    def up_text(self) -> str:
        if self.sections is None:
            return super().up_text()
        return self._section("up")[0]

    def down_text(self) -> str | None:
        if self.sections is None or self.down_path is None:
            return super().down_text()
        text, _ = self._section("down")
        return text.lstrip(" \n\r")

    def lint_text(self) -> str:
        """The up as lint reads it: lines and columns the file's own."""
        return self.up_text()

    def up_statements(self, own: bool = False) -> list[Statement]:
        if self.sections is None:
            return super().up_statements(own)
        return self._statements("up")

    def down_statements(self, own: bool = False) -> list[Statement]:
        if self.down_path is None:
            raise ConfigError(self._no_down())
        if self.sections is None:
            return super().down_statements(own)
        return self._statements("down")

    def _no_down(self) -> str:
        return f"{self.label} has no down ({self.down_hint or 'irreversible'})"

    # sqitch: the verify script

    def verify_statements(self) -> list[Statement]:
        """The verify script's statements, without its BEGIN/ROLLBACK (pgsafe runs it in a
        transaction it rolls back)."""
        if self.verify_path is None:
            return []
        statements = parse_sql(read_sql(self.verify_path), str(self.verify_path))
        return [s for s in statements if not s.transaction_control]


def split_sections(
    path: Path, text: str, tool: str
) -> tuple[dict[str, tuple[int, int]], dict[str, dict[str, str]]]:
    """({"up": (start, end), "down": ...} as byte offsets, {direction: options}) of a one-file
    migration: each section runs from the end of its marker comment to the next marker or the
    end of the file. Markers are comments the scanner found at the start of a line."""
    pattern = _DBMATE_MARK if tool == "dbmate" else _NODE_MARK
    marker = "-- migrate:up" if tool == "dbmate" else "-- Up Migration"
    marks: list[tuple[str, int, int, int, dict[str, str]]] = []
    for c in scan_comments(text):
        m = pattern.match(c.text) if c.column == 1 else None
        if m is None:
            continue
        direction = m["dir"].lower()
        if any(d == direction for d, *_ in marks):
            raise ConfigError(f"{path}:{c.line}: a second {direction} marker ({c.text.strip()})")
        opts = dict(
            opt.split(":", 1) for opt in m["options"].split() if ":" in opt and tool == "dbmate"
        )
        unknown = set(opts) - {"transaction"}
        if unknown:
            raise ConfigError(
                f"{path}:{c.line}: unknown dbmate option {', '.join(sorted(unknown))} "
                "(pgsafe reads transaction:false)"
            )
        marks.append((direction, c.offset, c.offset + len(c.text.encode("utf-8")), c.line, opts))
    if not any(d == "up" for d, *_ in marks):
        raise ConfigError(f"{path}: no '{marker}' line ({tool} needs one to find the up)")
    size = len(text.encode("utf-8"))
    ranges: dict[str, tuple[int, int]] = {}
    options: dict[str, dict[str, str]] = {}
    for i, (direction, _start, end, _line, opts) in enumerate(marks):
        stop = marks[i + 1][1] if i + 1 < len(marks) else size
        ranges[direction] = (end, stop)
        options[direction] = opts
    first = marks[0][1]
    if first and parse_sql(text.encode("utf-8")[:first].decode("utf-8"), str(path)):
        raise ConfigError(
            f"{path}: statements before the first marker ({marks[0][0]}, line {marks[0][3]}) "
            f"belong to no direction; {tool} would not run them"
        )
    return ranges, options


# -- the readers -------------------------------------------------------------------------------


def _numbered(migs: list[LayoutMigration], key: Callable[[LayoutMigration], object]) -> None:
    """Sorts `migs` in place by `key`, refuses two with the same key, and numbers them."""
    migs.sort(key=lambda m: (key(m), m.label))
    for a, b in itertools.pairwise(migs):
        if key(a) == key(b):
            raise ConfigError(f"{b.up_path}: version {b.version} is also {a.up_path}")
    for i, m in enumerate(migs):
        m.order = i


def _ignored(root: Path, used: set[Path], pattern: str, recursive: bool = False) -> None:
    """Warns about .sql files the layout does not read (when it read some: finding none is
    the error that says what was looked for)."""
    if not used:
        return
    files = root.rglob("*.sql") if recursive else root.glob("*.sql")
    stray = sorted(str(p.relative_to(root)) for p in files if p.is_file() and p not in used)
    if stray:
        log.warning(
            "%s: %d .sql file(s) not read (names not like %s): %s",
            root,
            len(stray),
            pattern,
            ", ".join(stray[:5]) + (", ..." if len(stray) > 5 else ""),
        )


def read_pgsafe(root: Path) -> list[Migration]:
    return read_files(root)


def _folder_migrations(
    root: Path,
    up: str,
    pattern: re.Pattern[str],
    layout: str,
    misnamed: str,
    down_hint: Callable[[Path], str],
) -> list[LayoutMigration]:
    """diesel's and Prisma's layout: a folder per migration named by `pattern` (its `version`
    and `name` groups) holding the up file `up` and, where there is one, down.sql; in folder
    name order. `misnamed` says how folders are named; `down_hint` where a missing down goes."""
    migs: list[LayoutMigration] = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and (p / up).is_file()):
        m = pattern.match(d.name)
        if m is None:
            raise ConfigError(f"{d}: {misnamed}")
        down = d / "down.sql"
        migs.append(
            LayoutMigration(
                m["version"],
                m["name"],
                d / up,
                down if down.is_file() else None,
                layout=layout,
                display=d.name,
                down_hint=down_hint(d),
            )
        )
    return migs


def read_diesel(root: Path) -> list[Migration]:
    """`{version}_{name}/up.sql` + `down.sql`, in version order (diesel compares versions
    without their dashes: 2024-01-31-120000 is 20240131120000)."""
    migs = _folder_migrations(
        root,
        "up.sql",
        _DIESEL_DIR,
        "diesel",
        "diesel migration directories are named {version}_{name}, "
        "e.g. 2024-01-31-120000_create_users",
        lambda d: f"no down.sql in {d}",
    )
    _numbered(migs, lambda m: m.version.replace("-", ""))
    return list(migs)


def read_prisma(root: Path) -> list[Migration]:
    """`{timestamp}_{name}/migration.sql` in folder-name order; Prisma has no down, but a
    `down.sql` beside migration.sql (the recipe of Prisma's docs) is used as one."""
    migs = _folder_migrations(
        root,
        "migration.sql",
        _PRISMA_DIR,
        "prisma",
        "Prisma migration folders are named {timestamp}_{name}, e.g. 20240131120000_init",
        lambda d: f"Prisma migrations have none; add {d / 'down.sql'} to give it one",
    )
    _numbered(migs, lambda m: m.display or "")
    return list(migs)


def flyway_version(text: str) -> tuple[int, ...]:
    """Flyway's version order: numeric by part, 1.2.10 after 1.2.9; trailing zeros do not
    count (1.0 is 1). Parts are separated by '.' or '_'."""
    parts = [int(p) for p in re.split(r"[._]", text)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def read_flyway(root: Path) -> list[Migration]:
    """Versioned `V{version}__{description}.sql` in version order, each with its undo
    `U{version}__{description}.sql` (Flyway Teams) as the down, then the repeatable
    `R__{description}.sql` files by description (run again when their file changes). Flyway
    searches its location recursively; so does pgsafe."""
    versioned: dict[tuple[int, ...], LayoutMigration] = {}
    undos: dict[tuple[int, ...], Path] = {}
    repeatable: list[LayoutMigration] = []
    used: set[Path] = set()
    for path in sorted(p for p in root.rglob("*.sql") if p.is_file()):
        m = _FLYWAY.match(path.name)
        if m is not None:
            used.add(path)
            key = flyway_version(m["version"])
            if m["kind"] == "U":
                if key in undos:
                    raise ConfigError(f"{path}: a second undo for version {m['version']}")
                undos[key] = path
                continue
            if key in versioned:
                raise ConfigError(
                    f"{path}: version {m['version']} is also {versioned[key].up_path.name} "
                    "(Flyway refuses this too)"
                )
            versioned[key] = LayoutMigration(
                m["version"].replace("_", "."),
                m["desc"],
                path,
                layout="flyway",
                display=path.stem,
                down_hint=f"no U{m['version']}__{m['desc']}.sql",
            )
            continue
        r = _FLYWAY_R.match(path.name)
        if r is not None:
            used.add(path)
            repeatable.append(
                LayoutMigration(
                    f"R__{r['desc']}",
                    r["desc"],
                    path,
                    layout="flyway",
                    display=path.stem,
                    repeatable=True,
                    down_hint="a repeatable migration has no undo; it runs again when changed",
                )
            )
    for key, path in undos.items():
        mig = versioned.get(key)
        if mig is None:
            raise ConfigError(f"{path}: an undo without its versioned V file")
        mig.down_path = path
    names = [r.name for r in repeatable]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{root}: two repeatable migrations R__{name}.sql")
    migs = [versioned[k] for k in sorted(versioned)] + sorted(repeatable, key=lambda r: r.name)
    for i, mig in enumerate(migs):
        mig.order = i
    _ignored(root, used, "V1__name.sql, U1__name.sql or R__name.sql", recursive=True)
    return list(migs)


def _sql_files(root: Path, pattern: re.Pattern[str]) -> dict[Path, re.Match[str]]:
    """The *.sql files directly in `root` whose name `pattern` matches, in name order, with
    the match."""
    found = {}
    for path in sorted(p for p in root.glob("*.sql") if p.is_file()):
        m = pattern.match(path.name)
        if m is not None:
            found[path] = m
    return found


def _read_one_file(root: Path, tool: str) -> list[Migration]:
    migs: list[LayoutMigration] = []
    used = _sql_files(root, _DBMATE)
    for path, m in used.items():
        ranges, _ = split_sections(path, read_sql(path), tool)
        marker = "-- migrate:down" if tool == "dbmate" else "-- Down Migration"
        migs.append(
            LayoutMigration(
                m["version"],
                m["name"] or "",
                path,
                path if "down" in ranges else None,
                layout=tool,
                display=path.stem,
                down_hint=f"no '{marker}' section in {path}",
                sections=tool,
            )
        )
    # dbmate and node-pg-migrate run files in file-name order.
    _numbered(migs, lambda m: m.version if tool == "dbmate" else int(m.version))
    _ignored(root, set(used), "{version}_{name}.sql")
    return list(migs)


def read_dbmate(root: Path) -> list[Migration]:
    """`{version}_{name}.sql`, one file per migration: `-- migrate:up` then `-- migrate:down`
    (optional), each with its options (transaction:false)."""
    return _read_one_file(root, "dbmate")


def read_node_pg_migrate(root: Path) -> list[Migration]:
    """node-pg-migrate's SQL files: `{timestamp}_{name}.sql` with `-- Up Migration` and
    `-- Down Migration` sections."""
    return _read_one_file(root, "node-pg-migrate")


def read_supabase(root: Path) -> list[Migration]:
    """The Supabase CLI's `supabase/migrations/{timestamp}_{name}.sql`, in version order; the
    CLI has no down migrations."""
    migs: list[LayoutMigration] = []
    used = _sql_files(root, _LONE)
    for path, m in used.items():
        migs.append(
            LayoutMigration(
                m["version"],
                m["name"],
                path,
                layout="supabase",
                display=path.stem,
                down_hint="Supabase CLI migrations have none",
            )
        )
    _numbered(migs, lambda m: m.version)
    _ignored(root, set(used), "{timestamp}_{name}.sql")
    return list(migs)


@dataclass
class PlanChange:
    name: str  # as the plan has it
    key: str  # unique: name, or name@tag for a change reworked later in the plan
    line: int


def sqitch_plan(root: Path) -> tuple[str, list[PlanChange]]:
    """(project, the changes of sqitch.plan in order). A change planned again later (reworked)
    keeps its earlier scripts as name@tag, the first tag after it."""
    plan = root / "sqitch.plan"
    try:
        lines = plan.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{plan}: cannot read: {exc}") from None
    project = ""
    changes: list[PlanChange] = []
    tags: list[tuple[int, str]] = []  # (index of the next change, tag)
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("%"):
            key, _, value = line[1:].partition("=")
            if key.strip() == "project":
                project = value.strip()
            continue
        if line.startswith("@"):
            tags.append((len(changes), line[1:].split()[0]))
            continue
        name = re.split(r"[\s\[]", line.lstrip("+-"), maxsplit=1)[0]
        if not name:
            raise ConfigError(f"{plan}:{number}: not a change line")
        changes.append(PlanChange(name, name, number))
    for i, change in enumerate(changes):
        later = any(c.name == change.name for c in changes[i + 1 :])
        if later:
            tag = next((t for at, t in tags if at > i), None)
            if tag is None:
                raise ConfigError(
                    f"{plan}:{change.line}: {change.name} is planned again later with no tag "
                    "between (sqitch rework needs one)"
                )
            change.key = f"{change.name}@{tag}"
    return project, changes


def read_sqitch(root: Path) -> list[Migration]:
    """sqitch.plan's changes in plan order: deploy/NAME.sql up, revert/NAME.sql down,
    verify/NAME.sql run by `pgsafe test` after each up."""
    _project, changes = sqitch_plan(root)
    migs: list[Migration] = []
    for i, change in enumerate(changes):
        deploy = root / "deploy" / f"{change.key}.sql"
        if not deploy.is_file():
            raise ConfigError(
                f"{root / 'sqitch.plan'}:{change.line}: {change.name}: no {deploy} to deploy it"
            )
        revert = root / "revert" / f"{change.key}.sql"
        verify = root / "verify" / f"{change.key}.sql"
        migs.append(
            LayoutMigration(
                change.key,
                change.name,
                deploy,
                revert if revert.is_file() else None,
                order=i,
                layout="sqitch",
                display=change.key,
                down_hint=f"no {revert}",
                verify_path=verify if verify.is_file() else None,
            )
        )
    return migs


READERS: dict[str, Callable[[Path], list[Migration]]] = {
    "pgsafe": read_pgsafe,
    "golang-migrate": read_pgsafe,
    "diesel": read_diesel,
    "prisma": read_prisma,
    "flyway": read_flyway,
    "dbmate": read_dbmate,
    "sqitch": read_sqitch,
    "supabase": read_supabase,
    "node-pg-migrate": read_node_pg_migrate,
}


# -- for lint and `pgsafe test` ----------------------------------------------------------------


def layout_here(root: Path) -> tuple[str, Path] | None:
    """(layout, the directory its migrations are in) of directory `root`: the forced layout
    (--layout, [tool.pgsafe] layout), else the detected one; None when nothing is detected."""
    chosen = chosen_layout()
    return (chosen, _where(root, chosen)) if chosen else detect(root)


def lint_sources(root: Path) -> list[tuple[str, str]] | None:
    """(file, text) of each up of another tool's layout in `root`, lines as in the file; None
    when `root` is pgsafe's own layout or loose SQL files (lint reads every *.sql then)."""
    found = layout_here(root)
    if found is None or found[0] in ("pgsafe", "golang-migrate", "alembic"):
        return None
    out: list[tuple[str, str]] = []
    for m in read_layout(root, found[0]):
        text = m.lint_text() if isinstance(m, LayoutMigration) else m.up_text()
        out.append((str(m.up_path), text))
    return out


def lint_file_text(path: Path) -> str:
    """A file named on lint's command line as lint reads it: a dbmate or node-pg-migrate file
    (its own markers say so) is its up section, lines kept; any other file, all of it."""
    text = read_sql(path)
    if path.suffix != ".sql":
        return text
    tool = chosen_layout() or _one_file_layout(path)
    if tool not in ("dbmate", "node-pg-migrate"):
        return text
    mig = LayoutMigration("0", path.stem, path, layout=tool, sections=tool)
    return mig.lint_text()


def run_verify(dsn: str, mig: Migration) -> tuple[bool, str] | None:
    """Runs `mig`'s verify script (sqitch) on `dsn` in a transaction it rolls back: None when it
    has none, else (passed, what happened), a failure naming file:line."""
    if not isinstance(mig, LayoutMigration) or mig.verify_path is None:
        return None
    statements = mig.verify_statements()
    conn = _core.Connection(dsn, "pgsafe-test")
    try:
        conn.execute("BEGIN")
        conn.execute("SET LOCAL statement_timeout = '60s'")
        conn.execute("SET LOCAL lock_timeout = '5s'")
        for s in statements:
            try:
                conn.execute(s.sql)
            except DatabaseError as exc:
                return False, f"{mig.verify_path}:{s.line}: {exc.message}"
        return True, f"{mig.verify_path}: {len(statements)} statement(s) passed"
    finally:
        with contextlib.suppress(DatabaseError):
            conn.execute("ROLLBACK")
        conn.close()


# Files whose name alone says nothing of which migration they belong to.
_GENERIC = {"up.sql", "down.sql", "migration.sql"}
_SQITCH_DIRS = {"deploy", "revert", "verify"}


def short_name(file: str | Path) -> str:
    """A migration file's name for a report line: the file name, with its directory when the
    name alone is ambiguous (diesel's up.sql, Prisma's migration.sql, sqitch's deploy/x.sql)."""
    path = Path(file)
    if path.name in _GENERIC or path.parent.name in _SQITCH_DIRS:
        return f"{path.parent.name}/{path.name}"
    return path.name


def discover(directory: str | Path, layout: str | None = None) -> list[Migration]:
    """Migrations in `directory`, in the order their tool runs them: pgsafe's own layout (and
    golang-migrate's) ordered by the numeric prefix; an Alembic project (an alembic.ini or its
    directory), one per revision in graph order, rendered offline; the other tools' layouts
    (diesel, Prisma, Flyway, dbmate, sqitch, Supabase, node-pg-migrate) read by
    pgsafe.sources.layouts. `layout` forces one (else --layout, [tool.pgsafe] layout, or what
    the directory holds). Finding no migration is a ConfigError naming what was looked for."""
    root = Path(directory)
    chosen = chosen_layout(layout)
    if chosen in (None, "alembic") and is_alembic_project(root):
        return discover_alembic(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: migrations directory not found")
    return read_layout(root, chosen)
