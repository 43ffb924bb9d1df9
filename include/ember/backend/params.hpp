#pragma once
// The parameter structs shared by every backend: one op, one struct, the same meaning on the
// CPU (backend/cpu), in the CUDA kernels (kernels/) and in the vendor-library paths. Plain
// aggregates with no dependencies, so device code can take them by value.

#include <cstdint>

#include "ember/core/macros.hpp"

namespace ember {

// Row-major GEMM: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, where op(A) is A
// stored [M,K] (trans_a false) or [K,M] (trans_a true); lda, ldb, ldc are the row strides of
// A, B and C as stored.
struct GemmParams {
  bool trans_a = false, trans_b = false;
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t lda = 0, ldb = 0, ldc = 0;
};

// 2-D convolution. Layouts: x (N, C, H, W), w (K, C, R, S), y (N, K, P, Q), all contiguous.
struct Conv2dParams {
  std::int64_t n = 0, c = 0, h = 0, w = 0;  // input  (N, C, H, W)
  std::int64_t k = 0, r = 0, s = 0;         // weight (K, C, R, S)
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;
  std::int64_t dil_h = 1, dil_w = 1;

  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t p() const {
    return (h + 2 * pad_h - dil_h * (r - 1) - 1) / stride_h + 1;
  }
  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t q() const {
    return (w + 2 * pad_w - dil_w * (s - 1) - 1) / stride_w + 1;
  }
  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t crs() const { return c * r * s; }
};

// Max pooling over (N*C) planes: x (planes, H, W) -> y (planes, P, Q), square window.
struct MaxPool2dParams {
  std::int64_t planes = 0, h = 0, w = 0;
  std::int64_t kernel = 2, stride = 2, padding = 0;
  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t p() const {
    return (h + 2 * padding - kernel) / stride + 1;
  }
  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t q() const {
    return (w + 2 * padding - kernel) / stride + 1;
  }
};

// Shape and element strides of a tensor of rank <= kMaxDims, passed to kernels by value.
// Broadcast operands carry stride 0 on the dimensions they are expanded along.
inline constexpr int kMaxDims = 8;
struct StridedView {
  int rank = 0;
  std::int64_t shape[kMaxDims] = {};
  std::int64_t strides[kMaxDims] = {};
  std::int64_t offset = 0;

  // Storage index of element i (in C order of shape).
  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t index(std::int64_t i) const {
    std::int64_t off = offset;
    for (int d = rank - 1; d >= 0; --d) {
      const std::int64_t q = i / shape[d];
      off += (i - q * shape[d]) * strides[d];
      i = q;
    }
    return off;
  }
};

namespace cpu {
using ember::GemmParams;
}  // namespace cpu

}  // namespace ember
