// sqrt, rsqrt and abs (ops/elementwise.hpp; the unary kernels of kernels/elementwise.cuh, whose
// CPU twins are backend/cpu/elementwise.hpp's): PyTorch goldens, finite-difference gradients,
// CPU vs CUDA (exact: the same IEEE operations), and PyTorch's special values. Runs on every
// backend (support/op_case.hpp).
//
// The goldens are PyTorch 2's values in float64, with upstream gradient
// g = (arange(12) % 7 + 1) / 4 reshaped (3, 4):
//   xp = ((arange(12) + 1) * 0.37).reshape(3, 4)          # sqrt, rsqrt
//   xm = ((arange(12) * 0.37 % 5) - 2).reshape(3, 4)      # abs
//   x = x0.clone().requires_grad_(); y = fn(x); y.backward(g)   # fn: torch.sqrt, rsqrt, abs

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"

#include "support/inputs.hpp"
#include "support/op_case.hpp"

namespace {

using ember::Tensor;

Tensor<double> positive_input() {
  std::vector<double> v(12);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = (static_cast<double>(i) + 1) * 0.37;
  return Tensor<double>::from_vector(v, {3, 4});
}
Tensor<double> mixed_input() {
  std::vector<double> v(12);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::fmod(static_cast<double>(i) * 0.37, 5.0) - 2.0;
  return Tensor<double>::from_vector(v, {3, 4});
}
Tensor<double> upstream() {
  std::vector<double> v(12);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i % 7 + 1) / 4.0;
  return Tensor<double>::from_vector(v, {3, 4});
}

struct Golden {
  const char* name;
  std::function<Tensor<double>(const Tensor<double>&)> f;
  bool positive;
  std::vector<double> y, gx;
};

const std::vector<Golden>& goldens() {
  static const std::vector<Golden> g = {
      {"sqrt", [](const Tensor<double>& x) { return ember::sqrt(x); }, true,
       {0.6082762530298219, 0.8602325267042626, 1.0535653752852738, 1.2165525060596438, 1.3601470508735443, 1.489966442575134, 1.6093476939431082, 1.7204650534085253, 1.8248287590894658, 1.9235384061671346, 2.0174241001832014, 2.1071307505705477},
       {0.20549873413169664, 0.29061909685954823, 0.3559342484071871, 0.4109974682633933, 0.45950913880862987, 0.5033670414105182, 0.54369854525105, 0.07265477421488706, 0.13699915608779775, 0.19495321684126363, 0.24784079854830485, 0.29661187367265596}},
      {"rsqrt", [](const Tensor<double>& x) { return ember::rsqrt(x); }, true,
       {1.6439898730535731, 1.162476387438193, 0.949157995752499, 0.8219949365267866, 0.7352146220938078, 0.6711560552140243, 0.6213697660012, 0.5812381937190965, 0.547996624351191, 0.5198752449100363, 0.4956815970966097, 0.4745789978762495},
       {-0.5554019841397209, -0.39272850926965985, -0.32066148505152, -0.27770099206986043, -0.24838331827493512, -0.2267419105452785, -0.2099222182436486, -0.02454553182935374, -0.04114088771405339, -0.05269005860574694, -0.0608945450978636, -0.0668044760524}},
      {"abs", [](const Tensor<double>& x) { return ember::abs(x); }, false,
       {2.0, 1.63, 1.26, 0.8900000000000001, 0.52, 0.1499999999999999, 0.21999999999999975, 0.5899999999999999, 0.96, 1.33, 1.7000000000000002, 2.0700000000000003},
       {-0.25, -0.5, -0.75, -1.0, -1.25, -1.5, 1.75, 0.25, 0.5, 0.75, 1.0, 1.25}},
  };
  return g;
}

}  // namespace

TEST_CASE("sqrt, rsqrt and abs match PyTorch's values and gradients on every device",
          "[op][sqrt][rsqrt][abs]") {
  for (const ember::Device dev : ember::test::op_devices())
    for (const Golden& c : goldens()) {
      INFO(c.name << " on " << dev.str());
      Tensor<double> x = (c.positive ? positive_input() : mixed_input()).to(dev);
      x.requires_grad_();
      const Tensor<double> y = c.f(x);
      REQUIRE(y.shape() == ember::Shape{3, 4});
      y.backward(upstream().to(dev));
      ember::test::check_golden(y, c.y, 1e-15, "output");
      ember::test::check_golden(x.grad(), c.gx, 1e-15, "input gradient");
    }
}

