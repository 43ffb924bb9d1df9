#pragma once
// Tiled GEMM with the semantics of ember::cpu::gemm (backend/cpu/gemm.hpp):
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C      (row-major, lda/ldb/ldc as stored)
// beta == 0 never reads C (C may hold NaN).
//
// Design (one kernel template, several tile configurations):
//   * a block computes a BM x BN tile of C, walking K in steps of BK; the A and B slices of a step
//     live in shared memory, both stored "k-major" ([BK][BM+pad] and [BK][BN+pad]) so the inner
//     product reads 4 consecutive rows of A / columns of B with one 128-bit shared load;
//   * each thread owns TM x TN outputs as (TM/4) x (TN/4) 4x4 sub-blocks spread over the tile
//     (a warp is a 4 x 8 lane grid), so shared-memory reads are conflict-free or broadcast;
//   * shared memory is double-buffered with a register prefetch: the global loads of step t+1
//     are issued before the FMAs of step t and stored after them, one barrier per step;
//   * global loads are float4 when the operand allows it (checked at run time: 16-byte aligned
//     pointer, ld % 4 == 0), otherwise scalar; ragged edges are zero-filled, so every shape and
//     all four transpose combinations run through the same code;
//   * operands and the output are pluggable (Loader / Epilogue types), which conv.cuh uses for
//     implicit-GEMM convolution without an im2col buffer;
//   * split-K (optional, deterministic): blocks of split z write raw partial tiles to a
//     workspace [splits][M][N], and a second kernel sums the splits in fixed order 0..S-1 and
//     applies alpha/beta. No atomics anywhere, so results are bit-identical run to run.
// gemm() picks the configuration (and split-K when a workspace is given) from the shape alone;
// gemm_with<T, Config>() runs one configuration (tests run every one).

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common.cuh"
#include "ember/backend/params.hpp"

namespace ember::kernels {

// Tile configuration: BM x BN outputs per block, BK deep slices, TM x TN outputs per thread
// (multiples of 4), lanes of a warp arranged LanesY x (32 / LanesY), MinBlocks for
// __launch_bounds__ (caps registers per thread at 64K / (threads * MinBlocks)).
template <int BM, int BN, int BK, int TM, int TN, int LanesY, int MinBlocks>
struct GemmConfig {
  static constexpr int kBM = BM, kBN = BN, kBK = BK, kTM = TM, kTN = TN;
  static constexpr int kLanesY = LanesY, kLanesX = 32 / LanesY;
  static constexpr int kThreadsY = BM / TM, kThreadsX = BN / TN;
  static constexpr int kWarpsY = kThreadsY / kLanesY, kWarpsX = kThreadsX / kLanesX;
  static constexpr int kThreads = kThreadsY * kThreadsX;
  static constexpr int kMinBlocks = MinBlocks;
  static constexpr int kPad = 4;  // keeps rows 16-byte aligned and spreads transposed stores over banks
  static_assert(TM % 4 == 0 && TN % 4 == 0 && BK % 4 == 0, "4-wide sub-blocks and load groups");
  static_assert(BM % TM == 0 && BN % TN == 0, "whole threads per tile");
  static_assert(kLanesY * kLanesX == 32, "a warp is LanesY x LanesX lanes");
  static_assert(kThreadsY % kLanesY == 0 && kThreadsX % kLanesX == 0, "whole warps per tile");
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "whole warps per block");
  template <class T>
  static constexpr std::size_t smem_bytes() {
    return 2 * static_cast<std::size_t>(BK) * static_cast<std::size_t>(BM + kPad + BN + kPad) * sizeof(T);
  }
};

// The configurations gemm() chooses from (float: all; double: 64x64 and 32x32).
using GemmLarge = GemmConfig<128, 128, 8, 8, 8, 4, 2>;  // 256 threads, 8x8 per thread: big shapes
using GemmWide = GemmConfig<64, 128, 8, 8, 8, 4, 3>;    // 128 threads: M around 64, N large
using GemmTall = GemmConfig<128, 64, 8, 8, 8, 4, 3>;    // 128 threads: N around 64, M large
using GemmSmall = GemmConfig<64, 64, 16, 4, 4, 4, 3>;   // 256 threads, 4x4 per thread
using GemmTiny = GemmConfig<32, 32, 16, 4, 4, 4, 8>;    // 64 threads: tiny outputs

enum class GemmConfigId : int { large, wide, tall, small, tiny };

