"""``pgsafe postflight``: verify the target after migrations ran (exit 3 on any failed check)
and write logs/postflight-report-<UTC timestamp>.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK, EXIT_POSTFLIGHT
from pgsafe.errors import ConfigError
from pgsafe.events import private_dir
from pgsafe.lifecycle.postflight import Expectations, load_expectations, postflight, write_report
from pgsafe.sources.layouts import discover


def register(sub: Any) -> None:
    p = sub.add_parser(
        "postflight",
        help="verify the result: NOT VALID constraints, orphans, invalid indexes, RLS, "
        "expected objects, fingerprint, dirty migrations",
        description="Check the target after migrations ran: constraints left NOT VALID (and "
        "for how long), orphaned rows of NOT VALID or new foreign keys, invalid indexes, row "
        "level security without policies (or policies without RLS), expected tables and views, "
        "index usage of configured queries, a tenant isolation probe, dirty migrations; record "
        "the schema fingerprint in the ledger. Writes LOG_DIR/postflight-report-<UTC "
        "timestamp>.json. Exits 3 when any check fails.",
    )
    common.add_target(p)
    p.add_argument(
        "--expect",
        metavar="FILE",
        help="expectations file (TOML; default PATH/expectations.toml when it exists)",
    )
    common.add_format(p)
    p.add_argument(
        "--no-record",
        action="store_true",
        help="do not record the schema fingerprint in the ledger (read-only)",
    )
    p.add_argument(
        "--accept-drift",
        action="store_true",
        help="record the fingerprint even when the schema changed with no migration applied",
    )
    p.add_argument(
        "--timeout",
        type=common.timeout_ms,
        metavar="DUR",
        help="statement_timeout of each check query, e.g. an orphan count (default 30s)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path: Path | None = Path(args.path)
    assert path is not None
    if not path.exists():
        if args.path != "migrations":
            raise ConfigError(f"{path}: migrations directory not found")
        path = None  # the default ./migrations is optional for postflight
    else:
        discover(path)  # a bad PATH fails before anything else
    expect_file = args.expect
    if expect_file is None and path is not None and (path / "expectations.toml").is_file():
        expect_file = path / "expectations.toml"
    expectations = load_expectations(expect_file) if expect_file else None
    if expectations is not None and args.timeout is not None:
        expectations.statement_timeout_s = args.timeout / 1000
    if args.log_dir:
        log_dir = Path(args.log_dir)
        try:
            private_dir(log_dir)
        except OSError as exc:
            raise ConfigError(f"{log_dir}: cannot write reports: {exc.strerror or exc}") from None
    if expectations is None and args.timeout is not None:
        expectations = Expectations(statement_timeout_s=args.timeout / 1000)
    with common.open_target(args, say=common.note) as (dsn, label):
        report = postflight(
            dsn,
            migrations_path=path,
            expectations=expectations,
            record=not args.no_record,
            accept_drift=args.accept_drift,
            target_label=label,
        )
    if args.log_dir:
        written = write_report(report, args.log_dir)
        common.note(f"report written to {written}")
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(report.to_text())
    return EXIT_POSTFLIGHT if report.failed else EXIT_OK
