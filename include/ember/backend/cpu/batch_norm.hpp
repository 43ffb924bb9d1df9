#pragma once
// CPU batch normalization over x (n, c, s), threaded over channels; the loops of
// kernels/batch_norm.cuh in the same arithmetic: per-channel sums in double, and each element
// through y = x * scale + shift with scale = w / sqrt(var + eps) and shift = b - mean * scale
// worked out in double, so the two backends differ only by the order of the channel sums.

#include <cmath>
#include <cstdint>

#include "ember/backend/params.hpp"
#include "ember/core/parallel.hpp"

namespace ember::cpu {

// save_mean, save_var (c) <- the batch's mean and biased variance (training) or the running
// statistics; y <- the normalized x. weight and bias may be null (1 and 0).
template <class T>
void batch_norm_forward(const BatchNormParams& p, const T* x, const T* weight, const T* bias,
                        const T* running_mean, const T* running_var, T* save_mean, T* save_var, T* y) {
  const std::int64_t S = p.s, C = p.c, M = p.per_channel();
  parallel_for(0, C, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t ch = lo; ch < hi; ++ch) {
      double mean = 0, var = 0;
      if (p.training) {
        double acc = 0;
        for (std::int64_t i = 0; i < p.n; ++i) {
          const T* xp = x + (i * C + ch) * S;
          for (std::int64_t k = 0; k < S; ++k) acc += static_cast<double>(xp[k]);
        }
        mean = M > 0 ? acc / static_cast<double>(M) : 0.0;
        double sq = 0;
        for (std::int64_t i = 0; i < p.n; ++i) {
          const T* xp = x + (i * C + ch) * S;
          for (std::int64_t k = 0; k < S; ++k) {
            const double d = static_cast<double>(xp[k]) - mean;
            sq += d * d;
          }
        }
        var = M > 0 ? sq / static_cast<double>(M) : 0.0;
        save_mean[ch] = static_cast<T>(mean);
        save_var[ch] = static_cast<T>(var);
      } else {
        save_mean[ch] = running_mean[ch];
        save_var[ch] = running_var[ch];
      }
      const double m = static_cast<double>(save_mean[ch]), v = static_cast<double>(save_var[ch]);
      const double w = weight != nullptr ? static_cast<double>(weight[ch]) : 1.0;
      const double b = bias != nullptr ? static_cast<double>(bias[ch]) : 0.0;
      const double scale = w / std::sqrt(v + p.eps);
      const T sc = static_cast<T>(scale), sh = static_cast<T>(b - m * scale);
      for (std::int64_t i = 0; i < p.n; ++i) {
        const T* xp = x + (i * C + ch) * S;
        T* yp = y + (i * C + ch) * S;
        for (std::int64_t k = 0; k < S; ++k) yp[k] = xp[k] * sc + sh;
      }
    }
  });
}

// gx <- the input gradient (null: not needed); gw, gb (c) <- sum gy * xhat, sum gy (null: not
// needed). training: through the batch statistics; else the statistics are constants.
template <class T>
void batch_norm_backward(const BatchNormParams& p, const T* gy, const T* x, const T* weight, const T* save_mean,
                         const T* save_var, T* gx, T* gw, T* gb) {
  const std::int64_t S = p.s, C = p.c, M = p.per_channel();
  parallel_for(0, C, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t ch = lo; ch < hi; ++ch) {
      const double mean = static_cast<double>(save_mean[ch]);
      const double invstd = 1.0 / std::sqrt(static_cast<double>(save_var[ch]) + p.eps);
      double sum_dy = 0, sum_dy_xhat = 0;
      for (std::int64_t i = 0; i < p.n; ++i) {
        const T* g = gy + (i * C + ch) * S;
        const T* xp = x + (i * C + ch) * S;
        for (std::int64_t k = 0; k < S; ++k) {
          const double d = static_cast<double>(g[k]);
          sum_dy += d;
          sum_dy_xhat += d * (static_cast<double>(xp[k]) - mean) * invstd;
        }
      }
      if (gw != nullptr) gw[ch] = static_cast<T>(sum_dy_xhat);
      if (gb != nullptr) gb[ch] = static_cast<T>(sum_dy);
      if (gx == nullptr) continue;
      const double k1 = (weight != nullptr ? static_cast<double>(weight[ch]) : 1.0) * invstd;
      const double mdy = p.training && M > 0 ? sum_dy / static_cast<double>(M) : 0.0;
      const double mdx = p.training && M > 0 ? sum_dy_xhat / static_cast<double>(M) : 0.0;
      for (std::int64_t i = 0; i < p.n; ++i) {
        const T* g = gy + (i * C + ch) * S;
        const T* xp = x + (i * C + ch) * S;
        T* o = gx + (i * C + ch) * S;
        for (std::int64_t k = 0; k < S; ++k) {
          const double xhat = (static_cast<double>(xp[k]) - mean) * invstd;
          o[k] = static_cast<T>(k1 * (static_cast<double>(g[k]) - mdy - xhat * mdx));
        }
      }
    }
  });
}

}  // namespace ember::cpu
