// Applies one migration safely: its own transaction (or transactional and autocommit segments
// with a dirty marker covering the gap), per-class timeouts, bounded jittered retries on
// lock_not_available / deadlock_detected, the ledger row written in the same transaction, and
// the migration lock taken on a dedicated session.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pgsafe/conn.hpp"
#include "pgsafe/sql.hpp"

namespace pgsafe {

struct Timeouts {
  int lock_timeout_ms = 5000;
  int statement_timeout_ms = 300000;       // ordinary statements (seed 003: 5 min)
  int long_statement_timeout_ms = 900000;  // index builds, validations, maintenance
  int idle_in_transaction_timeout_ms = 60000;
};

struct RetryPolicy {
  int max_attempts = 5;
  int base_delay_ms = 500;
  int max_delay_ms = 30000;
  // Delay before attempt `attempt` (2, 3, ...): full jitter over an exponential ceiling.
  double delay_seconds(int attempt) const;
};

// Which way a plan runs: its up script (the ledger row ends "applied") or its down script
// ("rolled_back").
enum class Direction : std::uint8_t { kUp, kDown };

struct MigrationPlan {
  std::string version;
  std::string name;
  std::string checksum;
  Direction direction = Direction::kUp;
  std::vector<Statement> statements;
};

// What an Event reports (Python writes its name as the JSON-lines event).
enum class EventKind : std::uint8_t {
  kSegmentStart,      // a transaction (or one autocommit statement) starts
  kStatementDone,     // a statement finished
  kRetry,             // a lock timeout or deadlock: the segment runs again after `seconds`
  kRetriesExhausted,  // ... and there are no attempts left
  kIndexInvalid,      // a failed concurrent build left this index INVALID
  kIndexRebuilt,      // ... dropped before the next attempt builds it again
  kIndexDropped,      // ... dropped after the last attempt failed
  kDirty,             // the ledger row is marked dirty while autocommit steps run
  kCommitted,         // the migration and its ledger row committed
};

// One thing that happened while running; the Python layer writes these to the JSON-lines log.
struct Event {
  EventKind kind = EventKind::kSegmentStart;
  std::string version;
  int segment = -1;
  int statement = -1;
  int attempt = 0;
  double seconds = 0.0;  // a duration, or the delay before a retry
  std::string sqlstate;
  std::string message;
};
using EventSink = std::function<void(const Event&)>;

struct ExecResult {
  std::string status;  // the ledger status written: "applied" or "rolled_back"
  int attempts = 1;    // total attempts over all segments
  int retries = 0;
  double duration_s = 0.0;
  int statements = 0;
  std::vector<std::string> rebuilt_indexes;  // invalid indexes dropped and built again
};

struct LedgerRow {
  std::string version, name, checksum, status, applied_at, applied_by, pgsafe_version;
  std::string dirty_reason;
  double duration_s = 0.0;
  int retries = 0;
};

class Ledger {
 public:
  explicit Ledger(std::string schema = "pgsafe");
  const std::string& schema() const noexcept { return schema_; }
  // Creates the schema and tables if missing (call while holding the migration lock).
  void ensure(Connection& conn) const;
  bool exists(Connection& conn) const;
  std::vector<LedgerRow> rows(Connection& conn) const;
  // Sets a row's status by hand (`pgsafe repair`), recording who and why in the history.
  void set_status(Connection& conn, const std::string& version, const std::string& status,
                  const std::string& reason, const std::string& by) const;
  void set_checksum(Connection& conn, const std::string& version, const std::string& checksum,
                    const std::string& reason, const std::string& by) const;
  // Upsert of a migration row, $1..$9; with `unless_status`, a row already in that status is
  // left alone (and the statement reports 0 rows): two runners can never both apply it.
  std::string record_sql(const std::string& unless_status = "") const;
  std::string history_sql() const;  // insert of a history row, $1..$6

