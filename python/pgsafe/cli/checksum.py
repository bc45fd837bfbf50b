"""`pgsafe checksum`: write or verify PATH/checksum.txt (the sha256sum -c format)."""

from __future__ import annotations

import argparse
import sys

from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK, EXIT_UNSAFE
from pgsafe.sources.checksums import check_manifest, write_manifest


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "checksum",
        help="write or verify migrations/checksum.txt (sha256sum -c format)",
        description="--write records the SHA-256 of every up and down file in PATH/checksum.txt, "
        "in the format `sha256sum -c` and `shasum -a 256 -c` accept from that directory; "
        "--check verifies it and exits 1 naming each changed, missing or unlisted file.",
    )
    p.add_argument(
        "path", nargs="?", default="migrations", help="migrations directory (default: ./migrations)"
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", action="store_true", help="write PATH/checksum.txt")
    g.add_argument("--check", action="store_true", help="verify PATH/checksum.txt")
    common.add_verbose(p, help=argparse.SUPPRESS)

    p.set_defaults(handler=_checksum)


def _checksum(args: argparse.Namespace) -> int:
    if args.write:
        path = write_manifest(args.path)
        count = sum(1 for line in path.read_text().splitlines() if line)
        common.say(f"wrote {path} ({count} files)")
        return EXIT_OK
    result = check_manifest(args.path)
    for line in result.lines():
        common.say(line)
    if result.ok:
        common.say(f"{result.manifest}: {len(result.verified)} files OK")
        return EXIT_OK
    counts = [
        f"{len(names)} {what}"
        for names, what in [
            (result.changed, "changed"),
            (result.missing, "missing"),
            (result.extra, "not listed"),
        ]
        if names
    ]
    print(f"pgsafe: {result.manifest} does not match: {', '.join(counts)}", file=sys.stderr)
    return EXIT_UNSAFE
