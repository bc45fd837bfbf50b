"""The live probe of a target database: who holds or waits for locks right now, which
transactions are old or idle, which vacuums run, how far replicas lag. The C++ core reads it in
one short read-only transaction; this module turns it into a report and into problems (fail or
warn, each with its evidence) that `pgsafe locks` and preflight act on."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pgsafe import _core
from pgsafe.config import Settings
from pgsafe.db import connect
from pgsafe.errors import LockNotAvailable, QueryCanceled, UnsafeError
from pgsafe.render import Report, Section, Table, Text

__all__ = [
    "BlockingEdge",
    "LockEntry",
    "LockQueue",
    "ProbeBlocked",
    "ProbeReport",
    "Problem",
    "ReplicaLag",
    "Session",
    "VacuumRun",
    "probe",
]

Severity = Literal["fail", "warn"]

#: The probe's own limits: it gives up (an error) rather than wait behind anyone.
PROBE_LOCK_TIMEOUT_MS = 1_000
PROBE_STATEMENT_TIMEOUT_MS = 5_000
#: Replay lag above which a replica is reported (a migration's WAL adds to it).
REPLICA_LAG_WARN_SECONDS = 60.0
# A session waiting this long for a lock on a relation no pending migration locks: a warning.
# Shorter waits there are ordinary traffic (row locks under load) and no problem at all.
LONG_WAIT_SECONDS = 5.0


class ProbeBlocked(UnsafeError):
    """The probe hit its own lock_timeout or statement_timeout: something holds a lock on a
    catalog it reads, or the server is too busy to answer in time. Unsafe to migrate."""


# The records of a probe are the core's own (cpp/include/pgsafe/probe.hpp documents their
# fields): read-only, lock modes as _core.LockMode.
Session = _core.SessionInfo
BlockingEdge = _core.BlockingEdge
LockEntry = _core.LockEntry
LockQueue = _core.LockQueue
VacuumRun = _core.VacuumRun
ReplicaLag = _core.ReplicaLag


def _record(value: Any) -> Any:
    """A core record as JSON values: its fields in the order the core declares them, lists and
    nested records likewise, a lock mode by its pg_locks name."""
    if isinstance(value, _core.LockMode):
        return value.name
    if isinstance(value, list | tuple):
        return [_record(v) for v in value]
    fields = [k for k, v in vars(type(value)).items() if isinstance(v, property)]
    if type(value).__module__ != _core.__name__ or not fields:
        return value
    return {k: _record(getattr(value, k)) for k in fields}


@dataclass(frozen=True)
class Problem:
    """Something that makes a migration unsafe to start now (`fail`) or worth a look (`warn`);
    `evidence` is the line a user reads, `pid` / `relation` what it is about."""

    severity: Severity
    kind: str  # long-transaction, idle-in-transaction, blocking, lock-queue, vacuum, replication
    evidence: str
    pid: int | None = None
    relation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def duration(seconds: float | None) -> str:
    """1.2s, 4m05s, 2h03m."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _short(query: str, width: int = 80) -> str:
    one = " ".join(query.split())
    return one if len(one) <= width else one[: width - 3] + "..."


# How each column of a table of sessions reads a session.
_SESSION_CELLS: dict[str, Callable[[Session], object]] = {
    "pid": lambda s: s.pid,
    "user": lambda s: s.usename,
    "application": lambda s: s.application_name,
    "client": lambda s: s.client,
    "state": lambda s: s.state,
    "idle for": lambda s: duration(s.state_seconds),
    "open for": lambda s: duration(s.xact_seconds),
    "query": lambda s: _short(s.query, 60),
    "last query": lambda s: _short(s.query, 60),
}


def _sessions(sessions: Iterable[Session], columns: list[str]) -> Table:
    return Table(columns, [tuple(_SESSION_CELLS[c](s) for c in columns) for s in sessions])


def _who(pid: int) -> str:
    return "a prepared transaction" if pid == 0 else f"pid {pid}"


