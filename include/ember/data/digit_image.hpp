#pragma once
// to_mnist_digit: a picture of one digit (a photo, a scan, a drawing; any size, either
// polarity) made into a 28 x 28 image the way MNIST's were made, so that a model trained on
// MNIST can classify it:
//
//   1. polarity: MNIST digits are light ink on black. Polarity::detect looks at the outermost
//      ring of pixels: a light border (mean above mid-grey) is paper, and the image is
//      inverted; as_is and invert force the choice.
//   2. levels: the border's median grey becomes 0 and the brightest ink 1, and what stays
//      below the noise floor is set to 0: twice the border's spread (its 90th percentile
//      above its median; paper texture, uneven light), at most half the range. A clean image
//      (a border of one grey) keeps every level.
//   3. size: the bounding box of the ink is scaled, aspect ratio kept, so that its longer side
//      is 20 pixels, by area (box) averaging: each output pixel is the mean of the input area
//      it covers. The levels are stretched again so that the brightest pixel is 1: a thin
//      stroke drawn large would otherwise come out faint.
//   4. place: the 20-pixel box goes into a 28 x 28 canvas, shifted by whole pixels so that its
//      centre of mass (sum of v * row / sum of v, rows numbered from 0) is at (14, 14), where
//      MNIST's are (the mean over the training set is 14.00 in both axes, spread 0.29), and
//      never past the canvas's edges.
//
// From LeCun et al.'s description of MNIST: "normalized to fit in a 20x20 pixel box while
// preserving their aspect ratio ... centered in a 28x28 image by computing the center of mass
// of the pixels". A 28 x 28 MNIST image goes through nearly unchanged.
//
// flatten_transparency picks the background for an image with transparent pixels (PNG's
// alpha), from the image read twice: composited onto black and onto white.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember::data {

/// Which way round a photo's ink is.
enum class Polarity {
  detect,  // from the border: a light border is inverted
  as_is,   // already light ink on a dark background, as MNIST
  invert,  // dark ink on a light background
};

/// How to_mnist_digit reads a photo.
struct DigitImageOptions {
  /// Light ink on dark (MNIST's), dark on light, or detect from the border.
  Polarity polarity = Polarity::detect;
  /// After the levels are stretched to [0, 1], ink below this is background at least (the
  /// floor measured on the border may be higher).
  double noise_floor = 0;
  /// The least contrast (brightest ink minus the border's level, in [0, 1]) that counts as a
  /// digit; below it the image is refused as blank.
  double min_contrast = 0.1;
};

/// What to_mnist_digit found and did.
struct DigitImageInfo {
  /// True when the input was dark ink on light (and was inverted).
  bool inverted = false;
  double border_mean = 0;                   ///< of the input, in [0, 1]
  /// the ink's bounding box in the input
  /// @{
  std::int64_t box_rows = 0, box_cols = 0;
  /// @}
  /// that box scaled, in the 28 x 28 output
  /// @{
  std::int64_t out_rows = 0, out_cols = 0;
  /// @}
};

inline constexpr std::int64_t mnist_side = 28;         ///< the canvas
inline constexpr std::int64_t mnist_box = 20;          ///< the longer side of the ink
inline constexpr double mnist_centre_of_mass = 14.0;   ///< row and column, numbered from 0

