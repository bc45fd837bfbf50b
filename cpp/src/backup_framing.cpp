// A backup file's chunk framing: zstd frames and gzip members, AES-256-GCM sealing, and reading
// a chunk back checked against the manifest.
#include "pgsafe/backup_framing.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "pgsafe/checksum.hpp"
#include "pgsafe/errors.hpp"
#include "pgsafe/fd.hpp"

namespace pgsafe {

namespace {

constexpr size_t kInputBuffer = 1 << 20;  // rows gathered before each compressor call

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

std::string read_range(const std::string& path, const BackupChunk& chunk) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw FileError(path, "cannot open: " + errno_text());
  std::string buf(chunk.length, '\0');
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pread(fd.get(), buf.data() + done, buf.size() - done,
                        static_cast<off_t>(chunk.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw FileError(path, "cannot read: " + errno_text());
    if (n == 0) {
      throw ChunkError(chunk, "the file ends " + std::to_string(buf.size() - done) +
                                  " bytes before the chunk does (truncated)");
    }
    done += static_cast<size_t>(n);
  }
  return buf;
}

}  // namespace

Compression parse_compression(const std::string& name) {
  if (name == "zstd") return Compression::kZstd;
  if (name == "gzip") return Compression::kGzip;
  throw ConfigError("compression must be zstd or gzip, not " + name);
}

std::string chunk_aad(const std::string& file_id, int index, bool last) {
  return "pgsafe-backup/" + file_id + "/" + std::to_string(index) + (last ? "/last" : "/more");
}

ChunkError::ChunkError(const BackupChunk& chunk, const std::string& reason)
    : Error("chunk " + std::to_string(chunk.index) + " (" +
            (chunk.table.empty() ? chunk.kind : chunk.table) + ", offset " +
            std::to_string(chunk.offset) + ", " + std::to_string(chunk.length) +
            " bytes): " + reason),
      index_(chunk.index),
      table_(chunk.table.empty() ? chunk.kind : chunk.table),
      offset_(chunk.offset),
      reason_(reason) {}

// -- Compressor ---------------------------------------------------------------------------------

Compressor::Compressor(Compression kind, int level) : kind_(kind), level_(level) {
  if (kind_ == Compression::kZstd) {
    zctx_.reset(ZSTD_createCCtx());
    if (!zctx_) throw Error("zstd: out of memory");
  }
}

Compressor::~Compressor() {
  if (zlib_ready_) deflateEnd(&zs_);
}

void Compressor::begin() {
  out_.clear();
  in_.clear();
  raw_ = 0;
  if (kind_ == Compression::kZstd) {
    ZSTD_CCtx_reset(zctx_.get(), ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(zctx_.get(), ZSTD_c_compressionLevel, level_);
    ZSTD_CCtx_setParameter(zctx_.get(), ZSTD_c_checksumFlag, 1);
  } else if (!zlib_ready_) {
    std::memset(&zs_, 0, sizeof zs_);
    // windowBits 15 + 16: a gzip member (header and CRC-32), which zcat concatenates.
    if (deflateInit2(&zs_, level_, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      throw Error("zlib: cannot initialise deflate");
    }
    zlib_ready_ = true;
  } else {
    deflateReset(&zs_);
  }
}

void Compressor::add(std::string_view data) {
  raw_ += data.size();
  if (in_.size() + data.size() > kInputBuffer) flush(false);
  if (data.size() > kInputBuffer) {
    feed(data, false);
    return;
  }
  in_.append(data);
}

std::string& Compressor::end() {
  flush(true);
  return out_;
}

void Compressor::flush(bool last) {
  feed(in_, last);
  in_.clear();
}

void Compressor::feed(std::string_view data, bool last) {
  if (kind_ == Compression::kZstd) {
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    const ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
      size_t have = out_.size();
      size_t room = ZSTD_CStreamOutSize() + data.size() / 2;
      out_.resize(have + room);
      ZSTD_outBuffer out{out_.data() + have, room, 0};
      size_t left = ZSTD_compressStream2(zctx_.get(), &out, &in, mode);
      if (ZSTD_isError(left)) throw Error(std::string("zstd: ") + ZSTD_getErrorName(left));
      out_.resize(have + out.pos);
      if (last ? left == 0 : in.pos == in.size) break;
    }
    return;
  }
  zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs_.avail_in = static_cast<uInt>(data.size());
  for (;;) {
    size_t have = out_.size();
    size_t room = deflateBound(&zs_, static_cast<uLong>(data.size())) + 64;
    out_.resize(have + room);
    zs_.next_out = reinterpret_cast<Bytef*>(out_.data() + have);
    zs_.avail_out = static_cast<uInt>(room);
    int rc = deflate(&zs_, last ? Z_FINISH : Z_NO_FLUSH);
    out_.resize(have + room - zs_.avail_out);
    if (rc == Z_STREAM_ERROR) throw Error("zlib: deflate failed");
    if (last ? rc == Z_STREAM_END : zs_.avail_in == 0) break;
  }
}

// -- Decompressor -------------------------------------------------------------------------------

Decompressor::Decompressor(Compression kind, std::string_view data) : kind_(kind), data_(data) {
  if (kind_ == Compression::kZstd) {
    zctx_.reset(ZSTD_createDCtx());
    if (!zctx_) throw Error("zstd: out of memory");
    zin_ = ZSTD_inBuffer{data_.data(), data_.size(), 0};
  } else {
    if (inflateInit2(&zs_, 15 + 16) != Z_OK) throw Error("zlib: cannot initialise inflate");
    zlib_ready_ = true;
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data_.data()));
    zs_.avail_in = static_cast<uInt>(data_.size());
  }
}

