#pragma once
// Batch normalization over x (n, c, s) with the arithmetic of ember::cpu::batch_norm_forward /
// _backward (backend/cpu/batch_norm.hpp): per-channel sums in double (one block per channel,
// each thread a strided share, then a block sum), and every element through the same double
// expressions, so CPU and CUDA differ only in the order of the channel sums.

#include <cstdint>

#include "common.cuh"
#include "ember/backend/params.hpp"
#include "reduce.cuh"

namespace ember::kernels {

// Element k of channel ch's n*s elements: image k / s, position k % s.
EMBER_DEVICE std::int64_t bn_index(const BatchNormParams& p, std::int64_t ch, std::int64_t k) {
  const std::int64_t i = k / p.s;
  return (i * p.c + ch) * p.s + (k - i * p.s);
}

// One block per channel: save_mean, save_var (training) or the running statistics, then
// scale[ch] = w / sqrt(var + eps), shift[ch] = b - mean * scale (double, in `coef`).
template <class T>
EMBER_KERNEL void bn_stats_kernel(BatchNormParams p, const T* __restrict__ x, const T* __restrict__ weight,
                                  const T* __restrict__ bias, const T* __restrict__ running_mean,
                                  const T* __restrict__ running_var, T* __restrict__ save_mean,
                                  T* __restrict__ save_var, double* __restrict__ coef) {
  __shared__ double scratch[32];
  __shared__ double shared_mean;
  const std::int64_t ch = blockIdx.x, M = p.per_channel();
  if (p.training) {
    double acc = 0;
    for (std::int64_t k = threadIdx.x; k < M; k += blockDim.x) acc += static_cast<double>(x[bn_index(p, ch, k)]);
    acc = reduce_impl::block_sum(acc, scratch);
    if (threadIdx.x == 0) shared_mean = M > 0 ? acc / static_cast<double>(M) : 0.0;
    __syncthreads();
    const double mean = shared_mean;
    double sq = 0;
    for (std::int64_t k = threadIdx.x; k < M; k += blockDim.x) {
      const double d = static_cast<double>(x[bn_index(p, ch, k)]) - mean;
      sq += d * d;
    }
    sq = reduce_impl::block_sum(sq, scratch);
    if (threadIdx.x == 0) {
      save_mean[ch] = static_cast<T>(mean);
      save_var[ch] = static_cast<T>(M > 0 ? sq / static_cast<double>(M) : 0.0);
    }
  } else if (threadIdx.x == 0) {
    save_mean[ch] = running_mean[ch];
    save_var[ch] = running_var[ch];
  }
  if (threadIdx.x == 0) {
    const double m = static_cast<double>(save_mean[ch]), v = static_cast<double>(save_var[ch]);
    const double w = weight != nullptr ? static_cast<double>(weight[ch]) : 1.0;
    const double b = bias != nullptr ? static_cast<double>(bias[ch]) : 0.0;
    const double scale = w / ::sqrt(v + p.eps);
    coef[2 * ch] = scale;
    coef[2 * ch + 1] = b - m * scale;
  }
}

template <class T>
EMBER_KERNEL void bn_apply_kernel(BatchNormParams p, const T* __restrict__ x, const double* __restrict__ coef,
                                  T* __restrict__ y) {
  const std::int64_t total = p.n * p.c * p.s;
  const std::int64_t stride = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const std::int64_t ch = (e / p.s) % p.c;
    y[e] = x[e] * static_cast<T>(coef[2 * ch]) + static_cast<T>(coef[2 * ch + 1]);
  }
}

