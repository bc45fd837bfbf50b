"""What every command shares: exit codes, flag types and groups, the target (or the embedded
throwaway server), settings from flags, output helpers, and the exit code of an error."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pgsafe.config import Settings, parse_duration, parse_timeout, resolve_target
from pgsafe.db import split_name
from pgsafe.errors import COMMAND_FAILURE, READ_ONLY_COMMANDS, ConfigError
from pgsafe.errors import EXIT_CONFIG as EXIT_CONFIG
from pgsafe.errors import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from pgsafe.errors import EXIT_MIGRATION as EXIT_MIGRATION
from pgsafe.errors import EXIT_OK as EXIT_OK
from pgsafe.errors import EXIT_POSTFLIGHT as EXIT_POSTFLIGHT
from pgsafe.errors import EXIT_ROLLBACK as EXIT_ROLLBACK
from pgsafe.errors import EXIT_UNSAFE as EXIT_UNSAFE
from pgsafe.errors import exit_code as exit_code

if TYPE_CHECKING:
    from pgsafe.events import EventLog
    from pgsafe.lifecycle.runner import Runner
    from pgsafe.lint.config import LintConfig
    from pgsafe.sources.files import Statement

# Start-up time: what only some commands use (the embedded server, the event log, the lint
# configuration, the migration layouts) is imported in the function that uses it, so that a
# short command such as `pgsafe backup` before an apply does not load the linter or the
# migration readers (docs/architecture.md).


def duration(
    *,
    zero: str | None = None,
    no_zero: str = "",
    timeout: bool = False,
    minimum_ms: float = 0.0,
) -> Callable[[str], int]:
    """An argparse type for a duration flag, in whole milliseconds, read by pgsafe.config's one
    parser (units us, ms, s, min, h, d, w; a bare number other than 0 is refused). `zero` is
    what 0 means where the flag allows it; `timeout`: a PostgreSQL timeout (0 would disable
    it, so it is refused; at most ~24.8 days)."""

    def parse(text: str) -> int:
        try:
            if timeout:
                return parse_timeout(text, "", zero=zero)
            ms = parse_duration(text, "", zero=zero, no_zero=no_zero, minimum_ms=minimum_ms)
            return round(ms)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "duration"  # argparse names the type in "invalid duration value"
    return parse


# A PostgreSQL timeout flag: 0 is refused (PostgreSQL's 0 disables the timeout).
timeout_ms = duration(timeout=True)
# Backoff delays: 0 retries at once.
delay_ms = duration(zero="no delay")
# Waiting for another run's migration lock: 0 tries once and fails at once if it is held.
lock_wait_ms = duration(zero="no wait")
# Thresholds that must be more than 0 (a warning after 0s would fire on everything).
threshold_ms = duration()


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def table_list(text: str) -> list[str]:
    """--tables T,...: each name checked as PostgreSQL reads it (db.split_name); a bad one is
    the same usage error (exit 5) in every command."""
    names = [t.strip() for t in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"empty table name in {text!r}")
    for name in names:
        try:
            split_name(name)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return names


def version(text: str) -> str:
    """A migration's version as its layout names it: 002, 20240131120000, Flyway's 1.2.3, a
    sqitch change name, an Alembic revision id."""
    if not text.strip() or any(ch.isspace() for ch in text):
        raise argparse.ArgumentTypeError(
            f"not a version: {text!r} (the migration's version, e.g. 002 or 20240131120000)"
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


def add_db(p: argparse.ArgumentParser) -> None:
    """--db URL: the target database; --embedded: a throwaway server instead, asked for
    explicitly where a command reads or writes a user's database (EMBEDDED_BY_DEFAULT)."""
    default = (
        "then an embedded throwaway server"
        if p.prog.split()[-1] in EMBEDDED_BY_DEFAULT
        else ("else exit 5 (no silent throwaway target; see --embedded)")
    )
    p.add_argument(
        "--db",
        metavar="URL",
        help="target database; default DATABASE_URL, then libpq's PG* variables and "
        f"service files, {default}",
    )
    p.add_argument(
        "--embedded",
        action="store_true",
        help="use a throwaway local PostgreSQL that pgsafe starts and removes, instead of a "
        "real database",
    )


