// Tests for ember/ops/pool.hpp and backend/cpu/pool.hpp: max_pool2d forward (values and
// argmax) against the naive reference with poisoned outputs, finite-difference gradients on
// inputs without ties, the tie rule, and the shape errors.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "ember/backend/cpu/pool.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/pool.hpp"
#include "ember/ops/reduce.hpp"

#include "support/gradcheck.hpp"
#include "support/inputs.hpp"
#include "support/matchers.hpp"
#include "support/reference.hpp"

namespace {

using ember::MaxPool2dParams;
using ember::Shape;
using ember::Tensor;
using ember::test::check_gradients;
using ember::test::ErrorContains;
namespace ref = ember::test::reference;
using I64 = std::int64_t;
using TD = Tensor<double>;
using Inputs = std::vector<TD>;

struct PoolCase {
  I64 n, c, h, w, kernel, stride, pad;
};
std::ostream& operator<<(std::ostream& os, const PoolCase& p) {
  return os << "x [" << p.n << ", " << p.c << ", " << p.h << ", " << p.w << "] kernel " << p.kernel
            << " stride " << p.stride << " padding " << p.pad;
}

const std::vector<PoolCase> kCases = {
    {2, 3, 6, 6, 2, 2, 0}, {1, 2, 5, 7, 2, 2, 0}, {2, 2, 7, 5, 3, 2, 1}, {1, 1, 5, 6, 3, 1, 0},
    {1, 2, 4, 5, 2, 1, 1}, {3, 1, 9, 9, 3, 3, 1}, {1, 1, 1, 1, 1, 1, 0}, {2, 3, 28, 28, 2, 2, 0},
    {1, 2, 3, 8, 3, 2, 1}, {1, 1, 2, 2, 2, 2, 1}, {1, 1, 7, 7, 4, 3, 2}};

}  // namespace

TEMPLATE_TEST_CASE("max_pool2d matches the naive reference", "[ops][pool]", float, double) {
  for (const PoolCase& pc : kCases) {
    CAPTURE(pc);
    const MaxPool2dParams p{pc.n * pc.c, pc.h, pc.w, pc.kernel, pc.stride, pc.pad};
    const auto x = ember::test::random_tensor<TestType>({pc.n, pc.c, pc.h, pc.w}, 71);
    std::vector<TestType> expected;
    std::vector<std::int32_t> expected_argmax;
    ref::max_pool2d_forward(p, x.to_vector(), expected, expected_argmax);

    const auto y = ember::max_pool2d(x, pc.kernel, pc.stride, pc.pad);
    REQUIRE(y.shape() == Shape{pc.n, pc.c, p.p(), p.q()});
    CHECK(y.to_vector() == expected);  // a max is exact

    auto raw = Tensor<TestType>::empty(y.shape());
    auto argmax = Tensor<std::int32_t>::empty(y.shape());
    ember::test::poison(raw);
    ember::test::poison(argmax);
    ember::cpu::max_pool2d_forward<TestType>(p, x.data(), raw.data(), argmax.data());
    CHECK(raw.to_vector() == expected);
    CHECK(argmax.to_vector() == expected_argmax);

    // Backward scatters each output gradient to its argmax (summing where windows overlap).
    const auto gy = ember::test::random_tensor<TestType>(y.shape(), 72);
    auto gx = Tensor<TestType>::empty(x.shape());
    ember::test::poison(gx);
    ember::cpu::max_pool2d_backward<TestType>(p, gy.data(), argmax.data(), gx.data());
    std::vector<double> gx_ref(static_cast<std::size_t>(x.numel()), 0.0);
    const auto gyv = gy.to_vector();
    const I64 plane_out = p.p() * p.q(), plane_in = pc.h * pc.w;
    for (std::size_t o = 0; o < gyv.size(); ++o) {
      const I64 plane = static_cast<I64>(o) / plane_out;
      gx_ref[static_cast<std::size_t>(plane * plane_in + expected_argmax[o])] +=
          static_cast<double>(gyv[o]);
    }
    const auto gxv = gx.to_vector();
    for (std::size_t i = 0; i < gxv.size(); ++i)
      CHECK(static_cast<double>(gxv[i]) == Approx(gx_ref[i]).margin(1e-6));
  }
  // The default stride is the kernel size.
  const auto x = ember::test::random_tensor<TestType>({1, 1, 6, 6}, 73);
  CHECK(ember::max_pool2d(x, 3).to_vector() == ember::max_pool2d(x, 3, 3).to_vector());
}

