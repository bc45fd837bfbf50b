"""`pgsafe test`: seed 002's CI job on a throwaway server. Apply everything, roll everything
back, apply again, with schema parity at every step; a per-migration stairway (up, down, up);
data preservation with generated rows; which migrations can be re-run. Built only on
`pgsafe.migrations.discover` and the Runner, so any source discover accepts works."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pgsafe.analysis.touches import CheckAdded, ForeignKey, Touches, analyse
from pgsafe.backup.datafp import TableFingerprint
from pgsafe.backup.datafp import fingerprint as data_fingerprint
from pgsafe.config import Settings
from pgsafe.errors import DatabaseError, Error
from pgsafe.lifecycle.runner import Runner
from pgsafe.lifecycle.trace import (
    NotCheckable,
    available_extensions,
    missing_extension,
    needed_extensions,
)
from pgsafe.quoting import quote_qualified
from pgsafe.schema import Difference, SchemaFingerprint, diff, render_diff
from pgsafe.schema import fingerprint as schema_fingerprint
from pgsafe.server import TemporaryDatabase, TemporaryServer
from pgsafe.sources.files import Migration
from pgsafe.sources.layouts import discover, run_verify
from pgsafe.testing.report import CheckResult, RoundtripReport, Status
from pgsafe.testing.rowgen import fill

__all__ = ["CheckResult", "RoundtripReport", "run_tests"]

Progress = Callable[[str], None]


# -- the run ---------------------------------------------------------------------------------

DataState = dict[str, TableFingerprint]  # by quoted schema-qualified name


# The object to name first: the container before what hangs off it (a table, not its columns).
_KIND_ORDER = [
    "schema",
    "extension",
    "enum",
    "domain",
    "composite type",
    "range type",
    "table",
    "view",
    "materialized view",
    "sequence",
    "function",
    "procedure",
    "aggregate",
    "column",
    "constraint",
    "index",
    "trigger",
    "policy",
    "rule",
]


def _first(differences: list[Difference]) -> str:
    rank = {k: i for i, k in enumerate(_KIND_ORDER)}
    d = min(differences, key=lambda x: rank.get(x.kind, len(rank)))
    return f"{d.change} {d.label}"


class _Run:
    def __init__(
        self,
        path: Path,
        migrations: list[Migration],
        server: TemporaryServer,
        report: RoundtripReport,
        *,
        rows: int,
        settings: Settings,
        progress: Progress,
    ) -> None:
        self.path = path
        self.migs = migrations
        self.server = server
        self.report = report
        self.rows = rows
        self.settings = settings
        self.progress = progress
        self.dbs: list[TemporaryDatabase] = []
        # One idle session per database for the schema fingerprints and catalog questions,
        # instead of a connection each; closed before the database is cloned.
        self._sessions: dict[str, Any] = {}
        self._touches: dict[str, Touches] = {}
        self._step = 0
        self._available: set[str] | None = None  # extensions the server can install
        self.cancelled = threading.Event()  # set when the run was interrupted elsewhere

    # helpers ---------------------------------------------------------------------------

    def new_db(self) -> TemporaryDatabase:
        db = self.server.new_database(prefix="pgsafe_test")
        self.dbs.append(db)
        return db

    def session(self, db: TemporaryDatabase) -> Any:
        conn = self._sessions.get(db.name)
        if conn is None:
            conn = self._sessions[db.name] = db.connect("pgsafe-test")
        return conn

    def end_session(self, db: TemporaryDatabase) -> None:
        conn = self._sessions.pop(db.name, None)
        if conn is not None:
            with contextlib.suppress(Error):
                conn.close()

    def add(self, result: CheckResult) -> CheckResult:
        self.report.results.append(result)
        if result.status == "fail":
            self.progress(f"  FAIL {result.phase}.{result.check} {result.migration}".rstrip())
        return result

    def runner(self, db: TemporaryDatabase) -> Runner:
        # The ledger's schema record is for preflight's drift check on a real target: on a
        # throwaway database nothing reads it, and the checks take their own fingerprints.
        return Runner(
            self.path, db.dsn, settings=self.settings, migrations=self.migs, record_schema=False
        )

    def up(self, db: TemporaryDatabase, m: Migration) -> str | None:
        try:
            self.runner(db).apply(to=m.version)
        except Error as exc:
            return str(exc)
        self.verify(db, m)
        return None

    def verify(self, db: TemporaryDatabase, m: Migration) -> None:
        """A sqitch verify script after each up of its change: a check of its own."""

        started = time.monotonic()
        try:
            outcome = run_verify(db.dsn, m)
        except Error as exc:
            outcome = (False, str(exc))
        if outcome is not None:
            ok, message = outcome
            status: Status = "pass" if ok else "fail"
            took = time.monotonic() - started
            self.add(CheckResult("verify", "verify", m.label, status, message, None, "", took))

    def down(self, db: TemporaryDatabase) -> str | None:
        try:
            self.runner(db).rollback(steps=1)
        except Error as exc:
            return str(exc)
        return None

    def step_failed(
        self, phase: str, check: str, m: Migration, message: str, started: float
    ) -> None:
        """An up or down of `m` failed: record it (told once: `message` holds the error),
        timed from `started`."""
        seconds = time.monotonic() - started
        self.add(CheckResult(phase, check, m.label, "fail", message, None, "", seconds))

    def schema(self, db: TemporaryDatabase) -> SchemaFingerprint:
        return schema_fingerprint(self.session(db))

    def data(self, db: TemporaryDatabase) -> DataState:
        return {f.table: f for f in data_fingerprint(db.dsn, workers=1)}

    def touches(self, m: Migration) -> Touches:
        if m.version not in self._touches:
            self._touches[m.version] = analyse(m.up_statements())
        return self._touches[m.version]

    def parity(
        self,
        phase: str,
        check: str,
        m: Migration | None,
        expected: SchemaFingerprint,
        actual: SchemaFingerprint,
        what: str,
        started: float,
        ignore: set[tuple[str, str]] | None = None,
    ) -> list[Difference]:
        differences = [
            d for d in diff(expected, actual) if (d.kind, d.name) not in (ignore or set())
        ]
        label = m.label if m else ""
        if differences:
            self.add(
                CheckResult(
                    phase,
                    check,
                    label,
                    "fail",
                    f"{what}: {len(differences)} object(s) differ, first: {_first(differences)}",
                    _first(differences),
                    render_diff(differences, "expected", "actual"),
                    time.monotonic() - started,
                )
            )
        else:
            self.add(
                CheckResult(
                    phase,
                    check,
                    label,
                    "pass",
                    f"{what}: schema equal",
                    None,
                    "",
                    time.monotonic() - started,
                )
            )
        return differences

    def fill(self, db: TemporaryDatabase, m: Migration) -> None:
        """Generated rows after `m`, satisfying the constraints later migrations add."""
        self._step += 1
        later = [self.touches(n) for n in self.migs[self.migs.index(m) + 1 :]]
        planned: list[ForeignKey | CheckAdded] = []
        for t in later:
            planned += t.foreign_keys
            planned += t.checks
        # A session of its own: triggers fire on these rows, and PL/pgSQL plans a long-lived
        # session cached before a migration changed a column's type would fail.
        with contextlib.closing(db.connect("pgsafe-test")) as conn:
            skipped = fill(conn, self.rows, self._step, planned=planned)
        for table, why in skipped.items():
            self.report.unfilled_tables.setdefault(table, why)

    # data checks -----------------------------------------------------------------------

    def data_up(self, m: Migration, before: DataState, after: DataState, started: float) -> None:
        t = self.touches(m)
        problems: list[str] = []
        notes: list[str] = []
        for name, b in before.items():
            schema, table = _split(name)
            a = after.get(name)
            renamed = next(
                (new for old, new in t.renamed.items() if _same(old, schema, table)), None
            )
            if a is None and renamed is not None:
                a = after.get(quote_qualified(renamed[0] or schema, renamed[1]))
            if a is None:
                if t.deletes(schema, table):
                    notes.append(f"drops {name} with {b.rows} row(s) (by design: DROP)")
                else:
                    problems.append(f"{name} ({b.rows} rows) no longer exists")
                continue
            if not t.mentions(schema, table) and renamed is None:
                if (a.rows, a.digest) != (b.rows, b.digest):
                    hint = " (a DO block or function call may have changed it)" if t.opaque else ""
                    problems.append(
                        f"{name}, which the migration does not name, changed: rows "
                        f"{b.rows} -> {a.rows}, data digest differs{hint}"
                    )
            elif a.rows < b.rows:
                if t.deletes(schema, table):
                    notes.append(f"deletes {b.rows - a.rows} row(s) of {name} (by design)")
                else:
                    problems.append(f"{name} lost {b.rows - a.rows} of {b.rows} rows")
        self._data_result("data-up", m, problems, notes, started, "up keeps existing rows")

    def data_down(self, m: Migration, before: DataState, after: DataState, started: float) -> None:
        problems = []
        for name, b in before.items():
            a = after.get(name)
            if a is None:
                problems.append(
                    f"{name} existed before {m.label} with {b.rows} row(s) and is gone after "
                    "its up and down"
                )
            elif a.rows != b.rows:
                problems.append(f"{name}: {b.rows} rows before up, {a.rows} after down")
            elif a.digest != b.digest:
                problems.append(
                    f"{name}: same {a.rows} rows but different values after up and down (the up "
                    "rewrote data its down cannot restore)"
                )
        self._data_result("data-down", m, problems, [], started, "up then down restores the data")

    def _data_result(
        self,
        check: str,
        m: Migration,
        problems: list[str],
        notes: list[str],
        started: float,
        ok: str,
    ) -> None:
        seconds = time.monotonic() - started
        if problems:
            self.add(
                CheckResult(
                    "data",
                    check,
                    m.label,
                    "fail",
                    f"data loss in {m.label}: {problems[0]}"
                    + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""),
                    None,
                    "\n".join(problems + notes),
                    seconds,
                )
            )
        elif notes:
            self.add(
                CheckResult("data", check, m.label, "warn", "; ".join(notes), None, "", seconds)
            )
        else:
            self.add(CheckResult("data", check, m.label, "pass", ok, None, "", seconds))

    # idempotency -----------------------------------------------------------------------

    def rerun(self, db: TemporaryDatabase, m: Migration) -> None:
        started = time.monotonic()
        # What the migration's author wrote: a tool's own bookkeeping (Alembic creating and
        # updating alembic_version) is not the migration's to re-run.
        statements = m.up_statements(own=True)
        error = None
        if any(s.non_transactional for s in statements):
            # Cannot run in a transaction block: run it on a scratch copy instead.
            self.end_session(db)  # CREATE DATABASE ... TEMPLATE refuses while it is open
            try:
                scratch = self._clone(db)
            except Error as exc:
                self.add(
                    CheckResult("idempotency", "rerun", m.label, "warn", f"could not check: {exc}")
                )
                return
            try:
                with contextlib.closing(scratch.connect("pgsafe-test")) as conn:
                    conn.execute("SET lock_timeout = '5s'")
                    conn.execute("SET statement_timeout = '60s'")
                    error = _run_all(conn, statements)
            finally:
                scratch.drop()
        else:
            with contextlib.closing(db.connect("pgsafe-test")) as conn:
                conn.execute("BEGIN")
                try:
                    conn.execute("SET LOCAL lock_timeout = '5s'")
                    conn.execute("SET LOCAL statement_timeout = '60s'")
                    error = _run_all(conn, statements)
                finally:
                    conn.execute("ROLLBACK")
        seconds = time.monotonic() - started
        if error:
            self.add(
                CheckResult(
                    "idempotency",
                    "rerun",
                    m.label,
                    "warn",
                    f"not re-runnable: {error}",
                    None,
                    "",
                    seconds,
                )
            )
        else:
            self.add(
                CheckResult(
                    "idempotency",
                    "rerun",
                    m.label,
                    "pass",
                    "the up runs again cleanly",
                    None,
                    "",
                    seconds,
                )
            )

    def _clone(self, db: TemporaryDatabase) -> TemporaryDatabase:
        """A scratch copy of `db`. The backend of a session that just closed may still be
        attached for a moment, and CREATE DATABASE ... TEMPLATE refuses while it is."""
        for attempt in range(100):
            try:
                return self.server.new_database(template=db.name, prefix="pgsafe_scratch")
            except DatabaseError as exc:
                if exc.sqlstate != "55006" or attempt == 99:
                    raise
                time.sleep(0.02)
        raise AssertionError("unreachable")

    # phases ----------------------------------------------------------------------------

    def after_up(
        self,
        db: TemporaryDatabase,
        m: Migration,
        before: DataState | None,
        data: bool,
        idempotency: bool,
        started: float,
    ) -> None:
        if data and before is not None:
            self.data_up(m, before, self.data(db), started)
        if idempotency:
            self.rerun(db, m)
        if data:
            self.fill(db, m)

    # keep checking after a failure ----------------------------------------------------

    def missing_extensions(self, db: TemporaryDatabase, m: Migration) -> list[str]:
        """Extensions the up creates that the test server cannot install."""
        wanted = [
            str(s.node.get("extname"))
            for s in m.up_statements()
            if s.kind == "CreateExtensionStmt" and s.node.get("extname")
        ]
        if not wanted:
            return []
        if self._available is None:
            rows = self.session(db).execute("SELECT name FROM pg_available_extensions").rows
            self._available = {str(r[0]) for r in rows}
        return [name for name in dict.fromkeys(wanted) if name not in self._available]

    def not_checked(self, phase: str, m: Migration, missing: list[str]) -> None:
        plural = "s" if len(missing) > 1 else ""
        why = (
            f"needs the extension{plural} {', '.join(missing)}, which the test server "
            f"(PostgreSQL {self.report.server_version}) does not have"
        )
        if m.label not in self.report.not_checked:
            self.report.not_checked[m.label] = why
            self.progress(f"{m.label} not checked: {why}")
        self.add(CheckResult(phase, "up", m.label, "skip", f"not checked: {why}"))

    def rest_not_checked(self, phase: str, after: int, why: str) -> None:
        """The migrations after position `after` cannot be applied: say so, once."""
        rest = self.migs[after + 1 :]
        if not rest:
            return
        names = rest[0].label + (f" .. {rest[-1].label}" if len(rest) > 1 else "")
        self.add(
            CheckResult(
                phase,
                "up",
                "",
                "skip",
                f"not checked: {len(rest)} migration(s) after {self.migs[after].label} "
                f"({names}): {why}",
            )
        )

    def roundtrip(self, *, data: bool, idempotency: bool) -> None:
        started = time.monotonic()
        try:
            self._roundtrip(data=data, idempotency=idempotency)
        finally:
            self.progress(f"round trip: done in {time.monotonic() - started:.1f}s")

    def _roundtrip(self, *, data: bool, idempotency: bool) -> None:
        """Apply all, roll back all, apply all, with schema parity at every step. When an up
        cannot be applied (it fails, or needs an extension the server lacks), what was applied
        before it is still rolled back and applied again: a broken down does not hide behind a
        later broken up."""
        db = self.new_db()
        self.progress(f"round trip: apply {len(self.migs)}, roll back, apply again")
        base = self.schema(db)
        fps = [base]
        applied = 0
        for i, m in enumerate(self.migs):
            started = time.monotonic()
            missing = self.missing_extensions(db, m)
            if missing:
                self.not_checked("roundtrip", m, missing)
                self.rest_not_checked("roundtrip", i, f"they come after {m.label}")
                break
            before = self.data(db) if data else None
            err = self.up(db, m)
            if err:
                self.step_failed("roundtrip", "up", m, f"up failed: {err}", started)
                self.rest_not_checked("roundtrip", i, f"{m.label} failed before them")
                break
            applied += 1
            fps.append(self.schema(db))
            self.add(
                CheckResult(
                    "roundtrip",
                    "up",
                    m.label,
                    "pass",
                    "applied",
                    None,
                    "",
                    time.monotonic() - started,
                )
            )
            self.after_up(db, m, before, data, idempotency, started)
        if applied < len(self.migs) and applied:
            self.progress(
                f"round trip goes on with the {applied} migration(s) applied before "
                f"{self.migs[applied].label}: rolled back and applied again"
            )
        # Roll back what was applied, newest first, comparing with the schema before each.
        leftovers: dict[tuple[str, str], str] = {}
        rolled: list[int] = []
        for i in reversed(range(applied)):
            m = self.migs[i]
            started = time.monotonic()
            if m.down_path is None:
                self.add(
                    CheckResult(
                        "roundtrip",
                        "down",
                        m.label,
                        "skip",
                        "no down file (irreversible): the rollback stops here",
                    )
                )
                break
            err = self.down(db)
            if err:
                # Its transaction rolled back: the database is as after its up, so what was
                # rolled back before it can still be applied again.
                self.step_failed("roundtrip", "down", m, f"down failed: {err}", started)
                break
            rolled.append(i)
            got = self.schema(db)
            differences = self.parity(
                "roundtrip",
                "down-parity",
                m,
                fps[i],
                got,
                f"after the down of {m.label} vs before its up",
                started,
                set(leftovers),
            )
            for d in differences:
                leftovers[(d.kind, d.name)] = m.label
        if rolled and rolled[-1] == 0:
            started = time.monotonic()
            got = self.schema(db)
            differences = diff(base, got)
            if differences:
                who = sorted({leftovers.get((d.kind, d.name), "?") for d in differences})
                self.add(
                    CheckResult(
                        "roundtrip",
                        "baseline-parity",
                        "",
                        "fail",
                        "after rolling back everything the schema differs from the empty "
                        "database: "
                        f"{len(differences)} object(s), first: {_first(differences)} "
                        f"(left by {', '.join(who)})",
                        _first(differences),
                        render_diff(differences, "empty", "rolled back"),
                        time.monotonic() - started,
                    )
                )
            else:
                self.add(
                    CheckResult(
                        "roundtrip",
                        "baseline-parity",
                        "",
                        "pass",
                        "rolled back to the empty schema",
                        None,
                        "",
                        time.monotonic() - started,
                    )
                )
        # Apply again: each step must give the same schema as the first time.
        for i in sorted(rolled):
            m = self.migs[i]
            started = time.monotonic()
            err = self.up(db, m)
            if err:
                self.step_failed(
                    "roundtrip", "reapply", m, f"up failed after the rollback: {err}", started
                )
                return
            self.parity(
                "roundtrip",
                "reapply-parity",
                m,
                fps[i + 1],
                self.schema(db),
                f"{m.label} applied again vs the first time",
                started,
                set(leftovers),  # already blamed on the down that left them
            )

    def stairway(self, *, data: bool, idempotency: bool) -> None:
        started = time.monotonic()
        try:
            self._stairway(data=data, idempotency=idempotency)
        finally:
            self.progress(f"stairway: done in {time.monotonic() - started:.1f}s")

    def _stairway(self, *, data: bool, idempotency: bool) -> None:
        """Up, down, up for each migration in turn, with schema parity and data checks. A
        failed down leaves the migration applied, so the next one is still checked."""
        db = self.new_db()
        self.progress(f"stairway: up, down, up for each of {len(self.migs)} migrations")
        # The schema the previous step left (its re-up's fingerprint): generated rows and the
        # rolled-back re-run that follow it change no schema, so it is the next one's "before".
        left: SchemaFingerprint | None = None
        for i, m in enumerate(self.migs):
            if self.cancelled.is_set():
                return
            started = time.monotonic()
            missing = self.missing_extensions(db, m)
            if missing:
                self.not_checked("stairway", m, missing)
                self.rest_not_checked("stairway", i, f"they come after {m.label}")
                return
            before_fp = left if left is not None else self.schema(db)
            left = None
            before = self.data(db) if data else None
            err = self.up(db, m)
            if err:
                self.step_failed("stairway", "up", m, f"up failed: {err}", started)
                self.rest_not_checked("stairway", i, f"{m.label} failed before them")
                return
            after_fp = self.schema(db)
            if data and before is not None:
                self.data_up(m, before, self.data(db), started)
            if m.down_path is None:
                self.add(
                    CheckResult(
                        "stairway", "down-parity", m.label, "skip", "no down file (irreversible)"
                    )
                )
                left = after_fp
            else:
                started = time.monotonic()
                err = self.down(db)
                if err:
                    self.step_failed("stairway", "down", m, f"down failed: {err}", started)
                else:
                    self.parity(
                        "stairway",
                        "down-parity",
                        m,
                        before_fp,
                        self.schema(db),
                        f"after the down of {m.label} vs before its up",
                        started,
                    )
                    if data and before is not None:
                        self.data_down(m, before, self.data(db), time.monotonic())
                    started = time.monotonic()
                    err = self.up(db, m)
                    if err:
                        self.step_failed(
                            "stairway", "reup", m, f"up failed after its own down: {err}", started
                        )
                        self.rest_not_checked("stairway", i, f"{m.label} failed before them")
                        return
                    left = self.schema(db)
                    self.parity(
                        "stairway",
                        "reup-parity",
                        m,
                        after_fp,
                        left,
                        f"{m.label} up, down, up vs the first up",
                        started,
                    )
            if idempotency:
                self.rerun(db, m)
            if data:
                self.fill(db, m)

    def close(self) -> None:
        for db in self.dbs:
            self.end_session(db)
        for db in self.dbs:
            with contextlib.suppress(Error):
                db.drop()


def _run_all(conn: Any, statements: Sequence[Any]) -> str | None:
    for s in statements:
        try:
            conn.execute(s.sql)
        except DatabaseError as exc:
            return f"line {s.line}: {exc.message}"
    return None


def _split(qualified: str) -> tuple[str, str]:
    """Inverse of the core's quote_ident(schema) || '.' || quote_ident(name)."""
    parts: list[str] = []
    i, cur = 0, ""
    while i < len(qualified):
        ch = qualified[i]
        if ch == '"':
            j = i + 1
            while j < len(qualified):
                if qualified[j] == '"' and qualified[j + 1 : j + 2] == '"':
                    cur += '"'
                    j += 2
                elif qualified[j] == '"':
                    break
                else:
                    cur += qualified[j]
                    j += 1
            i = j + 1
        elif ch == "." and len(parts) == 0:
            parts.append(cur)
            cur = ""
            i += 1
        else:
            cur += ch
            i += 1
    parts.append(cur)
    return (parts[0], parts[1]) if len(parts) == 2 else ("public", parts[0])


