#pragma once
// relu forward / backward and the bias kernels of linear and conv2d layers:
//   * relu_forward / relu_backward: ember::relu and its ReluBackward0 (bit-identical);
//   * bias_add_rows / bias_relu_rows: y (rows, cols) += bias[col] (then relu), in place;
//   * bias_add_channels / bias_relu_channels: y (N, C, HW) += bias[c] (then relu), in place;
//   * bias_grad_rows / bias_grad_channels: the bias gradients, summed in double in a fixed order
//     (deterministic; no atomics);
//   * activation_forward / activation_backward: sigmoid, tanh, gelu (erf and tanh forms),
//     leaky_relu, elu, silu, and softmax_forward / softmax_backward over rows.

#include <cstdint>
#include <type_traits>

#include "common.cuh"
#include "elementwise.cuh"
#include "reduce.cuh"
#include "softmax.cuh"

namespace ember::kernels {

namespace activation_impl {

using elementwise_impl::relu_value;
using elementwise_impl::Vec;

template <class T>
EMBER_DEVICE T bias_value(T y, T b, bool relu) {
  const T v = y + b;
  return relu ? relu_value(v) : v;
}

// y[i] += bias[i % cols] (then relu) over rows * cols = n elements.
template <class T>
EMBER_KERNEL void bias_rows_kernel(T* y, const T* bias, std::int64_t n, std::int64_t cols, bool relu,
                                   bool idx32) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const std::int64_t c = idx32 ? static_cast<std::int64_t>(static_cast<std::uint32_t>(i) %
                                                             static_cast<std::uint32_t>(cols))
                                 : i % cols;
    y[i] = bias_value(y[i], bias[c], relu);
  }
}

// Vectors of width W: cols % W == 0, y and bias 16-byte aligned.
template <class T>
EMBER_KERNEL void bias_rows_vec_kernel(T* y, const T* bias, std::int64_t n, std::int64_t cols,
                                       bool relu, bool idx32) {
  using V = typename Vec<T>::type;
  constexpr int W = Vec<T>::width;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t nv = n / W;
  V* yv = reinterpret_cast<V*>(y);
  const V* bv = reinterpret_cast<const V*>(bias);
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < nv;
       i += stride) {
    const std::int64_t e = i * W;
    const std::int64_t c = idx32 ? static_cast<std::int64_t>(static_cast<std::uint32_t>(e) %
                                                             static_cast<std::uint32_t>(cols))
                                 : e % cols;
    const V b = bv[c / W];
    V v = yv[i];
    v.x = bias_value(v.x, b.x, relu);
    v.y = bias_value(v.y, b.y, relu);
    if constexpr (W == 4) {
      v.z = bias_value(v.z, b.z, relu);
      v.w = bias_value(v.w, b.w, relu);
    }
    yv[i] = v;
  }
}

// y[i] += bias[(i / hw) % c] (then relu) over n * c * hw = total elements.
template <class T>
EMBER_KERNEL void bias_channels_kernel(T* y, const T* bias, std::int64_t total, std::int64_t c,
                                       std::int64_t hw, bool relu, bool idx32) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    std::int64_t ch;
    if (idx32) {
      const std::uint32_t p = static_cast<std::uint32_t>(i) / static_cast<std::uint32_t>(hw);
      ch = static_cast<std::int64_t>(p % static_cast<std::uint32_t>(c));
    } else {
      ch = (i / hw) % c;
    }
    y[i] = bias_value(y[i], bias[ch], relu);
  }
}

// Vectors of width W: hw % W == 0 (a vector never straddles two channels), y 16-byte aligned.
template <class T>
EMBER_KERNEL void bias_channels_vec_kernel(T* y, const T* bias, std::int64_t total, std::int64_t c,
                                           std::int64_t hw, bool relu, bool idx32) {
  using V = typename Vec<T>::type;
  constexpr int W = Vec<T>::width;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t nv = total / W;
  V* yv = reinterpret_cast<V*>(y);
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < nv;
       i += stride) {
    const std::int64_t e = i * W;
    std::int64_t ch;
    if (idx32) {
      const std::uint32_t p = static_cast<std::uint32_t>(e) / static_cast<std::uint32_t>(hw);
      ch = static_cast<std::int64_t>(p % static_cast<std::uint32_t>(c));
    } else {
      ch = (e / hw) % c;
    }
    const T b = bias[ch];
    V v = yv[i];
    v.x = bias_value(v.x, b, relu);
    v.y = bias_value(v.y, b, relu);
    if constexpr (W == 4) {
      v.z = bias_value(v.z, b, relu);
      v.w = bias_value(v.w, b, relu);
    }
    yv[i] = v;
  }
}

