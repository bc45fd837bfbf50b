// The schema fingerprint: a canonical, deterministic description of a database's catalog, read
// in one repeatable-read read-only transaction, keyed by names (never OIDs) and sorted, so two
// databases with the same schema give the same text and SHA-256 whatever order it was built in.
#pragma once

#include <string>
#include <vector>

#include "pgsafe/conn.hpp"

namespace pgsafe {

// One catalog object. `kind` is a fixed word ("table", "column", "index", ...); `name` is its
// quoted, schema-qualified identity (a function's includes its argument types; a column's,
// constraint's, trigger's or policy's includes its table); `definition` is canonical text, one
// property per line, that changes exactly when the object does.
struct SchemaObject {
  std::string kind;
  std::string name;
  std::string definition;

  bool operator==(const SchemaObject&) const = default;
};

struct SchemaOptions {
  // Schemas left out entirely (with everything in them), besides the system ones (pg_catalog,
  // information_schema, pg_toast*, temporary schemas), which are always left out.
  std::vector<std::string> exclude_schemas{"pgsafe"};
};

struct SchemaFingerprint {
  std::vector<SchemaObject> objects;  // sorted by (kind, name), bytewise
  std::string sha256;                 // of schema_canonical_text(objects)
  int server_version = 0;             // e.g. 150020; definitions are comparable within a major
};

// Reads the catalog. The connection must be idle (not inside a transaction); the read runs in
// its own REPEATABLE READ READ ONLY transaction with fixed output settings (empty search_path,
// ISO dates, UTC) and ends with ROLLBACK, so nothing about the session leaks either way.
// The server's deparsers (pg_get_*def) read the current catalog, not the snapshot, so DDL that
// commits during the read can show through (a newer definition, or none for an object dropped
// meanwhile), as with pg_dump without its locks: fingerprint again if the schema was changing.
// Throws DbError (the connection stays usable unless the error says otherwise), and ConfigError
// for a closed or busy connection.
SchemaFingerprint schema_fingerprint(Connection& conn, const SchemaOptions& options = {});

// The canonical serialisation: a version line, then one compact JSON array
// [kind, name, definition] per object in (kind, name) order. Sorts its own copy, so any order of
// the same objects gives the same text.
std::string schema_canonical_text(std::vector<SchemaObject> objects);
// sha256_hex(schema_canonical_text(objects)).
std::string schema_digest(const std::vector<SchemaObject>& objects);

}  // namespace pgsafe
