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

#include "ember/backend/device_backend.hpp"
#include "ember/core/parallel.hpp"

namespace ember::cpu {

// (A template so that the op table can name it per element type; SGD steps float parameters.)
template <class T>
void sgd_step(const backend::SgdTensorRef* tensors, int count, backend::SgdStepArgs args) {
  static_assert(std::is_same_v<T, float>, "SGD steps float parameters");
  const float lr = args.lr, mom = args.momentum, damp = args.dampening_factor, wd = args.weight_decay;
  const bool first = args.first_step, nesterov = args.nesterov, maximize = args.maximize;
  for (int k = 0; k < count; ++k) {
    float* pp = tensors[k].param;
    const float* pg = tensors[k].grad;
    float* pb = tensors[k].momentum;
    parallel_for(0, tensors[k].n, 1 << 16, [=](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i) {
        float g = maximize ? -pg[i] : pg[i];
        if (wd != 0) g += wd * pp[i];
        if (pb != nullptr) {
          pb[i] = first ? g : mom * pb[i] + damp * g;
          g = nesterov ? g + mom * pb[i] : pb[i];
        }
        pp[i] -= lr * g;
      }
    });
  }
}

}  // namespace ember::cpu
