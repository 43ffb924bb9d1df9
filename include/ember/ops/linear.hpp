#pragma once
// matmul and linear (y = x W^T + b), forward and backward, on the threaded Eigen GEMM.

#include <cstdint>
#include <vector>

#include "ember/backend/cpu/gemm.hpp"
#include "ember/backend/dispatch.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/reduce.hpp"

namespace ember {

namespace op {
// c = alpha * op(a) op(b) + beta * c (GemmParams: sizes, transposes, leading dimensions)
struct Gemm {
  static constexpr const char* name = "gemm";
  template <class T>
  static constexpr auto cpu = &ember::cpu::gemm<T>;
};
// y (rows, cols) += bias[col]
struct BiasAddRows {
  static constexpr const char* name = "linear bias";
  template <class T>
  using sig = void(T* y, const T* bias, std::int64_t rows, std::int64_t cols);
};
// gb[col] = sum over rows of gy (rows, cols)
struct BiasGradRows {
  static constexpr const char* name = "linear bias gradient";
  template <class T>
  using sig = void(const T* gy, T* gb, std::int64_t rows, std::int64_t cols);
};
}  // namespace op

// C = op(A) op(B) for 2-D tensors (made contiguous first).
namespace detail {
template <Real T>
Tensor<T> gemm_2d(const Tensor<T>& a, bool ta, const Tensor<T>& b, bool tb) {
  const Tensor<T> ac = a.contiguous(), bc = b.contiguous();
  cpu::GemmParams p;
  p.trans_a = ta;
  p.trans_b = tb;
  p.m = ta ? a.size(1) : a.size(0);
  p.k = ta ? a.size(0) : a.size(1);
  p.n = tb ? b.size(0) : b.size(1);
  p.lda = a.size(1);
  p.ldb = b.size(1);
  p.ldc = p.n;
  detail::check_same_device(a.device(), b.device());
  Tensor<T> c = Tensor<T>::empty({p.m, p.n}, a.device());
  if (c.numel() > 0) backend::run<op::Gemm, T>(a.device(), p, T(1), ac.data(), bc.data(), T(0), c.data());
  return c;
}
}  // namespace detail

// a [M, K] @ b [K, N] -> [M, N]
template <Real T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
  EMBER_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "matmul: shapes ",
              shape_str(a.shape()), " and ", shape_str(b.shape()), " cannot be multiplied");
  Tensor<T> out = detail::gemm_2d(a, false, b, false);
  autograd::record(out, "MmBackward0", {a, b}, autograd::saved(a, b),
                   [a = a.detach(), b = b.detach(), need_a = a.requires_grad(),
                    need_b = b.requires_grad()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{need_a ? detail::gemm_2d(g, false, b, true) : Tensor<T>(),
                                  need_b ? detail::gemm_2d(a, true, g, false) : Tensor<T>()};
  });
  return out;
}

// x [N, in], weight [out, in], bias [out] (optional) -> [N, out]
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
    T* po = out.data();
    const T* pb = bc.data();
    if (out.device().is_cuda()) {
      if (out.numel() > 0) backend::cuda<op::BiasAddRows, T>(out.device().index, po, pb, n, o);
    } else {
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < o; ++j) po[i * o + j] += pb[j];
    }
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
                       if (g.device().is_cuda()) {
                         const Tensor<T> gc = g.contiguous();
                         Tensor<T> gb = Tensor<T>::empty({gc.size(1)}, g.device());
                         backend::cuda<op::BiasGradRows, T>(g.device().index, gc.data(), gb.data(),
                                                                            gc.size(0), gc.size(1));
                         grads.push_back(gb);
                       } else {
                         grads.push_back(sum(g.detach(), 0));
                       }
                     }
                     return grads;
                   });
  return out;
}

}  // namespace ember