# Commands whose documented default, with no target given, is the embedded throwaway server
# (`apply` is the demo). Every other command that reads or writes a user's database refuses to
# run on nothing (issue 19): `pgsafe backup` of an empty throwaway database exiting 0 would make
# a user believe they have a backup.
EMBEDDED_BY_DEFAULT = frozenset({"apply"})


def add_target(
    p: argparse.ArgumentParser, with_path: bool = True, with_log_dir: bool = True
) -> None:
    add_verbose(p)
    if with_path:
        add_path(p)
    add_db(p)
    if not with_log_dir:
        return
    p.add_argument(
        "--log-dir",
        default="logs",
        help="where the JSON-lines event log goes (default: logs; '' disables it)",
    )


def add_paths(p: argparse.ArgumentParser, help: str) -> None:
    """The PATH... positionals of lint and fix: files, directories or '-' (stdin)."""
    p.add_argument("paths", nargs="*", default=["migrations"], metavar="PATH", help=help)


def add_tables(p: argparse.ArgumentParser, help: str) -> None:
    """--tables T,...: relation names, each checked as PostgreSQL reads it (table_list)."""
    p.add_argument("--tables", type=table_list, metavar="T,...", help=help)


def add_workers(p: argparse.ArgumentParser, help: str = "connections (default 2)") -> None:
    """--workers N (default 2): connections a parallel scan opens."""
    p.add_argument("--workers", type=positive_int, default=2, metavar="N", help=help)


def add_json(p: argparse.ArgumentParser, help: str = "machine-readable output") -> None:
    p.add_argument("--json", action="store_true", help=help)


def add_apply(p: argparse.ArgumentParser) -> None:
    """--apply (args.execute): without it a command that writes only shows its plan."""
    p.add_argument(
        "--apply", action="store_true", dest="execute", help="actually write to the database"
    )


def add_pg_version(
    p: argparse.ArgumentParser, help: str, parse: Callable[[str], object] = int
) -> None:
    """--pg-version N: the target's PostgreSQL major."""
    p.add_argument("--pg-version", type=parse, metavar="N", help=help)


# The safety limits apply, rollback and preflight take: (flag, the Settings field it sets, its
# parser, help). One table serves the flags (add_safety) and reading them back (settings_from).
_LIMITS: tuple[tuple[str, str, Callable[[str], int], str], ...] = (
    (
        "--lock-timeout",
        "lock_timeout_ms",
        timeout_ms,
        "lock_timeout for every statement (default 5s; more than 0, which PostgreSQL reads as no "
        "timeout at all)",
    ),
    (
        "--statement-timeout",
        "statement_timeout_ms",
        timeout_ms,
        "statement_timeout for ordinary statements (default 5min)",
    ),
    (
        "--long-statement-timeout",
        "long_statement_timeout_ms",
        timeout_ms,
        "statement_timeout for index builds, validations, VACUUM (default 15min)",
    ),
    (
        "--idle-timeout",
        "idle_in_transaction_timeout_ms",
        timeout_ms,
        "idle_in_transaction_session_timeout (default 60s)",
    ),
    (
        "--retries",
        "max_attempts",
        int,
        "attempts on lock timeout or deadlock, first included (default 5)",
    ),
    (
        "--retry-base",
        "retry_base_ms",
        delay_ms,
        "first backoff delay, doubled per attempt with jitter (default 500ms)",
    ),
    ("--retry-max", "retry_max_ms", delay_ms, "backoff cap (default 30s)"),
)


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def add_safety(p: argparse.ArgumentParser) -> None:
    d = Settings()
    g = p.add_argument_group("safety limits")
    for flag, attr, parse, help in _LIMITS:
        metavar = "N" if parse is int else "DUR"
        g.add_argument(flag, type=parse, default=getattr(d, attr), metavar=metavar, help=help)
    add_lock_wait(
        g,
        "how long to wait for another run's migration lock (default 5min; 0: fail at once if "
        "another run holds it)",
    )


