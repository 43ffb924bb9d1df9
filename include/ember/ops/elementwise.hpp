#pragma once
// Elementwise arithmetic with numpy/PyTorch broadcasting, and the two shape ops that
// broadcasting's gradients are made of: broadcast_to and sum_to (each the other's backward).

#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "ember/autograd/engine.hpp"
#include "ember/backend/device_backend.hpp"
#include "ember/backend/dispatch.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise_tags.hpp"

namespace ember {

namespace detail {
// Strides that read `t` as if it had shape `out` (0 on broadcast dimensions).
template <class T>
Shape broadcast_strides(const Tensor<T>& t, const Shape& out) {
  Shape st(out.size(), 0);
  const std::size_t lead = out.size() - t.shape().size();
  for (std::size_t i = 0; i < t.shape().size(); ++i)
    st[lead + i] = t.shape()[i] == 1 && out[lead + i] != 1 ? 0 : t.strides()[i];
  return st;
}

// A kernel operand: `t` read with broadcast strides as if it had shape `out`.
template <class T>
StridedView broadcast_view(const Tensor<T>& t, const Shape& out) {
  EMBER_CHECK(out.size() <= static_cast<std::size_t>(kMaxDims), "tensors on CUDA devices have at most ",
              kMaxDims, " dimensions, got ", shape_str(out));
  const Shape st = broadcast_strides(t, out);
  StridedView v;
  v.rank = static_cast<int>(out.size());
  for (int d = 0; d < v.rank; ++d) {
    v.shape[d] = out[static_cast<std::size_t>(d)];
    v.strides[d] = st[static_cast<std::size_t>(d)];
  }
  v.offset = t.offset();
  return v;
}

// The kernel views of tensors `ts` read as shape `out` (broadcast strides), with size-1
// dimensions dropped and each dimension merged into the one before it where every operand walks
// the two as one: the same element-to-storage map in fewer dimensions, so that tensors of any
// rank run unless their broadcast needs more than kMaxDims dimensions.
template <class... Ts>
std::array<StridedView, sizeof...(Ts)> broadcast_views(const char* op, const Shape& out,
                                                       const Tensor<Ts>&... ts) {
  constexpr std::size_t K = sizeof...(Ts);
  const std::array<Shape, K> st{broadcast_strides(ts, out)...};
  const std::array<std::int64_t, K> offsets{ts.offset()...};
  Shape shape;
  std::array<Shape, K> strides;
  for (std::size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;
    bool merge = !shape.empty();
    for (std::size_t k = 0; k < K && merge; ++k) merge = strides[k].back() == st[k][d] * out[d];
    if (merge) {
      shape.back() *= out[d];
      for (std::size_t k = 0; k < K; ++k) strides[k].back() = st[k][d];
    } else {
      shape.push_back(out[d]);
      for (std::size_t k = 0; k < K; ++k) strides[k].push_back(st[k][d]);
    }
  }
  EMBER_CHECK(shape.size() <= static_cast<std::size_t>(kMaxDims), op, ": broadcasting to ",
              shape_str(out), " needs ", shape.size(), " dimensions after merging, more than the ",
              kMaxDims, " the kernels take");
  std::array<StridedView, K> views;
  for (std::size_t k = 0; k < K; ++k) {
    views[k].rank = static_cast<int>(shape.size());
    for (std::size_t d = 0; d < shape.size(); ++d) {
      views[k].shape[d] = shape[d];
      views[k].strides[d] = strides[k][d];
    }
    views[k].offset = offsets[k];
  }
  return views;
}

inline void check_same_device(Device a, Device b) {
  EMBER_CHECK(a == b, "operands on different devices: ", a.str(), " and ", b.str());
}

// out = a (op) b with broadcasting (backend/cpu/elementwise.hpp, kernels/elementwise.cuh).
template <class T>
Tensor<T> binary_map(const Tensor<T>& a, const Tensor<T>& b, backend::BinaryOp op) {
  check_same_device(a.device(), b.device());
  const Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor<T> out = Tensor<T>::empty(shape, a.device());
  if (out.numel() == 0) return out;
  const auto v = broadcast_views("elementwise op", shape, a, b);
  backend::run<op::Binary, T>(a.device(), op, a.impl().storage->data(), v[0],
                              b.impl().storage->data(), v[1], out.data(), out.numel());
  return out;
}

// out = op(a, scalar) elementwise.
template <class T>
Tensor<T> unary_map(const Tensor<T>& a, backend::UnaryOp op, T scalar) {
  Tensor<T> ac = a.contiguous();
  Tensor<T> out = Tensor<T>::empty(a.shape(), a.device());
  if (out.numel() > 0)
    backend::run<op::Unary, T>(a.device(), op, ac.data(), out.data(), out.numel(), scalar);
  return out;
}
}  // namespace detail

// Sums `g` down to `shape` over the dimensions broadcasting expanded.
template <Real T>
Tensor<T> sum_to(const Tensor<T>& g, const Shape& shape);

/// Materialises `t` broadcast to `shape`.
template <Real T>
Tensor<T> broadcast_to(const Tensor<T>& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  EMBER_CHECK(broadcast_shapes(t.shape(), shape) == shape, "broadcast_to: shape ",
              shape_str(t.shape()), " cannot be broadcast to ", shape_str(shape));
  Tensor<T> out = Tensor<T>::empty(shape, t.device());
  if (out.numel() > 0) {
    const auto v = detail::broadcast_views("broadcast_to", shape, t, out);
    backend::run<op::BroadcastCopy, T>(t.device(), t.impl().storage->data(), v[0],
                                       out.impl().storage->data(), v[1], out.numel());
  }
  const Shape in_shape = t.shape();
  autograd::record(out, "ExpandBackward0", {t}, [in_shape](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{sum_to(g, in_shape)};
  });
  return out;
}

/// Sums a broadcast gradient g back down to `shape` (the reverse of broadcasting).
template <Real T>
Tensor<T> sum_to(const Tensor<T>& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  EMBER_CHECK(broadcast_shapes(shape, g.shape()) == g.shape(), "sum_to: shape ",
              shape_str(g.shape()), " does not reduce to ", shape_str(shape));
  Tensor<T> out = Tensor<T>::empty(shape, g.device());
  // `out` read with broadcast strides: every g element adds into its reduced slot.
  if (out.numel() > 0) {
    const auto v = detail::broadcast_views("sum_to", g.shape(), g, out);
    backend::run<op::SumTo, T>(g.device(), g.impl().storage->data(), v[0], out.data(), v[1],
                               out.numel());
  }
  const Shape in_shape = g.shape();
  autograd::record(out, "SumToBackward0", {g}, [in_shape](const Tensor<T>& gg) {
    return std::vector<Tensor<T>>{broadcast_to(gg, in_shape)};
  });
  return out;
}

/// a + b elementwise with broadcasting (torch.add); operator+ calls it.
template <Real T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::binary_map(a, b, backend::BinaryOp::add);
  autograd::record(out, "AddBackward0", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{sum_to(g, sa), sum_to(g, sb)};
  });
  return out;
}