// Calls f(Config{}) with the configuration type named by id.
template <class F>
decltype(auto) with_gemm_config(GemmConfigId id, F&& f) {
  switch (id) {
    case GemmConfigId::large: return f(GemmLarge{});
    case GemmConfigId::wide: return f(GemmWide{});
    case GemmConfigId::tall: return f(GemmTall{});
    case GemmConfigId::small: return f(GemmSmall{});
    case GemmConfigId::tiny: break;
  }
  return f(GemmTiny{});
}

// As with_gemm_config, restricted to the configurations used for element type T (double: the
// 4x4-per-thread ones; any other id falls back to GemmTiny).
template <class T, class F>
void with_gemm_config_for(GemmConfigId id, F&& f) {
  if constexpr (std::is_same_v<T, double>) {
    if (id == GemmConfigId::small) f(GemmSmall{});
    else f(GemmTiny{});
  } else {
    with_gemm_config(id, f);
  }
}

// Number of SMs of the current device (132 on the CPU harness, an H100/H200's count).
inline int device_sm_count() {
#if defined(__CUDACC__)
  static const int count = [] {
    int dev = 0, v = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      (void)cudaGetLastError();
      return 132;
    }
    return v > 0 ? v : 132;
  }();
  return count;
#else
  return 132;
#endif
}

// What gemm() runs for a shape: the tile configuration, and how K is split (splits == 1: not).
struct GemmPlan {
  GemmConfigId config = GemmConfigId::large;
  int splits = 1;
  std::int64_t k_chunk = 0;  // K range of one split (a multiple of the config's BK); K when not split
};

namespace gemm_detail {

// Launch grid geometry, passed to the kernel by value.
struct TileGrid {
  std::int64_t m = 0, n = 0;
  int k = 0, k_chunk = 0;  // K < 2^31 (checked by the launcher)
  std::int64_t tiles_m = 0, tiles_n = 0;
};

// 4 consecutive elements from global memory (one 128-bit load when Vec and T is float).
template <class T, bool Vec>
EMBER_DEVICE void ldg4(const T* p, T (&v)[4]) {
  if constexpr (Vec && std::is_same_v<T, float>) {
    const float4 q = __ldg(reinterpret_cast<const float4*>(p));
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = __ldg(p + i);
  }
}

// 4 consecutive elements from 16-byte aligned shared or global memory (plain loads).
template <class T>
EMBER_DEVICE void lds4(const T* p, T* v) {
  if constexpr (std::is_same_v<T, float>) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = p[i];
  }
}

// 4 consecutive elements to memory; one 128-bit store when Vec and T is float.
template <class T, bool Vec>
EMBER_DEVICE void st4(T* p, const T (&v)[4]) {
  if constexpr (Vec && std::is_same_v<T, float>) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) p[i] = v[i];
  }
}

// Stores one load group into a k-major shared tile [BK][ld]: a K-contiguous group (d, k..k+3)
// goes down a column, a D-contiguous group (k, d..d+3) along a row.
template <class T, bool KContig>
EMBER_DEVICE void store_group(T* tile, int ld, int dq, int kq, const T (&v)[4]) {
  if constexpr (KContig) {
#pragma unroll
    for (int i = 0; i < 4; ++i) tile[(kq + i) * ld + dq] = v[i];
  } else {
    st4<T, true>(tile + kq * ld + dq, v);
  }
}

template <class T>
EMBER_DEVICE void zero4(T (&v)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) v[i] = T(0);
}

}  // namespace gemm_detail

// ---- operand loaders --------------------------------------------------------------------------
// A loader reads an operand as seen by the GEMM: op(A) (d = row m, k) or op(B) (k, d = column n).
// Loads come in groups of 4 elements, either along K (kContigK: (d, k..k+3)) or along D
// ((k, d..d+3)); out-of-range elements (d >= D, k >= k_end) read as zero. A per-thread State
// holds what depends only on d (fixed for a thread across the K loop). K indices are int
// (the wrappers check K < 2^31).
//   State init(int64 d) const;                                    d: first d of the group
//   void fetch(const State&, int k, int k_end, T (&v)[4]) const;  k: first k of the group

// A row-major matrix in memory: element (d, k) at ptr[d * ld + k] (KContig) or ptr[k * ld + d].
// Vec: ptr is 16-byte aligned and ld % 4 == 0 (float only), so whole groups load as float4.
template <class T, bool KContig, bool Vec>
struct MatrixLoader {
  static constexpr bool kContigK = KContig;
  const T* ptr = nullptr;
  std::int64_t ld = 0;
  std::int64_t d_size = 0;
  std::int64_t batch_stride = 0;  // elements from one batch entry's matrix to the next

