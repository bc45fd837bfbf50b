"""Postflight: verify a database after migrations ran (seed 002's --postflight, seed 003's
post-migration checks, seed 004's expected objects). Every check reads the catalog or counts
rows under a statement_timeout and says pass / warn / fail with its evidence; the schema
fingerprint is recorded in the ledger (pgsafe.fingerprints) for preflight's drift check."""

from __future__ import annotations

import contextlib
import json
import re
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pgsafe import _core
from pgsafe.analysis.touches import Touches, analyse
from pgsafe.config import Settings, parse_duration, parse_timeout
from pgsafe.db import connect
from pgsafe.errors import ConfigError, DatabaseError, Error, PostflightError, mask_password
from pgsafe.events import private_dir, write_private
from pgsafe.lifecycle.fingerprints import (
    RecordedFingerprint,
    applied_versions,
    last_fingerprint,
    record_fingerprint,
)
from pgsafe.quoting import quote_ident, quote_qualified
from pgsafe.render import Report, Section, Table, Text
from pgsafe.schema import diff, fingerprint
from pgsafe.sources.layouts import discover
from pgsafe.stamps import stamped_name

__all__ = [
    "Check",
    "Expectations",
    "PostflightReport",
    "RecordedFingerprint",
    "last_fingerprint",
    "load_expectations",
    "postflight",
    "record_fingerprint",
    "write_report",
]

Status = Literal["pass", "warn", "fail", "skip"]
_RANK = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}
_SYSTEM = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"


_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")


# -- expectations file ---------------------------------------------------------------------


def _seconds(value: object, where: str, zero: str | None = None) -> float:
    return parse_duration(value, where, zero=zero) / 1000


@dataclass
class IndexUsage:
    query: str
    index: str
    enable_seqscan: bool = True  # False asks whether the index CAN serve the query


@dataclass
class TenantProbe:
    role: str
    tables: list[tuple[str, str]]  # (table, tenant column)
    setting: str = "app.tenant_id"
    value: str = "{tenant}"  # what set_config gets; {tenant} is replaced
    tenants: list[str] = field(default_factory=list)  # default: two found in each table


@dataclass
class Expectations:
    """What the expectations file (TOML) asks postflight to verify; see docs/postflight.md."""

    tables: list[str] = field(default_factory=list)
    views: list[str] = field(default_factory=list)
    materialized_views: list[str] = field(default_factory=list)
    rls: list[str] = field(default_factory=list)  # tables that must have RLS and policies
    index_usage: list[IndexUsage] = field(default_factory=list)
    tenant_isolation: TenantProbe | None = None
    statement_timeout_s: float = 30.0
    max_not_valid_age_s: float | None = None  # a NOT VALID constraint older than this fails
    source: str = ""


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: must be a list of strings")
    return list(value)


def _keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})"
        )


def parse_expectations(doc: Mapping[str, Any], source: str = "expectations") -> Expectations:
    _keys(doc, {"expect", "postflight", "index_usage", "tenant_isolation"}, source)
    e = Expectations(source=source)
    expect = doc.get("expect", {})
    if not isinstance(expect, Mapping):
        raise ConfigError(f"{source}: [expect] must be a table")
    _keys(expect, {"tables", "views", "materialized_views", "rls"}, f"{source}: [expect]")
    for key in ("tables", "views", "materialized_views", "rls"):
        if key in expect:
            setattr(e, key, _strings(expect[key], f"{source}: expect.{key}"))
    pf = doc.get("postflight", {})
    if not isinstance(pf, Mapping):
        raise ConfigError(f"{source}: [postflight] must be a table")
    _keys(pf, {"statement_timeout", "max_not_valid_age"}, f"{source}: [postflight]")
    if "statement_timeout" in pf:
        e.statement_timeout_s = (
            parse_timeout(pf["statement_timeout"], f"{source}: postflight.statement_timeout") / 1000
        )
    if "max_not_valid_age" in pf:
        e.max_not_valid_age_s = _seconds(
            pf["max_not_valid_age"],
            f"{source}: postflight.max_not_valid_age",
            zero="any NOT VALID constraint fails",
        )
    usage = doc.get("index_usage", [])
    if not isinstance(usage, list):
        raise ConfigError(f"{source}: index_usage must be an array of tables ([[index_usage]])")
    for i, u in enumerate(usage, 1):
        where = f"{source}: index_usage #{i}"
        if not isinstance(u, Mapping):
            raise ConfigError(f"{where}: must be a table")
        _keys(u, {"query", "index", "enable_seqscan"}, where)
        if not isinstance(u.get("query"), str) or not isinstance(u.get("index"), str):
            raise ConfigError(f'{where}: needs query = "SELECT ..." and index = "name"')
        seq = u.get("enable_seqscan", True)
        if not isinstance(seq, bool):
            raise ConfigError(f"{where}: enable_seqscan must be true or false")
        e.index_usage.append(IndexUsage(u["query"], u["index"], seq))
    ti = doc.get("tenant_isolation")
    if ti is not None:
        where = f"{source}: [tenant_isolation]"
        if not isinstance(ti, Mapping):
            raise ConfigError(f"{where}: must be a table")
        _keys(ti, {"role", "tables", "column", "setting", "value", "tenants"}, where)
        if not isinstance(ti.get("role"), str):
            raise ConfigError(f'{where}: needs role = "a non-owner role"')
        default_col = ti.get("column", "tenant_id")
        if not isinstance(default_col, str):
            raise ConfigError(f"{where}: column must be a string")
        tables: list[tuple[str, str]] = []
        raw = ti.get("tables")
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f'{where}: needs tables = ["table", ...]')
        for t in raw:
            if isinstance(t, str):
                tables.append((t, default_col))
            elif isinstance(t, Mapping) and isinstance(t.get("table"), str):
                col = t.get("column", default_col)
                if not isinstance(col, str):
                    raise ConfigError(f"{where}: column must be a string")
                tables.append((t["table"], col))
            else:
                raise ConfigError(f"{where}: tables entries are names or {{table=..., column=...}}")
        probe = TenantProbe(str(ti["role"]), tables)
        for key in ("setting", "value"):
            if key in ti:
                if not isinstance(ti[key], str):
                    raise ConfigError(f"{where}: {key} must be a string")
                setattr(probe, key, ti[key])
        if "tenants" in ti:
            probe.tenants = [str(v) for v in _strings_or_values(ti["tenants"], where)]
        e.tenant_isolation = probe
    return e


