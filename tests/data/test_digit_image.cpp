// Tests for ember/data/digit_image.hpp: pictures of a digit, drawn here or read from the PNG
// fixtures (tests/fixtures/png/make_digit_photos.py), of both polarities and sizes 28 x 28,
// 100 x 60 and 300 x 300, become 28 x 28 MNIST digits: light ink on black, the ink's box at
// most 20 pixels with its longer side 20, the centre of mass within a pixel of (14, 14) where
// MNIST's is; a dark digit on paper and its inverse give the same image.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/data/digit_image.hpp"
#include "ember/data/png.hpp"

namespace {

using ember::Tensor;
using ember::data::DigitImageInfo;
using ember::data::Polarity;
using ember::data::to_mnist_digit;
using U8 = Tensor<std::uint8_t>;

std::string fixture(const std::string& name) {
  return std::string(EMBER_TEST_DIR) + "/fixtures/png/" + name;
}

// Distance from (x, y) to the segment a-b.
double segment_distance(double x, double y, double ax, double ay, double bx, double by) {
  const double dx = bx - ax, dy = by - ay;
  const double t = std::clamp(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0);
  return std::hypot(ax + t * dx - x, ay + t * dy - y);
}

// A '4' (three strokes) of stroke width `thick` drawn into the box (x0, y0, w, h) of a
// rows x cols canvas: ink level `ink` on `paper`, 2 x 2 supersampled.
U8 draw_four(std::int64_t rows, std::int64_t cols, double x0, double y0, double w, double h,
             double thick, int ink, int paper) {
  auto img = U8::empty({rows, cols});
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      int hits = 0;
      for (int s = 0; s < 4; ++s) {
        const double x = (static_cast<double>(c) + 0.25 + 0.5 * (s % 2) - x0) / w;
        const double y = (static_cast<double>(r) + 0.25 + 0.5 * (s / 2) - y0) / h;
        const double d = std::min({segment_distance(x, y, 0.6, 0.0, 0.0, 0.65),
                                   segment_distance(x, y, 0.0, 0.65, 0.95, 0.65),
                                   segment_distance(x, y, 0.7, 0.2, 0.7, 1.0)});
        hits += d * h <= thick / 2 ? 1 : 0;
      }
      const double cov = hits / 4.0;
      img(r, c) = static_cast<std::uint8_t>(std::lround(paper * (1 - cov) + ink * cov));
    }
  return img;
}

U8 inverted(const U8& img) {
  U8 out = img.contiguous().clone();
  for (std::int64_t i = 0; i < out.numel(); ++i)
    out.data()[i] = static_cast<std::uint8_t>(255 - out.data()[i]);
  return out;
}

struct Measured {
  double mass_row = 0, mass_col = 0;  // centre of mass, rows and columns numbered from 0
  std::int64_t box_rows = 0, box_cols = 0;
  int corner_max = 0;  // the brightest of the four corner pixels
};

Measured measure(const U8& d) {
  REQUIRE(d.shape() == std::vector<std::int64_t>{28, 28});
  Measured m;
  double mass = 0;
  std::int64_t r_lo = 28, r_hi = -1, c_lo = 28, c_hi = -1;
  for (std::int64_t r = 0; r < 28; ++r)
    for (std::int64_t c = 0; c < 28; ++c) {
      const double v = d(r, c);
      mass += v;
      m.mass_row += v * static_cast<double>(r);
      m.mass_col += v * static_cast<double>(c);
      if (v > 0) {
        r_lo = std::min(r_lo, r), r_hi = std::max(r_hi, r);
        c_lo = std::min(c_lo, c), c_hi = std::max(c_hi, c);
      }
      if ((r == 0 || r == 27) && (c == 0 || c == 27))
        m.corner_max = std::max(m.corner_max, int{d(r, c)});
    }
  REQUIRE(mass > 0);
  m.mass_row /= mass;
  m.mass_col /= mass;
  m.box_rows = r_hi - r_lo + 1;
  m.box_cols = c_hi - c_lo + 1;
  return m;
}

// What every output must be: MNIST's layout.
void check_mnist_layout(const U8& d) {
  const Measured m = measure(d);
  CHECK(std::abs(m.mass_row - 14.0) <= 1.0);
  CHECK(std::abs(m.mass_col - 14.0) <= 1.0);
  CHECK(m.box_rows <= 20);
  CHECK(m.box_cols <= 20);
  CHECK(std::max(m.box_rows, m.box_cols) >= 19);  // the longer side is scaled to 20
  CHECK(m.corner_max == 0);  // black background (a top-heavy 7 may touch an edge, as in MNIST)
  CHECK(*std::max_element(d.data(), d.data() + d.numel()) == 255);
}

