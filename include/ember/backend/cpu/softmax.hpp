#pragma once
// CPU softmax and log_softmax over the middle axis of a contiguous (outer, size, inner) array
// (kernels/activation.cuh and kernels/softmax.cuh take inner == 1, the rows of (rows, cols)):
//   softmax      m = max, e = exp(x - m), s = sum e in double, y = T(double(e) * (1 / s))
//                (float: e in float through activation.hpp's vectorised exp; double:
//                std::exp and y = e / s)
//                backward gx = T(y * (g - sum(g * y))), the sum in double (SoftmaxBackward0)
//   log_softmax  m = max, lse = m + T(log(sum exp(x - m))) (the sum in double), y = x - lse
//                (float: exp in float, vectorised; double: std::exp of the double difference)
//                backward gx = g - T(exp(y) * sum(g)), the sum in double (LogSoftmaxBackward0)
//
// Float has two vectorised paths, both without temporaries:
//  - inner >= the packet width (a softmax along any dimension but the last): a row of `size`
//    values is strided by inner, so the packets run across inner, a few packets of columns at
//    a time (kGroup: their max, sums and reciprocals stay in registers). Forward: one pass for
//    the max, one for exp(x - m) (written to y) and its sum, one that scales y in place, the
//    last two over data the first brought into L1. Backward: one pass for the sum, one for gx.
//    Every column's sums run in index order, so these give the same bits as plain loops. A
//    width that is not a multiple of the packet's ends with one packet overlapping the one
//    before it (recomputed alike, same task).
//  - inner == 1 (the last dimension): along each contiguous row, the sums per lane and then
//    across the lanes (the order differs from a sequential loop by double rounding only).
// Everything else (double; 1 < inner < the packet width) goes through tiles of up to
// kSoftmaxTile columns with plain loops, the sums in index order.
// The work is split across outer * column tiles (or rows); each column or row is computed by
// one thread, so results do not depend on the number of threads. y must not alias x, nor gx
// g or y.

#include "ember/backend/cpu/activation.hpp"  // packet exp; first: includes core/simd.hpp

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/core/parallel.hpp"

