// Unit tests for the backup file's chunk framing: each chunk one self-contained zstd frame or
// gzip member (so chunks decode alone, and concatenated they are one stream for `zstd -dc` /
// `zcat`), damage and truncation are errors rather than garbage, and AES-256-GCM sealing binds
// the key, the chunk's index and the last-chunk flag.
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pgsafe/backup_framing.hpp"
#include "pgsafe/errors.hpp"

using pgsafe::compress_frame;
using pgsafe::Compression;
using pgsafe::decompress_frame;
using pgsafe::Error;
using pgsafe::open_chunk;
using pgsafe::seal_chunk;

namespace {

constexpr size_t kMiB = size_t{1} << 20;

int level_for(Compression kind) { return kind == Compression::kZstd ? 1 : 3; }

std::string compress(Compression kind, std::string_view data, size_t piece = 0) {
  return compress_frame(kind, level_for(kind), data, piece);
}

// COPY-like rows: compressible but not trivially so, and never the same twice in a row.
std::string rows(size_t size, uint32_t seed = 2463534242u) {
  std::string out;
  out.reserve(size + 64);
  uint32_t x = seed;
  for (long n = 1; out.size() < size; ++n) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    out += std::to_string(n) + "\tcustomer " + std::to_string(x % 1000) + "\t" + std::to_string(x) +
           "\t{\"k\": " + std::to_string(x % 97) + "}\n";
  }
  out.resize(size);
  return out;
}

// What `zstd -dc` and `zcat` do with a file: decode frames / members one after another until
// the input ends. Throws std::runtime_error on anything the tools would reject.
std::string decode_stream(Compression kind, std::string_view data) {
  std::string out;
  std::vector<char> buf(1 << 16);
  if (kind == Compression::kZstd) {
    ZSTD_DCtx* ctx = ZSTD_createDCtx();
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    size_t last = 0;
    while (in.pos < in.size) {
      ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
      last = ZSTD_decompressStream(ctx, &ob, &in);
      if (ZSTD_isError(last)) {
        ZSTD_freeDCtx(ctx);
        throw std::runtime_error(ZSTD_getErrorName(last));
      }
      out.append(buf.data(), ob.pos);
    }
    ZSTD_freeDCtx(ctx);
    if (last != 0) throw std::runtime_error("zstd stream ends inside a frame");
    return out;
  }
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw std::runtime_error("inflateInit2");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  int rc = Z_OK;
  while (zs.avail_in > 0) {
    zs.next_out = reinterpret_cast<Bytef*>(buf.data());
    zs.avail_out = static_cast<uInt>(buf.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf.data(), buf.size() - zs.avail_out);
    if (rc == Z_STREAM_END) {
      inflateReset(&zs);  // the next member, as zcat does
    } else if (rc != Z_OK) {
      inflateEnd(&zs);
      throw std::runtime_error("gzip stream error");
    }
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("gzip stream ends inside a member");
  return out;
}

std::string key_of(char fill) { return std::string(32, fill); }

class Framing : public ::testing::TestWithParam<Compression> {};

std::string kind_name(const ::testing::TestParamInfo<Compression>& info) {
  return info.param == Compression::kZstd ? "Zstd" : "Gzip";
}

}  // namespace

TEST_P(Framing, EachChunkDecompressesAlone) {
  const std::vector<std::string> chunks = {rows(3000, 1), rows(70000, 2), rows(5, 3)};
  for (const std::string& chunk : chunks) {
    const std::string frame = compress(GetParam(), chunk);
    EXPECT_LT(frame.size(), chunk.size() + 64);
    EXPECT_EQ(decompress_frame(GetParam(), frame), chunk);
    EXPECT_EQ(decode_stream(GetParam(), frame), chunk);
  }
}

TEST_P(Framing, ConcatenatedChunksAreOneStreamInAnyOrder) {
  const std::string a = rows(4000, 11);
  const std::string b = rows(9000, 12);
  const std::string c = rows(1, 13);
  const std::string fa = compress(GetParam(), a);
  const std::string fb = compress(GetParam(), b);
  const std::string fc = compress(GetParam(), c);
  EXPECT_EQ(decode_stream(GetParam(), fa + fb + fc), a + b + c);
  EXPECT_EQ(decode_stream(GetParam(), fc + fa + fb), c + a + b);
  // A chunk is exactly one frame: more bytes after it are an error, not silently ignored.
  EXPECT_THROW(decompress_frame(GetParam(), fa + fb), Error);
}

TEST_P(Framing, EmptyAndOneByteInputs) {
  const std::string empty = compress(GetParam(), "");
  EXPECT_FALSE(empty.empty());  // still a complete frame / member, with its checksum
  EXPECT_EQ(decompress_frame(GetParam(), empty), "");
  const std::string one = compress(GetParam(), "x");
  EXPECT_EQ(decompress_frame(GetParam(), one), "x");
  EXPECT_EQ(decode_stream(GetParam(), empty + one + empty), "x");
}

TEST_P(Framing, SeveralMebibytesInPiecesOrAtOnce) {
  const std::string big = rows(6 * kMiB + 12345, 21);
  // Rows arrive a few KiB at a time during a backup; some callers hand over one large block.
  const std::string pieces = compress(GetParam(), big, 4096);
  const std::string whole = compress(GetParam(), big);
  EXPECT_LT(pieces.size(), big.size() / 2);
  EXPECT_EQ(decompress_frame(GetParam(), pieces), big);
  EXPECT_EQ(decompress_frame(GetParam(), whole), big);
  EXPECT_EQ(decode_stream(GetParam(), pieces + whole), big + big);
}