  struct State {
    const T* base;  // KContig: row d; else column d (valid when `valid` > 0)
    int valid;      // KContig: 1 if d < D; else how many of d..d+3 are < D (0..4)
  };
  [[nodiscard]] EMBER_DEVICE State init(std::int64_t d) const {
    State st;
    if constexpr (KContig) {
      st.valid = d < d_size ? 1 : 0;
      st.base = st.valid != 0 ? ptr + d * ld : ptr;
    } else {
      st.valid = static_cast<int>(kmax<std::int64_t>(0, kmin<std::int64_t>(4, d_size - d)));
      st.base = st.valid != 0 ? ptr + d : ptr;
    }
    return st;
  }

  EMBER_DEVICE void fetch(const State& st, int k, int k_end, T (&v)[4]) const {
    if constexpr (KContig) {
      if (st.valid != 0 && k + 3 < k_end) {
        gemm_detail::ldg4<T, Vec>(st.base + k, v);
      } else {
#pragma unroll
        for (int i = 0; i < 4; ++i) v[i] = (st.valid != 0 && k + i < k_end) ? __ldg(st.base + k + i) : T(0);
      }
    } else {
      const T* p = st.base + static_cast<std::int64_t>(k) * ld;
      if (k < k_end && st.valid == 4) {
        gemm_detail::ldg4<T, Vec>(p, v);
      } else {
#pragma unroll
        for (int i = 0; i < 4; ++i) v[i] = (k < k_end && i < st.valid) ? __ldg(p + i) : T(0);
      }
    }
  }
};

// ---- epilogues ----------------------------------------------------------------------------------
// An epilogue receives 4 consecutive outputs (row, col..col+3) of split `split`:
//   void store(int64 row, int64 col, unsigned split, const T (&v)[4]) const;
// and must itself skip row >= M and columns >= N.

// C = alpha * acc + beta * C (beta == 0: C not read), or, with a workspace, the raw partial sums
// of split z to ws[z][row][col] (a [splits][M][N] array).
template <class T>
struct MatrixEpilogue {
  T* c = nullptr;
  std::int64_t ldc = 0;
  T alpha = T(1), beta = T(0);
  bool vec_c = false;  // c 16-byte aligned and ldc % 4 == 0
  T* ws = nullptr;
  bool vec_ws = false;  // ws 16-byte aligned and n % 4 == 0
  std::int64_t m = 0, n = 0;
  std::int64_t batch_stride = 0;  // elements from one batch entry's C to the next

  EMBER_DEVICE void store(std::int64_t row, std::int64_t col, unsigned split, const T (&v)[4]) const {
    if (row >= m || col >= n) return;
    const int count = col + 3 < n ? 4 : static_cast<int>(n - col);
    if (ws != nullptr) {
      T* dst = ws + (static_cast<std::int64_t>(split) * m + row) * n + col;
      if (count == 4 && vec_ws) {
        gemm_detail::st4<T, true>(dst, v);
      } else {
#pragma unroll
        for (int i = 0; i < 4; ++i)
          if (i < count) dst[i] = v[i];
      }
      return;
    }
    T* dst = c + row * ldc + col;
    if (count == 4 && vec_c) {
      T out[4];
      if (beta == T(0)) {
#pragma unroll
        for (int i = 0; i < 4; ++i) out[i] = alpha * v[i];
      } else {
        T old[4];
        gemm_detail::lds4<T>(dst, old);  // one 16-byte load (dst is aligned)
#pragma unroll
        for (int i = 0; i < 4; ++i) out[i] = alpha * v[i] + beta * old[i];
      }
      gemm_detail::st4<T, true>(dst, out);
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i)
        if (i < count) dst[i] = beta == T(0) ? alpha * v[i] : alpha * v[i] + beta * dst[i];
    }
  }
};

// ---- batches ------------------------------------------------------------------------------------
// The operand or output of batch entry z (gemm_batched puts the entry in blockIdx.z): a matrix
// loader or epilogue moved by z entries; any other (conv.cuh's) is the same for every entry.
template <class X>
EMBER_DEVICE X batch_entry(const X& x, unsigned) {
  return x;
}
template <class T, bool KContig, bool Vec>
EMBER_DEVICE MatrixLoader<T, KContig, Vec> batch_entry(const MatrixLoader<T, KContig, Vec>& l,
                                                       unsigned z) {
  MatrixLoader<T, KContig, Vec> r = l;
  r.ptr += static_cast<std::int64_t>(z) * l.batch_stride;
  return r;
}
template <class T>
EMBER_DEVICE MatrixEpilogue<T> batch_entry(const MatrixEpilogue<T>& e, unsigned z) {
  MatrixEpilogue<T> r = e;
  r.c += static_cast<std::int64_t>(z) * e.batch_stride;
  return r;
}

