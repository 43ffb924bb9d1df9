#pragma once
// The int8 matrix product behind ember's quantized layers:
//   C[m][n] = sum_k A[m][k] * W[n][k]      A: unsigned activation codes, W: signed weights
// with a fused epilogue per output column (zero-point correction, scale, bias, ReLU, and either
// requantization to the next layer's codes or a float result).
//
// Three kernels compute the same exact int32 sums, chosen at run time:
//   avx512_vnni  vpdpbusd: four u8 x s8 products added into int32 per lane, one instruction
//   avx2         vpmaddubsw (pairs of u8 x s8 into int16) + vpmaddwd (into int32)
//   portable     plain C++
// Activation codes are 7-bit ([0, kActMax] = [0, 127]) and weights in [-127, 127]: then the
// int16 pair sums of vpmaddubsw (at most 2 * 127 * 127 = 32258) never saturate, so every kernel,
// on every machine, gives bit-identical results. $EMBER_INT8_KERNEL (portable, avx2,
// avx512_vnni) or set_int8_kernel() overrides the choice, for tests and benchmarks.
//
// Weights are packed once (pack_weights) into panels of 16 output columns: for each group of 4
// k, 64 bytes holding columns n..n+15, 4 consecutive k each -- the operand layout of both
// vpdpbusd (one zmm) and vpmaddubsw (two ymm).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/simd.hpp"  // <immintrin.h> on x86-64

#define EMBER_INT8_X86 EMBER_X86

