"""The ``pgsafe`` command line. Command names, flags, JSON fields and exit codes follow
DESIGN.md's Contracts: 0 ok, 1 unsafe, 2 migration failed, 3 postflight failed, 4 rollback
failed, 5 config or usage error. Each command lives in its own module of this package with a
``register(sub)`` that adds its subparser and sets ``handler`` (args -> exit code)."""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from pgsafe import _core
from pgsafe.cli import _common as common
from pgsafe.cli._common import EXIT_CONFIG
from pgsafe.errors import Error, mask_password

# In lifecycle order, as `pgsafe --help` lists them: analyse, check, protect, run, verify,
# inspect and repair, then the tools around them.
# Each module of this package and the commands it registers. Only the module of the command
# being run is imported (start-up time: `pgsafe backup` before an apply should not load the
# linter); `pgsafe --help`, a bad command and build_parser() load them all.
COMMANDS: dict[str, tuple[str, ...]] = {
    "lint": ("lint", "rules"),
    "fix": ("fix",),
    "dryrun": ("dry-run",),
    "preflight": ("preflight",),
    "backup": ("backup", "restore", "verify-backup"),
    "apply": ("apply", "rollback"),
    "postflight": ("postflight",),
    "status": ("status",),
    "repair": ("repair",),
    "locks": ("locks",),
    "test": ("test",),
    "checksum": ("checksum",),
    "fingerprint": ("fingerprint",),
    "schema": ("schema",),
}
_MODULE_OF = {name: module for module, names in COMMANDS.items() for name in names}


def _first_word(argv: Sequence[str]) -> str | None:
    """The first word of `argv` that is not an option (nor --app-path's value): the command,
    when it is one."""
    words = iter(argv)
    for word in words:
        if word == "--":
            return None
        if word == "--app-path":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _command_in(argv: Sequence[str]) -> str | None:
    """The command `argv` names, if it names one."""
    word = _first_word(argv)
    return word if word in _MODULE_OF else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of `command` (and those of its module)."""
    parser = common.Parser(
        prog="pgsafe",
        description="PostgreSQL migration safety harness: analyse, protect, verify and undo "
        "schema migrations.",
        epilog="exit codes: 0 ok, 1 unsafe, 2 migration failed, 3 postflight failed, "
        "4 rollback failed, 5 config or usage error",
    )
    parser.add_argument("--version", action="version", version=f"pgsafe {_core.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help=common.VERBOSE_HELP)
    parser.add_argument("--app-path", action="append", metavar="DIR", help=common.APP_PATH_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=common.Parser)
    modules = [_MODULE_OF[command]] if command in _MODULE_OF else list(COMMANDS)
    for module in modules:
        importlib.import_module(f"pgsafe.cli.{module}").register(sub)
    common.add_layout(sub)
    return parser


def _configure_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("pgsafe: %(levelname)s: %(message)s"))
    root = logging.getLogger("pgsafe")
    root.addHandler(handler)
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root.setLevel(level)
    _core.set_log_level(level)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _suggest(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'apply'?)`` for a near miss, else empty."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _parse(parser: argparse.ArgumentParser, words: list[str]) -> argparse.Namespace:
    """Parse like argparse, but a mistyped command or flag gets a suggestion, and an unknown
    flag after a command is reported with that command's own usage."""
    word = _first_word(words)
    if word is not None and word not in _MODULE_OF:
        parser.error(f"unknown command {word!r}{_suggest(word, sorted(_MODULE_OF))}")
    args, extras = parser.parse_known_args(words)
    if extras:
        owner = _subparsers(parser).get(getattr(args, "command", None) or "", parser)
        flags = [o for a in owner._actions for o in a.option_strings]
        hints = [_suggest(e.split("=", 1)[0], flags) for e in extras if e.startswith("-")]
        hint = next((h for h in hints if h), "")
        owner.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
    return args


def _quiet_broken_pipe() -> int:
    """The reader went away (`pgsafe rules | head`): end quietly, as Unix tools do. stdout is
    pointed at /dev/null so the interpreter's final flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, as a shell reports a command ended by a closed pipe


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        return _quiet_broken_pipe()


def _main(argv: Sequence[str] | None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_in(words))
    args = _parse(parser, words)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    _configure_logging(args.verbose)
    try:
        common.use_app_paths(args.app_path)
        name = common.layout(args)
        if name is None:  # a command that reads no migrations: their readers stay unloaded
            return int(args.handler(args))
        from pgsafe.sources.layouts import forced_layout

        with forced_layout(name):
            return int(args.handler(args))
    except Error as exc:
        print(f"pgsafe: error: {mask_password(str(exc))}", file=sys.stderr)
        return common.exit_code(args.command, exc)
    except KeyboardInterrupt:
        if args.command in common.READ_ONLY:
            print(
                "pgsafe: interrupted: the running scan was cancelled on the server", file=sys.stderr
            )
            return 130
        print(
            "pgsafe: interrupted: any running statement was cancelled on the server; "
            "`pgsafe status` shows what was committed",
            file=sys.stderr,
        )
        return common.FAILURE_CODE.get(args.command, 130)


if __name__ == "__main__":
    sys.exit(main())
