#pragma once
// The geometry under data/transforms.hpp, on one image (C, H, W) of uint8 or float, contiguous
// on the CPU: a window with padding (crop, pad, random crop), flips, bilinear and nearest
// resizing, and an affine warp. Each follows torchvision's tensor path (torchvision
// .transforms.functional on a torch.Tensor image) in its coordinates and rounding:
//
//   window     out[c, y, x] = img[c, map(top + y, H), map(left + x, W)], where map sends an
//              index outside [0, n) through the padding mode: constant (fill), edge
//              (clamped), reflect (mirrored without the edge: -1 -> 1), symmetric (mirrored
//              with it: -1 -> 0). F.crop is a constant window, F.pad a window that starts at
//              (-top, -left); RandomCrop's pad-then-crop is one window.
//   resize     torch.nn.functional.interpolate(align_corners=False, antialias=False):
//              bilinear src = max(0, s * (dst + 0.5) - 0.5) with s = in / out in float, the two
//              neighbours weighted (1 - f, f); nearest src = min(floor(dst * s), in - 1). A uint8
//              image is interpolated in float and rounded half to even (torchvision casts).
//   affine     F.affine / F.rotate: the inverse matrix m (torchvision's
//              _get_inverse_affine_matrix) maps an output pixel's centred coordinates
//              (x + 0.5 - W / 2, y + 0.5 - H / 2) to the source's, which grid_sample
//              (align_corners=False, zero padding) reads; pixels from outside take `fill`
//              (nearest) or are blended with it by the in-image weight m as torchvision does,
//              v * m + (1 - m) * fill (bilinear). Computed in float as torchvision's grid is.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember::data {

/// How pixels outside an image are filled: a constant, the edge pixel, or a reflection without
/// (reflect) or with (symmetric) the edge, as torchvision's padding_mode.
enum class PaddingMode { constant, edge, reflect, symmetric };
/// Nearest-neighbour or bilinear sampling, as torchvision's InterpolationMode.
enum class Interpolation { nearest, bilinear };

/// The mode's name, as torchvision spells it.
[[nodiscard]] inline const char* padding_mode_name(PaddingMode m) {
  switch (m) {
    case PaddingMode::constant: return "constant";
    case PaddingMode::edge: return "edge";
    case PaddingMode::reflect: return "reflect";
    case PaddingMode::symmetric: return "symmetric";
  }
  return "?";
}

/// Padding on each side, as torchvision's `padding`: one number for all four sides, two for
/// (left and right, top and bottom), or four (left, top, right, bottom).
struct Padding {
  /// Pixels added on each side.
  /// @{
  std::int64_t left = 0, top = 0, right = 0, bottom = 0;
  /// @}
  Padding() = default;
  /// The same on all four sides.
  Padding(std::int64_t all) : left(all), top(all), right(all), bottom(all) {}  // NOLINT
  /// left_right on the left and right, top_bottom on the top and bottom.
  Padding(std::int64_t left_right, std::int64_t top_bottom)
      : left(left_right), top(top_bottom), right(left_right), bottom(top_bottom) {}
  /// Each side on its own (left, top, right, bottom).
  Padding(std::int64_t l, std::int64_t t, std::int64_t r, std::int64_t b)
      : left(l), top(t), right(r), bottom(b) {}
  /// True when any side is padded.
  [[nodiscard]] bool any() const { return left != 0 || top != 0 || right != 0 || bottom != 0; }
};

/// An output size (height, width): one number for a square.
struct Size2 {
  /// The size in pixels.
  /// @{
  std::int64_t height = 0, width = 0;
  /// @}
  /// A square of side `side`.
  Size2(std::int64_t side) : height(side), width(side) {}  // NOLINT
  /// height x width.
  Size2(std::int64_t h, std::int64_t w) : height(h), width(w) {}
};

namespace detail {

// The image's (C, H, W), after checking that it is one.
template <class T>
[[nodiscard]] std::array<std::int64_t, 3> image_dims(const Tensor<T>& img, const char* op) {
  EMBER_CHECK(img.defined(), op, ": the image is undefined (a default-constructed tensor)");
  EMBER_CHECK(img.dim() == 3, op, ": expected an image (C, H, W), got shape ",
              shape_str(img.shape()));
  EMBER_CHECK(img.device().is_cpu(), op, ": the image must be on the CPU, got ",
              img.device().str());
  EMBER_CHECK(img.is_contiguous(), op, ": the image must be contiguous, got strides ",
              shape_str(img.strides()));
  return {img.size(0), img.size(1), img.size(2)};
}

// Where index i of a padded axis of n pixels reads from, or -1 for the fill.
[[nodiscard]] inline std::int64_t pad_source(std::int64_t i, std::int64_t n, PaddingMode mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PaddingMode::constant: return -1;
    case PaddingMode::edge: return i < 0 ? 0 : n - 1;
    case PaddingMode::reflect: {
      const std::int64_t period = 2 * (n - 1);  // ...2 1 [0 1 2 ... n-1] n-2 ...
      if (period == 0) return 0;
      std::int64_t k = ((i % period) + period) % period;
      return k < n ? k : period - k;
    }
    case PaddingMode::symmetric: {
      const std::int64_t period = 2 * n;  // ...1 0 [0 1 ... n-1] n-1 ...
      std::int64_t k = ((i % period) + period) % period;
      return k < n ? k : period - 1 - k;
    }
  }
  return -1;
}

