"""What ``pgsafe restore --force`` clears from a target before restoring a backup into it.

The objects the backup's DDL creates are read from pg_dump's script with the real parser and
looked up in the target. Those that exist are dropped in ONE transaction, dependents first and
without CASCADE, after checking pg_depend: anything the backup does not recreate that depends on
them makes --force refuse, naming it, before anything is dropped. The backup's schema is then
applied inside the same transaction and rolled back, so the drops are committed only when the
restore's schema step will work on what is left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pgsafe import _core
from pgsafe.analysis.statement import split_statements
from pgsafe.errors import Error, RollbackError, UnsafeError
from pgsafe.quoting import quote_ident

__all__ = [
    "Created",
    "Drop",
    "Plan",
    "clear",
    "created_by_script",
    "created_tables",
    "existing",
    "has_user_objects",
    "leftover",
    "plan",
    "undo",
    "user_object_keys",
]

Key = tuple[int, int]  # (pg_class oid of the catalog, object oid): one object, columns folded in

# pg_depend types that make the dependent a part of the referenced object, dropped with it:
# internal, auto, extension member, auto extension, partition primary/secondary.
_PART = frozenset("iaexPS")
# Session settings pg_dump's script resets that must not override ours during the trial.
_TIMEOUTS = frozenset({"lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout"})
_PG_CLASS = 1259
# Sub-objects that say nothing a reader needs beyond their owner: a view's rewrite rule, a
# relation's row type.
_NOT_WORTH_NAMING = frozenset({2618, 1247})
_OWN_RELKINDS = frozenset("rpvmfS")
_RELKINDS = {"table": "rp", "view": "v", "materialized view": "m", "sequence": "S",
             "foreign table": "f"}  # fmt: skip
# pg_identify_object's type -> the DROP keyword(s); identity is already quoted and qualified.
_DROP = {
    "schema": "SCHEMA",
    "extension": "EXTENSION",
    "table": "TABLE",
    "view": "VIEW",
    "materialized view": "MATERIALIZED VIEW",
    "sequence": "SEQUENCE",
    "foreign table": "FOREIGN TABLE",
    "type": "TYPE",
    "function": "FUNCTION",
    "procedure": "PROCEDURE",
    "aggregate": "AGGREGATE",
    "collation": "COLLATION",
    "text search configuration": "TEXT SEARCH CONFIGURATION",
    "text search dictionary": "TEXT SEARCH DICTIONARY",
    "foreign-data wrapper": "FOREIGN DATA WRAPPER",
    "server": "SERVER",
    "cast": "CAST",
    "operator": "OPERATOR",
    "event trigger": "EVENT TRIGGER",
    "publication": "PUBLICATION",
    "language": "LANGUAGE",
}


@dataclass
class Created:
    """One object a backup's DDL creates, as the parse tree names it."""

    kind: str  # lookup kind: relation, type, schema, routine, extension, ... (see _LOOKUPS)
    name: str  # text the lookup resolves: quoted and qualified; a routine with its arguments
    label: str  # for messages: "table public.orders"
    expect: str = ""  # relations: the relkinds it is created as
    optional: bool = False  # IF NOT EXISTS / OR REPLACE: never in the way by itself
    order: int = 0  # position in the script; its reverse is a valid drop order


# --------------------------------------------------------------------------------------------
# What the script creates


def _strings(nodes: Iterable[Any] | None) -> list[str]:
    return [str(n.get("String", {}).get("sval", "")) for n in nodes or []]


def _dotted(parts: Sequence[str]) -> str:
    return ".".join(parts)


def _rangevar(rv: dict[str, Any]) -> list[str]:
    return [p for p in (rv.get("schemaname"), rv.get("relname")) if p]


def _type_text(tn: dict[str, Any]) -> str:
    names = _strings(tn.get("names"))
    return ".".join(quote_ident(n) for n in names) + "[]" * len(tn.get("arrayBounds") or [])


def _type_label(tn: dict[str, Any]) -> str:
    return _dotted(_strings(tn.get("names"))) + "[]" * len(tn.get("arrayBounds") or [])


