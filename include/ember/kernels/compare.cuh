#pragma once
// Comparisons (eq, ne, lt, le, gt, ge into a uint8 mask), where (masked_fill is a where) and
// clamp, forward and backward. The element math is backend/cpu/compare.hpp's (the same
// expressions; ClampParams::apply and passes_gradient are shared), so results are bit-identical
// to the CPU ops.
//   compare  out[i] = a[va(i)] (op) b[vb(i)] ? 1 : 0
//   where    out[i] = cond[vc(i)] != 0 ? a[va(i)] : b[vb(i)]
//   clamp    y[i] = p.apply(x[i]);  gx[i] = p.passes_gradient(x[i]) ? gy[i] : 0
//   clamp with tensor bounds (and maximum, minimum):
//            y[i] = p.apply(x[vx(i)], lo[vlo(i)], hi[vhi(i)]);  p.gradients(gy[i], ...)
// Operand views have the output's shape (broadcast operands carry stride 0); out, y and gx are
// contiguous. The views are coalesced first (elementwise.cuh); operands that all end up flat
// take a flat grid-stride loop, the others decompose the flat index (in 32 bits when n fits).

#include <cstdint>
#include <type_traits>

#include "common.cuh"
#include "elementwise.cuh"

namespace ember::kernels {

namespace compare_impl {

// ---- math ---------------------------------------------------------------------------------------
template <CompareOp Op, class T>
EMBER_DEVICE bool compare_apply(T a, T b) {
  if constexpr (Op == CompareOp::eq) return a == b;
  else if constexpr (Op == CompareOp::ne) return a != b;
  else if constexpr (Op == CompareOp::lt) return a < b;
  else if constexpr (Op == CompareOp::le) return a <= b;
  else if constexpr (Op == CompareOp::gt) return a > b;
  else return a >= b;
}

// The offsets of element i in three views of one shape (one decomposition for all three).
template <class I>
EMBER_DEVICE void joint_offsets3(const StridedView& v0, const StridedView& v1, const StridedView& v2,
                                 I i, std::int64_t& o0, std::int64_t& o1, std::int64_t& o2) {
  o0 = v0.offset;
  o1 = v1.offset;
  o2 = v2.offset;
#pragma unroll
  for (int d = kMaxDims - 1; d >= 0; --d)
    if (d < v0.rank) {
      const I s = static_cast<I>(v0.shape[d]);
      const I q = i / s;
      const std::int64_t r = static_cast<std::int64_t>(i - q * s);
      o0 += r * v0.strides[d];
      o1 += r * v1.strides[d];
      o2 += r * v2.strides[d];
      i = q;
    }
}

template <class T, CompareOp Op>
struct CompareSpec {
  using type = T;
  static constexpr CompareOp op = Op;
};

// ---- kernels ------------------------------------------------------------------------------------
template <class S>
EMBER_KERNEL void compare_kernel(const typename S::type* a, StridedView va, const typename S::type* b,
                                 StridedView vb, std::uint8_t* out, std::int64_t n, bool idx32) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    std::int64_t ia = 0, ib = 0;
    if (idx32) elementwise_impl::joint_offsets(va, vb, static_cast<std::uint32_t>(i), ia, ib);
    else elementwise_impl::joint_offsets(va, vb, i, ia, ib);
    out[i] = compare_apply<S::op>(a[ia], b[ib]) ? 1 : 0;
  }
}

// cond, a and b flat after coalescing (pointers already offset).
template <class T>
EMBER_KERNEL void where_flat_kernel(const std::uint8_t* cond, const T* a, const T* b, T* out,
                                    std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    out[i] = cond[i] != 0 ? a[i] : b[i];
}

template <class T>
EMBER_KERNEL void where_strided_kernel(const std::uint8_t* cond, StridedView vc, const T* a,
                                       StridedView va, const T* b, StridedView vb, T* out,
                                       std::int64_t n, bool idx32) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    std::int64_t ic = 0, ia = 0, ib = 0;
    if (idx32) joint_offsets3(vc, va, vb, static_cast<std::uint32_t>(i), ic, ia, ib);
    else joint_offsets3(vc, va, vb, i, ic, ia, ib);
    out[i] = cond[ic] != 0 ? a[ia] : b[ib];
  }
}

template <class T>
EMBER_KERNEL void clamp_forward_kernel(ClampParams<T> p, const T* x, T* y, std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    y[i] = p.apply(x[i]);
}

template <class T>
EMBER_KERNEL void clamp_backward_kernel(ClampParams<T> p, const T* gy, const T* x, T* gx,
                                        std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    gx[i] = p.passes_gradient(x[i]) ? gy[i] : T(0);
}

