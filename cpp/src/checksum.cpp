// SHA-256 through OpenSSL's EVP interface. Files are read with read(2) on a raw descriptor into
// a buffer small enough to stay in the L2 cache while it is hashed (bench/bench_checksum.py keeps
// this within a few percent of `openssl dgst -sha256`).
#include "pgsafe/checksum.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "pgsafe/errors.hpp"
#include "pgsafe/fd.hpp"

namespace pgsafe {

namespace {

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

// 128 KiB: large enough that syscalls cost nothing, small enough that the block is still in
// L2 when the hash reads it (1 MiB blocks measured a few percent slower).
constexpr size_t kReadBlock = size_t{128} << 10;

MdCtxPtr new_sha256() {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw Error("OpenSSL: cannot initialise SHA-256");
  }
  return ctx;
}

std::string finish_hex(EVP_MD_CTX* ctx) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, digest, &len) != 1) throw Error("OpenSSL: SHA-256 failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(static_cast<size_t>(len) * 2, '0');
  for (size_t i = 0; i < len; ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 0xF];
  }
  return hex;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  auto ctx = new_sha256();
  if (EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1) {
    throw Error("OpenSSL: SHA-256 failed");
  }
  return finish_hex(ctx.get());
}

std::string sha256_file(const std::string& path) {
  Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.get() < 0) throw FileError(path, std::strerror(errno));
  // Only a hint: the kernel reads further ahead. Failure (a pipe, a special file) is harmless.
  (void)::posix_fadvise(file.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  auto ctx = new_sha256();
  std::vector<unsigned char> buffer(kReadBlock);
  for (;;) {
    ssize_t n = ::read(file.get(), buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw FileError(path, std::strerror(errno));
    }
    if (n == 0) break;
    if (EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(n)) != 1) {
      throw Error("OpenSSL: SHA-256 failed");
    }
  }
  return finish_hex(ctx.get());
}

}  // namespace pgsafe
