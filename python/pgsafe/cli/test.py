"""``pgsafe test``: the round trip, stairway, data preservation and idempotency checks of a
migrations directory on a throwaway server, for CI (exit 1 when any check fails)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK, EXIT_UNSAFE
from pgsafe.errors import ConfigError
from pgsafe.pgbin import configured_major
from pgsafe.testing.roundtrip import run_tests


def register(sub: Any) -> None:
    p = sub.add_parser(
        "test",
        help="up, down, up on a throwaway database: schema parity, data preservation, idempotency",
        description="On a throwaway PostgreSQL server: apply every migration, roll them all "
        "back, apply them again, comparing schema fingerprints at every step; then for each "
        "migration up, down, up (the stairway) with parity, generated rows in every table and "
        "checks that the next migration keeps them; and report which migrations can be re-run. "
        "Exit codes: 0 every check passed, 1 a check failed, 5 bad input.",
    )
    common.add_verbose(p)
    common.add_path(p)
    p.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    common.add_format(p)
    p.add_argument(
        "--no-stairway",
        action="store_true",
        help="only the whole round trip (data checks then run along its first apply)",
    )
    p.add_argument(
        "--rows",
        type=common.positive_int,
        default=10,
        metavar="N",
        help="generated rows per table after each step (default 10)",
    )
    p.add_argument("--no-data", action="store_true", help="skip the data preservation checks")
    p.add_argument("--no-idempotency", action="store_true", help="skip the re-run report")
    common.add_pg_version(
        p,
        "PostgreSQL major of the throwaway server (default: $PGSAFE_PG_VERSION, else "
        "pg_version in [tool.pgsafe], else the newest installed)",
        parse=str,  # checked by configured_major, as PGSAFE_PG_VERSION is
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    major = configured_major(args.pg_version)  # a bad value fails before anything runs

    junit = Path(args.junit) if args.junit else None
    if junit is not None:
        try:  # fail on an unwritable path before minutes of testing
            junit.parent.mkdir(parents=True, exist_ok=True)
            with junit.open("a"):
                pass
        except OSError as exc:
            raise ConfigError(f"{junit}: cannot write: {exc.strerror or exc}") from None

    def say(message: str) -> None:
        print(f"pgsafe test: {message}", file=sys.stderr, flush=True)

    report = run_tests(
        args.path,
        rows=args.rows,
        stairway=not args.no_stairway,
        data=not args.no_data,
        idempotency=not args.no_idempotency,
        progress=say,
        pg_version=major,
    )
    if junit is not None:
        junit.write_text(report.to_junit(), encoding="utf-8")
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(report.to_text())
    return EXIT_UNSAFE if report.failed else EXIT_OK