// One block per channel: sum gy and sum gy * xhat (double, into `sums`), gw and gb.
template <class T>
EMBER_KERNEL void bn_backward_reduce_kernel(BatchNormParams p, const T* __restrict__ gy, const T* __restrict__ x,
                                            const T* __restrict__ save_mean, const T* __restrict__ save_var,
                                            double* __restrict__ sums, T* __restrict__ gw, T* __restrict__ gb) {
  __shared__ double scratch[32];
  const std::int64_t ch = blockIdx.x, M = p.per_channel();
  const double mean = static_cast<double>(save_mean[ch]);
  const double invstd = 1.0 / ::sqrt(static_cast<double>(save_var[ch]) + p.eps);
  double dy = 0, dyx = 0;
  for (std::int64_t k = threadIdx.x; k < M; k += blockDim.x) {
    const std::int64_t e = bn_index(p, ch, k);
    const double g = static_cast<double>(gy[e]);
    dy += g;
    dyx += g * (static_cast<double>(x[e]) - mean) * invstd;
  }
  dy = reduce_impl::block_sum(dy, scratch);
  dyx = reduce_impl::block_sum(dyx, scratch);
  if (threadIdx.x == 0) {
    sums[2 * ch] = dy;
    sums[2 * ch + 1] = dyx;
    if (gw != nullptr) gw[ch] = static_cast<T>(dyx);
    if (gb != nullptr) gb[ch] = static_cast<T>(dy);
  }
}

template <class T>
EMBER_KERNEL void bn_backward_apply_kernel(BatchNormParams p, const T* __restrict__ gy, const T* __restrict__ x,
                                           const T* __restrict__ weight, const T* __restrict__ save_mean,
                                           const T* __restrict__ save_var, const double* __restrict__ sums,
                                           T* __restrict__ gx) {
  const std::int64_t total = p.n * p.c * p.s, M = p.per_channel();
  const std::int64_t stride = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const std::int64_t ch = (e / p.s) % p.c;
    const double mean = static_cast<double>(save_mean[ch]);
    const double invstd = 1.0 / ::sqrt(static_cast<double>(save_var[ch]) + p.eps);
    const double k1 = (weight != nullptr ? static_cast<double>(weight[ch]) : 1.0) * invstd;
    const double mdy = p.training && M > 0 ? sums[2 * ch] / static_cast<double>(M) : 0.0;
    const double mdx = p.training && M > 0 ? sums[2 * ch + 1] / static_cast<double>(M) : 0.0;
    const double xhat = (static_cast<double>(x[e]) - mean) * invstd;
    gx[e] = static_cast<T>(k1 * (static_cast<double>(gy[e]) - mdy - xhat * mdx));
  }
}

// Workspace: 2 * c doubles.
inline std::int64_t batch_norm_workspace_elems(const BatchNormParams& p) { return 2 * p.c; }

template <class T>
void batch_norm_forward(const BatchNormParams& p, const T* x, const T* weight, const T* bias, const T* running_mean,
                        const T* running_var, T* save_mean, T* save_var, T* y, double* ws, Stream stream,
                        int threads = 256) {
  (void)stream;
  if (p.c <= 0) return;
  EMBER_LAUNCH(bn_stats_kernel<T>, static_cast<unsigned>(p.c), threads, 0, stream)(
      p, x, weight, bias, running_mean, running_var, save_mean, save_var, ws);
  check_launch("bn_stats_kernel");
  const std::int64_t total = p.n * p.c * p.s;
  if (total <= 0) return;
  EMBER_LAUNCH(bn_apply_kernel<T>, grid_for(total, threads), threads, 0, stream)(p, x, ws, y);
  check_launch("bn_apply_kernel");
}

template <class T>
void batch_norm_backward(const BatchNormParams& p, const T* gy, const T* x, const T* weight, const T* save_mean,
                         const T* save_var, T* gx, T* gw, T* gb, double* ws, Stream stream, int threads = 256) {
  (void)stream;
  if (p.c <= 0) return;
  EMBER_LAUNCH(bn_backward_reduce_kernel<T>, static_cast<unsigned>(p.c), threads, 0, stream)(
      p, gy, x, save_mean, save_var, ws, gw, gb);
  check_launch("bn_backward_reduce_kernel");
  const std::int64_t total = p.n * p.c * p.s;
  if (gx == nullptr || total <= 0) return;
  EMBER_LAUNCH(bn_backward_apply_kernel<T>, grid_for(total, threads), threads, 0, stream)(
      p, gy, x, weight, save_mean, save_var, ws, gx);
  check_launch("bn_backward_apply_kernel");
}

}  // namespace ember::kernels
