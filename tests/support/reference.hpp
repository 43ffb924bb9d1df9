#pragma once
// Plain reference loops, in double, that the fast paths are tested against (CUTLASS keeps
// the same kind of thing in reference/host). Written for clarity, never for speed: each is
// the textbook definition, one loop per index.

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ember/backend/params.hpp"

namespace ember::test::reference {

// y[n][k][p][q] = b[k] + sum_{c,r,s} x[n][c][p*sh - ph + r*dh][q*sw - pw + s*dw] * w[k][c][r][s]
// x (N, C, H, W), w (K, C, R, S), b (K) or empty -> y (N, K, P, Q); padding reads zeros.
template <class T>
std::vector<double> conv2d_forward(const ember::Conv2dParams& p, const std::vector<T>& x,
                                   const std::vector<T>& w, const std::vector<T>& b) {
  const std::int64_t P = p.p(), Q = p.q();
  const auto at_x = [&](std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t iw) {
    return static_cast<double>(x[static_cast<std::size_t>(((n * p.c + c) * p.h + h) * p.w + iw)]);
  };
  const auto at_w = [&](std::int64_t k, std::int64_t c, std::int64_t r, std::int64_t s) {
    return static_cast<double>(w[static_cast<std::size_t>(((k * p.c + c) * p.r + r) * p.s + s)]);
  };
  std::vector<double> y(static_cast<std::size_t>(p.n * p.k * P * Q));
  for (std::int64_t n = 0; n < p.n; ++n)
    for (std::int64_t k = 0; k < p.k; ++k)
      for (std::int64_t oh = 0; oh < P; ++oh)
        for (std::int64_t ow = 0; ow < Q; ++ow) {
          double acc = b.empty() ? 0.0 : static_cast<double>(b[static_cast<std::size_t>(k)]);
          for (std::int64_t c = 0; c < p.c; ++c)
            for (std::int64_t r = 0; r < p.r; ++r)
              for (std::int64_t s = 0; s < p.s; ++s) {
                const std::int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
                const std::int64_t iw = ow * p.stride_w - p.pad_w + s * p.dil_w;
                if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;  // zero padding
                acc += at_x(n, c, ih, iw) * at_w(k, c, r, s);
              }
          y[static_cast<std::size_t>(((n * p.k + k) * P + oh) * Q + ow)] = acc;
        }
  return y;
}

// The transposes of the forward loop: every product x * w that fed y[n][k][p][q] sends
// gy[n][k][p][q] back to both factors. gx (N, C, H, W), gw (K, C, R, S), gb (K).
struct Conv2dGrads {
  std::vector<double> gx, gw, gb;
};
template <class T>
Conv2dGrads conv2d_backward(const ember::Conv2dParams& p, const std::vector<T>& x,
                            const std::vector<T>& w, const std::vector<T>& gy) {
  const std::int64_t P = p.p(), Q = p.q();
  const auto x_index = [&](std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t iw) {
    return static_cast<std::size_t>(((n * p.c + c) * p.h + h) * p.w + iw);
  };
  const auto w_index = [&](std::int64_t k, std::int64_t c, std::int64_t r, std::int64_t s) {
    return static_cast<std::size_t>(((k * p.c + c) * p.r + r) * p.s + s);
  };
  Conv2dGrads g;
  g.gx.assign(x.size(), 0.0);
  g.gw.assign(w.size(), 0.0);
  g.gb.assign(static_cast<std::size_t>(p.k), 0.0);
  for (std::int64_t n = 0; n < p.n; ++n)
    for (std::int64_t k = 0; k < p.k; ++k)
      for (std::int64_t oh = 0; oh < P; ++oh)
        for (std::int64_t ow = 0; ow < Q; ++ow) {
          const auto o = static_cast<std::size_t>(((n * p.k + k) * P + oh) * Q + ow);
          const double go = static_cast<double>(gy[o]);
          g.gb[static_cast<std::size_t>(k)] += go;
          for (std::int64_t c = 0; c < p.c; ++c)
            for (std::int64_t r = 0; r < p.r; ++r)
              for (std::int64_t s = 0; s < p.s; ++s) {
                const std::int64_t ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
                const std::int64_t iw = ow * p.stride_w - p.pad_w + s * p.dil_w;
                if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
                const std::size_t xi = x_index(n, c, ih, iw), wi = w_index(k, c, r, s);
                g.gx[xi] += go * static_cast<double>(w[wi]);
                g.gw[wi] += go * static_cast<double>(x[xi]);
              }
        }
  return g;
}

// Max over each window (padding never wins), and the flat index ih * W + iw of the first
// maximum in row-major window order. x (planes, H, W) -> y, argmax (planes, P, Q).
template <class T>
void max_pool2d_forward(const ember::MaxPool2dParams& p, const std::vector<T>& x, std::vector<T>& y,
                        std::vector<std::int32_t>& argmax) {
  const std::int64_t P = p.p(), Q = p.q();
  y.assign(static_cast<std::size_t>(p.planes * P * Q), T(0));
  argmax.assign(y.size(), -1);
  for (std::int64_t pl = 0; pl < p.planes; ++pl)
    for (std::int64_t oh = 0; oh < P; ++oh)
      for (std::int64_t ow = 0; ow < Q; ++ow) {
        bool found = false;
        T best = -std::numeric_limits<T>::infinity();
        std::int64_t best_i = -1;
        for (std::int64_t i = 0; i < p.kernel; ++i)
          for (std::int64_t j = 0; j < p.kernel; ++j) {
            const std::int64_t ih = oh * p.stride - p.padding + i;
            const std::int64_t iw = ow * p.stride - p.padding + j;
            if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
            const T v = x[static_cast<std::size_t>((pl * p.h + ih) * p.w + iw)];
            if (!found || v > best) {
              found = true;
              best = v;
              best_i = ih * p.w + iw;
            }
          }
        const auto o = static_cast<std::size_t>((pl * P + oh) * Q + ow);
        y[o] = best;
        argmax[o] = static_cast<std::int32_t>(best_i);
      }
}

// c = alpha * op(a) op(b) + beta * c0, row-major (the ember::cpu::gemm contract), in double;
// op transposes when p asks. abs_sum holds the same sum of magnitudes, for error bounds.
template <class T>
void gemm(const ember::GemmParams& p, double alpha, const std::vector<T>& a,
          const std::vector<T>& b, double beta, const std::vector<T>& c0,
          std::vector<double>& c, std::vector<double>& abs_sum) {
  c.assign(c0.size(), 0.0);
  abs_sum.assign(c0.size(), 0.0);
  for (std::int64_t i = 0; i < p.m; ++i)
    for (std::int64_t j = 0; j < p.n; ++j) {
      double acc = 0, mag = 0;
      for (std::int64_t l = 0; l < p.k; ++l) {
        const double av = p.trans_a ? a[static_cast<std::size_t>(l * p.lda + i)]
                                    : a[static_cast<std::size_t>(i * p.lda + l)];
        const double bv = p.trans_b ? b[static_cast<std::size_t>(j * p.ldb + l)]
                                    : b[static_cast<std::size_t>(l * p.ldb + j)];
        acc += av * bv;
        mag += std::fabs(av * bv);
      }
      const std::size_t idx = static_cast<std::size_t>(i * p.ldc + j);
      const double prev = beta == 0.0 ? 0.0 : beta * static_cast<double>(c0[idx]);
      c[idx] = alpha * acc + prev;
      abs_sum[idx] = std::fabs(alpha) * mag + std::fabs(prev);
    }
}

// c (M, N) = a (M, K) * b (K, N), all row-major, accumulated in double.
template <class T>
std::vector<double> matmul(std::int64_t m, std::int64_t k, std::int64_t n, const std::vector<T>& a,
                           const std::vector<T>& b) {
  std::vector<double> c(static_cast<std::size_t>(m * n), 0.0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (std::int64_t l = 0; l < k; ++l)
        acc += static_cast<double>(a[static_cast<std::size_t>(i * k + l)]) *
               static_cast<double>(b[static_cast<std::size_t>(l * n + j)]);
      c[static_cast<std::size_t>(i * n + j)] = acc;
    }
  return c;
}

// Elementwise |v|, for the error bounds below.
template <class T>
std::vector<T> abs_of(const std::vector<T>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = std::abs(v[i]);
  return out;
}

}  // namespace ember::test::reference
