"""Which files a lint run reads: files, directories (every *.sql in them, down files only when
named), Alembic projects (every revision rendered offline) and '-' for stdin."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pgsafe.errors import ConfigError
from pgsafe.lint.alembic import lint_project
from pgsafe.lint.config import LintConfig
from pgsafe.lint.engine import LintResult, added_constraints, lint_text
from pgsafe.sources.files import is_alembic_project, read_sql
from pgsafe.sources.layouts import lint_file_text, lint_sources, nothing_found


def lint_paths(paths: Iterable[str], config: LintConfig | None = None) -> LintResult:
    """Lint files, directories (every *.sql in them, sorted), Alembic projects (an alembic.ini
    or its directory: every revision rendered offline) and '-' for stdin."""
    config = config or LintConfig()
    total = LintResult()
    for p in paths:
        if p == "-":
            files: list[tuple[str, str]] = [("<stdin>", sys.stdin.read())]
        else:
            path = Path(p)
            if is_alembic_project(path):
                one = lint_project(path, config)
                total.findings.extend(one.findings)
                total.files.extend(one.files)
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
            elif path.is_file():
                files = [(str(path), lint_file_text(path))]
            else:
                raise ConfigError(f"{p}: no such file or directory")
        earlier: dict[tuple[str, str], dict[str, Any]] = {}  # in migration order
        for name, text in files:
            one = lint_text(text, name, config, earlier)
            earlier.update(added_constraints(one.statements))
            total.findings.extend(one.findings)
            total.files.extend(one.files)
    return total
