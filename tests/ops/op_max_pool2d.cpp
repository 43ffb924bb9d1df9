// max_pool2d (ops/pool.hpp; CPU kernel in backend/cpu/pool.hpp, CUDA kernel in
// kernels/pool.cuh): PyTorch goldens (values, indices, gradients), finite differences, CPU vs
// CUDA (exact: the two kernels run the same scans), PyTorch's NaN, tie and padding rules, and
// the errors. Runs on every backend (support/op_case.hpp).
//
// The goldens are PyTorch 2's F.max_pool2d in float64 on x[i] = 7^i mod 71 / 8 - 4.5 for i < 70
// (7 is a primitive root of 71: no ties), shaped (1, 2, 5, 7), with upstream gradient
// g = (arange(y.numel()) % 7 + 1) / 4 reshaped as y:
//   x0 = torch.tensor([pow(7, i, 71) * 0.125 - 4.5 for i in range(70)], dtype=torch.float64)
//   x = x0.reshape(1, 2, 5, 7).requires_grad_()
//   y, i = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
//   y.backward(((torch.arange(y.numel()) % 7 + 1) / 4).to(torch.float64).reshape(y.shape))
// Every value is a multiple of 1/8 and every gradient a sum of multiples of 1/4: exact in float.

#include <catch2/catch.hpp>

#include <algorithm>
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

struct Golden {
  Size2 kernel, stride, padding, dilation;
  bool ceil_mode;
  std::vector<I64> out_shape;
  std::vector<double> y;
  std::vector<I64> indices;
  std::vector<double> gx;
};

