"""Migration tests in Python: a harness that applies and rolls back one migrations source on one
database, and assertions whose failure message names the object or table that differs. The
pytest plugin (pgsafe.testing.pytest_plugin) hands these out as fixtures; nothing here needs
pytest."""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pgsafe import _core, schema
from pgsafe.backup import datafp
from pgsafe.config import Settings
from pgsafe.db import connect
from pgsafe.errors import mask_password
from pgsafe.lifecycle.runner import Runner, StatusReport, StepResult
from pgsafe.lifecycle.trace import TraceReport, trace
from pgsafe.lifecycle.trace import assert_max_lock as assert_max_lock
from pgsafe.lifecycle.trace import assert_no_rewrite as assert_no_rewrite
from pgsafe.schema import DEFAULT_EXCLUDE, SchemaFingerprint

if TYPE_CHECKING:
    from pgsafe.backup.datafp import TableFingerprint


# How many differing objects a failure message shows before "... and N more".
MAX_SHOWN = 5


class _HasDsn(Protocol):
    @property
    def dsn(self) -> str: ...


Target = str | _HasDsn  # a DSN, a Connection, a TemporaryDatabase, a MigrationHarness...


def target_dsn(target: Target) -> str:
    """The DSN of a target given as a DSN string or anything with a ``.dsn`` (a pgsafe
    Connection, a TemporaryDatabase, a MigrationHarness) or ``.info.dsn`` (a psycopg
    connection, e.g. pytest-postgresql's ``postgresql`` fixture)."""
    if isinstance(target, str):
        return target
    dsn = getattr(target, "dsn", None)
    if dsn is None:
        dsn = getattr(getattr(target, "info", None), "dsn", None)
    if not isinstance(dsn, str):
        raise TypeError(f"expected a DSN or an object with .dsn, not {type(target).__name__}")
    return dsn


# -- the harness ---------------------------------------------------------------------------------


@dataclass
class MigrationHarness:
    """One migrations source (a directory, or an Alembic project once ``discover`` takes one)
    run against one database through :class:`~pgsafe.lifecycle.runner.Runner`, with the ledger, the
    migration lock and the timeouts a real run uses."""

    source: Path
    dsn: str = field(repr=False)
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        self.source = Path(self.source)
        self.runner = Runner(self.source, self.dsn, settings=self.settings)

    def __repr__(self) -> str:
        return f"MigrationHarness({str(self.source)!r} on {mask_password(self.dsn)!r})"

    def migrations(self) -> list[Any]:
        return self.runner.migrations()

    def status(self) -> StatusReport:
        return self.runner.status()

    def apply(self, to: str | None = None) -> list[StepResult]:
        """Applies pending migrations (up to and including version ``to``)."""
        return self.runner.apply(to=to)

    def rollback(self, steps: int | None = None, to: str | None = None) -> list[StepResult]:
        """Rolls back ``steps`` migrations (default 1), or every one above version ``to``."""
        return self.runner.rollback(steps=steps, to=to)

    def rollback_all(self) -> list[StepResult]:
        applied = self.status().count("applied")
        return self.rollback(steps=applied) if applied else []

    def connect(self) -> _core.Connection:
        return connect(self.dsn, self.settings, "test")

    def execute(self, sql: str) -> Any:
        """Runs one statement on its own connection (committed) and returns the result."""
        with contextlib.closing(self.connect()) as conn:
            return conn.execute(sql)

    def fingerprint(self, exclude: Iterable[str] = DEFAULT_EXCLUDE) -> SchemaFingerprint:
        """The schema fingerprint of the database now (ledger schema left out)."""
        return schema.fingerprint(self.dsn, exclude, settings=self.settings)

    def data_fingerprint(self, tables: Sequence[str] | None = None) -> list[TableFingerprint]:
        """Row counts and data digests of ``tables`` (default: every user table)."""
        return datafp.fingerprint(self.dsn, tables, exclude_schemas=(self.settings.ledger_schema,))

    def trace(self, **kwargs: Any) -> TraceReport:
        """Traces the migrations still pending on this database (on a throwaway copy of its
        schema, with sample rows): the locks each statement takes, rewrites and estimates, as
        ``pgsafe.lifecycle.trace.trace(source, target_dsn=dsn, **kwargs)`` returns them (a
        TraceReport).
        """
        return trace(self.source, target_dsn=self.dsn, **kwargs)


# -- schema parity -------------------------------------------------------------------------------


def _schema_of(side: Target | SchemaFingerprint, exclude: tuple[str, ...]) -> SchemaFingerprint:
    if isinstance(side, SchemaFingerprint):
        return side
    if isinstance(side, _core.Connection):
        return schema.fingerprint(side, exclude)
    if isinstance(side, MigrationHarness):
        return side.fingerprint(exclude)
    return schema.fingerprint(target_dsn(side), exclude)


