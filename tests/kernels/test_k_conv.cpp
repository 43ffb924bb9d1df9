// kernels/conv.cuh: implicit-GEMM convolution forward, backward data, backward weight and bias
// against ember::cpu::conv2d_forward / conv2d_backward, over odd sizes, C = 1 and C = 3, 5 x 5
// and 1 x 1 windows, stride 2 and 3, padding, dilation 2, batch 1 and 3, the MNIST net's two
// convolutions at batch 2, every tile configuration, split-K weight gradients (with the sized
// workspace, with explicit split counts, and without a workspace), poisoned outputs, and
// run-to-run determinism. Also the FastDivmod used for the index arithmetic.
#include "support/kernel_test.hpp"

#include <catch2/catch.hpp>

#include <ember/kernels/conv.cuh>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "ember/backend/cpu/conv.hpp"

namespace {

namespace ek = ember::kernels;
using ember::Conv2dParams;
using ember::ktest::Buffer;
using I64 = std::int64_t;

Conv2dParams conv(I64 n, I64 c, I64 h, I64 w, I64 k, I64 r, I64 s, I64 stride = 1, I64 pad = 0, I64 dil = 1) {
  Conv2dParams p;
  p.n = n;
  p.c = c;
  p.h = h;
  p.w = w;
  p.k = k;
  p.r = r;
  p.s = s;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dil_h = p.dil_w = dil;
  return p;
}

const std::vector<Conv2dParams>& shapes() {
  static const std::vector<Conv2dParams> s = [] {
    std::vector<Conv2dParams> v{
        conv(1, 1, 5, 7, 2, 3, 3),               // C = 1, odd H / W
        conv(3, 3, 9, 11, 5, 3, 3, 2, 1),        // C = 3, K = 5, stride 2, padding 1, batch 3
        conv(2, 3, 10, 9, 4, 3, 2, 1, 1, 2),     // dilation 2, a 3 x 2 window
        conv(1, 2, 7, 7, 3, 5, 5, 1, 2),         // 5 x 5 window, padding 2
        conv(3, 4, 8, 8, 6, 1, 1),               // 1 x 1
        conv(1, 3, 13, 10, 7, 3, 3, 3, 0),       // stride 3
        conv(2, 5, 6, 5, 9, 2, 2, 1, 1),         // even window, padding
    };
    Conv2dParams asym = conv(1, 2, 9, 8, 3, 3, 2);  // separate strides / paddings / dilations
    asym.stride_h = 2;
    asym.stride_w = 1;
    asym.pad_h = 0;
    asym.pad_w = 2;
    asym.dil_h = 1;
    asym.dil_w = 3;
    v.push_back(asym);
    return v;
  }();
  return s;
}

template <class T>
std::vector<T> abs_of(std::vector<T> v) {
  for (T& x : v) x = std::abs(x);
  return v;
}

// got == want within (4 sqrt(K) + 8) eps * scale[i], where scale is the same computation on
// absolute values (a bound on the sum of the magnitudes of the terms); every element finite.
template <class T>
void check_close(const std::vector<T>& got, const std::vector<T>& want, const std::vector<T>& scale, I64 k,
                 const char* what) {
  REQUIRE(got.size() == want.size());
  const double eps = static_cast<double>(std::numeric_limits<T>::epsilon());
  const double f = (4 * std::sqrt(static_cast<double>(k)) + 8) * eps;
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
    const bool ok = std::isfinite(g) && std::abs(g - w) <= f * (static_cast<double>(scale[i]) + 1e-30);
    if (!ok && bad++ == 0) first = i;
  }
  INFO(what << ": mismatches " << bad << " of " << got.size() << "; first at " << first << ": got "
            << got[first] << ", want " << want[first] << ", scale " << scale[first]);
  CHECK(bad == 0);
}

template <class T>
struct Problem {
  Conv2dParams p;
  std::vector<T> x, w, bias, gy;
  std::vector<T> y, gx, gw, gb;             // CPU results
  std::vector<T> y_abs, gx_abs, gw_abs, gb_abs;  // the same on absolute values
  I64 P, Q;