// clang-format off: one golden case per line
const std::vector<Golden>& goldens() {
  static const std::vector<Golden> g = {
      {{2, 2},
       {2, 2},
       {0, 0},
       {1, 1},
       false,
       {1, 2, 2, 3},
       {-1.125, 2.875, 2.75, 2.25, 3.25, 2.5, 4.25, -1.25, 3.875, 1.5, 2.375, 4.0},
       {8, 3, 4, 14, 17, 19, 0, 10, 12, 15, 24, 26},
       {0.0, 0.0, 0.0, 0.5,  0.75, 0.0,  0.0, 0.0,  0.25, 0.0, 0.0, 0.0, 0.0, 0.0,
        1.0, 0.0, 0.0, 1.25, 0.0,  1.5,  0.0, 0.0,  0.0,  0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0,  0.0,  0.0,  0.0, 1.75, 0.0,  0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.25, 0.0,  0.5,  0.0, 0.0,  0.75, 0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 1.0,  0.0,  1.25, 0.0, 0.0,  0.0,  0.0, 0.0, 0.0, 0.0, 0.0}},
      {{3, 3},
       {2, 2},
       {1, 1},
       {1, 1},
       false,
       {1, 2, 3, 4},
       {-1.125, 2.875, 2.875, 1.875, 2.25,  3.25,  3.25, 2.5, 1.25, 2.125, 0.75, 0.75,
        4.25,   3.5,   3.875, 4.125, 2.625, 2.375, 4.0,  4.0, 3.75, 3.0,   4.0,  4.0},
       {8, 3, 3, 5, 14, 17, 17, 19, 21, 23, 33, 33, 0, 1, 12, 6, 7, 24, 26, 26, 28, 31, 26, 26},
       {0.0,  0.0, 0.0, 1.25, 0.0, 1.0,  0.0, 0.0,  0.25, 0.0,  0.0,  0.0, 0.0, 0.0,
        1.25, 0.0, 0.0, 3.25, 0.0, 0.25, 0.0, 0.5,  0.0,  0.75, 0.0,  0.0, 0.0, 0.0,
        0.0,  0.0, 0.0, 0.0,  0.0, 2.25, 0.0, 1.5,  1.75, 0.0,  0.0,  0.0, 0.0, 0.5,
        0.75, 0.0, 0.0, 0.0,  0.0, 0.25, 0.0, 0.0,  0.0,  0.0,  0.0,  0.0, 0.0, 0.0,
        0.0,  0.0, 0.0, 1.0,  0.0, 4.0,  0.0, 1.75, 0.0,  0.0,  0.25, 0.0, 0.0, 0.0}},
      {{3, 2},
       {2, 1},
       {1, 0},
       {1, 1},
       true,
       {1, 2, 3, 6},
       {-1.125, 1.625, 2.875, 2.875, 2.75, 1.875, 2.25, 2.125, 3.25,  3.25,  2.5,   2.5,
        1.25,   2.125, 2.125, 0.625, 0.75, 0.75,  4.25, 3.5,   -1.25, 0.5,   3.875, 4.125,
        2.625,  2.0,   2.375, 3.375, 4.0,  4.0,   3.75, 0.375, 3.0,   3.625, 4.0,   4.0},
       {8, 2, 3,  3,  4,  5, 14, 23, 17, 17, 19, 19, 21, 23, 23, 25, 33, 33,
        0, 1, 10, 11, 12, 6, 7,  16, 24, 18, 26, 26, 28, 30, 31, 32, 26, 26},
       {0.0,  0.0, 0.5, 1.75, 1.25, 1.5,  0.0, 0.0,  0.25, 0.0,  0.0,  0.0,  0.0, 0.0,
        1.75, 0.0, 0.0, 1.25, 0.0,  2.25, 0.0, 1.5,  0.0,  2.25, 0.0,  0.5,  0.0, 0.0,
        0.0,  0.0, 0.0, 0.0,  0.0,  1.75, 0.0, 1.25, 1.5,  0.0,  0.0,  0.0,  0.0, 0.75,
        1.0,  0.0, 0.0, 1.75, 0.25, 0.5,  0.0, 0.0,  0.0,  1.25, 0.0,  1.75, 0.0, 0.0,
        0.0,  0.0, 0.0, 1.5,  0.0,  2.75, 0.0, 0.75, 0.0,  1.0,  1.25, 1.5,  0.0, 0.0}},
      {{2, 3},
       {1, 2},
       {1, 1},
       {2, 1},
       false,
       {1, 2, 5, 4},
       {-1.125, 1.375, 1.125, -1.0,  2.25,  3.25,  3.25,   2.5,   1.25,  2.125,
        1.125,  -1.0,  2.25,  3.25,  3.25,  2.5,   1.25,   2.125, 0.625, -1.875,
        2.625,  1.0,   3.875, 3.875, 4.25,  3.5,   3.375,  4.125, 2.625, 2.375,
        4.0,    4.0,   3.75,  3.0,   3.625, 3.125, -0.375, 2.375, 4.0,   4.0},
       {8, 9, 10, 13, 14, 17, 17, 19, 21, 23, 10, 13, 14, 17, 17, 19, 21, 23, 25, 27,
        7, 8, 12, 12, 0,  1,  18, 6,  7,  24, 26, 26, 28, 31, 32, 34, 22, 24, 26, 26},
       {0.0,  0.0,  0.0, 0.0,  0.0, 0.0,  0.0, 0.0,  0.25, 0.5,  1.75, 0.0,  0.0, 2.25,
        2.75, 0.0,  0.0, 5.25, 0.0, 0.75, 0.0, 1.25, 0.0,  1.75, 0.0,  1.25, 0.0, 1.5,
        0.0,  0.0,  0.0, 0.0,  0.0, 0.0,  0.0, 1.0,  1.25, 0.0,  0.0,  0.0,  0.0, 1.75,
        2.0,  0.25, 0.0, 0.0,  0.0, 1.25, 0.0, 0.0,  0.0,  0.0,  0.0,  1.5,  0.0, 0.0,
        0.0,  0.5,  0.0, 1.25, 0.0, 4.0,  0.0, 1.25, 0.0,  0.0,  1.5,  1.75, 0.0, 0.25}},
      {{3, 3},
       {2, 2},
       {1, 1},
       {2, 2},
       true,
       {1, 2, 2, 3},
       {1.125, 1.125, 1.125, 1.125, 1.125, 1.125, 2.375, 4.0, 4.0, 2.375, 4.0, 4.0},
       {10, 10, 10, 10, 10, 10, 24, 26, 26, 24, 26, 26},
       {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,  0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,  0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0, 2.5, 0.0, 3.0, 0.0, 0.0, 0.0,  0.0, 0.0, 0.0, 0.0, 0.0}},
      {{2, 2},
       {3, 3},
       {0, 0},
       {1, 1},
       true,
       {1, 2, 2, 3},
       {-1.125, 2.875, -1.0, 1.25, 0.625, -1.875, 4.25, 0.5, 4.125, 3.75, 3.625, 3.125},
       {8, 3, 13, 21, 25, 27, 0, 11, 6, 28, 32, 34},
       {0.0, 0.0, 0.0, 0.5, 0.0,  0.0, 0.0, 0.0,  0.25, 0.0, 0.0, 0.0,  0.0, 0.75,
        0.0, 0.0, 0.0, 0.0, 0.0,  0.0, 0.0, 1.0,  0.0,  0.0, 0.0, 1.25, 0.0, 1.5,
        0.0, 0.0, 0.0, 0.0, 0.0,  0.0, 0.0, 1.75, 0.0,  0.0, 0.0, 0.0,  0.0, 0.5,
        0.0, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0,  0.0,  0.0, 0.0, 0.0,  0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0,  0.0, 0.0, 0.75, 0.0,  0.0, 0.0, 1.0,  0.0, 1.25}},
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
    for (const Golden& c : goldens()) {
      INFO("on " << dev.str() << ": kernel " << c.kernel.h << "x" << c.kernel.w << " stride "
                 << c.stride.h << "x" << c.stride.w << " padding " << c.padding.h << "x"
                 << c.padding.w << " dilation " << c.dilation.h << "x" << c.dilation.w
                 << " ceil_mode " << c.ceil_mode);
      Tensor<T> x = golden_input<T>().to(dev);
      x.requires_grad_();
      const auto [y, indices] =
          ember::max_pool2d_with_indices(x, c.kernel, c.stride, c.padding, c.dilation, c.ceil_mode);
      REQUIRE(y.shape() == ember::Shape(c.out_shape.begin(), c.out_shape.end()));
      CHECK(indices.shape() == y.shape());
      CHECK(indices.to(ember::Device::cpu()).to_vector() == c.indices);
      std::vector<T> gv(c.y.size());
      for (std::size_t i = 0; i < gv.size(); ++i) gv[i] = static_cast<T>(i % 7 + 1) / 4;
      y.backward(Tensor<T>::from_vector(gv, y.shape()).to(dev));
      ember::test::check_golden(y, c.y, 0.0, "output");
      ember::test::check_golden(x.grad(), c.gx, 0.0, "input gradient");
      // max_pool2d gives the same values as max_pool2d_with_indices.
      const Tensor<T> y2 =
          ember::max_pool2d(x.detach(), c.kernel, c.stride, c.padding, c.dilation, c.ceil_mode);
      CHECK(y2.to(ember::Device::cpu()).to_vector() == y.to(ember::Device::cpu()).to_vector());
    }
  }
}

}  // namespace

