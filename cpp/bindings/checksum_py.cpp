// pgsafe._core SHA-256 helpers (OpenSSL EVP).
#include <pybind11/stl/filesystem.h>

#include <filesystem>

#include "bindings.hpp"
#include "pgsafe/checksum.hpp"

namespace pyb = pybind11;

namespace pgsafe::py {

void register_checksum(pyb::module_& m) {
  m.def(
      "sha256_hex",
      [](const pyb::bytes& data) {
        std::string_view view = data;
        pyb::gil_scoped_release release;
        return sha256_hex(view);
      },
      pyb::arg("data"), "SHA-256 of bytes, lowercase hex.");
  m.def(
      "sha256_file", [](const std::filesystem::path& path) { return sha256_file(path.string()); },
      pyb::arg("path"), pyb::call_guard<pyb::gil_scoped_release>(),
      "SHA-256 of a file, streamed, lowercase hex; ConfigError if unreadable.");
}

}  // namespace pgsafe::py
