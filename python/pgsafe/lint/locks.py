"""Predicted table locks: for each statement, the lock modes PostgreSQL takes on the relations
it touches (from tablecmds.c's AlterTableGetLockLevel and the utility commands), and the
strongest one on a relation that existed before the migration. Where a major differs, the
prediction follows the target's (the context's pg_version): GRANT and REVOKE on a table lock it
from PostgreSQL 18 on. Lock tracing observes the real ones; this is the static prediction it is
compared with (tests/test_trace.py, on 15, 16 and 18)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pgsafe.lint.model import Stmt, alter_cmds, range_name, strings, stronger_lock, walk


class Context(Protocol):
    """What a prediction needs from the linter's context (pgsafe.lint.context.Context): the
    target's PostgreSQL major, and whether a table was created earlier in the same migration
    (locking it blocks nobody)."""

    pg_version: int

    def is_new_table(self, name: str) -> bool: ...


AE = "AccessExclusiveLock"
SRE = "ShareRowExclusiveLock"
SUE = "ShareUpdateExclusiveLock"

# ALTER TABLE subcommands that take less than ACCESS EXCLUSIVE (everything else takes it).
_ALTER_LOCKS = {
    "AT_SetStatistics": SUE,
    "AT_SetOptions": SUE,
    "AT_ResetOptions": SUE,
    "AT_ClusterOn": SUE,
    "AT_DropCluster": SUE,
    "AT_SetRelOptions": SUE,
    "AT_ResetRelOptions": SUE,
    "AT_ValidateConstraint": SUE,
    "AT_AttachPartition": SUE,
    "AT_DetachPartitionFinalize": SUE,
    "AT_EnableTrig": SRE,
    "AT_EnableAlwaysTrig": SRE,
    "AT_EnableReplicaTrig": SRE,
    "AT_DisableTrig": SRE,
    "AT_EnableTrigAll": SRE,
    "AT_DisableTrigAll": SRE,
    "AT_EnableTrigUser": SRE,
    "AT_DisableTrigUser": SRE,
}


@dataclass
class Prediction:
    # (relation, lock mode) for every relation the statement locks, new ones included.
    locks: list[tuple[str, str]] = field(default_factory=list)
    lock: str | None = None  # strongest on a relation that existed before the migration
    relation: str | None = None  # ... and which relation that is

    def add(self, relation: str, mode: str, ctx: Context) -> None:
        if not relation:
            return
        self.locks.append((relation, mode))
        stronger = stronger_lock(self.lock, mode) == mode and self.lock != mode
        if stronger and not ctx.is_new_table(relation):
            self.lock, self.relation = mode, relation


def _alter_lock(cmd: dict[str, Any]) -> str:
    sub = cmd.get("subtype", "")
    if sub == "AT_AddConstraint":
        con = (cmd.get("def") or {}).get("Constraint", {})
        return SRE if con.get("contype") == "CONSTR_FOREIGN" else AE
    if sub == "AT_DetachPartition":
        part = (cmd.get("def") or {}).get("PartitionCmd", {})
        return SUE if part.get("concurrent") else AE
    return _ALTER_LOCKS.get(sub, AE)


def _foreign_targets(node: Any) -> list[str]:
    return [
        range_name(c.get("pktable"))
        for t, c in walk(node)
        if t == "Constraint" and c.get("contype") == "CONSTR_FOREIGN"
    ]


def predict(stmt: Stmt, ctx: Context) -> Prediction:
    p = Prediction()
    n, kind = stmt.node, stmt.kind
    if kind == "AlterTableStmt":
        table = range_name(n.get("relation"))
        for cmd in alter_cmds(stmt):
            p.add(table, _alter_lock(cmd), ctx)
            if cmd.get("subtype") == "AT_AttachPartition":
                # The table being attached is locked ACCESS EXCLUSIVE (and scanned).
                part = (cmd.get("def") or {}).get("PartitionCmd", {}).get("name")
                p.add(range_name(part), AE, ctx)
        for target in _foreign_targets(n.get("cmds")):
            p.add(target, SRE, ctx)
    elif kind == "CreateStmt":
        for target in _foreign_targets(n.get("tableElts")) + _foreign_targets(n.get("constraints")):
            p.add(target, SRE, ctx)
        for parent in n.get("inhRelations", []):
            # PARTITION OF locks the parent ACCESS EXCLUSIVE; plain INHERITS only SHARE UPDATE
            # EXCLUSIVE (checked against pg_locks on PostgreSQL 15).
            p.add(range_name(parent.get("RangeVar")), AE if n.get("partbound") else SUE, ctx)
    elif kind == "IndexStmt":
        p.add(range_name(n.get("relation")), SUE if n.get("concurrent") else "ShareLock", ctx)
    elif kind == "DropStmt":
        mode = SUE if n.get("concurrent") else AE
        rtype = n.get("removeType", "")
        if rtype in (
            "OBJECT_TABLE",
            "OBJECT_VIEW",
            "OBJECT_MATVIEW",
            "OBJECT_INDEX",
            "OBJECT_SEQUENCE",
            "OBJECT_FOREIGN_TABLE",
        ):
            for obj in n.get("objects", []):
                name = ".".join(strings(obj.get("List", {}).get("items"))) or ".".join(
                    strings([obj])
                )
                p.add(name, mode, ctx)
        elif rtype in ("OBJECT_TRIGGER", "OBJECT_POLICY", "OBJECT_RULE"):
            for obj in n.get("objects", []):
                parts = strings(obj.get("List", {}).get("items"))
                if len(parts) >= 2:  # the table, then the trigger/policy name
                    p.add(".".join(parts[:-1]), AE, ctx)
    elif kind == "TruncateStmt":
        for r in n.get("relations", []):
            p.add(range_name(r.get("RangeVar")), AE, ctx)
    elif kind == "RenameStmt":
        # ALTER INDEX ... RENAME takes SHARE UPDATE EXCLUSIVE; renaming anything else, ACCESS
        # EXCLUSIVE.
        index = n.get("renameType") == "OBJECT_INDEX"
        p.add(range_name(n.get("relation")), SUE if index else AE, ctx)
    elif kind == "CreateTrigStmt":
        p.add(range_name(n.get("relation")), SRE, ctx)
    elif kind in ("CreatePolicyStmt", "AlterPolicyStmt"):
        p.add(range_name(n.get("table")), AE, ctx)
    elif kind == "CommentStmt":
        objtype = n.get("objtype", "")
        items = strings((n.get("object") or {}).get("List", {}).get("items"))
        if objtype in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW") and items:
            p.add(".".join(items), SUE, ctx)
        elif objtype == "OBJECT_COLUMN" and len(items) >= 2:
            p.add(".".join(items[:-1]), SUE, ctx)
    elif kind in ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"):
        p.add(range_name(n.get("relation")), "RowExclusiveLock", ctx)
    elif kind == "VacuumStmt":
        full = any(o.get("DefElem", {}).get("defname") == "full" for o in n.get("options", []))
        for rel in n.get("rels", []):
            p.add(
                range_name(rel.get("VacuumRelation", {}).get("relation")), AE if full else SUE, ctx
            )
    elif kind == "ClusterStmt":
        p.add(range_name(n.get("relation")), AE, ctx)
    elif kind == "ReindexStmt":
        concurrent = any(
            o.get("DefElem", {}).get("defname") == "concurrently" for o in n.get("params", [])
        )
        # Without CONCURRENTLY the indexes are locked ACCESS EXCLUSIVE, and every query on the
        # table needs its indexes during planning: reads block too.
        p.add(range_name(n.get("relation")), SUE if concurrent else AE, ctx)
    elif kind == "AlterObjectSchemaStmt" and n.get("relation"):
        p.add(range_name(n.get("relation")), AE, ctx)
    elif kind == "CopyStmt" and n.get("is_from") and n.get("relation"):
        p.add(range_name(n.get("relation")), "RowExclusiveLock", ctx)
    elif kind == "CreateStatsStmt":
        for r in n.get("relations", []):
            p.add(range_name(r.get("RangeVar")), SUE, ctx)
    elif kind == "RefreshMatViewStmt":
        p.add(range_name(n.get("relation")), "ExclusiveLock" if n.get("concurrent") else AE, ctx)
    elif kind == "LockStmt":
        modes = [
            "",
            "AccessShareLock",
            "RowShareLock",
            "RowExclusiveLock",
            SUE,
            "ShareLock",
            SRE,
            "ExclusiveLock",
            AE,
        ]
        mode = modes[int(n.get("mode", 8))] if 0 < int(n.get("mode", 8)) < len(modes) else AE
        for r in n.get("relations", []):
            p.add(range_name(r.get("RangeVar")), mode, ctx)
    elif kind == "ViewStmt":
        if n.get("replace"):
            p.add(range_name(n.get("view")), AE, ctx)
        _add_reads(p, n.get("query"), "AccessShareLock", ctx)
    elif kind == "CreateTableAsStmt":
        _add_reads(p, n.get("query"), "AccessShareLock", ctx)
    elif kind == "RuleStmt":
        p.add(range_name(n.get("relation")), AE, ctx)
    elif kind == "AlterSeqStmt":
        p.add(range_name(n.get("sequence")), SRE, ctx)
    elif (
        kind == "GrantStmt"
        and ctx.pg_version >= 18
        and n.get("targtype") == "ACL_TARGET_OBJECT"
        and n.get("objtype") in ("OBJECT_TABLE", "OBJECT_SEQUENCE")
    ):
        # PostgreSQL 18 locks each relation named in GRANT / REVOKE (ACCESS SHARE, while it
        # rewrites its ACL); 17 and older take no lock on it (checked against pg_locks).
        for obj in n.get("objects", []):
            p.add(range_name(obj.get("RangeVar")), "AccessShareLock", ctx)
    elif kind == "SelectStmt" and n.get("lockingClause"):
        _add_reads(p, n.get("fromClause"), "RowShareLock", ctx)
    if kind in ("CreatePolicyStmt", "AlterPolicyStmt"):
        # A subquery in USING / WITH CHECK is parsed at creation: its tables are read-locked.
        _add_reads(p, [n.get("qual"), n.get("with_check")], "AccessShareLock", ctx)
    return p


def _add_reads(p: Prediction, node: Any, mode: str, ctx: Context) -> None:
    """Every table a query (or an expression's subqueries) names gets `mode`; CTE names are
    not tables. Checked against pg_locks by the lock tracer on PostgreSQL 15."""
    found = list(walk(node))
    ctes = {c.get("ctename") for t, c in found if t == "CommonTableExpr"}
    for t, rv in found:
        if t == "RangeVar" and not (rv.get("schemaname") is None and rv.get("relname") in ctes):
            p.add(range_name(rv), mode, ctx)