/// -a elementwise (torch.neg).
template <Real T>
Tensor<T> neg(const Tensor<T>& a) {
  Tensor<T> out = detail::unary_map(a, backend::UnaryOp::neg, T(0));
  autograd::record(out, "NegBackward0", {a},
                   [](const Tensor<T>& g) { return std::vector<Tensor<T>>{neg(g)}; });
  return out;
}

/// a - b elementwise with broadcasting (torch.sub).
template <Real T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::binary_map(a, b, backend::BinaryOp::sub);
  autograd::record(out, "SubBackward0", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{sum_to(g, sa), sum_to(neg(g), sb)};
  });
  return out;
}

/// a * b elementwise with broadcasting (torch.mul).
template <Real T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::binary_map(a, b, backend::BinaryOp::mul);
  autograd::record(out, "MulBackward0", {a, b}, autograd::saved(a, b),
                   [a = a.detach(), b = b.detach()](const Tensor<T>& g) {
                     return std::vector<Tensor<T>>{sum_to(mul(g, b), a.shape()),
                                                   sum_to(mul(g, a), b.shape())};
                   });
  return out;
}

/// a / b elementwise with broadcasting (torch.div).
template <Real T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> out = detail::binary_map(a, b, backend::BinaryOp::div);
  autograd::record(out, "DivBackward0", {a, b}, autograd::saved(a, b),
                   [a = a.detach(), b = b.detach()](const Tensor<T>& g) {
                     // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
                     Tensor<T> ga = div(g, b);
                     Tensor<T> gb = neg(div(mul(ga, a), b));
                     return std::vector<Tensor<T>>{sum_to(ga, a.shape()), sum_to(gb, b.shape())};
                   });
  return out;
}

