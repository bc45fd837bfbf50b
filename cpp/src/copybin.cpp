// COPY text -> COPY BINARY, field by field, for the types whose text output is canonical and
// whose binary input is simple. See copybin.hpp for why and when.
#include "pgsafe/copybin.hpp"

#include <charconv>
#include <cstring>
#include <limits>
#include <utility>

namespace pgsafe {

namespace {

constexpr std::int64_t kUsecPerSec = 1000000;
constexpr std::int64_t kSecPerDay = 86400;
constexpr std::int64_t kUnixToPostgresDays = 10957;  // 1970-01-01 .. 2000-01-01

void put16(std::string& out, std::uint16_t v) {
  const char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 2);
}

void put32(std::string& out, std::uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 4);
}

void put64(std::string& out, std::uint64_t v) {
  put32(out, static_cast<std::uint32_t>(v >> 32));
  put32(out, static_cast<std::uint32_t>(v));
}

void patch32(std::string& out, size_t at, std::uint32_t v) {
  out[at] = static_cast<char>(v >> 24);
  out[at + 1] = static_cast<char>(v >> 16);
  out[at + 2] = static_cast<char>(v >> 8);
  out[at + 3] = static_cast<char>(v);
}

template <typename T>
bool parse_int(std::string_view s, T& value) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  return ec == std::errc() && end == s.data() + s.size();
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Exactly `n` decimal digits at s[pos..].
bool fixed_digits(std::string_view s, size_t pos, size_t n, int& value) {
  if (pos + n > s.size()) return false;
  value = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!is_digit(s[i])) return false;
    value = value * 10 + (s[i] - '0');
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int octal_value(char c) { return c >= '0' && c <= '7' ? c - '0' : -1; }

// COPY text de-escaping (what COPY FROM does to a field): \b \f \n \r \t \v, \ooo octal,
// \xhh hex, and a backslash before any other character stands for that character.
bool append_unescaped(std::string& out, std::string_view f) {
  size_t pos = 0;
  while (pos < f.size()) {
    const void* hit = std::memchr(f.data() + pos, '\\', f.size() - pos);
    if (hit == nullptr) {
      out.append(f.data() + pos, f.size() - pos);
      return true;
    }
    size_t at = static_cast<const char*>(hit) - f.data();
    out.append(f.data() + pos, at - pos);
    if (at + 1 >= f.size()) return false;  // a lone trailing backslash
    char c = f[at + 1];
    pos = at + 2;
    switch (c) {
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case 'x': {
        int v = pos < f.size() ? hex_value(f[pos]) : -1;
        if (v < 0) {
          out.push_back('x');
          break;
        }
        ++pos;
        int v2 = pos < f.size() ? hex_value(f[pos]) : -1;
        if (v2 >= 0) {
          v = v * 16 + v2;
          ++pos;
        }
        out.push_back(static_cast<char>(v));
        break;
      }
      default:
        if (octal_value(c) >= 0) {
          int v = octal_value(c);
          for (int i = 0; i < 2 && pos < f.size() && octal_value(f[pos]) >= 0; ++i, ++pos) {
            v = v * 8 + octal_value(f[pos]);
          }
          out.push_back(static_cast<char>(v & 0xff));
        } else {
          out.push_back(c);
        }
    }
  }
  return true;
}

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (astronomical years: 1 BC
// is year 0), which is the calendar PostgreSQL uses for every date.
std::int64_t days_from_civil(std::int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool valid_ymd(std::int64_t y, int m, int d) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= kDays[m - 1] + (m == 2 && leap ? 1 : 0);
}

// "YYYY-MM-DD" (four or more year digits) at the start of s; days since 2000-01-01 before any
// " BC" is applied: returns the position after the date, 0 when it is not one.
size_t parse_ymd(std::string_view s, std::int64_t& year, int& month, int& day) {
  size_t pos = 0;
  year = 0;
  while (pos < s.size() && is_digit(s[pos])) {
    if (pos >= 9) return 0;
    year = year * 10 + (s[pos] - '0');
    ++pos;
  }
  if (pos < 4 || pos >= s.size() || s[pos] != '-') return 0;
  if (!fixed_digits(s, pos + 1, 2, month) || pos + 3 >= s.size() || s[pos + 3] != '-') return 0;
  if (!fixed_digits(s, pos + 4, 2, day)) return 0;
  return pos + 6;
}

// Strips a trailing " BC", telling whether it was there.
bool strip_bc(std::string_view& s) {
  if (s.size() > 3 && s.substr(s.size() - 3) == " BC") {
    s.remove_suffix(3);
    return true;
  }
  return false;
}

std::optional<std::int64_t> date_days(std::string_view s) {
  bool bc = strip_bc(s);
  std::int64_t year = 0;
  int month = 0;
  int day = 0;
  size_t end = parse_ymd(s, year, month, day);
  if (end == 0 || end != s.size() || year == 0) return std::nullopt;
  if (bc) year = 1 - year;
  if (!valid_ymd(year, month, day)) return std::nullopt;
  return days_from_civil(year, month, day) - kUnixToPostgresDays;
}

// "HH:MM:SS[.ffffff]" at s[pos..]: microseconds since midnight; pos moves past it.
bool parse_clock(std::string_view s, size_t& pos, int max_hour, std::int64_t& usec) {
  int h = 0;
  int m = 0;
  int sec = 0;
  if (!fixed_digits(s, pos, 2, h) || pos + 2 >= s.size() || s[pos + 2] != ':') return false;
  if (!fixed_digits(s, pos + 3, 2, m) || pos + 5 >= s.size() || s[pos + 5] != ':') return false;
  if (!fixed_digits(s, pos + 6, 2, sec)) return false;
  pos += 8;
  std::int64_t frac = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int n = 0;
    while (pos < s.size() && is_digit(s[pos])) {
      if (++n > 6) return false;
      frac = frac * 10 + (s[pos] - '0');
      ++pos;
    }
    if (n == 0) return false;
    for (; n < 6; ++n) frac *= 10;
  }
  if (h > max_hour || m > 59 || sec > 59) return false;
  if (h == 24 && (m != 0 || sec != 0 || frac != 0)) return false;
  usec = ((static_cast<std::int64_t>(h) * 60 + m) * 60 + sec) * kUsecPerSec + frac;
  return true;
}

