#pragma once
// Elementwise kernels: binary arithmetic over broadcast strided operands, unary maps, fill,
// strided copies (contiguous(), copy_ into views, broadcast_to), dtype casts, and sum_to (the
// reduction that undoes broadcasting).
//
// Host wrappers first simplify the strided views: size-1 dimensions are dropped and adjacent
// dimensions that every operand walks contiguously are merged. Contiguous operands then take a
// flat loop (16-byte vector loads when the pointers allow), strided ones a grid-stride loop that
// decomposes the flat index with 32-bit divisions when the size allows.
// The arithmetic of every element is the CPU op's (same formula, same order): results are
// bit-identical to ember's CPU ops, except exp/log/pow, which use CUDA's math library on a GPU
// (a few ulp from glibc's; identical on the CPU harness).

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common.cuh"
#include "reduce.cuh"

namespace ember::kernels {

enum class BinaryOp {
  add,
  sub,
  mul,
  div,
  pow,
  relu_grad,  // a where b > 0, else 0 (ReluBackward0 with a = grad, b = relu output)
  max,        // the larger; a NaN operand gives NaN (the first one, a before b)
  min,        // the smaller; NaN as max
};

enum class UnaryOp {
  neg,
  exp,
  log,
  add_scalar,   // x + s
  mul_scalar,   // x * s
  pow_scalar,   // x ^ s
  rsub_scalar,  // s - x
  relu,         // x > 0 ? x : 0, NaN stays NaN (ember::relu)
  sqrt,
  abs,
  rsqrt,  // 1 / sqrt(x) (a division, not the approximate rsqrtf: bit-identical to the CPU)
  sign,   // 1, -1 or 0 (0 for +-0 and NaN, as PyTorch's sign)
};

namespace elementwise_impl {

// ---- math, per precision ---------------------------------------------------------------------------
EMBER_DEVICE float kexp(float x) { return expf(x); }
EMBER_DEVICE double kexp(double x) { return ::exp(x); }
EMBER_DEVICE float klog(float x) { return logf(x); }
EMBER_DEVICE double klog(double x) { return ::log(x); }
EMBER_DEVICE float kpow(float x, float p) { return powf(x, p); }
EMBER_DEVICE double kpow(double x, double p) { return ::pow(x, p); }
EMBER_DEVICE float ksqrt(float x) { return sqrtf(x); }
EMBER_DEVICE double ksqrt(double x) { return ::sqrt(x); }
EMBER_DEVICE float kabs(float x) { return fabsf(x); }
EMBER_DEVICE double kabs(double x) { return ::fabs(x); }

template <class T>
EMBER_DEVICE T relu_value(T v) {
  return v > T(0) ? v : (v != v ? v : T(0));
}

template <BinaryOp Op, class T>
EMBER_DEVICE T binary_apply(T a, T b) {
  if constexpr (Op == BinaryOp::add) return a + b;
  else if constexpr (Op == BinaryOp::sub) return a - b;
  else if constexpr (Op == BinaryOp::mul) return a * b;
  else if constexpr (Op == BinaryOp::div) return a / b;
  else if constexpr (Op == BinaryOp::pow) return kpow(a, b);
  else if constexpr (Op == BinaryOp::relu_grad) return b > T(0) ? a : T(0);
  else if constexpr (Op == BinaryOp::max) return a != a ? a : (b != b ? b : (a < b ? b : a));
  else return a != a ? a : (b != b ? b : (b < a ? b : a));
}

template <UnaryOp Op, class T>
EMBER_DEVICE T unary_apply(T x, T s) {
  if constexpr (Op == UnaryOp::neg) return -x;
  else if constexpr (Op == UnaryOp::exp) return kexp(x);
  else if constexpr (Op == UnaryOp::log) return klog(x);
  else if constexpr (Op == UnaryOp::add_scalar) return x + s;
  else if constexpr (Op == UnaryOp::mul_scalar) return x * s;
  else if constexpr (Op == UnaryOp::pow_scalar) return kpow(x, s);
  else if constexpr (Op == UnaryOp::rsub_scalar) return s - x;
  else if constexpr (Op == UnaryOp::relu) return relu_value(x);
  else if constexpr (Op == UnaryOp::sqrt) return ksqrt(x);
  else if constexpr (Op == UnaryOp::abs) return kabs(x);
  else if constexpr (Op == UnaryOp::rsqrt) return T(1) / ksqrt(x);
  else return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
}

// ---- 16-byte vectors --------------------------------------------------------------------------------
template <class T>
struct Vec;
template <>
struct Vec<float> {
  using type = float4;
  static constexpr int width = 4;
};
template <>
struct Vec<double> {
  using type = double2;
  static constexpr int width = 2;
};

template <BinaryOp Op, class V>
EMBER_DEVICE V binary_vec(const V& a, const V& b) {
  V r;
  r.x = binary_apply<Op>(a.x, b.x);
  r.y = binary_apply<Op>(a.y, b.y);
  if constexpr (std::is_same_v<V, float4>) {
    r.z = binary_apply<Op>(a.z, b.z);
    r.w = binary_apply<Op>(a.w, b.w);
  }
  return r;
}

template <UnaryOp Op, class V, class T>
EMBER_DEVICE V unary_vec(const V& a, T s) {
  V r;
  r.x = unary_apply<Op>(a.x, s);
  r.y = unary_apply<Op>(a.y, s);
  if constexpr (std::is_same_v<V, float4>) {
    r.z = unary_apply<Op>(a.z, s);
    r.w = unary_apply<Op>(a.w, s);
  }
  return r;
}

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Grid for a grid-stride loop over `work` items (capped: each thread then takes a few).
inline unsigned grid_1d(std::int64_t work, int threads) { return grid_for(work, threads, 4096); }

// ---- strided indexing ---------------------------------------------------------------------------
// Storage offset of element i (C order) of a view; I is the type the division runs in (32-bit
// is much cheaper on the device, usable when the element count fits).
template <class I>
EMBER_DEVICE std::int64_t view_offset(const StridedView& v, I i) {
  std::int64_t off = v.offset;
#pragma unroll
  for (int d = kMaxDims - 1; d >= 0; --d)
    if (d < v.rank) {
      const I s = static_cast<I>(v.shape[d]);
      const I q = i / s;
      off += static_cast<std::int64_t>(i - q * s) * v.strides[d];
      i = q;
    }
  return off;
}

// The offsets of element i in two views of the same shape (one decomposition for both).
template <class I>
EMBER_DEVICE void joint_offsets(const StridedView& v0, const StridedView& v1, I i,
                                std::int64_t& o0, std::int64_t& o1) {
  o0 = v0.offset;
  o1 = v1.offset;
#pragma unroll
  for (int d = kMaxDims - 1; d >= 0; --d)
    if (d < v0.rank) {
      const I s = static_cast<I>(v0.shape[d]);
      const I q = i / s;
      const std::int64_t r = static_cast<std::int64_t>(i - q * s);
      o0 += r * v0.strides[d];
      o1 += r * v1.strides[d];
      i = q;
    }
}

inline std::int64_t view_numel(const StridedView& v) {
  std::int64_t n = 1;
  for (int d = 0; d < v.rank; ++d) n *= v.shape[d];
  return n;
}

inline bool same_shape(const StridedView& a, const StridedView& b) {
  if (a.rank != b.rank) return false;
  for (int d = 0; d < a.rank; ++d)
    if (a.shape[d] != b.shape[d]) return false;
  return true;
}

inline void check_view(const StridedView& v, const char* what) {
  EMBER_CHECK(v.rank >= 0 && v.rank <= kMaxDims, what, ": view rank ", v.rank, " is not in [0, ",
              kMaxDims, "]");
  for (int d = 0; d < v.rank; ++d) EMBER_CHECK(v.shape[d] >= 0, what, ": negative view size");
}

// Rewrites `count` views of one common shape (no zero-size dimension) into the fewest
// dimensions with the same element-to-storage map: size-1 dimensions are dropped, and dimension d
// merges into d - 1 when every view has stride[d - 1] == stride[d] * shape[d] (broadcast
// dimensions, stride 0, merge with each other).
inline void coalesce_views(StridedView* const* views, int count) {
  if (count == 0) return;
  const int rank = views[0]->rank;
  std::int64_t shape[kMaxDims] = {};
  std::int64_t strides[4][kMaxDims] = {};
  int out = 0;
  for (int d = 0; d < rank; ++d) {
    const std::int64_t s = views[0]->shape[d];
    if (s == 1) continue;
    bool merge = out > 0;
    for (int v = 0; v < count && merge; ++v)
      merge = strides[v][out - 1] == views[v]->strides[d] * s;
    if (merge) {
      shape[out - 1] *= s;
      for (int v = 0; v < count; ++v) strides[v][out - 1] = views[v]->strides[d];
    } else {
      shape[out] = s;
      for (int v = 0; v < count; ++v) strides[v][out] = views[v]->strides[d];
      ++out;
    }
  }
  for (int v = 0; v < count; ++v) {
    StridedView& w = *views[v];
    w.rank = out;
    for (int d = 0; d < kMaxDims; ++d) {
      w.shape[d] = d < out ? shape[d] : 0;
      w.strides[d] = d < out ? strides[v][d] : 0;
    }
  }
}

// After coalescing: element i sits at offset + i.
inline bool is_flat(const StridedView& v) { return v.rank == 0 || (v.rank == 1 && v.strides[0] == 1); }

inline bool fits_u32(std::int64_t n) { return n <= 0xffffffffLL; }

// ---- binary -----------------------------------------------------------------------------------------
template <class T, BinaryOp Op>
struct BinarySpec {
  using type = T;
  static constexpr BinaryOp op = Op;
};

template <class S>
EMBER_KERNEL void binary_flat_kernel(const typename S::type* a, const typename S::type* b,
                                     typename S::type* out, std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    out[i] = binary_apply<S::op>(a[i], b[i]);
}

// a, b and out 16-byte aligned: vectors, then the n % width tail.
template <class S>
EMBER_KERNEL void binary_vec_kernel(const typename S::type* a, const typename S::type* b,
                                    typename S::type* out, std::int64_t n) {
  using T = typename S::type;
  using V = typename Vec<T>::type;
  constexpr int W = Vec<T>::width;
  const std::int64_t tid = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t nv = n / W;
  const V* av = reinterpret_cast<const V*>(a);
  const V* bv = reinterpret_cast<const V*>(b);
  V* ov = reinterpret_cast<V*>(out);
  for (std::int64_t i = tid; i < nv; i += stride) ov[i] = binary_vec<S::op>(av[i], bv[i]);
  for (std::int64_t i = nv * W + tid; i < n; i += stride) out[i] = binary_apply<S::op>(a[i], b[i]);
}

template <class S>
EMBER_KERNEL void binary_strided_kernel(const typename S::type* a, StridedView va,
                                        const typename S::type* b, StridedView vb,
                                        typename S::type* out, std::int64_t n, bool idx32) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    std::int64_t ia = 0, ib = 0;
    if (idx32) joint_offsets(va, vb, static_cast<std::uint32_t>(i), ia, ib);
    else joint_offsets(va, vb, i, ia, ib);
    out[i] = binary_apply<S::op>(a[ia], b[ib]);
  }
}