template <class T>
[[nodiscard]] T fill_value(double fill) {
  if constexpr (std::is_same_v<T, std::uint8_t>)
    return static_cast<std::uint8_t>(std::clamp(std::nearbyint(fill), 0.0, 255.0));
  else
    return static_cast<T>(fill);
}

// A float result stored as T: uint8 rounds half to even and saturates (torch.round, then
// the cast torchvision makes).
template <class T>
[[nodiscard]] T store_pixel(float v) {
  if constexpr (std::is_same_v<T, std::uint8_t>)
    return static_cast<std::uint8_t>(std::clamp(std::nearbyint(v), 0.0f, 255.0f));
  else
    return static_cast<T>(v);
}

}  // namespace detail

/// Checks padding against an image of h x w for a padding mode: no side negative, reflect
/// at most n - 1 and symmetric at most n on an axis of n (as torch's and torchvision's pad).
inline void check_padding(const Padding& p, std::int64_t h, std::int64_t w, PaddingMode mode,
                          const char* op) {
  EMBER_CHECK(p.left >= 0 && p.top >= 0 && p.right >= 0 && p.bottom >= 0, op,
              ": padding must not be negative, got (left ", p.left, ", top ", p.top, ", right ",
              p.right, ", bottom ", p.bottom, ")");
  const std::int64_t limit_w = mode == PaddingMode::reflect ? w - 1 : w;
  const std::int64_t limit_h = mode == PaddingMode::reflect ? h - 1 : h;
  if (mode == PaddingMode::reflect || mode == PaddingMode::symmetric) {
    EMBER_CHECK(std::max(p.left, p.right) <= limit_w && std::max(p.top, p.bottom) <= limit_h,
                op, ": ", padding_mode_name(mode), " padding (left ", p.left, ", top ", p.top,
                ", right ", p.right, ", bottom ", p.bottom, ") must be at most ",
                mode == PaddingMode::reflect ? "the size - 1" : "the size",
                " of a ", h, "x", w, " image on each axis");
  }
}

/// out (C, h, w) = the window of img at (top, left), which may reach outside the image: those
/// pixels come from the padding mode (fill for constant).
template <class T>
[[nodiscard]] Tensor<T> image_window(const Tensor<T>& img, std::int64_t top, std::int64_t left,
                                     std::int64_t h, std::int64_t w, PaddingMode mode,
                                     double fill, const char* op = "window") {
  const auto [C, H, W] = detail::image_dims(img, op);
  EMBER_CHECK(h > 0 && w > 0, op, ": the output size must be positive, got ", h, "x", w);
  Tensor<T> out = Tensor<T>::empty({C, h, w});
  const T* src = img.data();
  T* dst = out.data();
  const T fv = detail::fill_value<T>(fill);
  // The columns' sources once per call; fully inside rows copy a contiguous run.
  std::vector<std::int64_t> cols(static_cast<std::size_t>(w));
  for (std::int64_t x = 0; x < w; ++x)
    cols[static_cast<std::size_t>(x)] = detail::pad_source(left + x, W, mode);
  const bool inside_x = left >= 0 && left + w <= W;
  for (std::int64_t c = 0; c < C; ++c) {
    for (std::int64_t y = 0; y < h; ++y) {
      T* row = dst + (c * h + y) * w;
      const std::int64_t sy = detail::pad_source(top + y, H, mode);
      if (sy < 0) {
        std::fill_n(row, w, fv);
        continue;
      }
      const T* srow = src + (c * H + sy) * W;
      if (inside_x) {
        std::copy_n(srow + left, w, row);
        continue;
      }
      for (std::int64_t x = 0; x < w; ++x) {
        const std::int64_t sx = cols[static_cast<std::size_t>(x)];
        row[x] = sx < 0 ? fv : srow[sx];
      }
    }
  }
  return out;
}

