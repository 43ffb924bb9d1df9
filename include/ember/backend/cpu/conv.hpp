#pragma once
// CPU convolution: im2col + GEMM per image, threaded over the batch (a batch of one image
// threads its GEMMs instead). Every split depends on the shapes only, never on the thread
// count, so the results are the same bits at any thread count.
// Layouts: x (N, C, H, W), w (K, C, R, S), y (N, K, P, Q), all contiguous;
// col (C*R*S, P*Q) is the unfolded receptive fields of one image.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "ember/backend/cpu/gemm.hpp"
#include "ember/backend/params.hpp"
#include "ember/core/error.hpp"
#include "ember/core/parallel.hpp"

namespace ember {

namespace cpu {

namespace detail {
// A per-thread scratch buffer that only grows, so steady-state steps do not allocate.
template <class T>
T* scratch(std::size_t n, int slot = 0) {
  thread_local std::vector<T> buffers[3];
  auto& b = buffers[slot];
  if (b.size() < n) b.resize(n);
  return b.data();
}

// One image's GEMM: on the thread that has the image when the batch is what is threaded,
// threaded itself (gemm's fixed block grid) when the batch is a single image.
template <class T>
void image_gemm(const Conv2dParams& p, const GemmParams& g, T alpha, const T* a, const T* b,
                T beta, T* c) {
  if (p.n == 1) gemm<T>(g, alpha, a, b, beta, c);
  else gemm_serial<T>(g, alpha, a, b, beta, c);
}
}  // namespace detail

// conv2d_backward sums the weight gradient of at most this many groups of images apart (the
// groups are threaded), then adds the groups in order.
inline constexpr std::int64_t kConvWeightGradGroups = 16;

// The output columns [lo, hi) whose input column ow * stride + off lies inside the image.
inline std::pair<std::int64_t, std::int64_t> valid_range(const Conv2dParams& p, std::int64_t off,
                                                         std::int64_t q) {
  // ow * stride + off >= 0  <=>  ow >= ceil(-off / stride)
  std::int64_t lo = off >= 0 ? 0 : (-off + p.stride_w - 1) / p.stride_w;
  // ow * stride + off < w   <=>  ow <= (w - 1 - off) / stride
  std::int64_t hi = p.w - 1 - off < 0 ? 0 : (p.w - 1 - off) / p.stride_w + 1;
  lo = std::min(lo, q);
  hi = std::clamp(hi, lo, q);
  return {lo, hi};
}

// col (CRS, PQ) <- x_n (C, H, W)
template <class T>
void im2col(const Conv2dParams& p, const T* x, T* col) {
  const std::int64_t P = p.p(), Q = p.q();
  for (std::int64_t c = 0; c < p.c; ++c)
    for (std::int64_t i = 0; i < p.r; ++i)
      for (std::int64_t j = 0; j < p.s; ++j) {
        T* row = col + ((c * p.r + i) * p.s + j) * P * Q;
        for (std::int64_t oh = 0; oh < P; ++oh) {
          const std::int64_t ih = oh * p.stride_h - p.pad_h + i * p.dil_h;
          T* dst = row + oh * Q;
          if (ih < 0 || ih >= p.h) {
            std::fill_n(dst, Q, T(0));
            continue;
          }
          const T* src = x + (c * p.h + ih) * p.w;
          const std::int64_t off = j * p.dil_w - p.pad_w;
          const auto [lo, hi] = valid_range(p, off, Q);
          std::fill(dst, dst + lo, T(0));
          if (p.stride_w == 1) std::copy(src + lo + off, src + hi + off, dst + lo);
          else
            for (std::int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * p.stride_w + off];
          std::fill(dst + hi, dst + Q, T(0));
        }
      }
}

// x_n (C, H, W) += fold(col (CRS, PQ)); x_n must be zeroed by the caller.
template <class T>
void col2im(const Conv2dParams& p, const T* col, T* x) {
  const std::int64_t P = p.p(), Q = p.q();
  for (std::int64_t c = 0; c < p.c; ++c)
    for (std::int64_t i = 0; i < p.r; ++i)
      for (std::int64_t j = 0; j < p.s; ++j) {
        const T* row = col + ((c * p.r + i) * p.s + j) * P * Q;
        for (std::int64_t oh = 0; oh < P; ++oh) {
          const std::int64_t ih = oh * p.stride_h - p.pad_h + i * p.dil_h;
          if (ih < 0 || ih >= p.h) continue;
          T* dst = x + (c * p.h + ih) * p.w;
          const T* src = row + oh * Q;
          const std::int64_t off = j * p.dil_w - p.pad_w;
          const auto [lo, hi] = valid_range(p, off, Q);
          if (p.stride_w == 1) {
            T* __restrict d = dst + off;
            const T* __restrict s = src;
            for (std::int64_t ow = lo; ow < hi; ++ow) d[ow] += s[ow];
          } else {
            for (std::int64_t ow = lo; ow < hi; ++ow) dst[ow * p.stride_w + off] += src[ow];
          }
        }
      }
}

// y (N, K, PQ) = w (K, CRS) * col_n + bias
template <class T>
void conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y) {
  const std::int64_t PQ = p.p() * p.q(), CRS = p.crs();
  parallel_for(0, p.n, 1, [&](std::int64_t n0, std::int64_t n1) {
    T* col = detail::scratch<T>(static_cast<std::size_t>(CRS * PQ));
    for (std::int64_t n = n0; n < n1; ++n) {
      im2col(p, x + n * p.c * p.h * p.w, col);
      T* yn = y + n * p.k * PQ;
      GemmParams g{false, false, p.k, PQ, CRS, CRS, PQ, PQ};
      detail::image_gemm<T>(p, g, T(1), w, col, T(0), yn);
      if (bias != nullptr)
        for (std::int64_t k = 0; k < p.k; ++k) {
          const T b = bias[k];
          for (std::int64_t i = 0; i < PQ; ++i) yn[k * PQ + i] += b;
        }
    }
  });
}

// Gradients from gy (N, K, PQ). Any of gx, gw, gb may be null (not needed).
// gw (K, CRS) and gb (K) are overwritten.
template <class T>
void conv2d_backward(const Conv2dParams& p, const T* x, const T* w, const T* gy, T* gx, T* gw,
                     T* gb) {
  const std::int64_t PQ = p.p() * p.q(), CRS = p.crs();
  if (gw != nullptr) std::fill_n(gw, p.k * CRS, T(0));
  if (gb != nullptr) {
    for (std::int64_t k = 0; k < p.k; ++k) {
      double acc = 0;
      for (std::int64_t n = 0; n < p.n; ++n) {
        const T* row = gy + (n * p.k + k) * PQ;
        for (std::int64_t i = 0; i < PQ; ++i) acc += row[i];
      }
      gb[k] = static_cast<T>(acc);
    }
  }
  if (gx == nullptr && gw == nullptr) return;
  // Each group of images sums its weight gradient into its own slice of `parts`; the slices
  // are then added in group order. The groups depend on the batch size alone, so the result
  // depends neither on thread timing nor on the thread count.
  const std::int64_t groups = std::min(kConvWeightGradGroups, p.n), KCRS = p.k * CRS;
  T* parts = gw != nullptr ? detail::scratch<T>(static_cast<std::size_t>(groups * KCRS), 2)
                           : nullptr;
  parallel_for(0, groups, 1, [&](std::int64_t g0, std::int64_t g1) {
    T* col = detail::scratch<T>(static_cast<std::size_t>(CRS * PQ), 0);
    for (std::int64_t group = g0; group < g1; ++group) {
      T* gw_part = parts != nullptr ? parts + group * KCRS : nullptr;
      if (gw_part != nullptr) std::fill_n(gw_part, KCRS, T(0));
      for (std::int64_t n = p.n * group / groups; n < p.n * (group + 1) / groups; ++n) {
        const T* gyn = gy + n * p.k * PQ;
        if (gw_part != nullptr) {
          im2col(p, x + n * p.c * p.h * p.w, col);
          // gw (K, CRS) += gy_n (K, PQ) * col^T (PQ, CRS)
          GemmParams g{false, true, p.k, CRS, PQ, PQ, PQ, CRS};
          detail::image_gemm<T>(p, g, T(1), gyn, col, T(1), gw_part);
        }
        if (gx != nullptr) {
          // col (CRS, PQ) = w^T (CRS, K) * gy_n (K, PQ); then fold into gx_n
          GemmParams g{true, false, CRS, PQ, p.k, CRS, PQ, PQ};
          detail::image_gemm<T>(p, g, T(1), w, gyn, T(0), col);
          T* gxn = gx + n * p.c * p.h * p.w;
          std::fill_n(gxn, p.c * p.h * p.w, T(0));
          col2im(p, col, gxn);
        }
      }
    }
  });
  if (parts != nullptr)  // gw[i] = parts[0][i] + parts[1][i] + ..., in that order for every i
    parallel_for(0, KCRS, 1 << 12, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t group = 0; group < groups; ++group) {
        const T* part = parts + group * KCRS;
        for (std::int64_t i = lo; i < hi; ++i) gw[i] += part[i];
      }
    });
}

}  // namespace cpu
}  // namespace ember