namespace ember::quant {

inline constexpr int kActMax = 127;      ///< activation codes are in [0, kActMax]
inline constexpr int kWeightMax = 127;   ///< weights are in [-kWeightMax, kWeightMax]
inline constexpr int kPanel = 16;        ///< output columns per packed panel

/// The int8 GEMM implementations: plain C++, AVX2, and AVX512-VNNI.
enum class Int8Kernel { portable, avx2, avx512_vnni };

/// The kernel's name ("portable", "avx2", "avx512_vnni").
[[nodiscard]] inline const char* kernel_name(Int8Kernel k) {
  switch (k) {
    case Int8Kernel::portable: return "portable";
    case Int8Kernel::avx2: return "avx2";
    case Int8Kernel::avx512_vnni: return "avx512_vnni";
  }
  return "?";
}

/// Whether this CPU (and build) can run kernel k.
[[nodiscard]] inline bool kernel_supported(Int8Kernel k) {
  if (k == Int8Kernel::portable) return true;
#if EMBER_INT8_X86 && defined(__GNUC__)
  __builtin_cpu_init();
  if (k == Int8Kernel::avx2)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

namespace detail {

inline Int8Kernel parse_kernel(const std::string& s) {
  if (s == "portable") return Int8Kernel::portable;
  if (s == "avx2") return Int8Kernel::avx2;
  if (s == "avx512_vnni") return Int8Kernel::avx512_vnni;
  throw Error("EMBER_INT8_KERNEL: expected portable, avx2 or avx512_vnni, got '" + s + "'");
}

inline Int8Kernel best_kernel() {
  if (const char* env = std::getenv("EMBER_INT8_KERNEL"); env != nullptr && *env != '\0') {
    const Int8Kernel k = parse_kernel(env);
    EMBER_CHECK(kernel_supported(k), "EMBER_INT8_KERNEL=", env, ": this CPU cannot run it");
    return k;
  }
  if (kernel_supported(Int8Kernel::avx512_vnni)) return Int8Kernel::avx512_vnni;
  if (kernel_supported(Int8Kernel::avx2)) return Int8Kernel::avx2;
  return Int8Kernel::portable;
}

inline Int8Kernel& kernel_slot() {
  static Int8Kernel k = best_kernel();
  return k;
}

}  // namespace detail

/// The kernel quantized layers use (the fastest this CPU has, unless overridden).
[[nodiscard]] inline Int8Kernel int8_kernel() { return detail::kernel_slot(); }
/// Forces a kernel (tests, benchmarks); throws ember::Error when this CPU cannot run it.
inline void set_int8_kernel(Int8Kernel k) {
  EMBER_CHECK(kernel_supported(k), "set_int8_kernel: this CPU cannot run the ", kernel_name(k),
              " kernel");
  detail::kernel_slot() = k;
}

/// W (n rows of k weights, row stride ldw) in panels; col_sums[j] = sum_k W[j][k] (for the
/// activation zero point). k is padded to a multiple of 4 and n to a multiple of kPanel, with 0.
struct PackedWeights {
  /// Rows of W (k) and output columns (n), and both padded (kp, np).
  /// @{
  std::int64_t k = 0, n = 0, kp = 0, np = 0;
  /// @}
  std::vector<std::int8_t> data;        ///< [np / kPanel][kp / 4][kPanel][4]
  std::vector<std::int32_t> col_sums;   ///< [np]
};

/// x rounded up to a multiple of m.
[[nodiscard]] inline std::int64_t round_up(std::int64_t x, std::int64_t m) { return (x + m - 1) / m * m; }

/// Packs W (n rows of k int8 weights, row stride ldw) into panels for the kernels; throws for a bad
/// shape.
[[nodiscard]] inline PackedWeights pack_weights(const std::int8_t* w, std::int64_t n, std::int64_t k,
                                                std::int64_t ldw) {
  EMBER_CHECK(n > 0 && k > 0 && ldw >= k, "pack_weights: bad shape ", n, " x ", k, " (row stride ", ldw, ")");
  PackedWeights p;
  p.n = n;
  p.k = k;
  p.kp = round_up(k, 4);
  p.np = round_up(n, kPanel);
  p.data.assign(static_cast<std::size_t>(p.np * p.kp), 0);
  p.col_sums.assign(static_cast<std::size_t>(p.np), 0);
  for (std::int64_t j = 0; j < n; ++j) {
    const std::int64_t panel = j / kPanel, lane = j % kPanel;
    std::int32_t sum = 0;
    for (std::int64_t kk = 0; kk < k; ++kk) {
      const std::int8_t v = w[j * ldw + kk];
      EMBER_CHECK(v >= -kWeightMax, "pack_weights: weight ", int{v}, " below -", kWeightMax);
      p.data[static_cast<std::size_t>(((panel * (p.kp / 4) + kk / 4) * kPanel + lane) * 4 + kk % 4)] = v;
      sum += v;
    }
    p.col_sums[static_cast<std::size_t>(j)] = sum;
  }
  return p;
}

/// What happens to each int32 sum acc of column j (all arrays have np entries):
///   v = acc - zero_point * col_sums[j]
///   float output:  y = fma(v, scale[j], bias[j]), then max(y, 0) if relu
///   code output:   q = nearbyint(fma(v, scale[j], bias[j])) + out_zero_point, clamped to
///                  [relu ? out_zero_point : 0, kActMax]   (scale and bias already divided by
///                  the output scale)
struct Epilogue {
  /// Per output column: the scale that maps the int32 sum to the output.
  const float* scale = nullptr;
  /// Per output column: the bias added after scaling.
  const float* bias = nullptr;
  std::int32_t zero_point = 0;  ///< of the input activations
  /// Clamp below at 0 (a fused ReLU).
  bool relu = false;
  /// Write float values instead of uint8 codes.
  bool float_output = false;
  /// The output's zero point, for code output.
  std::int32_t out_zero_point = 0;
};

namespace detail {

// A tile of up to 8 rows x kPanel columns of int32 sums.
inline constexpr int kMaxRows = 8;
using Tile = std::int32_t[kMaxRows][kPanel];

inline void tile_portable(int rows, const std::uint8_t* a, std::int64_t lda, const std::int8_t* b,
                          std::int64_t kp, Tile& c) {
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < kPanel; ++j) c[i][j] = 0;
  for (std::int64_t k4 = 0; k4 < kp / 4; ++k4) {
    const std::int8_t* bk = b + k4 * kPanel * 4;
    for (int i = 0; i < rows; ++i) {
      const std::uint8_t* ak = a + i * lda + k4 * 4;
      for (int j = 0; j < kPanel; ++j) {
        std::int32_t s = 0;
        for (int t = 0; t < 4; ++t) s += std::int32_t{ak[t]} * std::int32_t{bk[j * 4 + t]};
        c[i][j] += s;
      }
    }
  }
}

#if EMBER_INT8_X86 && defined(__GNUC__)

template <int R>
__attribute__((target("avx2,fma"))) inline void tile_avx2_rows(const std::uint8_t* a, std::int64_t lda,
                                                               const std::int8_t* b, std::int64_t kp,
                                                               std::int32_t (*c)[kPanel]) {
  __m256i acc[R][2];
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  for (std::int64_t k4 = 0; k4 < kp / 4; ++k4) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + k4 * 64));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + k4 * 64 + 32));
    for (int i = 0; i < R; ++i) {
      std::int32_t a4;
      std::memcpy(&a4, a + i * lda + k4 * 4, 4);
      const __m256i av = _mm256_set1_epi32(a4);
      acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones));
      acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones));
    }
  }
  for (int i = 0; i < R; ++i) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(&c[i][0]), acc[i][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(&c[i][8]), acc[i][1]);
  }
}