  Problem(const Conv2dParams& params, std::uint64_t seed) : p(params), P(params.p()), Q(params.q()) {
    x = ember::ktest::random_vector<T>(static_cast<std::size_t>(p.n * p.c * p.h * p.w), seed);
    w = ember::ktest::random_vector<T>(static_cast<std::size_t>(p.k * p.crs()), seed + 1);
    bias = ember::ktest::random_vector<T>(static_cast<std::size_t>(p.k), seed + 2);
    gy = ember::ktest::random_vector<T>(static_cast<std::size_t>(p.n * p.k * P * Q), seed + 3);
    y.resize(gy.size());
    y_abs.resize(gy.size());
    gx.resize(x.size());
    gx_abs.resize(x.size());
    gw.resize(w.size());
    gw_abs.resize(w.size());
    gb.resize(bias.size());
    gb_abs.resize(bias.size());
    ember::cpu::conv2d_forward<T>(p, x.data(), w.data(), bias.data(), y.data());
    ember::cpu::conv2d_backward<T>(p, x.data(), w.data(), gy.data(), gx.data(), gw.data(), gb.data());
    const auto ax = abs_of(x), aw = abs_of(w), ab = abs_of(bias), agy = abs_of(gy);
    ember::cpu::conv2d_forward<T>(p, ax.data(), aw.data(), ab.data(), y_abs.data());
    ember::cpu::conv2d_backward<T>(p, ax.data(), aw.data(), agy.data(), gx_abs.data(), gw_abs.data(),
                                   gb_abs.data());
  }
};

template <class T>
void check_forward(const Problem<T>& pr, ek::GemmConfigId cfg, bool with_bias, bool automatic) {
  Buffer<T> dx(pr.x), dw(pr.w), db(pr.bias), dy(pr.y.size());
  if (automatic)
    ek::conv2d_forward<T>(pr.p, dx.data(), dw.data(), with_bias ? db.data() : nullptr, dy.data(), nullptr, nullptr);
  else
    ek::conv2d_forward_with<T>(cfg, pr.p, dx.data(), dw.data(), with_bias ? db.data() : nullptr, dy.data(),
                               nullptr);
  std::vector<T> want = pr.y;
  if (!with_bias) {  // the CPU reference added the bias: take it off again (exact within the tolerance)
    const I64 pq = pr.P * pr.Q;
    for (I64 n = 0; n < pr.p.n; ++n)
      for (I64 k = 0; k < pr.p.k; ++k)
        for (I64 i = 0; i < pq; ++i) want[static_cast<std::size_t>((n * pr.p.k + k) * pq + i)] -= pr.bias[static_cast<std::size_t>(k)];
  }
  INFO("config " << static_cast<int>(cfg) << (automatic ? " (auto)" : "") << ", bias " << with_bias);
  check_close(dy.host(), want, pr.y_abs, pr.p.crs() + 1, "forward y");
}

template <class T>
void check_backward_data(const Problem<T>& pr, ek::GemmConfigId cfg, bool automatic) {
  Buffer<T> dw(pr.w), dgy(pr.gy), dgx(pr.gx.size());
  if (automatic) ek::conv2d_backward_data<T>(pr.p, dw.data(), dgy.data(), dgx.data(), nullptr, nullptr);
  else ek::conv2d_backward_data_with<T>(cfg, pr.p, dw.data(), dgy.data(), dgx.data(), nullptr);
  INFO("config " << static_cast<int>(cfg) << (automatic ? " (auto)" : ""));
  check_close(dgx.host(), pr.gx, pr.gx_abs, pr.p.k * pr.p.r * pr.p.s, "backward data gx");
}

template <class T>
void check_backward_weight(const Problem<T>& pr, ek::GemmConfigId cfg, int splits, bool automatic, bool with_ws,
                           bool with_gb) {
  Buffer<T> dx(pr.x), dgy(pr.gy), dgw(pr.gw.size()), dgb(pr.gb.size());
  const I64 npq = pr.p.n * pr.P * pr.Q;
  std::size_t ws_elems = automatic ? ek::conv2d_workspace_elems<T>(pr.p)
                                   : static_cast<std::size_t>(std::max(1, splits) * pr.p.k * pr.p.crs());
  Buffer<T> ws(with_ws ? ws_elems : 0);
  T* wsp = with_ws && ws_elems > 0 ? ws.data() : nullptr;
  if (automatic)
    ek::conv2d_backward_weight<T>(pr.p, dx.data(), dgy.data(), dgw.data(), with_gb ? dgb.data() : nullptr, wsp,
                                  nullptr);
  else
    ek::conv2d_backward_weight_with<T>(cfg, splits, pr.p, dx.data(), dgy.data(), dgw.data(),
                                       with_gb ? dgb.data() : nullptr, wsp, nullptr);
  INFO("config " << static_cast<int>(cfg) << ", splits " << splits << (automatic ? " (auto)" : "") << ", workspace "
                 << with_ws);
  check_close(dgw.host(), pr.gw, pr.gw_abs, npq, "backward weight gw");
  if (with_gb) {
    check_close(dgb.host(), pr.gb, pr.gb_abs, 1, "bias gradient gb");
  } else {
    const auto untouched = dgb.host();
    CHECK(std::all_of(untouched.begin(), untouched.end(), [](T v) { return std::isnan(v); }));
  }
}

