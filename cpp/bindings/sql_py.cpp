// pgsafe._core.split_statements: libpg_query's view of a migration file.
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "pgsafe/sql.hpp"

namespace pyb = pybind11;

namespace pgsafe::py {

void register_sql(pyb::module_& m) {
  pyb::class_<Statement>(m, "Statement", "One statement of a migration file, as parsed.")
      .def_readonly("sql", &Statement::sql)
      .def_readonly("offset", &Statement::offset)
      .def_readonly("line", &Statement::line)
      .def_readonly("column", &Statement::column)
      .def_readonly("end_line", &Statement::end_line)
      .def_readonly("kind", &Statement::kind)
      .def_readonly("transaction_control", &Statement::transaction_control)
      .def_readwrite("non_transactional", &Statement::non_transactional)
      .def_readwrite("reason", &Statement::reason)
      .def_readonly("timeout_class", &Statement::timeout_class)
      .def_readonly("index_name", &Statement::index_name)
      .def_readonly("index_schema", &Statement::index_schema)
      .def_readonly("index_table", &Statement::index_table)
      .def_readonly("parse_tree_json", &Statement::parse_tree)
      .def("__repr__", [](const Statement& s) {
        return "<Statement " + s.kind + " at " + std::to_string(s.line) + ":" +
               std::to_string(s.column) + ">";
      });
  m.def("split_statements", &split_statements, pyb::arg("text"),
        pyb::call_guard<pyb::gil_scoped_release>(),
        "Split SQL text into statements with libpg_query; raises pgsafe.errors.ParseError.");
  m.def("line_column", &line_column, pyb::arg("text"), pyb::arg("byte_offset"));
  pyb::class_<Comment>(m, "Comment", "A comment as the PostgreSQL scanner sees it.")
      .def_readonly("text", &Comment::text)
      .def_readonly("offset", &Comment::offset)
      .def_readonly("line", &Comment::line)
      .def_readonly("column", &Comment::column);
  m.def("scan_comments", &scan_comments, pyb::arg("text"),
        pyb::call_guard<pyb::gil_scoped_release>(),
        "The comments of SQL text (none from inside strings or dollar-quoted bodies).");
}

}  // namespace pgsafe::py