template <class T>
void bias_rows(T* y, const T* bias, std::int64_t rows, std::int64_t cols, bool relu, Stream stream,
               int threads) {
  (void)stream;  // (the CPU harness ignores streams)
  using elementwise_impl::aligned16;
  using elementwise_impl::grid_1d;
  EMBER_CHECK(rows >= 0 && cols >= 0, "bias_add_rows: negative size");
  const std::int64_t n = rows * cols;
  if (n == 0) return;
  const bool idx32 = elementwise_impl::fits_u32(n);
  if (cols % Vec<T>::width == 0 && aligned16(y) && aligned16(bias)) {
    EMBER_LAUNCH(bias_rows_vec_kernel<T>, grid_1d(n / Vec<T>::width, threads), threads, 0, stream)(
        y, bias, n, cols, relu, idx32);
    check_launch("bias_rows_vec_kernel");
  } else {
    EMBER_LAUNCH(bias_rows_kernel<T>, grid_1d(n, threads), threads, 0, stream)(y, bias, n, cols, relu,
                                                                               idx32);
    check_launch("bias_rows_kernel");
  }
}

template <class T>
void bias_channels(T* y, const T* bias, std::int64_t n, std::int64_t c, std::int64_t hw, bool relu,
                   Stream stream, int threads) {
  (void)stream;  // (the CPU harness ignores streams)
  using elementwise_impl::aligned16;
  using elementwise_impl::grid_1d;
  EMBER_CHECK(n >= 0 && c >= 0 && hw >= 0, "bias_add_channels: negative size");
  const std::int64_t total = n * c * hw;
  if (total == 0) return;
  const bool idx32 = elementwise_impl::fits_u32(total);
  if (hw % Vec<T>::width == 0 && aligned16(y)) {
    EMBER_LAUNCH(bias_channels_vec_kernel<T>, grid_1d(total / Vec<T>::width, threads), threads, 0,
                 stream)(y, bias, total, c, hw, relu, idx32);
    check_launch("bias_channels_vec_kernel");
  } else {
    EMBER_LAUNCH(bias_channels_kernel<T>, grid_1d(total, threads), threads, 0, stream)(
        y, bias, total, c, hw, relu, idx32);
    check_launch("bias_channels_kernel");
  }
}

}  // namespace activation_impl

// y[i] = relu(x[i]) (ember::relu: x > 0 ? x : 0, NaN stays NaN); contiguous, y may be x.
template <class T>
void relu_forward(const T* x, T* y, std::int64_t n, Stream stream, int threads = 256) {
  unary(UnaryOp::relu, x, y, n, T(0), stream, threads);
}

// gx[i] = y[i] > 0 ? g[i] : 0 (ReluBackward0, y the forward output); contiguous, gx may be g.
template <class T>
void relu_backward(const T* g, const T* y, T* gx, std::int64_t n, Stream stream, int threads = 256) {
  EMBER_CHECK(n >= 0, "relu_backward: negative size ", n);
  StridedView flat;
  flat.rank = 1;
  flat.shape[0] = n;
  flat.strides[0] = 1;
  binary(BinaryOp::relu_grad, g, flat, y, flat, gx, n, stream, threads);
}

// y (rows, cols), contiguous, in place: y[r][c] += bias[c] (linear's bias).
template <class T>
void bias_add_rows(T* y, const T* bias, std::int64_t rows, std::int64_t cols, Stream stream,
                   int threads = 256) {
  activation_impl::bias_rows(y, bias, rows, cols, false, stream, threads);
}