 private:
  std::string schema_;
};

class Executor {
 public:
  Executor(Connection& conn, Ledger ledger, Timeouts timeouts, RetryPolicy retry,
           std::string applied_by, std::string pgsafe_version, EventSink sink = {});
  // Runs the plan and records it. Throws DbError (the last one, once retries are exhausted or
  // for a non-retryable error); a failure after an autocommit step (or after the commit at a
  // "-- pgsafe: step" marker) leaves the ledger row dirty.
  ExecResult run(const MigrationPlan& plan);
  // Before each commit, check that the session `pid` still holds advisory lock `key`: if that
  // session died, another runner may be applying the same migration now.
  void guard_with_lock(int pid, std::int64_t key) {
    lock_pid_ = pid;
    lock_key_ = key;
  }
  // After run() threw: true when a step had already committed, so the ledger row says dirty;
  // false when nothing committed and the ledger row is as it was before the run.
  bool left_dirty() const noexcept { return left_dirty_; }
  // After run() threw a database error from a statement: its line and column in the file (of
  // the statement within a batch), {0, 0} when the error came from no statement of the plan.
  std::pair<int, int> failed_at() const noexcept { return failed_at_; }

 private:
  struct Segment {
    bool transactional;
    std::vector<const Statement*> statements;
    std::vector<int> indexes;  // statement numbers within the plan
  };
  void emit(const Event& event) const;
  void set_timeouts(const Statement& stmt, bool local, std::string& current_class);
  void note_user_settings(const Statement& stmt);
  void run_tx_segment(const MigrationPlan& plan, const Segment& seg, int seg_no, bool finalize,
                      ExecResult& result, double started);
  void run_autocommit_statement(const MigrationPlan& plan, const Statement& stmt, int seg_no,
                                int stmt_no, ExecResult& result);
  void write_ledger(const MigrationPlan& plan, const std::string& status, double duration_s,
                    int retries, const std::string& reason, bool history = true);
  std::optional<Row> read_ledger_row(const std::string& version);
  void restore_ledger_row(const std::string& version, const std::optional<Row>& previous);
  // The schema-qualified name of the statement's named index when it exists and is INVALID.
  std::optional<std::string> invalid_index(const Statement& stmt);
  void drop_invalid_index(const std::string& qualified, const MigrationPlan& plan,
                          ExecResult& result);
  std::string index_oids(const Statement& stmt);
  std::vector<std::string> new_invalid_indexes(const Statement& stmt, const std::string& before);
  void check_lock();
  // Runs one statement of a transaction; a batch as one query (one round trip), an error in it
  // reported as the error of the statement that failed (its text, position and place).
  void execute_statement(const Statement& stmt);

  Connection& conn_;
  Ledger ledger_;
  Timeouts timeouts_;
  RetryPolicy retry_;
  std::string applied_by_;
  std::string pgsafe_version_;
  EventSink sink_;
  // Timeouts the migration sets itself, which pgsafe then leaves alone: `session_` for a plain
  // SET (in force until the migration ends), `segment_` also for SET LOCAL (until its commit).
  struct UserTimeouts {
    bool lock = false;
    bool statement = false;
  };
  UserTimeouts user_session_;
  UserTimeouts user_segment_;
  bool left_dirty_ = false;
  bool committed_any_ = false;  // some step of the current migration has committed
  std::pair<int, int> failed_at_{0, 0};
  int lock_pid_ = 0;
  std::int64_t lock_key_ = 0;
};

// The holder of a lock we could not take: enough to name it in the error.
struct LockHolder {
  int pid = 0;
  std::string application_name;
  std::string usename;
  std::string client;
  std::string state;
  std::string since;
};

// Session-level advisory lock polled with pg_try_advisory_lock on its own autocommit session:
// a blocking pg_advisory_lock would deadlock with CREATE INDEX CONCURRENTLY, which waits for
// every transaction that could see the table, including a waiting lock request's.
class MigrationLock {
 public:
  MigrationLock(Connection& session, std::int64_t key);
  ~MigrationLock();
  MigrationLock(const MigrationLock&) = delete;
  MigrationLock& operator=(const MigrationLock&) = delete;
  // Polls until taken or `deadline_s` passes; throws LockTimeout naming the holder.
  void acquire(double deadline_s, const RetryPolicy& backoff);
  bool try_acquire();
  std::optional<LockHolder> holder();
  void release();
  bool held() const noexcept { return held_; }
  // Throws DbError if the session that holds the lock has gone away.
  void check_alive();

 private:
  Connection& session_;
  std::int64_t key_;
  bool held_ = false;
};

// The advisory-lock key for a ledger schema: stable across runs and pgsafe versions.
std::int64_t migration_lock_key(const std::string& ledger_schema);

}  // namespace pgsafe