// ISO timestamp "YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]][ BC]" -> microseconds since
// 2000-01-01 00:00 (UTC when with_zone).
std::optional<std::int64_t> timestamp_usec(std::string_view s, bool with_zone) {
  if (s == "infinity") return std::numeric_limits<std::int64_t>::max();
  if (s == "-infinity") return std::numeric_limits<std::int64_t>::min();
  bool bc = strip_bc(s);
  std::int64_t year = 0;
  int month = 0;
  int day = 0;
  size_t pos = parse_ymd(s, year, month, day);
  if (pos == 0 || year == 0 || pos >= s.size() || s[pos] != ' ') return std::nullopt;
  ++pos;
  std::int64_t clock = 0;
  if (!parse_clock(s, pos, 23, clock)) return std::nullopt;
  std::int64_t offset = 0;
  if (with_zone) {
    if (pos >= s.size() || (s[pos] != '+' && s[pos] != '-')) return std::nullopt;
    const int sign = s[pos] == '-' ? -1 : 1;
    int part[3] = {0, 0, 0};
    ++pos;
    for (int i = 0; i < 3; ++i) {
      if (i > 0) {
        if (pos >= s.size()) break;
        if (s[pos] != ':') return std::nullopt;
        ++pos;
      }
      if (!fixed_digits(s, pos, 2, part[i])) return std::nullopt;
      pos += 2;
    }
    if (part[1] > 59 || part[2] > 59) return std::nullopt;
    offset = sign * ((static_cast<std::int64_t>(part[0]) * 60 + part[1]) * 60 + part[2]);
  }
  if (pos != s.size()) return std::nullopt;
  if (bc) year = 1 - year;
  if (!valid_ymd(year, month, day)) return std::nullopt;
  const std::int64_t days = days_from_civil(year, month, day) - kUnixToPostgresDays;
  std::int64_t usec = 0;
  if (__builtin_mul_overflow(days, kSecPerDay * kUsecPerSec, &usec) ||
      __builtin_add_overflow(usec, clock - offset * kUsecPerSec, &usec)) {
    return std::nullopt;
  }
  return usec;
}