def _routine(parts: list[str], params: list[Any], procedure: bool) -> str:
    # The identity arguments: IN, INOUT, VARIADIC (and a procedure's OUT since PostgreSQL 14).
    skip = {"FUNC_PARAM_TABLE"} | (set() if procedure else {"FUNC_PARAM_OUT"})
    args = [
        _type_text(p["FunctionParameter"]["argType"])
        for p in params
        if "FunctionParameter" in p and p["FunctionParameter"].get("mode") not in skip
    ]
    return ".".join(quote_ident(n) for n in parts) + "(" + ",".join(args) + ")"


def _relation(rv: dict[str, Any], what: str, optional: bool) -> Created:
    parts = _rangevar(rv)
    return Created(
        "relation",
        ".".join(quote_ident(p) for p in parts),
        f"{what} {_dotted(parts)}",
        _RELKINDS[what],
        optional,
    )  # fmt: skip


def _named(kind: str, what: str, name: str, optional: bool = False) -> Created:
    return Created(kind, name, f"{what} {name}", optional=optional)


def _typed(what: str, parts: list[str], optional: bool = False) -> Created:
    return Created("type", ".".join(quote_ident(p) for p in parts), f"{what} {_dotted(parts)}",
                   optional=optional)  # fmt: skip


def _from_tree(kind: str, node: dict[str, Any]) -> Created | None:
    ine = bool(node.get("if_not_exists"))
    if kind == "CreateSchemaStmt" and node.get("schemaname"):
        return _named("schema", "schema", str(node["schemaname"]), ine)
    if kind == "CreateExtensionStmt":
        return _named("extension", "extension", str(node["extname"]), ine)
    if kind == "CreateEnumStmt" or kind == "CreateRangeStmt":
        return _typed("type", _strings(node["typeName"]))
    if kind == "CompositeTypeStmt":
        return _typed("type", _rangevar(node["typevar"]))
    if kind == "CreateDomainStmt":
        return _typed("domain", _strings(node["domainname"]))
    if kind == "CreateFunctionStmt":
        parts = _strings(node["funcname"])
        procedure = bool(node.get("is_procedure"))
        what = "procedure" if procedure else "function"
        name = _routine(parts, node.get("parameters") or [], procedure)
        return Created(
            "routine", name, f"{what} {_dotted(parts)}", optional=bool(node.get("replace"))
        )
    if kind == "DefineStmt":
        parts = _strings(node.get("defnames"))
        dkind = node.get("kind")
        if dkind == "OBJECT_TYPE":
            return _typed("type", parts)
        if dkind == "OBJECT_AGGREGATE":
            args = node.get("args") or []
            params = args[0].get("List", {}).get("items", []) if args and args[0] else []
            return Created("routine", _routine(parts, params, False), f"aggregate {_dotted(parts)}",
                           optional=bool(node.get("replace")))  # fmt: skip
        simple = {"OBJECT_COLLATION": ("collation", "collation"),
                  "OBJECT_TSCONFIGURATION": ("tsconfig", "text search configuration"),
                  "OBJECT_TSDICTIONARY": ("tsdict", "text search dictionary")}  # fmt: skip
        if dkind in simple:
            lookup, what = simple[dkind]
            schema_name = parts if len(parts) == 2 else ["pg_catalog", parts[-1]]
            return Created(lookup, json.dumps(schema_name), f"{what} {_dotted(parts)}",
                           optional=ine)  # fmt: skip
        if dkind == "OBJECT_OPERATOR":
            defs = {d["DefElem"]["defname"]: d["DefElem"].get("arg") for d in node["definition"]}
            left = defs.get("leftarg")
            right = defs.get("rightarg")
            sides = [_type_text(s["TypeName"]) if s else "NONE" for s in (left, right)]
            name = ".".join([*(quote_ident(p) for p in parts[:-1]), parts[-1]])
            return Created("operator", f"{name}({','.join(sides)})", f"operator {_dotted(parts)}")
        return None
    if kind == "CreateSeqStmt":
        return _relation(node["sequence"], "sequence", ine)
    if kind == "CreateStmt":
        return _relation(node["relation"], "table", ine)
    if kind == "CreateForeignTableStmt":
        return _relation(node["base"]["relation"], "foreign table", False)
    if kind == "ViewStmt":
        return _relation(node["view"], "view", bool(node.get("replace")))
    if kind == "CreateTableAsStmt":
        what = "materialized view" if node.get("objtype") == "OBJECT_MATVIEW" else "table"
        return _relation(node["into"]["rel"], what, ine)
    if kind == "CreateFdwStmt":
        return _named("fdw", "foreign-data wrapper", str(node["fdwname"]))
    if kind == "CreateForeignServerStmt":
        return _named("server", "server", str(node["servername"]), ine)
    if kind == "CreateCastStmt":
        src, dst = node["sourcetype"], node["targettype"]
        return Created(
            "cast",
            json.dumps([_type_text(src), _type_text(dst)]),
            f"cast ({_type_label(src)} AS {_type_label(dst)})",
        )
    if kind == "CreateEventTrigStmt":
        return _named("event trigger", "event trigger", str(node["trigname"]))
    if kind == "CreatePublicationStmt":
        return _named("publication", "publication", str(node["pubname"]))
    if kind == "CreatePLangStmt":
        return _named("language", "language", str(node["plname"]), bool(node.get("replace")))
    return None