def _strings_or_values(value: object, where: str) -> list[object]:
    if not isinstance(value, list) or len(value) < 2:
        raise ConfigError(f"{where}: tenants must list at least two tenant ids")
    return list(value)


def load_expectations(path: str | Path) -> Expectations:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not valid UTF-8") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    return parse_expectations(doc, str(p))


# -- the report ------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    status: Status
    message: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "evidence": self.evidence,
            "seconds": round(self.seconds, 6),
        }


@dataclass
class PostflightReport(Report):
    database: str
    generated_at: datetime
    checks: list[Check]
    fingerprint_sha256: str = ""
    fingerprint_recorded: bool = False
    server_version: int = 0
    report_path: Path | None = None

    title = "pgsafe postflight"

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def status(self) -> str:
        return "fail" if self.failed else "pass"

    def raise_on_failure(self) -> None:
        """Raises PostflightError (exit code 3) naming the failed checks, if any failed."""
        failed = [c for c in self.checks if c.status == "fail"]
        if failed:
            raise PostflightError(
                "postflight failed: " + "; ".join(f"{c.name}: {c.message}" for c in failed)
            )

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def summary(self) -> str:
        fails = sum(c.status == "fail" for c in self.checks)
        warns = sum(c.status == "warn" for c in self.checks)
        head = "FAILED" if fails else "passed"
        return (
            f"postflight {head} on {self.database}: {len(self.checks)} checks, {fails} failed, "
            f"{warns} warnings"
        )

    def sections(self) -> list[Section]:
        out = [
            Section(
                "Checks",
                [
                    Table(
                        ["check", "status", "result"],
                        [(c.name, c.status.upper(), c.message) for c in self.checks],
                    )
                ],
            )
        ]
        for c in self.checks:
            if not c.evidence:
                continue
            columns = list(dict.fromkeys(k for row in c.evidence for k in row))
            rows = [[_plain(row.get(k)) for k in columns] for row in c.evidence]
            out.append(Section(f"{c.name}: {c.status}", [Text(c.message), Table(columns, rows)]))
        if self.fingerprint_sha256:
            note = "recorded in the ledger" if self.fingerprint_recorded else "not recorded"
            out.append(Section("Schema fingerprint", [Text(f"{self.fingerprint_sha256} ({note})")]))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "generated_at": self.generated_at.isoformat().replace("+00:00", "Z"),
            "status": self.status,
            "passed": self.ok,
            "server_version": self.server_version,
            "checks": [c.to_dict() for c in self.checks],
            "fingerprint": {
                "sha256": self.fingerprint_sha256,
                "recorded": self.fingerprint_recorded,
            },
        }


def _plain(value: object) -> object:
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


