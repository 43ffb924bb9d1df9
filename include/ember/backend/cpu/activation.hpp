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
// softmax and log_softmax are in backend/cpu/softmax.hpp (on the packet exp below).

#include "ember/core/simd.hpp"  // first: <immintrin.h> before Eigen includes it (see there)

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <unsupported/Eigen/SpecialFunctions>
#include <vector>

#include "ember/backend/cpu/reduce.hpp"
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

// Float goes through Eigen's packet math (SSE, AVX or AVX-512, whichever the build targets):
// `packet` below evaluates the same expressions on Eigen::internal packets, with exp, expm1,
// tanh and erf built on Eigen 3.4's pexp, pexpm1, ptanh and perf (polynomial and rational
// approximations), their ranges, saturation and NaN fixed to match glibc's expf, expm1f,
// tanhf and erff (docs/performance.md gives the measured differences). A partial
// last packet is padded, so every element is computed alike whatever the chunking or thread
// count. Double keeps the scalar libm loop (Eigen 3.4 vectorises only exp for double).
namespace activation_detail::packet {

using Eigen::internal::padd;
using Eigen::internal::pcmp_eq;
using Eigen::internal::pcmp_lt;
using Eigen::internal::pdiv;
using Eigen::internal::pmul;
using Eigen::internal::pselect;
using Eigen::internal::pset1;
using Eigen::internal::psub;
using P = Eigen::internal::packet_traits<float>::type;
inline constexpr int kWidth = static_cast<int>(sizeof(P) / sizeof(float));

// NaN where x is NaN, r elsewhere.
inline P keep_nan(P x, P r) { return pselect(pcmp_eq(x, x), r, x); }

inline P select_sign(P x, P r) {  // -r where x < 0, r elsewhere
  return pselect(pcmp_lt(x, pset1<P>(0.0f)), psub(pset1<P>(0.0f), r), r);
}

// expf. Eigen's pexp flushes results below FLT_MIN (x < -87.34) to 0, overflows from
// x = 88.03 on (2^128 times a mantissa below 1) and clamps x at 88.723; in those ranges
// exp(x / 2)^2 gives libm's subnormals and large values, and x > ln(FLT_MAX) gives inf.
inline P exp(P x) {
  P e = Eigen::internal::pexp(x);
  const P low =
      Eigen::internal::por(pcmp_lt(x, pset1<P>(-87.3365478515625f)), pcmp_lt(pset1<P>(88.0f), x));
  if (Eigen::internal::predux_any(low)) {
    const P h = Eigen::internal::pexp(pmul(x, pset1<P>(0.5f)));
    e = pselect(low, pmul(h, h), e);
  }
  const P over = pcmp_lt(pset1<P>(88.72283935546875f), x);
  return keep_nan(x, pselect(over, pset1<P>(std::numeric_limits<float>::infinity()), e));
}
// expm1f. For |x| < ln(2) / 2, its Taylor series to x^8 (truncation below 1e-9 relative there,
// rounding a few ulp); elsewhere exp(x) - 1, which there loses at most a bit or two to the
// subtraction (exp(x) / |exp(x) - 1| < 2.5). Half the cost of Eigen's pexpm1 (an exp, a log and
// a division per packet: Kahan's formula) for the same few ulp of libm's.
inline P expm1(P x) {
  using Eigen::internal::pmadd;
  const P one = pset1<P>(1.0f);
  P p = pset1<P>(1.0f / 40320.0f);
  p = pmadd(p, x, pset1<P>(1.0f / 5040.0f));
  p = pmadd(p, x, pset1<P>(1.0f / 720.0f));
  p = pmadd(p, x, pset1<P>(1.0f / 120.0f));
  p = pmadd(p, x, pset1<P>(1.0f / 24.0f));
  p = pmadd(p, x, pset1<P>(1.0f / 6.0f));
  p = pmadd(p, x, pset1<P>(0.5f));
  const P series = pmadd(pmul(p, x), x, x);  // x + x^2 (1/2 + x/6 + ... + x^6/8!)
  const P small = pcmp_lt(Eigen::internal::pabs(x), pset1<P>(0.34657359f));
  return pselect(small, series, psub(exp(x), one));  // exp keeps NaN and gives inf, 0 (-> -1)
}
// tanhf. Eigen's rational ptanh below |x| = 0.625; above, 1 - 2 / (1 + exp(2|x|)), which
// saturates to 1 where libm's does (|x| > 9.01; ptanh is 1 from 7.9988 on).
inline P tanh(P x) {
  const P ax = Eigen::internal::pabs(x), one = pset1<P>(1.0f);
  const P e = Eigen::internal::pexp(padd(ax, ax));
  const P big = select_sign(x, psub(one, pdiv(pset1<P>(2.0f), padd(one, e))));
  return keep_nan(x, pselect(pcmp_lt(ax, pset1<P>(0.625f)), Eigen::internal::ptanh(x), big));
}
// erff. Eigen's rational perf, held to [-1, 1] and +-1 from |x| = 3.9192059 on, as libm's.
inline P erf(P x) {
  const P one = pset1<P>(1.0f);
  const P r =
      Eigen::internal::pmin(Eigen::internal::pmax(Eigen::internal::perf(x), pset1<P>(-1.0f)), one);
  const P sat = Eigen::internal::pcmp_le(pset1<P>(3.9192059f), Eigen::internal::pabs(x));
  return keep_nan(x, pselect(sat, select_sign(x, one), r));
}

template <ActivationKind K>
P forward(P x, P a) {
  const P one = pset1<P>(1.0f), half = pset1<P>(0.5f), zero = pset1<P>(0.0f);
  if constexpr (K == ActivationKind::sigmoid) {
    return pdiv(one, padd(one, exp(psub(zero, x))));
  } else if constexpr (K == ActivationKind::tanh) {
    return tanh(x);
  } else if constexpr (K == ActivationKind::gelu) {
    return pmul(pmul(x, half), padd(one, erf(pmul(x, pset1<P>(kSqrt1_2<float>)))));
  } else if constexpr (K == ActivationKind::gelu_tanh) {
    const P cube = pmul(pmul(x, x), x);
    const P inner =
        pmul(pset1<P>(kSqrt2OverPi<float>), padd(x, pmul(pset1<P>(kGeluKappa<float>), cube)));
    return pmul(pmul(half, x), padd(one, tanh(inner)));
  } else if constexpr (K == ActivationKind::leaky_relu) {
    return pselect(pcmp_lt(zero, x), x, pmul(x, a));
  } else if constexpr (K == ActivationKind::elu) {
    return pselect(pcmp_lt(zero, x), x, pmul(expm1(x), a));
  } else {
    return pdiv(x, padd(one, exp(psub(zero, x))));
  }
}

template <ActivationKind K>
P backward(P g, P s, P a) {
  const P one = pset1<P>(1.0f), half = pset1<P>(0.5f), zero = pset1<P>(0.0f);
  if constexpr (K == ActivationKind::sigmoid) {
    return pmul(pmul(g, psub(one, s)), s);
  } else if constexpr (K == ActivationKind::tanh) {
    return pmul(g, psub(one, pmul(s, s)));
  } else if constexpr (K == ActivationKind::gelu) {
    const P cdf = pmul(half, padd(one, erf(pmul(s, pset1<P>(kSqrt1_2<float>)))));
    const P pdf = pmul(pset1<P>(kInvSqrt2Pi<float>), exp(pmul(pmul(s, s), pset1<P>(-0.5f))));
    return pmul(g, padd(cdf, pmul(s, pdf)));
  } else if constexpr (K == ActivationKind::gelu_tanh) {
    const P x_sq = pmul(s, s);
    const P inner = pmul(pset1<P>(kSqrt2OverPi<float>),
                         padd(s, pmul(pset1<P>(kGeluKappa<float>), pmul(x_sq, s))));
    const P t = tanh(inner);
    const P left = pmul(half, s), right = padd(one, t);
    const P right_derivative = pmul(pmul(psub(one, pmul(t, t)), pset1<P>(kSqrt2OverPi<float>)),
                                    padd(one, pmul(pset1<P>(3.0f * kGeluKappa<float>), x_sq)));
    return pmul(g, padd(pmul(half, right), pmul(left, right_derivative)));
  } else if constexpr (K == ActivationKind::leaky_relu) {
    return pselect(pcmp_lt(zero, s), g, pmul(g, a));
  } else if constexpr (K == ActivationKind::elu) {
    return pselect(pcmp_lt(zero, s), g, pmul(pmul(g, a), exp(s)));
  } else {
    const P sig = pdiv(one, padd(one, exp(psub(zero, s))));
    return pmul(pmul(g, sig), padd(one, pmul(s, psub(one, sig))));
  }
}

// out[i] = f(packets of in0[i], in1[i]...) over [lo, hi), the last partial packet padded.
template <class F>
void map(std::int64_t lo, std::int64_t hi, float* out, F&& f, const float* in0,
         const float* in1 = nullptr) {
  using Eigen::internal::ploadu;
  using Eigen::internal::pstoreu;
  std::int64_t i = lo;
  for (; i + kWidth <= hi; i += kWidth)
    pstoreu(out + i, f(ploadu<P>(in0 + i), in1 ? ploadu<P>(in1 + i) : pset1<P>(0.0f)));
  if (i < hi) {
    float b0[kWidth] = {}, b1[kWidth] = {}, r[kWidth];
    const std::int64_t m = hi - i;
    std::copy(in0 + i, in0 + hi, b0);
    if (in1) std::copy(in1 + i, in1 + hi, b1);
    pstoreu(r, f(ploadu<P>(b0), ploadu<P>(b1)));
    std::copy(r, r + m, out + i);
  }
}

}  // namespace activation_detail::packet

