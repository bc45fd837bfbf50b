// Streaming backup and parallel restore. A backup file is a sequence of chunks, each an
// independent zstd frame or gzip member holding plain SQL (pg_dump's DDL, or one COPY block:
// header, rows, `\.`), so `zstd -dc | psql` restores it; chunks are placed at offsets reserved
// as they finish, so workers never wait for each other. Encrypted files seal each compressed
// chunk with AES-256-GCM, its own nonce, and associated data binding file id, index and
// whether it is the last chunk.
#include "pgsafe/backup.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "pgsafe/checksum.hpp"
#include "pgsafe/conn.hpp"
#include "pgsafe/copybin.hpp"
#include "pgsafe/datafp.hpp"
#include "pgsafe/errors.hpp"
#include "pgsafe/log.hpp"

namespace pgsafe {

namespace {

constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr size_t kInputBuffer = 1 << 20;  // rows gathered before each compressor call

struct ZstdCCtxDeleter {
  void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
};
struct ZstdDCtxDeleter {
  void operator()(ZSTD_DCtx* c) const noexcept { ZSTD_freeDCtx(c); }
};
struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using ZstdCCtxPtr = std::unique_ptr<ZSTD_CCtx, ZstdCCtxDeleter>;
using ZstdDCtxPtr = std::unique_ptr<ZSTD_DCtx, ZstdDCtxDeleter>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd) {
    reset();
    fd_ = fd;
  }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::string errno_text() { return std::strerror(errno); }

void pwrite_all(int fd, const std::string& path, std::string_view data, unsigned long long at) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw FileError(path, "cannot write: " + errno_text());
    done += static_cast<size_t>(n);
  }
}

