// kernels/sgemm.cuh: the tiled GEMM against ember::cpu::gemm, for every tile configuration,
// all four transpose combinations, odd sizes (ragged tiles), leading dimensions larger than
// the rows (vectorised and scalar loads), misaligned pointers, alpha/beta (beta 0 over a
// NaN-poisoned C, beta 1, beta 0.5), K == 0, split-K through a workspace, the shape-driven
// wrapper with its plan, and run-to-run determinism.
#include "support/kernel_test.hpp"

#include <catch2/catch.hpp>

#include <ember/kernels/sgemm.cuh>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "ember/backend/cpu/gemm.hpp"

namespace {

namespace ek = ember::kernels;
using ember::GemmParams;
using ember::ktest::Buffer;
using I64 = std::int64_t;

struct Case {
  I64 m, n, k;
  I64 pad_a, pad_b, pad_c;  // extra elements per stored row
  double alpha, beta;
};

// Stored shapes of A and B for the transposes in p.
I64 rows_a(const GemmParams& p) { return p.trans_a ? p.k : p.m; }
I64 rows_b(const GemmParams& p) { return p.trans_b ? p.n : p.k; }

template <class T>
double max_abs(const std::vector<T>& v) {
  double m = 0;
  for (T x : v) m = std::max(m, std::abs(static_cast<double>(x)));
  return m;
}

// Runs `run(p, alpha, a, b, beta, c)` on device buffers and checks C against ember::cpu::gemm:
// inside the M x N region within a tolerance scaled by K and the operand magnitudes, and the
// row padding of C untouched (still poison, or its original value).
template <class T, class Run>
void check_gemm(const GemmParams& p, T alpha, T beta, std::uint64_t seed, I64 a_offset, Run run) {
  const auto na = static_cast<std::size_t>(rows_a(p) * p.lda + a_offset);
  const auto nb = static_cast<std::size_t>(rows_b(p) * p.ldb);
  const auto nc = static_cast<std::size_t>(p.m * p.ldc);
  const auto a = ember::ktest::random_vector<T>(na, seed, -1, 1);
  const auto b = ember::ktest::random_vector<T>(nb, seed + 1, -1, 1);
  std::vector<T> c0 = ember::ktest::random_vector<T>(nc, seed + 2, -1, 1);
  if (beta == T(0)) std::fill(c0.begin(), c0.end(), std::numeric_limits<T>::quiet_NaN());
  std::vector<T> want = c0;
  ember::cpu::gemm<T>(p, alpha, a.data() + a_offset, b.data(), beta, want.data());

  Buffer<T> da(a), db(b), dc(c0);
  run(p, alpha, da.data() + a_offset, db.data(), beta, dc.data());
  const std::vector<T> got = dc.host();

  const double eps = static_cast<double>(std::numeric_limits<T>::epsilon());
  const double scale = std::abs(static_cast<double>(alpha)) * max_abs(a) * max_abs(b) * static_cast<double>(p.k) +
                       (beta == T(0) ? 0.0 : std::abs(static_cast<double>(beta))) + 1e-30;
  const double tol = 4 * eps * scale * std::sqrt(static_cast<double>(p.k) + 1);
  std::size_t bad = 0, first = 0;
  for (I64 r = 0; r < p.m; ++r)
    for (I64 col = 0; col < p.ldc; ++col) {
      const auto i = static_cast<std::size_t>(r * p.ldc + col);
      const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
      bool ok;
      if (col < p.n) ok = std::isfinite(g) && std::abs(g - w) <= tol;
      else ok = (std::isnan(g) && std::isnan(static_cast<double>(c0[i]))) || got[i] == c0[i];
      if (!ok && bad++ == 0) first = i;
    }
  INFO("M=" << p.m << " N=" << p.n << " K=" << p.k << " ta=" << p.trans_a << " tb=" << p.trans_b
            << " lda=" << p.lda << " ldb=" << p.ldb << " ldc=" << p.ldc << " alpha=" << alpha
            << " beta=" << beta << " a_offset=" << a_offset);
  INFO("mismatches: " << bad << "; first at " << first << ": got " << got[first] << ", want "
                      << want[first] << ", tolerance " << tol);
  CHECK(bad == 0);
}

GemmParams make_params(const Case& cs, bool ta, bool tb) {
  GemmParams p;
  p.trans_a = ta;
  p.trans_b = tb;
  p.m = cs.m;
  p.n = cs.n;
  p.k = cs.k;
  p.lda = (ta ? cs.m : cs.k) + cs.pad_a;
  p.ldb = (tb ? cs.k : cs.n) + cs.pad_b;
  p.ldc = cs.n + cs.pad_c;
  return p;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> c{
      {1, 1, 1, 0, 0, 0, 1.0, 0.0},      {7, 33, 65, 0, 0, 0, 1.0, 0.0},
      {65, 7, 33, 1, 3, 2, 0.75, 1.0},   {33, 65, 7, 4, 4, 4, -1.5, 0.5},   // padded ld % 4 == 0: float4 path
      {130, 66, 17, 0, 2, 0, 1.0, 0.0},  {66, 130, 24, 0, 0, 3, 2.0, 0.5},
      {1, 130, 40, 0, 0, 0, 1.0, 1.0},   {130, 1, 40, 4, 0, 1, 1.0, 0.0},
      {129, 131, 9, 4, 4, 0, 1.0, 0.0},
  };
  return c;
}

template <class T, class Cfg>
void check_config(std::uint64_t seed) {
  for (const Case& cs : cases())
    for (int t = 0; t < 4; ++t) {
      const GemmParams p = make_params(cs, (t & 1) != 0, (t & 2) != 0);
      check_gemm<T>(p, static_cast<T>(cs.alpha), static_cast<T>(cs.beta), seed++, 0,
                    [](const GemmParams& q, T al, const T* a, const T* b, T be, T* c) {
                      ek::gemm_with<T, Cfg>(q, al, a, b, be, c, nullptr);
                    });
    }
}

template <class T, class Cfg>
void check_config_split(std::uint64_t seed) {
  const std::vector<Case> split_cases{{33, 65, 130, 0, 0, 0, 1.0, 0.0},
                                      {65, 20, 97, 4, 0, 4, 0.5, 0.5},
                                      {7, 9, 200, 1, 1, 1, -1.0, 1.0}};
  for (const Case& cs : split_cases)
    for (int splits : {2, 3, 7})
      for (int t = 0; t < 4; ++t) {
        const GemmParams p = make_params(cs, (t & 1) != 0, (t & 2) != 0);
        check_gemm<T>(p, static_cast<T>(cs.alpha), static_cast<T>(cs.beta), seed++, 0,
                      [&](const GemmParams& q, T al, const T* a, const T* b, T be, T* c) {
                        Buffer<T> ws(static_cast<std::size_t>(splits * q.m * q.n));
                        ek::gemm_with<T, Cfg>(q, al, a, b, be, c, nullptr, splits, ws.data());
                      });
      }
}

}  // namespace