@dataclass
class ProbeReport(Report):
    """What the probe saw on one database at one moment (`probed_at`, the server's clock)."""

    target: str
    database: str
    probed_at: str
    server_version: int
    probe_pid: int
    long_tx_seconds: float
    relations: list[str] = field(default_factory=list)  # probed, resolved names
    unknown_relations: list[str] = field(default_factory=list)  # not there (yet)
    long_transactions: list[Session] = field(default_factory=list)
    idle_in_transaction: list[Session] = field(default_factory=list)
    blocking: list[BlockingEdge] = field(default_factory=list)
    lock_queues: list[LockQueue] = field(default_factory=list)
    autovacuum: list[VacuumRun] = field(default_factory=list)  # manual VACUUMs too
    replication: list[ReplicaLag] = field(default_factory=list)
    replica_lag_warn_seconds: float = REPLICA_LAG_WARN_SECONDS
    long_wait_seconds: float = LONG_WAIT_SECONDS

    title = "pgsafe locks"

    # -- decisions ---------------------------------------------------------------------

    def problems(self) -> list[Problem]:
        """Fails: transactions older than the threshold, sessions blocked on a probed relation,
        waiters in the lock queue of a probed relation, an anti-wraparound vacuum on one. Warns:
        a session that has waited `long_wait_seconds` or more for a lock elsewhere, sessions
        idle in transaction (younger than the threshold), an ordinary autovacuum on a probed
        relation, an anti-wraparound vacuum elsewhere, replicas lagging. A shorter wait on a
        relation no pending migration locks (a row lock under load) is no problem at all."""
        out: list[Problem] = []
        probed = set(self.relations)
        for s in self.long_transactions:
            out.append(
                Problem(
                    "fail",
                    "long-transaction",
                    f"pid {s.pid} ({s.usename or '?'}, {s.application_name or 'no application'})"
                    f" has had a transaction open for {duration(s.xact_seconds)} "
                    f"(> {self.long_tx_seconds:g}s), {s.state}: {_short(s.query)}",
                    pid=s.pid,
                )
            )
        long_pids = {s.pid for s in self.long_transactions}
        for s in self.idle_in_transaction:
            if s.pid in long_pids:
                continue
            out.append(
                Problem(
                    "warn",
                    "idle-in-transaction",
                    f"pid {s.pid} ({s.usename or '?'}, {s.application_name or 'no application'})"
                    f" {s.state} for {duration(s.state_seconds)}; its locks stay held until it "
                    f"ends: {_short(s.query)}",
                    pid=s.pid,
                )
            )
        for e in self.blocking:
            touched = bool(e.relation) and e.relation in probed
            if not touched and e.blocked_wait_seconds < self.long_wait_seconds:
                continue  # ordinary traffic on a relation no pending migration locks
            target = f" on {e.relation}" if e.relation else f" ({e.locktype})"
            holds = (
                f"holds {e.blocking_modes}"
                if e.blocking_granted
                else f"is queued ahead for {e.blocking_modes}"
            )
            elsewhere = (
                ""
                if touched
                else f" (not a relation the pending migrations lock; a wait of "
                f"{self.long_wait_seconds:g}s or more is worth a look)"
            )
            out.append(
                Problem(
                    "fail" if touched else "warn",
                    "blocking",
                    f"pid {e.blocked_pid} has waited {duration(e.blocked_wait_seconds)} for "
                    f"{e.blocked_mode.name}{target}, blocked by {_who(e.blocking_pid)} "
                    f"({e.blocking_state or 'no state'}, transaction "
                    f"{duration(e.blocking_xact_seconds)}, {holds}){elsewhere}: "
                    f"{_short(e.blocking_query)}",
                    pid=e.blocked_pid,
                    relation=e.relation or None,
                )
            )
        for q in self.lock_queues:
            if q.relation in probed and q.waiters:
                modes = ", ".join(dict.fromkeys(w.mode.name for w in q.waiters))
                out.append(
                    Problem(
                        "fail",
                        "lock-queue",
                        f"{len(q.waiters)} session(s) queued for locks on {q.relation} ({modes}) "
                        f"behind {len(q.holders)} holder(s): a migration's lock would wait at the "
                        "end of this queue, and every later query behind it",
                        relation=q.relation,
                    )
                )
        for v in self.autovacuum:
            mine = v.relation in probed
            if v.wraparound:
                out.append(
                    Problem(
                        "fail" if mine else "warn",
                        "vacuum",
                        f"anti-wraparound vacuum on {v.relation} (pid {v.pid}, {v.phase}, running "
                        f"{duration(v.seconds)}): it does not give way to lock requests, so a "
                        "migration locking this table waits until it finishes",
                        pid=v.pid,
                        relation=v.relation,
                    )
                )
            elif mine:
                what = "autovacuum" if v.autovacuum else "VACUUM"
                out.append(
                    Problem(
                        "warn",
                        "vacuum",
                        f"{what} on {v.relation} (pid {v.pid}, {v.phase}, running "
                        f"{duration(v.seconds)})"
                        + (
                            ": it is cancelled when a conflicting lock waits for it"
                            if v.autovacuum
                            else ": a migration locking this table waits until it finishes"
                        ),
                        pid=v.pid,
                        relation=v.relation,
                    )
                )
        for r in self.replication:
            if r.replay_lag_seconds is not None and r.replay_lag_seconds > (
                self.replica_lag_warn_seconds
            ):
                out.append(
                    Problem(
                        "warn",
                        "replication",
                        f"replica {r.application_name or r.client or r.pid} replays "
                        f"{duration(r.replay_lag_seconds)} behind"
                        + (
                            f" ({r.replay_lag_bytes:,} bytes)"
                            if r.replay_lag_bytes is not None
                            else ""
                        )
                        + ": a migration's WAL adds to it",
                        pid=r.pid,
                    )
                )
        return out

    @property
    def failed(self) -> bool:
        return any(p.severity == "fail" for p in self.problems())

    # -- renderings --------------------------------------------------------------------

    def summary(self) -> str:
        problems = self.problems()
        fails = sum(p.severity == "fail" for p in problems)
        warns = len(problems) - fails
        verdict = (
            f"UNSAFE: {fails} problem(s), {warns} warning(s)"
            if fails
            else f"OK: nothing blocking, {warns} warning(s)"
            if warns
            else "OK: nothing blocking"
        )
        return f"{verdict} on {self.target} at {self.probed_at}"

    def sections(self) -> list[Section]:
        problems = self.problems()
        scope: list[Text] = []
        if self.relations:
            scope.append(Text("Relations probed: " + ", ".join(self.relations)))
        elif not self.unknown_relations:
            scope.append(
                Text(
                    "No relations given: lock queues of every relation with a waiter, every vacuum."
                )
            )
        if self.unknown_relations:
            scope.append(
                Text(
                    "Not found (a migration may create them): " + ", ".join(self.unknown_relations)
                )
            )
            if not self.relations:
                scope.append(Text("None of the relations exists: no lock queue or vacuum to show."))
        return [
            Section(
                "Problems",
                [
                    *scope,
                    Table(
                        ["severity", "what", "evidence"],
                        [(p.severity, p.kind, p.evidence) for p in problems],
                        empty="none",
                    ),
                ],
            ),
            Section(
                "Blocking",
                [
                    Table(
                        [
                            "blocked",
                            "waiting",
                            "wants",
                            "on",
                            "blocked by",
                            "blocker state",
                            "blocker tx",
                            "blocker holds",
                            "blocked query",
                            "blocking query",
                        ],
                        [
                            (
                                e.blocked_pid,
                                duration(e.blocked_wait_seconds),
                                e.blocked_mode.name,
                                e.relation or e.locktype,
                                e.blocking_pid,
                                e.blocking_state,
                                duration(e.blocking_xact_seconds),
                                e.blocking_modes
                                if e.blocking_granted
                                else f"(queued) {e.blocking_modes}",
                                _short(e.blocked_query, 60),
                                _short(e.blocking_query, 60),
                            )
                            for e in self.blocking
                        ],
                        empty="no session is waiting for another",
                    )
                ],
            ),
            Section(
                f"Long transactions (> {self.long_tx_seconds:g}s)",
                [
                    _sessions(
                        self.long_transactions,
                        ["pid", "user", "application", "client", "state", "open for", "query"],
                    )
                ],
            ),
            Section(
                "Idle in transaction",
                [
                    _sessions(
                        self.idle_in_transaction,
                        ["pid", "user", "application", "idle for", "open for", "last query"],
                    )
                ],
            ),
            Section(
                "Lock queues",
                [
                    Table(
                        ["relation", "pid", "lock", "mode", "for", "state", "query"],
                        [
                            (
                                q.relation,
                                e.pid,
                                "held" if e.granted else "waiting",
                                e.mode.name,
                                duration(e.seconds),
                                e.state,
                                _short(e.query, 60),
                            )
                            for q in self.lock_queues
                            for e in (*q.holders, *q.waiters)
                        ],
                        empty="no locks held or awaited on the probed relations"
                        if self.relations or self.unknown_relations
                        else "no relation has a waiter",
                    )
                ],
            ),
            Section(
                "Vacuum",
                [
                    Table(
                        ["pid", "relation", "kind", "wraparound", "phase", "running", "scanned"],
                        [
                            (
                                v.pid,
                                v.relation,
                                "autovacuum" if v.autovacuum else "VACUUM",
                                v.wraparound,
                                v.phase,
                                duration(v.seconds),
                                f"{100 * v.heap_blks_scanned / v.heap_blks_total:.0f}%"
                                if v.heap_blks_total
                                else "",
                            )
                            for v in self.autovacuum
                        ],
                        empty="no vacuum running"
                        + (
                            " on the probed relations"
                            if self.relations or self.unknown_relations
                            else ""
                        ),
                    )
                ],
            ),
            Section(
                "Replication",
                [
                    Table(
                        ["pid", "replica", "client", "state", "sync", "replay lag", "lag bytes"],
                        [
                            (
                                r.pid,
                                r.application_name,
                                r.client,
                                r.state,
                                r.sync_state,
                                duration(r.replay_lag_seconds),
                                f"{r.replay_lag_bytes:,}" if r.replay_lag_bytes is not None else "",
                            )
                            for r in self.replication
                        ],
                        empty="no replicas",
                    )
                ],
            ),
        ]

    def to_dict(self) -> dict[str, Any]:
        problems = self.problems()
        return {
            "target": self.target,
            "database": self.database,
            "probed_at": self.probed_at,
            "server_version": self.server_version,
            "long_tx_seconds": self.long_tx_seconds,
            "long_wait_seconds": self.long_wait_seconds,
            "relations": list(self.relations),
            "unknown_relations": list(self.unknown_relations),
            "ok": not any(p.severity == "fail" for p in problems),
            "problems": [p.to_dict() for p in problems],
            "blocking": _record(self.blocking),
            "long_transactions": _record(self.long_transactions),
            "idle_in_transaction": _record(self.idle_in_transaction),
            "lock_queues": _record(self.lock_queues),
            "autovacuum": _record(self.autovacuum),
            "replication": _record(self.replication),
        }