// Mean absolute difference of two digits, in grey levels.
double mean_difference(const U8& a, const U8& b) {
  double sum = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) sum += std::abs(int{a.data()[i]} - int{b.data()[i]});
  return sum / static_cast<double>(a.numel());
}

}  // namespace

TEST_CASE("to_mnist_digit: both polarities and any size become MNIST's layout", "[data][digit]") {
  struct Canvas {
    std::int64_t rows, cols;
    double x0, y0, w, h, thick;
  };
  // 28 x 28 as MNIST, 100 wide x 60 high, 300 x 300 with the digit off centre.
  const Canvas canvas =
      GENERATE(Canvas{28, 28, 6, 4, 15, 20, 2.5}, Canvas{60, 100, 30, 6, 36, 48, 5},
               Canvas{300, 300, 40, 150, 90, 120, 12});
  INFO(canvas.cols << " x " << canvas.rows);
  const U8 light = draw_four(canvas.rows, canvas.cols, canvas.x0, canvas.y0, canvas.w, canvas.h,
                             canvas.thick, 255, 0);
  const U8 dark = inverted(light);

  DigitImageInfo light_info, dark_info;
  const U8 a = to_mnist_digit(light, {}, &light_info);
  const U8 b = to_mnist_digit(dark, {}, &dark_info);
  CHECK_FALSE(light_info.inverted);
  CHECK(dark_info.inverted);
  CHECK(dark_info.border_mean > 0.9);
  check_mnist_layout(a);
  CHECK(mean_difference(a, b) == 0);  // the same picture, whichever way it was drawn

  // Forcing the polarity: invert on the dark one is what detect does; as_is on it is not.
  CHECK(mean_difference(to_mnist_digit(dark, Polarity::invert), b) == 0);
  CHECK(mean_difference(to_mnist_digit(light, Polarity::as_is), a) == 0);
  // Taken as it is, the dark digit is no light ink at all: refused, with a word on polarity.
  CHECK_THROWS_WITH(to_mnist_digit(dark, Polarity::as_is),
                    Catch::Matchers::Contains("no digit found") &&
                        Catch::Matchers::Contains("the other polarity"));
}

TEST_CASE("to_mnist_digit: the same digit drawn at other sizes looks the same", "[data][digit]") {
  const U8 small = to_mnist_digit(draw_four(28, 28, 6, 4, 15, 20, 2.2, 255, 0));
  const U8 big = to_mnist_digit(draw_four(300, 300, 40, 150, 90, 120, 13, 0, 255));
  const U8 wide = to_mnist_digit(draw_four(60, 100, 30, 6, 36, 48, 5.2, 0, 255));
  CHECK(mean_difference(small, big) < 25);
  CHECK(mean_difference(wide, big) < 25);
}

TEST_CASE("to_mnist_digit: a photo: grey paper, uneven light, noise", "[data][digit]") {
  ember::Generator gen(5);
  const U8 clean = draw_four(300, 300, 60, 60, 150, 200, 14, 40, 200);
  U8 photo = clean.clone();
  for (std::int64_t r = 0; r < 300; ++r)
    for (std::int64_t c = 0; c < 300; ++c) {
      const double light = -15.0 * static_cast<double>(c) / 300;  // darker to the right
      const double noise = static_cast<double>(gen.below(21)) - 10;
      photo(r, c) = static_cast<std::uint8_t>(
          std::clamp(std::lround(static_cast<double>(clean(r, c)) + light + noise), 0L, 255L));
    }
  DigitImageInfo info;
  const U8 d = to_mnist_digit(photo, {}, &info);
  CHECK(info.inverted);
  CHECK(info.box_rows >= 200);
  CHECK(info.box_rows <= 215);  // the noise did not stretch the ink's box
  check_mnist_layout(d);
  CHECK(mean_difference(d, to_mnist_digit(clean)) < 8);
}

TEST_CASE("to_mnist_digit: an MNIST digit goes through unchanged", "[data][digit]") {
  const U8 once = to_mnist_digit(draw_four(300, 300, 40, 150, 90, 120, 12, 0, 255));
  const U8 twice = to_mnist_digit(once);
  CHECK(mean_difference(once, twice) == 0);
}

