// SHA-256 digests (OpenSSL EVP) of migration files and byte strings, as lowercase hex.
#pragma once

#include <string>
#include <string_view>

namespace pgsafe {

std::string sha256_hex(std::string_view data);
// Streams the file in large blocks; throws FileError naming the path when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace pgsafe