template <class T, BinaryOp Op>
void binary_launch(const T* a, StridedView va, const T* b, StridedView vb, T* out, std::int64_t n,
                   Stream stream, int threads) {
  (void)stream;  // (the CPU harness ignores streams)
  using S = BinarySpec<T, Op>;
  StridedView* views[2] = {&va, &vb};
  coalesce_views(views, 2);
  if (is_flat(va) && is_flat(vb)) {
    const T* pa = a + va.offset;
    const T* pb = b + vb.offset;
    if (aligned16(pa) && aligned16(pb) && aligned16(out)) {
      EMBER_LAUNCH(binary_vec_kernel<S>, grid_1d(ceil_div(n, Vec<T>::width), threads), threads, 0,
                   stream)(pa, pb, out, n);
      check_launch("binary_vec_kernel");
    } else {
      EMBER_LAUNCH(binary_flat_kernel<S>, grid_1d(n, threads), threads, 0, stream)(pa, pb, out, n);
      check_launch("binary_flat_kernel");
    }
  } else {
    EMBER_LAUNCH(binary_strided_kernel<S>, grid_1d(n, threads), threads, 0, stream)(
        a, va, b, vb, out, n, fits_u32(n));
    check_launch("binary_strided_kernel");
  }
}

// ---- unary ------------------------------------------------------------------------------------------
template <class T, UnaryOp Op>
struct UnarySpec {
  using type = T;
  static constexpr UnaryOp op = Op;
};