bool put_numeric(std::string& out, std::string_view s) {
  constexpr std::uint16_t kPos = 0x0000;
  constexpr std::uint16_t kNeg = 0x4000;
  constexpr std::uint16_t kNaN = 0xC000;
  constexpr std::uint16_t kPinf = 0xD000;
  constexpr std::uint16_t kNinf = 0xF000;
  auto special = [&](std::uint16_t sign) {
    put32(out, 8);
    put16(out, 0);
    put16(out, 0);
    put16(out, sign);
    // The server ignores the scale of a special value; its own numeric_send writes what the
    // scale bits of the stored header read as (32 for the infinities), and so does this.
    put16(out, sign == kNaN ? 0 : 0x20);
    return true;
  };
  if (s == "NaN") return special(kNaN);
  if (s == "Infinity") return special(kPinf);
  if (s == "-Infinity") return special(kNinf);
  std::uint16_t sign = kPos;
  if (!s.empty() && s[0] == '-') {
    sign = kNeg;
    s.remove_prefix(1);
  }
  const size_t dot = s.find('.');
  std::string_view int_part = s.substr(0, dot);
  std::string_view frac_part = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  if (int_part.empty() || (dot != std::string_view::npos && frac_part.empty())) return false;
  for (char c : int_part) {
    if (!is_digit(c)) return false;
  }
  for (char c : frac_part) {
    if (!is_digit(c)) return false;
  }
  constexpr size_t kMaxDscale = 0x3FFF;
  if (frac_part.size() > kMaxDscale) return false;
  while (int_part.size() > 1 && int_part[0] == '0') int_part.remove_prefix(1);
  // Base-10000 digits: the integer part grouped from the decimal point leftwards, the
  // fraction rightwards (its last group padded with zeros).
  const size_t int_groups = (int_part.size() + 3) / 4;
  const size_t frac_groups = (frac_part.size() + 3) / 4;
  std::vector<std::uint16_t> digits;
  digits.reserve(int_groups + frac_groups);
  size_t lead = int_part.size() - (int_groups - 1) * 4;
  size_t pos = 0;
  for (size_t g = 0; g < int_groups; ++g) {
    size_t n = g == 0 ? lead : 4;
    std::uint16_t v = 0;
    for (size_t i = 0; i < n; ++i) v = static_cast<std::uint16_t>(v * 10 + (int_part[pos++] - '0'));
    digits.push_back(v);
  }
  for (size_t g = 0; g < frac_groups; ++g) {
    std::uint16_t v = 0;
    for (size_t i = g * 4; i < g * 4 + 4; ++i) {
      v = static_cast<std::uint16_t>(v * 10 + (i < frac_part.size() ? frac_part[i] - '0' : 0));
    }
    digits.push_back(v);
  }
  long weight = static_cast<long>(int_groups) - 1;
  size_t first = 0;
  while (first < digits.size() && digits[first] == 0) {
    ++first;
    --weight;
  }
  size_t last = digits.size();
  while (last > first && digits[last - 1] == 0) --last;
  if (first == last) {  // zero: no digits, and never negative
    sign = kPos;
    weight = 0;
  }
  if (weight > std::numeric_limits<std::int16_t>::max() ||
      weight < std::numeric_limits<std::int16_t>::min()) {
    return false;
  }
  const size_t n = last - first;
  put32(out, static_cast<std::uint32_t>(8 + 2 * n));
  put16(out, static_cast<std::uint16_t>(n));
  put16(out, static_cast<std::uint16_t>(static_cast<std::int16_t>(weight)));
  put16(out, sign);
  put16(out, static_cast<std::uint16_t>(frac_part.size()));
  for (size_t i = first; i < last; ++i) put16(out, digits[i]);
  return true;
}

