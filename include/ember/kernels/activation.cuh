#pragma once
// relu forward / backward and the bias kernels of linear and conv2d layers:
//   * relu_forward / relu_backward: ember::relu and its ReluBackward0 (bit-identical);
//   * bias_add_rows / bias_relu_rows: y (rows, cols) += bias[col] (then relu), in place;
//   * bias_add_channels / bias_relu_channels: y (N, C, HW) += bias[c] (then relu), in place;
//   * bias_grad_rows / bias_grad_channels: the bias gradients, summed in double in a fixed order
//     (deterministic; no atomics).

#include <cstdint>
#include <type_traits>

#include "common.cuh"
#include "elementwise.cuh"
#include "reduce.cuh"

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
