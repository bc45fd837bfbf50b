"""Status, apply, rollback and repair of a migrations directory on one database: the Python
side decides what runs and reports it; the C++ executor runs it (transactions, timeouts,
retries, ledger) under the migration lock."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgsafe import _core
from pgsafe.analysis.statement import batch_statements
from pgsafe.config import Settings, applied_by, describe_target, pgsafe_version
from pgsafe.db import connect
from pgsafe.errors import (
    ChecksumMismatch,
    ConfigError,
    DatabaseError,
    DirtyMigrationError,
    Error,
    MigrationFailed,
    RollbackError,
    RollbackFailed,
    UnsafeError,
)
from pgsafe.events import EventLog
from pgsafe.lifecycle.fingerprints import last_fingerprint, record_fingerprint
from pgsafe.quoting import quote_ident
from pgsafe.render import Report, Section, Table
from pgsafe.sources.files import Migration, Statement
from pgsafe.sources.history import Applied, History, read_history
from pgsafe.sources.layouts import discover

if TYPE_CHECKING:
    from pgsafe.sources.history import History

log = logging.getLogger("pgsafe")

Progress = Callable[[str], None]


@dataclass
class MigrationState:
    version: str
    name: str
    state: str  # applied | pending | dirty | changed | missing-file
    checksum: str | None  # of the file on disk
    recorded_checksum: str | None = None
    applied_at: str | None = None
    applied_by: str | None = None
    duration_s: float | None = None
    retries: int | None = None
    dirty_reason: str | None = None
    has_down: bool = False
    label: str | None = None  # as the migration's tool names it (a file or directory name)
    # Applied by another tool, read from its history table (pgsafe's ledger has no row yet):
    # "flyway", "diesel", ... (`pgsafe repair --adopt` writes the ledger rows).
    applied_by_tool: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StatusReport(Report):
    target: str
    ledger_schema: str
    migrations: list[MigrationState]

    title = "pgsafe status"

    def count(self, state: str) -> int:
        return sum(1 for m in self.migrations if m.state == state)

    # States apply refuses to go on from: `pgsafe status` exits 1 when it shows one.
    NEEDS_ATTENTION = ("dirty", "changed", "missing-file")

    @property
    def attention(self) -> list[MigrationState]:
        """Migrations that stop every apply until someone acts: dirty, changed after they
        were applied, or applied with their file gone."""
        return [m for m in self.migrations if m.state in self.NEEDS_ATTENTION]

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.target,
            "ledger_schema": self.ledger_schema,
            "applied": self.count("applied"),
            "pending": self.count("pending"),
            "dirty": self.count("dirty"),
            "changed": self.count("changed"),
            "missing_file": self.count("missing-file"),
            "migrations": [m.to_json() for m in self.migrations],
        }

    def to_dict(self) -> dict[str, Any]:
        return self.to_json()

    def summary(self) -> str:
        return (
            f"{self.target}: {self.count('applied')} applied, {self.count('pending')} pending, "
            f"{self.count('dirty')} dirty, {self.count('changed')} changed"
        )

    def sections(self) -> list[Section]:
        rows = [
            (m.version, m.name, m.state, m.applied_at, m.duration_s, m.retries, m.dirty_reason)
            for m in self.migrations
        ]
        columns = ("version", "name", "state", "applied at", "seconds", "retries", "dirty reason")
        return [Section("Migrations", [Table(columns, rows, "no migrations")])]

    def render_text(self) -> str:
        lines = [f"database: {self.target}"]
        width = max((len(m.label or f"{m.version}_{m.name}") for m in self.migrations), default=10)
        for m in self.migrations:
            label = (m.label or f"{m.version}_{m.name}").ljust(width)
            extra = ""
            if m.state == "applied" and m.applied_by_tool:
                extra = f"  applied by {m.applied_by}"
                if m.applied_at:
                    extra += f"  {m.applied_at}"
            elif m.state == "applied":
                extra = f"  {m.applied_at}  {m.duration_s or 0:.3f}s"
                if m.retries:
                    extra += f"  {m.retries} retries"
            elif m.state == "dirty":
                extra = f"  {m.dirty_reason or ''}  -> pgsafe repair {m.version} --mark ..."
            elif m.state == "changed":
                extra = "  file changed after it was applied (pgsafe repair --rebaseline)"
            lines.append(f"  {label}  {m.state:<12}{extra}".rstrip())
        lines.append(
            f"{self.count('applied')} applied, {self.count('pending')} pending, "
            f"{self.count('dirty')} dirty, {self.count('changed')} changed"
        )
        return "\n".join(lines)


@dataclass
class StepResult:
    version: str
    name: str
    direction: str
    status: str
    duration_s: float
    statements: int
    retries: int
    rebuilt_indexes: list[str]
    estimate: str | None = None  # the dry-run's runtime estimate, shown beside the actual
    slow: bool = False  # ran longer than the slow-migration threshold (seed 002: 5 min)


# Seed 002 warns on migrations that run longer than 5 minutes.
SLOW_MIGRATION_S = 300.0


class Runner:
    def __init__(
        self,
        source: str | Path,
        dsn: str,
        *,
        settings: Settings | None = None,
        events: EventLog | None = None,
        progress: Progress | None = None,
        target_label: str | None = None,
        slow_migration_s: float = SLOW_MIGRATION_S,
        estimates: dict[str, str] | None = None,
        record_schema: bool = True,
        migrations: list[Migration] | None = None,
    ) -> None:
        self.source = Path(source)
        # Discovered once by the caller (pgsafe test's many runners): an Alembic project is
        # rendered revision by revision, too slow to repeat for every step.
        self._migrations = migrations
        # Record the schema fingerprint after each run, for preflight's drift check.
        self.record_schema = record_schema
        self.slow_migration_s = slow_migration_s
        # version -> the dry-run's runtime estimate, reported beside the measured duration
        self.estimates: dict[str, str] = dict(estimates or {})
        self.dsn = dsn
        self.settings = settings or Settings()
        self.events = events or EventLog(None)
        self.progress: Progress = progress or (lambda _msg: None)
        self.ledger = _core.Ledger(self.settings.ledger_schema)
        self.target_label = describe_target(dsn, target_label)
        self._lock_pid = 0
        self.results: list[StepResult] = []  # of the last apply or rollback, even a failed one

    # -- reading ---------------------------------------------------------------------------

    def migrations(self) -> list[Migration]:
        if self._migrations is not None:
            return list(self._migrations)
        return discover(self.source)

    def history(self, conn: _core.Connection, migs: list[Migration]) -> History:
        """What the tool whose layout this is (golang-migrate, Flyway, diesel, ...) recorded in
        its own history table on the target."""

        return read_history(conn, self.source, migs)

    def _states(
        self, migs: list[Migration], rows: list[Any], history: History | None = None
    ) -> list[MigrationState]:
        by_version = {r.version: r for r in rows}
        by_number = {int(r.version): r for r in rows if r.version.isdigit()}
        for mig in migs:
            # An Alembic revision's sort_key is its place in the graph, not a number in its name.
            other = by_number.get(mig.sort_key) if mig.order is None else None
            if other is not None and other.version != mig.version:
                # Re-padding or renaming a version must not make an applied migration pending.
                raise ConfigError(
                    f"{mig.up_path}: the ledger knows this migration as version {other.version} "
                    f"({other.name}); restore the file name or the ledger will apply it twice"
                )
        out: list[MigrationState] = []
        for mig in migs:
            row = by_version.pop(mig.version, None)
            st = MigrationState(
                mig.version,
                mig.name,
                "pending",
                mig.checksum,
                has_down=mig.down_path is not None,
                label=mig.label,
            )
            other = history.applied.get(mig.version) if history is not None else None
            if row is None and other is not None:
                # pgsafe's ledger has no word on it: the other tool's history has.
                st.state, st.applied_at = other.state, other.applied_at
                st.dirty_reason, st.applied_by, st.applied_by_tool = (
                    other.reason,
                    other.source,
                    other.tool,
                )
            if row is not None:
                st.recorded_checksum = row.checksum
                st.dirty_reason = row.dirty_reason or None
                if row.status == "dirty":
                    st.state = "dirty"
                elif row.status == "applied":
                    st.state = "applied" if row.checksum == mig.checksum else "changed"
                    if st.state == "changed" and mig.repeatable:
                        st.state = "pending"  # a repeatable runs again when its file changed
                if row.status != "rolled_back":
                    st.applied_at, st.applied_by = row.applied_at, row.applied_by
                    st.duration_s, st.retries = row.duration_s, row.retries
            out.append(st)
        for row in by_version.values():
            if row.status == "rolled_back":
                continue
            out.append(
                MigrationState(
                    row.version,
                    row.name,
                    "missing-file",
                    None,
                    row.checksum,
                    row.applied_at,
                    row.applied_by,
                    row.duration_s,
                    row.retries,
                    row.dirty_reason or None,
                )
            )
        if all(m.order is None for m in migs) and all(s.version.isdigit() for s in out):
            out.sort(key=lambda s: int(s.version))  # numbered files, missing ones in place
        else:
            # In the source's order (an Alembic revision id says nothing about its place);
            # ledger rows without a file last.
            place = {m.version: i for i, m in enumerate(migs)}
            out.sort(key=lambda s: place.get(s.version, len(place)))
        return out

    def status(self) -> StatusReport:
        migs = self.migrations()
        with contextlib.closing(connect(self.dsn, self.settings)) as conn:
            rows = self.ledger.rows(conn)
            history = self.history(conn, migs)
        return StatusReport(
            self.target_label, self.settings.ledger_schema, self._states(migs, rows, history)
        )

    # -- applying --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[tuple[_core.Connection, _core.MigrationLock]]:
        """The work connection and the migration lock held on its own session."""
        lock_conn = connect(self.dsn, self.settings, "lock")
        try:
            lock = _core.MigrationLock(
                lock_conn, _core.migration_lock_key(self.settings.ledger_schema)
            )
            self.progress(
                f"waiting for the migration lock on {self.target_label}"
                if not lock.try_acquire()
                else "migration lock taken"
            )
            if not lock.held:
                lock.acquire(self.settings.lock_wait_s, self.settings.lock_backoff())
                self.progress("migration lock taken")
            self.events.write("lock_acquired", database=self.target_label)
            if lock_conn.server_version >= 140000:
                # The lock lives as long as this idle session: no server timeout may end it.
                lock_conn.execute("SET idle_session_timeout = 0")
            self._lock_pid = lock_conn.backend_pid
            conn = connect(self.dsn, self.settings)
            try:
                self._reset_session(conn)
                yield conn, lock
            finally:
                conn.close()
                try:
                    lock.release()
                except Error as exc:  # the session is gone, and the lock with it
                    log.warning("releasing the migration lock: %s", exc)
                self.events.write("lock_released", database=self.target_label)
        finally:
            lock_conn.close()
            self._lock_pid = 0

    def _reset_session(self, conn: _core.Connection) -> None:
        """A clean session for the next migration: nothing one sets (search_path, role, temp
        tables) leaks into the next."""
        conn.execute("DISCARD ALL")
        if conn.server_version >= 140000:
            # A runner killed mid-statement is noticed by the server within seconds, so its
            # transaction (and its locks) do not outlive it.
            conn.execute("SET client_connection_check_interval = '2s'")

    def _check_clean(self, states: list[MigrationState]) -> None:
        for st in states:
            if st.state == "missing-file":
                raise UnsafeError(
                    f"migration {st.version}_{st.name} is {st.state.replace('-', ' ')}: it is "
                    f"applied on the database but not in {self.source}; restore the file"
                )
            if st.state == "dirty":
                raise DirtyMigrationError(st.version, st.name, st.dirty_reason or "")
            if st.state == "changed":
                raise ChecksumMismatch(
                    st.version, st.name, st.recorded_checksum or "", st.checksum or ""
                )

    def _position(self, migs: list[Migration], to: str) -> int:
        """The place in `migs` of the migration `to` names: its version as written, the same
        number (2 for 002), the version without dashes (diesel), or its label."""

        def exact(m: Migration) -> bool:
            return m.version == to

        def number(m: Migration) -> bool:
            return to.isdigit() and m.version.isdigit() and int(m.version) == int(to)

        def undashed(m: Migration) -> bool:
            return "-" in m.version + to and m.version.replace("-", "") == to.replace("-", "")

        def label(m: Migration) -> bool:
            return m.label == to

        for match in (exact, number, undashed, label):
            for i, m in enumerate(migs):
                if match(m):
                    return i
        raise ConfigError(f"--to {to}: no migration with that version in {self.source}")

    def _check_to(self, migs: list[Migration], to: str | None) -> None:
        """Fails on a --to that names no migration, before anything is touched."""
        if to is not None:
            self._position(migs, to)

    def up_to(self, migs: list[Migration], to: str | None) -> set[str]:
        """Versions of `migs` up to and including the one `to` names (all when None)."""
        last = len(migs) if to is None else self._position(migs, to) + 1
        return {m.version for m in migs[:last]}

    def _select_pending(
        self, migs: list[Migration], states: list[MigrationState], to: str | None
    ) -> list[Migration]:
        wanted = self.up_to(migs, to)
        state = {s.version: s.state for s in states}
        return [m for m in migs if state.get(m.version) == "pending" and m.version in wanted]

    def plan_apply(self, to: str | None = None) -> list[tuple[Migration, list[Statement]]]:
        """Pending migrations with their parsed statements; reads, never writes."""
        report = self.status()
        self._check_clean(report.migrations)
        pending = self._select_pending(self.migrations(), report.migrations, to)
        return [(m, m.up_statements()) for m in pending]

    def apply(self, to: str | None = None) -> list[StepResult]:
        migs = self.migrations()
        self._check_to(migs, to)
        # Bad SQL fails before anything is touched; runs of data statements go as batches.
        parsed = {m.version: batch_statements(m.up_statements()) for m in migs}
        # Kept on the runner too, so a caller still sees what was applied when a later one fails.
        results: list[StepResult] = []
        self.results = results
        self.events.write("apply_start", database=self.target_label, source=str(self.source))
        with self._locked() as (conn, lock):
            self.ledger.ensure(conn)
            states = self._states(migs, self.ledger.rows(conn), self.history(conn, migs))
            self._check_clean(states)
            pending = self._select_pending(migs, states, to)
            if not pending:
                self.progress("nothing to apply: the database is up to date")
            try:
                for mig in pending:
                    lock.check_alive()
                    results.append(self._run(conn, mig, parsed[mig.version], "up"))
                    self._reset_session(conn)
            except Error:
                self._record_schema(conn, "apply", [r.version for r in results], not results)
                raise
            self._record_schema(conn, "apply", [r.version for r in results], not results)
        self.events.write("apply_done", applied=[r.version for r in results])
        return results

    # -- schema fingerprint record ----------------------------------------------------------

    def _record_schema(
        self,
        conn: _core.Connection,
        action: str,
        versions: list[str],
        only_if_missing: bool = False,
    ) -> None:
        """Records the schema fingerprint this run left in the ledger's ``fingerprints`` table
        (pgsafe.fingerprints, shared with postflight), for preflight's drift check. Best effort:
        a failure is logged, never allowed to hide the run's own outcome. `only_if_missing`: a
        run that changed nothing records a baseline only when there is none yet."""

        if not self.record_schema:
            return
        try:
            if conn.transaction_status in ("in_transaction", "in_error"):
                conn.execute("ROLLBACK")
            schema = self.settings.ledger_schema
            if only_if_missing and last_fingerprint(conn, ledger_schema=schema) is not None:
                return
            # Reading index and constraint definitions takes ACCESS SHARE locks: never queue
            # behind a session that holds a table (the run's outcome must not wait on it).
            conn.execute("SET lock_timeout = '2s'")
            try:
                rec = record_fingerprint(conn, source=action, ledger_schema=schema)
            finally:
                if conn.transaction_status in ("in_transaction", "in_error"):
                    conn.execute("ROLLBACK")
                conn.execute("RESET lock_timeout")
            self.events.write(
                "schema_recorded", action=action, versions=versions, sha256=rec.sha256
            )
        except Error as exc:
            log.warning("could not record the schema fingerprint after %s: %s", action, exc)
            self.events.write("schema_not_recorded", action=action, message=str(exc))

    def _run(
        self, conn: _core.Connection, mig: Migration, statements: list[Statement], direction: str
    ) -> StepResult:
        plan = _core.MigrationPlan()
        plan.version, plan.name, plan.checksum = mig.version, mig.name, mig.checksum
        plan.direction = _core.Direction.up if direction == "up" else _core.Direction.down
        plan.statements = [s.to_core() for s in statements]
        path = mig.up_path if direction == "up" else mig.down_path
        verb = "applying" if direction == "up" else "rolling back"
        count = sum(s.statement_count for s in statements)
        self.progress(f"{verb} {mig.label} ({count} statements)")
        self.events.write(
            "migration_start",
            version=mig.version,
            name=mig.name,
            direction=direction,
            checksum=mig.checksum,
            file=str(path),
        )

        def on_event(e: _core.Event) -> None:
            self.events.write(
                e.kind.name,
                version=e.version,
                segment=e.segment,
                statement=e.statement,
                attempt=e.attempt,
                seconds=round(e.seconds, 6),
                sqlstate=e.sqlstate or None,
                message=e.message or None,
            )
            if e.kind == _core.EventKind.retry:
                self.progress(
                    f"  {e.message} (SQLSTATE {e.sqlstate}); attempt {e.attempt} "
                    f"in {e.seconds:.2f}s"
                )
            elif e.kind == _core.EventKind.index_rebuilt:
                self.progress(f"  dropped invalid index {e.message} left by a failed build")

        executor = _core.Executor(
            conn,
            self.ledger,
            self.settings.timeouts(),
            self.settings.retry(),
            applied_by(),
            pgsafe_version(),
            on_event,
        )
        if self._lock_pid:
            executor.guard_with_lock(
                self._lock_pid, _core.migration_lock_key(self.settings.ledger_schema)
            )
        try:
            res = executor.run(plan)
        except DatabaseError as exc:
            dirty = executor.left_dirty
            where = _locate(path, statements, exc, executor.failed_at)
            state = (
                (
                    "the ledger marks it dirty: fix the database by hand, then run "
                    f"`pgsafe repair {mig.version} --mark applied|rolled-back`"
                )
                if dirty
                else ("nothing from it was committed")
            )
            what = mig.label if direction == "up" else f"rollback of {mig.label}"
            msg = f"{what} failed at {where}: {exc}; {state}"
            self.events.write(
                "migration_failed",
                version=mig.version,
                direction=direction,
                sqlstate=exc.sqlstate,
                message=str(exc),
                dirty=dirty,
            )
            cls = MigrationFailed if direction == "up" else RollbackFailed
            raise cls(msg, version=mig.version, dirty=dirty) from exc
        self.events.write(
            "migration_done",
            version=mig.version,
            direction=direction,
            status=res.status,
            seconds=round(res.duration_s, 6),
            retries=res.retries,
            statements=res.statements,
        )
        estimate = self.estimates.get(mig.version)
        self.progress(
            f"  {res.status} in {res.duration_s:.3f}s"
            + (f" after {res.retries} retries" if res.retries else "")
            + (f" (dry-run estimate: {estimate})" if estimate else "")
        )
        slow = res.duration_s > self.slow_migration_s
        if slow:
            # Seed 002: slow migrations are flagged, so the next one is planned accordingly.
            message = (
                f"{mig.label} took {_duration(res.duration_s)}, longer than "
                f"{_duration(self.slow_migration_s)}"
                + (f" (dry-run estimate: {estimate})" if estimate else "")
            )
            log.warning("%s", message)
            self.progress(f"  warning: {message}")
            self.events.write(
                "slow_migration",
                version=mig.version,
                direction=direction,
                seconds=round(res.duration_s, 6),
                threshold_s=self.slow_migration_s,
                estimate=estimate,
            )
        return StepResult(
            mig.version,
            mig.name,
            direction,
            res.status,
            res.duration_s,
            res.statements,
            res.retries,
            list(res.rebuilt_indexes),
            estimate,
            slow,
        )

    # -- rolling back ----------------------------------------------------------------------

    def _select_rollback(
        self,
        migs: list[Migration],
        states: list[MigrationState],
        steps: int | None,
        to: str | None,
        require_down: bool = True,
    ) -> list[Migration]:
        if steps is not None and steps < 1:
            raise ConfigError(f"--steps {steps}: must be 1 or more")
        self._check_to(migs, to)
        by_version = {m.version: m for m in migs}
        # Repeatables are not rolled back (Flyway's undo leaves them too): they run again when
        # they change.
        applied = [
            by_version[s.version]
            for s in states
            if s.state == "applied" and not by_version[s.version].repeatable
        ]
        place = {m.version: i for i, m in enumerate(migs)}
        applied.sort(key=lambda m: place[m.version], reverse=True)
        if to is not None:
            kept = self.up_to(migs, to)
            chosen = [m for m in applied if m.version not in kept]
        else:
            chosen = applied[: steps if steps is not None else 1]
        missing = [m.label for m in chosen if m.down_path is None]
        if missing and require_down:
            raise RollbackError(
                "cannot roll back " + ", ".join(missing) + ": no down file (irreversible); "
                "restore from a backup instead"
            )
        return chosen

    def plan_rollback(
        self, steps: int | None = None, to: str | None = None, require_down: bool = True
    ) -> list[tuple[Migration, list[Statement]]]:
        """The migrations a rollback would undo with their down statements (none for one
        without a down file, allowed only with `require_down=False`: a restore from backup)."""
        report = self.status()
        self._check_clean(report.migrations)
        chosen = self._select_rollback(
            self.migrations(), report.migrations, steps, to, require_down
        )
        return [(m, m.down_statements() if m.down_path else []) for m in chosen]

    def mark_rolled_back(self, versions: list[str], reason: str) -> None:
        """Records `versions` as rolled back without running their down files (the database
        was restored from a backup), and the schema the restore left."""
        with self._locked() as (conn, _lock):
            for version in versions:
                self.ledger.set_status(conn, version, "rolled_back", reason, applied_by())
                self.events.write("restored", version=version, reason=reason)
            self._record_schema(conn, "restore", versions)

    def rollback(self, steps: int | None = None, to: str | None = None) -> list[StepResult]:
        migs = self.migrations()
        if steps is not None and steps < 1:
            raise ConfigError(f"--steps {steps}: must be 1 or more")
        self._check_to(migs, to)
        # Every down file parsed before anything is touched: bad SQL is a config error.
        downs = {
            m.version: batch_statements(m.down_statements())
            for m in migs
            if m.down_path is not None
        }
        results: list[StepResult] = []
        self.results = results
        self.events.write("rollback_start", database=self.target_label, source=str(self.source))
        with self._locked() as (conn, lock):
            self.ledger.ensure(conn)
            states = self._states(migs, self.ledger.rows(conn), self.history(conn, migs))
            self._check_clean(states)
            chosen = self._select_rollback(migs, states, steps, to)
            if not chosen:
                self.progress("nothing to roll back")
            try:
                for mig in chosen:
                    lock.check_alive()
                    results.append(self._run(conn, mig, downs[mig.version], "down"))
                    self._reset_session(conn)
            except Error:
                if results:
                    self._record_schema(conn, "rollback", [r.version for r in results])
                raise
            if results:
                self._record_schema(conn, "rollback", [r.version for r in results])
        self.events.write("rollback_done", rolled_back=[r.version for r in results])
        return results

    # -- repair ----------------------------------------------------------------------------

    def adopt(self, reason: str) -> str:
        """Writes pgsafe's ledger from the history table of the tool that migrated the database
        so far (adopt_history below)."""

        return adopt_history(self, reason)

    def repair(self, version: str, mark: str | None, rebaseline: bool, reason: str) -> str:
        migs = {m.version: m for m in self.migrations()}
        with self._locked() as (conn, _lock):
            rows = {r.version: r for r in self.ledger.rows(conn)}
            row = rows.get(version)
            if row is None and mark is not None and version in migs:
                # Dirty (or applied) in another tool's history only: record what it really is.
                done = mark_from_history(
                    self, conn, migs[version], list(migs.values()), mark, reason
                )
                if done is not None:
                    return done
            if row is None:
                raise ConfigError(f"version {version} is not in the ledger of {self.target_label}")
            if rebaseline:
                mig = migs.get(version)
                if mig is None:
                    raise ConfigError(
                        f"version {version}: no file in {self.source} to rebaseline to"
                    )
                self.ledger.set_checksum(conn, version, mig.checksum, reason, applied_by())
                self._record_schema(conn, "rebaseline", [version])
                self.events.write(
                    "rebaseline", version=version, checksum=mig.checksum, reason=reason
                )
                return f"{version}: checksum re-baselined to {mig.checksum[:12]}... ({reason})"
            assert mark is not None
            status = {"applied": "applied", "rolled-back": "rolled_back"}[mark]
            if row.status != "dirty":
                log.warning(
                    "version %s was %s, not dirty; marking it %s anyway",
                    version,
                    row.status,
                    status,
                )
            self.ledger.set_status(conn, version, status, reason, applied_by())
            # The database was fixed by hand: its schema now is the accepted one.
            self._record_schema(conn, "repair", [version])
            self.events.write("repair", version=version, status=status, reason=reason)
            return f"{version}: marked {status} ({reason})"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.3g}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}min {secs}s" if secs else f"{minutes}min"


def _locate(
    path: Path | None,
    statements: list[Statement],
    exc: DatabaseError,
    failed_at: tuple[int, int] = (0, 0),
) -> str:
    """file:line:column of the failing statement (and of the error inside it, if known):
    where the executor says it was (a statement within a batch too), or else the statement
    whose text the error carries."""
    if failed_at[0] > 0:
        line, column = failed_at
    else:
        stmt = next((s for s in statements if not s.parts and s.sql == exc.statement), None)
        if stmt is None:
            return str(path)
        line, column = stmt.line, stmt.column
    if exc.position and exc.statement:
        prefix = exc.statement[: exc.position - 1]
        if "\n" in prefix:
            line += prefix.count("\n")
            column = len(prefix) - prefix.rfind("\n")
        else:
            column += len(prefix)
    return f"{path}:{line}:{column}"


# -- adopting another tool's history (pgsafe repair --adopt) ------------------------------


def adopt(
    conn: _core.Connection,
    ledger_schema: str,
    adopted: Sequence[tuple[Migration, Applied, str]],
    reason: str,
    by: str,
    version: str,
) -> None:
    """Writes pgsafe ledger rows (checksums from the files) for `adopted` (migration, what the
    other tool says, the status to record), with a history entry each, in one transaction."""
    s = quote_ident(ledger_schema)
    conn.execute("BEGIN")
    try:
        for mig, applied, status in adopted:
            conn.execute(
                f"INSERT INTO {s}.migrations (version, name, checksum, status, applied_at,"
                " duration_s, applied_by, pgsafe_version, retries)"
                " VALUES ($1, $2, $3, $4, coalesce($5::timestamptz, clock_timestamp()), 0,"
                " $6, $7, 0)",
                [
                    mig.version,
                    mig.name,
                    mig.checksum,
                    status,
                    applied.applied_at,
                    f"adopted from {applied.source}",
                    version,
                ],
            )
            conn.execute(
                f"INSERT INTO {s}.history (version, action, status, checksum, by, detail)"
                " VALUES ($1, 'adopt', $2, $3, $4, $5)",
                [mig.version, status, mig.checksum, by, f"{reason} (from {applied.source})"],
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.transaction_status in ("in_transaction", "in_error"):
            conn.execute("ROLLBACK")
        raise


def adopt_history(runner: Runner, reason: str) -> str:
    """`pgsafe repair --adopt`: under the migration lock, a pgsafe ledger row for every migration
    the other tool applied and pgsafe's ledger lacks, with the checksum of its file, marked
    adopted (applied_by "adopted from <tool> (<table>)", a history entry 'adopt'), all in one
    transaction. Refuses, writing nothing, when that tool left one dirty."""

    migs = runner.migrations()
    with runner._locked() as (conn, _lock):
        history = runner.history(conn, migs)
        if history.table is None:
            raise ConfigError(
                f"nothing to adopt: no {history.tool} history table ({history.looked_for}) "
                f"on {runner.target_label}"
            )
        recorded = {r.version for r in runner.ledger.rows(conn)}
        todo = [
            (m, history.applied[m.version])
            for m in migs
            if m.version in history.applied and m.version not in recorded
        ]
        dirty = [(m, a) for m, a in todo if a.state == "dirty"]
        if dirty:
            m, a = dirty[0]
            raise UnsafeError(
                f"{m.label} is dirty in {a.source} ({a.reason}); nothing adopted: fix the "
                f"database, then `pgsafe repair {m.version} --mark applied|rolled-back`"
            )
        todo = [(m, a) for m, a in todo if a.state == "applied"]
        if not todo:
            return (
                "nothing to adopt: pgsafe's ledger already records every migration "
                f"{history.source_label()} says is applied"
            )
        runner.ledger.ensure(conn)
        rows = [(m, a, "applied") for m, a in todo]
        adopt(conn, runner.settings.ledger_schema, rows, reason, applied_by(), pgsafe_version())
        versions = [m.version for m, _ in todo]
        runner._record_schema(conn, "adopt", versions)
        runner.events.write("adopt", versions=versions, source=history.source_label())
    return (
        f"adopted {len(todo)} migration(s) applied by {history.source_label()}: "
        f"{todo[0][0].label} .. {todo[-1][0].label} ({reason})"
    )


def mark_from_history(
    runner: Runner,
    conn: _core.Connection,
    mig: Migration,
    migs: Sequence[Migration],
    mark: str,
    reason: str,
) -> str | None:
    """`pgsafe repair VERSION --mark ...` for a migration pgsafe's ledger has no row for but the
    other tool's history has (dirty there, say): the row pgsafe records is the state given.
    None when the other tool's history does not have it either."""

    other = runner.history(conn, list(migs)).applied.get(mig.version)
    if other is None:
        return None
    status = {"applied": "applied", "rolled-back": "rolled_back"}[mark]
    runner.ledger.ensure(conn)
    rows = [(mig, other, status)]
    adopt(conn, runner.settings.ledger_schema, rows, reason, applied_by(), pgsafe_version())
    runner._record_schema(conn, "repair", [mig.version])
    runner.events.write("repair", version=mig.version, status=status, reason=reason)
    return f"{mig.version}: marked {status} ({reason}; was {other.state} in {other.source})"
