// Unit tests for pgsafe::RowDigest, the multiset hash behind data fingerprints: order and
// grouping do not matter, every row (and every repeat of a row) does.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "pgsafe/datafp.hpp"

namespace {

pgsafe::RowDigest digest_of(const std::vector<std::string>& rows) {
  pgsafe::RowDigest d;
  for (const auto& r : rows) d.add(r);
  return d;
}

}  // namespace

TEST(RowDigest, EmptyIsAllZeros) {
  pgsafe::RowDigest d;
  EXPECT_EQ(d.hex(), std::string(32, '0'));
  EXPECT_EQ(d.rows(), 0);
}

TEST(RowDigest, OrderDoesNotMatter) {
  auto a = digest_of({"1\tone\n", "2\ttwo\n", "3\t\\N\n"});
  auto b = digest_of({"3\t\\N\n", "1\tone\n", "2\ttwo\n"});
  EXPECT_EQ(a.hex(), b.hex());
  EXPECT_EQ(a.rows(), 3);
}

TEST(RowDigest, MergingPartsEqualsOneDigest) {
  std::vector<std::string> rows;
  for (int i = 0; i < 1000; ++i) rows.push_back(std::to_string(i) + "\tv" + std::to_string(i));
  auto whole = digest_of(rows);
  pgsafe::RowDigest left;
  pgsafe::RowDigest right;
  for (size_t i = 0; i < rows.size(); ++i) (i % 3 == 0 ? left : right).add(rows[i]);
  right.merge(left);
  EXPECT_EQ(right.hex(), whole.hex());
  EXPECT_EQ(right.rows(), 1000);
}

TEST(RowDigest, EveryRowAndEveryRepeatCounts) {
  auto base = digest_of({"a", "b"});
  EXPECT_NE(digest_of({"a"}).hex(), base.hex());
  EXPECT_NE(digest_of({"a", "b", "b"}).hex(), base.hex());
  EXPECT_NE(digest_of({"a", "c"}).hex(), base.hex());
  // Two equal rows do not cancel out (as they would with XOR).
  EXPECT_NE(digest_of({"a", "a"}).hex(), std::string(32, '0'));
  EXPECT_NE(digest_of({"a", "a"}).hex(), digest_of({"b", "b"}).hex());
}

TEST(RowDigest, TrailingNewlineIsNotPartOfTheRow) {
  EXPECT_EQ(digest_of({"x\ty\n"}).hex(), digest_of({"x\ty"}).hex());
  EXPECT_NE(digest_of({"x\ty\n\n"}).hex(), digest_of({"x\ty"}).hex());
}

TEST(RowDigest, NullAndEmptyStringDiffer) {
  // COPY text writes NULL as \N and an empty string as nothing.
  EXPECT_NE(digest_of({"1\t\\N\n"}).hex(), digest_of({"1\t\n"}).hex());
}

TEST(RowDigest, CarryCrossesIntoTheHighHalf) {
  // Sums of many rows must agree however they are grouped, which fails without the carry.
  std::vector<std::string> rows;
  for (int i = 0; i < 5000; ++i) rows.push_back("row " + std::to_string(i));
  auto whole = digest_of(rows);
  pgsafe::RowDigest acc;
  for (size_t start = 0; start < rows.size(); start += 7) {
    pgsafe::RowDigest part;
    for (size_t i = start; i < std::min(rows.size(), start + 7); ++i) part.add(rows[i]);
    acc.merge(part);
  }
  EXPECT_EQ(acc.hex(), whole.hex());
}

TEST(RowDigest, HexIsLowercaseAndFixedWidth) {
  auto hex = digest_of({"anything"}).hex();
  ASSERT_EQ(hex.size(), 32u);
  for (char c : hex) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << hex;
}
