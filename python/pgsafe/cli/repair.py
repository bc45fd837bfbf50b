"""`pgsafe repair`: record a dirty migration's real state, or accept a changed file."""

from __future__ import annotations

import argparse

from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK
from pgsafe.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "repair",
        help="resolve a dirty migration or re-baseline a changed file",
        description="After fixing the database by hand, record what state a dirty migration is "
        "really in (--mark), or accept an applied file's new contents (--rebaseline). "
        "Both are written to the ledger's history with --reason.",
    )
    p.add_argument(
        "version",
        nargs="?",
        help="the migration's version (numeric prefix); not with --adopt",
    )
    common.add_target(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--mark", choices=["applied", "rolled-back"], help="the state the database is really in"
    )
    g.add_argument(
        "--adopt",
        action="store_true",
        help="write pgsafe's ledger from the history table of the tool that migrated this "
        "database so far (golang-migrate, dbmate, diesel, Flyway, Prisma, sqitch, Supabase, "
        "node-pg-migrate, Alembic): a row per migration it applied, checksum from the file",
    )
    g.add_argument(
        "--rebaseline",
        action="store_true",
        help="record the file's current checksum for an applied migration",
    )
    p.add_argument("--reason", required=True, help="why (kept in the ledger history)")
    common.add_lock_wait(p, argparse.SUPPRESS)

    p.set_defaults(handler=_repair)


def _repair(args: argparse.Namespace) -> int:
    if args.adopt and args.version is not None:
        # `pgsafe repair --adopt PATH`: the one positional given is the migrations PATH.
        if args.path != "migrations":
            raise ConfigError("repair --adopt takes no VERSION: it adopts every migration it can")
        args.path, args.version = args.version, None
    if not args.adopt and args.version is None:
        raise ConfigError("repair: VERSION is required with --mark or --rebaseline")
    with common.open_runner(args) as runner:
        if args.adopt:
            common.say(runner.adopt(args.reason))
        else:
            common.say(runner.repair(args.version, args.mark, args.rebaseline, args.reason))
    return EXIT_OK
