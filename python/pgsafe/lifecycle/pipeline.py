"""The seed-002 lifecycle as one call: preflight -> backup -> apply -> postflight, stopping at the
first failure with that step's exit code (1, 2, 2, 3), every step in the event log, and a
summary at the end; and the rollback side: data-loss warnings from the down files, checked
against the target's row counts before anything runs."""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgsafe import _core
from pgsafe.backup import core as backup_core
from pgsafe.config import Settings
from pgsafe.db import connect
from pgsafe.errors import (
    ConfigError,
    DatabaseError,
    DirtyMigrationError,
    Error,
    MigrationError,
    PostflightError,
    RollbackError,
    UnsafeError,
    exit_code,
    mask_password,
)
from pgsafe.events import EventLog
from pgsafe.lifecycle import postflight as postflight_mod
from pgsafe.lifecycle.dryrun import destructive_kind
from pgsafe.lifecycle.policy import Policy
from pgsafe.lifecycle.preflight import PreflightReport, preflight, touched_tables
from pgsafe.lifecycle.runner import Runner, StepResult, _duration
from pgsafe.lint.model import Stmt, alter_cmds, range_name, strings
from pgsafe.quoting import quote_ident
from pgsafe.render import Report, Section, Table, Text
from pgsafe.sources.files import Migration
from pgsafe.sources.layouts import short_name

Say = Callable[[str], None]


class PreflightFailed(UnsafeError):
    """Preflight found a failure and --force was not given: nothing was applied."""

    def __init__(self, report: PreflightReport) -> None:
        super().__init__(report.failure_line())
        self.report = report


class BackupFailed(MigrationError):
    """The backup the policy asks for could not be taken: nothing was applied (exit 2)."""


@dataclass
class Step:
    name: str  # preflight | backup | apply | postflight
    status: str  # ok | warn | failed | skipped | not-run
    detail: str
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "status": self.status,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ApplyReport(Report):
    database: str
    environment: str
    steps: list[Step] = field(default_factory=list)
    results: list[StepResult] = field(default_factory=list)
    preflight: PreflightReport | None = None
    backup_path: str | None = None
    postflight_report: str | None = None
    postflight: Any = None  # the PostflightReport, kept when it failed
    error: str | None = None
    exit_code: int = 0
    title: str = "pgsafe apply"
    dry_run: bool = False  # without --apply: preflight and the plan only
    plan: list[dict[str, Any]] = field(default_factory=list)  # what --apply would run
    started_at: str | None = None  # UTC, ISO 8601
    seconds: float = 0.0  # the whole run

    def summary(self) -> str:
        done = "succeeded" if self.exit_code == 0 else f"stopped (exit {self.exit_code})"
        return (
            f"{done} on {self.database} (environment {self.environment}): "
            f"{len(self.results)} migrations applied in "
            f"{sum(r.duration_s for r in self.results):.3f}s"
        )

    def sections(self) -> list[Section]:
        steps = [[s.name, s.status, s.detail, f"{s.seconds:.2f}s"] for s in self.steps]
        migs = [
            [
                f"{r.version}_{r.name}",
                r.status,
                f"{r.duration_s:.3f}s",
                r.estimate or "",
                r.retries,
                "SLOW" if r.slow else "",
            ]
            for r in self.results
        ]
        out = [
            Section("Steps", [Table(["step", "status", "detail", "time"], steps)]),
            Section(
                "Migrations",
                [
                    Table(
                        ["migration", "status", "took", "dry-run estimate", "retries", ""],
                        migs,
                        "none applied",
                    )
                ],
            ),
        ]
        if self.error:
            out.append(Section("Error", [Text(self.error)]))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "environment": self.environment,
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "error": self.error,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "steps": [s.to_dict() for s in self.steps],
            "plan": self.plan,
            "backup": self.backup_path,
            "preflight_report": self.preflight.report_path if self.preflight else None,
            "postflight_report": self.postflight_report,
            "preflight": self.preflight.to_dict() if self.preflight else None,
            "migrations": [
                {
                    "version": r.version,
                    "name": r.name,
                    "status": r.status,
                    "duration_s": round(r.duration_s, 6),
                    "estimate": r.estimate,
                    "slow": r.slow,
                    "retries": r.retries,
                    "statements": r.statements,
                }
                for r in self.results
            ],
        }


