// Statement splitting with libpg_query: the parser finds statement boundaries (so dollar-quoted
// bodies, comments and E'' strings cannot confuse it) and the scanner finds where each
// statement's first real token starts, for line and column.
#include "pgsafe/sql.hpp"

extern "C" {
#include <pg_query.h>
}

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <utility>

#include "pgsafe/errors.hpp"

namespace pgsafe {

namespace {

using nlohmann::json;

struct Token {
  int start;
  int end;
  bool comment;
};

constexpr int kSqlComment = 275;  // pg_query.proto Token.SQL_COMMENT
constexpr int kCComment = 276;    // pg_query.proto Token.C_COMMENT

// A minimal reader for the two messages of pg_query.proto we need (ScanResult, ScanToken):
// libpg_query ships protobuf-c only as private symbols, so we read the wire format directly.
class ProtoReader {
 public:
  ProtoReader(const uint8_t* data, size_t len) : p_(data), end_(data + len) {}
  bool done() const { return p_ >= end_; }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; p_ < end_ && shift < 64; shift += 7) {
      uint8_t b = *p_++;
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    throw Error("libpg_query: malformed scan result");
  }
  // Returns the field number and wire type of the next key.
  std::pair<uint32_t, uint32_t> key() {
    uint64_t k = varint();
    return {static_cast<uint32_t>(k >> 3), static_cast<uint32_t>(k & 7)};
  }
  ProtoReader sub() {
    uint64_t len = varint();
    if (len > static_cast<uint64_t>(end_ - p_)) throw Error("libpg_query: malformed scan result");
    ProtoReader r(p_, len);
    p_ += len;
    return r;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0:
        varint();
        break;
      case 1:
        p_ += 8;
        break;
      case 2:
        sub();
        break;
      case 5:
        p_ += 4;
        break;
      default:
        throw Error("libpg_query: malformed scan result");
    }
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

std::vector<Token> scan_tokens(const std::string& text) {
  PgQueryScanResult res = pg_query_scan(text.c_str());
  struct Free {
    PgQueryScanResult* r;
    ~Free() { pg_query_free_scan_result(*r); }
  } guard{&res};
  std::vector<Token> tokens;
  if (res.error) return tokens;  // the parser reports the error with its position
  ProtoReader top(reinterpret_cast<const uint8_t*>(res.pbuf.data), res.pbuf.len);
  while (!top.done()) {
    auto [field, wire] = top.key();
    if (field != 2 || wire != 2) {
      top.skip(wire);
      continue;
    }
    ProtoReader tok = top.sub();
    Token t{0, 0, false};
    while (!tok.done()) {
      auto [f, w] = tok.key();
      if (w != 0) {
        tok.skip(w);
        continue;
      }
      uint64_t v = tok.varint();
      if (f == 1) t.start = static_cast<int>(v);
      if (f == 2) t.end = static_cast<int>(v);
      if (f == 4) t.comment = v == kSqlComment || v == kCComment;
    }
    tokens.push_back(t);
  }
  return tokens;
}

// Byte offset of the 1-based character position `pos`.
int char_to_byte(const std::string& text, int pos) {
  int chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      if (++chars == pos) return static_cast<int>(i);
    }
  }
  return static_cast<int>(text.size());
}

bool has_concurrently_option(const json& params) {
  if (!params.is_array()) return false;
  return std::any_of(params.begin(), params.end(), [](const json& p) {
    return p.contains("DefElem") && p["DefElem"].value("defname", "") == "concurrently";
  });
}

