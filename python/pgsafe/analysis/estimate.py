"""Size-aware runtime and risk estimates for traced statements: the target's relation sizes,
row estimates and write rates, sample rows generated on the throwaway database so a statement's
cost there is measurable, and the cost scaled to the target's size."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pgsafe import _core
from pgsafe.errors import DatabaseError
from pgsafe.quoting import quote_ident

log = logging.getLogger("pgsafe")

RISKS = ("LOW", "MEDIUM", "HIGH")


@dataclass
class RelationSize:
    """One relation of the target (or of the sample on the throwaway database)."""

    name: str  # as the tracer prints it: unqualified in public, else schema.name
    table: str  # the table it belongs to (itself, or an index's table)
    rows: float  # pg_class.reltuples (-1 when never analysed: counted as 0)
    pages: int
    total_bytes: int  # pg_total_relation_size
    writes_per_s: float = 0.0  # (n_tup_ins + n_tup_upd + n_tup_del) / stats age
    reads_per_s: float = 0.0  # (seq_scan + idx_scan) / stats age
    stats_age_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "relation": self.name,
            "table": self.table,
            "rows": int(max(self.rows, 0)),
            "pages": self.pages,
            "total_bytes": self.total_bytes,
            "writes_per_s": round(self.writes_per_s, 3),
            "reads_per_s": round(self.reads_per_s, 3),
            "stats_age_s": round(self.stats_age_s, 1),
        }


_NAME = (
    "CASE WHEN n.nspname = 'public' THEN quote_ident(c.relname) "
    "ELSE quote_ident(n.nspname) || '.' || quote_ident(c.relname) END"
)

_SIZES_SQL = f"""
WITH age AS (
  SELECT GREATEST(EXTRACT(epoch FROM now() - COALESCE(d.stats_reset, pg_postmaster_start_time())),
                  1) AS s
  FROM pg_stat_database d WHERE d.datname = current_database()
)
SELECT {_NAME}, COALESCE(tn.name, {_NAME}), c.reltuples::float8, c.relpages::bigint,
       pg_total_relation_size(c.oid),
       COALESCE(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)::float8,
       COALESCE(s.seq_scan + COALESCE(s.idx_scan, 0), 0)::float8, age.s::float8
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN age
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN LATERAL (
  SELECT CASE WHEN tns.nspname = 'public' THEN quote_ident(t.relname)
         ELSE quote_ident(tns.nspname) || '.' || quote_ident(t.relname) END AS name, t.oid
  FROM pg_class t JOIN pg_namespace tns ON tns.oid = t.relnamespace WHERE t.oid = i.indrelid
) tn ON true
LEFT JOIN pg_stat_user_tables s ON s.relid = COALESCE(tn.oid, c.oid)
WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
"""


def read_sizes(conn: _core.Connection) -> dict[str, RelationSize]:
    """Sizes and activity of every user table, matview and index on a database."""
    out: dict[str, RelationSize] = {}
    for row in conn.execute(_SIZES_SQL).rows:
        name, table, rows, pages, total, writes, reads, age = row
        age_s = float(age or 1)
        out[str(name)] = RelationSize(
            str(name),
            str(table),
            float(rows or 0),
            int(pages or 0),
            int(total or 0),
            float(writes or 0) / age_s,
            float(reads or 0) / age_s,
            age_s,
        )
    return out


# -- sample rows --------------------------------------------------------------------------

_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory, a.attnotnull,
       (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') AS has_default,
       bt.typname IS NOT NULL
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON bt.oid = t.typbasetype AND t.typtype = 'd'
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


# Expressions over `g` (1..n) giving distinct values, by the column's pg_type.typcategory, then
# by its type; `{cast}` is the cast to the column's type.
_BY_CATEGORY = {
    "N": "g{cast}",
    "S": "('r' || g){cast}",
    "B": "(g % 2 = 0){cast}",
    "D": "(now() - g * interval '1 second'){cast}",
    "E": "(enum_range(NULL{cast}))[1 + g % array_length(enum_range(NULL{cast}), 1)]",
    "A": "'{{}}'{cast}",
    "T": "(g * interval '1 second'){cast}",
}
_BY_TYPE = {
    "uuid": "md5(g::text)::uuid",
    "json": "json_build_object('n', g){cast}",
    "jsonb": "json_build_object('n', g){cast}",
    "bytea": "decode(md5(g::text), 'hex')",
}


def _generator(name: str, typ: str, category: str) -> str | None:
    """An SQL expression over `g` (1..n) giving distinct values of the column's type."""
    template = _BY_CATEGORY.get(category) or _BY_TYPE.get(typ)
    return template.format(cast=f"::{typ}") if template is not None else None


