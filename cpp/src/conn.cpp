// libpq connections: asynchronous connect and query with the socket polled in 100 ms slices, so
// the caller's interrupt check can cancel the statement on the server; errors carry SQLSTATE
// and the server's fields; passwords never leave in a message.
#include "pgsafe/conn.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>

#include "pgsafe/errors.hpp"
#include "pgsafe/log.hpp"

namespace pgsafe {

namespace {

struct ConnDeleter {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
struct ResultDeleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
struct ConninfoDeleter {
  void operator()(PQconninfoOption* o) const noexcept { PQconninfoFree(o); }
};
struct CancelDeleter {
  void operator()(PGcancel* c) const noexcept { PQfreeCancel(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;
using ConninfoPtr = std::unique_ptr<PQconninfoOption, ConninfoDeleter>;
using CancelPtr = std::unique_ptr<PGcancel, CancelDeleter>;
struct FreememDeleter {
  void operator()(char* p) const noexcept { PQfreemem(p); }
};
using CopyBufferPtr = std::unique_ptr<char, FreememDeleter>;
using Clock = std::chrono::steady_clock;

constexpr int kSliceMs = 100;

std::mutex g_check_mutex;
std::shared_ptr<InterruptCheck> g_check;
std::atomic<bool> g_interrupt_pending{false};
thread_local bool t_no_interrupt_check = false;

}  // namespace

bool interrupt_requested() {
  if (t_no_interrupt_check) return false;
  if (g_interrupt_pending.exchange(false)) return true;
  std::shared_ptr<InterruptCheck> check;
  {
    std::lock_guard<std::mutex> guard(g_check_mutex);
    check = g_check;
  }
  return check && *check && (*check)();
}

ScopedNoInterruptCheck::ScopedNoInterruptCheck() noexcept : previous_(t_no_interrupt_check) {
  t_no_interrupt_check = true;
}

ScopedNoInterruptCheck::~ScopedNoInterruptCheck() { t_no_interrupt_check = previous_; }

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  size_t start = 0;
  while (start < s.size() && (s[start] == ' ' || s[start] == '\n')) ++start;
  return s.substr(start);
}

// What a command's results came to: its first error, and the last result that was neither an
// error nor the start of a COPY.
struct Outcome {
  ResultPtr error;
  ResultPtr last;
  int completed = 0;  // successful results before the first error
};

// How a command's results are taken: `await` blocks until more input has arrived and consumes
// it; a COPY the command starts goes to `copy_in` / `copy_out` (by default a COPY FROM STDIN
// is refused and a COPY TO STDOUT read and dropped); `command` sees every other successful
// result before it is kept as the last.
struct ResultHandlers {
  std::function<void()> await;
  std::function<void()> copy_in;
  std::function<void()> copy_out;
  std::function<void()> command;
};

// Takes every result of the command in flight on `c` until libpq has none left, into `out`
// (which the handlers may read as it fills).
void drain_results(PGconn* c, const ResultHandlers& h, Outcome& out) {
  for (;;) {
    while (PQisBusy(c)) h.await();
    ResultPtr res(PQgetResult(c));
    if (!res) return;
    ExecStatusType st = PQresultStatus(res.get());
    if (st == PGRES_COPY_IN) {
      if (h.copy_in) {
        h.copy_in();
      } else {
        PQputCopyEnd(c, "pgsafe does not feed COPY FROM STDIN");
      }
      continue;
    }
    if (st == PGRES_COPY_OUT) {
      if (h.copy_out) {
        h.copy_out();
      } else {
        char* buf = nullptr;
        while (PQgetCopyData(c, &buf, 0) > 0) PQfreemem(buf);
      }
      continue;
    }
    if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR) {
      if (!out.error) out.error = std::move(res);
      continue;
    }
    if (h.command) h.command();
    if (!out.error) ++out.completed;
    out.last = std::move(res);
  }
}

std::string field(const PGresult* res, int code) {
  const char* v = PQresultErrorField(res, code);
  return v ? std::string(v) : std::string();
}

// The password a DSN carries, or the one libpq would take from PGPASSWORD.
std::string dsn_password(const std::string& dsn, const char* keyword = "password") {
  char* err = nullptr;
  ConninfoPtr opts(PQconninfoParse(dsn.c_str(), &err));
  if (err) PQfreemem(err);
  if (opts) {
    for (auto* o = opts.get(); o->keyword; ++o) {
      if (std::strcmp(o->keyword, keyword) == 0 && o->val && *o->val) return o->val;
    }
  }
  if (std::strcmp(keyword, "password") != 0) return {};
  const char* env = std::getenv("PGPASSWORD");
  return env ? std::string(env) : std::string();
}

bool is_conninfo_keyword(const std::string& word) {
  static const std::vector<std::string> kKeywords = [] {
    std::vector<std::string> out;
    ConninfoPtr defaults(PQconndefaults());
    for (auto* o = defaults.get(); o && o->keyword; ++o) out.emplace_back(o->keyword);
    return out;
  }();
  return std::find(kKeywords.begin(), kKeywords.end(), word) != kKeywords.end();
}

// Replaces each "quoted" token of a libpq message with "…" unless it names an option.
std::string redact_quoted(const std::string& msg) {
  std::string out;
  size_t i = 0;
  while (i < msg.size()) {
    size_t open = msg.find('"', i);
    size_t close = open == std::string::npos ? open : msg.find('"', open + 1);
    if (close == std::string::npos) break;
    std::string token = msg.substr(open + 1, close - open - 1);
    out.append(msg, i, open + 1 - i);
    out += (is_conninfo_keyword(token) || token == "=") ? token : "...";
    out += '"';
    i = close + 1;
  }
  out.append(msg, i, std::string::npos);
  return out;
}

}  // namespace

void set_interrupt_check(InterruptCheck check) {
  auto next = check ? std::make_shared<InterruptCheck>(std::move(check)) : nullptr;
  std::lock_guard<std::mutex> guard(g_check_mutex);
  g_check = std::move(next);
}

bool consume_pending_interrupt() { return g_interrupt_pending.exchange(false); }

void interruptible_sleep(double seconds) {
  using Clock = std::chrono::steady_clock;
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(seconds));
  for (;;) {
    if (interrupt_requested()) throw Interrupted();
    const auto now = Clock::now();
    if (now >= until) return;
    const Clock::duration slice = std::chrono::milliseconds(kSliceMs);
    std::this_thread::sleep_for(std::min(until - now, slice));
  }
}

std::string scrub_secret(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  // A short password is masked only where it stands alone: masking every "b" of a message
  // would garble it without hiding anything a reader could use.
  const bool whole_word_only = secret.size() < 6;
  auto word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  size_t pos = 0;
  while ((pos = text.find(secret, pos)) != std::string::npos) {
    size_t end = pos + secret.size();
    bool alone =
        (pos == 0 || !word_char(text[pos - 1])) && (end >= text.size() || !word_char(text[end]));
    if (whole_word_only && !alone) {
      pos = end;
      continue;
    }
    text.replace(pos, secret.size(), "****");
    pos += 4;
  }
  return text;
}

struct Connection::Impl {
  // Held while a command runs: close() never frees the PGconn under it, it asks for a close
  // that execute() carries out on its way out.
  std::mutex mutex;
  std::atomic<bool> close_requested{false};
  ConnPtr conn;
  CancelPtr cancel_handle;  // independent of `conn`: usable from any thread at any time
  int backend_pid = 0;
  int last_completed = 0;  // of the last execute()
  int server_version = 0;
  std::string dbname, user, host, port;
  std::string dsn;  // as given, password and all: shown only masked (by pgsafe.errors)
  std::string password;
  std::string ssl_password;

