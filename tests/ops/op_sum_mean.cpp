// sum and mean (over everything, along a dim, keepdim), sum_to and broadcast_to, argmax (ties,
// infinities, NaN) and count_correct (ops/reduce.hpp; CPU kernels in backend/cpu/reduce.hpp,
// CUDA kernels in kernels/reduce.cuh): finite-difference gradients in double, and every device
// against the CPU (support/op_case.hpp).
//
// Tolerances: a sum's order may differ between devices, so sums are held within rounding_tol
// scaled by the same sum over |terms| (Bound::magnitudes); broadcast_to (a copy), argmax and
// count_correct (selections) are exact.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/reduce.hpp"

#include "support/inputs.hpp"
#include "support/op_case.hpp"

namespace {

using ember::Device;
using ember::Shape;
using ember::Tensor;
using ember::test::agree;
using ember::test::Bound;
using ember::test::quantized;
using ember::test::random_tensor;
using I64 = std::int64_t;

// Every non-CPU device in the program (none in test_ops).
std::vector<Device> other_devices() {
  std::vector<Device> d = ember::test::op_devices();
  d.erase(d.begin());
  return d;
}

}  // namespace

TEMPLATE_TEST_CASE("sum and mean over everything agree on every device", "[op][sum_mean]", float, double) {
  using T = TestType;
  const auto mags = agree<T>(Bound::magnitudes, Bound::magnitudes);
  std::uint64_t seed = 700;
  for (const Shape& s : std::vector<Shape>{{}, {1}, {7}, {1000}, {33, 65}, {3, 4, 5}, {100003}}) {
    INFO("shape " << ember::shape_str(s));
    const Tensor<T> x = random_tensor<T>(s, ++seed);
    ember::test::check_devices_agree<T>([](const std::vector<Tensor<T>>& v) { return ember::sum(v[0]); }, {x}, mags,
                                        "sum()", ++seed);
    ember::test::check_devices_agree<T>([](const std::vector<Tensor<T>>& v) { return ember::mean(v[0]); }, {x}, mags,
                                        "mean()", ++seed);
  }
  // Non-contiguous input.
  const Tensor<T> y = random_tensor<T>({17, 9}, 790);
  ember::test::check_devices_agree<T>(
      [](const std::vector<Tensor<T>>& v) { return ember::sum(v[0].t().slice(1, 2, 17, 3)); }, {y}, mags,
      "sum() of a transposed slice", 791);
  // An empty tensor sums to exactly 0 on every device.
  for (const Device d : ember::test::op_devices()) {
    INFO("on " << d.str());
    const auto empty_sum = ember::sum(Tensor<T>::zeros({0, 5}, d));
    REQUIRE(empty_sum.device().str() == d.str());
    REQUIRE(empty_sum.dim() == 0);
    REQUIRE(empty_sum.item() == T(0));
  }
}

TEMPLATE_TEST_CASE("sum and mean along a dimension, with and without keepdim, agree on every device",
                   "[op][sum_mean]", float, double) {
  using T = TestType;
  const auto mags = agree<T>(Bound::magnitudes, Bound::magnitudes);
  std::uint64_t seed = 800;
  const std::vector<Shape> shapes = {{7}, {5, 1}, {1, 5}, {33, 17}, {3, 4, 5}, {1000, 3}, {3, 1000}, {2, 3, 4, 5}};
  for (const Shape& s : shapes) {
    const Tensor<T> x = random_tensor<T>(s, ++seed);
    const auto rank = static_cast<I64>(s.size());
    for (I64 d = -rank; d < rank; ++d) {
      for (bool keep : {false, true}) {
        INFO("shape " << ember::shape_str(s) << ", dim " << d << ", keepdim " << keep);
        ember::test::check_devices_agree<T>(
            [d, keep](const std::vector<Tensor<T>>& v) { return ember::sum(v[0], d, keep); }, {x}, mags, "sum(dim)",
            ++seed);
        ember::test::check_devices_agree<T>(
            [d, keep](const std::vector<Tensor<T>>& v) { return ember::mean(v[0], d, keep); }, {x}, mags,
            "mean(dim)", ++seed);
      }
    }
  }
  // A permuted (non-contiguous) input.
  const Tensor<T> y = random_tensor<T>({4, 6, 5}, 890);
  for (I64 d = 0; d < 3; ++d)
    ember::test::check_devices_agree<T>(
        [d](const std::vector<Tensor<T>>& v) { return ember::sum(v[0].permute({2, 0, 1}), d); }, {y}, mags,
        "sum(dim) of a permuted view", 891 + static_cast<std::uint64_t>(d));
}

