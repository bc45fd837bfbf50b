"""Lint rules: table rewrites for maintenance (VACUUM FULL, CLUSTER), enum values, identifier
length, and statements that make a half-applied migration impossible to re-run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pgsafe.analysis.statement import walk_dicts
from pgsafe.lint.context import Context
from pgsafe.lint.model import Hit, Stmt, alter_cmds, range_name, rule, strings, type_name
from pgsafe.lint.rules._tracking import Tracker, per_file, tracked
from pgsafe.lint.rules.types import file_column_type

# -- rewrites for maintenance --------------------------------------------------------------


@rule(
    "ban-vacuum-full",
    severity="error",
    hazards=("rewrites-table", "not-transactional"),
    lock="AccessExclusiveLock",
    summary="VACUUM FULL rewrites the whole table under ACCESS EXCLUSIVE.",
    why="no one can read or write the table until the copy is finished, which on a large table "
    "takes minutes to hours, and it needs free disk space for a second copy; VACUUM cannot run "
    "inside the migration's transaction either",
    fix="plain VACUUM (it does not block reads or writes) is almost always enough; to give "
    "space back to the operating system use pg_repack or pg_squeeze, outside migrations",
)
def ban_vacuum_full(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "VacuumStmt" or not stmt.node.get("is_vacuumcmd"):
        return
    options = {o.get("DefElem", {}).get("defname") for o in stmt.node.get("options", [])}
    if "full" not in options:
        return
    rels = [
        range_name(r.get("VacuumRelation", {}).get("relation")) for r in stmt.node.get("rels", [])
    ]
    if not rels:
        yield Hit("rewrites every table in the database, one at a time, each locked meanwhile")
        return
    existing = [r for r in rels if not ctx.is_new_table(r)]
    if existing:
        yield Hit(
            f"rewrites {', '.join(existing)} under ACCESS EXCLUSIVE, blocking reads and "
            "writes until the copy is done"
        )


@rule(
    "ban-cluster",
    severity="error",
    hazards=("rewrites-table",),
    lock="AccessExclusiveLock",
    summary="CLUSTER rewrites the whole table in index order under ACCESS EXCLUSIVE.",
    why="no one can read or write the table until the rewrite and the rebuild of every index "
    "finish, which on a large table takes minutes to hours",
    fix="use pg_repack (--order-by) outside migrations, which reorders the table without a "
    "long lock; or accept the order the table has",
)
def ban_cluster(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "ClusterStmt":
        return
    table = range_name(stmt.node.get("relation"))
    if not table:
        yield Hit("reclusters every table that was clustered before, each locked meanwhile")
    elif not ctx.is_new_table(table):
        yield Hit(
            f"rewrites {table} under ACCESS EXCLUSIVE, blocking reads and writes until it is done"
        )


# -- enums ---------------------------------------------------------------------------------


def _enum_type(stmt: Stmt) -> str:
    return ".".join(strings(stmt.node.get("typeName")))


@rule(
    "require-enum-value-ordering",
    severity="warning",
    hazards=("breaks-clients",),
    lock=None,
    summary="ALTER TYPE ... ADD VALUE without BEFORE or AFTER on an existing enum.",
    why="the new value sorts after every existing one, so queries that compare or order by "
    "the enum (status < 'approved', ORDER BY priority) silently treat it as the greatest "
    "value, which is rarely what a workflow state or a priority means",
    fix="say where the value belongs: ALTER TYPE status ADD VALUE 'pending_review' BEFORE "
    "'approved' (or AFTER 'submitted'); if the enum has no meaningful order, write "
    "AFTER '<last value>' to record that on purpose",
)
def require_enum_value_ordering(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.kind != "AlterEnumStmt" or not stmt.node.get("newVal") or stmt.node.get("oldVal"):
        return  # RENAME VALUE keeps the value's place
    if stmt.node.get("newValNeighbor"):
        return
    name = _enum_type(stmt)
    if name in ctx.created_types or name.rsplit(".", 1)[-1] in ctx.created_types:
        return  # nothing reads a type this file creates yet
    yield Hit(f"appends {stmt.node['newVal']!r} after every existing value of {name}")


class AddedEnumValues(Tracker):
    """(enum, value) of every value ALTER TYPE ... ADD VALUE added in this file, and the new
    names of those values renamed afterwards. RENAME VALUE of an older value adds nothing:
    PostgreSQL lets the renamed value be used at once."""

    def __init__(self) -> None:
        self.added: set[tuple[str, str]] = set()
        self.by_bare: dict[tuple[str, str], set[str]] = {}  # (bare enum, value) -> enums

    def feed(self, stmt: Stmt) -> None:
        n = stmt.node
        if stmt.kind != "AlterEnumStmt" or not n.get("newVal"):
            return
        enum = _enum_type(stmt)
        if not n.get("oldVal") or (enum, n["oldVal"]) in self.added:
            self.added.add((enum, n["newVal"]))
            self.by_bare.setdefault((enum.rsplit(".", 1)[-1], n["newVal"]), set()).add(enum)


def _const_text(node: Any) -> tuple[str, int | None] | None:
    """A string constant's text and location."""
    if not isinstance(node, dict):
        return None
    const = node.get("A_Const")
    if isinstance(const, dict) and "sval" in const:
        return str(const["sval"].get("sval", "")), const.get("location")
    return None


