"""`pgsafe apply` (plan, or with --apply: preflight -> backup -> apply -> postflight) and
`pgsafe rollback` (plan with data-loss warnings, or with --apply: confirmed down migrations, or
--from-backup)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK, EXIT_UNSAFE
from pgsafe.cli.preflight import add_backup_dir, add_env, run_preflight
from pgsafe.config import Settings
from pgsafe.errors import ConfigError, Error, RollbackError
from pgsafe.lifecycle.pipeline import (
    ApplyReport,
    Step,
    apply_pipeline,
    drop_created_tables,
    plan_restore_rollback,
    rollback_data_loss,
)
from pgsafe.lifecycle.policy import Policy, load_policy
from pgsafe.lifecycle.runner import Runner
from pgsafe.sources.layouts import discover

# A rollback outside local/ci needs --yes (or "yes" typed at a terminal); without either the
# command refuses with the usage exit code 5: nothing was touched, the invocation was incomplete.
_CONFIRM = "yes"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "apply",
        help="apply pending migrations (a read-only plan and preflight without --apply)",
        description="Without --apply: the plan and the preflight result, nothing written. With "
        "--apply: preflight -> backup (as the environment's policy asks) -> every pending "
        "migration in its own transaction under the migration lock -> postflight, stopping at the "
        "first failure (exit 1 preflight, 2 backup or migration, 3 postflight). --format json "
        "prints the run (steps, outcomes, exit code, timings, migrations) as one JSON document "
        "on stdout, progress and logs on stderr.",
    )
    common.add_target(p)
    common.add_apply(p)
    p.add_argument("--to", type=common.version, metavar="VERSION", help="stop after this version")
    add_env(p)
    p.add_argument(
        "--force", action="store_true", help="go on despite a failed preflight (recorded)"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--backup",
        action="store_true",
        default=None,
        help="take a backup even where the policy does not ask for one",
    )
    g.add_argument(
        "--no-backup",
        action="store_false",
        dest="backup",
        help="skip the backup (recorded; refused by the production policy)",
    )
    p.add_argument(
        "--no-postflight", action="store_true", help="skip the postflight checks (recorded)"
    )
    add_backup_dir(p, "where backups go (default: backups/migrations)")
    p.add_argument("--approvals", metavar="FILE", help="default: PATH/approvals.toml")
    p.add_argument(
        "--slow-warning",
        type=common.threshold_ms,
        metavar="DUR",
        help="warn about a migration running longer than this (default 5min, seed 002)",
    )
    common.add_format(p)
    common.add_safety(p)
    p.set_defaults(handler=run_apply)

    p = sub.add_parser(
        "rollback",
        help="run down migrations in reverse order",
        description="Roll back the newest applied migration (or --steps N, or everything after "
        "--to VERSION) with its down file, under the same safety as apply. The data each down "
        "file destroys is listed first, with the target's row counts; outside local/ci the "
        "rollback needs --yes (or typing 'yes' at a terminal; exit 5 without it). "
        "--from-backup restores the affected tables from the last verified backup instead, "
        "and drops the tables the migrations created (listed first; not in the backup).",
    )
    common.add_target(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--steps", type=common.positive_int, metavar="N", help="how many migrations (default 1)"
    )
    g.add_argument(
        "--to", type=common.version, metavar="VERSION", help="roll back everything after VERSION"
    )
    common.add_apply(p)
    add_env(p)
    p.add_argument("--yes", action="store_true", help="confirm the rollback (and its data loss)")
    p.add_argument(
        "--from-backup",
        action="store_true",
        help="restore the affected tables from the last verified backup instead of down files "
        "(and drop the tables the migrations created)",
    )
    add_backup_dir(p, "where backups are (default: backups/migrations)")
    common.add_safety(p)
    p.set_defaults(handler=run_rollback)


@dataclass(frozen=True)
class _Run:
    """One `pgsafe apply`: the target, its settings and policy, the report it fills and where
    its progress goes (stderr under --format json)."""

    dsn: str
    label: str
    settings: Settings
    policy: Policy
    report: ApplyReport
    say: Callable[[str], None]


def _plan_lines(title: str, plan: Any) -> None:
    common.print_plan(title, plan)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_apply(args: argparse.Namespace) -> int:
    """Text (default): progress, the reports and the summary on stdout. --format json: one JSON
    document of the run (ApplyReport.to_dict) on stdout and everything else on stderr, also
    when a step fails (the document then carries the error and the exit code)."""

    as_json = args.format == "json"
    say = _stderr if as_json else common.say
    settings = common.settings_from(args)
    policy = load_policy(args.env)
    discover(args.path)  # a bad PATH fails before a throwaway server starts
    with common.open_target(args, say=say) as (dsn, label):
        report = ApplyReport(label, policy.name, dry_run=not args.execute)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        report.started_at = now.replace("+00:00", "Z")
        started = time.monotonic()
        try:
            run = _Run(dsn, label, settings, policy, report, say)
            return _apply(args, run) if args.execute else _plan_apply(args, run)
        except (Error, KeyboardInterrupt) as exc:
            # cli.main exits with the same pgsafe.errors.exit_code: report and process agree.
            if report.error is None:
                report.error = str(exc) or "interrupted"
                report.exit_code = common.exit_code("apply", exc)
            raise
        finally:
            report.seconds = time.monotonic() - started
            if as_json and report.steps:
                print(json.dumps(report.to_dict(), indent=2, default=str), flush=True)


def _plan_apply(args: argparse.Namespace, run: _Run) -> int:
    """Without --apply: the preflight result and the plan, nothing written (no report file, no
    event log, nothing in the database)."""

    as_json = args.format == "json"
    runner = Runner(args.path, run.dsn, settings=run.settings, target_label=run.label)
    migs = runner.migrations()
    runner._check_to(migs, args.to)
    for m in migs:
        m.up_statements()
    started = time.monotonic()
    planned = args.backup is not False and run.policy.backup != "off"
    pre = run_preflight(
        args, run.dsn, run.label, run.settings, run.policy, backup_planned=planned, to=args.to
    )
    run.report.preflight = pre
    status = "ok" if pre.passed and not pre.warnings else "warn" if pre.passed else "failed"
    run.report.steps.append(Step("preflight", status, pre.summary(), time.monotonic() - started))
    for name in ("backup", "apply", "postflight"):
        run.report.steps.append(Step(name, "not-run", "read-only: pass --apply to run it"))
    if not as_json:
        run.say(pre.to_text().rstrip())
    ledger = pre.check("ledger")
    if ledger is not None and ledger.status == "fail":
        # Dirty (exit 2) or tampered (1): there is no plan; the runner says why.
        runner.plan_apply(args.to)
    plan = runner.plan_apply(args.to)
    run.report.plan = [
        {
            "version": m.version,
            "name": m.name,
            "statements": len(statements),
            "autocommit": sum(1 for s in statements if s.non_transactional),
        }
        for m, statements in plan
    ]
    if not as_json:
        run.say("")
        _plan_lines(f"pending migrations on {run.label}", plan)
    if not pre.passed:
        run.report.error, run.report.exit_code = pre.failure_line(), EXIT_UNSAFE
        print(
            f"pgsafe: error: {pre.failure_line()} (apply --apply would stop here)",
            file=sys.stderr,
        )
        return EXIT_UNSAFE
    return EXIT_OK


def _apply(args: argparse.Namespace, run: _Run) -> int:
    """--apply: preflight -> backup -> apply -> postflight
    (pgsafe.lifecycle.pipeline.apply_pipeline);
    in text mode the failing step's report and the summary are printed whatever happened."""

    events = common.event_log(args)
    slow = args.slow_warning / 1000 if args.slow_warning is not None else None
    try:
        apply_pipeline(
            run.dsn,
            args.path,
            policy=run.policy,
            settings=run.settings,
            events=events,
            progress=run.say,
            to=args.to,
            backup=args.backup,
            postflight=not args.no_postflight,
            force=args.force,
            backup_dir=args.backup_dir,
            approvals=args.approvals,
            log_dir=args.log_dir or None,
            target_label=run.label,
            slow_migration_s=slow,
            report=run.report,
        )
    finally:
        if run.report.steps and args.format != "json":
            if run.report.preflight is not None and not run.report.preflight.passed:
                run.say(run.report.preflight.to_text().rstrip())
            if run.report.postflight is not None:
                run.say(run.report.postflight.to_text().rstrip())
            run.say(run.report.to_text().rstrip())
            if run.report.preflight is not None and run.report.preflight.report_path:
                run.say(f"preflight report: {run.report.preflight.report_path}")
            if run.report.postflight_report:
                run.say(f"postflight report: {run.report.postflight_report}")
    runner = Runner(args.path, run.dsn, settings=run.settings, target_label=run.label)
    run.say(runner.status().render_text())
    return EXIT_OK