/// Scalar forms: the scalar is a constant (no gradient).
template <Real T>
Tensor<T> add_scalar(const Tensor<T>& a, T s) {
  Tensor<T> out = detail::unary_map(a, backend::UnaryOp::add_scalar, s);
  autograd::record(out, "AddBackward1", {a}, [](const Tensor<T>& g) { return std::vector<Tensor<T>>{g}; });
  return out;
}
/// a * s (torch.mul with a scalar).
template <Real T>
Tensor<T> mul_scalar(const Tensor<T>& a, T s) {
  Tensor<T> out = detail::unary_map(a, backend::UnaryOp::mul_scalar, s);
  autograd::record(out, "MulBackward1", {a},
                   [s](const Tensor<T>& g) { return std::vector<Tensor<T>>{mul_scalar(g, s)}; });
  return out;
}

/// e^a elementwise (torch.exp).
template <Real T>
Tensor<T> exp(const Tensor<T>& a) {
  Tensor<T> out = detail::unary_map(a, backend::UnaryOp::exp, T(0));
  autograd::record(out, "ExpBackward0", {a}, autograd::saved(out),
                   [o = out.detach()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{mul(g, o)};
  });
  return out;
}

/// Natural logarithm elementwise (torch.log).
template <Real T>
Tensor<T> log(const Tensor<T>& a) {
  Tensor<T> out = detail::unary_map(a, backend::UnaryOp::log, T(0));
  autograd::record(out, "LogBackward0", {a}, autograd::saved(a),
                   [a = a.detach()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{div(g, a)};
  });
  return out;
}

/// a^p for a constant exponent p.
template <Real T>
Tensor<T> pow(const Tensor<T>& a, T p) {
  Tensor<T> out = detail::unary_map(a, backend::UnaryOp::pow_scalar, p);
  autograd::record(out, "PowBackward0", {a}, autograd::saved(a),
                   [a = a.detach(), p](const Tensor<T>& g) {
    const T q = p - 1;
    Tensor<T> d = detail::unary_map(detail::unary_map(a, backend::UnaryOp::pow_scalar, q),
                                    backend::UnaryOp::mul_scalar, p);
    return std::vector<Tensor<T>>{mul(g, d)};
  });
  return out;
}

/// PyTorch's sign: 1, -1, or 0 for +-0 and NaN. Its gradient is zero (not recorded).
template <Real T>
Tensor<T> sign(const Tensor<T>& a) {
  return detail::unary_map(a, backend::UnaryOp::sign, T(0));
}

/// d sqrt(x) = g / (2 sqrt(x)), from the saved output (inf at 0, as PyTorch).
template <Real T>
Tensor<T> sqrt(const Tensor<T>& a) {
  Tensor<T> out = detail::unary_map(a, backend::UnaryOp::sqrt, T(0));
  autograd::record(out, "SqrtBackward0", {a}, autograd::saved(out),
                   [o = out.detach()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{div(g, mul_scalar(o, T(2)))};
  });
  return out;
}

