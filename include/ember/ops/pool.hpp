#pragma once
// max_pool2d (floor mode, dilation 1), forward and backward.

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
}  // namespace op

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

}  // namespace ember
