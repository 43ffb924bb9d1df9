// The code whose instructions depend on the CPU level the build targets (-march): Eigen's
// GEMM kernels behind cpu::gemm and gemm_serial, the convolution built on them, the int8
// kernels (compiled for their own targets at any level), softmax and log_softmax (packets
// across the inner dimension or along rows), and the MNIST net's training step, which reaches
// every CPU op through autograd. scripts/check_levels.sh compiles this file for
// every compiler and x86-64 level that CI does not build in full, and runs it where the CPU
// can: each result is checked against the plain loops of support/reference.hpp, in double.

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "ember/backend/cpu/conv.hpp"
#include "ember/backend/cpu/gemm.hpp"
#include "ember/backend/cpu/softmax.hpp"
#include "ember/ember.hpp"
#include "ember/quant/int8_gemm.hpp"
#include "support/reference.hpp"

namespace {

using ember::GemmParams;

template <class T>
std::vector<T> ramp(std::int64_t n, int seed) {
  std::vector<T> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    v[static_cast<std::size_t>(i)] = static_cast<T>(((i * 37 + seed * 11) % 23) - 11) / T(8);
  return v;
}

template <class T>
void check_gemm(bool serial) {
  const double tol = sizeof(T) == 4 ? 1e-4 : 1e-12;
  using Shape3 = std::array<std::int64_t, 3>;
  const std::array<Shape3, 5> shapes{
      {{1, 1, 1}, {17, 33, 65}, {64, 576, 288}, {64, 128, 9216}, {5, 3, 0}}};
  for (const auto& [m, n, k] : shapes)
    for (const bool ta : {false, true})
      for (const bool tb : {false, true}) {
        if ((ta || tb) && m * n * k > 1'000'000) continue;  // the large shapes as the net has them
        GemmParams p{ta, tb, m, n, k, ta ? m : k, tb ? k : n, n};
        const auto a = ramp<T>(m * k, 1), b = ramp<T>(k * n, 2);
        auto c = ramp<T>(m * n, 3);
        std::vector<double> want, abs_sum;
        ember::test::reference::gemm<T>(p, 0.5, a, b, 0.25, c, want, abs_sum);
        if (serial)
          ember::cpu::gemm_serial<T>(p, T(0.5), a.data(), b.data(), T(0.25), c.data());
        else
          ember::cpu::gemm<T>(p, T(0.5), a.data(), b.data(), T(0.25), c.data());
        double worst = 0;
        for (std::size_t i = 0; i < c.size(); ++i)
          worst = std::max(worst, std::abs(c[i] - want[i]) / (1 + std::abs(want[i])));
        INFO("m " << m << " n " << n << " k " << k << " trans_a " << ta << " trans_b " << tb);
        CHECK(worst <= tol * std::sqrt(static_cast<double>(k + 1)));
      }
}

}  // namespace

TEST_CASE("cpu::gemm and gemm_serial match a double loop, every transpose", "[levels]") {
  check_gemm<float>(false);
  check_gemm<float>(true);
  check_gemm<double>(false);
  check_gemm<double>(true);
}

TEMPLATE_TEST_CASE("conv2d_forward matches a direct convolution", "[levels]", float, double) {
  ember::Conv2dParams p;
  p.n = 3, p.c = 2, p.h = 9, p.w = 8, p.k = 4, p.r = 3, p.s = 2;
  p.stride_h = 2, p.pad_h = 1, p.pad_w = 1, p.dil_w = 2;
  const auto x = ramp<TestType>(p.n * p.c * p.h * p.w, 4);
  const auto w = ramp<TestType>(p.k * p.c * p.r * p.s, 5);
  const auto bias = ramp<TestType>(p.k, 6);
  std::vector<TestType> y(static_cast<std::size_t>(p.n * p.k * p.p() * p.q()));
  ember::cpu::conv2d_forward<TestType>(p, x.data(), w.data(), bias.data(), y.data());
  const std::vector<double> want = ember::test::reference::conv2d_forward(p, x, w, bias);
  double worst = 0;
  for (std::size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::abs(y[i] - want[i]));
  CHECK(worst <= (sizeof(TestType) == 4 ? 1e-5 : 1e-12));
}

