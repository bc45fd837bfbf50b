"""`pgsafe locks`: the live probe of the target as a command. With a migrations directory, the
relations the pending migrations lock are probed (their lock queues and vacuums); `--watch`
refreshes until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK, EXIT_UNSAFE
from pgsafe.config import Settings
from pgsafe.db import connect
from pgsafe.errors import ConfigError
from pgsafe.lifecycle.probe import LONG_WAIT_SECONDS, probe
from pgsafe.lifecycle.runner import Runner
from pgsafe.lint.context import Context
from pgsafe.lint.model import Stmt
from pgsafe.sources.layouts import discover

_EPILOG = """\
what it shows: sessions blocked by others (pg_blocking_pids: both pids and queries, the lock
wanted and held), transactions open longer than --long-tx, sessions idle in transaction, the
lock queue (holders and waiters) of each relation the pending migrations lock, running
(auto)vacuums on them (anti-wraparound ones do not give way to a migration's lock), and
replication lag. The probe is read-only and never waits: lock_timeout 1s, statement_timeout 5s,
catalog and statistics views only, its own session left out.

exit codes: 0 nothing blocking (warnings may be printed: idle sessions, ordinary autovacuum,
replica lag, a lock wait of --long-wait or more on another relation); 1 unsafe to migrate now:
a session blocked on a probed relation, a transaction older than --long-tx,
waiters queued on a probed relation, an anti-wraparound vacuum on one, or the probe itself
gave up within its timeouts; 5 bad PATH, DSN or
option (the password is masked). With --watch, the code of the last refresh."""


_long_tx_ms = common.duration(zero="every open transaction counts as long")
_interval_ms = common.duration(minimum_ms=100)
_long_wait_ms = common.duration(zero="every lock wait is a warning")


def _seconds(text: str) -> float:
    return _long_tx_ms(text) / 1000


def _long_wait(text: str) -> float:
    return _long_wait_ms(text) / 1000


def _interval(text: str) -> float:
    return _interval_ms(text) / 1000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "locks",
        help="live blockers, long and idle transactions, lock queues, vacuums, replica lag",
        description="Probe the target database for what would make a migration wait, or make "
        "others wait behind it, right now. With PATH (default ./migrations when it exists), the "
        "relations the pending migrations lock are probed; without, every relation with a "
        "waiter.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common.add_verbose(p)
    p.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="migrations directory whose pending migrations name the relations to probe "
        "(default: ./migrations if it exists)",
    )
    common.add_db(p)
    common.add_tables(p, "probe these relations (instead of those of PATH's pending migrations)")
    common.add_format(p)
    p.add_argument(
        "--long-tx",
        type=_seconds,
        default=30.0,
        metavar="DUR",
        help="report transactions open longer than this (default 30s)",
    )
    p.add_argument(
        "--long-wait",
        type=_long_wait,
        default=LONG_WAIT_SECONDS,
        metavar="DUR",
        help="a lock wait on a relation the pending migrations do not lock is a warning once "
        f"it lasts this long, and nothing before (default {LONG_WAIT_SECONDS:g}s)",
    )
    p.add_argument(
        "--watch",
        type=_interval,
        nargs="?",
        const=2.0,
        metavar="DUR",
        help="probe again every DUR (default 2s, at least 100ms) until Ctrl-C; with --format "
        "json, one "
        "JSON document per line",
    )
    p.set_defaults(handler=run)


def pending_relations(path: str | Path, dsn: str, label: str) -> list[str]:
    """The relations that existed before and that the migrations pending on `dsn` lock, as the
    lint engine predicts them (names as written in the SQL), in order of first use."""

    migs = discover(path)
    if not migs:
        return []
    status = Runner(path, dsn, target_label=label).status()
    pending = {s.version for s in status.migrations if s.state == "pending"}
    found: dict[str, None] = {}
    for mig in migs:
        if mig.version not in pending:
            continue
        raw = mig.up_statements()
        stmts = [Stmt.from_core(i, s) for i, s in enumerate(raw)]
        ctx = Context(file=str(mig.up_path), file_statements=stmts)
        for stmt in stmts:
            if not stmt.raw.transaction_control:
                for relation in ctx.existing_locks(stmt):
                    found.setdefault(relation, None)
            ctx.note(stmt)
    return list(found)


def _path(args: argparse.Namespace) -> str | None:
    if args.path is not None:
        if not Path(args.path).exists():
            raise ConfigError(f"{args.path}: migrations directory not found")
        return str(args.path)
    return "migrations" if Path("migrations").is_dir() else None


def run(args: argparse.Namespace) -> int:
    path = None if args.tables else _path(args)
    if path is not None:
        discover(path)  # a bad PATH fails before a throwaway server starts
    tty = sys.stdout.isatty()
    with common.open_target(args, say=common.note) as (dsn, label):
        relations = list(args.tables or [])
        if path is not None:
            relations = pending_relations(path, dsn, label)
            if not relations:
                common.note(f"no pending migration in {path} locks an existing relation")
        code = EXIT_OK
        with contextlib.closing(connect(dsn, Settings(), "probe")) as conn:
            try:
                while True:
                    report = probe(
                        conn,
                        relations=relations,
                        long_tx_seconds=args.long_tx,
                        target=label,
                        long_wait_seconds=args.long_wait,
                    )
                    code = EXIT_UNSAFE if report.failed else EXIT_OK
                    if args.format == "json":
                        doc = report.to_dict()
                        print(json.dumps(doc) if args.watch else json.dumps(doc, indent=2))
                    else:
                        if args.watch and tty:
                            print("\033[H\033[2J", end="")
                        print(report.to_text(), end="")
                        if args.watch:
                            print(f"\n(refreshing every {args.watch:g}s; Ctrl-C to stop)")
                    sys.stdout.flush()
                    if not args.watch:
                        return code
                    time.sleep(args.watch)
            except KeyboardInterrupt:
                if not args.watch:
                    raise
                return code