def _same(name: tuple[str | None, str], schema: str, table: str) -> bool:
    return name[1] == table and (name[0] or "public") == schema


@contextlib.contextmanager
def _server(server: TemporaryServer | None, pg_version: int | None) -> Iterator[TemporaryServer]:
    if server is not None:
        yield server
        return
    with TemporaryServer(pg_version=pg_version) as started:
        yield started


def _both(run: _Run, *, data: bool, idempotency: bool) -> None:
    """The round trip on `run`'s server and, at the same time, the stairway (with the data
    checks and the idempotency report) on a server of its own, of the same installation: the
    two phases share nothing, not even roles or tablespaces, which belong to a whole server.
    The results are told in the same order as when they run one after the other."""
    part = RoundtripReport(run.report.source, run.report.migrations)
    part.server_version = run.report.server_version
    stop = threading.Event()

    def stairway() -> None:
        with TemporaryServer(bindir=run.server.installation.bindir) as other:
            st = _Run(
                run.path,
                run.migs,
                other,
                part,
                rows=run.rows,
                settings=run.settings,
                progress=run.progress,
            )
            st.cancelled = stop
            try:
                st.stairway(data=data, idempotency=idempotency)
            finally:
                st.close()

    with ThreadPoolExecutor(1, thread_name_prefix="pgsafe-stairway") as pool:
        future = pool.submit(stairway)
        try:
            run.roundtrip(data=False, idempotency=False)
            future.result()
        except BaseException:
            stop.set()  # interrupted or failed: the stairway stops at its next migration
            raise
    run.report.results.extend(part.results)
    run.report.unfilled_tables.update(part.unfilled_tables)
    for label, why in part.not_checked.items():
        run.report.not_checked.setdefault(label, why)


