"""An Alembic project seen offline: its revision graph, each revision's upgrade() and downgrade()
rendered to SQL with Alembic's own ``--sql`` mode (one revision at a time, every chunk of output
tagged with the line of the revision file that emitted it), and checks on the graph and on the
revision files themselves. Needs no database: rendering uses a PostgreSQL dialect URL."""

from __future__ import annotations

import ast
import bisect
import contextlib
import io
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pgsafe import _core
from pgsafe.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import Script, ScriptDirectory

    from pgsafe.sources.files import Migration

# What the project's sqlalchemy.url is replaced with while rendering: offline mode never
# connects, it only needs the dialect (the project's own URL may point at production).
RENDER_URL = "postgresql://pgsafe-offline/render"
# Set in Config.attributes while pgsafe renders a project, so pgsafe.alembic.configure in its
# env.py knows not to emit its SET statements (pgsafe's runner sets its own timeouts).
RENDERING = "pgsafe.rendering"


def require_alembic() -> None:
    try:
        import alembic  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError:
        raise ConfigError(
            "this is an Alembic project: install alembic and SQLAlchemy "
            "(pip install 'pgsafe[alembic]') to use it with pgsafe"
        ) from None


def ini_path(path: str | Path) -> tuple[Path | None, Path]:
    """(alembic.ini or None, the directory relative paths in it are resolved from)."""
    p = Path(path)
    if p.is_file():
        return p.resolve(), p.resolve().parent
    if (p / "alembic.ini").is_file():
        return (p / "alembic.ini").resolve(), p.resolve()
    if (p / "env.py").is_file():
        return None, p.resolve()
    raise ConfigError(f"{p}: not an alembic.ini, a directory holding one, or a script directory")


def load_config(path: str | Path, output: Any = None) -> Config:
    """The project's Config, with sqlalchemy.url pointed at no database."""
    require_alembic()
    from alembic.config import Config

    ini, base = ini_path(path)
    if ini is None:
        cfg = Config(output_buffer=output)
        cfg.set_main_option("script_location", str(base))
    else:
        cfg = Config(str(ini), output_buffer=output)
        try:
            location = cfg.get_main_option("script_location")
        except Exception as exc:  # configparser: a malformed ini
            raise ConfigError(f"{ini}: cannot read: {exc}") from None
        if not location:
            raise ConfigError(f"{ini}: no script_location in [alembic]")
        if not Path(location).is_absolute() and "%(here)s" not in location and ":" not in location:
            # Alembic resolves it from the current directory; pgsafe runs from anywhere.
            cfg.set_main_option("script_location", str(base / location))
    cfg.set_main_option("sqlalchemy.url", RENDER_URL)
    cfg.attributes[RENDERING] = True
    return cfg


def script_directory(cfg: Config) -> ScriptDirectory:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(cfg)
    except CommandError as exc:
        raise ConfigError(f"{cfg.config_file_name or 'alembic'}: {exc}") from None


def revisions_in_order(script: ScriptDirectory) -> list[Script]:
    """Every revision, base first (parents before children, branches one after the other)."""
    from alembic.util import CommandError

    try:
        revs = list(script.walk_revisions("base", "heads"))
    except CommandError as exc:
        raise ConfigError(f"{script.dir}: revision graph: {exc}") from None
    revs.reverse()
    return revs


def revision_name(rev: Script) -> str:
    """The ledger name of a revision: its file name without the revision id prefix."""
    stem = Path(rev.path).stem
    for prefix in (f"{rev.revision}_", rev.revision):
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix) :].lstrip("_") or stem
    return stem