TEST_P(Framing, EveryTruncationIsAnError) {
  const std::string frame = compress(GetParam(), rows(2000, 31));
  for (size_t cut = 0; cut < frame.size(); ++cut) {
    EXPECT_THROW(decompress_frame(GetParam(), std::string_view(frame).substr(0, cut)), Error)
        << "cut at " << cut << " of " << frame.size();
  }
}

TEST_P(Framing, FlippedBytesAreAnError) {
  const std::string data = rows(200000, 41);
  const std::string frame = compress(GetParam(), data);
  // Anywhere from well inside the compressed data to the trailing checksum / CRC and length.
  const std::vector<size_t> spots = {frame.size() / 3, frame.size() / 2, frame.size() - 20,
                                     frame.size() - 5, frame.size() - 1};
  for (size_t at : spots) {
    std::string bad = frame;
    bad[at] = static_cast<char>(bad[at] ^ 0x01);
    EXPECT_THROW(decompress_frame(GetParam(), bad), Error) << "flipped byte " << at;
  }
  EXPECT_THROW(decompress_frame(GetParam(), std::string(100, 'z')), Error);
}

INSTANTIATE_TEST_SUITE_P(Backup, Framing, ::testing::Values(Compression::kZstd, Compression::kGzip),
                         kind_name);

TEST(Sealing, RoundTripsWithFreshNonces) {
  const std::string key = key_of('k');
  const std::string aad = pgsafe::chunk_aad("file-1", 3, false);
  const std::string plain = rows(10000, 51);
  const std::string a = seal_chunk(key, aad, plain);
  const std::string b = seal_chunk(key, aad, plain);
  EXPECT_EQ(a.size(), plain.size() + 12 + 16);
  EXPECT_NE(a, b);  // a new random nonce every time
  EXPECT_EQ(a.find("customer"), std::string::npos);
  EXPECT_EQ(open_chunk(key, aad, a), plain);
  EXPECT_EQ(open_chunk(key, aad, b), plain);
  EXPECT_EQ(open_chunk(key, aad, seal_chunk(key, aad, "")), "");
}

TEST(Sealing, WrongKeyFails) {
  const std::string aad = pgsafe::chunk_aad("file-1", 0, false);
  const std::string sealed = seal_chunk(key_of('k'), aad, "COPY t FROM stdin;\n1\n\\.\n");
  EXPECT_THROW(open_chunk(key_of('j'), aad, sealed), Error);
  std::string almost = key_of('k');
  almost[31] = 'K';
  EXPECT_THROW(open_chunk(almost, aad, sealed), Error);
}

TEST(Sealing, AssociatedDataBindsIndexLastFlagAndFile) {
  const std::string key = key_of('k');
  const std::string sealed = seal_chunk(key, pgsafe::chunk_aad("file-1", 7, false), "rows");
  EXPECT_EQ(open_chunk(key, pgsafe::chunk_aad("file-1", 7, false), sealed), "rows");
  EXPECT_THROW(open_chunk(key, pgsafe::chunk_aad("file-1", 8, false), sealed), Error);
  EXPECT_THROW(open_chunk(key, pgsafe::chunk_aad("file-1", 6, false), sealed), Error);
  EXPECT_THROW(open_chunk(key, pgsafe::chunk_aad("file-1", 7, true), sealed), Error);
  EXPECT_THROW(open_chunk(key, pgsafe::chunk_aad("file-2", 7, false), sealed), Error);
  const std::string last = seal_chunk(key, pgsafe::chunk_aad("file-1", 9, true), "post-data");
  EXPECT_THROW(open_chunk(key, pgsafe::chunk_aad("file-1", 9, false), last), Error);
  EXPECT_NE(pgsafe::chunk_aad("f", 1, true), pgsafe::chunk_aad("f", 1, false));
}

TEST(Sealing, AlteredOrShortChunksFail) {
  const std::string key = key_of('k');
  const std::string aad = pgsafe::chunk_aad("file-1", 2, false);
  const std::string sealed = seal_chunk(key, aad, rows(500, 61));
  for (size_t at : {size_t{0}, size_t{11}, size_t{12}, sealed.size() / 2, sealed.size() - 1}) {
    std::string bad = sealed;
    bad[at] = static_cast<char>(bad[at] ^ 0x80);  // nonce, ciphertext or tag
    EXPECT_THROW(open_chunk(key, aad, bad), Error) << "flipped byte " << at;
  }
  EXPECT_THROW(open_chunk(key, aad, sealed.substr(0, sealed.size() - 1)), Error);
  EXPECT_THROW(open_chunk(key, aad, sealed.substr(0, 27)), Error);
  EXPECT_THROW(open_chunk(key, aad, ""), Error);
}

TEST(Sealing, CompressedThenSealedChunksRoundTrip) {
  // The pipeline of an encrypted backup: compress, seal; restore opens, then decompresses.
  const std::string key = key_of('q');
  for (Compression kind : {Compression::kZstd, Compression::kGzip}) {
    const std::string data = rows(300000, 71);
    const std::string aad = pgsafe::chunk_aad("file-9", 4, false);
    const std::string sealed = seal_chunk(key, aad, compress(kind, data, 8192));
    EXPECT_EQ(decompress_frame(kind, open_chunk(key, aad, sealed)), data);
  }
}