def apply_pipeline(
    dsn: str,
    source: str | Path,
    *,
    policy: Policy,
    settings: Settings | None = None,
    events: EventLog | None = None,
    progress: Say | None = None,
    to: str | None = None,
    backup: bool | None = None,
    postflight: bool = True,
    force: bool = False,
    backup_dir: str | Path = "backups/migrations",
    approvals: str | Path | None = None,
    log_dir: str | Path | None = None,
    target_label: str | None = None,
    slow_migration_s: float | None = None,
    report: ApplyReport | None = None,
) -> ApplyReport:
    """preflight -> backup -> apply -> postflight on `dsn`. `backup`: None follows the policy
    (taken unless it is "off"), False skips it (refused when the policy does not allow it), True
    takes one whatever the policy says. Returns the report; raises the failing step's error
    (PreflightFailed 1, BackupFailed 2, MigrationFailed 2, PostflightError 3) after filling
    `report` (pass one in to print its summary on failure)."""
    settings = settings or Settings()
    events = events or EventLog(None)
    say = progress or (lambda _m: None)
    label = target_label or (mask_password(dsn) if dsn else "libpq defaults")
    report = report or ApplyReport(label, policy.name)
    report.database, report.environment = label, policy.name
    if backup is False and not policy.allow_skip_backup:
        raise ConfigError(
            f"--no-backup is refused by the {policy.name} policy (backup {policy.backup}; "
            f"{policy.source})"
        )
    take_backup = backup if backup is not None else policy.backup != "off"
    runner = Runner(
        source,
        dsn,
        settings=settings,
        events=events,
        progress=say,
        target_label=label,
        slow_migration_s=slow_migration_s
        if slow_migration_s is not None
        else policy.slow_migration_s,
    )
    migs = runner.migrations()
    runner._check_to(migs, to)
    for m in migs:  # bad SQL: a config error before anything runs, preflight included
        m.up_statements()
    events.write("pipeline_start", database=label, environment=policy.name, source=str(source))
    if backup is False:
        events.write("backup_skipped", reason="--no-backup", environment=policy.name)

    def stop(step: Step, exc: Error) -> None:
        # The same function the CLI exits with: report, message and process agree.
        code = exit_code("apply", exc)
        report.steps.append(step)
        report.error = str(exc)
        report.exit_code = code
        for name in ("preflight", "backup", "apply", "postflight"):
            if not any(s.name == name for s in report.steps):
                report.steps.append(Step(name, "not-run", f"stopped at {step.name}"))
        events.write("pipeline_failed", step=step.name, exit_code=code, message=str(exc))

    # 1. preflight
    started = time.monotonic()
    try:
        pre = preflight(
            dsn,
            source,
            policy=policy,
            settings=settings,
            force=force,
            backup_dir=backup_dir,
            backup_planned=take_backup,
            approvals=approvals,
            target_label=label,
            events=events,
            log_dir=log_dir,
            to=to,
        )
    except ConfigError:
        raise
    except DatabaseError as exc:
        err = UnsafeError(f"preflight could not run: {exc}")
        stop(Step("preflight", "failed", str(err), time.monotonic() - started), err)
        raise err from exc
    report.preflight = pre
    pre_time = time.monotonic() - started
    if pre.dirty:
        # A dirty ledger stops every run with the migration exit code, --force or not.
        version, name, reason = pre.dirty[0]
        derr = DirtyMigrationError(version, name, reason)
        stop(Step("preflight", "failed", pre.summary(), pre_time), derr)
        raise derr
    if not pre.passed:
        err = PreflightFailed(pre)
        stop(Step("preflight", "failed", pre.summary(), pre_time), err)
        raise err
    status = "ok" if pre.ok and not pre.warnings else "warn"
    if pre.forced:
        status = "forced"
    detail = pre.summary()
    if pre.warnings:
        detail += "; warnings: " + ", ".join(c.name for c in pre.warnings)
    if pre.forced:
        detail += "; failures overridden by --force: " + ", ".join(c.name for c in pre.failures)
    report.steps.append(Step("preflight", status, detail, pre_time))
    upto = runner.up_to(migs, to)
    wanted = [p for p in pre.pending if p.version in upto]
    runner.estimates = {p.version: p.estimate for p in wanted if p.estimate}

    # 2. backup
    started = time.monotonic()
    if not wanted:
        report.steps.append(Step("backup", "skipped", "nothing pending"))
    elif not take_backup:
        why = "--no-backup" if backup is False else f"not required by the {policy.name} policy"
        report.steps.append(Step("backup", "skipped", why))
    else:
        tables = list(dict.fromkeys(t for p in wanted for t in p.tables))
        try:
            path = _take_backup(dsn, tables, backup_dir, policy, events, say)
        except BackupFailed as exc:
            stop(Step("backup", "failed", str(exc), time.monotonic() - started), exc)
            raise
        report.backup_path = path
        what = ", ".join(tables) if tables else "whole database"
        report.steps.append(Step("backup", "ok", f"{path} ({what})", time.monotonic() - started))

    # 3. apply
    started = time.monotonic()
    try:
        report.results = runner.apply(to)
    except Error as exc:
        report.results = runner.results
        if isinstance(exc, ConfigError):
            raise
        stop(Step("apply", "failed", str(exc), time.monotonic() - started), exc)
        raise
    slow = [r for r in report.results if r.slow]
    detail = f"{len(report.results)} migrations" + (
        f"; {len(slow)} slower than {_duration(runner.slow_migration_s)}" if slow else ""
    )
    report.steps.append(Step("apply", "warn" if slow else "ok", detail, time.monotonic() - started))

    # 4. postflight
    started = time.monotonic()
    check = postflight_mod.postflight
    if not postflight:
        report.steps.append(Step("postflight", "skipped", "--no-postflight"))
        events.write("postflight_skipped", reason="--no-postflight")
    else:
        try:
            post = _run_postflight(
                check, dsn, source, log_dir, [r.version for r in report.results], settings, label
            )
        except ConfigError:
            raise
        except Error as exc:
            perr = PostflightError(f"postflight could not run: {exc}")
            stop(Step("postflight", "failed", str(perr), time.monotonic() - started), perr)
            raise perr from exc
        post_path = getattr(post, "report_path", None)
        report.postflight_report = str(post_path) if post_path else None
        ok = bool(getattr(post, "ok", getattr(post, "passed", True)))
        summary = post.summary() if hasattr(post, "summary") else ("ok" if ok else "failed")
        if not ok:
            report.postflight = post
            failed = [
                f"{c.name}: {getattr(c, 'message', '')}"
                for c in getattr(post, "checks", [])
                if getattr(c, "status", "") == "fail"
            ]
            perr = PostflightError("postflight failed: " + ("; ".join(failed) or summary))
            stop(Step("postflight", "failed", summary, time.monotonic() - started), perr)
            raise perr
        report.steps.append(Step("postflight", "ok", summary, time.monotonic() - started))
    events.write(
        "pipeline_done",
        applied=[r.version for r in report.results],
        steps={s.name: s.status for s in report.steps},
    )
    return report


