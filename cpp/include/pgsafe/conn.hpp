// A libpq connection with RAII handles. Every network wait polls the socket in short slices
// and asks the installed interrupt check whether to stop, so Ctrl-C cancels the running
// statement on the server. libpq types never appear here.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgsafe {

using Value = std::optional<std::string>;  // text format; nullopt is SQL NULL
using Row = std::vector<Value>;

struct Result {
  std::vector<std::string> columns;
  std::vector<Row> rows;
  std::string status;  // command tag, e.g. "CREATE TABLE", "INSERT 0 3"
  long rowcount = -1;  // rows affected or returned; -1 when not applicable
};

// What copy_out() streamed: rows handed to the callback (checked against the server's "COPY n"
// tag) and their bytes, newlines included.
struct CopyStats {
  long long rows = 0;
  unsigned long long bytes = 0;
};
// Receives one data row of COPY output: a whole line of COPY text with its trailing newline,
// valid only during the call.
using CopyRowCallback = std::function<void(std::string_view row)>;

// Called about every 100 ms while the core waits on the network or sleeps. Returns true to ask
// the core to stop: the running statement is cancelled and Interrupted is thrown.
using InterruptCheck = std::function<bool()>;
void set_interrupt_check(InterruptCheck check);
// Consults the interrupt check once (taking a pending interrupt): true means stop.
bool interrupt_requested();
// While alive, the core's waits on this thread do not consult the interrupt check: for worker
// threads whose coordinator watches for interrupts and cancels their statements itself (the
// check runs Python's signal handlers, which only the main thread can run).
class ScopedNoInterruptCheck {
 public:
  ScopedNoInterruptCheck() noexcept;
  ~ScopedNoInterruptCheck();
  ScopedNoInterruptCheck(const ScopedNoInterruptCheck&) = delete;
  ScopedNoInterruptCheck& operator=(const ScopedNoInterruptCheck&) = delete;

 private:
  bool previous_;
};
// Sleeps for `seconds`, polling the interrupt check; throws Interrupted.
void interruptible_sleep(double seconds);
// An interrupt that arrived while a statement was finishing successfully is not lost: the
// statement's result is returned and the next wait throws Interrupted. Callers that return to
// Python instead take it here (true once per such interrupt).
bool consume_pending_interrupt();

// Replaces every occurrence of `secret` in `text` with "****" (no-op for an empty secret).
std::string scrub_secret(std::string text, const std::string& secret);

// The keywords a DSN (a postgresql:// URL or key=value conninfo) sets, with their values, as
// libpq reads them (PQconninfoParse). Throws ConfigError, quoting only option names, when libpq
// cannot parse it.
std::vector<std::pair<std::string, std::string>> conninfo_parse(const std::string& dsn);

// 'it''s': a string literal for SQL text built by the core (standard_conforming_strings on).
std::string sql_literal(const std::string& s);
// {"a","b"}: a text[] literal, for passing a list as one query parameter.
std::string text_array(const std::vector<std::string>& items);

enum class TxStatus { kIdle, kActive, kInTransaction, kInError, kUnknown };

class Connection {
 public:
  // `dsn` is anything libpq accepts: a URL, key=value pairs, or "" for the PG* variables and
  // service files. Throws DbError (SQLSTATE class 08, or 28xxx for authentication) on failure.
  explicit Connection(const std::string& dsn, const std::string& application_name = "pgsafe",
                      double connect_timeout_s = 10.0);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;

  // Runs one command (several only without params, via the simple protocol). Throws DbError.
  Result execute(const std::string& sql, const std::vector<Value>& params = {});
  // How many statements of the last execute() completed (one result each): for a query of
  // several statements that failed, the 0-based index of the one that failed.
  int last_completed() const noexcept;
  // Runs one `COPY ... TO STDOUT` (text or csv) and hands each row to `on_row` as it arrives,
  // without buffering the result. Interrupts cancel it as for execute(). An exception thrown by
  // `on_row` cancels the COPY on the server, drains what is in flight so the connection stays
  // usable, and is rethrown. Throws ConfigError, with nothing left running, for a statement
  // that does not start a COPY TO STDOUT; DbError for a server error, before or mid-stream.
  CopyStats copy_out(const std::string& sql, const CopyRowCallback& on_row);
  // Runs one `COPY ... FROM STDIN` (text) and sends as its input what `next` produces: it
  // fills `piece` (whole rows or not) and returns false once there is no more (the `\.` end
  // marker is not part of it). Returns the rows the server reports. Waits are not
  // interruptible here: a coordinator cancels it with cancel(). An exception from `next` ends
  // the COPY with an error on the server and is rethrown. Throws ConfigError for a statement
  // that does not start a COPY FROM STDIN, DbError for a server error.
  long long copy_in(const std::string& sql, const std::function<bool(std::string& piece)>& next);
  long long copy_in(const std::string& sql, std::string_view data);
  // Sends a cancel request for whatever the connection is running; safe from any thread.
  bool cancel();
  // Closes now, or, if a command is running (on another thread, or in a signal handler called
  // from this one), cancels it and closes as soon as it returns. Never blocks.
  void close() noexcept;

  bool is_open() const noexcept;
  int backend_pid() const;
  int server_version() const;
  TxStatus transaction_status() const;
  // Ends an open or failed transaction with ROLLBACK on a cleanup path: a failure (the server
  // went away) is logged as "<who>: ROLLBACK failed: ..." and swallowed, never thrown.
  void rollback_quietly(std::string_view who) noexcept;
  std::string dbname() const;
  std::string user() const;
  std::string host() const;
  std::string port() const;
  // The DSN as given, password included: the core never shows it; the bindings show it masked
  // by pgsafe.errors.mask_password, pgsafe's one masker.
  const std::string& dsn() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgsafe
