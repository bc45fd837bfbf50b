"""`pgsafe preflight [PATH] [--db URL] [--env ENV] [--force] [--format text|json]`: the live
checks before a migration, exit 1 when any fails (unless --force, which is recorded)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK, EXIT_UNSAFE
from pgsafe.config import Settings
from pgsafe.events import EventLog
from pgsafe.lifecycle.policy import ENVIRONMENTS, Policy, load_policy
from pgsafe.lifecycle.preflight import PreflightReport, preflight
from pgsafe.sources.layouts import discover


def add_env(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--env",
        choices=ENVIRONMENTS,
        help="environment policy (default: $PGSAFE_ENV, else local)",
    )


def add_backup_dir(p: argparse.ArgumentParser, help: str) -> None:
    """--backup-dir DIR (default backups/migrations), where apply writes its backups and
    preflight and rollback look for them."""
    p.add_argument("--backup-dir", default="backups/migrations", metavar="DIR", help=help)


def run_preflight(
    args: argparse.Namespace,
    dsn: str,
    label: str,
    settings: Settings,
    policy: Policy,
    **more: Any,
) -> PreflightReport:
    """The preflight of PATH on the target as the flags ask (--force, --backup-dir,
    --approvals): `pgsafe preflight` runs it, and `pgsafe apply` without --apply (`more`: the
    other arguments of pgsafe.lifecycle.preflight.preflight)."""
    return preflight(
        dsn,
        args.path,
        policy=policy,
        settings=settings,
        force=args.force,
        backup_dir=args.backup_dir,
        approvals=args.approvals,
        target_label=label,
        **more,
    )


def register(sub: Any) -> None:
    p = sub.add_parser(
        "preflight",
        help="live checks on the target before migrating (read-only)",
        description="Check the target before applying: pending and tampered migrations, the "
        "checksum manifest, schema drift since the last apply, long transactions and blocking "
        "locks, table sizes, backup recency, approvals of destructive changes, timeouts and "
        "server settings, as the environment's policy demands. Writes "
        "LOG_DIR/preflight-report-<UTC timestamp>.json. Exits 1 when a check fails, unless "
        "--force (recorded in the report and the event log).",
    )
    common.add_target(p)
    add_env(p)
    p.add_argument("--force", action="store_true", help="exit 0 despite failures (recorded)")
    common.add_format(p)
    add_backup_dir(p, "where backups are looked for (default: backups/migrations)")
    p.add_argument(
        "--approvals",
        metavar="FILE",
        help="approvals file (default: PATH/approvals.toml)",
    )
    common.add_safety(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)
    policy = load_policy(args.env)
    discover(args.path)
    events = EventLog(f"{args.log_dir}/migrations.jsonl" if args.log_dir else None)
    with common.open_target(args, say=common.note) as (dsn, label):
        report = run_preflight(
            args,
            dsn,
            label,
            settings,
            policy,
            events=events,
            log_dir=args.log_dir or None,
        )
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.to_text(), end="")
        if report.report_path:
            print(f"report: {report.report_path}")
    if not report.ok:
        if report.forced:
            common.note("preflight failed; --force given: continuing is on you (recorded)")
            return EXIT_OK
        print(f"pgsafe: error: {report.failure_line()}", file=sys.stderr)
        return EXIT_UNSAFE
    return EXIT_OK
