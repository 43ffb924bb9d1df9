#pragma once
// CPU log_softmax over the middle axis of (outer, size, inner), contiguous, threaded over the
// outer * inner rows (kernels/softmax.cuh takes inner == 1, the rows of (rows, cols)):
//   forward   m = max, lse = m + log(sum exp(double(x - m))) (the sum in double), y = x - lse
//   backward  gx = g - exp(double(y)) * sum(g), the sum in double (LogSoftmaxBackward0)
// Each row is computed by one thread in index order, so the result does not depend on the
// number of threads.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "ember/core/parallel.hpp"

namespace ember::cpu {

template <class T>
void log_softmax_forward(const T* x, T* y, std::int64_t outer, std::int64_t size, std::int64_t inner) {
  parallel_for(0, outer * inner, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(size, 1)),
               [=](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      const std::int64_t o = r / inner, i = r - o * inner;
      const T* row = x + o * size * inner + i;
      T* out = y + o * size * inner + i;
      T m = -std::numeric_limits<T>::infinity();
      for (std::int64_t s = 0; s < size; ++s) m = std::max(m, row[s * inner]);
      double acc = 0;
      for (std::int64_t s = 0; s < size; ++s) acc += std::exp(double(row[s * inner] - m));
      const T lse = m + static_cast<T>(std::log(acc));
      for (std::int64_t s = 0; s < size; ++s) out[s * inner] = row[s * inner] - lse;
    }
  });
}

template <class T>
void log_softmax_backward(const T* g, const T* y, T* gx, std::int64_t outer, std::int64_t size,
                          std::int64_t inner) {
  parallel_for(0, outer * inner, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(size, 1)),
               [=](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      const std::int64_t o = r / inner, i = r - o * inner;
      const std::int64_t base = o * size * inner + i;
      double gs = 0;
      for (std::int64_t s = 0; s < size; ++s) gs += g[base + s * inner];
      for (std::int64_t s = 0; s < size; ++s) {
        const std::int64_t k = base + s * inner;
        gx[k] = g[k] - static_cast<T>(std::exp(double(y[k])) * gs);
      }
    }
  });
}

}  // namespace ember::cpu
