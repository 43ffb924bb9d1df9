#pragma once
// CPU activation kernels, threaded over elements (or rows), with PyTorch's formulas:
//   sigmoid     y = 1 / (1 + exp(-x))                        gx = g * (1 - y) * y
//   tanh        y = tanh(x)                                  gx = g * (1 - y * y)
//   gelu        y = x * 0.5 * (1 + erf(x / sqrt(2)))         gx = g * (cdf + x * pdf)
//   gelu_tanh   y = 0.5 * x * (1 + tanh(u)),                 gx = g * (0.5 * (1 + t)
//               u = sqrt(2 / pi) * (x + 0.044715 x^3)               + 0.5 x (1 - t^2) u')
//   leaky_relu  y = x > 0 ? x : a * x                        gx = x > 0 ? g : g * a
//   elu         y = x > 0 ? x : a * expm1(x)                 gx = x > 0 ? g : g * a * exp(x)
//   silu        y = x / (1 + exp(-x))                        gx = g * s * (1 + x * (1 - s))
// computed in T; `a` is the slope (leaky_relu) or alpha (elu). The backward pass reads the
// saved output y for sigmoid and tanh and the saved input x for the others
// (activation_saves_output). kernels/activation.cuh computes the same expressions.
//
// softmax over the middle axis of (outer, size, inner): m = max, s = sum exp(double(x - m)) in
// double, y = T(exp(double(x - m)) / s); backward gx = T(y * (g - sum(g * y))), the sum in
// double (PyTorch's SoftmaxBackward0).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/parallel.hpp"

namespace ember {

// The elementwise activations of ops/activation.hpp (kernels::ActivationKind lists the same
// kinds in the same order).
enum class ActivationKind { sigmoid, tanh, gelu, gelu_tanh, leaky_relu, elu, silu };

// sigmoid and tanh differentiate from their output, the others from their input.
[[nodiscard]] constexpr bool activation_saves_output(ActivationKind k) {
  return k == ActivationKind::sigmoid || k == ActivationKind::tanh;
}

namespace cpu {

namespace activation_detail {

template <class T>
inline constexpr T kSqrt1_2 = T(0.70710678118654752440);           // 1 / sqrt(2)
template <class T>
inline constexpr T kInvSqrt2Pi = T(0.39894228040143267794);        // 1 / sqrt(2 pi)
template <class T>
inline constexpr T kSqrt2OverPi = T(0.79788456080286535588);       // sqrt(2 / pi)
template <class T>
inline constexpr T kGeluKappa = T(0.044715);

template <ActivationKind K, class T>
T forward(T x, T a) {
  if constexpr (K == ActivationKind::sigmoid) {
    return T(1) / (T(1) + std::exp(-x));
  } else if constexpr (K == ActivationKind::tanh) {
    return std::tanh(x);
  } else if constexpr (K == ActivationKind::gelu) {
    return x * T(0.5) * (T(1) + std::erf(x * kSqrt1_2<T>));
  } else if constexpr (K == ActivationKind::gelu_tanh) {
    const T inner = kSqrt2OverPi<T> * (x + kGeluKappa<T> * (x * x * x));
    return T(0.5) * x * (T(1) + std::tanh(inner));
  } else if constexpr (K == ActivationKind::leaky_relu) {
    return x > T(0) ? x : x * a;
  } else if constexpr (K == ActivationKind::elu) {
    return x > T(0) ? x : std::expm1(x) * a;
  } else {
    return x / (T(1) + std::exp(-x));
  }
}

// s: the saved output (sigmoid, tanh) or input (the others).
template <ActivationKind K, class T>
T backward(T g, T s, T a) {
  if constexpr (K == ActivationKind::sigmoid) {
    return g * (T(1) - s) * s;
  } else if constexpr (K == ActivationKind::tanh) {
    return g * (T(1) - s * s);
  } else if constexpr (K == ActivationKind::gelu) {
    const T cdf = T(0.5) * (T(1) + std::erf(s * kSqrt1_2<T>));
    const T pdf = kInvSqrt2Pi<T> * std::exp(s * s * T(-0.5));
    return g * (cdf + s * pdf);
  } else if constexpr (K == ActivationKind::gelu_tanh) {
    const T x_sq = s * s;
    const T inner = kSqrt2OverPi<T> * (s + kGeluKappa<T> * (x_sq * s));
    const T t = std::tanh(inner);
    const T left = T(0.5) * s, right = T(1) + t;
    const T right_derivative = (T(1) - t * t) * kSqrt2OverPi<T> * (T(1) + T(3) * kGeluKappa<T> * x_sq);
    return g * (T(0.5) * right + left * right_derivative);
  } else if constexpr (K == ActivationKind::leaky_relu) {
    return s > T(0) ? g : g * a;
  } else if constexpr (K == ActivationKind::elu) {
    return s > T(0) ? g : g * a * std::exp(s);
  } else {
    const T sig = T(1) / (T(1) + std::exp(-s));
    return g * sig * (T(1) + s * (T(1) - sig));
  }
}

// f(std::integral_constant<ActivationKind, kind>{}).
template <class F>
void with_kind(ActivationKind kind, F&& f) {
  using K = ActivationKind;
  switch (kind) {
    case K::sigmoid: return f(std::integral_constant<K, K::sigmoid>{});
    case K::tanh: return f(std::integral_constant<K, K::tanh>{});
    case K::gelu: return f(std::integral_constant<K, K::gelu>{});
    case K::gelu_tanh: return f(std::integral_constant<K, K::gelu_tanh>{});
    case K::leaky_relu: return f(std::integral_constant<K, K::leaky_relu>{});
    case K::elu: return f(std::integral_constant<K, K::elu>{});
    case K::silu: return f(std::integral_constant<K, K::silu>{});
  }
  EMBER_CHECK(false, "activation: unknown kind ", static_cast<int>(kind));
}

inline constexpr std::int64_t kGrain = 1 << 14;

}  // namespace activation_detail

// y[i] = f(x[i]) for n contiguous elements; y may be x.
template <class T>
void activation_forward(ActivationKind kind, T a, const T* x, T* y, std::int64_t n) {
  activation_detail::with_kind(kind, [&](auto k) {
    parallel_for(0, n, activation_detail::kGrain, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i) y[i] = activation_detail::forward<decltype(k)::value>(x[i], a);
    });
  });
}