def _take_backup(
    dsn: str, tables: list[str], out_dir: str | Path, policy: Policy, events: EventLog, say: Say
) -> str:
    """The backup step through pgsafe.backup.core: the path of the backup taken."""
    say(f"backing up {', '.join(tables) if tables else 'the whole database'} to {out_dir}")
    events.write("backup_start", tables=tables or None, out_dir=str(out_dir))
    try:
        result = backup_core.backup(dsn, tables=tables or None, out_dir=str(out_dir))
    except ConfigError as exc:
        raise BackupFailed(f"backup failed: {exc}; nothing was applied") from exc
    except Error as exc:
        raise BackupFailed(f"backup failed: {exc}; nothing was applied") from exc
    path = str(getattr(result, "path", result))
    verified = False
    if policy.backup == "required":
        # Seed 003: a production backup must be known to restore, not merely exist.
        say(f"verifying {path} (restore into a throwaway server)")
        try:
            v = backup_core.verify_backup(path)
        except Error as exc:
            raise BackupFailed(
                f"backup {path} could not be verified: {exc}; nothing was applied"
            ) from exc
        if not bool(getattr(v, "ok", True)):
            raise BackupFailed(f"backup {path} failed verification; nothing was applied")
        verified = True
    events.write("backup_done", path=path, verified=verified)
    return path


