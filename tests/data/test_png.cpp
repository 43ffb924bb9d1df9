// Tests for ember/data/png.hpp: each colour type and bit depth read to the grey levels the
// header promises (fixtures in tests/fixtures/png, made by make_fixtures.py there), the same
// from memory, and every way a file can be wrong (each an ember::Error naming the file and
// libpng's message). Broken files are made from good ones at run time.

#include <zlib.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "ember/data/png.hpp"
#include "support/tmp.hpp"

namespace {

using ember::Tensor;
using ember::data::PngOptions;
using ember::data::read_png;
using Bytes = std::vector<std::byte>;

std::string fixture(const std::string& name) {
  return std::string(EMBER_TEST_DIR) + "/fixtures/png/" + name;
}

std::string tmp_path(const std::string& name) {
  return (ember::test::tmp_dir("test_png") / name).string();
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> chars((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  Bytes b(chars.size());
  for (std::size_t i = 0; i < chars.size(); ++i) b[i] = static_cast<std::byte>(chars[i]);
  return b;
}

void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(out.good());
}

std::uint32_t load_be32(const Bytes& b, std::size_t at) {
  return (std::to_integer<std::uint32_t>(b.at(at)) << 24) |
         (std::to_integer<std::uint32_t>(b.at(at + 1)) << 16) |
         (std::to_integer<std::uint32_t>(b.at(at + 2)) << 8) |
         std::to_integer<std::uint32_t>(b.at(at + 3));
}

void store_be32(Bytes& b, std::size_t at, std::uint32_t v) {
  for (std::size_t i = 0; i < 4; ++i) b.at(at + i) = static_cast<std::byte>(v >> (24 - 8 * i));
}

// Offset of the first chunk of this type (its length field), after the 8-byte signature.
std::size_t find_chunk(const Bytes& b, const std::string& type) {
  for (std::size_t at = 8; at + 12 <= b.size(); at += 12 + load_be32(b, at)) {
    const std::string t(reinterpret_cast<const char*>(b.data() + at + 4), 4);
    if (t == type) return at;
  }
  FAIL("no " << type << " chunk");
  return 0;
}

// Recomputes a chunk's CRC (over type and data), so that a corruption reaches the decoder.
void fix_crc(Bytes& b, std::size_t chunk) {
  const std::uint32_t len = load_be32(b, chunk);
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(b.data() + chunk + 4), 4 + len);
  store_be32(b, chunk + 8 + len, static_cast<std::uint32_t>(crc));
}

std::vector<int> pixels(const Tensor<std::uint8_t>& img) {
  std::vector<int> v;
  for (const std::uint8_t p : img.to_vector()) v.push_back(p);
  return v;
}

// The sRGB transfer function and its inverse, on [0, 1].
double srgb_to_linear(double c) {
  return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
}
double linear_to_srgb(double c) {
  return c <= 0.0031308 ? 12.92 * c : 1.055 * std::pow(c, 1 / 2.4) - 0.055;
}
// Rec. 709 luminance in linear light, encoded back to 8-bit sRGB.
int luminance(int r, int g, int b) {
  const double y = 0.2126 * srgb_to_linear(r / 255.0) + 0.7152 * srgb_to_linear(g / 255.0) +
                   0.0722 * srgb_to_linear(b / 255.0);
  return static_cast<int>(std::lround(255.0 * linear_to_srgb(y)));
}

}  // namespace

TEST_CASE("read_png reads 8-bit grey exactly, interlaced or not", "[data][png]") {
  const std::vector<int> expected = {0,   1,   2,  127, 128, 129, 200, 253,
                                     254, 255, 17, 34,  51,  68,  85};
  const auto name = GENERATE(std::string("gray8.png"), std::string("gray8_interlaced.png"));
  const Tensor<std::uint8_t> img = read_png(fixture(name));
  REQUIRE(img.shape() == ember::Shape{3, 5});
  CHECK(pixels(img) == expected);
}

TEST_CASE("read_png scales 1-bit grey to 0 and 255", "[data][png]") {
  const Tensor<std::uint8_t> img = read_png(fixture("gray1.png"));
  REQUIRE(img.shape() == ember::Shape{2, 10});
  CHECK(pixels(img) == std::vector<int>{0,   255, 255, 0, 255, 0, 0, 255, 255, 255,
                                        255, 0,   0,   0, 0,   0, 0, 0,   0,   255});
}