# The statement kinds _from_tree reads.
_CREATING = frozenset(
    {
        "CreateSchemaStmt", "CreateExtensionStmt", "CreateEnumStmt", "CreateRangeStmt",
        "CompositeTypeStmt", "CreateDomainStmt", "CreateFunctionStmt", "DefineStmt",
        "CreateSeqStmt", "CreateStmt", "CreateForeignTableStmt", "ViewStmt",
        "CreateTableAsStmt", "CreateFdwStmt", "CreateForeignServerStmt", "CreateCastStmt",
        "CreateEventTrigStmt", "CreatePublicationStmt", "CreatePLangStmt",
    }
)  # fmt: skip


def without_meta_commands(script: bytes) -> str:
    """pg_dump's plain script without its psql meta-command lines (``\\restrict KEY``,
    ``\\unrestrict KEY``, ``\\connect``), which only ever stand alone between its items."""
    lines = script.decode("utf-8").split("\n")
    metas = ("\\restrict ", "\\unrestrict ", "\\connect ")
    return "\n".join("" if line.startswith(metas) else line for line in lines)


def created_by_script(script: bytes) -> list[Created]:
    """Every object pg_dump's plain `script` creates (schemas, types, domains, routines,
    sequences, tables, views, extensions, ...), once each, in script order. Sub-objects a
    table's DDL brings along (columns, defaults, indexes, constraints, triggers, policies) are
    not listed: they go and come back with their table."""
    found: dict[tuple[str, str], Created] = {}
    for i, stmt in enumerate(
        split_statements(without_meta_commands(script), "the backup's schema")
    ):
        if stmt.kind not in _CREATING:
            continue  # most of a script: ALTER ... OWNER, GRANT, COMMENT, SELECT setval(...)
        c = _from_tree(stmt.kind, stmt.node)
        if c is None:
            continue
        c.order = i
        prev = found.get((c.kind, c.name))
        if prev is None:
            found[(c.kind, c.name)] = c
        else:  # e.g. a shell type then the type, or a view placeholder then CREATE OR REPLACE
            prev.optional = prev.optional and c.optional
    return list(found.values())


def created_tables(tables: Sequence[str], script: bytes = b"") -> list[Created]:
    """A chosen-tables backup: only its tables (names as the manifest quotes them) are in the
    way. The sequences its `script` creates (pg_dump --table includes the tables' owned
    sequences) count as recreated, so they may go with their table, but are never dropped on
    their own."""
    out = [
        Created("relation", t, f"table {t}", _RELKINDS["table"], order=i)
        for i, t in enumerate(tables)
    ]
    if script:
        for c in created_by_script(script):
            if c.kind == "relation" and c.expect == _RELKINDS["sequence"]:
                c.optional = True
                c.order += len(tables)
                out.append(c)
    return out


# --------------------------------------------------------------------------------------------
# Where they are in the target

