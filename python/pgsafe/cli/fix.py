"""`pgsafe fix`: rewrites what lint reports into the recipes its rules recommend; a unified diff
by default, the files changed with --write (docs/fix.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK, EXIT_UNSAFE
from pgsafe.errors import ConfigError
from pgsafe.lifecycle.policy import ENV_VAR, load_policy
from pgsafe.lint.config import LintConfig
from pgsafe.lint.engine import added_constraints
from pgsafe.lint.fix import TIMEOUT_RULE, FileFix, FixOptions, FixResult, fix_text, follow_down
from pgsafe.lint.model import Stmt
from pgsafe.sources.files import is_alembic_project, read_sql
from pgsafe.sources.layouts import discover, lint_file_text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "fix",
        help="rewrite unsafe statements into the safe recipes lint recommends",
        description="Rewrite the statements lint reports into the recipes its rules recommend "
        "(CREATE INDEX CONCURRENTLY, NOT VALID then VALIDATE in its own transaction, the SET "
        "NOT NULL recipe, unique indexes built concurrently, ...). Prints a unified diff; "
        "--write changes the files (and their down files). What cannot be fixed safely is left "
        "as it is and reported with the manual recipe. Exits 1 when something unsafe remains.",
    )
    common.add_paths(p, "migration files or directories, or '-' for stdin (default: ./migrations)")
    p.add_argument("--write", action="store_true", help="change the files instead of printing")
    p.add_argument("--format", choices=["text", "json"], default="text")
    common.add_pg_version(
        p,
        "PostgreSQL major of the target (default: pg_version in the config, else the "
        "newest grammar's); the recipes follow it (SET NOT NULL on 18: NOT NULL ... NOT VALID)",
    )
    p.add_argument(
        "--env",
        metavar="ENV",
        help="environment whose policy decides whether timeouts are required (default: "
        f"${ENV_VAR}); when they are, a file that locks an existing table gets SET "
        "lock_timeout prepended",
    )
    p.add_argument(
        "--lock-timeout",
        default="5s",
        metavar="DURATION",
        help="the lock_timeout a fix prepends (default: 5s)",
    )
    p.add_argument(
        "--statement-timeout",
        default="5min",
        metavar="DURATION",
        help="the statement_timeout a fix prepends (default: 5min, seed 003)",
    )
    common.add_verbose(p, help=argparse.SUPPRESS)
    p.set_defaults(handler=_fix)


def _options(args: argparse.Namespace, config: LintConfig) -> FixOptions:
    required = TIMEOUT_RULE in config.enable
    if args.env or os.environ.get(ENV_VAR):
        required = required or load_policy(args.env).timeouts == "required"
    return FixOptions(
        timeouts=required, lock_timeout=args.lock_timeout, statement_timeout=args.statement_timeout
    )


def _down_of(path: Path) -> Path | None:
    """NNN_name.up.sql -> NNN_name.down.sql beside it, when there is one (file names only)."""
    if not path.name.endswith(".up.sql"):
        return None
    down = path.with_name(path.name[: -len(".up.sql")] + ".down.sql")
    return down if down.is_file() else None


def _fix_file(
    path: Path,
    down: Path | None,
    config: LintConfig,
    options: FixOptions,
    earlier: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> list[FileFix]:
    text = read_sql(path)
    if lint_file_text(path) != text:
        raise ConfigError(
            f"{path}: holds its up and down sections in one file; pgsafe fix rewrites files "
            "that hold one direction (fix the statements by hand: `pgsafe lint` names the recipes)"
        )
    up = fix_text(text, str(path), config, options, earlier)
    if earlier is not None:  # what the next migration of the directory may rely on
        earlier.update(
            added_constraints([Stmt.from_statement(i, s) for i, s in enumerate(up.statements)])
        )
    out = [up]
    if down is not None:
        out.append(follow_down(read_sql(down), str(down), up, config))
    return out


def _collect(args: argparse.Namespace, config: LintConfig, options: FixOptions) -> FixResult:
    result = FixResult()
    for p in args.paths:
        if p == "-":
            if args.write:
                raise ConfigError("--write needs files: stdin has nowhere to be written back")
            result.files.append(fix_text(sys.stdin.read(), "<stdin>", config, options))
            continue
        path = Path(p)
        if is_alembic_project(path):
            raise ConfigError(
                f"{p}: an Alembic project's revisions are Python: pgsafe fix rewrites SQL files; "
                "use the pgsafe.alembic op helpers (create_index_concurrently, "
                "add_foreign_key_not_valid, validate_constraint, ...)"
            )
        if path.is_dir():
            migrations = discover(path)
            if not migrations:
                raise ConfigError(f"{p}: no migrations found")
            earlier: dict[tuple[str, str], dict[str, Any]] = {}
            for mig in migrations:
                if mig.up_sql is not None:
                    raise ConfigError(f"{mig.up_path}: not a SQL file; pgsafe fix rewrites SQL")
                if config.excluded(mig.up_path):
                    continue
                result.files += _fix_file(mig.up_path, mig.down_path, config, options, earlier)
        elif path.is_file():
            result.files += _fix_file(path, _down_of(path), config, options)
        else:
            raise ConfigError(f"{p}: no such file or directory")
    return result


def _report(result: FixResult) -> None:
    err = sys.stderr
    for f in result.files:
        for c in f.changes:
            where = f"{f.path}:{c.line}" if c.line else f.path
            rules = f" [{', '.join(c.rules)}]" if c.rules else ""
            print(f"fixed {where}{rules}: {c.what}", file=err)
    for n in result.not_fixable:
        print(f"not fixable {n.file}:{n.line} [{n.rule}]: {n.message}", file=err)
        print(f"  manual recipe: {n.recipe}", file=err)
    for r in result.remaining:
        print(f"still unsafe {r.file}:{r.line} [{r.rule}]: {r.message}", file=err)
    print(result.summary(), file=err)


def _fix(args: argparse.Namespace) -> int:
    config = common.lint_config(args)
    result = _collect(args, config, _options(args, config))
    if args.write:
        for f in result.files:
            if f.changed:
                try:
                    target = Path(f.path)
                    bom = target.read_bytes().startswith(b"\xef\xbb\xbf")
                    target.write_bytes((b"\xef\xbb\xbf" if bom else b"") + f.fixed.encode())
                except OSError as exc:
                    raise ConfigError(f"{f.path}: cannot write: {exc.strerror or exc}") from None
    if args.format == "json":
        doc = result.to_json()
        if not args.write:
            doc["diff"] = result.diff()
        print(json.dumps(doc, indent=2))
    else:
        if not args.write:
            sys.stdout.write(result.diff())
        _report(result)
    return EXIT_UNSAFE if result.not_fixable or result.remaining else EXIT_OK
