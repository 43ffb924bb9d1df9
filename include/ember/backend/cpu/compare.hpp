#pragma once
// CPU kernels of the comparison ops (eq, ne, lt, le, gt, ge), where (and masked_fill) and clamp,
// threaded over elements. kernels/compare.cuh runs the same expressions, so the two agree
// exactly.
//   compare  out[i] = a[i] (op) b[i] ? 1 : 0       over broadcast strided views, out uint8
//   where    out[i] = cond[i] != 0 ? a[i] : b[i]   over broadcast strided views
//   clamp    y[i] = p.apply(x[i]);  gx[i] = p.passes_gradient(x[i]) ? gy[i] : 0   (ClampParams)
//   clamp with tensor bounds (and maximum, minimum), over broadcast strided views:
//            y[i] = p.apply(x, lo, hi);  p.gradients(gy[i], x, lo, hi) (ClampTensorParams)

#include <array>
#include <cstddef>
#include <cstdint>

#include "ember/backend/params.hpp"
#include "ember/backend/cpu/strided.hpp"
#include "ember/core/parallel.hpp"

namespace ember::cpu {

namespace compare_detail {
template <class T>
bool compare_apply(CompareOp op, T a, T b) {
  switch (op) {
    case CompareOp::eq: return a == b;
    case CompareOp::ne: return a != b;
    case CompareOp::lt: return a < b;
    case CompareOp::le: return a <= b;
    case CompareOp::gt: return a > b;
    case CompareOp::ge: return a >= b;
  }
  return false;
}
}  // namespace compare_detail

// out (n, contiguous) <- a (op) b; va and vb have the output's shape (rank <= 8).
template <class T>
void compare(CompareOp op, const T* a, const StridedView& va, const T* b, const StridedView& vb,
             std::uint8_t* out, std::int64_t n) {
  for_each_offsets<2>({&va, &vb}, n, [&](std::int64_t i, const std::array<std::int64_t, 2>& o) {
    out[i] = compare_detail::compare_apply(op, a[o[0]], b[o[1]]) ? 1 : 0;
  });
}

// out (n, contiguous) <- cond ? a : b; vc, va and vb have the output's shape (rank <= 8).
template <class T>
void where(const std::uint8_t* cond, const StridedView& vc, const T* a, const StridedView& va,
           const T* b, const StridedView& vb, T* out, std::int64_t n) {
  for_each_offsets<3>({&vc, &va, &vb}, n,
                                      [&](std::int64_t i, const std::array<std::int64_t, 3>& o) {
    out[i] = cond[o[0]] != 0 ? a[o[1]] : b[o[2]];
  });
}

// y (n) <- clamp(x (n)), contiguous
template <class T>
void clamp_forward(const ClampParams<T>& p, const T* x, T* y, std::int64_t n) {
  parallel_for(0, n, 1 << 15, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) y[i] = p.apply(x[i]);
  });
}

// gx (n) <- gy where min < x < max, else 0; contiguous
template <class T>
void clamp_backward(const ClampParams<T>& p, const T* gy, const T* x, T* gx, std::int64_t n) {
  parallel_for(0, n, 1 << 15, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) gx[i] = p.passes_gradient(x[i]) ? gy[i] : T(0);
  });
}

// y (n, contiguous) <- p.apply(x, lo, hi), the three read through views of the output's shape
// (rank <= 8); an absent bound's pointer and view are not read.
template <class T>
void clamp_tensor_forward(const ClampTensorParams<T>& p, const T* x, const StridedView& vx,
                          const T* lo, const StridedView& vlo, const T* hi,
                          const StridedView& vhi, T* y, std::int64_t n) {
  for_each_offsets<3>({&vx, &vlo, &vhi}, n,
                      [&](std::int64_t i, const std::array<std::int64_t, 3>& o) {
    y[i] = p.apply(x[o[0]], p.has_min ? lo[o[1]] : T(0), p.has_max ? hi[o[2]] : T(0));
  });
}

// gx, glo, ghi (n each, contiguous, in the output's shape; any may be null: not computed) <-
// p.gradients(gy[i], x, lo, hi).
template <class T>
void clamp_tensor_backward(const ClampTensorParams<T>& p, const T* gy, const T* x,
                           const StridedView& vx, const T* lo, const StridedView& vlo,
                           const T* hi, const StridedView& vhi, T* gx, T* glo, T* ghi,
                           std::int64_t n) {
  for_each_offsets<3>({&vx, &vlo, &vhi}, n,
                      [&](std::int64_t i, const std::array<std::int64_t, 3>& o) {
    T a, b, c;
    p.gradients(gy[i], x[o[0]], p.has_min ? lo[o[1]] : T(0), p.has_max ? hi[o[2]] : T(0), a, b, c);
    if (gx != nullptr) gx[i] = a;
    if (glo != nullptr) glo[i] = b;
    if (ghi != nullptr) ghi[i] = c;
  });
}

}  // namespace ember::cpu