  std::string scrub(std::string text) const {
    return scrub_secret(scrub_secret(std::move(text), password), ssl_password);
  }

  [[noreturn]] void fail_connection(const std::string& what) const {
    DbErrorFields f;
    std::string msg = conn ? trim(PQerrorMessage(conn.get())) : std::string();
    f.sqlstate = "08006";
    f.message = scrub(what + (msg.empty() ? "" : ": " + msg));
    f.connection_usable = conn && PQstatus(conn.get()) == CONNECTION_OK;
    if (!f.connection_usable) f.sqlstate = "08006";
    throw DbError(std::move(f));
  }

  // Waits until the socket is ready; returns false on an interrupt request.
  bool wait(bool for_write, std::chrono::steady_clock::time_point deadline,
            bool check_interrupt = true) const {
    int sock = PQsocket(conn.get());
    if (sock < 0) fail_connection("connection lost");
    for (;;) {
      if (check_interrupt && interrupt_requested()) return false;
      if (deadline != std::chrono::steady_clock::time_point::max() &&
          std::chrono::steady_clock::now() >= deadline) {
        return true;  // the caller checks the deadline itself
      }
      pollfd pfd{sock, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
      int rc = ::poll(&pfd, 1, kSliceMs);
      if (rc > 0) return true;
      if (rc < 0 && errno != EINTR) fail_connection("poll failed");
    }
  }

  // Like wait(false, ...) for a stream of input: consults the interrupt check at most once per
  // slice (not once per network read, which is tens of thousands of times a second in a COPY).
  bool wait_readable(Clock::time_point& next_check, bool check_interrupt,
                     Clock::time_point deadline) const {
    int sock = PQsocket(conn.get());
    if (sock < 0) fail_connection("connection lost");
    for (;;) {
      const auto now = Clock::now();
      if (check_interrupt && now >= next_check) {
        next_check = now + std::chrono::milliseconds(kSliceMs);
        if (interrupt_requested()) return false;
      }
      if (now >= deadline) return true;  // the caller checks the deadline itself
      pollfd pfd{sock, POLLIN, 0};
      int rc = ::poll(&pfd, 1, kSliceMs);
      if (rc > 0) return true;
      if (rc < 0 && errno != EINTR) fail_connection("poll failed");
    }
  }

  // Throws the DbError a failed command's result describes, scrubbed of passwords.
  [[noreturn]] void raise_result_error(const PGresult* r, const std::string& sql) const {
    DbErrorFields f;
    f.sqlstate = field(r, PG_DIAG_SQLSTATE);
    f.severity = field(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    f.message = field(r, PG_DIAG_MESSAGE_PRIMARY);
    if (f.message.empty()) f.message = trim(PQresultErrorMessage(r));
    f.detail = field(r, PG_DIAG_MESSAGE_DETAIL);
    f.hint = field(r, PG_DIAG_MESSAGE_HINT);
    f.context = field(r, PG_DIAG_CONTEXT);
    f.schema_name = field(r, PG_DIAG_SCHEMA_NAME);
    f.table_name = field(r, PG_DIAG_TABLE_NAME);
    f.column_name = field(r, PG_DIAG_COLUMN_NAME);
    f.constraint_name = field(r, PG_DIAG_CONSTRAINT_NAME);
    std::string pos = field(r, PG_DIAG_STATEMENT_POSITION);
    f.position = pos.empty() ? 0 : std::atoi(pos.c_str());
    f.statement = sql;
    f.connection_usable = conn && PQstatus(conn.get()) == CONNECTION_OK;
    if (f.sqlstate.empty()) f.sqlstate = f.connection_usable ? "XX000" : "08006";
    for (auto* s : {&f.message, &f.detail, &f.hint, &f.context}) {
      *s = scrub(*s);
    }
    throw DbError(std::move(f));
  }

  // Declared right after taking `mutex`, so it runs first on the way out: carries out a
  // close() asked for while a command ran.
  struct DeferredClose {
    Impl* impl;
    explicit DeferredClose(Impl* i) : impl(i) {}
    DeferredClose(const DeferredClose&) = delete;
    DeferredClose& operator=(const DeferredClose&) = delete;
    ~DeferredClose() {
      if (impl->close_requested.exchange(false)) impl->conn.reset();
    }
  };

  // One command, from sending it to its last result: the SQL and its parameters checked for
  // NUL characters, `mutex` held (a close() asked for meanwhile is carried out on the way out),
  // the connection open, the command sent.
  class Command {
   public:
    Command(Impl& impl, const std::string& sql, const std::vector<Value>& params = {})
        : busy_(checked(impl, sql, params)), deferred_close_(&impl) {
      if (!impl.conn) throw ConfigError("connection is closed");
      conn = impl.conn.get();
      int ok;
      if (params.empty()) {
        ok = PQsendQuery(conn, sql.c_str());
      } else {
        std::vector<const char*> values;
        values.reserve(params.size());
        for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
        ok = PQsendQueryParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, 0);
      }
      if (!ok) impl.fail_connection("cannot send statement");
    }
    PGconn* conn = nullptr;

   private:
    static std::mutex& checked(Impl& impl, const std::string& sql,
                               const std::vector<Value>& params) {
      if (sql.find('\0') != std::string::npos) {
        throw ConfigError(
            "SQL text contains a NUL character; PostgreSQL would silently cut it there");
      }
      for (size_t i = 0; i < params.size(); ++i) {
        if (params[i] && params[i]->find('\0') != std::string::npos) {
          throw ConfigError("parameter $" + std::to_string(i + 1) + " contains a NUL character");
        }
      }
      return impl.mutex;
    }
    std::lock_guard<std::mutex> busy_;
    DeferredClose deferred_close_;  // after busy_: runs first on the way out
  };

  void cancel() const {
    if (!cancel_handle) return;
    char err[256];
    if (PQcancel(cancel_handle.get(), err, sizeof err) == 0) {
      log::core()->warn("cancel request failed: {}", err);
    }
  }

  static void notice_receiver(void* /*arg*/, const PGresult* res) {
    std::string severity = field(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    std::string message = field(res, PG_DIAG_MESSAGE_PRIMARY);
    if (severity == "WARNING") {
      log::core()->warn("server {}: {}", severity, message);
    } else {
      log::core()->info("server {}: {}", severity, message);
    }
  }
};

Connection::Connection(const std::string& dsn, const std::string& application_name,
                       double connect_timeout_s)
    : impl_(std::make_unique<Impl>()) {
  impl_->password = dsn_password(dsn);
  impl_->ssl_password = dsn_password(dsn, "sslpassword");
  impl_->dsn = dsn;
  // The DSN's own connect_timeout (or PGCONNECT_TIMEOUT) wins over the caller's default.
  double timeout_s = connect_timeout_s;
  {
    // Unparsed, the DSN's password is unknown, so neither the DSN nor the bits of it libpq
    // quotes back can be shown (conninfo_parse's error names options only).
    const char* env_timeout = std::getenv("PGCONNECT_TIMEOUT");
    std::string given = env_timeout ? env_timeout : "";
    for (const auto& [keyword, value] : conninfo_parse(dsn)) {
      if (keyword == "connect_timeout") given = value;
    }
    if (!given.empty()) {
      char* end = nullptr;
      double v = std::strtod(given.c_str(), &end);
      if (end == given.c_str() || *end != '\0' || v < 0) {
        throw ConfigError("invalid DSN: connect_timeout '" + given +
                          "' is not a number of seconds");
      }
      if (v > 0) timeout_s = v;  // libpq: 0 means wait forever; keep the caller's bound
    }
  }
  std::string timeout = std::to_string(std::max(2, static_cast<int>(timeout_s + 0.999)));
  // Keepalives notice a silently dropped TCP session (a NAT timing out a long index build) in
  // minutes, not hours. Every keyword before "dbname" can be overridden by the DSN.
  const char* keywords[] = {
      "connect_timeout",     "fallback_application_name", "client_encoding", "keepalives_idle",
      "keepalives_interval", "keepalives_count",          "dbname",          nullptr};
  const char* values[] = {
      timeout.c_str(), application_name.c_str(), "UTF8", "60", "10", "6", dsn.c_str(), nullptr};
  impl_->conn.reset(PQconnectStartParams(keywords, values, 1));
  if (!impl_->conn) throw Error("libpq: out of memory");
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));
  auto where = [this] {
    const char* host = PQhost(impl_->conn.get());
    const char* port = PQport(impl_->conn.get());
    const char* db = PQdb(impl_->conn.get());
    std::string h = host && *host ? host : "localhost";
    return "database '" + std::string(db ? db : "") + "' at " + h + ":" + (port ? port : "");
  };
  auto fail = [&](const std::string& reason) {
    std::string msg = trim(PQerrorMessage(impl_->conn.get()));
    // An option libpq could not read (a port that is not a number, ...) is a bad DSN.
    if (msg.rfind("invalid ", 0) == 0 && msg.find("connection option") != std::string::npos) {
      impl_->conn.reset();
      throw ConfigError("invalid DSN: " + impl_->scrub(msg));
    }
    DbErrorFields f;
    // libpq keeps no SQLSTATE for a failed connection: recover it from the server's FATAL text.
    f.sqlstate = "08001";
    auto has = [&msg](const char* text) { return msg.find(text) != std::string::npos; };
    if (has("FATAL:  password authentication failed") || has("fe_sendauth: no password supplied")) {
      f.sqlstate = "28P01";
    } else if (has("FATAL:  database \"") && has("\" does not exist")) {
      f.sqlstate = "3D000";
    } else if ((has("FATAL:  role \"") && has("\" does not exist")) ||
               has("FATAL:  no pg_hba.conf entry") || has("authentication failed")) {
      f.sqlstate = "28000";
    }
    // libpq writes one "connection to server at ... failed: WHY" line per address it tried,
    // each maybe followed by a tab-indented hint; the last WHY says it best.
    std::string why;
    size_t start = 0;
    while (start <= msg.size()) {
      size_t nl = msg.find('\n', start);
      std::string line =
          msg.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      size_t failed = line.find("failed: ");
      if (failed != std::string::npos) why = trim(line.substr(failed + 8));
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
    if (why.empty()) why = reason;
    f.message = impl_->scrub("cannot connect to " + where() + ": " + why);
    f.detail = impl_->scrub(msg);
    f.connection_usable = false;
    impl_->conn.reset();
    throw DbError(std::move(f));
  };
  if (PQstatus(impl_->conn.get()) == CONNECTION_BAD) fail("connection failed");
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  for (;;) {
    if (state == PGRES_POLLING_OK) break;
    if (state == PGRES_POLLING_FAILED) fail("connection failed");
    if (!impl_->wait(state == PGRES_POLLING_WRITING, deadline)) {
      impl_->conn.reset();
      throw Interrupted();
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      char text[64];
      std::snprintf(text, sizeof text, "timed out after %gs", timeout_s);
      fail(text);
    }
    state = PQconnectPoll(impl_->conn.get());
  }
  PGconn* c = impl_->conn.get();
  PQsetNoticeReceiver(c, &Impl::notice_receiver, nullptr);
  impl_->cancel_handle.reset(PQgetCancel(c));
  impl_->backend_pid = PQbackendPID(c);
  impl_->server_version = PQserverVersion(c);
  impl_->dbname = PQdb(c) ? PQdb(c) : "";
  impl_->user = PQuser(c) ? PQuser(c) : "";
  impl_->host = PQhost(c) ? PQhost(c) : "";
  impl_->port = PQport(c) ? PQport(c) : "";
  log::core()->debug("connected to {} (pid {})", where(), impl_->backend_pid);
}

Connection::~Connection() = default;
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;

int Connection::last_completed() const noexcept { return impl_ ? impl_->last_completed : 0; }

Result Connection::execute(const std::string& sql, const std::vector<Value>& params) {
  Impl::Command command(*impl_, sql, params);
  PGconn* c = command.conn;
  const auto forever = std::chrono::steady_clock::time_point::max();
  bool interrupted = false;
  auto on_interrupt = [&] {
    if (!interrupted) {
      interrupted = true;
      log::core()->warn("interrupted: cancelling the running statement on the server");
      impl_->cancel();
    }
  };
  while (PQflush(c) == 1) {
    if (!impl_->wait(true, forever, !interrupted)) on_interrupt();
  }
  auto cancel_deadline = forever;
  ResultHandlers handlers;
  handlers.await = [&] {
    if (!impl_->wait(false, cancel_deadline, !interrupted)) {
      on_interrupt();
      cancel_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      return;
    }
    if (interrupted && std::chrono::steady_clock::now() >= cancel_deadline) {
      impl_->conn.reset();  // the server ignores the cancel: drop the session instead
      throw Interrupted();
    }
    if (!PQconsumeInput(c)) impl_->fail_connection("connection lost while running a statement");
  };
  Outcome outcome;
  impl_->last_completed = 0;
  drain_results(c, handlers, outcome);
  impl_->last_completed = outcome.completed;
  if (interrupted && outcome.error) throw Interrupted();
  if (interrupted) g_interrupt_pending = true;  // too late to cancel: it completed; stop next
  if (outcome.error) impl_->raise_result_error(outcome.error.get(), sql);
  Result out;
  if (!outcome.last) return out;
  const PGresult* r = outcome.last.get();
  out.status = PQcmdStatus(const_cast<PGresult*>(r));
  if (PQresultStatus(r) == PGRES_TUPLES_OK) {
    int nf = PQnfields(r);
    int nt = PQntuples(r);
    out.columns.reserve(nf);
    for (int j = 0; j < nf; ++j) out.columns.emplace_back(PQfname(r, j));
    out.rows.reserve(nt);
    for (int i = 0; i < nt; ++i) {
      Row row;
      row.reserve(nf);
      for (int j = 0; j < nf; ++j) {
        if (PQgetisnull(r, i, j)) {
          row.emplace_back(std::nullopt);
        } else {
          row.emplace_back(std::string(PQgetvalue(r, i, j), PQgetlength(r, i, j)));
        }
      }
      out.rows.push_back(std::move(row));
    }
    out.rowcount = nt;
  } else {
    const char* n = PQcmdTuples(const_cast<PGresult*>(r));
    out.rowcount = (n && *n) ? std::atol(n) : -1;
  }
  return out;
}

CopyStats Connection::copy_out(const std::string& sql, const CopyRowCallback& on_row) {
  Impl::Command command(*impl_, sql);
  PGconn* c = command.conn;
  const auto forever = Clock::time_point::max();
  bool interrupted = false;
  bool cancelled = false;
  std::exception_ptr callback_error;
  auto cancel_deadline = forever;
  auto next_check = Clock::now();
  auto request_cancel = [&] {
    if (cancelled) return;
    cancelled = true;
    impl_->cancel();
    cancel_deadline = Clock::now() + std::chrono::seconds(10);
  };
  auto on_interrupt = [&] {
    if (interrupted) return;
    interrupted = true;
    log::core()->warn("interrupted: cancelling the running COPY on the server");
    request_cancel();
  };
  while (PQflush(c) == 1) {
    if (!impl_->wait(true, forever, !interrupted)) on_interrupt();
  }
  // Blocks until more input is in libpq's buffer; after a cancel the server gets 10 s to stop
  // before the session is dropped instead.
  auto await_input = [&] {
    if (!impl_->wait_readable(next_check, !cancelled, cancel_deadline)) {
      on_interrupt();
      return;
    }
    if (cancelled && Clock::now() >= cancel_deadline) {
      impl_->conn.reset();
      if (callback_error) std::rethrow_exception(callback_error);
      throw Interrupted();
    }
    if (!PQconsumeInput(c)) impl_->fail_connection("connection lost while running a COPY");
  };
  // While rows stream, more input is usually waiting already: it is read before paying for a
  // poll(), and the clock decides when to consult the interrupt check and the cancel deadline.
  auto read_ahead = [&] {
    const auto now = Clock::now();
    if (!cancelled && now >= next_check) {
      next_check = now + std::chrono::milliseconds(kSliceMs);
      if (interrupt_requested()) on_interrupt();
    }
    if (cancelled && now >= cancel_deadline) {
      impl_->conn.reset();
      if (callback_error) std::rethrow_exception(callback_error);
      throw Interrupted();
    }
    if (!PQconsumeInput(c)) impl_->fail_connection("connection lost while running a COPY");
  };
  CopyStats stats;
  // Rows go to `on_row` until it throws; after that (or for a COPY nobody asked for) they are
  // read and dropped, so the protocol reaches its end and the connection stays usable.
  auto stream = [&](bool deliver) {
    bool read_ahead_tried = false;
    for (;;) {
      char* raw = nullptr;
      int n = PQgetCopyData(c, &raw, 1);
      if (n > 0) {
        read_ahead_tried = false;
        CopyBufferPtr row(raw);
        if (!deliver || callback_error) continue;
        ++stats.rows;
        stats.bytes += static_cast<unsigned long long>(n);
        try {
          on_row(std::string_view(row.get(), static_cast<size_t>(n)));
        } catch (...) {
          callback_error = std::current_exception();
          request_cancel();
        }
      } else if (n == 0) {
        if (read_ahead_tried) {
          await_input();
        } else {
          read_ahead();
        }
        read_ahead_tried = !read_ahead_tried;
      } else if (n == -1) {
        return;
      } else {
        impl_->fail_connection("connection lost while running a COPY");
      }
    }
  };
  bool streamed = false;
  bool refused = false;
  Outcome outcome;
  ResultHandlers handlers;
  handlers.await = await_input;
  handlers.copy_out = [&] {
    stream(!streamed && !refused && !outcome.error);
    streamed = true;
  };
  handlers.copy_in = [&] {
    PQputCopyEnd(c, "pgsafe does not feed COPY FROM STDIN");
    refused = true;
  };
  handlers.command = [&] {
    if (!streamed) refused = true;  // a statement that is not a COPY TO STDOUT ran first
  };
  drain_results(c, handlers, outcome);
  if (callback_error) std::rethrow_exception(callback_error);
  if (interrupted && outcome.error) throw Interrupted();
  if (interrupted) g_interrupt_pending = true;  // too late to cancel: it completed; stop next
  // Checked before `error`: refusing a COPY FROM STDIN is what made the server fail it.
  if (refused || (!streamed && !outcome.error)) {
    throw ConfigError("copy_out runs one COPY ... TO STDOUT statement, not: " + sql.substr(0, 80));
  }
  if (outcome.error) impl_->raise_result_error(outcome.error.get(), sql);
  const char* tag = outcome.last ? PQcmdTuples(outcome.last.get()) : nullptr;
  if (tag && *tag && std::atoll(tag) != stats.rows) {
    throw Error("COPY reported " + std::string(tag) + " rows but " + std::to_string(stats.rows) +
                " arrived");
  }
  return stats;
}

long long Connection::copy_in(const std::string& sql, std::string_view data) {
  bool sent = false;
  return copy_in(sql, [&](std::string& piece) {
    if (sent) return false;
    piece.assign(data);
    sent = true;
    return true;
  });
}

long long Connection::copy_in(const std::string& sql,
                              const std::function<bool(std::string& piece)>& next) {
  Impl::Command command(*impl_, sql);
  PGconn* c = command.conn;
  const auto forever = Clock::time_point::max();
  ResultHandlers handlers;
  handlers.await = [&] {
    impl_->wait(false, forever, false);
    if (!PQconsumeInput(c)) impl_->fail_connection("connection lost while running a COPY");
  };
  bool fed = false;
  handlers.copy_in = [&] {
    if (fed) {
      PQputCopyEnd(c, "pgsafe feeds one COPY FROM STDIN per call");
      return;
    }
    fed = true;
    // Blocking sends: the server parses one piece while the next is being produced.
    std::string piece;
    std::exception_ptr producer_error;
    for (;;) {
      bool more = false;
      try {
        piece.clear();
        more = next(piece);
      } catch (...) {
        producer_error = std::current_exception();
      }
      if (producer_error || !more) break;
      constexpr size_t kPiece = 1 << 20;
      for (size_t pos = 0; pos < piece.size(); pos += kPiece) {
        size_t n = std::min(kPiece, piece.size() - pos);
        if (PQputCopyData(c, piece.data() + pos, static_cast<int>(n)) != 1) {
          impl_->fail_connection("connection lost while sending COPY data");
        }
      }
    }
    if (producer_error) {
      PQputCopyEnd(c, "pgsafe: the COPY input could not be produced");
      while (PQflush(c) == 1) impl_->wait(true, forever, false);
      Outcome ignored;
      drain_results(c, {handlers.await, {}, {}, {}}, ignored);
      std::rethrow_exception(producer_error);
    }
    if (PQputCopyEnd(c, nullptr) != 1) impl_->fail_connection("cannot end COPY");
    while (PQflush(c) == 1) impl_->wait(true, forever, false);
  };
  Outcome outcome;
  drain_results(c, handlers, outcome);
  if (!fed && !outcome.error) {
    throw ConfigError("copy_in runs one COPY ... FROM STDIN statement, not: " + sql.substr(0, 80));
  }
  if (outcome.error) impl_->raise_result_error(outcome.error.get(), sql);
  const char* tag = outcome.last ? PQcmdTuples(outcome.last.get()) : nullptr;
  return tag && *tag ? std::atoll(tag) : 0;
}

bool Connection::cancel() {
  if (!is_open()) return false;
  impl_->cancel();
  return true;
}

void Connection::close() noexcept {
  if (!impl_) return;
  std::unique_lock<std::mutex> idle(impl_->mutex, std::try_to_lock);
  if (idle.owns_lock()) {
    impl_->conn.reset();
    return;
  }
  impl_->close_requested = true;
  impl_->cancel();
}

bool Connection::is_open() const noexcept { return impl_ && impl_->conn != nullptr; }

int Connection::backend_pid() const { return is_open() ? impl_->backend_pid : 0; }

int Connection::server_version() const { return is_open() ? impl_->server_version : 0; }

void Connection::rollback_quietly(std::string_view who) noexcept {
  TxStatus st = transaction_status();
  if (st != TxStatus::kInTransaction && st != TxStatus::kInError) return;
  try {
    execute("ROLLBACK");
  } catch (const std::exception& e) {
    try {
      log::core()->warn("{}: ROLLBACK failed: {}", who, e.what());
    } catch (...) {  // logging must not turn cleanup into a crash
    }
  }
}

std::string sql_literal(const std::string& s) {
  std::string out = "'";
  for (char ch : s) {
    out += ch;
    if (ch == '\'') out += '\'';
  }
  return out + "'";
}

std::vector<std::pair<std::string, std::string>> conninfo_parse(const std::string& dsn) {
  char* err = nullptr;
  ConninfoPtr parsed(PQconninfoParse(dsn.c_str(), &err));
  if (!parsed) {
    std::string msg = err ? redact_quoted(trim(err)) : "cannot parse";
    if (err) PQfreemem(err);
    throw ConfigError("invalid DSN: " + msg);
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (auto* o = parsed.get(); o->keyword; ++o) {
    if (o->val && *o->val) out.emplace_back(o->keyword, o->val);
  }
  return out;
}

std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char ch : items[i]) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  return out + "}";
}

TxStatus Connection::transaction_status() const {
  if (!is_open()) return TxStatus::kUnknown;
  switch (PQtransactionStatus(impl_->conn.get())) {
    case PQTRANS_IDLE:
      return TxStatus::kIdle;
    case PQTRANS_ACTIVE:
      return TxStatus::kActive;
    case PQTRANS_INTRANS:
      return TxStatus::kInTransaction;
    case PQTRANS_INERROR:
      return TxStatus::kInError;
    default:
      return TxStatus::kUnknown;
  }
}

std::string Connection::dbname() const { return impl_ ? impl_->dbname : std::string(); }
std::string Connection::user() const { return impl_ ? impl_->user : std::string(); }
std::string Connection::host() const { return impl_ ? impl_->host : std::string(); }
std::string Connection::port() const { return impl_ ? impl_->port : std::string(); }
const std::string& Connection::dsn() const noexcept { return impl_->dsn; }

}  // namespace pgsafe