def _run_postflight(
    check: Callable[..., Any],
    dsn: str,
    source: str | Path,
    log_dir: Any,
    applied: list[str],
    settings: Settings,
    label: str,
) -> Any:
    """pgsafe.lifecycle.postflight.postflight with the arguments it takes (it lands separately)."""

    params = inspect.signature(check).parameters
    offered: dict[str, Any] = {
        "migrations_path": source,
        "report_dir": log_dir,
        "just_applied": applied,
        "settings": settings,
        "target_label": label,
    }
    return check(dsn, **{k: v for k, v in offered.items() if k in params})


# -- rollback -----------------------------------------------------------------------------------


@dataclass
class DataLoss:
    """One statement of a down file that destroys data, with what the target holds now."""

    migration: str
    file: str
    line: int
    kind: str  # DROP TABLE, DROP COLUMN, TRUNCATE, ...
    target: str  # table or table.column
    rows: int | None  # rows (or non-null values) there now; None when it does not exist
    estimated: bool = False

    def describe(self) -> str:
        if self.rows is None:
            held = "not present on the target"
        else:
            approx = "~" if self.estimated else ""
            unit = "non-null values" if self.kind == "DROP COLUMN" else "rows"
            held = f"{approx}{self.rows:,} {unit} lost"
        where = f"{short_name(self.file)}:{self.line}"
        return f"{self.migration} ({where}): {self.kind} {self.target}: {held}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "file": self.file,
            "line": self.line,
            "kind": self.kind,
            "target": self.target,
            "rows": self.rows,
            "estimated": self.estimated,
        }


def _down_targets(mig: Migration) -> list[tuple[int, str, str, str | None]]:
    """(line, kind, table, column) of each destructive statement in the down file."""

    out: list[tuple[int, str, str, str | None]] = []
    if mig.down_path is None:
        return out
    for i, raw in enumerate(mig.down_statements()):
        stmt = Stmt.from_core(i, raw)
        kind = destructive_kind(stmt)
        if kind is None:
            continue
        n = stmt.node
        if stmt.kind == "DropStmt":
            for obj in n.get("objects", []):
                parts = strings(obj.get("List", {}).get("items"))
                if parts:
                    out.append((stmt.line, kind, ".".join(parts), None))
        elif stmt.kind == "TruncateStmt":
            for rel in n.get("relations", []):
                out.append((stmt.line, kind, range_name(rel.get("RangeVar")), None))
        elif stmt.kind == "AlterTableStmt":
            table = range_name(n.get("relation"))
            for cmd in alter_cmds(stmt):
                if cmd.get("subtype") in ("AT_DropColumn", "AT_AlterColumnType"):
                    out.append((stmt.line, kind, table, cmd.get("name")))
        elif stmt.kind in ("DeleteStmt", "UpdateStmt"):
            out.append((stmt.line, kind, range_name(n.get("relation")), None))
        else:
            out.append((stmt.line, kind, "", None))
    return out


def _count(conn: _core.Connection, table: str, column: str | None) -> tuple[int | None, bool]:
    """Rows of `table` (non-null values of `column`), exact within 5 s, else the planner's
    estimate; (None, False) when there is no such table or column."""
    r = conn.execute(
        "SELECT c.oid::regclass::text, greatest(c.reltuples, 0)::bigint FROM pg_class c"
        " WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'm')",
        [table],
    ).rows
    if not r:
        return None, False
    regclass, estimate = str(r[0][0]), int(r[0][1] or 0)
    what = "count(*)"
    if column is not None:
        has = conn.execute(
            "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = to_regclass($1)"
            " AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            [table, column],
        ).rows
        if not has:
            return None, False
        what = f"count({has[0][0]})"
    try:
        conn.execute("BEGIN READ ONLY")
        conn.execute("SET LOCAL statement_timeout = '5s'")
        conn.execute("SET LOCAL lock_timeout = '1s'")
        rows = conn.execute(f"SELECT {what} FROM {regclass}").rows
        conn.execute("COMMIT")
        return int(rows[0][0] or 0), False
    except DatabaseError:
        if conn.transaction_status in ("in_transaction", "in_error"):
            conn.execute("ROLLBACK")
        return estimate, True