// ---- the tiled kernel -----------------------------------------------------------------------------
// (double: values take two registers, so half the resident blocks are asked for)
template <class T, class Cfg, class LA, class LB, class Epi>
EMBER_KERNEL void __launch_bounds__(Cfg::kThreads, sizeof(T) > 4 ? (Cfg::kMinBlocks + 1) / 2 : Cfg::kMinBlocks)
    gemm_tiled_kernel(LA la_all, LB lb_all, Epi epi_all, gemm_detail::TileGrid g) {
  constexpr int BM = Cfg::kBM, BN = Cfg::kBN, BK = Cfg::kBK, TM = Cfg::kTM, TN = Cfg::kTN;
  constexpr int NT = Cfg::kThreads;
  constexpr int LDA = BM + Cfg::kPad, LDB = BN + Cfg::kPad;
  constexpr int RM = TM / 4, CN = TN / 4;  // 4x4 sub-blocks per thread
  constexpr int kGroupsA = BM * BK / 4, kGroupsB = BN * BK / 4;
  constexpr int kPerA = (kGroupsA + NT - 1) / NT, kPerB = (kGroupsB + NT - 1) / NT;

  EMBER_DYNAMIC_SHARED(T, smem);
  T* const as = smem;                 // [2][BK][LDA]
  T* const bs = smem + 2 * BK * LDA;  // [2][BK][LDB]
  const int tid = static_cast<int>(threadIdx.x);
  // The operands and output of batch entry blockIdx.z (gemm_batched; the only one otherwise).
  const LA la = batch_entry(la_all, blockIdx.z);
  const LB lb = batch_entry(lb_all, blockIdx.z);
  const Epi epi = batch_entry(epi_all, blockIdx.z);

  // This block's output tile. Tiles are numbered in groups of 8 tile rows (column-major inside
  // a group), so the blocks running at the same time share A rows and B columns in L2.
  const std::int64_t pid = blockIdx.x;
  constexpr std::int64_t kGroupRows = 8;
  const std::int64_t per_group = kGroupRows * g.tiles_n;
  const std::int64_t group = pid / per_group;
  const std::int64_t first_m = group * kGroupRows;
  const std::int64_t group_m = kmin<std::int64_t>(g.tiles_m - first_m, kGroupRows);
  const std::int64_t in_group = pid - group * per_group;
  const std::int64_t m0 = (first_m + in_group % group_m) * BM;
  const std::int64_t n0 = (in_group / group_m) * BN;
  const unsigned split = blockIdx.y;
  const int k_begin = static_cast<int>(split) * g.k_chunk;
  const int k_end = static_cast<int>(kmin<std::int64_t>(g.k, static_cast<std::int64_t>(k_begin) + g.k_chunk));
  const int num_steps = k_end > k_begin ? (k_end - k_begin + BK - 1) / BK : 0;

  // The load groups of this thread (fixed for the whole K loop).
  int a_d[kPerA], a_k[kPerA], b_d[kPerB], b_k[kPerB];
  bool a_on[kPerA], b_on[kPerB];
  typename LA::State a_st[kPerA];
  typename LB::State b_st[kPerB];
#pragma unroll
  for (int i = 0; i < kPerA; ++i) {
    const int idx = tid + i * NT;
    a_on[i] = (kGroupsA % NT == 0) || idx < kGroupsA;
    if constexpr (LA::kContigK) {
      a_d[i] = idx / (BK / 4);
      a_k[i] = idx % (BK / 4) * 4;
    } else {
      a_k[i] = idx / (BM / 4);
      a_d[i] = idx % (BM / 4) * 4;
    }
    a_st[i] = la.init(m0 + a_d[i]);
  }
#pragma unroll
  for (int i = 0; i < kPerB; ++i) {
    const int idx = tid + i * NT;
    b_on[i] = (kGroupsB % NT == 0) || idx < kGroupsB;
    if constexpr (LB::kContigK) {
      b_d[i] = idx / (BK / 4);
      b_k[i] = idx % (BK / 4) * 4;
    } else {
      b_k[i] = idx / (BN / 4);
      b_d[i] = idx % (BN / 4) * 4;
    }
    b_st[i] = lb.init(n0 + b_d[i]);
  }

  T ra[kPerA][4], rb[kPerB][4];
  auto fetch = [&](int k0) {
#pragma unroll
    for (int i = 0; i < kPerA; ++i)
      if (a_on[i]) la.fetch(a_st[i], k0 + a_k[i], k_end, ra[i]);
#pragma unroll
    for (int i = 0; i < kPerB; ++i)
      if (b_on[i]) lb.fetch(b_st[i], k0 + b_k[i], k_end, rb[i]);
  };
  auto stash = [&](int buf) {
    T* at = as + buf * BK * LDA;
    T* bt = bs + buf * BK * LDB;
#pragma unroll
    for (int i = 0; i < kPerA; ++i)
      if (a_on[i]) gemm_detail::store_group<T, LA::kContigK>(at, LDA, a_d[i], a_k[i], ra[i]);
#pragma unroll
    for (int i = 0; i < kPerB; ++i)
      if (b_on[i]) gemm_detail::store_group<T, LB::kContigK>(bt, LDB, b_d[i], b_k[i], rb[i]);
  };

  // This thread's outputs: rows gi * (BM / RM) + ty * 4 + 0..3, columns gj * (BN / CN) + tx * 4 + 0..3.
  const int warp = tid / 32, lane = tid % 32;
  const int ty = (warp / Cfg::kWarpsX) * Cfg::kLanesY + lane / Cfg::kLanesX;
  const int tx = (warp % Cfg::kWarpsX) * Cfg::kLanesX + lane % Cfg::kLanesX;

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  if (num_steps > 0) {
    fetch(k_begin);
    stash(0);
  }
  __syncthreads();
  for (int step = 0; step < num_steps; ++step) {
    const int cur = step & 1;
    const bool more = step + 1 < num_steps;
    if (more) fetch(k_begin + (step + 1) * BK);  // in flight during the FMAs below
    const T* at = as + cur * BK * LDA + ty * 4;
    const T* bt = bs + cur * BK * LDB + tx * 4;
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      T a[TM], b[TN];
#pragma unroll
      for (int gi = 0; gi < RM; ++gi) gemm_detail::lds4<T>(at + kk * LDA + gi * (BM / RM), a + 4 * gi);
#pragma unroll
      for (int gj = 0; gj < CN; ++gj) gemm_detail::lds4<T>(bt + kk * LDB + gj * (BN / CN), b + 4 * gj);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
    }
    if (more) stash(cur ^ 1);
    __syncthreads();
  }

