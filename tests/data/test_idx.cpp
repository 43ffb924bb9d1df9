// Tests for ember/data/idx.hpp: round trips through write_idx/read_idx, raw and gzip, and
// every way a file can be wrong (each must throw ember::Error naming the file and the fault).
// Reading costs one copy of the payload and a failed allocation is an ember::Error (checked in
// child processes with a bounded address space). With EMBER_DATA set to a folder holding the
// MNIST .gz files, also reads the real labels.

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "ember/data/idx.hpp"
#include "support/matchers.hpp"
#include "support/tmp.hpp"

namespace {

namespace fs = std::filesystem;
using ember::data::IdxArray;
using ember::data::read_idx;
using ember::data::write_idx;
using Bytes = std::vector<std::uint8_t>;

using ember::test::ErrorContains;

std::string tmp_path(const std::string& name) {
  return (ember::test::tmp_dir("") / ("test_idx_" + name)).string();
}

Bytes random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(1, 255);
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(dist(rng));
  return b;
}

// Header bytes 00 00 TT RR followed by big-endian uint32 dims (rank_byte may disagree with
// dims.size(), to build broken files).
Bytes header(std::uint8_t type, std::uint8_t rank_byte, const std::vector<std::uint32_t>& dims) {
  Bytes h = {0, 0, type, rank_byte};
  for (const std::uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      h.push_back(static_cast<std::uint8_t>(d >> shift));
    }
  }
  return h;
}

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void write_bytes(const std::string& path, const Bytes& b, bool gzip = false) {
  ember::data::detail::write_file_bytes(path, b, gzip);
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("IDX round trip through write_idx and read_idx", "[data][idx]") {
  const auto dims =
      GENERATE(std::vector<std::int64_t>{1}, std::vector<std::int64_t>{7},
               std::vector<std::int64_t>{60}, std::vector<std::int64_t>{1, 1, 1},
               std::vector<std::int64_t>{3, 5, 7}, std::vector<std::int64_t>{13, 28, 28},
               std::vector<std::int64_t>{2, 3, 4, 5}, std::vector<std::int64_t>{70001});
  const bool gzip = GENERATE(false, true);
  std::int64_t n = 1;
  for (const auto d : dims) n *= d;
  IdxArray a{0x08, dims, random_bytes(static_cast<std::size_t>(n), 17)};
  const std::string path = tmp_path(gzip ? "round_trip.gz" : "round_trip");
  write_idx(path, a, gzip);

  const Bytes file = read_bytes(path);
  if (gzip) {
    REQUIRE(file.size() >= 2);
    CHECK((file[0] == 0x1f && file[1] == 0x8b));
  } else {
    CHECK(file.size() == 4 + 4 * dims.size() + static_cast<std::size_t>(n));
  }
  const IdxArray b = read_idx(path);
  CHECK(b.type_code == 0x08);
  CHECK(b.dims == dims);
  CHECK(b.bytes == a.bytes);
}

TEST_CASE("IDX round trip keeps every type code and its element size", "[data][idx]") {
  const auto [type, elem] = GENERATE(std::pair<int, int>{0x08, 1}, std::pair<int, int>{0x09, 1},
                                     std::pair<int, int>{0x0B, 2}, std::pair<int, int>{0x0C, 4},
                                     std::pair<int, int>{0x0D, 4}, std::pair<int, int>{0x0E, 8});
  const bool gzip = GENERATE(false, true);
  CHECK(ember::data::idx_element_size(static_cast<std::uint8_t>(type)) == elem);
  IdxArray a{static_cast<std::uint8_t>(type), {3, 5}, random_bytes(15u * elem, 5)};
  const std::string path = tmp_path("types");
  write_idx(path, a, gzip);
  const IdxArray b = read_idx(path);
  CHECK(static_cast<int>(b.type_code) == type);
  CHECK(b.dims == a.dims);
  CHECK(b.bytes == a.bytes);
}

TEST_CASE("IDX dimensions are read big-endian", "[data][idx]") {
  // 0x00000102 = 258 elements; a little-endian reader would see 0x02010000.
  const Bytes payload = random_bytes(258, 3);
  const std::string path = tmp_path("big_endian");
  write_bytes(path, concat(header(0x08, 1, {258}), payload));
  std::vector<std::int64_t> dims;
  const Bytes got = ember::data::read_idx_u8(path, dims);
  CHECK(dims == std::vector<std::int64_t>{258});
  CHECK(got == payload);
}

TEST_CASE("read_idx_u8 rejects other element types", "[data][idx]") {
  const std::string path = tmp_path("not_u8");
  write_idx(path, IdxArray{0x0B, {4}, random_bytes(8, 1)}, false);
  std::vector<std::int64_t> dims;
  REQUIRE_THROWS_MATCHES(ember::data::read_idx_u8(path, dims), ember::Error,
                         ErrorContains({path, "type code 0x0B", "expected 0x08"}));
}

TEST_CASE("IDX bad magic", "[data][idx]") {
  const bool gzip = GENERATE(false, true);
  const std::string path = tmp_path("bad_magic");
  write_bytes(path, concat({0x12, 0x34, 0x56, 0x78}, random_bytes(64, 2)), gzip);
  REQUIRE_THROWS_MATCHES(
      read_idx(path), ember::Error,
      ErrorContains({"IDX file '" + path + "'", "bad magic 0x12345678", "expected 0x0000TTRR"}));
}

TEST_CASE("IDX unknown type code", "[data][idx]") {
  const auto [type, text] = GENERATE(
      std::pair<int, std::string>{0x0A, "0x0A"}, std::pair<int, std::string>{0x00, "0x00"},
      std::pair<int, std::string>{0x07, "0x07"}, std::pair<int, std::string>{0xFF, "0xFF"});
  const std::string path = tmp_path("bad_type");
  write_bytes(path, concat(header(static_cast<std::uint8_t>(type), 1, {4}), random_bytes(4, 1)));
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({path, "unknown type code " + text}));
}

