"""`pgsafe fingerprint`: each table's row count and data digest from one snapshot."""

from __future__ import annotations

import argparse
import json
import sys
import time

from pgsafe import _core
from pgsafe.backup.datafp import fingerprint
from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "fingerprint",
        help="row counts and order-independent digests of table data, from one snapshot",
        description="Fingerprint each table's data: its row count and a digest of its rows "
        "that no rewrite (VACUUM FULL, CLUSTER, dump and restore) changes but any lost, added "
        "or altered row does. Large tables are scanned in ctid ranges on several connections "
        "sharing one snapshot. Read-only.",
    )
    common.add_target(p, with_path=False, with_log_dir=False)
    common.add_tables(
        p, "tables to fingerprint (default: every table outside the pgsafe and system schemas)"
    )
    common.add_workers(p)
    p.add_argument("--chunk-pages", type=common.positive_int, metavar="N", help=argparse.SUPPRESS)
    common.add_json(p)

    p.set_defaults(handler=_fingerprint)


def _fingerprint(args: argparse.Namespace) -> int:
    show_progress = not args.json and sys.stderr.isatty()

    def progress(p: _core.FingerprintProgress) -> None:
        print(
            f"\rfingerprint: {p.chunks_done}/{p.chunks_total} chunks, {p.rows:,} rows, "
            f"{p.bytes / (1 << 20):,.0f} MiB",
            end="",
            file=sys.stderr,
            flush=True,
        )

    with common.open_target(args) as (dsn, label):
        started = time.monotonic()
        try:
            found = fingerprint(
                dsn,
                args.tables,
                args.workers,
                chunk_pages=args.chunk_pages,
                progress=progress if show_progress else None,
            )
        finally:
            if show_progress:
                print(file=sys.stderr)
        seconds = time.monotonic() - started
    if args.json:
        doc = {
            "tables": [f.to_json() for f in found],
            "workers": args.workers,
            "seconds": round(seconds, 6),
        }
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    if not found:
        common.say(f"no tables to fingerprint on {label}")
        return EXIT_OK
    width = max(len("table"), *(len(f.table) for f in found))
    common.say(f"{'table':<{width}}  {'rows':>12}  {'MiB':>9}  {'seconds':>8}  digest")
    for f in found:
        common.say(
            f"{f.table:<{width}}  {f.rows:>12,}  {f.bytes / (1 << 20):>9.1f}  "
            f"{f.seconds:>8.3f}  {f.digest}"
        )
    total_rows = sum(f.rows for f in found)
    total_mib = sum(f.bytes for f in found) / (1 << 20)
    common.say(
        f"{len(found)} tables, {total_rows:,} rows, {total_mib:,.1f} MiB in {seconds:.2f}s "
        f"({args.workers} workers) on {label}"
    )
    return EXIT_OK
