"""Generated rows for every user table, so `pgsafe test` can check that migrations keep data:
values per column type, parents filled before children (foreign keys, and those a later
migration will add), one INSERT ... SELECT over generate_series per table. A table that cannot
be filled is skipped with the reason."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pgsafe import _core
from pgsafe.analysis.statement import split_statements, walk_dicts
from pgsafe.analysis.touches import CheckAdded, ForeignKey
from pgsafe.errors import DatabaseError, Error
from pgsafe.quoting import quote_ident, quote_literal
from pgsafe.sources.history import HISTORY_SCHEMAS, HISTORY_TABLES

_SYSTEM = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"


@dataclass
class _Table:
    oid: int
    schema: str
    name: str
    cols: list[dict[str, Any]]
    fks: list[dict[str, Any]] = field(default_factory=list)
    allowed: dict[str, list[str]] = field(default_factory=dict)  # column -> CHECK IN values
    primary_key: list[str] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


def _value(col: dict[str, Any], table: str) -> str | None:
    """A SQL expression of `g` (the row number) giving a value of the column's type."""
    base, category = col["base"], col["category"]
    fmt = col["type"]
    if col["base_type"] == "e":
        e = f"NULL::{col['base_fmt']}"
        return f"(enum_range({e}))[1 + g % array_length(enum_range({e}), 1)]"
    if category == "A" and col["elem"]:
        inner = _value(
            {
                "base": col["elem"],
                "category": col["elem_category"],
                "base_type": col["elem_type"],
                "base_fmt": col["elem_fmt"],
                "type": col["elem_fmt"],
                "name": col["name"],
                "elem": None,
            },
            table,
        )
        return None if inner is None else f"ARRAY[{inner}]::{fmt}"
    simple = {
        "int2": "(g % 32000)",
        "int4": "g",
        "int8": "g",
        "oid": "g",
        "float4": "(g * 1.5)",
        "float8": "(g * 1.5)",
        "money": "g",
        "numeric": "((g % 40) / 4.0)",
        "text": "('v' || g)",
        "varchar": "('v' || g)",
        "bpchar": "('v' || g)",
        "name": "('v' || g)",
        "citext": "('v' || g)",
        "uuid": f"md5({quote_literal(table + '.' + col['name'])} || g)::uuid",
        "bool": "(g % 2 = 0)",
        "date": "(date '2024-01-01' + (g % 3650))",
        "timestamp": "(timestamp '2024-01-01 00:00:00' + g * interval '1 minute')",
        "timestamptz": "(timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute')",
        "time": "(time '00:00' + (g % 86400) * interval '1 second')",
        "timetz": "(timetz '00:00+00' + (g % 86400) * interval '1 second')",
        "interval": "(g * interval '1 second')",
        "json": "json_build_object('n', g)",
        "jsonb": "jsonb_build_object('n', g)",
        "bytea": "convert_to('v' || g, 'UTF8')",
        "inet": "('10.' || (g / 65536 % 256) || '.' || (g / 256 % 256) || '.' || (g % 256))",
        "cidr": "('10.' || (g / 65536 % 256) || '.' || (g / 256 % 256) || '.' || (g % 256))",
        "tsvector": "to_tsvector('simple', 'v' || g)",
    }
    expr = simple.get(base)
    if expr is None:
        return None
    return f"({expr})::{fmt}"


def _const(node: Any) -> str | None:
    if isinstance(node, dict) and "TypeCast" in node:
        node = node["TypeCast"].get("arg")
    if not isinstance(node, dict) or "A_Const" not in node:
        return None
    c = node["A_Const"]
    for key, inner in (("sval", "sval"), ("ival", "ival"), ("fval", "fval")):
        if key in c:
            value = c[key].get(inner, 0) if isinstance(c[key], dict) else c[key]
            return str(value)
    return None


def _allowed_values(expr: str) -> dict[str, list[str]]:
    """{column: values} for the `col IN (...)` / `col = ANY (ARRAY[...])` parts of a CHECK
    expression, read from its parse tree, so generated rows can satisfy it."""
    try:
        [stmt] = split_statements(f"SELECT {expr}")
        tree = stmt.tree
    except (Error, ValueError):
        return {}
    return allowed_in_tree(tree)


def allowed_in_tree(tree: Any) -> dict[str, list[str]]:
    """_allowed_values of a parse tree (a CHECK a later migration adds)."""
    out: dict[str, list[str]] = {}
    for node in walk_dicts(tree):
        a = node.get("A_Expr") if isinstance(node, dict) else None
        if not isinstance(a, dict) or a.get("kind") not in ("AEXPR_IN", "AEXPR_OP_ANY"):
            continue
        fields = a.get("lexpr", {}).get("ColumnRef", {}).get("fields", [])
        if len(fields) != 1 or "String" not in fields[0]:
            continue
        rexpr = a.get("rexpr", {})
        items = rexpr.get("List", {}).get("items") or rexpr.get("A_ArrayExpr", {}).get("elements")
        values = [v for v in (_const(i) for i in items or []) if v is not None]
        if values and len(values) == len(items):
            out[fields[0]["String"]["sval"]] = values
    return out


