// Unit tests for pgsafe::split_statements and line_column: statement boundaries and positions
// from libpg_query, parse errors with the parser's message and position, and classification.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pgsafe/errors.hpp"
#include "pgsafe/sql.hpp"

using pgsafe::split_statements;
using pgsafe::Statement;

namespace {

std::vector<std::string> sqls(const std::string& text) {
  std::vector<std::string> out;
  for (const Statement& s : split_statements(text)) out.push_back(s.sql);
  return out;
}

Statement one(const std::string& text) {
  auto all = split_statements(text);
  if (all.size() != 1) throw std::runtime_error("expected one statement in: " + text);
  return all.front();
}

pgsafe::ParseError parse_error(const std::string& text) {
  try {
    split_statements(text);
  } catch (const pgsafe::ParseError& e) {
    return e;
  }
  throw std::runtime_error("expected a ParseError for: " + text);
}

}  // namespace

TEST(LineColumn, CountsLinesAndCharacters) {
  const std::string text = "ab\nc\xC3\xA9\n\xF0\x9F\x90\x98x";  // "ab\ncé\n🐘x"
  EXPECT_EQ(pgsafe::line_column(text, 0), std::make_pair(1, 1));
  EXPECT_EQ(pgsafe::line_column(text, 2), std::make_pair(1, 3));
  EXPECT_EQ(pgsafe::line_column(text, 3), std::make_pair(2, 1));
  EXPECT_EQ(pgsafe::line_column(text, 6), std::make_pair(2, 3));     // after the 2-byte é
  EXPECT_EQ(pgsafe::line_column(text, 11), std::make_pair(3, 2));    // after the 4-byte 🐘
  EXPECT_EQ(pgsafe::line_column(text, 1000), std::make_pair(3, 3));  // clamped to the end
  EXPECT_EQ(pgsafe::line_column(text, -5), std::make_pair(1, 1));
}

TEST(Split, StatementsWithPositions) {
  const std::string text =
      "CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n\n  INSERT INTO a VALUES (1);\n";
  auto got = split_statements(text);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].sql, "CREATE TABLE a (id int)");
  EXPECT_EQ(got[1].sql, "CREATE TABLE b (id int)");
  EXPECT_EQ(got[2].sql, "INSERT INTO a VALUES (1)");
  EXPECT_EQ(got[0].offset, 0);
  EXPECT_EQ(got[1].offset, 25);
  EXPECT_EQ(got[2].offset, 53);
  EXPECT_EQ(got[2].line, 4);
  EXPECT_EQ(got[2].column, 3);
  EXPECT_EQ(got[0].kind, "CreateStmt");
  EXPECT_EQ(got[2].kind, "InsertStmt");
  for (const Statement& s : got) EXPECT_EQ(text.substr(s.offset, s.sql.size()), s.sql);
}

TEST(Split, ColumnsCountCharactersAfterMultibyte) {
  // SELECT 'é'; SELECT '日本'; SELECT 3;
  const std::string text = "SELECT '\xC3\xA9'; SELECT '\xE6\x97\xA5\xE6\x9C\xAC'; SELECT 3;";
  auto got = split_statements(text);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].column, 13);
  EXPECT_EQ(got[2].column, 26);
  EXPECT_EQ(got[2].offset, 30);  // bytes
  EXPECT_EQ(got[2].sql, "SELECT 3");
}

TEST(Split, MultilineStatementEndLine) {
  auto got = split_statements("SELECT 1;\n\nCREATE TABLE t (\n  id int\n);\nSELECT 2;");
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].line, 3);
  EXPECT_EQ(got[1].end_line, 5);
  EXPECT_EQ(got[2].line, 6);
  EXPECT_EQ(got[2].end_line, 6);
}