TEST_CASE("max_pool2d matches PyTorch's values, indices and gradients on every device",
          "[op][max_pool2d]") {
  SECTION("double") { check_goldens<double>(); }
  SECTION("float") { check_goldens<float>(); }
}

TEST_CASE("max_pool2d gradients match finite differences with every option", "[op][max_pool2d]") {
  struct Case {
    ember::Shape shape;
    Size2 k, s, p, d;
    bool ceil;
  };
  const std::vector<Case> cases = {{{2, 3, 6, 8}, 2, {}, 0, 1, false},
                                   {{2, 3, 7, 8}, 3, 2, 1, 1, true},
                                   {{1, 2, 9, 7}, {2, 3}, {1, 2}, {1, 1}, {2, 1}, false},
                                   {{2, 2, 8, 9}, 3, 2, 1, 2, true},
                                   {{3, 7, 9}, {3, 2}, {2, 1}, {1, 0}, {1, 3}, true}};
  for (const Case& c : cases) {
    // distinct by 0.01: no ties within the finite-difference step
    const Tensor<double> x = ember::test::distinct_values<double>(c.shape, 11);
    ember::test::check_gradients_cpu(
        [c](const std::vector<Tensor<double>>& in) {
          return ember::max_pool2d(in[0], c.k, c.s, c.p, c.d, c.ceil);
        },
        {x}, "max_pool2d");
  }
}

