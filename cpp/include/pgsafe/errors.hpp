// Errors thrown by the core. The bindings translate each one into a pgsafe.Error subclass;
// expected outcomes (a finding, a lock that was not granted) are return values, not these.
#pragma once

#include <stdexcept>
#include <string>

namespace pgsafe {

// Root of every error the core throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Everything the server (or libpq on its behalf) said about a failed command.
struct DbErrorFields {
  std::string sqlstate;
  std::string severity;
  std::string message;
  std::string detail;
  std::string hint;
  std::string context;
  std::string statement;
  std::string schema_name;
  std::string table_name;
  std::string column_name;
  std::string constraint_name;
  int position = 0;  // 1-based character offset into `statement`; 0 when unknown
  // false when the connection is gone or unusable: the caller must reconnect, not retry on it.
  bool connection_usable = true;
};

class DbError : public Error {
 public:
  explicit DbError(DbErrorFields fields);
  const DbErrorFields& fields() const noexcept { return fields_; }
  const std::string& sqlstate() const noexcept { return fields_.sqlstate; }
  // 55P03 lock_not_available and 40P01 deadlock_detected: the whole transaction may be retried.
  bool retryable() const noexcept;

 private:
  DbErrorFields fields_;
};

// A Python signal handler (Ctrl-C) asked the core to stop; any running statement was cancelled
// on the server before this was thrown.
class Interrupted : public Error {
 public:
  Interrupted() : Error("interrupted") {}
};

// A file that cannot be opened or read.
class FileError : public Error {
 public:
  FileError(const std::string& path, const std::string& reason);
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

// A DSN or option the core cannot use: nothing was attempted.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// The migration lock could not be taken before the deadline.
class LockTimeout : public Error {
 public:
  using Error::Error;
};

}  // namespace pgsafe
