#pragma once
// Row-major GEMM over raw pointers through Eigen maps, threaded over the larger output
// dimension with ember's pool:  C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
//
// Eigen rounds an element of C differently depending on where it falls in the block it is
// given (remainder rows and columns take other micro-kernels, a one-column block becomes a
// GEMV), so the blocks are a fixed grid that depends on the shape only (gemm_grid), and
// threads take whole blocks: the same bits at any thread count.

#include "ember/core/simd.hpp"  // first: <immintrin.h> before Eigen includes it (see there)

#include <Eigen/Core>
#include <algorithm>
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

// C = beta * C: the product is empty when K = 0.
template <class T>
void gemm_empty_k(const GemmParams& p, T beta, T* c) {
  Map<T> cm(c, p.m, p.n, Eigen::OuterStride<>(p.ldc));
  if (beta == T(0)) cm.setZero();
  else cm *= beta;
}
}  // namespace detail

// The block grid of gemm: the larger output dimension (`lines` rows, or columns when N > M)
// cut into `blocks` blocks of `block` lines, the last one shorter. A block keeps at least
// 32 lines and ~8 MFLOP, below which Eigen's per-call packing and setup show (measured on
// the MNIST net's shapes); there are at most 64 blocks, and at most 8 when the operand every
// block shares (and packs again) is over 1 MiB and so comes from memory each time.
struct GemmGrid {
  bool split_rows = true;
  std::int64_t lines = 0, block = 0, blocks = 0;
};

template <class T>
GemmGrid gemm_grid(const GemmParams& p) {
  GemmGrid g;
  g.split_rows = p.m >= p.n;
  g.lines = g.split_rows ? p.m : p.n;
  const std::int64_t shared = g.split_rows ? p.n : p.m;  // the other dimension of C
  const std::int64_t flops_per_line = std::max<std::int64_t>(1, 2 * p.k * shared);
  const bool shared_is_large = p.k * shared * static_cast<std::int64_t>(sizeof(T)) > (1 << 20);
  const std::int64_t max_blocks = shared_is_large ? 8 : 64;
  const std::int64_t at_least =
      std::max({std::int64_t{32}, ((8 << 20) + flops_per_line - 1) / flops_per_line,
                (g.lines + max_blocks - 1) / max_blocks});
  g.block = (at_least + 15) / 16 * 16;  // whole SIMD registers of lines
  g.blocks = (g.lines + g.block - 1) / g.block;
  return g;
}

// C = alpha * op(A) * op(B) + beta * C, its blocks (gemm_grid) shared among the threads.
template <class T>
void gemm(const GemmParams& p, T alpha, const T* a, const T* b, T beta, T* c) {
  if (p.m == 0 || p.n == 0) return;
  if (p.k == 0) {
    detail::gemm_empty_k(p, beta, c);
    return;
  }
  const GemmGrid g = gemm_grid<T>(p);
  parallel_for(0, g.blocks, 1, [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t i = b0; i < b1; ++i) {
      const std::int64_t lo = i * g.block, hi = std::min(lo + g.block, g.lines);
      if (g.split_rows) detail::gemm_block(p, alpha, a, b, beta, c, lo, hi, 0, p.n);
      else detail::gemm_block(p, alpha, a, b, beta, c, 0, p.m, lo, hi);
    }
  });
}

// Every entry of a batch of products (BatchedGemmParams): the entries' blocks (gemm_grid of one
// entry) shared among the threads, so that small products (bmm over attention heads) fill the
// pool too. An entry's bits are gemm's for it, at any thread count.
template <class T>
void gemm_batched(const BatchedGemmParams& bp, T alpha, const T* a, const T* b, T beta, T* c) {
  const GemmParams& p = bp.gemm;
  if (bp.batch <= 0 || p.m == 0 || p.n == 0) return;
  if (p.k == 0) {
    for (std::int64_t i = 0; i < bp.batch; ++i) detail::gemm_empty_k(p, beta, c + i * bp.stride_c);
    return;
  }
  const GemmGrid g = gemm_grid<T>(p);
  parallel_for(0, bp.batch * g.blocks, 1, [&](std::int64_t w0, std::int64_t w1) {
    for (std::int64_t w = w0; w < w1; ++w) {
      const std::int64_t e = w / g.blocks, i = w % g.blocks;
      const T* ae = a + e * bp.stride_a;
      const T* be = b + e * bp.stride_b;
      T* ce = c + e * bp.stride_c;
      const std::int64_t lo = i * g.block, hi = std::min(lo + g.block, g.lines);
      if (g.split_rows) detail::gemm_block(p, alpha, ae, be, beta, ce, lo, hi, 0, p.n);
      else detail::gemm_block(p, alpha, ae, be, beta, ce, 0, p.m, lo, hi);
    }
  });
}

// The same product as one Eigen call on the calling thread, for a caller that threads over
// something else (conv2d over its images). Its bits may differ from gemm's, but not with the
// thread count.
template <class T>
void gemm_serial(const GemmParams& p, T alpha, const T* a, const T* b, T beta, T* c) {
  if (p.m == 0 || p.n == 0) return;
  if (p.k == 0) {
    detail::gemm_empty_k(p, beta, c);
    return;
  }
  detail::gemm_block(p, alpha, a, b, beta, c, 0, p.m, 0, p.n);
}

}  // namespace ember::cpu
