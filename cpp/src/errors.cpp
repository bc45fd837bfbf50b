// Constructors of the core's error types.
#include "pgsafe/errors.hpp"

#include <utility>

namespace pgsafe {

namespace {
std::string describe(const DbErrorFields& f) {
  std::string text = f.message.empty() ? std::string("database error") : f.message;
  if (!f.sqlstate.empty()) text += " (SQLSTATE " + f.sqlstate + ")";
  return text;
}
}  // namespace

DbError::DbError(DbErrorFields fields) : Error(describe(fields)), fields_(std::move(fields)) {}

bool DbError::retryable() const noexcept {
  return fields_.sqlstate == "55P03" || fields_.sqlstate == "40P01";
}

FileError::FileError(const std::string& path, const std::string& reason)
    : Error(path + ": " + reason), path_(path) {}

}  // namespace pgsafe
