"""`pgsafe dry-run`: the seed-000 report, traced on a throwaway server."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Sequence
from pathlib import Path

from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK, EXIT_UNSAFE
from pgsafe.config import Settings, resolve_target
from pgsafe.db import connect
from pgsafe.errors import ConfigError, Error, mask_password
from pgsafe.lifecycle.dryrun import DryRunReport, attach_trace, dry_run
from pgsafe.lifecycle.runner import Runner
from pgsafe.lifecycle.trace import NotCheckable, trace
from pgsafe.pgbin import MissingBinaries, configured_major
from pgsafe.server import ServerError
from pgsafe.sources.checksums import write_manifest
from pgsafe.sources.files import Migration
from pgsafe.sources.layouts import discover


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "dry-run",
        help="the dry-run report: operations, locks, findings, risk, rollback, checksums",
        description="Analyse the migrations and print the report (seed 000) as Markdown or "
        "JSON. Each statement is also run on a throwaway database to observe its locks and "
        "rewrites: with --db (or DATABASE_URL/PG*) on a schema-only copy of that database, "
        "covering only the migrations pending there, with runtime and risk estimated at its "
        "table sizes; without, from scratch. The target itself is only read. Exits 1 when any "
        "lint finding is an error.",
    )
    p.add_argument(
        "path", nargs="?", default="migrations", help="migrations directory (default: ./migrations)"
    )
    p.add_argument("--db", metavar="URL", help="report only what is pending on this database")
    p.add_argument("--format", choices=["markdown", "json"], default="markdown")
    p.add_argument("--out", metavar="FILE", help="write the report here instead of stdout")
    p.add_argument(
        "--write-checksums",
        action="store_true",
        help="also write PATH/checksum.txt (sha256sum -c format)",
    )
    common.add_pg_version(p, "target PostgreSQL major")
    p.add_argument(
        "--no-trace",
        action="store_true",
        help="static analysis only: do not run the statements on a throwaway database",
    )
    common.add_verbose(p, help=argparse.SUPPRESS)

    p.set_defaults(handler=_dry_run)


def _dry_run(args: argparse.Namespace) -> int:
    config = common.lint_config(args)
    migs = discover(args.path)
    environment = None
    target = resolve_target(args.db)
    if not target.embedded:
        runner = Runner(args.path, target.dsn, target_label=target.masked)
        pending = {s.version for s in runner.status().migrations if s.state == "pending"}
        migs = [m for m in migs if m.version in pending]
        environment = f"Static analysis of the migrations pending on {target.masked}"
        # The target's major is the server's own (server_version_num), whatever the config says.
        with contextlib.closing(connect(target.dsn, Settings(), "dry-run")) as conn:
            config.pg_version = conn.server_version // 10000
        config.pg_version_source = f"the server ({target.masked})"
    report = dry_run(migs, config, environment)
    missing: Error | None = None
    if args.no_trace:
        report.trace_note = "--no-trace"
    elif not migs:
        report.trace_note = "no pending migrations"
    else:
        # From scratch, the throwaway server is of --pg-version (else PGSAFE_PG_VERSION, else
        # pg_version in [tool.pgsafe], else the newest found); on a target, of its major.
        major = configured_major(args.pg_version) if target.embedded else None
        missing = _trace_dry_run(report, migs, None if target.embedded else target.dsn, major)
    text = (
        json.dumps(report.to_json(), indent=2) if args.format == "json" else (report.to_markdown())
    )
    if args.out:
        try:
            Path(args.out).write_text(text + "\n")
        except OSError as exc:
            raise ConfigError(f"{args.out}: cannot write: {exc.strerror or exc}") from None
    else:
        print(text)
    if args.write_checksums:
        # Every file, not only the pending ones the report covers: `pgsafe checksum --check`
        # and `sha256sum -c` verify the whole directory.
        write_manifest(args.path)
    if missing is not None:
        raise missing  # after the report, which says why it was not traced: exit 5
    return EXIT_UNSAFE if report.failed else EXIT_OK


def _trace_dry_run(
    report: DryRunReport, migs: Sequence[Migration], target_dsn: str | None, pg_version: int | None
) -> Error | None:
    """Observed locks, rewrites and estimates for the dry-run, from a throwaway server. When it
    cannot trace, the report says why (``traced: false``, ``reason``); the error is returned
    when no server of the major needed is installed, so the command ends with exit 5."""
    where = "a schema-only copy of the target" if target_dsn is not None else "empty schema"
    common.note(f"tracing {len(migs)} migration(s) on a throwaway PostgreSQL ({where})")
    try:
        traced = trace(migs, target_dsn=target_dsn, pg_version=pg_version)
    except ConfigError as exc:
        # MissingBinaries, NotCheckable and ServerError are ConfigErrors too. The report and
        # the note carry the error's first line, password masked.
        line = next(iter(mask_password(str(exc)).splitlines()), "")
        if isinstance(exc, MissingBinaries):  # exit 5, after the report says why
            report.trace_note = line
            return exc
        if isinstance(exc, NotCheckable):  # an extension the server lacks: not checked, not failed
            common.note(f"not checked: {line}")
            report.trace_note = f"not checked: {line}"
            return None
        # The server did not start, or e.g. the schema copy failed: the static report stands.
        common.note(f"not traced: {line}")
        if isinstance(exc, ServerError):
            line = f"no throwaway PostgreSQL server could be started: {line}"
        report.trace_note = line
        return None
    attach_trace(report, traced)
    if traced.not_checked:
        first, why = next(iter(traced.not_checked.items()))
        more = len(traced.not_checked) - 1
        common.note(f"{first}{f' and {more} after it' if more else ''} not checked: {why}")
    if traced.error:
        common.note(f"tracing stopped: {traced.error}")
    return None
