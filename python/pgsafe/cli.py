"""The ``pgsafe`` command line. Command names, flags, JSON fields and exit codes follow
DESIGN.md's Contracts: 0 ok, 1 unsafe, 2 migration failed, 3 postflight failed, 4 rollback
failed, 5 config or usage error."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pgsafe import _core
from pgsafe.config import Settings, resolve_target
from pgsafe.errors import ConfigError, DatabaseError, Error, mask_password
from pgsafe.events import EventLog
from pgsafe.migrations import discover
from pgsafe.runner import Runner

if TYPE_CHECKING:
    from pgsafe.dryrun import DryRunReport
    from pgsafe.migrations import Migration
    from pgsafe.schema import SchemaFingerprint

EXIT_OK, EXIT_UNSAFE, EXIT_MIGRATION, EXIT_POSTFLIGHT, EXIT_ROLLBACK, EXIT_CONFIG = range(6)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "sec": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}


_MAX_MS = 2_147_483_647  # PostgreSQL's timeouts are int milliseconds


def duration_ms(text: str) -> int:
    """'200ms', '5s', '15min', '1h' or a plain number of milliseconds."""
    m = _DURATION.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 200ms, 5s, 15min)")
    value = int(float(m[1]) * _UNIT_MS[m[2] or "ms"])
    if value > _MAX_MS:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than PostgreSQL allows (~24 days)")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def table_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"empty table name in {text!r}")
    return names


def version(text: str) -> str:
    """A migration's version as its layout names it: 002, 20240131120000, Flyway's 1.2.3, a
    sqitch change name, an Alembic revision id."""
    if not text.strip() or any(ch.isspace() for ch in text):
        raise argparse.ArgumentTypeError(
            f"not a version: {text!r} (the migration's version, e.g. 002 or 20240131120000)"
        )
    return text


_VERBOSE_HELP = "more log output (-vv for the core's debug lines)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors are config errors: exit 5
        self.print_usage(sys.stderr)
        self.exit(EXIT_CONFIG, f"pgsafe: error: {message}\n")


def _add_verbose(p: argparse.ArgumentParser, help: str = _VERBOSE_HELP) -> None:
    """-v also after the command; SUPPRESS keeps the top-level count when it is not repeated."""
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=help)


def _add_path(p: argparse.ArgumentParser) -> None:
    """The optional PATH positional: the migrations directory."""
    p.add_argument(
        "path",
        nargs="?",
        default="migrations",
        help="migrations directory (default: ./migrations)",
    )


def _add_format(p: argparse.ArgumentParser) -> None:
    """--format text|json (default text)."""
    p.add_argument("--format", choices=["text", "json"], default="text")


def _add_target(
    p: argparse.ArgumentParser, with_path: bool = True, with_log_dir: bool = True
) -> None:
    _add_verbose(p)
    if with_path:
        _add_path(p)
    p.add_argument(
        "--db",
        metavar="URL",
        help="target database; default DATABASE_URL, then libpq's PG* variables and "
        "service files, then an embedded throwaway server",
    )
    if not with_log_dir:
        return
    p.add_argument(
        "--log-dir",
        default="logs",
        help="where the JSON-lines event log goes (default: logs; '' disables it)",
    )


def _add_safety(p: argparse.ArgumentParser) -> None:
    d = Settings()
    g = p.add_argument_group("safety limits")
    g.add_argument(
        "--lock-timeout",
        type=duration_ms,
        default=d.lock_timeout_ms,
        metavar="DUR",
        help="lock_timeout for every statement (default 5s)",
    )
    g.add_argument(
        "--statement-timeout",
        type=duration_ms,
        default=d.statement_timeout_ms,
        metavar="DUR",
        help="statement_timeout for ordinary statements (default 5min)",
    )
    g.add_argument(
        "--long-statement-timeout",
        type=duration_ms,
        default=d.long_statement_timeout_ms,
        metavar="DUR",
        help="statement_timeout for index builds, validations, VACUUM (default 15min)",
    )
    g.add_argument(
        "--idle-timeout",
        type=duration_ms,
        default=d.idle_in_transaction_timeout_ms,
        metavar="DUR",
        help="idle_in_transaction_session_timeout (default 60s)",
    )
    g.add_argument(
        "--retries",
        type=int,
        default=d.max_attempts,
        metavar="N",
        help="attempts on lock timeout or deadlock, first included (default 5)",
    )
    g.add_argument(
        "--retry-base",
        type=duration_ms,
        default=d.retry_base_ms,
        metavar="DUR",
        help="first backoff delay, doubled per attempt with jitter (default 500ms)",
    )
    g.add_argument(
        "--retry-max",
        type=duration_ms,
        default=d.retry_max_ms,
        metavar="DUR",
        help="backoff cap (default 30s)",
    )
    g.add_argument(
        "--lock-wait",
        type=duration_ms,
        default=int(d.lock_wait_s * 1000),
        metavar="DUR",
        help="how long to wait for another run's migration lock (default 5min)",
    )


def _add_exclude(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="SCHEMA",
        help="leave this schema out (repeatable, or comma-separated); the ledger schema "
        f"{Settings().ledger_schema!r} is always left out unless --include-ledger",
    )
    p.add_argument(
        "--include-ledger",
        action="store_true",
        help="fingerprint the ledger schema too",
    )


# Commands that live in their own module under pgsafe.commands: each has
# ``register(sub)``, which adds its subparser and sets ``handler`` (args -> exit code).
# Imported lazily, so those modules can use this module's helpers (_add_target, _target, ...).
COMMAND_MODULES: tuple[str, ...] = (
    "pgsafe.commands.locks",
    "pgsafe.commands.postflight",
    "pgsafe.commands.test",
    "pgsafe.commands.backup",
    "pgsafe.commands.apply",
    "pgsafe.commands.preflight",
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pgsafe",
        description="PostgreSQL migration safety harness: analyse, protect, verify and undo "
        "schema migrations.",
        epilog="exit codes: 0 ok, 1 unsafe, 2 migration failed, 3 postflight failed, "
        "4 rollback failed, 5 config or usage error",
    )
    parser.add_argument("--version", action="version", version=f"pgsafe {_core.__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help=_VERBOSE_HELP,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "lint",
        help="static analysis: rule findings with hazards and lock levels",
        description="Parse every statement with the PostgreSQL parser and report what is "
        "unsafe, with the lock it takes, the hazards, and the safer recipe. Directories are "
        "searched for *.sql (down files only when named explicitly); '-' reads stdin. Exits 1 "
        "when any finding is an error.",
    )
    p.add_argument(
        "paths",
        nargs="*",
        default=["migrations"],
        metavar="PATH",
        help="files, directories or '-' (default: ./migrations)",
    )
    p.add_argument("--format", choices=["text", "json", "sarif", "github"], default="text")
    p.add_argument(
        "--pg-version",
        type=int,
        metavar="N",
        help="PostgreSQL major version of the target (default 15, or pg_version in the config)",
    )
    _add_verbose(p, help=argparse.SUPPRESS)

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
    p.add_argument("--pg-version", type=int, metavar="N", help="target PostgreSQL major")
    p.add_argument(
        "--no-trace",
        action="store_true",
        help="static analysis only: do not run the statements on a throwaway database",
    )
    _add_verbose(p, help=argparse.SUPPRESS)

    p = sub.add_parser(
        "rules",
        help="list the lint rules, or explain one",
        description="Without an argument, list every rule; with one, print its page.",
    )
    p.add_argument("rule", nargs="?", help="a rule id, e.g. ban-drop-column")
    _add_verbose(p, help=argparse.SUPPRESS)

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
    _add_verbose(p, help=argparse.SUPPRESS)

    p = sub.add_parser(
        "fingerprint",
        help="row counts and order-independent digests of table data, from one snapshot",
        description="Fingerprint each table's data: its row count and a digest of its rows "
        "that no rewrite (VACUUM FULL, CLUSTER, dump and restore) changes but any lost, added "
        "or altered row does. Large tables are scanned in ctid ranges on several connections "
        "sharing one snapshot. Read-only.",
    )
    _add_target(p, with_path=False, with_log_dir=False)
    p.add_argument(
        "--tables",
        type=table_list,
        metavar="T,...",
        help="tables to fingerprint (default: every table outside the pgsafe and system schemas)",
    )
    p.add_argument(
        "--workers", type=positive_int, default=2, metavar="N", help="connections (default 2)"
    )
    p.add_argument("--chunk-pages", type=positive_int, metavar="N", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser(
        "status",
        help="applied, pending, dirty and changed migrations",
        description="Show each migration's state in the target's ledger.",
    )
    _add_target(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser(
        "repair",
        help="resolve a dirty migration or re-baseline a changed file",
        description="After fixing the database by hand, record what state a dirty migration is "
        "really in (--mark), or accept an applied file's new contents (--rebaseline). "
        "Both are written to the ledger's history with --reason.",
    )
    p.add_argument(
        "version",
        nargs="?",
        help="the migration's version (numeric prefix); not with --adopt",
    )
    _add_target(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--mark", choices=["applied", "rolled-back"], help="the state the database is really in"
    )
    g.add_argument(
        "--adopt",
        action="store_true",
        help="write pgsafe's ledger from the history table of the tool that migrated this "
        "database so far (golang-migrate, dbmate, diesel, Flyway, Prisma, sqitch, Supabase, "
        "node-pg-migrate, Alembic): a row per migration it applied, checksum from the file",
    )
    g.add_argument(
        "--rebaseline",
        action="store_true",
        help="record the file's current checksum for an applied migration",
    )
    p.add_argument("--reason", required=True, help="why (kept in the ledger history)")
    p.add_argument(
        "--lock-wait",
        type=duration_ms,
        default=int(Settings().lock_wait_s * 1000),
        metavar="DUR",
        help=argparse.SUPPRESS,
    )

    p = sub.add_parser(
        "schema",
        help="schema fingerprint (SHA-256 of the catalog) and object-by-object diff",
        description="Describe a database's schema canonically (tables, columns, constraints, "
        "indexes, views, functions, triggers, sequences, types, RLS and policies, grants, "
        "comments, extensions), or compare two. Exit codes: 0 equal, 1 different, 5 config.",
    )
    _add_verbose(p, help=argparse.SUPPRESS)
    schema_sub = p.add_subparsers(
        dest="schema_command", metavar="SUBCOMMAND", parser_class=_Parser, required=True
    )
    q = schema_sub.add_parser(
        "fingerprint",
        help="print the schema fingerprint of a database",
        description="Print the SHA-256 of the target's canonical schema description and a count "
        "of objects per kind, or with --json the whole description (save it to diff against "
        "later).",
    )
    _add_target(q, with_path=False)
    q.add_argument("--json", action="store_true", help="the full fingerprint as JSON")
    _add_exclude(q)
    q = schema_sub.add_parser(
        "diff",
        help="compare two schemas object by object",
        description="Compare the schemas of A and B, each a database URL or key=value DSN, or a "
        "fingerprint saved with `pgsafe schema fingerprint --json` ('-' reads one from stdin). "
        "Exits 0 when equal, 1 when they differ.",
    )
    q.add_argument("a", metavar="A", help="database URL/DSN, or a saved fingerprint JSON file")
    q.add_argument("b", metavar="B", help="database URL/DSN, or a saved fingerprint JSON file")
    q.add_argument("--json", action="store_true", help="the differences as JSON")
    _add_exclude(q)
    _add_verbose(q, help=argparse.SUPPRESS)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _add_layout(sub)
    return parser


def _add_layout(sub: argparse._SubParsersAction[_Parser]) -> None:
    """--layout NAME on every command that reads a migrations PATH."""
    from pgsafe.sources.layouts import LAYOUTS

    for p in dict.fromkeys(sub.choices.values()):
        if any(a.dest in ("path", "paths") for a in p._actions):
            p.add_argument(
                "--layout",
                choices=list(LAYOUTS),
                metavar="NAME",
                help="read PATH as this tool's layout instead of detecting it: "
                + ", ".join(LAYOUTS)
                + ' (also `layout = "..."` in [tool.pgsafe])',
            )


def _layout(args: argparse.Namespace) -> str | None:
    """--layout, else `layout` in [tool.pgsafe] / pgsafe.toml, for commands taking a PATH."""
    from pgsafe.lint.config import find_config_table
    from pgsafe.sources.layouts import check_layout

    if getattr(args, "layout", None):
        return str(args.layout)
    if not any(hasattr(args, name) for name in ("path", "paths")):
        return None
    found = find_config_table()
    if found is None or "layout" not in found[0]:
        return None
    table, source = found
    value = table["layout"]
    if not isinstance(value, str):
        raise ConfigError(f'{source}: layout must be a string, e.g. "flyway"')
    return check_layout(value, f"{source}: layout")


def _settings(args: argparse.Namespace) -> Settings:
    s = Settings()
    for attr, key in [
        ("lock_timeout_ms", "lock_timeout"),
        ("statement_timeout_ms", "statement_timeout"),
        ("long_statement_timeout_ms", "long_statement_timeout"),
        ("idle_in_transaction_timeout_ms", "idle_timeout"),
        ("max_attempts", "retries"),
        ("retry_base_ms", "retry_base"),
        ("retry_max_ms", "retry_max"),
    ]:
        if hasattr(args, key):
            setattr(s, attr, getattr(args, key))
    if getattr(args, "lock_wait", None) is not None:
        s.lock_wait_s = args.lock_wait / 1000
    if s.max_attempts < 1:
        raise ConfigError("--retries must be at least 1")
    return s


def _say(message: str) -> None:
    print(message, flush=True)


@contextlib.contextmanager
def _target(
    args: argparse.Namespace, say: Callable[[str], None] = _say
) -> Iterator[tuple[str, str]]:
    """(dsn, label) of the target; starts the embedded throwaway server when none is given.
    `say` tells the user so (stderr for commands whose stdout is machine-read)."""
    target = resolve_target(args.db)
    if not target.embedded:
        yield target.dsn, target.masked
        return
    from pgsafe.server import TemporaryServer

    say("no --db, DATABASE_URL or PG* variables: using a throwaway local PostgreSQL")
    with TemporaryServer() as server:
        yield server.dsn("postgres"), f"embedded throwaway server (port {server.port})"


def _print_plan(title: str, plan: Sequence[tuple[object, Sequence[_core.Statement]]]) -> None:
    if not plan:
        _say(f"{title}: nothing to do")
        return
    _say(f"{title} (read-only: pass --apply to run it):")
    for mig, statements in plan:
        autocommit = [s for s in statements if s.non_transactional]
        note = f", {len(autocommit)} in autocommit steps" if autocommit else ""
        _say(f"  {mig.label}: {len(statements)} statements{note}")  # type: ignore[attr-defined]
        for s in autocommit:
            _say(f"    line {s.line}: {s.reason} cannot run in a transaction block")


def _event_log(args: argparse.Namespace) -> EventLog:
    """The run's event log, for commands that write; checked before anything is touched."""
    writes = args.command == "repair" or getattr(args, "execute", False)
    if not writes or not args.log_dir:
        return EventLog(None)
    path = Path(args.log_dir) / "migrations.jsonl"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a"):
            pass
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the event log: {exc.strerror or exc}") from None
    return EventLog(path)


