#pragma once
// CPU Adam/AdamW step over `count` float parameters, each parameter's elements spread over the
// thread pool, element for element torch.optim.Adam's single-tensor loop (PyTorch 2.15) on
// float32 tensors, in its order of operations:
//   g = maximize ? -grad : grad
//   p = p * decay_factor                          (AdamW: 1 - lr * weight_decay)
//   g = g + weight_decay * p                      (Adam's L2 weight decay)
//   m = lerp(m, g, 1 - beta1)                     torch.lerp: m + w (g - m) for w < 0.5,
//                                                 else g - (g - m)(1 - w)
//   v = v * beta2 + ((1 - beta2) * g) * g
//   vmax = max(vmax, v)                           (amsgrad; NaN wins, as torch.maximum)
//   denom = sqrt(amsgrad ? vmax : v) / bias_correction2_sqrt + eps
//   p = p + (neg_step_size * m) / denom
// Every element is updated on its own, so the result does not depend on the number of threads.

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ember/backend/optim_params.hpp"
#include "ember/core/parallel.hpp"

namespace ember::cpu {

// torch.lerp's formula for a scalar weight (ATen's lerp in Lerp.h).
inline float lerp_torch(float self, float end, float w) {
  return std::abs(w) < 0.5f ? self + w * (end - self) : end - (end - self) * (1.0f - w);
}
// torch.maximum: NaN if either is NaN.
inline float maximum_torch(float a, float b) {
  return (std::isnan(a) || std::isnan(b)) ? a + b : (a > b ? a : b);
}

// (A template so that the op table can name it per element type; Adam steps float parameters.)
template <class T>
void adam_step(const backend::AdamTensorRef* tensors, int count, backend::AdamStepArgs a) {
  static_assert(std::is_same_v<T, float>, "Adam steps float parameters");
  for (int k = 0; k < count; ++k) {
    const backend::AdamTensorRef t = tensors[k];
    parallel_for(0, t.n, 1 << 15, [=](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i) {
        float p = t.param[i];
        float g = a.maximize ? -t.grad[i] : t.grad[i];
        if (a.decay_factor != 1.0f) p = p * a.decay_factor;
        if (a.weight_decay != 0.0f) g = g + a.weight_decay * p;
        const float m = lerp_torch(t.exp_avg[i], g, a.one_minus_beta1);
        const float v = t.exp_avg_sq[i] * a.beta2 + a.one_minus_beta2 * g * g;
        t.exp_avg[i] = m;
        t.exp_avg_sq[i] = v;
        float vhat = v;
        if (a.amsgrad) {
          vhat = maximum_torch(t.max_exp_avg_sq[i], v);
          t.max_exp_avg_sq[i] = vhat;
        }
        const float denom = std::sqrt(vhat) / t.bias_correction2_sqrt + a.eps;
        t.param[i] = p + t.neg_step_size * m / denom;
      }
    });
  }
}

}  // namespace ember::cpu
