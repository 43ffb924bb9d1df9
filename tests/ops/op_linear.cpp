// linear, with and without bias (ops/linear.hpp; a GEMM: Eigen on the CPU, cuBLAS or ember's
// own kernels in kernels/gemm.cuh on CUDA): finite-difference gradients in double, and every
// device against the CPU with each CUDA GEMM backend (support/op_case.hpp,
// support/backend_scope.hpp).
//
// Tolerance: a GEMM's summation order differs between backends, so outputs and gradients are
// held within rounding_tol scaled by the same computation on |inputs| with |upstream gradient|
// (Bound::magnitudes).

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/linear.hpp"

#include "support/backend_scope.hpp"
#include "support/inputs.hpp"
#include "support/op_case.hpp"

namespace {

using ember::Tensor;
using ember::test::agree;
using ember::test::BackendScope;
using ember::test::Bound;
using ember::test::random_tensor;
using I64 = std::int64_t;

struct Lin {
  I64 n, in, out;
};

}  // namespace

TEMPLATE_TEST_CASE("linear with and without bias agrees on every device, both GEMM backends", "[op][linear]", float,
                   double) {
  using T = TestType;
  const auto mags = agree<T>(Bound::magnitudes, Bound::magnitudes);
  const std::vector<Lin> shapes = {{1, 1, 1}, {5, 9, 3}, {7, 33, 65}, {64, 128, 10}, {16, 300, 50},
                                   {3, 1, 7}, {64, 9216, 128}};
  // No GEMM backend to choose (and nothing to agree with) in a program without CUDA.
  for (const std::string& be : ember::test::cuda_backends(BackendScope::gemm)) {
    BackendScope scope(BackendScope::gemm, be);
    std::uint64_t seed = 1400;
    for (const Lin& s : shapes) {
      INFO("GEMM backend " << be << ", N " << s.n << ", in " << s.in << ", out " << s.out);
      const Tensor<T> x = random_tensor<T>({s.n, s.in}, ++seed), w = random_tensor<T>({s.out, s.in}, ++seed);
      const Tensor<T> b = random_tensor<T>({s.out}, ++seed);
      ember::test::check_devices_agree<T>(
          [](const std::vector<Tensor<T>>& v) { return ember::linear(v[0], v[1], v[2]); }, {x, w, b}, mags,
          "linear with bias", ++seed);
      ember::test::check_devices_agree<T>([](const std::vector<Tensor<T>>& v) { return ember::linear(v[0], v[1]); },
                                          {x, w}, mags, "linear without bias", ++seed);
    }
    // A transposed input.
    const Tensor<T> xt = random_tensor<T>({12, 6}, 1490), w = random_tensor<T>({4, 12}, 1491),
                    b = random_tensor<T>({4}, 1492);
    ember::test::check_devices_agree<T>(
        [](const std::vector<Tensor<T>>& v) { return ember::linear(v[0].t(), v[1], v[2]); }, {xt, w, b}, mags,
        "linear of a transposed input", 1493);
  }
}

TEST_CASE("linear gradients match finite differences", "[op][linear]") {
  std::uint64_t seed = 1450;
  for (const Lin& s : std::vector<Lin>{{1, 1, 1}, {5, 9, 3}, {3, 1, 7}, {7, 13, 6}}) {
    INFO("N " << s.n << ", in " << s.in << ", out " << s.out);
    const Tensor<double> x = random_tensor<double>({s.n, s.in}, ++seed), w = random_tensor<double>({s.out, s.in}, ++seed);
    const Tensor<double> b = random_tensor<double>({s.out}, ++seed);
    ember::test::check_gradients_cpu(
        [](const std::vector<Tensor<double>>& v) { return ember::linear(v[0], v[1], v[2]); }, {x, w, b},
        "linear with bias");
    ember::test::check_gradients_cpu([](const std::vector<Tensor<double>>& v) { return ember::linear(v[0], v[1]); },
                                     {x, w}, "linear without bias");
  }
  const Tensor<double> xt = random_tensor<double>({12, 6}, 1490), w = random_tensor<double>({4, 12}, 1491),
                       b = random_tensor<double>({4}, 1492);
  ember::test::check_gradients_cpu(
      [](const std::vector<Tensor<double>>& v) { return ember::linear(v[0].t(), v[1], v[2]); }, {xt, w, b},
      "linear of a transposed input");
}
