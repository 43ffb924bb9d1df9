#pragma once
// 2-D convolution (NCHW, stride / padding / dilation) with the semantics of
// ember::cpu::conv2d_forward / conv2d_backward (backend/cpu/conv.hpp), as implicit GEMMs on the
// tiled GEMM kernel of sgemm.cuh: the loaders below read the unfolded (im2col) operands straight
// from x / gy / w, so no column buffer is materialised.
//   forward        y[n,k,pq]  : C[k][j]   = w[k][crs] * col[crs][j]        M=K, N=N*P*Q, K=C*R*S
//   backward data  gx[n,c,hw] : C[c][j']  = w'[c][krs] * dcol[krs][j']     M=C, N=N*H*W, K=K*R*S
//                  (dcol[(k,r,s)][(n,h,w)] = gy[n,k,oh,ow] where h = oh*sh - ph + r*dh and
//                   w = ow*sw - pw + s*dw, else 0: the transposed convolution as a GEMM)
//   backward weight gw[k,crs] : C[k][crs] = gy[k][j] * col[crs][j]^T       M=K, N=C*R*S, K=N*P*Q
// (j = n*P*Q + oh*Q + ow). The weight gradient's long K is split over blocks when the output has
// few tiles, each split writing raw partial sums to the caller's workspace, then summed in fixed
// order by a second kernel: deterministic, no atomics. The bias gradient is a per-channel sum in
// double (like the CPU's), one block per channel, in a fixed order.
// Index arithmetic is 32-bit with multiply-high division by the run-time sizes (FastDivmod);
// the wrappers check every tensor has fewer than 2^31 elements.

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common.cuh"
#include "ember/backend/params.hpp"
#include "sgemm.cuh"