def add_lock_wait(g: argparse._ActionsContainer, help: str) -> None:
    """--lock-wait DUR: how long to wait for another run's migration lock (Settings.lock_wait_s)."""
    default = int(Settings().lock_wait_s * 1000)
    g.add_argument("--lock-wait", type=lock_wait_ms, default=default, metavar="DUR", help=help)


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
    for flag, attr, _parse, _help in _LIMITS:
        if hasattr(args, _dest(flag)):
            setattr(s, attr, getattr(args, _dest(flag)))
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
    """(dsn, label) of the target; starts the embedded throwaway server when --embedded asks
    for it, or when none is given to a command whose default it is (EMBEDDED_BY_DEFAULT).
    `say` tells the user so (stderr for commands whose stdout is machine-read)."""
    embedded = bool(getattr(args, "embedded", False))
    if embedded and args.db:
        raise ConfigError("--embedded and --db name two targets: give one")
    target = resolve_target(args.db)
    if not target.embedded and not embedded:
        yield target.dsn, target.masked
        return
    if not embedded and args.command not in EMBEDDED_BY_DEFAULT:
        raise ConfigError(
            f"{args.command}: no target database: give --db URL, or set DATABASE_URL or libpq's "
            "PG* variables (or pass --embedded for a throwaway local PostgreSQL)"
        )
    if embedded:
        say("--embedded: using a throwaway local PostgreSQL")
    else:
        say("no --db, DATABASE_URL or PG* variables: using a throwaway local PostgreSQL")
    from pgsafe.server import TemporaryServer

    with TemporaryServer() as server:
        version = server.installation.version
        yield (
            server.dsn("postgres"),
            f"embedded throwaway server (PostgreSQL {version}, port {server.port})",
        )


@contextlib.contextmanager
def open_runner(args: argparse.Namespace) -> Iterator[Runner]:
    """What status, repair and rollback run on: settings from the flags, PATH read (a bad one
    fails before a throwaway server starts), the event log (checked before anything is
    touched), the target (open_target), and a Runner over PATH on it that tells the user its
    progress. The runner holds all of them: `.settings`, `.events`, `.dsn`, `.target_label`."""
    from pgsafe.lifecycle.runner import Runner
    from pgsafe.sources.layouts import discover

    settings = settings_from(args)
    discover(args.path)
    events = event_log(args)
    with open_target(args) as (dsn, label):
        yield Runner(
            args.path, dsn, settings=settings, events=events, progress=say, target_label=label
        )


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
    from pgsafe.events import EventLog, create_private, private_dir

    writes = args.command == "repair" or getattr(args, "execute", False)
    if not writes or not args.log_dir:
        return EventLog(None)
    path = Path(args.log_dir) / "migrations.jsonl"
    try:
        private_dir(path.parent)
        os.close(create_private(path, append=True))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the event log: {exc.strerror or exc}") from None
    return EventLog(path)


# The exit codes and the code of an error live in pgsafe.errors (one place for the CLI's status,
# its message and apply's JSON report).
FAILURE_CODE = COMMAND_FAILURE
READ_ONLY = READ_ONLY_COMMANDS


def add_layout(sub: argparse._SubParsersAction[Parser]) -> None:
    """--layout NAME on every command that reads a migrations PATH."""
    for p in dict.fromkeys(sub.choices.values()):
        if any(a.dest in ("path", "paths") for a in p._actions):
            from pgsafe.sources.layouts import LAYOUTS

            p.add_argument(
                "--layout",
                choices=list(LAYOUTS),
                metavar="NAME",
                help="read PATH as this tool's layout instead of detecting it: "
                + ", ".join(LAYOUTS)
                + ' (also `layout = "..."` in [tool.pgsafe])',
            )


def layout(args: argparse.Namespace) -> str | None:
    """--layout, else `layout` in [tool.pgsafe] / pgsafe.toml, for commands taking a PATH."""
    if getattr(args, "layout", None):
        return str(args.layout)
    if not any(hasattr(args, name) for name in ("path", "paths")):
        return None
    from pgsafe.pgbin import find_config_table
    from pgsafe.sources.layouts import check_layout

    found = find_config_table()
    if found is None or "layout" not in found[0]:
        return None
    table, source = found
    value = table["layout"]
    if not isinstance(value, str):
        raise ConfigError(f'{source}: layout must be a string, e.g. "flyway"')
    return check_layout(value, f"{source}: layout")


def lint_config(args: argparse.Namespace) -> LintConfig:
    """The lint configuration ([tool.pgsafe] / pgsafe.toml) with --pg-version applied."""
    from pgsafe.lint.config import load_config

    config = load_config()
    if getattr(args, "pg_version", None) is not None:
        config.pg_version, config.pg_version_source = args.pg_version, "--pg-version"
    return config