TEST(Split, LeadingCommentsAreSkipped) {
  const std::string text =
      "-- header; with a semicolon\n/* block; */\nSELECT 1; -- trailing;\n"
      "/* a /* nested; */ b; */ SELECT 2 -- no semicolon";
  auto got = split_statements(text);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].sql, "SELECT 1");
  EXPECT_EQ(got[0].line, 3);
  EXPECT_EQ(got[0].column, 1);
  EXPECT_EQ(got[1].sql, "SELECT 2");
  EXPECT_EQ(got[1].line, 4);
  EXPECT_EQ(got[1].column, 26);
}

TEST(Split, QuotingDoesNotConfuseBoundaries) {
  const std::string text =
      "DO $$ BEGIN PERFORM 1; COMMIT; END $$;\n"
      "SELECT $fn$ BEGIN; $$ ; $fn$;\n"
      "SELECT E'it\\'s;';\n"
      "SELECT 'a''b; -- c';\n"
      "SELECT 1 AS \"x;y\";\n";
  EXPECT_EQ(sqls(text), (std::vector<std::string>{
                            "DO $$ BEGIN PERFORM 1; COMMIT; END $$",
                            "SELECT $fn$ BEGIN; $$ ; $fn$",
                            "SELECT E'it\\'s;'",
                            "SELECT 'a''b; -- c'",
                            "SELECT 1 AS \"x;y\"",
                        }));
}

TEST(Split, PlpgsqlFunctionIsOneStatement) {
  const std::string fn =
      "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
      "BEGIN\n  NEW.x := 'a;b';\n  RETURN NEW;\nEND;\n$fn$";
  auto got = split_statements(fn + ";\nSELECT 1;");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].sql, fn);
  EXPECT_EQ(got[0].kind, "CreateFunctionStmt");
  EXPECT_EQ(got[0].transaction_control, "");
  EXPECT_EQ(got[0].end_line, 6);
}

TEST(Split, EmptyAndCommentOnlyInputs) {
  for (const char* text : {"", "   \n", "-- only\n", "/* a */ -- b\n", ";", ";;\n;"}) {
    EXPECT_TRUE(split_statements(text).empty()) << text;
  }
}

TEST(Split, ParseTreeIsJsonOfTheStatement) {
  Statement s = one("CREATE INDEX CONCURRENTLY i ON t (a)");
  EXPECT_EQ(s.parse_tree.rfind("{\"IndexStmt\":", 0), 0u) << s.parse_tree;
}

TEST(ParseErrors, PositionAndMessage) {
  auto e = parse_error("SELECT 1;\n  SELEC 2;");
  EXPECT_EQ(e.line(), 2);
  EXPECT_EQ(e.column(), 3);
  EXPECT_EQ(e.offset(), 12);
  EXPECT_EQ(e.parser_message(), "syntax error at or near \"SELEC\"");
  EXPECT_EQ(std::string(e.what()), "2:3: syntax error at or near \"SELEC\"");
}

TEST(ParseErrors, ColumnInCharactersAfterMultibyte) {
  // SELECT 'éé' FROM WHERE x;
  auto e = parse_error("SELECT '\xC3\xA9\xC3\xA9' FROM WHERE x;");
  EXPECT_EQ(e.line(), 1);
  EXPECT_EQ(e.column(), 18);
  EXPECT_EQ(e.offset(), 19);
  EXPECT_EQ(e.parser_message(), "syntax error at or near \"WHERE\"");
}

TEST(ParseErrors, UnterminatedTokens) {
  auto dollar = parse_error("SELECT 1;\nSELECT $$abc;");
  EXPECT_EQ(dollar.line(), 2);
  EXPECT_EQ(dollar.column(), 8);
  EXPECT_EQ(dollar.parser_message().rfind("unterminated dollar-quoted string", 0), 0u);
  auto comment = parse_error("SELECT 1; /* never closed");
  EXPECT_EQ(comment.column(), 11);
  EXPECT_EQ(comment.parser_message().rfind("unterminated /* comment", 0), 0u);
  auto end = parse_error("SELECT (");
  EXPECT_EQ(end.parser_message(), "syntax error at end of input");
}