namespace ember::kernels {

// Unsigned 32-bit division by a run-time constant (Granlund-Montgomery): q = (mulhi(x, m) + x) >> l
// with l = ceil(log2 d) and m = floor(2^32 (2^l - d) / d) + 1, exact for every 32-bit x.
struct FastDivmod {
  std::uint32_t d = 1, mul = 1, shift = 0;
  FastDivmod() = default;
  explicit FastDivmod(std::uint32_t divisor) : d(divisor) {
    EMBER_CHECK(divisor >= 1 && divisor <= 0x80000000u, "FastDivmod: divisor ", divisor, " out of range");
    std::uint32_t l = 0;
    while ((std::uint64_t{1} << l) < divisor) ++l;
    shift = l;
    mul = static_cast<std::uint32_t>(((std::uint64_t{1} << 32) * ((std::uint64_t{1} << l) - divisor)) / divisor + 1);
  }
  [[nodiscard]] EMBER_HOST_DEVICE std::uint32_t div(std::uint32_t x) const {
    const auto hi = static_cast<std::uint32_t>((static_cast<std::uint64_t>(mul) * x) >> 32);
    return static_cast<std::uint32_t>((static_cast<std::uint64_t>(hi) + x) >> shift);
  }
  // Quotient of a non-negative int.
  [[nodiscard]] EMBER_HOST_DEVICE int operator()(int x) const {
    return static_cast<int>(div(static_cast<std::uint32_t>(x)));
  }
};

// Convolution sizes in 32-bit form, with the divisors the loaders need, passed by value.
struct ConvGeom {
  int n = 0, c = 0, h = 0, w = 0, k = 0, r = 0, s = 0, p = 0, q = 0;
  int sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int hw = 0, pq = 0, rs = 0, crs = 0, chw = 0, kpq = 0, npq = 0, nhw = 0;
  FastDivmod div_rs, div_s, div_pq, div_q, div_hw, div_w, div_sh, div_sw;
};

namespace conv_detail {

inline constexpr std::int64_t kMaxElems = 2147483647LL;

inline ConvGeom make_geom(const Conv2dParams& p, const char* what) {
  EMBER_CHECK(p.n >= 0 && p.c >= 0 && p.h >= 0 && p.w >= 0 && p.k >= 0 && p.r >= 1 && p.s >= 1 &&
                  p.stride_h >= 1 && p.stride_w >= 1 && p.pad_h >= 0 && p.pad_w >= 0 && p.dil_h >= 1 &&
                  p.dil_w >= 1,
              what, ": bad convolution parameters");
  const std::int64_t P = p.p(), Q = p.q();
  EMBER_CHECK(P >= 1 && Q >= 1, what, ": the ", p.r, " x ", p.s, " window (dilation ", p.dil_h, ", ", p.dil_w,
              ") does not fit the padded ", p.h, " x ", p.w, " input");
  EMBER_CHECK(p.n * p.c * p.h * p.w <= kMaxElems && p.n * p.k * P * Q <= kMaxElems &&
                  p.k * p.c * p.r * p.s <= kMaxElems && p.h + 2 * p.pad_h <= kMaxElems / 2 &&
                  p.w + 2 * p.pad_w <= kMaxElems / 2,
              what, ": tensors of 2^31 elements or more are not supported");
  ConvGeom g;
  g.n = static_cast<int>(p.n);
  g.c = static_cast<int>(p.c);
  g.h = static_cast<int>(p.h);
  g.w = static_cast<int>(p.w);
  g.k = static_cast<int>(p.k);
  g.r = static_cast<int>(p.r);
  g.s = static_cast<int>(p.s);
  g.p = static_cast<int>(P);
  g.q = static_cast<int>(Q);
  g.sh = static_cast<int>(p.stride_h);
  g.sw = static_cast<int>(p.stride_w);
  g.ph = static_cast<int>(p.pad_h);
  g.pw = static_cast<int>(p.pad_w);
  g.dh = static_cast<int>(p.dil_h);
  g.dw = static_cast<int>(p.dil_w);
  g.hw = g.h * g.w;
  g.pq = g.p * g.q;
  g.rs = g.r * g.s;
  g.crs = g.c * g.rs;
  g.chw = g.c * g.hw;
  g.kpq = g.k * g.pq;
  g.npq = g.n * g.pq;
  g.nhw = g.n * g.hw;
  auto div = [](int d) { return FastDivmod(static_cast<std::uint32_t>(d < 1 ? 1 : d)); };
  g.div_rs = div(g.rs);
  g.div_s = div(g.s);
  g.div_pq = div(g.pq);
  g.div_q = div(g.q);
  g.div_hw = div(g.hw);
  g.div_w = div(g.w);
  g.div_sh = div(g.sh);
  g.div_sw = div(g.sw);
  return g;
}

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace conv_detail

// ---- forward: B[crs][j] = x[n, c, oh*sh - ph + r*dh, ow*sw - pw + s*dw] (0 in the padding) --------
// Groups run along j (4 consecutive output pixels); a thread's pixels are fixed, so their
// decoding is done once. row4: the 4 pixels are in one output row (the common case).
template <class T>
struct ConvFwdColLoader {
  static constexpr bool kContigK = false;
  const T* x = nullptr;
  ConvGeom g;

  struct State {
    int j;    // first pixel of the group (n * PQ + oh * Q + ow)
    int off;  // n*CHW + hb*W + wb: where x(c=0, r=0, s=0) of the first pixel would be
    int hb, wb;  // oh*sh - ph, ow*sw - pw
    bool row4;
  };
  [[nodiscard]] EMBER_DEVICE State init(std::int64_t d) const {
    State st{};
    st.j = static_cast<int>(kmin<std::int64_t>(d, g.npq));
    st.row4 = false;
    if (d < g.npq) {
      const int n = g.div_pq(st.j);
      const int pq = st.j - n * g.pq;
      const int oh = g.div_q(pq);
      const int ow = pq - oh * g.q;
      st.hb = oh * g.sh - g.ph;
      st.wb = ow * g.sw - g.pw;
      st.off = n * g.chw + st.hb * g.w + st.wb;
      st.row4 = ow + 3 < g.q && st.j + 3 < g.npq;
    }
    return st;
  }

