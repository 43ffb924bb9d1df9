#pragma once
// nll_loss forward and backward with the CPU op's semantics (ember::nll_loss in
// include/ember/ops/loss.hpp): logp (rows, cols) log-probabilities, labels (rows) class
// indices, reduction mean or sum.
//   forward:  acc = -sum_r double(logp[r][labels[r]]);  out = T(acc) * scale,
//             scale = mean ? T(1) / T(rows) : T(1)
//   backward: gx[r][labels[r]] = -(g * scale), 0 elsewhere
// The forward is one block with a fixed-order reduction (each thread sums a fixed stride of
// rows, then the partials are combined in a fixed tree), so it is deterministic run to run;
// only the summation order differs from the CPU's sequential loop, in double.
// Where the CPU throws for a label outside [0, cols), the kernel makes the loss NaN and sets
// *bad_label to 1 (the kernel never writes 0 there: the caller clears the flag, and it can
// gather several steps before the host reads it once).

#include <cstdint>

#include "common.cuh"
#include "softmax.cuh"  // softmax_detail::block_allreduce

namespace ember::kernels {

namespace loss_detail {
template <class T>
EMBER_DEVICE T quiet_nan() {
  const T inf = static_cast<T>(INFINITY);
  return inf - inf;
}
}  // namespace loss_detail

// A single block: blockDim.x threads, a multiple of 32.
template <class T>
EMBER_KERNEL void nll_forward_kernel(const T* __restrict__ logp,
                                     const std::int64_t* __restrict__ labels, std::int64_t rows,
                                     std::int64_t cols, T scale, T* __restrict__ out,
                                     int* bad_label) {
  __shared__ double psum[32];
  __shared__ int pbad[32];
  double acc = 0;
  int bad = 0;
  for (std::int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const std::int64_t t = labels[r];
    if (t >= 0 && t < cols)
      acc -= static_cast<double>(logp[r * cols + t]);
    else
      bad = 1;
  }
  acc = softmax_detail::block_allreduce(acc, psum, softmax_detail::SumOp{});
  bad = softmax_detail::block_allreduce(bad, pbad, softmax_detail::MaxOp{});
  if (threadIdx.x == 0) {
    if (bad != 0) {
      *out = loss_detail::quiet_nan<T>();
      if (bad_label != nullptr) *bad_label = 1;
    } else {
      *out = static_cast<T>(acc) * scale;
    }
  }
}

template <class T>
EMBER_KERNEL void nll_backward_kernel(const T* __restrict__ g,
                                      const std::int64_t* __restrict__ labels, std::int64_t rows,
                                      std::int64_t cols, T scale, T* __restrict__ gx) {
  const T v = -(g[0] * scale);
  const std::int64_t n = rows * cols;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols;
    gx[i] = (i - r * cols) == labels[r] ? v : T(0);
  }
}

// out[0] = nll_loss(logp, labels) (mean or sum). bad_label (nullable): set to 1 when a label
// is outside [0, cols), the loss then being NaN; never cleared here. One block of `threads`
// threads (a multiple of 32 in [32, 1024]); rows may be 0 only for a sum (out = 0).
template <class T>
void nll_forward(const T* logp, const std::int64_t* labels, std::int64_t rows, std::int64_t cols,
                 T* out, bool mean, int* bad_label, Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(threads >= 32 && threads <= 1024 && threads % 32 == 0,
              "nll_forward: threads must be a multiple of 32 in [32, 1024], got ", threads);
  EMBER_CHECK(rows >= 0 && cols >= 0, "nll_forward: negative size");
  EMBER_CHECK(rows > 0 || !mean, "nll_forward: empty batch with mean reduction");
  const T scale = mean ? T(1) / static_cast<T>(rows) : T(1);
  EMBER_LAUNCH(nll_forward_kernel<T>, 1, threads, 0, stream)
  (logp, labels, rows, cols, scale, out, bad_label);
  check_launch("nll_forward_kernel");
}

// gx (rows, cols), fully written: -(g[0] / (mean ? rows : 1)) at each row's label, 0
// elsewhere (a row whose label is out of range is all zeros). g: the loss's upstream gradient,
// one element in device memory.
template <class T>
void nll_backward(const T* g, const std::int64_t* labels, std::int64_t rows, std::int64_t cols,
                  T* gx, bool mean, Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(threads >= 1 && threads <= 1024, "nll_backward: bad block size ", threads);
  if (rows <= 0 || cols <= 0) return;
  const T scale = mean ? T(1) / static_cast<T>(rows) : T(1);
  EMBER_LAUNCH(nll_backward_kernel<T>, grid_for(rows * cols, threads), threads, 0, stream)
  (g, labels, rows, cols, scale, gx);
  check_launch("nll_backward_kernel");
}

}  // namespace ember::kernels
