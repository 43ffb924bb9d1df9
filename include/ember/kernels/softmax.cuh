#pragma once
// log_softmax over the last dimension of a contiguous (rows, cols) array, forward and backward.
// The sums are in double; the CPU kernel (backend/cpu/softmax.hpp) takes float exp in float
// packets instead, so float results agree with it to a few units in the last place:
//   forward:  m = max_j x[j];  s = sum_j exp(double(x[j] - m)) (in double);
//             lse = m + T(log(s));  y[j] = x[j] - lse
//   backward: gs = sum_j g[j] (in double);  gx[j] = g[j] - T(exp(double(y[j])) * gs)
// Short rows (cols <= kSoftmaxWarpCols, e.g. MNIST's 10 classes) take one warp per row, several
// rows per block; longer rows take one block per row. Every reduction is a fixed-shape tree
// (warp butterfly, then the per-warp partials summed in warp order), so the same input gives
// bit-identical output run to run; only the summation order differs from the CPU's sequential
// loop.
// The max ignores NaN like std::max(m, x) on the CPU; a NaN anywhere in a row still turns the
// whole row into NaN through the sum, as on the CPU.

#include <cstdint>

#include "common.cuh"

namespace ember::kernels {

// Rows at most this long are handled by one warp each.
inline constexpr std::int64_t kSoftmaxWarpCols = 1024;

// Reduction helpers shared with kernels/loss.cuh.
namespace softmax_detail {

struct MaxOp {
  template <class R>
  EMBER_HOST_DEVICE R operator()(R a, R b) const {
    return a < b ? b : a;
  }  // std::max(a, b)
};
struct SumOp {
  template <class R>
  EMBER_HOST_DEVICE R operator()(R a, R b) const {
    return a + b;
  }
};

// Butterfly over the 32 lanes of a warp: every lane ends with the same value (each step
// combines a lane with its partner, and op is commutative). All 32 lanes must call it.
template <class R, class Op>
EMBER_DEVICE R warp_allreduce(R v, Op op) {
#pragma unroll
  for (int delta = 16; delta > 0; delta >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, delta));
  return v;
}

// Every thread of the block gets op over all threads' v. `partial` is a __shared__ array of
// 32 elements; the leading barrier makes it safe to call again with the same array. Every
// thread of the block must call it (it has barriers); blockDim.x must be a multiple of 32.
template <class R, class Op>
EMBER_DEVICE R block_allreduce(R v, R* partial, Op op) {
  v = warp_allreduce(v, op);
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int warps = static_cast<int>(blockDim.x) / 32;
  __syncthreads();  // the previous call's readers are done with `partial`
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  R r = partial[0];
  for (int w = 1; w < warps; ++w) r = op(r, partial[w]);  // the same order in every thread
  return r;
}

// One row of work for the warp (kBlock false) or block (kBlock true) layout.
template <bool kBlock, class R, class Op>
EMBER_DEVICE R row_allreduce(R v, R* partial, Op op) {
  if constexpr (kBlock)
    return block_allreduce(v, partial, op);
  else
    return warp_allreduce(v, op);
}

// Which rows this thread works on and which of their columns it owns.
template <bool kBlock>
struct RowLayout {
  std::int64_t first_row, row_step;
  std::int64_t first_col, col_step;
  EMBER_DEVICE RowLayout() {
    if constexpr (kBlock) {
      first_row = blockIdx.x;
      row_step = gridDim.x;
      first_col = threadIdx.x;
      col_step = blockDim.x;
    } else {
      const std::int64_t warps = blockDim.x / 32;
      first_row = static_cast<std::int64_t>(blockIdx.x) * warps + threadIdx.x / 32;
      row_step = static_cast<std::int64_t>(gridDim.x) * warps;
      first_col = threadIdx.x % 32;
      col_step = 32;
    }
  }
};

template <class T, bool kBlock>
EMBER_DEVICE void log_softmax_forward_rows(const T* __restrict__ x, T* __restrict__ y,
                                           std::int64_t rows, std::int64_t cols, T* smax,
                                           double* ssum) {
  const RowLayout<kBlock> L;
  // The loop bound is uniform over the warp (warp layout) or block (block layout), so every
  // thread that must join a reduction does.
  for (std::int64_t r = L.first_row; r < rows; r += L.row_step) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T m = -static_cast<T>(INFINITY);
    for (std::int64_t c = L.first_col; c < cols; c += L.col_step) m = MaxOp{}(m, xr[c]);
    m = row_allreduce<kBlock>(m, smax, MaxOp{});
    double s = 0;
    for (std::int64_t c = L.first_col; c < cols; c += L.col_step)
      s += ::exp(static_cast<double>(xr[c] - m));
    s = row_allreduce<kBlock>(s, ssum, SumOp{});
    const T lse = m + static_cast<T>(::log(s));
    for (std::int64_t c = L.first_col; c < cols; c += L.col_step) yr[c] = xr[c] - lse;
  }
}

