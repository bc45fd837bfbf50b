"""What the linter knows at each statement about the migration so far: the objects it created
(empty and invisible to other sessions, so changing them blocks nobody), the timeouts it set,
the locks its open transaction holds. Rules read it; only the engine updates it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pgsafe.lint.locks import Prediction, predict
from pgsafe.lint.model import LOCKS, Stmt, alter_cmds, range_name, strings, stronger_lock, walk

TIMEOUTS = ("lock_timeout", "statement_timeout")


def norm_name(name: str) -> str:
    """'public.x' and 'x' name the same table on the default search_path; 'app.x' does not
    match a bare 'x' (erring towards reporting)."""
    return name[7:] if name.startswith("public.") else name


def _timeout_value_enabled(node: dict[str, Any]) -> bool:
    """False for a value that turns the timeout off (0, '0', '0s', '0ms'), else True."""
    const = node.get("A_Const", {})
    if "ival" in const:
        return bool(const["ival"].get("ival", 0))
    text = const.get("sval", {}).get("sval") or const.get("fval", {}).get("fval")
    if text is None:
        return True
    digits = ""
    for ch in text.strip():
        if not (ch.isdigit() or ch == "."):
            break
        digits += ch
    try:
        return float(digits) != 0
    except ValueError:
        return True


@dataclass
class Context:
    pg_version: int = 15
    file: str = "<stdin>"
    # Every statement of the file, when the engine supplies it: lets rules look ahead (is there
    # a COMMIT later, does an autocommit step follow?). None when unknown.
    file_statements: list[Stmt] | None = None
    # Constraints earlier migrations of the same directory added, (bare table, name) -> the
    # Constraint fields: a recipe split over several migrations is recognised (lint_paths).
    earlier_constraints: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    created_tables: set[str] = field(default_factory=set)
    created_columns: set[tuple[str, str]] = field(default_factory=set)
    created_indexes: set[str] = field(default_factory=set)
    created_types: set[str] = field(default_factory=set)
    created_constraints: set[tuple[str, str]] = field(default_factory=set)
    # (table, constraint) dropped with IF EXISTS: a later ADD CONSTRAINT of it is re-runnable.
    dropped_constraints_if_exists: set[tuple[str, str]] = field(default_factory=set)
    # Whether a non-zero lock_timeout / statement_timeout is in force (SET, SET LOCAL or
    # set_config; RESET, DEFAULT and 0 turn it off, as the server default is 0).
    lock_timeout_set: bool = False
    statement_timeout_set: bool = False
    # Index of the first statement that took a lock blocking reads or writes on an existing
    # table while a timeout was missing (require-timeout-settings reports only that one).
    unguarded_lock_at: int | None = None
    explicit_transaction: bool = False  # an explicit BEGIN is open
    transaction_began_at: int | None = None  # index of that BEGIN
    # Per transaction (pgsafe runs a whole file as one, unless the file has its own BEGIN/COMMIT,
    # and commits before and after each autocommit step such as CREATE INDEX CONCURRENTLY).
    access_exclusive: dict[str, int] = field(default_factory=dict)  # table -> statement index
    held_locks: dict[str, str] = field(default_factory=dict)  # existing table -> strongest lock
    not_valid_constraints: set[tuple[str, str]] = field(default_factory=set)
    enum_values_added: set[tuple[str, str]] = field(default_factory=set)
    altered_tables: dict[str, list[int]] = field(default_factory=dict)
    statements: list[Stmt] = field(default_factory=list)
    # The lock prediction of the statement being checked: rules ask for it again and again,
    # and nothing it reads changes until note() records the statement.
    _predicted: tuple[Stmt, Prediction] | None = field(default=None, repr=False)
    _session_timeouts: dict[str, bool] = field(default_factory=dict, repr=False)
    _local_timeouts: dict[str, bool] = field(default_factory=dict, repr=False)

    # -- questions rules ask -------------------------------------------------------------

    def is_new_table(self, rangevar_or_name: dict[str, Any] | str | None) -> bool:
        """True for a table this migration created: empty and invisible to others."""
        name = (
            rangevar_or_name if isinstance(rangevar_or_name, str) else range_name(rangevar_or_name)
        )
        return bool(name) and norm_name(name) in self.created_tables

    def is_new_column(self, table: str, column: str) -> bool:
        return self.is_new_table(table) or (norm_name(table), column) in self.created_columns

    def is_new_relation(self, name: str) -> bool:
        """A table or index this file created."""
        return self.is_new_table(name) or norm_name(name) in self.created_indexes

    def prediction(self, stmt: Stmt) -> Prediction:
        """pgsafe.lint.locks.predict(stmt, self), taken once per statement."""
        cached = self._predicted
        if cached is None or cached[0] is not stmt:
            cached = self._predicted = (stmt, predict(stmt, self))
        return cached[1]

    def existing_locks(self, stmt: Stmt) -> dict[str, str]:
        """The locks the statement takes on relations that existed before this file: relation
        -> strongest mode (pgsafe.lint.locks predicts them; for DROP INDEX the key is the index)."""
        out: dict[str, str] = {}
        for relation, mode in self.prediction(stmt).locks:
            if not self.is_new_relation(relation):
                out[relation] = stronger_lock(out.get(relation), mode) or mode
        return out

    @property
    def timeouts_set(self) -> bool:
        return self.lock_timeout_set and self.statement_timeout_set

    def autocommit_step(self, stmt: Stmt) -> bool:
        """True for a statement pgsafe runs on its own outside any transaction (CREATE INDEX
        CONCURRENTLY, VACUUM, ...): it shares no transaction with the statements before it."""
        return stmt.raw.non_transactional and not self.explicit_transaction

    def later_statements(self, stmt: Stmt) -> list[Stmt] | None:
        """The statements after `stmt` in the file, or None when the engine did not say."""
        if self.file_statements is None:
            return None
        return self.file_statements[stmt.index + 1 :]

    # -- updates after each statement ----------------------------------------------------

    def end_transaction(self) -> None:
        self.access_exclusive.clear()
        self.held_locks.clear()
        self.not_valid_constraints.clear()
        self.enum_values_added.clear()
        self.altered_tables.clear()
        if self._local_timeouts:
            self._local_timeouts.clear()  # SET LOCAL lasts until the transaction ends
            self._refresh_timeouts()

    def _refresh_timeouts(self) -> None:
        def on(name: str) -> bool:
            return self._local_timeouts.get(name, self._session_timeouts.get(name, False))

        self.lock_timeout_set = on("lock_timeout")
        self.statement_timeout_set = on("statement_timeout")

    def _set_timeout(self, name: str, enabled: bool, local: bool) -> None:
        if local:
            self._local_timeouts[name] = enabled
        else:
            self._session_timeouts[name] = enabled
            self._local_timeouts.pop(name, None)  # a plain SET overrides an earlier SET LOCAL
        self._refresh_timeouts()

    def _note_settings(self, stmt: Stmt) -> None:
        n = stmt.node
        if stmt.kind == "VariableSetStmt":
            how = n.get("kind")
            if how == "VAR_RESET_ALL":
                for name in TIMEOUTS:
                    self._set_timeout(name, False, False)
            elif n.get("name") in TIMEOUTS:
                enabled = how == "VAR_SET_VALUE" and all(
                    _timeout_value_enabled(a) for a in n.get("args", [])
                )
                self._set_timeout(n["name"], enabled, bool(n.get("is_local")))
            return
        # SELECT set_config('lock_timeout', '5s', is_local)
        for kind, call in stmt.nodes():
            if kind != "FuncCall" or strings(call.get("funcname"))[-1:] != ["set_config"]:
                continue
            args = call.get("args", [])
            setting = (args[0].get("A_Const", {}).get("sval") or {}).get("sval") if args else None
            if setting not in TIMEOUTS or len(args) < 2:
                continue
            local = (
                bool(args[2].get("A_Const", {}).get("boolval", {}).get("boolval"))
                if len(args) > 2
                else False
            )
            self._set_timeout(str(setting), _timeout_value_enabled(args[1]), local)

    def _note_locks(self, stmt: Stmt) -> None:
        locks = {norm_name(t): m for t, m in self.existing_locks(stmt).items()}
        for table, mode in locks.items():
            self.held_locks[table] = stronger_lock(self.held_locks.get(table), mode) or mode
            if mode == "AccessExclusiveLock":
                self.access_exclusive.setdefault(table, stmt.index)
        blocking = any(LOCKS[m] & {"reads", "writes"} for m in locks.values())
        if blocking and not self.timeouts_set and self.unguarded_lock_at is None:
            self.unguarded_lock_at = stmt.index

    def note(self, stmt: Stmt) -> None:
        n = stmt.node
        kind = stmt.kind
        autocommit = self.autocommit_step(stmt)
        if autocommit:
            self.end_transaction()  # pgsafe commits before and after an autocommit step
        # Locks first: they are on what existed before this statement (CREATE TABLE x does not
        # lock an existing x).
        if not stmt.raw.transaction_control:
            self._note_locks(stmt)
        if kind == "CreateStmt":
            table = norm_name(range_name(n.get("relation")))
            self.created_tables.add(table)
            for k, con in walk(n.get("tableElts")):
                if k == "Constraint" and con.get("conname"):
                    self.created_constraints.add((table, con["conname"]))
        elif kind == "CreateTableAsStmt":
            self.created_tables.add(norm_name(range_name((n.get("into") or {}).get("rel"))))
        elif kind == "IndexStmt" and n.get("idxname"):
            schema = (n.get("relation") or {}).get("schemaname")
            self.created_indexes.add(
                norm_name(f"{schema}.{n['idxname']}" if schema else n["idxname"])
            )
        elif kind == "RenameStmt" and n.get("renameType") == "OBJECT_TABLE":
            # A table this file created stays new under its new name.
            old = norm_name(range_name(n.get("relation")))
            if old in self.created_tables and n.get("newname"):
                schema = (n.get("relation") or {}).get("schemaname")
                self.created_tables.add(
                    norm_name(f"{schema}.{n['newname']}" if schema else n["newname"])
                )
        elif kind in ("CreateEnumStmt", "CompositeTypeStmt", "CreateDomainStmt"):
            names = strings(n.get("typeName") or n.get("domainname"))
            if not names and n.get("typevar"):
                names = [range_name(n["typevar"])]
            if names:
                self.created_types.add(".".join(names))
        elif kind == "AlterEnumStmt" and n.get("newVal") and not n.get("oldVal"):
            self.enum_values_added.add((".".join(strings(n.get("typeName"))), n["newVal"]))
        elif kind == "TransactionStmt":
            tx = stmt.raw.transaction_control
            if tx in ("begin", "start transaction"):
                self.end_transaction()
                self.explicit_transaction = True
                self.transaction_began_at = stmt.index
            elif tx in ("commit", "rollback", "prepare transaction"):
                self.explicit_transaction = False
                self.transaction_began_at = None
                self.end_transaction()
        elif kind == "AlterTableStmt":
            table = norm_name(range_name(n.get("relation")))
            self.altered_tables.setdefault(table, []).append(stmt.index)
            for cmd in alter_cmds(stmt):
                sub = cmd.get("subtype")
                if sub == "AT_AddColumn":
                    col = (cmd.get("def") or {}).get("ColumnDef", {}).get("colname")
                    if col:
                        self.created_columns.add((table, col))
                if sub == "AT_AddConstraint":
                    con = (cmd.get("def") or {}).get("Constraint", {})
                    if con.get("conname"):
                        self.created_constraints.add((table, con["conname"]))
                    if con.get("skip_validation") and con.get("conname"):
                        self.not_valid_constraints.add((table, con["conname"]))
                if sub == "AT_DropConstraint" and cmd.get("missing_ok") and cmd.get("name"):
                    self.dropped_constraints_if_exists.add((table, cmd["name"]))
        self._predicted = None  # what it read (the tables created) may have changed
        self._note_settings(stmt)
        if autocommit or self._step_follows(stmt):
            self.end_transaction()
        self.statements.append(stmt)

    def _step_follows(self, stmt: Stmt) -> bool:
        """Whether a `-- pgsafe: step` marker stands after `stmt`: pgsafe commits there (not
        inside an explicit BEGIN ... COMMIT, which other runners keep as one transaction)."""
        later = self.file_statements
        if later is None or self.explicit_transaction or stmt.index + 1 >= len(later):
            return False
        return later[stmt.index + 1].raw.new_step