namespace ember::cpu {

namespace softmax_detail {

namespace pk = activation_detail::packet;
using P = pk::P;                                             // float packet
using PD = Eigen::internal::packet_traits<double>::type;     // double packet
inline constexpr int kWidth = pk::kWidth;                    // floats per packet

// Float <-> double on packets: a float packet is two double packets on x86 with SSE2, AVX or
// AVX-512 (Eigen 3.4 has no such casts for x86).
#if EMBER_X86 && defined(EIGEN_VECTORIZE_AVX512)
inline constexpr bool kVectorised = sizeof(P) == 64 && sizeof(PD) == 64;  // Packet16f, Packet8d
inline PD lo(P v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
inline PD hi(P v) {
  return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}
inline P to_float(PD a, PD b) {
  const __m512d l = _mm512_castpd256_pd512(_mm256_castps_pd(_mm512_cvtpd_ps(a)));
  return _mm512_castpd_ps(_mm512_insertf64x4(l, _mm256_castps_pd(_mm512_cvtpd_ps(b)), 1));
}
#elif EMBER_X86 && defined(EIGEN_VECTORIZE_AVX)
inline constexpr bool kVectorised = sizeof(P) == 32 && sizeof(PD) == 32;  // Packet8f, Packet4d
inline PD lo(P v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
inline PD hi(P v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
inline P to_float(PD a, PD b) {
  return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(a)), _mm256_cvtpd_ps(b), 1);
}
#elif EMBER_X86 && defined(EIGEN_VECTORIZE_SSE2)
inline constexpr bool kVectorised = sizeof(P) == 16 && sizeof(PD) == 16;  // Packet4f, Packet2d
inline PD lo(P v) { return _mm_cvtps_pd(v); }
inline PD hi(P v) { return _mm_cvtps_pd(_mm_movehl_ps(v, v)); }
inline P to_float(PD a, PD b) { return _mm_movelh_ps(_mm_cvtpd_ps(a), _mm_cvtpd_ps(b)); }
#else
inline constexpr bool kVectorised = false;  // the tiled loops below
inline PD lo(P) { return PD{}; }
inline PD hi(P) { return PD{}; }
inline P to_float(PD, PD) { return P{}; }
#endif

using Eigen::internal::padd;
using Eigen::internal::pcmp_lt;
using Eigen::internal::pdiv;
using Eigen::internal::ploadu;
using Eigen::internal::pmul;
using Eigen::internal::pselect;
using Eigen::internal::pset1;
using Eigen::internal::pstoreu;
using Eigen::internal::psub;

// activation.hpp's packet exp for arguments at most 88 (here x - max and log_softmax's output,
// at most 0 but for rounding), with the same bits: its branch for results below FLT_MIN and its
// NaN, without the overflow to inf that such arguments never reach.
inline P exp_low(P x) {
  using Eigen::internal::pexp;
  P e = pexp(x);
  const P low = pcmp_lt(x, pset1<P>(-87.3365478515625f));
  if (Eigen::internal::predux_any(low)) {
    const P h = pexp(pmul(x, pset1<P>(0.5f)));
    e = pselect(low, pmul(h, h), e);
  }
  return pk::keep_nan(x, e);
}

// std::max(m, v) lane by lane, a NaN v leaving m (Eigen's pmax is max_ps(v, m) for that).
inline P max_keep(P m, P v) { return Eigen::internal::pmax(m, v); }

// f(0), ..., f(NP - 1) with constant arguments, so that arrays indexed by them stay in
// registers.
template <int NP, class F>
inline void unrolled(F&& f) {
  [&]<int... K>(std::integer_sequence<int, K...>) {
    (f(K), ...);
  }(std::make_integer_sequence<int, NP>{});
}

// Packets of columns per group in the inner >= kWidth path: the group's max, sums and
// reciprocals stay in registers (32 vector registers with AVX-512, 16 below).
inline constexpr int kGroup = kWidth >= 16 ? 4 : 2;

// A group of NP packets of columns: x, y point at column j of (size, inner).
template <int NP>
void softmax_columns(const float* x, float* y, std::int64_t size, std::int64_t inner) {
  P m[NP];
  PD acc[2 * NP];
  unrolled<NP>([&](int k) { m[k] = pset1<P>(-std::numeric_limits<float>::infinity()); });
  unrolled<2 * NP>([&](int k) { acc[k] = pset1<PD>(0.0); });
  for (std::int64_t s = 0; s < size; ++s)
    unrolled<NP>([&](int k) { m[k] = max_keep(m[k], ploadu<P>(x + s * inner + k * kWidth)); });
  for (std::int64_t s = 0; s < size; ++s)
    unrolled<NP>([&](int k) {
      const P e = exp_low(psub(ploadu<P>(x + s * inner + k * kWidth), m[k]));
      pstoreu(y + s * inner + k * kWidth, e);
      acc[2 * k] = padd(acc[2 * k], lo(e));
      acc[2 * k + 1] = padd(acc[2 * k + 1], hi(e));
    });
  unrolled<2 * NP>([&](int k) { acc[k] = pdiv(pset1<PD>(1.0), acc[k]); });
  for (std::int64_t s = 0; s < size; ++s)
    unrolled<NP>([&](int k) {
      float* out = y + s * inner + k * kWidth;
      const P e = ploadu<P>(out);
      pstoreu(out, to_float(pmul(lo(e), acc[2 * k]), pmul(hi(e), acc[2 * k + 1])));
    });
}

template <int NP>
void softmax_backward_columns(const float* g, const float* y, float* gx, std::int64_t size,
                              std::int64_t inner) {
  PD dot[2 * NP];
  unrolled<2 * NP>([&](int k) { dot[k] = pset1<PD>(0.0); });
  for (std::int64_t s = 0; s < size; ++s)
    unrolled<NP>([&](int k) {
      const P gv = ploadu<P>(g + s * inner + k * kWidth), yv = ploadu<P>(y + s * inner + k * kWidth);
      dot[2 * k] = padd(dot[2 * k], pmul(lo(gv), lo(yv)));  // exact products of floats
      dot[2 * k + 1] = padd(dot[2 * k + 1], pmul(hi(gv), hi(yv)));
    });
  for (std::int64_t s = 0; s < size; ++s)
    unrolled<NP>([&](int k) {
      const std::int64_t at = s * inner + k * kWidth;
      const P gv = ploadu<P>(g + at), yv = ploadu<P>(y + at);
      pstoreu(gx + at, to_float(pmul(lo(yv), psub(lo(gv), dot[2 * k])),
                                pmul(hi(yv), psub(hi(gv), dot[2 * k + 1]))));
    });
}

template <int NP>
void log_softmax_columns(const float* x, float* y, std::int64_t size, std::int64_t inner) {
  P m[NP];
  PD acc[2 * NP];
  unrolled<NP>([&](int k) { m[k] = pset1<P>(-std::numeric_limits<float>::infinity()); });
  unrolled<2 * NP>([&](int k) { acc[k] = pset1<PD>(0.0); });
  for (std::int64_t s = 0; s < size; ++s)
    unrolled<NP>([&](int k) { m[k] = max_keep(m[k], ploadu<P>(x + s * inner + k * kWidth)); });
  for (std::int64_t s = 0; s < size; ++s)
    unrolled<NP>([&](int k) {
      const P e = exp_low(psub(ploadu<P>(x + s * inner + k * kWidth), m[k]));
      acc[2 * k] = padd(acc[2 * k], lo(e));
      acc[2 * k + 1] = padd(acc[2 * k + 1], hi(e));
    });
  P lse[NP];
  unrolled<NP>([&](int k) {  // a log per column, in double as the sum
    alignas(64) double a[kWidth];
    alignas(64) float mv[kWidth], l[kWidth];
    pstoreu(a, acc[2 * k]);
    pstoreu(a + kWidth / 2, acc[2 * k + 1]);
    pstoreu(mv, m[k]);
    for (int j = 0; j < kWidth; ++j) l[j] = mv[j] + static_cast<float>(std::log(a[j]));
    lse[k] = ploadu<P>(l);
  });
  for (std::int64_t s = 0; s < size; ++s)
    unrolled<NP>([&](int k) {
      const std::int64_t at = s * inner + k * kWidth;
      pstoreu(y + at, psub(ploadu<P>(x + at), lse[k]));
    });
}

template <int NP>
void log_softmax_backward_columns(const float* g, const float* y, float* gx, std::int64_t size,
                                  std::int64_t inner) {
  PD gs[2 * NP];
  unrolled<2 * NP>([&](int k) { gs[k] = pset1<PD>(0.0); });
  for (std::int64_t s = 0; s < size; ++s)
    unrolled<NP>([&](int k) {
      const P gv = ploadu<P>(g + s * inner + k * kWidth);
      gs[2 * k] = padd(gs[2 * k], lo(gv));
      gs[2 * k + 1] = padd(gs[2 * k + 1], hi(gv));
    });
  for (std::int64_t s = 0; s < size; ++s)
    unrolled<NP>([&](int k) {
      const std::int64_t at = s * inner + k * kWidth;
      const P e = exp_low(ploadu<P>(y + at));
      const P t = to_float(pmul(lo(e), gs[2 * k]), pmul(hi(e), gs[2 * k + 1]));
      pstoreu(gx + at, psub(ploadu<P>(g + at), t));
    });
}

// Columns [i0, i1) of (size, inner) at offset `base` in every array, i1 - i0 >= kWidth:
// groups of kGroup packets, single packets, then one packet ending at i1 (overlapping).
template <class Columns>
void over_columns(std::int64_t i0, std::int64_t i1, Columns&& cols) {
  std::int64_t j = i0;
  for (; j + kGroup * kWidth <= i1; j += kGroup * kWidth)
    cols(j, std::integral_constant<int, kGroup>{});
  for (; j + kWidth <= i1; j += kWidth) cols(j, std::integral_constant<int, 1>{});
  if (j < i1) cols(i1 - kWidth, std::integral_constant<int, 1>{});
}

// Column tiles of up to kSoftmaxTile (the last tile of a row takes the remainder, so that a
// tile is never narrower than min(inner, kSoftmaxTile)); f(o, i0, i1) over every tile, threaded.
inline constexpr std::int64_t kSoftmaxTile = 256;

template <class F>
void for_tiles(std::int64_t outer, std::int64_t size, std::int64_t inner, F&& f) {
  const std::int64_t per = std::max<std::int64_t>(1, inner / kSoftmaxTile);
  const std::int64_t tile_elems = std::max<std::int64_t>(1, size * std::min(inner, kSoftmaxTile));
  parallel_for(0, outer * per, std::max<std::int64_t>(1, 16384 / tile_elems),
               [&](std::int64_t lo, std::int64_t hi) {
                 for (std::int64_t t = lo; t < hi; ++t) {
                   const std::int64_t o = t / per, k = t - o * per;
                   f(o, k * kSoftmaxTile, k + 1 == per ? inner : (k + 1) * kSoftmaxTile);
                 }
               });
}

// f(r) for every row r of (rows, size), threaded.
template <class F>
void for_rows(std::int64_t rows, std::int64_t size, F&& f) {
  parallel_for(0, rows, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(size, 1)),
               [&](std::int64_t lo, std::int64_t hi) {
                 for (std::int64_t r = lo; r < hi; ++r) f(r);
               });
}

// The sum of a double packet's lanes and the max of a float packet's (NaN lanes ignored).
inline double sum_lanes(PD v) { return Eigen::internal::predux(v); }
inline float max_lanes(P v) {
  alignas(64) float a[kWidth];
  pstoreu(a, v);
  float m = a[0];
  for (int j = 1; j < kWidth; ++j) m = std::max(m, a[j]);
  return m;
}

// A contiguous row of n floats: its max (NaN ignored, as std::max(m, x) in a loop).
inline float row_max(const float* x, std::int64_t n) {
  P m = pset1<P>(-std::numeric_limits<float>::infinity());
  std::int64_t i = 0;
  for (; i + kWidth <= n; i += kWidth) m = max_keep(m, ploadu<P>(x + i));
  float r = max_lanes(m);
  for (; i < n; ++i) r = std::max(r, x[i]);
  return r;
}

// Loads the partial packet x[0, n), n < kWidth, padded with `pad`.
inline P load_partial(const float* x, std::int64_t n, float pad) {
  alignas(64) float b[kWidth];
  for (int j = 0; j < kWidth; ++j) b[j] = j < n ? x[j] : pad;
  return ploadu<P>(b);
}
inline void store_partial(float* y, P v, std::int64_t n) {
  alignas(64) float b[kWidth];
  pstoreu(b, v);
  std::copy(b, b + n, y);
}

// softmax of one contiguous row (inner == 1).
inline void softmax_row(const float* x, float* y, std::int64_t n) {
  const P m = pset1<P>(row_max(x, n));
  PD a0 = pset1<PD>(0.0), a1 = pset1<PD>(0.0);
  std::int64_t i = 0;
  for (; i + kWidth <= n; i += kWidth) {
    const P e = exp_low(psub(ploadu<P>(x + i), m));
    pstoreu(y + i, e);
    a0 = padd(a0, lo(e));
    a1 = padd(a1, hi(e));
  }
  if (i < n) {  // padded with -inf: exp gives 0
    const P e = exp_low(psub(load_partial(x + i, n - i, -std::numeric_limits<float>::infinity()), m));
    store_partial(y + i, e, n - i);
    a0 = padd(a0, lo(e));
    a1 = padd(a1, hi(e));
  }
  const PD r = pset1<PD>(1.0 / sum_lanes(padd(a0, a1)));
  for (i = 0; i + kWidth <= n; i += kWidth) {
    const P e = ploadu<P>(y + i);
    pstoreu(y + i, to_float(pmul(lo(e), r), pmul(hi(e), r)));
  }
  if (i < n) {
    const P e = load_partial(y + i, n - i, 0.0f);
    store_partial(y + i, to_float(pmul(lo(e), r), pmul(hi(e), r)), n - i);
  }
}

inline void softmax_backward_row(const float* g, const float* y, float* gx, std::int64_t n) {
  PD d0 = pset1<PD>(0.0), d1 = pset1<PD>(0.0);
  std::int64_t i = 0;
  for (; i + kWidth <= n; i += kWidth) {
    const P gv = ploadu<P>(g + i), yv = ploadu<P>(y + i);
    d0 = padd(d0, pmul(lo(gv), lo(yv)));
    d1 = padd(d1, pmul(hi(gv), hi(yv)));
  }
  double dot = sum_lanes(padd(d0, d1));
  for (std::int64_t k = i; k < n; ++k) dot += double(g[k]) * double(y[k]);
  const PD dv = pset1<PD>(dot);
  for (i = 0; i + kWidth <= n; i += kWidth) {
    const P gv = ploadu<P>(g + i), yv = ploadu<P>(y + i);
    pstoreu(gx + i, to_float(pmul(lo(yv), psub(lo(gv), dv)), pmul(hi(yv), psub(hi(gv), dv))));
  }
  for (; i < n; ++i) gx[i] = static_cast<float>(double(y[i]) * (double(g[i]) - dot));
}

inline void log_softmax_row(const float* x, float* y, std::int64_t n) {
  const float mf = row_max(x, n);
  const P m = pset1<P>(mf);
  PD a0 = pset1<PD>(0.0), a1 = pset1<PD>(0.0);
  std::int64_t i = 0;
  for (; i + kWidth <= n; i += kWidth) {
    const P e = exp_low(psub(ploadu<P>(x + i), m));
    a0 = padd(a0, lo(e));
    a1 = padd(a1, hi(e));
  }
  if (i < n) {
    const P e = exp_low(psub(load_partial(x + i, n - i, -std::numeric_limits<float>::infinity()), m));
    a0 = padd(a0, lo(e));
    a1 = padd(a1, hi(e));
  }
  const float lse = mf + static_cast<float>(std::log(sum_lanes(padd(a0, a1))));
  const P l = pset1<P>(lse);
  for (i = 0; i + kWidth <= n; i += kWidth) pstoreu(y + i, psub(ploadu<P>(x + i), l));
  for (; i < n; ++i) y[i] = x[i] - lse;
}

inline void log_softmax_backward_row(const float* g, const float* y, float* gx, std::int64_t n) {
  PD s0 = pset1<PD>(0.0), s1 = pset1<PD>(0.0);
  std::int64_t i = 0;
  for (; i + kWidth <= n; i += kWidth) {
    const P gv = ploadu<P>(g + i);
    s0 = padd(s0, lo(gv));
    s1 = padd(s1, hi(gv));
  }
  double gs = sum_lanes(padd(s0, s1));
  for (std::int64_t k = i; k < n; ++k) gs += double(g[k]);
  const PD gsv = pset1<PD>(gs);
  for (i = 0; i + kWidth <= n; i += kWidth) {
    const P e = exp_low(ploadu<P>(y + i));
    pstoreu(gx + i, psub(ploadu<P>(g + i), to_float(pmul(lo(e), gsv), pmul(hi(e), gsv))));
  }
  if (i < n) {
    const P e = exp_low(load_partial(y + i, n - i, 0.0f));
    const P t = to_float(pmul(lo(e), gsv), pmul(hi(e), gsv));
    store_partial(gx + i, psub(load_partial(g + i, n - i, 0.0f), t), n - i);
  }
}

// exp(v) for a tile's worth of values: float through the packet exp, double through std::exp.
template <class T>
void exp_in_place(T* v, std::int64_t n) {
  if constexpr (std::is_same_v<T, float> && kVectorised) {
    pk::map(0, n, v, [](P a, P) { return pk::exp(a); }, v);
  } else {
    for (std::int64_t i = 0; i < n; ++i) v[i] = std::exp(v[i]);
  }
}

}  // namespace softmax_detail

// y = softmax(x) over the middle axis of a contiguous (outer, size, inner) array.
template <class T>
void softmax_forward(const T* x, T* y, std::int64_t outer, std::int64_t size, std::int64_t inner) {
  namespace sd = softmax_detail;
  if constexpr (std::is_same_v<T, float> && sd::kVectorised) {
    if (inner >= sd::kWidth) {
      sd::for_tiles(outer, size, inner, [&](std::int64_t o, std::int64_t i0, std::int64_t i1) {
        const std::int64_t base = o * size * inner;
        sd::over_columns(i0, i1, [&](std::int64_t j, auto np) {
          sd::softmax_columns<decltype(np)::value>(x + base + j, y + base + j, size, inner);
        });
      });
      return;
    }
    if (inner == 1) {
      sd::for_rows(outer, size, [&](std::int64_t r) { sd::softmax_row(x + r * size, y + r * size, size); });
      return;
    }
  }
  // Tiles with plain loops: exp(x - m) into y, its column sums, then y scaled.
  sd::for_tiles(outer, size, inner, [&](std::int64_t o, std::int64_t i0, std::int64_t i1) {
    const std::int64_t w = i1 - i0;
    const T* in = x + o * size * inner + i0;
    T* out = y + o * size * inner + i0;
    std::vector<T> m(static_cast<std::size_t>(w), -std::numeric_limits<T>::infinity());
    std::vector<double> acc(static_cast<std::size_t>(w), 0.0);
    for (std::int64_t s = 0; s < size; ++s)
      for (std::int64_t j = 0; j < w; ++j)
        m[static_cast<std::size_t>(j)] = std::max(m[static_cast<std::size_t>(j)], in[s * inner + j]);
    for (std::int64_t s = 0; s < size; ++s) {
      for (std::int64_t j = 0; j < w; ++j) out[s * inner + j] = in[s * inner + j] - m[static_cast<std::size_t>(j)];
      sd::exp_in_place(out + s * inner, w);
      for (std::int64_t j = 0; j < w; ++j) acc[static_cast<std::size_t>(j)] += double(out[s * inner + j]);
    }
    if constexpr (std::is_same_v<T, float>) {
      // times the reciprocal, in double: a division per column rather than per element; the
      // float it rounds to is the quotient's (the double product is within 2^-52 of it)
      for (double& a : acc) a = 1.0 / a;
      for (std::int64_t s = 0; s < size; ++s)
        for (std::int64_t j = 0; j < w; ++j)
          out[s * inner + j] = static_cast<T>(double(out[s * inner + j]) * acc[static_cast<std::size_t>(j)]);
    } else {
      for (std::int64_t s = 0; s < size; ++s)
        for (std::int64_t j = 0; j < w; ++j)
          out[s * inner + j] = static_cast<T>(double(out[s * inner + j]) / acc[static_cast<std::size_t>(j)]);
    }
  });
}

// gx = y * (g - sum(g * y)) over the middle axis; y is softmax's output.
template <class T>
void softmax_backward(const T* g, const T* y, T* gx, std::int64_t outer, std::int64_t size,
                      std::int64_t inner) {
  namespace sd = softmax_detail;
  if constexpr (std::is_same_v<T, float> && sd::kVectorised) {
    if (inner >= sd::kWidth) {
      sd::for_tiles(outer, size, inner, [&](std::int64_t o, std::int64_t i0, std::int64_t i1) {
        const std::int64_t base = o * size * inner;
        sd::over_columns(i0, i1, [&](std::int64_t j, auto np) {
          sd::softmax_backward_columns<decltype(np)::value>(g + base + j, y + base + j, gx + base + j,
                                                            size, inner);
        });
      });
      return;
    }
    if (inner == 1) {
      sd::for_rows(outer, size, [&](std::int64_t r) {
        sd::softmax_backward_row(g + r * size, y + r * size, gx + r * size, size);
      });
      return;
    }
  }
  sd::for_tiles(outer, size, inner, [&](std::int64_t o, std::int64_t i0, std::int64_t i1) {
    const std::int64_t w = i1 - i0, base = o * size * inner + i0;
    std::vector<double> dot(static_cast<std::size_t>(w), 0.0);
    for (std::int64_t s = 0; s < size; ++s)
      for (std::int64_t j = 0; j < w; ++j)
        dot[static_cast<std::size_t>(j)] += double(g[base + s * inner + j]) * double(y[base + s * inner + j]);
    for (std::int64_t s = 0; s < size; ++s)
      for (std::int64_t j = 0; j < w; ++j) {
        const std::int64_t k = base + s * inner + j;
        gx[k] = static_cast<T>(double(y[k]) * (double(g[k]) - dot[static_cast<std::size_t>(j)]));
      }
  });
}

// y = log_softmax(x) over the middle axis of a contiguous (outer, size, inner) array.
template <class T>
void log_softmax_forward(const T* x, T* y, std::int64_t outer, std::int64_t size, std::int64_t inner) {
  namespace sd = softmax_detail;
  if constexpr (std::is_same_v<T, float> && sd::kVectorised) {
    if (inner >= sd::kWidth) {
      sd::for_tiles(outer, size, inner, [&](std::int64_t o, std::int64_t i0, std::int64_t i1) {
        const std::int64_t base = o * size * inner;
        sd::over_columns(i0, i1, [&](std::int64_t j, auto np) {
          sd::log_softmax_columns<decltype(np)::value>(x + base + j, y + base + j, size, inner);
        });
      });
      return;
    }
    if (inner == 1) {
      sd::for_rows(outer, size, [&](std::int64_t r) { sd::log_softmax_row(x + r * size, y + r * size, size); });
      return;
    }
  }
  // Tiles with plain loops: exp(x - m) into y (as scratch), its column sums, then y = x - lse.
  sd::for_tiles(outer, size, inner, [&](std::int64_t o, std::int64_t i0, std::int64_t i1) {
    const std::int64_t w = i1 - i0;
    const T* in = x + o * size * inner + i0;
    T* out = y + o * size * inner + i0;
    std::vector<T> m(static_cast<std::size_t>(w), -std::numeric_limits<T>::infinity());
    std::vector<double> acc(static_cast<std::size_t>(w), 0.0);
    for (std::int64_t s = 0; s < size; ++s)
      for (std::int64_t j = 0; j < w; ++j)
        m[static_cast<std::size_t>(j)] = std::max(m[static_cast<std::size_t>(j)], in[s * inner + j]);
    for (std::int64_t s = 0; s < size; ++s) {
      for (std::int64_t j = 0; j < w; ++j) out[s * inner + j] = in[s * inner + j] - m[static_cast<std::size_t>(j)];
      sd::exp_in_place(out + s * inner, w);
      for (std::int64_t j = 0; j < w; ++j) acc[static_cast<std::size_t>(j)] += double(out[s * inner + j]);
    }
    for (std::int64_t j = 0; j < w; ++j)  // acc becomes lse
      acc[static_cast<std::size_t>(j)] = double(m[static_cast<std::size_t>(j)] +
                                                static_cast<T>(std::log(acc[static_cast<std::size_t>(j)])));
    for (std::int64_t s = 0; s < size; ++s)
      for (std::int64_t j = 0; j < w; ++j)
        out[s * inner + j] = in[s * inner + j] - static_cast<T>(acc[static_cast<std::size_t>(j)]);
  });
}

// gx = g - exp(y) * sum(g) over the middle axis; y is log_softmax's output.
template <class T>
void log_softmax_backward(const T* g, const T* y, T* gx, std::int64_t outer, std::int64_t size,
                          std::int64_t inner) {
  namespace sd = softmax_detail;
  if constexpr (std::is_same_v<T, float> && sd::kVectorised) {
    if (inner >= sd::kWidth) {
      sd::for_tiles(outer, size, inner, [&](std::int64_t o, std::int64_t i0, std::int64_t i1) {
        const std::int64_t base = o * size * inner;
        sd::over_columns(i0, i1, [&](std::int64_t j, auto np) {
          sd::log_softmax_backward_columns<decltype(np)::value>(g + base + j, y + base + j,
                                                                gx + base + j, size, inner);
        });
      });
      return;
    }
    if (inner == 1) {
      sd::for_rows(outer, size, [&](std::int64_t r) {
        sd::log_softmax_backward_row(g + r * size, y + r * size, gx + r * size, size);
      });
      return;
    }
  }
  // Tiles with plain loops: the column sums of g, then gx = g - exp(y) * sum, exp(y) in gx.
  sd::for_tiles(outer, size, inner, [&](std::int64_t o, std::int64_t i0, std::int64_t i1) {
    const std::int64_t w = i1 - i0, base = o * size * inner + i0;
    std::vector<double> gs(static_cast<std::size_t>(w), 0.0);
    for (std::int64_t s = 0; s < size; ++s)
      for (std::int64_t j = 0; j < w; ++j) gs[static_cast<std::size_t>(j)] += double(g[base + s * inner + j]);
    for (std::int64_t s = 0; s < size; ++s) {
      T* out = gx + base + s * inner;
      std::copy(y + base + s * inner, y + base + s * inner + w, out);
      sd::exp_in_place(out, w);
      for (std::int64_t j = 0; j < w; ++j)
        out[j] = g[base + s * inner + j] - static_cast<T>(double(out[j]) * gs[static_cast<std::size_t>(j)]);
    }
  });
}

}  // namespace ember::cpu
