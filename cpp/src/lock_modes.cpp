// PostgreSQL's table lock modes and their conflicts (see lock_modes.hpp).
#include "pgsafe/lock_modes.hpp"

#include <array>
#include <string>

namespace pgsafe {

namespace {

const std::array<std::string, 9> kModes = {
    "",
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
};

// lock.c's LockConflicts, as bit masks over the ranks above.
constexpr std::array<unsigned, 9> kConflicts = {
    0,
    1U << 8,
    (1U << 7) | (1U << 8),
    (1U << 5) | (1U << 6) | (1U << 7) | (1U << 8),
    (1U << 4) | (1U << 5) | (1U << 6) | (1U << 7) | (1U << 8),
    (1U << 3) | (1U << 4) | (1U << 6) | (1U << 7) | (1U << 8),
    (1U << 3) | (1U << 4) | (1U << 5) | (1U << 6) | (1U << 7) | (1U << 8),
    (1U << 2) | (1U << 3) | (1U << 4) | (1U << 5) | (1U << 6) | (1U << 7) | (1U << 8),
    0x1FEU,
};

}  // namespace

int lock_mode_rank(const std::string& mode) {
  for (size_t i = 1; i < kModes.size(); ++i) {
    if (kModes[i] == mode) return static_cast<int>(i);
  }
  return 0;
}

const std::string& lock_mode_name(int rank) {
  return rank > 0 && rank < static_cast<int>(kModes.size()) ? kModes[rank] : kModes[0];
}

bool lock_conflicts(const std::string& held, const std::string& requested) {
  int h = lock_mode_rank(held);
  int r = lock_mode_rank(requested);
  return h != 0 && r != 0 && (kConflicts[h] & (1U << r)) != 0;
}

}  // namespace pgsafe
