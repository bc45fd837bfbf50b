// Unit tests for pgsafe::sha256_hex / sha256_file: published vectors, the 128 KiB streaming
// boundary, and FileError for paths that are not readable files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "pgsafe/checksum.hpp"
#include "pgsafe/errors.hpp"

namespace fs = std::filesystem;

namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kKiB128 = size_t{128} << 10;

// A private directory for one test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "pgsafe-checksum-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string write_file(const fs::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  return path.string();
}

// Bytes that do not repeat with the 128 KiB block size the file reader uses.
std::string pattern(size_t size) {
  std::string data(size, '\0');
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    data[i] = static_cast<char>(x & 0xFF);
  }
  return data;
}

}  // namespace

TEST(Sha256Hex, PublishedVectors) {
  EXPECT_EQ(pgsafe::sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(pgsafe::sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(pgsafe::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(pgsafe::sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Hex, EmbeddedNulBytesCount) {
  std::string with_nul("a\0b", 3);
  EXPECT_NE(pgsafe::sha256_hex(with_nul), pgsafe::sha256_hex("a"));
  EXPECT_NE(pgsafe::sha256_hex(std::string(1, '\0')), pgsafe::sha256_hex(""));
}

TEST(Sha256Hex, LowercaseHex64) {
  std::string hex = pgsafe::sha256_hex(pattern(777));
  ASSERT_EQ(hex.size(), 64u);
  for (char c : hex) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << hex;
}

TEST(Sha256File, PublishedVectorFromFile) {
  TempDir dir;
  EXPECT_EQ(pgsafe::sha256_file(write_file(dir.path() / "empty", "")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(pgsafe::sha256_file(write_file(dir.path() / "abc", "abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(pgsafe::sha256_file(write_file(dir.path() / "million", std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256File, StreamingMatchesOneShotAroundTheBlockSize) {
  TempDir dir;
  for (size_t size :
       {kKiB128 - 1, kKiB128, kKiB128 + 1, kMiB - 1, kMiB, kMiB + 1, 2 * kMiB, 3 * kMiB + 12345}) {
    std::string data = pattern(size);
    std::string path = write_file(dir.path() / ("f" + std::to_string(size)), data);
    EXPECT_EQ(pgsafe::sha256_file(path), pgsafe::sha256_hex(data)) << "size " << size;
  }
}

TEST(Sha256File, MissingFileThrowsFileErrorNamingThePath) {
  TempDir dir;
  std::string path = (dir.path() / "no_such_file.sql").string();
  try {
    pgsafe::sha256_file(path);
    FAIL() << "expected FileError";
  } catch (const pgsafe::FileError& e) {
    EXPECT_EQ(e.path(), path);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos)
        << e.what();
  }
}

TEST(Sha256File, DirectoryThrowsFileError) {
  TempDir dir;
  try {
    pgsafe::sha256_file(dir.path().string());
    FAIL() << "expected FileError";
  } catch (const pgsafe::FileError& e) {
    EXPECT_EQ(e.path(), dir.path().string());
    EXPECT_NE(std::string(e.what()).find("directory"), std::string::npos) << e.what();
  }
}

TEST(Sha256File, FileErrorIsAPgsafeError) {
  EXPECT_THROW(pgsafe::sha256_file("/nonexistent/dir/file.sql"), pgsafe::Error);
}