// y (rows, cols) in place: y = relu(y + bias[c]), the fused linear + relu.
template <class T>
void bias_relu_rows(T* y, const T* bias, std::int64_t rows, std::int64_t cols, Stream stream,
                    int threads = 256) {
  activation_impl::bias_rows(y, bias, rows, cols, true, stream, threads);
}

// y (N, C, HW), contiguous, in place: y[n][c][i] += bias[c] (conv2d's bias).
template <class T>
void bias_add_channels(T* y, const T* bias, std::int64_t n, std::int64_t c, std::int64_t hw,
                       Stream stream, int threads = 256) {
  activation_impl::bias_channels(y, bias, n, c, hw, false, stream, threads);
}

// y (N, C, HW) in place: y = relu(y + bias[c]).
template <class T>
void bias_relu_channels(T* y, const T* bias, std::int64_t n, std::int64_t c, std::int64_t hw,
                        Stream stream, int threads = 256) {
  activation_impl::bias_channels(y, bias, n, c, hw, true, stream, threads);
}

// gb[c] = sum over n, i of g[n][c][i] for g (N, C, HW) contiguous; gb overwritten. Summed in double
// (like the CPU conv2d_backward), fixed order: one block per channel with a tree reduction.
// threads: a multiple of 32.
template <class T>
void bias_grad_channels(const T* g, T* gb, std::int64_t n, std::int64_t c, std::int64_t hw,
                        Stream stream, int threads = 256) {
  sum_outer_inner<T, double>(g, n, c, hw, gb, stream, threads);
}

// gb[c] = sum over r of g[r][c] for g (rows, cols) contiguous; gb overwritten. Summed in double,
// fixed order (coalesced column sums). threads: a multiple of 32.
template <class T>
void bias_grad_rows(const T* g, T* gb, std::int64_t rows, std::int64_t cols, Stream stream,
                    int threads = 256) {
  sum_outer_inner<T, double>(g, rows, cols, 1, gb, stream, threads);
}

}  // namespace ember::kernels

// ---- sigmoid, tanh, gelu, leaky_relu, elu, silu; softmax -----------------------------------------
// The formulas of ember::cpu::activation_forward/backward and softmax_forward/backward
// (backend/cpu/activation.hpp), written out again with the device math functions (the CPU's
// float kernels use Eigen's vectorised approximations of them instead: results a few ulp
// apart, bounded in tests/ops/op_activations.cpp).