TEMPLATE_TEST_CASE("gemm_with: every float configuration matches cpu::gemm", "[kernels][gemm]",
                   ek::GemmLarge, ek::GemmWide, ek::GemmTall, ek::GemmSmall, ek::GemmTiny) {
  check_config<float, TestType>(100);
}

TEMPLATE_TEST_CASE("gemm_with: double configurations match cpu::gemm", "[kernels][gemm]", ek::GemmSmall,
                   ek::GemmTiny) {
  check_config<double, TestType>(200);
}

TEMPLATE_TEST_CASE("gemm_with: split-K through a workspace matches cpu::gemm", "[kernels][gemm]",
                   ek::GemmLarge, ek::GemmWide, ek::GemmTall, ek::GemmSmall, ek::GemmTiny) {
  check_config_split<float, TestType>(300);
}

TEST_CASE("gemm_with: split-K in double", "[kernels][gemm]") {
  check_config_split<double, ek::GemmSmall>(400);
}

TEST_CASE("gemm: misaligned operands take the scalar path", "[kernels][gemm]") {
  // A starts one element past an aligned address: lda % 4 == 0 but the pointer is not 16-byte
  // aligned, so no float4 loads may be used.
  for (int t = 0; t < 4; ++t) {
    const GemmParams p = make_params({37, 45, 29, 3, 4, 4, 1.0, 0.0}, (t & 1) != 0, (t & 2) != 0);
    check_gemm<float>(p, 1.0f, 0.0f, 500 + static_cast<std::uint64_t>(t), 1,
                      [](const GemmParams& q, float al, const float* a, const float* b, float be, float* c) {
                        ek::gemm_with<float, ek::GemmLarge>(q, al, a, b, be, c, nullptr);
                        ek::gemm_with<float, ek::GemmSmall>(q, al, a, b, be, c, nullptr);
                      });
  }
}

TEST_CASE("gemm: K == 0 scales C by beta (beta 0: zeros, C not read)", "[kernels][gemm]") {
  for (double beta : {0.0, 0.5, 1.0}) {
    GemmParams p;
    p.m = 5;
    p.n = 7;
    p.k = 0;
    p.lda = 1;
    p.ldb = 7;
    p.ldc = 9;
    check_gemm<float>(p, 1.0f, static_cast<float>(beta), 600,
                      0, [](const GemmParams& q, float al, const float* a, const float* b, float be, float* c) {
                        ek::gemm<float>(q, al, a, b, be, c, nullptr);
                      });
  }
}

TEST_CASE("gemm: M or N == 0 launches nothing", "[kernels][gemm]") {
  GemmParams p;
  p.m = 0;
  p.n = 4;
  p.k = 3;
  p.lda = 3;
  p.ldb = 4;
  p.ldc = 4;
  ek::gemm<float>(p, 1.0f, nullptr, nullptr, 0.0f, nullptr, nullptr);
  p.m = 4;
  p.n = 0;
  ek::gemm<float>(p, 1.0f, nullptr, nullptr, 0.0f, nullptr, nullptr);
  SUCCEED();
}