TEST(Classify, TransactionControl) {
  const std::pair<const char*, const char*> cases[] = {
      {"BEGIN", "begin"},
      {"START TRANSACTION", "start transaction"},
      {"COMMIT", "commit"},
      {"END", "commit"},
      {"ROLLBACK", "rollback"},
      {"ABORT", "rollback"},
      {"SAVEPOINT s", "savepoint"},
      {"RELEASE SAVEPOINT s", "release"},
      {"ROLLBACK TO SAVEPOINT s", "rollback to savepoint"},
      {"PREPARE TRANSACTION 'x'", "prepare transaction"},
  };
  for (const auto& [text, word] : cases) {
    Statement s = one(text);
    EXPECT_EQ(s.transaction_control, word) << text;
    EXPECT_EQ(s.timeout_class, "transaction") << text;
  }
  EXPECT_EQ(one("SELECT 'BEGIN'").transaction_control, "");
}

TEST(Classify, NonTransactional) {
  const std::pair<const char*, const char*> cases[] = {
      {"CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX CONCURRENTLY"},
      {"DROP INDEX CONCURRENTLY i", "DROP INDEX CONCURRENTLY"},
      {"REINDEX INDEX CONCURRENTLY i", "REINDEX CONCURRENTLY"},
      {"REINDEX (CONCURRENTLY) TABLE t", "REINDEX CONCURRENTLY"},
      {"ALTER TABLE p DETACH PARTITION c CONCURRENTLY", "DETACH PARTITION CONCURRENTLY"},
      {"VACUUM t", "VACUUM"},
      {"VACUUM (ANALYZE) t", "VACUUM"},
      {"CREATE DATABASE d", "CREATE DATABASE"},
      {"DROP DATABASE d", "DROP DATABASE"},
      {"ALTER SYSTEM SET work_mem = '8MB'", "ALTER SYSTEM"},
      {"CREATE TABLESPACE ts LOCATION '/x'", "CREATE TABLESPACE"},
      {"DROP TABLESPACE ts", "DROP TABLESPACE"},
  };
  for (const auto& [text, reason] : cases) {
    Statement s = one(text);
    EXPECT_TRUE(s.non_transactional) << text;
    EXPECT_EQ(s.reason, reason) << text;
  }
  for (const char* text :
       {"CREATE INDEX i ON t (a)", "DROP INDEX i", "REINDEX INDEX i", "ANALYZE t",
        "ALTER TABLE p DETACH PARTITION c", "CREATE TABLE t (a int)"}) {
    Statement s = one(text);
    EXPECT_FALSE(s.non_transactional) << text;
    EXPECT_EQ(s.reason, "") << text;
  }
}

TEST(Classify, TimeoutClass) {
  const std::pair<const char*, const char*> cases[] = {
      {"CREATE INDEX i ON t (a)", "index"},
      {"CREATE INDEX CONCURRENTLY i ON t (a)", "index"},
      {"REINDEX TABLE t", "index"},
      {"ALTER TABLE t VALIDATE CONSTRAINT c", "validate"},
      {"VACUUM t", "maintenance"},
      {"ANALYZE t", "maintenance"},
      {"INSERT INTO t VALUES (1)", "dml"},
      {"UPDATE t SET a = 1", "dml"},
      {"DELETE FROM t", "dml"},
      {"CREATE TABLE t (a int)", "ddl"},
      {"ALTER TABLE t ADD COLUMN b int", "ddl"},
      {"SET lock_timeout = '1s'", "other"},
  };
  for (const auto& [text, cls] : cases) EXPECT_EQ(one(text).timeout_class, cls) << text;
}

TEST(Classify, IndexFacts) {
  Statement s = one("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx ON app.jobs (a)");
  EXPECT_EQ(s.index_name, "idx");
  EXPECT_EQ(s.index_schema, "app");
  EXPECT_EQ(s.index_table, "jobs");
  Statement unnamed = one("CREATE INDEX ON jobs (a)");
  EXPECT_EQ(unnamed.index_name, "");
  EXPECT_EQ(unnamed.index_schema, "");
  EXPECT_EQ(unnamed.index_table, "jobs");
}
