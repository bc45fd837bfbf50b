"""Preflight: the live checks on the target before anything is applied (seed 002's preflight,
seed 003's checklist). Each check passes, warns, fails or is skipped, with the evidence; the
environment's policy decides how strict each is. Read-only: nothing is written to the database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgsafe import _core
from pgsafe.backup import core as backup_core
from pgsafe.config import Settings
from pgsafe.db import connect
from pgsafe.errors import ConfigError, DatabaseError, Error, mask_password
from pgsafe.events import EventLog, create_private, private_dir
from pgsafe.lifecycle import probe as probe_mod
from pgsafe.lifecycle.dryrun import analyse
from pgsafe.lifecycle.fingerprints import applied_versions, last_fingerprint
from pgsafe.lifecycle.policy import APPROVALS_FILE, Policy, evaluate, load_approvals, load_policy
from pgsafe.lifecycle.runner import Runner
from pgsafe.lint import load_config
from pgsafe.lint.context import Context
from pgsafe.lint.locks import predict
from pgsafe.lint.model import Stmt, range_name, strings, walk
from pgsafe.render import Report, Section, Table, Text
from pgsafe.schema import diff, fingerprint
from pgsafe.sources.checksums import MANIFEST, check_manifest
from pgsafe.sources.files import Migration
from pgsafe.sources.layouts import discover, short_name
from pgsafe.stamps import stamped_name

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
_MARK = {PASS: "ok", WARN: "WARN", FAIL: "FAIL", SKIP: "skip"}

# How many differing objects, transactions, ... a check lists as evidence.
_EVIDENCE_LIMIT = 20

# The ledger reason the executor writes while a mixed migration runs (cpp/src/executor.cpp).
_IN_PROGRESS = "in progress since the first autocommit step"


@dataclass
class Check:
    name: str
    status: str
    summary: str
    evidence: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "summary": self.summary,
            "evidence": self.evidence,
        }


@dataclass
class PendingMigration:
    version: str
    name: str
    checksum: str
    has_down: bool
    estimate: str
    tables: list[str]

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


@dataclass
class PreflightReport(Report):
    database: str
    source: str
    policy: Policy
    checks: list[Check] = field(default_factory=list)
    pending: list[PendingMigration] = field(default_factory=list)
    forced: bool = False
    generated_at: str = ""
    duration_s: float = 0.0
    report_path: str | None = None
    dirty: list[tuple[str, str, str]] = field(default_factory=list)  # version, name, reason
    title: str = "pgsafe preflight"

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == WARN]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failed(self) -> bool:
        """Whether the lifecycle must stop here (pgsafe.alembic's hook reads this)."""
        return not self.passed

    @property
    def passed(self) -> bool:
        """Whether the lifecycle may go on: no failure, or failures overridden by --force."""
        return self.ok or self.forced

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def tables(self) -> list[str]:
        """Existing tables the pending migrations touch (what a backup must cover)."""
        return list(dict.fromkeys(t for p in self.pending for t in p.tables))

    def summary(self) -> str:
        verdict = "PASSED" if self.ok else ("FAILED (forced: --force)" if self.forced else "FAILED")
        return (
            f"{verdict} on {self.database} (environment {self.policy.name}): "
            f"{len(self.failures)} failed, {len(self.warnings)} warnings, "
            f"{len(self.pending)} pending migrations"
        )

    def failure_line(self) -> str:
        """One line naming what failed, for stderr."""
        parts = [f"{c.name}: {c.summary}" for c in self.failures]
        return "preflight failed: " + "; ".join(parts)

    def sections(self) -> list[Section]:
        rows = [[_MARK[c.status], c.name, c.summary] for c in self.checks]
        out = [Section("Checks", [Table(["status", "check", "result"], rows)])]
        details: list[Text | Table] = []
        for c in self.checks:
            if c.evidence and c.status in (FAIL, WARN):
                details.append(Text(f"{c.name}:"))
                details += [Text(f"  {e}") for e in c.evidence]
        if details:
            out.append(Section("Evidence", details))
        pend = [[p.label, ", ".join(p.tables) or "none", p.estimate] for p in self.pending]
        out.append(
            Section(
                "Pending migrations",
                [Table(["migration", "existing tables touched", "estimate"], pend, "none")],
            )
        )
        if self.forced and not self.ok:
            out.append(Section("Override", [Text("--force given: failures overridden (logged)")]))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "passed": self.passed,
            "forced": self.forced,
            "database": self.database,
            "migrations": self.source,
            "environment": self.policy.name,
            "policy": self.policy.to_dict(),
            "generated_at": self.generated_at,
            "duration_s": round(self.duration_s, 3),
            "failed": [c.name for c in self.failures],
            "warnings": [c.name for c in self.warnings],
            "checks": [c.to_dict() for c in self.checks],
            "pending": [
                {
                    "version": p.version,
                    "name": p.name,
                    "checksum": p.checksum,
                    "has_down": p.has_down,
                    "estimate": p.estimate,
                    "tables": p.tables,
                }
                for p in self.pending
            ],
        }

    def write(self, log_dir: str | Path) -> Path:
        """Writes ``log_dir/preflight-report-<UTC YYYYmmddTHHMMSS.fffZ>.json`` (pgsafe.stamps;
        never over another)."""

        folder = Path(log_dir)
        try:
            private_dir(folder)
            for _attempt in range(1000):
                # A name another process creates between the check and open("x") is retried.
                name = stamped_name(
                    "preflight-report-", ".json", taken=lambda n: (folder / n).exists()
                )
                path = folder / name
                try:
                    fd = create_private(path, exclusive=True)
                    with os.fdopen(fd, "w", encoding="utf-8") as out:
                        self.report_path = str(path)
                        out.write(json.dumps(self.to_dict(), indent=2) + "\n")
                    return path
                except FileExistsError:
                    continue
        except OSError as exc:
            raise ConfigError(f"{folder}: cannot write the preflight report: {exc}") from None
        raise ConfigError(f"{folder}: could not create a new preflight report name")


