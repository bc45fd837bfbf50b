// Unit tests for the lock-mode table of the tracer: PostgreSQL's conflict matrix (lock.c), as
// documented in "Conflicting Lock Modes", and the names and ranks of the modes.
#include <gtest/gtest.h>

#include <array>
#include <string>

#include "pgsafe/trace.hpp"

namespace {

const std::array<std::string, 8> kModes = {
    "AccessShareLock", "RowShareLock",          "RowExclusiveLock", "ShareUpdateExclusiveLock",
    "ShareLock",       "ShareRowExclusiveLock", "ExclusiveLock",    "AccessExclusiveLock",
};

// The documentation's table, row = requested, column = held; 'X' = conflict.
const std::array<std::string, 8> kTable = {
    ".......X", "......XX", "....XXXX", "...XXXXX", "..XX.XXX", "..XXXXXX", ".XXXXXXX", "XXXXXXXX",
};

TEST(LockModes, RanksAndNames) {
  for (size_t i = 0; i < kModes.size(); ++i) {
    EXPECT_EQ(pgsafe::lock_mode_rank(kModes[i]), static_cast<int>(i) + 1);
    EXPECT_EQ(pgsafe::lock_mode_name(static_cast<int>(i) + 1), kModes[i]);
  }
  EXPECT_EQ(pgsafe::lock_mode_rank("NoSuchLock"), 0);
  EXPECT_EQ(pgsafe::lock_mode_name(0), "");
  EXPECT_EQ(pgsafe::lock_mode_name(9), "");
}

TEST(LockModes, ConflictMatrixMatchesTheDocumentation) {
  for (size_t r = 0; r < kModes.size(); ++r) {
    for (size_t h = 0; h < kModes.size(); ++h) {
      EXPECT_EQ(pgsafe::lock_conflicts(kModes[h], kModes[r]), kTable[r][h] == 'X')
          << kModes[r] << " requested while " << kModes[h] << " is held";
    }
  }
  EXPECT_FALSE(pgsafe::lock_conflicts("NoSuchLock", "AccessExclusiveLock"));
}

}  // namespace
