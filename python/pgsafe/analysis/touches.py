"""What a migration's statements name, read from libpg_query's parse trees (never from SQL text):
the relations they mention, the constraints they add, the tables they delete rows from or drop,
and the tables they rename. Postflight uses it to pick the foreign keys a migration just added;
`pgsafe test` to tell the tables a migration touches from those it must leave alone."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pgsafe.analysis.statement import Statement, walk_dicts

__all__ = ["CheckAdded", "ForeignKey", "Touches", "analyse", "walk_dicts"]

# (schema or None when unqualified, name)
Name = tuple[str | None, str]


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key that ALTER TABLE ... ADD CONSTRAINT gives an existing table."""

    table: Name
    columns: tuple[str, ...]
    parent: Name
    parent_columns: tuple[str, ...]  # empty: the parent's primary key


@dataclass(frozen=True)
class CheckAdded:
    """A CHECK constraint that ALTER TABLE ... ADD CONSTRAINT gives an existing table: its
    expression's parse tree."""

    table: Name
    expression: dict[str, Any] = field(hash=False, compare=False)


def _strings(items: Any) -> tuple[str, ...]:
    return tuple(
        str(i["String"]["sval"])
        for i in items or []
        if isinstance(i, dict) and isinstance(i.get("String"), dict)
    )


@dataclass
class Touches:
    relations: set[Name] = field(default_factory=set)  # every RangeVar anywhere
    targets: set[Name] = field(default_factory=set)  # relations a statement changes
    constraints: set[str] = field(default_factory=set)  # constraint names added
    foreign_key_tables: set[Name] = field(default_factory=set)  # tables given a foreign key
    deletes_rows: set[Name] = field(default_factory=set)  # DELETE, TRUNCATE, DROP TABLE
    dropped: set[Name] = field(default_factory=set)  # DROP TABLE / VIEW / MATERIALIZED VIEW
    renamed: dict[Name, Name] = field(default_factory=dict)  # old -> new (table renames)
    foreign_keys: list[ForeignKey] = field(default_factory=list)  # added to existing tables
    checks: list[CheckAdded] = field(default_factory=list)  # added to existing tables
    opaque: bool = False  # DO blocks or function calls: effects pgsafe cannot see

    def mentions(self, schema: str, name: str, search_path: str = "public") -> bool:
        return _match(self.relations, schema, name, search_path)

    def deletes(self, schema: str, name: str, search_path: str = "public") -> bool:
        return _match(self.deletes_rows, schema, name, search_path)

    def adds_foreign_key_to(self, schema: str, name: str, search_path: str = "public") -> bool:
        return _match(self.foreign_key_tables, schema, name, search_path)


def _match(names: set[Name], schema: str, name: str, search_path: str) -> bool:
    return (schema, name) in names or (schema == search_path and (None, name) in names)


def _rangevar(node: dict[str, Any]) -> Name | None:
    if "relname" in node and isinstance(node["relname"], str):
        return (node.get("schemaname"), node["relname"])
    return None


def _names(items: Iterable[Any]) -> Name | None:
    parts = [i["String"]["sval"] for i in items if isinstance(i, dict) and "String" in i]
    if len(parts) == 1:
        return (None, parts[0])
    if len(parts) >= 2:
        return (parts[-2], parts[-1])
    return None


def analyse(statements: Iterable[Statement]) -> Touches:
    t = Touches()
    for stmt in statements:
        tree = stmt.tree
        kind, body = next(iter(tree.items())) if isinstance(tree, dict) and tree else ("", {})
        if kind in ("DoStmt", "CallStmt"):
            t.opaque = True
        for node in walk_dicts(tree):
            rv = _rangevar(node)
            if rv is not None:
                t.relations.add(rv)
            con = node.get("Constraint")
            if isinstance(con, dict) and con.get("conname"):
                t.constraints.add(str(con["conname"]))
        if not isinstance(body, dict):
            continue
        target = body.get("relation")
        if isinstance(target, dict) and (rv := _rangevar(target)) is not None:
            t.targets.add(rv)
            if kind in ("AlterTableStmt", "CreateStmt") and any(
                isinstance(c, dict)
                and isinstance(c.get("Constraint"), dict)
                and c["Constraint"].get("contype") == "CONSTR_FOREIGN"
                for c in walk_dicts(body)
            ):
                t.foreign_key_tables.add(rv)
            if kind == "AlterTableStmt":
                t.foreign_keys.extend(_added_foreign_keys(rv, body))
                t.checks.extend(_added_checks(rv, body))
            if kind == "DeleteStmt":
                t.deletes_rows.add(rv)
            if kind == "RenameStmt" and body.get("renameType") == "OBJECT_TABLE":
                t.renamed[rv] = (rv[0], str(body.get("newname")))
        if kind == "TruncateStmt":
            for r in body.get("relations", []):
                if (rv := _rangevar(r.get("RangeVar", r))) is not None:
                    t.targets.add(rv)
                    t.deletes_rows.add(rv)
        if kind == "DropStmt" and body.get("removeType") in (
            "OBJECT_TABLE",
            "OBJECT_VIEW",
            "OBJECT_MATVIEW",
            "OBJECT_FOREIGN_TABLE",
        ):
            for obj in body.get("objects", []):
                items = obj.get("List", {}).get("items", []) if isinstance(obj, dict) else []
                if (name := _names(items)) is not None:
                    t.dropped.add(name)
                    t.deletes_rows.add(name)
                    t.targets.add(name)
                    t.relations.add(name)
        if kind == "SelectStmt" and any("FuncCall" in n for n in walk_dicts(body)):
            t.opaque = True  # SELECT some_function(): may write anything
    return t


def _added_constraints(body: dict[str, Any], contype: str) -> Iterable[dict[str, Any]]:
    for cmd in body.get("cmds") or []:
        c = cmd.get("AlterTableCmd") if isinstance(cmd, dict) else None
        if not isinstance(c, dict) or c.get("subtype") != "AT_AddConstraint":
            continue
        con = (c.get("def") or {}).get("Constraint")
        if isinstance(con, dict) and con.get("contype") == contype:
            yield con


def _added_checks(table: Name, body: dict[str, Any]) -> Iterable[CheckAdded]:
    for con in _added_constraints(body, "CONSTR_CHECK"):
        if isinstance(con.get("raw_expr"), dict):
            yield CheckAdded(table, con["raw_expr"])


def _added_foreign_keys(table: Name, body: dict[str, Any]) -> Iterable[ForeignKey]:
    for con in _added_constraints(body, "CONSTR_FOREIGN"):
        parent = _rangevar(con.get("pktable") or {})
        columns = _strings(con.get("fk_attrs"))
        if parent is not None and columns:
            yield ForeignKey(table, columns, parent, _strings(con.get("pk_attrs")))