# -- the checks -------------------------------------------------------------------------------


class _Preflight:
    def __init__(
        self,
        conn: _core.Connection,
        source: Path,
        policy: Policy,
        settings: Settings,
        dsn: str,
        backup_dir: Path,
        backup_planned: bool,
        approvals_path: Path,
        to: str | None = None,
    ) -> None:

        self.to = to
        self.conn = conn
        self.source = source
        self.policy = policy
        self.settings = settings
        self.dsn = dsn
        self.backup_dir = backup_dir
        self.backup_planned = backup_planned
        self.approvals_path = approvals_path
        self.runner = Runner(source, dsn, settings=settings)
        self.migrations: list[Migration] = []
        self.dirty: list[tuple[str, str, str]] = []
        self.pending: list[Migration] = []
        self.analyses: dict[str, Any] = {}
        self.tables: dict[str, list[str]] = {}

    def run(self) -> tuple[list[Check], list[PendingMigration]]:
        checks: list[Check] = []
        steps: list[Callable[[], Check]] = [
            self.ledger,
            self.files,
            self.manifest,
            self.analyse_pending,
            self.drift,
            self.activity,
            self.blocking,
            self.maintenance,
            self.migration_lock,
            self.sizes,
            self.backup,
            self.approvals,
            self.timeouts,
            self.server,
        ]
        for step in steps:
            checks.append(step())
        pending = [
            PendingMigration(
                m.version,
                m.name,
                m.checksum,
                m.down_path is not None,
                self.analyses[m.version].est_runtime if m.version in self.analyses else "",
                self.tables.get(m.version, []),
            )
            for m in self.pending
        ]
        return checks, pending

    # ledger: pending, dirty, changed (tampered), missing files
    def ledger(self) -> Check:
        self.migrations = self.runner.migrations()
        rows = self.runner.ledger.rows(self.conn)
        history = self.runner.history(self.conn, self.migrations)
        states = self.runner._states(self.migrations, rows, history)
        by_version = {m.version: m for m in self.migrations}
        upto = self.runner.up_to(self.migrations, self.to)
        self.pending = [
            by_version[s.version] for s in states if s.state == "pending" and s.version in upto
        ]
        bad = [s for s in states if s.state in ("dirty", "changed", "missing-file")]
        # Marked dirty by a run that is applying it right now (it holds the migration lock):
        # not damage; apply waits for that run and then reads the ledger again.
        running = [
            s for s in bad if s.state == "dirty" and (s.dirty_reason or "").startswith(_IN_PROGRESS)
        ]
        holder = None
        if running:
            key = _core.migration_lock_key(self.settings.ledger_schema)
            holder = _core.MigrationLock(self.conn, key).holder()
        if holder is not None:
            bad = [s for s in bad if s not in running]
        self.dirty = [(s.version, s.name, s.dirty_reason or "") for s in bad if s.state == "dirty"]
        evidence = []
        for s in bad:
            if s.state == "changed":
                evidence.append(
                    f"{s.version}_{s.name}: file changed after it was applied (ledger "
                    f"{(s.recorded_checksum or '')[:12]}, file {(s.checksum or '')[:12]}); "
                    f"restore it or `pgsafe repair {s.version} --rebaseline`"
                )
            elif s.state == "dirty":
                evidence.append(
                    f"{s.version}_{s.name}: dirty ({s.dirty_reason or 'failed half-way'}); "
                    f"`pgsafe repair {s.version} --mark applied|rolled-back`"
                )
            else:
                evidence.append(f"{s.version}_{s.name}: applied, but its file is missing")
        applied = sum(1 for s in states if s.state == "applied")
        counts = f"{len(self.pending)} pending, {applied} applied"
        if bad:
            kinds = sorted({s.state.replace("-", " ") for s in bad})
            return Check(
                "ledger",
                FAIL,
                f"{'/'.join(kinds)}: "
                + ", ".join(f"{s.version}_{s.name}" for s in bad)
                + f" ({counts})",
                evidence,
            )
        pend = [m.label for m in self.pending]
        if holder is not None:
            return Check(
                "ledger",
                WARN,
                f"{', '.join(f'{s.version}_{s.name}' for s in running)} being applied by "
                f"another run (pid {holder.pid}); apply will wait for it ({counts})",
                pend,
            )
        return Check("ledger", PASS, counts + (": " + ", ".join(pend) if pend else ""), pend)

    def files(self) -> Check:
        """Up/down pairs: discover() already refused bad names and orphan down files."""
        no_down = [m.label for m in self.pending if m.down_path is None]
        if not no_down:
            return Check(
                "migration-files",
                PASS,
                f"{len(self.migrations)} migrations; every pending one has a down",
            )
        return Check(
            "migration-files",
            WARN,
            f"{len(no_down)} pending migrations have no down file (irreversible without a "
            "backup): " + ", ".join(no_down),
            no_down,
        )

    def manifest(self) -> Check:
        path = self.source / MANIFEST
        level = self.policy.checksum_manifest
        if not path.exists():
            if level == "off":
                return Check("checksum-manifest", SKIP, f"no {path} (not required in this policy)")
            return Check(
                "checksum-manifest",
                FAIL if level == "required" else WARN,
                f"no {path}: write it with `pgsafe checksum --write` ({level} by the "
                f"{self.policy.name} policy)",
            )
        result = check_manifest(self.source)
        if result.ok:
            return Check("checksum-manifest", PASS, f"{path}: {len(result.verified)} files match")
        return Check(
            "checksum-manifest",
            FAIL,
            f"{path} does not match the files: "
            + ", ".join(result.changed + result.missing + result.extra),
            result.lines(),
        )

    def analyse_pending(self) -> Check:
        """Lint and destructive-statement analysis of the pending migrations, and the existing
        tables they touch (for sizes, backups and lock probing)."""

        config = load_config()
        # The target's own major decides the analysis (requires-newer-postgres, predictions).
        config.pg_version = self.conn.server_version // 10000
        config.pg_version_source = "the server"
        errors: list[str] = []
        for mig in self.pending:
            rep = analyse(mig, config)
            self.analyses[mig.version] = rep
            self.tables[mig.version] = touched_tables(mig, config.pg_version)
            errors += [
                f"{short_name(f.file)}:{f.line}: {f.rule}: {f.message}"
                for f in rep.findings
                if f.severity == "error"
            ]
        if not errors:
            return Check("lint", PASS, f"no lint errors in {len(self.pending)} pending migrations")
        # Errors are judged by the approvals check: approved ones may run.
        return Check(
            "lint",
            WARN,
            f"{len(errors)} lint errors in pending migrations (each needs approval)",
            errors[:_EVIDENCE_LIMIT],
        )

    def drift(self) -> Check:
        """Live schema vs the fingerprint recorded (pgsafe.fingerprints) after the last apply,
        rollback, repair or postflight."""

        schema = self.settings.ledger_schema
        recorded = last_fingerprint(self.conn, ledger_schema=schema)
        try:
            live = fingerprint(self.conn, (schema,))
        except DatabaseError as exc:
            if self.conn.transaction_status in ("in_transaction", "in_error"):
                self.conn.execute("ROLLBACK")
            return Check(
                "schema-drift",
                WARN,
                f"could not read the live schema (a table is locked by another session?): {exc}",
            )
        versions = tuple(applied_versions(self.conn, schema))
        if recorded is None:
            return Check(
                "schema-drift",
                WARN if versions else PASS,
                f"no fingerprint recorded yet; live schema {live.sha256[:12]}"
                + (" (migrations were applied without recording one)" if versions else ""),
            )
        when = f"{recorded.source} at {recorded.recorded_at:%Y-%m-%d %H:%M:%S} UTC"
        if recorded.sha256 == live.sha256:
            return Check(
                "schema-drift",
                PASS,
                f"live schema {live.sha256[:12]} matches the one recorded by the last {when}",
            )
        differences = diff(recorded.fingerprint, live)
        evidence = [f"{d.change}: {d.kind} {d.name}" for d in differences[:_EVIDENCE_LIMIT]]
        if len(differences) > _EVIDENCE_LIMIT:
            evidence.append(f"... and {len(differences) - _EVIDENCE_LIMIT} more")
        first = evidence[0] if evidence else "?"
        if tuple(recorded.versions) != versions:
            # Migrations ran since without a record (e.g. through the Python API): the change
            # cannot be told apart from drift.
            return Check(
                "schema-drift",
                WARN,
                f"{len(differences)} objects differ from the record of the last {when}, and the "
                "applied migrations changed since without a new record: cannot tell drift "
                f"from migrations (first: {first})",
                evidence,
            )
        return Check(
            "schema-drift",
            FAIL,
            f"the schema changed outside pgsafe since the last {when}: {len(differences)} "
            f"objects differ, first {first}; `pgsafe schema diff` shows them",
            evidence,
        )

    # Live activity: pgsafe.lifecycle.probe (the lock-probing issue) when this build has it.
    def _probe(self) -> Any | None:
        """pgsafe.lifecycle.probe's report on the target and the tables the migrations touch
        (once)."""
        if not hasattr(self, "_probe_report"):
            probe = probe_mod
            self._probe_report: Any | None = None
            self._probe_error: str | None = None
            if probe is not None and hasattr(probe, "probe"):
                tables = list(dict.fromkeys(t for ts in self.tables.values() for t in ts))
                try:
                    self._probe_report = probe.probe(
                        self.dsn,
                        relations=tables,
                        long_tx_seconds=self.policy.long_transaction_s,
                        settings=self.settings,
                        long_wait_seconds=self.policy.long_lock_wait_s,
                    )
                except ConfigError:
                    raise
                except Error as exc:  # ProbeBlocked: it gave up within its own timeouts
                    self._probe_error = str(exc)
        return self._probe_report

    def _problems(self, kinds: tuple[str, ...]) -> list[Any] | None:
        """The probe's problems of these kinds, pgsafe's own sessions left out (the migration
        lock already orders pgsafe runs); None when this build has no probe."""
        report = self._probe()
        if report is None:
            return None
        own = _pgsafe_pids(self.conn)
        # Blocked or blocking sessions of pgsafe runs, and lock queues only pgsafe waits in.
        own_edges = {
            _field(e, "blocked_pid")
            for e in getattr(report, "blocking", [])
            if _field(e, "blocked_pid") in own or _field(e, "blocking_pid") in own
        }
        own_queues = {
            _field(q, "relation")
            for q in getattr(report, "lock_queues", [])
            if all(
                str(_field(w, "application_name") or "").startswith("pgsafe")
                for w in _field(q, "waiters") or ()
            )
        }
        out = []
        for p in report.problems():
            if p.kind not in kinds:
                continue
            if p.pid is not None and (
                p.pid in own or (p.kind == "blocking" and p.pid in own_edges)
            ):
                continue
            if p.kind == "lock-queue" and p.relation in own_queues:
                continue
            out.append(p)
        return out

    def _from_probe(self, name: str, kinds: tuple[str, ...], ok: str, what: str) -> Check:
        found = self._problems(kinds)
        if found is None and self._probe_error:
            return Check(name, FAIL, f"the lock probe could not finish: {self._probe_error}")
        if found is None:
            return Check(
                name,
                SKIP,
                "skipped: probe not available (pgsafe.lifecycle.probe is not in this build)",
            )
        if not found:
            return Check(name, PASS, ok)
        fails = [p for p in found if p.severity == "fail"]
        evidence = [p.evidence for p in found[:_EVIDENCE_LIMIT]]
        if fails:
            return Check(name, FAIL, f"{len(fails)} {what}: {fails[0].evidence}", evidence)
        return Check(name, WARN, f"{len(found)} to look at: {found[0].evidence}", evidence)

    def activity(self) -> Check:
        return self._from_probe(
            "long-transactions",
            ("long-transaction", "idle-in-transaction"),
            f"no transaction open longer than {self.policy.long_transaction_s:g}s",
            f"transactions open longer than {self.policy.long_transaction_s:g}s (they hold "
            "locks a migration would queue behind)",
        )

    def blocking(self) -> Check:
        return self._from_probe(
            "blocking-locks",
            ("blocking", "lock-queue"),
            "no session is blocked on, and no lock queue on, the tables the migrations touch; "
            f"no lock wait elsewhere of {self.policy.long_lock_wait_s:g}s or more",
            "lock conflicts right now",
        )

    def maintenance(self) -> Check:
        return self._from_probe(
            "vacuum-replication",
            ("vacuum", "replication"),
            "no (anti-wraparound) vacuum on the touched tables, no lagging replica",
            "vacuums a migration would wait for",
        )

    def migration_lock(self) -> Check:
        lock = _core.MigrationLock(self.conn, _core.migration_lock_key(self.settings.ledger_schema))
        holder = lock.holder()
        if holder is None:
            return Check("migration-lock", PASS, "no other pgsafe run holds the migration lock")
        return Check(
            "migration-lock",
            WARN,
            f"another run holds the migration lock: pid {holder.pid} "
            f"('{holder.application_name}', {holder.usename}, since {holder.since}); "
            "apply will wait for it",
        )

    def sizes(self) -> Check:
        db = self.conn.execute(
            "SELECT pg_database_size(current_database()), "
            "pg_size_pretty(pg_database_size(current_database()))"
        ).rows[0]
        tables = list(dict.fromkeys(t for ts in self.tables.values() for t in ts))
        evidence = []
        existing: dict[str, str] = {}
        for written, (name, size, pretty, rows) in table_sizes(self.conn, tables):
            existing[written] = name
            evidence.append(f"{name}: {pretty} ({size} bytes), ~{rows} rows")
        # From here on, only tables that exist now (as regclass names) count as touched.
        self.tables = {
            v: list(dict.fromkeys(existing[t] for t in ts if t in existing))
            for v, ts in self.tables.items()
        }
        return Check(
            "sizes",
            PASS,
            f"database {db[1]}; {len(evidence)} existing tables touched by pending migrations",
            evidence,
        )

    def backup(self) -> Check:
        level = self.policy.backup
        if level == "off":
            return Check("backup", SKIP, f"not required by the {self.policy.name} policy")
        if self.backup_planned:
            return Check(
                "backup", PASS, "apply takes a backup of the affected tables before migrating"
            )
        if not self.pending:
            return Check("backup", PASS, "nothing pending: no backup needed")
        bad = FAIL if level == "required" else WARN
        backup_mod = backup_core
        if backup_mod is None or not hasattr(backup_mod, "latest_backup"):
            return Check(
                "backup",
                bad,
                "cannot check backup recency: pgsafe.backup.core is not in this build",
            )
        info = backup_mod.latest_backup(str(self.backup_dir))
        if info is None:
            return Check(
                "backup",
                bad,
                f"no backup in {self.backup_dir} ({level} by the {self.policy.name} policy; "
                "`pgsafe backup` takes one)",
            )
        age_h = (dt.datetime.now(dt.UTC) - info.created_at).total_seconds() / 3600
        what = f"{info.path}, {age_h:.1f} h old"
        limit = self.policy.max_backup_age_hours
        if limit is not None and age_h > limit:
            return Check("backup", bad, f"newest backup is too old: {what} (max {limit:g} h)")
        if getattr(info, "verified_at", None) is None:
            return Check(
                "backup",
                bad,
                f"newest backup is not verified: {what} (`pgsafe verify-backup {info.path}`)",
            )
        missing = sorted(set(_unqualified(self._all_tables())) - _covered(info))
        if missing and getattr(info, "tables", None):
            return Check(
                "backup",
                bad,
                f"newest backup {info.path} does not cover " + ", ".join(missing),
            )
        return Check("backup", PASS, f"verified backup {what}")

    def _all_tables(self) -> list[str]:
        return list(dict.fromkeys(t for ts in self.tables.values() for t in ts))

    def approvals(self) -> Check:
        needs: list[tuple[str, str, str, int, str, set[str]]] = []
        for mig in self.pending:
            rep = self.analyses[mig.version]
            errors_by_line: dict[int, set[str]] = {}
            for f in rep.findings:
                if f.severity == "error":
                    errors_by_line.setdefault(f.line, set()).add(f.rule)
            for pos, s in enumerate(rep.statements):
                last = rep.statements[pos + 1].line if pos + 1 < len(rep.statements) else 1 << 30
                rules = {
                    r for line, rs in errors_by_line.items() if s.line <= line < last for r in rs
                }
                if not s.destructive and not rules:
                    continue
                names = set(rules) | ({s.destructive} if s.destructive else set())
                what = ", ".join(sorted(names))
                needs.append((mig.version, mig.label, mig.up_path.name, s.line, what, names))
        approvals = load_approvals(self.approvals_path)
        needed = self.policy.approvals
        if not needs:
            return Check("approvals", PASS, "no destructive change or lint error needs approval")
        statuses = evaluate(needs, {m.version: m.checksum for m in self.pending}, approvals, needed)
        evidence = []
        for st in statuses:
            got = ", ".join(st.approvers) or "nobody"
            line = f"{st.migration} line {st.line}: {st.what}: approved by {got}"
            if needed:
                line += f" ({len(st.approvers)}/{needed})"
            if st.stale:
                line += (
                    f"; approval by {', '.join(st.stale)} no longer counts: the file changed "
                    "since it was approved (checksum mismatch)"
                )
            evidence.append(line)
        if needed == 0:
            return Check(
                "approvals",
                WARN,
                f"{len(statuses)} changes would need approval outside {self.policy.name} "
                "(not required here)",
                evidence,
            )
        missing = [st for st in statuses if not st.satisfied]
        if missing:
            stale = any(st.stale for st in missing)
            return Check(
                "approvals",
                FAIL,
                f"{len(missing)} of {len(statuses)} changes lack {needed} distinct approvals "
                f"({self.approvals_path})"
                + ("; some approvals are for an older version of the file" if stale else ""),
                evidence,
            )
        return Check(
            "approvals",
            PASS,
            f"{len(statuses)} changes approved by {needed} distinct approvers each",
            evidence,
        )

    def timeouts(self) -> Check:
        s, p = self.settings, self.policy
        problems = []
        if s.lock_timeout_ms <= 0:
            problems.append("lock_timeout is off")
        elif s.lock_timeout_ms > p.max_lock_timeout_ms:
            problems.append(f"lock_timeout {s.lock_timeout_ms} ms > {p.max_lock_timeout_ms} ms")
        if s.statement_timeout_ms <= 0:
            problems.append("statement_timeout is off")
        elif s.statement_timeout_ms > p.max_statement_timeout_ms:
            problems.append(
                f"statement_timeout {s.statement_timeout_ms} ms > {p.max_statement_timeout_ms} ms"
            )
        if s.idle_in_transaction_timeout_ms <= 0:
            problems.append("idle_in_transaction_session_timeout is off")
        current = (
            f"lock_timeout {s.lock_timeout_ms} ms, statement_timeout {s.statement_timeout_ms} ms "
            f"({s.long_statement_timeout_ms} ms for index builds), idle "
            f"{s.idle_in_transaction_timeout_ms} ms"
        )
        if not problems:
            return Check("timeouts", PASS, current)
        status = {"required": FAIL, "recommended": WARN}.get(p.timeouts, WARN)
        return Check(
            "timeouts",
            status,
            "; ".join(problems) + f" (timeouts {p.timeouts} by the {p.name} policy)",
            [current],
        )

    def server(self) -> Check:
        row = self.conn.execute(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version'),"
            " pg_is_in_recovery(), current_setting('default_transaction_read_only'),"
            " has_database_privilege(current_database(), 'CREATE'),"
            " current_setting('max_locks_per_transaction')"
        ).rows[0]
        num, text, recovery, read_only, can_create, max_locks = row
        version = int(num or 0)
        problems: list[str] = []
        warnings: list[str] = []
        evidence = [
            f"server_version {text} ({version})",
            f"max_locks_per_transaction {max_locks}",
        ]
        if version < self.policy.min_server_version:
            problems.append(
                f"server_version_num {version} < {self.policy.min_server_version} (policy minimum)"
            )
        if recovery == "t":
            problems.append("the server is a standby (pg_is_in_recovery): it cannot be migrated")
        if read_only == "on":
            problems.append("default_transaction_read_only is on")
        if can_create != "t":
            warnings.append("the current user may not CREATE in this database")

        lint_config = load_config()
        lint_major = lint_config.pg_version
        if lint_config.pg_version_source and lint_major != version // 10000:
            warnings.append(
                f"lint assumed PostgreSQL {lint_major} (pg_version), the server is "
                f"{version // 10000}: lock predictions may differ"
            )
        for ext in _extensions(self.pending):
            got = self.conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = $1)", [ext]
            ).rows
            if got != [("t",)]:
                problems.append(
                    f"extension {ext} (CREATE EXTENSION in a pending migration) is not "
                    "available on the server"
                )
        evidence += problems + warnings
        if problems:
            return Check("server", FAIL, "; ".join(problems), evidence)
        if warnings:
            return Check("server", WARN, "; ".join(warnings), evidence)
        return Check("server", PASS, f"PostgreSQL {text}, writable primary", evidence)