def rollback_data_loss(
    dsn: str, plan: list[tuple[Migration, Any]], settings: Settings | None = None
) -> list[DataLoss]:
    """What the down files of `plan` destroy, with the row counts the target holds now."""
    out: list[DataLoss] = []
    with contextlib.closing(connect(dsn, settings or Settings(), "rollback check")) as conn:
        for mig, _statements in plan:
            for line, kind, table, column in _down_targets(mig):
                rows, estimated = _count(conn, table, column) if table else (None, False)
                target = f"{table}.{column}" if column else table
                out.append(
                    DataLoss(mig.label, str(mig.down_path), line, kind, target, rows, estimated)
                )
    return out


# -- rollback --from-backup -------------------------------------------------------------------

Name = tuple[str | None, str]  # (schema as written, or None; table)


@dataclass
class CreatedTable:
    """A table the up files of the rolled-back migrations created, as the target has it now."""

    name: str  # the target's regclass text
    migration: str
    file: str
    line: int
    if_not_exists: bool
    rows: int | None = None
    estimated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.name,
            "migration": self.migration,
            "file": self.file,
            "line": self.line,
            "rows": self.rows,
            "estimated": self.estimated,
        }


@dataclass
class RestorePlan:
    """What `rollback --from-backup` does, worked out (read-only) before anything runs: the
    backup it restores, the tables that restore replaces, and the tables the migrations created
    that the backup does not hold, which are dropped first (the restore cannot remove them)."""

    backup: Any  # pgsafe.backup.core.BackupInfo
    scope: str  # the backup's: "tables" or "database"
    restored: list[str]  # backup tables on the target now: dropped and reloaded by the restore
    drop: list[CreatedTable]
    kept: list[CreatedTable]  # CREATE TABLE IF NOT EXISTS the backup cannot vouch for

    def losses(self) -> list[DataLoss]:
        return [
            DataLoss(t.migration, t.file, t.line, "DROP TABLE", t.name, t.rows, t.estimated)
            for t in self.drop
        ]

    def describe(self) -> list[str]:
        lines = [
            f"--from-backup: restore {', '.join(self.restored) or 'no existing table'} from "
            f"{self.backup.path} (taken {self.backup.created_at:%Y-%m-%d %H:%M:%S} UTC)"
        ]
        if self.drop:
            lines.append(
                "--from-backup: drop the tables the rolled-back migrations created (not in the "
                "backup): " + ", ".join(t.name for t in self.drop)
            )
        for t in self.kept:
            lines.append(
                f"warning: {t.name} is left in place: {short_name(t.file)}:{t.line} creates it "
                "with IF NOT EXISTS and the backup (of chosen tables) cannot tell whether it "
                "existed before; drop it by hand if the migration created it"
            )
        return lines


def _created_names(migs: list[Migration]) -> dict[Name, tuple[Migration, int, bool]]:
    """Tables the up files of `migs` create (CREATE TABLE, CREATE TABLE AS, SELECT INTO), under
    the name they have after the migrations' own renames, with the creating migration, line and
    whether it said IF NOT EXISTS. Read from libpg_query's parse trees."""

    def rv(node: Any) -> Name | None:
        if isinstance(node, dict) and isinstance(node.get("relname"), str):
            return (node.get("schemaname"), node["relname"])
        return None

    created: dict[Name, tuple[Migration, int, bool]] = {}
    for mig in sorted(migs, key=lambda m: m.sort_key):
        for i, raw in enumerate(mig.up_statements()):
            stmt = Stmt.from_core(i, raw)
            n = stmt.node
            name: Name | None = None
            if stmt.kind == "CreateStmt":
                name = rv(n.get("relation"))
            elif stmt.kind == "CreateTableAsStmt" and n.get("objtype") == "OBJECT_TABLE":
                name = rv((n.get("into") or {}).get("rel"))
            elif stmt.kind == "SelectStmt" and n.get("intoClause"):
                name = rv(n["intoClause"].get("rel"))
            elif stmt.kind == "RenameStmt" and n.get("renameType") == "OBJECT_TABLE":
                old = rv(n.get("relation"))
                if old in created and isinstance(n.get("newname"), str):
                    created[(old[0], n["newname"])] = created.pop(old)
                continue
            elif stmt.kind == "AlterObjectSchemaStmt" and n.get("objectType") == "OBJECT_TABLE":
                old = rv(n.get("relation"))
                if old in created and isinstance(n.get("newschema"), str):
                    created[(n["newschema"], old[1])] = created.pop(old)
                continue
            if name is not None:
                created[name] = (mig, stmt.line, bool(n.get("if_not_exists")))
    return created


