#pragma once
// Pooling over (N*C) planes.
//
// Average pooling (Pool2dParams): one thread per output sums its window clipped to the input
// in window order and divides by the window's divisor; backward is a gather, one thread per
// input element adding gy / divisor of the windows that contain it in output order. Both are
// the loops of ember::cpu::avg_pool2d_forward/backward, so CPU and CUDA agree exactly.
//
// Max pooling (Pool2dParams: any window, dilation, ceil_mode, or adaptive) with the semantics
// of ember::cpu::max_pool2d_forward/backward (backend/cpu/pool.hpp): x (planes, H, W) ->
// y (planes, P, Q) and an int32 argmax holding the flat index h * W + w (within the plane) of
// the winning input.
//   * One thread per output scans its window's taps inside the input (Pool2dParams::taps; the
//     padding never wins: it acts as -inf) in window order (rows, then columns) keeping the
//     running maximum: a later element wins only if it is greater (ties keep the earlier one),
//     and a NaN always wins (so the last NaN of a window is the one recorded), exactly as the
//     CPU scan and its 2x2 tournament. A window with no tap inside the input gives -inf, -1.
//   * Backward is a gather, one thread per input element: it visits the windows whose span
//     contains the element (Pool2dParams::cover) in increasing output order and adds gy where
//     argmax points at it, starting from 0, which is the CPU scatter's summation order. gx is
//     fully written; no atomics, so overlapping windows are deterministic.

#include <cstdint>

#include "common.cuh"
#include "ember/backend/params.hpp"

namespace ember::kernels {

// One thread per output. Window: KS x KS, undilated and not adaptive, when KS > 0
// (compile-time, unrolled), else any.
template <class T, int KS>
EMBER_KERNEL void max_pool2d_forward_kernel(Pool2dParams p, const T* __restrict__ x,
                                            T* __restrict__ y, std::int32_t* __restrict__ argmax) {
  const std::int64_t P = p.p(), Q = p.q(), H = p.h, W = p.w;
  const std::int64_t total = p.planes * P * Q;
  const std::int64_t stride = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += stride) {
    const std::int64_t plane = o / (P * Q);
    const std::int64_t rem = o - plane * P * Q;
    const std::int64_t oh = rem / Q, ow = rem - oh * Q;
    const Pool2dParams::Window t = p.taps(oh, ow);
    const T* xp = x + plane * H * W;
    T best = -INFINITY;
    std::int64_t best_i = t.h0 < t.h1 && t.w0 < t.w1 ? t.h0 * W + t.w0 : -1;
    if constexpr (KS > 0) {
      // The window's cells, those outside the input skipped.
      const std::int64_t hs = oh * p.sh - p.ph, ws = ow * p.sw - p.pw;
#pragma unroll
      for (int r = 0; r < KS; ++r)
#pragma unroll
        for (int s = 0; s < KS; ++s) {
          const std::int64_t ih = hs + r, iw = ws + s;
          if (ih < t.h0 || ih >= t.h1 || iw < t.w0 || iw >= t.w1) continue;
          const std::int64_t i = ih * W + iw;
          const T v = xp[i];
          const bool take = v > best || v != v;
          best = take ? v : best;
          best_i = take ? i : best_i;
        }
    } else {
      for (std::int64_t ih = t.h0; ih < t.h1; ih += p.dh)
        for (std::int64_t iw = t.w0; iw < t.w1; iw += p.dw) {
          const std::int64_t i = ih * W + iw;
          const T v = xp[i];
          const bool take = v > best || v != v;
          best = take ? v : best;
          best_i = take ? i : best_i;
        }
    }
    y[o] = best;
    argmax[o] = static_cast<std::int32_t>(best_i);
  }
}

// One thread per input element: gx[i] = sum of gy over the windows (in output order) whose
// argmax is i.
template <class T>
EMBER_KERNEL void max_pool2d_backward_kernel(Pool2dParams p, const T* __restrict__ gy,
                                             const std::int32_t* __restrict__ argmax,
                                             T* __restrict__ gx) {
  const std::int64_t P = p.p(), Q = p.q(), H = p.h, W = p.w;
  const std::int64_t total = p.planes * H * W;
  const std::int64_t stride = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const std::int64_t plane = e / (H * W);
    const std::int64_t hw = e - plane * H * W;
    const std::int64_t ih = hw / W, iw = hw - ih * W;
    const Pool2dParams::Cover c = p.cover(ih, iw);
    const std::int32_t* ap = argmax + plane * P * Q;
    const T* gp = gy + plane * P * Q;
    T acc = T(0);
    for (std::int64_t oh = c.oh0; oh < c.oh1; ++oh)
      for (std::int64_t ow = c.ow0; ow < c.ow1; ++ow) {
        const std::int64_t o = oh * Q + ow;
        if (ap[o] == static_cast<std::int32_t>(hw)) acc += gp[o];
      }
    gx[e] = acc;
  }
}

