#pragma once
// matmul (torch.matmul's rules), bmm and linear (y = x W^T + b), forward and backward, on the
// GEMM ops (the threaded Eigen GEMM on the CPU, the CUDA GEMM kernel or cuBLAS on a GPU). A
// batched product is one batched GEMM (the CPU's threads over entries and blocks, one CUDA
// launch with the entry in blockIdx.z, or cuBLAS's strided batched GEMM); matmul of an N-D
// tensor by a matrix folds the batch into the rows of one GEMM, as PyTorch does.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ember/backend/cpu/activation.hpp"
#include "ember/backend/cpu/gemm.hpp"
#include "ember/backend/dispatch.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/reduce.hpp"

namespace ember {

namespace op {
/// c = alpha * op(a) op(b) + beta * c (GemmParams: sizes, transposes, leading dimensions)
struct Gemm {
  static constexpr const char* name = "gemm";
  template <class T>
  static constexpr auto cpu = &ember::cpu::gemm<T>;
};
/// c[i] = alpha * op(a[i]) op(b[i]) + beta * c[i] for every batch entry i (BatchedGemmParams)
struct GemmBatched {
  static constexpr const char* name = "batched gemm";
  template <class T>
  static constexpr auto cpu = &ember::cpu::gemm_batched<T>;
};
/// y (rows, cols) += bias[col]
struct BiasAddRows {
  static constexpr const char* name = "linear bias";
  template <class T>
  static constexpr auto cpu = &ember::cpu::bias_add_rows<T>;
};
/// gb[col] = sum over rows of gy (rows, cols)
struct BiasGradRows {
  static constexpr const char* name = "linear bias gradient";
  template <class T>
  static constexpr auto cpu = &ember::cpu::bias_grad_rows<T>;
};
}  // namespace op

// C = op(A) op(B) for 2-D tensors (made contiguous first).
namespace detail {
// The GEMM of op(A) op(B) for row-major A (ra, ca) and B (rb, cb), each transposed when asked.
inline cpu::GemmParams gemm_params(std::int64_t ra, std::int64_t ca, bool ta, std::int64_t rb,
                                   std::int64_t cb, bool tb) {
  cpu::GemmParams p;
  p.trans_a = ta;
  p.trans_b = tb;
  p.m = ta ? ca : ra;
  p.k = ta ? ra : ca;
  p.n = tb ? rb : cb;
  p.lda = ca;
  p.ldb = cb;
  p.ldc = p.n;
  return p;
}

template <Real T>
Tensor<T> gemm_2d(const Tensor<T>& a, bool ta, const Tensor<T>& b, bool tb) {
  const Tensor<T> ac = a.contiguous(), bc = b.contiguous();
  const cpu::GemmParams p = gemm_params(a.size(0), a.size(1), ta, b.size(0), b.size(1), tb);
  detail::check_same_device(a.device(), b.device());
  Tensor<T> c = Tensor<T>::empty({p.m, p.n}, a.device());
  if (c.numel() > 0) backend::run<op::Gemm, T>(a.device(), p, T(1), ac.data(), bc.data(), T(0), c.data());
  return c;
}
}  // namespace detail

namespace detail {
// C[i] = op(A[i]) op(B[i]) for 3-D a and b (made contiguous) of B entries: one backend call.
template <Real T>
Tensor<T> gemm_batched(const Tensor<T>& a, bool ta, const Tensor<T>& b, bool tb) {
  const Tensor<T> ac = a.contiguous(), bc = b.contiguous();
  BatchedGemmParams p;
  p.gemm = gemm_params(a.size(1), a.size(2), ta, b.size(1), b.size(2), tb);
  detail::check_same_device(a.device(), b.device());
  p.batch = a.size(0);
  Tensor<T> c = Tensor<T>::empty({p.batch, p.gemm.m, p.gemm.n}, a.device());
  if (c.numel() == 0) return c;
  p.stride_a = a.size(1) * a.size(2);
  p.stride_b = b.size(1) * b.size(2);
  p.stride_c = p.gemm.m * p.gemm.n;
  backend::run<op::GemmBatched, T>(a.device(), p, T(1), ac.data(), bc.data(), T(0), c.data());
  return c;
}

// a [M, K] @ b [K, N] -> [M, N] (torch.mm).
template <Real T>
Tensor<T> mm(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = gemm_2d(a, false, b, false);
  autograd::record(out, "MmBackward0", {a, b}, autograd::saved(a, b),
                   [a = a.detach(), b = b.detach(), need_a = a.requires_grad(),
                    need_b = b.requires_grad()](const Tensor<T>& g) {
                     return std::vector<Tensor<T>>{
                         need_a ? gemm_2d(g, false, b, true) : Tensor<T>(),
                         need_b ? gemm_2d(a, true, g, false) : Tensor<T>()};
                   });
  return out;
}

inline std::string matmul_shapes(const Shape& a, const Shape& b) {
  return "matmul: shapes " + shape_str(a) + " and " + shape_str(b) + " cannot be multiplied";
}
}  // namespace detail

/// torch.bmm: a [B, N, K] @ b [B, K, M] -> [B, N, M], no broadcasting.
template <Real T>
Tensor<T> bmm(const Tensor<T>& a, const Tensor<T>& b) {
  EMBER_CHECK(a.dim() == 3 && b.dim() == 3, "bmm: both operands must be 3-D, got ",
              shape_str(a.shape()), " and ", shape_str(b.shape()));
  EMBER_CHECK(a.size(0) == b.size(0) && a.size(2) == b.size(1), "bmm: shapes ",
              shape_str(a.shape()), " and ", shape_str(b.shape()),
              " cannot be multiplied (expected the second to be [", a.size(0), ", ", a.size(2),
              ", M])");
  Tensor<T> out = detail::gemm_batched(a, false, b, false);
  autograd::record(out, "BmmBackward0", {a, b}, autograd::saved(a, b),
                   [a = a.detach(), b = b.detach(), need_a = a.requires_grad(),
                    need_b = b.requires_grad()](const Tensor<T>& g) {
                     // d(a b)/da = g b^T, d(a b)/db = a^T g, entry by entry
                     return std::vector<Tensor<T>>{
                         need_a ? detail::gemm_batched(g, false, b, true) : Tensor<T>(),
                         need_b ? detail::gemm_batched(a, true, g, false) : Tensor<T>()};
                   });
  return out;
}

/// torch.matmul:
///   1-D @ 1-D: the dot product (0-d);  2-D @ 2-D: the matrix product;
///   1-D @ 2-D and 2-D @ 1-D: a vector-matrix / matrix-vector product (the vector taken as a
///   [1, K] row / [K, 1] column, that dimension removed from the result);
///   N-D (N > 2) on either side: a batch of matrix products over the leading dimensions, which
///   broadcast (numpy rules), with a 1-D operand taken as above. The gradient of an operand is
///   summed over the batch dimensions it was broadcast along.
/// Compositions of bmm / mm with reshape and broadcast_to, whose backward passes make matmul's.
template <Real T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
  EMBER_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both arguments need to be at least 1-D, got ",
              shape_str(a.shape()), " and ", shape_str(b.shape()));
  const std::int64_t k = a.size(-1), kb = b.dim() == 1 ? b.size(0) : b.size(-2);
  EMBER_CHECK(k == kb, detail::matmul_shapes(a.shape(), b.shape()), " (", k, " != ", kb, ")");
  if (a.dim() <= 2 && b.dim() <= 2) {
    const Tensor<T> a2 = a.dim() == 1 ? a.unsqueeze(0) : a;  // [1, K]
    const Tensor<T> b2 = b.dim() == 1 ? b.unsqueeze(1) : b;  // [K, 1]
    Tensor<T> c = detail::mm(a2, b2);
    if (b.dim() == 1) c = c.squeeze(1);
    if (a.dim() == 1) c = c.squeeze(0);
    return c;
  }
  if (b.dim() <= 2) {  // [..., N, K] @ [K, M]: one GEMM of [(...) N, K] by [K, M]
    Shape out(a.shape().begin(), a.shape().end() - 1);
    const Tensor<T> b2 = b.dim() == 1 ? b.unsqueeze(1) : b;
    if (b.dim() == 2) out.push_back(b.size(1));
    const std::int64_t rows = numel_of(Shape(a.shape().begin(), a.shape().end() - 1));
    return detail::mm(a.reshape({rows, k}), b2).reshape(out);
  }
  const Tensor<T> a2 = a.dim() == 1 ? a.unsqueeze(0) : a;  // [..., N, K]
  const Tensor<T> b2 = b.dim() == 1 ? b.unsqueeze(1) : b;  // [..., K, M]
  const Shape batch_a(a2.shape().begin(), a2.shape().end() - 2),
      batch_b(b2.shape().begin(), b2.shape().end() - 2);
  const std::size_t rank = std::max(batch_a.size(), batch_b.size());
  Shape batch(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t da = i < rank - batch_a.size() ? 1 : batch_a[i - (rank - batch_a.size())];
    const std::int64_t db = i < rank - batch_b.size() ? 1 : batch_b[i - (rank - batch_b.size())];
    EMBER_CHECK(da == db || da == 1 || db == 1, detail::matmul_shapes(a.shape(), b.shape()),
                ": the batch dimensions ", shape_str(batch_a), " and ", shape_str(batch_b),
                " do not broadcast");
    batch[i] = da == 1 ? db : da;
  }
  const std::int64_t n = a2.size(-2), m = b2.size(-1), entries = numel_of(batch);
  Shape full_a = batch, full_b = batch;
  full_a.insert(full_a.end(), {n, k});
  full_b.insert(full_b.end(), {k, m});
  const Tensor<T> c = bmm(broadcast_to(a2, full_a).reshape({entries, n, k}),
                          broadcast_to(b2, full_b).reshape({entries, k, m}));
  Shape out = batch;
  if (a.dim() > 1) out.push_back(n);
  if (b.dim() > 1) out.push_back(m);
  return c.reshape(out);
}

