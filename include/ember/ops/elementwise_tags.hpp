#pragma once
// The elementwise ops' dispatch tags (backend/dispatch.hpp), apart from ops/elementwise.hpp so
// that the autograd engine, which core/tensor.hpp includes, can accumulate gradients with them.
// Their CPU paths are written on tensors (ops/elementwise.hpp), so each names its signature.

#include <cstdint>

#include "ember/backend/device_backend.hpp"
#include "ember/backend/params.hpp"

namespace ember::op {

/// out = a (op) b over broadcast strided views; n = out's elements
struct Binary {
  static constexpr const char* name = "binary elementwise op";
  template <class T>
  using sig = void(backend::BinaryOp, const T* a, const StridedView& va, const T* b,
                   const StridedView& vb, T* out, std::int64_t n);
};
/// out = op(a, scalar), contiguous
struct Unary {
  static constexpr const char* name = "unary elementwise op";
  template <class T>
  using sig = void(backend::UnaryOp, const T* a, T* out, std::int64_t n, T scalar);
};
/// out (view vout, out_n elements) = x summed over the dimensions that vout broadcasts
struct SumTo {
  static constexpr const char* name = "sum_to";
  template <class T>
  using sig = void(const T* x, const StridedView& vx, T* out, const StridedView& vout, std::int64_t out_n);
};

}  // namespace ember::op