#pragma unroll
  for (int gi = 0; gi < RM; ++gi)
#pragma unroll
    for (int ii = 0; ii < 4; ++ii) {
      const std::int64_t row = m0 + gi * (BM / RM) + ty * 4 + ii;
#pragma unroll
      for (int gj = 0; gj < CN; ++gj) {
        const std::int64_t col = n0 + gj * (BN / CN) + tx * 4;
        const T v[4] = {acc[gi * 4 + ii][gj * 4 + 0], acc[gi * 4 + ii][gj * 4 + 1],
                        acc[gi * 4 + ii][gj * 4 + 2], acc[gi * 4 + ii][gj * 4 + 3]};
        epi.store(row, col, split, v);
      }
    }
}

// C = alpha * sum_z ws[z] + beta * C over a [splits][M][N] workspace, splits summed in order.
template <class T>
EMBER_KERNEL void gemm_splitk_reduce_kernel(const T* __restrict__ ws, int splits, std::int64_t m,
                                            std::int64_t n, T* c, std::int64_t ldc, T alpha, T beta) {
  const std::int64_t total = m * n;
  const std::int64_t stride = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    T s = ws[i];
    for (int z = 1; z < splits; ++z) s += ws[static_cast<std::int64_t>(z) * total + i];
    const std::int64_t row = i / n;
    T* dst = c + row * ldc + (i - row * n);
    *dst = beta == T(0) ? alpha * s : alpha * s + beta * *dst;
  }
}

// C = beta * C (beta == 0: zeros, C not read): the K == 0 case.
template <class T>
EMBER_KERNEL void gemm_scale_kernel(std::int64_t m, std::int64_t n, T* c, std::int64_t ldc, T beta) {
  const std::int64_t total = m * n;
  const std::int64_t stride = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const std::int64_t row = i / n;
    T* dst = c + row * ldc + (i - row * n);
    *dst = beta == T(0) ? T(0) : beta * *dst;
  }
}