  EMBER_DEVICE void fetch(const State& st, int crs, int k_end, T (&v)[4]) const {
    gemm_detail::zero4(v);
    if (crs >= k_end) return;
    const int c = g.div_rs(crs);
    const int rs = crs - c * g.rs;
    const int r = g.div_s(rs);
    const int s = rs - r * g.s;
    const int rd = r * g.dh, sd = s * g.dw;
    if (st.row4) {
      const int ih = st.hb + rd;
      if (static_cast<unsigned>(ih) < static_cast<unsigned>(g.h)) {
        const int base = st.off + c * g.hw + rd * g.w + sd;
        const int iw0 = st.wb + sd;
#pragma unroll
        for (int i = 0; i < 4; ++i)
          if (static_cast<unsigned>(iw0 + i * g.sw) < static_cast<unsigned>(g.w)) v[i] = __ldg(x + (base + i * g.sw));
      }
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int j = st.j + i;
        if (j >= g.npq) continue;
        const int n = g.div_pq(j);
        const int pq = j - n * g.pq;
        const int oh = g.div_q(pq);
        const int ow = pq - oh * g.q;
        const int ih = oh * g.sh - g.ph + rd, iw = ow * g.sw - g.pw + sd;
        if (static_cast<unsigned>(ih) < static_cast<unsigned>(g.h) && static_cast<unsigned>(iw) < static_cast<unsigned>(g.w))
          v[i] = __ldg(x + (n * g.chw + c * g.hw + ih * g.w + iw));
      }
    }
  }
};

// ---- output epilogue: C[row][col] -> out[n][row][pix] (+ bias[row]) with col = n * plane + pix --
// (forward: out = y, rows = K, plane = P*Q; backward data: out = gx, rows = C, plane = H*W).
template <class T>
struct ConvOutEpilogue {
  T* out = nullptr;
  const T* bias = nullptr;
  int rows = 0, plane = 0, cols = 0;
  FastDivmod div_plane;
  bool vec = false;  // out 16-byte aligned and plane % 4 == 0

  EMBER_DEVICE void store(std::int64_t row64, std::int64_t col64, unsigned, const T (&v)[4]) const {
    if (row64 >= rows || col64 >= cols) return;
    const int row = static_cast<int>(row64), col = static_cast<int>(col64);
    T o[4];
    if (bias != nullptr) {
      const T b = bias[row];
#pragma unroll
      for (int i = 0; i < 4; ++i) o[i] = v[i] + b;
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) o[i] = v[i];
    }
    const int n = div_plane(col);
    const int pix = col - n * plane;
    if (pix + 3 < plane && col + 3 < cols) {
      T* dst = out + (static_cast<std::int64_t>(n) * rows + row) * plane + pix;
      if (vec) gemm_detail::st4<T, true>(dst, o);
      else gemm_detail::st4<T, false>(dst, o);
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if (col + i >= cols) continue;
        const int ni = div_plane(col + i);
        const int pi = col + i - ni * plane;
        out[(static_cast<std::int64_t>(ni) * rows + row) * plane + pi] = o[i];
      }
    }
  }
};

// ---- backward data ----------------------------------------------------------------------------------
// A[c][krs] = w[k][c][r][s] (krs = k*RS + r*S + s): groups along krs.
template <class T>
struct ConvDgradWeightLoader {
  static constexpr bool kContigK = true;
  const T* w = nullptr;
  ConvGeom g;

  struct State {
    int coff;  // c * RS
    bool ok;   // c < C
  };
  [[nodiscard]] EMBER_DEVICE State init(std::int64_t d) const {
    State st{};
    st.ok = d < g.c;
    st.coff = st.ok ? static_cast<int>(d) * g.rs : 0;
    return st;
  }
  EMBER_DEVICE void fetch(const State& st, int krs, int k_end, T (&v)[4]) const {
    gemm_detail::zero4(v);
    if (!st.ok || krs >= k_end) return;
    int k = g.div_rs(krs);
    int rs = krs - k * g.rs;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if (krs + i < k_end) v[i] = __ldg(w + (k * g.crs + st.coff + rs));
      if (++rs == g.rs) {
        rs = 0;
        ++k;
      }
    }
  }
};

