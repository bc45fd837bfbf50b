"""The oldest PostgreSQL major whose grammar accepts a statement, read from its parse tree (node
types and fields that only newer grammars produce), never from its text.

pgsafe parses with the newest grammar (analysis.statement.GRAMMAR_MAJOR), so a migration written
for PostgreSQL 18 parses even when the target runs 16; `requirement()` says it will fail there.
The table covers syntax from PostgreSQL 13 (the oldest major pgsafe supports) on; docs/versions.md
lists it with the rules and lock predictions that depend on the target's major.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pgsafe.analysis.statement import walk_nodes

__all__ = ["FEATURES", "Feature", "Requirement", "requirement"]

Fields = dict[str, Any]


@dataclass(frozen=True)
class Feature:
    major: int  # the first PostgreSQL major whose grammar accepts it
    name: str  # as the message says it, e.g. "a virtual generated column"
    node: str  # the parse-tree node type it shows up in
    test: Callable[[Fields], bool]


@dataclass(frozen=True)
class Requirement:
    major: int
    feature: str
    location: int | None  # byte offset of the node in the file, when the parser gave one


def _option(*names: str) -> Callable[[Fields], bool]:
    return lambda f: f.get("defname") in names


def _has(key: str) -> Callable[[Fields], bool]:
    return lambda f: bool(f.get(key))


def _matches(key: str, *values: str) -> Callable[[Fields], bool]:
    return lambda f: f.get(key) in values


# Newest first within each node type does not matter: every feature is checked.
FEATURES: tuple[Feature, ...] = (
    # PostgreSQL 18
    Feature(
        18,
        "a virtual generated column (GENERATED ALWAYS AS (...) VIRTUAL, or without STORED)",
        "Constraint",
        lambda f: f.get("contype") == "CONSTR_GENERATED" and f.get("generated_kind") == "v",
    ),
    Feature(
        18,
        "a NOT NULL table constraint (CONSTRAINT name NOT NULL column)",
        "Constraint",
        lambda f: f.get("contype") == "CONSTR_NOTNULL" and bool(f.get("keys")),
    ),
    Feature(
        18,
        "NOT NULL ... NOT VALID",
        "Constraint",
        lambda f: f.get("contype") == "CONSTR_NOTNULL" and bool(f.get("skip_validation")),
    ),
    Feature(
        18,
        "a NOT ENFORCED constraint",
        "Constraint",
        lambda f: (
            f.get("contype") in ("CONSTR_CHECK", "CONSTR_FOREIGN") and not f.get("is_enforced")
        ),
    ),
    Feature(18, "WITHOUT OVERLAPS (a temporal key)", "Constraint", _has("without_overlaps")),
    Feature(
        18,
        "PERIOD in a foreign key (a temporal foreign key)",
        "Constraint",
        lambda f: bool(f.get("fk_with_period") or f.get("pk_with_period")),
    ),
    Feature(18, "RETURNING WITH (OLD/NEW AS ...)", "ReturningOption", lambda f: True),
    Feature(
        18,
        "ALTER CONSTRAINT ... [NOT] ENFORCED or [NO] INHERIT",
        "ATAlterConstraint",
        lambda f: bool(f.get("alterEnforceability") or f.get("alterInheritability")),
    ),
    Feature(18, "COPY ... REJECT_LIMIT", "DefElem", _option("reject_limit")),
    # PostgreSQL 17
    Feature(17, "JSON_TABLE", "JsonTable", lambda f: True),
    Feature(17, "JSON_QUERY / JSON_VALUE / JSON_EXISTS", "JsonFuncExpr", lambda f: True),
    Feature(17, "JSON()", "JsonParseExpr", lambda f: True),
    Feature(17, "JSON_SCALAR()", "JsonScalarExpr", lambda f: True),
    Feature(17, "JSON_SERIALIZE()", "JsonSerializeExpr", lambda f: True),
    Feature(17, "MERGE ... RETURNING", "MergeStmt", _has("returningClause")),
    Feature(17, "merge_action()", "MergeSupportFunc", lambda f: True),
    Feature(
        17,
        "MERGE ... WHEN NOT MATCHED BY SOURCE",
        "MergeWhenClause",
        _matches("matchKind", "MERGE_WHEN_NOT_MATCHED_BY_SOURCE"),
    ),
    Feature(
        17,
        "ALTER COLUMN ... SET EXPRESSION",
        "AlterTableCmd",
        _matches("subtype", "AT_SetExpression"),
    ),
    Feature(
        17, "COPY ... ON_ERROR / LOG_VERBOSITY", "DefElem", _option("on_error", "log_verbosity")
    ),
    # PostgreSQL 16
    Feature(
        16,
        "a subquery in FROM without an alias",
        "RangeSubselect",
        lambda f: not f.get("alias"),
    ),
    Feature(16, "IS JSON", "JsonIsPredicate", lambda f: True),
    Feature(16, "JSON_OBJECT()", "JsonObjectConstructor", lambda f: True),
    Feature(16, "JSON_ARRAY()", "JsonArrayConstructor", lambda f: True),
    Feature(16, "JSON_ARRAY(query)", "JsonArrayQueryConstructor", lambda f: True),
    Feature(16, "JSON_OBJECTAGG()", "JsonObjectAgg", lambda f: True),
    Feature(16, "JSON_ARRAYAGG()", "JsonArrayAgg", lambda f: True),
    Feature(
        16,
        "SYSTEM_USER",
        "FuncCall",
        lambda f: (
            f.get("funcformat") == "COERCE_SQL_SYNTAX"
            and [n.get("String", {}).get("sval") for n in f.get("funcname", [])]
            == ["pg_catalog", "system_user"]
        ),
    ),
    Feature(
        16,
        "VACUUM (BUFFER_USAGE_LIMIT / SKIP_DATABASE_STATS / ONLY_DATABASE_STATS / PROCESS_MAIN)",
        "DefElem",
        _option("buffer_usage_limit", "skip_database_stats", "only_database_stats", "process_main"),
    ),
    # PostgreSQL 15
    Feature(15, "MERGE", "MergeStmt", lambda f: True),
    Feature(15, "UNIQUE NULLS NOT DISTINCT", "IndexStmt", _has("nulls_not_distinct")),
    Feature(15, "UNIQUE NULLS NOT DISTINCT", "Constraint", _has("nulls_not_distinct")),
    Feature(
        15,
        "a publication of TABLES IN SCHEMA",
        "PublicationObjSpec",
        _matches(
            "pubobjtype", "PUBLICATIONOBJ_TABLES_IN_SCHEMA", "PUBLICATIONOBJ_TABLES_IN_CUR_SCHEMA"
        ),
    ),
    # PostgreSQL 14
    Feature(14, "CREATE OR REPLACE TRIGGER", "CreateTrigStmt", _has("replace")),
    Feature(
        14,
        "a SQL-standard function body (BEGIN ATOMIC / RETURN)",
        "CreateFunctionStmt",
        _has("sql_body"),
    ),
    Feature(14, "GROUP BY DISTINCT", "SelectStmt", _has("groupDistinct")),
    Feature(14, "SEARCH / CYCLE in WITH RECURSIVE", "CTESearchClause", lambda f: True),
    Feature(14, "SEARCH / CYCLE in WITH RECURSIVE", "CTECycleClause", lambda f: True),
    Feature(
        14,
        "DETACH PARTITION ... CONCURRENTLY / FINALIZE",
        "PartitionCmd",
        _has("concurrent"),
    ),
    Feature(
        14,
        "DETACH PARTITION ... CONCURRENTLY / FINALIZE",
        "AlterTableCmd",
        _matches("subtype", "AT_DetachPartitionFinalize"),
    ),
    Feature(14, "a column COMPRESSION method", "ColumnDef", _has("compression")),
    Feature(14, "SET COMPRESSION", "AlterTableCmd", _matches("subtype", "AT_SetCompression")),
    Feature(14, "statistics on expressions", "StatsElem", _has("expr")),
)

_BY_NODE: dict[str, tuple[Feature, ...]] = {}
for _f in FEATURES:
    _BY_NODE[_f.node] = (*_BY_NODE.get(_f.node, ()), _f)


def requirement(tree: dict[str, Any]) -> Requirement | None:
    """The newest syntax the statement `tree` (``{kind: fields}``) uses: the first PostgreSQL
    major that accepts it, what it is and where; None when any supported major accepts it."""
    best: Requirement | None = None
    for kind, fields in walk_nodes(tree):
        for feature in _BY_NODE.get(kind, ()):
            if (best is None or feature.major > best.major) and feature.test(fields):
                location = fields.get("location")
                best = Requirement(
                    feature.major,
                    feature.name,
                    location if isinstance(location, int) and location >= 0 else None,
                )
    return best