TEST_CASE("max_pool2d agrees on every device, exactly", "[op][max_pool2d]") {
  struct Case {
    ember::Shape shape;
    Size2 k, s, p, d;
    bool ceil;
  };
  const std::vector<Case> cases = {
      {{3, 5, 24, 24}, 2, {}, 0, 1, false},  // the 2x2 fast path on the CPU
      {{3, 5, 17, 13}, 2, 2, 0, 1, true},    // 2x2 with a partial last window
      {{3, 5, 17, 13}, 3, 2, 1, 1, false},
      {{2, 3, 17, 13}, 3, 2, 1, 1, true},
      {{1, 7, 9, 31}, {5, 2}, {3, 1}, {2, 1}, {1, 2}, true},
      {{2, 3, 11, 10}, 3, 1, 1, 2, false},
      {{2, 3, 11, 10}, {2, 3}, {2, 3}, {1, 1}, {3, 2}, true},
      {{4, 1, 1, 1}, 1, 1, 0, 1, false},
      {{2, 2, 6, 6}, 6, 1, 3, 1, true},
      {{2, 2, 2, 5}, 2, 1, 1, 3, false},  // dilated windows that miss the input: -inf
      {{5, 9, 13}, 3, 2, 1, 1, true}};    // (C, H, W)
  for (const Case& c : cases) {
    auto f32 = [c](const std::vector<Tensor<float>>& in) {
      return ember::max_pool2d(in[0], c.k, c.s, c.p, c.d, c.ceil);
    };
    auto f64 = [c](const std::vector<Tensor<double>>& in) {
      return ember::max_pool2d(in[0], c.k, c.s, c.p, c.d, c.ceil);
    };
    ember::test::check_devices_agree<float>(f32, {ember::test::random_tensor<float>(c.shape, 3)},
                                            0.0, "max_pool2d f32");
    ember::test::check_devices_agree<double>(f64, {ember::test::random_tensor<double>(c.shape, 4)},
                                             0.0, "max_pool2d f64");
    // Many ties (values in {-1, 0, 1}) and some NaNs: the same winners on every device.
    Tensor<float> ties = ember::test::random_tensor<float>(c.shape, 5, -1.5, 1.5);
    float* t = ties.data();
    for (I64 i = 0; i < ties.numel(); ++i) t[i] = i % 13 == 5 ? std::nanf("") : std::round(t[i]);
    ember::test::check_devices_agree<float>(f32, {ties}, 0.0, "max_pool2d f32, ties and NaNs");
  }
}

TEST_CASE("max_pool2d: NaN wins, ties keep the first element, padding never wins",
          "[op][max_pool2d]") {
  for (const ember::Device dev : ember::test::op_devices()) {
    INFO("on " << dev.str());
    // PyTorch: a NaN wins, and of several the last one in window order is the index.
    //   F.max_pool2d(torch.tensor([[[[1., nan, 3, nan]]]]), (1, 4), return_indices=True)
    //   -> (tensor([[[[nan]]]]), tensor([[[[3]]]]))
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const auto x = Tensor<float>::from_vector({1, nan, 3, nan}, {1, 1, 1, 4}).to(dev);
    const auto [y, i] = ember::max_pool2d_with_indices(x, {1, 4});
    CHECK(std::isnan(y.to(ember::Device::cpu()).item()));
    CHECK(i.to(ember::Device::cpu()).item() == 3);
    // Ties: the first of the window gets the gradient (2x2 fast path and the general scan).
    for (const Size2 k : {Size2{2}, Size2{2, 3}}) {
      auto ones = Tensor<float>::ones({1, 1, 4, 6}).to(dev);
      ones.requires_grad_();
      const auto [v, idx] = ember::max_pool2d_with_indices(ones, k);
      const std::vector<std::int64_t> first = k == Size2{2}
                                                  ? std::vector<std::int64_t>{0, 2, 4, 12, 14, 16}
                                                  : std::vector<std::int64_t>{0, 3, 12, 15};
      CHECK(idx.to(ember::Device::cpu()).to_vector() == first);
      ember::sum(v).backward();
      const std::vector<float> g = ones.grad().to(ember::Device::cpu()).to_vector();
      for (std::size_t e = 0; e < g.size(); ++e) {
        const bool winner =
            std::find(first.begin(), first.end(), static_cast<std::int64_t>(e)) != first.end();
        CHECK(g[e] == (winner ? 1.0f : 0.0f));
      }
    }
    // Padding is -inf: even an all -inf input wins over it, at the window's first input element.
    //   F.max_pool2d(torch.full((1, 1, 1, 4), -inf), (1, 2), padding=(0, 1), return_indices=True)
    //   -> (tensor([[[[-inf, -inf, -inf]]]]), tensor([[[[0, 1, 3]]]]))
    const float inf = std::numeric_limits<float>::infinity();
    const auto [ny, ni] = ember::max_pool2d_with_indices(
        Tensor<float>::full({1, 1, 1, 4}, -inf).to(dev), {1, 2}, {}, {0, 1});
    CHECK(ny.to(ember::Device::cpu()).to_vector() == std::vector<float>(3, -inf));
    CHECK(ni.to(ember::Device::cpu()).to_vector() == std::vector<std::int64_t>{0, 1, 3});
    // A dilated window whose taps all miss the input (taps at -1 and 2 of 2 rows): -inf, index
    // -1 (PyTorch returns an index outside the plane), and no gradient.
    //   F.max_pool2d(torch.tensor([[[[1., 2], [3, 4]]]]), 2, 1, padding=1, dilation=3) -> -inf
    auto small = Tensor<float>::from_vector({1, 2, 3, 4}, {1, 1, 2, 2}).to(dev);
    small.requires_grad_();
    const auto [my, mi] = ember::max_pool2d_with_indices(small, 2, 1, 1, 3);
    CHECK(my.to(ember::Device::cpu()).to_vector() == std::vector<float>{-inf});
    CHECK(mi.to(ember::Device::cpu()).to_vector() == std::vector<std::int64_t>{-1});
    ember::sum(my).backward();
    CHECK(small.grad().to(ember::Device::cpu()).to_vector() == std::vector<float>(4, 0.0f));
  }
}