def _confirm(args: argparse.Namespace, what: str) -> None:
    if args.yes:
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise ConfigError(
            f"the {args._policy.name} policy needs confirmation to {what}: pass --yes "
            "(no terminal to ask on); nothing was touched"
        )
    try:
        answer = input(f"Type '{_CONFIRM}' to {what}: ")
    except EOFError:
        answer = ""
    if answer.strip().lower() != _CONFIRM:
        raise ConfigError("not confirmed; nothing was touched")


def run_rollback(args: argparse.Namespace) -> int:
    policy = load_policy(args.env)
    args._policy = policy
    with common.open_runner(args) as runner:
        dsn, label = runner.dsn, runner.target_label
        settings, events = runner.settings, runner.events
        # Irreversible ones (no down file) are refused here (4), unless restored from a backup.
        plan = runner.plan_rollback(args.steps, args.to, require_down=not args.from_backup)
        rplan = None
        if args.from_backup and plan:
            # The down files do not run: what is lost is what the restore replaces and the
            # tables the migrations created, which are dropped (the backup does not hold them).
            applied_at = {s.version: s.applied_at for s in runner.status().migrations}
            rplan = plan_restore_rollback(dsn, plan, args.backup_dir, applied_at, settings)
            losses = rplan.losses()
        else:
            losses = rollback_data_loss(dsn, plan, settings) if plan else []
        for loss in losses:
            common.say(f"warning: data loss: {loss.describe()}")
        if rplan is not None:
            for line in rplan.describe():
                common.say(line)
        if not args.execute:
            common.print_plan(f"rollback on {label}", plan)
            return EXIT_OK
        if not plan:
            common.say("nothing to roll back")
            return EXIT_OK
        names = ", ".join(m.label for m, _ in plan)
        lost = sum(x.rows or 0 for x in losses)
        if policy.confirm_rollback:
            what = f"roll back {names} on {label}"
            if rplan is not None:
                what += f" by restoring {rplan.backup.path.name}"
                if rplan.drop:
                    what += " and dropping " + ", ".join(t.name for t in rplan.drop)
            if lost:
                what += f" ({lost:,} rows/values destroyed)"
            _confirm(args, what)
        events.write(
            "rollback_confirmed",
            environment=policy.name,
            confirmed_by="--yes" if args.yes else ("prompt" if policy.confirm_rollback else None),
            data_loss=[x.to_dict() for x in losses],
            drop_tables=[t.name for t in rplan.drop] if rplan is not None else [],
        )
        if rplan is not None:
            return _from_backup(runner, plan, rplan, dsn, settings, events)
        results = runner.rollback(args.steps, args.to)
        common.say(f"rolled back {len(results)} migration(s)")
        common.say(runner.status().render_text())
        return EXIT_OK
    raise RollbackError(
        "the target went away"
    )  # common.open_target never swallows; for the type checker