/// Mirrors the width (F.hflip) or the height (F.vflip).
template <class T>
[[nodiscard]] Tensor<T> image_flip(const Tensor<T>& img, bool horizontal) {
  const auto [C, H, W] = detail::image_dims(img, horizontal ? "hflip" : "vflip");
  Tensor<T> out = Tensor<T>::empty({C, H, W});
  const T* src = img.data();
  T* dst = out.data();
  for (std::int64_t c = 0; c < C; ++c)
    for (std::int64_t y = 0; y < H; ++y) {
      const T* srow = src + (c * H + (horizontal ? y : H - 1 - y)) * W;
      T* row = dst + (c * H + y) * W;
      if (horizontal) std::reverse_copy(srow, srow + W, row);
      else std::copy_n(srow, W, row);
    }
  return out;
}

namespace detail {
// One axis of a bilinear resize: source indices i0, i1 and weights (l0, l1), PyTorch's
// compute_indices_weights_linear with align_corners=False.
struct LinearTap {
  std::int64_t i0, i1;
  float l0, l1;
};
[[nodiscard]] inline std::vector<LinearTap> linear_taps(std::int64_t in, std::int64_t out) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  std::vector<LinearTap> taps(static_cast<std::size_t>(out));
  for (std::int64_t d = 0; d < out; ++d) {
    const float src = std::max(scale * (static_cast<float>(d) + 0.5f) - 0.5f, 0.0f);
    const auto i0 = static_cast<std::int64_t>(src);
    const float l1 = std::min(std::max(src - static_cast<float>(i0), 0.0f), 1.0f);
    taps[static_cast<std::size_t>(d)] = {i0, i0 + (i0 < in - 1 ? 1 : 0), 1.0f - l1, l1};
  }
  return taps;
}
[[nodiscard]] inline std::int64_t nearest_source(std::int64_t d, std::int64_t in,
                                                 std::int64_t out) {
  if (in == out) return d;
  if (out == 2 * in) return d >> 1;
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  return std::min(static_cast<std::int64_t>(std::floor(static_cast<float>(d) * scale)), in - 1);
}
}  // namespace detail

/// Resizes to (h, w) by bilinear or nearest interpolation, antialias=False.
template <class T>
[[nodiscard]] Tensor<T> image_resize(const Tensor<T>& img, std::int64_t h, std::int64_t w,
                                     Interpolation mode) {
  const auto [C, H, W] = detail::image_dims(img, "Resize");
  EMBER_CHECK(h > 0 && w > 0, "Resize: the output size must be positive, got ", h, "x", w);
  Tensor<T> out = Tensor<T>::empty({C, h, w});
  const T* src = img.data();
  T* dst = out.data();
  if (mode == Interpolation::nearest) {
    std::vector<std::int64_t> cols(static_cast<std::size_t>(w));
    for (std::int64_t x = 0; x < w; ++x)
      cols[static_cast<std::size_t>(x)] = detail::nearest_source(x, W, w);
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t y = 0; y < h; ++y) {
        const T* srow = src + (c * H + detail::nearest_source(y, H, h)) * W;
        T* row = dst + (c * h + y) * w;
        for (std::int64_t x = 0; x < w; ++x) row[x] = srow[cols[static_cast<std::size_t>(x)]];
      }
    return out;
  }
  const auto ty = detail::linear_taps(H, h), tx = detail::linear_taps(W, w);
  for (std::int64_t c = 0; c < C; ++c)
    for (std::int64_t y = 0; y < h; ++y) {
      const detail::LinearTap& a = ty[static_cast<std::size_t>(y)];
      const T* r0 = src + (c * H + a.i0) * W;
      const T* r1 = src + (c * H + a.i1) * W;
      T* row = dst + (c * h + y) * w;
      for (std::int64_t x = 0; x < w; ++x) {
        const detail::LinearTap& b = tx[static_cast<std::size_t>(x)];
        const float top = static_cast<float>(r0[b.i0]) * b.l0 + static_cast<float>(r0[b.i1]) * b.l1;
        const float bot = static_cast<float>(r1[b.i0]) * b.l0 + static_cast<float>(r1[b.i1]) * b.l1;
        row[x] = detail::store_pixel<T>(top * a.l0 + bot * a.l1);
      }
    }
  return out;
}

