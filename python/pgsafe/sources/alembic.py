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
import logging.config
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from pgsafe import _core
from pgsafe.errors import ConfigError
from pgsafe.sources.files import SourceLines

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
# Config.attributes keys of what load_config found out about the project.
_IMPORT_PATHS = "pgsafe.import_paths"
_FLASK_ROOT = "pgsafe.flask_root"

IMPORT_HINT = (
    "pgsafe imports the revisions and env.py as Alembic does: put the application on the "
    "import path with --app-path DIR (or PYTHONPATH); prepend_sys_path in alembic.ini is read "
    "from the ini's folder"
)


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


def _option(cfg: Config, name: str) -> str | None:
    """An [alembic] option (or [tool.alembic] of pyproject.toml, Alembic 1.16+)."""
    get = getattr(cfg, "get_alembic_option", None) or cfg.get_main_option
    try:
        value = get(name)
    except Exception as exc:  # configparser: a malformed ini or interpolation
        raise ConfigError(f"{cfg.config_file_name}: cannot read {name}: {exc}") from None
    return str(value) if value else None


def _sys_path_entries(cfg: Config) -> list[str]:
    """prepend_sys_path as Alembic splits it."""
    listed = getattr(cfg, "get_prepend_sys_paths_list", None)
    if listed is not None:
        return [str(p) for p in listed() or []]
    raw = cfg.get_main_option("prepend_sys_path") or ""
    return raw.replace(",", " ").split()


def uses_flask(env_py: Path) -> bool:
    """Whether env.py imports Flask (Flask-Migrate's env.py reads the application through
    flask.current_app). Read from its syntax tree, never run."""
    try:
        tree = ast.parse(env_py.read_text(encoding="utf-8"), str(env_py))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        if any(name.partition(".")[0] == "flask" for name in names):
            return True
    return False


def load_config(path: str | Path, output: Any = None) -> Config:
    """The project's Config, with sqlalchemy.url pointed at no database, script_location
    absolute, and the import path the revisions need (prepend_sys_path resolved from the ini's
    folder, as when Alembic runs there; the project root of a Flask-Migrate project, where
    `flask db` runs) in its attributes."""
    require_alembic()
    from alembic.config import Config

    ini, base = ini_path(path)
    if ini is None:
        cfg = Config(output_buffer=output)
        cfg.set_main_option("script_location", str(base))
    else:
        cfg = Config(str(ini), output_buffer=output)
        location = _option(cfg, "script_location")
        if not location:
            if not ((base / "env.py").is_file() and (base / "versions").is_dir()):
                raise ConfigError(
                    f"{ini}: no script_location in [alembic], and {base} holds no env.py and "
                    "versions/ (Flask-Migrate's layout: the ini inside the script directory)"
                )
            # Flask-Migrate: `flask db` passes the directory of the ini as the script location.
            cfg.set_main_option("script_location", str(base))
        elif not Path(location).is_absolute() and ":" not in location:
            # Alembic resolves it from the current directory; pgsafe runs from anywhere.
            cfg.set_main_option("script_location", str(base / location))
    paths = []
    for entry in _sys_path_entries(cfg) if ini is not None else []:
        p = Path(entry)
        paths.append(str(p if p.is_absolute() else (base / p).resolve()))
    script_dir = Path(str(cfg.get_main_option("script_location")))
    env_py = script_dir / "env.py"
    if env_py.is_file() and uses_flask(env_py):
        # `flask db` runs in the project root, the folder holding migrations/, and Flask puts
        # the current directory on the import path.
        root = script_dir.resolve().parent
        paths.append(str(root))
        cfg.attributes[_FLASK_ROOT] = root
    cfg.attributes[_IMPORT_PATHS] = paths
    cfg.set_main_option("sqlalchemy.url", RENDER_URL)
    cfg.attributes[RENDERING] = True
    return cfg


def script_directory(cfg: Config) -> ScriptDirectory:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    before = list(sys.path)
    try:
        return ScriptDirectory.from_config(cfg)
    except CommandError as exc:
        raise ConfigError(f"{cfg.config_file_name or 'alembic'}: {exc}") from None
    finally:
        # Alembic prepends prepend_sys_path as written (relative to the current directory);
        # pgsafe has put it there resolved from the ini's folder (project_environment).
        sys.path[:] = before


def _where(tb: TracebackType | None, files: Callable[[Path], bool]) -> tuple[Path, int] | None:
    """The innermost frame of a traceback in one of the project's files."""
    found = None
    for frame, line in traceback.walk_tb(tb):
        name = Path(frame.f_code.co_filename)
        if name.suffix == ".py" and files(name):
            found = (name, line)
    return found


def _in_dir(directory: Path) -> Callable[[Path], bool]:
    root = directory.resolve()

    def inside(p: Path) -> bool:
        try:
            return p.resolve().is_relative_to(root)
        except OSError:
            return False

    return inside


