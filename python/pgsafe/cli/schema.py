"""`pgsafe schema fingerprint|diff`: the canonical schema description and object-by-object diff."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK, EXIT_UNSAFE
from pgsafe.config import Settings
from pgsafe.errors import ConfigError
from pgsafe.schema import SchemaFingerprint, diff, fingerprint, render_diff


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "schema",
        help="schema fingerprint (SHA-256 of the catalog) and object-by-object diff",
        description="Describe a database's schema canonically (tables, columns, constraints, "
        "indexes, views, functions, triggers, sequences, types, RLS and policies, grants, "
        "comments, extensions), or compare two. Exit codes: 0 equal, 1 different, 5 config.",
    )
    common.add_verbose(p, help=argparse.SUPPRESS)
    schema_sub = p.add_subparsers(
        dest="schema_command", metavar="SUBCOMMAND", parser_class=common.Parser, required=True
    )
    q = schema_sub.add_parser(
        "fingerprint",
        help="print the schema fingerprint of a database",
        description="Print the SHA-256 of the target's canonical schema description and a count "
        "of objects per kind, or with --json the whole description (save it to diff against "
        "later).",
    )
    common.add_target(q, with_path=False)
    common.add_json(q, "the full fingerprint as JSON")
    common.add_exclude(q)
    q = schema_sub.add_parser(
        "diff",
        help="compare two schemas object by object",
        description="Compare the schemas of A and B, each a database URL or key=value DSN, or a "
        "fingerprint saved with `pgsafe schema fingerprint --json` ('-' reads one from stdin). "
        "Exits 0 when equal, 1 when they differ.",
    )
    q.add_argument("a", metavar="A", help="database URL/DSN, or a saved fingerprint JSON file")
    q.add_argument("b", metavar="B", help="database URL/DSN, or a saved fingerprint JSON file")
    common.add_json(q, "the differences as JSON")
    common.add_exclude(q)
    common.add_verbose(q, help=argparse.SUPPRESS)
    p.set_defaults(handler=_schema)


def _excluded(args: argparse.Namespace) -> tuple[str, ...]:
    names = [] if args.include_ledger else [Settings().ledger_schema]
    for item in args.exclude:
        names += [n.strip() for n in item.split(",") if n.strip()]
    return tuple(dict.fromkeys(names))


def _looks_like_dsn(text: str) -> bool:
    return "://" in text or "=" in text


def _load_side(spec: str, exclude: tuple[str, ...]) -> SchemaFingerprint:
    """A fingerprint from a saved file ('-' for stdin) or a live database."""

    if spec == "-":
        try:
            doc = json.loads(sys.stdin.read())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"stdin: not JSON: {exc}") from None
        return SchemaFingerprint.from_json(doc, "stdin")
    if Path(spec).is_file():
        return SchemaFingerprint.load(spec)
    if not _looks_like_dsn(spec):
        raise ConfigError(
            f"{spec}: no such file, and not a database URL (postgresql://...) or key=value DSN"
        )
    return fingerprint(spec, exclude)


def _schema(args: argparse.Namespace) -> int:
    exclude = _excluded(args)
    if args.schema_command == "fingerprint":
        with common.open_target(args, say=common.note) as (dsn, label):
            fp = fingerprint(dsn, exclude)
        fp = dataclasses.replace(fp, source=label)
        print(
            json.dumps(fp.to_json(), indent=2, ensure_ascii=False)
            if args.json
            else fp.render_text()
        )
        return EXIT_OK
    a = _load_side(args.a, exclude)
    b = _load_side(args.b, exclude)
    if a.server_major and b.server_major and a.server_major != b.server_major:
        common.note(
            f"A is PostgreSQL {a.server_major} and B is {b.server_major}: definitions the server "
            "deparses (views, defaults, functions) can read differently between major versions"
        )
    if a.exclude != b.exclude:
        common.note(
            "A and B leave out different schemas: A "
            f"{', '.join(a.exclude) or 'none'}; B {', '.join(b.exclude) or 'none'}"
        )
    differences = diff(a, b)
    if args.json:
        doc = {
            "equal": not differences,
            "a": {"source": a.source, "sha256": a.sha256},
            "b": {"source": b.source, "sha256": b.sha256},
            "differences": [d.to_json() for d in differences],
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    elif differences:
        print(render_diff(differences, f"A {a.source}", f"B {b.source}"))
    else:
        print(f"equal: sha256 {a.sha256} ({len(a.objects)} objects)")
    return EXIT_UNSAFE if differences else EXIT_OK