void classify(Statement& s, const json& node) {
  const std::string& k = s.kind;
  const json& n = node.begin().value();
  s.timeout_class = "ddl";
  if (k == "TransactionStmt") {
    static const std::pair<const char*, const char*> kKinds[] = {
        {"TRANS_STMT_BEGIN", "begin"},
        {"TRANS_STMT_START", "start transaction"},
        {"TRANS_STMT_COMMIT", "commit"},
        {"TRANS_STMT_ROLLBACK", "rollback"},
        {"TRANS_STMT_SAVEPOINT", "savepoint"},
        {"TRANS_STMT_RELEASE", "release"},
        {"TRANS_STMT_ROLLBACK_TO", "rollback to savepoint"},
        {"TRANS_STMT_PREPARE", "prepare transaction"},
        {"TRANS_STMT_COMMIT_PREPARED", "commit prepared"},
        {"TRANS_STMT_ROLLBACK_PREPARED", "rollback prepared"},
    };
    std::string kind = n.value("kind", "");
    s.transaction_control = "transaction";
    for (const auto& [name, word] : kKinds) {
      if (kind == name) s.transaction_control = word;
    }
    s.timeout_class = "transaction";
    return;
  }
  if (k == "IndexStmt") {
    s.timeout_class = "index";
    s.index_name = n.value("idxname", "");
    if (n.contains("relation")) {
      const json& rel = n["relation"];
      s.index_schema = rel.value("schemaname", "");
      s.index_table = rel.value("relname", "");
    }
    if (n.value("concurrent", false)) {
      s.non_transactional = true;
      s.reason = "CREATE INDEX CONCURRENTLY";
    }
    return;
  }
  if (k == "ReindexStmt") {
    s.timeout_class = "index";
    std::string kind = n.value("kind", "");
    if (has_concurrently_option(n.value("params", json::array()))) {
      s.non_transactional = true;
      s.reason = "REINDEX CONCURRENTLY";
    } else if (kind == "REINDEX_OBJECT_SYSTEM") {
      s.non_transactional = true;
      s.reason = "REINDEX SYSTEM";
    } else if (kind == "REINDEX_OBJECT_DATABASE") {
      s.non_transactional = true;
      s.reason = "REINDEX DATABASE";
    } else if (kind == "REINDEX_OBJECT_SCHEMA") {
      s.non_transactional = true;
      s.reason = "REINDEX SCHEMA";
    }
    return;
  }
  if (k == "DropStmt" && n.value("concurrent", false)) {
    s.non_transactional = true;
    s.reason = "DROP INDEX CONCURRENTLY";
    return;
  }
  if (k == "AlterTableStmt" && n.contains("cmds")) {
    for (const json& c : n["cmds"]) {
      if (!c.contains("AlterTableCmd")) continue;
      const json& cmd = c["AlterTableCmd"];
      std::string sub = cmd.value("subtype", "");
      if (sub == "AT_ValidateConstraint") s.timeout_class = "validate";
      if (sub == "AT_DetachPartition" && cmd.contains("def") &&
          cmd["def"].contains("PartitionCmd") &&
          cmd["def"]["PartitionCmd"].value("concurrent", false)) {
        s.non_transactional = true;
        s.reason = "DETACH PARTITION CONCURRENTLY";
      }
    }
    return;
  }
  if (k == "AlterDomainStmt" && n.value("subtype", "") == "V") {
    s.timeout_class = "validate";
    return;
  }
  if (k == "VacuumStmt") {
    s.timeout_class = "maintenance";
    if (n.value("is_vacuumcmd", false)) {
      s.non_transactional = true;
      s.reason = "VACUUM";
    }
    return;
  }
  if (k == "ClusterStmt") {
    s.timeout_class = "maintenance";
    if (!n.contains("relation")) {
      s.non_transactional = true;
      s.reason = "CLUSTER of every table";
    }
    return;
  }
  if (k == "DiscardStmt" && n.value("target", "") == "DISCARD_ALL") {
    s.non_transactional = true;
    s.reason = "DISCARD ALL";
    s.timeout_class = "other";
    return;
  }
  if (k == "AlterDatabaseStmt" && n.contains("options")) {
    for (const json& o : n["options"]) {
      if (o.contains("DefElem") && o["DefElem"].value("defname", "") == "tablespace") {
        s.non_transactional = true;
        s.reason = "ALTER DATABASE ... SET TABLESPACE";
      }
    }
    return;
  }
  static const std::pair<const char*, const char*> kNeverInTransaction[] = {
      {"CreatedbStmt", "CREATE DATABASE"},
      {"DropdbStmt", "DROP DATABASE"},
      {"AlterSystemStmt", "ALTER SYSTEM"},
      {"CreateTableSpaceStmt", "CREATE TABLESPACE"},
      {"DropTableSpaceStmt", "DROP TABLESPACE"},
      {"CreateSubscriptionStmt", "CREATE SUBSCRIPTION"},
      {"DropSubscriptionStmt", "DROP SUBSCRIPTION"},
  };
  for (const auto& [name, what] : kNeverInTransaction) {
    if (k == name) {
      s.non_transactional = true;
      s.reason = what;
      s.timeout_class = "other";
      return;
    }
  }
  if (k == "InsertStmt" || k == "UpdateStmt" || k == "DeleteStmt" || k == "MergeStmt" ||
      k == "SelectStmt" || k == "CopyStmt") {
    s.timeout_class = "dml";
  } else if (k == "VariableSetStmt" || k == "VariableShowStmt" || k == "DoStmt" ||
             k == "NotifyStmt" || k == "ListenStmt" || k == "CallStmt") {
    s.timeout_class = "other";
  }
}

}  // namespace

