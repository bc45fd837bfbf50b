// COPY text rows (as COPY TO writes them with pgsafe's session settings: DateStyle ISO,
// bytea_output hex, shortest-exact floats) rewritten as COPY BINARY for the server to load.
// The server then skips line splitting, de-escaping and the text input functions of these
// types, which is most of what a COPY FROM costs it; restore does the rewriting on its own
// threads, next to the server rather than in its way.
//
// Only exact rewrites are made: a field that is not in the canonical form its type's output
// function writes (or a type this file does not know) makes convert() return false, and the
// caller loads that data as text instead.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgsafe {

enum class FieldKind : std::uint8_t {
  kText,  // text, varchar, bpchar, name, json, and enum labels: the de-escaped bytes
  kBool,
  kInt2,
  kInt4,
  kInt8,
  kOid,
  kFloat4,
  kFloat8,
  kNumeric,
  kDate,
  kTime,
  kTimestamp,
  kTimestampTz,
  kUuid,
  kBytea,
  kJsonb,
};

// The kind of a built-in type by its OID (enums and domains are resolved by the caller);
// nullopt for a type without an exact rewrite here.
std::optional<FieldKind> field_kind_of_type(unsigned int type_oid);

class CopyTextToBinary {
 public:
  explicit CopyTextToBinary(std::vector<FieldKind> fields);

  // The 19-byte COPY BINARY header (signature, flags, no extension) and the trailer.
  static std::string_view header();
  static std::string_view trailer();

  // Appends the binary form of the complete lines (each ending in '\n') in `text` to `out`
  // and counts them in `rows`. Returns false when a line has the wrong number of fields or a
  // field is not in its type's canonical text form; `out` and `rows` are then unspecified.
  bool convert(std::string_view text, std::string& out, long long& rows) const;

  // Converts one field (never NULL) alone; for tests. nullopt when it is not convertible.
  static std::optional<std::string> convert_field(FieldKind kind, std::string_view text);

 private:
  std::vector<FieldKind> fields_;
};

// COPY text rows (complete lines) of columns of the built-in types `type_oids` as the whole
// COPY BINARY stream restore sends: header, rows, trailer. nullopt when a type or a field has
// no exact rewrite.
std::optional<std::string> copy_text_to_binary(const std::vector<unsigned int>& type_oids,
                                               std::string_view text);

}  // namespace pgsafe
