#pragma once
// max_pool2d, adaptive_max_pool2d, avg_pool2d and adaptive_avg_pool2d with PyTorch's options,
// forward and backward. Every window is a Pool2dParams one (backend/params.hpp).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ember/backend/dispatch.hpp"
#include "ember/backend/cpu/pool.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"

namespace ember {

namespace op {
struct MaxPool2dForward {
  static constexpr const char* name = "max_pool2d";
  template <class T>
  static constexpr auto cpu = &ember::cpu::max_pool2d_forward<T>;
};
struct MaxPool2dBackward {
  static constexpr const char* name = "max_pool2d backward";
  template <class T>
  static constexpr auto cpu = &ember::cpu::max_pool2d_backward<T>;
};
struct AvgPool2dForward {
  static constexpr const char* name = "avg_pool2d";
  template <class T>
  static constexpr auto cpu = &ember::cpu::avg_pool2d_forward<T>;
};
struct AvgPool2dBackward {
  static constexpr const char* name = "avg_pool2d backward";
  template <class T>
  static constexpr auto cpu = &ember::cpu::avg_pool2d_backward<T>;
};
}  // namespace op

/// A 2-D size: one value for both axes or {h, w}, as PyTorch's int-or-tuple arguments.
struct Size2 {
  /// Height and width.
  /// @{
  std::int64_t h = 0, w = 0;
  /// @}
  constexpr Size2() = default;
  /// v for both axes.
  constexpr Size2(std::int64_t v) : h(v), w(v) {}  // NOLINT(google-explicit-constructor): as PyTorch's int
  /// h_ for the height, w_ for the width.
  constexpr Size2(std::int64_t h_, std::int64_t w_) : h(h_), w(w_) {}
  friend constexpr bool operator==(const Size2&, const Size2&) = default;
};

/// PyTorch's printed form of an int-or-pair argument: "2", or "(2, 3)" when the two differ.
[[nodiscard]] inline std::string size2_repr(const Size2& s) {
  return s.h == s.w ? std::to_string(s.h)
                    : "(" + std::to_string(s.h) + ", " + std::to_string(s.w) + ")";
}

namespace detail {
// Max pooling of x (N, C, H, W) over the windows of p (planes, sizes and the window filled in,
// checked): the values (N, C, P, Q) and the int32 flat index h * W + w of each winner in its
// plane (-1 for a dilated window with no tap inside the input), recorded as `backward_name`.
template <Real T>
std::pair<Tensor<T>, Tensor<std::int32_t>> max_pool2d_with_argmax(const Tensor<T>& x,
                                                                  const Pool2dParams& p,
                                                                  const char* what,
                                                                  const char* backward_name) {
  EMBER_CHECK(p.h * p.w <= INT32_MAX, what, ": input ", shape_str(x.shape()), " has planes of ",
              p.h, " x ", p.w, " elements, more than the int32 indices hold");
  const Tensor<T> xc = x.contiguous();
  const Device dev = x.device();
  Tensor<T> y = Tensor<T>::empty({x.size(0), x.size(1), p.p(), p.q()}, dev);
  auto argmax = Tensor<std::int32_t>::empty(y.shape(), dev);
  if (y.numel() > 0) backend::run<op::MaxPool2dForward, T>(dev, p, xc.data(), y.data(), argmax.data());
  autograd::record(
      y, backward_name, {x}, [p, argmax, in_shape = x.shape(), dev](const Tensor<T>& g) {
        const Tensor<T> gc = g.contiguous();
        Tensor<T> gx = Tensor<T>::empty(in_shape, dev);
        if (gx.numel() > 0)
          backend::run<op::MaxPool2dBackward, T>(dev, p, gc.data(), argmax.data(), gx.data());
        return std::vector<Tensor<T>>{gx};
      });
  return {y, argmax};
}

template <Real T>
std::pair<Tensor<T>, Tensor<std::int32_t>> max_pool2d_with_argmax(const Tensor<T>& x, Size2 kernel,
                                                                  Size2 stride, Size2 padding,
                                                                  Size2 dilation, bool ceil_mode) {
  EMBER_CHECK(x.dim() == 3 || x.dim() == 4,
              "max_pool2d: input must be (N, C, H, W) or (C, H, W), got ", shape_str(x.shape()));
  if (x.dim() == 3) {
    auto [y, argmax] =
        max_pool2d_with_argmax(x.unsqueeze(0), kernel, stride, padding, dilation, ceil_mode);
    return {y.squeeze(0), argmax.squeeze(0)};
  }
  if (stride == Size2{}) stride = kernel;
  const Pool2dParams p{.planes = x.size(0) * x.size(1),
                       .h = x.size(2),
                       .w = x.size(3),
                       .kh = kernel.h,
                       .kw = kernel.w,
                       .sh = stride.h,
                       .sw = stride.w,
                       .ph = padding.h,
                       .pw = padding.w,
                       .dh = dilation.h,
                       .dw = dilation.w,
                       .ceil_mode = ceil_mode};
  p.check("max_pool2d");
  return max_pool2d_with_argmax(x, p, "max_pool2d", "MaxPool2DWithIndicesBackward0");
}

template <Real T>
std::pair<Tensor<T>, Tensor<std::int32_t>> adaptive_max_pool2d_with_argmax(const Tensor<T>& x,
                                                                           Size2 output_size) {
  EMBER_CHECK(x.dim() == 3 || x.dim() == 4,
              "adaptive_max_pool2d: input must be (N, C, H, W) or (C, H, W), got ",
              shape_str(x.shape()));
  if (x.dim() == 3) {
    auto [y, argmax] = adaptive_max_pool2d_with_argmax(x.unsqueeze(0), output_size);
    return {y.squeeze(0), argmax.squeeze(0)};
  }
  const Pool2dParams p{.planes = x.size(0) * x.size(1),
                       .h = x.size(2),
                       .w = x.size(3),
                       .out_h = output_size.h,
                       .out_w = output_size.w};
  p.check("adaptive_max_pool2d");
  return max_pool2d_with_argmax(x, p, "adaptive_max_pool2d", "AdaptiveMaxPool2DBackward0");
}
}  // namespace detail

/// Max pooling, PyTorch's F.max_pool2d: x (N, C, H, W) or (C, H, W) -> (..., P, Q); stride {}
/// (0) means stride = kernel; padding (-inf: it never wins) at most half the kernel; dilation
/// spaces the window's taps; ceil_mode rounds the output size up (a window may start in the
/// input's last rows/columns or the left padding, never in the padding beyond them). Each output
/// is its window's maximum: a NaN wins, and the gradient goes to the first of tied maxima (in
/// window order). A dilated window whose taps all miss the input gives -inf and no gradient.
template <Real T>
Tensor<T> max_pool2d(const Tensor<T>& x, Size2 kernel, Size2 stride = {}, Size2 padding = {0},
                     Size2 dilation = {1}, bool ceil_mode = false) {
  return detail::max_pool2d_with_argmax(x, kernel, stride, padding, dilation, ceil_mode).first;
}

/// F.max_pool2d(..., return_indices=True): the values and, for each, the flat index h * W + w of
/// the input that won within its (H, W) plane (-1 where a dilated window misses the input).
template <Real T>
std::pair<Tensor<T>, Tensor<std::int64_t>> max_pool2d_with_indices(const Tensor<T>& x, Size2 kernel,
                                                                   Size2 stride = {},
                                                                   Size2 padding = {0},
                                                                   Size2 dilation = {1},
                                                                   bool ceil_mode = false) {
  auto [y, argmax] =
      detail::max_pool2d_with_argmax(x, kernel, stride, padding, dilation, ceil_mode);
  return {y, argmax.template cast<std::int64_t>()};
}

/// PyTorch's F.adaptive_max_pool2d: x (N, C, H, W) or (C, H, W) -> (..., out.h, out.w); output
/// i of n over an axis of size s is the maximum over [floor(i s / n), ceil((i+1) s / n)), with
/// max_pool2d's NaN and tie rules.
template <Real T>
Tensor<T> adaptive_max_pool2d(const Tensor<T>& x, Size2 output_size) {
  return detail::adaptive_max_pool2d_with_argmax(x, output_size).first;
}

/// F.adaptive_max_pool2d(..., return_indices=True): the values and the flat index h * W + w of
/// each winner within its (H, W) plane.
template <Real T>
std::pair<Tensor<T>, Tensor<std::int64_t>> adaptive_max_pool2d_with_indices(const Tensor<T>& x,
                                                                            Size2 output_size) {
  auto [y, argmax] = detail::adaptive_max_pool2d_with_argmax(x, output_size);
  return {y, argmax.template cast<std::int64_t>()};
}

/// Average pooling, PyTorch's F.avg_pool2d: x (N, C, H, W) or (C, H, W); stride {} (0) means
/// stride = kernel; padding at most half the kernel; ceil_mode rounds the output size up (a
/// window may start in the input's last rows/columns, never in the padding beyond them);
/// count_include_pad divides by the window clipped to the padded input, else by the number of
/// input elements it covers.
template <Real T>
Tensor<T> avg_pool2d(const Tensor<T>& x, Size2 kernel, Size2 stride = {}, Size2 padding = {0},
                     bool ceil_mode = false, bool count_include_pad = true) {
  EMBER_CHECK(x.dim() == 3 || x.dim() == 4, "avg_pool2d: input must be (N, C, H, W) or (C, H, W), got ",
              shape_str(x.shape()));
  if (x.dim() == 3) {
    return avg_pool2d(x.unsqueeze(0), kernel, stride, padding, ceil_mode, count_include_pad).squeeze(0);
  }
  if (stride == Size2{}) stride = kernel;
  Pool2dParams p{.planes = x.size(0) * x.size(1),
                 .h = x.size(2),
                 .w = x.size(3),
                 .kh = kernel.h,
                 .kw = kernel.w,
                 .sh = stride.h,
                 .sw = stride.w,
                 .ph = padding.h,
                 .pw = padding.w,
                 .ceil_mode = ceil_mode,
                 .count_include_pad = count_include_pad};
  p.check("avg_pool2d");
  const Tensor<T> xc = x.contiguous();
  const Device dev = x.device();
  Tensor<T> y = Tensor<T>::empty({x.size(0), x.size(1), p.p(), p.q()}, dev);
  if (y.numel() > 0) backend::run<op::AvgPool2dForward, T>(dev, p, xc.data(), y.data());
  autograd::record(y, "AvgPool2DBackward0", {x}, [p, in_shape = x.shape(), dev](const Tensor<T>& g) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> gx = Tensor<T>::empty(in_shape, dev);
    if (gx.numel() > 0) backend::run<op::AvgPool2dBackward, T>(dev, p, gc.data(), gx.data());
    return std::vector<Tensor<T>>{gx};
  });
  return y;
}

