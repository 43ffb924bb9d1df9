#pragma once
// CPU SGD step over `count` float parameters (PyTorch's rule, as kernels/sgd.cuh), each
// parameter's elements spread over the thread pool:
//   g = (maximize ? -grad : grad) + weight_decay * p
//   buf = g (first step) or momentum * buf + (1 - dampening) * g   when momentum != 0
//   g = nesterov ? g + momentum * buf : buf
//   p -= lr * g
// Every element is updated on its own, so the result does not depend on the number of threads.

#include <cstdint>
#include <type_traits>

#include "ember/backend/cpu/flags.hpp"
#include "ember/backend/device_backend.hpp"
#include "ember/core/parallel.hpp"

namespace ember::cpu {

namespace sgd_detail {

// The update of elements [lo, hi) with the options fixed at compile time, so that the loop has
// no branches and vectorises (the pointers do not overlap: distinct tensors). `sign` is -1 for
// maximize (an exact negation, as -grad).
template <bool kDecay, bool kMomentum, bool kFirst, bool kNesterov>
void update(float* __restrict p, const float* __restrict grad, float* __restrict buf,
            std::int64_t lo, std::int64_t hi, float sign, float lr, float mom, float damp,
            float wd) {
  for (std::int64_t i = lo; i < hi; ++i) {
    float g = sign * grad[i];
    if constexpr (kDecay) g += wd * p[i];
    if constexpr (kMomentum) {
      const float b = kFirst ? g : mom * buf[i] + damp * g;
      buf[i] = b;
      g = kNesterov ? g + mom * b : b;
    }
    p[i] -= lr * g;
  }
}

}  // namespace sgd_detail

// (A template so that the op table can name it per element type; SGD steps float parameters.)
template <class T>
void sgd_step(const backend::SgdTensorRef* tensors, int count, backend::SgdStepArgs args) {
  static_assert(std::is_same_v<T, float>, "SGD steps float parameters");
  const float lr = args.lr, mom = args.momentum, damp = args.dampening_factor, wd = args.weight_decay;
  const float sign = args.maximize ? -1.0f : 1.0f;
  for (int k = 0; k < count; ++k) {
    float* pp = tensors[k].param;
    const float* pg = tensors[k].grad;
    float* pb = tensors[k].momentum;
    with_flag(wd != 0, [&](auto decay) {
      with_flag(pb != nullptr, [&](auto momentum) {
        with_flag(args.first_step, [&](auto first) {
          with_flag(args.nesterov, [&](auto nesterov) {
            parallel_for(0, tensors[k].n, 1 << 16, [=](std::int64_t lo, std::int64_t hi) {
              sgd_detail::update<decltype(decay)::value, decltype(momentum)::value,
                                 decltype(first)::value, decltype(nesterov)::value>(
                  pp, pg, pb, lo, hi, sign, lr, mom, damp, wd);
            });
          });
        });
      });
    });
  }
}

}  // namespace ember::cpu
