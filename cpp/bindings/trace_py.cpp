// pgsafe._core lock tracing: plain records, the trace runs without the GIL.
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "pgsafe/conn.hpp"
#include "pgsafe/errors.hpp"
#include "pgsafe/lock_modes.hpp"
#include "pgsafe/trace.hpp"

namespace pyb = pybind11;

namespace pgsafe::py {

void register_trace(pyb::module_& m) {
  pyb::enum_<LockMode> modes(m, "LockMode",
                             "A lock mode, named as pg_locks names it: the eight table lock modes "
                             "weakest first, then SIReadLock (a SERIALIZABLE predicate lock).");
  for (LockMode mode : all_lock_modes()) modes.value(lock_mode_name(mode).data(), mode);

  pyb::class_<ObservedLock>(m, "ObservedLock", "A relation lock seen in pg_locks.")
      .def_readonly("relation", &ObservedLock::relation)
      .def_readonly("relkind", &ObservedLock::relkind)
      .def_readonly("mode", &ObservedLock::mode)
      .def_readonly("granted", &ObservedLock::granted)
      .def_readonly("blocks_select", &ObservedLock::blocks_select)
      .def_readonly("blocks_writes", &ObservedLock::blocks_writes)
      .def_readonly("blocks_for_update", &ObservedLock::blocks_for_update)
      .def("__repr__", [](const ObservedLock& l) {
        return "<ObservedLock " + std::string(lock_mode_name(l.mode)) + " on " + l.relation + ">";
      });

  pyb::class_<ColumnChange>(m, "ColumnChange")
      .def_readonly("relation", &ColumnChange::relation)
      .def_readonly("column", &ColumnChange::column)
      .def_readonly("what", &ColumnChange::what)
      .def_readonly("before", &ColumnChange::before)
      .def_readonly("after", &ColumnChange::after);

  pyb::class_<ConstraintChange>(m, "ConstraintChange")
      .def_readonly("relation", &ConstraintChange::relation)
      .def_readonly("name", &ConstraintChange::name)
      .def_readonly("type", &ConstraintChange::type)
      .def_readonly("what", &ConstraintChange::what)
      .def_readonly("definition", &ConstraintChange::definition)
      .def_readonly("validated", &ConstraintChange::validated);

  pyb::class_<StatementTrace>(m, "StatementTrace")
      .def_readonly("index", &StatementTrace::index)
      .def_readonly("line", &StatementTrace::line)
      .def_readonly("sql", &StatementTrace::sql)
      .def_readonly("non_transactional", &StatementTrace::non_transactional)
      .def_readonly("sampled", &StatementTrace::sampled)
      .def_readonly("samples", &StatementTrace::samples)
      .def_readonly("duration_s", &StatementTrace::duration_s)
      .def_readonly("lock_hold_s", &StatementTrace::lock_hold_s)
      .def_readonly("locks", &StatementTrace::locks)
      .def_readonly("held", &StatementTrace::held)
      .def_readonly("rewrites", &StatementTrace::rewrites)
      .def_readonly("index_rebuilds", &StatementTrace::index_rebuilds)
      .def_readonly("column_changes", &StatementTrace::column_changes)
      .def_readonly("constraint_changes", &StatementTrace::constraint_changes)
      .def_readonly("error", &StatementTrace::error)
      .def_readonly("sqlstate", &StatementTrace::sqlstate);

  pyb::class_<UnindexedForeignKey>(m, "UnindexedForeignKey")
      .def_readonly("relation", &UnindexedForeignKey::relation)
      .def_readonly("constraint_name", &UnindexedForeignKey::constraint_name)
      .def_readonly("columns", &UnindexedForeignKey::columns)
      .def_readonly("references", &UnindexedForeignKey::references);

  pyb::class_<MigrationTrace>(m, "MigrationTrace")
      .def_readonly("statements", &MigrationTrace::statements)
      .def_readonly("unindexed_foreign_keys", &MigrationTrace::unindexed_foreign_keys)
      .def_readonly("duration_s", &MigrationTrace::duration_s)
      .def_readonly("committed", &MigrationTrace::committed)
      .def_readonly("error", &MigrationTrace::error);

  pyb::class_<TraceOptions>(m, "TraceOptions")
      .def(pyb::init<>())
      .def_readwrite("application_name", &TraceOptions::application_name)
      .def_readwrite("lock_timeout_ms", &TraceOptions::lock_timeout_ms)
      .def_readwrite("statement_timeout_ms", &TraceOptions::statement_timeout_ms)
      .def_readwrite("gate_max_s", &TraceOptions::gate_max_s)
      .def_readwrite("commit", &TraceOptions::commit);

  m.def("lock_mode_rank", &lock_mode_rank, pyb::arg("mode"),
        "Strength among the table lock modes, 1..8 weakest first; 0 for SIReadLock.");
  m.def("lock_conflicts", &lock_conflicts, pyb::arg("held"), pyb::arg("requested"),
        "Whether holding `held` blocks a request for `requested` (lock.c's conflict matrix).");
  m.def(
      "trace_migration",
      [](const std::string& dsn, const std::vector<Statement>& statements,
         const std::vector<std::vector<std::string>>& gate_relations, const TraceOptions& options) {
        MigrationTrace out = trace_migration(dsn, statements, gate_relations, options);
        if (consume_pending_interrupt()) throw Interrupted();
        return out;
      },
      pyb::arg("dsn"), pyb::arg("statements"),
      pyb::arg("gate_relations") = std::vector<std::vector<std::string>>{},
      pyb::arg("options") = TraceOptions{}, pyb::call_guard<pyb::gil_scoped_release>(),
      "Run the statements on a throwaway database and observe their locks and catalog changes.");
}

}  // namespace pgsafe::py