TEST_CASE("to_mnist_digit: float images in [0, 1] match uint8 ones", "[data][digit]") {
  const U8 img = draw_four(60, 100, 30, 6, 36, 48, 5, 0, 255);
  auto f = Tensor<float>::empty({60, 100});
  for (std::int64_t i = 0; i < img.numel(); ++i)
    f.data()[i] = static_cast<float>(img.data()[i]) / 255.0f;
  const U8 a = to_mnist_digit(img);
  const Tensor<float> b = to_mnist_digit(f);
  REQUIRE(b.shape() == std::vector<std::int64_t>{28, 28});
  for (std::int64_t i = 0; i < a.numel(); ++i)
    REQUIRE(std::abs(static_cast<double>(b.data()[i]) * 255 - a.data()[i]) <= 0.51);
}

TEST_CASE("to_mnist_digit: refuses what is not a digit image", "[data][digit]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(to_mnist_digit(U8::full({40, 30}, 200)), Contains("no digit found"));
  U8 faint = U8::full({40, 30}, 100);
  faint(20, 15) = 110;  // 10 grey levels: not ink
  CHECK_THROWS_WITH(to_mnist_digit(faint), Contains("nearly uniform"));
  CHECK_THROWS_WITH(to_mnist_digit(U8::zeros({2, 3, 4})), Contains("greyscale image (H, W)"));
  auto bad = Tensor<float>::full({5, 5}, 2.0f);
  CHECK_THROWS_WITH(to_mnist_digit(bad), Contains("outside the image's range"));
}

TEST_CASE("to_mnist_digit: the PNG fixtures, dark and light, give the same digit",
          "[data][digit][png]") {
  using ember::data::read_png;
  const U8 ref = to_mnist_digit(read_png(fixture("seven_28.png")));
  check_mnist_layout(ref);
  for (const char* size : {"300", "100x60"}) {
    INFO(size);
    DigitImageInfo dark_info, light_info;
    const U8 dark = to_mnist_digit(read_png(fixture("seven_" + std::string(size) + "_dark.png")),
                                   {}, &dark_info);
    const U8 light = to_mnist_digit(read_png(fixture("seven_" + std::string(size) + "_light.png")),
                                    {}, &light_info);
    CHECK(dark_info.inverted);
    CHECK_FALSE(light_info.inverted);
    check_mnist_layout(dark);
    CHECK(mean_difference(dark, light) <= 1);  // 255 - v in the file, rounding aside
    CHECK(mean_difference(dark, ref) < 25);    // and the same '7' as the small one
  }
}

TEST_CASE("flatten_transparency: transparent pixels become the background they mean",
          "[data][digit][png]") {
  using ember::data::flatten_transparency;
  using ember::data::read_png;
  // Dark strokes on a transparent canvas: the canvas must read as white paper.
  const U8 on_black = read_png(fixture("seven_64_alpha.png"), {.background = 0});
  const U8 on_white = read_png(fixture("seven_64_alpha.png"), {.background = 255});
  const U8 flat = flatten_transparency(on_black, on_white);
  CHECK(flat(0, 0) == 255);
  DigitImageInfo info;
  const U8 d = to_mnist_digit(flat, {}, &info);
  CHECK(info.inverted);
  check_mnist_layout(d);
  CHECK(mean_difference(d, to_mnist_digit(read_png(fixture("seven_28.png")))) < 25);

  // Light strokes on transparency: black. A sheet (most pixels opaque) keeps its own grey.
  U8 black = U8::zeros({10, 10}), white = U8::full({10, 10}, 255);
  U8 light_strokes_black = black.clone(), light_strokes_white = white.clone();
  for (std::int64_t r = 2; r < 8; ++r) light_strokes_black(r, 5) = light_strokes_white(r, 5) = 250;
  CHECK(flatten_transparency(light_strokes_black, light_strokes_white)(0, 0) == 0);
  U8 sheet_black = U8::full({10, 10}, 230), sheet_white = U8::full({10, 10}, 230);
  sheet_black(0, 0) = 0, sheet_white(0, 0) = 255;  // one transparent corner
  CHECK(flatten_transparency(sheet_black, sheet_white)(0, 0) == 255);
  // Nothing transparent: either read.
  const U8 opaque = U8::full({10, 10}, 230);
  CHECK(flatten_transparency(opaque, opaque)(0, 0) == 230);
}