def run_tests(
    path: str | Path = "migrations",
    *,
    server: TemporaryServer | None = None,
    rows: int = 10,
    stairway: bool = True,
    data: bool = True,
    idempotency: bool = True,
    settings: Settings | None = None,
    progress: Progress | None = None,
    pg_version: int | None = None,
) -> RoundtripReport:
    """Runs the round trip, the stairway (unless `stairway` is false), the data preservation
    checks (`rows` generated rows per table after every step) and the idempotency report for
    the migrations at `path`, on fresh databases of `server` (default: a throwaway server of
    major `pg_version`, else the configured one, else the newest found, started and stopped
    here). The report's `failed` is true when any check failed. A migration that creates an
    extension the server lacks is not checked (the report's `not_checked` says why) and the
    checks go on with the migrations after it."""

    migs = discover(path)
    for m in migs:  # bad SQL is a config error, before any server starts
        m.up_statements()
        if m.down_path is not None:
            m.down_statements()
    settings = settings or Settings()
    say = progress or (lambda _m: None)
    report = RoundtripReport(str(path), [m.label for m in migs])
    started = time.monotonic()
    with _server(server, pg_version) as srv:
        report.server_version = srv.version
        report.server = srv.installation.describe()
        first_needs = needed_extensions(migs[0].up_statements()) if migs else []
        lacking = [e for e in first_needs if e not in available_extensions(srv)]
        if lacking:  # not even the first migration can run here: nothing would be checked
            why = missing_extension(lacking[0], srv)
            raise NotCheckable(f"nothing to check: {migs[0].label} {why}")
        run = _Run(Path(path), migs, srv, report, rows=rows, settings=settings, progress=say)
        try:
            if migs and stairway and server is None:
                _both(run, data=data, idempotency=idempotency)
            elif migs:
                # Data checks and the idempotency report run once: in the stairway when there
                # is one, else along the round trip's first apply.
                run.roundtrip(data=data and not stairway, idempotency=idempotency and not stairway)
                if stairway:
                    run.stairway(data=data, idempotency=idempotency)
        finally:
            run.close()
    if not any(r.status in ("pass", "fail") for r in report.results):
        # Nothing was checked: that is never a pass.
        report.results.append(
            CheckResult("roundtrip", "checks", "", "fail", f"no check ran on {path}")
        )
    report.seconds = time.monotonic() - started
    return report