TEST_CASE("sqrt, rsqrt and abs have PyTorch's values and gradients at 0, -0, NaN and below 0",
          "[op][sqrt][rsqrt][abs]") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (const ember::Device dev : ember::test::op_devices()) {
    INFO("on " << dev.str());
    // torch.abs / torch.sign on [nan, -0., 0., 2., -3.]: |x| = [nan, 0, 0, 2, 3], sign and the
    // gradient of abs = [0, 0, 0, 1, -1] (NaN and +-0 give 0)
    Tensor<double> x = Tensor<double>::from_list({nan, -0.0, 0.0, 2.0, -3.0}).to(dev);
    x.requires_grad_();
    const Tensor<double> a = ember::abs(x);
    a.backward(Tensor<double>::ones({5}).to(dev));
    const std::vector<double> av = a.to(ember::Device::cpu()).to_vector();
    CHECK(std::isnan(av[0]));
    CHECK(av[1] == 0.0);
    CHECK_FALSE(std::signbit(av[1]));
    CHECK(std::vector<double>(av.begin() + 2, av.end()) == std::vector<double>{0.0, 2.0, 3.0});
    CHECK(x.grad().to(ember::Device::cpu()).to_vector() == std::vector<double>{0, 0, 0, 1, -1});
    CHECK(ember::sign(x.detach()).to(ember::Device::cpu()).to_vector() == std::vector<double>{0, 0, 0, 1, -1});
    // torch.sqrt([0., -1., -0.]) = [0, nan, -0]; torch.rsqrt = [inf, nan, -inf];
    // the gradients at 0: sqrt inf, rsqrt -inf
    Tensor<double> z = Tensor<double>::from_list({0.0, -1.0, -0.0}).to(dev);
    z.requires_grad_();
    const std::vector<double> s = ember::sqrt(z).to(ember::Device::cpu()).to_vector();
    CHECK(s[0] == 0.0);
    CHECK(std::isnan(s[1]));
    CHECK((s[2] == 0.0 && std::signbit(s[2])));
    const std::vector<double> r = ember::rsqrt(z).to(ember::Device::cpu()).to_vector();
    CHECK(r[0] == inf);
    CHECK(std::isnan(r[1]));
    CHECK(r[2] == -inf);
    Tensor<double> w = Tensor<double>::from_list({0.0}).to(dev);
    w.requires_grad_();
    ember::sqrt(w).backward();  // w is 0-d
    CHECK(w.grad().to(ember::Device::cpu()).to_vector() == std::vector<double>{inf});
    Tensor<double> v = Tensor<double>::from_list({0.0}).to(dev);
    v.requires_grad_();
    ember::rsqrt(v).backward();
    CHECK(v.grad().to(ember::Device::cpu()).to_vector() == std::vector<double>{-inf});
  }
}

TEST_CASE("sqrt, rsqrt and abs gradients match finite differences", "[op][sqrt][rsqrt][abs]") {
  using ember::test::check_gradients_cpu;
  using V = std::vector<Tensor<double>>;
  const Tensor<double> pos = ember::test::random_tensor<double>({3, 7}, 21, 0.2, 3.0);
  check_gradients_cpu([](const V& in) { return ember::sqrt(in[0]); }, {pos}, "sqrt");
  check_gradients_cpu([](const V& in) { return ember::rsqrt(in[0]); }, {pos}, "rsqrt");
  // |x| >= 0.05: clear of the kink at 0
  const Tensor<double> mixed = ember::test::away_from_zero<double>({4, 5}, 22);
  check_gradients_cpu([](const V& in) { return ember::abs(in[0]); }, {mixed}, "abs");
  // a non-contiguous input and a composition
  check_gradients_cpu([](const V& in) { return ember::sqrt(ember::abs(in[0].t())) * ember::rsqrt(ember::abs(in[0].t())); },
                      {mixed}, "sqrt(|x^T|) * rsqrt(|x^T|)");
}

TEST_CASE("sqrt, rsqrt and abs agree on every device, exactly", "[op][sqrt][rsqrt][abs]") {
  for (const ember::Shape& shape : {ember::Shape{3, 5, 7}, ember::Shape{1}, ember::Shape{13, 1, 9}, ember::Shape{}}) {
    INFO("shape " << ember::shape_str(shape));
    auto pos32 = ember::test::random_tensor<float>(shape, 31, 0.01, 5.0);
    auto pos64 = ember::test::random_tensor<double>(shape, 32, 0.01, 5.0);
    auto mix32 = ember::test::away_from_zero<float>(shape, 33);
    auto mix64 = ember::test::away_from_zero<double>(shape, 34);
    ember::test::check_devices_agree<float>([](const auto& in) { return ember::sqrt(in[0]); }, {pos32}, 0.0, "sqrt f32");
    ember::test::check_devices_agree<double>([](const auto& in) { return ember::sqrt(in[0]); }, {pos64}, 0.0, "sqrt f64");
    ember::test::check_devices_agree<float>([](const auto& in) { return ember::rsqrt(in[0]); }, {pos32}, 0.0, "rsqrt f32");
    ember::test::check_devices_agree<double>([](const auto& in) { return ember::rsqrt(in[0]); }, {pos64}, 0.0, "rsqrt f64");
    ember::test::check_devices_agree<float>([](const auto& in) { return ember::abs(in[0]); }, {mix32}, 0.0, "abs f32");
    ember::test::check_devices_agree<double>([](const auto& in) { return ember::abs(in[0]); }, {mix64}, 0.0, "abs f64");
  }
}