template <class T>
EMBER_KERNEL void clamp_tensor_forward_kernel(ClampTensorParams<T> p, const T* x, StridedView vx,
                                              const T* lo, StridedView vlo, const T* hi,
                                              StridedView vhi, T* y, std::int64_t n, bool idx32) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    std::int64_t ix = 0, il = 0, ih = 0;
    if (idx32) joint_offsets3(vx, vlo, vhi, static_cast<std::uint32_t>(i), ix, il, ih);
    else joint_offsets3(vx, vlo, vhi, i, ix, il, ih);
    y[i] = p.apply(x[ix], p.has_min ? lo[il] : T(0), p.has_max ? hi[ih] : T(0));
  }
}

template <class T>
EMBER_KERNEL void clamp_tensor_backward_kernel(ClampTensorParams<T> p, const T* gy, const T* x,
                                               StridedView vx, const T* lo, StridedView vlo,
                                               const T* hi, StridedView vhi, T* gx, T* glo,
                                               T* ghi, std::int64_t n, bool idx32) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    std::int64_t ix = 0, il = 0, ih = 0;
    if (idx32) joint_offsets3(vx, vlo, vhi, static_cast<std::uint32_t>(i), ix, il, ih);
    else joint_offsets3(vx, vlo, vhi, i, ix, il, ih);
    T a, b, c;
    p.gradients(gy[i], x[ix], p.has_min ? lo[il] : T(0), p.has_max ? hi[ih] : T(0), a, b, c);
    if (gx != nullptr) gx[i] = a;
    if (glo != nullptr) glo[i] = b;
    if (ghi != nullptr) ghi[i] = c;
  }
}

template <class T, CompareOp Op>
void compare_launch(const T* a, StridedView va, const T* b, StridedView vb, std::uint8_t* out,
                    std::int64_t n, Stream stream, int threads) {
  (void)stream;  // (the CPU harness ignores streams)
  using namespace elementwise_impl;
  using S = CompareSpec<T, Op>;
  StridedView* views[2] = {&va, &vb};
  coalesce_views(views, 2);
  EMBER_LAUNCH(compare_kernel<S>, grid_1d(n, threads), threads, 0, stream)(
      a, va, b, vb, out, n, fits_u32(n));
  check_launch("compare_kernel");
}

// Checks three operand views of an n-element output (errors name `what`), then copies them
// into `out` coalesced; false when n is 0 (nothing to launch).
inline bool coalesced_views3(const char* what, const StridedView& v0, const StridedView& v1,
                             const StridedView& v2, std::int64_t n, StridedView (&out)[3]) {
  using namespace elementwise_impl;
  check_view(v0, what);
  check_view(v1, what);
  check_view(v2, what);
  EMBER_CHECK(same_shape(v0, v1) && same_shape(v0, v2) && view_numel(v0) == n, what,
              ": operand views disagree with each other or with the element count ", n);
  if (n == 0) return false;
  out[0] = v0;
  out[1] = v1;
  out[2] = v2;
  StridedView* views[3] = {&out[0], &out[1], &out[2]};
  coalesce_views(views, 3);
  return true;
}

}  // namespace compare_impl

// ---- launchers ----------------------------------------------------------------------------------
// out[i] = a[va.index(i)] (op) b[vb.index(i)] for i < n, out uint8 contiguous; va and vb have the
// output shape (rank <= 8, n elements).
template <class T>
void compare(CompareOp op, const T* a, const StridedView& va, const T* b, const StridedView& vb,
             std::uint8_t* out, std::int64_t n, Stream stream, int threads = 256) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "compare: float or double");
  using namespace elementwise_impl;
  check_view(va, "compare");
  check_view(vb, "compare");
  EMBER_CHECK(same_shape(va, vb) && view_numel(va) == n, "compare: operand views disagree with "
              "each other or with the element count ", n);
  if (n == 0) return;
  using namespace compare_impl;
  switch (op) {
    case CompareOp::eq: return compare_launch<T, CompareOp::eq>(a, va, b, vb, out, n, stream, threads);
    case CompareOp::ne: return compare_launch<T, CompareOp::ne>(a, va, b, vb, out, n, stream, threads);
    case CompareOp::lt: return compare_launch<T, CompareOp::lt>(a, va, b, vb, out, n, stream, threads);
    case CompareOp::le: return compare_launch<T, CompareOp::le>(a, va, b, vb, out, n, stream, threads);
    case CompareOp::gt: return compare_launch<T, CompareOp::gt>(a, va, b, vb, out, n, stream, threads);
    case CompareOp::ge: return compare_launch<T, CompareOp::ge>(a, va, b, vb, out, n, stream, threads);
  }
  EMBER_CHECK(false, "compare: unknown comparison ", static_cast<int>(op));
}

