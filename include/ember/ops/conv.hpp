#pragma once
// conv2d: forward and backward side by side. The kernels are in backend/cpu/conv.hpp.

#include <cstdint>
#include <vector>

#include "ember/backend/dispatch.hpp"
#include "ember/backend/cpu/conv.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"

namespace ember {

namespace op {
struct Conv2dForward {
  static constexpr const char* name = "conv2d";
  template <class T>
  static constexpr auto cpu = &ember::cpu::conv2d_forward<T>;
};
/// Both gradients: gx (null: not wanted), gw and gb (each null when not wanted). The CPU computes
/// them in one pass (cpu::conv2d_backward); the CUDA backend in two kernels (input, weight).
struct Conv2dBackward {
  static constexpr const char* name = "conv2d backward";
  template <class T>
  static constexpr auto cpu = &ember::cpu::conv2d_backward<T>;
};
}  // namespace op

/// F.conv2d's stride, padding and dilation (the same for both axes).
struct Conv2dOptions {
  /// Stride, zero padding on each side, and dilation of the kernel.
  /// @{
  std::int64_t stride = 1, padding = 0, dilation = 1;
  /// @}
};

/// x (N, C, H, W), weight (K, C, R, S), bias (K) or undefined -> (N, K, P, Q)
template <Real T>
Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {},
                 Conv2dOptions o = {}) {
  EMBER_CHECK(x.dim() == 4, "conv2d: input must be (N, C, H, W), got ", shape_str(x.shape()));
  EMBER_CHECK(weight.dim() == 4, "conv2d: weight must be (K, C, R, S), got ",
              shape_str(weight.shape()));
  EMBER_CHECK(x.size(1) == weight.size(1), "conv2d: input ", shape_str(x.shape()), " has ",
              x.size(1), " channels but weight ", shape_str(weight.shape()), " expects ",
              weight.size(1));
  EMBER_CHECK(o.stride > 0 && o.dilation > 0 && o.padding >= 0,
              "conv2d: stride and dilation must be positive and padding non-negative");
  EMBER_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)),
              "conv2d: bias must have shape [", weight.size(0), "]");
  Conv2dParams p;
  p.n = x.size(0), p.c = x.size(1), p.h = x.size(2), p.w = x.size(3);
  p.k = weight.size(0), p.r = weight.size(2), p.s = weight.size(3);
  p.stride_h = p.stride_w = o.stride;
  p.pad_h = p.pad_w = o.padding;
  p.dil_h = p.dil_w = o.dilation;
  // Compare sizes directly: p() and q() truncate a negative quotient up to 0 when stride > 1.
  EMBER_CHECK(p.h + 2 * p.pad_h >= p.dil_h * (p.r - 1) + 1 &&
                  p.w + 2 * p.pad_w >= p.dil_w * (p.s - 1) + 1,
              "conv2d: input ", shape_str(x.shape()),
              " is smaller than the (dilated) kernel ", shape_str(weight.shape()));

  detail::check_same_device(x.device(), weight.device());
  if (bias.defined()) detail::check_same_device(x.device(), bias.device());
  const Device dev = x.device();
  const Tensor<T> xc = x.contiguous(), wc = weight.contiguous();
  const Tensor<T> bc = bias.defined() ? bias.contiguous() : Tensor<T>();
  Tensor<T> y = Tensor<T>::empty({p.n, p.k, p.p(), p.q()}, dev);
  if (y.numel() > 0 || dev.is_cpu())
    backend::run<op::Conv2dForward, T>(dev, p, xc.data(), wc.data(), bc.defined() ? bc.data() : nullptr,
                                       y.data());

  std::vector<Tensor<T>> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  autograd::record(y, "ConvolutionBackward0", inputs, autograd::saved(xc, wc),
                   [p, xc = xc.detach(), wc = wc.detach(), need_x = x.requires_grad(),
                    need_w = weight.requires_grad(), has_b = bias.defined(),
                    need_b = bias.requires_grad()](const Tensor<T>& g) {
                     const Tensor<T> gc = g.contiguous();
                     const Device dev = gc.device();
                     Tensor<T> gx = need_x ? Tensor<T>::empty(xc.shape(), dev) : Tensor<T>();
                     Tensor<T> gw = need_w ? Tensor<T>::empty(wc.shape(), dev) : Tensor<T>();
                     Tensor<T> gb = need_b ? Tensor<T>::empty({p.k}, dev) : Tensor<T>();
                     if (need_x || need_w || need_b)
                       backend::run<op::Conv2dBackward, T>(dev, p, xc.data(), wc.data(), gc.data(),
                                                           need_x ? gx.data() : nullptr,
                                                           need_w ? gw.data() : nullptr,
                                                           need_b ? gb.data() : nullptr);
                     std::vector<Tensor<T>> grads{gx, gw};
                     if (has_b) grads.push_back(gb);
                     return grads;
                   });
  return y;
}

}  // namespace ember