_LOOKUPS = {
    "relation": ("pg_class", "pg_catalog.to_regclass(n)", "c.relkind::text"),
    "type": ("pg_type", "pg_catalog.to_regtype(n)", "c.typtype::text"),
    "schema": ("pg_namespace", "pg_catalog.to_regnamespace(n)", "''"),
    "routine": ("pg_proc", "pg_catalog.to_regprocedure(n)", "c.prokind::text"),
    "operator": ("pg_operator", "pg_catalog.to_regoperator(n)", "''"),
}
# Looked up by [schema, name] (no to_reg* function for them before PostgreSQL 16).
_IN_SCHEMA = {
    "collation": ("pg_collation", "collnamespace", "collname"),
    "tsconfig": ("pg_ts_config", "cfgnamespace", "cfgname"),
    "tsdict": ("pg_ts_dict", "dictnamespace", "dictname"),
}
_BY_NAME = {
    "extension": ("pg_extension", "extname"),
    "fdw": ("pg_foreign_data_wrapper", "fdwname"),
    "server": ("pg_foreign_server", "srvname"),
    "event trigger": ("pg_event_trigger", "evtname"),
    "publication": ("pg_publication", "pubname"),
    "language": ("pg_language", "lanname"),
}


def _text_array(items: Iterable[str]) -> str:
    return (
        "{" + ",".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in items) + "}"
    )


def _lookup_sql(catalog: str, detail: str, match: str) -> str:
    """The rows (name, classid, objid, detail) of `catalog` that `match` (over ``n``, one of the
    names in $1, and ``c``, the catalog row) finds."""
    return (
        f"SELECT n, 'pg_catalog.{catalog}'::pg_catalog.regclass::pg_catalog.oid, c.oid, "
        f"{detail} FROM pg_catalog.unnest($1::pg_catalog.text[]) n "
        f"JOIN pg_catalog.{catalog} c ON {match}"
    )


def _resolve(conn: _core.Connection, created: Sequence[Created]) -> dict[Key, tuple[Created, str]]:
    """The target's object for each created one that exists there, with its relkind / typtype
    / prokind (empty for other catalogs)."""
    by_kind: dict[str, dict[str, Created]] = {}
    for c in created:
        by_kind.setdefault(c.kind, {})[c.name] = c
    out: dict[Key, tuple[Created, str]] = {}
    for kind, named in by_kind.items():
        arr = _text_array(named)
        if kind in _LOOKUPS:
            catalog, func, detail = _LOOKUPS[kind]
            sql = _lookup_sql(catalog, detail, f"c.oid = {func}")
        elif kind in _BY_NAME:
            catalog, column = _BY_NAME[kind]
            sql = _lookup_sql(catalog, "''", f"c.{column} = n")
        elif kind in _IN_SCHEMA:
            catalog, nsp, column = _IN_SCHEMA[kind]
            sql = _lookup_sql(
                catalog,
                "''",
                f"c.{column} = n::pg_catalog.json->>1 AND c.{nsp} = (SELECT s.oid FROM "
                "pg_catalog.pg_namespace s WHERE s.nspname = n::pg_catalog.json->>0)",
            )
            if kind == "collation":  # one name can exist per encoding; only these apply
                sql += (
                    " AND c.collencoding IN (-1, (SELECT encoding FROM pg_catalog.pg_database "
                    "WHERE datname = pg_catalog.current_database()))"
                )
        elif kind == "cast":
            sql = _lookup_sql(
                "pg_cast",
                "''",
                "c.castsource = pg_catalog.to_regtype(n::pg_catalog.json->>0) "
                "AND c.casttarget = pg_catalog.to_regtype(n::pg_catalog.json->>1)",
            )
        else:
            continue
        for name, classid, objid, detail_value in conn.execute(sql, [arr]).rows:
            out[(int(str(classid)), int(str(objid)))] = (named[str(name)], str(detail_value or ""))
    return out