TEST_CASE("max_pool2d gradients match finite differences", "[ops][pool][grad]") {
  const PoolCase pc = GENERATE(values<PoolCase>({{2, 3, 6, 6, 2, 2, 0},
                                                 {1, 2, 5, 7, 2, 2, 0},
                                                 {2, 2, 7, 5, 3, 2, 1},
                                                 {1, 1, 5, 6, 3, 1, 0},
                                                 {1, 2, 4, 5, 2, 1, 1}}));
  CAPTURE(pc);
  // Distinct values 0.01 apart: the +-1e-6 probes never change a window's winner.
  const TD x = ember::test::distinct_values<double>({pc.n, pc.c, pc.h, pc.w}, 74);
  check_gradients(
      [pc](const Inputs& in) { return ember::max_pool2d(in[0], pc.kernel, pc.stride, pc.pad); },
      {x});
}

TEST_CASE("max_pool2d gives a tie to the first element of the window", "[ops][pool]") {
  auto x = Tensor<float>::full({1, 1, 4, 4}, 1.0f);
  x.requires_grad_();
  const auto y = ember::max_pool2d(x, 2);
  CHECK(y.to_vector() == std::vector<float>(4, 1.0f));
  ember::sum(y).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{1, 0, 1, 0, 0, 0, 0, 0,  //
                                                   1, 0, 1, 0, 0, 0, 0, 0});
  // With padding, padded cells never win even over negative values.
  const auto neg = Tensor<float>::full({1, 1, 3, 3}, -5.0f);
  CHECK(ember::max_pool2d(neg, 3, 2, 1).to_vector() == std::vector<float>(4, -5.0f));
  // NaN propagates.
  auto nan_in = Tensor<float>::zeros({1, 1, 2, 2});
  nan_in(0, 0, 1, 0) = std::nanf("");
  CHECK(std::isnan(ember::max_pool2d(nan_in, 2).item()));
}

TEST_CASE("max_pool2d refuses bad shapes and options", "[ops][pool][error]") {
  const auto x = Tensor<float>::ones({1, 2, 6, 6});
  CHECK_THROWS_MATCHES(ember::max_pool2d(Tensor<float>::ones({6, 6}), 2), ember::Error,
                       ErrorContains({"max_pool2d", "[6, 6]"}));
  CHECK_THROWS_MATCHES(ember::max_pool2d(x, 2, 2, 2), ember::Error,
                       ErrorContains({"padding", "half"}));
  CHECK_THROWS_AS(ember::max_pool2d(x, 0), ember::Error);
  CHECK_THROWS_AS(ember::max_pool2d(x, 2, -1), ember::Error);
  CHECK_THROWS_MATCHES(ember::max_pool2d(x, 7), ember::Error, ErrorContains({"smaller than"}));
  // A kernel of 3 over 2 rows with stride 2: (2 - 3) / 2 must floor to -1, not truncate to 0.
  CHECK_THROWS_MATCHES(ember::max_pool2d(Tensor<float>::ones({1, 1, 2, 2}), 3, 2), ember::Error,
                       ErrorContains({"smaller than"}));
  CHECK_THROWS_AS(ember::max_pool2d(Tensor<float>::ones({1, 1, 8, 2}), 3, 2), ember::Error);
}