// B[krs][(n,h,w)] = gy[n][k][oh][ow] where oh*sh = h + ph - r*dh and ow*sw = w + pw - s*dw (exact
// multiples, in range), else 0. Groups along (n,h,w); a thread's pixels are fixed.
template <class T>
struct ConvDgradGyLoader {
  static constexpr bool kContigK = false;
  const T* gy = nullptr;
  ConvGeom g;

  struct State {
    int j;      // first input pixel of the group: n*HW + h*W + w
    int gbase;  // n * K*P*Q
    int th, tw;  // h + ph, w + pw
    bool row4;
  };
  [[nodiscard]] EMBER_DEVICE State init(std::int64_t d) const {
    State st{};
    st.j = static_cast<int>(kmin<std::int64_t>(d, g.nhw));
    st.row4 = false;
    if (d < g.nhw) {
      const int n = g.div_hw(st.j);
      const int hw = st.j - n * g.hw;
      const int h = g.div_w(hw);
      const int w = hw - h * g.w;
      st.gbase = n * g.kpq;
      st.th = h + g.ph;
      st.tw = w + g.pw;
      st.row4 = w + 3 < g.w && st.j + 3 < g.nhw;
    }
    return st;
  }

  // Output coordinate o with o*stride == t, if any, in [0, size): else -1.
  EMBER_DEVICE static int source(int t, int stride, const FastDivmod& div, int size) {
    if (t < 0) return -1;
    const int o = div(t);
    return (o * stride == t && o < size) ? o : -1;
  }

  EMBER_DEVICE void fetch(const State& st, int krs, int k_end, T (&v)[4]) const {
    gemm_detail::zero4(v);
    if (krs >= k_end) return;
    const int k = g.div_rs(krs);
    const int rs = krs - k * g.rs;
    const int r = g.div_s(rs);
    const int s = rs - r * g.s;
    if (st.row4) {
      const int oh = source(st.th - r * g.dh, g.sh, g.div_sh, g.p);
      if (oh < 0) return;
      const int base = st.gbase + k * g.pq + oh * g.q;
      const int tw0 = st.tw - s * g.dw;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int ow = source(tw0 + i, g.sw, g.div_sw, g.q);
        if (ow >= 0) v[i] = __ldg(gy + (base + ow));
      }
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int j = st.j + i;
        if (j >= g.nhw) continue;
        const int n = g.div_hw(j);
        const int hw = j - n * g.hw;
        const int h = g.div_w(hw);
        const int w = hw - h * g.w;
        const int oh = source(h + g.ph - r * g.dh, g.sh, g.div_sh, g.p);
        const int ow = source(w + g.pw - s * g.dw, g.sw, g.div_sw, g.q);
        if (oh >= 0 && ow >= 0) v[i] = __ldg(gy + (n * g.kpq + k * g.pq + oh * g.q + ow));
      }
    }
  }
};

// ---- backward weight -----------------------------------------------------------------------------
// A[k][j] = gy[n][k][pq] (j = n*PQ + pq): groups along j.
template <class T>
struct ConvWgradGyLoader {
  static constexpr bool kContigK = true;
  const T* gy = nullptr;
  ConvGeom g;
  bool vec = false;  // gy 16-byte aligned and PQ % 4 == 0 (float4 loads within a plane)

  struct State {
    int koff;  // k * PQ
    bool ok;   // k < K
  };
  [[nodiscard]] EMBER_DEVICE State init(std::int64_t d) const {
    State st{};
    st.ok = d < g.k;
    st.koff = st.ok ? static_cast<int>(d) * g.pq : 0;
    return st;
  }
  EMBER_DEVICE void fetch(const State& st, int j, int k_end, T (&v)[4]) const {
    gemm_detail::zero4(v);
    if (!st.ok || j >= k_end) return;
    const int n = g.div_pq(j);
    const int pq = j - n * g.pq;
    if (j + 3 < k_end && pq + 3 < g.pq) {
      const T* src = gy + (n * g.kpq + st.koff + pq);
      if (vec) gemm_detail::ldg4<T, true>(src, v);
      else gemm_detail::ldg4<T, false>(src, v);
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if (j + i >= k_end) continue;
        const int ni = g.div_pq(j + i);
        v[i] = __ldg(gy + (ni * g.kpq + st.koff + (j + i - ni * g.pq)));
      }
    }
  }
};