# Objects that depend on a table and the relation each belongs to (NULL: no relation, e.g. a
# function or a domain): DROP TABLE without CASCADE fails on any of them.
_DEPENDENTS = """
SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid),
  CASE d.classid
    WHEN 'pg_catalog.pg_constraint'::regclass THEN
      (SELECT nullif(conrelid, 0) FROM pg_catalog.pg_constraint WHERE oid = d.objid)
    WHEN 'pg_catalog.pg_rewrite'::regclass THEN
      (SELECT ev_class FROM pg_catalog.pg_rewrite WHERE oid = d.objid)
    WHEN 'pg_catalog.pg_trigger'::regclass THEN
      (SELECT tgrelid FROM pg_catalog.pg_trigger WHERE oid = d.objid)
    WHEN 'pg_catalog.pg_policy'::regclass THEN
      (SELECT polrelid FROM pg_catalog.pg_policy WHERE oid = d.objid)
    WHEN 'pg_catalog.pg_attrdef'::regclass THEN
      (SELECT adrelid FROM pg_catalog.pg_attrdef WHERE oid = d.objid)
    WHEN 'pg_catalog.pg_class'::regclass THEN coalesce(
      (SELECT indrelid FROM pg_catalog.pg_index WHERE indexrelid = d.objid), d.objid)
  END
FROM pg_catalog.pg_depend d
WHERE d.deptype = 'n' AND (
  (d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = ANY($1::oid[]))
  OR (d.refclassid = 'pg_catalog.pg_type'::regclass AND d.refobjid IN
      (SELECT reltype FROM pg_catalog.pg_class WHERE oid = ANY($1::oid[]))))
"""


def _outside_dependents(conn: _core.Connection, oids: list[str]) -> list[str]:
    """Objects that depend on the tables `oids` and belong to none of them: what would make
    dropping them (here, and in the restore) fail, or CASCADE reach further."""
    if not oids:
        return []
    rows = conn.execute(_DEPENDENTS, ["{" + ",".join(oids) + "}"]).rows
    return sorted(str(r[0]) for r in rows if r[1] is None or str(r[1]) not in oids)


def _resolve(conn: _core.Connection, text: str) -> tuple[str, str] | None:
    """(oid, regclass text) of the table `text` names on the target (tables only)."""
    r = conn.execute(
        "SELECT c.oid::text, c.oid::regclass::text FROM pg_catalog.pg_class c"
        " WHERE c.oid = pg_catalog.to_regclass($1) AND c.relkind IN ('r', 'p')",
        [text],
    ).rows
    return (str(r[0][0]), str(r[0][1])) if r else None


