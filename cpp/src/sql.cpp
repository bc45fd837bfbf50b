// Positions in UTF-8 text (see sql.hpp). Statements themselves are parsed in Python.
#include "pgsafe/sql.hpp"

#include <algorithm>

namespace pgsafe {

std::pair<int, int> line_column(const std::string& text, int byte_offset) {
  int line = 1;
  int column = 1;
  size_t limit = std::min(static_cast<size_t>(std::max(byte_offset, 0)), text.size());
  for (size_t i = 0; i < limit; ++i) {
    auto ch = static_cast<unsigned char>(text[i]);
    if (ch == '\n') {
      ++line;
      column = 1;
    } else if ((ch & 0xC0) != 0x80) {
      ++column;
    }
  }
  return {line, column};
}

}  // namespace pgsafe
