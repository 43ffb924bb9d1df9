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
// Without amsgrad the loop runs on Eigen's packets (sqrt and division are IEEE's, as
// std::sqrt's), its options fixed at compile time; with amsgrad, element by element. No
// multiply-add is fused (EMBER_FP_CONTRACT_OFF), so packets, the loop's tail and the scalar loop
// give the same bits.

#include "ember/core/simd.hpp"  // first: <immintrin.h> before Eigen includes it (see there)

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ember/backend/cpu/flags.hpp"
#include "ember/backend/optim_params.hpp"
#include "ember/core/macros.hpp"
#include "ember/core/parallel.hpp"

EMBER_FP_CONTRACT_OFF

namespace ember::cpu {

// torch.lerp's formula for a scalar weight (ATen's lerp in Lerp.h).
inline float lerp_torch(float self, float end, float w) {
  return std::abs(w) < 0.5f ? self + w * (end - self) : end - (end - self) * (1.0f - w);
}
// torch.maximum: NaN if either is NaN.
inline float maximum_torch(float a, float b) {
  return (std::isnan(a) || std::isnan(b)) ? a + b : (a > b ? a : b);
}

namespace adam_detail {

// One element, as the header's rule (the packet loop's tail and the amsgrad loop).
template <bool kAmsgrad>
inline void update_one(const backend::AdamTensorRef& t, const backend::AdamStepArgs& a,
                       std::int64_t i) {
  float p = t.param[i];
  float g = a.maximize ? -t.grad[i] : t.grad[i];
  if (a.decay_factor != 1.0f) p = p * a.decay_factor;
  if (a.weight_decay != 0.0f) g = g + a.weight_decay * p;
  const float m = lerp_torch(t.exp_avg[i], g, a.one_minus_beta1);
  const float v = t.exp_avg_sq[i] * a.beta2 + (a.one_minus_beta2 * g) * g;
  t.exp_avg[i] = m;
  t.exp_avg_sq[i] = v;
  float vhat = v;
  if constexpr (kAmsgrad) {
    vhat = maximum_torch(t.max_exp_avg_sq[i], v);
    t.max_exp_avg_sq[i] = vhat;
  }
  const float denom = std::sqrt(vhat) / t.bias_correction2_sqrt + a.eps;
  t.param[i] = p + (t.neg_step_size * m) / denom;
}

// Elements [lo, hi) without amsgrad: whole packets, then the tail element by element.
template <bool kMaximize, bool kDecayFactor, bool kL2, bool kLerpLow>
void update_packets(const backend::AdamTensorRef& t, const backend::AdamStepArgs& a,
                    std::int64_t lo, std::int64_t hi) {
  namespace ei = Eigen::internal;
  using P = ei::packet_traits<float>::type;
  constexpr std::int64_t kWidth = static_cast<std::int64_t>(sizeof(P) / sizeof(float));
  const P decay = ei::pset1<P>(a.decay_factor), wd = ei::pset1<P>(a.weight_decay);
  const P w = ei::pset1<P>(a.one_minus_beta1), one_minus_w = ei::pset1<P>(1.0f - a.one_minus_beta1);
  const P beta2 = ei::pset1<P>(a.beta2), one_minus_beta2 = ei::pset1<P>(a.one_minus_beta2);
  const P bc2 = ei::pset1<P>(t.bias_correction2_sqrt), eps = ei::pset1<P>(a.eps);
  const P step = ei::pset1<P>(t.neg_step_size);
  std::int64_t i = lo;
  for (; i + kWidth <= hi; i += kWidth) {
    P p = ei::ploadu<P>(t.param + i);
    P g = ei::ploadu<P>(t.grad + i);
    if constexpr (kMaximize) g = ei::pnegate(g);
    if constexpr (kDecayFactor) p = ei::pmul(p, decay);
    if constexpr (kL2) g = ei::padd(g, ei::pmul(wd, p));
    const P m0 = ei::ploadu<P>(t.exp_avg + i);
    const P d = ei::psub(g, m0);
    const P m = kLerpLow ? ei::padd(m0, ei::pmul(w, d)) : ei::psub(g, ei::pmul(d, one_minus_w));
    const P v = ei::padd(ei::pmul(ei::ploadu<P>(t.exp_avg_sq + i), beta2),
                         ei::pmul(ei::pmul(one_minus_beta2, g), g));
    ei::pstoreu(t.exp_avg + i, m);
    ei::pstoreu(t.exp_avg_sq + i, v);
    const P denom = ei::padd(ei::pdiv(ei::psqrt(v), bc2), eps);
    ei::pstoreu(t.param + i, ei::padd(p, ei::pdiv(ei::pmul(step, m), denom)));
  }
  for (; i < hi; ++i) update_one<false>(t, a, i);
}

}  // namespace adam_detail

// (A template so that the op table can name it per element type; Adam steps float parameters.)
template <class T>
void adam_step(const backend::AdamTensorRef* tensors, int count, backend::AdamStepArgs a) {
  static_assert(std::is_same_v<T, float>, "Adam steps float parameters");
  for (int k = 0; k < count; ++k) {
    const backend::AdamTensorRef t = tensors[k];
    if (a.amsgrad) {
      parallel_for(0, t.n, 1 << 15, [=](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i) adam_detail::update_one<true>(t, a, i);
      });
      continue;
    }
    with_flag(a.maximize, [&](auto maximize) {
      with_flag(a.decay_factor != 1.0f, [&](auto decay) {
        with_flag(a.weight_decay != 0.0f, [&](auto l2) {
          with_flag(std::abs(a.one_minus_beta1) < 0.5f, [&](auto lerp_low) {
            parallel_for(0, t.n, 1 << 15, [=](std::int64_t lo, std::int64_t hi) {
              adam_detail::update_packets<decltype(maximize)::value, decltype(decay)::value,
                                          decltype(l2)::value, decltype(lerp_low)::value>(
                  t, a, lo, hi);
            });
          });
        });
      });
    });
  }
}

}  // namespace ember::cpu

EMBER_FP_CONTRACT_RESTORE