def _relation_names(node: Any, out: set[str]) -> None:
    """Every relation named in a parse tree: RangeVar nodes and RangeVar-shaped fields."""
    out.update(range_name(d) for d in walk_dicts(node) if "relname" in d)


def _enum_literals(stmt: Stmt, ctx: Context) -> list[tuple[str, str, int | None]]:
    """(type, text, location) of the string constants the statement gives an enum type: cast to
    a type by name ('x'::status, CAST('x' AS status)), or assigned to, compared with or made the
    default of a column whose type this file shows. Type names are bare, as written."""
    out: list[tuple[str, str, int | None]] = []
    root = {stmt.kind: stmt.node}
    relations: set[str] = set()
    _relation_names(root, relations)

    def column_type(column: str, table: str | None = None) -> str | None:
        for t in [table] if table else sorted(relations):
            found = file_column_type(ctx, t, column)
            if found is not None and not found.array:
                return found.name.rsplit(".", 1)[-1]
        return None

    def constant(node: Any, typ: str | None) -> None:
        found = _const_text(node)
        if found is not None and typ is not None:
            out.append((typ, found[0], found[1]))

    def ref_name(node: Any) -> str | None:
        ref = node.get("ColumnRef") if isinstance(node, dict) else None
        names = strings(ref.get("fields")) if ref else []
        return names[-1] if names else None

    for kind, n in stmt.tree():
        if kind == "TypeCast":
            constant(n.get("arg"), type_name(n.get("typeName")).rsplit(".", 1)[-1])
        elif kind == "ColumnDef":
            for c in n.get("constraints") or []:
                con = c.get("Constraint", {})
                if con.get("contype") == "CONSTR_DEFAULT":
                    constant(con.get("raw_expr"), type_name(n.get("typeName")))
        elif kind == "A_Expr":
            left, right = n.get("lexpr"), n.get("rexpr")
            for col_side, other in ((left, right), (right, left)):
                column = ref_name(col_side)
                if column is None:
                    continue
                items = other.get("List", {}).get("items", []) if isinstance(other, dict) else []
                for item in items or [other]:
                    constant(item, column_type(column))
        elif kind == "UpdateStmt" or (kind == "OnConflictClause" and n.get("targetList")):
            table = range_name(n.get("relation")) if kind == "UpdateStmt" else None
            for t in n.get("targetList") or []:
                target = t.get("ResTarget", {})
                if target.get("name") and not target.get("indirection"):
                    constant(target.get("val"), column_type(target["name"], table))
        elif kind == "InsertStmt":
            table = range_name(n.get("relation"))
            cols = [t.get("ResTarget", {}).get("name") for t in n.get("cols") or []]
            select = (n.get("selectStmt") or {}).get("SelectStmt", {})
            for row in select.get("valuesLists") or []:
                for column, value in zip(cols, row.get("List", {}).get("items", []), strict=False):
                    if column:
                        constant(value, column_type(column, table))
    if stmt.kind == "AlterTableStmt":
        table = range_name(stmt.node.get("relation"))
        for cmd in alter_cmds(stmt):
            if cmd.get("subtype") == "AT_ColumnDefault" and cmd.get("name"):
                constant(cmd.get("def"), column_type(cmd["name"], table))
    return out


