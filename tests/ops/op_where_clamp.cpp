// The comparisons (eq, ne, lt, le, gt, ge), where, masked_fill, clamp, clamp_min and clamp_max
// (ops/compare.hpp; CPU kernels in backend/cpu/compare.hpp, CUDA kernels in kernels/compare.cuh):
// PyTorch goldens, finite-difference gradients, CPU vs CUDA (exact: the same selects and IEEE
// comparisons), and the errors. Runs on every backend (support/op_case.hpp).
//
// The goldens are PyTorch 2's, in float64 (torch.bool masks read as 0/1), with
//   ramp(n, shape) = ((arange(n) * 0.37 % 5) - 2).reshape(shape)
//   up(shape) = ((arange(numel) % 7 + 1) / 4).reshape(shape)   # the upstream gradient
// # comparisons: a = [[0.5, nan, -1, 2], [1, 1, -0., 3]] against b = [1, nan, 0, 2] and 1.0
//   getattr(torch, op)(a, b), getattr(torch, op)(a, 1.0)
// # where: cond (2, 1, 3) = arange(6) % 4 < 2, input (4, 1) = ramp(4), other (1, 3) = ramp(3) + 5
//   out = torch.where(cond, x, y); out.backward(up(out.shape))
// # masked_fill: ramp(6, (2, 3)) with mask [True, False, True] and value -7.5; ramp(3) with
// # mask (arange(6) % 4 < 2).reshape(2, 3) and value 4.0 (broadcast to (2, 3))
//   out = torch.masked_fill(x, m, value); out.backward(up(out.shape))
// # clamp on x0 = ramp(12, (3, 4)) with x0[0, 1] = nan; bounds -0.52, 1.33 and 0.96 are values of
// # x0 (ties)
//   x = x0.clone().requires_grad_(); out = fn(x); out.backward(up(out.shape))
//   fn: clamp(x, -0.52, 1.33), clamp(x, min=-0.52), clamp(x, max=1.33), clamp(x, 1.0, -1.0),
//       clamp_min(x, 0.96), clamp_max(x, 0.96)
// PyTorch 2's clamp passes the gradient where min < x < max strictly: 0 at the bounds and for NaN.
// (With tensor bounds its rules differ: see the tensor-bound case below, and ClampTensorParams.)

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/compare.hpp"

#include "support/inputs.hpp"
#include "support/matchers.hpp"
#include "support/op_case.hpp"

namespace {

using ember::Mask;
using ember::Shape;
using ember::Tensor;
using V = std::vector<Tensor<double>>;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Tensor<double> ramp(std::int64_t n, const Shape& shape, double shift = 0.0) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::fmod(static_cast<double>(i) * 0.37, 5.0) - 2.0 + shift;
  return Tensor<double>::from_vector(v, shape);
}
Tensor<double> up(const Shape& shape) {
  std::vector<double> v(static_cast<std::size_t>(ember::numel_of(shape)));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i % 7 + 1) / 4.0;
  return Tensor<double>::from_vector(v, shape);
}
Mask mask_of(const std::vector<std::uint8_t>& v, const Shape& shape) { return Mask::from_vector(v, shape); }
std::vector<int> mask_values(const Mask& m) {
  const std::vector<std::uint8_t> v = m.to(ember::Device::cpu()).to_vector();
  return {v.begin(), v.end()};
}

// Every element within `margin` of the golden, NaN matching NaN.
void check_values(const Tensor<double>& got, const std::vector<double>& want, double margin, const std::string& what) {
  INFO(what);
  const std::vector<double> g = got.to(ember::Device::cpu()).to_vector();
  REQUIRE(g.size() == want.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i << ": got " << g[i] << ", want " << want[i]);
    CHECK(((std::isnan(g[i]) && std::isnan(want[i])) || std::abs(g[i] - want[i]) <= margin));
  }
}

}  // namespace