def _import_failure(exc: BaseException, where: tuple[Path, int] | None, what: str) -> ConfigError:
    """One line for a project file that cannot be imported or run: `what` says which."""
    place = f"{where[0]}:{where[1]}: " if where else ""
    message = f"{place}{what}: {type(exc).__name__}: {exc}"
    if isinstance(exc, ImportError):
        message += f" ({IMPORT_HINT})"
    return ConfigError(message)


def revisions_in_order(script: ScriptDirectory) -> list[Script]:
    """Every revision, base first (parents before children, branches one after the other)."""
    from alembic.util import CommandError

    try:
        revs = list(script.walk_revisions("base", "heads"))
    except CommandError as exc:
        raise ConfigError(f"{script.dir}: revision graph: {exc}") from None
    except Exception as exc:  # a revision file that cannot be imported (the app it imports)
        where = _where(exc.__traceback__, _in_dir(Path(script.dir)))
        raise _import_failure(exc, where, "cannot import the revision") from None
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


@contextlib.contextmanager
def _alembic_quiet() -> Iterator[None]:
    """Alembic's own INFO lines (`Generating static SQL`, `Will assume transactional DDL`, once
    per revision and direction) only with pgsafe -v: env.py's logging.config.fileConfig (the
    ini's [logger_alembic] level = INFO) is skipped, and the alembic logger held at WARNING."""
    if logging.getLogger("pgsafe").isEnabledFor(logging.INFO):
        yield
        return
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    original = logging.config.fileConfig

    def skipped(*args: Any, **kwargs: Any) -> None:
        return None

    logging.config.fileConfig = skipped
    alembic_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logging.config.fileConfig = original
        alembic_log.setLevel(level)


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _flask_app(cfg: Config) -> Iterator[None]:
    """Flask-Migrate's env.py reads the application (flask.current_app): load it as `flask db`
    does, from FLASK_APP (or wsgi.py / app.py) in the project root, and render in its app
    context. The application's own database URL then names the dialect; nothing connects."""
    root = cfg.attributes.get(_FLASK_ROOT)
    if root is None:
        yield
        return
    env_py = Path(str(cfg.get_main_option("script_location"))) / "env.py"
    try:
        from flask.cli import ScriptInfo
    except ImportError:
        raise ConfigError(
            f"{env_py}: a Flask-Migrate env.py (it imports flask): install the application's "
            "requirements (Flask, Flask-Migrate) where pgsafe runs"
        ) from None
    app_name = os.environ.get("FLASK_APP") or _flaskenv_app(root / ".flaskenv")
    try:
        with _chdir(root):
            app = ScriptInfo(app_import_path=app_name, set_debug_flag=False).load_app()
    except Exception as exc:
        where = _where(exc.__traceback__, _in_dir(root))
        if app_name is None and type(exc).__name__ == "NoAppException":
            raise ConfigError(
                f"{env_py}: Flask-Migrate's env.py reads the application (flask.current_app): "
                f"set FLASK_APP=module or module:create_app as for `flask db` (in the "
                f"environment or {root / '.flaskenv'}; {root} has no wsgi.py or app.py)"
            ) from None
        message = (
            f"{env_py}: Flask-Migrate's env.py reads the application, and FLASK_APP={app_name} "
            f"cannot be loaded from {root}"
            + (f" ({where[0]}:{where[1]})" if where else "")
            + f": {type(exc).__name__}: {exc}"
        )
        if isinstance(exc, ImportError):
            message += f" ({IMPORT_HINT})"
        raise ConfigError(message) from None
    with app.app_context():
        yield