namespace ember::kernels {

// ember::ActivationKind's kinds, in its order.
enum class ActivationKind { sigmoid, tanh, gelu, gelu_tanh, leaky_relu, elu, silu };

namespace activation_impl {

using elementwise_impl::kexp;
EMBER_DEVICE float ktanh(float x) { return tanhf(x); }
EMBER_DEVICE double ktanh(double x) { return ::tanh(x); }
EMBER_DEVICE float kerf(float x) { return erff(x); }
EMBER_DEVICE double kerf(double x) { return ::erf(x); }
EMBER_DEVICE float kexpm1(float x) { return expm1f(x); }
EMBER_DEVICE double kexpm1(double x) { return ::expm1(x); }

template <ActivationKind K, class T>
EMBER_DEVICE T act_forward(T x, T a) {
  const T sqrt1_2 = T(0.70710678118654752440), sqrt2_over_pi = T(0.79788456080286535588);
  const T kappa = T(0.044715);
  if constexpr (K == ActivationKind::sigmoid) {
    return T(1) / (T(1) + kexp(-x));
  } else if constexpr (K == ActivationKind::tanh) {
    return ktanh(x);
  } else if constexpr (K == ActivationKind::gelu) {
    return x * T(0.5) * (T(1) + kerf(x * sqrt1_2));
  } else if constexpr (K == ActivationKind::gelu_tanh) {
    const T inner = sqrt2_over_pi * (x + kappa * (x * x * x));
    return T(0.5) * x * (T(1) + ktanh(inner));
  } else if constexpr (K == ActivationKind::leaky_relu) {
    return x > T(0) ? x : x * a;
  } else if constexpr (K == ActivationKind::elu) {
    return x > T(0) ? x : kexpm1(x) * a;
  } else {
    return x / (T(1) + kexp(-x));
  }
}

// s: the saved output (sigmoid, tanh) or input (the others).
template <ActivationKind K, class T>
EMBER_DEVICE T act_backward(T g, T s, T a) {
  const T sqrt1_2 = T(0.70710678118654752440), inv_sqrt_2pi = T(0.39894228040143267794);
  const T sqrt2_over_pi = T(0.79788456080286535588), kappa = T(0.044715);
  if constexpr (K == ActivationKind::sigmoid) {
    return g * (T(1) - s) * s;
  } else if constexpr (K == ActivationKind::tanh) {
    return g * (T(1) - s * s);
  } else if constexpr (K == ActivationKind::gelu) {
    const T cdf = T(0.5) * (T(1) + kerf(s * sqrt1_2));
    const T pdf = inv_sqrt_2pi * kexp(s * s * T(-0.5));
    return g * (cdf + s * pdf);
  } else if constexpr (K == ActivationKind::gelu_tanh) {
    const T x_sq = s * s;
    const T inner = sqrt2_over_pi * (s + kappa * (x_sq * s));
    const T t = ktanh(inner);
    const T left = T(0.5) * s, right = T(1) + t;
    const T right_derivative = (T(1) - t * t) * sqrt2_over_pi * (T(1) + T(3) * kappa * x_sq);
    return g * (T(0.5) * right + left * right_derivative);
  } else if constexpr (K == ActivationKind::leaky_relu) {
    return s > T(0) ? g : g * a;
  } else if constexpr (K == ActivationKind::elu) {
    return s > T(0) ? g : g * a * kexp(s);
  } else {
    const T sig = T(1) / (T(1) + kexp(-s));
    return g * sig * (T(1) + s * (T(1) - sig));
  }
}

template <ActivationKind K, class T>
EMBER_KERNEL void act_forward_kernel(T a, const T* __restrict__ x, T* __restrict__ y, std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = act_forward<K>(x[i], a);
}

template <ActivationKind K, class T>
EMBER_KERNEL void act_backward_kernel(T a, const T* __restrict__ g, const T* __restrict__ s,
                                      T* __restrict__ gx, std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    gx[i] = act_backward<K>(g[i], s[i], a);
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

template <class T, bool kBlock>
EMBER_DEVICE void softmax_forward_rows(const T* __restrict__ x, T* __restrict__ y, std::int64_t rows,
                                       std::int64_t cols, T* smax, double* ssum) {
  using namespace softmax_detail;
  const RowLayout<kBlock> L;
  for (std::int64_t r = L.first_row; r < rows; r += L.row_step) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T m = -static_cast<T>(INFINITY);
    for (std::int64_t c = L.first_col; c < cols; c += L.col_step) m = MaxOp{}(m, xr[c]);
    m = row_allreduce<kBlock>(m, smax, MaxOp{});
    double s = 0;
    for (std::int64_t c = L.first_col; c < cols; c += L.col_step) s += ::exp(static_cast<double>(xr[c] - m));
    s = row_allreduce<kBlock>(s, ssum, SumOp{});
    for (std::int64_t c = L.first_col; c < cols; c += L.col_step)
      yr[c] = static_cast<T>(::exp(static_cast<double>(xr[c] - m)) / s);
  }
}

template <class T, bool kBlock>
EMBER_DEVICE void softmax_backward_rows(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ gx,
                                        std::int64_t rows, std::int64_t cols, double* ssum) {
  using namespace softmax_detail;
  const RowLayout<kBlock> L;
  for (std::int64_t r = L.first_row; r < rows; r += L.row_step) {
    const T* gr = g + r * cols;
    const T* yr = y + r * cols;
    T* gxr = gx + r * cols;
    double dot = 0;
    for (std::int64_t c = L.first_col; c < cols; c += L.col_step)
      dot += static_cast<double>(gr[c]) * static_cast<double>(yr[c]);
    dot = row_allreduce<kBlock>(dot, ssum, SumOp{});
    for (std::int64_t c = L.first_col; c < cols; c += L.col_step)
      gxr[c] = static_cast<T>(static_cast<double>(yr[c]) * (static_cast<double>(gr[c]) - dot));
  }
}

// kBlock false: one warp per row; true: one block per row.
template <class T, bool kBlock>
EMBER_KERNEL void softmax_forward_kernel(const T* __restrict__ x, T* __restrict__ y, std::int64_t rows,
                                         std::int64_t cols) {
  __shared__ T smax[32];
  __shared__ double ssum[32];
  softmax_forward_rows<T, kBlock>(x, y, rows, cols, smax, ssum);
}

template <class T, bool kBlock>
EMBER_KERNEL void softmax_backward_kernel(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ gx,
                                          std::int64_t rows, std::int64_t cols) {
  __shared__ double ssum[32];
  softmax_backward_rows<T, kBlock>(g, y, gx, rows, cols, ssum);
}

}  // namespace activation_impl

// y[i] = f(x[i]) for n contiguous elements (a: leaky_relu's slope, elu's alpha); y may be x.
template <class T>
void activation_forward(ActivationKind kind, T a, const T* x, T* y, std::int64_t n, Stream stream,
                        int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(n >= 0, "activation_forward: negative size ", n);
  if (n == 0) return;
  activation_impl::with_kind(kind, [&](auto k) {
    auto* kernel = &activation_impl::act_forward_kernel<decltype(k)::value, T>;
    EMBER_LAUNCH(kernel, grid_for(n, threads), threads, 0, stream)(a, x, y, n);
    check_launch("act_forward_kernel");
  });
}

// gx[i] = f'(s[i]) * g[i], s the forward output for sigmoid and tanh, its input otherwise.
template <class T>
void activation_backward(ActivationKind kind, T a, const T* g, const T* s, T* gx, std::int64_t n,
                         Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(n >= 0, "activation_backward: negative size ", n);
  if (n == 0) return;
  activation_impl::with_kind(kind, [&](auto k) {
    auto* kernel = &activation_impl::act_backward_kernel<decltype(k)::value, T>;
    EMBER_LAUNCH(kernel, grid_for(n, threads), threads, 0, stream)(a, g, s, gx, n);
    check_launch("act_backward_kernel");
  });
}

// y = softmax(x) over the last dimension of a contiguous (rows, cols) array.
// threads: a multiple of 32 in [32, 1024].
template <class T>
void softmax_forward(const T* x, T* y, std::int64_t rows, std::int64_t cols, Stream stream,
                     int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  softmax_detail::check_softmax_threads(threads);
  if (rows <= 0 || cols <= 0) return;
  if (cols <= kSoftmaxWarpCols) {
    auto* kernel = &activation_impl::softmax_forward_kernel<T, false>;
    EMBER_LAUNCH(kernel, grid_for(rows, threads / 32), threads, 0, stream)(x, y, rows, cols);
  } else {
    auto* kernel = &activation_impl::softmax_forward_kernel<T, true>;
    EMBER_LAUNCH(kernel, grid_for(rows, 1), threads, 0, stream)(x, y, rows, cols);
  }
  check_launch("softmax_forward_kernel");
}

// gx = y * (g - sum(g * y)) per row, y being softmax's output; all (rows, cols) contiguous.
template <class T>
void softmax_backward(const T* g, const T* y, T* gx, std::int64_t rows, std::int64_t cols, Stream stream,
                      int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  softmax_detail::check_softmax_threads(threads);
  if (rows <= 0 || cols <= 0) return;
  if (cols <= kSoftmaxWarpCols) {
    auto* kernel = &activation_impl::softmax_backward_kernel<T, false>;
    EMBER_LAUNCH(kernel, grid_for(rows, threads / 32), threads, 0, stream)(g, y, gx, rows, cols);
  } else {
    auto* kernel = &activation_impl::softmax_backward_kernel<T, true>;
    EMBER_LAUNCH(kernel, grid_for(rows, 1), threads, 0, stream)(g, y, gx, rows, cols);
  }
  check_launch("softmax_backward_kernel");
}

}  // namespace ember::kernels