TEST_CASE("comparisons match PyTorch's masks, with broadcasting and NaN, on every device", "[op][compare]") {
  struct Golden {
    const char* name;
    std::function<Mask(const Tensor<double>&, const Tensor<double>&)> vs_tensor;
    std::function<Mask(const Tensor<double>&, double)> vs_scalar;
    std::vector<int> want_tensor, want_scalar;
  };
  const std::vector<Golden> goldens = {
      {"eq", [](const auto& a, const auto& b) { return ember::eq(a, b); }, [](const auto& a, double s) { return ember::eq(a, s); },
       {0, 0, 0, 1, 1, 0, 1, 0}, {0, 0, 0, 0, 1, 1, 0, 0}},
      {"ne", [](const auto& a, const auto& b) { return ember::ne(a, b); }, [](const auto& a, double s) { return ember::ne(a, s); },
       {1, 1, 1, 0, 0, 1, 0, 1}, {1, 1, 1, 1, 0, 0, 1, 1}},
      {"lt", [](const auto& a, const auto& b) { return ember::lt(a, b); }, [](const auto& a, double s) { return ember::lt(a, s); },
       {1, 0, 1, 0, 0, 0, 0, 0}, {1, 0, 1, 0, 0, 0, 1, 0}},
      {"le", [](const auto& a, const auto& b) { return ember::le(a, b); }, [](const auto& a, double s) { return ember::le(a, s); },
       {1, 0, 1, 1, 1, 0, 1, 0}, {1, 0, 1, 0, 1, 1, 1, 0}},
      {"gt", [](const auto& a, const auto& b) { return ember::gt(a, b); }, [](const auto& a, double s) { return ember::gt(a, s); },
       {0, 0, 0, 0, 0, 0, 0, 1}, {0, 0, 0, 1, 0, 0, 0, 1}},
      {"ge", [](const auto& a, const auto& b) { return ember::ge(a, b); }, [](const auto& a, double s) { return ember::ge(a, s); },
       {0, 0, 0, 1, 1, 0, 1, 1}, {0, 0, 0, 1, 1, 1, 0, 1}},
  };
  for (const ember::Device dev : ember::test::op_devices()) {
    const Tensor<double> a = Tensor<double>::from_list({0.5, kNaN, -1, 2, 1, 1, -0.0, 3}, {2, 4}).to(dev);
    const Tensor<double> b = Tensor<double>::from_list({1, kNaN, 0, 2}).to(dev);
    for (const Golden& g : goldens) {
      INFO(g.name << " on " << dev.str());
      const Mask m = g.vs_tensor(a, b);
      CHECK(m.shape() == Shape{2, 4});
      CHECK(m.device() == dev);
      CHECK(mask_values(m) == g.want_tensor);
      CHECK(mask_values(g.vs_scalar(a, 1.0)) == g.want_scalar);
      // a^T (4, 2), non-contiguous, against b as a column (4, 1): element (i, j) is
      // a[j][i] (op) b[i], the golden's element (j, i)
      const Mask mt = g.vs_tensor(a.t(), b.reshape({4, 1}));
      std::vector<int> want_t(8);
      for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t j = 0; j < 2; ++j) want_t[i * 2 + j] = g.want_tensor[j * 4 + i];
      CHECK(mask_values(mt) == want_t);
    }
  }
}