# Catalogs of the objects a backup can create; an object with an OID below 16384 came with
# initdb (FirstNormalObjectId).
_USER_OBJECT_CATALOGS = (
    "pg_namespace", "pg_class", "pg_type", "pg_proc", "pg_extension", "pg_collation",
    "pg_ts_config", "pg_ts_dict", "pg_operator", "pg_cast", "pg_foreign_data_wrapper",
    "pg_foreign_server", "pg_event_trigger", "pg_publication", "pg_language",
)  # fmt: skip


def has_user_objects(dsn: str) -> bool:
    """Whether the target has any object that initdb did not create (so anything could be in
    the way); restoring into a new database skips reading the backup's DDL."""
    probe = " OR ".join(
        f"EXISTS (SELECT FROM pg_catalog.{c} WHERE oid >= 16384)" for c in _USER_OBJECT_CATALOGS
    )
    with _core.Connection(dsn, application_name="pgsafe-restore") as conn:
        return conn.execute(f"SELECT {probe}").rows[0][0] == "t"


def user_object_keys(dsn: str) -> set[Key]:
    """Every object of the target that initdb did not create, as (catalog, oid): what a restore
    must leave in place when it undoes itself (`undo`)."""
    union = " UNION ALL ".join(
        f"SELECT 'pg_catalog.{c}'::pg_catalog.regclass::pg_catalog.oid, oid "
        f"FROM pg_catalog.{c} WHERE oid >= 16384"
        for c in _USER_OBJECT_CATALOGS
    )
    with _core.Connection(dsn, application_name="pgsafe-restore") as conn:
        rows = conn.execute(union).rows
    return {(int(str(c)), int(str(o))) for c, o in rows}


def undo(
    dsn: str, created: Sequence[Created], before: set[Key], *, lock_timeout: str = "30s"
) -> list[str]:
    """Undoes a failed restore: drops the objects of `created` (what the backup's script
    creates) that exist now and did not `before` (user_object_keys taken before it began),
    dependents first, in one transaction; returns what it dropped. IF NOT EXISTS / OR REPLACE
    objects count here too when they are new; nothing that existed before is touched.
    Raises UnsafeError or RollbackError (nothing dropped) as `clear` does."""
    with _core.Connection(dsn, application_name="pgsafe-restore") as conn:
        conn.execute("SET search_path = ''")
        found = _resolve(conn, created)
    new = [
        dataclasses.replace(c, optional=False)
        for key, (c, _) in sorted(found.items(), key=lambda kv: kv[1][0].order)
        if key not in before
    ]
    return clear(dsn, new, None, lock_timeout=lock_timeout) if new else []


def leftover(dsn: str, before: set[Key], limit: int = 5) -> tuple[int, list[str]]:
    """How many objects of the target were not there `before`, and the names of the first
    `limit` (top-level ones first): what an undone restore still left behind."""
    now = user_object_keys(dsn) - before
    if not now:
        return 0, []
    with _core.Connection(dsn, application_name="pgsafe-restore") as conn:
        names = _identify(conn, sorted(now))
    # Row and array types, TOAST tables and indexes come with a table: name the table.
    minor = ("type", "toast table", "index")
    plain = [k for k in sorted(now) if names.get(k, ("", ""))[0] not in minor]
    shown = [_describe(names, k) for k in (plain or sorted(now))[:limit]]
    return len(now), shown


def existing(dsn: str, created: Sequence[Created]) -> list[str]:
    """Labels of the created objects that already exist in the target (those in the way)."""
    with _core.Connection(dsn, application_name="pgsafe-restore") as conn:
        conn.execute("SET search_path = ''")
        found = _resolve(conn, created)
    return [c.label for c, _ in sorted(found.values(), key=lambda f: f[0].order) if not c.optional]


# --------------------------------------------------------------------------------------------
# What to drop, in which order


@dataclass
class Drop:
    key: Key
    kind: str  # pg_identify_object's type
    identity: str  # quoted, qualified
    cascade: bool = False  # only inside a dependency cycle, after the closure was checked

    @property
    def label(self) -> str:
        return f"{self.kind} {self.identity}"

    def sql(self) -> str:
        if self.cascade:
            return f"DROP {_DROP[self.kind]} IF EXISTS {self.identity} CASCADE"
        return f"DROP {_DROP[self.kind]} {self.identity}"


