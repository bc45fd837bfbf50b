"""Helpers shared by several test modules (imported as `helpers`: pytest puts tests/ on sys.path).
The pgsafe CLI in a subprocess, migration files on disk, small queries, polling, Ctrl-C, a
thread that shows whether the GIL is released, and Alembic revision files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

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


@contextmanager
def running(*args: str) -> Iterator[subprocess.Popen[str]]:
    """`spawn`, and the process killed on the way out if it is still running."""
    proc = spawn(*args)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def interrupt(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str, float]:
    """Ctrl-C (SIGINT) to `proc`; its stdout, its stderr, and the seconds it took to exit."""
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return out, err, time.monotonic() - started


@contextmanager
def ctrl_c_after(seconds: float) -> Iterator[None]:
    """Ctrl-C (SIGINT) to this process after `seconds`, unless the block ends first; skips the
    test off the main thread (where Python does not deliver signals)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def apply_args(
    directory: Path, db: TemporaryDatabase, log_dir: Path | str, *extra: str
) -> list[str]:
    """The arguments of `pgsafe apply DIRECTORY --db DSN --apply --log-dir LOG_DIR EXTRA...`
    (LOG_DIR "" for no event log)."""
    return ["apply", str(directory), "--db", db.dsn, "--apply", "--log-dir", str(log_dir), *extra]


def read_jsonl(path: Path) -> list[Any]:
    """The JSON value of each non-blank line of `path`."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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


def execute(db: TemporaryDatabase, *sql: str) -> None:
    """Runs each statement in turn on a session of its own (application_name 'pgsafe-test')."""
    with db.connect(application_name="pgsafe-test") as conn:
        for s in sql:
            conn.execute(s)


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
    server = getattr(where, "server", where)
    missing = [n for n in names if not has_extension(server, n)]
    if missing:
        pytest.skip(f"{server.installation.describe()} has no extension {', '.join(missing)}")


def require_icu(where: Any) -> None:
    """Skips the test when the server of `where` was built without ICU (the server wheels)."""
    server = getattr(where, "server", where)
    # initdb imports ICU's locales (und-x-icu, ...) only when the server is built with ICU.
    rows = server.execute("SELECT count(*) FROM pg_collation WHERE collname = 'und-x-icu'").rows
    if rows[0][0] == "0":
        pytest.skip(f"{server.installation.describe()} is built without ICU")


@dataclass
class Ticker:
    """How often a Python thread got to run: `count` grows only while this thread lets go of
    the GIL."""

    count: int = 0


@contextmanager
def ticking(interval: float, settle: float) -> Iterator[Ticker]:
    """A daemon thread that adds 1 to the ticker's count every `interval` seconds, given
    `settle` seconds to start before the block runs; stopped and joined after it."""
    ticker = Ticker()
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            ticker.count += 1
            time.sleep(interval)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    time.sleep(settle)
    try:
        yield ticker
    finally:
        stop.set()
        thread.join()


def alembic_revision(
    rev: str, down: str | tuple[str, ...] | None, upgrade: str, downgrade: str = "pass"
) -> str:
    """An Alembic revision file whose upgrade() and downgrade() run these (dedented) bodies;
    the body of upgrade() starts on line 12."""
    return (
        f'"""revision {rev}"""\n'
        "from alembic import op\nimport sqlalchemy as sa\n\n"
        f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = None\n"
        "depends_on = None\n\n\ndef upgrade() -> None:\n"
        + textwrap.indent(textwrap.dedent(upgrade).strip(), "    ")
        + "\n\n\ndef downgrade() -> None:\n"
        + textwrap.indent(textwrap.dedent(downgrade).strip(), "    ")
        + "\n"
    )