def plan_restore_rollback(
    dsn: str,
    plan: list[tuple[Migration, Any]],
    backup_dir: str | Path,
    applied_at: dict[str, str | None],
    settings: Settings | None = None,
) -> RestorePlan:
    """Checks that the newest verified backup in `backup_dir` can undo `plan` and works out
    what the rollback drops and restores, touching nothing. `applied_at`: version -> when the
    ledger says it was applied. Raises RollbackError (exit 4) when it cannot: no backup, not
    verified, taken after a migration of `plan` was applied, missing a table the migrations
    touched, or something outside the tables involved depends on them; ConfigError (5) when
    this build has no pgsafe.backup.core or the backup is encrypted."""

    info = backup_core.latest_backup(backup_dir)
    if info is None:
        raise RollbackError(f"--from-backup: no backup in {backup_dir}; nothing was touched")
    if info.verified_at is None:
        raise RollbackError(
            f"--from-backup: the newest backup {info.path} is not verified (`pgsafe "
            "verify-backup` it first); nothing was touched"
        )
    for mig, _stmts in plan:
        applied = applied_at.get(mig.version) or ""
        text = re.sub(r"([+-]\d\d)$", r"\1:00", applied.replace(" ", "T"))
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            continue
        if info.created_at > when:
            raise RollbackError(
                f"--from-backup: the newest verified backup {info.path} was taken after "
                f"{mig.label} was applied ({applied}): restoring it would not undo it; "
                "nothing was touched"
            )
    needed = {t.split(".")[-1] for mig, _ in plan for t in touched_tables(mig)}
    held = {t.split(".")[-1] for t in info.tables}
    if needed - held:
        raise RollbackError(
            f"--from-backup: {info.path} does not hold "
            + ", ".join(sorted(needed - held))
            + "; nothing was touched"
        )
    try:
        doc = json.loads(backup_core.manifest_path(info.path).read_text())
    except (OSError, ValueError) as exc:
        raise RollbackError(
            f"--from-backup: cannot read the manifest of {info.path}: {exc}"
        ) from None
    if doc.get("encrypted"):
        raise ConfigError(
            f"--from-backup: {info.path} is encrypted; restore it with `pgsafe restore` and "
            "its key instead; nothing was touched"
        )
    scope = str(doc.get("scope", "tables"))
    created = _created_names([m for m, _ in plan])
    drop: list[CreatedTable] = []
    kept: list[CreatedTable] = []
    with contextlib.closing(connect(dsn, settings or Settings(), "rollback check")) as conn:
        restored: dict[str, str] = {}  # oid -> name: the backup's tables present now
        for t in info.tables:
            if (found := _resolve(conn, t)) is not None:
                restored[found[0]] = found[1]
        dropping: dict[str, str] = {}
        for (schema, name), (mig, line, if_not_exists) in created.items():
            quoted = f"{quote_ident(schema)}.{quote_ident(name)}" if schema else quote_ident(name)
            found = _resolve(conn, quoted)
            if found is None or found[0] in restored or found[0] in dropping:
                continue  # gone again, or the backup holds it: the restore takes care of it
            rows, estimated = _count(conn, found[1], None)
            table = CreatedTable(
                found[1], mig.label, str(mig.up_path), line, if_not_exists, rows, estimated
            )
            if if_not_exists and scope != "database":
                kept.append(table)  # it may have been there before: not ours to drop
            else:
                drop.append(table)
                dropping[found[0]] = found[1]
        involved = [*restored, *dropping]
        if blockers := _outside_dependents(conn, involved):
            raise RollbackError(
                "--from-backup: "
                + ", ".join(blockers[:5])
                + (" ..." if len(blockers) > 5 else "")
                + " depend"
                + ("s" if len(blockers) == 1 else "")
                + " on tables the rollback drops ("
                + ", ".join([*restored.values(), *dropping.values()])
                + "); drop or change "
                + ("it" if len(blockers) == 1 else "them")
                + " first; nothing was touched"
            )
    return RestorePlan(info, scope, list(restored.values()), drop, kept)


def drop_created_tables(
    dsn: str, rplan: RestorePlan, settings: Settings | None = None, events: EventLog | None = None
) -> list[str]:
    """Drops `rplan.drop` in one transaction, checking again under the lock that nothing outside
    the tables involved depends on them (CASCADE then only removes what the restore replaces
    anyway, such as a foreign key of a restored table to a new one). Raises RollbackError with
    nothing dropped when the check fails or a lock is not granted within lock_timeout."""

    if not rplan.drop:
        return []
    settings = settings or Settings()
    names = [t.name for t in rplan.drop]
    with contextlib.closing(connect(dsn, settings, "rollback")) as conn:
        try:
            conn.execute("BEGIN")
            conn.execute(f"SET LOCAL lock_timeout = {int(settings.lock_timeout_ms)}")
            conn.execute("LOCK TABLE " + ", ".join(names) + " IN ACCESS EXCLUSIVE MODE")
            oids = [
                str(conn.execute("SELECT $1::regclass::oid::text", [n]).rows[0][0]) for n in names
            ]
            restored = [r for t in rplan.restored if (r := _resolve(conn, t)) is not None]
            involved = oids + [oid for oid, _ in restored]
            if blockers := _outside_dependents(conn, involved):
                raise RollbackError(
                    "--from-backup: " + ", ".join(blockers[:5]) + " now depend(s) on "
                    f"{', '.join(names)}; nothing was dropped"
                )
            conn.execute("DROP TABLE " + ", ".join(names) + " CASCADE")
            conn.execute("COMMIT")
        except Error as exc:
            if conn.transaction_status in ("in_transaction", "in_error"):
                conn.execute("ROLLBACK")
            if isinstance(exc, RollbackError):
                raise
            raise RollbackError(
                f"--from-backup: dropping {', '.join(names)} failed (nothing dropped): {exc}"
            ) from exc
    if events is not None:
        events.write("created_tables_dropped", tables=names)
    return names