def _lint(args: argparse.Namespace) -> int:
    from pgsafe.lint import lint_paths, load_config
    from pgsafe.lint.output import render

    config = load_config()
    if args.pg_version is not None:
        config.pg_version = args.pg_version
    result = lint_paths(args.paths, config)
    out = render(result, args.format)
    if out:
        print(out)
    return EXIT_UNSAFE if result.failed else EXIT_OK


def _rules(args: argparse.Namespace) -> int:
    from pgsafe.lint import RULES

    if args.rule:
        rule = RULES.get(args.rule)
        if rule is None:
            raise ConfigError(f"no rule {args.rule!r}; `pgsafe rules` lists them")
        print(rule.doc())
        return EXIT_OK
    width = max(len(r) for r in RULES)
    for r in sorted(RULES.values(), key=lambda r: r.id):
        print(f"{r.id:<{width}}  {r.severity:<7}  {r.summary}")
    return EXIT_OK


def _dry_run(args: argparse.Namespace) -> int:
    from pgsafe.dryrun import dry_run
    from pgsafe.lint import load_config

    config = load_config()
    if args.pg_version is not None:
        config.pg_version = args.pg_version
    migs = discover(args.path)
    environment = None
    target = resolve_target(args.db)
    if not target.embedded:
        runner = Runner(args.path, target.dsn, target_label=target.masked)
        pending = {s.version for s in runner.status().migrations if s.state == "pending"}
        migs = [m for m in migs if m.version in pending]
        environment = f"Static analysis of the migrations pending on {target.masked}"
    report = dry_run(migs, config, environment)
    if args.no_trace:
        report.trace_note = "--no-trace"
    elif migs:
        _trace_dry_run(report, migs, None if target.embedded else target.dsn, config.pg_version)
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
        from pgsafe.checksums import write_manifest

        # Every file, not only the pending ones the report covers: `pgsafe checksum --check`
        # and `sha256sum -c` verify the whole directory.
        write_manifest(args.path)
    return EXIT_UNSAFE if report.failed else EXIT_OK


