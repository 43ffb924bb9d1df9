// libFuzzer harness: gzip-compressed IDX files (ember/data/idx.hpp). The first input byte picks
// what the rest is:
//   0  a gzip file as it is (corrupt streams, odd headers, several members, trailing bytes);
//   1  an IDX file, compressed here into one gzip member;
//   2  the same split into two members at a point the second byte picks;
//   3  one member cut short at a point the second byte picks.
// For 1 and 2 the result must be what the raw reader makes of the uncompressed bytes; a cut
// stream (3) must be refused; the in-memory and file readers must always agree.

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ember/data/idx.hpp"
#include "fuzz/harness.hpp"

namespace {

using Bytes = std::vector<std::uint8_t>;

// One gzip member of data (zlib's gzip wrapper: header, deflate, CRC-32 and length).
Bytes gzip_member(std::span<const std::uint8_t> data, int level) {
  z_stream s{};
  ember::fuzz::require(
      deflateInit2(&s, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK,
      "deflateInit2 failed");
  Bytes out(deflateBound(&s, static_cast<uLong>(data.size())) + 32);
  s.next_in = const_cast<Bytef*>(data.data());
  s.avail_in = static_cast<uInt>(data.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  ember::fuzz::require(deflate(&s, Z_FINISH) == Z_STREAM_END, "deflate did not finish");
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

struct Result {
  bool ok = false;
  ember::data::IdxArray array;
};

Result read_both(std::span<const std::uint8_t> file) {
  using namespace ember;
  Result memory, disk;
  memory.ok = fuzz::accepts([&] { memory.array = data::parse_idx(file, "fuzz.idx.gz"); });
  const std::string& path = fuzz::temp_file().write(file);
  disk.ok = fuzz::accepts([&] { disk.array = data::read_idx(path); });
  fuzz::require(memory.ok == disk.ok, "parse_idx and read_idx disagree on accepting the input");
  if (memory.ok) {
    fuzz::require(memory.array.type_code == disk.array.type_code &&
                      memory.array.dims == disk.array.dims &&
                      memory.array.bytes == disk.array.bytes,
                  "parse_idx and read_idx read different arrays");
  }
  return memory;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ember;
  if (size < 2) return 0;
  const int mode = data[0] & 3;
  const std::size_t point = data[1];
  const std::span<const std::uint8_t> rest(data + 2, size - 2);
  if (mode == 0) {
    (void)read_both(rest);
    return 0;
  }
  const int level = (data[0] >> 2) % 10;  // 0 (stored blocks) .. 9
  Result raw;
  raw.ok = fuzz::accepts([&] { raw.array = data::parse_idx(rest, "fuzz.idx"); });
  Bytes gz;
  if (mode == 2) {
    const std::size_t at = rest.size() * point / 256;
    gz = gzip_member(rest.first(at), level);
    const Bytes second = gzip_member(rest.subspan(at), level);
    gz.insert(gz.end(), second.begin(), second.end());
  } else {
    gz = gzip_member(rest, level);
  }
  // A stream that is the gzip magic's victim: raw bytes starting 1f 8b would read as gzip.
  const bool raw_is_gzip = rest.size() >= 2 && rest[0] == 0x1f && rest[1] == 0x8b;
  if (mode == 3) {
    gz.resize(gz.size() * point / 256);  // strictly shorter: the trailer at least is lost
    fuzz::require(!read_both(gz).ok, "a gzip stream cut short was accepted");
    return 0;
  }
  const Result unzipped = read_both(gz);
  if (raw_is_gzip) return 0;
  fuzz::require(unzipped.ok == raw.ok, "gzip and raw readers disagree on accepting the data");
  if (raw.ok) {
    fuzz::require(unzipped.array.type_code == raw.array.type_code &&
                      unzipped.array.dims == raw.array.dims &&
                      unzipped.array.bytes == raw.array.bytes,
                  "gzip and raw readers read different arrays");
  }
  return 0;
}