def _tables(conn: _core.Connection, exclude: tuple[str, ...]) -> list[_Table]:
    skip = ", ".join(quote_literal(s) for s in exclude) or "''"
    rows = conn.execute(
        "SELECT json_build_object('oid', c.oid::bigint, 'schema', n.nspname, 'name', c.relname, "
        "'cols', (SELECT json_agg(json_build_object('name', a.attname, "
        "'type', format_type(a.atttypid, a.atttypmod), 'notnull', a.attnotnull, "
        "'hasdef', a.atthasdef, 'identity', a.attidentity, 'generated', a.attgenerated, "
        "'base', bt.typname, 'base_type', bt.typtype, 'category', bt.typcategory, "
        "'base_fmt', format_type(bt.oid, NULL), 'elem', et.typname, 'elem_type', et.typtype, "
        "'elem_category', et.typcategory, 'elem_fmt', format_type(et.oid, NULL)) "
        "ORDER BY a.attnum) FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END "
        "LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A' "
        "WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), "
        "'fks', (SELECT json_agg(json_build_object('name', k.conname, 'ref', k.confrelid::bigint, "
        "'cols', (SELECT json_agg(a.attname ORDER BY x.i) FROM unnest(k.conkey) WITH ORDINALITY "
        "x(attnum, i) JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.attnum), "
        "'ref_cols', (SELECT json_agg(a.attname ORDER BY x.i) FROM unnest(k.confkey) WITH "
        "ORDINALITY x(attnum, i) JOIN pg_attribute a ON a.attrelid = k.confrelid "
        "AND a.attnum = x.attnum))) FROM pg_constraint k "
        "WHERE k.conrelid = c.oid AND k.contype = 'f'), "
        "'checks', (SELECT json_agg(pg_get_expr(k.conbin, k.conrelid)) FROM pg_constraint k "
        "WHERE k.conrelid = c.oid AND k.contype = 'c'), "
        "'pk', (SELECT json_agg(a.attname ORDER BY x.i) FROM pg_constraint k, unnest(k.conkey) "
        "WITH ORDINALITY x(attnum, i) JOIN pg_attribute a ON a.attrelid = c.oid "
        "AND a.attnum = x.attnum WHERE k.conrelid = c.oid AND k.contype = 'p')) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {_SYSTEM} "
        f"AND n.nspname NOT IN ({skip}) ORDER BY n.nspname, c.relname"
    ).rows
    out = []
    for (doc,) in rows:
        d = json.loads(str(doc))
        t = _Table(int(d["oid"]), d["schema"], d["name"], d["cols"] or [], d["fks"] or [])
        t.primary_key = list(d["pk"] or [])
        for expr in d["checks"] or []:
            for col, values in _allowed_values(expr).items():
                t.allowed.setdefault(col, values)
        out.append(t)
    return out


def _order(tables: list[_Table]) -> list[_Table]:
    """Parents before children; tables in a cycle keep their order at the end."""
    by_oid = {t.oid: t for t in tables}
    deps = {
        t.oid: {int(f["ref"]) for f in t.fks if int(f["ref"]) != t.oid} & set(by_oid)
        for t in tables
    }
    done: list[_Table] = []
    placed: set[int] = set()
    while len(placed) < len(tables):
        ready = [t for t in tables if t.oid not in placed and deps[t.oid] <= placed]
        if not ready:
            ready = [t for t in tables if t.oid not in placed]
        for t in ready:
            placed.add(t.oid)
            done.append(t)
    return done


def _insert_sql(t: _Table, by_oid: dict[int, _Table], first: int, n: int, minimal: bool) -> str:
    """INSERT ... SELECT for rows first..first+n-1; raises ValueError when it cannot be built."""
    fk_of: dict[str, tuple[int, int]] = {}  # column -> (fk index, position)
    joins = []
    for i, fk in enumerate(t.fks):
        if any(c in fk_of for c in fk["cols"]):
            continue
        parent = by_oid.get(int(fk["ref"]))
        if parent is None:
            continue
        for pos, c in enumerate(fk["cols"]):
            fk_of[c] = (i, pos)
        # The parent's rows as the INSERT runs (after the parent's own generated rows).
        count = f"greatest((SELECT count(*) FROM {parent.qualified}), 1)"
        cols = ", ".join(f"p.{quote_ident(c)}" for c in fk["ref_cols"])
        not_null = " AND ".join(f"p.{quote_ident(c)} IS NOT NULL" for c in fk["ref_cols"])
        joins.append(
            f"LEFT JOIN LATERAL (SELECT {cols} FROM {parent.qualified} p WHERE {not_null} "
            f"ORDER BY {cols} OFFSET g % {count} LIMIT 1) fk{i} ON true"
        )
    names, values = [], []
    for col in t.cols:
        if col["generated"] or col["identity"] or col["hasdef"]:
            continue
        if col["name"] in fk_of:
            i, pos = fk_of[col["name"]]
            names.append(quote_ident(col["name"]))
            values.append(f"fk{i}.{quote_ident(t.fks[i]['ref_cols'][pos])}")
            continue
        if minimal and not col["notnull"]:
            continue
        allowed = t.allowed.get(col["name"])
        if allowed:
            arr = ", ".join(quote_literal(v) for v in allowed)
            expr: str | None = f"((ARRAY[{arr}])[1 + g % {len(allowed)}])::{col['type']}"
        else:
            expr = _value(col, f"{t.schema}.{t.name}")
        if expr is None:
            if col["notnull"]:
                raise ValueError(f"column {col['name']} ({col['type']}): no value generator")
            continue
        names.append(quote_ident(col["name"]))
        values.append(expr)
    target = f"INSERT INTO {t.qualified}"
    if not names:
        return f"{target} SELECT FROM generate_series({first}, {first + n - 1}) g"
    return (
        f"{target} ({', '.join(names)}) SELECT {', '.join(values)} "
        f"FROM generate_series({first}, {first + n - 1}) g {' '.join(joins)}"
    )