template <class S>
EMBER_KERNEL void unary_flat_kernel(const typename S::type* a, typename S::type* out,
                                    std::int64_t n, typename S::type s) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    out[i] = unary_apply<S::op>(a[i], s);
}

template <class S>
EMBER_KERNEL void unary_vec_kernel(const typename S::type* a, typename S::type* out,
                                   std::int64_t n, typename S::type s) {
  using T = typename S::type;
  using V = typename Vec<T>::type;
  constexpr int W = Vec<T>::width;
  const std::int64_t tid = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t nv = n / W;
  const V* av = reinterpret_cast<const V*>(a);
  V* ov = reinterpret_cast<V*>(out);
  for (std::int64_t i = tid; i < nv; i += stride) ov[i] = unary_vec<S::op>(av[i], s);
  for (std::int64_t i = nv * W + tid; i < n; i += stride) out[i] = unary_apply<S::op>(a[i], s);
}

template <class T, UnaryOp Op>
void unary_launch(const T* a, T* out, std::int64_t n, T scalar, Stream stream, int threads) {
  (void)stream;  // (the CPU harness ignores streams)
  using S = UnarySpec<T, Op>;
  if (aligned16(a) && aligned16(out)) {
    EMBER_LAUNCH(unary_vec_kernel<S>, grid_1d(ceil_div(n, Vec<T>::width), threads), threads, 0,
                 stream)(a, out, n, scalar);
    check_launch("unary_vec_kernel");
  } else {
    EMBER_LAUNCH(unary_flat_kernel<S>, grid_1d(n, threads), threads, 0, stream)(a, out, n, scalar);
    check_launch("unary_flat_kernel");
  }
}

