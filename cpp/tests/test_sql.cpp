// Unit tests for sql.hpp: line_column over UTF-8 text, and the plain Statement struct the
// executor runs (its facts come from Python's parser, pgsafe.analysis.statement; the splitting
// and classification tests live in tests/test_sql_split.py).
#include <gtest/gtest.h>

#include <string>

#include "pgsafe/sql.hpp"

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

TEST(LineColumn, CrlfCountsTheCarriageReturnAsACharacter) {
  const std::string text = "a\r\nbc";
  EXPECT_EQ(pgsafe::line_column(text, 1), std::make_pair(1, 2));
  EXPECT_EQ(pgsafe::line_column(text, 3), std::make_pair(2, 1));
  EXPECT_EQ(pgsafe::line_column(text, 5), std::make_pair(2, 3));
}

TEST(Statement, PlainStructDefaults) {
  pgsafe::Statement s;
  EXPECT_EQ(s.timeout_class, "ddl");
  EXPECT_FALSE(s.non_transactional);
  EXPECT_FALSE(s.sets_local);
  EXPECT_FALSE(s.sets_lock_timeout);
  EXPECT_FALSE(s.sets_statement_timeout);
  EXPECT_TRUE(s.transaction_control.empty());
  EXPECT_TRUE(s.index_table.empty());
}

TEST(Statement, CopiesKeepTheFacts) {
  pgsafe::Statement s;
  s.sql = "SET LOCAL lock_timeout = '1s'";
  s.kind = "VariableSetStmt";
  s.timeout_class = "other";
  s.sets_local = true;
  s.sets_lock_timeout = true;
  pgsafe::Statement copy = s;
  EXPECT_EQ(copy.sql, s.sql);
  EXPECT_TRUE(copy.sets_local && copy.sets_lock_timeout && !copy.sets_statement_timeout);
}
