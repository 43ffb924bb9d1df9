#pragma once
// safetensors files at the raw level: named byte buffers with a dtype and a shape.
//
// Layout of a file (https://github.com/huggingface/safetensors):
//   [8 bytes]  N, little-endian u64: length of the JSON header
//   [N bytes]  UTF-8 JSON object: name -> {"dtype": "F32", "shape": [2, 3],
//              "data_offsets": [begin, end]}, plus optional "__metadata__": {string: string}
//   [rest]     the byte buffer; offsets are relative to its start. Tensors are little-endian
//              and C-contiguous, and together cover the buffer exactly (no holes, no overlap).
//
// Writing follows the reference implementation byte for byte: compact JSON, "__metadata__"
// first, tensors ordered by dtype (widest first, as the reference does for alignment) then by
// name, header padded with spaces to a multiple of 8. The one difference: the reference keeps
// metadata in a hash map, so its order of several metadata entries is arbitrary; ember sorts
// them by key.
//
// Reading is strict: JsonReader (json_reader.hpp) accepts only objects, arrays, strings and
// integers (all a header needs) and rejects duplicate keys, and every structural problem throws
// ember::Error naming the file and what is wrong. Unknown fields inside a tensor entry are
// ignored, as the reference does. Sizes are checked before they are used: the header length
// against a 100 MB cap and the file size, ranks against safetensors_max_rank, every shape's
// element count and strides for overflow (core/shape.hpp), and an allocation that fails
// anyway throws ember::Error naming the file and the size.

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/stat.h>

#include "ember/core/error.hpp"
#include "ember/core/shape.hpp"
#include "ember/io/atomic_file.hpp"
#include "ember/io/json_reader.hpp"

