#pragma once
// Reductions on the device:
//   * sum_all: the sum (or mean) of a contiguous array, two passes, deterministic;
//   * extremum_dim: max/min along the middle axis of [outer, size, inner] with the index,
//     ember::max's rule (DimReduceParams::beats: the first NaN, else the first extreme; a warp
//     per row when inner is 1), behind max, min, amax, amin, argmax and argmin; and the backward
//     of amax/amin (gy split evenly among ties) and of max/min (gy at the index);
//   * count_correct: the number of rows of a [rows, cols] array whose argmax is the label;
//   * sum_outer_inner: out[m] = sum over (o, i) of x[(o * mid + m) * inner + i], the
//     [outer, mid, inner] -> [mid] reduction behind bias gradients and sum_to's common cases.
// Every result is computed in a fixed order for a given launch configuration, so equal inputs give
// bit-identical outputs run to run. The only atomic is count_correct's integer addition.
// Kernels with warp shuffles need a block size that is a multiple of 32 (checked).

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common.cuh"

namespace ember::kernels {

namespace reduce_impl {

inline constexpr unsigned kFullMask = 0xffffffffu;

inline void check_warp_multiple(int threads, const char* what) {
  EMBER_CHECK(threads >= 32 && threads <= 1024 && threads % 32 == 0, what,
              ": the block size must be a multiple of 32 in [32, 1024], got ", threads);
}

// Sum over the 32 lanes of a warp; the total lands in lane 0. Every lane must call it.
template <class A>
EMBER_DEVICE A warp_sum(A v) {
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) v += __shfl_down_sync(kFullMask, v, d);
  return v;
}

// Sum over a 1-D block whose size is a multiple of 32; the total is valid in thread 0.
// `scratch` is a __shared__ array of at least 32 elements; it may be reused right away (the
// leading barrier protects a previous call's reads).
template <class A>
EMBER_DEVICE A block_sum(A v, A* scratch) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  A r = A(0);
  if (warp == 0) {
    r = lane < nwarps ? scratch[lane] : A(0);
    r = warp_sum(r);
  }
  return r;
}

// ---- sum_all -------------------------------------------------------------------------------------
// The number of first-pass blocks depends on n only (not on the block size), so the workspace
// can be sized without knowing the launch configuration.
inline std::int64_t sum_all_blocks(std::int64_t n) {
  return kmax<std::int64_t>(1, kmin<std::int64_t>(ceil_div(n, 8192), 1024));
}

// Partial sums are kept in double. A float workspace holds each as two floats (hi, lo) whose
// double sum restores it to about 48 bits.
template <class T>
EMBER_DEVICE void store_partial(T* ws, std::int64_t i, double v) {
  if constexpr (std::is_same_v<T, float>) {
    const float hi = static_cast<float>(v);
    const float lo = hi - hi == 0.0f ? static_cast<float>(v - static_cast<double>(hi)) : 0.0f;
    ws[2 * i] = hi;
    ws[2 * i + 1] = lo;
  } else {
    ws[i] = v;
  }
}
template <class T>
EMBER_DEVICE double load_partial(const T* ws, std::int64_t i) {
  if constexpr (std::is_same_v<T, float>)
    return static_cast<double>(ws[2 * i]) + static_cast<double>(ws[2 * i + 1]);
  else
    return ws[i];
}

// Pass 1: block b writes the double sum of its grid-stride share of x to ws[b]. `vec`: x is
// 16-byte aligned and read as float4 / double2.
template <class T>
EMBER_KERNEL void sum_partials_kernel(const T* x, std::int64_t n, T* ws, bool vec) {
  __shared__ double scratch[32];
  const std::int64_t tid = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  double acc = 0;
  std::int64_t start = tid;
  if (vec) {
    if constexpr (std::is_same_v<T, float>) {
      const std::int64_t nv = n / 4;
      const float4* xv = reinterpret_cast<const float4*>(x);
      for (std::int64_t i = tid; i < nv; i += stride) {
        const float4 v = xv[i];
        acc += static_cast<double>(v.x);
        acc += static_cast<double>(v.y);
        acc += static_cast<double>(v.z);
        acc += static_cast<double>(v.w);
      }
      start = nv * 4 + tid;
    } else {
      const std::int64_t nv = n / 2;
      const double2* xv = reinterpret_cast<const double2*>(x);
      for (std::int64_t i = tid; i < nv; i += stride) {
        const double2 v = xv[i];
        acc += v.x;
        acc += v.y;
      }
      start = nv * 2 + tid;
    }
  }
  for (std::int64_t i = start; i < n; i += stride) acc += static_cast<double>(x[i]);
  const double r = block_sum(acc, scratch);
  if (threadIdx.x == 0) store_partial(ws, blockIdx.x, r);
}

