#pragma once
// IDX files (the MNIST format), raw or gzip-compressed: read_idx, write_idx.
//
// Layout (all integers big-endian):
//   magic    4 bytes: 0x00 0x00 TT RR   (TT = element type code, RR = rank)
//   dims     RR x uint32                 (each > 0)
//   payload  prod(dims) x element size   (multi-byte elements big-endian)
// Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
//
// The reader trusts nothing in the file: the payload size is checked against max_bytes
// before anything is allocated for it, and the buffer then grows with the data actually
// read, so a short file that claims a huge payload costs little memory.

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"

namespace ember::data {

// One IDX file as stored: type code, dimensions (outermost first) and the raw payload.
struct IdxArray {
  std::uint8_t type_code = 0x08;
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> bytes;  // as stored: big-endian for multi-byte types
};

inline constexpr int idx_max_rank = 4;
// read_idx's default bound on the payload size: 4 GiB, far above MNIST's 47 MB.
inline constexpr std::int64_t idx_default_max_bytes = std::int64_t{1} << 32;

// Bytes per element for an IDX type code, or 0 if the code is not an IDX type.
[[nodiscard]] inline std::int64_t idx_element_size(std::uint8_t type_code) {
  switch (type_code) {
    case 0x08: return 1;  // unsigned byte
    case 0x09: return 1;  // signed byte
    case 0x0B: return 2;  // short
    case 0x0C: return 4;  // int
    case 0x0D: return 4;  // float
    case 0x0E: return 8;  // double
    default: return 0;
  }
}

namespace detail {

[[nodiscard]] inline std::string idx_hex(std::uint32_t value, int digits) {
  std::ostringstream os;
  os << "0x" << std::hex << std::uppercase << std::setw(digits) << std::setfill('0') << value;
  return os.str();
}

[[nodiscard]] inline std::string idx_where(const std::string& path) {
  return "IDX file '" + path + "': ";
}

[[nodiscard]] inline std::string errno_message(int err) {
  return std::error_code(err, std::generic_category()).message();
}

struct FileCloser {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// Streams the bytes of a file, inflating it on the fly when it starts with the gzip magic
// 1f 8b (concatenated gzip members are read as one stream, as gzip(1) does).
class IdxByteSource {
 public:
  explicit IdxByteSource(const std::string& path) : path_(path), in_(chunk_) {
    file_.reset(std::fopen(path.c_str(), "rb"));
    if (!file_) {
      throw Error(idx_where(path) + "cannot open: " + errno_message(errno));
    }
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    file_size_ = ec ? 0 : static_cast<std::uint64_t>(size);
    fill_input();
    gzip_ = in_len_ >= 2 && in_[0] == 0x1f && in_[1] == 0x8b;
    if (gzip_) {
      // 16 + MAX_WBITS: expect a gzip wrapper, check its CRC-32 and length trailer.
      if (inflateInit2(&strm_, 16 + MAX_WBITS) != Z_OK) {
        throw Error(idx_where(path) + "zlib inflateInit2 failed");
      }
      inflate_ready_ = true;
    }
  }
  IdxByteSource(const IdxByteSource&) = delete;
  IdxByteSource& operator=(const IdxByteSource&) = delete;
  ~IdxByteSource() {
    if (inflate_ready_) inflateEnd(&strm_);
  }

  [[nodiscard]] bool gzip() const { return gzip_; }
  // Size of the file on disk (compressed size for gzip), 0 when unknown.
  [[nodiscard]] std::uint64_t file_size() const { return file_size_; }

  // Reads up to n bytes into dst. Returns fewer than n only at the end of the data.
  std::size_t read(std::uint8_t* dst, std::size_t n) {
    return gzip_ ? read_gzip(dst, n) : read_raw(dst, n);
  }

 private:
  static constexpr std::size_t chunk_ = std::size_t{1} << 16;

  void fill_input() {
    in_pos_ = 0;
    in_len_ = std::fread(in_.data(), 1, in_.size(), file_.get());
    if (in_len_ < in_.size()) check_stream();
  }

  void check_stream() {
    if (std::ferror(file_.get())) {
      throw Error(idx_where(path_) + "read error: " + errno_message(errno));
    }
    at_eof_ = true;
  }

