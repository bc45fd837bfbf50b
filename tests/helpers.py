"""Helpers shared by several test modules (imported as `helpers`: pytest puts tests/ on sys.path).
The pgsafe CLI in a subprocess, migration files on disk, small queries, and polling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pgsafe.server import TemporaryDatabase

T = TypeVar("T")

# The console script installed next to the interpreter that runs the tests.
PGSAFE = Path(sys.executable).parent / "pgsafe"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without PG* and DATABASE_URL (the CLI sees only the target a test gives it),
    plus `extra`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    return {**base, **(extra or {})}


def pgsafe(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Runs the pgsafe CLI to completion; `env` is added to the cleaned environment."""
    return subprocess.run(
        [str(PGSAFE), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
        cwd=cwd,
        check=False,
    )


def spawn(*args: str) -> subprocess.Popen[str]:
    """Starts the pgsafe CLI in the background (same environment as `pgsafe`), output piped."""
    return subprocess.Popen(
        [str(PGSAFE), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )


def write(directory: Path, files: dict[str, str]) -> Path:
    """Writes {file name: text} into `directory` (created if needed) and returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def query(
    db: TemporaryDatabase, sql: str, params: Sequence[str | None] | None = None
) -> list[tuple[Any, ...]]:
    """The rows of one statement, on a session of its own (application_name 'pgsafe-test', so
    tests looking for the runner's 'pgsafe' sessions do not see it)."""
    with db.connect(application_name="pgsafe-test") as conn:
        return list(conn.execute(sql, params or []).rows)


def exists(db: TemporaryDatabase, relation: str) -> bool:
    return query(db, "SELECT to_regclass($1) IS NOT NULL", [relation]) == [("t",)]


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.05,
) -> T:
    """Polls `predicate` until it returns something true, and returns that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def has_extension(where: Any, name: str) -> bool:
    """Can the server of `where` (a TemporaryServer or a database on one) create `name`?"""
    server = getattr(where, "server", where)
    rows = server.execute("SELECT 1 FROM pg_available_extensions WHERE name = $1", [name]).rows
    return bool(rows)


def require_extension(where: Any, *names: str) -> None:
    """Skips the test, naming the server, when the server of `where` (a TemporaryServer or a
    database on one) cannot create every extension in `names`: the server wheels of the version
    matrix ship few contrib modules (pgserver's PostgreSQL 16 has none)."""
    import pytest

    server = getattr(where, "server", where)
    missing = [n for n in names if not has_extension(server, n)]
    if missing:
        pytest.skip(f"{server.installation.describe()} has no extension {', '.join(missing)}")


def require_icu(where: Any) -> None:
    """Skips the test when the server of `where` was built without ICU (the server wheels)."""
    import pytest

    server = getattr(where, "server", where)
    # initdb imports ICU's locales (und-x-icu, ...) only when the server is built with ICU.
    rows = server.execute("SELECT count(*) FROM pg_collation WHERE collname = 'und-x-icu'").rows
    if rows[0][0] == "0":
        pytest.skip(f"{server.installation.describe()} is built without ICU")
