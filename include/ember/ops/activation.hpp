#pragma once
// relu and log_softmax, forward and backward; sigmoid, tanh, gelu, leaky_relu, elu, silu and
// softmax (PyTorch's), with their CPU kernels in backend/cpu/activation.hpp (softmax and
// log_softmax: backend/cpu/softmax.hpp).

#include <cstdint>
#include <string_view>
#include <vector>

#include "ember/backend/cpu/activation.hpp"
#include "ember/backend/cpu/softmax.hpp"
#include "ember/backend/dispatch.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/reduce.hpp"

namespace ember {

namespace op {
/// gx = gy where y > 0, else 0
struct ReluBackward {
  static constexpr const char* name = "relu backward";
  template <class T>
  static constexpr auto cpu = &ember::cpu::relu_backward<T>;
};
/// The middle axis of (outer, size, inner), contiguous; the CUDA kernels take inner == 1 only.
struct LogSoftmaxForward {
  static constexpr const char* name = "log_softmax";
  template <class T>
  static constexpr auto cpu = &ember::cpu::log_softmax_forward<T>;
};
struct LogSoftmaxBackward {
  static constexpr const char* name = "log_softmax backward";
  template <class T>
  static constexpr auto cpu = &ember::cpu::log_softmax_backward<T>;
};
}  // namespace op

/// max(x, 0) elementwise (F.relu).
template <Real T>
Tensor<T> relu(const Tensor<T>& x) {
  Tensor<T> y = detail::unary_map(x, backend::UnaryOp::relu, T(0));
  // d relu / dx = 1 where the output is positive.
  autograd::record(y, "ReluBackward0", {x}, autograd::saved(y),
                   [y = y.detach()](const Tensor<T>& g) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> gx = Tensor<T>::empty(y.shape(), y.device());
    if (y.numel() > 0) backend::run<op::ReluBackward, T>(y.device(), gc.data(), y.data(), gx.data(), y.numel());
    return std::vector<Tensor<T>>{gx};
  });
  return y;
}

/// log_softmax along `dim`: y = x - max - log(sum(exp(x - max))); dx = g - softmax * sum(g).
template <Real T>
Tensor<T> log_softmax(const Tensor<T>& x, std::int64_t dim) {
  const std::int64_t d = wrap_dim(dim, x.dim());
  const auto sp = detail::split_at(x.shape(), d);
  const Device dev = x.device();
  // The CUDA kernels work on rows: another dimension is moved last and back (autograd follows).
  if (!dev.is_cpu() && sp.inner != 1) return log_softmax(x.transpose(d, -1), -1).transpose(d, -1);
  const Tensor<T> xc = x.contiguous();
  Tensor<T> y = Tensor<T>::empty(x.shape(), dev);
  if (y.numel() > 0)
    backend::run<op::LogSoftmaxForward, T>(dev, xc.data(), y.data(), sp.outer, sp.size, sp.inner);
  autograd::record(y, "LogSoftmaxBackward0", {x}, autograd::saved(y),
                   [y = y.detach(), sp, dev](const Tensor<T>& g) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> gx = Tensor<T>::empty(y.shape(), dev);
    if (gx.numel() > 0)
      backend::run<op::LogSoftmaxBackward, T>(dev, gc.data(), y.data(), gx.data(), sp.outer, sp.size, sp.inner);
    return std::vector<Tensor<T>>{gx};
  });
  return y;
}

namespace op {
/// y = f(x) over n contiguous elements for an ActivationKind f (a: slope or alpha).
struct ActivationForward {
  static constexpr const char* name = "activation (sigmoid, tanh, gelu, leaky_relu, elu, silu)";
  template <class T>
  static constexpr auto cpu = &ember::cpu::activation_forward<T>;
};
/// gx = f'(s) * g, s the saved output (sigmoid, tanh) or input (the others).
struct ActivationBackward {
  static constexpr const char* name = "activation backward (sigmoid, tanh, gelu, leaky_relu, elu, silu)";
  template <class T>
  static constexpr auto cpu = &ember::cpu::activation_backward<T>;
};
/// The middle axis of (outer, size, inner), contiguous; the CUDA kernels take inner == 1 only.
struct SoftmaxForward {
  static constexpr const char* name = "softmax";
  template <class T>
  static constexpr auto cpu = &ember::cpu::softmax_forward<T>;
};
struct SoftmaxBackward {
  static constexpr const char* name = "softmax backward";
  template <class T>
  static constexpr auto cpu = &ember::cpu::softmax_backward<T>;
};
}  // namespace op