inline void check_pool_params(const Pool2dParams& p, const char* what) {
  EMBER_CHECK(p.planes >= 0 && p.h >= 0 && p.w >= 0, what, ": bad pooling parameters");
  EMBER_CHECK(p.adaptive() || (p.kh >= 1 && p.kw >= 1 && p.sh >= 1 && p.sw >= 1 && p.ph >= 0 &&
                               p.pw >= 0 && p.dh >= 1 && p.dw >= 1),
              what, ": bad pooling parameters");
  EMBER_CHECK(p.h * p.w <= 2147483647LL, what, ": planes of ", p.h, " x ", p.w,
              " do not fit the int32 argmax");
}

// y (planes, P, Q), argmax (planes, P, Q) <- x (planes, H, W)
template <class T>
void max_pool2d_forward(const Pool2dParams& p, const T* x, T* y, std::int32_t* argmax,
                        Stream stream, int threads = 256) {
  check_pool_params(p, "max_pool2d_forward");
  (void)stream;
  const std::int64_t total = p.planes * p.p() * p.q();
  if (p.p() <= 0 || p.q() <= 0 || total <= 0) return;
  // Square undilated windows of 2 and 3 (the common ones) get unrolled kernels.
  const bool square = !p.adaptive() && p.kh == p.kw && p.dh == 1 && p.dw == 1;
  auto* kernel = square && p.kh == 2   ? &max_pool2d_forward_kernel<T, 2>
                 : square && p.kh == 3 ? &max_pool2d_forward_kernel<T, 3>
                                       : &max_pool2d_forward_kernel<T, 0>;
  EMBER_LAUNCH(kernel, grid_for(total, threads), threads, 0, stream)(p, x, y, argmax);
  check_launch("max_pool2d_forward_kernel");
}

// gx (planes, H, W) = scatter of gy (planes, P, Q) by argmax (gx is overwritten)
template <class T>
void max_pool2d_backward(const Pool2dParams& p, const T* gy, const std::int32_t* argmax, T* gx,
                         Stream stream, int threads = 256) {
  check_pool_params(p, "max_pool2d_backward");
  (void)stream;
  const std::int64_t total = p.planes * p.h * p.w;
  if (total <= 0) return;
  EMBER_LAUNCH(max_pool2d_backward_kernel<T>, grid_for(total, threads), threads, 0, stream)(p, gy, argmax, gx);
  check_launch("max_pool2d_backward_kernel");
}

template <class T>
EMBER_KERNEL void avg_pool2d_forward_kernel(Pool2dParams p, const T* __restrict__ x, T* __restrict__ y) {
  const std::int64_t P = p.p(), Q = p.q(), H = p.h, W = p.w;
  const std::int64_t total = p.planes * P * Q;
  const std::int64_t stride = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += stride) {
    const std::int64_t plane = o / (P * Q);
    const std::int64_t rem = o - plane * P * Q;
    const std::int64_t oh = rem / Q, ow = rem - oh * Q;
    const Pool2dParams::Window win = p.window(oh, ow);
    const T* xp = x + plane * H * W;
    T acc = T(0);
    for (std::int64_t ih = win.h0; ih < win.h1; ++ih)
      for (std::int64_t iw = win.w0; iw < win.w1; ++iw) acc += xp[ih * W + iw];
    y[o] = acc / static_cast<T>(win.divisor);
  }
}

template <class T>
EMBER_KERNEL void avg_pool2d_backward_kernel(Pool2dParams p, const T* __restrict__ gy, T* __restrict__ gx) {
  const std::int64_t P = p.p(), Q = p.q(), H = p.h, W = p.w;
  const std::int64_t total = p.planes * H * W;
  const std::int64_t stride = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const std::int64_t plane = e / (H * W);
    const std::int64_t rem = e - plane * H * W;
    const std::int64_t ih = rem / W, iw = rem - ih * W;
    const Pool2dParams::Cover c = p.cover(ih, iw);
    const T* gp = gy + plane * P * Q;
    T acc = T(0);
    for (std::int64_t oh = c.oh0; oh < c.oh1; ++oh)
      for (std::int64_t ow = c.ow0; ow < c.ow1; ++ow)
        acc += gp[oh * Q + ow] / static_cast<T>(p.window(oh, ow).divisor);
    gx[e] = acc;
  }
}

// y (planes, P, Q) <- x (planes, H, W)
template <class T>
void avg_pool2d_forward(const Pool2dParams& p, const T* x, T* y, Stream stream, int threads = 256) {
  (void)stream;
  const std::int64_t total = p.planes * p.p() * p.q();
  if (p.p() <= 0 || p.q() <= 0 || total <= 0) return;
  EMBER_LAUNCH(avg_pool2d_forward_kernel<T>, grid_for(total, threads), threads, 0, stream)(p, x, y);
  check_launch("avg_pool2d_forward_kernel");
}

// gx (planes, H, W) <- gy (planes, P, Q) (gx is overwritten)
template <class T>
void avg_pool2d_backward(const Pool2dParams& p, const T* gy, T* gx, Stream stream, int threads = 256) {
  (void)stream;
  const std::int64_t total = p.planes * p.h * p.w;
  if (total <= 0) return;
  EMBER_LAUNCH(avg_pool2d_backward_kernel<T>, grid_for(total, threads), threads, 0, stream)(p, gy, gx);
  check_launch("avg_pool2d_backward_kernel");
}

}  // namespace ember::kernels