// ---- host side --------------------------------------------------------------------------------------

namespace gemm_detail {

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Launches the tiled kernel of configuration Cfg over an M x N output, K deep, in `splits`
// K ranges of k_chunk (a multiple of Cfg::kBK; ignored when splits == 1), for `batch` entries
// (blockIdx.z; batch_entry moves the loaders and the epilogue).
template <class T, class Cfg, class LA, class LB, class Epi>
void launch_tiled(const LA& la, const LB& lb, const Epi& epi, std::int64_t m, std::int64_t n,
                  std::int64_t k, int splits, std::int64_t k_chunk, Stream stream,
                  unsigned batch = 1) {
  TileGrid g;
  g.m = m;
  g.n = n;
  EMBER_CHECK(k >= 0 && k < (1LL << 30), "gemm: K = ", k, " is too large (at most 2^30 - 1)");
  g.k = static_cast<int>(k);
  g.k_chunk = static_cast<int>(splits > 1 ? k_chunk : (k > 0 ? k : 1));
  g.tiles_m = ceil_div(m, Cfg::kBM);
  g.tiles_n = ceil_div(n, Cfg::kBN);
  EMBER_CHECK(g.tiles_m * g.tiles_n <= 2147483647LL, "gemm: ", m, " x ", n, " output has too many tiles");
  EMBER_CHECK(splits >= 1 && splits <= 65535, "gemm: bad split count ", splits);
  EMBER_CHECK(splits == 1 || (k_chunk % Cfg::kBK == 0 && ceil_div(k, k_chunk) == splits),
              "gemm: split-K chunk ", k_chunk, " does not fit ", splits, " splits of K = ", k);
  EMBER_CHECK(batch >= 1 && batch <= 65535 && (batch == 1 || splits == 1),
              "gemm: bad batch count ", batch, " (", splits, " splits)");
  const dim3 grid(static_cast<unsigned>(g.tiles_m * g.tiles_n), static_cast<unsigned>(splits), batch);
  const dim3 block(static_cast<unsigned>(Cfg::kThreads));
  auto* kernel = &gemm_tiled_kernel<T, Cfg, LA, LB, Epi>;
  (void)stream;  // unused by the CPU harness's launch
  EMBER_LAUNCH(kernel, grid, block, Cfg::template smem_bytes<T>(), stream)(la, lb, epi, g);
  check_launch("gemm_tiled_kernel");
}

template <class T>
void launch_splitk_reduce(const T* ws, int splits, std::int64_t m, std::int64_t n, T* c,
                          std::int64_t ldc, T alpha, T beta, Stream stream, int threads = 256) {
  (void)stream;
  EMBER_LAUNCH(gemm_splitk_reduce_kernel<T>, grid_for(m * n, threads), threads, 0, stream)(
      ws, splits, m, n, c, ldc, alpha, beta);
  check_launch("gemm_splitk_reduce_kernel");
}

// Cost model for picking a configuration: a "wave" is what the GPU runs at once
// (SMs x resident blocks); its time is proportional to the work of one block times the
// blocks sharing an SM, divided by the configuration's relative efficiency.
struct ConfigModel {
  GemmConfigId id;
  int bm, bn, bk, blocks_per_sm;
  double efficiency;
};
inline constexpr ConfigModel kModels[] = {
    {GemmConfigId::large, 128, 128, 8, 2, 1.0},  {GemmConfigId::wide, 64, 128, 8, 3, 0.9},
    {GemmConfigId::tall, 128, 64, 8, 3, 0.9},    {GemmConfigId::small, 64, 64, 16, 3, 0.7},
    {GemmConfigId::tiny, 32, 32, 16, 8, 0.4},
};

inline const ConfigModel& model_of(GemmConfigId id) {
  for (const auto& mdl : kModels)
    if (mdl.id == id) return mdl;
  return kModels[0];
}

}  // namespace gemm_detail