namespace detail {
// y = f(x) elementwise and its backward node `node` (PyTorch's name).
template <Real T>
Tensor<T> activation(const Tensor<T>& x, ActivationKind kind, double param, const char* node) {
  const Tensor<T> xc = x.contiguous();
  const Device dev = x.device();
  const T a = static_cast<T>(param);
  Tensor<T> y = Tensor<T>::empty(x.shape(), dev);
  if (y.numel() > 0) backend::run<op::ActivationForward, T>(dev, kind, a, xc.data(), y.data(), y.numel());
  const bool from_output = activation_saves_output(kind);
  autograd::record(y, node, {x}, from_output ? autograd::saved(y) : autograd::saved(x),
                   [s = from_output ? y.detach() : xc.detach(), kind, a, dev](const Tensor<T>& g) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> gx = Tensor<T>::empty(s.shape(), dev);
    if (gx.numel() > 0)
      backend::run<op::ActivationBackward, T>(dev, kind, a, gc.data(), s.data(), gx.data(), gx.numel());
    return std::vector<Tensor<T>>{gx};
  });
  return y;
}
}  // namespace detail

/// 1 / (1 + exp(-x))
template <Real T>
Tensor<T> sigmoid(const Tensor<T>& x) {
  return detail::activation(x, ActivationKind::sigmoid, 0.0, "SigmoidBackward0");
}

/// tanh elementwise (torch.tanh).
template <Real T>
Tensor<T> tanh(const Tensor<T>& x) {
  return detail::activation(x, ActivationKind::tanh, 0.0, "TanhBackward0");
}

/// x * Phi(x): approximate "none" (the erf form) or "tanh"
/// (0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))), as F.gelu.
template <Real T>
Tensor<T> gelu(const Tensor<T>& x, std::string_view approximate = "none") {
  EMBER_CHECK(approximate == "none" || approximate == "tanh",
              "gelu: approximate must be 'none' or 'tanh', got '", approximate, "'");
  return detail::activation(x, approximate == "none" ? ActivationKind::gelu : ActivationKind::gelu_tanh, 0.0,
                            "GeluBackward0");
}

/// x > 0 ? x : negative_slope * x
template <Real T>
Tensor<T> leaky_relu(const Tensor<T>& x, double negative_slope = 0.01) {
  return detail::activation(x, ActivationKind::leaky_relu, negative_slope, "LeakyReluBackward0");
}

/// x > 0 ? x : alpha * (exp(x) - 1)
template <Real T>
Tensor<T> elu(const Tensor<T>& x, double alpha = 1.0) {
  return detail::activation(x, ActivationKind::elu, alpha, "EluBackward0");
}

/// x * sigmoid(x)
template <Real T>
Tensor<T> silu(const Tensor<T>& x) {
  return detail::activation(x, ActivationKind::silu, 0.0, "SiluBackward0");
}

/// softmax along `dim`: exp(x - max) / sum(exp(x - max)), the sum in double.
template <Real T>
Tensor<T> softmax(const Tensor<T>& x, std::int64_t dim) {
  const std::int64_t d = wrap_dim(dim, x.dim());
  const auto sp = detail::split_at(x.shape(), d);
  const Device dev = x.device();
  // The CUDA kernels work on rows: another dimension is moved last and back (autograd follows).
  if (!dev.is_cpu() && sp.inner != 1) return softmax(x.transpose(d, -1), -1).transpose(d, -1);
  const Tensor<T> xc = x.contiguous();
  Tensor<T> y = Tensor<T>::empty(x.shape(), dev);
  if (y.numel() > 0) backend::run<op::SoftmaxForward, T>(dev, xc.data(), y.data(), sp.outer, sp.size, sp.inner);
  // dx = y * (g - sum(g * y)) along dim
  autograd::record(y, "SoftmaxBackward0", {x}, autograd::saved(y),
                   [y = y.detach(), sp, dev](const Tensor<T>& g) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> gx = Tensor<T>::empty(y.shape(), dev);
    if (gx.numel() > 0)
      backend::run<op::SoftmaxBackward, T>(dev, gc.data(), y.data(), gx.data(), sp.outer, sp.size, sp.inner);
    return std::vector<Tensor<T>>{gx};
  });
  return y;
}

}  // namespace ember
