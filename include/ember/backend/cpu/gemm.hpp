#pragma once
// Row-major GEMM over raw pointers through Eigen maps, threaded over the larger output
// dimension with ember's pool:  C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.

#include "ember/core/simd.hpp"  // first: <immintrin.h> before Eigen includes it (see there)

#include <Eigen/Core>
#include <cstdint>

#include "ember/backend/params.hpp"
#include "ember/core/parallel.hpp"

namespace ember::cpu {

namespace detail {
template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstMap = Eigen::Map<const RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using Map = Eigen::Map<RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

// One block of rows [r0, r1) and columns [c0, c1) of C.
template <class T>
void gemm_block(const GemmParams& p, T alpha, const T* a, const T* b, T beta, T* c,
                std::int64_t r0, std::int64_t r1, std::int64_t c0, std::int64_t c1) {
  const std::int64_t rows = r1 - r0, cols = c1 - c0;
  Map<T> cm(c + r0 * p.ldc + c0, rows, cols, Eigen::OuterStride<>(p.ldc));
  // op(A) rows r0..r1: A stored [M,K] (row r at a + r*lda) or [K,M] (column r at a + r).
  const T* a_block = p.trans_a ? a + r0 : a + r0 * p.lda;
  const T* b_block = p.trans_b ? b + c0 * p.ldb : b + c0;
  auto run = [&](const auto& am, const auto& bm) {
    if (beta == T(0)) cm.noalias() = alpha * (am * bm);
    else {
      if (beta != T(1)) cm *= beta;
      cm.noalias() += alpha * (am * bm);
    }
  };
  auto with_b = [&](const auto& am) {
    if (p.trans_b) run(am, ConstMap<T>(b_block, cols, p.k, Eigen::OuterStride<>(p.ldb)).transpose());
    else run(am, ConstMap<T>(b_block, p.k, cols, Eigen::OuterStride<>(p.ldb)));
  };
  if (p.trans_a) with_b(ConstMap<T>(a_block, p.k, rows, Eigen::OuterStride<>(p.lda)).transpose());
  else with_b(ConstMap<T>(a_block, rows, p.k, Eigen::OuterStride<>(p.lda)));
}
}  // namespace detail

template <class T>
void gemm(const GemmParams& p, T alpha, const T* a, const T* b, T beta, T* c) {
  if (p.m == 0 || p.n == 0) return;
  if (p.k == 0) {
    detail::Map<T> cm(c, p.m, p.n, Eigen::OuterStride<>(p.ldc));
    if (beta == T(0)) cm.setZero();
    else cm *= beta;
    return;
  }
  // Split the larger output dimension; each chunk keeps at least ~1 MFLOP of work.
  const std::int64_t flops_per_line = 2 * p.k * (p.m >= p.n ? p.n : p.m);
  const std::int64_t grain = std::max<std::int64_t>(16, (1 << 20) / std::max<std::int64_t>(1, flops_per_line));
  if (p.m >= p.n) {
    parallel_for(0, p.m, grain, [&](std::int64_t r0, std::int64_t r1) {
      detail::gemm_block(p, alpha, a, b, beta, c, r0, r1, 0, p.n);
    });
  } else {
    parallel_for(0, p.n, grain, [&](std::int64_t c0, std::int64_t c1) {
      detail::gemm_block(p, alpha, a, b, beta, c, 0, p.m, c0, c1);
    });
  }
}

}  // namespace ember::cpu
