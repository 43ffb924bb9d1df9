#pragma once
// CPU max pooling over (N*C) planes, threaded. The forward pass records, for every output,
// the flat index (h * W + w) of the input element that won, which the backward pass uses.

#include <cstdint>
#include <limits>

#include "ember/core/parallel.hpp"

namespace ember {

struct MaxPool2dParams {
  std::int64_t planes = 0, h = 0, w = 0;  // input (N*C, H, W)
  std::int64_t kernel = 2, stride = 2, padding = 0;
  [[nodiscard]] std::int64_t p() const { return (h + 2 * padding - kernel) / stride + 1; }
  [[nodiscard]] std::int64_t q() const { return (w + 2 * padding - kernel) / stride + 1; }
};

namespace cpu {

// y (planes, P, Q), argmax (planes, P, Q) <- x (planes, H, W)
template <class T>
void max_pool2d_forward(const MaxPool2dParams& p, const T* x, T* y, std::int32_t* argmax) {
  const std::int64_t P = p.p(), Q = p.q();
  parallel_for(0, p.planes, 8, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t pl = lo; pl < hi; ++pl) {
      const T* xp = x + pl * p.h * p.w;
      for (std::int64_t oh = 0; oh < P; ++oh)
        for (std::int64_t ow = 0; ow < Q; ++ow) {
          T best = -std::numeric_limits<T>::infinity();
          std::int64_t best_i = -1;
          for (std::int64_t i = 0; i < p.kernel; ++i) {
            const std::int64_t ih = oh * p.stride - p.padding + i;
            if (ih < 0 || ih >= p.h) continue;
            for (std::int64_t j = 0; j < p.kernel; ++j) {
              const std::int64_t iw = ow * p.stride - p.padding + j;
              if (iw < 0 || iw >= p.w) continue;
              const T v = xp[ih * p.w + iw];
              if (v > best || best_i < 0 || v != v) {  // NaN propagates, as in PyTorch
                best = v;
                best_i = ih * p.w + iw;
                if (v != v) break;
              }
            }
          }
          const std::int64_t o = (pl * P + oh) * Q + ow;
          y[o] = best;
          argmax[o] = static_cast<std::int32_t>(best_i);
        }
    }
  });
}

// gx (planes, H, W) = scatter of gy by argmax (gx is overwritten)
template <class T>
void max_pool2d_backward(const MaxPool2dParams& p, const T* gy, const std::int32_t* argmax,
                         T* gx) {
  const std::int64_t PQ = p.p() * p.q(), HW = p.h * p.w;
  parallel_for(0, p.planes, 8, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t pl = lo; pl < hi; ++pl) {
      T* gp = gx + pl * HW;
      for (std::int64_t i = 0; i < HW; ++i) gp[i] = T(0);
      for (std::int64_t o = 0; o < PQ; ++o) gp[argmax[pl * PQ + o]] += gy[pl * PQ + o];
    }
  });
}

}  // namespace cpu
}  // namespace ember