TEST_CASE("where and masked_fill match PyTorch's values and gradients on every device",
          "[op][where][masked_fill]") {
  for (const ember::Device dev : ember::test::op_devices()) {
    INFO("on " << dev.str());
    {
      const Mask cond = mask_of({1, 1, 0, 0, 1, 1}, {2, 1, 3}).to(dev);
      Tensor<double> x = ramp(4, {4, 1}).to(dev), y = ramp(3, {1, 3}, 5.0).to(dev);
      x.requires_grad_();
      y.requires_grad_();
      const Tensor<double> out = ember::where(cond, x, y);
      REQUIRE(out.shape() == Shape{2, 4, 3});
      out.backward(up(out.shape()).to(dev));
      check_values(out, {-2.0, -2.0, 3.74, -1.63, -1.63, 3.74, -1.26, -1.26, 3.74, -0.8900000000000001, -0.8900000000000001, 3.74, 3.0, -2.0, -2.0, 3.0, -1.63, -1.63, 3.0, -1.26, -1.26, 3.0, -0.8900000000000001, -0.8900000000000001}, 0.0, "where");
      check_values(x.grad(), {2.75, 4.0, 5.25, 3.0}, 0.0, "where: gradient of input");
      check_values(y.grad(), {3.5, 0.0, 4.0}, 0.0, "where: gradient of other");
    }
    {
      Tensor<double> x = ramp(6, {2, 3}).to(dev);
      x.requires_grad_();
      const Tensor<double> out = ember::masked_fill(x, mask_of({1, 0, 1}, {3}).to(dev), -7.5);
      REQUIRE(out.shape() == Shape{2, 3});
      out.backward(up(out.shape()).to(dev));
      check_values(out, {-7.5, -1.63, -7.5, -7.5, -0.52, -7.5}, 0.0, "masked_fill");
      check_values(x.grad(), {0.0, 0.5, 0.0, 0.0, 1.25, 0.0}, 0.0, "masked_fill: gradient");
    }
    {
      Tensor<double> x = ramp(3, {3}).to(dev);
      x.requires_grad_();
      const Tensor<double> out = ember::masked_fill(x, mask_of({1, 1, 0, 0, 1, 1}, {2, 3}).to(dev), 4);
      REQUIRE(out.shape() == Shape{2, 3});
      out.backward(up(out.shape()).to(dev));
      check_values(out, {4.0, 4.0, -1.26, -2.0, 4.0, 4.0}, 0.0, "masked_fill, broadcast input");
      check_values(x.grad(), {1.0, 0.0, 0.75}, 0.0, "masked_fill, broadcast input: gradient");
    }
    {  // scalar operands and a mask from a comparison
      const Tensor<double> x = ramp(6, {2, 3}).to(dev);
      check_values(ember::where(ember::gt(x, -1.0), x, 0.0), {0.0, 0.0, 0.0, -0.8900000000000001, -0.52, -0.1499999999999999}, 0.0, "where(x > -1, x, 0)");
      check_values(ember::where(ember::le(x, -1.5), 1, x), {1.0, 1.0, -1.26, -0.8900000000000001, -0.52, -0.1499999999999999}, 0.0, "where(x <= -1.5, 1, x)");
    }
  }
}

