// pgsafe._core.Statement: the plain struct the executor and the tracer run, built in Python from
// pgsafe.analysis.statement (which owns the parser).
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "pgsafe/sql.hpp"

namespace pyb = pybind11;

namespace pgsafe::py {

void register_sql(pyb::module_& m) {
  pyb::class_<StatementPart>(m, "StatementPart",
                             "One statement of a batch: its byte range in the batch's sql and "
                             "its line and column in the file.")
      .def(pyb::init([](int start, int end, int line, int column) {
             return StatementPart{start, end, line, column};
           }),
           pyb::arg("start"), pyb::arg("end"), pyb::arg("line"), pyb::arg("column"))
      .def_readonly("start", &StatementPart::start)
      .def_readonly("end", &StatementPart::end)
      .def_readonly("line", &StatementPart::line)
      .def_readonly("column", &StatementPart::column);
  pyb::class_<Statement>(m, "Statement",
                         "One statement as the core runs it (built by "
                         "pgsafe.analysis.statement.Statement.to_core()).")
      .def(pyb::init<>())
      .def_readwrite("sql", &Statement::sql)
      .def_readwrite("offset", &Statement::offset)
      .def_readwrite("line", &Statement::line)
      .def_readwrite("column", &Statement::column)
      .def_readwrite("end_line", &Statement::end_line)
      .def_readwrite("kind", &Statement::kind)
      .def_readwrite("transaction_control", &Statement::transaction_control)
      .def_readwrite("non_transactional", &Statement::non_transactional)
      .def_readwrite("reason", &Statement::reason)
      .def_readwrite("new_step", &Statement::new_step)
      .def_readwrite("timeout_class", &Statement::timeout_class)
      .def_readwrite("index_name", &Statement::index_name)
      .def_readwrite("index_schema", &Statement::index_schema)
      .def_readwrite("index_table", &Statement::index_table)
      .def_readwrite("sets_local", &Statement::sets_local)
      .def_readwrite("sets_lock_timeout", &Statement::sets_lock_timeout)
      .def_readwrite("sets_statement_timeout", &Statement::sets_statement_timeout)
      .def_readwrite("parts", &Statement::parts)
      .def("__repr__", [](const Statement& s) {
        return "<_core.Statement " + s.kind + " at " + std::to_string(s.line) + ":" +
               std::to_string(s.column) + ">";
      });
  m.def("line_column", &line_column, pyb::arg("text"), pyb::arg("byte_offset"));
}

}  // namespace pgsafe::py
