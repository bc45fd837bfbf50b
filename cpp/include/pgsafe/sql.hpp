// One statement of a migration as the executor and the tracer run it: a plain struct with the
// facts Python decoded from PostgreSQL's parse tree (python/pgsafe/analysis/statement.py owns
// the parser: libpg_query of the newest grammar through pglast). The core parses no SQL.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace pgsafe {

// One statement of a batch (a run of plain data statements the executor sends as one query):
// its byte range in the batch's `sql` (without the semicolon) and its place in the file.
struct StatementPart {
  int start = 0;
  int end = 0;
  int line = 0;
  int column = 0;
};

struct Statement {
  std::string sql;  // from its first token to its end, without the terminating semicolon
  int offset = 0;   // 0-based byte offset of the first token in the file
  int line = 0;     // 1-based
  int column = 0;   // 1-based, in characters
  int end_line = 0;
  std::string kind;  // top-level parse node, e.g. "CreateStmt", "IndexStmt"
  // BEGIN/START/COMMIT/END/ROLLBACK/SAVEPOINT/RELEASE/PREPARE TRANSACTION...: lowercase word.
  std::string transaction_control;
  bool non_transactional = false;  // cannot run inside a transaction block
  std::string reason;              // why it is non-transactional, e.g. "CREATE INDEX CONCURRENTLY"
  // A "-- pgsafe: step" comment stands before it: the transaction of the statements before it
  // commits, and it starts a new one (for recipes such as ADD ... NOT VALID, then VALIDATE).
  bool new_step = false;
  // "index" (index builds), "validate" (VALIDATE CONSTRAINT), "maintenance" (VACUUM, CLUSTER),
  // "ddl", "dml", "transaction", "other": the executor picks timeouts by this.
  std::string timeout_class = "ddl";
  // For CREATE INDEX [CONCURRENTLY]: the index name (may be empty) and the table it is on.
  std::string index_name;
  std::string index_schema;
  std::string index_table;
  // SET / RESET of a setting: SET LOCAL (ends with the transaction) or for the session, and
  // whether the setting is lock_timeout or statement_timeout (the user's own bound, which the
  // executor then leaves alone).
  bool sets_local = false;
  bool sets_lock_timeout = false;
  bool sets_statement_timeout = false;
  // A batch: the statements it joins, in order (empty for a single statement).
  std::vector<StatementPart> parts;
};

// 1-based line and character column of a 0-based byte offset.
std::pair<int, int> line_column(const std::string& text, int byte_offset);

}  // namespace pgsafe
