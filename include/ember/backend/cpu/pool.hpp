#pragma once
// CPU pooling over (N*C) planes, threaded over planes. Every window is a Pool2dParams one.
//  * Max pooling (any window, dilation, ceil_mode, or adaptive): each output scans its window's
//    taps inside the input in window order (rows, then columns), keeping the running maximum
//    with selects rather than branches (random data would mispredict half of them): a later
//    element wins only if greater (ties keep the earlier one), and a NaN always wins (so the
//    last NaN of a window is recorded), as PyTorch. Padding never wins: it is -inf. It records
//    for every output the flat index (h * W + w) of the winning input, which the backward pass
//    scatters gy to; a dilated window with no tap inside the input gives -inf and index -1.
//  * Average pooling (any window, ceil_mode, count_include_pad): each output is the sum of its
//    window clipped to the input, in window order, divided by the window's divisor; the
//    backward pass is a gather, every input adding gy / divisor of the windows that contain it
//    in output order, as kernels/pool.cuh does (so the two agree exactly).

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "ember/backend/params.hpp"
#include "ember/core/parallel.hpp"

namespace ember {

namespace cpu {

namespace detail {
// True for the common 2 x 2, stride 2, unpadded, undilated window when every window lies whole
// inside the input (always in floor mode).
[[nodiscard]] inline bool is_max_pool_2x2(const Pool2dParams& p) {
  return !p.adaptive() && p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 &&
         p.pw == 0 && p.dh == 1 && p.dw == 1 && 2 * p.p() <= p.h && 2 * p.q() <= p.w;
}

// That window as a tournament: the winners of (a, b) and of (c, d), then the winner of those
// two. Each comparison is a select on its own (no loop carried state), so the compiler can
// vectorise a row, and the result is that of a scan in window order: ties keep the earlier
// element, a later NaN wins.
template <class T>
void max_pool2d_2x2(const Pool2dParams& p, const T* x, T* y, std::int32_t* argmax) {
  const std::int64_t P = p.p(), Q = p.q(), W = p.w, H = p.h;
  parallel_for(0, p.planes, 8, [=](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t pl = lo; pl < hi; ++pl) {
      const T* xp = x + pl * H * W;
      for (std::int64_t oh = 0; oh < P; ++oh) {
        const T* __restrict r0 = xp + 2 * oh * W;
        const T* __restrict r1 = r0 + W;
        T* __restrict yo = y + (pl * P + oh) * Q;
        std::int32_t* __restrict ao = argmax + (pl * P + oh) * Q;
        const auto top = static_cast<std::int32_t>(2 * oh * W);
        const auto bottom = static_cast<std::int32_t>(top + W);
        for (std::int64_t ow = 0; ow < Q; ++ow) {
          const T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
          const auto col = static_cast<std::int32_t>(2 * ow);
          const bool take_b = b > a || b != b;
          const T m0 = take_b ? b : a;
          const std::int32_t i0 = top + col + (take_b ? 1 : 0);
          const bool take_d = d > c || d != d;
          const T m1 = take_d ? d : c;
          const std::int32_t i1 = bottom + col + (take_d ? 1 : 0);
          const bool take_1 = m1 > m0 || m1 != m1;
          yo[ow] = take_1 ? m1 : m0;
          ao[ow] = take_1 ? i1 : i0;
        }
      }
    }
  });
}

// True when the windows tile the input without overlap or padding (stride = kernel, undilated,
// not adaptive) and every window lies whole inside it: each input is in at most one window, and
// every divisor is kh * kw.
[[nodiscard]] inline bool is_avg_pool_tiled(const Pool2dParams& p) {
  return !p.adaptive() && p.sh == p.kh && p.sw == p.kw && p.ph == 0 && p.pw == 0 && p.dh == 1 &&
         p.dw == 1 && p.kh * p.p() <= p.h && p.kw * p.q() <= p.w;
}

// avg_pool2d 2 x 2 on tiled windows: the generic loop's sum in the same order (0 + a + b + c +
// d, the 0 keeps a -0 window at +0 as there), with no window table, so a row vectorises.
template <class T>
void avg_pool2d_2x2(const Pool2dParams& p, const T* x, T* y) {
  const std::int64_t P = p.p(), Q = p.q(), W = p.w, H = p.h;
  parallel_for(0, p.planes, 8, [=](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t pl = lo; pl < hi; ++pl)
      for (std::int64_t oh = 0; oh < P; ++oh) {
        const T* __restrict r0 = x + pl * H * W + 2 * oh * W;
        const T* __restrict r1 = r0 + W;
        T* __restrict yo = y + (pl * P + oh) * Q;
        for (std::int64_t ow = 0; ow < Q; ++ow)
          yo[ow] = (T(0) + r0[2 * ow] + r0[2 * ow + 1] + r1[2 * ow] + r1[2 * ow + 1]) / T(4);
      }
  });
}

// The backward of tiled windows: every input gets 0 + gy / divisor of its one window (as the
// generic gather), or 0 outside every window; the division is done once per output.
template <class T>
void avg_pool2d_backward_tiled(const Pool2dParams& p, const T* gy, T* gx) {
  const std::int64_t P = p.p(), Q = p.q(), H = p.h, W = p.w, kh = p.kh, kw = p.kw;
  const T divisor = static_cast<T>(kh * kw);
  parallel_for(0, p.planes, 8, [=](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t pl = lo; pl < hi; ++pl) {
      T* xp = gx + pl * H * W;
      for (std::int64_t ih = 0; ih < H; ++ih) {
        T* __restrict row = xp + ih * W;
        const std::int64_t oh = ih / kh;
        if (oh >= P) {
          for (std::int64_t iw = 0; iw < W; ++iw) row[iw] = T(0);
          continue;
        }
        const T* __restrict g = gy + (pl * P + oh) * Q;
        if (kw == 2) {
          for (std::int64_t ow = 0; ow < Q; ++ow) {
            const T v = T(0) + g[ow] / divisor;
            row[2 * ow] = v;
            row[2 * ow + 1] = v;
          }
        } else {
          for (std::int64_t ow = 0; ow < Q; ++ow) {
            const T v = T(0) + g[ow] / divisor;
            for (std::int64_t j = 0; j < kw; ++j) row[ow * kw + j] = v;
          }
        }
        for (std::int64_t iw = Q * kw; iw < W; ++iw) row[iw] = T(0);
      }
    }
  });
}
}  // namespace detail