@rule(
    "ban-enum-value-used-in-same-transaction",
    severity="error",
    hazards=(),
    lock=None,
    summary="An enum value added by ALTER TYPE ... ADD VALUE is used before the transaction "
    "that added it commits.",
    why="PostgreSQL refuses to use a new enum value until it is committed (ERROR: unsafe use "
    "of new value ... New enum values must be committed before they can be used), and pgsafe "
    "runs the whole file as one transaction, so the migration fails. pgsafe reports the value "
    "where it can tell it is the enum's: cast to the enum type ('x'::status, CAST('x' AS "
    "status)), or assigned to, compared with or made the default of a column this file shows "
    "to be of that type; the same text in a text column is no use of the enum",
    fix="add the value in one migration and use it (defaults, backfills, CHECK constraints, "
    "index predicates) in a later one: each migration commits on its own",
)
def ban_enum_value_used_in_same_transaction(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if not ctx.enum_values_added or ctx.autocommit_step(stmt) or stmt.raw.transaction_control:
        return
    added = tracked(ctx, AddedEnumValues).by_bare
    reported = set()
    for typ, text, location in _enum_literals(stmt, ctx):
        for enum in sorted(added.get((typ, text), ())):
            # ctx.enum_values_added: added in this transaction (the tracker: by ADD VALUE)
            if (enum, text) not in ctx.enum_values_added or (enum, text) in reported:
                continue
            reported.add((enum, text))
            yield Hit(
                f"uses {text!r}, added to {enum} earlier in this transaction: PostgreSQL "
                "rejects it until that transaction commits",
                location=location,
            )


# -- identifiers ---------------------------------------------------------------------------

NAMEDATALEN = 64  # PostgreSQL keeps identifiers to NAMEDATALEN - 1 = 63 bytes


def _defined_names(stmt: Stmt) -> list[tuple[str, str]]:
    """(what, name) of every object the statement creates or renames."""
    n, kind = stmt.node, stmt.kind
    out: list[tuple[str, str]] = []
    relation = {
        "CreateStmt": ("table", n.get("relation")),
        "CreateSeqStmt": ("sequence", n.get("sequence")),
        "ViewStmt": ("view", n.get("view")),
        "CompositeTypeStmt": ("type", n.get("typevar")),
        "CreateTableAsStmt": ("table", (n.get("into") or {}).get("rel")),
    }.get(kind)
    if relation and relation[1]:
        out.append((relation[0], relation[1].get("relname", "")))
    qualified = {
        "CreateEnumStmt": ("type", n.get("typeName")),
        "CreateDomainStmt": ("domain", n.get("domainname")),
        "CreateFunctionStmt": ("function", n.get("funcname")),
    }.get(kind)
    if qualified:
        out += [(qualified[0], s) for s in strings(qualified[1])[-1:]]
    single = {
        "IndexStmt": ("index", "idxname"),
        "RenameStmt": ("new name", "newname"),
        "CreateTrigStmt": ("trigger", "trigname"),
        "CreatePolicyStmt": ("policy", "policy_name"),
        "CreateSchemaStmt": ("schema", "schemaname"),
    }.get(kind)
    if single and n.get(single[1]):
        out.append((single[0], n[single[1]]))
    if kind == "ViewStmt":
        out += [("column", s) for s in strings(n.get("aliases"))]
    for k, node in stmt.nodes():
        if k == "ColumnDef" and node.get("colname"):
            out.append(("column", node["colname"]))
        elif k == "Constraint" and node.get("conname"):
            out.append(("constraint", node["conname"]))
        elif k == "IndexStmt" and node.get("idxname"):
            out.append(("index", node["idxname"]))
    return out


def _ident_byte(b: int) -> bool:
    return b >= 0x80 or chr(b).isalnum() or b in b"_$"


def _written_as(stmt: Stmt, name: str) -> tuple[str, int] | None:
    """The longer identifier in the source that the parser truncated to `name`, if any, as
    PostgreSQL reads it (a quoted identifier's "" is one "), with its byte offset in the file."""
    source = stmt.sql.encode()
    lowered = source.lower()  # unquoted identifiers are folded (ASCII only, like PostgreSQL)
    # A quoted identifier writes each " of the name as "".
    for hay, needle in ((source, name.replace('"', '""').encode()), (lowered, name.encode())):
        start = 0
        while (i := hay.find(needle, start)) >= 0:
            start = i + 1
            j = i + len(needle)
            quoted = i > 0 and source[i - 1 : i] == b'"'
            if not quoted and i > 0 and _ident_byte(source[i - 1]):
                continue  # the middle of another word
            if quoted:
                cut = source[j : j + 1] not in (b'"', b"") or source[j : j + 2] == b'""'
                end = j
                while end < len(source) and not (
                    source[end : end + 1] == b'"' and source[end : end + 2] != b'""'
                ):
                    end += 2 if source[end : end + 2] == b'""' else 1
            else:
                cut = j < len(source) and _ident_byte(source[j])
                end = j
                while end < len(source) and _ident_byte(source[end]):
                    end += 1
            if cut:
                written = source[i:end].replace(b'""', b'"') if quoted else source[i:end]
                return written.decode(errors="replace"), stmt.offset + i
    return None


@rule(
    "identifier-too-long",
    severity="warning",
    hazards=("breaks-clients",),
    lock=None,
    summary="An identifier longer than 63 bytes, which PostgreSQL silently truncates.",
    why="the object gets a different name than the one written, so code, ORMs and later "
    "migrations that use the full name do not find it, and two long names that share their "
    "first 63 bytes collide (the second CREATE fails with 'already exists')",
    fix="choose a name of at most 63 bytes (ASCII characters are one byte each; é is two)",
)
def identifier_too_long(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    seen = set()
    for what, name in _defined_names(stmt):
        # Truncation cuts at a character boundary: the kept name is 60 to 63 bytes long.
        if len(name.encode()) < NAMEDATALEN - 4 or name in seen:
            continue
        seen.add(name)
        found = _written_as(stmt, name)
        if found is not None:
            written, location = found
            yield Hit(
                f"{what} {written} is {len(written.encode())} bytes: PostgreSQL truncates it "
                f"to {name} ({len(name.encode())} bytes)",
                location=location,
            )


# -- re-runnable statements ----------------------------------------------------------------

_DROP_WORDS = {
    "OBJECT_TABLE": "TABLE",
    "OBJECT_INDEX": "INDEX",
    "OBJECT_VIEW": "VIEW",
    "OBJECT_MATVIEW": "MATERIALIZED VIEW",
    "OBJECT_SEQUENCE": "SEQUENCE",
    "OBJECT_TYPE": "TYPE",
    "OBJECT_DOMAIN": "DOMAIN",
    "OBJECT_SCHEMA": "SCHEMA",
    "OBJECT_FUNCTION": "FUNCTION",
    "OBJECT_PROCEDURE": "PROCEDURE",
    "OBJECT_TRIGGER": "TRIGGER",
    "OBJECT_POLICY": "POLICY",
    "OBJECT_EXTENSION": "EXTENSION",
    "OBJECT_FOREIGN_TABLE": "FOREIGN TABLE",
}


def _object_name(obj: dict[str, Any]) -> str:
    if "List" in obj:
        return ".".join(strings(obj["List"].get("items")))
    if "String" in obj:
        return str(obj["String"]["sval"])
    if "TypeName" in obj:
        return ".".join(strings(obj["TypeName"].get("names")))
    if "ObjectWithArgs" in obj:
        return ".".join(strings(obj["ObjectWithArgs"].get("objname")))
    return ""


def _created_here(ctx: Context, remove: str, name: str) -> bool:
    bare = name.rsplit(".", 1)[-1]
    if remove in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE"):
        return ctx.is_new_table(name)
    if remove == "OBJECT_INDEX":
        return name in ctx.created_indexes or bare in ctx.created_indexes
    if remove in ("OBJECT_TYPE", "OBJECT_DOMAIN"):
        return name in ctx.created_types or bare in ctx.created_types
    return False


def _fragile(stmt: Stmt, ctx: Context) -> list[str]:
    """What in the statement fails (or duplicates work) when it runs a second time."""
    n, kind = stmt.node, stmt.kind
    temporary = n.get("relation", {}).get("relpersistence") == "t"
    if kind == "CreateStmt" and not n.get("if_not_exists") and not temporary:
        return [f"CREATE TABLE {range_name(n.get('relation'))} without IF NOT EXISTS"]
    if kind == "CreateTableAsStmt" and not n.get("if_not_exists"):
        return [
            f"CREATE ... AS {range_name((n.get('into') or {}).get('rel'))} without IF NOT EXISTS"
        ]
    if kind == "IndexStmt" and not n.get("if_not_exists"):
        if n.get("idxname"):
            return [f"CREATE INDEX {n['idxname']} without IF NOT EXISTS"]
        return [
            "an unnamed CREATE INDEX (a re-run builds a duplicate index): name it and add "
            "IF NOT EXISTS"
        ]
    simple = {
        "CreateSeqStmt": "CREATE SEQUENCE",
        "CreateSchemaStmt": "CREATE SCHEMA",
        "CreateExtensionStmt": "CREATE EXTENSION",
    }
    if kind in simple and not n.get("if_not_exists"):
        return [f"{simple[kind]} without IF NOT EXISTS"]
    replace = {
        "ViewStmt": "CREATE VIEW",
        "CreateFunctionStmt": "CREATE FUNCTION",
        "CreateTrigStmt": "CREATE TRIGGER",
    }
    if kind in replace and not n.get("replace"):
        return [f"{replace[kind]} without OR REPLACE"]
    if kind in ("CreateEnumStmt", "CompositeTypeStmt", "CreateDomainStmt"):
        return [
            "CREATE TYPE/DOMAIN, which has no IF NOT EXISTS: guard it in a DO block that "
            "checks pg_type first"
        ]
    if kind == "DropStmt" and not n.get("missing_ok"):
        remove = n.get("removeType", "")
        names = [_object_name(o) for o in n.get("objects", [])]
        if names and all(_created_here(ctx, remove, x) for x in names):
            return []  # dropping what this file created: a re-run creates it again first
        word = _DROP_WORDS.get(remove, remove.removeprefix("OBJECT_"))
        return [f"DROP {word} {', '.join(names)} without IF EXISTS"]
    out = []
    if kind == "AlterTableStmt":
        table = range_name(n.get("relation"))
        dropped_here = set()
        for cmd in alter_cmds(stmt):
            sub = cmd.get("subtype")
            name = cmd.get("name", "")
            if sub == "AT_AddColumn" and not cmd.get("missing_ok"):
                col = (cmd.get("def") or {}).get("ColumnDef", {}).get("colname", "")
                out.append(f"ADD COLUMN {col} without IF NOT EXISTS")
            elif sub == "AT_DropColumn" and not cmd.get("missing_ok"):
                if not ctx.is_new_column(table, name):
                    out.append(f"DROP COLUMN {name} without IF EXISTS")
            elif sub == "AT_DropConstraint":
                if cmd.get("missing_ok"):
                    dropped_here.add(name)
                elif (table, name) not in ctx.created_constraints:
                    out.append(f"DROP CONSTRAINT {name} without IF EXISTS")
            elif sub == "AT_AddConstraint":
                con = (cmd.get("def") or {}).get("Constraint", {}).get("conname")
                if (
                    con
                    and con not in dropped_here
                    and ((table, con) not in ctx.dropped_constraints_if_exists)
                ):
                    out.append(
                        f"ADD CONSTRAINT {con} (it has no IF NOT EXISTS: run "
                        f"DROP CONSTRAINT IF EXISTS {con} first)"
                    )
    return out


_COMMITS = ("commit", "prepare transaction")


@dataclass
class _Commits:
    """Where the file's statements commit, computed once per file (prefer-robust-stmts asks
    for every fragile statement): by position in the file, the next autocommit step or COMMIT
    after each statement, whether any work (a statement that is not transaction control)
    follows each position, and where each object is dropped."""

    position: dict[int, int] = field(default_factory=dict)  # Stmt.index -> position
    next_step: list[int] = field(default_factory=list)  # position of the next autocommit step
    next_commit: list[int] = field(default_factory=list)  # ... and of the next COMMIT
    work_after: list[bool] = field(default_factory=list)
    drops: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # positions


def _commits(statements: list[Stmt]) -> _Commits:
    out = _Commits()
    count = len(statements)
    out.next_step = [count] * count
    out.next_commit = [count] * count
    out.work_after = [False] * count
    step = commit = count
    work = False
    for pos in range(count - 1, -1, -1):
        s = statements[pos]
        out.next_step[pos], out.next_commit[pos], out.work_after[pos] = step, commit, work
        if s.raw.non_transactional:
            step = pos
        if s.raw.transaction_control in _COMMITS:
            commit = pos
        if not s.raw.transaction_control:
            work = True
    for pos, s in enumerate(statements):
        out.position[s.index] = pos
        if s.kind == "DropStmt":
            for o in s.node.get("objects", []):
                key = (s.node.get("removeType", ""), _object_name(o))
                out.drops.setdefault(key, []).append(pos)
    return out


def _committed_with(stmt: Stmt, ctx: Context) -> tuple[_Commits, int, int] | None:
    """When this statement is committed before a later step of the same migration runs (it is
    an autocommit step with work after it, or an autocommit step or a COMMIT comes later): the
    file's commit map and the positions (start, end) such that the statements strictly between
    them commit together with it; None when nothing commits early. A failure in the later step
    leaves this one applied, and the re-run meets it again."""
    commits = per_file(ctx, _commits)
    if commits is None or stmt.index not in commits.position:
        return None
    pos = commits.position[stmt.index]
    if stmt.raw.non_transactional:
        return (commits, pos, pos + 1) if commits.work_after[pos] else None
    step, commit = commits.next_step[pos], commits.next_commit[pos]
    if step < commit:
        return commits, pos, step  # the autocommit step commits what came before it
    if commit < len(commits.next_step) and commits.work_after[commit]:
        return commits, pos, commit
    return None  # all of it commits at the end, at once


def _created(stmt: Stmt) -> tuple[str, str] | None:
    """(DROP object type, name) of what a CREATE statement makes."""
    n = stmt.node
    if stmt.kind == "CreateStmt":
        return "OBJECT_TABLE", range_name(n.get("relation"))
    if stmt.kind == "IndexStmt" and n.get("idxname"):
        return "OBJECT_INDEX", n["idxname"]
    if stmt.kind in ("CreateEnumStmt", "CreateDomainStmt"):
        names = strings(n.get("typeName") or n.get("domainname"))
        return ("OBJECT_DOMAIN" if stmt.kind == "CreateDomainStmt" else "OBJECT_TYPE"), ".".join(
            names
        )
    return None


def _dropped_in(commits: _Commits, start: int, end: int, what: tuple[str, str]) -> bool:
    """Whether a statement strictly between positions start and end drops `what`."""
    return any(start < pos < end for pos in commits.drops.get(what, []))


@rule(
    "prefer-robust-stmts",
    severity="warning",
    hazards=("not-idempotent",),
    lock=None,
    summary="CREATE without IF NOT EXISTS or DROP without IF EXISTS in a migration that "
    "commits part of its work before the rest runs.",
    why="pgsafe runs a migration as one transaction, so a failure normally leaves nothing "
    "behind; but an autocommit step (CREATE INDEX CONCURRENTLY, VACUUM, ...) commits what came "
    "before it, and itself, separately. If a later part fails, the re-run meets the objects "
    "already created or dropped and fails on them",
    fix="use CREATE ... IF NOT EXISTS, CREATE OR REPLACE, DROP ... IF EXISTS, ADD COLUMN IF NOT "
    "EXISTS and DROP CONSTRAINT IF EXISTS before ADD CONSTRAINT; or move the autocommit step "
    "into a migration of its own so the rest is one transaction again",
)
def prefer_robust_stmts(stmt: Stmt, ctx: Context) -> Iterator[Hit]:
    if stmt.raw.transaction_control:
        return
    problems = _fragile(stmt, ctx)
    if not problems:
        return
    together = _committed_with(stmt, ctx)
    if together is None:
        return
    created = _created(stmt)
    if created is not None and _dropped_in(*together, created):
        return  # a scratch object, gone again by the time this part commits
    for problem in problems:
        yield Hit(
            f"{problem}: this is committed before a later step of the migration runs, so "
            "a re-run after that step fails here"
        )
