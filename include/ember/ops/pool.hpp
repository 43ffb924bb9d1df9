#pragma once
// max_pool2d (floor mode, dilation 1), avg_pool2d (PyTorch's options) and adaptive_avg_pool2d,
// forward and backward.

#include <cstdint>
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

// A 2-D size: one value for both axes or {h, w}, as PyTorch's int-or-tuple arguments.
struct Size2 {
  std::int64_t h = 0, w = 0;
  constexpr Size2() = default;
  constexpr Size2(std::int64_t v) : h(v), w(v) {}  // NOLINT(google-explicit-constructor): as PyTorch's int
  constexpr Size2(std::int64_t h_, std::int64_t w_) : h(h_), w(w_) {}
  friend constexpr bool operator==(const Size2&, const Size2&) = default;
};

// x (N, C, H, W) -> (N, C, P, Q). stride 0 means stride = kernel, as in PyTorch.
template <Real T>
Tensor<T> max_pool2d(const Tensor<T>& x, std::int64_t kernel, std::int64_t stride = 0,
                     std::int64_t padding = 0) {
  if (stride == 0) stride = kernel;
  EMBER_CHECK(x.dim() == 4, "max_pool2d: input must be (N, C, H, W), got ", shape_str(x.shape()));
  EMBER_CHECK(kernel > 0 && stride > 0, "max_pool2d: kernel and stride must be positive");
  EMBER_CHECK(padding >= 0 && 2 * padding <= kernel, "max_pool2d: padding ", padding,
              " must be at most half the kernel size ", kernel);
  MaxPool2dParams p{x.size(0) * x.size(1), x.size(2), x.size(3), kernel, stride, padding};
  // Compare sizes directly: p() and q() truncate a negative quotient up to 0 when stride > 1.
  EMBER_CHECK(p.h + 2 * padding >= kernel && p.w + 2 * padding >= kernel,
              "max_pool2d: input ", shape_str(x.shape()),
              " is smaller than the kernel ", kernel);
  const Tensor<T> xc = x.contiguous();
  const Device dev = x.device();
  Tensor<T> y = Tensor<T>::empty({x.size(0), x.size(1), p.p(), p.q()}, dev);
  auto argmax = Tensor<std::int32_t>::empty(y.shape(), dev);
  if (y.numel() > 0) backend::run<op::MaxPool2dForward, T>(dev, p, xc.data(), y.data(), argmax.data());
  autograd::record(y, "MaxPool2DWithIndicesBackward0", {x},
                   [p, argmax, in_shape = x.shape(), dev](const Tensor<T>& g) {
                     const Tensor<T> gc = g.contiguous();
                     Tensor<T> gx = Tensor<T>::empty(in_shape, dev);
                     if (gx.numel() > 0)
                       backend::run<op::MaxPool2dBackward, T>(dev, p, gc.data(), argmax.data(), gx.data());
                     return std::vector<Tensor<T>>{gx};
                   });
  return y;
}

// Average pooling, PyTorch's F.avg_pool2d: x (N, C, H, W) or (C, H, W); stride {} (0) means
// stride = kernel; padding at most half the kernel; ceil_mode rounds the output size up (a
// window may start in the input's last rows/columns, never in the padding beyond them);
// count_include_pad divides by the window clipped to the padded input, else by the number of
// input elements it covers.
template <Real T>
Tensor<T> avg_pool2d(const Tensor<T>& x, Size2 kernel, Size2 stride = {}, Size2 padding = {0},
                     bool ceil_mode = false, bool count_include_pad = true) {
  EMBER_CHECK(x.dim() == 3 || x.dim() == 4, "avg_pool2d: input must be (N, C, H, W) or (C, H, W), got ",
              shape_str(x.shape()));
  if (x.dim() == 3) {
    return avg_pool2d(x.unsqueeze(0), kernel, stride, padding, ceil_mode, count_include_pad).squeeze(0);
  }
  if (stride == Size2{}) stride = kernel;
  Pool2dParams p{x.size(0) * x.size(1), x.size(2), x.size(3), kernel.h, kernel.w, stride.h, stride.w,
                 padding.h, padding.w, ceil_mode, count_include_pad};
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

// PyTorch's F.adaptive_avg_pool2d: x (N, C, H, W) or (C, H, W) -> (..., out.h, out.w); output
// i of n over an axis of size s averages [floor(i s / n), ceil((i+1) s / n)). Output {1, 1}
// is global average pooling.
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