// Pass 2 (one block): out[0] = T(sum of the partials) * scale, rounded as ember::sum / mean do.
template <class T>
EMBER_KERNEL void sum_final_kernel(const T* ws, std::int64_t parts, T* out, T scale) {
  __shared__ double scratch[32];
  double acc = 0;
  for (std::int64_t i = threadIdx.x; i < parts; i += blockDim.x) acc += load_partial(ws, i);
  const double r = block_sum(acc, scratch);
  if (threadIdx.x == 0) out[0] = static_cast<T>(r) * scale;
}

// ---- argmax, max/min along a dimension ----------------------------------------------------------
// Whether candidate (v2, i2) beats (v1, i1) under ember::max's rule (p.take_min: ember::min's): a
// NaN beats any number, a larger (smaller) value beats a smaller (larger) one, and among equals (or
// NaNs) the lower index wins. i < 0 marks an empty candidate. This combination gives the same
// answer as the sequential scan.
template <class T>
EMBER_DEVICE bool extremum_beats(const DimReduceParams& p, T v1, std::int64_t i1, T v2,
                                 std::int64_t i2) {
  if (i2 < 0) return false;
  if (i1 < 0) return true;
  const bool nan1 = v1 != v1, nan2 = v2 != v2;
  if (nan1 || nan2) return nan1 && nan2 ? i2 < i1 : nan2;
  if (p.take_min ? v2 < v1 : v2 > v1) return true;
  if (p.take_min ? v1 < v2 : v1 > v2) return false;
  return i2 < i1;
}

// The max (or min) of a row of `cols` elements `step` apart, by a whole warp (every lane must
// call it); the index and *value are valid in lane 0.
template <class T>
EMBER_DEVICE std::int64_t warp_extremum(const DimReduceParams& p, const T* row, std::int64_t cols,
                                        std::int64_t step, unsigned lane, T* value) {
  T best = T(0);
  std::int64_t bi = -1;
  for (std::int64_t c = lane; c < cols; c += 32) {
    const T v = row[c * step];
    if (bi < 0 || p.beats(v, best)) {  // the sequential rule on this lane's share
      best = v;
      bi = c;
    }
  }
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) {
    const T ov = __shfl_down_sync(kFullMask, best, d);
    const std::int64_t oi = __shfl_down_sync(kFullMask, bi, d);
    if (extremum_beats(p, best, bi, ov, oi)) {
      best = ov;
      bi = oi;
    }
  }
  *value = best;
  return bi;
}

// Argmax of one contiguous row by a whole warp; the index is valid in lane 0.
template <class T>
EMBER_DEVICE std::int64_t warp_argmax(const T* row, std::int64_t cols, unsigned lane) {
  T value;
  return warp_extremum(DimReduceParams{}, row, cols, 1, lane, &value);
}

// One warp per row (as extremum_rows_kernel below), counting rows whose argmax equals the
// label; each block adds its count to out[0] with one integer atomic (exact, so the total does
// not depend on the order).
template <class T>
EMBER_KERNEL void count_correct_kernel(const T* x, std::int64_t rows, std::int64_t cols,
                                       const std::int64_t* labels, std::int64_t* out) {
  __shared__ long long scratch[32];
  const unsigned lane = threadIdx.x & 31u;
  const std::int64_t warp = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const std::int64_t nwarps = (static_cast<std::int64_t>(gridDim.x) * blockDim.x) >> 5;
  long long count = 0;
  for (std::int64_t r = warp; r < rows; r += nwarps) {
    const std::int64_t bi = warp_argmax(x + r * cols, cols, lane);
    if (lane == 0 && bi == labels[r]) ++count;
  }
  count = block_sum(count, scratch);
  if (threadIdx.x == 0 && count != 0)
    atomicAdd(reinterpret_cast<unsigned long long*>(out), static_cast<unsigned long long>(count));
}