@dataclass
class Plan:
    """What --force would drop (in order), and why it must refuse instead, if it must."""

    drops: list[Drop] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


class _Graph:
    """pg_depend among the target's user objects, columns folded into their relation."""

    def __init__(self, conn: _core.Connection) -> None:
        self.up: dict[Key, list[tuple[Key, str]]] = {}  # object -> what it is part of
        self.down: dict[Key, list[tuple[Key, str]]] = {}  # object -> what depends on it
        rows = conn.execute(
            "SELECT classid::pg_catalog.oid, objid, refclassid::pg_catalog.oid, refobjid, "
            "deptype::pg_catalog.text FROM pg_catalog.pg_depend "
            "WHERE refobjid >= 16384 AND objid >= 16384"
        ).rows
        for c, o, rc, ro, t in rows:
            dep = (int(str(c)), int(str(o)))
            ref = (int(str(rc)), int(str(ro)))
            if dep == ref:
                continue
            kind = str(t)
            self.down.setdefault(ref, []).append((dep, kind))
            if kind in _PART:
                self.up.setdefault(dep, []).append((ref, kind))
        self._roots: dict[Key, frozenset[Key]] = {}
        self.relkind = {
            (_PG_CLASS, int(str(o))): str(k)
            for o, k in conn.execute(
                "SELECT oid, relkind::pg_catalog.text FROM pg_catalog.pg_class WHERE oid >= 16384"
            ).rows
        }

    def holds_data(self, key: Key) -> bool:
        """A relation that is an object of its own (a partition, a table an extension owns, a
        sequence owned by a column), not a sub-object like an index or a TOAST table."""
        return self.relkind.get(key, "") in _OWN_RELKINDS

    def roots(self, key: Key) -> frozenset[Key]:
        """The top-level objects `key` is (transitively) a part of; itself when it is one."""
        if key in self._roots:
            return self._roots[key]
        self._roots[key] = frozenset({key})  # a cycle of parts cannot happen; guard anyway
        parents = self.up.get(key, [])
        found = frozenset().union(*(self.roots(p) for p, _ in parents)) if parents else None
        self._roots[key] = found or frozenset({key})
        return self._roots[key]


def _identify(conn: _core.Connection, keys: Iterable[Key]) -> dict[Key, tuple[str, str]]:
    ks = list(dict.fromkeys(keys))
    if not ks:
        return {}
    rows = conn.execute(
        "SELECT k.c, k.o, i.type, i.identity FROM ROWS FROM "
        "(pg_catalog.unnest($1::pg_catalog.oid[]), pg_catalog.unnest($2::pg_catalog.oid[])) "
        "AS k(c, o), "
        "LATERAL pg_catalog.pg_identify_object(k.c, k.o, 0) i",
        ["{" + ",".join(str(c) for c, _ in ks) + "}", "{" + ",".join(str(o) for _, o in ks) + "}"],
    ).rows
    # A domain is reported as a type, and DROP TYPE drops domains too.
    return {(int(str(c)), int(str(o))): (str(kind), str(identity)) for c, o, kind, identity in rows}


def _describe(names: dict[Key, tuple[str, str]], key: Key) -> str:
    kind, identity = names.get(key, ("object", f"{key[0]}/{key[1]}"))
    return f"{kind} {identity}"