TEST_CASE("every int8 kernel this CPU runs gives the portable kernel's bits", "[levels]") {
  using namespace ember::quant;
  const std::int64_t m = 13, n = 37, k = 70;
  std::vector<std::uint8_t> a(static_cast<std::size_t>(m * round_up(k, 4)));
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<std::uint8_t>((i * 29) % 128);
  std::vector<std::int8_t> w(static_cast<std::size_t>(n * k));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<std::int8_t>((i * 53) % 255 - 127);
  const PackedWeights packed = pack_weights(w.data(), n, k, k);
  std::vector<float> scale(static_cast<std::size_t>(packed.np), 0.01f);
  std::vector<float> bias(static_cast<std::size_t>(packed.np), 0.5f);
  for (const bool float_output : {true, false}) {
    const Epilogue e{scale.data(), bias.data(), 3, true, float_output, 2};
    const std::size_t bytes = static_cast<std::size_t>(m * n) * (float_output ? 4 : 1);
    std::vector<unsigned char> want(bytes), got(bytes);
    gemm_u8s8(m, a.data(), round_up(k, 4), packed, e, want.data(), n, Int8Kernel::portable);
    for (const Int8Kernel kernel : {Int8Kernel::avx2, Int8Kernel::avx512_vnni}) {
      if (!kernel_supported(kernel)) continue;
      INFO(kernel_name(kernel) << (float_output ? ", float output" : ", code output"));
      gemm_u8s8(m, a.data(), round_up(k, 4), packed, e, got.data(), n, kernel);
      CHECK(got == want);
    }
  }
}

TEST_CASE("the MNIST net's SGD steps give the same bits on 1 and 2 threads", "[levels]") {
  const int threads_before = ember::get_num_threads();
  std::vector<std::vector<float>> runs;
  for (const int threads : {1, 2}) {
    ember::set_num_threads(threads);
    ember::Generator gen(7);
    ember::models::MnistNet model(gen);
    ember::optim::SGD opt(model.parameters(), {.lr = 0.01, .momentum = 0.5});
    const auto x = ember::nn::Tensor::randn({8, 1, 28, 28}, gen);
    const auto y = ember::Tensor<std::int64_t>::from_vector({0, 1, 2, 3, 4, 5, 6, 7}, {8});
    float first = 0, last = 0;
    for (int step = 0; step < 3; ++step) {
      opt.zero_grad();
      ember::nn::Tensor loss = ember::nll_loss(model(x), y);
      loss.backward();
      opt.step();
      (step == 0 ? first : last) = loss.item();
    }
    CHECK(std::isfinite(first));
    CHECK(last < first);  // three steps on one batch lower its loss
    runs.push_back(model.fc2->weight.to_vector());
  }
  ember::set_num_threads(threads_before);
  CHECK(runs[0] == runs[1]);
}