// inner == 1, x [outer, size]: one warp per row (grid-stride over rows).
template <class T>
EMBER_KERNEL void extremum_rows_kernel(DimReduceParams p, const T* x, T* values,
                                       std::int64_t* indices) {
  const unsigned lane = threadIdx.x & 31u;
  const std::int64_t warp = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const std::int64_t nwarps = (static_cast<std::int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (std::int64_t r = warp; r < p.outer; r += nwarps) {
    T v;
    const std::int64_t bi = warp_extremum(p, x + r * p.size, p.size, 1, lane, &v);
    if (lane == 0) {
      if (values != nullptr) values[r] = v;
      indices[r] = bi;
    }
  }
}

// inner > 1: one thread per output (o, i), scanning its column in index order like the CPU;
// neighbouring threads read neighbouring i (coalesced).
template <class T>
EMBER_KERNEL void extremum_columns_kernel(DimReduceParams p, const T* x, T* values,
                                          std::int64_t* indices) {
  const std::int64_t n = p.outputs();
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += stride) {
    const std::int64_t o = k / p.inner, i = k - o * p.inner;
    const T* col = x + o * p.size * p.inner + i;  // (size) with step inner
    T best = col[0];
    std::int64_t bi = 0;
    for (std::int64_t s = 1; s < p.size; ++s) {
      const T v = col[s * p.inner];
      if (p.beats(v, best)) {
        best = v;
        bi = s;
      }
    }
    if (values != nullptr) values[k] = best;
    indices[k] = bi;
  }
}

// amax/amin backward, one thread per output (o, i): count the elements of its column equal to
// y (NaN to NaN when p.nan_equal), then gx = (gy / count) * hit for each, as the CPU.
template <class T>
EMBER_KERNEL void extremum_backward_kernel(DimReduceParams p, const T* x, const T* y, const T* gy,
                                           T* gx) {
  const std::int64_t n = p.outputs();
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += stride) {
    const std::int64_t o = k / p.inner, i = k - o * p.inner;
    const std::int64_t base = o * p.size * p.inner + i;
    const T m = y[k];
    const bool nan_m = p.nan_equal && m != m;
    std::int64_t count = 0;
    for (std::int64_t s = 0; s < p.size; ++s) {
      const T v = x[base + s * p.inner];
      count += (v == m || (nan_m && v != v)) ? 1 : 0;
    }
    const T share = gy[k] / static_cast<T>(count);
    for (std::int64_t s = 0; s < p.size; ++s) {
      const T v = x[base + s * p.inner];
      const bool hit = v == m || (nan_m && v != v);
      gx[base + s * p.inner] = share * (hit ? T(1) : T(0));
    }
  }
}

// max/min backward, one thread per input element (o, s, i): gy[o, i] where s is the index.
template <class T>
EMBER_KERNEL void index_backward_kernel(DimReduceParams p, const T* gy, const std::int64_t* indices,
                                        T* gx) {
  const std::int64_t n = p.outer * p.size * p.inner;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += stride) {
    const std::int64_t i = e % p.inner, os = e / p.inner;
    const std::int64_t s = os % p.size, o = os / p.size;
    const std::int64_t k = o * p.inner + i;
    gx[e] = indices[k] == s ? gy[k] : T(0);
  }
}

// ---- [outer, mid, inner] -> [mid] ----------------------------------------------------------------
// T: the element type; Acc: the accumulator (the sum is rounded to T once, at the end).
template <class T, class Acc>
struct SumSpec {
  using value = T;
  using acc = Acc;
};

template <class T>
EMBER_KERNEL void assign_kernel(T* out, std::int64_t n, T value) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    out[i] = value;
}

// One thread per output, summing in C order (o outer, i inner): for tiny reductions.
template <class S>
EMBER_KERNEL void sum_oi_serial_kernel(const typename S::value* x, std::int64_t outer,
                                       std::int64_t mid, std::int64_t inner,
                                       typename S::value* out) {
  using T = typename S::value;
  using Acc = typename S::acc;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t m = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; m < mid;
       m += stride) {
    Acc acc = Acc(0);
    for (std::int64_t o = 0; o < outer; ++o) {
      const T* p = x + (o * mid + m) * inner;
      for (std::int64_t i = 0; i < inner; ++i) acc += static_cast<Acc>(p[i]);
    }
    out[m] = static_cast<T>(acc);
  }
}

// inner == 1: column sums of an [outer, mid] array. Block (32, Y): threadIdx.x picks a column of
// a 32-column tile (coalesced reads), threadIdx.y strides over the rows; thread y == 0 then adds
// the Y partials of its column in order.
template <class S>
EMBER_KERNEL void sum_oi_cols_kernel(const typename S::value* x, std::int64_t outer,
                                     std::int64_t mid, typename S::value* out) {
  using T = typename S::value;
  using Acc = typename S::acc;
  __shared__ Acc tile[32][33];
  const unsigned tx = threadIdx.x, ty = threadIdx.y, ny = blockDim.y;
  for (std::int64_t m0 = static_cast<std::int64_t>(blockIdx.x) * 32; m0 < mid;
       m0 += static_cast<std::int64_t>(gridDim.x) * 32) {
    const std::int64_t m = m0 + tx;
    Acc acc = Acc(0);
    if (m < mid)
      for (std::int64_t o = ty; o < outer; o += ny) acc += static_cast<Acc>(x[o * mid + m]);
    tile[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && m < mid) {
      Acc s = tile[0][tx];
      for (unsigned y = 1; y < ny; ++y) s += tile[y][tx];
      out[m] = static_cast<T>(s);
    }
    __syncthreads();
  }
}