def plan(conn: _core.Connection, created: Sequence[Created]) -> Plan:
    """Works out, on `conn` (inside the caller's transaction), which of `created` exist and
    must be dropped, what goes with them, in which order, and what forbids it."""
    found = _resolve(conn, created)
    graph = _Graph(conn)
    recreated = set(found)
    result = Plan()
    wanted: list[Key] = []
    blockers: list[tuple[Key, Key | None, str]] = []  # (object, what it depends on, why)
    for key, (c, detail) in sorted(found.items(), key=lambda kv: kv[1][0].order):
        if c.optional:
            continue
        if c.expect and detail not in c.expect:
            blockers.append((key, None, f"is in the way of the backup's {c.label} (another kind)"))
            continue
        roots = graph.roots(key)
        if roots != {key} and not roots <= recreated:
            if all(t == "a" for _, t in graph.up.get(key, [])):
                wanted.append(key)  # e.g. a sequence owned by another table: droppable alone
                continue
            owner = next(iter(roots - recreated))
            blockers.append((key, owner, f"is in the way of the backup's {c.label}"))
            continue
        wanted.append(key)

    deleted: dict[Key, Key] = {}  # object -> the explicit drop it goes with
    explicit: list[Key] = []
    along: dict[Key, Key] = {}  # a relation the backup does not recreate -> what takes it

    def add(key: Key) -> None:
        explicit.append(key)
        stack = [key]
        while stack:
            k = stack.pop()
            if k in deleted:
                continue
            deleted[k] = key
            for d, t in graph.down.get(k, []):
                if t not in _PART:
                    continue
                if t != "i" and graph.holds_data(d) and d not in recreated:
                    along.setdefault(d, key)  # a partition added since the backup, ...
                    continue
                stack.append(d)

    for key in wanted:
        if key not in deleted:
            add(key)
    # Close over normal dependencies: a dependent the backup recreates goes too; any other
    # makes --force refuse.
    changed = True
    # A dependent the backup does not recreate -> (its sub-object that depends, what on).
    uses: dict[Key, set[tuple[Key, Key]]] = {}
    while changed:
        changed = False
        for k in list(deleted):
            for d, t in graph.down.get(k, []):
                if t in _PART or d in deleted:
                    continue
                roots = graph.roots(d)
                if roots <= recreated:
                    for r in roots:
                        if r not in deleted:
                            add(r)
                            changed = True
                else:
                    uses.setdefault(min(roots - recreated), set()).add((d, deleted[k]))

    def rank(key: Key) -> int:
        return found[key][0].order if key in found else -1

    for obj, taker in along.items():
        blockers.append((obj, taker, "goes with"))
    via: dict[Key, Key] = {}
    for owner, used in uses.items():
        # Name the most specific thing it uses: the view's table rather than its column's type.
        part, on = max(used, key=lambda u: (rank(u[1]), u[1], u[0]))
        blockers.append((owner, on, "depends on"))
        if part != owner and part[0] not in _NOT_WORTH_NAMING:
            via[owner] = part  # e.g. its trigger, its foreign key, a column default

    names = _identify(
        conn,
        [*explicit, *(b[0] for b in blockers), *(b[1] for b in blockers if b[1]), *via.values()],
    )

    for obj, other, why in blockers:
        if why == "depends on":
            assert other is not None
            through = f" (its {_describe(names, via[obj])})" if obj in via else ""
            result.refusals.append(
                f"{_describe(names, obj)}{through} depends on {_describe(names, other)} and is "
                "not in the backup"
            )
        elif why == "goes with":
            assert other is not None
            result.refusals.append(
                f"{_describe(names, obj)} would be dropped with {_describe(names, other)} "
                "(it is a partition of it, or owned by it) and is not in the backup"
            )
        elif other is not None:
            result.refusals.append(
                f"{_describe(names, obj)} {why}, but belongs to {_describe(names, other)}, "
                "which the backup does not recreate"
            )
        else:
            result.refusals.append(f"{_describe(names, obj)} {why}")
    if result.refusals:
        return result

    # An explicit drop that another one takes along (a sequence owned by a dropped table) is
    # left to it; every dropped object is then attributed to the explicit drop that takes it.
    explicit = [k for k in explicit if not any(p in deleted for p, _ in graph.up.get(k, []))]
    taken_by: dict[Key, Key] = {}
    for key in explicit:
        stack = [key]
        while stack:
            k = stack.pop()
            if k not in taken_by:
                taken_by[k] = key
                stack.extend(d for d, t in graph.down.get(k, []) if t in _PART and d in deleted)
    for key in explicit:
        kind, _ = names.get(key, ("object", ""))
        if kind not in _DROP:
            result.refusals.append(f"--force cannot drop {_describe(names, key)}")
    if result.refusals:
        return result
    ranks = {key: rank(key) for key in explicit}
    ordered, cyclic = _drop_order(explicit, taken_by, graph, ranks)
    result.drops = [Drop(k, names[k][0], names[k][1], cascade=k in cyclic) for k in ordered]
    return result