// Softmax and log_softmax (backend/cpu/softmax.hpp) over the middle axis of (outer, size,
// inner): float takes packets across inner when inner is at least a packet wide (the last
// packet of an odd width overlapping the one before it), along the row when inner == 1, and
// plain tiles otherwise; double always the tiles. Each against double loops on the same inputs,
// outputs poisoned with NaN, and the same bits on 1 and 2 threads. Bounds, in units u of the
// type's epsilon / 2: softmax 8u of y (the packet exp is within 6 ulp of libm's); its backward
// 2u of |y| (|g| + sum |g y|) (the sums are in double); log_softmax 8u (1 + |x| + |y|);
// its backward 8u (|g| + exp(y) |sum g|). The reference takes x - max in T, as the kernels do;
// sums in double in another order (or fused) add size * 2^-53 of their sum of magnitudes.
TEMPLATE_TEST_CASE("cpu softmax and log_softmax match double loops on every path and width",
                   "[levels][softmax]", float, double) {
  using T = TestType;
  const double u = sizeof(T) == 4 ? 0x1p-24 : 0x1p-53;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  using Shape3 = std::array<std::int64_t, 3>;
  const std::vector<Shape3> shapes = {
      {2, 7, 1},  {3, 10, 1},  {1, 1000, 1}, {2, 17, 1},  {4, 5, 3},   {2, 9, 7},   {3, 4, 15},
      {2, 6, 16}, {2, 6, 17},  {1, 5, 31},   {2, 3, 33},  {1, 64, 63}, {2, 8, 64},  {1, 3, 65},
      {1, 2, 97}, {2, 64, 257}, {1, 5, 300}, {2, 64, 576}, {1, 3, 1031}, {3, 1, 40}, {1, 1, 1}};
  const int threads_before = ember::get_num_threads();
  for (const auto& [outer, size, inner] : shapes) {
    INFO("(outer, size, inner) = (" << outer << ", " << size << ", " << inner << ")");
    const std::int64_t n = outer * size * inner;
    std::vector<T> x(static_cast<std::size_t>(n)), g(x.size());
    for (std::int64_t i = 0; i < n; ++i) {  // [-6, 6), every value distinct in a row
      x[static_cast<std::size_t>(i)] = static_cast<T>(((i * 7919 + 13) % 4099) / 341.5 - 6.0);
      g[static_cast<std::size_t>(i)] = static_cast<T>(((i * 104729 + 7) % 2053) / 1026.5 - 1.0);
    }
    std::vector<std::vector<T>> runs;
    for (const int threads : {1, 2}) {
      ember::set_num_threads(threads);
      std::vector<T> y(x.size(), static_cast<T>(nan)), gx = y, ly = y, lgx = y;
      ember::cpu::softmax_forward(x.data(), y.data(), outer, size, inner);
      ember::cpu::softmax_backward(g.data(), y.data(), gx.data(), outer, size, inner);
      ember::cpu::log_softmax_forward(x.data(), ly.data(), outer, size, inner);
      ember::cpu::log_softmax_backward(g.data(), ly.data(), lgx.data(), outer, size, inner);
      if (runs.empty()) {
        std::int64_t bad[4] = {0, 0, 0, 0};
        for (std::int64_t o = 0; o < outer; ++o)
          for (std::int64_t i = 0; i < inner; ++i) {
            const auto at = [&](std::int64_t s) { return static_cast<std::size_t>((o * size + s) * inner + i); };
            T m = -std::numeric_limits<T>::infinity();
            for (std::int64_t s = 0; s < size; ++s) m = std::max(m, x[at(s)]);
            double sum = 0, dot = 0, dot_abs = 0, gsum = 0;
            for (std::int64_t s = 0; s < size; ++s) {
              sum += std::exp(static_cast<double>(static_cast<T>(x[at(s)] - m)));
              dot += double(g[at(s)]) * double(y[at(s)]);
              dot_abs += std::abs(double(g[at(s)]) * double(y[at(s)]));
              gsum += double(g[at(s)]);
            }
            const double lse = double(m) + std::log(sum);
            for (std::int64_t s = 0; s < size; ++s) {
              const std::size_t k = at(s);
              const double want_y = std::exp(static_cast<double>(static_cast<T>(x[k] - m))) / sum;
              const double want_gx = double(y[k]) * (double(g[k]) - dot);
              const double want_ly = double(x[k]) - lse;
              const double want_lgx = double(g[k]) - std::exp(double(ly[k])) * gsum;
              bad[0] += !(std::abs(y[k] - want_y) <= 8 * u * want_y + 1e-300);
              bad[1] += !(std::abs(gx[k] - want_gx) <=
                          std::abs(double(y[k])) * (2 * u * (std::abs(double(g[k])) + dot_abs) +
                                                    double(size) * 0x1p-53 * dot_abs) + 1e-300);
              bad[2] += !(std::abs(ly[k] - want_ly) <= 8 * u * (1 + std::abs(double(x[k])) + std::abs(want_ly)));
              bad[3] += !(std::abs(lgx[k] - want_lgx) <=
                          8 * u * (std::abs(double(g[k])) + std::exp(double(ly[k])) * std::abs(gsum)));
            }
          }
        INFO("softmax, its backward, log_softmax, its backward: " << bad[0] << ", " << bad[1] << ", "
                                                                   << bad[2] << ", " << bad[3] << " off");
        CHECK(bad[0] + bad[1] + bad[2] + bad[3] == 0);
      }
      for (auto* v : {&y, &gx, &ly, &lgx}) runs.push_back(*v);
    }
    for (std::size_t k = 0; k < 4; ++k) {
      INFO("output " << k << " on 1 and 2 threads");
      CHECK(std::memcmp(runs[k].data(), runs[k + 4].data(), runs[k].size() * sizeof(T)) == 0);
    }
  }
  ember::set_num_threads(threads_before);
}