@contextlib.contextmanager
def _logging_kept() -> Iterator[None]:
    """env.py usually calls logging.config.fileConfig, which replaces the root handlers and
    disables every existing logger (pgsafe's among them): undo that after rendering."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    disabled = {
        name: lg.disabled
        for name, lg in logging.Logger.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, lg in logging.Logger.manager.loggerDict.items():
            if isinstance(lg, logging.Logger):
                lg.disabled = disabled.get(name, False)


class _Capture(io.StringIO):
    """Alembic's --sql output, each write tagged with the revision file line that caused it
    (None for Alembic's own bookkeeping: BEGIN/COMMIT, the alembic_version table)."""

    def __init__(self, revision_file: str) -> None:
        super().__init__()
        self.revision_file = str(Path(revision_file).resolve())
        self.marks: list[tuple[int, int | None]] = []  # (char offset, revision line)

    def _line(self) -> int | None:
        frame: FrameType | None = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_name in ("emit_begin", "emit_commit"):
                return None  # autocommit_block's COMMIT ... BEGIN: Alembic's, on purpose
            name = frame.f_code.co_filename
            if name == self.revision_file or (
                name.endswith(Path(self.revision_file).name)
                and str(Path(name).resolve()) == self.revision_file
            ):
                return frame.f_lineno
            frame = frame.f_back
        return None

    def write(self, s: str) -> int:
        self.marks.append((self.tell(), self._line()))
        return super().write(s)

    def line_at(self, offset: int) -> int | None:
        """The revision line of the write that produced character `offset`."""
        i = bisect.bisect_right([m[0] for m in self.marks], offset) - 1
        return self.marks[i][1] if i >= 0 else None


@dataclass
class Rendered:
    """One direction of one revision, as Alembic's offline mode writes it."""

    sql: str
    capture: _Capture

    def revision_line(self, sql_line: int) -> int | None:
        """The revision file line behind a line of the rendered SQL."""
        starts = [0]
        for i, ch in enumerate(self.sql):
            if ch == "\n":
                starts.append(i + 1)
        if not 1 <= sql_line <= len(starts):
            return None
        start = starts[sql_line - 1]
        end = starts[sql_line] if sql_line < len(starts) else len(self.sql)
        # The first tagged write on that line (a statement may begin after whitespace).
        for offset in range(start, max(end, start + 1)):
            line = self.capture.line_at(offset)
            if line is not None:
                return line
        return None


@dataclass
class Revision:
    """A revision of the project with what offline analysis found out about it."""

    revision: str
    down_revisions: tuple[str, ...]
    path: Path
    name: str
    checksum: str
    order: int
    upgrade: Rendered | None = None
    downgrade: Rendered | None = None
    upgrade_error: str | None = None
    downgrade_error: str | None = None
    downgrade_def: str = "real"  # real | pass | missing | raises | noop
    heads_before: tuple[str, ...] = ()  # the database's heads when it is applied in order
    function_lines: dict[str, int] = field(default_factory=dict)


def _render(
    cfg_path: str | Path,
    rev: Script,
    direction: str,
    start: tuple[str, ...],
    dest: str,
) -> tuple[Rendered | None, str | None]:
    """One revision's SQL, as `alembic upgrade/downgrade START:DEST --sql` writes it (START may
    be several heads: a merge, or a revision on a branch next to another)."""
    from alembic.runtime.environment import EnvironmentContext

    capture = _Capture(rev.path)
    cfg = load_config(cfg_path, capture)
    script = script_directory(cfg)

    def steps(current: Any, context: Any) -> Any:
        if direction == "upgrade":
            return script._upgrade_revs(dest, current)
        return script._downgrade_revs(dest, current)

    try:
        with (
            _logging_kept(),
            EnvironmentContext(
                cfg, script, fn=steps, as_sql=True, starting_rev=start, destination_rev=dest
            ),
        ):
            script.run_env()
    except NotImplementedError as exc:
        return None, f"{direction}() raises NotImplementedError{f': {exc}' if str(exc) else ''}"
    except Exception as exc:
        return None, f"{direction}() cannot be rendered offline: {type(exc).__name__}: {exc}"
    return Rendered(capture.getvalue(), capture), None


def _kind(fn: ast.FunctionDef | None) -> str:
    if fn is None:
        return "missing"
    body = [
        n
        for n in fn.body
        if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))  # docstring, ...
    ]
    if all(isinstance(n, ast.Pass) for n in body):
        return "pass"
    if all(isinstance(n, ast.Raise) for n in body):
        return "raises"
    return "real"


