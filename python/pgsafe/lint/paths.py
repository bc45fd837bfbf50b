"""Which files a lint run reads: files, directories (every *.sql in them, down files only when
named; plus the directory's file checks, pgsafe.lint.directory), Alembic projects (every
revision rendered offline) and '-' for stdin. With a change set (`--since`, `--staged`), only
the findings of changed files are reported; a directory's files up to the last changed one are
still read, in order, as the context the changed ones come after."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pgsafe.errors import ConfigError
from pgsafe.lint.alembic import lint_project
from pgsafe.lint.config import LintConfig
from pgsafe.lint.directory import directory_findings
from pgsafe.lint.engine import LintResult, added_constraints, lint_text
from pgsafe.lint.model import Finding
from pgsafe.sources.files import is_alembic_project, migration_file_name, read_sql
from pgsafe.sources.git import Changes
from pgsafe.sources.layouts import lint_file_text, lint_sources, nothing_found


def _touched(changes: Changes) -> set[Path]:
    """The changed files, and the up file of every changed down file (a down added, edited
    or deleted is a change to its migration: its up carries the pair's findings)."""
    out = set(changes.files)
    for f in changes.files:
        parts = migration_file_name(f.name)
        if parts is not None and parts[2] == "down":
            stem = f"{parts[0]}_{parts[1]}"
            out |= {f.with_name(f"{stem}.up.sql"), f.with_name(f"{stem}.sql")}
        elif f.name == "down.sql":  # diesel, Prisma's recipe
            out |= {f.with_name("up.sql"), f.with_name("migration.sql")}
        elif f.parent.name == "revert":  # sqitch
            out.add(f.parent.parent / "deploy" / f.name)
    return out


def lint_paths(
    paths: Iterable[str], config: LintConfig | None = None, changes: Changes | None = None
) -> LintResult:
    """Lint files, directories (every *.sql in them, sorted; and the directory's file checks),
    Alembic projects (an alembic.ini or its directory: every revision rendered offline) and
    '-' for stdin. With `changes`, only the findings (and files) of changed migrations are
    kept; stdin is always linted."""
    config = config or LintConfig()
    total = LintResult()
    touched = _touched(changes) if changes is not None else None

    def keep(file: str) -> bool:
        return touched is None or file == "<stdin>" or Path(file).resolve() in touched

    for p in paths:
        block: list[Finding] = []  # a directory's file checks, merged with its files' findings
        if p == "-":
            files: list[tuple[str, str]] = [("<stdin>", sys.stdin.read())]
        else:
            path = Path(p)
            if is_alembic_project(path):
                if changes is not None and not changes.under(
                    path.parent if path.is_file() else path
                ):
                    continue  # nothing changed in the project: its revisions are not rendered
                one = lint_project(path, config)
                total.findings.extend(f for f in one.findings if keep(f.file))
                total.files.extend(f for f in one.files if keep(f))
                continue
            if path.is_dir():
                # Another tool's layout (diesel, Flyway, dbmate, ...): the ups it runs, with
                # the file's own lines (a dbmate file's down section is not linted).
                layout_files = lint_sources(path)
                if layout_files is not None:
                    files = [(n, t) for n, t in layout_files if not config.excluded(Path(n))]
                else:
                    # Down files undo what their up file did (dropping is their job): linted
                    # only when named explicitly.
                    found = sorted(
                        f
                        for f in path.rglob("*.sql")
                        if f.is_file() and not f.name.endswith(".down.sql")
                    )
                    if not found:
                        raise ConfigError(nothing_found(path, None))
                    files = [(str(f), read_sql(f)) for f in found if not config.excluded(f)]
                if touched is None or (changes is not None and changes.under(path)):
                    block = [
                        f
                        for f in directory_findings(path, config, [n for n, _ in files])
                        if keep(f.file)
                    ]
                if touched is not None:
                    # The files after the last changed one are context for nothing changed.
                    last = max((i for i, (n, _) in enumerate(files) if keep(n)), default=-1)
                    files = files[: last + 1]
            elif path.is_file():
                files = [(str(path), lint_file_text(path))]
            else:
                raise ConfigError(f"{p}: no such file or directory")
        earlier: dict[tuple[str, str], dict[str, Any]] = {}  # in migration order
        for name, text in files:
            one = lint_text(text, name, config, earlier)
            earlier.update(added_constraints(one.statements))
            if keep(name):
                block.extend(one.findings)
                total.files.extend(one.files)
        order = {name: i for i, (name, _) in enumerate(files)}
        block.sort(key=lambda f: (order.get(f.file, -1), f.file, f.line, f.column, f.rule))
        total.findings.extend(block)
    return total
