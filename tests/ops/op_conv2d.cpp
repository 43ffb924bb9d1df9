// conv2d with stride, padding, dilation, with and without bias (ops/conv.hpp; CPU kernel in
// backend/cpu/conv.hpp, CUDA: cuDNN or ember's own kernels in kernels/conv.cuh):
// finite-difference gradients in double, and every device against the CPU with each CUDA
// convolution backend (support/op_case.hpp, support/backend_scope.hpp).
//
// Tolerance: a convolution's summation order differs between backends, so outputs and
// gradients are held within rounding_tol scaled by the same computation on |inputs| with
// |upstream gradient| (Bound::magnitudes).

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/conv.hpp"

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

struct ConvCase {
  I64 n, c, h, w, k, r, s, stride, pad, dil;
};

}  // namespace

TEMPLATE_TEST_CASE("conv2d with stride, padding, dilation, with and without bias agrees on every device, both "
                   "convolution backends",
                   "[op][conv2d]", float, double) {
  using T = TestType;
  const auto mags = agree<T>(Bound::magnitudes, Bound::magnitudes);
  const std::vector<ConvCase> cases = {
      {1, 1, 5, 5, 1, 3, 3, 1, 0, 1},    {2, 3, 8, 7, 4, 3, 3, 1, 1, 1},   {2, 3, 9, 9, 5, 3, 3, 2, 1, 1},
      {3, 4, 12, 12, 6, 3, 3, 1, 2, 2},  {1, 5, 7, 9, 3, 1, 1, 1, 0, 1},   {2, 3, 6, 6, 2, 5, 5, 1, 2, 1},
      {1, 2, 4, 4, 3, 4, 4, 1, 0, 1},    {2, 3, 13, 11, 4, 3, 5, 2, 1, 1}, {1, 2, 10, 11, 3, 2, 3, 3, 0, 2},
      {2, 1, 28, 28, 32, 3, 3, 1, 0, 1}, {2, 32, 26, 26, 64, 3, 3, 1, 0, 1}, {1, 7, 5, 5, 9, 3, 3, 1, 1, 1},
      {1, 3, 1, 1, 2, 1, 1, 1, 0, 1},    {4, 2, 7, 7, 3, 3, 3, 3, 1, 1},
  };
  // No convolution backend to choose (and nothing to agree with) in a program without CUDA.
  for (const std::string& be : ember::test::cuda_backends(BackendScope::conv)) {
    BackendScope scope(BackendScope::conv, be);
    std::uint64_t seed = 1500;
    for (const ConvCase& c : cases) {
      INFO("conv backend " << be << ", x (" << c.n << ", " << c.c << ", " << c.h << ", " << c.w << "), w (" << c.k
                           << ", " << c.c << ", " << c.r << ", " << c.s << "), stride " << c.stride << ", padding "
                           << c.pad << ", dilation " << c.dil);
      const Tensor<T> x = random_tensor<T>({c.n, c.c, c.h, c.w}, ++seed);
      const Tensor<T> w = random_tensor<T>({c.k, c.c, c.r, c.s}, ++seed);
      const Tensor<T> b = random_tensor<T>({c.k}, ++seed);
      const ember::Conv2dOptions o{c.stride, c.pad, c.dil};
      ember::test::check_devices_agree<T>(
          [o](const std::vector<Tensor<T>>& v) { return ember::conv2d(v[0], v[1], v[2], o); }, {x, w, b}, mags,
          "conv2d with bias", ++seed);
      ember::test::check_devices_agree<T>(
          [o](const std::vector<Tensor<T>>& v) { return ember::conv2d(v[0], v[1], Tensor<T>(), o); }, {x, w}, mags,
          "conv2d without bias", ++seed);
    }
    // A non-contiguous input (made contiguous by the op).
    const Tensor<T> xp = random_tensor<T>({2, 9, 8, 3}, 1590), w = random_tensor<T>({4, 3, 3, 3}, 1591);
    ember::test::check_devices_agree<T>(
        [](const std::vector<Tensor<T>>& v) {
          return ember::conv2d(v[0].permute({0, 3, 1, 2}), v[1], Tensor<T>(), ember::Conv2dOptions{1, 1, 1});
        },
        {xp, w}, mags, "conv2d of a permuted input", 1592);
  }
}

TEST_CASE("conv2d gradients with stride, padding, dilation match finite differences", "[op][conv2d]") {
  // The small cases of the agreement table above, and a non-contiguous input.
  const std::vector<ConvCase> cases = {
      {1, 1, 5, 5, 1, 3, 3, 1, 0, 1}, {2, 3, 8, 7, 4, 3, 3, 1, 1, 1}, {2, 3, 9, 9, 5, 3, 3, 2, 1, 1},
      {1, 2, 10, 11, 3, 2, 3, 3, 0, 2}, {2, 3, 6, 6, 2, 5, 5, 1, 2, 1}, {1, 3, 1, 1, 2, 1, 1, 1, 0, 1},
  };
  std::uint64_t seed = 1550;
  for (const ConvCase& c : cases) {
    INFO("x (" << c.n << ", " << c.c << ", " << c.h << ", " << c.w << "), w (" << c.k << ", " << c.c << ", " << c.r
               << ", " << c.s << "), stride " << c.stride << ", padding " << c.pad << ", dilation " << c.dil);
    const Tensor<double> x = random_tensor<double>({c.n, c.c, c.h, c.w}, ++seed);
    const Tensor<double> w = random_tensor<double>({c.k, c.c, c.r, c.s}, ++seed);
    const Tensor<double> b = random_tensor<double>({c.k}, ++seed);
    const ember::Conv2dOptions o{c.stride, c.pad, c.dil};
    ember::test::check_gradients_cpu(
        [o](const std::vector<Tensor<double>>& v) { return ember::conv2d(v[0], v[1], v[2], o); }, {x, w, b},
        "conv2d with bias");
    ember::test::check_gradients_cpu(
        [o](const std::vector<Tensor<double>>& v) { return ember::conv2d(v[0], v[1], Tensor<double>(), o); }, {x, w},
        "conv2d without bias");
  }
  const Tensor<double> xp = random_tensor<double>({2, 9, 8, 3}, 1590), w = random_tensor<double>({4, 3, 3, 3}, 1591);
  ember::test::check_gradients_cpu(
      [](const std::vector<Tensor<double>>& v) {
        return ember::conv2d(v[0].permute({0, 3, 1, 2}), v[1], Tensor<double>(), ember::Conv2dOptions{1, 1, 1});
      },
      {xp, w}, "conv2d of a permuted input");
}