def generate_sample(conn: _core.Connection, table: str, rows: int) -> int:
    """Inserts `rows` generated rows into `table` (on the throwaway database) and returns how
    many went in. Columns with a default fill themselves; the others get values by type. When
    the rows break a constraint, a second try fills only the NOT NULL columns; 0 when that
    fails too, or a NOT NULL column has a type this cannot generate. Foreign keys and triggers
    are off for the insert (session_replication_role = replica)."""
    qualified = conn.execute("SELECT to_regclass($1)::text", [table]).rows[0][0]
    if qualified is None:
        return 0
    required: list[tuple[str, str]] = []
    optional: list[tuple[str, str]] = []
    for name, typ, category, notnull, has_default, _domain in conn.execute(
        _COLUMNS_SQL, [table]
    ).rows:
        if has_default == "t":
            continue
        expr = _generator(str(name), str(typ), str(category))
        if expr is None and notnull == "t":
            log.info("trace: no sample rows for %s: cannot generate %s %s", table, name, typ)
            return 0
        if expr is not None:
            (required if notnull == "t" else optional).append((quote_ident(str(name)), expr))
    attempts = [required + optional, required] if optional else [required]
    conn.execute("SET session_replication_role = replica")
    try:
        for columns in attempts:
            names = ", ".join(n for n, _ in columns)
            exprs = ", ".join(e for _, e in columns)
            sql = (
                f"INSERT INTO {qualified} ({names}) SELECT {exprs} "
                f"FROM generate_series(1, {int(rows)}) g"
                if columns
                else f"INSERT INTO {qualified} SELECT FROM generate_series(1, {int(rows)}) g"
            )
            try:
                done = conn.execute(sql).rowcount
            except DatabaseError as exc:
                log.info("trace: sample rows for %s: %s", table, exc)
                continue
            conn.execute(f"ANALYZE {qualified}")
            return int(done)
        return 0
    finally:
        conn.execute("SET session_replication_role = DEFAULT")


# -- estimates ----------------------------------------------------------------------------


@dataclass
class Estimate:
    """A statement's estimated duration on the target and the risk that follows from it."""

    seconds: float  # its own run time on the target
    hold_seconds: float  # locks held from its start to its commit, on the target
    risk: str  # LOW / MEDIUM / HIGH
    basis: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 4),
            "hold_seconds": round(self.hold_seconds, 4),
            "risk": self.risk,
            "basis": self.basis,
        }


def scale_factor(sample: RelationSize | None, target: RelationSize | None) -> tuple[float, str]:
    """How many times bigger the target's table is than the sample's (by bytes, or rows when
    the sample is empty), with the basis in words."""
    if target is None:
        return 1.0, "table not on the target"
    if sample is None or (sample.total_bytes <= 0 and sample.rows <= 0):
        return 1.0, "no sample rows could be generated"
    trows = max(target.rows, 0)
    if sample.rows > 0 and trows > 0:
        factor = trows / sample.rows
        basis = f"{int(sample.rows):,} sample rows -> {int(trows):,} rows on the target"
    else:
        factor = target.total_bytes / max(sample.total_bytes, 1)
        basis = (
            f"{_mb(sample.total_bytes)} sample -> {_mb(target.total_bytes)} on the target (by size)"
        )
    return max(factor, 0.0), basis


def _mb(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MB"


def rank_risk(
    blocks_reads: bool, blocks_writes: bool, hold_s: float, writes_per_s: float, reads_per_s: float
) -> tuple[str, str]:
    """LOW/MEDIUM/HIGH from lock strength x estimated hold time x the table's traffic: how many
    application queries would queue behind the lock."""
    if not (blocks_reads or blocks_writes):
        return "LOW", "blocks neither reads nor writes"
    rate = writes_per_s + (reads_per_s if blocks_reads else 0.0)
    queued = hold_s * rate
    what = "reads and writes" if blocks_reads else "writes"
    basis = (
        f"blocks {what} for ~{fmt_seconds(hold_s)} at {rate:,.2f} queries/s (~{queued:,.0f} queued)"
    )
    if hold_s >= 10 or queued >= 1000 or (blocks_reads and hold_s >= 2 and rate >= 1):
        return "HIGH", basis
    if hold_s >= 1 or queued >= 10:
        return "MEDIUM", basis
    return "LOW", basis


def fmt_seconds(s: float) -> str:
    if s < 0.001:
        return "< 1 ms"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
