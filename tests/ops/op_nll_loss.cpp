// nll_loss and cross_entropy, mean and sum (ops/loss.hpp; CPU kernel in backend/cpu/loss.hpp,
// CUDA kernel in kernels/): finite-difference gradients in double, and every device against
// the CPU (support/op_case.hpp).
//
// Tolerances: nll_loss is a sum of selected elements, within rounding_tol scaled by the same
// sum over |terms| (Bound::magnitudes); cross_entropy, a composite through log_softmax, within
// rounding_tol scaled by max |output| (Bound::output).

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/loss.hpp"

#include "support/inputs.hpp"
#include "support/op_case.hpp"

namespace {

using ember::Shape;
using ember::Tensor;
using ember::test::agree;
using ember::test::Bound;
using ember::test::random_tensor;
using I64 = std::int64_t;

}  // namespace

TEMPLATE_TEST_CASE("nll_loss (mean and sum) and cross_entropy agree on every device", "[op][nll_loss]", float,
                   double) {
  using T = TestType;
  std::uint64_t seed = 2000;
  for (const Shape& s : std::vector<Shape>{{1, 1}, {1, 10}, {7, 3}, {64, 10}, {1000, 10}, {5, 300}}) {
    const Tensor<I64> labels = ember::test::random_labels(s[0], s[1], ++seed);
    const Tensor<T> logits = random_tensor<T>(s, ++seed, -3.0, 3.0);
    const Tensor<T> logp = ember::log_softmax(logits, 1).detach();
    for (auto red : {ember::Reduction::mean, ember::Reduction::sum}) {
      INFO("shape " << ember::shape_str(s) << (red == ember::Reduction::mean ? ", mean" : ", sum"));
      ember::test::check_devices_agree<T>(
          [labels, red](const std::vector<Tensor<T>>& v) {
            return ember::nll_loss(v[0], labels.to(v[0].device()), red);
          },
          {logp}, agree<T>(Bound::magnitudes, Bound::magnitudes), "nll_loss", ++seed);
      ember::test::check_devices_agree<T>(
          [labels, red](const std::vector<Tensor<T>>& v) {
            return ember::cross_entropy(v[0], labels.to(v[0].device()), red);
          },
          {logits}, agree<T>(Bound::output, Bound::output), "cross_entropy", ++seed);
    }
  }
}

TEST_CASE("nll_loss and cross_entropy gradients, mean and sum, match finite differences", "[op][nll_loss]") {
  std::uint64_t seed = 2050;
  for (const Shape& s : std::vector<Shape>{{1, 1}, {1, 10}, {7, 3}, {5, 30}}) {
    const Tensor<I64> labels = ember::test::random_labels(s[0], s[1], ++seed);
    const Tensor<double> logits = random_tensor<double>(s, ++seed, -3.0, 3.0);
    const Tensor<double> logp = ember::log_softmax(logits, 1).detach();
    for (auto red : {ember::Reduction::mean, ember::Reduction::sum}) {
      INFO("shape " << ember::shape_str(s) << (red == ember::Reduction::mean ? ", mean" : ", sum"));
      ember::test::check_gradients_cpu(
          [labels, red](const std::vector<Tensor<double>>& v) { return ember::nll_loss(v[0], labels, red); }, {logp},
          "nll_loss");
      ember::test::check_gradients_cpu(
          [labels, red](const std::vector<Tensor<double>>& v) { return ember::cross_entropy(v[0], labels, red); },
          {logits}, "cross_entropy");
    }
  }
}