/// torchvision's _get_inverse_affine_matrix (inverted=True): the matrix that maps an output
/// pixel's centred coordinates to the source's, for a rotation by `angle` degrees, a
/// translation (tx, ty) in pixels, a scale and shears (degrees) about `center` (centred
/// coordinates: (0, 0) is the image's centre).
[[nodiscard]] inline std::array<double, 6> inverse_affine_matrix(
    std::array<double, 2> center, double angle, std::array<double, 2> translate, double scale,
    std::array<double, 2> shear) {
  constexpr double deg = 3.14159265358979323846 / 180.0;
  const double rot = angle * deg, sx = shear[0] * deg, sy = shear[1] * deg;
  const double cx = center[0], cy = center[1], tx = translate[0], ty = translate[1];
  const double a = std::cos(rot - sy) / std::cos(sy);
  const double b = -std::cos(rot - sy) * std::tan(sx) / std::cos(sy) - std::sin(rot);
  const double c = std::sin(rot - sy) / std::cos(sy);
  const double d = -std::sin(rot - sy) * std::tan(sx) / std::cos(sy) + std::cos(rot);
  std::array<double, 6> m = {d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0};
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
  m[2] += cx;
  m[5] += cy;
  return m;
}

/// Warps img by the inverse matrix m (see the top of this file); the output has img's size.
template <class T>
[[nodiscard]] Tensor<T> image_affine(const Tensor<T>& img, const std::array<double, 6>& m,
                                     Interpolation mode, double fill) {
  const auto [C, H, W] = detail::image_dims(img, "affine");
  Tensor<T> out = Tensor<T>::empty({C, H, W});
  const T* src = img.data();
  T* dst = out.data();
  // torchvision's grid, in float: theta / (W / 2, H / 2), applied to the centred coordinates,
  // then grid_sample's unnormalisation ((g + 1) * size - 1) / 2.
  const float hw = 0.5f * static_cast<float>(W), hh = 0.5f * static_cast<float>(H);
  const float t00 = static_cast<float>(m[0]) / hw, t01 = static_cast<float>(m[1]) / hw,
              t02 = static_cast<float>(m[2]) / hw;
  const float t10 = static_cast<float>(m[3]) / hh, t11 = static_cast<float>(m[4]) / hh,
              t12 = static_cast<float>(m[5]) / hh;
  const float fill_f = static_cast<float>(fill);
  const auto Wf = static_cast<float>(W), Hf = static_cast<float>(H);
  for (std::int64_t y = 0; y < H; ++y) {
    const float by = static_cast<float>(y) + 0.5f - hh;
    for (std::int64_t x = 0; x < W; ++x) {
      const float bx = static_cast<float>(x) + 0.5f - hw;
      const float gx = bx * t00 + by * t01 + t02;
      const float gy = bx * t10 + by * t11 + t12;
      const float ix = ((gx + 1.0f) * Wf - 1.0f) / 2.0f;
      const float iy = ((gy + 1.0f) * Hf - 1.0f) / 2.0f;
      if (mode == Interpolation::nearest) {
        const auto sx = static_cast<std::int64_t>(std::nearbyint(ix));
        const auto sy = static_cast<std::int64_t>(std::nearbyint(iy));
        const bool in = std::isfinite(ix) && std::isfinite(iy) && sx >= 0 && sx < W && sy >= 0 &&
                        sy < H;
        for (std::int64_t c = 0; c < C; ++c)
          dst[(c * H + y) * W + x] =
              in ? src[(c * H + sy) * W + sx] : detail::store_pixel<T>(fill_f);
        continue;
      }
      const float fx0 = std::floor(ix), fy0 = std::floor(iy);
      const auto x0 = static_cast<std::int64_t>(fx0), y0 = static_cast<std::int64_t>(fy0);
      const float wx0 = (fx0 + 1.0f) - ix, wx1 = ix - fx0;
      const float wy0 = (fy0 + 1.0f) - iy, wy1 = iy - fy0;
      const std::int64_t xs[2] = {x0, x0 + 1}, ys[2] = {y0, y0 + 1};
      const float wxs[2] = {wx0, wx1}, wys[2] = {wy0, wy1};
      float mask = 0;
      for (int j = 0; j < 2; ++j)
        for (int i = 0; i < 2; ++i)
          if (xs[i] >= 0 && xs[i] < W && ys[j] >= 0 && ys[j] < H) mask += wxs[i] * wys[j];
      for (std::int64_t c = 0; c < C; ++c) {
        float v = 0;
        for (int j = 0; j < 2; ++j)
          for (int i = 0; i < 2; ++i)
            if (xs[i] >= 0 && xs[i] < W && ys[j] >= 0 && ys[j] < H)
              v += static_cast<float>(src[(c * H + ys[j]) * W + xs[i]]) * (wxs[i] * wys[j]);
        dst[(c * H + y) * W + x] = detail::store_pixel<T>(v * mask + (1.0f - mask) * fill_f);
      }
    }
  }
  return out;
}

}  // namespace ember::data