template <class T, bool kBlock>
EMBER_DEVICE void log_softmax_backward_rows(const T* __restrict__ g, const T* __restrict__ y,
                                            T* __restrict__ gx, std::int64_t rows,
                                            std::int64_t cols, double* ssum) {
  const RowLayout<kBlock> L;
  for (std::int64_t r = L.first_row; r < rows; r += L.row_step) {
    const T* gr = g + r * cols;
    const T* yr = y + r * cols;
    T* gxr = gx + r * cols;
    double gs = 0;
    for (std::int64_t c = L.first_col; c < cols; c += L.col_step) gs += static_cast<double>(gr[c]);
    gs = row_allreduce<kBlock>(gs, ssum, SumOp{});
    for (std::int64_t c = L.first_col; c < cols; c += L.col_step)
      gxr[c] = gr[c] - static_cast<T>(__dmul_rn(::exp(static_cast<double>(yr[c])), gs));
  }
}

inline void check_softmax_threads(int threads) {
  EMBER_CHECK(threads >= 32 && threads <= 1024 && threads % 32 == 0,
              "log_softmax kernels: threads must be a multiple of 32 in [32, 1024], got ", threads);
}

}  // namespace softmax_detail

// One warp per row, blockDim.x / 32 rows per block.
template <class T>
EMBER_KERNEL void log_softmax_forward_warp_kernel(const T* __restrict__ x, T* __restrict__ y,
                                                  std::int64_t rows, std::int64_t cols) {
  __shared__ T smax[32];       // unused by the warp layout
  __shared__ double ssum[32];  // (the helpers take them for uniformity)
  softmax_detail::log_softmax_forward_rows<T, false>(x, y, rows, cols, smax, ssum);
}

// One block per row.
template <class T>
EMBER_KERNEL void log_softmax_forward_block_kernel(const T* __restrict__ x, T* __restrict__ y,
                                                   std::int64_t rows, std::int64_t cols) {
  __shared__ T smax[32];
  __shared__ double ssum[32];
  softmax_detail::log_softmax_forward_rows<T, true>(x, y, rows, cols, smax, ssum);
}

template <class T>
EMBER_KERNEL void log_softmax_backward_warp_kernel(const T* __restrict__ g, const T* __restrict__ y,
                                                   T* __restrict__ gx, std::int64_t rows,
                                                   std::int64_t cols) {
  __shared__ double ssum[32];
  softmax_detail::log_softmax_backward_rows<T, false>(g, y, gx, rows, cols, ssum);
}

template <class T>
EMBER_KERNEL void log_softmax_backward_block_kernel(const T* __restrict__ g,
                                                    const T* __restrict__ y, T* __restrict__ gx,
                                                    std::int64_t rows, std::int64_t cols) {
  __shared__ double ssum[32];
  softmax_detail::log_softmax_backward_rows<T, true>(g, y, gx, rows, cols, ssum);
}

// y = log_softmax(x) over the last dimension of a contiguous (rows, cols) array.
// threads: a multiple of 32 in [32, 1024].
template <class T>
void log_softmax_forward(const T* x, T* y, std::int64_t rows, std::int64_t cols, Stream stream,
                         int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  softmax_detail::check_softmax_threads(threads);
  if (rows <= 0 || cols <= 0) return;
  if (cols <= kSoftmaxWarpCols) {
    EMBER_LAUNCH(log_softmax_forward_warp_kernel<T>, grid_for(rows, threads / 32), threads, 0,
                 stream)
    (x, y, rows, cols);
    check_launch("log_softmax_forward_warp_kernel");
  } else {
    EMBER_LAUNCH(log_softmax_forward_block_kernel<T>, grid_for(rows, 1), threads, 0, stream)
    (x, y, rows, cols);
    check_launch("log_softmax_forward_block_kernel");
  }
}

// gx = g - exp(y) * sum(g) per row, y being log_softmax's output; all (rows, cols) contiguous.
template <class T>
void log_softmax_backward(const T* g, const T* y, T* gx, std::int64_t rows, std::int64_t cols,
                          Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  softmax_detail::check_softmax_threads(threads);
  if (rows <= 0 || cols <= 0) return;
  if (cols <= kSoftmaxWarpCols) {
    EMBER_LAUNCH(log_softmax_backward_warp_kernel<T>, grid_for(rows, threads / 32), threads, 0,
                 stream)
    (g, y, gx, rows, cols);
    check_launch("log_softmax_backward_warp_kernel");
  } else {
    EMBER_LAUNCH(log_softmax_backward_block_kernel<T>, grid_for(rows, 1), threads, 0, stream)
    (g, y, gx, rows, cols);
    check_launch("log_softmax_backward_block_kernel");
  }
}

}  // namespace ember::kernels