// ---- fill, copy, cast ---------------------------------------------------------------------------------
template <class T>
EMBER_KERNEL void fill_kernel(T* out, std::int64_t n, T value) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    out[i] = value;
}

// out 16-byte aligned, T float or double.
template <class T>
EMBER_KERNEL void fill_vec_kernel(T* out, std::int64_t n, T value) {
  using V = typename Vec<T>::type;
  constexpr int W = Vec<T>::width;
  const std::int64_t tid = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t nv = n / W;
  V v;
  v.x = value;
  v.y = value;
  if constexpr (W == 4) {
    v.z = value;
    v.w = value;
  }
  V* ov = reinterpret_cast<V*>(out);
  for (std::int64_t i = tid; i < nv; i += stride) ov[i] = v;
  for (std::int64_t i = nv * W + tid; i < n; i += stride) out[i] = value;
}

// dst[i] = src[i] for contiguous arrays; src and dst 16-byte aligned: the bulk moves as int4.
template <class T>
EMBER_KERNEL void copy_vec_kernel(const T* src, T* dst, std::int64_t n) {
  constexpr std::int64_t per = static_cast<std::int64_t>(16 / sizeof(T));
  const std::int64_t tid = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t nv = n / per;
  const int4* sv = reinterpret_cast<const int4*>(src);
  int4* dv = reinterpret_cast<int4*>(dst);
  for (std::int64_t i = tid; i < nv; i += stride) dv[i] = sv[i];
  for (std::int64_t i = nv * per + tid; i < n; i += stride) dst[i] = src[i];
}

template <class T>
EMBER_KERNEL void copy_flat_kernel(const T* src, T* dst, std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    dst[i] = src[i];
}