namespace detail {

// An image as rows x cols levels in [0, 1].
struct GreyImage {
  std::int64_t rows = 0, cols = 0;
  std::vector<double> v;
  [[nodiscard]] double& at(std::int64_t r, std::int64_t c) {
    return v[static_cast<std::size_t>(r * cols + c)];
  }
  [[nodiscard]] double at(std::int64_t r, std::int64_t c) const {
    return v[static_cast<std::size_t>(r * cols + c)];
  }
};

template <class T>
GreyImage grey_image(const Tensor<T>& img, double scale) {
  EMBER_CHECK(img.dim() == 2, "to_mnist_digit: expected a greyscale image (H, W), got ",
              shape_str(img.shape()));
  EMBER_CHECK(img.size(0) > 0 && img.size(1) > 0, "to_mnist_digit: the image is empty (",
              shape_str(img.shape()), ")");
  EMBER_CHECK(img.device().is_cpu(), "to_mnist_digit: the image must be on the CPU");
  const Tensor<T> c = img.contiguous();
  GreyImage g{c.size(0), c.size(1), {}};
  g.v.resize(static_cast<std::size_t>(c.numel()));
  const T* p = c.data();
  for (std::size_t i = 0; i < g.v.size(); ++i) {
    const double x = static_cast<double>(p[i]) * scale;
    EMBER_CHECK(std::isfinite(x) && x >= 0 && x <= 1, "to_mnist_digit: pixel ", i, " is ",
                static_cast<double>(p[i]), ", outside the image's range");
    g.v[i] = x;
  }
  return g;
}

// The outermost ring of pixels (the whole image when it is 1 or 2 pixels thin).
inline std::vector<double> border(const GreyImage& g) {
  std::vector<double> ring;
  for (std::int64_t r = 0; r < g.rows; ++r)
    for (std::int64_t c = 0; c < g.cols; ++c)
      if (r == 0 || c == 0 || r == g.rows - 1 || c == g.cols - 1) ring.push_back(g.at(r, c));
  return ring;
}

// Area averaging along one axis: output k of `out` covers input [k, k + 1) * in / out, and
// each input pixel counts with the part of it that lies there.
struct AxisWeights {
  std::vector<std::int64_t> first;           // first input index of each output
  std::vector<std::vector<double>> weights;  // of inputs first, first + 1, ...; they sum to 1
};
inline AxisWeights box_weights(std::int64_t in, std::int64_t out) {
  AxisWeights w;
  const double step = static_cast<double>(in) / static_cast<double>(out);
  for (std::int64_t k = 0; k < out; ++k) {
    const double a = static_cast<double>(k) * step, b = static_cast<double>(k + 1) * step;
    const auto lo = static_cast<std::int64_t>(std::floor(a));
    const auto hi = std::min(in, static_cast<std::int64_t>(std::ceil(b)));
    std::vector<double> ws;
    for (std::int64_t j = lo; j < hi; ++j) {
      const double overlap =
          std::min(b, static_cast<double>(j + 1)) - std::max(a, static_cast<double>(j));
      ws.push_back(std::max(0.0, overlap) / step);
    }
    w.first.push_back(lo);
    w.weights.push_back(std::move(ws));
  }
  return w;
}

// The rows x cols box of g at (r0, c0) resampled to out_rows x out_cols.
inline GreyImage resample_box(const GreyImage& g, std::int64_t r0, std::int64_t c0,
                              std::int64_t rows, std::int64_t cols, std::int64_t out_rows,
                              std::int64_t out_cols) {
  const AxisWeights wr = box_weights(rows, out_rows), wc = box_weights(cols, out_cols);
  GreyImage tmp{out_rows, cols, std::vector<double>(static_cast<std::size_t>(out_rows * cols))};
  for (std::int64_t r = 0; r < out_rows; ++r) {
    const auto& ws = wr.weights[static_cast<std::size_t>(r)];
    for (std::size_t k = 0; k < ws.size(); ++k) {
      const std::int64_t src =
          r0 + wr.first[static_cast<std::size_t>(r)] + static_cast<std::int64_t>(k);
      for (std::int64_t c = 0; c < cols; ++c) tmp.at(r, c) += ws[k] * g.at(src, c0 + c);
    }
  }
  GreyImage out{out_rows, out_cols,
                std::vector<double>(static_cast<std::size_t>(out_rows * out_cols))};
  for (std::int64_t c = 0; c < out_cols; ++c) {
    const auto& ws = wc.weights[static_cast<std::size_t>(c)];
    for (std::size_t k = 0; k < ws.size(); ++k) {
      const std::int64_t src = wc.first[static_cast<std::size_t>(c)] + static_cast<std::int64_t>(k);
      for (std::int64_t r = 0; r < out_rows; ++r) out.at(r, c) += ws[k] * tmp.at(r, src);
    }
  }
  return out;
}

// The whole pipeline on levels in [0, 1]; returns the 28 x 28 canvas, levels in [0, 1].
inline GreyImage mnist_digit(GreyImage g, const DigitImageOptions& o, DigitImageInfo& info) {
  std::vector<double> ring = border(g);
  double ring_sum = 0;
  for (const double x : ring) ring_sum += x;
  info.border_mean = ring_sum / static_cast<double>(ring.size());
  info.inverted =
      o.polarity == Polarity::invert || (o.polarity == Polarity::detect && info.border_mean > 0.5);
  if (info.inverted) {
    for (double& x : g.v) x = 1 - x;
    for (double& x : ring) x = 1 - x;
  }

  // 2. levels: the border's median is the background.
  std::nth_element(ring.begin(), ring.begin() + static_cast<std::ptrdiff_t>(ring.size() / 2),
                   ring.end());
  const double background = ring[ring.size() / 2];
  std::nth_element(ring.begin(), ring.begin() + static_cast<std::ptrdiff_t>(ring.size() * 9 / 10),
                   ring.end());
  const double spread = ring[ring.size() * 9 / 10] - background;
  const double peak = *std::max_element(g.v.begin(), g.v.end());
  EMBER_CHECK(peak - background >= o.min_contrast, "to_mnist_digit: no digit found: the ", g.rows,
              " x ", g.cols, " image is nearly uniform (the ink is ",
              std::lround(255 * (peak - background)), " grey levels from the background",
              info.inverted ? ", after inverting the light background" : "",
              o.polarity != Polarity::detect ? "; with the polarity forced: is the digit of "
                                               "the other polarity?"
                                             : "",
              ")");
  const double floor = std::max(o.noise_floor, std::min(0.5, 2 * spread / (peak - background)));
  for (double& x : g.v) {
    x = (x - background) / (peak - background);
    x = x <= 0 || x < floor ? 0.0 : std::min(x, 1.0);
  }

  // 3. the ink's bounding box, scaled so that its longer side is 20 pixels.
  std::int64_t r_lo = g.rows, r_hi = -1, c_lo = g.cols, c_hi = -1;
  for (std::int64_t r = 0; r < g.rows; ++r)
    for (std::int64_t c = 0; c < g.cols; ++c)
      if (g.at(r, c) > 0) {
        r_lo = std::min(r_lo, r), r_hi = std::max(r_hi, r);
        c_lo = std::min(c_lo, c), c_hi = std::max(c_hi, c);
      }
  info.box_rows = r_hi - r_lo + 1;
  info.box_cols = c_hi - c_lo + 1;
  const double scale =
      static_cast<double>(mnist_box) / static_cast<double>(std::max(info.box_rows, info.box_cols));
  const auto scaled = [&](std::int64_t n) {
    return std::clamp<std::int64_t>(std::lround(static_cast<double>(n) * scale), 1, mnist_box);
  };
  info.out_rows = scaled(info.box_rows);
  info.out_cols = scaled(info.box_cols);
  GreyImage box =
      resample_box(g, r_lo, c_lo, info.box_rows, info.box_cols, info.out_rows, info.out_cols);
  const double box_peak = *std::max_element(box.v.begin(), box.v.end());
  for (double& x : box.v) x = std::min(1.0, x / box_peak);

  // 4. into the canvas, the centre of mass at (14, 14).
  double mass = 0, mass_r = 0, mass_c = 0;
  for (std::int64_t r = 0; r < box.rows; ++r)
    for (std::int64_t c = 0; c < box.cols; ++c) {
      mass += box.at(r, c);
      mass_r += box.at(r, c) * static_cast<double>(r);
      mass_c += box.at(r, c) * static_cast<double>(c);
    }
  const auto offset = [&](double centre, std::int64_t size) {
    return std::clamp<std::int64_t>(std::lround(mnist_centre_of_mass - centre), 0,
                                    mnist_side - size);
  };
  const std::int64_t dr = offset(mass_r / mass, box.rows), dc = offset(mass_c / mass, box.cols);
  GreyImage out{mnist_side, mnist_side,
                std::vector<double>(static_cast<std::size_t>(mnist_side * mnist_side))};
  for (std::int64_t r = 0; r < box.rows; ++r)
    for (std::int64_t c = 0; c < box.cols; ++c) out.at(dr + r, dc + c) = box.at(r, c);
  return out;
}

}  // namespace detail