TEST_CASE("read_png reads 16-bit grey as round(v / 257)", "[data][png]") {
  // Samples 0, 257, 32896, 65535 / 300, 32767, 65534, 12850.
  const Tensor<std::uint8_t> img = read_png(fixture("gray16.png"));
  REQUIRE(img.shape() == ember::Shape{2, 4});
  CHECK(pixels(img) == std::vector<int>{0, 1, 128, 255, 1, 127, 255, 50});
}

TEST_CASE("read_png converts RGB to luminance, keeping greys", "[data][png]") {
  const Tensor<std::uint8_t> img = read_png(fixture("rgb8.png"));
  REQUIRE(img.shape() == ember::Shape{2, 4});
  const std::vector<int> got = pixels(img);
  // Row 0: greys (R = G = B) keep their value exactly.
  CHECK(std::vector<int>(got.begin(), got.begin() + 4) == std::vector<int>{0, 128, 255, 37});
  // Row 1: red, green, blue and (200, 100, 50), within 1 of the luminance (libpng uses
  // fixed-point coefficients and tables).
  const int rgb[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {200, 100, 50}};
  for (int i = 0; i < 4; ++i) {
    const int want = luminance(rgb[i][0], rgb[i][1], rgb[i][2]);
    INFO("pixel " << i << ": got " << got[static_cast<std::size_t>(4 + i)] << ", luminance "
                  << want);
    CHECK(std::abs(got[static_cast<std::size_t>(4 + i)] - want) <= 1);
  }
  CHECK(luminance(255, 0, 0) == 127);  // the formula itself, against a hand computation
}

TEST_CASE("read_png composites alpha onto the background in 8-bit values", "[data][png]") {
  SECTION("RGBA: (200, a 255), (255, a 0), (255, a 128), (0, a 128), (90, a 255)") {
    CHECK(pixels(read_png(fixture("rgba8.png"))) == std::vector<int>{200, 0, 128, 0, 90});
    CHECK(pixels(read_png(fixture("rgba8.png"), {.background = 255})) ==
          std::vector<int>{200, 255, 255, 127, 90});
  }
  SECTION(
      "grey + alpha: (255, a 255), (255, a 0), (100, a 255), (0, a 0), (200, a 64), "
      "(150, a 200)") {
    // 200 * 64 / 255 = 50.2, 150 * 200 / 255 = 117.6;
    // (200 * 64 + 255 * 191) / 255 = 241.2, (150 * 200 + 255 * 55) / 255 = 172.6
    CHECK(pixels(read_png(fixture("gray_alpha8.png"))) ==
          std::vector<int>{255, 0, 100, 0, 50, 118});
    CHECK(pixels(read_png(fixture("gray_alpha8.png"), {.background = 255})) ==
          std::vector<int>{255, 255, 100, 255, 241, 173});
  }
  SECTION("4-bit palette with tRNS: entry 5 (white) is fully transparent") {
    // Palette grey levels 0, 255, 128, 64, 250, 255; pixels 0 1 2 3 4 / 5 4 3 2 1.
    const Tensor<std::uint8_t> img = read_png(fixture("palette4.png"));
    REQUIRE(img.shape() == ember::Shape{2, 5});
    CHECK(pixels(img) == std::vector<int>{0, 255, 128, 64, 250, 0, 250, 64, 128, 255});
    CHECK(pixels(read_png(fixture("palette4.png"), {.background = 255})) ==
          std::vector<int>{0, 255, 128, 64, 250, 255, 250, 64, 128, 255});
  }
}

TEST_CASE("read_png from memory gives what the file gives", "[data][png]") {
  const auto name =
      GENERATE(std::string("gray8.png"), std::string("gray16.png"), std::string("rgb8.png"),
               std::string("rgba8.png"), std::string("palette4.png"), std::string("digit28.png"));
  const Bytes bytes = read_bytes(fixture(name));
  REQUIRE(!bytes.empty());
  const Tensor<std::uint8_t> from_file = read_png(fixture(name));
  const Tensor<std::uint8_t> from_memory = read_png(std::span<const std::byte>(bytes), name);
  CHECK(from_memory.shape() == from_file.shape());
  CHECK(pixels(from_memory) == pixels(from_file));
}

TEST_CASE("read_png reads the 28 x 28 digit fixtures", "[data][png]") {
  const Tensor<std::uint8_t> light = read_png(fixture("digit28.png"));
  const Tensor<std::uint8_t> dark = read_png(fixture("digit28_dark.png"));
  REQUIRE(light.shape() == ember::Shape{28, 28});
  REQUIRE(dark.shape() == ember::Shape{28, 28});
  CHECK(int(light(10, 13)) == 255);
  CHECK(int(light(10, 12)) == 96);
  CHECK(int(light(2, 13)) == 0);
  const std::vector<int> l = pixels(light), d = pixels(dark);
  for (std::size_t i = 0; i < l.size(); ++i) REQUIRE(l[i] + d[i] == 255);
}

