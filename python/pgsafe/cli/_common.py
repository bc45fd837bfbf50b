"""What every command shares: exit codes, flag types and groups, the target (or the embedded
throwaway server), settings from flags, output helpers, and the exit code of an error."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from pgsafe.config import Settings, resolve_target
from pgsafe.errors import ConfigError, DatabaseError, Error
from pgsafe.events import EventLog
from pgsafe.server import TemporaryServer
from pgsafe.sources.files import Statement

EXIT_OK, EXIT_UNSAFE, EXIT_MIGRATION, EXIT_POSTFLIGHT, EXIT_ROLLBACK, EXIT_CONFIG = range(6)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h)?\s*$")


_UNIT_MS = {"ms": 1, "s": 1000, "sec": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}


_MAX_MS = 2_147_483_647  # PostgreSQL's timeouts are int milliseconds


def duration_ms(text: str) -> int:
    """'200ms', '5s', '15min', '1h' or a plain number of milliseconds."""
    m = _DURATION.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 200ms, 5s, 15min)")
    value = int(float(m[1]) * _UNIT_MS[m[2] or "ms"])
    if value > _MAX_MS:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than PostgreSQL allows (~24 days)")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def table_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"empty table name in {text!r}")
    return names


def version(text: str) -> str:
    """A version as --to names it: a file's numeric prefix (002) or an Alembic revision id of
    any form (202511121302, ae1027a6acf, 0001_x); which ones exist is the source's to say."""
    if not text or any(ch.isspace() for ch in text) or text.startswith("-"):
        raise argparse.ArgumentTypeError(
            f"not a version: {text!r} (the migration file's numeric prefix, e.g. 002, or an "
            "Alembic revision id)"
        )
    return text


VERBOSE_HELP = "more log output (-vv for the core's debug lines)"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors are config errors: exit 5
        self.print_usage(sys.stderr)
        self.exit(EXIT_CONFIG, f"pgsafe: error: {message}\n")


APP_PATH_HELP = (
    "a directory to import the application from, for Alembic revisions and env.py that import "
    "it (like PYTHONPATH; repeatable)"
)


def add_verbose(p: argparse.ArgumentParser, help: str = VERBOSE_HELP) -> None:
    """-v (and --app-path) also after the command; SUPPRESS keeps the top-level value when it
    is not repeated."""
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=help)
    p.add_argument(
        "--app-path",
        action="append",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help=APP_PATH_HELP if help != argparse.SUPPRESS else argparse.SUPPRESS,
    )


def use_app_paths(paths: list[str] | None) -> None:
    """--app-path: put the directories first on the import path (checked to exist)."""
    resolved = []
    for raw in paths or []:
        p = Path(raw).expanduser()
        if not p.is_dir():
            raise ConfigError(f"--app-path {raw}: not a directory")
        resolved.append(str(p.resolve()))
    sys.path[:0] = [p for p in resolved if p not in sys.path]


def add_path(p: argparse.ArgumentParser) -> None:
    """The optional PATH positional: the migrations directory."""
    p.add_argument(
        "path",
        nargs="?",
        default="migrations",
        help="migrations directory (default: ./migrations)",
    )


def add_format(p: argparse.ArgumentParser) -> None:
    """--format text|json (default text)."""
    p.add_argument("--format", choices=["text", "json"], default="text")


def add_target(
    p: argparse.ArgumentParser, with_path: bool = True, with_log_dir: bool = True
) -> None:
    add_verbose(p)
    if with_path:
        add_path(p)
    p.add_argument(
        "--db",
        metavar="URL",
        help="target database; default DATABASE_URL, then libpq's PG* variables and "
        "service files, then an embedded throwaway server",
    )
    if not with_log_dir:
        return
    p.add_argument(
        "--log-dir",
        default="logs",
        help="where the JSON-lines event log goes (default: logs; '' disables it)",
    )