/// The mean of the outermost ring of pixels, in [0, 1]; above 0.5 is a light background.
template <class T>
[[nodiscard]] double border_mean(const Tensor<T>& gray) {
  const detail::GreyImage g =
      detail::grey_image(gray, std::is_floating_point_v<T> ? 1.0 : 1.0 / 255);
  const std::vector<double> ring = detail::border(g);
  double sum = 0;
  for (const double x : ring) sum += x;
  return sum / static_cast<double>(ring.size());
}

/// A greyscale uint8 image (H, W) as an MNIST digit: uint8 (28, 28), light ink on black.
/// Throws ember::Error when no digit is found (an image of one grey, nearly).
[[nodiscard]] inline Tensor<std::uint8_t> to_mnist_digit(const Tensor<std::uint8_t>& gray,
                                                         const DigitImageOptions& options = {},
                                                         DigitImageInfo* info = nullptr) {
  DigitImageInfo found;
  const detail::GreyImage g =
      detail::mnist_digit(detail::grey_image(gray, 1.0 / 255), options, found);
  auto out = Tensor<std::uint8_t>::empty({mnist_side, mnist_side});
  for (std::size_t i = 0; i < g.v.size(); ++i)
    out.data()[i] = static_cast<std::uint8_t>(std::lround(255 * g.v[i]));
  if (info != nullptr) *info = found;
  return out;
}

