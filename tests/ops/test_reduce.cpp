// Tests for ember/ops/reduce.hpp: sum and mean (all, or one dimension with keepdim either
// way) against plain loops and finite differences, argmax (first index on ties) and
// count_correct.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/reduce.hpp"

#include "support/gradcheck.hpp"
#include "support/inputs.hpp"
#include "support/matchers.hpp"

namespace {

using ember::Shape;
using ember::Tensor;
using ember::test::check_gradients;
using ember::test::ErrorContains;
using ember::test::random_tensor;
using I64 = std::int64_t;
using TD = Tensor<double>;
using Inputs = std::vector<TD>;

// Sum over dimension d of a [outer, size, inner] view, in double.
std::vector<double> sum_dim_reference(const std::vector<double>& v, const Shape& s, I64 d) {
  I64 outer = 1, size = s[static_cast<std::size_t>(d)], inner = 1;
  for (I64 i = 0; i < d; ++i) outer *= s[static_cast<std::size_t>(i)];
  for (std::size_t i = static_cast<std::size_t>(d) + 1; i < s.size(); ++i) inner *= s[i];
  std::vector<double> out(static_cast<std::size_t>(outer * inner), 0.0);
  for (I64 o = 0; o < outer; ++o)
    for (I64 k = 0; k < size; ++k)
      for (I64 i = 0; i < inner; ++i)
        out[static_cast<std::size_t>(o * inner + i)] +=
            v[static_cast<std::size_t>((o * size + k) * inner + i)];
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("sum and mean match plain loops", "[ops][reduce]", float, double) {
  const Shape shape = GENERATE(Shape{7}, Shape{3, 5}, Shape{2, 3, 4}, Shape{1, 5, 1});
  CAPTURE(shape);
  const auto x = random_tensor<TestType>(shape, 21);
  std::vector<double> xv;
  for (TestType v : x.to_vector()) xv.push_back(static_cast<double>(v));
  const double tol = std::is_same_v<TestType, float> ? 1e-5 : 1e-13;

  double total = 0;
  for (double v : xv) total += v;
  CHECK(ember::sum(x).shape() == Shape{});
  CHECK(static_cast<double>(ember::sum(x).item()) == Approx(total).margin(tol));
  CHECK(static_cast<double>(ember::mean(x).item()) ==
        Approx(total / static_cast<double>(xv.size())).margin(tol));

  for (I64 d = 0; d < x.dim(); ++d) {
    CAPTURE(d);
    const auto ref = sum_dim_reference(xv, shape, d);
    Shape kept = shape, dropped = shape;
    kept[static_cast<std::size_t>(d)] = 1;
    dropped.erase(dropped.begin() + d);
    const auto s = ember::sum(x, d);
    const auto sk = ember::sum(x, d, /*keepdim=*/true);
    const auto sn = ember::sum(x, d - x.dim());  // negative dimension
    const auto m = ember::mean(x, d, true);
    CHECK(s.shape() == dropped);
    CHECK(sk.shape() == kept);
    CHECK(sn.shape() == dropped);
    CHECK(m.shape() == kept);
    const auto sv = s.to_vector(), skv = sk.to_vector(), snv = sn.to_vector(), mv = m.to_vector();
    const double n = static_cast<double>(shape[static_cast<std::size_t>(d)]);
    for (std::size_t i = 0; i < ref.size(); ++i) {
      CHECK(static_cast<double>(sv[i]) == Approx(ref[i]).margin(tol));
      CHECK(skv[i] == sv[i]);
      CHECK(snv[i] == sv[i]);
      CHECK(static_cast<double>(mv[i]) == Approx(ref[i] / n).margin(tol));
    }
  }
  // A non-contiguous input.
  const auto t = random_tensor<TestType>({3, 4}, 22);
  const auto st = ember::sum(t.t(), 1);  // [4]: sums of t's columns
  for (I64 j = 0; j < 4; ++j)
    CHECK(static_cast<double>(st(j)) ==
          Approx(static_cast<double>(t(0, j)) + static_cast<double>(t(1, j)) +
                 static_cast<double>(t(2, j)))
              .margin(tol));
}

TEST_CASE("sum and mean gradients match finite differences", "[ops][reduce][grad]") {
  const Shape shape = GENERATE(Shape{}, Shape{7}, Shape{3, 5}, Shape{2, 3, 4});
  CAPTURE(shape);
  const TD x = random_tensor<double>(shape, 23);
  check_gradients([](const Inputs& in) { return ember::sum(in[0]); }, {x});
  check_gradients([](const Inputs& in) { return ember::mean(in[0]); }, {x});
  for (I64 d = 0; d < x.dim(); ++d) {
    for (bool keepdim : {false, true}) {
      CAPTURE(d, keepdim);
      check_gradients([d, keepdim](const Inputs& in) { return ember::sum(in[0], d, keepdim); },
                      {x});
      check_gradients([d, keepdim](const Inputs& in) { return ember::mean(in[0], d, keepdim); },
                      {x});
    }
  }
  if (x.dim() > 1)
    check_gradients([](const Inputs& in) { return ember::sum(in[0].transpose(0, 1), -1); }, {x});
}

TEST_CASE("Reductions of empty tensors", "[ops][reduce]") {
  CHECK(ember::sum(Tensor<float>::zeros({0, 3})).item() == 0.0f);
  CHECK(ember::sum(Tensor<float>::zeros({0, 3}), 0).to_vector() == std::vector<float>{0, 0, 0});
  CHECK_THROWS_MATCHES(ember::mean(Tensor<float>::zeros({0})), ember::Error,
                       ErrorContains({"empty"}));
  CHECK_THROWS_AS(ember::mean(Tensor<float>::zeros({2, 0}), 1), ember::Error);
  CHECK_THROWS_MATCHES(ember::sum(Tensor<float>::zeros({2, 3}), 2), ember::Error,
                       ErrorContains({"out of range"}));
}

TEST_CASE("Reducing a 0-d tensor over its dimension returns it", "[ops][reduce]") {
  const auto s = Tensor<double>::scalar(3.5);
  for (I64 d : {0, -1}) {
    CAPTURE(d);
    CHECK(ember::sum(s, d).shape() == Shape{});
    CHECK(ember::sum(s, d).item() == 3.5);
    CHECK(ember::sum(s, d, true).shape() == Shape{});
    CHECK(ember::mean(s, d).item() == 3.5);
    CHECK(ember::argmax(s, d).shape() == Shape{});
    CHECK(ember::argmax(s, d).item() == 0);
  }
  CHECK_THROWS_AS(ember::sum(s, 1), ember::Error);
  CHECK_THROWS_AS(ember::mean(s, 1), ember::Error);
  check_gradients([](const Inputs& in) { return ember::sum(in[0], 0); }, {s});
  check_gradients([](const Inputs& in) { return ember::mean(in[0], -1, true); }, {s});
}

TEST_CASE("argmax takes the first index on ties", "[ops][reduce][argmax]") {
  const auto x = Tensor<float>::from_list({1, 3, 3, 0,  //
                                           5, 5, 5, 5,  //
                                           -1, -2, -1, -3},
                                          {3, 4});
  CHECK(ember::argmax(x, 1).to_vector() == std::vector<I64>{1, 0, 0});
  CHECK(ember::argmax(x, 1).shape() == Shape{3});
  CHECK(ember::argmax(x, 1, true).shape() == Shape{3, 1});
  CHECK(ember::argmax(x, 0).to_vector() == std::vector<I64>{1, 1, 1, 1});
  CHECK(ember::argmax(x, -2).to_vector() == std::vector<I64>{1, 1, 1, 1});
  CHECK(ember::argmax(x.t(), 0).to_vector() == std::vector<I64>{1, 0, 0});
  // NaN wins, as in PyTorch; the first NaN.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  CHECK(ember::argmax(Tensor<float>::from_list({1, nan, 7, nan}), 0).item() == 1);
  // Integer tensors.
  CHECK(ember::argmax(Tensor<I64>::from_list({4, 9, 9, 2}), 0).item() == 1);
  CHECK(ember::argmax(Tensor<std::uint8_t>::from_list({0, 0}), 0).item() == 0);
  // 3-D, middle dimension, against a loop.
  const auto r = random_tensor<double>({2, 5, 3}, 24);
  const auto am = ember::argmax(r, 1);
  for (I64 i = 0; i < 2; ++i)
    for (I64 k = 0; k < 3; ++k) {
      I64 best = 0;
      for (I64 j = 1; j < 5; ++j)
        if (r(i, j, k) > r(i, best, k)) best = j;
      CHECK(am(i, k) == best);
    }
  CHECK_THROWS_AS(ember::argmax(Tensor<float>::zeros({2, 0}), 1), ember::Error);
}

TEST_CASE("count_correct counts rows whose argmax is the label", "[ops][reduce][argmax]") {
  const auto scores = Tensor<float>::from_list({0.1f, 0.9f, 0.0f,   // 1
                                                0.5f, 0.2f, 0.3f,   // 0
                                                0.4f, 0.4f, 0.2f,   // tie: 0
                                                0.0f, 0.0f, 1.0f},  // 2
                                               {4, 3});
  CHECK(ember::count_correct(scores, Tensor<I64>::from_list({1, 0, 0, 2})) == 4);
  CHECK(ember::count_correct(scores, Tensor<I64>::from_list({1, 0, 1, 0})) == 2);
  CHECK(ember::count_correct(scores, Tensor<I64>::from_list({2, 2, 2, 1})) == 0);
  CHECK_THROWS_MATCHES(ember::count_correct(scores, Tensor<I64>::from_list({1, 0, 0})),
                       ember::Error, ErrorContains({"count_correct", "[4, 3]", "[3]"}));
  CHECK_THROWS_AS(ember::count_correct(Tensor<float>::zeros({4}), Tensor<I64>::zeros({4})),
                  ember::Error);
}