// B[j][crs] = x[n, c, oh*sh - ph + r*dh, ow*sw - pw + s*dw]: groups along j; a thread's (c, r, s)
// is fixed.
template <class T>
struct ConvWgradColLoader {
  static constexpr bool kContigK = true;
  const T* x = nullptr;
  ConvGeom g;

  struct State {
    int coff;    // c * HW
    int rd, sd;  // r*dh - ph, s*dw - pw
    bool ok;     // crs < CRS
  };
  [[nodiscard]] EMBER_DEVICE State init(std::int64_t d) const {
    State st{};
    st.ok = d < g.crs;
    if (st.ok) {
      const int crs = static_cast<int>(d);
      const int c = g.div_rs(crs);
      const int rs = crs - c * g.rs;
      const int r = g.div_s(rs);
      const int s = rs - r * g.s;
      st.coff = c * g.hw;
      st.rd = r * g.dh - g.ph;
      st.sd = s * g.dw - g.pw;
    }
    return st;
  }
  EMBER_DEVICE void fetch(const State& st, int j, int k_end, T (&v)[4]) const {
    gemm_detail::zero4(v);
    if (!st.ok || j >= k_end) return;
    const int n = g.div_pq(j);
    const int pq = j - n * g.pq;
    const int oh = g.div_q(pq);
    const int ow = pq - oh * g.q;
    if (j + 3 < k_end && ow + 3 < g.q) {
      const int ih = oh * g.sh + st.rd;
      if (static_cast<unsigned>(ih) >= static_cast<unsigned>(g.h)) return;
      const int base = n * g.chw + st.coff + ih * g.w;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int iw = (ow + i) * g.sw + st.sd;
        if (static_cast<unsigned>(iw) < static_cast<unsigned>(g.w)) v[i] = __ldg(x + (base + iw));
      }
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if (j + i >= k_end) continue;
        const int ni = g.div_pq(j + i);
        const int pqi = j + i - ni * g.pq;
        const int ohi = g.div_q(pqi);
        const int owi = pqi - ohi * g.q;
        const int ih = ohi * g.sh + st.rd, iw = owi * g.sw + st.sd;
        if (static_cast<unsigned>(ih) < static_cast<unsigned>(g.h) && static_cast<unsigned>(iw) < static_cast<unsigned>(g.w))
          v[i] = __ldg(x + (ni * g.chw + st.coff + ih * g.w + iw));
      }
    }
  }
};

// gb[k] = sum over n, pq of gy[n][k][pq], accumulated in double (as the CPU does) in a fixed
// order: thread t sums pixels t, t + blockDim, ... of every image in turn, then a tree in shared
// memory. One block of kBiasGradThreads threads per channel.
inline constexpr int kBiasGradThreads = 256;
template <class T>
EMBER_KERNEL void __launch_bounds__(kBiasGradThreads)
    conv2d_bias_grad_kernel(const T* __restrict__ gy, int n, int k, int pq, T* __restrict__ gb) {
  __shared__ double partial[kBiasGradThreads];
  const int tid = static_cast<int>(threadIdx.x);
  constexpr int threads = kBiasGradThreads;
  const int channel = static_cast<int>(blockIdx.x);
  double acc = 0;
  for (int img = 0; img < n; ++img) {
    const T* row = gy + (static_cast<std::int64_t>(img) * k + channel) * pq;
    for (int i = tid; i < pq; i += threads) acc += static_cast<double>(row[i]);
  }
  partial[tid] = acc;
  __syncthreads();
  for (int half = threads / 2; half > 0; half /= 2) {
    if (tid < half) partial[tid] += partial[tid + half];
    __syncthreads();
  }
  if (tid == 0) gb[channel] = static_cast<T>(partial[0]);
}