TEST_CASE("IDX rank 0 and rank 5 are rejected", "[data][idx]") {
  const std::string path = tmp_path("bad_rank");
  write_bytes(path, header(0x08, 0, {}));
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({path, "unsupported rank 0", "expected 1..4"}));
  write_bytes(path, concat(header(0x08, 5, {1, 2, 1, 2, 1}), random_bytes(4, 1)));
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error, ErrorContains({path, "unsupported rank 5"}));
}

TEST_CASE("IDX zero dimension", "[data][idx]") {
  const std::string path = tmp_path("zero_dim");
  write_bytes(path, header(0x08, 3, {2, 0, 3}));
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error, ErrorContains({path, "dimension 1 is 0"}));
}

TEST_CASE("IDX file too short for its header", "[data][idx]") {
  const std::string path = tmp_path("short_header");
  write_bytes(path, {});
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({path, "too short for an IDX header (0 bytes)"}));
  write_bytes(path, {0, 0, 8});
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({path, "too short for an IDX header (3 bytes)"}));
  // Rank 3 needs 12 bytes of dimensions; give 6.
  write_bytes(path, {0, 0, 8, 3, 0, 0, 0, 2, 0, 0});
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({path, "truncated header: expected 12 bytes", "got 6"}));
}

TEST_CASE("IDX truncated payload", "[data][idx]") {
  const bool gzip = GENERATE(false, true);
  const std::string path = tmp_path(gzip ? "truncated.gz" : "truncated");
  write_bytes(path, concat(header(0x08, 2, {10, 4}), random_bytes(39, 4)), gzip);
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({path, "truncated payload: expected 40 bytes", "got 39"}));
  write_bytes(path, header(0x0C, 1, {5}), gzip);
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({path, "expected 20 bytes", "got 0"}));
}

TEST_CASE("IDX extra bytes after the payload", "[data][idx]") {
  const bool gzip = GENERATE(false, true);
  const std::string path = tmp_path(gzip ? "trailing.gz" : "trailing");
  write_bytes(path, concat(header(0x08, 2, {10, 4}), random_bytes(41, 4)), gzip);
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({path, "extra data after the expected 40-byte payload"}));
}

TEST_CASE("IDX header claiming far more than the file holds", "[data][idx]") {
  // 2^30 bytes is under the default limit, so this is found as a short payload; the reader
  // must get there without allocating the claimed gigabyte up front.
  const bool gzip = GENERATE(false, true);
  const std::string path = tmp_path("lying_header");
  write_bytes(path, concat(header(0x08, 1, {1u << 30}), random_bytes(10, 6)), gzip);
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({path, "expected 1073741824 bytes", "got 10"}));
}