def _flaskenv_app(path: Path) -> str | None:
    """FLASK_APP from the project's .flaskenv (what `flask` reads with python-dotenv); the
    other settings there are not pgsafe's to load."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for raw in text.splitlines():
        key, sep, value = raw.strip().removeprefix("export ").partition("=")
        if sep and key.strip() == "FLASK_APP":
            return value.split(" #")[0].strip().strip("'\"") or None
    return None


@contextlib.contextmanager
def project_environment(cfg: Config) -> Iterator[None]:
    """What rendering a project needs around it: the import path of its revisions, Alembic's
    logging quiet (and pgsafe's own logging kept), the Flask application of a Flask-Migrate
    project. sys.path is restored afterwards."""
    saved = list(sys.path)
    sys.path[:0] = [p for p in cfg.attributes.get(_IMPORT_PATHS, []) if p not in sys.path]
    try:
        with _logging_kept(), _alembic_quiet(), _flask_app(cfg):
            yield
    finally:
        sys.path[:] = saved


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

    def source_lines(self, function: int) -> SourceLines:
        """The revision line behind each line of the SQL (for Migration.up_map/down_map)."""
        count = self.sql.count("\n") + 1
        return SourceLines(tuple(self.revision_line(n) for n in range(1, count + 1)), function)

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
    cfg: Config,
    script: ScriptDirectory,
    rev: Script,
    direction: str,
    start: tuple[str, ...],
    dest: str,
) -> tuple[Rendered | None, str | None]:
    """One revision's SQL, as `alembic upgrade/downgrade START:DEST --sql` writes it (START may
    be several heads: a merge, or a revision on a branch next to another). A revision function
    that cannot run offline is returned as an error; env.py failing is the project's error.
    One Config and ScriptDirectory serve every revision (the revision files are imported
    once)."""
    from alembic.runtime.environment import EnvironmentContext

    capture = _Capture(rev.path)
    cfg.output_buffer = capture

    def steps(current: Any, context: Any) -> Any:
        if direction == "upgrade":
            return script._upgrade_revs(dest, current)
        return script._downgrade_revs(dest, current)

    env = EnvironmentContext(
        cfg, script, fn=steps, as_sql=True, starting_rev=start, destination_rev=dest
    )
    try:
        with env:
            script.run_env()
    except NotImplementedError as exc:
        return None, f"{direction}() raises NotImplementedError{f': {exc}' if str(exc) else ''}"
    except Exception as exc:
        where = _where(exc.__traceback__, _in_dir(Path(script.dir)))
        if where is not None and where[0].name == "env.py":
            raise _import_failure(exc, where, "env.py cannot run") from None
        if isinstance(exc, ImportError):
            # The application the function imports is not on the path: not a property of
            # the revision that a lint rule could report.
            raise _import_failure(exc, where, f"{direction}() cannot import") from None
        return None, f"{direction}() cannot be rendered offline: {type(exc).__name__}: {exc}"
    ctx = getattr(env, "_migration_context", None)
    dialect = getattr(getattr(ctx, "dialect", None), "name", "postgresql")
    if dialect != "postgresql":
        raise ConfigError(
            f"{Path(script.dir) / 'env.py'}: renders SQL for {dialect}, not PostgreSQL (the "
            "dialect of the URL env.py configures; with Flask-Migrate, the application's "
            "SQLALCHEMY_DATABASE_URI): point it at a postgresql:// URL for pgsafe"
        )
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
    with project_environment(cfg):
        return _analyse(path, cfg, render)


def _analyse(path: str | Path, cfg: Config, render: bool) -> Project:
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
            r.upgrade, r.upgrade_error = _render(cfg, script, rev, "upgrade", heads, rev.revision)
            if kind != "missing":
                r.downgrade, r.downgrade_error = _render(
                    cfg, script, rev, "downgrade", (rev.revision,), down[0] if down else "base"
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
    rendered offline (version = revision id, checksum = SHA-256 of the revision file), each
    statement placed at the line of the revision file that emitted it."""
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
            raise ConfigError(f"{r.path}:{r.function_lines.get('upgrade', 1)}: {r.upgrade_error}")
        down = _downgrade_sql(r) if r.downgrade is not None else None
        reversible = down is not None and r.downgrade_def not in ("missing", "raises")
        out.append(
            Migration(
                r.revision,
                r.name,
                r.path,
                r.path if reversible else None,
                r.checksum,
                up_sql=r.upgrade.sql,
                down_sql=down[0] if down is not None and reversible else None,
                order=r.order,
                up_map=r.upgrade.source_lines(r.function_lines.get("upgrade", 1)),
                down_map=down[1] if down is not None and reversible else None,
            )
        )
    return out


def _downgrade_sql(r: Revision) -> tuple[str, SourceLines]:
    """The downgrade's own statements, then the alembic_version rows as they were before the
    revision was applied (and where each came from in the revision file). Alembic renders a
    downgrade from the revision alone and so cannot know the other branches' heads; pgsafe
    rolls back in the reverse of the order it applied."""
    from pgsafe.sources.files import parse_sql

    assert r.downgrade is not None
    text = r.downgrade.sql
    data = text.encode()
    kept: list[tuple[str, int | None]] = []
    for stmt in parse_sql(text, f"{r.path} downgrade()"):
        offset = len(data[: stmt.offset].decode("utf-8", "replace"))
        line = r.downgrade.capture.line_at(offset)
        if line is None and not stmt.transaction_control:
            continue  # Alembic's bookkeeping (alembic_version) or env.py's own statements
        kept.append((stmt.sql.rstrip().rstrip(";") + ";", line))
    kept.append((f"DELETE FROM alembic_version WHERE version_num = '{r.revision}';", None))
    for head in r.heads_before:
        if head in r.down_revisions:
            kept.append((f"INSERT INTO alembic_version (version_num) VALUES ('{head}');", None))
    if not r.down_revisions:
        # Alembic creates alembic_version before the first revision and (since 1.16) keeps it
        # after the last downgrade; pgsafe's rollback returns the database to base.
        kept.append(("DROP TABLE IF EXISTS alembic_version;", None))
    lines: list[int | None] = []
    for i, (sql, line) in enumerate(kept):
        if i:
            lines.append(None)  # the blank line between statements
        lines.extend([line] * (sql.count("\n") + 1))
    function = r.function_lines.get("downgrade", 1)
    return "\n\n".join(sql for sql, _ in kept) + "\n", SourceLines(tuple(lines), function)