TEST_CASE("sum and mean gradients, all and along every dim, match finite differences", "[op][sum_mean]") {
  const Tensor<double> x = random_tensor<double>({2, 3, 4, 5}, 850);
  ember::test::check_gradients_cpu([](const std::vector<Tensor<double>>& v) { return ember::sum(v[0]); }, {x}, "sum()");
  ember::test::check_gradients_cpu([](const std::vector<Tensor<double>>& v) { return ember::mean(v[0]); }, {x},
                                   "mean()");
  for (I64 d = -4; d < 4; ++d) {
    for (bool keep : {false, true}) {
      INFO("dim " << d << ", keepdim " << keep);
      ember::test::check_gradients_cpu(
          [d, keep](const std::vector<Tensor<double>>& v) { return ember::sum(v[0], d, keep); }, {x}, "sum(dim)");
      ember::test::check_gradients_cpu(
          [d, keep](const std::vector<Tensor<double>>& v) { return ember::mean(v[0], d, keep); }, {x}, "mean(dim)");
    }
  }
  const Tensor<double> y = random_tensor<double>({4, 6, 5}, 851);
  ember::test::check_gradients_cpu(
      [](const std::vector<Tensor<double>>& v) { return ember::mean(v[0].permute({2, 0, 1}), 1, true); }, {y},
      "mean(dim) of a permuted view");
}

TEMPLATE_TEST_CASE("sum_to and broadcast_to agree on every device", "[op][sum_to]", float, double) {
  using T = TestType;
  struct Case {
    Shape big, small;
  };
  const std::vector<Case> cases = {
      {{3, 4, 5}, {4, 1}},    {{3, 4, 5}, {1, 5}},    {{3, 4, 5}, {3, 1, 1}}, {{3, 4, 5}, {5}},
      {{3, 4, 5}, {}},        {{3, 4, 5}, {3, 4, 5}}, {{6, 7}, {1, 7}},       {{6, 7}, {6, 1}},
      {{257, 33}, {1, 33}},   {{257, 33}, {257, 1}},  {{2, 1, 3, 4}, {1, 3, 1}}, {{0, 3}, {1, 3}},
      {{1000, 4}, {4}},
  };
  // sum_to reduces, its backward is broadcast_to (a copy); broadcast_to copies, its backward
  // is sum_to.
  const auto sum_to_bound = agree<T>(Bound::magnitudes, Bound::exact);
  const auto broadcast_bound = agree<T>(Bound::exact, Bound::magnitudes);
  std::uint64_t seed = 900;
  for (const Case& c : cases) {
    INFO(ember::shape_str(c.big) << " <-> " << ember::shape_str(c.small));
    const Tensor<T> g = random_tensor<T>(c.big, ++seed);
    const Tensor<T> s = random_tensor<T>(c.small, ++seed);
    const Shape small = c.small, big = c.big;
    ember::test::check_devices_agree<T>(
        [small](const std::vector<Tensor<T>>& v) { return ember::sum_to(v[0], small); }, {g}, sum_to_bound, "sum_to",
        ++seed);
    ember::test::check_devices_agree<T>(
        [big](const std::vector<Tensor<T>>& v) { return ember::broadcast_to(v[0], big); }, {s}, broadcast_bound,
        "broadcast_to", ++seed);
    if constexpr (std::is_same_v<T, double>) {
      if (c.big != Shape{1000, 4} && c.big != Shape{257, 33}) {  // the long ones: same code, more time
        if (g.numel() > 0)  // an empty input has no gradient to check
          ember::test::check_gradients_cpu(
              [small](const std::vector<Tensor<T>>& v) { return ember::sum_to(v[0], small); }, {g}, "sum_to");
        ember::test::check_gradients_cpu(
            [big](const std::vector<Tensor<T>>& v) { return ember::broadcast_to(v[0], big); }, {s}, "broadcast_to");
      }
    }
  }
  // From views: a transposed gradient, a sliced source.
  const Tensor<T> g = random_tensor<T>({7, 6}, 990);
  ember::test::check_devices_agree<T>(
      [](const std::vector<Tensor<T>>& v) { return ember::sum_to(v[0].t(), Shape{6, 1}); }, {g}, sum_to_bound,
      "sum_to of a transposed view", 991);
  ember::test::check_devices_agree<T>(
      [](const std::vector<Tensor<T>>& v) { return ember::broadcast_to(v[0].slice(0, 1, 7, 2), Shape{4, 3, 6}); },
      {g}, broadcast_bound, "broadcast_to of a sliced view", 992);
}