def _trace_dry_run(
    report: DryRunReport, migs: Sequence[Migration], target_dsn: str | None, pg_version: int | None
) -> None:
    """Observed locks, rewrites and estimates for the dry-run, from a throwaway server."""
    from pgsafe.dryrun import attach_trace
    from pgsafe.server import ServerError
    from pgsafe.trace import trace

    where = "a schema-only copy of the target" if target_dsn is not None else "empty schema"
    _note(f"tracing {len(migs)} migration(s) on a throwaway PostgreSQL ({where})")
    try:
        traced = trace(migs, target_dsn=target_dsn, pg_version=pg_version)
    except ServerError as exc:  # no PostgreSQL binaries here: the static report still stands
        _note(f"not traced: {mask_password(str(exc)).splitlines()[0]}")
        report.trace_note = "no throwaway PostgreSQL server could be started"
        return
    except ConfigError as exc:  # e.g. the schema copy failed: the static report still stands
        _note(f"not traced: {mask_password(str(exc)).splitlines()[0]}")
        report.trace_note = mask_password(str(exc)).splitlines()[0]
        return
    attach_trace(report, traced)
    if traced.error:
        _note(f"tracing stopped: {traced.error}")


def _note(message: str) -> None:
    print(f"pgsafe: note: {message}", file=sys.stderr, flush=True)


