// Unit tests for the lock-mode table of the tracer: PostgreSQL's conflict matrix (lock.c), as
// documented in "Conflicting Lock Modes", and the names and ranks of the modes.
#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <string>

#include "pgsafe/errors.hpp"
#include "pgsafe/lock_modes.hpp"

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
  const auto& modes = pgsafe::all_lock_modes();
  for (size_t i = 0; i < kModes.size(); ++i) {
    EXPECT_EQ(pgsafe::lock_mode_name(modes[i]), kModes[i]);
    EXPECT_EQ(pgsafe::lock_mode_from_name(kModes[i]), modes[i]);
    EXPECT_EQ(pgsafe::lock_mode_rank(modes[i]), static_cast<int>(i) + 1);
  }
  EXPECT_EQ(pgsafe::lock_mode_name(pgsafe::LockMode::kSIRead), "SIReadLock");
  EXPECT_EQ(pgsafe::lock_mode_from_name("SIReadLock"), pgsafe::LockMode::kSIRead);
  EXPECT_EQ(pgsafe::lock_mode_rank(pgsafe::LockMode::kSIRead), 0);
  EXPECT_EQ(pgsafe::lock_mode_from_name("NoSuchLock"), std::nullopt);
  EXPECT_THROW(pgsafe::lock_mode_of_row("NoSuchLock"), pgsafe::Error);
}

TEST(LockModes, ConflictMatrixMatchesTheDocumentation) {
  const auto& modes = pgsafe::all_lock_modes();
  for (size_t r = 0; r < kModes.size(); ++r) {
    for (size_t h = 0; h < kModes.size(); ++h) {
      EXPECT_EQ(pgsafe::lock_conflicts(modes[h], modes[r]), kTable[r][h] == 'X')
          << kModes[r] << " requested while " << kModes[h] << " is held";
    }
  }
  // A predicate lock blocks nothing and is blocked by nothing.
  EXPECT_FALSE(
      pgsafe::lock_conflicts(pgsafe::LockMode::kSIRead, pgsafe::LockMode::kAccessExclusive));
  EXPECT_FALSE(
      pgsafe::lock_conflicts(pgsafe::LockMode::kAccessExclusive, pgsafe::LockMode::kSIRead));
}

}  // namespace
