#pragma once
// The elementwise ops' dispatch tags (backend/dispatch.hpp), apart from ops/elementwise.hpp so
// that the autograd engine, which core/tensor.hpp includes, can accumulate gradients with them.
// CPU kernels: backend/cpu/elementwise.hpp; CUDA kernels: kernels/elementwise.cuh.

#include <cstdint>

#include "ember/backend/cpu/elementwise.hpp"
#include "ember/backend/device_backend.hpp"
#include "ember/backend/params.hpp"

namespace ember::op {

/// out = a (op) b over broadcast strided views; n = out's elements
struct Binary {
  static constexpr const char* name = "binary elementwise op";
  template <class T>
  static constexpr auto cpu = &ember::cpu::binary<T>;
};
/// out = op(a, scalar), contiguous
struct Unary {
  static constexpr const char* name = "unary elementwise op";
  template <class T>
  static constexpr auto cpu = &ember::cpu::unary<T>;
};
/// out (view vout, out_n elements) = x summed over the dimensions that vout broadcasts
struct SumTo {
  static constexpr const char* name = "sum_to";
  template <class T>
  static constexpr auto cpu = &ember::cpu::sum_to<T>;
};
/// dst (view vd) = src (view vs), n elements: broadcast_to's copy
struct BroadcastCopy {
  static constexpr const char* name = "broadcast_to";
  template <class T>
  static constexpr auto cpu = &ember::cpu::strided_copy<T>;
};

}  // namespace ember::op