def _drop_order(
    explicit: list[Key], owner: dict[Key, Key], graph: _Graph, rank: dict[Key, int]
) -> tuple[list[Key], set[Key]]:
    """Dependents first (Kahn's algorithm); among the ready, the one the script creates last
    first. Also returns the members of dependency cycles (possible across kinds, e.g. a table
    default calling a function that takes the table's row type): they are dropped last, with
    CASCADE, which is safe only because every dependent was found to be dropped anyway."""
    uses: dict[Key, set[Key]] = {k: set() for k in explicit}  # k must go before these
    for k, o in owner.items():
        for d, _ in graph.down.get(k, []):
            od = owner.get(d)
            if od is not None and od != o:
                uses[od].add(o)
    waiting = dict.fromkeys(explicit, 0)
    for targets in uses.values():
        for u in targets:
            waiting[u] += 1
    ready = [(-rank[k], k) for k in explicit if waiting[k] == 0]
    heapq.heapify(ready)
    out: list[Key] = []
    while ready:
        _, k = heapq.heappop(ready)
        out.append(k)
        for u in uses[k]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (-rank[u], u))
    done = set(out)
    cyclic = {k for k in explicit if k not in done}
    return out + sorted(cyclic, key=lambda k: -rank[k]), cyclic


# --------------------------------------------------------------------------------------------
# Doing it


def _trial(conn: _core.Connection, schema_sql: bytes) -> None:
    """Runs the backup's schema script (what restore's pre-data step will run) inside the
    caller's transaction, then undoes it."""
    conn.execute("SAVEPOINT pgsafe_force_trial")
    for stmt in split_statements(without_meta_commands(schema_sql), "the backup's schema"):
        if stmt.setting in _TIMEOUTS:
            continue
        try:
            conn.execute(stmt.sql)
        except Error as exc:
            first = stmt.sql.strip().splitlines()[0] if stmt.sql.strip() else ""
            raise RollbackError(
                f"--force: the backup's schema would still not apply after the drops "
                f"(nothing dropped): {exc} (at: {first[:80]})"
            ) from None
    conn.execute("ROLLBACK TO SAVEPOINT pgsafe_force_trial")


def clear(
    dsn: str,
    created: Sequence[Created],
    schema_sql: bytes | None,
    *,
    lock_timeout: str = "5s",
) -> list[str]:
    """Drops what of `created` exists in the target (and what goes with it), in one
    transaction with `lock_timeout`; returns what it dropped ("table public.t", ...).
    Raises UnsafeError (nothing dropped) when something the backup does not recreate depends
    on them, RollbackError (nothing dropped) when a drop or the trial of `schema_sql` fails."""
    with _core.Connection(dsn, application_name="pgsafe-restore") as conn:
        conn.execute("BEGIN")
        try:
            conn.execute(f"SET LOCAL lock_timeout = '{lock_timeout}'")
            conn.execute("SET LOCAL search_path = ''")
            p = plan(conn, created)
            if p.refusals:
                more = f" (and {len(p.refusals) - 3} more)" if len(p.refusals) > 3 else ""
                raise UnsafeError(
                    "--force refused (nothing dropped): "
                    + "; ".join(p.refusals[:3])
                    + more
                    + ". Drop or change it yourself, or restore into an empty database"
                )
            if not p.drops:
                conn.execute("ROLLBACK")
                return []
            for d in p.drops:
                try:
                    conn.execute(d.sql())
                except Error as exc:
                    hint = ""
                    if getattr(exc, "sqlstate", None) == "53200":
                        hint = (
                            f"; --force drops all {len(p.drops)} objects in one transaction, "
                            "which needs more locks than the server's lock table holds: raise "
                            "max_locks_per_transaction (a restart) or restore into an empty "
                            "database"
                        )
                    raise RollbackError(
                        f"--force could not drop {d.label} (nothing dropped): {exc}{hint}"
                    ) from None
            if schema_sql:
                _trial(conn, schema_sql)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Error):
                conn.execute("ROLLBACK")
            raise
    return [d.label for d in p.drops]