// y (planes, P, Q), argmax (planes, P, Q) <- x (planes, H, W)
template <class T>
void max_pool2d_forward(const Pool2dParams& p, const T* x, T* y, std::int32_t* argmax) {
  if (detail::is_max_pool_2x2(p)) {
    detail::max_pool2d_2x2(p, x, y, argmax);
    return;
  }
  const std::int64_t P = p.p(), Q = p.q(), H = p.h, W = p.w, dh = p.dh, dw = p.dw;
  parallel_for(0, p.planes, 8, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t pl = lo; pl < hi; ++pl) {
      const T* xp = x + pl * H * W;
      T* yp = y + pl * P * Q;
      std::int32_t* ap = argmax + pl * P * Q;
      for (std::int64_t oh = 0; oh < P; ++oh)
        for (std::int64_t ow = 0; ow < Q; ++ow) {
          const Pool2dParams::Window t = p.taps(oh, ow);
          T best = -std::numeric_limits<T>::infinity();
          std::int64_t best_i = t.h0 < t.h1 && t.w0 < t.w1 ? t.h0 * W + t.w0 : -1;
          for (std::int64_t ih = t.h0; ih < t.h1; ih += dh)
            for (std::int64_t iw = t.w0; iw < t.w1; iw += dw) {
              const std::int64_t i = ih * W + iw;
              const T v = xp[i];
              const bool take = v > best || v != v;
              best = take ? v : best;
              best_i = take ? i : best_i;
            }
          yp[oh * Q + ow] = best;
          ap[oh * Q + ow] = static_cast<std::int32_t>(best_i);
        }
    }
  });
}

// gx (planes, H, W) = scatter of gy by argmax, in output order (gx is overwritten)
template <class T>
void max_pool2d_backward(const Pool2dParams& p, const T* gy, const std::int32_t* argmax, T* gx) {
  const std::int64_t PQ = p.p() * p.q(), HW = p.h * p.w;
  parallel_for(0, p.planes, 8, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t pl = lo; pl < hi; ++pl) {
      T* gp = gx + pl * HW;
      const std::int32_t* ap = argmax + pl * PQ;
      const T* g = gy + pl * PQ;
      for (std::int64_t i = 0; i < HW; ++i) gp[i] = T(0);
      for (std::int64_t o = 0; o < PQ; ++o)
        if (ap[o] >= 0) gp[ap[o]] += g[o];
    }
  });
}

