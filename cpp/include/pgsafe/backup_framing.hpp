// A backup file's chunks: each one self-contained zstd frame or gzip member holding plain SQL
// (so `zstd -dc | psql` restores the file), optionally sealed with AES-256-GCM under its own
// nonce and associated data binding the file id, the chunk's index and whether it is the last.
// The writer (backup_writer.hpp) frames chunks with these, restore (backup_restore.hpp) reads
// them back; both go through here.
#pragma once

#include <zlib.h>
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "pgsafe/errors.hpp"

namespace pgsafe {

enum class Compression : std::uint8_t { kZstd, kGzip };
Compression parse_compression(const std::string& name);  // "zstd" | "gzip"; ConfigError else

// The magic that starts an encrypted file (never a valid zstd frame or gzip member).
constexpr std::string_view kEncryptedMagic = "PGSAFE-AEAD1\n";
// What sealing adds to a chunk: the nonce before it, the tag after it.
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

// A chunk as the file and the manifest describe it.
struct BackupChunk {
  int index = 0;             // position in the file, 0-based; the AEAD binds it
  std::string kind;          // "pre-data", "data", "post-data"
  std::string table;         // data chunks: schema-qualified, quoted where SQL needs it
  long long first_page = 0;  // data chunks: ctid >= (first_page,0)
  long long end_page = -1;   // ctid < (end_page,0); -1 none
  unsigned long long offset = 0;
  unsigned long long length = 0;  // bytes in the file (compressed, sealed when encrypted)
  long long rows = 0;
  unsigned long long raw_bytes = 0;  // plain SQL text before compression
  std::string sha256;                // of the `length` bytes at `offset`
};

// Thrown when a chunk's bytes are not what the manifest recorded (hash, length, AEAD tag,
// framing): names the chunk, so a flipped bit or a truncation is found where it is.
class ChunkError : public Error {
 public:
  ChunkError(const BackupChunk& chunk, const std::string& reason);
  int index() const noexcept { return index_; }
  const std::string& table() const noexcept { return table_; }
  unsigned long long offset() const noexcept { return offset_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  int index_;
  std::string table_;
  unsigned long long offset_;
  std::string reason_;
};

// Associated data of chunk `index` of file `file_id`; `last` marks the final chunk, so a file
// cut after any chunk fails to open.
std::string chunk_aad(const std::string& file_id, int index, bool last);

// Compresses one chunk into one self-contained zstd frame or gzip member, fed as rows arrive.
class Compressor {
 public:
  Compressor(Compression kind, int level);
  ~Compressor();
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  void begin();  // starts a new frame (the context is reused)
  void add(std::string_view data);
  std::string& end();  // ends the frame; the compressed bytes
  unsigned long long raw_bytes() const { return raw_; }

 private:
  struct ZstdFree {
    void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
  };
  void flush(bool last);
  void feed(std::string_view data, bool last);

  Compression kind_;
  int level_;
  std::unique_ptr<ZSTD_CCtx, ZstdFree> zctx_;
  z_stream zs_{};
  bool zlib_ready_ = false;
  std::string in_;
  std::string out_;
  unsigned long long raw_ = 0;
};

// Streams one zstd frame or gzip member out of memory in pieces; the whole input must be
// exactly one complete frame or member (Error otherwise).
class Decompressor {
 public:
  Decompressor(Compression kind, std::string_view data);
  ~Decompressor();
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;

  // Appends up to about `room` bytes to `out`; false once the frame has ended and was checked.
  bool next(std::string& out, size_t room = size_t{1} << 20);

 private:
  struct ZstdFree {
    void operator()(ZSTD_DCtx* c) const noexcept { ZSTD_freeDCtx(c); }
  };
  Compression kind_;
  std::string_view data_;
  std::unique_ptr<ZSTD_DCtx, ZstdFree> zctx_;
  ZSTD_inBuffer zin_{};
  z_stream zs_{};
  bool zlib_ready_ = false;
  bool done_ = false;
};

// `data` as one self-contained zstd frame or gzip member, fed to the compressor `piece` bytes
// at a time (0: all at once), as a backup feeds it rows.
std::string compress_frame(Compression kind, int level, std::string_view data, size_t piece = 0);
// The contents of exactly one frame or member; throws Error when it is corrupt, cut short, or
// followed by other bytes.
std::string decompress_frame(Compression kind, std::string_view data);
// AES-256-GCM with a fresh random nonce: nonce (kNonceBytes), ciphertext, tag (kTagBytes).
std::string seal_chunk(const std::string& key, const std::string& aad, std::string_view plain);
// The plaintext; throws Error when the tag does not verify (wrong key or associated data,
// altered bytes).
std::string open_chunk(const std::string& key, const std::string& aad, std::string_view sealed);

// Writes all of `data` at `offset` of the open file `fd` (named `path` in errors).
void write_at(int fd, const std::string& path, std::string_view data, unsigned long long offset);
// A chunk's bytes, checked against the manifest's SHA-256 only (no decryption); ChunkError.
void check_chunk(const std::string& path, const BackupChunk& chunk);
// A chunk's bytes, checked against the manifest's SHA-256 and decrypted (when `key` is set):
// its compressed form. Throws ChunkError.
std::string checked_chunk(const std::string& path, const BackupChunk& chunk, const std::string& key,
                          const std::string& file_id);
// Reads one chunk, checks its SHA-256, opens and decompresses it: its SQL text.
std::string read_chunk(const std::string& path, const BackupChunk& chunk, Compression compression,
                       const std::string& key, const std::string& file_id);

}  // namespace pgsafe