// inner > 1: one block per output (grid-stride over outputs); the threads share the outer*inner
// elements in flat order (coalesced along inner), then a block reduction.
template <class S>
EMBER_KERNEL void sum_oi_block_kernel(const typename S::value* x, std::int64_t outer,
                                      std::int64_t mid, std::int64_t inner,
                                      typename S::value* out) {
  using T = typename S::value;
  using Acc = typename S::acc;
  __shared__ Acc scratch[32];
  const std::int64_t nt = blockDim.x;
  const std::int64_t step_o = nt / inner, step_i = nt % inner;
  for (std::int64_t m = blockIdx.x; m < mid; m += gridDim.x) {
    Acc acc = Acc(0);
    std::int64_t o = static_cast<std::int64_t>(threadIdx.x) / inner;
    std::int64_t i = static_cast<std::int64_t>(threadIdx.x) - o * inner;
    while (o < outer) {
      acc += static_cast<Acc>(x[(o * mid + m) * inner + i]);
      o += step_o;
      i += step_i;
      if (i >= inner) {
        i -= inner;
        ++o;
      }
    }
    const Acc r = block_sum(acc, scratch);
    if (threadIdx.x == 0) out[m] = static_cast<T>(r);
  }
}

}  // namespace reduce_impl

// Elements of T the workspace of sum_all over n elements needs.
template <class T>
std::size_t reduce_workspace_elems(std::int64_t n) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "sum_all: float or double");
  return static_cast<std::size_t>(reduce_impl::sum_all_blocks(n)) * (std::is_same_v<T, float> ? 2 : 1);
}

// out[0] = T(sum of x[0, n)) * scale: scale 1 gives ember::sum, 1/n ember::mean. Accumulates in
// double like the CPU op. Two passes through `workspace` (reduce_workspace_elems<T>(n) elements);
// n == 0 gives 0 * scale.
template <class T>
void sum_all(const T* x, std::int64_t n, T* out, T scale, T* workspace, Stream stream,
             int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "sum_all: float or double");
  reduce_impl::check_warp_multiple(threads, "sum_all");
  EMBER_CHECK(n >= 0, "sum_all: negative size ", n);
  const auto blocks = static_cast<unsigned>(reduce_impl::sum_all_blocks(n));
  const bool vec = n > 0 && reinterpret_cast<std::uintptr_t>(x) % 16 == 0;
  EMBER_LAUNCH(reduce_impl::sum_partials_kernel<T>, blocks, threads, 0, stream)(x, n, workspace, vec);
  check_launch("sum_partials_kernel");
  EMBER_LAUNCH(reduce_impl::sum_final_kernel<T>, 1, threads, 0, stream)(
      workspace, static_cast<std::int64_t>(blocks), out, scale);
  check_launch("sum_final_kernel");
}

namespace reduce_impl {
inline void check_dim_reduce(const DimReduceParams& p, const char* what) {
  EMBER_CHECK(p.outer >= 0 && p.size > 0 && p.inner >= 0, what, ": bad shape [", p.outer, ", ",
              p.size, ", ", p.inner, "] (the reduced size must be positive)");
}
}  // namespace reduce_impl

// values [outer, inner] (null: indices only) and indices [outer, inner] <- the max (p.take_min:
// min) along the middle axis of the contiguous x [outer, size, inner], as cpu::extremum_dim.
template <class T>
void extremum_dim(const DimReduceParams& p, const T* x, T* values, std::int64_t* indices,
                  Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  reduce_impl::check_warp_multiple(threads, "extremum_dim");
  reduce_impl::check_dim_reduce(p, "extremum_dim");
  if (p.outputs() == 0) return;
  if (p.inner == 1) {
    EMBER_LAUNCH(reduce_impl::extremum_rows_kernel<T>, grid_for(p.outer, threads / 32), threads, 0,
                 stream)(p, x, values, indices);
    check_launch("extremum_rows_kernel");
  } else {
    EMBER_LAUNCH(reduce_impl::extremum_columns_kernel<T>, grid_for(p.outputs(), threads), threads,
                 0, stream)(p, x, values, indices);
    check_launch("extremum_columns_kernel");
  }
}

