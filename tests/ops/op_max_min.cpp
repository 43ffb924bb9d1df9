// max / min along a dimension with indices, amax / amin, argmax / argmin and max / min of
// everything (ops/reduce.hpp; CPU kernel in backend/cpu/reduce.hpp, CUDA kernel in
// kernels/reduce.cuh): PyTorch goldens (values, indices, gradients, with ties and NaNs),
// finite-difference gradients, CPU vs CUDA (exact: the kernels run the same scans) and the
// errors. Runs on every backend (support/op_case.hpp).
//
// The goldens are PyTorch 2.15 in float64, made by:
//   x = torch.sin(torch.arange(24, dtype=torch.float64) * 1.3 + 0.2).reshape(2, 3, 4) * 2
//   t = torch.round(x * 1.5) / 2            # ties, and a -0.0 among the zeros
//   n = x.clone(); n[0, 1, 2] = n[0, 2, 2] = n[1, 0, 3] = float('nan')
//   for each input and case below (n: max(x, 1), min(x, 1, keepdim=True), amax(x, 1), max(x)):
//     x = input.clone().requires_grad_(); r = case(x); y = r.values if indices else r
//     y.backward(((torch.arange(y.numel()) % 7 + 1) / 4).double().reshape(y.shape))
//   cases: torch.max(x, 0), torch.max(x, 1), torch.max(x, -1), torch.min(x, 1, keepdim=True),
//          torch.amax(x, 1), torch.amax(x, (0, 2), keepdim=True), torch.amin(x, -1),
//          torch.amin(x), torch.max(x), torch.min(x)
//   and torch.argmax(x, 1), torch.argmin(x, 2), torch.argmax(x), torch.argmin(x) for each input.
// amax / amin / max() / min() split the gradient evenly among tied elements (t); max / min with
// a dim give it to the returned index (the first); NaN wins, and amax's gradient of a NaN slice
// is NaN while max()'s goes to the NaNs.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/reduce.hpp"

#include "support/inputs.hpp"
#include "support/matchers.hpp"
#include "support/op_case.hpp"