def assert_schema_parity(
    a: Target | SchemaFingerprint,
    b: Target | SchemaFingerprint,
    exclude: Iterable[str] = DEFAULT_EXCLUDE,
    *,
    ignore: Iterable[str] = (),
    max_shown: int = MAX_SHOWN,
) -> None:
    """Asserts two schemas are the same, object by object (tables, columns, indexes,
    constraints, enums, functions, policies, grants...).

    ``a`` and ``b`` are DSNs, connections, databases or already-taken fingerprints. ``exclude``
    names schemas left out (default: the ledger schema); ``ignore`` holds glob patterns on
    ``"kind name"`` (e.g. ``"index public.tmp_*"``) of differences that do not count. The
    message names the first ``max_shown`` differing objects with their definitions' diff.
    """
    __tracebackhide__ = True  # pytest shows the failing test line, not this function
    excluded = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    fa, fb = _schema_of(a, excluded), _schema_of(b, excluded)
    patterns = [ignore] if isinstance(ignore, str) else list(ignore)
    diffs = [
        d for d in schema.diff(fa, fb) if not any(fnmatch.fnmatchcase(d.label, p) for p in patterns)
    ]
    if not diffs:
        return
    la, lb = _label(fa, "a"), _label(fb, "b")
    shown = diffs[:max_shown]
    names = ", ".join(f"{d.change} {d.label}" for d in shown)
    lines = [f"schemas differ in {len(diffs)} object(s): {names}" + _more(diffs, max_shown)]
    lines += [f"--- {la}", f"+++ {lb}"]
    lines += [d.render() for d in shown]
    if len(diffs) > max_shown:
        lines.append(f"... and {len(diffs) - max_shown} more")
    raise AssertionError("\n".join(lines))


def _label(fp: SchemaFingerprint, default: str) -> str:
    # A fingerprint's source is the DSN it was taken from (password and all) or a file name.
    if "=" in fp.source or "://" in fp.source:
        return str(mask_password(fp.source))
    return fp.source or default


def _more(items: Sequence[object], shown: int) -> str:
    return f" (+{len(items) - shown} more)" if len(items) > shown else ""


# -- data preservation ---------------------------------------------------------------------------


class DataLossError(AssertionError):
    """Rows were lost or changed; ``problems`` has one line per table."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            f"data changed in {len(problems)} table(s):\n" + "\n".join(f"  {p}" for p in problems)
        )
        self.problems = problems


def _data_of(
    side: Target | Sequence[TableFingerprint], tables: Sequence[str] | None
) -> list[TableFingerprint]:
    if isinstance(side, (list, tuple)):
        return list(side)
    if isinstance(side, MigrationHarness):
        return side.data_fingerprint(tables)
    return datafp.fingerprint(target_dsn(side), tables)  # type: ignore[arg-type]


def assert_no_data_loss(
    before: Target | Sequence[TableFingerprint],
    after: Target | Sequence[TableFingerprint],
    *,
    tables: Sequence[str] | None = None,
    counts_only: bool = False,
) -> None:
    """Asserts every table of ``before`` still holds exactly the same rows in ``after``: same
    count, same data digest (order and physical layout do not count; a rewrite is fine).
    A migration that adds or changes a column changes every row's contents by design: compare
    with ``counts_only=True`` across it, and exactly after its rollback.

    Either side is a list of :class:`~pgsafe.backup.datafp.TableFingerprint` (from
    ``harness.data_fingerprint()``) or a target fingerprinted now. Tables only in ``after`` are
    new, not lost, and are ignored. The message names each table with its counts."""
    __tracebackhide__ = True
    old = _data_of(before, tables)
    # Every table afterwards: one named in `tables` may be gone, which is reported, not raised.
    new = {f.table: f for f in _data_of(after, None)}
    problems: list[str] = []
    for f in old:
        now = new.get(f.table)
        if now is None:
            problems.append(f"{f.table}: gone (had {f.rows} rows)")
        elif now.rows != f.rows:
            delta = now.rows - f.rows
            what = f"{-delta} lost" if delta < 0 else f"{delta} added"
            problems.append(f"{f.table}: {f.rows} rows before, {now.rows} after ({what})")
        elif now.digest != f.digest and not counts_only:
            problems.append(
                f"{f.table}: {f.rows} rows before and after, but their contents changed "
                f"(digest {f.digest[:12]} -> {now.digest[:12]})"
            )
    if problems:
        raise DataLossError(problems)


@contextlib.contextmanager
def no_data_loss(
    target: Target, tables: Sequence[str] | None = None
) -> Iterator[list[TableFingerprint]]:
    """``with no_data_loss(db): harness.apply(); harness.rollback()`` fingerprints the data
    before the block and asserts it is unchanged after it (see :func:`assert_no_data_loss`).
    The block sees the "before" fingerprints."""
    __tracebackhide__ = True
    before = _data_of(target, tables)
    yield before
    assert_no_data_loss(before, target)