TEST_CASE("max_pool2d: (C, H, W) input, default stride, the int arguments", "[op][max_pool2d]") {
  const Tensor<double> x = ember::test::distinct_values<double>({2, 3, 9, 8}, 21);
  const Tensor<double> y4 = ember::max_pool2d(x, 3, 2, 1, 2, true);
  for (I64 n = 0; n < 2; ++n) {
    const Tensor<double> y3 = ember::max_pool2d(x.select(0, n), 3, 2, 1, 2, true);
    CHECK(y3.shape() == ember::Shape{3, 4, 4});
    CHECK(y3.to_vector() == y4.select(0, n).to_vector());
    const auto [v, i] = ember::max_pool2d_with_indices(x.select(0, n), {3, 2});
    CHECK(v.shape() == ember::Shape{3, 3, 4});
    CHECK(i.shape() == ember::Shape{3, 3, 4});
  }
  CHECK(ember::max_pool2d(x, {3, 2}).to_vector() ==
        ember::max_pool2d(x, {3, 2}, {3, 2}).to_vector());
  CHECK(ember::max_pool2d(x, 2, 0).to_vector() == ember::max_pool2d(x, 2, 2).to_vector());
}

TEST_CASE("max_pool2d refuses bad arguments with errors naming them", "[op][max_pool2d]") {
  using ember::test::ErrorContains;
  const Tensor<float> x = Tensor<float>::zeros({1, 2, 5, 5});
  // PyTorch: "pad should be at most half of effective kernel size" and, whatever the dilation,
  // "pad should be smaller than or equal to half of kernel size"
  CHECK_THROWS_MATCHES(
      ember::max_pool2d(x, 3, 1, 2), ember::Error,
      ErrorContains({"max_pool2d", "padding 2x2 must be in [0, kernel / 2] for kernel 3x3"}));
  CHECK_THROWS_MATCHES(ember::max_pool2d(x, 2, 1, 2, 3), ember::Error,
                       ErrorContains({"max_pool2d", "padding 2x2", "kernel 2x2"}));
  CHECK_THROWS_MATCHES(ember::max_pool2d(x, 6), ember::Error,
                       ErrorContains({"max_pool2d", "input 5 x 5", "smaller than the window 6x6"}));
  CHECK_THROWS_MATCHES(ember::max_pool2d(x, 3, 1, 0, {1, 3}), ember::Error,
                       ErrorContains({"smaller than the window 3x3 dilated by 1x3"}));
  CHECK_THROWS_MATCHES(ember::max_pool2d(x, 0), ember::Error,
                       ErrorContains({"max_pool2d", "must be positive"}));
  CHECK_THROWS_MATCHES(ember::max_pool2d(x, 2, {2, -1}), ember::Error,
                       ErrorContains({"stride 2x-1"}));
  CHECK_THROWS_MATCHES(ember::max_pool2d(x, 2, 2, 0, 0), ember::Error,
                       ErrorContains({"dilation 0x0 must be positive"}));
  CHECK_THROWS_MATCHES(ember::max_pool2d(x, 2, 2, -1), ember::Error,
                       ErrorContains({"padding -1x-1"}));
  CHECK_THROWS_MATCHES(ember::max_pool2d(Tensor<float>::zeros({5, 5}), 2), ember::Error,
                       ErrorContains({"max_pool2d", "(N, C, H, W) or (C, H, W)", "[5, 5]"}));
  CHECK_THROWS_MATCHES(ember::max_pool2d_with_indices(Tensor<float>::zeros({1, 1, 2, 3, 4}), 2),
                       ember::Error, ErrorContains({"max_pool2d", "[1, 1, 2, 3, 4]"}));
}