// The configuration and split gemm() uses for an M x N x K product (allow_split: a workspace
// will be available), or gemm_batched for `batch` of them (whose tiles all count). Depends on the
// shape and the device's SM count only.
template <class T>
GemmPlan gemm_plan(std::int64_t m, std::int64_t n, std::int64_t k, bool allow_split = true,
                   std::int64_t batch = 1) {
  using gemm_detail::kModels;
  const int sms = device_sm_count();
  GemmPlan plan;
  double best = -1;
  std::int64_t best_tiles = 1;
  for (const auto& mdl : kModels) {
    // double: 64 accumulators per thread would spill, so only the 4x4-per-thread configurations.
    if (std::is_same_v<T, double> && mdl.id != GemmConfigId::small && mdl.id != GemmConfigId::tiny) continue;
    const std::int64_t tiles = ceil_div(m, mdl.bm) * ceil_div(n, mdl.bn) * batch;
    const std::int64_t waves = ceil_div(tiles, static_cast<std::int64_t>(sms) * mdl.blocks_per_sm);
    const double cost = static_cast<double>(waves) * mdl.blocks_per_sm * mdl.bm * mdl.bn / mdl.efficiency;
    if (best < 0 || cost < best) {
      best = cost;
      plan.config = mdl.id;
      best_tiles = tiles;
    }
  }
  plan.splits = 1;
  plan.k_chunk = k;
  // Few output tiles and a long K: split K so that about two blocks per SM run, each with at
  // least 128 of K.
  const std::int64_t bk = gemm_detail::model_of(plan.config).bk;
  if (allow_split && best_tiles < sms && k >= 256) {
    std::int64_t want = kmin<std::int64_t>(ceil_div(2 * sms, best_tiles), k / 128);
    want = kmin<std::int64_t>(want, 65535);
    if (want > 1) {
      const std::int64_t chunk = ceil_div(ceil_div(k, want), bk) * bk;
      plan.k_chunk = chunk;
      plan.splits = static_cast<int>(ceil_div(k, chunk));
      if (plan.splits <= 1) {
        plan.splits = 1;
        plan.k_chunk = k;
      }
    }
  }
  return plan;
}

// Workspace (bytes) gemm() uses for split-K on this shape when given one; 0: none needed.
template <class T>
std::size_t gemm_workspace_bytes(const GemmParams& p) {
  if (p.m <= 0 || p.n <= 0 || p.k <= 0) return 0;
  const GemmPlan plan = gemm_plan<T>(p.m, p.n, p.k, true);
  if (plan.splits <= 1) return 0;
  return static_cast<std::size_t>(plan.splits) * static_cast<std::size_t>(p.m) *
         static_cast<std::size_t>(p.n) * sizeof(T);
}

namespace gemm_detail {
// gemm_with for `batch` entries (<= 65535, then splits == 1), entry i's matrices at
// a + i * stride_a, b + i * stride_b and c + i * stride_c.
template <class T, class Cfg>
void gemm_run(const GemmParams& p, T alpha, const T* a, const T* b, T beta, T* c, Stream stream,
              int splits, T* workspace, unsigned batch, std::int64_t stride_a,
              std::int64_t stride_b, std::int64_t stride_c) {
  EMBER_CHECK(p.m >= 0 && p.n >= 0 && p.k >= 0, "gemm: negative size");
  (void)stream;
  if (p.m == 0 || p.n == 0) return;
  EMBER_CHECK(p.m <= 1 || p.ldc >= p.n, "gemm: ldc ", p.ldc, " < n ", p.n);
  if (p.k == 0) {  // (a launch per entry: nothing to multiply)
    for (unsigned i = 0; i < batch; ++i) {
      EMBER_LAUNCH(gemm_scale_kernel<T>, grid_for(p.m * p.n, 256), 256, 0, stream)(
          p.m, p.n, c + static_cast<std::int64_t>(i) * stride_c, p.ldc, beta);
      check_launch("gemm_scale_kernel");
    }
    return;
  }
  // (single stored rows may carry any leading dimension, as on the CPU)
  EMBER_CHECK(((p.trans_a ? p.k : p.m) <= 1 || p.lda >= (p.trans_a ? p.m : p.k)) &&
                  ((p.trans_b ? p.n : p.k) <= 1 || p.ldb >= (p.trans_b ? p.k : p.n)),
              "gemm: lda/ldb smaller than the stored rows");
  std::int64_t chunk = p.k;
  if (splits > 1) {
    EMBER_CHECK(workspace != nullptr, "gemm: split-K needs a workspace");
    chunk = ceil_div(ceil_div(p.k, splits), Cfg::kBK) * Cfg::kBK;
    splits = static_cast<int>(ceil_div(p.k, chunk));
  }
  if (splits <= 1) {
    splits = 1;
    chunk = p.k;
  }
  const bool whole_batch = batch == 1 || (stride_a % 4 == 0 && stride_b % 4 == 0);
  const bool vec = std::is_same_v<T, float> && aligned16(a) && aligned16(b) &&
                   p.lda % 4 == 0 && p.ldb % 4 == 0 && whole_batch;
  MatrixEpilogue<T> epi;
  epi.c = c;
  epi.ldc = p.ldc;
  epi.alpha = alpha;
  epi.beta = beta;
  epi.vec_c = aligned16(c) && p.ldc % 4 == 0 && (batch == 1 || stride_c % 4 == 0);
  epi.batch_stride = stride_c;
  epi.ws = splits > 1 ? workspace : nullptr;
  epi.vec_ws = aligned16(workspace) && p.n % 4 == 0;
  epi.m = p.m;
  epi.n = p.n;
  auto run = [&](auto ta, auto tb, auto v) {
    constexpr bool kTa = decltype(ta)::value, kTb = decltype(tb)::value, kVec = decltype(v)::value;
    // op(A): K-contiguous when A is stored [M,K]; op(B): K-contiguous when B is stored [N,K].
    MatrixLoader<T, !kTa, kVec> la{a, p.lda, p.m, stride_a};
    MatrixLoader<T, kTb, kVec> lb{b, p.ldb, p.n, stride_b};
    launch_tiled<T, Cfg>(la, lb, epi, p.m, p.n, p.k, splits, chunk, stream, batch);
  };
  auto with_vec = [&](auto ta, auto tb) {
    if (vec) run(ta, tb, std::true_type{});
    else run(ta, tb, std::false_type{});
  };
  auto with_tb = [&](auto ta) {
    if (p.trans_b) with_vec(ta, std::true_type{});
    else with_vec(ta, std::false_type{});
  };
  if (p.trans_a) with_tb(std::true_type{});
  else with_tb(std::false_type{});
  if (splits > 1) launch_splitk_reduce<T>(workspace, splits, p.m, p.n, c, p.ldc, alpha, beta, stream);
}

}  // namespace gemm_detail