TEST_CASE("IDX absurd dimensions are refused before any allocation", "[data][idx]") {
  const std::string path = tmp_path("absurd");
  // Header only: were the size not checked first, the error would be a short payload.
  write_bytes(path, header(0x08, 3, {100000, 100000, 100000}));
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({path, "100000 x 100000 x 100000",
                                        "exceeds the size limit of 4294967296 bytes"}));
  // 0xFFFFFFFF^4 * 8 overflows 64 bits; the check must not wrap around.
  write_bytes(path, header(0x0E, 4, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}));
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({path, "exceeds the size limit"}));
  write_bytes(path, header(0x08, 3, {0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF}), true);
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({path, "exceeds the size limit"}));
}

TEST_CASE("IDX max_bytes bounds the payload", "[data][idx]") {
  const std::string path = tmp_path("max_bytes");
  write_idx(path, IdxArray{0x0C, {10}, random_bytes(40, 8)}, false);
  REQUIRE_THROWS_MATCHES(read_idx(path, 39), ember::Error,
                         ErrorContains({path, "exceeds the size limit of 39 bytes"}));
  CHECK(read_idx(path, 40).bytes.size() == 40);
  REQUIRE_THROWS_MATCHES(read_idx(path, 0), ember::Error,
                         ErrorContains({path, "max_bytes must be positive"}));
}

TEST_CASE("IDX corrupt gzip", "[data][idx]") {
  const std::string path = tmp_path("corrupt.gz");

  SECTION("valid gzip header, garbage deflate stream") {
    // 0x07: final block of type 3, which deflate does not define.
    const Bytes gz_header = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03};
    write_bytes(path, concat(gz_header, {0x07, 0xde, 0xad, 0xbe, 0xef, 0x12, 0x34}));
    REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                           ErrorContains({path, "corrupt gzip", "invalid block type"}));
  }

  SECTION("gzip cut midway") {
    const std::string good = tmp_path("good.gz");
    write_idx(good, IdxArray{0x08, {3, 28, 28}, random_bytes(3 * 28 * 28, 9)}, true);
    Bytes gz = read_bytes(good);
    gz.resize(gz.size() / 2);
    write_bytes(path, gz);
    REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                           ErrorContains({path, "corrupt gzip", "unexpected end of file"}));
  }

  SECTION("gzip missing its trailer (payload complete)") {
    const std::string good = tmp_path("good.gz");
    write_idx(good, IdxArray{0x08, {100}, random_bytes(100, 9)}, true);
    Bytes gz = read_bytes(good);
    gz.resize(gz.size() - 4);
    write_bytes(path, gz);
    REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                           ErrorContains({path, "corrupt gzip", "unexpected end of file"}));
  }

  SECTION("gzip with a wrong CRC-32") {
    const std::string good = tmp_path("good.gz");
    write_idx(good, IdxArray{0x08, {100}, random_bytes(100, 9)}, true);
    Bytes gz = read_bytes(good);
    gz[gz.size() - 8] ^= 0xFF;  // trailer: CRC-32 then ISIZE, 4 bytes each
    write_bytes(path, gz);
    REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                           ErrorContains({path, "corrupt gzip", "incorrect data check"}));
  }

  SECTION("non-gzip bytes after the gzip stream") {
    const std::string good = tmp_path("good.gz");
    write_idx(good, IdxArray{0x08, {100}, random_bytes(100, 9)}, true);
    write_bytes(path, concat(read_bytes(good), {'x', 'y', 'z'}));
    REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                           ErrorContains({path, "non-gzip data after the compressed stream"}));
  }
}

TEST_CASE("IDX gzip of several concatenated members reads as one stream", "[data][idx]") {
  // gzip(1) and zlib's gzread treat `cat a.gz b.gz` as the concatenation of a and b.
  const Bytes whole = concat(header(0x08, 3, {2, 3, 50}), random_bytes(300, 10));
  const Bytes first(whole.begin(), whole.begin() + 7);
  const Bytes second(whole.begin() + 7, whole.end());
  const std::string a = tmp_path("member_a.gz");
  const std::string b = tmp_path("member_b.gz");
  write_bytes(a, first, true);
  write_bytes(b, second, true);
  const std::string path = tmp_path("members.gz");
  write_bytes(path, concat(read_bytes(a), read_bytes(b)));
  const IdxArray got = read_idx(path);
  CHECK(got.dims == std::vector<std::int64_t>{2, 3, 50});
  CHECK(got.bytes == Bytes(whole.begin() + 16, whole.end()));
}