  std::size_t read_raw(std::uint8_t* dst, std::size_t n) {
    std::size_t got = std::min(n, in_len_ - in_pos_);
    std::copy_n(in_.data() + in_pos_, got, dst);
    in_pos_ += got;
    if (got < n && !at_eof_) {
      const std::size_t more = std::fread(dst + got, 1, n - got, file_.get());
      got += more;
      if (got < n) check_stream();
    }
    return got;
  }

  std::size_t read_gzip(std::uint8_t* dst, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
      if (strm_.avail_in == 0) {
        if (in_pos_ == in_len_ && !at_eof_) fill_input();
        strm_.next_in = in_.data() + in_pos_;
        strm_.avail_in = static_cast<uInt>(in_len_ - in_pos_);
        in_pos_ = in_len_;
      }
      if (member_done_) {
        if (strm_.avail_in == 0) break;  // end of the file after a complete member
        // More bytes after a complete member: only another gzip member may follow.
        if (strm_.next_in[0] != 0x1f) {
          throw Error(idx_where(path_) + "corrupt gzip: non-gzip data after the compressed stream");
        }
        inflateReset(&strm_);
        member_done_ = false;
      }
      const std::size_t want = std::min<std::size_t>(n - got, chunk_ * 16);
      strm_.next_out = dst + got;
      strm_.avail_out = static_cast<uInt>(want);
      const int rc = inflate(&strm_, Z_NO_FLUSH);
      got += want - strm_.avail_out;
      if (rc == Z_STREAM_END) {
        member_done_ = true;
      } else if (rc == Z_BUF_ERROR) {
        // No progress possible: input exhausted mid-stream (avail_out was > 0).
        if (strm_.avail_in == 0 && in_pos_ == in_len_ && at_eof_) {
          throw Error(idx_where(path_) +
                      "corrupt gzip: unexpected end of file (truncated compressed data)");
        }
      } else if (rc != Z_OK) {
        const char* msg = strm_.msg != nullptr ? strm_.msg : zError(rc);
        throw Error(idx_where(path_) + "corrupt gzip: " + msg);
      }
    }
    return got;
  }

  std::string path_;
  FilePtr file_;
  std::uint64_t file_size_ = 0;
  std::vector<std::uint8_t> in_;
  std::size_t in_pos_ = 0;
  std::size_t in_len_ = 0;
  bool at_eof_ = false;
  bool gzip_ = false;
  bool inflate_ready_ = false;
  bool member_done_ = false;
  z_stream strm_{};
};

[[nodiscard]] inline std::uint32_t load_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

inline void store_be32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

[[nodiscard]] inline std::string dims_string(const std::vector<std::int64_t>& dims) {
  std::ostringstream os;
  for (std::size_t i = 0; i < dims.size(); ++i) os << (i ? " x " : "") << dims[i];
  return os.str();
}

// prod(dims) * element size, checked against max_bytes without overflowing; the message
// says which file and what was too large.
[[nodiscard]] inline std::uint64_t idx_payload_bytes(const std::string& where,
                                                     const std::vector<std::int64_t>& dims,
                                                     std::int64_t elem_size,
                                                     std::int64_t max_bytes) {
  const auto limit = static_cast<std::uint64_t>(max_bytes);
  std::uint64_t total = static_cast<std::uint64_t>(elem_size);
  for (const std::int64_t d : dims) {
    const auto ud = static_cast<std::uint64_t>(d);
    if (ud > limit / total) {
      throw Error(where + "payload of " + dims_string(dims) + " elements of " +
                  std::to_string(elem_size) + " byte(s) exceeds the size limit of " +
                  std::to_string(max_bytes) + " bytes");
    }
    total *= ud;
  }
  return total;
}

// Writes a file as given, or gzip-compressed, in pieces. For write_idx and for test
// fixtures (which need broken files that write_idx refuses to make).
class FileWriter {
 public:
  FileWriter(const std::string& path, bool gzip) : path_(path), gzip_(gzip) {
    file_.reset(std::fopen(path.c_str(), "wb"));
    if (!file_) fail("cannot open for writing");
    if (gzip_) {
      // 16 + MAX_WBITS: write a gzip wrapper (header, CRC-32 and length trailer).
      if (deflateInit2(&strm_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                       Z_DEFAULT_STRATEGY) != Z_OK) {
        throw Error("'" + path_ + "': zlib deflateInit2 failed");
      }
      deflate_ready_ = true;
      out_.resize(std::size_t{1} << 16);
    }
  }
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;
  ~FileWriter() {
    if (deflate_ready_) deflateEnd(&strm_);
  }