// gw = 0 and gb = 0 (the gradients of an empty batch).
template <class T>
EMBER_KERNEL void conv2d_zero_kernel(T* __restrict__ p, std::int64_t count) {
  const std::int64_t stride = static_cast<std::int64_t>(blockDim.x) * gridDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    p[i] = T(0);
}

// ---- host wrappers ---------------------------------------------------------------------------------

namespace conv_detail {
template <class T>
void zero(T* p, std::int64_t count, Stream stream) {
  (void)stream;
  if (p == nullptr || count <= 0) return;
  EMBER_LAUNCH(conv2d_zero_kernel<T>, grid_for(count, 256), 256, 0, stream)(p, count);
  check_launch("conv2d_zero_kernel");
}
}  // namespace conv_detail

// Elements of workspace the passes use (the weight gradient's split-K partial sums; the forward
// and backward-data passes need none). 0: pass nullptr.
template <class T>
std::size_t conv2d_workspace_elems(const Conv2dParams& p) {
  if (p.n <= 0 || p.k <= 0 || p.c <= 0) return 0;
  const std::int64_t crs = p.crs(), npq = p.n * p.p() * p.q();
  if (npq <= 0) return 0;
  const GemmPlan plan = gemm_plan<T>(p.k, crs, npq, true);
  return plan.splits > 1 ? static_cast<std::size_t>(plan.splits) * static_cast<std::size_t>(p.k * crs) : 0;
}

// The tile configuration gemm_plan picks, or `config` when given (tests run every one).
template <class T>
void conv2d_forward_with(GemmConfigId config, const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y,
                         Stream stream) {
  const ConvGeom g = conv_detail::make_geom(p, "conv2d_forward");
  if (g.npq == 0 || g.k == 0) return;
  ConvFwdColLoader<T> lb{x, g};
  ConvOutEpilogue<T> epi;
  epi.out = y;
  epi.bias = bias;
  epi.rows = g.k;
  epi.plane = g.pq;
  epi.cols = g.npq;
  epi.div_plane = g.div_pq;
  epi.vec = conv_detail::aligned16(y) && g.pq % 4 == 0;
  const bool vec_w = std::is_same_v<T, float> && conv_detail::aligned16(w) && g.crs % 4 == 0;
  with_gemm_config_for<T>(config, [&](auto cfg) {
    using Cfg = decltype(cfg);
    if (vec_w) {
      MatrixLoader<T, true, true> la{w, g.crs, g.k, 0};
      gemm_detail::launch_tiled<T, Cfg>(la, lb, epi, g.k, g.npq, g.crs, 1, g.crs, stream);
    } else {
      MatrixLoader<T, true, false> la{w, g.crs, g.k, 0};
      gemm_detail::launch_tiled<T, Cfg>(la, lb, epi, g.k, g.npq, g.crs, 1, g.crs, stream);
    }
  });
}

// y (N, K, P, Q) = conv(x (N, C, H, W), w (K, C, R, S)) + bias (K, nullable).
template <class T>
void conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y, T* workspace,
                    Stream stream) {
  (void)workspace;
  const std::int64_t npq = p.n * p.p() * p.q();
  conv2d_forward_with<T>(gemm_plan<T>(p.k, npq, p.crs(), false).config, p, x, w, bias, y, stream);
}

template <class T>
void conv2d_backward_data_with(GemmConfigId config, const Conv2dParams& p, const T* w, const T* gy, T* gx,
                               Stream stream) {
  const ConvGeom g = conv_detail::make_geom(p, "conv2d_backward_data");
  if (g.nhw == 0 || g.c == 0) return;
  ConvDgradWeightLoader<T> la{w, g};
  ConvDgradGyLoader<T> lb{gy, g};
  ConvOutEpilogue<T> epi;
  epi.out = gx;
  epi.rows = g.c;
  epi.plane = g.hw;
  epi.cols = g.nhw;
  epi.div_plane = g.div_hw;
  epi.vec = conv_detail::aligned16(gx) && g.hw % 4 == 0;
  const int krs = g.k * g.rs;
  with_gemm_config_for<T>(config, [&](auto cfg) {
    gemm_detail::launch_tiled<T, decltype(cfg)>(la, lb, epi, g.c, g.nhw, krs, 1, krs, stream);
  });
}