bool put_uuid(std::string& out, std::string_view s) {
  if (s.size() != 36) return false;
  put32(out, 16);
  size_t pos = 0;
  for (int i = 0; i < 16; ++i) {
    if (pos == 8 || pos == 13 || pos == 18 || pos == 23) {
      if (s[pos] != '-') return false;
      ++pos;
    }
    int hi = hex_value(s[pos]);
    int lo = hex_value(s[pos + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    pos += 2;
  }
  return true;
}

bool put_bytea(std::string& out, std::string_view s) {
  // Hex output "\x..." reaches COPY text with its backslash doubled.
  if (s.size() < 3 || s.substr(0, 3) != "\\\\x" || (s.size() - 3) % 2 != 0) return false;
  const size_t n = (s.size() - 3) / 2;
  if (n > std::numeric_limits<std::int32_t>::max()) return false;
  put32(out, static_cast<std::uint32_t>(n));
  for (size_t i = 3; i < s.size(); i += 2) {
    int hi = hex_value(s[i]);
    int lo = hex_value(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

// Appends one non-NULL field: its length word and bytes.
bool put_field(std::string& out, FieldKind kind, std::string_view f) {
  switch (kind) {
    case FieldKind::kText:
    case FieldKind::kJsonb: {
      const size_t at = out.size();
      put32(out, 0);
      if (kind == FieldKind::kJsonb) out.push_back('\x01');  // jsonb's binary format version
      if (!append_unescaped(out, f)) return false;
      const size_t n = out.size() - at - 4;
      if (n > static_cast<size_t>(std::numeric_limits<std::int32_t>::max())) return false;
      patch32(out, at, static_cast<std::uint32_t>(n));
      return true;
    }
    case FieldKind::kBool:
      if (f != "t" && f != "f") return false;
      put32(out, 1);
      out.push_back(f == "t" ? '\x01' : '\x00');
      return true;
    case FieldKind::kInt2: {
      std::int16_t v = 0;
      if (!parse_int(f, v)) return false;
      put32(out, 2);
      put16(out, static_cast<std::uint16_t>(v));
      return true;
    }
    case FieldKind::kInt4: {
      std::int32_t v = 0;
      if (!parse_int(f, v)) return false;
      put32(out, 4);
      put32(out, static_cast<std::uint32_t>(v));
      return true;
    }
    case FieldKind::kOid: {
      std::uint32_t v = 0;
      if (!parse_int(f, v)) return false;
      put32(out, 4);
      put32(out, v);
      return true;
    }
    case FieldKind::kInt8: {
      std::int64_t v = 0;
      if (!parse_int(f, v)) return false;
      put32(out, 8);
      put64(out, static_cast<std::uint64_t>(v));
      return true;
    }
    case FieldKind::kFloat4:
    case FieldKind::kFloat8: {
      double d = 0;
      float fl = 0;
      const bool single = kind == FieldKind::kFloat4;
      if (f == "NaN") {
        d = std::numeric_limits<double>::quiet_NaN();
        fl = std::numeric_limits<float>::quiet_NaN();
      } else if (f == "Infinity" || f == "-Infinity") {
        d = f[0] == '-' ? -std::numeric_limits<double>::infinity()
                        : std::numeric_limits<double>::infinity();
        fl = static_cast<float>(d);
      } else {
        // Correctly rounded, as the server's strtod/strtof; the output was shortest-exact.
        if (f.empty() || f[0] == '+') return false;
        auto [end, ec] = single ? std::from_chars(f.data(), f.data() + f.size(), fl)
                                : std::from_chars(f.data(), f.data() + f.size(), d);
        if (ec != std::errc() || end != f.data() + f.size()) return false;
      }
      if (single) {
        std::uint32_t bits = 0;
        std::memcpy(&bits, &fl, sizeof bits);
        put32(out, 4);
        put32(out, bits);
      } else {
        std::uint64_t bits = 0;
        std::memcpy(&bits, &d, sizeof bits);
        put32(out, 8);
        put64(out, bits);
      }
      return true;
    }
    case FieldKind::kNumeric:
      return put_numeric(out, f);
    case FieldKind::kDate: {
      std::int64_t days = 0;
      if (f == "infinity") {
        days = std::numeric_limits<std::int32_t>::max();
      } else if (f == "-infinity") {
        days = std::numeric_limits<std::int32_t>::min();
      } else {
        auto v = date_days(f);
        if (!v || *v >= std::numeric_limits<std::int32_t>::max() ||
            *v <= std::numeric_limits<std::int32_t>::min()) {
          return false;
        }
        days = *v;
      }
      put32(out, 4);
      put32(out, static_cast<std::uint32_t>(static_cast<std::int32_t>(days)));
      return true;
    }
    case FieldKind::kTime: {
      size_t pos = 0;
      std::int64_t usec = 0;
      if (!parse_clock(f, pos, 24, usec) || pos != f.size()) return false;
      put32(out, 8);
      put64(out, static_cast<std::uint64_t>(usec));
      return true;
    }
    case FieldKind::kTimestamp:
    case FieldKind::kTimestampTz: {
      auto v = timestamp_usec(f, kind == FieldKind::kTimestampTz);
      if (!v) return false;
      put32(out, 8);
      put64(out, static_cast<std::uint64_t>(*v));
      return true;
    }
    case FieldKind::kUuid:
      return put_uuid(out, f);
    case FieldKind::kBytea:
      return put_bytea(out, f);
  }
  return false;
}

}  // namespace

std::optional<FieldKind> field_kind_of_type(unsigned int type_oid) {
  switch (type_oid) {
    case 16:
      return FieldKind::kBool;
    case 17:
      return FieldKind::kBytea;
    case 19:    // name
    case 25:    // text
    case 114:   // json
    case 1042:  // bpchar
    case 1043:  // varchar
      return FieldKind::kText;
    case 20:
      return FieldKind::kInt8;
    case 21:
      return FieldKind::kInt2;
    case 23:
      return FieldKind::kInt4;
    case 26:
      return FieldKind::kOid;
    case 700:
      return FieldKind::kFloat4;
    case 701:
      return FieldKind::kFloat8;
    case 1082:
      return FieldKind::kDate;
    case 1083:
      return FieldKind::kTime;
    case 1114:
      return FieldKind::kTimestamp;
    case 1184:
      return FieldKind::kTimestampTz;
    case 1700:
      return FieldKind::kNumeric;
    case 2950:
      return FieldKind::kUuid;
    case 3802:
      return FieldKind::kJsonb;
    default:
      return std::nullopt;
  }
}

CopyTextToBinary::CopyTextToBinary(std::vector<FieldKind> fields) : fields_(std::move(fields)) {}

std::string_view CopyTextToBinary::header() {
  static constexpr char kHeader[] = "PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
  return {kHeader, sizeof kHeader - 1};
}

std::string_view CopyTextToBinary::trailer() { return {"\xff\xff", 2}; }

bool CopyTextToBinary::convert(std::string_view text, std::string& out, long long& rows) const {
  const size_t nfields = fields_.size();
  if (nfields > static_cast<size_t>(std::numeric_limits<std::int16_t>::max())) return false;
  size_t pos = 0;
  while (pos < text.size()) {
    const void* nl = std::memchr(text.data() + pos, '\n', text.size() - pos);
    if (nl == nullptr) return false;
    const size_t end = static_cast<const char*>(nl) - text.data();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.find('\r') != std::string_view::npos) return false;  // COPY TO escapes every CR
    put16(out, static_cast<std::uint16_t>(nfields));
    size_t start = 0;
    for (size_t i = 0; i < nfields; ++i) {
      size_t tab = line.find('\t', start);
      if (i + 1 == nfields) {
        if (tab != std::string_view::npos) return false;  // more fields than columns
        tab = line.size();
      } else if (tab == std::string_view::npos) {
        return false;
      }
      std::string_view f = line.substr(start, tab - start);
      start = tab + 1;
      if (f == "\\N") {
        put32(out, 0xFFFFFFFFU);
      } else if (!put_field(out, fields_[i], f)) {
        return false;
      }
    }
    if (nfields == 0 && !line.empty()) return false;
    ++rows;
  }
  return true;
}

std::optional<std::string> CopyTextToBinary::convert_field(FieldKind kind, std::string_view text) {
  std::string out;
  if (!put_field(out, kind, text)) return std::nullopt;
  return out.substr(4);
}

std::optional<std::string> copy_text_to_binary(const std::vector<unsigned int>& type_oids,
                                               std::string_view text) {
  std::vector<FieldKind> kinds;
  kinds.reserve(type_oids.size());
  for (unsigned int oid : type_oids) {
    auto kind = field_kind_of_type(oid);
    if (!kind) return std::nullopt;
    kinds.push_back(*kind);
  }
  std::string out(CopyTextToBinary::header());
  long long rows = 0;
  if (!CopyTextToBinary(std::move(kinds)).convert(text, out, rows)) return std::nullopt;
  out.append(CopyTextToBinary::trailer());
  return out;
}

}  // namespace pgsafe