// gx[i] = f'(saved[i]) * g[i]; saved is y for sigmoid and tanh, x otherwise. gx may be g.
template <class T>
void activation_backward(ActivationKind kind, T a, const T* g, const T* saved, T* gx, std::int64_t n) {
  activation_detail::with_kind(kind, [&](auto k) {
    parallel_for(0, n, activation_detail::kGrain, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i)
        gx[i] = activation_detail::backward<decltype(k)::value>(g[i], saved[i], a);
    });
  });
}

// y = softmax(x) over the middle axis of a contiguous (outer, size, inner) array.
template <class T>
void softmax_forward(const T* x, T* y, std::int64_t outer, std::int64_t size, std::int64_t inner) {
  parallel_for(0, outer * inner, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(size, 1)),
               [&](std::int64_t lo, std::int64_t hi) {
    std::vector<double> e(static_cast<std::size_t>(size));  // exp(x - m) of one row, computed once
    for (std::int64_t r = lo; r < hi; ++r) {
      const std::int64_t o = r / inner, i = r - o * inner;
      const T* row = x + o * size * inner + i;
      T* out = y + o * size * inner + i;
      T m = -std::numeric_limits<T>::infinity();
      for (std::int64_t s = 0; s < size; ++s) m = std::max(m, row[s * inner]);
      double acc = 0;
      for (std::int64_t s = 0; s < size; ++s) {
        e[static_cast<std::size_t>(s)] = std::exp(double(row[s * inner] - m));
        acc += e[static_cast<std::size_t>(s)];
      }
      for (std::int64_t s = 0; s < size; ++s)
        out[s * inner] = static_cast<T>(e[static_cast<std::size_t>(s)] / acc);
    }
  });
}

// gx = y * (g - sum(g * y)) over the middle axis; y is softmax's output.
template <class T>
void softmax_backward(const T* g, const T* y, T* gx, std::int64_t outer, std::int64_t size,
                      std::int64_t inner) {
  parallel_for(0, outer * inner, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(size, 1)),
               [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      const std::int64_t o = r / inner, i = r - o * inner;
      const std::int64_t base = o * size * inner + i;
      double dot = 0;
      for (std::int64_t s = 0; s < size; ++s)
        dot += double(g[base + s * inner]) * double(y[base + s * inner]);
      for (std::int64_t s = 0; s < size; ++s) {
        const std::int64_t k = base + s * inner;
        gx[k] = static_cast<T>(double(y[k]) * (double(g[k]) - dot));
      }
    }
  });
}

// relu's backward: gx = gy where the saved output y > 0, else 0 (as kernels/activation.cuh).
template <class T>
void relu_backward(const T* gy, const T* y, T* gx, std::int64_t n) {
  parallel_for(0, n, 1 << 15, [=](std::int64_t lo, std::int64_t hi) {
    // restrict-qualified locals let the compiler vectorise the select (no branches)
    const T* __restrict a = y;
    const T* __restrict b = gy;
    T* __restrict o = gx;
    for (std::int64_t i = lo; i < hi; ++i) o[i] = a[i] > T(0) ? b[i] : T(0);
  });
}

}  // namespace cpu
}  // namespace ember