// joint: both views have the same shape (one index decomposition serves both).
template <class T>
EMBER_KERNEL void copy_strided_kernel(const T* src, StridedView vs, T* dst, StridedView vd,
                                      std::int64_t n, bool joint, bool idx32) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    std::int64_t is = 0, id = 0;
    if (joint) {
      if (idx32) joint_offsets(vs, vd, static_cast<std::uint32_t>(i), is, id);
      else joint_offsets(vs, vd, i, is, id);
    } else if (idx32) {
      is = view_offset(vs, static_cast<std::uint32_t>(i));
      id = view_offset(vd, static_cast<std::uint32_t>(i));
    } else {
      is = view_offset(vs, i);
      id = view_offset(vd, i);
    }
    dst[id] = src[is];
  }
}

template <class S, class D>
struct CastSpec {
  using from = S;
  using to = D;
};

template <class C>
EMBER_KERNEL void cast_kernel(const typename C::from* src, typename C::to* dst, std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    dst[i] = static_cast<typename C::to>(src[i]);
}

// ---- sum_to -------------------------------------------------------------------------------------------
// out[j] = sum over k < inner_n of g[outer.index(j) + inner.index(k)] (outer carries g's offset,
// inner none), one thread per output, k in C order: for small reductions; bit-identical to the
// CPU's sequential sum.
template <class T>
EMBER_KERNEL void sum_to_serial_kernel(const T* g, StridedView outer, StridedView inner, T* out,
                                       std::int64_t out_n, std::int64_t inner_n, bool idx32) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < out_n;
       j += stride) {
    const std::int64_t base = idx32 ? view_offset(outer, static_cast<std::uint32_t>(j)) : view_offset(outer, j);
    T acc = T(0);
    for (std::int64_t k = 0; k < inner_n; ++k)
      acc += g[base + (idx32 ? view_offset(inner, static_cast<std::uint32_t>(k)) : view_offset(inner, k))];
    out[j] = acc;
  }
}

// The same with one block per output (grid-stride over outputs) and a block reduction.
template <class T>
EMBER_KERNEL void sum_to_block_kernel(const T* g, StridedView outer, StridedView inner, T* out,
                                      std::int64_t out_n, std::int64_t inner_n, bool idx32) {
  __shared__ T scratch[32];
  for (std::int64_t j = blockIdx.x; j < out_n; j += gridDim.x) {
    const std::int64_t base = idx32 ? view_offset(outer, static_cast<std::uint32_t>(j)) : view_offset(outer, j);
    T acc = T(0);
    for (std::int64_t k = threadIdx.x; k < inner_n; k += blockDim.x)
      acc += g[base + (idx32 ? view_offset(inner, static_cast<std::uint32_t>(k)) : view_offset(inner, k))];
    const T r = reduce_impl::block_sum(acc, scratch);
    if (threadIdx.x == 0) out[j] = r;
  }
}

}  // namespace elementwise_impl

// out[i] = a[va.index(i)] op b[vb.index(i)] for i < n, out contiguous. va and vb have the output
// shape (rank <= 8, n elements); a broadcast operand has stride 0 along the expanded dimensions.
// out may be the same array as an operand only if that operand's view is contiguous (offset 0).
template <class T>
void binary(BinaryOp op, const T* a, const StridedView& va, const T* b, const StridedView& vb,
            T* out, std::int64_t n, Stream stream, int threads = 256) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "binary: float or double");
  using namespace elementwise_impl;
  check_view(va, "binary");
  check_view(vb, "binary");
  EMBER_CHECK(same_shape(va, vb) && view_numel(va) == n, "binary: operand views disagree with each "
              "other or with the element count ", n);
  if (n == 0) return;
  switch (op) {
    case BinaryOp::add: return binary_launch<T, BinaryOp::add>(a, va, b, vb, out, n, stream, threads);
    case BinaryOp::sub: return binary_launch<T, BinaryOp::sub>(a, va, b, vb, out, n, stream, threads);
    case BinaryOp::mul: return binary_launch<T, BinaryOp::mul>(a, va, b, vb, out, n, stream, threads);
    case BinaryOp::div: return binary_launch<T, BinaryOp::div>(a, va, b, vb, out, n, stream, threads);
    case BinaryOp::pow: return binary_launch<T, BinaryOp::pow>(a, va, b, vb, out, n, stream, threads);
    case BinaryOp::relu_grad:
      return binary_launch<T, BinaryOp::relu_grad>(a, va, b, vb, out, n, stream, threads);
    case BinaryOp::max: return binary_launch<T, BinaryOp::max>(a, va, b, vb, out, n, stream, threads);
    case BinaryOp::min: return binary_launch<T, BinaryOp::min>(a, va, b, vb, out, n, stream, threads);
  }
  EMBER_CHECK(false, "binary: unknown operation ", static_cast<int>(op));
}