TEST_CASE("clamp, clamp_min and clamp_max match PyTorch's values and gradients on every device",
          "[op][clamp]") {
  struct Golden {
    const char* name;
    std::function<Tensor<double>(const Tensor<double>&)> f;
    std::vector<double> y, gx;
  };
  const std::vector<Golden> goldens = {
      {"clamp(-0.52, 1.33)", [](const Tensor<double>& x) { return ember::clamp(x, -0.52, 1.33); },
       {-0.52, kNaN, -0.52, -0.52, -0.52, -0.1499999999999999, 0.21999999999999975, 0.5899999999999999, 0.96, 1.33, 1.33, 1.33},
       {0.0, 0.0, 0.0, 0.0, 0.0, 1.5, 1.75, 0.25, 0.5, 0.0, 0.0, 0.0}},
      {"clamp(min=-0.52)", [](const Tensor<double>& x) { return ember::clamp(x, -0.52); },
       {-0.52, kNaN, -0.52, -0.52, -0.52, -0.1499999999999999, 0.21999999999999975, 0.5899999999999999, 0.96, 1.33, 1.7000000000000002, 2.0700000000000003},
       {0.0, 0.0, 0.0, 0.0, 0.0, 1.5, 1.75, 0.25, 0.5, 0.75, 1.0, 1.25}},
      {"clamp(max=1.33)", [](const Tensor<double>& x) { return ember::clamp(x, std::nullopt, 1.33); },
       {-2.0, kNaN, -1.26, -0.8900000000000001, -0.52, -0.1499999999999999, 0.21999999999999975, 0.5899999999999999, 0.96, 1.33, 1.33, 1.33},
       {0.25, 0.0, 0.75, 1.0, 1.25, 1.5, 1.75, 0.25, 0.5, 0.0, 0.0, 0.0}},
      {"clamp(1.0, -1.0)", [](const Tensor<double>& x) { return ember::clamp(x, 1.0, -1.0); },
       {-1.0, kNaN, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0},
       {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
      {"clamp_min(0.96)", [](const Tensor<double>& x) { return ember::clamp_min(x, 0.96); },
       {0.96, kNaN, 0.96, 0.96, 0.96, 0.96, 0.96, 0.96, 0.96, 1.33, 1.7000000000000002, 2.0700000000000003},
       {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.75, 1.0, 1.25}},
      {"clamp_max(0.96)", [](const Tensor<double>& x) { return ember::clamp_max(x, 0.96); },
       {-2.0, kNaN, -1.26, -0.8900000000000001, -0.52, -0.1499999999999999, 0.21999999999999975, 0.5899999999999999, 0.96, 0.96, 0.96, 0.96},
       {0.25, 0.0, 0.75, 1.0, 1.25, 1.5, 1.75, 0.25, 0.0, 0.0, 0.0, 0.0}},
  };
  Tensor<double> x0 = ramp(12, {3, 4});
  x0(0, 1) = kNaN;
  for (const ember::Device dev : ember::test::op_devices())
    for (const Golden& g : goldens) {
      INFO(g.name << " on " << dev.str());
      Tensor<double> x = x0.to(dev).detach();  // a leaf of its own (to(cpu) is x0 itself)
      x.requires_grad_();
      const Tensor<double> y = g.f(x);
      REQUIRE(y.shape() == Shape{3, 4});
      y.backward(up(y.shape()).to(dev));
      check_values(y, g.y, 0.0, "output");
      check_values(x.grad(), g.gx, 0.0, "input gradient");
    }
  // a NaN bound makes every output NaN, as torch.clamp(x, min=kNaN)
  for (const ember::Device dev : ember::test::op_devices()) {
    const std::vector<double> v = ember::clamp(x0.to(dev), kNaN).to(ember::Device::cpu()).to_vector();
    for (const double e : v) CHECK(std::isnan(e));
  }
}

// Tensor bounds, broadcast: x0 (3, 4) as above; lo (4) = [x0[1, 0], nan, x0[1, 2], 1.5];
// hi (3, 1) = [x0[1, 3] + 1.48, x0[1, 2], x0[2, 3]]. Ties of x with lo, with hi and with both
// (lo == hi == x at [1, 2]), lo > hi (at [1, 3]), NaN in x and in lo.
//   fn: clamp(x, lo, hi), clamp(x, min=lo), clamp(x, max=hi), maximum(x, lo), minimum(hi, x)
TEST_CASE("clamp with tensor bounds, maximum and minimum match PyTorch's values and gradients "
          "on every device", "[op][clamp][maximum][minimum]") {
  Tensor<double> x0 = ramp(12, {3, 4});
  x0(0, 1) = kNaN;
  const Tensor<double> lo0 = Tensor<double>::from_list({x0(1, 0), kNaN, x0(1, 2), 1.5});
  const Tensor<double> hi0 = Tensor<double>::from_list({x0(1, 3) + 1.48, x0(1, 2), x0(2, 3)}, {3, 1});
  const std::vector<double> y_clamp = {-0.52, kNaN, 0.21999999999999975, 1.5, -0.52, kNaN, 0.21999999999999975, 0.21999999999999975, 0.96, kNaN, 1.7000000000000002, 2.0700000000000003};
  const std::vector<double> y_max = {-0.52, kNaN, 0.21999999999999975, 1.5, -0.52, kNaN, 0.21999999999999975, 1.5, 0.96, kNaN, 1.7000000000000002, 2.0700000000000003};
  const std::vector<double> y_min = {-2.0, kNaN, -1.26, -0.8900000000000001, -0.52, -0.1499999999999999, 0.21999999999999975, 0.21999999999999975, 0.96, 1.33, 1.7000000000000002, 2.0700000000000003};
  const std::vector<double> gx_max = {0.0, 0.5, 0.0, 0.0, 0.625, 1.5, 0.875, 0.0, 0.5, 0.75, 1.0, 1.25};
  const std::vector<double> glo_max = {0.875, 2.75, 1.625, 1.25};
  const std::vector<double> gx_min = {0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 0.875, 0.0, 0.5, 0.75, 1.0, 0.625};
  const std::vector<double> ghi_min = {0.5, 1.125, 0.625};
  for (const ember::Device dev : ember::test::op_devices()) {
    INFO("on " << dev.str());
    auto leaves = [dev](const std::vector<Tensor<double>>& v) {
      std::vector<Tensor<double>> out;
      for (const Tensor<double>& t : v) {
        out.push_back(t.to(dev).detach());
        out.back().requires_grad_();
      }
      return out;
    };
    {
      const V in = leaves({x0, lo0, hi0});
      const Tensor<double> y = ember::clamp(in[0], in[1], in[2]);
      REQUIRE(y.shape() == Shape{3, 4});
      CHECK(y.impl().grad_fn->name == std::string("ClampBackward0"));
      y.backward(up(y.shape()).to(dev));
      check_values(y, y_clamp, 0.0, "clamp(x, lo, hi)");
      check_values(in[0].grad(), {0.0, 0.5, 0.0, 0.0, 0.625, 1.5, 1.75, 0.0, 0.5, 0.75, 1.0, 0.625}, 0.0, "clamp(x, lo, hi): gradient of x");
      check_values(in[1].grad(), {0.875, 0.0, 0.75, 1.0}, 0.0, "clamp(x, lo, hi): gradient of lo");
      check_values(in[2].grad(), {0.0, 0.25, 0.625}, 0.0, "clamp(x, lo, hi): gradient of hi");
    }
    struct OneBound {
      const char* name;
      std::function<Tensor<double>(const Tensor<double>&, const Tensor<double>&)> f;  // (x, bound)
      Tensor<double> bound;
      const char* bound_name;
      std::vector<double> y, gx, gbound;
    };
    const std::vector<OneBound> one_bound = {
        {"clamp(x, min=lo)", [](const auto& x, const auto& b) { return ember::clamp(x, b); }, lo0, "lo", y_max, gx_max, glo_max},
        {"clamp_min(x, lo)", [](const auto& x, const auto& b) { return ember::clamp_min(x, b); }, lo0, "lo", y_max, gx_max, glo_max},
        {"maximum(x, lo)", [](const auto& x, const auto& b) { return ember::maximum(x, b); }, lo0, "lo", y_max, gx_max, glo_max},
        {"maximum(lo, x)", [](const auto& x, const auto& b) { return ember::maximum(b, x); }, lo0, "lo", y_max, gx_max, glo_max},
        {"clamp(x, max=hi)", [](const auto& x, const auto& b) { return ember::clamp(x, std::nullopt, b); }, hi0, "hi", y_min, gx_min, ghi_min},
        {"clamp_max(x, hi)", [](const auto& x, const auto& b) { return ember::clamp_max(x, b); }, hi0, "hi", y_min, gx_min, ghi_min},
        {"minimum(hi, x)", [](const auto& x, const auto& b) { return ember::minimum(b, x); }, hi0, "hi", y_min, gx_min, ghi_min}};
    for (const OneBound& c : one_bound) {
      const V in = leaves({x0, c.bound});
      const Tensor<double> y = c.f(in[0], in[1]);
      y.backward(up(y.shape()).to(dev));
      check_values(y, c.y, 0.0, c.name);
      check_values(in[0].grad(), c.gx, 0.0, std::string(c.name) + ": gradient of x");
      check_values(in[1].grad(), c.gbound, 0.0, std::string(c.name) + ": gradient of " + c.bound_name);
    }
    {  // a bound that needs no gradient gets none, and the input's is unchanged
      const V in = leaves({x0});
      const Tensor<double> y = ember::clamp(in[0], lo0.to(dev), hi0.to(dev));
      y.backward(up(y.shape()).to(dev));
      check_values(in[0].grad(), {0.0, 0.5, 0.0, 0.0, 0.625, 1.5, 1.75, 0.0, 0.5, 0.75, 1.0, 0.625}, 0.0, "clamp(x, constant lo, constant hi): gradient of x");
    }
    {  // the bounds broadcast the output: x (4) against lo (3, 1)
      const Tensor<double> y = ember::maximum(Tensor<double>::from_list({0.0, 1.0, 2.0, 3.0}).to(dev),
                                              Tensor<double>::from_list({1.5, -1.0, 2.5}, {3, 1}).to(dev));
      REQUIRE(y.shape() == Shape{3, 4});
      check_values(y, {1.5, 1.5, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0, 2.5, 2.5, 2.5, 3.0}, 0.0, "maximum, broadcast output");
    }
  }
}

TEST_CASE("where, masked_fill and clamp gradients match finite differences",
          "[op][where][masked_fill][clamp]") {
  using ember::test::check_gradients_cpu;
  const Mask cond = ember::gt(ember::test::random_tensor<double>({3, 1, 5}, 41), 0.0);
  const Tensor<double> a = ember::test::random_tensor<double>({4, 1}, 42);
  const Tensor<double> b = ember::test::random_tensor<double>({3, 4, 5}, 43);
  check_gradients_cpu([cond](const V& in) { return ember::where(cond, in[0], in[1]); }, {a, b}, "where, broadcast");
  check_gradients_cpu([cond](const V& in) { return ember::where(cond.transpose(0, 2), in[1].transpose(0, 2), in[0]); },
                      {a, b}, "where, transposed");
  const Mask m = ember::lt(ember::test::random_tensor<double>({4, 5}, 44), 0.3);
  check_gradients_cpu([m](const V& in) { return ember::masked_fill(in[0], m, 2.5); }, {b}, "masked_fill");
  // |x - bound| >= 0.05: x = 0.7 + y, |y| in [0.05, 1], bounds 0.7 and 1.2 kept clear below
  Tensor<double> x = ember::test::away_from_zero<double>({6, 7}, 45);
  x = ember::add_scalar(x, 0.7);
  check_gradients_cpu([](const V& in) { return ember::clamp(in[0], 0.7); }, {x}, "clamp(min)");
  check_gradients_cpu([](const V& in) { return ember::clamp(in[0], std::nullopt, 0.7); }, {x}, "clamp(max)");
  check_gradients_cpu([](const V& in) { return ember::clamp_min(in[0], 0.7); }, {x}, "clamp_min");
  check_gradients_cpu([](const V& in) { return ember::clamp_max(in[0], 0.7); }, {x}, "clamp_max");
  Tensor<double> y = ember::test::away_from_zero<double>({6, 7}, 46, 0.1);  // |y| in [0.1, 1]
  check_gradients_cpu([](const V& in) { return ember::clamp(in[0], -0.05, 0.05); }, {y}, "clamp(min, max), outside");
  check_gradients_cpu([](const V& in) { return ember::clamp(in[0], -2.0, 2.0); }, {y}, "clamp(min, max), inside");
  // tensor bounds, broadcast: x on a grid of 0.01, the bounds 0.005 off it (no ties within
  // the finite-difference step), lo > hi at some elements
  const auto grid = [](const Shape& shape, double step, double offset, double span) {
    std::vector<double> v(static_cast<std::size_t>(ember::numel_of(shape)));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::fmod(static_cast<double>(i) * step, span) - span / 2 + offset;
    return Tensor<double>::from_vector(v, shape);
  };
  const Tensor<double> xs = grid({4, 5}, 0.37, 0.0, 2.0);
  const Tensor<double> lo = grid({5}, 0.2, -0.105, 1.0);
  const Tensor<double> hi = grid({4, 1}, 0.3, 0.405, 1.2);
  check_gradients_cpu([](const V& in) { return ember::clamp(in[0], in[1], in[2]); }, {xs, lo, hi}, "clamp(x, lo, hi)");
  check_gradients_cpu([](const V& in) { return ember::clamp(in[0], in[1]); }, {xs, lo}, "clamp(x, min=lo)");
  check_gradients_cpu([](const V& in) { return ember::clamp(in[0], std::nullopt, in[1]); }, {xs, hi}, "clamp(x, max=hi)");
  check_gradients_cpu([](const V& in) { return ember::maximum(in[0], in[1]); }, {lo, xs}, "maximum");
  check_gradients_cpu([](const V& in) { return ember::minimum(in[0].t(), in[1]); }, {xs, hi.reshape({1, 4})}, "minimum, transposed");
}

// Exact: the gradients' sum_to reductions have at most 32 terms, which the CUDA sum_to adds in
// the CPU's order (larger ones use a tree and agree to rounding).
TEST_CASE("comparisons, where, masked_fill and clamp agree on every device, exactly",
          "[op][compare][where][masked_fill][clamp]") {
  struct Case {
    Shape cond, a, b;
  };
  const std::vector<Case> cases = {{{3, 1, 7}, {5, 1}, {3, 5, 7}}, {{13}, {13}, {13}}, {{}, {2, 9}, {1}},
                                   {{2, 3, 1, 5}, {1, 1, 4, 5}, {3, 4, 1}}, {{0, 3}, {3}, {1, 3}}};
  std::uint64_t seed = 50;
  for (const Case& c : cases) {
    INFO("condition " << ember::shape_str(c.cond) << ", input " << ember::shape_str(c.a) << ", other " << ember::shape_str(c.b));
    const Tensor<float> ca = ember::test::random_tensor<float>(c.cond, seed++);
    const Mask cond = ember::gt(ca, 0.1f);
    auto where32 = [cond](const std::vector<Tensor<float>>& in) {
      return ember::where(cond.to(in[0].device()), in[0], in[1]);
    };
    auto where64 = [cond](const V& in) { return ember::where(cond.to(in[0].device()), in[0], in[1]); };
    ember::test::check_devices_agree<float>(where32, {ember::test::random_tensor<float>(c.a, seed++), ember::test::random_tensor<float>(c.b, seed++)}, 0.0, "where f32");
    ember::test::check_devices_agree<double>(where64, {ember::test::random_tensor<double>(c.a, seed++), ember::test::random_tensor<double>(c.b, seed++)}, 0.0, "where f64");
    auto fill64 = [cond](const V& in) { return ember::masked_fill(in[0], cond.to(in[0].device()), -3.0); };
    ember::test::check_devices_agree<double>(fill64, {ember::test::random_tensor<double>(c.b, seed++)}, 0.0, "masked_fill f64");
    // the masks themselves, with NaN operands
    for (const ember::Device dev : ember::test::op_devices()) {
      Tensor<double> a = ember::test::random_tensor<double>(c.a, seed);
      Tensor<double> b = ember::test::random_tensor<double>(c.b, seed + 1);
      if (a.numel() > 1) a.data()[1] = kNaN;
      if (b.numel() > 0) b.data()[0] = a.numel() > 0 ? a.data()[0] : 0.0;  // a tie
      for (const ember::CompareOp op : {ember::CompareOp::eq, ember::CompareOp::ne, ember::CompareOp::lt,
                                        ember::CompareOp::le, ember::CompareOp::gt, ember::CompareOp::ge}) {
        INFO("comparison " << static_cast<int>(op) << " on " << dev.str());
        CHECK(mask_values(ember::detail::compare(op, "compare", a.to(dev), b.to(dev))) ==
              mask_values(ember::detail::compare(op, "compare", a, b)));
      }
    }
    seed += 2;
  }
  for (const Case& c : cases) {  // clamp with tensor bounds on the same shapes, ties and NaN
    INFO("x " << ember::shape_str(c.a) << ", lo " << ember::shape_str(c.cond) << ", hi " << ember::shape_str(c.b));
    Tensor<double> x = ember::test::random_tensor<double>(c.a, seed++);
    Tensor<double> lo = ember::test::random_tensor<double>(c.cond, seed++, -1, 0.2);
    Tensor<double> hi = ember::test::random_tensor<double>(c.b, seed++, -0.2, 1);
    if (lo.numel() > 0 && x.numel() > 0) lo.data()[0] = x.data()[0];
    if (hi.numel() > 1 && x.numel() > 1) hi.data()[1] = x.data()[x.numel() - 1];
    if (x.numel() > 2) x.data()[2] = kNaN;
    const auto to_float = [](const Tensor<double>& t) {
      const std::vector<double> v = t.to_vector();
      return Tensor<float>::from_vector(std::vector<float>(v.begin(), v.end()), t.shape());
    };
    const Tensor<float> x32 = to_float(x), lo32 = to_float(lo), hi32 = to_float(hi);
    ember::test::check_devices_agree<double>([](const V& in) { return ember::clamp(in[0], in[1], in[2]); }, {x, lo, hi}, 1e-15, "clamp(x, lo, hi) f64");
    ember::test::check_devices_agree<float>([](const auto& in) { return ember::clamp(in[0], in[1], in[2]); }, {x32, lo32, hi32}, 1e-6, "clamp(x, lo, hi) f32");
    ember::test::check_devices_agree<double>([](const V& in) { return ember::maximum(in[0], in[1]); }, {x, lo}, 1e-15, "maximum f64");
    ember::test::check_devices_agree<float>([](const auto& in) { return ember::minimum(in[0], in[1]); }, {x32, hi32}, 1e-6, "minimum f32");
  }
  for (const Shape& shape : {Shape{3, 5, 7}, Shape{1}, Shape{17, 3}}) {
    Tensor<float> x32 = ember::test::random_tensor<float>(shape, seed++, -2, 2);
    Tensor<double> x64 = ember::test::random_tensor<double>(shape, seed++, -2, 2);
    x32.data()[0] = 0.5f;  // on a bound
    x64.data()[0] = 0.5;
    ember::test::check_devices_agree<float>([](const auto& in) { return ember::clamp(in[0], -0.5f, 0.5f); }, {x32}, 0.0, "clamp f32");
    ember::test::check_devices_agree<double>([](const auto& in) { return ember::clamp(in[0], -0.5, 0.5); }, {x64}, 0.0, "clamp f64");
    ember::test::check_devices_agree<double>([](const auto& in) { return ember::clamp_min(in[0], 0.5); }, {x64}, 0.0, "clamp_min f64");
    ember::test::check_devices_agree<double>([](const auto& in) { return ember::clamp(in[0], std::nullopt, 0.5); }, {x64}, 0.0, "clamp(max) f64");
  }
}

TEST_CASE("comparisons, where, masked_fill and clamp refuse bad arguments with errors naming them",
          "[op][compare][where][masked_fill][clamp]") {
  using ember::test::ErrorContains;
  const Tensor<double> x = Tensor<double>::zeros({2, 3});
  const Tensor<double> y = Tensor<double>::zeros({4});
  CHECK_THROWS_MATCHES(ember::gt(x, y), ember::Error, ErrorContains({"gt", "[2, 3]", "[4]", "cannot be broadcast"}));
  CHECK_THROWS_MATCHES(ember::where(mask_of({1, 0}, {2}), x, x), ember::Error,
                       ErrorContains({"where", "[2] (condition)", "[2, 3]", "cannot be broadcast"}));
  CHECK_THROWS_MATCHES(ember::where(mask_of({1, 0, 1}, {3}), x, y), ember::Error,
                       ErrorContains({"where", "[2, 3]", "[4]", "cannot be broadcast"}));
  CHECK_THROWS_MATCHES(ember::masked_fill(x, mask_of({1, 0}, {2}), 1.0), ember::Error,
                       ErrorContains({"masked_fill", "mask of shape [2]", "input of shape [2, 3]"}));
  CHECK_THROWS_MATCHES(ember::clamp(x), ember::Error, ErrorContains({"clamp", "at least one of 'min' or 'max'"}));
  CHECK_THROWS_MATCHES(ember::clamp(x, y), ember::Error, ErrorContains({"clamp", "input of shape [2, 3]", "bound of shape [4]", "cannot be broadcast"}));
  CHECK_THROWS_MATCHES(ember::clamp(x, Tensor<double>::zeros({3}), y), ember::Error,
                       ErrorContains({"clamp", "bound of shape [4]", "with the other bound"}));
  CHECK_THROWS_MATCHES(ember::maximum(x, y), ember::Error, ErrorContains({"maximum", "[2, 3]", "[4]"}));
  CHECK_THROWS_MATCHES(ember::clamp(x, Tensor<double>(), Tensor<double>()), ember::Error,
                       ErrorContains({"clamp", "at least one bound must be a defined tensor"}));
  CHECK_THROWS_MATCHES(ember::minimum(y, x), ember::Error, ErrorContains({"minimum", "[4]", "[2, 3]"}));
  const auto devices = ember::test::op_devices();
  if (devices.size() > 1) {
    const Tensor<double> xc = x.to(devices[1]);
    CHECK_THROWS_MATCHES(ember::lt(x, xc), ember::Error, ErrorContains({"lt", "same device", "cpu", devices[1].str()}));
    CHECK_THROWS_MATCHES(ember::where(ember::gt(x, 0.0), xc, xc), ember::Error, ErrorContains({"where", "same device"}));
    CHECK_THROWS_MATCHES(ember::masked_fill(xc, ember::gt(x, 0.0), 1.0), ember::Error,
                         ErrorContains({"masked_fill", "device"}));
    CHECK_THROWS_MATCHES(ember::clamp(x, xc, x), ember::Error, ErrorContains({"clamp", "bounds on the input's device", devices[1].str()}));
    CHECK_THROWS_MATCHES(ember::maximum(xc, x), ember::Error, ErrorContains({"maximum", "device"}));
  }
}