/// 1 / sqrt(x); d rsqrt(x) = -g y^3 / 2 with y the saved output.
template <Real T>
Tensor<T> rsqrt(const Tensor<T>& a) {
  Tensor<T> out = detail::unary_map(a, backend::UnaryOp::rsqrt, T(0));
  autograd::record(out, "RsqrtBackward0", {a}, autograd::saved(out),
                   [o = out.detach()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{mul(g, mul_scalar(mul(mul(o, o), o), T(-0.5)))};
  });
  return out;
}

/// |x|; d |x| = g sign(x) (0 at 0 and for NaN, as PyTorch).
template <Real T>
Tensor<T> abs(const Tensor<T>& a) {
  Tensor<T> out = detail::unary_map(a, backend::UnaryOp::abs, T(0));
  autograd::record(out, "AbsBackward0", {a}, autograd::saved(a),
                   [a = a.detach()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{mul(g, sign(a))};
  });
  return out;
}

/// add(a, b).
template <Real T> Tensor<T> operator+(const Tensor<T>& a, const Tensor<T>& b) { return add(a, b); }
/// sub(a, b).
template <Real T> Tensor<T> operator-(const Tensor<T>& a, const Tensor<T>& b) { return sub(a, b); }
/// mul(a, b).
template <Real T> Tensor<T> operator*(const Tensor<T>& a, const Tensor<T>& b) { return mul(a, b); }
/// div(a, b).
template <Real T> Tensor<T> operator/(const Tensor<T>& a, const Tensor<T>& b) { return div(a, b); }
/// neg(a).
template <Real T> Tensor<T> operator-(const Tensor<T>& a) { return neg(a); }

// A scalar operand: any arithmetic type but bool (`x * 2`, `x * 2.0`, `1 - x` on a float or
// double tensor). As in PyTorch, the tensor's type wins: the scalar is converted to T.
template <class S>
concept Scalar = std::is_arithmetic_v<S> && !std::same_as<S, bool>;

/// a + s, for any arithmetic scalar s.
template <Real T, Scalar S> Tensor<T> operator+(const Tensor<T>& a, S s) { return add_scalar(a, static_cast<T>(s)); }
/// s + a.
template <Real T, Scalar S> Tensor<T> operator+(S s, const Tensor<T>& a) { return add_scalar(a, static_cast<T>(s)); }
/// a - s.
template <Real T, Scalar S> Tensor<T> operator-(const Tensor<T>& a, S s) { return add_scalar(a, -static_cast<T>(s)); }
/// s - a.
template <Real T, Scalar S> Tensor<T> operator-(S s, const Tensor<T>& a) { return add_scalar(neg(a), static_cast<T>(s)); }
/// a * s.
template <Real T, Scalar S> Tensor<T> operator*(const Tensor<T>& a, S s) { return mul_scalar(a, static_cast<T>(s)); }
/// s * a.
template <Real T, Scalar S> Tensor<T> operator*(S s, const Tensor<T>& a) { return mul_scalar(a, static_cast<T>(s)); }
/// a / s.
template <Real T, Scalar S> Tensor<T> operator/(const Tensor<T>& a, S s) { return mul_scalar(a, T(1) / static_cast<T>(s)); }
/// s / a, elementwise (PyTorch's reciprocal times s); the gradient is -s / a^2.
template <Real T, Scalar S> Tensor<T> operator/(S s, const Tensor<T>& a) {
  return div(Tensor<T>::full(a.shape(), static_cast<T>(s), a.device()), a);
}
/// a^p for an exponent of any arithmetic type (`pow(x, 2)`).
template <Real T, Scalar S>
  requires(!std::same_as<S, T>)
Tensor<T> pow(const Tensor<T>& a, S p) {
  return pow(a, static_cast<T>(p));
}

}  // namespace ember