// out[i] = op(a[i]) for contiguous a and out (out may be a). `scalar` is s of the scalar ops.
template <class T>
void unary(UnaryOp op, const T* a, T* out, std::int64_t n, T scalar, Stream stream,
           int threads = 256) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "unary: float or double");
  using namespace elementwise_impl;
  EMBER_CHECK(n >= 0, "unary: negative size ", n);
  if (n == 0) return;
  switch (op) {
    case UnaryOp::neg: return unary_launch<T, UnaryOp::neg>(a, out, n, scalar, stream, threads);
    case UnaryOp::exp: return unary_launch<T, UnaryOp::exp>(a, out, n, scalar, stream, threads);
    case UnaryOp::log: return unary_launch<T, UnaryOp::log>(a, out, n, scalar, stream, threads);
    case UnaryOp::add_scalar: return unary_launch<T, UnaryOp::add_scalar>(a, out, n, scalar, stream, threads);
    case UnaryOp::mul_scalar: return unary_launch<T, UnaryOp::mul_scalar>(a, out, n, scalar, stream, threads);
    case UnaryOp::pow_scalar: return unary_launch<T, UnaryOp::pow_scalar>(a, out, n, scalar, stream, threads);
    case UnaryOp::rsub_scalar:
      return unary_launch<T, UnaryOp::rsub_scalar>(a, out, n, scalar, stream, threads);
    case UnaryOp::relu: return unary_launch<T, UnaryOp::relu>(a, out, n, scalar, stream, threads);
    case UnaryOp::sqrt: return unary_launch<T, UnaryOp::sqrt>(a, out, n, scalar, stream, threads);
    case UnaryOp::abs: return unary_launch<T, UnaryOp::abs>(a, out, n, scalar, stream, threads);
    case UnaryOp::rsqrt: return unary_launch<T, UnaryOp::rsqrt>(a, out, n, scalar, stream, threads);
    case UnaryOp::sign: return unary_launch<T, UnaryOp::sign>(a, out, n, scalar, stream, threads);
  }
  EMBER_CHECK(false, "unary: unknown operation ", static_cast<int>(op));
}

// out[i] = value for i < n (any ember element type).
template <class T>
void fill(T* out, std::int64_t n, T value, Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  using namespace elementwise_impl;
  EMBER_CHECK(n >= 0, "fill: negative size ", n);
  if (n == 0) return;
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    if (aligned16(out)) {
      EMBER_LAUNCH(fill_vec_kernel<T>, grid_1d(ceil_div(n, Vec<T>::width), threads), threads, 0,
                   stream)(out, n, value);
      check_launch("fill_vec_kernel");
      return;
    }
  }
  EMBER_LAUNCH(fill_kernel<T>, grid_1d(n, threads), threads, 0, stream)(out, n, value);
  check_launch("fill_kernel");
}