__attribute__((target("avx2,fma"))) inline void tile_avx2(int rows, const std::uint8_t* a, std::int64_t lda,
                                                          const std::int8_t* b, std::int64_t kp, Tile& c) {
  // two passes of up to 4 rows: 8 accumulators + 2 weight vectors + the broadcast fit in 16 ymm
  for (int i0 = 0; i0 < rows; i0 += 4) {
    std::int32_t(*ci)[kPanel] = c + i0;
    const std::uint8_t* ai = a + i0 * lda;
    switch (std::min(rows - i0, 4)) {
      case 4: tile_avx2_rows<4>(ai, lda, b, kp, ci); break;
      case 3: tile_avx2_rows<3>(ai, lda, b, kp, ci); break;
      case 2: tile_avx2_rows<2>(ai, lda, b, kp, ci); break;
      default: tile_avx2_rows<1>(ai, lda, b, kp, ci); break;
    }
  }
}

template <int R>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) inline void tile_vnni_rows(
    const std::uint8_t* a, std::int64_t lda, const std::int8_t* b, std::int64_t kp, Tile& c) {
  __m512i acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_si512();
  for (std::int64_t k4 = 0; k4 < kp / 4; ++k4) {
    const __m512i bv = _mm512_loadu_si512(b + k4 * 64);
    for (int i = 0; i < R; ++i) {
      std::int32_t a4;
      std::memcpy(&a4, a + i * lda + k4 * 4, 4);
      acc[i] = _mm512_dpbusd_epi32(acc[i], _mm512_set1_epi32(a4), bv);
    }
  }
  for (int i = 0; i < R; ++i) _mm512_storeu_si512(&c[i][0], acc[i]);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) inline void tile_vnni(
    int rows, const std::uint8_t* a, std::int64_t lda, const std::int8_t* b, std::int64_t kp, Tile& c) {
  switch (rows) {
    case 8: tile_vnni_rows<8>(a, lda, b, kp, c); break;
    case 7: tile_vnni_rows<7>(a, lda, b, kp, c); break;
    case 6: tile_vnni_rows<6>(a, lda, b, kp, c); break;
    case 5: tile_vnni_rows<5>(a, lda, b, kp, c); break;
    case 4: tile_vnni_rows<4>(a, lda, b, kp, c); break;
    case 3: tile_vnni_rows<3>(a, lda, b, kp, c); break;
    case 2: tile_vnni_rows<2>(a, lda, b, kp, c); break;
    default: tile_vnni_rows<1>(a, lda, b, kp, c); break;
  }
}

#endif  // EMBER_INT8_X86

// Applies the epilogue to rows x cols of a tile; column j of the tile is output column col0 + j.
inline void finish_tile(const Tile& c, int rows, int cols, std::int64_t col0, const PackedWeights& w,
                        const Epilogue& e, void* out, std::int64_t ldo) {
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; ++j) {
      const std::int64_t n = col0 + j;
      const std::int32_t v = c[i][j] - e.zero_point * w.col_sums[static_cast<std::size_t>(n)];
      const float y = std::fma(static_cast<float>(v), e.scale[n], e.bias[n]);
      if (e.float_output) {
        static_cast<float*>(out)[i * ldo + n] = e.relu && !(y > 0.0f) ? 0.0f : y;  // as vmaxps
      } else {
        const float q = std::nearbyint(y) + static_cast<float>(e.out_zero_point);
        const float lo = e.relu ? static_cast<float>(e.out_zero_point) : 0.0f;
        static_cast<std::uint8_t*>(out)[i * ldo + n] =
            static_cast<std::uint8_t>(std::clamp(q, lo, static_cast<float>(kActMax)));
      }
    }
  }
}