// out[i] = cond[vc.index(i)] != 0 ? a[va.index(i)] : b[vb.index(i)] for i < n, out contiguous
// and not overlapping an operand; vc, va and vb have the output shape (rank <= 8, n elements).
template <class T>
void where(const std::uint8_t* cond, const StridedView& vc, const T* a, const StridedView& va,
           const T* b, const StridedView& vb, T* out, std::int64_t n, Stream stream,
           int threads = 256) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "where: float or double");
  (void)stream;  // (the CPU harness ignores streams)
  using namespace elementwise_impl;
  StridedView v[3];
  if (!compare_impl::coalesced_views3("where", vc, va, vb, n, v)) return;
  const StridedView &c = v[0], &x = v[1], &y = v[2];
  if (is_flat(c) && is_flat(x) && is_flat(y)) {
    EMBER_LAUNCH(compare_impl::where_flat_kernel<T>, grid_1d(n, threads), threads, 0, stream)(
        cond + c.offset, a + x.offset, b + y.offset, out, n);
    check_launch("where_flat_kernel");
    return;
  }
  EMBER_LAUNCH(compare_impl::where_strided_kernel<T>, grid_1d(n, threads), threads, 0, stream)(
      cond, c, a, x, b, y, out, n, fits_u32(n));
  check_launch("where_strided_kernel");
}

// y[i] = p.apply(x[i]) for i < n, contiguous (y may be x).
template <class T>
void clamp_forward(const ClampParams<T>& p, const T* x, T* y, std::int64_t n, Stream stream,
                   int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(n >= 0, "clamp: negative size ", n);
  if (n == 0) return;
  EMBER_LAUNCH(compare_impl::clamp_forward_kernel<T>, elementwise_impl::grid_1d(n, threads), threads,
               0, stream)(p, x, y, n);
  check_launch("clamp_forward_kernel");
}

// gx[i] = p.passes_gradient(x[i]) ? gy[i] : 0 for i < n, contiguous.
template <class T>
void clamp_backward(const ClampParams<T>& p, const T* gy, const T* x, T* gx, std::int64_t n,
                    Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(n >= 0, "clamp backward: negative size ", n);
  if (n == 0) return;
  EMBER_LAUNCH(compare_impl::clamp_backward_kernel<T>, elementwise_impl::grid_1d(n, threads), threads,
               0, stream)(p, gy, x, gx, n);
  check_launch("clamp_backward_kernel");
}

// y[i] = p.apply(x[vx.index(i)], lo[vlo.index(i)], hi[vhi.index(i)]) for i < n, y contiguous;
// the views have the output shape (rank <= 8, n elements); an absent bound is not read.
template <class T>
void clamp_tensor_forward(const ClampTensorParams<T>& p, const T* x, const StridedView& vx,
                          const T* lo, const StridedView& vlo, const T* hi,
                          const StridedView& vhi, T* y, std::int64_t n, Stream stream,
                          int threads = 256) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "clamp: float or double");
  (void)stream;  // (the CPU harness ignores streams)
  using namespace elementwise_impl;
  StridedView v[3];
  if (!compare_impl::coalesced_views3("clamp", vx, vlo, vhi, n, v)) return;
  EMBER_LAUNCH(compare_impl::clamp_tensor_forward_kernel<T>, grid_1d(n, threads), threads, 0,
               stream)(p, x, v[0], lo, v[1], hi, v[2], y, n, fits_u32(n));
  check_launch("clamp_tensor_forward_kernel");
}

// p.gradients(gy[i], x, lo, hi) into gx[i], glo[i], ghi[i] for i < n (contiguous, the output's
// shape; a null one is not written), the operands read as in clamp_tensor_forward.
template <class T>
void clamp_tensor_backward(const ClampTensorParams<T>& p, const T* gy, const T* x,
                           const StridedView& vx, const T* lo, const StridedView& vlo,
                           const T* hi, const StridedView& vhi, T* gx, T* glo, T* ghi,
                           std::int64_t n, Stream stream, int threads = 256) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "clamp backward: float or double");
  (void)stream;  // (the CPU harness ignores streams)
  using namespace elementwise_impl;
  StridedView v[3];
  if (!compare_impl::coalesced_views3("clamp backward", vx, vlo, vhi, n, v)) return;
  EMBER_LAUNCH(compare_impl::clamp_tensor_backward_kernel<T>, grid_1d(n, threads), threads, 0,
               stream)(p, gy, x, v[0], lo, v[1], hi, v[2], gx, glo, ghi, n, fits_u32(n));
  check_launch("clamp_tensor_backward_kernel");
}

}  // namespace ember::kernels