def _plan(tables: list[_Table], planned: Sequence[ForeignKey | CheckAdded]) -> set[int]:
    """Constraints later migrations add, taken as if they were there: a child's rows then
    reference rows its parent has, values are among those a CHECK's IN list allows, and the
    later ADD CONSTRAINT finds no violation. A child whose parent does not exist yet is not
    filled now (its rows would all be orphans then); returns those tables' oids."""
    by_name = {(t.schema, t.name): t for t in tables}

    def find(name: tuple[str | None, str]) -> _Table | None:
        return by_name.get((name[0] or "public", name[1]))

    deferred: set[int] = set()
    for fk in planned:
        if isinstance(fk, CheckAdded):
            table = find(fk.table)
            if table is not None:
                for col, values in allowed_in_tree(fk.expression).items():
                    table.allowed.setdefault(col, values)
            continue
        child = find(fk.table)
        if child is None:
            continue
        if any(set(f["cols"]) & set(fk.columns) for f in child.fks):
            continue  # already constrained (by this key or another)
        parent = find(fk.parent)
        if parent is None:
            deferred.add(child.oid)
            continue
        ref = list(fk.parent_columns) or parent.primary_key
        if len(ref) != len(fk.columns):
            continue
        child.fks.append({"name": "", "ref": parent.oid, "cols": list(fk.columns), "ref_cols": ref})
    return deferred


def fill(
    conn: _core.Connection,
    rows: int,
    step: int,
    exclude: tuple[str, ...] = ("pgsafe",),
    planned: Sequence[ForeignKey | CheckAdded] = (),
) -> dict[str, str]:
    """Inserts `rows` generated rows into every user table; returns {table: why it was not
    filled} for the tables it skipped. `step` keeps values unique across calls. `planned`:
    foreign keys and CHECKs that later migrations add to existing tables, which the rows
    satisfy too."""
    tables = [
        t
        for t in _tables(conn, (*exclude, *HISTORY_SCHEMAS))
        if t.name not in HISTORY_TABLES  # another tool's bookkeeping, not data
    ]
    deferred = _plan(tables, planned)
    tables = _order([t for t in tables if t.oid not in deferred])
    by_oid = {t.oid: t for t in tables}
    skipped: dict[str, str] = {}
    first = step * 100_000 + 1
    if _fill_at_once(conn, tables, by_oid, first, rows):
        return skipped
    for t in tables:
        reason = ""
        for minimal in (False, True):
            try:
                sql = _insert_sql(t, by_oid, first, rows, minimal)
            except ValueError as exc:
                reason = str(exc)
                break
            try:  # one round trip: the statements run in order, the first error stops them
                conn.execute(f"BEGIN; SET LOCAL statement_timeout = '60s'; {sql}; COMMIT")
                reason = ""
                break
            except DatabaseError as exc:
                conn.execute("ROLLBACK")
                reason = exc.message
        if reason:
            skipped[f"{t.schema}.{t.name}"] = reason
    return skipped


def _fill_at_once(
    conn: _core.Connection, tables: list[_Table], by_oid: dict[int, _Table], first: int, rows: int
) -> bool:
    """Every table's rows in one transaction and one round trip, parents first: True when that
    worked. Otherwise nothing was inserted, and `fill` goes table by table (to skip the tables
    that cannot be filled, with their reasons)."""
    try:
        inserts = [_insert_sql(t, by_oid, first, rows, False) for t in tables]
    except ValueError:
        return False
    if not inserts:
        return True
    try:
        conn.execute(
            "BEGIN; SET LOCAL statement_timeout = '60s'; " + "; ".join(inserts) + "; COMMIT"
        )
    except DatabaseError:
        conn.execute("ROLLBACK")
        return False
    return True