Decompressor::~Decompressor() {
  if (zlib_ready_) inflateEnd(&zs_);
}

bool Decompressor::next(std::string& out, size_t room) {
  if (done_) return false;
  const size_t have = out.size();
  out.resize(have + room);
  size_t produced = 0;
  if (kind_ == Compression::kZstd) {
    ZSTD_outBuffer ob{out.data() + have, room, 0};
    size_t ret = ZSTD_decompressStream(zctx_.get(), &ob, &zin_);
    produced = ob.pos;
    out.resize(have + produced);
    if (ZSTD_isError(ret)) throw Error(std::string("zstd: ") + ZSTD_getErrorName(ret));
    if (ret == 0) {
      if (zin_.pos < zin_.size) throw Error("bytes after the end of the zstd frame");
      done_ = true;
    } else if (zin_.pos == zin_.size && ob.pos < room) {
      throw Error("the zstd frame is cut short");
    }
  } else {
    zs_.next_out = reinterpret_cast<Bytef*>(out.data() + have);
    zs_.avail_out = static_cast<uInt>(room);
    int rc = inflate(&zs_, Z_NO_FLUSH);
    produced = room - zs_.avail_out;
    out.resize(have + produced);
    if (rc == Z_STREAM_END) {
      if (zs_.avail_in != 0) throw Error("bytes after the end of the gzip member");
      done_ = true;
    } else if (rc == Z_BUF_ERROR || (rc == Z_OK && zs_.avail_in == 0 && zs_.avail_out != 0)) {
      throw Error("the gzip member is cut short");
    } else if (rc != Z_OK) {
      throw Error(std::string("gzip: ") + (zs_.msg ? zs_.msg : "corrupt data"));
    }
  }
  return produced > 0 || !done_;
}

// -- whole frames, sealing ----------------------------------------------------------------------

std::string compress_frame(Compression kind, int level, std::string_view data, size_t piece) {
  Compressor comp(kind, level);
  comp.begin();
  if (piece == 0) piece = std::max<size_t>(data.size(), 1);
  for (size_t at = 0; at < data.size(); at += piece) comp.add(data.substr(at, piece));
  return std::move(comp.end());
}

std::string decompress_frame(Compression kind, std::string_view data) {
  Decompressor d(kind, data);
  std::string out;
  while (d.next(out, std::max<size_t>(1 << 20, data.size() * 4))) {
  }
  return out;
}

std::string seal_chunk(const std::string& key, const std::string& aad, std::string_view plain) {
  std::string out(kNonceBytes + plain.size() + kTagBytes, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  if (RAND_bytes(nonce, static_cast<int>(kNonceBytes)) != 1) throw Error("no random nonce");
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  auto* ct = nonce + kNonceBytes;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr,
                         reinterpret_cast<const unsigned char*>(key.data()), nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), ct, &len, reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), ct + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, ct + plain.size()) != 1) {
    throw Error("AES-256-GCM encryption failed");
  }
  return out;
}

std::string open_chunk(const std::string& key, const std::string& aad, std::string_view sealed) {
  if (sealed.size() < kNonceBytes + kTagBytes) throw Error("too short to be an encrypted chunk");
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data());
  size_t n = sealed.size() - kNonceBytes - kTagBytes;
  std::string out(n, '\0');
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  auto* pt = reinterpret_cast<unsigned char*>(out.data());
  bool ok = ctx &&
            EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
            EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr,
                               reinterpret_cast<const unsigned char*>(key.data()), nonce) == 1 &&
            EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                              reinterpret_cast<const unsigned char*>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx.get(), pt, &len, nonce + kNonceBytes, static_cast<int>(n)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes,
                                const_cast<unsigned char*>(nonce + kNonceBytes + n)) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), pt + len, &len) == 1;
  if (!ok) throw Error("authentication failed (wrong key, or the chunk was altered or moved)");
  return out;
}

// -- the file -----------------------------------------------------------------------------------

void write_at(int fd, const std::string& path, std::string_view data, unsigned long long offset) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw FileError(path, "cannot write: " + errno_text());
    done += static_cast<size_t>(n);
  }
}

void check_chunk(const std::string& path, const BackupChunk& chunk) {
  std::string bytes = read_range(path, chunk);
  if (sha256_hex(bytes) != chunk.sha256) {
    throw ChunkError(chunk, "SHA-256 mismatch (the bytes were altered)");
  }
}

std::string checked_chunk(const std::string& path, const BackupChunk& chunk, const std::string& key,
                          const std::string& file_id) {
  std::string bytes = read_range(path, chunk);
  if (sha256_hex(bytes) != chunk.sha256) {
    throw ChunkError(chunk, "SHA-256 mismatch (the bytes were altered)");
  }
  if (key.empty()) return bytes;
  try {
    return open_chunk(key, chunk_aad(file_id, chunk.index, chunk.kind == "post-data"), bytes);
  } catch (const ChunkError&) {
    throw;
  } catch (const Error& e) {
    throw ChunkError(chunk, e.what());
  }
}

std::string read_chunk(const std::string& path, const BackupChunk& chunk, Compression compression,
                       const std::string& key, const std::string& file_id) {
  std::string bytes = checked_chunk(path, chunk, key, file_id);
  try {
    return decompress_frame(compression, bytes);
  } catch (const Error& e) {
    throw ChunkError(chunk, e.what());
  }
}

}  // namespace pgsafe
