#pragma once
// IDX files (the MNIST format), raw or gzip-compressed: read_idx, write_idx.
//
// Layout (all integers big-endian):
//   magic    4 bytes: 0x00 0x00 TT RR   (TT = element type code, RR = rank)
//   dims     RR x uint32                 (each > 0)
//   payload  prod(dims) x element size   (multi-byte elements big-endian)
// Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
//
// The reader trusts nothing in the file: the payload size is checked against max_bytes and
// against what the file can hold (exactly its size when raw, at most 1032 times it when
// gzip-compressed) before anything is allocated, so a short file that claims a huge payload
// costs no memory; the payload is then read or inflated straight into its destination
// (read_idx_into, read_idx_u8_tensor), and an allocation that fails anyway is an ember::Error
// naming the file and the size.

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iomanip>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember::data {

/// One IDX file as stored: type code, dimensions (outermost first) and the raw payload.
struct IdxArray {
  /// 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
  std::uint8_t type_code = 0x08;
  /// Sizes, outermost first.
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> bytes;  ///< as stored: big-endian for multi-byte types
};

/// The most dimensions an IDX file may have here.
inline constexpr int idx_max_rank = 4;
/// read_idx's default bound on the payload size: 4 GiB, far above MNIST's 47 MB.
inline constexpr std::int64_t idx_default_max_bytes = std::int64_t{1} << 32;

/// Bytes per element for an IDX type code, or 0 if the code is not an IDX type.
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

// Streams the bytes of a file or of a buffer in memory, inflating them on the fly when they
// start with the gzip magic 1f 8b (concatenated gzip members are read as one stream, as
// gzip(1) does).
class IdxByteSource {
 public:
  explicit IdxByteSource(const std::string& path) : path_(path), buffer_(chunk_) {
    file_.reset(std::fopen(path.c_str(), "rb"));
    if (!file_) {
      throw Error(idx_where(path) + "cannot open: " + errno_message(errno));
    }
    struct stat info {};
    if (::fstat(::fileno(file_.get()), &info) == 0 && S_ISREG(info.st_mode)) {
      size_ = static_cast<std::uint64_t>(info.st_size);
    }
    in_ = buffer_.data();
    fill_input();
    start();
  }
  // bytes must outlive the source; name stands for the file in messages.
  IdxByteSource(std::span<const std::uint8_t> bytes, const std::string& name)
      : path_(name), size_(bytes.size()), in_(bytes.data()), in_len_(bytes.size()),
        at_eof_(true) {
    start();
  }
  IdxByteSource(const IdxByteSource&) = delete;
  IdxByteSource& operator=(const IdxByteSource&) = delete;
  ~IdxByteSource() {
    if (inflate_ready_) inflateEnd(&strm_);
  }

  [[nodiscard]] bool gzip() const { return gzip_; }
  // Size of the file or buffer (compressed size for gzip); nullopt for a pipe or a device.
  [[nodiscard]] std::optional<std::uint64_t> size() const { return size_; }

  // Reads up to n bytes into dst. Returns fewer than n only at the end of the data.
  std::size_t read(std::uint8_t* dst, std::size_t n) {
    return gzip_ ? read_gzip(dst, n) : read_raw(dst, n);
  }

 private:
  static constexpr std::size_t chunk_ = std::size_t{1} << 16;

  void start() {
    gzip_ = in_len_ >= 2 && in_[0] == 0x1f && in_[1] == 0x8b;
    if (gzip_) {
      // 16 + MAX_WBITS: expect a gzip wrapper, check its CRC-32 and length trailer.
      if (inflateInit2(&strm_, 16 + MAX_WBITS) != Z_OK) {
        throw Error(idx_where(path_) + "zlib inflateInit2 failed");
      }
      inflate_ready_ = true;
    }
  }

  void fill_input() {
    in_pos_ = 0;
    in_len_ = std::fread(buffer_.data(), 1, buffer_.size(), file_.get());
    if (in_len_ < buffer_.size()) check_stream();
  }

  void check_stream() {
    if (std::ferror(file_.get())) {
      throw Error(idx_where(path_) + "read error: " + errno_message(errno));
    }
    at_eof_ = true;
  }

  std::size_t read_raw(std::uint8_t* dst, std::size_t n) {
    std::size_t got = std::min(n, in_len_ - in_pos_);
    std::copy_n(in_ + in_pos_, got, dst);
    in_pos_ += got;
    if (got < n && !at_eof_) {
      const std::size_t more = std::fread(dst + got, 1, n - got, file_.get());
      got += more;
      if (got < n) check_stream();
    }
    return got;
  }

  std::size_t read_gzip(std::uint8_t* dst, std::size_t n) {
    // zlib counts in 32-bit uInt: input and output go to it in pieces of at most 1 GiB.
    constexpr std::size_t piece = std::size_t{1} << 30;
    std::size_t got = 0;
    while (got < n) {
      if (strm_.avail_in == 0) {
        if (in_pos_ == in_len_ && !at_eof_) fill_input();
        const std::size_t feed = std::min(in_len_ - in_pos_, piece);
        strm_.next_in = const_cast<Bytef*>(in_ + in_pos_);
        strm_.avail_in = static_cast<uInt>(feed);
        in_pos_ += feed;
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
      const std::size_t want = std::min(n - got, piece);
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
  std::optional<std::uint64_t> size_;
  std::vector<std::uint8_t> buffer_;  // a file's input buffer
  const std::uint8_t* in_ = nullptr;  // the current input: buffer_, or the whole memory
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

/// An IDX file's header: type code, dimensions (outermost first) and the payload's size.
struct IdxHeader {
  /// 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
  std::uint8_t type_code = 0x08;
  /// Sizes, outermost first.
  std::vector<std::int64_t> dims;
  std::uint64_t payload_bytes = 0;  ///< prod(dims) * element size, checked
};

namespace detail {

// Largest ratio of deflate (zlib's FAQ): a gzip file of n bytes inflates to at most 1032 n.
inline constexpr std::uint64_t deflate_max_ratio = 1032;

[[nodiscard]] inline std::string idx_payload_text(const IdxHeader& h) {
  return ::ember::detail::concat(h.payload_bytes, " bytes (", dims_string(h.dims), " x ",
                                 idx_element_size(h.type_code), ")");
}

[[noreturn]] inline void idx_truncated(const std::string& where, const IdxHeader& h,
                                       std::uint64_t got) {
  throw Error(::ember::detail::concat(where, "truncated payload: expected ", idx_payload_text(h),
                                      ", got ", got));
}

[[noreturn]] inline void idx_extra_data(const std::string& where, const IdxHeader& h) {
  throw Error(::ember::detail::concat(where, "extra data after the expected ", h.payload_bytes,
                                      "-byte payload (", dims_string(h.dims), " x ",
                                      idx_element_size(h.type_code), ")"));
}

// Reads the magic and the dimensions and checks them; the payload size against max_bytes.
[[nodiscard]] inline IdxHeader read_idx_header(IdxByteSource& src, const std::string& where,
                                               std::int64_t max_bytes) {
  EMBER_CHECK(max_bytes > 0, where, "max_bytes must be positive, got ", max_bytes);
  std::uint8_t magic[4] = {};
  const std::size_t magic_got = src.read(magic, 4);
  EMBER_CHECK(magic_got == 4, where, "too short for an IDX header (", magic_got, " bytes)");
  EMBER_CHECK(magic[0] == 0 && magic[1] == 0, where, "bad magic ", idx_hex(load_be32(magic), 8),
              " (expected 0x0000TTRR: two zero bytes, type code TT, rank RR)");
  IdxHeader h;
  h.type_code = magic[2];
  const std::int64_t elem_size = idx_element_size(h.type_code);
  EMBER_CHECK(elem_size > 0, where, "unknown type code ", idx_hex(h.type_code, 2),
              " (expected 0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E)");
  const int rank = magic[3];
  EMBER_CHECK(rank >= 1 && rank <= idx_max_rank, where, "unsupported rank ", rank,
              " (expected 1..", idx_max_rank, ")");
  std::uint8_t dim_bytes[4 * idx_max_rank] = {};
  const auto dims_len = static_cast<std::size_t>(4 * rank);
  const std::size_t dims_got = src.read(dim_bytes, dims_len);
  EMBER_CHECK(dims_got == dims_len, where, "truncated header: expected ", dims_len,
              " bytes of dimensions, got ", dims_got);
  for (int i = 0; i < rank; ++i) {
    const std::uint32_t d = load_be32(dim_bytes + 4 * i);
    EMBER_CHECK(d > 0, where, "dimension ", i, " is 0");
    h.dims.push_back(static_cast<std::int64_t>(d));
  }
  h.payload_bytes = idx_payload_bytes(where, h.dims, elem_size, max_bytes);
  return h;
}

// How many bytes are left in src (at most limit + 1 are read), kept in a small scratch buffer.
[[nodiscard]] inline std::uint64_t idx_count_remaining(IdxByteSource& src, std::uint64_t limit) {
  std::vector<std::uint8_t> scratch(std::size_t{1} << 16);
  std::uint64_t total = 0;
  while (total <= limit) {
    const std::size_t got = src.read(scratch.data(), scratch.size());
    total += got;
    if (got < scratch.size()) break;
  }
  return total;
}

// Before anything is allocated: refuses a payload the source cannot hold. Raw data of known
// size must hold exactly the payload; gzip data at most deflate_max_ratio times its size. A
// lying header thus costs no memory (for a pipe, of unknown size, max_bytes is the bound).
inline void check_idx_source_holds(IdxByteSource& src, const std::string& where,
                                   const IdxHeader& h) {
  const std::optional<std::uint64_t> size = src.size();
  if (!size) return;
  const std::uint64_t header_bytes = 4 + 4 * h.dims.size();
  if (!src.gzip()) {
    const std::uint64_t left = *size > header_bytes ? *size - header_bytes : 0;
    if (left < h.payload_bytes) idx_truncated(where, h, left);
    if (left > h.payload_bytes) idx_extra_data(where, h);
    return;
  }
  const std::uint64_t could_hold = std::min(*size, std::uint64_t{1} << 40) * deflate_max_ratio;
  if (h.payload_bytes > could_hold) {
    // Inflate what is there without keeping it, to say how short the payload is.
    idx_truncated(where, h, idx_count_remaining(src, h.payload_bytes));
  }
}

// The payload straight into dst (payload_bytes bytes), then a check that nothing follows.
inline void read_idx_payload(IdxByteSource& src, const std::string& where, const IdxHeader& h,
                             std::uint8_t* dst) {
  const std::size_t want = static_cast<std::size_t>(h.payload_bytes);
  const std::size_t got = want > 0 ? src.read(dst, want) : 0;
  if (got < want) idx_truncated(where, h, got);
  std::uint8_t extra = 0;
  if (src.read(&extra, 1) != 0) idx_extra_data(where, h);
}

template <class Allocate>
IdxHeader read_idx_from(IdxByteSource& src, const std::string& where, Allocate&& allocate,
                        std::int64_t max_bytes) {
  const IdxHeader h = read_idx_header(src, where, max_bytes);
  check_idx_source_holds(src, where, h);
  std::uint8_t* dst = allocate_or_throw(where + "payload of " + idx_payload_text(h),
                                        h.payload_bytes, [&] { return allocate(h); });
  read_idx_payload(src, where, h, dst);
  return h;
}

}  // namespace detail

/// Reads an IDX file, raw or gzip (detected by its first two bytes), straight into memory the
/// caller provides: allocate(const IdxHeader&) is called once, after the header has been
/// checked, and returns where the payload_bytes bytes of payload go (as stored: big-endian for
/// multi-byte types). gzip data is inflated straight into it, so a file costs its payload and
/// no copy. Throws ember::Error, naming the file, for a missing file, a bad header, a payload
/// larger than max_bytes, a payload shorter or longer than the header says, corrupt gzip data,
/// or an allocation that fails.
template <class Allocate>
IdxHeader read_idx_into(const std::string& path, Allocate&& allocate,
                        std::int64_t max_bytes = idx_default_max_bytes) {
  detail::IdxByteSource src(path);
  return detail::read_idx_from(src, detail::idx_where(path), allocate, max_bytes);
}

/// The same for a file's bytes held in memory; name stands for the file in messages.
template <class Allocate>
IdxHeader parse_idx_into(std::span<const std::uint8_t> bytes, const std::string& name,
                         Allocate&& allocate, std::int64_t max_bytes = idx_default_max_bytes) {
  detail::IdxByteSource src(bytes, name);
  return detail::read_idx_from(src, detail::idx_where(name), allocate, max_bytes);
}

namespace detail {
template <class Read>
[[nodiscard]] IdxArray read_idx_array(Read&& read) {
  IdxArray out;
  const IdxHeader h = read([&](const IdxHeader& header) {
    out.bytes.resize(static_cast<std::size_t>(header.payload_bytes));
    return out.bytes.data();
  });
  out.type_code = h.type_code;
  out.dims = h.dims;
  return out;
}
}  // namespace detail

/// Reads an IDX file into an IdxArray (see read_idx_into).
[[nodiscard]] inline IdxArray read_idx(const std::string& path,
                                       std::int64_t max_bytes = idx_default_max_bytes) {
  return detail::read_idx_array([&](auto allocate) {
    return read_idx_into(path, allocate, max_bytes);
  });
}

/// Parses an IDX file held in memory, raw or gzip; name stands for the file in messages.
[[nodiscard]] inline IdxArray parse_idx(std::span<const std::uint8_t> bytes,
                                        const std::string& name,
                                        std::int64_t max_bytes = idx_default_max_bytes) {
  return detail::read_idx_array([&](auto allocate) {
    return parse_idx_into(bytes, name, allocate, max_bytes);
  });
}

/// Reads an IDX file of unsigned bytes (type 0x08), as MNIST's are.
[[nodiscard]] inline std::vector<std::uint8_t> read_idx_u8(
    const std::string& path, std::vector<std::int64_t>& dims_out,
    std::int64_t max_bytes = idx_default_max_bytes) {
  IdxArray a = read_idx(path, max_bytes);
  EMBER_CHECK(a.type_code == 0x08, detail::idx_where(path), "type code ",
              detail::idx_hex(a.type_code, 2), ", expected 0x08 (unsigned byte)");
  dims_out = std::move(a.dims);
  return std::move(a.bytes);
}

/// Reads an IDX file of unsigned bytes (type 0x08) into a tensor of its shape, inflating
/// straight into the tensor: MNIST's 47 MB of training images cost 47 MB, not twice that.
/// The type code is checked before anything is allocated.
[[nodiscard]] inline Tensor<std::uint8_t> read_idx_u8_tensor(
    const std::string& path, std::int64_t max_bytes = idx_default_max_bytes) {
  Tensor<std::uint8_t> out;
  read_idx_into(
      path,
      [&](const IdxHeader& h) {
        EMBER_CHECK(h.type_code == 0x08, detail::idx_where(path), "type code ",
                    detail::idx_hex(h.type_code, 2), ", expected 0x08 (unsigned byte)");
        out = Tensor<std::uint8_t>::empty(h.dims);
        return out.data();
      },
      max_bytes);
  return out;
}

/// Writes an IDX file, gzip-compressed if gzip is true. The array must be valid: known type
/// code, rank 1..4, dimensions in 1..2^32-1, and bytes.size() == prod(dims) * element size.
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
