// PostgreSQL's lock modes, as pg_locks names them, and lock.c's conflict matrix: what the tracer
// (trace.hpp) and the live probe (probe.hpp) report, rank and compare locks by. Bound to Python
// as the enum pgsafe._core.LockMode, whose member names are these names.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace pgsafe {

// The eight table lock modes in lock.h's numbering (weakest first, 1..8), then SIReadLock: the
// predicate lock of SERIALIZABLE transactions, which pg_locks shows and which blocks nothing.
enum class LockMode : int {
  kAccessShare = 1,
  kRowShare,
  kRowExclusive,
  kShareUpdateExclusive,
  kShare,
  kShareRowExclusive,
  kExclusive,
  kAccessExclusive,
  kSIRead,
};

// Every mode pg_locks shows, in the order above.
const std::array<LockMode, 9>& all_lock_modes();
// pg_locks' name of the mode, e.g. "AccessExclusiveLock".
std::string_view lock_mode_name(LockMode mode);
// The mode pg_locks names `name`; nullopt for a name it never shows.
std::optional<LockMode> lock_mode_from_name(std::string_view name);
// The mode of a pg_locks row; throws Error for a name PostgreSQL has no mode of.
LockMode lock_mode_of_row(std::string_view name);
// Strength among the table modes, 1..8 weakest first; 0 for SIReadLock (not a table lock).
int lock_mode_rank(LockMode mode);
// The conflict matrix of lock.c: does holding `held` block a request for `requested`?
bool lock_conflicts(LockMode held, LockMode requested);

}  // namespace pgsafe