// dst[vdst.index(i)] = src[vsrc.index(i)] for i < n, any element type. Each view indexes its own
// shape in C order (the two shapes are normally equal; a different shape with n elements reads or
// writes in that shape's C order, as reshape does). The destination elements must be distinct
// (no broadcast dst) and must not overlap the source unless they are the same elements.
template <class T>
void strided_copy(const T* src, const StridedView& vsrc, T* dst, const StridedView& vdst,
                  std::int64_t n, Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  using namespace elementwise_impl;
  check_view(vsrc, "strided_copy");
  check_view(vdst, "strided_copy");
  EMBER_CHECK(view_numel(vsrc) == n && view_numel(vdst) == n, "strided_copy: views of ",
              view_numel(vsrc), " and ", view_numel(vdst), " elements for a copy of ", n);
  if (n == 0) return;
  StridedView vs = vsrc, vd = vdst;
  const bool joint = same_shape(vs, vd);
  if (joint) {
    StridedView* views[2] = {&vs, &vd};
    coalesce_views(views, 2);
  } else {
    StridedView* v0[1] = {&vs};
    StridedView* v1[1] = {&vd};
    coalesce_views(v0, 1);
    coalesce_views(v1, 1);
  }
  if (is_flat(vs) && is_flat(vd)) {
    const T* ps = src + vs.offset;
    T* pd = dst + vd.offset;
    if (aligned16(ps) && aligned16(pd)) {
      EMBER_LAUNCH(copy_vec_kernel<T>, grid_1d(ceil_div(n * static_cast<std::int64_t>(sizeof(T)), 16), threads),
                   threads, 0, stream)(ps, pd, n);
      check_launch("copy_vec_kernel");
    } else {
      EMBER_LAUNCH(copy_flat_kernel<T>, grid_1d(n, threads), threads, 0, stream)(ps, pd, n);
      check_launch("copy_flat_kernel");
    }
    return;
  }
  EMBER_LAUNCH(copy_strided_kernel<T>, grid_1d(n, threads), threads, 0, stream)(
      src, vs, dst, vd, n, joint, fits_u32(n));
  check_launch("copy_strided_kernel");
}

// dst[i] = static_cast<D>(src[i]) for contiguous arrays of any two element types (as
// Tensor::cast; a float out of D's range is undefined there too).
template <class S, class D>
void cast(const S* src, D* dst, std::int64_t n, Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  using namespace elementwise_impl;
  EMBER_CHECK(n >= 0, "cast: negative size ", n);
  if (n == 0) return;
  using C = CastSpec<S, D>;
  EMBER_LAUNCH(cast_kernel<C>, grid_1d(n, threads), threads, 0, stream)(src, dst, n);
  check_launch("cast_kernel");
}

