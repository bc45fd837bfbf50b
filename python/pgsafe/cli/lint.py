"""`pgsafe lint` and `pgsafe rules`: rule findings over migration files, and the rules' pages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_OK, EXIT_UNSAFE
from pgsafe.errors import ConfigError
from pgsafe.lint import RULES, lint_paths
from pgsafe.lint.output import FORMATS, render
from pgsafe.sources.git import Changes, changed_files


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "lint",
        help="static analysis: rule findings with hazards and lock levels",
        description="Parse every statement with the PostgreSQL parser and report what is "
        "unsafe, with the lock it takes, the hazards, and the safer recipe. Directories are "
        "searched for *.sql (down files only when named explicitly); '-' reads stdin. Exits 1 "
        "when any finding is an error.",
    )
    common.add_paths(p, "files, directories or '-' (default: ./migrations)")
    p.add_argument("--format", choices=list(FORMATS), default="text")
    changed = p.add_mutually_exclusive_group()
    changed.add_argument(
        "--since",
        metavar="REF",
        help="report only migrations added or changed since the git commit, branch or tag REF "
        "(from where this branch left it), uncommitted and untracked ones included; exit 0 "
        "when none changed",
    )
    changed.add_argument(
        "--staged",
        action="store_true",
        help="report only migrations staged in the git index (a pre-commit hook)",
    )
    common.add_pg_version(
        p,
        "PostgreSQL major version of the target (default: pg_version in the config, else the "
        "newest grammar's); syntax newer than it is an error (requires-newer-postgres)",
    )
    common.add_verbose(p, help=argparse.SUPPRESS)

    p.set_defaults(handler=_lint)
    p = sub.add_parser(
        "rules",
        help="list the lint rules, or explain one",
        description="Without an argument, list every rule; with one, print its page.",
    )
    p.add_argument("rule", nargs="?", help="a rule id, e.g. ban-drop-column")
    common.add_verbose(p, help=argparse.SUPPRESS)

    p.set_defaults(handler=_rules)


def _lint(args: argparse.Namespace) -> int:
    config = common.lint_config(args)
    changes = _changes(args)
    result = lint_paths(args.paths, config, changes)
    if changes is not None and not result.files and not result.findings:
        # A pull request without migrations passes the gate. Machine formats still print
        # their (empty) document; the line goes to stderr then.
        line = f"{', '.join(args.paths)}: no migration changed {changes.what}; nothing to lint"
        if args.format in ("text", "markdown"):
            print(line)
            return EXIT_OK
        print(line, file=sys.stderr)
    out = render(result, args.format)
    if out:
        print(out)
    return EXIT_UNSAFE if result.failed else EXIT_OK


def _changes(args: argparse.Namespace) -> Changes | None:
    """The change set of --since / --staged, from the repository of the first PATH."""
    if args.since is None and not args.staged:
        return None
    first = next((p for p in args.paths if p != "-"), ".")
    return changed_files(Path(first), since=args.since, staged=args.staged)


def _rules(args: argparse.Namespace) -> int:
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
