#pragma once
// CPU kernels of the elementwise engine (ops/elementwise.hpp), beside kernels/elementwise.cuh:
//   binary        out[i] = a[va(i)] (op) b[vb(i)]   broadcast strided views, out contiguous
//   unary         out[i] = op(a[i], s)              contiguous
//   sum_to        out[vout(i)] += x[vx(i)]          every element i of x's view, in C order
//   strided_copy  dst[vd(i)] = src[vs(i)]           (broadcast_to)
// The op code is switched on once per call; each case runs a loop over its own inline
// expression, the CUDA kernel's (binary_apply / unary_apply there), so that `add` compiles to a
// vectorised a + b loop and the two backends agree bit for bit (exp, log and pow aside on a
// GPU, whose math library differs from glibc's by a few ulp).

#include <array>
#include <cmath>
#include <cstdint>

#include "ember/backend/cpu/strided.hpp"
#include "ember/backend/device_backend.hpp"
#include "ember/backend/params.hpp"
#include "ember/core/parallel.hpp"

namespace ember::cpu {

namespace elementwise_detail {
// True when v walks its shape in C order without gaps (size-1 dimensions aside).
inline bool dense(const StridedView& v) {
  std::int64_t expect = 1;
  for (int d = v.rank - 1; d >= 0; --d) {
    if (v.shape[d] == 1) continue;
    if (v.strides[d] != expect) return false;
    expect *= v.shape[d];
  }
  return true;
}

template <class T, class F>
void binary_loop(const T* a, const StridedView& va, const T* b, const StridedView& vb, T* out,
                 std::int64_t n, F f) {
  if (dense(va) && dense(vb)) {
    const T* pa = a + va.offset;
    const T* pb = b + vb.offset;
    parallel_for(0, n, 1 << 15, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i) out[i] = f(pa[i], pb[i]);
    });
    return;
  }
  for_each_offsets<2>({&va, &vb}, n, [&](std::int64_t i, const std::array<std::int64_t, 2>& o) {
    out[i] = f(a[o[0]], b[o[1]]);
  });
}

template <class T, class F>
void unary_loop(const T* a, T* out, std::int64_t n, F f) {
  parallel_for(0, n, 1 << 15, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) out[i] = f(a[i]);
  });
}
}  // namespace elementwise_detail

// out (n, contiguous) <- a (op) b; va and vb have the output's shape.
template <class T>
void binary(backend::BinaryOp op, const T* a, const StridedView& va, const T* b,
            const StridedView& vb, T* out, std::int64_t n) {
  using backend::BinaryOp;
  auto run = [&](auto f) { elementwise_detail::binary_loop(a, va, b, vb, out, n, f); };
  switch (op) {
    case BinaryOp::add: return run([](T x, T y) { return x + y; });
    case BinaryOp::sub: return run([](T x, T y) { return x - y; });
    case BinaryOp::mul: return run([](T x, T y) { return x * y; });
    case BinaryOp::div: return run([](T x, T y) { return x / y; });
    case BinaryOp::pow: return run([](T x, T y) { return std::pow(x, y); });
    case BinaryOp::relu_grad: return run([](T g, T y) { return y > T(0) ? g : T(0); });
    case BinaryOp::max:  // a NaN operand gives NaN (the first one)
      return run([](T x, T y) { return x != x ? x : (y != y ? y : (x < y ? y : x)); });
    case BinaryOp::min:
      return run([](T x, T y) { return x != x ? x : (y != y ? y : (y < x ? y : x)); });
  }
}

// out (n) <- op(a (n), s), contiguous.
template <class T>
void unary(backend::UnaryOp op, const T* a, T* out, std::int64_t n, T s) {
  using backend::UnaryOp;
  auto run = [&](auto f) { elementwise_detail::unary_loop(a, out, n, f); };
  switch (op) {
    case UnaryOp::neg: return run([](T x) { return -x; });
    case UnaryOp::exp: return run([](T x) { return std::exp(x); });
    case UnaryOp::log: return run([](T x) { return std::log(x); });
    case UnaryOp::add_scalar: return run([s](T x) { return x + s; });
    case UnaryOp::mul_scalar: return run([s](T x) { return x * s; });
    case UnaryOp::pow_scalar: return run([s](T x) { return std::pow(x, s); });
    case UnaryOp::rsub_scalar: return run([s](T x) { return s - x; });
    case UnaryOp::relu: return run([](T x) { return x > T(0) ? x : (x != x ? x : T(0)); });
    case UnaryOp::sqrt: return run([](T x) { return std::sqrt(x); });
    case UnaryOp::abs: return run([](T x) { return std::abs(x); });
    case UnaryOp::rsqrt: return run([](T x) { return T(1) / std::sqrt(x); });
    case UnaryOp::sign:  // 0 for +-0 and NaN, as PyTorch
      return run([](T x) { return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0)); });
  }
}

// out (out_n elements, contiguous) <- x summed over the dimensions that vout broadcasts (vout
// reads out with x's shape, stride 0 on the summed dimensions; kernels/elementwise.cuh's sum_to
// has the full contract). One thread, x in C order, so the sums do not depend on threads.
template <class T>
void sum_to(const T* x, const StridedView& vx, T* out, const StridedView& vout, std::int64_t out_n) {
  for (std::int64_t i = 0; i < out_n; ++i) out[i] = T(0);
  std::int64_t n = 1;
  for (int d = 0; d < vx.rank; ++d) n *= vx.shape[d];
  for_each_offsets_serial<2>({&vx, &vout}, n,
                             [&](std::int64_t, const std::array<std::int64_t, 2>& o) {
    out[o[1] - vout.offset] += x[o[0]];
  });
}

// dst[vd(i)] = src[vs(i)] for the n elements of the views' common shape.
template <class T>
void strided_copy(const T* src, const StridedView& vs, T* dst, const StridedView& vd, std::int64_t n) {
  for_each_offsets<2>({&vs, &vd}, n, [&](std::int64_t, const std::array<std::int64_t, 2>& o) {
    dst[o[1]] = src[o[0]];
  });
}

}  // namespace ember::cpu
