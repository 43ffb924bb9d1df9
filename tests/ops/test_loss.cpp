// Tests for ember/ops/loss.hpp: nll_loss and cross_entropy values (mean and sum) against
// plain loops, finite-difference gradients, and the errors for bad targets.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/loss.hpp"

#include "support/gradcheck.hpp"
#include "support/inputs.hpp"
#include "support/matchers.hpp"

namespace {

using ember::Reduction;
using ember::Shape;
using ember::Tensor;
using ember::test::check_gradients;
using ember::test::ErrorContains;
using ember::test::random_tensor;
using I64 = std::int64_t;
using TD = Tensor<double>;
using Inputs = std::vector<TD>;

}  // namespace

TEMPLATE_TEST_CASE("nll_loss and cross_entropy match plain loops", "[ops][loss]", float, double) {
  const auto [n, c] = GENERATE(table<I64, I64>({{1, 1}, {4, 5}, {7, 3}, {64, 10}}));
  CAPTURE(n, c);
  const double tol = std::is_same_v<TestType, float> ? 1e-5 : 1e-13;
  const auto logits = random_tensor<TestType>({n, c}, 91, -3.0, 3.0);
  const auto target = ember::test::random_labels(n, c, 92);

  double nll_sum = 0, ce_sum = 0;
  for (I64 i = 0; i < n; ++i) {
    const I64 t = target(i);
    nll_sum -= static_cast<double>(logits(i, t));
    double lse = 0;
    for (I64 j = 0; j < c; ++j) lse += std::exp(static_cast<double>(logits(i, j)));
    ce_sum += std::log(lse) - static_cast<double>(logits(i, t));
  }
  const auto nll_mean = ember::nll_loss(logits, target);
  CHECK(nll_mean.shape() == Shape{});
  CHECK(static_cast<double>(nll_mean.item()) ==
        Approx(nll_sum / static_cast<double>(n)).margin(tol));
  CHECK(static_cast<double>(ember::nll_loss(logits, target, Reduction::sum).item()) ==
        Approx(nll_sum).margin(tol * static_cast<double>(n)));
  CHECK(static_cast<double>(ember::cross_entropy(logits, target).item()) ==
        Approx(ce_sum / static_cast<double>(n)).margin(tol));
  CHECK(static_cast<double>(ember::cross_entropy(logits, target, Reduction::sum).item()) ==
        Approx(ce_sum).margin(tol * static_cast<double>(n)));
  CHECK(ember::cross_entropy(logits, target).item() ==
        ember::nll_loss(ember::log_softmax(logits, 1), target).item());
  // A non-contiguous input.
  const auto lt = random_tensor<TestType>({c, n}, 93).t();
  double lt_sum = 0;
  for (I64 i = 0; i < n; ++i) lt_sum -= static_cast<double>(lt(i, target(i)));
  CHECK(static_cast<double>(ember::nll_loss(lt, target, Reduction::sum).item()) ==
        Approx(lt_sum).margin(tol * static_cast<double>(n)));
}

TEST_CASE("nll_loss and cross_entropy gradients match finite differences", "[ops][loss][grad]") {
  const auto [n, c] = GENERATE(table<I64, I64>({{1, 1}, {4, 5}, {7, 3}}));
  CAPTURE(n, c);
  const TD x = random_tensor<double>({n, c}, 94, -2.0, 2.0);
  const auto target = ember::test::random_labels(n, c, 95);
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    CAPTURE(r == Reduction::mean ? "mean" : "sum");
    check_gradients([&target, r](const Inputs& in) { return ember::nll_loss(in[0], target, r); },
                    {x});
    check_gradients(
        [&target, r](const Inputs& in) { return ember::cross_entropy(in[0], target, r); }, {x});
  }
}

TEST_CASE("nll_loss refuses bad targets and shapes", "[ops][loss][error]") {
  const auto x = Tensor<float>::zeros({3, 4});
  CHECK_THROWS_MATCHES(
      ember::nll_loss(x, Tensor<I64>::from_list({0, 4, 1})), ember::Error,
      ErrorContains({"nll_loss", "target 4", "index 1", "out of range", "4 classes"}));
  CHECK_THROWS_MATCHES(ember::nll_loss(x, Tensor<I64>::from_list({0, 1, -1})), ember::Error,
                       ErrorContains({"out of range"}));
  CHECK_THROWS_MATCHES(ember::cross_entropy(x, Tensor<I64>::from_list({9, 0, 0})), ember::Error,
                       ErrorContains({"out of range"}));
  CHECK_THROWS_MATCHES(ember::nll_loss(x, Tensor<I64>::from_list({0, 1})), ember::Error,
                       ErrorContains({"nll_loss", "[2]", "[3, 4]"}));
  CHECK_THROWS_MATCHES(ember::nll_loss(Tensor<float>::zeros({12}), Tensor<I64>::zeros({12})),
                       ember::Error, ErrorContains({"(N, C)", "[12]"}));
  CHECK_THROWS_AS(ember::nll_loss(Tensor<float>::zeros({0, 4}), Tensor<I64>::zeros({0})),
                  ember::Error);
  CHECK(ember::nll_loss(Tensor<float>::zeros({0, 4}), Tensor<I64>::zeros({0}), Reduction::sum)
            .item() == 0.0f);
}