#if EMBER_INT8_X86 && defined(__GNUC__)
// finish_tile with AVX2: the same operations (int32 correction, one fma, round half to even,
// clamp) on 8 columns at a time, so it matches the scalar version bit for bit.
__attribute__((target("avx2,fma"))) inline void finish_tile_avx2(const Tile& c, int rows, int cols, std::int64_t col0,
                                                                 const PackedWeights& w, const Epilogue& e,
                                                                 void* out, std::int64_t ldo) {
  const __m256i zp = _mm256_set1_epi32(e.zero_point);
  __m256 scale[2], bias[2];
  __m256i corr[2];
  for (int h = 0; h < 2; ++h) {
    scale[h] = _mm256_loadu_ps(e.scale + col0 + 8 * h);
    bias[h] = _mm256_loadu_ps(e.bias + col0 + 8 * h);
    corr[h] = _mm256_mullo_epi32(zp, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.col_sums.data() + col0 + 8 * h)));
  }
  const __m256 zero = _mm256_setzero_ps();
  const __m256 out_zp = _mm256_set1_ps(static_cast<float>(e.out_zero_point));
  const __m256 lo = _mm256_set1_ps(e.relu ? static_cast<float>(e.out_zero_point) : 0.0f);
  const __m256 hi = _mm256_set1_ps(static_cast<float>(kActMax));
  for (int i = 0; i < rows; ++i) {
    __m256 y[2];
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_sub_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(&c[i][8 * h])), corr[h]);
      y[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), scale[h], bias[h]);
    }
    if (e.float_output) {
      float tmp[kPanel];
      for (int h = 0; h < 2; ++h) _mm256_storeu_ps(tmp + 8 * h, e.relu ? _mm256_max_ps(y[h], zero) : y[h]);
      std::memcpy(static_cast<float*>(out) + i * ldo + col0, tmp, static_cast<std::size_t>(cols) * sizeof(float));
      continue;
    }
    __m256i q[2];
    for (int h = 0; h < 2; ++h) {
      const __m256 r = _mm256_add_ps(_mm256_round_ps(y[h], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), out_zp);
      q[h] = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
    }
    const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xD8);
    const __m128i b8 = _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
    std::uint8_t* dst = static_cast<std::uint8_t*>(out) + i * ldo + col0;
    if (cols == kPanel) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), b8);
    } else {
      alignas(16) std::uint8_t tmp[kPanel];
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), b8);
      std::memcpy(dst, tmp, static_cast<std::size_t>(cols));
    }
  }
}
#endif

}  // namespace detail

/// out (m rows, stride ldo, of w.n columns; uint8 codes or float per e.float_output) from
/// a (m rows of w.kp activation codes, stride lda; the k..kp padding may hold anything finite:
/// its weights are 0) and the packed weights. Single-threaded; callers split the rows.
inline void gemm_u8s8(std::int64_t m, const std::uint8_t* a, std::int64_t lda, const PackedWeights& w,
                      const Epilogue& e, void* out, std::int64_t ldo, Int8Kernel kernel = int8_kernel()) {
  const int step = kernel == Int8Kernel::portable ? 4 : detail::kMaxRows;
  detail::Tile tile;
  for (std::int64_t i0 = 0; i0 < m; i0 += step) {
    const int rows = static_cast<int>(std::min<std::int64_t>(step, m - i0));
    const std::uint8_t* ai = a + i0 * lda;
    for (std::int64_t p = 0; p < w.np / kPanel; ++p) {
      const std::int8_t* b = w.data.data() + p * w.kp * kPanel;
      switch (kernel) {
#if EMBER_INT8_X86 && defined(__GNUC__)
        case Int8Kernel::avx512_vnni: detail::tile_vnni(rows, ai, lda, b, w.kp, tile); break;
        case Int8Kernel::avx2: detail::tile_avx2(rows, ai, lda, b, w.kp, tile); break;
#endif
        default: detail::tile_portable(rows, ai, lda, b, w.kp, tile); break;
      }
      const int cols = static_cast<int>(std::min<std::int64_t>(kPanel, w.n - p * kPanel));
      void* o = e.float_output ? static_cast<void*>(static_cast<float*>(out) + i0 * ldo)
                               : static_cast<void*>(static_cast<std::uint8_t*>(out) + i0 * ldo);
#if EMBER_INT8_X86 && defined(__GNUC__)
      if (kernel != Int8Kernel::portable) {
        detail::finish_tile_avx2(tile, rows, cols, p * kPanel, w, e, o, ldo);
        continue;
      }
#endif
      detail::finish_tile(tile, rows, cols, p * kPanel, w, e, o, ldo);
    }
  }
}

}  // namespace ember::quant
