// PostgreSQL's table lock modes, as pg_locks names them, and lock.c's conflict matrix: what
// the tracer (trace.hpp) and the live probe (probe.hpp) rank and compare locks by.
#pragma once

#include <string>

namespace pgsafe {

// Weakest first (lock.h numbering: 1..8; 0 is "no lock").
int lock_mode_rank(const std::string& mode);  // 0 for an unknown name (e.g. SIReadLock)
const std::string& lock_mode_name(int rank);  // "" for 0 or out of range
// The conflict matrix of lock.c: does holding `held` block a request for `requested`?
bool lock_conflicts(const std::string& held, const std::string& requested);

}  // namespace pgsafe