TEST_CASE("IDX missing file", "[data][idx]") {
  const std::string path = tmp_path("does_not_exist.gz");
  fs::remove(path);
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({"IDX file '" + path + "'", "cannot open"}));
}

TEST_CASE("write_idx refuses arrays that are not valid IDX", "[data][idx]") {
  const std::string path = tmp_path("invalid_write");
  REQUIRE_THROWS_MATCHES(write_idx(path, IdxArray{0x08, {3, 4}, random_bytes(11, 1)}, false),
                         ember::Error, ErrorContains({path, "payload has 11 bytes"}));
  REQUIRE_THROWS_MATCHES(write_idx(path, IdxArray{0x0A, {3}, random_bytes(3, 1)}, false),
                         ember::Error, ErrorContains({path, "unknown type code 0x0A"}));
  REQUIRE_THROWS_MATCHES(write_idx(path, IdxArray{0x08, {}, {}}, false), ember::Error,
                         ErrorContains({path, "cannot write rank 0"}));
  REQUIRE_THROWS_MATCHES(write_idx(path, IdxArray{0x08, {3, 0}, {}}, false), ember::Error,
                         ErrorContains({path, "cannot write dimension 0"}));
}

TEST_CASE("MNIST train labels from EMBER_DATA", "[data][idx][mnist]") {
  const char* env = std::getenv("EMBER_DATA");
  if (env == nullptr || *env == '\0') {
    WARN("EMBER_DATA is not set: skipping the check of the real MNIST files");
    return;
  }
  const fs::path dir(env);
  const std::string labels_path = (dir / "train-labels-idx1-ubyte.gz").string();
  REQUIRE(fs::exists(labels_path));
  const IdxArray labels = read_idx(labels_path);
  CHECK(labels.type_code == 0x08);
  REQUIRE(labels.dims == std::vector<std::int64_t>{60000});
  REQUIRE(labels.bytes.size() == 60000);
  CHECK(Bytes(labels.bytes.begin(), labels.bytes.begin() + 5) == Bytes{5, 0, 4, 1, 9});

  const std::string images_path = (dir / "train-images-idx3-ubyte.gz").string();
  if (fs::exists(images_path)) {
    std::vector<std::int64_t> dims;
    const Bytes images = ember::data::read_idx_u8(images_path, dims);
    CHECK(dims == std::vector<std::int64_t>{60000, 28, 28});
    CHECK(images.size() == 60000u * 28 * 28);
  }
}

TEST_CASE("IDX parse_idx reads bytes in memory as read_idx reads the file", "[data][idx]") {
  const bool gzip = GENERATE(false, true);
  const std::string path = tmp_path(gzip ? "memory.gz" : "memory");
  const IdxArray a{0x0B, {3, 7}, random_bytes(42, 12)};
  write_idx(path, a, gzip);
  const Bytes file = read_bytes(path);
  const IdxArray b = ember::data::parse_idx(file, "mem.idx");
  CHECK(b.type_code == a.type_code);
  CHECK(b.dims == a.dims);
  CHECK(b.bytes == a.bytes);
  const Bytes cut(file.begin(), file.end() - 1);
  REQUIRE_THROWS_MATCHES(ember::data::parse_idx(cut, "mem.idx"), ember::Error,
                         ErrorContains({"IDX file 'mem.idx'"}));
}

TEST_CASE("IDX read_idx_u8_tensor reads straight into a tensor", "[data][idx]") {
  const bool gzip = GENERATE(false, true);
  const std::string path = tmp_path(gzip ? "tensor.gz" : "tensor");
  const IdxArray a{0x08, {4, 5, 6}, random_bytes(120, 13)};
  write_idx(path, a, gzip);
  const ember::Tensor<std::uint8_t> t = ember::data::read_idx_u8_tensor(path);
  CHECK(t.shape() == ember::Shape{4, 5, 6});
  CHECK(Bytes(t.data(), t.data() + t.numel()) == a.bytes);
  write_idx(path, IdxArray{0x0C, {2}, random_bytes(8, 1)}, gzip);
  REQUIRE_THROWS_MATCHES(ember::data::read_idx_u8_tensor(path), ember::Error,
                         ErrorContains({path, "type code 0x0C", "expected 0x08"}));
}

