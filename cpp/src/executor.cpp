// The transactional executor, the ledger and the migration lock (see executor.hpp).
#include "pgsafe/executor.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <utility>

#include "pgsafe/errors.hpp"
#include "pgsafe/log.hpp"

namespace pgsafe {

namespace {

double now_s() {
  using Clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

std::string quote_ident(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}

// The ledger status a plan leaves when it succeeds.
std::string final_status_of(const MigrationPlan& plan) {
  return plan.direction == Direction::kDown ? "rolled_back" : "applied";
}

}  // namespace

double RetryPolicy::delay_seconds(int attempt) const {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  double ceiling = std::min<double>(max_delay_ms, base_delay_ms * std::pow(2.0, attempt - 2));
  // Equal jitter: never less than half the ceiling, so retries still back off.
  std::uniform_real_distribution<double> jitter(ceiling / 2, ceiling);
  return jitter(rng) / 1000.0;
}

// ---------------------------------------------------------------------------------------------
// Ledger

Ledger::Ledger(std::string schema) : schema_(std::move(schema)) {}

void Ledger::ensure(Connection& conn) const {
  const std::string s = quote_ident(schema_);
  conn.execute("CREATE SCHEMA IF NOT EXISTS " + s + ";\n" + "CREATE TABLE IF NOT EXISTS " + s +
               ".migrations (\n"
               "  version text PRIMARY KEY,\n"
               "  name text NOT NULL,\n"
               "  checksum text NOT NULL,\n"
               "  status text NOT NULL CHECK (status IN ('applied', 'dirty', 'rolled_back')),\n"
               "  applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),\n"
               "  duration_s double precision NOT NULL DEFAULT 0,\n"
               "  applied_by text NOT NULL,\n"
               "  pgsafe_version text NOT NULL,\n"
               "  retries integer NOT NULL DEFAULT 0,\n"
               "  dirty_reason text\n"
               ");\n"
               "CREATE TABLE IF NOT EXISTS " +
               s +
               ".history (\n"
               "  id bigserial PRIMARY KEY,\n"
               "  at timestamptz NOT NULL DEFAULT clock_timestamp(),\n"
               "  version text NOT NULL,\n"
               "  action text NOT NULL,\n"
               "  status text NOT NULL,\n"
               "  checksum text,\n"
               "  by text NOT NULL,\n"
               "  detail text\n"
               ");");
}

bool Ledger::exists(Connection& conn) const {
  auto r =
      conn.execute("SELECT to_regclass($1) IS NOT NULL", {quote_ident(schema_) + ".migrations"});
  return !r.rows.empty() && r.rows[0][0] == "t";
}

std::vector<LedgerRow> Ledger::rows(Connection& conn) const {
  std::vector<LedgerRow> out;
  if (!exists(conn)) return out;
  auto r = conn.execute(
      "SELECT version, name, checksum, status, applied_at::text, duration_s::text, applied_by,"
      " pgsafe_version, retries::text, coalesce(dirty_reason, '') FROM " +
      quote_ident(schema_) + ".migrations ORDER BY version");
  for (const auto& row : r.rows) {
    LedgerRow l;
    l.version = row[0].value_or("");
    l.name = row[1].value_or("");
    l.checksum = row[2].value_or("");
    l.status = row[3].value_or("");
    l.applied_at = row[4].value_or("");
    l.duration_s = std::stod(row[5].value_or("0"));
    l.applied_by = row[6].value_or("");
    l.pgsafe_version = row[7].value_or("");
    l.retries = std::stoi(row[8].value_or("0"));
    l.dirty_reason = row[9].value_or("");
    out.push_back(std::move(l));
  }
  return out;
}

std::string Ledger::record_sql(const std::string& unless_status) const {
  std::string sql = "INSERT INTO " + quote_ident(schema_) +
                    ".migrations AS m (version, name, checksum, status, applied_at, duration_s,"
                    " applied_by, pgsafe_version, retries, dirty_reason)"
                    " VALUES ($1, $2, $3, $4, clock_timestamp(), $5::float8, $6, $7, $8::int, $9)"
                    " ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name,"
                    " checksum = EXCLUDED.checksum, status = EXCLUDED.status,"
                    " applied_at = EXCLUDED.applied_at, duration_s = EXCLUDED.duration_s,"
                    " applied_by = EXCLUDED.applied_by, pgsafe_version = EXCLUDED.pgsafe_version,"
                    " retries = EXCLUDED.retries, dirty_reason = EXCLUDED.dirty_reason";
  if (!unless_status.empty()) {
    sql += " WHERE m.status <> '" + unless_status + "'";
    // A repeatable migration (Flyway's R__ files) is applied again when its file changed: the
    // row it left is replaced then, and only then (the same checksum twice is a second run).
    if (unless_status == "applied") sql += " OR m.checksum <> EXCLUDED.checksum";
  }
  return sql;
}

std::string Ledger::history_sql() const {
  return "INSERT INTO " + quote_ident(schema_) +
         ".history (version, action, status, checksum, by, detail)"
         " VALUES ($1, $2, $3, $4, $5, $6)";
}

void Ledger::set_status(Connection& conn, const std::string& version, const std::string& status,
                        const std::string& reason, const std::string& by) const {
  conn.execute("BEGIN");
  try {
    auto r = conn.execute("UPDATE " + quote_ident(schema_) +
                              ".migrations SET status = $2, dirty_reason = NULL"
                              " WHERE version = $1 RETURNING checksum",
                          {version, status});
    if (r.rows.empty()) throw ConfigError("version " + version + " is not in the ledger");
    conn.execute(history_sql(), {version, "repair", status, r.rows[0][0], by, reason});
    conn.execute("COMMIT");
  } catch (...) {
    conn.rollback_quietly("executor");
    throw;
  }
}

void Ledger::set_checksum(Connection& conn, const std::string& version, const std::string& checksum,
                          const std::string& reason, const std::string& by) const {
  conn.execute("BEGIN");
  try {
    auto r = conn.execute("UPDATE " + quote_ident(schema_) +
                              ".migrations SET checksum = $2 WHERE version = $1 RETURNING status",
                          {version, checksum});
    if (r.rows.empty()) throw ConfigError("version " + version + " is not in the ledger");
    conn.execute(history_sql(), {version, "rebaseline", r.rows[0][0], checksum, by, reason});
    conn.execute("COMMIT");
  } catch (...) {
    conn.rollback_quietly("executor");
    throw;
  }
}

// ---------------------------------------------------------------------------------------------
// Executor

Executor::Executor(Connection& conn, Ledger ledger, Timeouts timeouts, RetryPolicy retry,
                   std::string applied_by, std::string pgsafe_version, EventSink sink)
    : conn_(conn),
      ledger_(std::move(ledger)),
      timeouts_(timeouts),
      retry_(retry),
      applied_by_(std::move(applied_by)),
      pgsafe_version_(std::move(pgsafe_version)),
      sink_(std::move(sink)) {}

void Executor::emit(const Event& event) const {
  if (sink_) sink_(event);
}

void Executor::note_user_settings(const Statement& stmt) {
  if (stmt.kind != "VariableSetStmt") return;
  auto take = [&](bool UserTimeouts::*which) {
    user_segment_.*which = true;
    if (!stmt.sets_local) user_session_.*which = true;
  };
  if (stmt.sets_lock_timeout) take(&UserTimeouts::lock);
  if (stmt.sets_statement_timeout) take(&UserTimeouts::statement);
}

void Executor::set_timeouts(const Statement& stmt, bool local, std::string& current_class) {
  if (stmt.timeout_class == current_class) return;
  current_class = stmt.timeout_class;
  const bool long_class =
      current_class == "index" || current_class == "validate" || current_class == "maintenance";
  const int statement_ms =
      long_class ? timeouts_.long_statement_timeout_ms : timeouts_.statement_timeout_ms;
  const UserTimeouts& user = local ? user_segment_ : user_session_;
  const std::string set = local ? "SET LOCAL " : "SET ";
  std::string sql;
  if (!user.lock) sql += set + "lock_timeout = " + std::to_string(timeouts_.lock_timeout_ms) + ";";
  if (!user.statement) sql += set + "statement_timeout = " + std::to_string(statement_ms) + ";";
  if (!sql.empty()) conn_.execute(sql);
}

void Executor::write_ledger(const MigrationPlan& plan, const std::string& status, double duration_s,
                            int retries, const std::string& reason, bool history) {
  const std::string final_status = final_status_of(plan);
  std::vector<Value> params{plan.version,
                            plan.name,
                            plan.checksum,
                            status,
                            fmt_double(duration_s),
                            applied_by_,
                            pgsafe_version_,
                            std::to_string(retries),
                            reason.empty() ? Value() : Value(reason)};
  Result r;
  if (!history) {
    r = conn_.execute(ledger_.record_sql(final_status), params);
  } else {
    // The row and its history entry in one round trip: this runs once per migration, inside
    // its transaction, so it is part of every migration's lock hold time.
    params.emplace_back(plan.direction == Direction::kDown ? "rollback" : "apply");
    r = conn_.execute("WITH m AS (" + ledger_.record_sql(final_status) +
                          " RETURNING version) INSERT INTO " + quote_ident(ledger_.schema()) +
                          ".history (version, action, status, checksum, by, detail)"
                          " SELECT $1, $10::text, $4, $3, $6, $9 FROM m",
                      params);
  }
  if (r.rowcount == 0) {
    DbErrorFields f;
    f.sqlstate = "55000";
    f.message = "migration " + plan.version + " is already " + final_status +
                " in the ledger: another run got there first";
    throw DbError(std::move(f));
  }
}

void Executor::check_lock() {
  if (lock_pid_ == 0) return;
  auto r = conn_.execute(
      "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
      " AND pid = $1::int AND objsubid = 1"
      " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
      " AND classid::bigint = (($2::bigint >> 32) & 4294967295)"
      " AND objid::bigint = ($2::bigint & 4294967295))",
      {std::to_string(lock_pid_), std::to_string(lock_key_)});
  if (!r.rows.empty() && r.rows[0][0] == "t") return;
  DbErrorFields f;
  f.sqlstate = "55000";
  f.message = "the migration lock is no longer held (its session, pid " +
              std::to_string(lock_pid_) + ", ended); stopped before committing";
  f.hint = "another runner may be applying migrations now; check `pgsafe status`";
  throw DbError(std::move(f));
}

namespace {

// The table a CREATE INDEX names, resolved like the statement itself resolves it: $n is the
// schema (may be empty), $n+1 the table.
std::string indexed_table(int n) {
  const std::string schema = "$" + std::to_string(n);
  const std::string table = "$" + std::to_string(n + 1);
  return "to_regclass(CASE WHEN " + schema + " = '' THEN quote_ident(" + table +
         ") ELSE quote_ident(" + schema + ") || '.' || quote_ident(" + table + ") END)";
}

}  // namespace

std::string Executor::index_oids(const Statement& stmt) {
  auto r = conn_.execute(
      "SELECT coalesce(array_agg(indexrelid)::text, '{}') FROM pg_index WHERE indrelid = " +
          indexed_table(1),
      {stmt.index_schema, stmt.index_table});
  return r.rows.empty() ? "{}" : r.rows[0][0].value_or("{}");
}

std::vector<std::string> Executor::new_invalid_indexes(const Statement& stmt,
                                                       const std::string& before) {
  auto r = conn_.execute(
      "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_index i"
      " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
      " WHERE NOT i.indisvalid AND NOT (i.indexrelid = ANY ($3::oid[])) AND i.indrelid = " +
          indexed_table(1),
      {stmt.index_schema, stmt.index_table, before});
  std::vector<std::string> out;
  for (const auto& row : r.rows) out.push_back(row[0].value_or(""));
  return out;
}

std::optional<Row> Executor::read_ledger_row(const std::string& version) {
  auto r = conn_.execute(
      "SELECT name, checksum, status, applied_at::text, duration_s::text,"
      " applied_by, pgsafe_version, retries::text, dirty_reason FROM " +
          quote_ident(ledger_.schema()) + ".migrations WHERE version = $1",
      {version});
  if (r.rows.empty()) return std::nullopt;
  return r.rows[0];
}

void Executor::restore_ledger_row(const std::string& version, const std::optional<Row>& previous) {
  const std::string table = quote_ident(ledger_.schema()) + ".migrations";
  if (!previous) {
    conn_.execute("DELETE FROM " + table + " WHERE version = $1", {version});
    return;
  }
  std::vector<Value> params{version};
  params.insert(params.end(), previous->begin(), previous->end());
  conn_.execute("UPDATE " + table +
                    " SET name = $2, checksum = $3, status = $4, applied_at = $5::timestamptz,"
                    " duration_s = $6::float8, applied_by = $7, pgsafe_version = $8,"
                    " retries = $9::int, dirty_reason = $10 WHERE version = $1",
                params);
}

std::optional<std::string> Executor::invalid_index(const Statement& stmt) {
  if (stmt.index_name.empty() || !conn_.is_open()) return std::nullopt;
  auto r = conn_.execute(
      "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_index i"
      " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
      " WHERE NOT i.indisvalid AND c.relname = $1 AND c.relnamespace ="
      " (SELECT relnamespace FROM pg_class WHERE oid = " +
          indexed_table(2) + ")",
      {stmt.index_name, stmt.index_schema, stmt.index_table});
  if (r.rows.empty() || !r.rows[0][0]) return std::nullopt;
  return *r.rows[0][0];
}

void Executor::drop_invalid_index(const std::string& qualified, const MigrationPlan& plan,
                                  ExecResult& result) {
  log::core()->warn("{}: index {} is INVALID (left by a failed build): dropping and rebuilding it",
                    plan.version, qualified);
  conn_.execute("DROP INDEX CONCURRENTLY IF EXISTS " + qualified);
  result.rebuilt_indexes.push_back(qualified);
  emit({EventKind::kIndexRebuilt, plan.version, -1, -1, 0, 0.0, "", qualified});
}

void Executor::run_tx_segment(const MigrationPlan& plan, const Segment& seg, int seg_no,
                              bool finalize, ExecResult& result, double started) {
  const std::string final_status = final_status_of(plan);
  for (int attempt = 1;; ++attempt) {
    emit({EventKind::kSegmentStart, plan.version, seg_no, -1, attempt, 0.0, "", "transaction"});
    const UserTimeouts saved_session = user_session_;  // a rolled-back SET is undone too
    user_segment_ = user_session_;
    try {
      conn_.execute("BEGIN; SET LOCAL idle_in_transaction_session_timeout = " +
                    std::to_string(timeouts_.idle_in_transaction_timeout_ms));
      std::string current_class;
      for (size_t i = 0; i < seg.statements.size(); ++i) {
        const Statement& stmt = *seg.statements[i];
        set_timeouts(stmt, true, current_class);
        double t0 = now_s();
        execute_statement(stmt);
        note_user_settings(stmt);
        if (stmt.kind == "VariableSetStmt") current_class.clear();
        emit({EventKind::kStatementDone, plan.version, seg_no, seg.indexes[i], attempt,
              now_s() - t0, "", ""});
      }
      check_lock();
      if (finalize) write_ledger(plan, final_status, now_s() - started, result.retries, "");
      conn_.execute("COMMIT");
      committed_any_ = true;
      for (const Statement* s : seg.statements) {
        result.statements += s->parts.empty() ? 1 : static_cast<int>(s->parts.size());
      }
      return;
    } catch (const DbError& e) {
      conn_.rollback_quietly("executor");
      user_session_ = saved_session;
      bool last = attempt >= retry_.max_attempts;
      if (!e.retryable() || last || !e.fields().connection_usable) {
        if (e.retryable() && last) {
          emit({EventKind::kRetriesExhausted, plan.version, seg_no, -1, attempt, 0.0, e.sqlstate(),
                e.fields().message});
        }
        throw;
      }
      double delay = retry_.delay_seconds(attempt + 1);
      log::core()->warn("{}: {} (SQLSTATE {}); retrying the transaction in {:.2f}s ({}/{})",
                        plan.version, e.fields().message, e.sqlstate(), delay, attempt + 1,
                        retry_.max_attempts);
      emit({EventKind::kRetry, plan.version, seg_no, -1, attempt + 1, delay, e.sqlstate(),
            e.fields().message});
      ++result.retries;
      ++result.attempts;
      interruptible_sleep(delay);
    } catch (...) {
      conn_.rollback_quietly("executor");
      user_session_ = saved_session;
      throw;
    }
  }
}

void Executor::run_autocommit_statement(const MigrationPlan& plan, const Statement& stmt,
                                        int seg_no, int stmt_no, ExecResult& result) {
  const bool index_build = stmt.kind == "IndexStmt" && !stmt.index_table.empty();
  // These commit part of their work before they can fail: a retry would meet that half state,
  // so a failure ends the migration dirty instead.
  const bool commits_midway =
      stmt.reason == "DETACH PARTITION CONCURRENTLY" || stmt.reason == "REINDEX CONCURRENTLY";
  // The step runs with session-level timeouts; put back whatever was in force before it (the
  // migration's own SET, or the server default), not RESET.
  auto saved = conn_.execute(
      "SELECT current_setting('lock_timeout'),"
      " current_setting('statement_timeout')");
  auto restore = [&] {
    if (!conn_.is_open()) return;
    conn_.execute(
        "SELECT set_config('lock_timeout', $1, false),"
        " set_config('statement_timeout', $2, false)",
        {saved.rows[0][0], saved.rows[0][1]});
  };
  // Indexes a failed concurrent build of ours left INVALID (named or not): dropped before the
  // next attempt, or at the end if there is none, so nothing half-built stays behind.
  std::vector<std::string> leftovers;
  auto drop_leftovers = [&](EventKind event) {
    for (const std::string& name : leftovers) {
      log::core()->warn("{}: dropping index {} left INVALID by the failed build", plan.version,
                        name);
      conn_.execute("DROP INDEX CONCURRENTLY IF EXISTS " + name);
      emit({event, plan.version, seg_no, stmt_no, 0, 0.0, "", name});
      if (event == EventKind::kIndexRebuilt) result.rebuilt_indexes.push_back(name);
    }
    leftovers.clear();
  };
  for (int attempt = 1;; ++attempt) {
    emit({EventKind::kSegmentStart, plan.version, seg_no, stmt_no, attempt, 0.0, "", stmt.reason});
    try {
      check_lock();
      std::string current_class;
      set_timeouts(stmt, false, current_class);
      if (index_build) {
        if (auto left = invalid_index(stmt))
          drop_invalid_index(*left, plan, result);  // earlier run
      }
      drop_leftovers(EventKind::kIndexRebuilt);
      const std::string before = index_build ? index_oids(stmt) : "{}";
      double t0 = now_s();
      try {
        failed_at_ = {stmt.line, stmt.column};
        conn_.execute(stmt.sql);
        failed_at_ = {0, 0};
        if (index_build && invalid_index(stmt)) {
          // A build that "succeeded" but left the index unusable must not count as applied.
          DbErrorFields f;
          f.sqlstate = "55000";
          f.message = "index \"" + stmt.index_name + "\" is INVALID after " + stmt.reason;
          f.statement = stmt.sql;
          throw DbError(std::move(f));
        }
      } catch (const DbError& e) {
        if (commits_midway) committed_any_ = true;
        if (index_build && e.fields().connection_usable) {
          leftovers = new_invalid_indexes(stmt, before);
          for (const std::string& name : leftovers) {
            emit({EventKind::kIndexInvalid, plan.version, seg_no, stmt_no, attempt, 0.0,
                  e.sqlstate(), name});
          }
        }
        throw;
      }
      committed_any_ = true;
      emit({EventKind::kStatementDone, plan.version, seg_no, stmt_no, attempt, now_s() - t0, "",
            ""});
      ++result.statements;
      restore();
      return;
    } catch (const DbError& e) {
      bool last = attempt >= retry_.max_attempts;
      if (!e.retryable() || last || !e.fields().connection_usable || commits_midway) {
        if (e.fields().connection_usable) {
          try {
            drop_leftovers(EventKind::kIndexDropped);
            restore();
          } catch (const DbError& inner) {
            log::core()->warn("{}: clean-up after the failed step failed: {}", plan.version,
                              inner.what());
          }
        }
        throw;
      }
      double delay = retry_.delay_seconds(attempt + 1);
      log::core()->warn("{}: {} (SQLSTATE {}); retrying the statement in {:.2f}s ({}/{})",
                        plan.version, e.fields().message, e.sqlstate(), delay, attempt + 1,
                        retry_.max_attempts);
      emit({EventKind::kRetry, plan.version, seg_no, stmt_no, attempt + 1, delay, e.sqlstate(),
            e.fields().message});
      ++result.retries;
      ++result.attempts;
      interruptible_sleep(delay);
    }
  }
}

namespace {

// Characters (not continuation bytes) of `text` before byte `end`.
int char_count(const std::string& text, size_t end) {
  int n = 0;
  for (size_t i = 0; i < end && i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++n;
  }
  return n;
}

}  // namespace

void Executor::execute_statement(const Statement& stmt) {
  failed_at_ = {stmt.line, stmt.column};
  if (stmt.parts.empty()) {
    conn_.execute(stmt.sql);
    failed_at_ = {0, 0};
    return;
  }
  // Before PostgreSQL 13 statement_timeout bounds a whole query string, not each statement
  // in it: there the statements of a batch go one by one.
  if (conn_.server_version() < 130000) {
    for (const StatementPart& part : stmt.parts) {
      failed_at_ = {part.line, part.column};
      conn_.execute(stmt.sql.substr(part.start, part.end - part.start));
    }
    failed_at_ = {0, 0};
    return;
  }
  try {
    conn_.execute(stmt.sql);
  } catch (const DbError& e) {
    const int done = conn_.last_completed();
    if (done < 0 || done >= static_cast<int>(stmt.parts.size())) throw;
    const StatementPart& part = stmt.parts[done];
    failed_at_ = {part.line, part.column};
    DbErrorFields f = e.fields();
    f.statement = stmt.sql.substr(part.start, part.end - part.start);
    if (f.position > 0) {
      // The server's position counts characters of the whole query: make it the statement's.
      const int before = char_count(stmt.sql, part.start);
      f.position = f.position > before ? f.position - before : 0;
    }
    throw DbError(std::move(f));
  }
  failed_at_ = {0, 0};
}

ExecResult Executor::run(const MigrationPlan& plan) {
  ExecResult result;
  failed_at_ = {0, 0};
  const double started = now_s();
  user_session_ = {};
  user_segment_ = {};
  left_dirty_ = false;
  committed_any_ = false;
  std::vector<Segment> segments;
  for (size_t i = 0; i < plan.statements.size(); ++i) {
    const Statement& s = plan.statements[i];
    if (!s.transaction_control.empty()) {
      throw ConfigError(plan.version + ": line " + std::to_string(s.line) + ": " +
                        s.transaction_control +
                        " is not allowed in a migration: pgsafe runs each migration in its own "
                        "transaction");
    }
    bool tx = !s.non_transactional;
    // A new segment at each autocommit statement, after one, and at a "-- pgsafe: step" marker
    // (the transaction so far commits; the next one starts with this statement).
    if (segments.empty() || segments.back().transactional != tx || !tx || s.new_step) {
      segments.push_back({tx, {}, {}});
    }
    segments.back().statements.push_back(&s);
    segments.back().indexes.push_back(static_cast<int>(i));
  }
  if (segments.empty()) segments.push_back({true, {}, {}});
  // More than one segment: something commits before the migration is done (an autocommit step
  // or a step marker's transaction), so a failure after it must leave the ledger dirty.
  const bool mixed =
      segments.size() > 1 || std::any_of(segments.begin(), segments.end(),
                                         [](const Segment& s) { return !s.transactional; });
  const std::string final_status = final_status_of(plan);
  std::optional<Row> previous;
  if (mixed) {
    // Autocommit steps cannot be undone by a rollback: mark the migration dirty first, so a
    // failure (or a kill) anywhere in the gap is visible and blocks further applies.
    previous = read_ledger_row(plan.version);
    write_ledger(plan, "dirty", 0.0, 0, "in progress since the first autocommit step", false);
    emit({EventKind::kDirty, plan.version, -1, -1, 0, 0.0, "",
          "marked dirty while autocommit steps run"});
  }
  try {
    for (size_t i = 0; i < segments.size(); ++i) {
      const Segment& seg = segments[i];
      bool last = i + 1 == segments.size();
      if (seg.transactional) {
        run_tx_segment(plan, seg, static_cast<int>(i), last, result, started);
      } else {
        run_autocommit_statement(plan, *seg.statements[0], static_cast<int>(i), seg.indexes[0],
                                 result);
        if (last) write_ledger(plan, final_status, now_s() - started, result.retries, "");
      }
    }
  } catch (...) {
    // Whatever ended the run (a database error, Ctrl-C, an exception from the event sink):
    // the ledger must say dirty exactly when some step has committed.
    left_dirty_ = mixed && committed_any_;
    std::string why = "interrupted";
    bool usable = conn_.is_open();
    try {
      throw;
    } catch (const DbError& e) {
      why = e.what();
      usable = usable && e.fields().connection_usable;
    } catch (const std::exception& e) {
      why = e.what();
    } catch (...) {
    }
    if (mixed && usable) {
      try {
        if (committed_any_) {
          write_ledger(plan, "dirty", now_s() - started, result.retries, "failed: " + why);
        } else {
          restore_ledger_row(plan.version, previous);  // nothing committed: as before the run
        }
      } catch (const Error& inner) {
        left_dirty_ = true;  // the marker is still there
        log::core()->error("{}: cannot record the failure in the ledger: {}", plan.version,
                           inner.what());
      }
    } else if (mixed) {
      left_dirty_ = true;  // the connection is gone with the marker in place
    }
    throw;
  }
  result.status = final_status;
  result.duration_s = now_s() - started;
  emit({EventKind::kCommitted, plan.version, -1, -1, result.attempts, result.duration_s, "",
        final_status});
  return result;
}

// ---------------------------------------------------------------------------------------------
// Migration lock

std::int64_t migration_lock_key(const std::string& ledger_schema) {
  // FNV-1a: stable across platforms and releases, unlike std::hash.
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : "pgsafe.migration-lock:" + ledger_schema) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return static_cast<std::int64_t>(h);
}

MigrationLock::MigrationLock(Connection& session, std::int64_t key)
    : session_(session), key_(key) {}

MigrationLock::~MigrationLock() {
  try {
    release();
  } catch (...) {  // the session is gone: the server has released the lock with it
  }
}

bool MigrationLock::try_acquire() {
  auto r = session_.execute("SELECT pg_try_advisory_lock($1::bigint)", {std::to_string(key_)});
  held_ = !r.rows.empty() && r.rows[0][0] == "t";
  return held_;
}

std::optional<LockHolder> MigrationLock::holder() {
  auto r = session_.execute(
      "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),"
      " coalesce(a.client_addr::text, 'local socket'), coalesce(a.state, ''),"
      " coalesce(date_trunc('second', a.backend_start)::text, '')"
      " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
      " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
      " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
      " AND l.classid::bigint = (($1::bigint >> 32) & 4294967295)"
      " AND l.objid::bigint = ($1::bigint & 4294967295) LIMIT 1",
      {std::to_string(key_)});
  if (r.rows.empty()) return std::nullopt;
  const auto& row = r.rows[0];
  LockHolder h;
  h.pid = std::stoi(row[0].value_or("0"));
  h.application_name = row[1].value_or("");
  h.usename = row[2].value_or("");
  h.client = row[3].value_or("");
  h.state = row[4].value_or("");
  h.since = row[5].value_or("");
  return h;
}

void MigrationLock::acquire(double deadline_s, const RetryPolicy& backoff) {
  const double start = now_s();
  for (int attempt = 1;; ++attempt) {
    if (try_acquire()) {
      log::core()->debug("migration lock taken after {} attempt(s)", attempt);
      return;
    }
    double waited = now_s() - start;
    if (waited >= deadline_s) {
      auto h = holder();
      std::string who = h ? "pid " + std::to_string(h->pid) + " (application_name '" +
                                h->application_name + "', user " + h->usename + ", " + h->client +
                                ", connected since " + h->since + ")"
                          : "another session (it has just released it)";
      char waited_text[32];
      std::snprintf(waited_text, sizeof waited_text, "%.1f", waited);
      throw LockTimeout("the migration lock on database '" + session_.dbname() + "' is held by " +
                        who + "; gave up after " + waited_text + "s");
    }
    if (attempt == 1) {
      if (auto h = holder()) {
        log::core()->info("waiting for the migration lock held by pid {} ({})", h->pid,
                          h->application_name);
      }
    }
    interruptible_sleep(std::min(backoff.delay_seconds(attempt + 1), deadline_s - waited));
  }
}

void MigrationLock::release() {
  if (!held_) return;
  held_ = false;
  if (session_.is_open()) {
    session_.execute("SELECT pg_advisory_unlock($1::bigint)", {std::to_string(key_)});
  }
}

void MigrationLock::check_alive() { session_.execute("SELECT 1"); }

}  // namespace pgsafe