def downgrade_kind(path: Path) -> tuple[str, dict[str, int]]:
    """How the revision file defines downgrade(): 'real', 'pass' (a body of only pass, ... or
    a docstring), 'raises' (only raises), 'missing', or 'noop' when upgrade() does nothing
    either (a merge or baseline revision); and the line of each top-level def."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the revision file: {exc}") from None
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    lines = {name: n.lineno for name, n in defs.items()}
    kind = _kind(defs.get("downgrade"))
    if kind == "pass" and _kind(defs.get("upgrade")) == "pass":
        return "noop", lines
    return kind, lines


@dataclass
class Project:
    path: Path
    script_dir: Path
    heads: list[str]
    branch_points: list[str]
    revisions: list[Revision]


def analyse(path: str | Path, render: bool = True) -> Project:
    """The project's revisions in graph order, each rendered both ways (unless render=False)."""
    cfg = load_config(path)
    script = script_directory(cfg)
    revs = revisions_in_order(script)
    out: list[Revision] = []
    heads: tuple[str, ...] = ()  # the database's heads when this revision is applied in order
    for order, rev in enumerate(revs, start=1):
        down = tuple(rev._normalized_down_revisions)  # merges have several
        kind, lines = downgrade_kind(Path(rev.path))
        r = Revision(
            rev.revision,
            down,
            Path(rev.path),
            revision_name(rev),
            _core.sha256_file(rev.path),
            order,
            downgrade_def=kind,
            function_lines=lines,
            heads_before=heads,
        )
        if render:
            r.upgrade, r.upgrade_error = _render(path, rev, "upgrade", heads, rev.revision)
            if kind != "missing":
                r.downgrade, r.downgrade_error = _render(
                    path, rev, "downgrade", (rev.revision,), down[0] if down else "base"
                )
        heads = (*(h for h in heads if h not in down), rev.revision)
        out.append(r)
    return Project(
        Path(path),
        Path(script.dir),
        list(script.get_heads()),
        [r.revision for r in revs if r.is_branch_point],
        out,
    )


def discover_alembic(path: str | Path) -> list[Migration]:
    """pgsafe.migrations.discover for an Alembic project: one Migration per revision, its SQL
    rendered offline (version = revision id, checksum = SHA-256 of the revision file)."""
    from pgsafe.sources.files import Migration

    project = analyse(path)
    if len(project.heads) > 1:
        raise ConfigError(
            f"{project.script_dir}: {len(project.heads)} heads ({', '.join(project.heads)}): "
            "merge them (alembic merge heads) before pgsafe can order the revisions"
        )
    out = []
    for r in project.revisions:
        if r.upgrade is None:
            raise ConfigError(f"{r.path}: {r.upgrade_error}")
        down_sql = _downgrade_sql(r) if r.downgrade is not None else None
        reversible = down_sql is not None and r.downgrade_def not in ("missing", "raises")
        out.append(
            Migration(
                r.revision,
                r.name,
                r.path,
                r.path if reversible else None,
                r.checksum,
                up_sql=r.upgrade.sql,
                down_sql=down_sql if reversible else None,
                order=r.order,
            )
        )
    return out


def _downgrade_sql(r: Revision) -> str:
    """The downgrade's own statements, then the alembic_version rows as they were before the
    revision was applied. Alembic renders a downgrade from the revision alone and so cannot
    know the other branches' heads; pgsafe rolls back in the reverse of the order it applied."""
    from pgsafe.sources.files import parse_sql

    assert r.downgrade is not None
    text = r.downgrade.sql
    data = text.encode()
    kept = []
    for stmt in parse_sql(text, f"{r.path} downgrade()"):
        offset = len(data[: stmt.offset].decode("utf-8", "replace"))
        if r.downgrade.capture.line_at(offset) is None and not stmt.transaction_control:
            continue  # Alembic's bookkeeping (alembic_version) or pgsafe's own SET statements
        kept.append(stmt.sql.rstrip().rstrip(";") + ";")
    kept.append(f"DELETE FROM alembic_version WHERE version_num = '{r.revision}';")
    for head in r.heads_before:
        if head in r.down_revisions:
            kept.append(f"INSERT INTO alembic_version (version_num) VALUES ('{head}');")
    if not r.down_revisions:
        # Alembic creates alembic_version before the first revision and (since 1.16) keeps it
        # after the last downgrade; pgsafe's rollback returns the database to base.
        kept.append("DROP TABLE IF EXISTS alembic_version;")
    return "\n\n".join(kept) + "\n"