def add_safety(p: argparse.ArgumentParser) -> None:
    d = Settings()
    g = p.add_argument_group("safety limits")
    g.add_argument(
        "--lock-timeout",
        type=duration_ms,
        default=d.lock_timeout_ms,
        metavar="DUR",
        help="lock_timeout for every statement (default 5s)",
    )
    g.add_argument(
        "--statement-timeout",
        type=duration_ms,
        default=d.statement_timeout_ms,
        metavar="DUR",
        help="statement_timeout for ordinary statements (default 5min)",
    )
    g.add_argument(
        "--long-statement-timeout",
        type=duration_ms,
        default=d.long_statement_timeout_ms,
        metavar="DUR",
        help="statement_timeout for index builds, validations, VACUUM (default 15min)",
    )
    g.add_argument(
        "--idle-timeout",
        type=duration_ms,
        default=d.idle_in_transaction_timeout_ms,
        metavar="DUR",
        help="idle_in_transaction_session_timeout (default 60s)",
    )
    g.add_argument(
        "--retries",
        type=int,
        default=d.max_attempts,
        metavar="N",
        help="attempts on lock timeout or deadlock, first included (default 5)",
    )
    g.add_argument(
        "--retry-base",
        type=duration_ms,
        default=d.retry_base_ms,
        metavar="DUR",
        help="first backoff delay, doubled per attempt with jitter (default 500ms)",
    )
    g.add_argument(
        "--retry-max",
        type=duration_ms,
        default=d.retry_max_ms,
        metavar="DUR",
        help="backoff cap (default 30s)",
    )
    g.add_argument(
        "--lock-wait",
        type=duration_ms,
        default=int(d.lock_wait_s * 1000),
        metavar="DUR",
        help="how long to wait for another run's migration lock (default 5min)",
    )


def add_exclude(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="SCHEMA",
        help="leave this schema out (repeatable, or comma-separated); the ledger schema "
        f"{Settings().ledger_schema!r} is always left out unless --include-ledger",
    )
    p.add_argument(
        "--include-ledger",
        action="store_true",
        help="fingerprint the ledger schema too",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    s = Settings()
    for attr, key in [
        ("lock_timeout_ms", "lock_timeout"),
        ("statement_timeout_ms", "statement_timeout"),
        ("long_statement_timeout_ms", "long_statement_timeout"),
        ("idle_in_transaction_timeout_ms", "idle_timeout"),
        ("max_attempts", "retries"),
        ("retry_base_ms", "retry_base"),
        ("retry_max_ms", "retry_max"),
    ]:
        if hasattr(args, key):
            setattr(s, attr, getattr(args, key))
    if getattr(args, "lock_wait", None) is not None:
        s.lock_wait_s = args.lock_wait / 1000
    if s.max_attempts < 1:
        raise ConfigError("--retries must be at least 1")
    return s


def say(message: str) -> None:
    print(message, flush=True)


def note(message: str) -> None:
    print(f"pgsafe: note: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def open_target(
    args: argparse.Namespace, say: Callable[[str], None] = say
) -> Iterator[tuple[str, str]]:
    """(dsn, label) of the target; starts the embedded throwaway server when none is given.
    `say` tells the user so (stderr for commands whose stdout is machine-read)."""
    target = resolve_target(args.db)
    if not target.embedded:
        yield target.dsn, target.masked
        return
    say("no --db, DATABASE_URL or PG* variables: using a throwaway local PostgreSQL")
    with TemporaryServer() as server:
        yield server.dsn("postgres"), f"embedded throwaway server (port {server.port})"


def print_plan(title: str, plan: Sequence[tuple[object, Sequence[Statement]]]) -> None:
    if not plan:
        say(f"{title}: nothing to do")
        return
    say(f"{title} (read-only: pass --apply to run it):")
    for mig, statements in plan:
        autocommit = [s for s in statements if s.non_transactional]
        note = f", {len(autocommit)} in autocommit steps" if autocommit else ""
        say(f"  {mig.label}: {len(statements)} statements{note}")  # type: ignore[attr-defined]
        for s in autocommit:
            say(f"    line {s.line}: {s.reason} cannot run in a transaction block")


def event_log(args: argparse.Namespace) -> EventLog:
    """The run's event log, for commands that write; checked before anything is touched."""
    writes = args.command == "repair" or getattr(args, "execute", False)
    if not writes or not args.log_dir:
        return EventLog(None)
    path = Path(args.log_dir) / "migrations.jsonl"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a"):
            pass
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the event log: {exc.strerror or exc}") from None
    return EventLog(path)


FAILURE_CODE = {
    "apply": EXIT_MIGRATION,
    "rollback": EXIT_ROLLBACK,
    "postflight": EXIT_POSTFLIGHT,
    "backup": EXIT_MIGRATION,
    "restore": EXIT_ROLLBACK,
    "verify-backup": EXIT_MIGRATION,
}


READ_ONLY = {"fingerprint", "checksum"}


def exit_code(command: str, exc: Error) -> int:
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if command == "rollback":  # whatever stopped it, the rollback failed (DESIGN.md: 4)
        return EXIT_ROLLBACK
    if isinstance(exc, DatabaseError):
        return FAILURE_CODE.get(command, EXIT_CONFIG)
    return exc.exit_code
