// adaptive_max_pool2d (ops/pool.hpp), which runs the max_pool2d kernels on adaptive windows
// (Pool2dParams::out_h/out_w): PyTorch goldens (values, indices, gradients), finite differences,
// CPU vs CUDA exactly, NaN, and the errors. Runs on every backend (support/op_case.hpp).
//
// Goldens: PyTorch 2's F.adaptive_max_pool2d in float64 on the input of op_max_pool2d.cpp
// (x[i] = 7^i mod 71 / 8 - 4.5, no ties, shaped (1, 2, 5, 7)), with upstream gradient
// g = (arange(y.numel()) % 7 + 1) / 4 reshaped as y:
//   x0 = torch.tensor([pow(7, i, 71) * 0.125 - 4.5 for i in range(70)], dtype=torch.float64)
//   x = x0.reshape(1, 2, 5, 7).requires_grad_()
//   y, i = F.adaptive_max_pool2d(x, output_size, return_indices=True)
//   y.backward(((torch.arange(y.numel()) % 7 + 1) / 4).to(torch.float64).reshape(y.shape))
// Output (7, 4) has more rows than the input: its windows overlap.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/pool.hpp"

#include "support/inputs.hpp"
#include "support/matchers.hpp"
#include "support/op_case.hpp"

namespace {

using ember::Size2;
using ember::Tensor;
using I64 = std::int64_t;

struct AdaptiveGolden {
  Size2 out;
  std::vector<I64> out_shape;
  std::vector<double> y;
  std::vector<I64> indices;
  std::vector<double> gx;
};

// clang-format off: one golden case per line
const std::vector<AdaptiveGolden>& adaptive_goldens() {
  static const std::vector<AdaptiveGolden> g = {
      {{1, 1},
       {1, 2, 1, 1},
       {3.25, 4.25},
       {17, 0},
       {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
      {{2, 3},
       {1, 2, 2, 3},
       {2.25, 3.25, 2.75, 2.25, 3.25, 2.5, 4.25, 3.375, 4.125, 3.75, 3.625, 4.0},
       {14, 17, 4, 14, 17, 19, 0, 18, 6, 28, 32, 26},
       {0.0,  0.0, 0.0, 0.0,  0.75, 0.0,  0.0, 0.0,  0.0, 0.0, 0.0, 0.0,  0.0, 0.0,
        1.25, 0.0, 0.0, 1.75, 0.0,  1.5,  0.0, 0.0,  0.0, 0.0, 0.0, 0.0,  0.0, 0.0,
        0.0,  0.0, 0.0, 0.0,  0.0,  0.0,  0.0, 1.75, 0.0, 0.0, 0.0, 0.0,  0.0, 0.5,
        0.0,  0.0, 0.0, 0.0,  0.0,  0.0,  0.0, 0.0,  0.0, 0.0, 0.0, 0.25, 0.0, 0.0,
        0.0,  0.0, 0.0, 0.0,  0.0,  1.25, 0.0, 0.75, 0.0, 0.0, 0.0, 1.0,  0.0, 0.0}},
      {{3, 3},
       {1, 2, 3, 3},
       {1.625, 2.875, 2.75, 2.25, 3.25, 2.5, 2.125, 2.125, 0.75, 4.25, 0.5, 4.125, 2.625, 3.375,
        4.0, 3.75, 3.625, 4.0},
       {2, 3, 4, 14, 17, 19, 23, 23, 33, 0, 11, 6, 7, 18, 26, 28, 32, 26},
       {0.0, 0.0, 0.25, 0.5,  0.75, 0.0,  0.0, 0.0,  0.0, 0.0, 0.0, 0.0,  0.0, 0.0,
        1.0, 0.0, 0.0,  1.25, 0.0,  1.5,  0.0, 0.0,  0.0, 2.0, 0.0, 0.0,  0.0, 0.0,
        0.0, 0.0, 0.0,  0.0,  0.0,  0.5,  0.0, 0.75, 0.0, 0.0, 0.0, 0.0,  0.0, 1.25,
        1.5, 0.0, 0.0,  0.0,  1.0,  0.0,  0.0, 0.0,  0.0, 0.0, 0.0, 1.75, 0.0, 0.0,
        0.0, 0.0, 0.0,  0.0,  0.0,  1.25, 0.0, 0.5,  0.0, 0.0, 0.0, 0.75, 0.0, 0.0}},
      {{4, 5},
       {1, 2, 4, 5},
       {-1.125, 1.625, 2.875, 2.75,  1.875, 2.25,  1.375, 3.25,  2.5,   2.5,
        2.25,   2.125, 3.25,  2.5,   2.5,   1.25,  2.125, 2.125, 0.75,  0.75,
        4.25,   3.5,   0.5,   3.875, 4.125, 2.625, 2.0,   3.375, 3.875, 3.875,
        1.5,    2.0,   3.375, 4.0,   4.0,   3.75,  0.375, 3.625, 4.0,   4.0},
       {8, 2, 3,  4,  5, 14, 9,  17, 19, 19, 14, 23, 17, 19, 19, 21, 23, 23, 33, 33,
        0, 1, 11, 12, 6, 7,  16, 18, 12, 12, 15, 16, 18, 26, 26, 28, 30, 32, 26, 26},
       {0.0,  0.0, 0.5, 0.75, 1.0, 1.25, 0.0, 0.0,  0.25, 1.75, 0.0, 0.0,  0.0, 0.0,
        2.5,  0.0, 0.0, 1.75, 0.0, 3.25, 0.0, 0.5,  0.0,  3.0,  0.0, 0.0,  0.0, 0.0,
        0.0,  0.0, 0.0, 0.0,  0.0, 2.75, 0.0, 1.75, 0.25, 0.0,  0.0, 0.0,  0.0, 1.0,
        1.25, 0.0, 0.0, 0.0,  0.5, 1.5,  0.0, 0.0,  0.75, 2.5,  0.0, 3.0,  0.0, 0.0,
        0.0,  0.0, 0.0, 0.0,  0.0, 5.5,  0.0, 0.25, 0.0,  0.5,  0.0, 0.75, 0.0, 0.0}},
      {{5, 7},
       {1, 2, 5, 7},
       {-4.375, -3.625, 1.625,  2.875, 2.75,   1.875,  -4.25,  -2.75,  -1.125, 1.375,
        1.125,  -0.625, -4.0,   -1.0,  2.25,   -1.625, -2.125, 3.25,   -3.5,   2.5,
        0.125,  1.25,   0.25,   2.125, -2.5,   0.625,  -4.125, -1.875, -3.875, -0.125,
        -0.5,   -3.125, -3.75,  0.75,  -3.25,  4.25,   3.5,    -1.75,  -3.0,   -2.875,
        -2.0,   4.125,  2.625,  1.0,   -1.5,   -1.25,  0.5,    3.875,  0.875,  -2.375,
        1.5,    2.0,    -3.375, 3.375, -2.625, -0.25,  -1.375, -0.375, -2.25,  2.375,
        -0.75,  4.0,    1.75,   3.75,  0.0,    0.375,  3.0,    3.625,  -0.875, 3.125},
       {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17,
        18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 0,
        1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18,
        19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34},
       {0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75,
        0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75,
        0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75,
        0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75,
        0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75}},
      {{7, 4},
       {1, 2, 7, 4},
       {-3.625, 2.875,  2.875, 1.875, -1.125, 2.875, 2.875, 1.875, 2.25, 3.25,  3.25,  2.5,
        2.25,   3.25,   3.25,  2.5,   2.25,   3.25,  3.25,  2.5,   1.25, 2.125, 0.75,  0.75,
        -0.125, -0.125, 0.75,  0.75,  4.25,   3.5,   -2.0,  4.125, 4.25, 3.5,   3.875, 4.125,
        2.625,  2.0,    3.875, 3.875, 1.5,    2.0,   3.375, -0.25, 1.5,  2.375, 4.0,   4.0,
        3.75,   3.0,    4.0,   4.0,   3.75,   3.0,   3.625, 3.125},
       {1,  3,  3,  5,  8,  3,  3,  5,  14, 17, 17, 19, 14, 17, 17, 19, 14, 17, 17,
        19, 21, 23, 33, 33, 29, 29, 33, 33, 0,  1,  5,  6,  0,  1,  12, 6,  7,  16,
        12, 12, 15, 16, 18, 20, 15, 24, 26, 26, 28, 31, 26, 26, 28, 31, 32, 34},
       {0.0,  0.25, 0.0, 4.5, 0.0, 1.25, 0.0, 0.0,  1.25, 0.0,  0.0, 0.0,  0.0,  0.0,
        2.75, 0.0,  0.0, 6.0, 0.0, 3.25, 0.0, 1.75, 0.0,  0.25, 0.0, 0.0,  0.0,  0.0,
        0.0,  2.25, 0.0, 0.0, 0.0, 4.5,  0.0, 1.5,  2.0,  0.0,  0.0, 0.0,  0.75, 1.25,
        0.5,  0.0,  0.0, 0.0, 0.0, 4.0,  0.0, 0.0,  2.25, 2.5,  0.0, 0.25, 0.0,  0.5,
        0.0,  0.0,  0.0, 1.0, 0.0, 4.0,  0.0, 2.75, 0.0,  0.0,  1.5, 1.5,  0.0,  1.75}},
  };
  return g;
}
// clang-format on

template <class T>
Tensor<T> golden_input() {
  std::vector<T> v(70);
  I64 p = 1;
  for (T& e : v) {
    e = static_cast<T>(static_cast<double>(p) * 0.125 - 4.5);
    p = p * 7 % 71;
  }
  return Tensor<T>::from_vector(v, {1, 2, 5, 7});
}

template <class T>
void check_goldens() {
  for (const ember::Device dev : ember::test::op_devices()) {
    for (const AdaptiveGolden& c : adaptive_goldens()) {
      INFO("on " << dev.str() << ": output " << c.out.h << "x" << c.out.w);
      Tensor<T> x = golden_input<T>().to(dev);
      x.requires_grad_();
      const auto [y, indices] = ember::adaptive_max_pool2d_with_indices(x, c.out);
      REQUIRE(y.shape() == ember::Shape(c.out_shape.begin(), c.out_shape.end()));
      CHECK(indices.to(ember::Device::cpu()).to_vector() == c.indices);
      std::vector<T> gv(c.y.size());
      for (std::size_t i = 0; i < gv.size(); ++i) gv[i] = static_cast<T>(i % 7 + 1) / 4;
      y.backward(Tensor<T>::from_vector(gv, y.shape()).to(dev));
      ember::test::check_golden(y, c.y, 0.0, "output");
      ember::test::check_golden(x.grad(), c.gx, 0.0, "input gradient");
      const Tensor<T> y2 = ember::adaptive_max_pool2d(x.detach(), c.out);
      CHECK(y2.to(ember::Device::cpu()).to_vector() == y.to(ember::Device::cpu()).to_vector());
    }
  }
}

}  // namespace

TEST_CASE("adaptive_max_pool2d matches PyTorch's values, indices and gradients on every device",
          "[op][adaptive_max_pool2d]") {
  SECTION("double") { check_goldens<double>(); }
  SECTION("float") { check_goldens<float>(); }
}

TEST_CASE("adaptive_max_pool2d gradients match finite differences", "[op][adaptive_max_pool2d]") {
  for (const Size2 out : {Size2{1}, Size2{3, 4}, Size2{5, 2}, Size2{9, 11}}) {
    const Tensor<double> x = ember::test::distinct_values<double>({2, 3, 7, 8}, 12);
    ember::test::check_gradients_cpu(
        [out](const std::vector<Tensor<double>>& in) {
          return ember::adaptive_max_pool2d(in[0], out);
        },
        {x}, "adaptive_max_pool2d");
  }
  ember::test::check_gradients_cpu(
      [](const std::vector<Tensor<double>>& in) {
        return ember::adaptive_max_pool2d(in[0], {2, 3});
      },
      {ember::test::distinct_values<double>({3, 5, 7}, 13)}, "adaptive_max_pool2d (C, H, W)");
}

TEST_CASE("adaptive_max_pool2d agrees on every device, exactly", "[op][adaptive_max_pool2d]") {
  struct Case {
    ember::Shape shape;
    Size2 out;
  };
  const std::vector<Case> cases = {{{3, 5, 17, 13}, {4, 5}}, {{2, 3, 24, 24}, 1},
                                   {{1, 7, 9, 31}, {9, 7}},  {{2, 2, 5, 6}, {11, 13}},
                                   {{4, 1, 1, 1}, 1},        {{5, 9, 13}, {2, 3}}};
  for (const Case& c : cases) {
    auto f32 = [c](const std::vector<Tensor<float>>& in) {
      return ember::adaptive_max_pool2d(in[0], c.out);
    };
    auto f64 = [c](const std::vector<Tensor<double>>& in) {
      return ember::adaptive_max_pool2d(in[0], c.out);
    };
    ember::test::check_devices_agree<float>(f32, {ember::test::random_tensor<float>(c.shape, 3)},
                                            0.0, "adaptive_max_pool2d f32");
    ember::test::check_devices_agree<double>(f64, {ember::test::random_tensor<double>(c.shape, 4)},
                                             0.0, "adaptive_max_pool2d f64");
    Tensor<float> ties = ember::test::random_tensor<float>(c.shape, 5, -1.5, 1.5);
    float* t = ties.data();
    for (I64 i = 0; i < ties.numel(); ++i) t[i] = i % 11 == 4 ? std::nanf("") : std::round(t[i]);
    ember::test::check_devices_agree<float>(f32, {ties}, 0.0,
                                            "adaptive_max_pool2d f32, ties and NaNs");
  }
}

TEST_CASE("adaptive_max_pool2d: NaN wins, ties keep the first element",
          "[op][adaptive_max_pool2d]") {
  for (const ember::Device dev : ember::test::op_devices()) {
    INFO("on " << dev.str());
    // PyTorch: F.adaptive_max_pool2d(torch.tensor([[[[1., nan, 3, nan]]]]), 1, return_indices=True)
    //   -> (tensor([[[[nan]]]]), tensor([[[[3]]]]))
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const auto [y, i] = ember::adaptive_max_pool2d_with_indices(
        Tensor<float>::from_vector({1, nan, 3, nan}, {1, 1, 1, 4}).to(dev), 1);
    CHECK(std::isnan(y.to(ember::Device::cpu()).item()));
    CHECK(i.to(ember::Device::cpu()).item() == 3);
    // Global max pooling of equal values: the first element wins.
    const auto [v, idx] =
        ember::adaptive_max_pool2d_with_indices(Tensor<float>::ones({2, 3, 4}).to(dev), 1);
    CHECK(v.shape() == ember::Shape{2, 1, 1});
    CHECK(idx.to(ember::Device::cpu()).to_vector() == std::vector<std::int64_t>{0, 0});
  }
}

TEST_CASE("adaptive_max_pool2d refuses bad arguments with errors naming them",
          "[op][adaptive_max_pool2d]") {
  using ember::test::ErrorContains;
  CHECK_THROWS_MATCHES(ember::adaptive_max_pool2d(Tensor<float>::zeros({1, 2, 5, 5}), {0, 2}),
                       ember::Error,
                       ErrorContains({"adaptive_max_pool2d", "output size 0x2 must be positive"}));
  CHECK_THROWS_MATCHES(ember::adaptive_max_pool2d(Tensor<float>::zeros({1, 2, 0, 5}), 2),
                       ember::Error, ErrorContains({"adaptive_max_pool2d", "0 x 5 are empty"}));
  CHECK_THROWS_MATCHES(
      ember::adaptive_max_pool2d(Tensor<float>::zeros({5, 5}), 2), ember::Error,
      ErrorContains({"adaptive_max_pool2d", "(N, C, H, W) or (C, H, W)", "[5, 5]"}));
}
