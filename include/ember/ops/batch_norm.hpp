#pragma once
// batch_norm, PyTorch's F.batch_norm: x (N, C), (N, C, L) or (N, C, H, W); per-channel
// statistics over every dimension but C. Forward and backward on both devices.

#include <cmath>
#include <cstdint>
#include <vector>

#include "ember/autograd/grad_mode.hpp"
#include "ember/backend/cpu/batch_norm.hpp"
#include "ember/backend/dispatch.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"

namespace ember {

namespace op {
struct BatchNormForward {
  static constexpr const char* name = "batch_norm";
  template <class T>
  static constexpr auto cpu = &ember::cpu::batch_norm_forward<T>;
};
struct BatchNormBackward {
  static constexpr const char* name = "batch_norm backward";
  template <class T>
  static constexpr auto cpu = &ember::cpu::batch_norm_backward<T>;
};
}  // namespace op

/// training: normalize with the batch's statistics and, where running_mean / running_var are
/// given, update them in place: running = (1 - momentum) * running + momentum * batch, with the
/// unbiased batch variance. Otherwise normalize with running_mean / running_var (required).
/// weight and bias (C) may be undefined: 1 and 0.
template <Real T>
Tensor<T> batch_norm(const Tensor<T>& x, const Tensor<T>& running_mean, const Tensor<T>& running_var,
                     const Tensor<T>& weight = {}, const Tensor<T>& bias = {}, bool training = false,
                     double momentum = 0.1, double eps = 1e-5) {
  EMBER_CHECK(x.dim() >= 2 && x.dim() <= 5, "batch_norm: input must be (N, C, ...) with 2 to 5 dimensions, got ",
              shape_str(x.shape()));
  const std::int64_t c = x.size(1);
  auto check_channel = [&](const Tensor<T>& t, const char* what) {
    if (!t.defined()) return;
    EMBER_CHECK(t.dim() == 1 && t.size(0) == c, "batch_norm: ", what, " ", shape_str(t.shape()),
                " does not match the input's ", c, " channels (input ", shape_str(x.shape()), ")");
    detail::check_same_device(x.device(), t.device());
  };
  check_channel(running_mean, "running_mean");
  check_channel(running_var, "running_var");
  check_channel(weight, "weight");
  check_channel(bias, "bias");
  EMBER_CHECK(running_mean.defined() == running_var.defined(),
              "batch_norm: running_mean and running_var must be given together");
  EMBER_CHECK(training || running_mean.defined(),
              "batch_norm: evaluation (training = false) needs running_mean and running_var");
  EMBER_CHECK(eps > 0 && std::isfinite(eps), "batch_norm: eps must be positive, got ", eps);
  BatchNormParams p{x.size(0), c, 1, eps, training};
  for (std::int64_t d = 2; d < x.dim(); ++d) p.s *= x.size(d);
  EMBER_CHECK(!training || p.per_channel() > 1, "batch_norm: expected more than 1 value per channel when training, got input ",
              shape_str(x.shape()));

  const Device dev = x.device();
  const Tensor<T> xc = x.contiguous();
  const Tensor<T> wc = weight.defined() ? weight.contiguous() : Tensor<T>();
  const Tensor<T> bc = bias.defined() ? bias.contiguous() : Tensor<T>();
  const Tensor<T> rm = running_mean.defined() ? running_mean.contiguous() : Tensor<T>();
  const Tensor<T> rv = running_var.defined() ? running_var.contiguous() : Tensor<T>();
  Tensor<T> y = Tensor<T>::empty(x.shape(), dev);
  Tensor<T> save_mean = Tensor<T>::empty({c}, dev), save_var = Tensor<T>::empty({c}, dev);
  auto ptr = [](const Tensor<T>& t) -> const T* { return t.defined() ? t.data() : nullptr; };
  backend::run<op::BatchNormForward, T>(dev, p, xc.data(), ptr(wc), ptr(bc), ptr(rm), ptr(rv), save_mean.data(),
                                        save_var.data(), y.data());

  if (training && running_mean.defined()) {
    NoGradGuard no_grad;
    const double m = momentum;
    const double unbias = static_cast<double>(p.per_channel()) / static_cast<double>(p.per_channel() - 1);
    Tensor<T>(running_mean).copy_(add(mul_scalar(running_mean, static_cast<T>(1 - m)), mul_scalar(save_mean, static_cast<T>(m))));
    Tensor<T>(running_var)
        .copy_(add(mul_scalar(running_var, static_cast<T>(1 - m)), mul_scalar(save_var, static_cast<T>(m * unbias))));
  }

  std::vector<Tensor<T>> inputs{x};
  if (weight.defined()) inputs.push_back(weight);
  if (bias.defined()) inputs.push_back(bias);
  autograd::record(y, "NativeBatchNormBackward0", inputs, autograd::saved(x),
                   [p, dev, xc = xc.detach(), wc = wc.defined() ? wc.detach() : Tensor<T>(), save_mean, save_var,
                    has_w = weight.defined(), has_b = bias.defined(),
                    need_x = x.requires_grad()](const Tensor<T>& g) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> gx = need_x ? Tensor<T>::empty(xc.shape(), dev) : Tensor<T>();
    Tensor<T> gw = has_w ? Tensor<T>::empty({p.c}, dev) : Tensor<T>();
    Tensor<T> gb = has_b ? Tensor<T>::empty({p.c}, dev) : Tensor<T>();
    auto out = [](Tensor<T>& t) -> T* { return t.defined() ? t.data() : nullptr; };
    backend::run<op::BatchNormBackward, T>(dev, p, gc.data(), xc.data(), wc.defined() ? wc.data() : nullptr,
                                           save_mean.data(), save_var.data(), out(gx), out(gw), out(gb));
    std::vector<Tensor<T>> grads{gx};
    if (has_w) grads.push_back(gw);
    if (has_b) grads.push_back(gb);
    return grads;
  });
  return y;
}

}  // namespace ember
