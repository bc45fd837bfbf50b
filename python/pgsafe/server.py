"""Throwaway local PostgreSQL servers: the embedded default pgsafe falls back to.

A :class:`TemporaryServer` runs initdb + postgres from the installed binaries in a private temp
dir (unix socket only, fsync off), as an unprivileged user when the caller is root, and makes
sure no process and no file outlives it, even when the Python process is killed with SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from pgsafe import pgbin
from pgsafe.errors import ConfigError
from pgsafe.quoting import quote_ident

if TYPE_CHECKING:
    from pgsafe._core import Connection

__all__ = [
    "ServerError",
    "TemporaryDatabase",
    "TemporaryServer",
    "find_pg_bindir",
    "server_os_user",
]

_T = TypeVar("_T")
_SUPERUSER = "postgres"
# sun_path is 108 bytes on Linux including the terminating NUL; PostgreSQL refuses longer paths.
_MAX_SOCKET_PATH = 107
# A clone per test of a small template is quickest with FILE_COPY on PostgreSQL 15 (it copies a
# few hundred files instead of WAL-logging every block; see bench/bench_server.py).
_DEFAULT_CLONE_STRATEGY = "FILE_COPY"
# tmpfs makes initdb ~35% and CREATE DATABASE ~15x faster than a disk-backed /tmp; use it when
# it has comfortably more room than a few dozen test databases need.
_TMPFS_CANDIDATES = ("/dev/shm",)
_TMPFS_MIN_FREE = 1 << 30
_LOG_TAIL_LINES = 8


class ServerError(ConfigError):
    """The throwaway server could not be started, reached or stopped; the target was not touched.

    ``log_tail`` holds the last lines of the server log (the file itself is removed on clean-up).
    """

    def __init__(self, message: str, log_tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.log_tail: list[str] = log_tail or []


# --------------------------------------------------------------------------------------------
# Locating binaries and the OS user


def find_pg_bindir(
    explicit: str | os.PathLike[str] | None = None, pg_version: int | None = None
) -> Path:
    """Return the directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    ``explicit`` when given (it must hold them); else the installation of major ``pg_version``,
    else of the configured major (``$PGSAFE_PG_VERSION``, ``pg_version`` in ``[tool.pgsafe]``),
    else the newest found. See :mod:`pgsafe.pgbin` for where it looks."""
    if explicit is None and pg_version is None:
        pg_version = pgbin.configured_major()
    return pgbin.server_installation(pg_version, bindir=explicit).bindir


@dataclass(frozen=True)
class _OsUser:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def server_os_user() -> str | None:
    """Name of the OS user the server processes will run as, or None to run as the caller.

    PostgreSQL refuses to run as root, so a root caller hands the server to ``$PGSAFE_PG_USER``,
    else ``postgres`` (created by Debian's postgresql package), else ``nobody``. pgsafe never
    creates users: install PostgreSQL's package or set ``PGSAFE_PG_USER`` to choose another.
    """
    user = _resolve_os_user()
    return user.name if user is not None else None


def _resolve_os_user() -> _OsUser | None:
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("PGSAFE_PG_USER")
    candidates = [wanted] if wanted else ["postgres", "nobody"]
    for name in candidates:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid == 0:
            raise ConfigError(f"PGSAFE_PG_USER={name} is root; PostgreSQL refuses to run as root")
        groups = tuple(os.getgrouplist(name, entry.pw_gid))
        return _OsUser(name, entry.pw_uid, entry.pw_gid, groups)
    if wanted:
        raise ConfigError(f"PGSAFE_PG_USER={wanted} names no user on this system")
    raise ConfigError(
        "running as root, but neither user 'postgres' nor 'nobody' exists to run PostgreSQL; "
        "install the postgresql package or set PGSAFE_PG_USER"
    )


def _check_reachable(path: Path, user: _OsUser) -> None:
    """Fail early, with the culprit named, when ``user`` cannot walk down to ``path``."""
    for parent in [path, *path.parents]:
        st = parent.stat()
        if st.st_uid == user.uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in user.groups:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            raise ConfigError(
                f"user {user.name} (who runs PostgreSQL for root) cannot enter {parent}; "
                f"point base_dir or PGSAFE_TMPDIR at a directory it can reach"
            )


def _default_base_dir() -> Path:
    env = os.environ.get("PGSAFE_TMPDIR")
    if env:
        return Path(env)
    for candidate in _TMPFS_CANDIDATES:
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        if os.access(candidate, os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize >= _TMPFS_MIN_FREE:
            return Path(candidate)
    return Path(tempfile.gettempdir())


def _free_port() -> int:
    # The server listens on a unix socket in its own directory, so no port can clash; an unused
    # TCP port still keeps `ps` and socket names unambiguous should someone enable TCP later.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _conf_value(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def _dsn_value(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _check_db_name(name: str) -> None:
    # PostgreSQL silently truncates longer names, which would make drop_database miss them.
    if not name or len(name.encode()) > 63 or "\0" in name:
        raise ConfigError(f"invalid database name {name!r}: must be 1 to 63 bytes, no NUL")


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def _remove_sysv_segment(pidfile: Path) -> None:
    try:
        # Line 7 of postmaster.pid: "<shmem key> <shmem id>".
        shmid = int(pidfile.read_text().splitlines()[6].split()[1])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).shmctl(shmid, 0, None)  # IPC_RMID


# --------------------------------------------------------------------------------------------
# The watchdog: a tiny process that cleans up when its parent dies without doing so.
#
# It reads a pipe whose write end only the parent holds. The parent reports each process it
# spawns ("+pid") and reaps ("-pid"), and says "done" after a clean stop. EOF without "done"
# means the parent died (even by SIGKILL): the watchdog then shuts the server down immediately
# (SIGQUIT, then SIGKILL) and removes the temp dir. It sits in its own session so a terminal's
# Ctrl-C, which the parent handles, does not take it down first.

_WATCHDOG = r"""
import os, shutil, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
tempdir, datadir = sys.argv[1], sys.argv[2]
pids = set()
for line in sys.stdin.buffer:
    line = line.strip()
    if line == b"done":
        sys.exit(0)
    if line[:1] == b"+":
        pids.add(int(line[1:]))
    elif line[:1] == b"-":
        pids.discard(int(line[1:]))
try:
    with open(os.path.join(datadir, "postmaster.pid")) as f:
        pids.add(int(f.readline()))
except (OSError, ValueError):
    pass
def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
def settle(pid, seconds):
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not alive(pid)
try:
    with open(os.path.join(datadir, "postmaster.pid")) as f:
        shmid = int(f.read().splitlines()[6].split()[1])
except (OSError, ValueError, IndexError):
    shmid = None
killed = False
for pid in pids:
    for sig, grace in ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        killed = killed or sig == signal.SIGKILL
        if settle(pid, grace):
            break
if killed and shmid is not None:
    try:
        import ctypes
        ctypes.CDLL(None).shmctl(shmid, 0, None)  # IPC_RMID
    except Exception:
        pass
shutil.rmtree(tempdir, ignore_errors=True)
"""


# --------------------------------------------------------------------------------------------
# Process-wide clean-up: atexit, SIGTERM/SIGHUP, fork.

_LIVE: set[TemporaryServer] = set()
# Re-entrant: the SIGTERM handler may run while the main thread holds it.
_LIVE_LOCK = threading.RLock()
_HOOKS_INSTALLED = False


def _cleanup_all() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


def _on_fatal_signal(signum: int, frame: FrameType | None) -> None:
    # Only installed where the signal would have killed the process anyway: clean up, then die
    # of the same signal so the exit status still tells the caller what happened.
    _cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    # The child must not stop its parent's servers, nor keep their watchdogs from seeing EOF.
    # Locks are replaced: another parent thread may have held them at the moment of the fork.
    global _LIVE_LOCK
    _LIVE_LOCK = threading.RLock()
    for server in list(_LIVE):
        server._disown()
    _LIVE.clear()


def _install_process_hooks() -> None:
    global _HOOKS_INSTALLED
    if _HOOKS_INSTALLED:
        return
    _HOOKS_INSTALLED = True
    atexit.register(_cleanup_all)
    os.register_at_fork(after_in_child=_after_fork_in_child)
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _on_fatal_signal)


# --------------------------------------------------------------------------------------------
# The server


class TemporaryServer:
    """A private PostgreSQL server that lives as long as this object is started.

    Usable as a context manager or with :meth:`start` / :meth:`stop`. The data directory, the
    unix socket and the server log all live in one temp dir under ``base_dir`` (default: a
    tmpfs such as ``/dev/shm`` when it has room, else the system temp dir, or
    ``$PGSAFE_TMPDIR``). ``settings`` are extra ``postgresql.conf`` entries.

    The programs are of major ``pg_version`` (exactly), or those in ``bindir``; with neither,
    of ``$PGSAFE_PG_VERSION`` or ``pg_version`` in ``[tool.pgsafe]``, else the newest found
    (:mod:`pgsafe.pgbin`). A missing major is a :class:`~pgsafe.pgbin.MissingBinaries` (exit 5).
    """

    user = _SUPERUSER

    def __init__(
        self,
        *,
        bindir: str | os.PathLike[str] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        settings: Mapping[str, object] | None = None,
        start_timeout: float = 120.0,
        stop_timeout: float = 10.0,  # per shutdown step: fast, then immediate, then SIGKILL
        clone_strategy: str = _DEFAULT_CLONE_STRATEGY,
        pg_version: int | None = None,
    ) -> None:
        if clone_strategy.upper() not in ("FILE_COPY", "WAL_LOG"):
            raise ConfigError(f"clone_strategy must be FILE_COPY or WAL_LOG, not {clone_strategy}")
        for key in settings or {}:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", key):
                raise ConfigError(f"invalid PostgreSQL setting name {key!r}")
        self._bindir_arg = bindir
        self._pg_version_arg = pg_version
        self._base_dir_arg = base_dir
        self._port_arg = port
        self._settings = dict(settings or {})
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._clone_strategy = clone_strategy.upper()

        self._bindir: Path | None = None
        self._installation: pgbin.Installation | None = None
        self._tempdir: Path | None = None
        self._port: int | None = None
        self._version: int | None = None
        self._os_user: _OsUser | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._watchdog_pipe: IO[bytes] | None = None
        self._owner_pid = 0
        self._admin: Connection | None = None
        self._lock = threading.RLock()
        self._names = itertools.count(1)

    # -- paths and connection parameters ---------------------------------------------------

    def _require_started(self) -> Path:
        if self._tempdir is None:
            raise ServerError("the temporary PostgreSQL server is not running; call start()")
        return self._tempdir

    def _once_started(self, value: _T | None) -> _T:
        """`value`, which start() set: ServerError when the server is not running."""
        self._require_started()
        assert value is not None
        return value

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def tempdir(self) -> Path:
        """The one directory holding everything this server wrote; removed on stop."""
        return self._require_started()

    @property
    def datadir(self) -> Path:
        return self._require_started() / "data"

    @property
    def host(self) -> str:
        """The unix socket directory (libpq's ``host`` for a socket)."""
        return str(self._require_started() / "socket")

    @property
    def port(self) -> int:
        return self._once_started(self._port)

    @property
    def log_path(self) -> Path:
        return self._require_started() / "server.log"

    @property
    def bindir(self) -> Path:
        return self._once_started(self._bindir)

    @property
    def installation(self) -> pgbin.Installation:
        """The PostgreSQL programs this server runs (version, where they were found)."""
        return self._once_started(self._installation)

    @property
    def version(self) -> int:
        """Major version of the running server, e.g. 15."""
        return self._once_started(self._version)

    @property
    def pid(self) -> int:
        """Process id of the postmaster."""
        return self._once_started(self._proc).pid

    @property
    def os_user(self) -> str:
        """The OS user the server processes run as."""
        self._require_started()
        if self._os_user is not None:
            return self._os_user.name
        return pwd.getpwuid(os.geteuid()).pw_name

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq key=value connection string; trust auth, so no password."""
        return (
            f"host={_dsn_value(self.host)} port={self.port} user={self.user} "
            f"dbname={_dsn_value(dbname)}"
        )

    def url(self, dbname: str = "postgres") -> str:
        """The same target as :meth:`dsn`, as a ``postgresql://`` URL."""
        return (
            f"postgresql://{self.user}@/{quote(dbname, safe='')}"
            f"?host={quote(self.host, safe='')}&port={self.port}"
        )

    def __repr__(self) -> str:
        state = f"{self.host} port {self._port}" if self._tempdir else "not started"
        return f"<TemporaryServer {state}>"

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> TemporaryServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> TemporaryServer:
        """initdb, configure and start the server; return once it accepts connections."""
        with self._lock:
            if self._tempdir is not None:
                return self
            major = self._pg_version_arg
            if major is None and self._bindir_arg is None:
                major = pgbin.configured_major()
            installation = pgbin.server_installation(major, bindir=self._bindir_arg)
            os_user = _resolve_os_user()
            if os_user is not None:
                installation = pgbin.for_server_user(
                    installation, os_user.name, os_user.uid, os_user.groups
                )
            bindir = installation.bindir
            base = Path(self._base_dir_arg) if self._base_dir_arg else _default_base_dir()
            if not base.is_dir():
                raise ConfigError(f"base directory for the temporary server {base} does not exist")
            base = base.resolve()
            if os_user is not None:
                _check_reachable(base, os_user)
            port = self._port_arg or _free_port()
            socket_path = base / "pgsafe-XXXXXXXX" / "socket" / f".s.PGSQL.{port}"
            if len(os.fsencode(socket_path)) > _MAX_SOCKET_PATH:
                raise ConfigError(
                    f"socket path {socket_path} is longer than {_MAX_SOCKET_PATH} bytes; "
                    f"use a shorter base_dir or PGSAFE_TMPDIR"
                )

            _install_process_hooks()
            self._bindir, self._os_user, self._port = bindir, os_user, port
            self._installation = installation
            self._tempdir = Path(tempfile.mkdtemp(prefix="pgsafe-", dir=base))
            self._owner_pid = os.getpid()
            with _LIVE_LOCK:
                _LIVE.add(self)
            deadline = time.monotonic() + self._start_timeout
            try:
                self._start_watchdog()
                self._prepare_dirs()
                self._initdb(deadline)
                self._write_config()
                self._spawn_postgres()
                self._wait_ready(deadline)
            except BaseException:
                self._cleanup()
                raise
            return self

    def stop(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and remove its temp dir.

        Safe to call more than once, and from atexit or a signal handler.
        """
        with self._lock:
            if self._tempdir is None:
                return
            if os.getpid() != self._owner_pid:
                self._disown()
                return
            self._cleanup()

    def _disown(self) -> None:
        # In a forked child: drop every handle without touching the parent's server.
        if self._watchdog_pipe is not None:
            # Swap our copy of the write end for /dev/null: closing the fd behind the file
            # object's back would let a later close hit whatever reused the number.
            with contextlib.suppress(OSError):
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, self._watchdog_pipe.fileno())
                os.close(null)
        if self._admin is not None:
            # Never finalize the inherited connection: closing it would send a Terminate message
            # down the socket the parent still uses. One leaked object per fork is the price.

            ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._admin))
        self._watchdog_pipe = self._admin = self._proc = self._watchdog = None
        self._tempdir = None
        self._lock = threading.RLock()

    # -- start steps ------------------------------------------------------------------------

    def _subprocess_kwargs(self) -> dict[str, Any]:
        # Inherited PG* variables (PGDATA, PGPORT, PGHOST...) must not redirect our programs.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        kwargs: dict[str, Any] = {"env": env, "cwd": self._tempdir, "stdin": subprocess.DEVNULL}
        if self._os_user is not None:
            kwargs.update(
                user=self._os_user.uid,
                group=self._os_user.gid,
                extra_groups=list(self._os_user.groups),
            )
        return kwargs

    def _notify(self, message: str) -> None:
        if self._watchdog_pipe is None:
            return
        try:
            self._watchdog_pipe.write(message.encode() + b"\n")
            self._watchdog_pipe.flush()
        except OSError:
            # The watchdog died; in-process clean-up still works, only SIGKILL safety is lost.
            self._watchdog_pipe = None

    def _start_watchdog(self) -> None:
        assert self._tempdir is not None
        python = sys.executable or "python3"
        self._watchdog = subprocess.Popen(
            [python, "-I", "-S", "-c", _WATCHDOG, str(self._tempdir), str(self._tempdir / "data")],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        self._watchdog_pipe = self._watchdog.stdin

    def _prepare_dirs(self) -> None:
        assert self._tempdir is not None
        (self._tempdir / "socket").mkdir(mode=0o700)
        self.log_path.touch(mode=0o600)
        if self._os_user is not None:
            for path in (self._tempdir, self._tempdir / "socket", self.log_path):
                os.chown(path, self._os_user.uid, self._os_user.gid)

    def _run_logged(self, argv: list[str], what: str, deadline: float) -> None:
        with self.log_path.open("ab") as log:
            try:
                proc = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, **self._subprocess_kwargs()
                )
            except OSError as exc:
                raise ServerError(f"could not run {what} as {self.os_user}: {exc}") from None
        self._notify(f"+{proc.pid}")
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise self._failure(f"{what} did not finish within {self._start_timeout:g}s") from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            self._notify(f"-{proc.pid}")
        if proc.returncode != 0:
            raise self._failure(f"{what} failed with exit code {proc.returncode}")

    def _initdb(self, deadline: float) -> None:
        assert self._bindir is not None
        argv = [
            str(self._bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-A",
            "trust",
            "-U",
            _SUPERUSER,
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]
        self._run_logged(argv, "initdb", deadline)
        try:
            self._version = int((self.datadir / "PG_VERSION").read_text().split(".")[0])
        except (OSError, ValueError):
            raise self._failure(f"initdb left no readable {self.datadir}/PG_VERSION") from None

    def _write_config(self) -> None:
        settings: dict[str, object] = {
            # Durability buys nothing on a server whose data is deleted when it stops.
            "fsync": False,
            "synchronous_commit": False,
            "full_page_writes": False,
            "listen_addresses": "",
            "unix_socket_directories": self.host,
            "port": self.port,
            "max_connections": 100,
            # postgres' stderr is the log file; a collector process would only slow start-up.
            "logging_collector": False,
            "log_destination": "stderr",
            "log_line_prefix": "%m [%p] %q%u@%d ",
            # Dynamic shared memory as files in the data directory rather than /dev/shm: they
            # then go with the temp dir even when a killed server could not unlink them.
            "dynamic_shared_memory_type": "mmap",
        }
        settings.update(self._settings)
        lines = [f"{key} = {_conf_value(value)}" for key, value in settings.items()]
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# pgsafe temporary server\n" + "\n".join(lines) + "\n")

    def _spawn_postgres(self) -> None:
        assert self._bindir is not None
        # Spawned directly rather than through `pg_ctl -w start`: pg_ctl polls every 100 ms, so
        # it takes ~110 ms where this takes ~25 ms, and the postmaster stays our child to reap.
        # Its own session keeps a terminal's Ctrl-C away so shutdown happens in our order.
        with self.log_path.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    [str(self._bindir / "postgres"), "-D", str(self.datadir)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    **self._subprocess_kwargs(),
                )
            except OSError as exc:
                raise ServerError(f"could not run postgres as {self.os_user}: {exc}") from None
        self._notify(f"+{self._proc.pid}")

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        pidfile = self.datadir / "postmaster.pid"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise self._failure(f"postgres exited with code {code} during start-up")
            try:
                # Line 8 of postmaster.pid is the status pg_ctl waits for as well.
                lines = pidfile.read_text().splitlines()
            except (FileNotFoundError, UnicodeDecodeError):
                lines = []
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
            if time.monotonic() > deadline:
                raise self._failure(f"postgres was not ready within {self._start_timeout:g}s")
            time.sleep(0.002)

    def _failure(self, summary: str) -> ServerError:
        tail = _tail(self.log_path) if self._tempdir is not None else []
        detail = f"; server log ends: {' | '.join(tail)}" if tail else ""
        return ServerError(f"temporary PostgreSQL server: {summary}{detail}", tail)

    # -- stop steps -------------------------------------------------------------------------

    def _cleanup(self) -> None:
        tempdir = self._tempdir
        self._close_admin()
        if self._proc is not None:
            self._terminate(self._proc)
            self._notify(f"-{self._proc.pid}")
            self._proc = None
        if tempdir is not None:
            shutil.rmtree(tempdir, ignore_errors=True)
        if self._watchdog is not None:
            self._notify("done")
            if self._watchdog_pipe is not None:
                with contextlib.suppress(OSError):
                    self._watchdog_pipe.close()
            try:
                self._watchdog.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
        self._watchdog = self._watchdog_pipe = None
        self._tempdir = None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if tempdir is not None and tempdir.exists():
            raise ServerError(f"could not remove the temporary server directory {tempdir}")

    def _close_admin(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            with contextlib.suppress(Exception):
                admin.close()

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        # SIGINT = fast shutdown, SIGQUIT = immediate; the postmaster exits after its children.
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
            if proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self._stop_timeout)
        # A SIGKILLed postmaster cannot remove its SysV segment, which would outlive the temp dir.
        _remove_sysv_segment(self.datadir / "postmaster.pid")

    # -- databases --------------------------------------------------------------------------

    def connect(self, dbname: str = "postgres", application_name: str = "pgsafe") -> Connection:
        """A new connection (from the C++ core) to ``dbname`` on this server."""
        # Imported here: this module runs from a plain source tree without the compiled core
        # (the launcher as an unprivileged user; tests/test_server.py).
        from pgsafe._core import Connection  # noqa: PLC0415

        return Connection(self.dsn(dbname), application_name=application_name)

    def execute(self, sql: str, params: list[str | None] | None = None) -> Any:
        """Run one statement on the ``postgres`` database through a shared admin connection."""
        with self._lock:
            self._require_started()
            if self._admin is None:
                self._admin = self.connect("postgres", application_name="pgsafe-server")
            if params is None:
                return self._admin.execute(sql)
            return self._admin.execute(sql, params)

    def create_database(self, name: str, template: str | None = None) -> None:
        """CREATE DATABASE ``name``, as a clone of ``template`` when given.

        Cloning fails while anyone is connected to the template, so keep it connection-free.
        """
        _check_db_name(name)
        sql = f"CREATE DATABASE {quote_ident(name)}"
        if template is not None:
            _check_db_name(template)
            sql += f" TEMPLATE {quote_ident(template)}"
            if self.version >= 15:
                sql += f" STRATEGY {self._clone_strategy}"
        if template == "postgres":
            # The shared admin connection sits in "postgres" and would block that clone.
            with self._lock:
                self._close_admin()
                with self.connect("template1", application_name="pgsafe-server") as conn:
                    conn.execute(sql)
            return
        self.execute(sql)

    def drop_database(self, name: str, *, missing_ok: bool = True) -> None:
        """DROP DATABASE ``name``, disconnecting anyone still connected to it."""
        _check_db_name(name)
        self._evict_sessions(name)
        sql = "DROP DATABASE "
        if missing_ok:
            sql += "IF EXISTS "
        sql += quote_ident(name)
        if self.version >= 13:
            sql += " WITH (FORCE)"
        self.execute(sql)

    def _evict_sessions(self, name: str, timeout: float = 5.0) -> None:
        # DROP DATABASE sleeps in 100 ms steps while any backend is still attached, and the
        # backend of a client that just disconnected is usually still exiting. Terminating and
        # waiting here in 1 ms steps makes a drop ~5 ms instead of ~105 ms half of the time.
        sql = (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()"
        )
        deadline = time.monotonic() + timeout
        while self.execute(sql, [name]).rows[0][0] != "0" and time.monotonic() < deadline:
            time.sleep(0.001)

    def new_database(
        self, template: str | None = None, name: str | None = None, prefix: str = "pgsafe"
    ) -> TemporaryDatabase:
        """Create a fresh database (cloned from ``template``) that drops itself when closed."""
        if name is None:
            name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.create_database(name, template=template)
        return TemporaryDatabase(name=name, server=self)


@dataclass
class TemporaryDatabase:
    """A database on a :class:`TemporaryServer`, dropped by :meth:`drop` or on ``with`` exit."""

    name: str
    server: TemporaryServer = field(repr=False)

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.name)

    @property
    def url(self) -> str:
        return self.server.url(self.name)

    def connect(self, application_name: str = "pgsafe") -> Connection:
        return self.server.connect(self.name, application_name=application_name)

    def drop(self) -> None:
        if self.server.running:
            self.server.drop_database(self.name)

    def __enter__(self) -> TemporaryDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.drop()