def _from_core(r: _core.ProbeResult, target: str) -> ProbeReport:
    return ProbeReport(
        target=target,
        database=r.database,
        probed_at=r.probed_at,
        server_version=r.server_version,
        probe_pid=r.probe_pid,
        long_tx_seconds=r.long_tx_seconds,
        relations=r.relations,
        unknown_relations=r.unknown_relations,
        long_transactions=r.long_transactions,
        idle_in_transaction=r.idle_in_transaction,
        blocking=r.blocking,
        lock_queues=r.lock_queues,
        autovacuum=r.vacuums,
        replication=r.replication,
    )


def probe(
    dsn: str | _core.Connection,
    *,
    relations: Iterable[str] = (),
    long_tx_seconds: float = 30.0,
    settings: Settings | None = None,
    target: str | None = None,
    long_wait_seconds: float = LONG_WAIT_SECONDS,
) -> ProbeReport:
    """Probes a database: a DSN (a connection of its own, application_name "pgsafe probe",
    closed here) or an open idle connection (kept open: `pgsafe locks --watch` reuses one).
    `relations` are table or index names, schema-qualified or resolved with the search_path;
    names that do not exist are listed in `unknown_relations`. A lock wait on another relation
    is a warning once it lasts `long_wait_seconds`, and nothing before. Read-only; it waits at most
    1 s for any lock and 5 s for any statement, and raises ProbeBlocked (exit 1) rather than
    block."""
    names = [relations] if isinstance(relations, str) else list(dict.fromkeys(relations))
    if isinstance(dsn, str):
        with contextlib.closing(connect(dsn, settings or Settings(), "probe")) as conn:
            return probe(
                conn,
                relations=names,
                long_tx_seconds=long_tx_seconds,
                target=target,
                long_wait_seconds=long_wait_seconds,
            )
    try:
        result = _core.probe(
            dsn, names, long_tx_seconds, PROBE_LOCK_TIMEOUT_MS, PROBE_STATEMENT_TIMEOUT_MS
        )
    except (LockNotAvailable, QueryCanceled) as exc:
        raise ProbeBlocked(
            f"the probe of {target or dsn.dsn} gave up within its own limits (lock_timeout "
            f"{PROBE_LOCK_TIMEOUT_MS / 1000:g}s, statement_timeout "
            f"{PROBE_STATEMENT_TIMEOUT_MS / 1000:g}s): {exc.message}; a catalog is locked or the "
            "server is overloaded, so a migration would wait too"
        ) from exc
    report = _from_core(result, target or dsn.dsn)
    report.long_wait_seconds = long_wait_seconds
    return report