TEST_CASE("IDX raw file whose size disagrees with its header is refused unread", "[data][idx]") {
  // The size check comes first: a raw file claiming 4 GiB - 1 bytes costs nothing to refuse.
  const std::string path = tmp_path("raw_lying");
  write_bytes(path, concat(header(0x08, 2, {65535, 65537}), random_bytes(3, 1)));
  REQUIRE_THROWS_MATCHES(read_idx(path), ember::Error,
                         ErrorContains({path, "expected 4294967295 bytes", "got 3"}));
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EMBER_TEST_NO_RLIMIT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define EMBER_TEST_NO_RLIMIT 1
#endif
#endif

#ifndef EMBER_TEST_NO_RLIMIT
namespace {

// A gzip IDX file of `bytes` zero bytes (type 0x08, dims {bytes / 1024, 1024}), written in
// pieces: it inflates about 1000:1.
void write_zeros_gz(const std::string& path, std::uint32_t bytes) {
  ember::data::detail::FileWriter w(path, true);
  const Bytes h = header(0x08, 2, {bytes / 1024, 1024});
  w.write(h.data(), h.size());
  const Bytes zeros(std::size_t{1} << 20, 0);
  for (std::uint32_t left = bytes; left > 0;) {
    const std::uint32_t n = std::min<std::uint32_t>(left, static_cast<std::uint32_t>(zeros.size()));
    w.write(zeros.data(), n);
    left -= n;
  }
  w.close();
}

// Runs f in a child process whose address space may grow by at most `headroom` bytes, and
// returns its exit code (f's return value, or 99 if it threw something it did not catch).
template <class F>
int with_address_space_headroom(std::size_t headroom, F f) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::ifstream statm("/proc/self/statm");
    std::size_t pages = 0;
    statm >> pages;
    const auto now = pages * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const rlimit limit{now + headroom, now + headroom};
    int code = 98;
    if (::setrlimit(RLIMIT_AS, &limit) == 0) {
      try {
        code = f();
      } catch (...) {
        code = 99;
      }
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("IDX gzip inflates straight into the tensor, without a second copy", "[data][idx]") {
  // 128 MiB of payload from a 128 KiB file, with 176 MiB of headroom: one copy fits, two
  // (inflate into a buffer, then copy into the tensor) would not.
  const std::string path = tmp_path("zeros128.gz");
  constexpr std::uint32_t payload = 128u << 20;
  write_zeros_gz(path, payload);
  CHECK(fs::file_size(path) < payload / 500);
  const int code = with_address_space_headroom(std::size_t{176} << 20, [&] {
    const ember::Tensor<std::uint8_t> t = ember::data::read_idx_u8_tensor(path);
    return t.numel() == payload && t.data()[payload - 1] == 0 ? 0 : 1;
  });
  CHECK(code == 0);
  fs::remove(path);
}

TEST_CASE("IDX allocation failure is an ember::Error naming the file and the size",
          "[data][idx]") {
  const std::string path = tmp_path("zeros256.gz");
  constexpr std::uint32_t payload = 256u << 20;
  write_zeros_gz(path, payload);
  const auto expect_error = [&](auto read) {
    try {
      read();
    } catch (const ember::Error& e) {
      const std::string what = e.what();
      const bool named = what.find(path) != std::string::npos &&
                         what.find("cannot allocate 268435456 bytes") != std::string::npos;
      return named ? 0 : 2;
    } catch (const std::bad_alloc&) {
      return 3;
    }
    return 1;
  };
  CHECK(with_address_space_headroom(std::size_t{64} << 20, [&] {
          return expect_error([&] { (void)ember::data::read_idx_u8_tensor(path); });
        }) == 0);
  CHECK(with_address_space_headroom(std::size_t{64} << 20, [&] {
          return expect_error([&] { (void)read_idx(path); });
        }) == 0);
  fs::remove(path);
}
#endif