def _excluded(args: argparse.Namespace) -> tuple[str, ...]:
    names = [] if args.include_ledger else [Settings().ledger_schema]
    for item in args.exclude:
        names += [n.strip() for n in item.split(",") if n.strip()]
    return tuple(dict.fromkeys(names))


def _looks_like_dsn(text: str) -> bool:
    return "://" in text or "=" in text


def _load_side(spec: str, exclude: tuple[str, ...]) -> SchemaFingerprint:
    """A fingerprint from a saved file ('-' for stdin) or a live database."""
    from pgsafe.schema import SchemaFingerprint, fingerprint

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
    from pgsafe.schema import diff, fingerprint, render_diff

    exclude = _excluded(args)
    if args.schema_command == "fingerprint":
        with _target(args, say=_note) as (dsn, label):
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
        _note(
            f"A is PostgreSQL {a.server_major} and B is {b.server_major}: definitions the server "
            "deparses (views, defaults, functions) can read differently between major versions"
        )
    if a.exclude != b.exclude:
        _note(
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


def _checksum(args: argparse.Namespace) -> int:
    from pgsafe.checksums import check_manifest, write_manifest

    if args.write:
        path = write_manifest(args.path)
        count = sum(1 for line in path.read_text().splitlines() if line)
        _say(f"wrote {path} ({count} files)")
        return EXIT_OK
    result = check_manifest(args.path)
    for line in result.lines():
        _say(line)
    if result.ok:
        _say(f"{result.manifest}: {len(result.verified)} files OK")
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


def _fingerprint(args: argparse.Namespace) -> int:
    import time

    from pgsafe.datafp import fingerprint

    show_progress = not args.json and sys.stderr.isatty()

    def progress(p: _core.FingerprintProgress) -> None:
        print(
            f"\rfingerprint: {p.chunks_done}/{p.chunks_total} chunks, {p.rows:,} rows, "
            f"{p.bytes / (1 << 20):,.0f} MiB",
            end="",
            file=sys.stderr,
            flush=True,
        )

    with _target(args) as (dsn, label):
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
        _say(f"no tables to fingerprint on {label}")
        return EXIT_OK
    width = max(len("table"), *(len(f.table) for f in found))
    _say(f"{'table':<{width}}  {'rows':>12}  {'MiB':>9}  {'seconds':>8}  digest")
    for f in found:
        _say(
            f"{f.table:<{width}}  {f.rows:>12,}  {f.bytes / (1 << 20):>9.1f}  "
            f"{f.seconds:>8.3f}  {f.digest}"
        )
    total_rows = sum(f.rows for f in found)
    total_mib = sum(f.bytes for f in found) / (1 << 20)
    _say(
        f"{len(found)} tables, {total_rows:,} rows, {total_mib:,.1f} MiB in {seconds:.2f}s "
        f"({args.workers} workers) on {label}"
    )
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    handler = getattr(args, "handler", None)
    if handler is not None:  # commands registered by their own modules (COMMAND_MODULES)
        return int(handler(args))
    if args.command == "fingerprint":
        return _fingerprint(args)
    if args.command == "lint":
        return _lint(args)
    if args.command == "checksum":
        return _checksum(args)
    if args.command == "dry-run":
        return _dry_run(args)
    if args.command == "rules":
        return _rules(args)
    if args.command == "schema":
        return _schema(args)
    if args.command == "repair" and args.adopt and args.version is not None:
        # `pgsafe repair --adopt PATH`: the one positional given is the migrations PATH.
        if args.path != "migrations":
            raise ConfigError("repair --adopt takes no VERSION: it adopts every migration it can")
        args.path, args.version = args.version, None
    if args.command == "repair" and not args.adopt and args.version is None:
        raise ConfigError("repair: VERSION is required with --mark or --rebaseline")
    settings = _settings(args)
    discover(args.path)  # a bad PATH fails before a throwaway server starts
    events = _event_log(args)
    with _target(args) as (dsn, label):
        runner = Runner(
            args.path, dsn, settings=settings, events=events, progress=_say, target_label=label
        )
        if args.command == "status":
            report = runner.status()
            if args.json:
                print(json.dumps(report.to_json(), indent=2))
            else:
                _say(report.render_text())
            return EXIT_OK
        if args.command == "repair" and args.adopt:
            _say(runner.adopt(args.reason))
            return EXIT_OK
        if args.command == "repair":
            _say(runner.repair(args.version, args.mark, args.rebaseline, args.reason))
            return EXIT_OK
    raise ConfigError(f"unknown command {args.command}")


_FAILURE_CODE = {
    "apply": EXIT_MIGRATION,
    "rollback": EXIT_ROLLBACK,
    "postflight": EXIT_POSTFLIGHT,
    "backup": EXIT_MIGRATION,
    "restore": EXIT_ROLLBACK,
    "verify-backup": EXIT_MIGRATION,
}
_READ_ONLY = {"fingerprint", "checksum"}


def _exit_code(command: str, exc: Error) -> int:
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if command == "rollback":  # whatever stopped it, the rollback failed (DESIGN.md: 4)
        return EXIT_ROLLBACK
    if isinstance(exc, DatabaseError):
        return _FAILURE_CODE.get(command, EXIT_CONFIG)
    return exc.exit_code


def _configure_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("pgsafe: %(levelname)s: %(message)s"))
    root = logging.getLogger("pgsafe")
    root.addHandler(handler)
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root.setLevel(level)
    _core.set_log_level(level)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    _configure_logging(args.verbose)
    from pgsafe.sources.layouts import forced_layout

    try:
        with forced_layout(_layout(args)):
            return _run(args)
    except Error as exc:
        print(f"pgsafe: error: {mask_password(str(exc))}", file=sys.stderr)
        return _exit_code(args.command, exc)
    except KeyboardInterrupt:
        if args.command in _READ_ONLY:
            print(
                "pgsafe: interrupted: the running scan was cancelled on the server", file=sys.stderr
            )
            return 130
        print(
            "pgsafe: interrupted: any running statement was cancelled on the server; "
            "`pgsafe status` shows what was committed",
            file=sys.stderr,
        )
        return _FAILURE_CODE.get(args.command, 130)


if __name__ == "__main__":
    sys.exit(main())