TEST_CASE("gemm: the shape-driven plan", "[kernels][gemm]") {
  const int sms = ek::device_sm_count();
  // A large square product uses the 128 x 128 tiles and no split.
  const ek::GemmPlan big = ek::gemm_plan<float>(4096, 4096, 4096);
  CHECK(big.config == ek::GemmConfigId::large);
  CHECK(big.splits == 1);
  // The MNIST net's fc1 forward (M = batch 64, N = 128, K = 9216) has few tiles: split K.
  const ek::GemmPlan fc1 = ek::gemm_plan<float>(64, 128, 9216);
  CHECK(fc1.splits > 1);
  CHECK(fc1.k_chunk % 8 == 0);
  CHECK(ek::ceil_div(9216, fc1.k_chunk) == fc1.splits);
  GemmParams p;
  p.m = 64;
  p.n = 128;
  p.k = 9216;
  p.lda = 9216;
  p.ldb = 128;
  p.ldc = 128;
  CHECK(ek::gemm_workspace_bytes<float>(p) == static_cast<std::size_t>(fc1.splits) * 64 * 128 * sizeof(float));
  // Without a workspace, the same shape is not split.
  CHECK(ek::gemm_plan<float>(64, 128, 9216, false).splits == 1);
  // Plenty of tiles: no split.
  CHECK(ek::gemm_plan<float>(64, 9216, 128).splits == 1);
  CHECK(ek::gemm_plan<float>(128, 9216, 64).splits == 1);
  // conv2 as a GEMM at batch 64 (M = 64, N = 576 * 64, K = 288): M-64 tiles, every SM busy.
  const ek::GemmPlan conv2 = ek::gemm_plan<float>(64, 576 * 64, 288);
  CHECK(conv2.splits == 1);
  CHECK(conv2.config != ek::GemmConfigId::large);
  // double only uses the 4x4-per-thread configurations.
  const ek::GemmPlan dbl = ek::gemm_plan<double>(4096, 4096, 4096);
  CHECK((dbl.config == ek::GemmConfigId::small || dbl.config == ek::GemmConfigId::tiny));
  CHECK(sms > 0);
}

TEMPLATE_TEST_CASE("gemm: the wrapper, with and without a workspace, matches cpu::gemm", "[kernels][gemm]",
                   float, double) {
  using T = TestType;
  // Shapes the plan splits (few tiles, long K) and shapes it does not.
  const std::vector<Case> shapes{{16, 24, 1100, 0, 0, 0, 1.0, 0.0},
                                 {40, 33, 700, 0, 0, 2, 1.0, 0.5},
                                 {100, 70, 30, 0, 0, 0, 1.0, 0.0}};
  std::uint64_t seed = 700;
  for (const Case& cs : shapes)
    for (int t = 0; t < 4; ++t)
      for (bool with_ws : {false, true}) {
        const GemmParams p = make_params(cs, (t & 1) != 0, (t & 2) != 0);
        const std::size_t ws_bytes = ek::gemm_workspace_bytes<T>(p);
        if (p.k >= 700) CHECK(ws_bytes > 0);
        if (p.k < 256) CHECK(ws_bytes == 0);
        check_gemm<T>(p, static_cast<T>(cs.alpha), static_cast<T>(cs.beta), seed++, 0,
                      [&](const GemmParams& q, T al, const T* a, const T* b, T be, T* c) {
                        Buffer<T> ws(with_ws ? ws_bytes / sizeof(T) : 0);
                        ek::gemm<T>(q, al, a, b, be, c, nullptr, with_ws && ws_bytes > 0 ? ws.data() : nullptr);
                      });
      }
}

TEST_CASE("gemm: split and unsplit runs are each bit-identical run to run", "[kernels][gemm]") {
  const GemmParams p = make_params({24, 40, 1500, 0, 0, 0, 1.0, 0.5}, false, true);
  const auto a = ember::ktest::random_vector<float>(static_cast<std::size_t>(p.m * p.lda), 800);
  const auto b = ember::ktest::random_vector<float>(static_cast<std::size_t>(p.n * p.ldb), 801);
  const auto c0 = ember::ktest::random_vector<float>(static_cast<std::size_t>(p.m * p.ldc), 802);
  Buffer<float> da(a), db(b);
  const std::size_t ws_bytes = ek::gemm_workspace_bytes<float>(p);
  REQUIRE(ws_bytes > 0);
  for (bool with_ws : {false, true}) {
    std::vector<std::vector<float>> runs;
    for (int r = 0; r < 2; ++r) {
      Buffer<float> dc(c0);
      Buffer<float> ws(ws_bytes / sizeof(float));
      ek::gemm<float>(p, 1.0f, da.data(), db.data(), 0.5f, dc.data(), nullptr, with_ws ? ws.data() : nullptr);
      runs.push_back(dc.host());
    }
    CHECK(runs[0] == runs[1]);
  }
}