// gx [outer, size, inner] = the amax/amin gradient, (gy / count) * (x == y), as
// cpu::extremum_dim_backward (gx is overwritten).
template <class T>
void extremum_dim_backward(const DimReduceParams& p, const T* x, const T* y, const T* gy, T* gx,
                           Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  reduce_impl::check_dim_reduce(p, "extremum_dim_backward");
  if (p.outputs() == 0) return;
  EMBER_LAUNCH(reduce_impl::extremum_backward_kernel<T>, grid_for(p.outputs(), threads), threads, 0,
               stream)(p, x, y, gy, gx);
  check_launch("extremum_backward_kernel");
}

// gx [outer, size, inner] = gy [outer, inner] at the indices, 0 elsewhere, as
// cpu::index_dim_backward (gx is overwritten).
template <class T>
void index_dim_backward(const DimReduceParams& p, const T* gy, const std::int64_t* indices, T* gx,
                        Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  reduce_impl::check_dim_reduce(p, "index_dim_backward");
  const std::int64_t n = p.outer * p.size * p.inner;
  if (n == 0) return;
  EMBER_LAUNCH(reduce_impl::index_backward_kernel<T>, grid_for(n, threads), threads, 0, stream)(
      p, gy, indices, gx);
  check_launch("index_backward_kernel");
}

// out[0] = the number of rows r of x [rows, cols] whose argmax (as extremum_dim) equals labels[r]
// (ember::count_correct). out is overwritten.
template <class T>
void count_correct(const T* x, std::int64_t rows, std::int64_t cols, const std::int64_t* labels,
                   std::int64_t* out, Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  reduce_impl::check_warp_multiple(threads, "count_correct");
  EMBER_CHECK(rows >= 0 && (cols > 0 || rows == 0), "count_correct: bad shape [", rows, ", ", cols, "]");
  EMBER_LAUNCH(reduce_impl::assign_kernel<std::int64_t>, 1, 32, 0, stream)(out, std::int64_t{1},
                                                                          std::int64_t{0});
  check_launch("assign_kernel");
  if (rows == 0) return;
  const unsigned grid = grid_for(rows, threads / 32, 4096);
  EMBER_LAUNCH(reduce_impl::count_correct_kernel<T>, grid, threads, 0, stream)(x, rows, cols, labels, out);
  check_launch("count_correct_kernel");
}

// out[m] = sum over o < outer, i < inner of x[(o * mid + m) * inner + i], for a contiguous x,
// accumulated in Acc and rounded to T once. Deterministic: a fixed order for a given `threads`
// (a multiple of 32). Covers (N, K) -> (K) (outer N, inner 1), (N, C, HW) -> (C) and (K, R) -> (K).
template <class T, class Acc = T>
void sum_outer_inner(const T* x, std::int64_t outer, std::int64_t mid, std::int64_t inner, T* out,
                     Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  reduce_impl::check_warp_multiple(threads, "sum_outer_inner");
  EMBER_CHECK(outer >= 0 && mid >= 0 && inner >= 0, "sum_outer_inner: negative size");
  if (mid == 0) return;
  using S = reduce_impl::SumSpec<T, Acc>;
  const std::int64_t per_out = outer * inner;
  if (per_out == 0) {
    EMBER_LAUNCH(reduce_impl::assign_kernel<T>, grid_for(mid, threads, 4096), threads, 0, stream)(
        out, mid, T(0));
    check_launch("assign_kernel");
  } else if (per_out <= 32) {
    EMBER_LAUNCH(reduce_impl::sum_oi_serial_kernel<S>, grid_for(mid, threads, 4096), threads, 0,
                 stream)(x, outer, mid, inner, out);
    check_launch("sum_oi_serial_kernel");
  } else if (inner == 1) {
    const dim3 block(32, static_cast<unsigned>(threads / 32));
    EMBER_LAUNCH(reduce_impl::sum_oi_cols_kernel<S>, grid_for(mid, 32), block, 0, stream)(
        x, outer, mid, out);
    check_launch("sum_oi_cols_kernel");
  } else {
    const unsigned grid = static_cast<unsigned>(kmin<std::int64_t>(mid, 65535));
    EMBER_LAUNCH(reduce_impl::sum_oi_block_kernel<S>, grid, threads, 0, stream)(x, outer, mid,
                                                                              inner, out);
    check_launch("sum_oi_block_kernel");
  }
}

}  // namespace ember::kernels