// y (planes, P, Q) <- x (planes, H, W). The windows depend on (oh, ow) only: worked out once,
// not once per plane (their bounds and divisors cost integer divisions).
template <class T>
void avg_pool2d_forward(const Pool2dParams& p, const T* x, T* y) {
  if (detail::is_avg_pool_tiled(p) && p.kh == 2 && p.kw == 2) {
    detail::avg_pool2d_2x2(p, x, y);
    return;
  }
  const std::int64_t P = p.p(), Q = p.q(), H = p.h, W = p.w;
  std::vector<Pool2dParams::Window> windows(static_cast<std::size_t>(P * Q));  // (P, Q)
  for (std::int64_t oh = 0; oh < P; ++oh)
    for (std::int64_t ow = 0; ow < Q; ++ow)
      windows[static_cast<std::size_t>(oh * Q + ow)] = p.window(oh, ow);
  parallel_for(0, p.planes, 8, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t pl = lo; pl < hi; ++pl) {
      const T* xp = x + pl * H * W;
      T* yp = y + pl * P * Q;
      for (std::int64_t o = 0; o < P * Q; ++o) {
        const Pool2dParams::Window& win = windows[static_cast<std::size_t>(o)];
        T acc = T(0);
        for (std::int64_t ih = win.h0; ih < win.h1; ++ih)
          for (std::int64_t iw = win.w0; iw < win.w1; ++iw) acc += xp[ih * W + iw];
        yp[o] = acc / static_cast<T>(win.divisor);
      }
    }
  });
}

// gx (planes, H, W) <- gy (planes, P, Q) (gx is overwritten). The outputs covering input row
// ih depend on ih alone, those covering column iw on iw alone, and the divisors on (oh, ow):
// all worked out once, not per element of every plane.
template <class T>
void avg_pool2d_backward(const Pool2dParams& p, const T* gy, T* gx) {
  if (detail::is_avg_pool_tiled(p)) {
    detail::avg_pool2d_backward_tiled(p, gy, gx);
    return;
  }
  const std::int64_t P = p.p(), Q = p.q(), H = p.h, W = p.w;
  std::vector<T> divisor(static_cast<std::size_t>(P * Q));  // (P, Q)
  std::vector<std::int64_t> rows(static_cast<std::size_t>(2 * H));  // (H, 2): [oh0, oh1)
  std::vector<std::int64_t> cols(static_cast<std::size_t>(2 * W));  // (W, 2): [ow0, ow1)
  for (std::int64_t oh = 0; oh < P; ++oh)
    for (std::int64_t ow = 0; ow < Q; ++ow)
      divisor[static_cast<std::size_t>(oh * Q + ow)] = static_cast<T>(p.window(oh, ow).divisor);
  for (std::int64_t ih = 0; ih < H; ++ih) {
    const Pool2dParams::Cover c = p.cover(ih, 0);
    rows[static_cast<std::size_t>(2 * ih)] = c.oh0;
    rows[static_cast<std::size_t>(2 * ih + 1)] = c.oh1;
  }
  for (std::int64_t iw = 0; iw < W; ++iw) {
    const Pool2dParams::Cover c = p.cover(0, iw);
    cols[static_cast<std::size_t>(2 * iw)] = c.ow0;
    cols[static_cast<std::size_t>(2 * iw + 1)] = c.ow1;
  }
  const T* dv = divisor.data();
  const std::int64_t* rc = rows.data();
  const std::int64_t* cc = cols.data();
  parallel_for(0, p.planes, 8, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t pl = lo; pl < hi; ++pl) {
      const T* gp = gy + pl * P * Q;
      T* xp = gx + pl * H * W;
      for (std::int64_t ih = 0; ih < H; ++ih)
        for (std::int64_t iw = 0; iw < W; ++iw) {
          T acc = T(0);
          for (std::int64_t oh = rc[2 * ih]; oh < rc[2 * ih + 1]; ++oh)
            for (std::int64_t ow = cc[2 * iw]; ow < cc[2 * iw + 1]; ++ow)
              acc += gp[oh * Q + ow] / dv[oh * Q + ow];
          xp[ih * W + iw] = acc;
        }
    }
  });
}

}  // namespace cpu
}  // namespace ember