def write_report(report: PostflightReport, log_dir: str | Path = "logs") -> Path:
    """Writes ``LOG_DIR/postflight-report-<UTC YYYYmmddTHHMMSS.fffZ>.json`` (pgsafe.stamps: the
    report's time, never the name of another report) and returns its path."""

    directory = Path(log_dir)
    name = stamped_name(
        "postflight-report-",
        ".json",
        when=report.generated_at,
        taken=lambda n: (directory / n).exists(),
    )
    path = directory / name
    try:
        private_dir(directory)
        tmp = path.with_suffix(".json.tmp")
        write_private(tmp, json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the report: {exc.strerror or exc}") from None
    report.report_path = path
    return path


# -- running the checks ----------------------------------------------------------------------


def _rows(conn: _core.Connection, sql: str, params: Sequence[str | None] = ()) -> list[Any]:
    """Rows of a query returning one json column per row, decoded."""
    return [json.loads(str(r[0])) for r in conn.execute(sql, list(params)).rows]


@contextlib.contextmanager
def _readonly_tx(conn: _core.Connection, timeout_s: float) -> Iterator[None]:
    conn.execute("BEGIN READ ONLY")
    try:
        conn.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
        yield
    finally:
        if conn.transaction_status != "idle":
            with contextlib.suppress(Error):
                conn.execute("ROLLBACK")


class _Context:
    def __init__(
        self,
        conn: _core.Connection,
        ledger_schema: str,
        expectations: Expectations,
        migrations: list[Any],
        ledger: dict[str, dict[str, Any]],
        just_applied: list[str],
    ) -> None:
        self.conn = conn
        self.ledger_schema = ledger_schema
        self.expect = expectations
        self.migrations = migrations
        self.ledger = ledger
        self.just_applied = just_applied
        self._touches: dict[str, Touches] = {}
        self.not_valid_fks: set[str] = set()

    def touches(self, version: str) -> Touches | None:
        if version in self._touches:
            return self._touches[version]
        mig = next((m for m in self.migrations if m.version == version), None)
        if mig is None:
            return None
        try:
            t = analyse(mig.up_statements())
        except Error:
            return None
        self._touches[version] = t
        return t

    def system_filter(self) -> str:
        schema = self.ledger_schema.replace("'", "''")
        return f"{_SYSTEM} AND n.nspname <> '{schema}'"


def _check_dirty(ctx: _Context) -> Check:
    if not ctx.ledger:
        return Check("dirty-migrations", "pass", "no migrations in the ledger")
    dirty = [
        {"version": v, "name": r["name"], "reason": r.get("dirty_reason")}
        for v, r in ctx.ledger.items()
        if r["status"] == "dirty"
    ]
    if dirty:
        return Check(
            "dirty-migrations",
            "fail",
            f"{len(dirty)} dirty migration(s): finish or undo by hand, then "
            "`pgsafe repair VERSION --mark applied|rolled-back`",
            dirty,
        )
    evidence: list[dict[str, Any]] = []
    if ctx.migrations:
        on_disk = {m.version for m in ctx.migrations}
        applied = {v for v, r in ctx.ledger.items() if r["status"] == "applied"}
        pending = [v for v in sorted(on_disk) if v not in applied]
        changed = [
            m.label
            for m in ctx.migrations
            if m.version in applied and ctx.ledger[m.version]["checksum"] != m.checksum
        ]
        if pending or changed:
            evidence = [{"pending": v} for v in pending] + [{"changed": c} for c in changed]
            return Check(
                "dirty-migrations",
                "warn",
                f"no dirty migration; {len(pending)} pending, {len(changed)} changed since applied",
                evidence,
            )
    return Check("dirty-migrations", "pass", f"no dirty migration ({len(ctx.ledger)} in ledger)")


def _added_by(ctx: _Context, conname: str) -> str | None:
    """The applied migration whose up file adds a constraint named `conname`."""
    for mig in reversed(ctx.migrations):
        row = ctx.ledger.get(mig.version)
        if row is None or row["status"] != "applied":
            continue
        t = ctx.touches(mig.version)
        if t is not None and conname in t.constraints:
            return str(mig.version)
    return None


def _age(applied_at: str | None) -> float | None:
    if not applied_at:
        return None
    try:
        ts = datetime.fromisoformat(applied_at.replace(" ", "T"))
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (datetime.now(UTC) - ts).total_seconds()


def _human_age(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _check_not_valid(ctx: _Context) -> Check:
    rows = _rows(
        ctx.conn,
        "SELECT json_build_object('name', c.conname, 'schema', n.nspname, 'table', cl.relname, "
        "'type', c.contype, 'definition', pg_get_constraintdef(c.oid), "
        "'expr', pg_get_expr(c.conbin, c.conrelid)) "
        "FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid "
        "JOIN pg_namespace n ON n.oid = cl.relnamespace "
        f"WHERE NOT c.convalidated AND c.conparentid = 0 AND {ctx.system_filter()} "
        "ORDER BY n.nspname, cl.relname, c.conname",
    )
    if not rows:
        return Check("not-valid-constraints", "pass", "every constraint is validated")
    status: Status = "warn"
    evidence = []
    for r in rows:
        version = _added_by(ctx, r["name"])
        applied_at = ctx.ledger.get(version or "", {}).get("applied_at") if version else None
        age = _age(applied_at)
        item: dict[str, Any] = {
            "constraint": r["name"],
            "table": quote_qualified(r["schema"], r["table"]),
            "definition": r["definition"],
            "added_by": version,
            "not_valid_for": _human_age(age),
        }
        if r["type"] == "f":
            ctx.not_valid_fks.add(f"{r['schema']}.{r['table']}.{r['name']}")
        if r["type"] == "c" and r["expr"]:
            try:
                with _readonly_tx(ctx.conn, ctx.expect.statement_timeout_s):
                    n = ctx.conn.execute(
                        f"SELECT count(*) FROM {quote_qualified(r['schema'], r['table'])} "
                        f"WHERE ({r['expr']}) IS FALSE"
                    ).rows[0][0]
                item["violating_rows"] = int(str(n))
                if item["violating_rows"]:
                    status = "fail"
            except DatabaseError as exc:
                item["violating_rows"] = f"not counted: {exc.message}"
        limit = ctx.expect.max_not_valid_age_s
        if limit is not None and age is not None and age > limit:
            status = "fail"
            item["over_limit"] = f"older than {_human_age(limit)}"
        evidence.append(item)
    return Check(
        "not-valid-constraints",
        status,
        f"{len(rows)} constraint(s) NOT VALID: finish with ALTER TABLE ... VALIDATE CONSTRAINT "
        "(SHARE UPDATE EXCLUSIVE lock only) once existing rows comply",
        evidence,
    )


def _fk_rows(ctx: _Context) -> list[dict[str, Any]]:
    return _rows(
        ctx.conn,
        "SELECT json_build_object('name', c.conname, 'schema', n.nspname, 'table', cl.relname, "
        "'kind', cl.relkind, 'valid', c.convalidated, 'match', c.confmatchtype, "
        "'ref_schema', fn.nspname, 'ref_table', fcl.relname, 'ref_kind', fcl.relkind, "
        "'cols', (SELECT json_agg(a.attname ORDER BY k.i) FROM unnest(c.conkey) WITH ORDINALITY "
        "k(attnum, i) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum), "
        "'ref_cols', (SELECT json_agg(a.attname ORDER BY k.i) FROM unnest(c.confkey) WITH "
        "ORDINALITY k(attnum, i) JOIN pg_attribute a ON a.attrelid = c.confrelid "
        "AND a.attnum = k.attnum)) "
        "FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid "
        "JOIN pg_namespace n ON n.oid = cl.relnamespace "
        "JOIN pg_class fcl ON fcl.oid = c.confrelid "
        "JOIN pg_namespace fn ON fn.oid = fcl.relnamespace "
        f"WHERE c.contype = 'f' AND c.conparentid = 0 AND {ctx.system_filter()} "
        "ORDER BY n.nspname, cl.relname, c.conname",
    )


def orphan_sql(fk: Mapping[str, Any]) -> str:
    """count(*) and one example key of the rows of `fk`'s table with no referenced row."""
    child = ("" if fk["kind"] == "p" else "ONLY ") + quote_qualified(fk["schema"], fk["table"])
    parent = ("" if fk["ref_kind"] == "p" else "ONLY ") + quote_qualified(
        fk["ref_schema"], fk["ref_table"]
    )
    cols = [f"ch.{quote_ident(c)}" for c in fk["cols"]]
    match = " AND ".join(
        f"p.{quote_ident(rc)} = {c}" for rc, c in zip(fk["ref_cols"], cols, strict=True)
    )
    if fk["match"] == "f":  # MATCH FULL: only an all-NULL key is exempt
        exempt = "NOT (" + " AND ".join(f"{c} IS NULL" for c in cols) + ")"
    else:  # MATCH SIMPLE: any NULL column exempts the row
        exempt = " AND ".join(f"{c} IS NOT NULL" for c in cols)
    return (
        f"SELECT count(*), min(row({', '.join(cols)})::text) FROM {child} ch "
        f"WHERE {exempt} AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {match})"
    )


def _check_orphans(ctx: _Context) -> Check:
    fks = _fk_rows(ctx)
    recent: list[Touches] = [t for v in ctx.just_applied if (t := ctx.touches(v)) is not None]
    chosen = []
    for fk in fks:
        reason = None
        if not fk["valid"]:
            reason = "NOT VALID"
        elif any(
            fk["name"] in t.constraints or t.adds_foreign_key_to(fk["schema"], fk["table"])
            for t in recent
        ):
            reason = "added by " + ", ".join(ctx.just_applied)
        if reason:
            chosen.append((fk, reason))
    if not chosen:
        return Check(
            "orphaned-rows",
            "pass",
            "no foreign key is NOT VALID or new"
            + (f" in {', '.join(ctx.just_applied)}" if ctx.just_applied else ""),
        )
    status: Status = "pass"
    evidence = []
    orphaned = 0
    for fk, reason in chosen:
        item: dict[str, Any] = {
            "constraint": fk["name"],
            "table": quote_qualified(fk["schema"], fk["table"]),
            "references": quote_qualified(fk["ref_schema"], fk["ref_table"]),
            "why_checked": reason,
        }
        try:
            with _readonly_tx(ctx.conn, ctx.expect.statement_timeout_s):
                n, example = ctx.conn.execute(orphan_sql(fk)).rows[0]
            item["orphaned_rows"] = int(str(n))
            item["example_key"] = example
            if item["orphaned_rows"]:
                status = "fail"
                orphaned += 1
        except DatabaseError as exc:
            item["orphaned_rows"] = None
            item["error"] = (
                f"timed out after {ctx.expect.statement_timeout_s:g}s"
                if exc.sqlstate == "57014"
                else exc.message
            )
            if status == "pass":
                status = "warn"
        evidence.append(item)
    if orphaned:
        message = (
            f"{orphaned} foreign key(s) with orphaned rows: delete or fix them before "
            "VALIDATE CONSTRAINT"
        )
    else:
        message = f"{len(chosen)} foreign key(s) checked" + (
            ", some could not be counted" if status == "warn" else ": no orphaned rows"
        )
    return Check("orphaned-rows", status, message, evidence)


def _check_invalid_indexes(ctx: _Context) -> Check:
    rows = _rows(
        ctx.conn,
        "SELECT json_build_object('schema', n.nspname, 'index', ic.relname, 'table', tc.relname, "
        "'definition', pg_get_indexdef(i.indexrelid), 'ready', i.indisready, "
        "'building', EXISTS (SELECT 1 FROM pg_stat_progress_create_index pr "
        "WHERE pr.index_relid = i.indexrelid)) "
        "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
        "JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace n ON n.oid = ic.relnamespace "
        f"WHERE NOT i.indisvalid AND {ctx.system_filter()} ORDER BY n.nspname, ic.relname",
    )
    if not rows:
        return Check("invalid-indexes", "pass", "no invalid index")
    evidence = [
        {
            "index": quote_qualified(r["schema"], r["index"]),
            "table": quote_qualified(r["schema"], r["table"]),
            "state": "being built now" if r["building"] else "INVALID (failed build)",
            "fix": "DROP INDEX CONCURRENTLY "
            f"{quote_qualified(r['schema'], r['index'])}; then build "
            "it again",
            "definition": r["definition"],
        }
        for r in rows
    ]
    failed = [r for r in rows if not r["building"]]
    return Check(
        "invalid-indexes",
        "fail" if failed else "warn",
        f"{len(failed)} invalid index(es): every write maintains them, no query uses them"
        if failed
        else f"{len(rows)} index(es) still being built concurrently",
        evidence,
    )


def _check_rls(ctx: _Context) -> Check:
    rows = _rows(
        ctx.conn,
        "SELECT json_build_object('schema', n.nspname, 'table', c.relname, "
        "'rls', c.relrowsecurity, 'force', c.relforcerowsecurity, "
        "'owner', pg_get_userbyid(c.relowner), 'super', r.rolsuper, 'bypass', r.rolbypassrls, "
        "'login', r.rolcanlogin, "
        "'policies', (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_roles r ON r.oid = c.relowner "
        f"WHERE c.relkind IN ('r', 'p') AND {ctx.system_filter()} AND (c.relrowsecurity "
        "OR EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)) "
        "ORDER BY n.nspname, c.relname",
    )
    problems: list[dict[str, Any]] = []
    advice: list[dict[str, Any]] = []
    by_name = {(r["schema"], r["table"]): r for r in rows}
    for r in rows:
        name = quote_qualified(r["schema"], r["table"])
        if r["rls"] and not r["policies"]:
            problems.append(
                {
                    "table": name,
                    "problem": "row level security enabled but no policies: every role "
                    "except the owner and BYPASSRLS roles sees no rows",
                    "fix": f"CREATE POLICY ... ON {name}, or DISABLE ROW LEVEL SECURITY",
                }
            )
        elif r["policies"] and not r["rls"]:
            problems.append(
                {
                    "table": name,
                    "problem": f"{r['policies']} policies but row level security is disabled: "
                    "the policies are not enforced",
                    "fix": f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY",
                }
            )
        elif r["rls"] and not r["force"]:
            if r["super"] or r["bypass"]:
                note = (
                    f"owner {r['owner']} is a superuser or BYPASSRLS: it bypasses the policies "
                    "even with FORCE; never let the application connect as it"
                )
            else:
                note = (
                    f"owner {r['owner']} bypasses the policies: if the application connects as "
                    f"{r['owner']}, ALTER TABLE {name} FORCE ROW LEVEL SECURITY"
                )
            advice.append({"table": name, "problem": "the owner bypasses RLS", "fix": note})
    for wanted in ctx.expect.rls:
        schema, _, table = wanted.rpartition(".")
        found = [r for k, r in by_name.items() if k[1] == table and (not schema or k[0] == schema)]
        if not found or not any(r["rls"] for r in found):
            problems.append(
                {
                    "table": wanted,
                    "problem": "the expectations require row level security; it is not enabled",
                    "fix": f"ALTER TABLE {wanted} ENABLE ROW LEVEL SECURITY and add policies",
                }
            )
    if problems:
        return Check(
            "row-level-security",
            "fail",
            f"{len(problems)} table(s) with RLS and policies out of step",
            problems + advice,
        )
    if not rows:
        return Check("row-level-security", "pass", "no table uses row level security")
    return Check(
        "row-level-security",
        "warn" if any("FORCE" in a["fix"] and "never" not in a["fix"] for a in advice) else "pass",
        f"{len(rows)} table(s) with RLS, each with policies",
        advice,
    )


_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table"}


def _check_expected(ctx: _Context) -> Check:
    wanted = (
        [(n, "table") for n in ctx.expect.tables]
        + [(n, "view") for n in ctx.expect.views]
        + [(n, "materialized view") for n in ctx.expect.materialized_views]
    )
    if not wanted:
        return Check("expected-objects", "skip", "no expected objects configured")
    evidence = []
    missing = 0
    for name, kind in wanted:
        try:
            found = ctx.conn.execute(
                "SELECT c.relkind, c.relispopulated FROM pg_class c WHERE c.oid = to_regclass($1)",
                [name],
            ).rows
        except DatabaseError as exc:  # a malformed name
            found = []
            evidence.append({"object": name, "expected": kind, "found": exc.message})
            missing += 1
            continue
        actual = _KINDS.get(str(found[0][0]), str(found[0][0])) if found else None
        state = "ok"
        if actual is None:
            state = "missing"
        elif actual != kind:
            state = f"is a {actual}"
        elif kind == "materialized view" and found[0][1] != "t":
            state = "not populated (REFRESH MATERIALIZED VIEW)"
        if state != "ok":
            missing += 1
        evidence.append({"object": name, "expected": kind, "found": state})
    return Check(
        "expected-objects",
        "fail" if missing else "pass",
        f"{missing} of {len(wanted)} expected objects missing or wrong"
        if missing
        else f"all {len(wanted)} expected objects present",
        evidence,
    )


def _index_names(plan: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(plan, dict):
        if isinstance(plan.get("Index Name"), str):
            found.add(plan["Index Name"])
        for v in plan.values():
            found |= _index_names(v)
    elif isinstance(plan, list):
        for v in plan:
            found |= _index_names(v)
    return found


def _check_index_usage(ctx: _Context) -> Check:
    if not ctx.expect.index_usage:
        return Check("index-usage", "skip", "no index usage queries configured")
    evidence = []
    bad = 0
    for u in ctx.expect.index_usage:
        item: dict[str, Any] = {"index": u.index, "query": u.query}
        try:
            with _readonly_tx(ctx.conn, ctx.expect.statement_timeout_s):
                if not u.enable_seqscan:
                    ctx.conn.execute("SET LOCAL enable_seqscan = off")
                # Parameters force the extended protocol: exactly one statement, never a script.
                out = ctx.conn.execute(f"EXPLAIN (FORMAT JSON) {u.query}", []).rows[0][0]
            used = _index_names(json.loads(str(out)))
            index = u.index.rpartition(".")[2]
            item["used"] = index in used
            item["plan_indexes"] = ", ".join(sorted(used)) or "none (sequential scan)"
        except DatabaseError as exc:
            item["used"] = False
            item["plan_indexes"] = f"EXPLAIN failed: {exc.message}"
        if not item["used"]:
            bad += 1
        evidence.append(item)
    return Check(
        "index-usage",
        "fail" if bad else "pass",
        f"{bad} of {len(evidence)} queries do not use their index"
        if bad
        else f"all {len(evidence)} queries use their index",
        evidence,
    )


def _check_tenants(ctx: _Context) -> Check:
    probe = ctx.expect.tenant_isolation
    if probe is None:
        return Check("tenant-isolation", "skip", "no tenant isolation probe configured")
    conn = ctx.conn
    role = conn.execute(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", [probe.role]
    ).rows
    if not role:
        return Check("tenant-isolation", "fail", f"probe role {probe.role!r} does not exist")
    if "t" in (role[0][0], role[0][1]):
        return Check(
            "tenant-isolation",
            "fail",
            f"probe role {probe.role} is a superuser or BYPASSRLS: it sees every row, so the "
            "probe would prove nothing (and neither would the policies for it)",
        )
    evidence = []
    leaks = 0
    unclear = 0
    for table, column in probe.tables:
        item: dict[str, Any] = {"table": table, "role": probe.role}
        try:
            owner = conn.execute(
                "SELECT pg_get_userbyid(relowner), oid::regclass::text FROM pg_class "
                "WHERE oid = to_regclass($1)",
                [table],
            ).rows
            if not owner:
                raise ConfigError(f"table {table} does not exist")
            rel = str(owner[0][1])  # quoted by the server: the config never becomes SQL text
            if owner[0][0] == probe.role:
                raise ConfigError(f"{probe.role} owns {table}: owners bypass RLS unless FORCE")
            tenants = probe.tenants or [
                str(r[0])
                for r in conn.execute(
                    f"SELECT DISTINCT {quote_ident(column)}::text FROM {rel} "
                    f"WHERE {quote_ident(column)} IS NOT NULL ORDER BY 1 LIMIT 3"
                ).rows
            ]
            if len(tenants) < 2:
                raise ConfigError(f"{table} has rows of fewer than two tenants: nothing to probe")
            seen = []
            for tenant in tenants:
                conn.execute("BEGIN READ ONLY")
                try:
                    conn.execute(f"SET LOCAL ROLE {quote_ident(probe.role)}")
                    conn.execute(
                        "SELECT set_config($1, $2, true)",
                        [probe.setting, probe.value.replace("{tenant}", tenant)],
                    )
                    own, other, example = conn.execute(
                        f"SELECT count(*) FILTER (WHERE {quote_ident(column)}::text = $1), "
                        f"count(*) FILTER (WHERE {quote_ident(column)}::text IS DISTINCT FROM $1), "
                        f"min({quote_ident(column)}::text) "
                        f"FILTER (WHERE {quote_ident(column)}::text "
                        f"IS DISTINCT FROM $1) FROM {rel}",
                        [tenant],
                    ).rows[0]
                finally:
                    conn.execute("ROLLBACK")
                seen.append((tenant, int(str(own)), int(str(other)), example))
            leaked = [s for s in seen if s[2]]
            if leaked:
                leaks += 1
                t, _own, n_other, example = leaked[0]
                item["result"] = (
                    f"LEAK: with {probe.setting}={t}, {n_other} row(s) of other tenants visible "
                    f"(e.g. {column}={example})"
                )
            elif not any(s[1] for s in seen):
                unclear += 1
                item["result"] = "no rows visible to any tenant: policies hide everything"
            else:
                item["result"] = "isolated: " + ", ".join(
                    f"{t} sees {own} own row(s)" for t, own, _o, _e in seen
                )
        except (ConfigError, DatabaseError) as exc:
            unclear += 1
            item["result"] = (
                f"could not probe: {exc.message if isinstance(exc, DatabaseError) else exc}"
            )
        evidence.append(item)
    if leaks:
        return Check(
            "tenant-isolation",
            "fail",
            f"{leaks} table(s) show other tenants' rows to {probe.role}",
            evidence,
        )
    return Check(
        "tenant-isolation",
        "warn" if unclear else "pass",
        f"{len(evidence) - unclear} table(s) isolated per tenant"
        + (f", {unclear} could not be probed" if unclear else ""),
        evidence,
    )


@dataclass
class _FingerprintOutcome:
    check: Check
    sha256: str
    recorded: bool


def _check_fingerprint(
    ctx: _Context, dsn: str, settings: Settings, record: bool, accept_drift: bool
) -> _FingerprintOutcome:
    fp = fingerprint(ctx.conn, (ctx.ledger_schema,))
    last = last_fingerprint(ctx.conn, ledger_schema=ctx.ledger_schema)
    versions = tuple(applied_versions(ctx.conn, ctx.ledger_schema))
    evidence: list[dict[str, Any]] = []
    status: Status = "pass"
    should_record = record
    if last is None:
        message = "first fingerprint of this database"
    elif last.sha256 == fp.sha256:
        message = f"unchanged since {last.recorded_at:%Y-%m-%d %H:%M:%S} UTC"
        should_record = record and last.versions != versions
    elif last.versions == versions:
        diffs = diff(last.fingerprint, fp)
        evidence = [{"change": d.change, "object": d.label} for d in diffs[:20]]
        status = "warn"
        message = (
            f"schema drift: {len(diffs)} object(s) changed since "
            f"{last.recorded_at:%Y-%m-%d %H:%M:%S} UTC with no migration applied (first: "
            f"{diffs[0].change} {diffs[0].label if diffs else ''})"
        )
        should_record = record and accept_drift
        if should_record:
            message += "; accepted and recorded"
    else:
        new = [v for v in versions if v not in last.versions]
        message = "changed by " + (", ".join(new) if new else "rollbacks") + " as expected"
    recorded = False
    if should_record:
        try:
            with contextlib.closing(_connect(dsn, settings)) as wconn:
                record_fingerprint(wconn, fp, ledger_schema=ctx.ledger_schema)
            recorded = True
            message += "; recorded in the ledger"
        except DatabaseError as exc:
            status = "warn"
            message += f"; could not record it: {exc.message}"
    return _FingerprintOutcome(
        Check("schema-fingerprint", status, f"{fp.sha256[:16]}: {message}", evidence),
        fp.sha256,
        recorded,
    )


def _connect(dsn: str, settings: Settings) -> _core.Connection:
    return connect(dsn, settings, "postflight")


def _ledger_rows(conn: _core.Connection, ledger_schema: str) -> dict[str, dict[str, Any]]:
    rows = _core.Ledger(ledger_schema).rows(conn)
    return {
        r.version: {
            "name": r.name,
            "status": r.status,
            "checksum": r.checksum,
            "applied_at": r.applied_at,
            "dirty_reason": r.dirty_reason or None,
        }
        for r in rows
    }


def postflight(
    dsn: str,
    *,
    migrations_path: str | Path | None = None,
    expectations: Expectations | Mapping[str, Any] | str | Path | None = None,
    just_applied: Sequence[str] | None = None,
    record: bool = True,
    accept_drift: bool = False,
    settings: Settings | None = None,
    report_dir: str | Path | None = None,
    target_label: str | None = None,
) -> PostflightReport:
    """Verifies the database at `dsn` after migrations ran.

    `migrations_path` (optional) lets postflight say which migration added a NOT VALID
    constraint and how long ago, and which foreign keys the newest migrations added;
    `just_applied` names the versions the caller just applied (default: the newest applied
    one). `expectations` is an Expectations, its TOML file, or the parsed document. The schema
    fingerprint is recorded in ``pgsafe.fingerprints`` unless `record` is false, except when it
    changed with no migration applied (drift), which needs `accept_drift`. With `report_dir`
    the JSON report is written there as postflight-report-<UTC timestamp>.json."""
    settings = settings or Settings()
    if isinstance(expectations, str | Path):
        expect = load_expectations(expectations)
    elif isinstance(expectations, Mapping):
        expect = parse_expectations(expectations)
    else:
        expect = expectations or Expectations()
    migrations: list[Any] = []
    if migrations_path is not None:
        migrations = discover(migrations_path)
    label = target_label or (mask_password(dsn) if dsn else "libpq defaults")
    started = datetime.now(UTC)
    with contextlib.closing(_connect(dsn, settings)) as conn:
        # Never queue behind a migration's lock (and block everyone queued behind us).
        conn.execute("SET lock_timeout = '5s'")
        conn.execute(f"SET statement_timeout = {max(1, int(expect.statement_timeout_s * 1000))}")
        ledger = _ledger_rows(conn, settings.ledger_schema)
        if just_applied is None:
            applied = [(r["applied_at"], v) for v, r in ledger.items() if r["status"] == "applied"]
            just_applied = [max(applied)[1]] if applied else []
        ctx = _Context(conn, settings.ledger_schema, expect, migrations, ledger, list(just_applied))
        checks: list[Check] = []
        for fn in (
            _check_dirty,
            _check_not_valid,
            _check_orphans,
            _check_invalid_indexes,
            _check_rls,
            _check_expected,
            _check_index_usage,
            _check_tenants,
        ):
            t0 = time.monotonic()
            try:
                check = fn(ctx)
            except DatabaseError as exc:
                name = fn.__name__.removeprefix("_check_").replace("_", "-")
                check = Check(name, "fail", f"could not run: {exc}")
            check.seconds = time.monotonic() - t0
            checks.append(check)
        t0 = time.monotonic()
        fpo = _check_fingerprint(ctx, dsn, settings, record, accept_drift)
        fpo.check.seconds = time.monotonic() - t0
        checks.append(fpo.check)
        report = PostflightReport(
            label, started, checks, fpo.sha256, fpo.recorded, conn.server_version
        )
    if report_dir is not None:
        write_report(report, report_dir)
    return report
