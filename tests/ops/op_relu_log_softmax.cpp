// relu (NaN and infinities included) and log_softmax along dim 1, dim 0 and others
// (ops/activation.hpp; CPU kernels in backend/cpu/softmax.hpp and the elementwise ones, CUDA
// kernels in kernels/): finite-difference gradients in double, and every device against the
// CPU (support/op_case.hpp).
//
// Tolerances: relu is a selection, exact forward and backward (its kink at 0 included);
// log_softmax within rounding_tol scaled by max |output| (Bound::output).

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/activation.hpp"

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

}  // namespace

TEMPLATE_TEST_CASE("relu forward and backward agree on every device exactly", "[op][relu]", float, double) {
  using T = TestType;
  const auto exact = agree<T>(Bound::exact, Bound::exact);
  const ember::test::OpFn<T> relu = [](const std::vector<Tensor<T>>& v) { return ember::relu(v[0]); };
  std::uint64_t seed = 1700;
  for (const Shape& s : std::vector<Shape>{{}, {1}, {7}, {33, 65}, {4, 5, 6}, {0, 3}, {100003}}) {
    INFO("shape " << ember::shape_str(s));
    // Quantized inputs include exact zeros (the kink: output 0, gradient 0).
    const Tensor<T> q = quantized<T>(s, ++seed);
    ember::test::check_devices_agree<T>(relu, {q}, exact, "relu", ++seed);
    const Tensor<T> u = random_tensor<T>(s, ++seed);
    ember::test::check_devices_agree<T>(relu, {u}, exact, "relu", ++seed);
  }
  ember::test::check_devices_agree<T>([](const std::vector<Tensor<T>>& v) { return ember::relu(v[0].t()); },
                                      {random_tensor<T>({9, 5}, 1790)}, exact, "relu of a transposed view", 1791);
}

TEST_CASE("relu gradients match finite differences away from the kink", "[op][relu]") {
  ember::test::check_gradients_cpu([](const std::vector<Tensor<double>>& v) { return ember::relu(v[0]); },
                                   {ember::test::away_from_zero<double>({4, 5, 6}, 1750)}, "relu");
  ember::test::check_gradients_cpu([](const std::vector<Tensor<double>>& v) { return ember::relu(v[0].t()); },
                                   {ember::test::away_from_zero<double>({9, 5}, 1751)}, "relu of a transposed view");
}

TEMPLATE_TEST_CASE("relu propagates NaN on every device as the CPU does", "[op][relu][nan]", float, double) {
  using T = TestType;
  auto x = random_tensor<T>({3, 5}, 1801);
  x(0, 0) = std::numeric_limits<T>::quiet_NaN();
  x(2, 3) = std::numeric_limits<T>::quiet_NaN();
  x(1, 1) = -std::numeric_limits<T>::infinity();
  x(1, 2) = std::numeric_limits<T>::infinity();
  const auto devices = ember::test::op_devices();
  for (std::size_t k = 1; k < devices.size(); ++k)
    ember::test::check_on_device(ember::relu(x.to(devices[k])), ember::relu(x), devices[k], 0.0,
                                 "relu with NaN and infinities");
}

namespace {

struct SoftmaxCase {
  Shape s;
  I64 dim;
  double amplitude;
};

const std::vector<SoftmaxCase>& softmax_cases() {
  static const std::vector<SoftmaxCase> cases = {
      {{7, 10}, 1, 1},   {{7, 10}, 0, 1},  {{7, 10}, -1, 1}, {{1, 1}, 1, 1},   {{1, 1}, 0, 1},
      {{64, 10}, 1, 5},  {{3, 1000}, 1, 3}, {{1000, 3}, 0, 3}, {{1000, 3}, 1, 3}, {{4, 5, 6}, 1, 2},
      {{4, 5, 6}, 0, 2}, {{4, 5, 6}, 2, 2}, {{8, 10}, 1, 60}, {{8, 10}, 0, 60}, {{5, 33}, 1, 1},
      {{2, 6, 17}, 1, 3}, {{2, 6, 17}, 0, 3}, {{3, 5, 40}, 1, 4}, {{33, 2}, 0, 2},
  };
  return cases;
}

}  // namespace

TEMPLATE_TEST_CASE("log_softmax along dim 1, dim 0 and others agrees on every device", "[op][log_softmax]", float,
                   double) {
  using T = TestType;
  const auto by_output = agree<T>(Bound::output, Bound::output);
  std::uint64_t seed = 1900;
  for (const SoftmaxCase& c : softmax_cases()) {
    INFO("shape " << ember::shape_str(c.s) << ", dim " << c.dim << ", amplitude " << c.amplitude);
    const Tensor<T> x = random_tensor<T>(c.s, ++seed, -c.amplitude, c.amplitude);
    const I64 d = c.dim;
    ember::test::check_devices_agree<T>(
        [d](const std::vector<Tensor<T>>& v) { return ember::log_softmax(v[0], d); }, {x}, by_output, "log_softmax",
        ++seed);
  }
  ember::test::check_devices_agree<T>([](const std::vector<Tensor<T>>& v) { return ember::log_softmax(v[0].t(), 1); },
                                      {random_tensor<T>({10, 6}, 1990)}, by_output,
                                      "log_softmax of a transposed view", 1991);
}

TEST_CASE("log_softmax gradients along every dim match finite differences", "[op][log_softmax]") {
  std::uint64_t seed = 1950;
  for (const SoftmaxCase& c : softmax_cases()) {
    // The long rows and columns run the same code, only longer; amplitude 60 (the overflow
    // guard) is for the devices: its finite differences lose ~1e-7 to rounding.
    if ((c.s.size() == 2 && c.s[0] * c.s[1] > 100) || c.amplitude > 10) continue;
    INFO("shape " << ember::shape_str(c.s) << ", dim " << c.dim << ", amplitude " << c.amplitude);
    const I64 d = c.dim;
    ember::test::check_gradients_cpu([d](const std::vector<Tensor<double>>& v) { return ember::log_softmax(v[0], d); },
                                     {random_tensor<double>(c.s, ++seed, -c.amplitude, c.amplitude)}, "log_softmax");
  }
  ember::test::check_gradients_cpu([](const std::vector<Tensor<double>>& v) { return ember::log_softmax(v[0].t(), 1); },
                                   {random_tensor<double>({10, 6}, 1990)}, "log_softmax of a transposed view");
}