namespace {

using ember::Tensor;
using I64 = std::int64_t;
using TD = Tensor<double>;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TD golden_input(const std::string& name) {
  static const std::vector<double> x = {0.39733866159012243, 1.994989973208109, 0.6699763003118093, -1.6365542221288216, -1.5455289751119743, 0.8096998412331966, 1.9787164932467636, 0.24890884701412694, -1.8455508432256131, -1.2362742244740665, 1.184147029414446, 1.869790111049366, -0.18381370045536327, -1.9681300101632868, -0.8691312441437935, 1.5031468307042966, 1.6733112770721121, -0.6079292176220941, -1.9985519842732553, -0.46129141185479133, 1.7517621596217787, 1.3984800633101955, -1.0035786020411483, -1.9353922642676105};
  static const std::vector<double> t = {0.5, 1.5, 0.5, -1.0, -1.0, 0.5, 1.5, 0.0, -1.5, -1.0, 1.0, 1.5, -0.0, -1.5, -0.5, 1.0, 1.5, -0.5, -1.5, -0.5, 1.5, 1.0, -1.0, -1.5};
  std::vector<double> v = name == "x" ? x : name == "t" ? t : x;
  if (name == "n") v[6] = v[10] = v[15] = kNaN;
  return TD::from_vector(v, {2, 3, 4});
}

struct Golden {
  std::string input, call;
  std::vector<I64> shape;
  std::vector<double> y;
  std::vector<I64> indices;  // empty: the call returns values only
  std::vector<double> gx;
};

const std::vector<Golden>& goldens() {
  static const std::vector<Golden> g = {
  {"x", "ember::max(x, 0)", {3, 4},
   {0.39733866159012243, 1.994989973208109, 0.6699763003118093, 1.5031468307042966, 1.6733112770721121, 0.8096998412331966, 1.9787164932467636, 0.24890884701412694, 1.7517621596217787, 1.3984800633101955, 1.184147029414446, 1.869790111049366},
   {0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0},
   {0.25, 0.5, 0.75, 0.0, 0.0, 1.5, 1.75, 0.25, 0.0, 0.0, 1.0, 1.25, 0.0, 0.0, 0.0, 1.0, 1.25, 0.0, 0.0, 0.0, 0.5, 0.75, 0.0, 0.0}},
  {"x", "ember::max(x, 1)", {2, 4},
   {0.39733866159012243, 1.994989973208109, 1.9787164932467636, 1.869790111049366, 1.7517621596217787, 1.3984800633101955, -0.8691312441437935, 1.5031468307042966},
   {0, 0, 1, 2, 2, 2, 0, 0},
   {0.25, 0.5, 0.0, 0.0, 0.0, 0.0, 0.75, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.75, 0.25, 0.0, 0.0, 0.0, 0.0, 1.25, 1.5, 0.0, 0.0}},
  {"x", "ember::max(x, -1)", {2, 3},
   {1.994989973208109, 1.9787164932467636, 1.869790111049366, 1.5031468307042966, 1.6733112770721121, 1.7517621596217787},
   {1, 2, 3, 3, 0, 0},
   {0.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.75, 0.0, 0.0, 0.0, 1.0, 1.25, 0.0, 0.0, 0.0, 1.5, 0.0, 0.0, 0.0}},
  {"x", "ember::min(x, 1, true)", {2, 1, 4},
   {-1.8455508432256131, -1.2362742244740665, 0.6699763003118093, -1.6365542221288216, -0.18381370045536327, -1.9681300101632868, -1.9985519842732553, -1.9353922642676105},
   {2, 2, 0, 0, 0, 0, 1, 2},
   {0.0, 0.0, 0.75, 1.0, 0.0, 0.0, 0.0, 0.0, 0.25, 0.5, 0.0, 0.0, 1.25, 1.5, 0.0, 0.0, 0.0, 0.0, 1.75, 0.0, 0.0, 0.0, 0.0, 0.25}},
  {"x", "ember::amax(x, 1)", {2, 4},
   {0.39733866159012243, 1.994989973208109, 1.9787164932467636, 1.869790111049366, 1.7517621596217787, 1.3984800633101955, -0.8691312441437935, 1.5031468307042966},
   {},
   {0.25, 0.5, 0.0, 0.0, 0.0, 0.0, 0.75, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.75, 0.25, 0.0, 0.0, 0.0, 0.0, 1.25, 1.5, 0.0, 0.0}},
  {"x", "ember::amax(x, {0, 2}, true)", {1, 3, 1},
   {1.994989973208109, 1.9787164932467636, 1.869790111049366},
   {},
   {0.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.75, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
  {"x", "ember::amin(x, -1)", {2, 3},
   {-1.6365542221288216, -1.5455289751119743, -1.8455508432256131, -1.9681300101632868, -1.9985519842732553, -1.9353922642676105},
   {},
   {0.0, 0.0, 0.0, 0.25, 0.5, 0.0, 0.0, 0.0, 0.75, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.25, 0.0, 0.0, 0.0, 0.0, 1.5}},
  {"x", "ember::amin(x)", {},
   {-1.9985519842732553},
   {},
   {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0}},
  {"x", "ember::max(x)", {},
   {1.994989973208109},
   {},
   {0.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
  {"x", "ember::min(x)", {},
   {-1.9985519842732553},
   {},
   {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0}},
  {"t", "ember::max(x, 0)", {3, 4},
   {0.5, 1.5, 0.5, 1.0, 1.5, 0.5, 1.5, 0.0, 1.5, 1.0, 1.0, 1.5},
   {0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0},
   {0.25, 0.5, 0.75, 0.0, 0.0, 1.5, 1.75, 0.25, 0.0, 0.0, 1.0, 1.25, 0.0, 0.0, 0.0, 1.0, 1.25, 0.0, 0.0, 0.0, 0.5, 0.75, 0.0, 0.0}},
  {"t", "ember::max(x, 1)", {2, 4},
   {0.5, 1.5, 1.5, 1.5, 1.5, 1.0, -0.5, 1.0},
   {0, 0, 1, 2, 1, 2, 0, 0},
   {0.25, 0.5, 0.0, 0.0, 0.0, 0.0, 0.75, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.75, 0.25, 1.25, 0.0, 0.0, 0.0, 0.0, 1.5, 0.0, 0.0}},
  {"t", "ember::max(x, -1)", {2, 3},
   {1.5, 1.5, 1.5, 1.0, 1.5, 1.5},
   {1, 2, 3, 3, 0, 0},
   {0.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.75, 0.0, 0.0, 0.0, 1.0, 1.25, 0.0, 0.0, 0.0, 1.5, 0.0, 0.0, 0.0}},
  {"t", "ember::min(x, 1, true)", {2, 1, 4},
   {-1.5, -1.0, 0.5, -1.0, -0.0, -1.5, -1.5, -1.5},
   {2, 2, 0, 0, 0, 0, 1, 2},
   {0.0, 0.0, 0.75, 1.0, 0.0, 0.0, 0.0, 0.0, 0.25, 0.5, 0.0, 0.0, 1.25, 1.5, 0.0, 0.0, 0.0, 0.0, 1.75, 0.0, 0.0, 0.0, 0.0, 0.25}},
  {"t", "ember::amax(x, 1)", {2, 4},
   {0.5, 1.5, 1.5, 1.5, 1.5, 1.0, -0.5, 1.0},
   {},
   {0.25, 0.5, 0.0, 0.0, 0.0, 0.0, 0.75, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.75, 0.25, 0.625, 0.0, 0.0, 0.0, 0.625, 1.5, 0.0, 0.0}},
  {"t", "ember::amax(x, {0, 2}, true)", {1, 3, 1},
   {1.5, 1.5, 1.5},
   {},
   {0.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.375, 0.0, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0, 0.375, 0.0, 0.0, 0.0}},
  {"t", "ember::amin(x, -1)", {2, 3},
   {-1.0, -1.0, -1.5, -1.5, -1.5, -1.5},
   {},
   {0.0, 0.0, 0.0, 0.25, 0.5, 0.0, 0.0, 0.0, 0.75, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.25, 0.0, 0.0, 0.0, 0.0, 1.5}},
  {"t", "ember::amin(x)", {},
   {-1.5},
   {},
   {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0625, 0.0, 0.0, 0.0, 0.0, 0.0625, 0.0, 0.0, 0.0, 0.0, 0.0625, 0.0, 0.0, 0.0, 0.0, 0.0625}},
  {"t", "ember::max(x)", {},
   {1.5},
   {},
   {0.0, 0.05, 0.0, 0.0, 0.0, 0.0, 0.05, 0.0, 0.0, 0.0, 0.0, 0.05, 0.0, 0.0, 0.0, 0.0, 0.05, 0.0, 0.0, 0.0, 0.05, 0.0, 0.0, 0.0}},
  {"t", "ember::min(x)", {},
   {-1.5},
   {},
   {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0625, 0.0, 0.0, 0.0, 0.0, 0.0625, 0.0, 0.0, 0.0, 0.0, 0.0625, 0.0, 0.0, 0.0, 0.0, 0.0625}},
  {"n", "ember::max(x, 1)", {2, 4},
   {0.39733866159012243, 1.994989973208109, kNaN, 1.869790111049366, 1.7517621596217787, 1.3984800633101955, -0.8691312441437935, kNaN},
   {0, 0, 1, 2, 2, 2, 0, 0},
   {0.25, 0.5, 0.0, 0.0, 0.0, 0.0, 0.75, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.75, 0.25, 0.0, 0.0, 0.0, 0.0, 1.25, 1.5, 0.0, 0.0}},
  {"n", "ember::min(x, 1, true)", {2, 1, 4},
   {-1.8455508432256131, -1.2362742244740665, kNaN, -1.6365542221288216, -0.18381370045536327, -1.9681300101632868, -1.9985519842732553, kNaN},
   {2, 2, 1, 0, 0, 0, 1, 0},
   {0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.75, 0.0, 0.25, 0.5, 0.0, 0.0, 1.25, 1.5, 0.0, 0.25, 0.0, 0.0, 1.75, 0.0, 0.0, 0.0, 0.0, 0.0}},
  {"n", "ember::amax(x, 1)", {2, 4},
   {0.39733866159012243, 1.994989973208109, kNaN, 1.869790111049366, 1.7517621596217787, 1.3984800633101955, -0.8691312441437935, kNaN},
   {},
   {0.25, 0.5, kNaN, 0.0, 0.0, 0.0, kNaN, 0.0, 0.0, 0.0, kNaN, 1.0, 0.0, 0.0, 1.75, kNaN, 0.0, 0.0, 0.0, kNaN, 1.25, 1.5, 0.0, kNaN}},
  {"n", "ember::max(x)", {},
   {kNaN},
   {},
   {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.08333333333333333, 0.0, 0.0, 0.0, 0.08333333333333333, 0.0, 0.0, 0.0, 0.0, 0.08333333333333333, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
  };
  return g;
}

// The C++ call of each golden: values and (when it has them) indices.
struct Result {
  TD y;
  Tensor<I64> indices;
};
Result call(const std::string& c, const TD& x) {
  auto vi = [](const ember::ValuesIndices<double>& r) { return Result{r.values, r.indices}; };
  if (c == "ember::max(x, 0)") return vi(ember::max(x, 0));
  if (c == "ember::max(x, 1)") return vi(ember::max(x, 1));
  if (c == "ember::max(x, -1)") return vi(ember::max(x, -1));
  if (c == "ember::min(x, 1, true)") return vi(ember::min(x, 1, true));
  if (c == "ember::amax(x, 1)") return {ember::amax(x, 1), {}};
  if (c == "ember::amax(x, {0, 2}, true)") return {ember::amax(x, {0, 2}, true), {}};
  if (c == "ember::amin(x, -1)") return {ember::amin(x, -1), {}};
  if (c == "ember::amin(x)") return {ember::amin(x), {}};
  if (c == "ember::max(x)") return {ember::max(x), {}};
  if (c == "ember::min(x)") return {ember::min(x), {}};
  FAIL("no call " << c);
  return {};
}

// Every element within `margin` of the golden, NaN matching NaN.
void check_golden_nan(const TD& got, const std::vector<double>& want, double margin, const std::string& what) {
  INFO(what);
  const std::vector<double> g = got.to(ember::Device::cpu()).to_vector();
  REQUIRE(g.size() == want.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i << ": got " << g[i] << ", want " << want[i]);
    CHECK(((std::isnan(g[i]) && std::isnan(want[i])) || std::abs(g[i] - want[i]) <= margin));
  }
}

}  // namespace

TEST_CASE("max, min, amax and amin match PyTorch's values, indices and gradients on every device",
          "[op][max]") {
  for (const ember::Device dev : ember::test::op_devices()) {
    for (const Golden& c : goldens()) {
      INFO("on " << dev.str() << ": " << c.call << " of " << c.input);
      TD x = golden_input(c.input).to(dev);
      x.requires_grad_();
      const Result r = call(c.call, x);
      REQUIRE(r.y.shape() == ember::Shape(c.shape.begin(), c.shape.end()));
      std::vector<double> gv(c.y.size());
      for (std::size_t i = 0; i < gv.size(); ++i) gv[i] = static_cast<double>(i % 7 + 1) / 4.0;
      r.y.backward(TD::from_vector(gv, r.y.shape()).to(dev));
      check_golden_nan(r.y, c.y, 0.0, "values");
      if (!c.indices.empty()) {
        REQUIRE(r.indices.shape() == r.y.shape());
        CHECK(r.indices.to(ember::Device::cpu()).to_vector() == c.indices);
      }
      // exact: a tie's share is g / count, one division as in PyTorch
      check_golden_nan(x.grad(), c.gx, 0.0, "input gradient");
    }
  }
}

TEST_CASE("argmax and argmin match PyTorch on every device", "[op][max][argmax]") {
  struct Case {
    std::string input;
    std::vector<I64> argmax1, argmin2, argmax_all, argmin_all;
  };
  const std::vector<Case> cases = {
      {"x", {0, 0, 1, 2, 2, 2, 0, 0}, {3, 0, 0, 1, 2, 3}, {1}, {18}},
      {"t", {0, 0, 1, 2, 1, 2, 0, 0}, {3, 0, 0, 1, 2, 3}, {1}, {8}},
      {"n", {0, 0, 1, 2, 2, 2, 0, 0}, {3, 2, 2, 3, 2, 3}, {6}, {6}},
  };
  for (const ember::Device dev : ember::test::op_devices())
    for (const Case& c : cases) {
      INFO("on " << dev.str() << ": " << c.input);
      for (const bool f32 : {false, true}) {
        const TD x64 = golden_input(c.input).to(dev);
        auto check = [&](const auto& x) {
          CHECK(ember::argmax(x, 1).to(ember::Device::cpu()).to_vector() == c.argmax1);
          CHECK(ember::argmin(x, 2).to(ember::Device::cpu()).to_vector() == c.argmin2);
          CHECK(ember::argmax(x, 1, true).shape() == ember::Shape{2, 1, 4});
          CHECK(ember::argmax(x).shape() == ember::Shape{});
          CHECK(ember::argmax(x).to(ember::Device::cpu()).to_vector() == c.argmax_all);
          CHECK(ember::argmin(x).to(ember::Device::cpu()).to_vector() == c.argmin_all);
        };
        if (f32) check(golden_input(c.input).cast<float>().to(dev));
        else check(x64);
      }
    }
  // integer tensors (the CPU): the first maximum / minimum
  const auto xi = Tensor<I64>::from_list({4, 9, 9, 2, 2, 7}, {2, 3});
  CHECK(ember::argmax(xi, 1).to_vector() == std::vector<I64>{1, 2});
  CHECK(ember::argmin(xi, 1).to_vector() == std::vector<I64>{0, 0});
  CHECK(ember::argmin(xi, 0).to_vector() == std::vector<I64>{1, 1, 1});
}

TEST_CASE("max, min, amax and amin gradients match finite differences", "[op][max]") {
  using Inputs = std::vector<TD>;
  // distinct values (0.01 apart, far above eps): no ties for the gradient to split
  const TD x = ember::test::distinct_values<double>({3, 5, 4}, 31);
  const std::vector<std::pair<std::string, ember::test::OpFn<double>>> fns = {
      {"max(x, 0)", [](const Inputs& in) { return ember::max(in[0], 0).values; }},
      {"max(x, 1, keepdim)", [](const Inputs& in) { return ember::max(in[0], 1, true).values; }},
      {"min(x, 2)", [](const Inputs& in) { return ember::min(in[0], 2).values; }},
      {"min(x, -2)", [](const Inputs& in) { return ember::min(in[0], -2).values; }},
      {"amax(x, 1)", [](const Inputs& in) { return ember::amax(in[0], 1); }},
      {"amax(x, {0, 2}, keepdim)", [](const Inputs& in) { return ember::amax(in[0], {0, 2}, true); }},
      {"amin(x, {2, 1})", [](const Inputs& in) { return ember::amin(in[0], {2, 1}); }},
      {"amin(x)", [](const Inputs& in) { return ember::amin(in[0]); }},
      {"max(x)", [](const Inputs& in) { return ember::max(in[0]); }},
      {"min(x)", [](const Inputs& in) { return ember::min(in[0]); }},
      {"max(x.t(), 1)", [](const Inputs& in) { return ember::max(in[0].transpose(0, 2), 1).values; }},
  };
  for (const auto& [name, f] : fns) ember::test::check_gradients_cpu(f, {x}, name);
  // 0-d: max along its one pseudo-dimension is the tensor itself, index 0
  const auto s = TD::scalar(2.5);
  CHECK(ember::max(s, 0).values.item() == 2.5);
  CHECK(ember::max(s, -1, true).indices.shape() == ember::Shape{});
  CHECK(ember::min(s, 0).indices.item() == 0);
  ember::test::check_gradients_cpu([](const Inputs& in) { return ember::max(in[0], 0).values; }, {s}, "max of 0-d");
}

TEST_CASE("max, min, amax, amin, argmax and argmin agree on every device, exactly", "[op][max]") {
  // ties (values rounded to a coarse grid) and NaNs included: the kernels' rules must agree
  auto input = [](const ember::Shape& shape, std::uint64_t seed, bool nans) {
    TD x = ember::test::random_tensor<double>(shape, seed);
    double* p = x.data();
    for (I64 i = 0; i < x.numel(); ++i) p[i] = std::round(p[i] * 4) / 4;
    if (nans)
      for (I64 i = 5; i < x.numel(); i += 37) p[i] = kNaN;
    return x;
  };
  struct Case {
    ember::Shape shape;
    I64 dim;
  };
  const std::vector<Case> cases = {{{3, 37, 5}, 0},  {{3, 37, 5}, 1}, {{3, 37, 5}, 2}, {{301, 33}, 1},
                                   {{301, 33}, 0},   {{7, 1}, 1},     {{2, 3, 1000}, -1}, {{1, 1}, 0},
                                   {{5, 64, 3}, 1}};
  for (const Case& c : cases)
    for (const bool nans : {false, true}) {
      const std::string what = "dim " + std::to_string(c.dim) + " of " + ember::shape_str(c.shape) +
                               (nans ? " with NaNs" : "");
      const I64 d = c.dim;
      const TD x = input(c.shape, 17, nans);
      auto check_all = [&](auto tag) {
        using T = decltype(tag);
        const Tensor<T> xt = x.cast<T>();
        using Fn = ember::test::OpFn<T>;
        using In = std::vector<Tensor<T>>;
        const std::vector<std::pair<std::string, Fn>> fns = {
            {"max", [d](const In& in) { return ember::max(in[0], d).values; }},
            {"min keepdim", [d](const In& in) { return ember::min(in[0], d, true).values; }},
            {"amax", [d](const In& in) { return ember::amax(in[0], d); }},
            {"amin keepdim", [d](const In& in) { return ember::amin(in[0], d, true); }},
            {"amax of all", [](const In& in) { return ember::amax(in[0]); }},
            {"max of all", [](const In& in) { return ember::max(in[0]); }},
            {"min of all", [](const In& in) { return ember::min(in[0]); }},
        };
        for (const auto& [name, f] : fns) ember::test::check_devices_agree<T>(f, {xt}, 0.0, name + " " + what);
        const auto devices = ember::test::op_devices();
        const auto want_max = ember::max(xt, d).indices.to_vector();
        const auto want_amin = ember::argmin(xt, d, true).to_vector();
        for (std::size_t k = 1; k < devices.size(); ++k) {
          INFO("indices on " << devices[k].str() << ", " << what);
          CHECK(ember::max(xt.to(devices[k]), d).indices.to(ember::Device::cpu()).to_vector() == want_max);
          CHECK(ember::argmin(xt.to(devices[k]), d, true).to(ember::Device::cpu()).to_vector() == want_amin);
        }
      };
      check_all(float{});
      check_all(double{});
    }
}

TEST_CASE("max, min, amax and argmax refuse bad dimensions with errors naming them", "[op][max]") {
  using ember::test::ErrorContains;
  const auto x = Tensor<float>::ones({2, 3});
  const auto empty = Tensor<float>::zeros({2, 0});
  CHECK_THROWS_MATCHES(ember::max(x, 2), ember::Error, ErrorContains({"max()", "dimension 2 out of range", "rank 2"}));
  CHECK_THROWS_MATCHES(ember::min(x, -3), ember::Error, ErrorContains({"min()", "dimension -3", "[-2, 1]"}));
  CHECK_THROWS_MATCHES(ember::amax(x, {0, 5}), ember::Error, ErrorContains({"amax()", "dimension 5"}));
  CHECK_THROWS_MATCHES(ember::amin(x, {1, -1}), ember::Error, ErrorContains({"amin()", "dimension 1 appears more than once"}));
  CHECK_THROWS_MATCHES(ember::argmin(x, 2), ember::Error, ErrorContains({"argmin()", "dimension 2"}));
  CHECK_THROWS_MATCHES(ember::max(empty, 1), ember::Error, ErrorContains({"max()", "dimension 1 of input [2, 0] is empty"}));
  CHECK_THROWS_MATCHES(ember::amax(empty, 1), ember::Error, ErrorContains({"amax()", "[2, 0] is empty"}));
  CHECK_THROWS_MATCHES(ember::amin(empty), ember::Error, ErrorContains({"amin()", "[2, 0] is empty"}));
  CHECK_THROWS_MATCHES(ember::argmax(empty, 1), ember::Error, ErrorContains({"argmax()", "[2, 0] is empty"}));
  CHECK_THROWS_MATCHES(ember::max(empty), ember::Error, ErrorContains({"max()", "[2, 0] is empty", "dim"}));
  // an empty dimension that is not reduced is fine: max over dim 0 of [2, 0] is [0]
  CHECK(ember::max(empty, 0).values.shape() == ember::Shape{0});
  CHECK(ember::amax(empty, 0, true).shape() == ember::Shape{1, 0});
}