// y[i] = f(x[i]) for n contiguous elements; y may be x.
template <class T>
void activation_forward(ActivationKind kind, T a, const T* x, T* y, std::int64_t n) {
  activation_detail::with_kind(kind, [&](auto k) {
    parallel_for(0, n, activation_detail::kGrain, [&](std::int64_t lo, std::int64_t hi) {
      if constexpr (std::is_same_v<T, float>) {
        namespace pk = activation_detail::packet;
        const pk::P av = pk::pset1<pk::P>(a);
        pk::map(
            lo, hi, y, [av](pk::P v, pk::P) { return pk::forward<decltype(k)::value>(v, av); }, x);
      } else {
        for (std::int64_t i = lo; i < hi; ++i)
          y[i] = activation_detail::forward<decltype(k)::value>(x[i], a);
      }
    });
  });
}

// gx[i] = f'(saved[i]) * g[i]; saved is y for sigmoid and tanh, x otherwise. gx may be g.
template <class T>
void activation_backward(ActivationKind kind, T a, const T* g, const T* saved, T* gx, std::int64_t n) {
  activation_detail::with_kind(kind, [&](auto k) {
    parallel_for(0, n, activation_detail::kGrain, [&](std::int64_t lo, std::int64_t hi) {
      if constexpr (std::is_same_v<T, float>) {
        namespace pk = activation_detail::packet;
        const pk::P av = pk::pset1<pk::P>(a);
        pk::map(
            lo, hi, gx,
            [av](pk::P gv, pk::P sv) { return pk::backward<decltype(k)::value>(gv, sv, av); }, g,
            saved);
      } else {
        for (std::int64_t i = lo; i < hi; ++i)
          gx[i] = activation_detail::backward<decltype(k)::value>(g[i], saved[i], a);
      }
    });
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

// linear's bias: y (rows, cols) += bias[col], in place (as kernels/activation.cuh's
// bias_add_rows).
template <class T>
void bias_add_rows(T* y, const T* bias, std::int64_t rows, std::int64_t cols) {
  parallel_for(0, rows, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(cols, 1)),
               [=](std::int64_t lo, std::int64_t hi) {
                 for (std::int64_t r = lo; r < hi; ++r) {
                   T* __restrict row = y + r * cols;
                   const T* __restrict b = bias;
                   for (std::int64_t c = 0; c < cols; ++c) row[c] += b[c];
                 }
               });
}

// linear's bias gradient: gb[col] = the sum of gy (rows, cols) over rows, accumulated in T in
// row order, as ember::sum(gy, 0) (kernels/activation.cuh sums in double: the two agree within
// float rounding, not bit for bit).
template <class T>
void bias_grad_rows(const T* gy, T* gb, std::int64_t rows, std::int64_t cols) {
  sum_dim(gy, gb, 1, rows, cols);
}

}  // namespace cpu
}  // namespace ember