TEST_CASE("read_png rejects missing, foreign, truncated and corrupt files", "[data][png]") {
  using Catch::Contains;
  const Bytes good = read_bytes(fixture("digit28.png"));
  REQUIRE(good.size() > 40);

  SECTION("missing file") {
    const std::string path = tmp_path("does_not_exist.png");
    REQUIRE_THROWS_WITH(read_png(path), Contains("PNG file '" + path + "'") &&
                                            Contains("No such file or directory"));
  }
  SECTION("not a PNG: bad signature") {
    Bytes b = good;
    b[1] = std::byte{'Q'};  // "\x89QNG"
    const std::string path = tmp_path("bad_signature.png");
    write_bytes(path, b);
    REQUIRE_THROWS_WITH(read_png(path), Contains(path) && Contains("not a PNG (bad signature)"));
    REQUIRE_THROWS_WITH(read_png(std::span<const std::byte>(b), "sig"),
                        Contains("PNG data 'sig'") && Contains("not a PNG (bad signature)"));
    write_bytes(path, Bytes{std::byte{'P'}, std::byte{'5'}});  // shorter than a signature
    REQUIRE_THROWS_WITH(read_png(path), Contains(path) && Contains("not a PNG (bad signature)"));
  }
  SECTION("truncated in the middle of the image data") {
    const std::size_t idat = find_chunk(good, "IDAT");
    const Bytes b(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(idat + 8 + 10));
    const std::string path = tmp_path("truncated.png");
    write_bytes(path, b);
    const std::string size = std::to_string(b.size());
    REQUIRE_THROWS_WITH(read_png(path), Contains(path) && Contains("Read Error") &&
                                            Contains("truncated: its " + size + " bytes end"));
    REQUIRE_THROWS_WITH(read_png(std::span<const std::byte>(b), "cut"),
                        Contains("PNG data 'cut'") && Contains("truncated: its " + size));
  }
  SECTION("truncated inside the signature, and empty") {
    const std::string path = tmp_path("five_bytes.png");
    write_bytes(path, Bytes(good.begin(), good.begin() + 5));
    REQUIRE_THROWS_WITH(read_png(path),
                        Contains(path) && Contains("truncated inside the PNG signature (5 of 8"));
    write_bytes(path, Bytes{});
    REQUIRE_THROWS_WITH(read_png(path), Contains(path) && Contains("empty file"));
    REQUIRE_THROWS_WITH(read_png(std::span<const std::byte>()), Contains("no bytes (empty)"));
  }
  SECTION("a directory") {
    const std::string dir = ember::test::tmp_dir("test_png").string();
    REQUIRE_THROWS_WITH(read_png(dir),
                        Contains("PNG file '" + dir + "'") && Contains("is a directory"));
  }
  SECTION("corrupt IDAT: CRC mismatch") {
    Bytes b = good;
    const std::size_t idat = find_chunk(b, "IDAT");
    b[idat + 8 + load_be32(b, idat)] ^= std::byte{0x01};  // first byte of the CRC
    const std::string path = tmp_path("bad_crc.png");
    write_bytes(path, b);
    REQUIRE_THROWS_WITH(read_png(path), Contains(path) && Contains("IDAT: CRC error"));
  }
  SECTION("corrupt IDAT: bad zlib data under a valid CRC") {
    const std::size_t idat = find_chunk(good, "IDAT");
    const std::uint32_t len = load_be32(good, idat);
    Bytes adler = good;  // the stream's Adler-32 trailer (its last 4 bytes)
    adler[idat + 8 + len - 2] ^= std::byte{0x55};
    fix_crc(adler, idat);
    Bytes block = good;  // the first deflate block header: an invalid block type
    block[idat + 8 + 2] = std::byte{0xff};
    fix_crc(block, idat);
    const std::string path = tmp_path("bad_zlib.png");
    write_bytes(path, adler);
    REQUIRE_THROWS_WITH(read_png(path), Contains(path) && Contains("IDAT: incorrect data check"));
    write_bytes(path, block);
    REQUIRE_THROWS_WITH(read_png(path), Contains(path) && Contains("IDAT: invalid"));
  }
  SECTION("absurd sizes in IHDR") {
    const std::size_t ihdr = find_chunk(good, "IHDR");
    const std::string path = tmp_path("huge.png");
    Bytes b = good;  // 100000 x 100000: within libpng's limits, over max_pixels
    store_be32(b, ihdr + 8, 100000);
    store_be32(b, ihdr + 12, 100000);
    fix_crc(b, ihdr);
    write_bytes(path, b);
    REQUIRE_THROWS_WITH(read_png(path), Contains(path) && Contains("100000 x 100000") &&
                                            Contains("more than the limit of 67108864"));
    store_be32(b, ihdr + 8, 0x7fffffff);  // the largest width PNG allows
    fix_crc(b, ihdr);
    write_bytes(path, b);
    REQUIRE_THROWS_WITH(read_png(path), Contains(path) && Contains("2147483647 x 100000") &&
                                            Contains("more than the limit"));
    store_be32(b, ihdr + 8, 0x80000000);  // libpng's own checks
    fix_crc(b, ihdr);
    write_bytes(path, b);
    REQUIRE_THROWS_WITH(read_png(path),
                        Contains(path) && Contains("PNG unsigned integer out of range"));
    store_be32(b, ihdr + 8, 0);
    fix_crc(b, ihdr);
    write_bytes(path, b);
    REQUIRE_THROWS_WITH(read_png(path), Contains(path) && Contains("IHDR"));
  }
  SECTION("a tiny file claiming dimensions it cannot hold, refused before allocating") {
    // 8000 x 8000 8-bit grey: within max_pixels, but 64 MB of pixels need at least 62 kB of
    // deflate data, and the file has 81 bytes.
    Bytes b = good;
    const std::size_t ihdr = find_chunk(b, "IHDR");
    store_be32(b, ihdr + 8, 8000);
    store_be32(b, ihdr + 12, 8000);
    fix_crc(b, ihdr);
    const std::string path = tmp_path("claims_8000.png");
    write_bytes(path, b);
    const std::string size = std::to_string(b.size());
    REQUIRE_THROWS_WITH(read_png(path), Contains(path) &&
                                            Contains("its " + size +
                                                     " bytes cannot "
                                                     "hold a 8000 x 8000 image") &&
                                            Contains("at least 64000000 bytes of pixel data"));
    REQUIRE_THROWS_WITH(read_png(std::span<const std::byte>(b), "claims"),
                        Contains("PNG data 'claims'") && Contains("cannot hold"));
    // A large image compressed well is read: 2000 x 2000 zeros in about 4 kB.
    const std::size_t w = 2000, h = 2000;
    std::vector<Bytef> raw(h * (w + 1), 0);  // filter byte 0 and the row
    uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
    std::vector<Bytef> packed(packed_size);
    REQUIRE(compress2(packed.data(), &packed_size, raw.data(), static_cast<uLong>(raw.size()), 9) ==
            Z_OK);
    Bytes png(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(ihdr + 25));  // to IHDR
    store_be32(png, ihdr + 8, static_cast<std::uint32_t>(w));
    store_be32(png, ihdr + 12, static_cast<std::uint32_t>(h));
    png[ihdr + 16] = std::byte{8};  // 8-bit grey, no interlace
    png[ihdr + 17] = std::byte{0};
    png[ihdr + 20] = std::byte{0};
    fix_crc(png, ihdr);
    const std::size_t idat = png.size();
    png.resize(idat + 12 + packed_size);
    store_be32(png, idat, static_cast<std::uint32_t>(packed_size));
    std::memcpy(png.data() + idat + 4, "IDAT", 4);
    std::memcpy(png.data() + idat + 8, packed.data(), packed_size);
    fix_crc(png, idat);
    const Bytes iend{std::byte{0},    std::byte{0},    std::byte{0},    std::byte{0},
                     std::byte{'I'},  std::byte{'E'},  std::byte{'N'},  std::byte{'D'},
                     std::byte{0xae}, std::byte{0x42}, std::byte{0x60}, std::byte{0x82}};
    png.insert(png.end(), iend.begin(), iend.end());
    CHECK(png.size() < 8000);
    const Tensor<std::uint8_t> big = read_png(std::span<const std::byte>(png));
    CHECK(big.size(0) == 2000);
    CHECK(big.size(1) == 2000);
    CHECK(int(big.data()[1234567]) == 0);
  }
  SECTION("max_pixels") {
    REQUIRE_THROWS_WITH(read_png(fixture("digit28.png"), {.max_pixels = 783}),
                        Contains("digit28.png") && Contains("28 x 28 image has 784 pixels"));
    CHECK(read_png(fixture("digit28.png"), {.max_pixels = 784}).numel() == 784);
    REQUIRE_THROWS_WITH(read_png(fixture("digit28.png"), {.max_pixels = 0}),
                        Contains("max_pixels must be positive"));
  }
}