// Sums g down to a broadcast-reduced shape (the backward of broadcasting; ember::sum_to).
//   * vg: g's view, rank R <= 8, shape G (any strides, offset into g);
//   * vout: out as a rank-R view, in either of two spellings:
//       - broadcast: vout.shape == G, stride 0 on the summed dimensions (what
//         broadcast_view(out, g.shape()) gives), or
//       - reduced: vout.shape[d] == 1 on the summed dimensions (the target shape left-padded with
//         1s to rank R);
//     dimension d is summed over when G[d] != 1 and (vout.shape[d] == 1 or vout.strides[d] == 0).
//     out is a contiguous array of out_n elements (the product of the kept sizes) in C order of
//     the kept dimensions; vout's offset and nonzero strides are not read.
//   * each out element is the sum of its preimage in a fixed order (deterministic for a given
//     `threads`, a multiple of 32), accumulated in T like the CPU op: small reductions
//     (<= 32 terms) sum sequentially in C order, bit-identical to ember::sum_to; larger ones use a
//     tree and agree with it to rounding. (N, K) -> (1, K) and (N, C, H, W) -> (1, C, 1, 1) of a
//     contiguous g take coalesced column / per-channel block reductions.
//   * an empty g gives zeros.
template <class T>
void sum_to(const T* g, const StridedView& vg, T* out, const StridedView& vout, std::int64_t out_n,
            Stream stream, int threads = 256) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "sum_to: float or double");
  using namespace elementwise_impl;
  reduce_impl::check_warp_multiple(threads, "sum_to");
  check_view(vg, "sum_to");
  check_view(vout, "sum_to");
  EMBER_CHECK(vg.rank == vout.rank, "sum_to: the output view has rank ", vout.rank,
              ", the input ", vg.rank);
  for (int d = 0; d < vg.rank; ++d)
    EMBER_CHECK(vout.shape[d] == vg.shape[d] || vout.shape[d] == 1, "sum_to: dimension ", d,
                " of size ", vg.shape[d], " cannot sum to ", vout.shape[d]);
  if (out_n == 0) return;
  bool summed[kMaxDims] = {};
  std::int64_t kept_n = 1;
  for (int d = 0; d < vg.rank; ++d) {
    summed[d] = vg.shape[d] != 1 && (vout.shape[d] == 1 || vout.strides[d] == 0);
    if (!summed[d]) kept_n *= vg.shape[d];
  }
  EMBER_CHECK(kept_n == out_n, "sum_to: the kept dimensions hold ", kept_n, " elements, not out_n = ",
              out_n);
  const std::int64_t n = view_numel(vg);
  if (n == 0) {
    fill(out, out_n, T(0), stream, threads);
    return;
  }
  // Split g's dimensions into kept ones (outer view, C order = out's order) and summed ones
  // (inner view), each coalesced on its own.
  StridedView outer, inner;
  outer.offset = vg.offset;
  inner.offset = 0;
  for (int d = 0; d < vg.rank; ++d) {
    if (vg.shape[d] == 1) continue;
    StridedView& v = summed[d] ? inner : outer;
    v.shape[v.rank] = vg.shape[d];
    v.strides[v.rank] = vg.strides[d];
    ++v.rank;
  }
  // Order in g: whether every summed dimension comes before (`pre`) or after every kept one.
  int first_kept = vg.rank, last_kept = -1, n_inner_before = 0, n_inner_after = 0;
  for (int d = 0; d < vg.rank; ++d)
    if (vg.shape[d] != 1 && !summed[d]) {
      first_kept = kmin(first_kept, d);
      last_kept = kmax(last_kept, d);
    }
  for (int d = 0; d < vg.rank; ++d)
    if (summed[d]) {
      if (d < first_kept) ++n_inner_before;
      else if (d > last_kept) ++n_inner_after;
    }
  const bool summed_outside_kept = n_inner_before + n_inner_after == inner.rank;
  {
    StridedView* vo[1] = {&outer};
    StridedView* vi[1] = {&inner};
    coalesce_views(vo, 1);
    coalesce_views(vi, 1);
  }
  const std::int64_t inner_n = view_numel(inner);
  // g contiguous (its own C-order strides, ignoring size-1 dimensions)?
  bool contiguous = true;
  {
    std::int64_t expect = 1;
    for (int d = vg.rank - 1; d >= 0 && contiguous; --d) {
      if (vg.shape[d] == 1) continue;
      contiguous = vg.strides[d] == expect;
      expect *= vg.shape[d];
    }
  }
  if (inner_n > 32 && contiguous && summed_outside_kept) {
    // g is [pre, kept, post] in C order: out[m] = sum over (p, q) of g[(p * kept + m) * post + q].
    // (A full reduction counts as all "post": one block sums everything.)
    std::int64_t pre = 1, post = 1;
    for (int d = 0; d < vg.rank; ++d) {
      if (!summed[d]) continue;
      if (d < first_kept && last_kept >= 0) pre *= vg.shape[d];
      else post *= vg.shape[d];
    }
    sum_outer_inner<T, T>(g + vg.offset, pre, out_n, post, out, stream, threads);
    return;
  }
  const bool idx32 = fits_u32(n);
  if (inner_n <= 32) {
    EMBER_LAUNCH(sum_to_serial_kernel<T>, grid_1d(out_n, threads), threads, 0, stream)(
        g, outer, inner, out, out_n, inner_n, idx32);
    check_launch("sum_to_serial_kernel");
  } else {
    const auto grid = static_cast<unsigned>(kmin<std::int64_t>(out_n, 65535));
    EMBER_LAUNCH(sum_to_block_kernel<T>, grid, threads, 0, stream)(g, outer, inner, out, out_n,
                                                                   inner_n, idx32);
    check_launch("sum_to_block_kernel");
  }
}

}  // namespace ember::kernels