std::pair<int, int> line_column(const std::string& text, int byte_offset) {
  int line = 1;
  int column = 1;
  size_t limit = std::min(static_cast<size_t>(std::max(byte_offset, 0)), text.size());
  for (size_t i = 0; i < limit; ++i) {
    auto ch = static_cast<unsigned char>(text[i]);
    if (ch == '\n') {
      ++line;
      column = 1;
    } else if ((ch & 0xC0) != 0x80) {
      ++column;
    }
  }
  return {line, column};
}

std::vector<Comment> scan_comments(const std::string& text) {
  std::vector<Comment> out;
  for (const Token& t : scan_tokens(text)) {
    if (!t.comment) continue;
    Comment c;
    c.text = text.substr(t.start, t.end - t.start);
    c.offset = t.start;
    std::tie(c.line, c.column) = line_column(text, t.start);
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<Statement> split_statements(const std::string& text) {
  PgQueryParseResult res = pg_query_parse(text.c_str());
  struct Free {
    PgQueryParseResult* r;
    ~Free() { pg_query_free_parse_result(*r); }
  } guard{&res};
  if (res.error) {
    int offset = res.error->cursorpos > 0 ? char_to_byte(text, res.error->cursorpos)
                                          : static_cast<int>(text.size());
    auto [line, column] = line_column(text, offset);
    throw ParseError(res.error->message ? res.error->message : "syntax error", offset, line,
                     column);
  }
  json tree = json::parse(res.parse_tree);
  std::vector<Token> tokens = scan_tokens(text);
  std::vector<Statement> out;
  if (!tree.contains("stmts")) return out;
  // Statements and tokens both come in text order: one forward pass over each keeps the split
  // linear in the file size, and so does counting lines and columns from the previous mark.
  size_t cursor = 0;
  int mark_offset = 0;
  std::pair<int, int> mark{1, 1};
  auto position = [&](int offset) {
    std::string_view piece(text.data() + mark_offset, offset - mark_offset);
    for (char ch : piece) {
      auto c = static_cast<unsigned char>(ch);
      if (c == '\n') {
        ++mark.first;
        mark.second = 1;
      } else if ((c & 0xC0) != 0x80) {
        ++mark.second;
      }
    }
    mark_offset = offset;
    return mark;
  };
  for (const json& raw : tree["stmts"]) {
    int loc = raw.value("stmt_location", 0);
    int len = raw.value("stmt_len", 0);
    int end = len > 0 ? loc + len : static_cast<int>(text.size());
    int first = -1;
    int last = -1;
    while (cursor < tokens.size() && tokens[cursor].start < loc) ++cursor;
    for (; cursor < tokens.size() && tokens[cursor].start < end; ++cursor) {
      const Token& t = tokens[cursor];
      if (t.comment) continue;
      if (first < 0) first = t.start;
      last = t.end;
    }
    if (first < 0) {  // no tokens (scanner unavailable): fall back to the parser's range
      first = loc;
      last = end;
    }
    Statement s;
    s.offset = first;
    s.sql = text.substr(first, last - first);
    std::tie(s.line, s.column) = position(first);
    s.end_line = position(last).first;
    const json& node = raw["stmt"];
    s.kind = node.begin().key();
    s.parse_tree = node.dump();
    classify(s, node);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace pgsafe