// Compresses one chunk into one self-contained zstd frame or gzip member.
class Compressor {
 public:
  Compressor(Compression kind, int level) : kind_(kind), level_(level) {
    if (kind_ == Compression::kZstd) {
      zctx_.reset(ZSTD_createCCtx());
      if (!zctx_) throw Error("zstd: out of memory");
    }
  }
  ~Compressor() {
    if (zlib_ready_) deflateEnd(&zs_);
  }
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  void begin() {
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

  void add(std::string_view data) {
    raw_ += data.size();
    if (in_.size() + data.size() > kInputBuffer) flush(false);
    if (data.size() > kInputBuffer) {
      feed(data, false);
      return;
    }
    in_.append(data);
  }

  // Ends the frame; the compressed bytes.
  std::string& end() {
    flush(true);
    return out_;
  }
  unsigned long long raw_bytes() const { return raw_; }

 private:
  void flush(bool last) {
    feed(in_, last);
    in_.clear();
  }

  void feed(std::string_view data, bool last) {
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

  Compression kind_;
  int level_;
  ZstdCCtxPtr zctx_;
  z_stream zs_{};
  bool zlib_ready_ = false;
  std::string in_;
  std::string out_;
  unsigned long long raw_ = 0;
};

// Streams one zstd frame or gzip member out of memory in pieces; the whole input must be
// exactly one complete frame or member.
class Decompressor {
 public:
  Decompressor(Compression kind, std::string_view data) : kind_(kind), data_(data) {
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
  ~Decompressor() {
    if (zlib_ready_) inflateEnd(&zs_);
  }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;

  // Appends up to about `room` bytes to `out`; false once the frame has ended and was checked.
  bool next(std::string& out, size_t room = 1 << 20) {
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

 private:
  Compression kind_;
  std::string_view data_;
  ZstdDCtxPtr zctx_;
  ZSTD_inBuffer zin_{};
  z_stream zs_{};
  bool zlib_ready_ = false;
  bool done_ = false;
};

std::string decompress(Compression kind, std::string_view data) {
  Decompressor d(kind, data);
  std::string out;
  while (d.next(out, std::max<size_t>(1 << 20, data.size() * 4))) {
  }
  return out;
}

std::string seal(const std::string& key, const std::string& aad, std::string_view plain) {
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

// Empty optional-like result: throws on a failed tag (wrong key, altered or moved chunk).
std::string open_sealed(const std::string& key, const std::string& aad, std::string_view sealed) {
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

// What worker threads share in a parallel run: a queue of task indexes, the first error, the
// connections that may be mid-statement (so the calling thread can cancel them).
struct Pool {
  std::mutex mutex;
  std::condition_variable changed;
  bool abort = false;
  std::exception_ptr error;
  std::vector<Connection*> running;
  int finished = 0;
  int done = 0;

  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> guard(mutex);
    if (!abort) error = std::move(e);
    abort = true;
    changed.notify_all();
  }
  void enter(Connection* c) {
    std::lock_guard<std::mutex> guard(mutex);
    running.push_back(c);
  }
  void leave(Connection* c) {
    std::lock_guard<std::mutex> guard(mutex);
    running.erase(std::remove(running.begin(), running.end(), c), running.end());
    ++finished;
    changed.notify_all();
  }
};

// Runs `threads` on the calling thread's behalf: watches for interrupts (only this thread may
// run Python's signal handlers), reports progress, cancels every connection when one fails.
void supervise(Pool& pool, std::vector<std::thread>& threads, const std::function<void()>& report,
               const char* what) {
  bool interrupted = false;
  int reported = -1;
  {
    std::unique_lock<std::mutex> lock(pool.mutex);
    while (pool.finished < static_cast<int>(threads.size())) {
      pool.changed.wait_for(lock, std::chrono::milliseconds(100));
      if (!pool.abort) {
        lock.unlock();
        bool stop = interrupt_requested();
        lock.lock();
        if (stop && !pool.abort) {
          log::core()->warn("interrupted: cancelling the {}'s statements on the server", what);
          interrupted = true;
          pool.abort = true;
          pool.changed.notify_all();
        }
      }
      if (pool.abort) {
        for (Connection* c : pool.running) c->cancel();
        continue;
      }
      if (report && pool.done != reported) {
        reported = pool.done;
        lock.unlock();
        try {
          report();
        } catch (...) {
          pool.fail(std::current_exception());
        }
        lock.lock();
      }
    }
  }
  for (std::thread& t : threads) t.join();
  if (interrupted) throw Interrupted();
  if (pool.error) std::rethrow_exception(pool.error);
  if (report) report();
}

struct DataTask {
  size_t table = 0;
  long long first_page = 0;
  long long end_page = -1;
  bool whole = true;
  long long est_pages = 0;
};

}  // namespace

Compression parse_compression(const std::string& name) {
  if (name == "zstd") return Compression::kZstd;
  if (name == "gzip") return Compression::kGzip;
  throw ConfigError("compression must be zstd or gzip, not " + name);
}

std::string chunk_aad(const std::string& file_id, int index, bool last) {
  return "pgsafe-backup/" + file_id + "/" + std::to_string(index) + (last ? "/last" : "/more");
}

namespace detail {

std::string compress_frame(Compression kind, int level, std::string_view data, size_t piece) {
  Compressor comp(kind, level);
  comp.begin();
  if (piece == 0) piece = std::max<size_t>(data.size(), 1);
  for (size_t at = 0; at < data.size(); at += piece) comp.add(data.substr(at, piece));
  return std::move(comp.end());
}

std::string decompress_frame(Compression kind, std::string_view data) {
  return decompress(kind, data);
}

std::string seal_chunk(const std::string& key, const std::string& aad, std::string_view plain) {
  return seal(key, aad, plain);
}

std::string open_chunk(const std::string& key, const std::string& aad, std::string_view sealed) {
  return open_sealed(key, aad, sealed);
}

}  // namespace detail

ChunkError::ChunkError(const BackupChunk& chunk, const std::string& reason)
    : Error("chunk " + std::to_string(chunk.index) + " (" +
            (chunk.table.empty() ? chunk.kind : chunk.table) + ", offset " +
            std::to_string(chunk.offset) + ", " + std::to_string(chunk.length) +
            " bytes): " + reason),
      index_(chunk.index),
      table_(chunk.table.empty() ? chunk.kind : chunk.table),
      offset_(chunk.offset),
      reason_(reason) {}

struct BackupWriter::Impl {
  std::string dsn;
  std::string path;
  BackupOptions options;
  Connection coordinator;
  std::string snapshot;
  std::vector<BackupTableInfo> tables;
  // Per table, per column (attnum order): stored (true) or generated. A generated column is
  // digested (so the digest equals `pgsafe fingerprint`'s) but not written: COPY FROM refuses it.
  std::vector<std::vector<bool>> keeps;
  std::vector<std::string> oids;
  Fd fd;
  std::mutex mutex;  // guards the file layout below and the tables' accumulators
  unsigned long long next_offset = 0;
  std::vector<BackupChunk> chunks;
  std::vector<RowDigest> digests;
  bool finished = false;

  Impl(std::string d, std::string p, BackupOptions o)
      : dsn(std::move(d)),
        path(std::move(p)),
        options(std::move(o)),
        coordinator(dsn, options.application_name) {}

  // Reserves the chunk's place in the file, then seals, hashes and writes it there.
  BackupChunk place(BackupChunk chunk, std::string& compressed, bool last) {
    const bool sealed = !options.key.empty();
    const unsigned long long length = compressed.size() + (sealed ? kNonceBytes + kTagBytes : 0);
    {
      std::lock_guard<std::mutex> guard(mutex);
      chunk.index = static_cast<int>(chunks.size());
      chunk.offset = next_offset;
      chunk.length = length;
      next_offset += length;
      chunks.push_back(chunk);
    }
    std::string sealed_bytes;
    std::string_view bytes = compressed;
    if (sealed) {
      sealed_bytes = seal(options.key, chunk_aad(options.file_id, chunk.index, last), compressed);
      bytes = sealed_bytes;
    }
    chunk.sha256 = sha256_hex(bytes);
    pwrite_all(fd.get(), path, bytes, chunk.offset);
    std::lock_guard<std::mutex> guard(mutex);
    chunks[static_cast<size_t>(chunk.index)].sha256 = chunk.sha256;
    return chunk;
  }

  void resolve_tables() {
    const char* select =
        "SELECT c.oid, pg_catalog.quote_ident(n.nspname) || '.' || "
        "pg_catalog.quote_ident(c.relname), c.relkind, "
        "(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' "
        "ORDER BY a.attnum) FILTER (WHERE a.attgenerated = '') FROM pg_catalog.pg_attribute a "
        "WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), "
        "EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 "
        "AND NOT a.attisdropped AND a.attgenerated <> ''), "
        "(SELECT pg_catalog.string_agg(CASE WHEN a.attgenerated = '' THEN 'k' ELSE 'g' END, '' "
        "ORDER BY a.attnum) FROM pg_catalog.pg_attribute a "
        "WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ";
    std::vector<Row> rows;
    if (options.tables.empty()) {
      // What pg_dump dumps the data of: ordinary tables, not an extension's own.
      Result r = coordinator.execute(
          std::string(select) +
              "WHERE c.relkind = 'r' AND n.nspname <> ALL ($1::pg_catalog.text[]) "
              "AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
              "AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = "
              "'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e') "
              "ORDER BY n.nspname COLLATE \"C\", c.relname COLLATE \"C\"",
          {text_array(options.exclude_schemas)});
      rows = std::move(r.rows);
    } else {
      for (const std::string& name : options.tables) {
        Result r = coordinator.execute(
            std::string(select) + "WHERE c.oid = pg_catalog.to_regclass($1)", {name});
        if (r.rows.empty()) {
          throw ConfigError("no table named " + name + " in database " + coordinator.dbname());
        }
        if ((*r.rows[0][2])[0] != 'r') {
          throw ConfigError(name +
                            " is not an ordinary table (back up a partitioned table's "
                            "partitions by name)");
        }
        bool seen = std::any_of(rows.begin(), rows.end(),
                                [&](const Row& o) { return *o[0] == *r.rows[0][0]; });
        if (!seen) rows.push_back(std::move(r.rows[0]));
      }
    }
    for (const Row& row : rows) {
      oids.push_back(*row[0]);
      BackupTableInfo t;
      t.table = *row[1];
      t.columns = row[3] ? "(" + *row[3] + ")" : "";
      t.has_generated = *row[4] == "t";
      tables.push_back(std::move(t));
      std::vector<bool> keep;
      for (char ch : row[5].value_or("")) keep.push_back(ch == 'k');
      keeps.push_back(std::move(keep));
    }
  }

  void freeze() {
    coordinator.execute(std::string(kCopySessionSettings) +
                        "; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    if (!tables.empty()) {
      std::string list;
      for (const BackupTableInfo& t : tables) list += (list.empty() ? "" : ", ") + t.table;
      // Before the snapshot: a rewrite that is not MVCC-safe either committed before it or
      // waits until the backup ends.
      coordinator.execute("LOCK TABLE " + list + " IN ACCESS SHARE MODE");
    }
    snapshot = *coordinator.execute("SELECT pg_catalog.pg_export_snapshot()").rows[0][0];
    if (tables.empty()) return;
    Result sizes = coordinator.execute(
        "SELECT c.oid, pg_catalog.pg_relation_size(c.oid) / "
        "pg_catalog.current_setting('block_size')::bigint "
        "FROM pg_catalog.pg_class c WHERE c.oid = ANY ($1::pg_catalog.oid[])",
        {text_array(oids)});
    for (const Row& row : sizes.rows) {
      for (size_t i = 0; i < oids.size(); ++i) {
        if (oids[i] == *row[0]) tables[i].pages = std::atoll(row[1]->c_str());
      }
    }
  }
};

BackupWriter::BackupWriter(const std::string& dsn, const std::string& path,
                           const BackupOptions& options)
    : impl_(std::make_unique<Impl>(dsn, path, options)) {
  if (options.workers < 1) throw ConfigError("workers must be 1 or more");
  if (!options.key.empty() && options.key.size() != 32) {
    throw ConfigError("an AES-256 key is 32 bytes, not " + std::to_string(options.key.size()));
  }
  Impl& m = *impl_;
  if (m.options.level == 0) m.options.level = m.options.compression == Compression::kZstd ? 1 : 3;
  m.resolve_tables();
  m.freeze();
  m.digests.resize(m.tables.size());
  m.fd.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (m.fd.get() < 0) throw FileError(path, "cannot create: " + errno_text());
  if (!options.key.empty()) {
    std::string header = std::string(kEncryptedMagic) + options.file_id + "\n";
    pwrite_all(m.fd.get(), path, header, 0);
    m.next_offset = header.size();
  }
}

BackupWriter::~BackupWriter() = default;

const std::string& BackupWriter::snapshot() const { return impl_->snapshot; }
int BackupWriter::server_version() const { return impl_->coordinator.server_version(); }
const std::vector<BackupTableInfo>& BackupWriter::tables() const { return impl_->tables; }

std::string BackupWriter::sequence_values_sql() {
  Impl& m = *impl_;
  std::string where;
  std::vector<Value> params;
  if (m.options.tables.empty()) {
    where =
        "n.nspname <> ALL ($1::pg_catalog.text[]) AND n.nspname <> 'information_schema' "
        "AND n.nspname !~ '^pg_' AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend e WHERE "
        "e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND e.objid = s.oid "
        "AND e.deptype = 'e')";
    params.emplace_back(text_array(m.options.exclude_schemas));
  } else {
    // pg_dump -t dumps a table's owned sequences (serial and identity) with it.
    where =
        "EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = "
        "'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = s.oid AND d.deptype IN "
        "('a', 'i') AND d.refobjid = ANY ($1::pg_catalog.oid[]))";
    params.emplace_back(text_array(m.oids));
  }
  Result seqs = m.coordinator.execute(
      "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(s.relname) "
      "FROM pg_catalog.pg_class s JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace "
      "WHERE s.relkind = 'S' AND " +
          where + " ORDER BY n.nspname COLLATE \"C\", s.relname COLLATE \"C\"",
      params);
  std::string out;
  for (const Row& row : seqs.rows) {
    Result v = m.coordinator.execute("SELECT last_value, is_called FROM " + *row[0]);
    out += "SELECT pg_catalog.setval(" + sql_literal(*row[0]) + ", " + *v.rows[0][0] + ", " +
           (*v.rows[0][1] == "t" ? "true" : "false") + ");\n";
  }
  return out;
}

BackupChunk BackupWriter::add_section(const std::string& kind, std::string_view sql) {
  Impl& m = *impl_;
  Compressor comp(m.options.compression, m.options.level);
  comp.begin();
  comp.add(sql);
  BackupChunk chunk;
  chunk.kind = kind;
  chunk.raw_bytes = comp.raw_bytes();
  return m.place(std::move(chunk), comp.end(), kind == "post-data");
}

void BackupWriter::copy_data() {
  Impl& m = *impl_;
  const long long chunk_pages =
      m.options.chunk_pages > 0 ? m.options.chunk_pages : kDefaultChunkPages;
  std::vector<DataTask> tasks;
  for (size_t i = 0; i < m.tables.size(); ++i) {
    const long long pages = m.tables[i].pages;
    if (pages <= chunk_pages) {
      tasks.push_back({i, 0, -1, true, pages});
      continue;
    }
    for (long long first = 0; first < pages; first += chunk_pages) {
      bool last = first + chunk_pages >= pages;
      tasks.push_back(
          {i, first, last ? -1 : first + chunk_pages, false, std::min(chunk_pages, pages - first)});
    }
  }
  std::stable_sort(tasks.begin(), tasks.end(),
                   [](const DataTask& a, const DataTask& b) { return a.est_pages > b.est_pages; });
  if (tasks.empty()) return;

  Pool pool;
  size_t next = 0;
  std::vector<DataTask> deferred;  // only the coordinator, which locked every table, takes these
  std::vector<bool> contended(m.tables.size(), false);
  int helpers_running = 0;
  BackupProgress progress;
  progress.chunks_total = static_cast<int>(tasks.size());

  auto take = [&](bool coordinating, DataTask& out) {
    std::unique_lock<std::mutex> lock(pool.mutex);
    for (;;) {
      if (pool.abort) return false;
      if (coordinating && !deferred.empty()) {
        out = deferred.back();
        deferred.pop_back();
        return true;
      }
      if (next < tasks.size()) {
        out = tasks[next++];
        return true;
      }
      if (!coordinating || helpers_running == 0) return false;
      pool.changed.wait(lock);
    }
  };

  auto work = [&](Connection& conn, bool coordinating) {
    Compressor comp(m.options.compression, m.options.level);
    std::vector<bool> locked(m.tables.size(), coordinating);
    DataTask task;
    while (take(coordinating, task)) {
      const BackupTableInfo& t = m.tables[task.table];
      if (!locked[task.table]) {
        bool skip;
        {
          std::lock_guard<std::mutex> guard(pool.mutex);
          skip = contended[task.table];
        }
        if (!skip) {
          try {
            conn.execute("SAVEPOINT pgsafe_lock; LOCK TABLE " + t.table +
                         " IN ACCESS SHARE MODE NOWAIT; RELEASE SAVEPOINT pgsafe_lock");
            locked[task.table] = true;
          } catch (const DbError& e) {
            if (e.sqlstate() != "55P03" || !e.fields().connection_usable) throw;
            conn.execute("ROLLBACK TO SAVEPOINT pgsafe_lock");
            skip = true;
          }
        }
        if (skip) {
          std::lock_guard<std::mutex> guard(pool.mutex);
          contended[task.table] = true;
          deferred.push_back(task);
          pool.changed.notify_all();
          continue;
        }
      }
      std::string sql = "COPY (SELECT * FROM ONLY " + t.table;
      if (!task.whole) {
        sql += " WHERE ";
        if (task.first_page > 0)
          sql += "ctid >= '(" + std::to_string(task.first_page) + ",0)'::tid";
        if (task.first_page > 0 && task.end_page >= 0) sql += " AND ";
        if (task.end_page >= 0) sql += "ctid < '(" + std::to_string(task.end_page) + ",0)'::tid";
      }
      sql += ") TO STDOUT";
      RowDigest digest;
      comp.begin();
      comp.add("COPY " + t.table + (t.columns.empty() ? "" : " " + t.columns) + " FROM stdin;\n");
      const std::vector<bool>& keep = m.keeps[task.table];
      std::string kept;
      CopyStats stats = conn.copy_out(sql, [&](std::string_view row) {
        digest.add(row);
        if (!t.has_generated) {
          comp.add(row);
          return;
        }
        // COPY text escapes tabs inside values, so every tab separates two columns.
        kept.clear();
        size_t col = 0;
        size_t start = 0;
        bool first = true;
        std::string_view body = row.substr(0, row.size() - (row.ends_with('\n') ? 1 : 0));
        for (;;) {
          size_t tab = body.find('\t', start);
          std::string_view value = body.substr(
              start, tab == std::string_view::npos ? std::string_view::npos : tab - start);
          if (col >= keep.size() || keep[col]) {
            if (!first) kept += '\t';
            first = false;
            kept += value;
          }
          ++col;
          if (tab == std::string_view::npos) break;
          start = tab + 1;
        }
        kept += '\n';
        comp.add(kept);
      });
      comp.add("\\.\n\n");
      BackupChunk chunk;
      chunk.kind = "data";
      chunk.table = t.table;
      chunk.first_page = task.whole ? 0 : task.first_page;
      chunk.end_page = task.whole ? -1 : task.end_page;
      chunk.rows = stats.rows;
      chunk.raw_bytes = comp.raw_bytes();
      BackupChunk placed = m.place(std::move(chunk), comp.end(), false);
      std::lock_guard<std::mutex> guard(pool.mutex);
      m.digests[task.table].merge(digest);
      BackupTableInfo& info = m.tables[task.table];
      info.bytes += stats.bytes;
      ++info.chunks;
      ++progress.chunks_done;
      progress.rows += stats.rows;
      progress.raw_bytes += placed.raw_bytes;
      progress.written += placed.length;
      ++pool.done;
      pool.changed.notify_all();
    }
  };

  auto run = [&](Connection* coordinator) {
    ScopedNoInterruptCheck quiet;
    std::unique_ptr<Connection> own;
    Connection* conn = coordinator;
    if (conn == nullptr) {
      try {
        own = std::make_unique<Connection>(m.dsn, m.options.application_name);
        own->execute(std::string(kCopySessionSettings) +
                     "; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
                     "SET TRANSACTION SNAPSHOT " +
                     sql_literal(m.snapshot));
        conn = own.get();
      } catch (const std::exception& e) {
        log::core()->warn("backup: a worker could not start, continuing without it: {}", e.what());
      }
    }
    if (conn != nullptr) {
      pool.enter(conn);
      try {
        work(*conn, coordinator != nullptr);
      } catch (...) {
        pool.fail(std::current_exception());
      }
    }
    {
      std::lock_guard<std::mutex> guard(pool.mutex);
      if (coordinator == nullptr) --helpers_running;
    }
    pool.leave(conn);
  };

  const size_t nthreads = std::min(static_cast<size_t>(m.options.workers), tasks.size());
  helpers_running = static_cast<int>(nthreads) - 1;
  std::vector<std::thread> threads;
  try {
    for (size_t i = 0; i < nthreads; ++i) {
      threads.emplace_back(run, i == 0 ? &m.coordinator : nullptr);
    }
  } catch (...) {
    pool.fail(std::current_exception());
    std::lock_guard<std::mutex> guard(pool.mutex);
    helpers_running -= static_cast<int>(nthreads - threads.size());
  }
  std::function<void()> report;
  if (m.options.on_progress) {
    report = [&] {
      BackupProgress now;
      {
        std::lock_guard<std::mutex> guard(pool.mutex);
        now = progress;
      }
      m.options.on_progress(now);
    };
  }
  supervise(pool, threads, report, "backup");
  for (size_t i = 0; i < m.tables.size(); ++i) {
    m.tables[i].rows = m.digests[i].rows();
    m.tables[i].digest = m.digests[i].hex();
  }
}

std::vector<BackupChunk> BackupWriter::finish() {
  Impl& m = *impl_;
  if (::fsync(m.fd.get()) != 0) throw FileError(m.path, "cannot fsync: " + errno_text());
  if (::close(m.fd.release()) != 0) throw FileError(m.path, "cannot close: " + errno_text());
  m.coordinator.execute("COMMIT");
  m.finished = true;
  return m.chunks;
}

void check_chunk(const std::string& path, const BackupChunk& chunk) {
  std::string bytes = read_range(path, chunk);
  if (sha256_hex(bytes) != chunk.sha256) {
    throw ChunkError(chunk, "SHA-256 mismatch (the bytes were altered)");
  }
}

namespace {

// A chunk's bytes, checked against the manifest's SHA-256 and decrypted: its compressed form.
// Throws ChunkError.
std::string checked_chunk(const std::string& path, const BackupChunk& chunk, const std::string& key,
                          const std::string& file_id) {
  std::string bytes = read_range(path, chunk);
  if (sha256_hex(bytes) != chunk.sha256) {
    throw ChunkError(chunk, "SHA-256 mismatch (the bytes were altered)");
  }
  if (key.empty()) return bytes;
  try {
    return open_sealed(key, chunk_aad(file_id, chunk.index, chunk.kind == "post-data"), bytes);
  } catch (const ChunkError&) {
    throw;
  } catch (const Error& e) {
    throw ChunkError(chunk, e.what());
  }
}

// A data chunk's first line (its COPY header); what was decompressed after it stays in `buf`.
std::string first_line(Decompressor& d, std::string& buf) {
  size_t nl;
  while ((nl = buf.find('\n')) == std::string::npos) {
    if (!d.next(buf, 1 << 16)) throw Error("does not start with a COPY header");
  }
  std::string line = buf.substr(0, nl);
  buf.erase(0, nl + 1);
  return line;
}

}  // namespace

std::string read_chunk(const std::string& path, const BackupChunk& chunk, Compression compression,
                       const std::string& key, const std::string& file_id) {
  std::string bytes = checked_chunk(path, chunk, key, file_id);
  try {
    return decompress(compression, bytes);
  } catch (const Error& e) {
    throw ChunkError(chunk, e.what());
  }
}

namespace {

// A data chunk's text could not be rewritten as COPY BINARY: its table is loaded as text.
class NotBinary : public Error {
 public:
  NotBinary() : Error("not convertible to COPY BINARY") {}
};

struct ChunkLoad {
  // Given the chunk's COPY header: its rewrite to COPY BINARY, or null to send the text.
  std::function<const CopyTextToBinary*(const std::string& header)> binary;
  bool freeze = false;  // COPY ... FREEZE (table truncated in this transaction)
};

// Checks, opens and streams one data chunk into its table: decompression (and the rewrite to
// COPY BINARY) runs while the server parses the previous piece.
long long load_chunk(Connection& conn, const std::string& path, const BackupChunk& chunk,
                     const RestoreOptions& options, const ChunkLoad& how) {
  std::string bytes = checked_chunk(path, chunk, options.key, options.file_id);
  try {
    Decompressor d(options.compression, bytes);
    std::string buf;
    std::string header = first_line(d, buf);
    const std::string_view tail = " FROM stdin;";
    if (header.compare(0, 5, "COPY ") != 0 || !std::string_view(header).ends_with(tail)) {
      throw Error("does not start with a COPY header");
    }
    const CopyTextToBinary* binary = how.binary ? how.binary(header) : nullptr;
    header.pop_back();
    if (binary != nullptr) {
      header += how.freeze ? " (FORMAT binary, FREEZE)" : " (FORMAT binary)";
    } else if (how.freeze) {
      header += " (FREEZE)";
    }
    // The end marker `\.` and the blank line after it stay behind until the frame ends.
    constexpr size_t kHold = 8;
    bool ended = false;
    bool started = false;
    char last_sent = '\n';  // nothing sent yet counts as the start of a line
    long long converted = 0;
    // Hands `text` (whole lines) to the server, as it is or rewritten.
    auto emit = [&](std::string& piece, std::string_view text) {
      if (binary == nullptr) {
        piece.assign(text);
        return;
      }
      piece.clear();
      if (!started) piece.append(CopyTextToBinary::header());
      started = true;
      if (!binary->convert(text, piece, converted)) throw NotBinary();
    };
    long long loaded = conn.copy_in(header, [&](std::string& piece) {
      if (ended) return false;
      for (;;) {
        if (!d.next(buf)) break;
        if (buf.size() > kHold + (1 << 20)) {
          size_t cut = buf.size() - kHold;
          if (binary != nullptr) {
            cut = buf.rfind('\n', cut - 1);
            if (cut == std::string::npos) continue;  // one long row: read on
            ++cut;
          }
          emit(piece, std::string_view(buf).substr(0, cut));
          last_sent = buf[cut - 1];
          buf.erase(0, cut);
          return true;
        }
      }
      ended = true;
      const std::string_view marker = "\\.\n\n";
      if (!std::string_view(buf).ends_with(marker)) throw Error("has no end-of-data marker");
      size_t end = buf.size() - marker.size();
      if ((end > 0 ? buf[end - 1] : last_sent) != '\n') throw Error("has no end-of-data marker");
      emit(piece, std::string_view(buf).substr(0, end));
      if (binary != nullptr) piece.append(CopyTextToBinary::trailer());
      return true;
    });
    if (binary != nullptr && loaded != converted) {
      throw Error("the server loaded " + std::to_string(loaded) + " rows of " +
                  std::to_string(converted));
    }
    return loaded;
  } catch (const ChunkError&) {
    throw;
  } catch (const DbError&) {
    throw;
  } catch (const NotBinary&) {
    throw;
  } catch (const Error& e) {
    throw ChunkError(chunk, e.what());
  }
}

// The COPY BINARY kinds of `table`'s columns as the chunk header `header` lists them (the
// stored columns in attnum order); nullopt when any has no exact binary rewrite, or the
// restored table's columns are not the header's.
std::optional<std::vector<FieldKind>> binary_fields(Connection& conn, const std::string& table,
                                                    const std::string& header) {
  Result r = conn.execute(
      "SELECT pg_catalog.quote_ident(a.attname), CASE t.typtype WHEN 'e' THEN 25 "
      "WHEN 'd' THEN t.typbasetype ELSE t.oid END "
      "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
      "WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped "
      "AND a.attgenerated = '' ORDER BY a.attnum",
      {table});
  if (r.rows.empty()) return std::nullopt;
  std::vector<FieldKind> kinds;
  std::string names;
  for (const Row& row : r.rows) {
    auto kind = field_kind_of_type(static_cast<unsigned int>(std::stoul(*row[1])));
    if (!kind) return std::nullopt;
    kinds.push_back(*kind);
    names += (names.empty() ? "" : ", ") + *row[0];
  }
  if (header != "COPY " + table + " (" + names + ") FROM stdin;") return std::nullopt;
  return kinds;
}

// What one worker loads at a time: a whole table in one transaction (truncated first, so that
// COPY FREEZE applies), or one chunk of a split table in its own transaction.
struct LoadUnit {
  std::string table;
  std::vector<size_t> chunks;  // indexes into the chunk list, in file order
  unsigned long long raw = 0;
  bool whole_table = false;
};

}  // namespace

long long restore_chunks(const std::string& dsn, const std::string& path,
                         const std::vector<BackupChunk>& chunks, const RestoreOptions& options) {
  if (options.workers < 1) throw ConfigError("workers must be 1 or more");
  if (chunks.empty()) return 0;
  std::map<std::string, unsigned long long> table_bytes;
  std::map<std::string, std::vector<size_t>> table_chunks;
  for (size_t i = 0; i < chunks.size(); ++i) {
    table_bytes[chunks[i].table] += chunks[i].raw_bytes;
    table_chunks[chunks[i].table].push_back(i);
  }
  // Largest first (as SQL text: what the server parses), so the longest loads and index builds
  // start first and the small tables fill in around them.
  std::string largest;
  unsigned long long total = 0;
  for (auto& [table, bytes] : table_bytes) {
    total += bytes;
    if (largest.empty() || bytes > table_bytes[largest]) largest = table;
  }
  // A table bigger than a worker's share would alone set the restore's length: its chunks go
  // to any worker that has nothing else, each in its own transaction (no FREEZE then).
  const bool split_largest = options.split_largest && options.workers > 1 &&
                             table_chunks[largest].size() > 1 &&
                             table_bytes[largest] * options.workers > total;
  std::vector<LoadUnit> units;
  for (auto& [table, idx] : table_chunks) {
    if (split_largest && table == largest) {
      for (size_t i : idx) units.push_back({table, {i}, table_bytes[table], false});
    } else {
      units.push_back({table, idx, table_bytes[table], true});
    }
  }
  std::stable_sort(units.begin(), units.end(), [&](const LoadUnit& a, const LoadUnit& b) {
    if (a.raw != b.raw) return a.raw > b.raw;
    if (a.table != b.table) return a.table < b.table;
    return a.chunks.front() < b.chunks.front();
  });
  std::vector<bool> taken(units.size(), false);
  // Worker 0 starts on the split table; the others load the rest first, then join it.
  auto pick = [&](int worker) -> const LoadUnit* {
    const bool big_first = worker == 0 || !split_largest;
    for (int pass = 0; pass < 2; ++pass) {
      const bool want_big = (pass == 0) == big_first;
      for (size_t i = 0; i < units.size(); ++i) {
        if (taken[i] || (split_largest && (units[i].table == largest) != want_big)) continue;
        taken[i] = true;
        return &units[i];
      }
      if (!split_largest) break;
    }
    return nullptr;
  };
  std::map<std::string, int> remaining;  // table -> units not loaded yet
  for (const LoadUnit& u : units) ++remaining[u.table];
  std::map<std::string, std::shared_ptr<const CopyTextToBinary>> converters;  // under the mutex
  std::vector<std::string> ddl_queue;
  Pool pool;
  RestoreProgress progress;
  progress.chunks_total = static_cast<int>(chunks.size());

  // A table's rewrite to COPY BINARY (null: load as text), decided once from its first chunk's
  // header and shared by the workers that load its chunks.
  auto converter_for = [&](Connection& conn, const std::string& table, const std::string& header) {
    {
      std::lock_guard<std::mutex> guard(pool.mutex);
      auto found = converters.find(table);
      if (found != converters.end()) return found->second;
    }
    std::shared_ptr<const CopyTextToBinary> conv;
    if (auto kinds = binary_fields(conn, table, header)) {
      conv = std::make_shared<const CopyTextToBinary>(std::move(*kinds));
    }
    std::lock_guard<std::mutex> guard(pool.mutex);
    converters[table] = conv;
    return conv;
  };

  auto load_unit = [&](Connection& conn, const LoadUnit& unit) {
    std::shared_ptr<const CopyTextToBinary> conv;  // kept alive while the unit loads
    bool as_text = !options.binary;
    ChunkLoad how;
    how.freeze = options.freeze && unit.whole_table;
    how.binary = [&](const std::string& header) -> const CopyTextToBinary* {
      if (as_text) return nullptr;
      if (!conv) conv = converter_for(conn, unit.table, header);
      return conv.get();
    };
    for (;;) {
      long long rows_here = 0;
      int chunks_here = 0;
      unsigned long long bytes_here = 0;
      if (how.freeze) {
        try {
          conn.execute("BEGIN; TRUNCATE ONLY " + unit.table);
        } catch (const DbError& e) {
          // Not ours to truncate (another owner, say): load it plainly.
          conn.rollback_quietly("restore");
          log::core()->info("restore: loading {} without FREEZE: {}", unit.table, e.what());
          how.freeze = false;
        }
      }
      try {
        if (!how.freeze) conn.execute("BEGIN");
        for (size_t i : unit.chunks) {
          const BackupChunk& chunk = chunks[i];
          long long rows = load_chunk(conn, path, chunk, options, how);
          if (rows != chunk.rows) {
            throw ChunkError(chunk, "loaded " + std::to_string(rows) + " rows, the manifest says " +
                                        std::to_string(chunk.rows));
          }
          std::lock_guard<std::mutex> guard(pool.mutex);
          rows_here += rows;
          ++chunks_here;
          bytes_here += chunk.length;
          ++progress.chunks_done;
          progress.rows += rows;
          progress.bytes += chunk.length;
          ++pool.done;
          pool.changed.notify_all();
        }
        conn.execute("COMMIT");
        return;
      } catch (const NotBinary&) {
        // Rare (text not in its canonical form): start the table again, as text.
        conn.rollback_quietly("restore");
        log::core()->info("restore: loading {} as COPY text (its data is not all canonical)",
                          unit.table);
        std::lock_guard<std::mutex> guard(pool.mutex);
        progress.chunks_done -= chunks_here;
        progress.rows -= rows_here;
        progress.bytes -= bytes_here;
        converters[unit.table] = nullptr;
        as_text = true;
      } catch (...) {
        conn.rollback_quietly("restore");
        throw;
      }
    }
  };

  auto run = [&](int worker) {
    ScopedNoInterruptCheck quiet;
    std::unique_ptr<Connection> conn;
    try {
      conn = std::make_unique<Connection>(dsn, options.application_name);
      conn->execute(
          "SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; SET search_path = ''; "
          "SET statement_timeout = 0; SET lock_timeout = 0; "
          "SET idle_in_transaction_session_timeout = 0; SET standard_conforming_strings = on; "
          "SET check_function_bodies = false; SET synchronous_commit = off; "
          // Index builds sort in memory rather than in many on-disk runs.
          "SET maintenance_work_mem = " +
          sql_literal(options.maintenance_work_mem));
    } catch (...) {
      pool.fail(std::current_exception());
      pool.leave(nullptr);
      return;
    }
    pool.enter(conn.get());
    try {
      for (;;) {
        const LoadUnit* unit = nullptr;
        std::string ddl;
        {
          // Index builds of loaded tables first, then data, largest first.
          std::lock_guard<std::mutex> guard(pool.mutex);
          if (pool.abort) break;
          if (!ddl_queue.empty()) {
            ddl = std::move(ddl_queue.front());
            ddl_queue.erase(ddl_queue.begin());
          } else {
            unit = pick(worker);
            if (unit == nullptr) break;
          }
        }
        if (unit == nullptr) {
          conn->execute(ddl);
          continue;
        }
        load_unit(*conn, *unit);
        std::lock_guard<std::mutex> guard(pool.mutex);
        if (--remaining[unit->table] == 0) {
          auto found = options.after_table.find(unit->table);
          if (found != options.after_table.end()) {
            for (const std::string& sql : found->second) ddl_queue.push_back(sql);
          }
        }
      }
    } catch (...) {
      pool.fail(std::current_exception());
    }
    pool.leave(conn.get());
  };

  const size_t nthreads = std::min(static_cast<size_t>(options.workers), units.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < nthreads; ++i) threads.emplace_back(run, static_cast<int>(i));
  std::function<void()> report;
  if (options.on_progress) {
    report = [&] {
      RestoreProgress now;
      {
        std::lock_guard<std::mutex> guard(pool.mutex);
        now = progress;
      }
      options.on_progress(now);
    };
  }
  supervise(pool, threads, report, "restore");
  return progress.rows;
}

}  // namespace pgsafe