namespace ember::io {

/// One tensor as stored: dtype name ("F32", ...), shape (empty for a scalar) and the raw
/// little-endian bytes, of size product(shape) * dtype_size(dtype).
struct TensorRecord {
  /// "F32", "F64", "I64", "I32", "U8", ... as safetensors names them.
  std::string dtype;
  /// Sizes, outermost first; empty for a scalar.
  std::vector<std::int64_t> shape;
  /// The raw little-endian bytes.
  std::vector<std::byte> data;
};

/// A safetensors file's contents: named tensors and the string metadata of its header.
struct SafetensorsFile {
  /// Every tensor by name.
  std::map<std::string, TensorRecord> tensors;
  std::map<std::string, std::string> metadata;  ///< the header's "__metadata__"
};

namespace detail {

struct DtypeInfo {
  std::string_view name;
  std::size_t size;  // bytes per element
};

// In the order the reference writes tensors (its Dtype enum, descending).
inline constexpr std::array<DtypeInfo, 17> safetensors_dtypes = {{
    {"U64", 8}, {"I64", 8}, {"F64", 8}, {"C64", 8}, {"F32", 4}, {"U32", 4}, {"I32", 4},
    {"BF16", 2}, {"F16", 2}, {"U16", 2}, {"I16", 2}, {"F8_E8M0", 1}, {"F8_E4M3", 1},
    {"F8_E5M2", 1}, {"I8", 1}, {"U8", 1}, {"BOOL", 1},
}};

inline std::optional<std::size_t> dtype_index(std::string_view dtype) {
  for (std::size_t i = 0; i < safetensors_dtypes.size(); ++i) {
    if (safetensors_dtypes[i].name == dtype) return i;
  }
  return std::nullopt;
}

inline constexpr std::uint64_t max_header_bytes = 100'000'000;  // the reference's limit
// Dimensions shown in an error message before "...": a hostile header's shape may have
// millions, the message stays one short line.
inline constexpr std::size_t message_max_dims = 16;

}  // namespace detail

/// The largest rank the reader accepts (the reference has no limit; no real tensor comes near).
inline constexpr std::size_t safetensors_max_rank = 8;

namespace detail {

}  // namespace detail

/// Bytes per element of a safetensors dtype; throws ember::Error for an unknown one.
inline std::size_t dtype_size(const std::string& dtype) {
  const auto index = detail::dtype_index(dtype);
  EMBER_CHECK(index.has_value(), "unknown safetensors dtype \"", dtype, "\"");
  return detail::safetensors_dtypes[*index].size;
}

namespace detail {

// ---- the header's meaning ----------------------------------------------------------------

struct HeaderEntry {
  std::string name;
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

struct Header {
  std::vector<HeaderEntry> entries;  // sorted by data offset
  std::map<std::string, std::string> metadata;
};

// product(shape) * element_size, or nullopt for a shape no tensor could have: more than
// ember::max_numel elements, or strides that overflow (a shape [0, 2^40, 2^40] holds no
// byte, yet cannot be indexed). Dimensions must be non-negative.
inline std::optional<std::uint64_t> byte_size_of(const std::vector<std::int64_t>& shape,
                                                 std::size_t element_size) {
  std::int64_t count = 1;
  std::int64_t extent = 1;  // product of the non-zero dimensions
  for (const std::int64_t dim : shape) {
    const auto e = checked_mul(extent, dim > 0 ? dim : 1);
    if (!e || *e > max_numel) return std::nullopt;
    extent = *e;
    count *= dim;  // <= extent, cannot overflow
  }
  return static_cast<std::uint64_t>(count) * element_size;  // <= 2^48 * 8
}

// JSON form, no spaces: [2,3]. With max_dims (for messages), at most that many dimensions
// and then "...".
inline std::string shape_string(const std::vector<std::int64_t>& shape,
                                std::size_t max_dims = std::numeric_limits<std::size_t>::max()) {
  std::string out = "[";
  const std::size_t shown = std::min(shape.size(), max_dims);
  for (std::size_t i = 0; i < shown; ++i) {
    if (i) out += ',';
    out += std::to_string(shape[i]);
  }
  if (shown < shape.size()) {
    out += (shown ? ",... (" : "... (") + std::to_string(shape.size()) + " values)";
  }
  out += ']';
  return out;
}
// The same, short enough for an error message.
inline std::string shape_message(const std::vector<std::int64_t>& shape) {
  return shape_string(shape, message_max_dims);
}

// One tensor entry, the reader positioned at its value.
inline HeaderEntry read_entry(JsonReader& reader, std::string name, const std::string& source) {
  const auto fail = [&](const auto&... parts) {
    throw Error(::ember::detail::concat("safetensors '", source, "': tensor \"",
                                        ::ember::detail::clip_text(name), "\": ", parts...));
  };
  const auto require = [&](JsonKind kind, std::string_view what) {
    const JsonKind found = reader.peek_kind();
    if (found != kind) {
      fail(what, " is ", json_kind_name(found), ", expected ", json_kind_name(kind),
           " (header byte ", reader.position(), ")");
    }
  };
  // At most max_count integers: a hostile header's array of millions stops at the first
  // one too many.
  const auto read_integers = [&](std::string_view what, std::vector<std::int64_t>& out,
                                 std::size_t max_count) {
    require(JsonKind::array, what);
    reader.read_array([&] {
      require(JsonKind::integer, ::ember::detail::concat("an element of ", what));
      if (out.size() == max_count) {
        fail(what, " has more than ", max_count, " values (header byte ", reader.position(),
             ")");
      }
      out.push_back(reader.read_integer());
    });
  };
  require(JsonKind::object, "the entry");
  HeaderEntry entry;
  bool has_dtype = false, has_shape = false, has_offsets = false;
  std::vector<std::int64_t> offsets;
  reader.read_object([&](const std::string& key) {
    if (key == "dtype") {
      require(JsonKind::string, "\"dtype\"");
      entry.dtype = reader.read_string();
      has_dtype = true;
    } else if (key == "shape") {
      read_integers("\"shape\"", entry.shape, safetensors_max_rank);
      has_shape = true;
    } else if (key == "data_offsets") {
      read_integers("\"data_offsets\"", offsets, 2);
      has_offsets = true;
    } else {
      reader.skip_value();  // unknown fields are ignored, as the reference does
    }
  });
  if (!has_dtype) fail("missing \"dtype\"");
  if (!has_shape) fail("missing \"shape\"");
  if (!has_offsets) fail("missing \"data_offsets\"");
  const auto dtype = dtype_index(entry.dtype);
  if (!dtype) fail("unknown dtype \"", ::ember::detail::clip_text(entry.dtype, 20), "\"");
  for (const std::int64_t dim : entry.shape) {
    if (dim < 0) fail("shape ", shape_message(entry.shape), " has a negative dimension");
  }
  if (offsets.size() != 2 || offsets[0] < 0 || offsets[1] < 0) {
    fail("\"data_offsets\" ", shape_message(offsets), " is not [begin, end]");
  }
  entry.begin = static_cast<std::uint64_t>(offsets[0]);
  entry.end = static_cast<std::uint64_t>(offsets[1]);
  if (entry.end < entry.begin) fail("data_offsets ", shape_string(offsets), " end before begin");
  const auto bytes = byte_size_of(entry.shape, safetensors_dtypes[*dtype].size);
  if (!bytes) fail("shape ", shape_message(entry.shape), " is too large to address");
  if (*bytes != entry.end - entry.begin) {
    fail("data_offsets ", shape_string(offsets), " hold ", entry.end - entry.begin,
         " bytes but shape ", shape_message(entry.shape), " of ", entry.dtype, " needs ", *bytes);
  }
  entry.name = std::move(name);  // last: fail() above names the tensor
  return entry;
}

// "__metadata__": an object of string values, the reader positioned at it.
inline void read_metadata(JsonReader& reader, std::map<std::string, std::string>& metadata,
                          const std::string& source) {
  const auto require = [&](JsonKind kind, const std::string& what) {
    const JsonKind found = reader.peek_kind();
    EMBER_CHECK(found == kind, "safetensors '", source, "': ", what, " is ",
                json_kind_name(found), ", expected ", json_kind_name(kind), " (header byte ",
                reader.position(), ")");
  };
  require(JsonKind::object, "\"__metadata__\"");
  reader.read_object([&](std::string key) {
    require(JsonKind::string, "metadata value \"" + ::ember::detail::clip_text(key) + "\"");
    metadata[std::move(key)] = reader.read_string();
  });
}

// Parses and validates a header against a data buffer of buffer_size bytes.
inline Header parse_header(std::string_view json, std::uint64_t buffer_size,
                           const std::string& source) {
  JsonReader reader(json, "safetensors '" + source + "': header");
  const JsonKind root = reader.peek_kind();
  EMBER_CHECK(root == JsonKind::object, "safetensors '", source, "': header is ",
              json_kind_name(root), ", expected a JSON object");
  Header header;
  reader.read_object([&](std::string key) {
    if (key == "__metadata__") {
      read_metadata(reader, header.metadata, source);
    } else {
      header.entries.push_back(read_entry(reader, std::move(key), source));
    }
  });
  reader.finish();
  // Like the reference: in offset order, each tensor starts where the previous one ended and
  // the last one ends at the end of the buffer.
  std::sort(header.entries.begin(), header.entries.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t covered = 0;
  const HeaderEntry* previous = nullptr;
  for (const HeaderEntry& entry : header.entries) {
    const auto clip = [](const std::string& name) { return ::ember::detail::clip_text(name); };
    EMBER_CHECK(entry.end <= buffer_size, "safetensors '", source, "': tensor \"",
                clip(entry.name), "\": data_offsets [", entry.begin, ",", entry.end,
                "] run past the end of the data buffer (", buffer_size, " bytes)");
    EMBER_CHECK(entry.begin >= covered, "safetensors '", source, "': tensor \"",
                clip(entry.name), "\" overlaps tensor \"", previous ? clip(previous->name) : "",
                "\"");
    EMBER_CHECK(entry.begin == covered, "safetensors '", source, "': gap of ",
                entry.begin - covered, " bytes in the data buffer before tensor \"",
                clip(entry.name), "\"");
    covered = entry.end;
    previous = &entry;
  }
  EMBER_CHECK(covered == buffer_size, "safetensors '", source, "': the last ",
              buffer_size - covered, " bytes of the data buffer are not covered by any tensor");
  return header;
}
inline std::uint64_t read_u64_le(const std::byte* bytes) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | std::to_integer<std::uint64_t>(bytes[i]);
  return value;
}

// Checks the 8-byte prefix against the file size and returns the header length.
inline std::uint64_t check_header_length(std::uint64_t header_length, std::uint64_t file_size,
                                         const std::string& source) {
  EMBER_CHECK(header_length <= max_header_bytes, "safetensors '", source, "': header length ",
              header_length, " exceeds the limit of ", max_header_bytes, " bytes");
  EMBER_CHECK(header_length <= file_size - 8, "safetensors '", source, "': header length ",
              header_length, " runs past the end of the file (", file_size, " bytes)");
  return header_length;
}

// "safetensors '<source>': tensor \"<name>\"", for messages.
inline std::string tensor_where(const std::string& source, const std::string& name) {
  return ::ember::detail::concat("safetensors '", source, "': tensor \"",
                                 ::ember::detail::clip_text(name), "\"");
}

inline void check_file_size(std::uint64_t file_size, const std::string& source) {
  EMBER_CHECK(file_size >= 8, "safetensors '", source, "': file is ", file_size,
              " bytes, shorter than the 8-byte header length");
}

// ---- writing -----------------------------------------------------------------------------

// Appends s as a JSON string, escaped the way the reference (serde_json) escapes it.
inline void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

using NamedRecord = std::pair<const std::string, TensorRecord>;

struct Layout {
  std::string header;  // JSON, padded with spaces to a multiple of 8 bytes
  std::vector<const NamedRecord*> order;  // tensors in buffer order
};

inline Layout plan_layout(const SafetensorsFile& file, const std::string& target) {
  Layout layout;
  std::vector<std::size_t> rank;  // dtype index of each tensor in order
  for (const NamedRecord& named : file.tensors) {
    const std::string& name = named.first;  // not a structured binding: the lambda captures it
    const TensorRecord& record = named.second;
    const auto fail = [&](const auto&... parts) {
      throw Error(::ember::detail::concat("safetensors '", target, "': cannot write tensor \"",
                                          ::ember::detail::clip_text(name), "\": ", parts...));
    };
    if (name == "__metadata__") fail("the name is reserved for the metadata");
    if (!is_valid_utf8(name)) fail("the name is not valid UTF-8");
    const auto dtype = dtype_index(record.dtype);
    if (!dtype) fail("unknown dtype \"", ::ember::detail::clip_text(record.dtype, 20), "\"");
    if (record.shape.size() > safetensors_max_rank) {
      fail("rank ", record.shape.size(), " exceeds the readable maximum of ",
           safetensors_max_rank);
    }
    for (const std::int64_t dim : record.shape) {
      if (dim < 0) fail("shape has a negative dimension ", dim);
    }
    const auto bytes = byte_size_of(record.shape, safetensors_dtypes[*dtype].size);
    if (!bytes || *bytes != record.data.size()) {
      fail("shape ", shape_message(record.shape), " of ", record.dtype, " needs ",
           bytes ? std::to_string(*bytes) : "too many", " bytes, data has ", record.data.size());
    }
    layout.order.push_back(&named);
    rank.push_back(*dtype);
  }
  // Widest dtype first, then by name (the map already iterates by name): a stable sort keeps
  // the name order within one dtype.
  std::vector<std::size_t> index(layout.order.size());
  for (std::size_t i = 0; i < index.size(); ++i) index[i] = i;
  std::stable_sort(index.begin(), index.end(),
                   [&](std::size_t a, std::size_t b) { return rank[a] < rank[b]; });
  std::vector<const NamedRecord*> sorted;
  for (const std::size_t i : index) sorted.push_back(layout.order[i]);
  layout.order = std::move(sorted);

  for (const auto& [key, value] : file.metadata) {
    EMBER_CHECK(is_valid_utf8(key) && is_valid_utf8(value), "safetensors '", target,
                "': metadata entry \"", ::ember::detail::clip_text(key),
                "\" is not valid UTF-8");
  }
  std::string& json = layout.header;
  json += '{';
  if (!file.metadata.empty()) {
    json += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : file.metadata) {
      if (!first) json += ',';
      first = false;
      append_json_string(json, key);
      json += ':';
      append_json_string(json, value);
    }
    json += '}';
  }
  std::uint64_t offset = 0;
  for (const NamedRecord* named : layout.order) {
    const auto& [name, record] = *named;
    if (json.size() > 1) json += ',';
    append_json_string(json, name);
    json += ":{\"dtype\":";
    append_json_string(json, record.dtype);
    json += ",\"shape\":" + shape_string(record.shape) + ",\"data_offsets\":[" +
            std::to_string(offset) + ",";
    offset += record.data.size();
    json += std::to_string(offset) + "]}";
  }
  json += '}';
  json.append((8 - json.size() % 8) % 8, ' ');
  EMBER_CHECK(json.size() <= max_header_bytes, "safetensors '", target, "': header of ",
              json.size(), " bytes exceeds the limit of ", max_header_bytes, " bytes");
  return layout;
}

inline std::array<std::byte, 8> u64_le(std::uint64_t value) {
  std::array<std::byte, 8> bytes{};
  for (auto& b : bytes) {
    b = static_cast<std::byte>(value & 0xFF);
    value >>= 8;
  }
  return bytes;
}

}  // namespace detail

/// The whole file as bytes. Throws ember::Error for a record whose dtype is unknown, whose shape
/// is negative or whose data size does not match it, for a tensor named "__metadata__", and for
/// names or metadata that are not valid UTF-8 (the reader would reject them).
inline std::vector<std::byte> serialize_safetensors(const SafetensorsFile& file) {
  const detail::Layout layout = detail::plan_layout(file, "<memory>");
  const auto prefix = detail::u64_le(layout.header.size());
  std::size_t total = prefix.size() + layout.header.size();
  for (const detail::NamedRecord* named : layout.order) total += named->second.data.size();
  // Sized once and filled with memcpy (growing with insert trips a false g++ 12 warning).
  std::vector<std::byte> out(total);
  std::byte* at = out.data();
  auto put = [&](const void* src, std::size_t n) {
    if (n != 0) std::memcpy(at, src, n);
    at += n;
  };
  put(prefix.data(), prefix.size());
  put(layout.header.data(), layout.header.size());
  for (const detail::NamedRecord* named : layout.order)
    put(named->second.data.data(), named->second.data.size());
  return out;
}

/// Parses a whole file held in memory; source_name is used in error messages.
inline SafetensorsFile parse_safetensors(std::span<const std::byte> bytes,
                                         const std::string& source_name) {
  detail::check_file_size(bytes.size(), source_name);
  const std::uint64_t header_length =
      detail::check_header_length(detail::read_u64_le(bytes.data()), bytes.size(), source_name);
  const std::string_view json(reinterpret_cast<const char*>(bytes.data() + 8), header_length);
  const std::span<const std::byte> buffer = bytes.subspan(8 + header_length);
  detail::Header header = detail::parse_header(json, buffer.size(), source_name);
  SafetensorsFile file;
  file.metadata = std::move(header.metadata);
  for (detail::HeaderEntry& entry : header.entries) {
    const auto data = buffer.subspan(entry.begin, entry.end - entry.begin);
    std::vector<std::byte> copy = allocate_or_throw(
        detail::tensor_where(source_name, entry.name), data.size(),
        [&] { return std::vector<std::byte>(data.begin(), data.end()); });
    file.tensors.emplace(std::move(entry.name), TensorRecord{std::move(entry.dtype),
                                                             std::move(entry.shape),
                                                             std::move(copy)});
  }
  return file;
}

/// Writes the file atomically (see atomic_file.hpp): path holds either its old contents or the
/// whole new file. The tensor data is written straight from the records, not copied first.
inline void save_safetensors(const std::string& path, const SafetensorsFile& file) {
  const detail::Layout layout = detail::plan_layout(file, path);
  write_file_atomic(path, [&](std::FILE* out) {
    const auto prefix = detail::u64_le(layout.header.size());
    std::fwrite(prefix.data(), 1, prefix.size(), out);
    std::fwrite(layout.header.data(), 1, layout.header.size(), out);
    for (const detail::NamedRecord* named : layout.order) {
      const std::vector<std::byte>& data = named->second.data;
      if (!data.empty()) std::fwrite(data.data(), 1, data.size(), out);
    }
  });
}

/// Reads and validates a file. The header is checked against the file's size before any
/// tensor data is read, and each tensor is read straight into its record.
inline SafetensorsFile load_safetensors(const std::string& path) {
  std::FILE* in = std::fopen(path.c_str(), "rb");
  EMBER_CHECK(in != nullptr, "cannot open safetensors file '", path, "': ",
              std::generic_category().message(errno));
  struct Closer {
    std::FILE* f;
    ~Closer() { std::fclose(f); }
  } closer{in};
  struct stat info {};
  EMBER_CHECK(::fstat(::fileno(in), &info) == 0 && S_ISREG(info.st_mode), "safetensors '",
              path, "': not a regular file");
  const auto file_size = static_cast<std::uint64_t>(info.st_size);
  const auto read_exactly = [&](void* dst, std::size_t n, const char* what) {
    EMBER_CHECK(n == 0 || std::fread(dst, 1, n, in) == n, "safetensors '", path,
                "': read failed or file shrank while reading ", what);
  };
  detail::check_file_size(file_size, path);
  std::array<std::byte, 8> prefix{};
  read_exactly(prefix.data(), prefix.size(), "the header length");
  const std::uint64_t header_length =
      detail::check_header_length(detail::read_u64_le(prefix.data()), file_size, path);
  std::string json = allocate_or_throw(
      ::ember::detail::concat("safetensors '", path, "': header"), header_length,
      [&] { return std::string(header_length, '\0'); });
  read_exactly(json.data(), json.size(), "the header");
  detail::Header header = detail::parse_header(json, file_size - 8 - header_length, path);
  SafetensorsFile file;
  file.metadata = std::move(header.metadata);
  for (detail::HeaderEntry& entry : header.entries) {  // in offset order, back to back
    const std::uint64_t size = entry.end - entry.begin;
    std::vector<std::byte> data = allocate_or_throw(
        detail::tensor_where(path, entry.name), size,
        [&] { return std::vector<std::byte>(static_cast<std::size_t>(size)); });
    read_exactly(data.data(), data.size(), "tensor data");
    file.tensors.emplace(std::move(entry.name), TensorRecord{std::move(entry.dtype),
                                                             std::move(entry.shape),
                                                             std::move(data)});
  }
  return file;
}

}  // namespace ember::io