const std::vector<ek::GemmConfigId>& configs_for(bool is_double) {
  static const std::vector<ek::GemmConfigId> all{ek::GemmConfigId::large, ek::GemmConfigId::wide,
                                                 ek::GemmConfigId::tall, ek::GemmConfigId::small,
                                                 ek::GemmConfigId::tiny};
  static const std::vector<ek::GemmConfigId> dbl{ek::GemmConfigId::small, ek::GemmConfigId::tiny};
  return is_double ? dbl : all;
}

}  // namespace

TEST_CASE("FastDivmod divides exactly", "[kernels][conv]") {
  std::mt19937_64 rng(11);
  std::vector<std::uint32_t> divisors{1, 2, 3, 5, 7, 9, 24, 25, 26, 576, 676, 1000, 4095, 65537, 123456789u,
                                      0x7fffffffu, 0x80000000u};
  for (int i = 0; i < 200; ++i) divisors.push_back(static_cast<std::uint32_t>(rng() % 100000 + 1));
  for (std::uint32_t d : divisors) {
    const ek::FastDivmod f(d);
    std::vector<std::uint32_t> xs{0, 1, d - 1, d, d + 1, 2 * d - 1, 0x7ffffffeu, 0x7fffffffu, 0xffffffffu};
    for (int i = 0; i < 300; ++i) xs.push_back(static_cast<std::uint32_t>(rng()));
    std::size_t bad = 0;
    for (std::uint32_t x : xs) bad += f.div(x) != x / d ? 1 : 0;
    INFO("divisor " << d);
    CHECK(bad == 0);
  }
}

TEMPLATE_TEST_CASE("conv2d forward matches cpu::conv2d_forward for every configuration", "[kernels][conv]", float,
                   double) {
  using T = TestType;
  std::uint64_t seed = 1000;
  for (const Conv2dParams& p : shapes()) {
    const Problem<T> pr(p, seed += 10);
    INFO("N=" << p.n << " C=" << p.c << " H=" << p.h << " W=" << p.w << " K=" << p.k << " R=" << p.r << " S=" << p.s
              << " stride " << p.stride_h << "," << p.stride_w << " pad " << p.pad_h << "," << p.pad_w << " dil "
              << p.dil_h << "," << p.dil_w);
    for (ek::GemmConfigId cfg : configs_for(std::is_same_v<T, double>)) check_forward(pr, cfg, true, false);
    check_forward(pr, ek::GemmConfigId::large, false, true);
    check_forward(pr, ek::GemmConfigId::large, true, true);
  }
}

TEMPLATE_TEST_CASE("conv2d backward data matches cpu::conv2d_backward for every configuration", "[kernels][conv]",
                   float, double) {
  using T = TestType;
  std::uint64_t seed = 2000;
  for (const Conv2dParams& p : shapes()) {
    const Problem<T> pr(p, seed += 10);
    INFO("N=" << p.n << " C=" << p.c << " H=" << p.h << " W=" << p.w << " K=" << p.k << " R=" << p.r << " S=" << p.s
              << " stride " << p.stride_h << "," << p.stride_w << " pad " << p.pad_h << "," << p.pad_w << " dil "
              << p.dil_h << "," << p.dil_w);
    for (ek::GemmConfigId cfg : configs_for(std::is_same_v<T, double>)) check_backward_data(pr, cfg, false);
    check_backward_data(pr, ek::GemmConfigId::large, true);
  }
}

