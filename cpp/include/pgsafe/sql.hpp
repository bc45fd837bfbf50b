// Migration files split into statements by libpg_query (the real PostgreSQL parser), with
// positions and the facts the executor needs: transaction control, statements that cannot run
// in a transaction block, and the timeout class of each statement.
#pragma once

#include <string>
#include <vector>

namespace pgsafe {

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
  // "index" (index builds), "validate" (VALIDATE CONSTRAINT), "maintenance" (VACUUM, CLUSTER),
  // "ddl", "dml", "transaction", "other": the executor picks timeouts by this.
  std::string timeout_class;
  // For CREATE INDEX [CONCURRENTLY]: the index name (may be empty) and the table it is on.
  std::string index_name;
  std::string index_schema;
  std::string index_table;
  std::string parse_tree;  // this statement's parse tree as JSON
};

// Throws ParseError with the parser's message and the position of the error.
std::vector<Statement> split_statements(const std::string& text);

// A `--` or `/* */` comment as the PostgreSQL scanner sees it (never one inside a string or a
// dollar-quoted body): where suppressions and annotations live.
struct Comment {
  std::string text;
  int offset = 0;  // 0-based byte offset
  int line = 0;
  int column = 0;
};
std::vector<Comment> scan_comments(const std::string& text);

// 1-based line and character column of a 0-based byte offset.
std::pair<int, int> line_column(const std::string& text, int byte_offset);

}  // namespace pgsafe
