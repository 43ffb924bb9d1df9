// The code whose instructions depend on the CPU level the build targets (-march): Eigen's
// GEMM kernels behind cpu::gemm and gemm_serial, the convolution built on them, the int8
// kernels (compiled for their own targets at any level), and the MNIST net's training step,
// which reaches every CPU op through autograd. scripts/check_levels.sh compiles this file for
// every compiler and x86-64 level that CI does not build in full, and runs it where the CPU
// can: each result is checked against the plain loops of support/reference.hpp, in double.

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ember/backend/cpu/conv.hpp"
#include "ember/backend/cpu/gemm.hpp"
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
