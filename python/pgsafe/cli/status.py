"""`pgsafe status`: applied, pending, dirty and changed migrations on the target."""

from __future__ import annotations

import argparse
import json

from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK
from pgsafe.lifecycle.runner import Runner
from pgsafe.sources.layouts import discover


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="applied, pending, dirty and changed migrations",
        description="Show each migration's state in the target's ledger.",
    )
    common.add_target(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    settings = common.settings_from(args)
    discover(args.path)  # a bad PATH fails before a throwaway server starts
    with common.open_target(args) as (dsn, label):
        runner = Runner(args.path, dsn, settings=settings, progress=common.say, target_label=label)
        report = runner.status()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        common.say(report.render_text())
    return EXIT_OK
