// Tests for ember/data/pgm.hpp on files written at run time: netpbm's header rules (comments
// anywhere, a comment right after maxval), P5 and P2 pixels, and every way a file can be wrong,
// each an ember::Error naming the file, found before the image is allocated where the header
// claims more than the file holds. (The basic round trip is in test_dataloader.cpp.)

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "ember/data/pgm.hpp"
#include "support/tmp.hpp"

namespace {

using Catch::Contains;
using ember::data::read_pgm;

// Writes `bytes` to a fresh file `name` in the test folder; returns its path.
std::string write_file(const std::string& name, const std::string& bytes) {
  const std::string path = (ember::test::tmp_dir("test_pgm") / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
  return path;
}

std::vector<int> pixels(const ember::Tensor<std::uint8_t>& img) {
  std::vector<int> v;
  for (const std::uint8_t p : img.to_vector()) v.push_back(p);
  return v;
}

}  // namespace

TEST_CASE("read_pgm follows netpbm's header: comments anywhere, even right after maxval",
          "[data][pgm]") {
  // The comment ends the header; the pixel is the byte after its newline (7, not 'x' = 120).
  CHECK(pixels(read_pgm(write_file("comment_maxval.pgm", std::string("P5 1 1 255#x\n\x07", 15)))) ==
        std::vector<int>{7});
  CHECK(pixels(read_pgm(write_file("comment_maxval2.pgm", "P5\n#a\n2 1 255# two\r\x01\x02"))) ==
        std::vector<int>{1, 2});
  CHECK(
      pixels(read_pgm(write_file("comments.pgm", "P2#c\n2#w\n#h\n2 15 #m\n0#p\n15 5\n# x\n10"))) ==
      std::vector<int>{0, 255, 85, 170});
  const auto img = read_pgm(write_file("text.pgm", "P2 3 1 9\n007 0 9\n"));
  CHECK(img.size(0) == 1);
  CHECK(img.size(1) == 3);
  CHECK(pixels(img) == std::vector<int>{198, 0, 255});
  CHECK(pixels(read_pgm(write_file("maxval3.pgm", "P5 2 1 3\n\x03\x01"))) ==
        std::vector<int>{255, 85});
}

TEST_CASE("read_pgm: truncated P2 and P5 data say truncated", "[data][pgm]") {
  // P2 with too few bytes for its values: refused before the image is allocated.
  CHECK_THROWS_WITH(read_pgm(write_file("short_text.pgm", "P2 2 2 255\n1 2 3")),
                    Contains("short_text.pgm") && Contains("truncated pixel data") &&
                        Contains("need at least 7 bytes, the file has 5"));
  // Enough bytes, too few values (the old reader said "value -1 exceeds maxval").
  CHECK_THROWS_WITH(read_pgm(write_file("short_text2.pgm", "P2 2 2 255\n1 2 3     ")),
                    Contains("truncated pixel data (expected 4 values, got 3)"));
  CHECK_THROWS_WITH(read_pgm(write_file("short_text3.pgm", "P2 2 2 255\n1 2 3 #4\n")),
                    Contains("truncated pixel data (expected 4 values, got 3)"));
  CHECK_THROWS_WITH(read_pgm(write_file("short_bin.pgm", "P5 4 4 255\n" + std::string(7, 'x'))),
                    Contains("truncated pixel data (expected 16 bytes, got 7)"));
  CHECK_THROWS_WITH(read_pgm(write_file("no_pixels.pgm", "P5 4 4 255")),
                    Contains("truncated pixel data (expected 16 bytes, got 0)"));
  CHECK_THROWS_WITH(read_pgm(write_file("no_header.pgm", "P5 4 4")),
                    Contains("no_header.pgm") && Contains("header ends early"));
}

TEST_CASE("read_pgm: a tiny file claiming a huge image is refused before allocating",
          "[data][pgm]") {
  // 20 bytes claiming 16384 x 16384 (256 MiB): over max_pixels.
  const std::string huge = write_file("huge.pgm", "P5 16384 16384 255\n\x01");
  CHECK_THROWS_WITH(read_pgm(huge), Contains("huge.pgm") &&
                                        Contains("16384 x 16384 image has 268435456 pixels") &&
                                        Contains("more than the limit of 67108864"));
  // Within max_pixels: the file's size is checked against the header's claim first.
  CHECK_THROWS_WITH(read_pgm(write_file("big.pgm", "P5 8192 8192 255\n\x01")),
                    Contains("truncated pixel data (expected 67108864 bytes, got 1)"));
  CHECK_THROWS_WITH(read_pgm(write_file("big_text.pgm", "P2 8192 8192 255\n1 2 3\n")),
                    Contains("need at least 134217727 bytes, the file has 6"));
  CHECK_THROWS_WITH(read_pgm(write_file("wide.pgm", "P5 16385 1 255\n\x01")),
                    Contains("width 16385 is out of range [1, 16384]"));
  CHECK_THROWS_WITH(read_pgm(write_file("zero.pgm", "P5 0 1 255\n")),
                    Contains("width 0 is out of range"));
  const std::string two = write_file("two.pgm", "P5 2 1 255\n\x01\x02");
  CHECK_THROWS_WITH(read_pgm(two, {.max_pixels = 1}), Contains("more than the limit of 1"));
  CHECK(read_pgm(two, {.max_pixels = 2}).numel() == 2);
  CHECK_THROWS_WITH(read_pgm(two, {.max_pixels = 0}), Contains("max_pixels must be positive"));
}

TEST_CASE("read_pgm: directories, missing files, bad headers and values", "[data][pgm]") {
  const std::string dir = ember::test::tmp_dir("test_pgm").string();
  CHECK_THROWS_WITH(read_pgm(dir),
                    Contains("PGM file '" + dir + "'") && Contains("is a directory"));
  CHECK_THROWS_WITH(read_pgm(dir + "/missing.pgm"),
                    Contains("cannot open") && Contains("No such file or directory"));
  CHECK_THROWS_WITH(read_pgm(write_file("empty.pgm", "")), Contains("header ends early"));
  CHECK_THROWS_WITH(read_pgm(write_file("magic.pgm", "P6\n2 2\n255\n")),
                    Contains("bad magic 'P6'"));
  CHECK_THROWS_WITH(read_pgm(write_file("maxval.pgm", "P5\n2 2\n65535\n")),
                    Contains("maxval 65535 is out of range"));
  CHECK_THROWS_WITH(read_pgm(write_file("width.pgm", "P5 2x 2 255\n")), Contains("bad width '2x'"));
  // A header token is at most 32 characters: the message stays short.
  try {
    (void)read_pgm(write_file("long.pgm", "P5 " + std::string(100000, '7')));
    FAIL("read");
  } catch (const ember::Error& e) {
    CHECK_THAT(e.what(), Contains("is too long"));
    CHECK(std::string(e.what()).size() < 300);
  }
  CHECK_THROWS_WITH(read_pgm(write_file("over.pgm", "P2 2 1 9\n1 10\n")),
                    Contains("pixel 1 value 10 exceeds maxval 9"));
  CHECK_THROWS_WITH(read_pgm(write_file("over_bin.pgm", "P5 2 1 9\n\x01\x0a")),
                    Contains("pixel 1 value 10 exceeds maxval 9"));
  CHECK_THROWS_WITH(read_pgm(write_file("long_value.pgm", "P2 1 1 9\n" + std::string(50, '9'))),
                    Contains("pixel 0 value of 50 digits exceeds maxval 9"));
  CHECK_THROWS_WITH(read_pgm(write_file("letter.pgm", "P2 2 1 9\n1 x\n")),
                    Contains("bad pixel data at pixel 1"));
  CHECK_THROWS_WITH(read_pgm(write_file("minus.pgm", "P2 2 1 9\n1 -1\n")),
                    Contains("bad pixel data at pixel 1"));
}

TEST_CASE("read_pgm reads a pipe, whose size is unknown, as it reads a file", "[data][pgm]") {
  const std::string fifo = (ember::test::tmp_dir("test_pgm") / "pipe.pgm").string();
  std::filesystem::remove(fifo);
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // One writer per read: opening the pipe for reading waits for it.
  const auto through_pipe = [&](const std::string& bytes) {
    std::thread writer([&] {
      std::ofstream out(fifo, std::ios::binary);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    });
    struct Join {
      std::thread& t;
      ~Join() { t.join(); }
    } join{writer};
    return read_pgm(fifo);
  };
  CHECK(pixels(through_pipe(std::string("P5 3 1 15\n\x00\x05\x0f", 13))) ==
        std::vector<int>{0, 85, 255});
  CHECK(pixels(through_pipe("P2 2 1 255\n7 200")) == std::vector<int>{7, 200});
  CHECK_THROWS_WITH(through_pipe("P5 8192 8192 255\n\x01\x02"),
                    Contains("truncated pixel data (expected 67108864 bytes, got 2)"));
  CHECK_THROWS_WITH(through_pipe("P2 8192 8192 255\n1 2 3"),
                    Contains("truncated pixel data (expected 67108864 values, got 3)"));
  std::filesystem::remove(fifo);
}
