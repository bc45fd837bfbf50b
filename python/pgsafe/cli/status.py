"""`pgsafe status`: applied, pending, dirty and changed migrations on the target.

Exit codes: 0 nothing needs attention (pending migrations are fine); 1 a migration is dirty,
changed after it was applied, or applied with its file missing (apply refuses to go on until
someone acts), or the target holds a partial restore (a `pgsafe restore` killed before it could
finish or undo itself); 5 bad PATH, DSN or option."""

from __future__ import annotations

import argparse
import json
import sys

from pgsafe.backup.core import partial_restore
from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK, EXIT_UNSAFE


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="applied, pending, dirty and changed migrations",
        description="Show each migration's state in the target's ledger. Exit codes: 0 "
        "nothing needs attention (pending ones included); 1 a migration is dirty, changed "
        "after it was applied, or applied with its file missing (apply refuses to run until "
        "it is fixed: `pgsafe repair`), or the target holds a partial restore (a killed "
        "`pgsafe restore`); 5 bad PATH, DSN or option.",
    )
    common.add_target(p)
    common.add_json(p)

    p.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    with common.open_runner(args) as runner:
        report = runner.status()
        partial = partial_restore(runner.dsn)
    if args.json:
        doc = report.to_json()
        doc["partial_restore"] = partial.to_dict() if partial is not None else None
        print(json.dumps(doc, indent=2))
    else:
        common.say(report.render_text())
    if partial is not None:
        print(
            f"pgsafe: error: {partial.describe()}: `pgsafe restore {partial.file} --force` "
            "clears it and restores again",
            file=sys.stderr,
        )
    attention = report.attention
    if attention:
        what = ", ".join(f"{m.version}_{m.name} {m.state}" for m in attention)
        print(
            f"pgsafe: error: {len(attention)} migration(s) need attention before the next "
            f"apply: {what} (see `pgsafe repair --help`)",
            file=sys.stderr,
        )
        return EXIT_UNSAFE
    return EXIT_UNSAFE if partial is not None else EXIT_OK