/// The same for levels in [0, 1] (float (H, W)); returns float (28, 28) in [0, 1].
[[nodiscard]] inline Tensor<float> to_mnist_digit(const Tensor<float>& gray,
                                                  const DigitImageOptions& options = {},
                                                  DigitImageInfo* info = nullptr) {
  DigitImageInfo found;
  const detail::GreyImage g = detail::mnist_digit(detail::grey_image(gray, 1.0), options, found);
  auto out = Tensor<float>::empty({mnist_side, mnist_side});
  for (std::size_t i = 0; i < g.v.size(); ++i) out.data()[i] = static_cast<float>(g.v[i]);
  if (info != nullptr) *info = found;
  return out;
}

/// to_mnist_digit with only the polarity set.
[[nodiscard]] inline Tensor<std::uint8_t> to_mnist_digit(const Tensor<std::uint8_t>& gray,
                                                         Polarity polarity) {
  return to_mnist_digit(gray, DigitImageOptions{.polarity = polarity});
}
/// to_mnist_digit with only the polarity set (float pixels in [0, 1]).
[[nodiscard]] inline Tensor<float> to_mnist_digit(const Tensor<float>& gray, Polarity polarity) {
  return to_mnist_digit(gray, DigitImageOptions{.polarity = polarity});
}

/// An image with transparent pixels, given as read composited onto black (on_black) and onto
/// white (on_white), flattened onto the background it means. A pixel's opacity is
/// a = 255 - (on_white - on_black), and what is opaque is either the strokes (it covers less
/// than half the image: the background is the opposite of their mean grey) or a sheet with the
/// digit on it (half or more: the background continues the sheet's grey). Returns on_black
/// when nothing is transparent.
[[nodiscard]] inline Tensor<std::uint8_t> flatten_transparency(
    const Tensor<std::uint8_t>& on_black, const Tensor<std::uint8_t>& on_white) {
  EMBER_CHECK(on_black.shape() == on_white.shape(), "flatten_transparency: shapes ",
              shape_str(on_black.shape()), " and ", shape_str(on_white.shape()), " differ");
  const Tensor<std::uint8_t> b = on_black.contiguous(), w = on_white.contiguous();
  double alpha_sum = 0, premultiplied_sum = 0;
  bool any_transparent = false;
  for (std::int64_t i = 0; i < b.numel(); ++i) {
    const int diff = std::clamp(int{w.data()[i]} - int{b.data()[i]}, 0, 255);
    any_transparent = any_transparent || diff > 0;
    alpha_sum += 255 - diff;                   // a
    premultiplied_sum += 255.0 * b.data()[i];  // v * a
  }
  if (!any_transparent || alpha_sum == 0) return on_black;
  const double opaque_grey = premultiplied_sum / alpha_sum;  // mean v, weighted by a
  const double coverage = alpha_sum / (255.0 * static_cast<double>(b.numel()));
  const bool opaque_is_light = opaque_grey > 127.5;
  const bool background_light = coverage < 0.5 ? !opaque_is_light : opaque_is_light;
  return background_light ? on_white : on_black;
}

}  // namespace ember::data