// gx (N, C, H, W) = the gradient of the convolution with respect to x, from gy (N, K, P, Q).
template <class T>
void conv2d_backward_data(const Conv2dParams& p, const T* w, const T* gy, T* gx, T* workspace, Stream stream) {
  (void)workspace;
  conv2d_backward_data_with<T>(gemm_plan<T>(p.c, p.n * p.h * p.w, p.k * p.r * p.s, false).config, p, w, gy, gx,
                               stream);
}

// With a given configuration and split count (splits > 1 needs splits * K * C*R*S elements of
// workspace; the count is clamped so every split has work).
template <class T>
void conv2d_backward_weight_with(GemmConfigId config, int splits, const Conv2dParams& p, const T* x, const T* gy,
                                 T* gw, T* gb, T* workspace, Stream stream) {
  const ConvGeom g = conv_detail::make_geom(p, "conv2d_backward_weight");
  if (gb != nullptr && g.k > 0) {
    if (g.npq == 0) {
      conv_detail::zero(gb, g.k, stream);
    } else {
      (void)stream;
      EMBER_LAUNCH(conv2d_bias_grad_kernel<T>, g.k, kBiasGradThreads, 0, stream)(gy, g.n, g.k, g.pq, gb);
      check_launch("conv2d_bias_grad_kernel");
    }
  }
  if (gw == nullptr || g.k == 0 || g.crs == 0) return;
  if (g.npq == 0) {
    conv_detail::zero(gw, static_cast<std::int64_t>(g.k) * g.crs, stream);
    return;
  }
  ConvWgradGyLoader<T> la{gy, g, conv_detail::aligned16(gy) && g.pq % 4 == 0};
  ConvWgradColLoader<T> lb{x, g};
  MatrixEpilogue<T> epi;
  epi.c = gw;
  epi.ldc = g.crs;
  epi.vec_c = conv_detail::aligned16(gw) && g.crs % 4 == 0;
  epi.m = g.k;
  epi.n = g.crs;
  with_gemm_config_for<T>(config, [&](auto cfg) {
    using Cfg = decltype(cfg);
    int sp = workspace != nullptr ? splits : 1;
    std::int64_t chunk = g.npq;
    if (sp > 1) {
      chunk = ceil_div(ceil_div(g.npq, sp), Cfg::kBK) * Cfg::kBK;
      sp = static_cast<int>(ceil_div(g.npq, chunk));
    }
    if (sp <= 1) {
      sp = 1;
      chunk = g.npq;
    }
    MatrixEpilogue<T> e = epi;
    if (sp > 1) {
      e.ws = workspace;
      e.vec_ws = conv_detail::aligned16(workspace) && g.crs % 4 == 0;
    }
    gemm_detail::launch_tiled<T, Cfg>(la, lb, e, g.k, g.crs, g.npq, sp, chunk, stream);
    if (sp > 1) gemm_detail::launch_splitk_reduce<T>(workspace, sp, g.k, g.crs, gw, g.crs, T(1), T(0), stream);
  });
}

// gw (K, C, R, S) and gb (K, nullable) = the gradients with respect to w and the bias, from x and
// gy; both overwritten. workspace: conv2d_workspace_elems<T>(p) elements (nullptr when that is 0;
// with nullptr the weight gradient is computed without splitting K, more slowly).
template <class T>
void conv2d_backward_weight(const Conv2dParams& p, const T* x, const T* gy, T* gw, T* gb, T* workspace,
                            Stream stream) {
  const std::int64_t npq = p.n * p.p() * p.q();
  const GemmPlan plan = gemm_plan<T>(p.k, p.crs(), npq > 0 ? npq : 1, workspace != nullptr);
  conv2d_backward_weight_with<T>(plan.config, plan.splits, p, x, gy, gw, gb, workspace, stream);
}

}  // namespace ember::kernels
