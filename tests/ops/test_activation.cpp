// Tests for ember/ops/activation.hpp: relu and log_softmax values, their numerical
// stability, and finite-difference gradients (relu's inputs kept clear of 0).

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/activation.hpp"

#include "support/gradcheck.hpp"
#include "support/inputs.hpp"

namespace {

using ember::Shape;
using ember::Tensor;
using ember::test::check_gradients;
using ember::test::random_tensor;
using I64 = std::int64_t;
using TD = Tensor<double>;
using Inputs = std::vector<TD>;

}  // namespace

TEMPLATE_TEST_CASE("relu keeps positives and zeroes the rest", "[ops][activation]", float, double) {
  const auto x = Tensor<TestType>::from_list({-2, -0.0, 0, 0.5, 3}, {5});
  CHECK(ember::relu(x).to_vector() == std::vector<TestType>{0, 0, 0, 0.5, 3});
  const auto nan = std::numeric_limits<TestType>::quiet_NaN();
  CHECK(std::isnan(ember::relu(Tensor<TestType>::from_list({nan}, {1})).item()));
  const auto m = random_tensor<TestType>({3, 4}, 81);
  const auto r = ember::relu(m.t());
  for (I64 i = 0; i < 4; ++i)
    for (I64 j = 0; j < 3; ++j) CHECK(r(i, j) == std::max(m(j, i), TestType(0)));
}

TEST_CASE("relu on a large tensor splits over threads correctly", "[ops][activation]") {
  auto x = ember::test::away_from_zero<float>({300, 200}, 88);  // over 2^15: threaded
  x.requires_grad_();
  const auto y = ember::relu(x);
  const auto g = random_tensor<float>(y.shape(), 89);
  y.backward(g);
  const auto xv = x.to_vector(), yv = y.to_vector(), gv = g.to_vector();
  const auto gx = x.grad().to_vector();
  std::size_t bad = 0;
  for (std::size_t i = 0; i < xv.size(); ++i) {
    bad += yv[i] != (xv[i] > 0 ? xv[i] : 0.0f);
    bad += gx[i] != (xv[i] > 0 ? gv[i] : 0.0f);
  }
  CHECK(bad == 0);
}

TEST_CASE("relu gradients match finite differences", "[ops][activation][grad]") {
  const Shape shape = GENERATE(Shape{7}, Shape{3, 5}, Shape{2, 3, 4});
  CAPTURE(shape);
  // |x| >= 0.05, far beyond the 1e-6 probes.
  check_gradients([](const Inputs& in) { return ember::relu(in[0]); },
                  {ember::test::away_from_zero<double>(shape, 82)});
}

TEMPLATE_TEST_CASE("log_softmax normalises along its dimension", "[ops][activation]", float,
                   double) {
  const double tol = std::is_same_v<TestType, float> ? 1e-5 : 1e-13;
  const auto x = random_tensor<TestType>({2, 3, 4}, 83, -3.0, 3.0);
  for (I64 d : {0, 1, 2, -1}) {
    CAPTURE(d);
    const auto y = ember::log_softmax(x, d);
    REQUIRE(y.shape() == x.shape());
    const I64 dd = d < 0 ? d + 3 : d;
    // Against the definition, element by element.
    for (I64 i = 0; i < 2; ++i)
      for (I64 j = 0; j < 3; ++j)
        for (I64 k = 0; k < 4; ++k) {
          double lse = 0;
          for (I64 s = 0; s < x.size(dd); ++s) {
            Shape idx{i, j, k};
            idx[static_cast<std::size_t>(dd)] = s;
            lse += std::exp(static_cast<double>(x.at(idx)));
          }
          lse = std::log(lse);
          CHECK(static_cast<double>(y(i, j, k)) ==
                Approx(static_cast<double>(x(i, j, k)) - lse).margin(tol));
        }
  }
  // Stable for large magnitudes: shifting every logit changes nothing (up to the rounding
  // of x - lse near 1000, which is 6e-5 in float).
  const auto big = ember::log_softmax(
      Tensor<TestType>::from_list({1000, 1001, 999, -1000, -1001, -999}, {2, 3}), 1);
  const auto small =
      ember::log_softmax(Tensor<TestType>::from_list({0, 1, -1, 0, -1, 1}, {2, 3}), 1);
  const auto bv = big.to_vector(), sv = small.to_vector();
  const double big_tol = std::is_same_v<TestType, float> ? 1e-4 : 0.0;
  for (std::size_t i = 0; i < bv.size(); ++i) {
    CHECK(std::isfinite(bv[i]));
    CHECK(static_cast<double>(bv[i]) ==
          Approx(static_cast<double>(sv[i])).margin(tol * 10 + big_tol));
  }
  // On a non-contiguous input.
  const auto m = random_tensor<TestType>({4, 3}, 84);
  const auto yt = ember::log_softmax(m.t(), 1);
  const auto ym = ember::log_softmax(m, 0);
  for (I64 i = 0; i < 3; ++i)
    for (I64 j = 0; j < 4; ++j) CHECK(yt(i, j) == ym(j, i));
}

TEST_CASE("log_softmax gradients match finite differences", "[ops][activation][grad]") {
  const TD x2 = random_tensor<double>({3, 5}, 85, -2.0, 2.0);
  const TD x3 = random_tensor<double>({2, 3, 4}, 86, -2.0, 2.0);
  const TD x1 = random_tensor<double>({6}, 87, -2.0, 2.0);
  check_gradients([](const Inputs& in) { return ember::log_softmax(in[0], 1); }, {x2});
  check_gradients([](const Inputs& in) { return ember::log_softmax(in[0], 0); }, {x2});
  check_gradients([](const Inputs& in) { return ember::log_softmax(in[0], -1); }, {x3});
  check_gradients([](const Inputs& in) { return ember::log_softmax(in[0], 1); }, {x3});
  check_gradients([](const Inputs& in) { return ember::log_softmax(in[0], 0); }, {x3});
  check_gradients([](const Inputs& in) { return ember::log_softmax(in[0], 0); }, {x1});
}
