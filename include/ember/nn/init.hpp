#pragma once
// PyTorch's default initialisation: kaiming_uniform_(a = sqrt(5)) for weights, which is
// uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for biases.

#include <cmath>
#include <cstdint>

#include "ember/autograd/grad_mode.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"

namespace ember::nn::init {

/// fan_in of a weight (out, in, *kernel): in * prod(kernel).
template <Real T>
std::int64_t fan_in(const ember::Tensor<T>& w) {
  EMBER_CHECK(w.dim() >= 2, "fan_in needs a tensor of rank >= 2, got ", shape_str(w.shape()));
  return w.numel() / w.size(0);
}

/// Fills t with values uniform in [low, high) from `gen`, without recording autograd
/// (torch.nn.init.uniform_).
template <Real T>
void uniform_(ember::Tensor<T>& t, double low, double high, Generator& gen = default_generator()) {
  NoGradGuard guard;
  t.copy_(ember::Tensor<T>::uniform(t.shape(), low, high, gen));
}

/// gain = sqrt(2 / (1 + a^2)), bound = gain * sqrt(3 / fan_in)
template <Real T>
void kaiming_uniform_(ember::Tensor<T>& w, double a = 0.0, Generator& gen = default_generator()) {
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  const double bound = gain * std::sqrt(3.0 / static_cast<double>(fan_in(w)));
  uniform_(w, -bound, bound, gen);
}

}  // namespace ember::nn::init