TEMPLATE_TEST_CASE("conv2d backward weight and bias match cpu::conv2d_backward", "[kernels][conv]", float, double) {
  using T = TestType;
  std::uint64_t seed = 3000;
  for (const Conv2dParams& p : shapes()) {
    const Problem<T> pr(p, seed += 10);
    INFO("N=" << p.n << " C=" << p.c << " H=" << p.h << " W=" << p.w << " K=" << p.k << " R=" << p.r << " S=" << p.s
              << " stride " << p.stride_h << "," << p.stride_w << " pad " << p.pad_h << "," << p.pad_w << " dil "
              << p.dil_h << "," << p.dil_w);
    for (ek::GemmConfigId cfg : configs_for(std::is_same_v<T, double>))
      for (int splits : {1, 3}) check_backward_weight(pr, cfg, splits, false, true, splits == 1);
    // Without a workspace the split is not taken.
    check_backward_weight(pr, ek::GemmConfigId::small, 4, false, false, true);
    check_backward_weight(pr, ek::GemmConfigId::large, 1, true, true, true);
    check_backward_weight(pr, ek::GemmConfigId::large, 1, true, false, false);
  }
}

TEST_CASE("conv2d: the MNIST net's convolutions at batch 2", "[kernels][conv]") {
  // conv1: 1 -> 32 channels, 28 x 28, 3 x 3; conv2: 32 -> 64 channels, 26 x 26, 3 x 3.
  for (const Conv2dParams& p : {conv(2, 1, 28, 28, 32, 3, 3), conv(2, 32, 26, 26, 64, 3, 3)}) {
    const Problem<float> pr(p, 4000 + static_cast<std::uint64_t>(p.c));
    INFO("C=" << p.c << " K=" << p.k);
    check_forward(pr, ek::GemmConfigId::large, true, true);
    if (p.c > 1) check_backward_data(pr, ek::GemmConfigId::large, true);
    check_backward_weight(pr, ek::GemmConfigId::large, 1, true, true, true);
    // The weight gradient's long K (N*P*Q) is split when a workspace is given.
    CHECK(ek::conv2d_workspace_elems<float>(p) > 0);
  }
  // At the training batch the split is what keeps the SMs busy.
  CHECK(ek::conv2d_workspace_elems<float>(conv(64, 32, 26, 26, 64, 3, 3)) > 0);
}

TEST_CASE("conv2d: results are bit-identical run to run", "[kernels][conv]") {
  const Problem<float> pr(conv(3, 4, 11, 9, 5, 3, 3, 1, 1), 5000);
  const auto ws_elems = static_cast<std::size_t>(5 * pr.p.k * pr.p.crs());  // 5 splits
  std::vector<std::vector<float>> y, gx, gw, gb;
  for (int run = 0; run < 2; ++run) {
    Buffer<float> dx(pr.x), dw(pr.w), db(pr.bias), dgy(pr.gy);
    Buffer<float> dy(pr.y.size()), dgx(pr.gx.size()), dgw(pr.gw.size()), dgb(pr.gb.size());
    Buffer<float> ws(ws_elems);
    ek::conv2d_forward<float>(pr.p, dx.data(), dw.data(), db.data(), dy.data(), nullptr, nullptr);
    ek::conv2d_backward_data<float>(pr.p, dw.data(), dgy.data(), dgx.data(), nullptr, nullptr);
    ek::conv2d_backward_weight_with<float>(ek::GemmConfigId::small, 5, pr.p, dx.data(), dgy.data(), dgw.data(),
                                           dgb.data(), ws.data(), nullptr);
    y.push_back(dy.host());
    gx.push_back(dgx.host());
    gw.push_back(dgw.host());
    gb.push_back(dgb.host());
  }
  CHECK(y[0] == y[1]);
  CHECK(gx[0] == gx[1]);
  CHECK(gw[0] == gw[1]);
  CHECK(gb[0] == gb[1]);
}

TEST_CASE("conv2d: an empty batch gives zero weight and bias gradients", "[kernels][conv]") {
  const Conv2dParams p = conv(0, 2, 5, 5, 3, 3, 3);
  Buffer<float> gw(static_cast<std::size_t>(p.k * p.crs())), gb(static_cast<std::size_t>(p.k));
  ek::conv2d_backward_weight<float>(p, nullptr, nullptr, gw.data(), gb.data(), nullptr, nullptr);
  const auto w = gw.host(), b = gb.host();
  CHECK(std::all_of(w.begin(), w.end(), [](float v) { return v == 0.0f; }));
  CHECK(std::all_of(b.begin(), b.end(), [](float v) { return v == 0.0f; }));
  ek::conv2d_forward<float>(p, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  ek::conv2d_backward_data<float>(p, nullptr, nullptr, nullptr, nullptr, nullptr);
}