def _field(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, dict) else getattr(row, name, None)


def _describe(row: Any) -> str:
    items: list[tuple[str, Any]]
    if isinstance(row, dict):
        items = list(row.items())
    elif hasattr(row, "__dataclass_fields__"):
        items = [(k, getattr(row, k)) for k in row.__dataclass_fields__]
    else:
        items = [(k, getattr(row, k)) for k in dir(row) if not k.startswith("_")]
    parts = []
    for k, v in items:
        if callable(v) or v in (None, ""):
            continue
        text = " ".join(str(v).split())
        parts.append(f"{k}={text[:120]}")
    return ", ".join(parts)


def _pgsafe_pids(conn: _core.Connection) -> set[int]:
    """Sessions of pgsafe runs (migration lock, runner, this preflight): the migration lock
    already orders them, so they are not reported as blockers of each other."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgsafe'"
        " OR application_name LIKE 'pgsafe %'"
    ).rows
    return {int(r[0] or 0) for r in rows}


def _unqualified(names: list[str]) -> list[str]:
    return [n.split(".")[-1] for n in names]


def _covered(info: Any) -> set[str]:
    return set(_unqualified([str(t) for t in getattr(info, "tables", None) or []]))


def _extensions(migrations: list[Migration]) -> list[str]:
    out = []
    for mig in migrations:
        for i, s in enumerate(mig.up_statements()):
            if s.kind == "CreateExtensionStmt":
                name = Stmt.from_core(i, s).node.get("extname")
                if name:
                    out.append(str(name))
    return list(dict.fromkeys(out))


def touched_tables(mig: Migration, pg_version: int = 15) -> list[str]:
    """Tables (as written) that the up migration reads, locks or changes and that existed before
    it: what a backup must hold and whose size and lock queue matter."""

    ctx = Context(pg_version=pg_version, file=str(mig.up_path))
    out: list[str] = []
    # Through the Migration: an Alembic revision's SQL is rendered, not read from its file.
    for i, raw in enumerate(mig.up_statements()):
        stmt = Stmt.from_core(i, raw)
        names = [rel for rel, _mode in predict(stmt, ctx).locks]
        names += [range_name(node) for kind, node in walk(stmt.node) if kind == "RangeVar"]
        if stmt.kind == "DropStmt" and stmt.node.get("removeType") == "OBJECT_TABLE":
            for obj in stmt.node.get("objects", []):
                parts = strings(obj.get("List", {}).get("items"))
                if parts:
                    names.append(".".join(parts))
        created = {range_name(stmt.node.get(k)) for k in ("relation", "view", "sequence")}
        created.add(range_name((stmt.node.get("into") or {}).get("rel")))
        if stmt.kind not in ("CreateStmt", "ViewStmt", "CreateSeqStmt", "CreateTableAsStmt"):
            created = set()
        for name in names:
            if name and name not in created and not ctx.is_new_relation(name) and name not in out:
                out.append(name)
        ctx.note(stmt)
    return out


def table_sizes(
    conn: _core.Connection, names: list[str]
) -> list[tuple[str, tuple[str, int, str, int]]]:
    """For each of `names` that is a table now: (name as given, (regclass name, total bytes,
    pretty size, estimated rows)). A table another session has locked is never waited for: its
    size is then estimated from pg_class (pages as of the last VACUUM/ANALYZE)."""
    out = []
    for name in names:
        r = conn.execute(
            "SELECT c.oid::regclass::text, greatest(c.reltuples, 0)::bigint,"
            " (c.relpages + coalesce(t.relpages, 0) + coalesce((SELECT sum(i.relpages)"
            "   FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            "   WHERE x.indrelid = c.oid), 0))::bigint * current_setting('block_size')::bigint"
            " FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid"
            " WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'm')",
            [name],
        ).rows
        if not r:
            continue
        regclass, rows, estimate = str(r[0][0]), int(r[0][1] or 0), int(r[0][2] or 0)
        size, pretty = estimate, ""
        try:
            conn.execute("BEGIN READ ONLY")
            conn.execute("SET LOCAL lock_timeout = '100ms'")
            exact = conn.execute(
                "SELECT pg_total_relation_size($1::regclass),"
                " pg_size_pretty(pg_total_relation_size($1::regclass))",
                [regclass],
            ).rows[0]
            conn.execute("COMMIT")
            size, pretty = int(exact[0] or 0), str(exact[1])
        except DatabaseError:
            if conn.transaction_status in ("in_transaction", "in_error"):
                conn.execute("ROLLBACK")
            pretty = f"~{_pretty(estimate)} (locked by another session: estimated)"
        out.append((name, (regclass, size, pretty, rows)))
    return out


def _pretty(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 10240 or unit == "TB":
            return f"{value:.0f} {unit}"
        value /= 1024
    return f"{size} bytes"


def preflight(
    dsn: str,
    source: str | Path = "migrations",
    *,
    env: str | None = None,
    policy: Policy | None = None,
    settings: Settings | None = None,
    force: bool = False,
    backup_dir: str | Path = "backups/migrations",
    backup_planned: bool = False,
    approvals: str | Path | None = None,
    target_label: str | None = None,
    events: EventLog | None = None,
    log_dir: str | Path | None = None,
    to: str | None = None,
) -> PreflightReport:
    """Runs every preflight check against `dsn` (read-only) and returns the report; writes it to
    ``log_dir/preflight-report-<timestamp>.json`` when `log_dir` is given. `force` overrides
    failures (recorded in the report and the event log) when the policy allows it.
    `backup_planned`: the caller (apply --apply) takes a backup next, so recency is moot.
    `to`: only migrations up to this version count as pending (apply --to)."""

    settings = settings or Settings()
    policy = policy or load_policy(env)
    events = events or EventLog(None)
    root = Path(source)
    discover(root)  # bad names and orphan down files: a config error before connecting
    label = target_label or (mask_password(dsn) if dsn else "libpq defaults")
    if force and not policy.allow_force:
        raise ConfigError(f"--force is not allowed by the {policy.name} policy ({policy.source})")
    started = time.monotonic()
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    events.write("preflight_start", database=label, environment=policy.name, source=str(root))
    with contextlib.closing(connect(dsn, settings, "preflight")) as conn:
        # Preflight never queues behind a lock it inspects, and never runs away.
        conn.execute("SET lock_timeout = '1s'")
        conn.execute("SET statement_timeout = '60s'")
        pf = _Preflight(
            conn,
            root,
            policy,
            settings,
            dsn,
            Path(backup_dir),
            backup_planned,
            Path(approvals) if approvals else root / APPROVALS_FILE,
            to,
        )
        checks, pending = pf.run()
        dirty = pf.dirty
    report = PreflightReport(
        label,
        str(root),
        policy,
        checks,
        pending,
        forced=force and any(c.status == FAIL for c in checks),
        generated_at=generated,
        duration_s=time.monotonic() - started,
        dirty=dirty,
    )
    if log_dir:
        report.write(log_dir)
    for c in checks:
        if c.status in (FAIL, WARN):
            events.write("preflight_check", check=c.name, status=c.status, summary=c.summary)
    events.write(
        "preflight_done",
        ok=report.ok,
        forced=report.forced,
        failed=[c.name for c in report.failures],
        warnings=[c.name for c in report.warnings],
        report=report.report_path,
    )
    if report.forced:
        events.write(
            "preflight_forced",
            failed=[c.name for c in report.failures],
            environment=policy.name,
        )
    return report


__all__ = ["Check", "PreflightReport", "preflight", "table_sizes", "touched_tables"]