/// x [N, in], weight [out, in], bias [out] (optional) -> [N, out]
template <Real T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {}) {
  EMBER_CHECK(x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1),
              "linear: input ", shape_str(x.shape()), " does not match weight ",
              shape_str(weight.shape()), " (expected input [N, ", weight.size(1), "])");
  const bool has_bias = bias.defined();
  EMBER_CHECK(!has_bias || (bias.dim() == 1 && bias.size(0) == weight.size(0)),
              "linear: bias ", shape_str(bias.defined() ? bias.shape() : Shape{}),
              " does not match weight ", shape_str(weight.shape()));
  Tensor<T> out = detail::gemm_2d(x, false, weight, true);
  if (has_bias) {
    detail::check_same_device(x.device(), bias.device());
    const Tensor<T> bc = bias.contiguous();
    const std::int64_t n = out.size(0), o = out.size(1);
    if (out.numel() > 0) backend::run<op::BiasAddRows, T>(out.device(), out.data(), bc.data(), n, o);
  }
  std::vector<Tensor<T>> inputs{x, weight};
  if (has_bias) inputs.push_back(bias);
  autograd::record(out, "AddmmBackward0", inputs, autograd::saved(x, weight),
                   [x = x.detach(), w = weight.detach(), has_bias, need_x = x.requires_grad(),
                    need_w = weight.requires_grad()](const Tensor<T>& g) {
                     std::vector<Tensor<T>> grads{
                         need_x ? detail::gemm_2d(g, false, w, false) : Tensor<T>(),
                         need_w ? detail::gemm_2d(g, true, x, false) : Tensor<T>()};
                     if (has_bias) {
                       const Tensor<T> gc = g.contiguous();
                       Tensor<T> gb = Tensor<T>::empty({gc.size(1)}, g.device());
                       backend::run<op::BiasGradRows, T>(g.device(), gc.data(), gb.data(), gc.size(0),
                                                         gc.size(1));
                       grads.push_back(gb);
                     }
                     return grads;
                   });
  return out;
}

}  // namespace ember
