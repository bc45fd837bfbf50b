"""`pgsafe backup`, `pgsafe restore` and `pgsafe verify-backup`.

Exit codes: backup 0 ok, 2 failed, 5 config; restore 0 ok, 1 refused (target not empty or holding
a partial restore, nothing changed), 4 failed or interrupted (and undone: the target is left as
it was), 5 config (bad file, missing or wrong key); verify-backup 0 ok, 2 the backup is damaged
or does not restore to what its manifest records, 5 config."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from pgsafe.backup.core import MAX_AGE_NO_ZERO, backup, load_key, restore, verify_backup
from pgsafe.cli import _common as common

EXIT_OK, EXIT_BACKUP = common.EXIT_OK, common.EXIT_MIGRATION


def _add_common(p: argparse.ArgumentParser, verb: str) -> None:
    """--workers, the key (to `verb` with) and --json: what all three commands take."""
    p.add_argument(
        "--workers", type=common.positive_int, default=2, metavar="N", help="connections"
    )
    _add_key(p, verb)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _add_key(p: argparse.ArgumentParser, verb: str) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--encrypt-key-file",
        metavar="F",
        help=f"{verb} with AES-256-GCM using the key in F (32 bytes, hex or base64)",
    )
    g.add_argument(
        "--encrypt-key-env",
        metavar="VAR",
        help="the same key, from environment variable VAR (never on the command line)",
    )


_max_age_ms = common.duration(no_zero=MAX_AGE_NO_ZERO)


def _max_age(text: str) -> dt.timedelta:
    return dt.timedelta(milliseconds=_max_age_ms(text))


def _key(args: argparse.Namespace) -> bytes | None:
    if args.encrypt_key_file is None and args.encrypt_key_env is None:
        return None
    return load_key(args.encrypt_key_file, args.encrypt_key_env)


def _print(report: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        sys.stdout.write(report.to_text())


def _backup(args: argparse.Namespace) -> int:
    key = _key(args)
    # Errors go to cli.main, which prints them and exits with pgsafe.errors.exit_code:
    # 2 (backup failed), 5 (config: a bad name in --tables, an unreachable target).
    with common.open_target(args, say=lambda m: print(m, file=sys.stderr)) as (dsn, _label):
        result = backup(
            dsn,
            tables=args.tables,
            out_dir=args.out,
            compress=args.compress,
            workers=args.workers,
            key=key,
            keep=args.keep,
            max_age=args.max_age,
            chunk_pages=args.chunk_pages,
        )
    _print(result, args.json)
    return EXIT_OK


def _restore(args: argparse.Namespace) -> int:
    key = _key(args)
    # Errors go to cli.main, which prints them (one line, saying what the target was left as)
    # and exits with pgsafe.errors.exit_code: 1 refused, 4 failed or interrupted (and undone),
    # 5 config.
    with common.open_target(args, say=lambda m: print(m, file=sys.stderr)) as (dsn, _label):
        result = restore(args.file, dsn, workers=args.workers, force=args.force, key=key)
    _print(result, args.json)
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    key = _key(args)
    report = verify_backup(args.file, key=key, workers=args.workers)
    _print(report, args.json)
    if not report.ok:
        print(f"pgsafe: error: {report.summary()}", file=sys.stderr)
        return EXIT_BACKUP
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "backup",
        help="consistent, compressed, checksummed backup restorable with plain psql",
        description="Back up the whole database (or --tables) from one snapshot: schema from "
        "pg_dump, table data streamed by several connections, each chunk an independent zstd "
        "frame or gzip member, so `zstd -dc FILE | psql` restores it. Writes "
        "DIR/backup-<UTC timestamp>.sql.zst (or .sql.gz), its .manifest.json, and "
        "DIR/latest-backup.txt. Roles, tablespaces and large objects are not included. "
        "Exit codes: 0 ok, 2 failed, 5 config.",
    )
    common.add_target(p, with_path=False, with_log_dir=False)
    p.add_argument("--tables", type=common.table_list, metavar="T,...", help="only these tables")
    p.add_argument(
        "--out",
        default="backups/migrations",
        metavar="DIR",
        help="backup directory (default backups/migrations)",
    )
    p.add_argument("--compress", choices=["zstd", "gzip"], default="zstd")
    _add_common(p, "encrypt")
    p.add_argument(
        "--keep", type=common.positive_int, metavar="N", help="keep the N newest backups"
    )
    p.add_argument(
        "--max-age",
        type=_max_age,
        metavar="DUR",
        help="delete complete backups older than DUR (e.g. 7d, 12h; more than 0)",
    )
    p.add_argument("--chunk-pages", type=common.positive_int, metavar="N", help=argparse.SUPPRESS)
    p.set_defaults(handler=_backup)

    p = sub.add_parser(
        "restore",
        help="restore a pgsafe backup, in parallel, into an empty database",
        description="Restore FILE into --db: schema, then data chunks in parallel (each "
        "checked against the manifest's SHA-256 first), then indexes, constraints, triggers "
        "and sequence values. Refuses a target with any table, or any object the backup "
        "creates, unless --force, which first drops what the backup recreates (a --tables "
        "backup: only its tables), dependents first, in one transaction; if anything the backup "
        "does not recreate depends on them, nothing is dropped and the dependent is named. "
        "All or nothing: a failure, Ctrl-C or SIGTERM drops again everything the restore "
        "created (the error line says what the target was left as); a restore killed with -9 "
        "leaves the marker pgsafe_restore.partial, which the next restore (refused without "
        "--force) and `pgsafe status` report. Exit codes: 0 ok, 1 refused, 4 failed or "
        "interrupted (undone), 5 config.",
    )
    p.add_argument("file", metavar="FILE", help="the backup file (its manifest must be beside it)")
    common.add_target(p, with_path=False, with_log_dir=False)
    p.add_argument(
        "--force",
        action="store_true",
        help="drop what the backup recreates in a non-empty target first (see docs/backup.md)",
    )
    _add_common(p, "decrypt")
    p.set_defaults(handler=_restore)

    p = sub.add_parser(
        "verify-backup",
        help="check every chunk and restore into a throwaway server to prove the backup works",
        description="Check every chunk's SHA-256 and the file's, restore into a throwaway "
        "PostgreSQL server, and compare each table's row count and data fingerprint with the "
        "manifest. Damage is reported with the chunk it is in. On success writes "
        "FILE.verified.json. Exit codes: 0 ok, 2 damaged or mismatched, 5 config.",
    )
    p.add_argument("file", metavar="FILE")
    common.add_verbose(p)
    _add_common(p, "decrypt")
    p.set_defaults(handler=_verify)