def _from_backup(runner: Any, plan: Any, rplan: Any, dsn: str, settings: Any, events: Any) -> int:
    """Drops the tables the rolled-back migrations created that the backup does not hold (one
    transaction, pgsafe.lifecycle.pipeline.drop_created_tables), restores the tables they
    touched from
    the newest verified backup (pgsafe.backup.core.restore: taken by apply --apply before those
    migrations ran), then records the migrations as rolled back. The drop comes first: a new
    table's foreign key to a restored one would make the restore's DROP TABLE fail."""

    backup = importlib.import_module("pgsafe.backup.core")
    info = rplan.backup
    dropped = drop_created_tables(dsn, rplan, settings, events)
    if dropped:
        common.say(f"dropped {', '.join(dropped)} (created by the rolled-back migrations)")
    common.say(f"restoring {', '.join(info.tables) or 'the whole database'} from {info.path}")
    events.write("restore_start", path=str(info.path), tables=list(info.tables))
    try:
        backup.restore(str(info.path), dsn, force=True)
    except ConfigError:
        raise
    except Error as exc:
        raise RollbackError(f"--from-backup: restore of {info.path} failed: {exc}") from exc
    versions = [m.version for m, _ in plan]
    runner.mark_rolled_back(versions, f"restored from backup {info.path}")
    common.say(f"rolled back {len(versions)} migration(s) by restoring {info.path}")
    common.say(runner.status().render_text())
    return EXIT_OK