// One configuration, `splits` K ranges (splits > 1 needs a workspace of
// splits * M * N elements; the split count is clamped so every split has work).
template <class T, class Cfg>
void gemm_with(const GemmParams& p, T alpha, const T* a, const T* b, T beta, T* c, Stream stream,
               int splits = 1, T* workspace = nullptr) {
  gemm_detail::gemm_run<T, Cfg>(p, alpha, a, b, beta, c, stream, splits, workspace, 1, 0, 0, 0);
}

// C = alpha * op(A) op(B) + beta * C with the configuration chosen for the shape. With a
// workspace of gemm_workspace_bytes<T>(p) bytes (when that is > 0), few-tile shapes with a long
// K are split over K (deterministically); without one they are not.
template <class T>
void gemm(const GemmParams& p, T alpha, const T* a, const T* b, T beta, T* c, Stream stream,
          T* workspace = nullptr) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "gemm: float or double");
  if (p.m <= 0 || p.n <= 0) return;
  const GemmPlan plan = gemm_plan<T>(p.m, p.n, p.k, workspace != nullptr);
  with_gemm_config_for<T>(plan.config, [&](auto cfg) {
    gemm_with<T, decltype(cfg)>(p, alpha, a, b, beta, c, stream, plan.splits, workspace);
  });
}

// Every entry of a batch of products (BatchedGemmParams, torch.bmm) in one launch, the entry in
// blockIdx.z (a launch per 65535 entries), with the configuration gemm_plan picks for all the
// entries' tiles together and no split-K. Each entry gets gemm_with's result for it.
template <class T>
void gemm_batched(const BatchedGemmParams& bp, T alpha, const T* a, const T* b, T beta, T* c,
                  Stream stream) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "gemm: float or double");
  const GemmParams& p = bp.gemm;
  EMBER_CHECK(bp.batch >= 0, "gemm_batched: negative batch ", bp.batch);
  if (bp.batch == 0 || p.m <= 0 || p.n <= 0) return;
  const GemmPlan plan = gemm_plan<T>(p.m, p.n, p.k, false, bp.batch);
  with_gemm_config_for<T>(plan.config, [&](auto cfg) {
    for (std::int64_t first = 0; first < bp.batch; first += 65535) {
      const auto count = static_cast<unsigned>(kmin<std::int64_t>(65535, bp.batch - first));
      gemm_detail::gemm_run<T, decltype(cfg)>(p, alpha, a + first * bp.stride_a, b + first * bp.stride_b,
                                             beta, c + first * bp.stride_c, stream, 1, nullptr,
                                             count, bp.stride_a, bp.stride_b, bp.stride_c);
    }
  });
}

}  // namespace ember::kernels