  void write(const std::uint8_t* data, std::size_t size) {
    if (!gzip_) {
      put(data, size);
      return;
    }
    while (size > 0) {
      // At most 1 GiB per call: avail_in is a 32-bit uInt.
      const std::size_t n = std::min<std::size_t>(size, std::size_t{1} << 30);
      strm_.next_in = const_cast<Bytef*>(data);
      strm_.avail_in = static_cast<uInt>(n);
      while (strm_.avail_in > 0) deflate_step(Z_NO_FLUSH);
      data += n;
      size -= n;
    }
  }

  // Finishes the gzip stream and closes the file; a failure here is an error too.
  void close() {
    if (gzip_) {
      while (deflate_step(Z_FINISH) != Z_STREAM_END) {
      }
    }
    if (std::fclose(file_.release()) != 0) fail("close failed");
  }

 private:
  [[noreturn]] void fail(const char* what) {
    throw Error("'" + path_ + "': " + what + ": " + errno_message(errno));
  }

  void put(const std::uint8_t* p, std::size_t n) {
    if (n > 0 && std::fwrite(p, 1, n, file_.get()) != n) fail("write failed");
  }

  int deflate_step(int flush) {
    strm_.next_out = out_.data();
    strm_.avail_out = static_cast<uInt>(out_.size());
    const int rc = deflate(&strm_, flush);
    if (rc == Z_STREAM_ERROR) throw Error("'" + path_ + "': zlib deflate failed");
    put(out_.data(), out_.size() - strm_.avail_out);
    return rc;
  }

  std::string path_;
  bool gzip_;
  FilePtr file_;
  bool deflate_ready_ = false;
  z_stream strm_{};
  std::vector<std::uint8_t> out_;
};

inline void write_file_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes,
                             bool gzip) {
  FileWriter w(path, gzip);
  w.write(bytes.data(), bytes.size());
  w.close();
}

}  // namespace detail

// Reads an IDX file, raw or gzip (detected by its first two bytes). Throws ember::Error,
// naming the file, for a missing file, a bad header, a payload larger than max_bytes, a
// payload shorter or longer than the header says, or corrupt gzip data.
[[nodiscard]] inline IdxArray read_idx(const std::string& path,
                                       std::int64_t max_bytes = idx_default_max_bytes) {
  const std::string where = detail::idx_where(path);
  EMBER_CHECK(max_bytes > 0, where, "max_bytes must be positive, got ", max_bytes);
  detail::IdxByteSource src(path);

  std::uint8_t magic[4] = {};
  const std::size_t magic_got = src.read(magic, 4);
  EMBER_CHECK(magic_got == 4, where, "too short for an IDX header (", magic_got, " bytes)");
  const std::uint32_t magic_value = detail::load_be32(magic);
  EMBER_CHECK(magic[0] == 0 && magic[1] == 0, where, "bad magic ", detail::idx_hex(magic_value, 8),
              " (expected 0x0000TTRR: two zero bytes, type code TT, rank RR)");
  IdxArray out;
  out.type_code = magic[2];
  const std::int64_t elem_size = idx_element_size(out.type_code);
  EMBER_CHECK(elem_size > 0, where, "unknown type code ", detail::idx_hex(out.type_code, 2),
              " (expected 0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E)");
  const int rank = magic[3];
  EMBER_CHECK(rank >= 1 && rank <= idx_max_rank, where, "unsupported rank ", rank, " (expected 1..",
              idx_max_rank, ")");

  std::uint8_t dim_bytes[4 * idx_max_rank] = {};
  const auto dims_len = static_cast<std::size_t>(4 * rank);
  const std::size_t dims_got = src.read(dim_bytes, dims_len);
  EMBER_CHECK(dims_got == dims_len, where, "truncated header: expected ", dims_len,
              " bytes of dimensions, got ", dims_got);
  for (int i = 0; i < rank; ++i) {
    const std::uint32_t d = detail::load_be32(dim_bytes + 4 * i);
    EMBER_CHECK(d > 0, where, "dimension ", i, " is 0");
    out.dims.push_back(static_cast<std::int64_t>(d));
  }
  const std::uint64_t total = detail::idx_payload_bytes(where, out.dims, elem_size, max_bytes);

  // Grow the buffer with the data actually read; reserve only what the file could hold
  // (deflate expands at most ~1032:1), so a lying header cannot force a huge allocation.
  const std::uint64_t on_disk = std::min(src.file_size(), std::uint64_t{1} << 40);
  const std::uint64_t could_hold = src.gzip() ? on_disk * 1032 : on_disk;
  out.bytes.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(total, could_hold)));
  constexpr std::uint64_t step_max = std::uint64_t{1} << 24;
  std::uint64_t have = 0;
  while (have < total) {
    const std::uint64_t step = std::min(total - have, step_max);
    out.bytes.resize(static_cast<std::size_t>(have + step));
    const std::size_t got = src.read(out.bytes.data() + have, static_cast<std::size_t>(step));
    have += got;
    if (got < step) break;
  }
  EMBER_CHECK(have == total, where, "truncated payload: expected ", total, " bytes (",
              detail::dims_string(out.dims), " x ", elem_size, "), got ", have);
  std::uint8_t extra = 0;
  EMBER_CHECK(src.read(&extra, 1) == 0, where, "extra data after the expected ", total,
              "-byte payload (", detail::dims_string(out.dims), " x ", elem_size, ")");
  return out;
}