/// PyTorch's F.adaptive_avg_pool2d: x (N, C, H, W) or (C, H, W) -> (..., out.h, out.w); output
/// i of n over an axis of size s averages [floor(i s / n), ceil((i+1) s / n)). Output {1, 1}
/// is global average pooling.
template <Real T>
Tensor<T> adaptive_avg_pool2d(const Tensor<T>& x, Size2 output_size) {
  EMBER_CHECK(x.dim() == 3 || x.dim() == 4, "adaptive_avg_pool2d: input must be (N, C, H, W) or (C, H, W), got ",
              shape_str(x.shape()));
  if (x.dim() == 3) return adaptive_avg_pool2d(x.unsqueeze(0), output_size).squeeze(0);
  Pool2dParams p{.planes = x.size(0) * x.size(1), .h = x.size(2), .w = x.size(3), .out_h = output_size.h,
                 .out_w = output_size.w};
  p.check("adaptive_avg_pool2d");
  const Tensor<T> xc = x.contiguous();
  const Device dev = x.device();
  Tensor<T> y = Tensor<T>::empty({x.size(0), x.size(1), p.p(), p.q()}, dev);
  if (y.numel() > 0) backend::run<op::AvgPool2dForward, T>(dev, p, xc.data(), y.data());
  autograd::record(y, "AdaptiveAvgPool2DBackward0", {x}, [p, in_shape = x.shape(), dev](const Tensor<T>& g) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> gx = Tensor<T>::empty(in_shape, dev);
    if (gx.numel() > 0) backend::run<op::AvgPool2dBackward, T>(dev, p, gc.data(), gx.data());
    return std::vector<Tensor<T>>{gx};
  });
  return y;
}

}  // namespace ember