TEMPLATE_TEST_CASE("argmax along dims 0 and 1, with ties, agrees on every device exactly", "[op][argmax]", float,
                   double) {
  using T = TestType;
  const std::vector<Shape> shapes = {{1, 1}, {7, 10}, {10, 7}, {64, 10}, {3, 1000}, {1000, 3}, {33, 257}};
  for (const Device dev : other_devices()) {
    std::uint64_t seed = 1000;
    for (const Shape& s : shapes) {
      for (int kind = 0; kind < 2; ++kind) {  // 0: continuous values, 1: many ties
        const Tensor<T> x = kind == 0 ? random_tensor<T>(s, ++seed) : quantized<T>(s, ++seed, 2);
        const Tensor<T> xd = x.to(dev);
        for (I64 d : {0, 1, -1}) {
          for (bool keep : {false, true}) {
            INFO("shape " << ember::shape_str(s) << (kind ? " quantized" : "") << ", dim " << d << ", keepdim "
                          << keep);
            ember::test::check_on_device(ember::argmax(xd, d, keep), ember::argmax(x, d, keep), dev, 0.0, "argmax");
          }
        }
        ember::test::check_on_device(ember::argmax(xd.t(), 1), ember::argmax(x.t(), 1), dev, 0.0,
                                     "argmax of a transposed view");
      }
    }
    // 3-D, every dimension.
    const Tensor<T> y = quantized<T>({4, 5, 6}, 1099, 3);
    for (I64 d = 0; d < 3; ++d)
      ember::test::check_on_device(ember::argmax(y.to(dev), d), ember::argmax(y, d), dev, 0.0, "argmax of (4, 5, 6)");
    // Constant rows and infinities: the first index wins a tie.
    auto z = Tensor<T>::full({3, 9}, T(2));
    z(1, 4) = -std::numeric_limits<T>::infinity();
    z(2, 3) = std::numeric_limits<T>::infinity();
    z(2, 7) = std::numeric_limits<T>::infinity();
    ember::test::check_on_device(ember::argmax(z.to(dev), 1), ember::argmax(z, 1), dev, 0.0,
                                 "argmax with ties and infinities");
    ember::test::check_on_device(ember::argmax(z.to(dev), 0), ember::argmax(z, 0), dev, 0.0,
                                 "argmax with ties and infinities, dim 0");
  }
}

TEMPLATE_TEST_CASE("argmax treats NaN as the CPU does (NaN wins) on every device", "[op][argmax][nan]", float,
                   double) {
  using T = TestType;
  auto x = random_tensor<T>({4, 6}, 1101);
  const T nan = std::numeric_limits<T>::quiet_NaN();
  x(0, 3) = nan;
  x(2, 0) = nan;
  x(2, 5) = nan;
  x(3, 1) = nan;
  for (const Device dev : other_devices()) {
    ember::test::check_on_device(ember::argmax(x.to(dev), 1), ember::argmax(x, 1), dev, 0.0, "argmax with NaN, dim 1");
    ember::test::check_on_device(ember::argmax(x.to(dev), 0), ember::argmax(x, 0), dev, 0.0, "argmax with NaN, dim 0");
  }
}

TEMPLATE_TEST_CASE("count_correct agrees on every device", "[op][count_correct]", float, double) {
  using T = TestType;
  for (const Device dev : other_devices()) {
    std::uint64_t seed = 1200;
    for (const Shape& s : std::vector<Shape>{{1, 1}, {7, 3}, {64, 10}, {1000, 10}, {5, 300}}) {
      for (int kind = 0; kind < 2; ++kind) {
        INFO("on " << dev.str() << ", shape " << ember::shape_str(s) << (kind ? " quantized" : ""));
        const Tensor<T> scores = kind == 0 ? random_tensor<T>(s, ++seed) : quantized<T>(s, ++seed, 1);
        const Tensor<I64> labels = ember::test::random_labels(s[0], s[1], ++seed);
        const I64 want = ember::count_correct(scores, labels);
        const I64 got = ember::count_correct(scores.to(dev), labels.to(dev));
        REQUIRE(got == want);
        // Labels equal to the predictions: every row is correct.
        const Tensor<I64> pred = ember::argmax(scores, 1);
        REQUIRE(ember::count_correct(scores.to(dev), pred.to(dev)) == s[0]);
      }
    }
    // Non-contiguous scores.
    const Tensor<T> st = random_tensor<T>({10, 40}, 1290);
    const Tensor<I64> lt = ember::test::random_labels(40, 10, 1291);
    REQUIRE(ember::count_correct(st.to(dev).t(), lt.to(dev)) == ember::count_correct(st.t(), lt));
  }
}