// Reads an IDX file of unsigned bytes (type 0x08), as MNIST's are.
[[nodiscard]] inline std::vector<std::uint8_t> read_idx_u8(
    const std::string& path, std::vector<std::int64_t>& dims_out,
    std::int64_t max_bytes = idx_default_max_bytes) {
  IdxArray a = read_idx(path, max_bytes);
  EMBER_CHECK(a.type_code == 0x08, detail::idx_where(path), "type code ",
              detail::idx_hex(a.type_code, 2), ", expected 0x08 (unsigned byte)");
  dims_out = std::move(a.dims);
  return std::move(a.bytes);
}

// Writes an IDX file, gzip-compressed if gzip is true. The array must be valid: known type
// code, rank 1..4, dimensions in 1..2^32-1, and bytes.size() == prod(dims) * element size.
inline void write_idx(const std::string& path, const IdxArray& a, bool gzip) {
  const std::string where = detail::idx_where(path);
  const std::int64_t elem_size = idx_element_size(a.type_code);
  EMBER_CHECK(elem_size > 0, where, "cannot write unknown type code ",
              detail::idx_hex(a.type_code, 2));
  const auto rank = static_cast<int>(a.dims.size());
  EMBER_CHECK(rank >= 1 && rank <= idx_max_rank, where, "cannot write rank ", rank,
              " (expected 1..", idx_max_rank, ")");
  for (const std::int64_t d : a.dims) {
    EMBER_CHECK(d > 0 && d <= std::int64_t{0xFFFFFFFF}, where, "cannot write dimension ", d);
  }
  const std::uint64_t total =
      detail::idx_payload_bytes(where, a.dims, elem_size, std::numeric_limits<std::int64_t>::max());
  EMBER_CHECK(total == a.bytes.size(), where, "payload has ", a.bytes.size(), " bytes, dims ",
              detail::dims_string(a.dims), " x ", elem_size, " need ", total);

  std::uint8_t header[4 + 4 * idx_max_rank] = {0, 0, a.type_code, static_cast<std::uint8_t>(rank)};
  for (int i = 0; i < rank; ++i) {
    detail::store_be32(header + 4 + 4 * i, static_cast<std::uint32_t>(a.dims[i]));
  }
  detail::FileWriter w(path, gzip);
  w.write(header, static_cast<std::size_t>(4 + 4 * rank));
  w.write(a.bytes.data(), a.bytes.size());
  w.close();
}

}  // namespace ember::data
