// PostgreSQL's lock modes and their conflicts (see lock_modes.hpp).
#include "pgsafe/lock_modes.hpp"

#include <string>

#include "pgsafe/errors.hpp"

namespace pgsafe {

namespace {

constexpr std::array<LockMode, 9> kModes = {
    LockMode::kAccessShare,  LockMode::kRowShare,
    LockMode::kRowExclusive, LockMode::kShareUpdateExclusive,
    LockMode::kShare,        LockMode::kShareRowExclusive,
    LockMode::kExclusive,    LockMode::kAccessExclusive,
    LockMode::kSIRead,
};

// Indexed by the enum's value; null-terminated, so a name is also usable as a C string.
constexpr std::array<std::string_view, 10> kNames = {
    "",
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
    "SIReadLock",
};

// lock.c's LockConflicts, as bit masks over the ranks 1..8 (SIReadLock: no conflicts).
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

const std::array<LockMode, 9>& all_lock_modes() { return kModes; }

std::string_view lock_mode_name(LockMode mode) { return kNames.at(static_cast<size_t>(mode)); }

std::optional<LockMode> lock_mode_from_name(std::string_view name) {
  for (LockMode mode : kModes) {
    if (lock_mode_name(mode) == name) return mode;
  }
  return std::nullopt;
}

LockMode lock_mode_of_row(std::string_view name) {
  if (auto mode = lock_mode_from_name(name)) return *mode;
  throw Error("pg_locks shows a lock mode pgsafe does not know: '" + std::string(name) + "'");
}

int lock_mode_rank(LockMode mode) { return mode == LockMode::kSIRead ? 0 : static_cast<int>(mode); }

bool lock_conflicts(LockMode held, LockMode requested) {
  int h = lock_mode_rank(held);
  int r = lock_mode_rank(requested);
  return h != 0 && r != 0 && (kConflicts.at(h) & (1U << r)) != 0;
}

}  // namespace pgsafe
