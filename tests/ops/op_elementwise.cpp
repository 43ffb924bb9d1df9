// add, sub, mul, div (broadcasting, views, the operators and their scalar forms), neg,
// add_scalar, mul_scalar, exp, log, pow (ops/elementwise.hpp; CPU kernels in
// backend/cpu/elementwise.hpp, CUDA kernels in kernels/elementwise.cuh): finite-difference
// gradients in double, and every device against the CPU (support/op_case.hpp).
//
// Tolerances: + - * / and their scalar forms and neg are one IEEE operation per element on
// every device, so the forward pass is exact; a broadcast operand's gradient is a sum (sum_to)
// whose order may differ, within rounding_tol scaled by the same sum of |terms|
// (Bound::magnitudes). exp, log, pow: within a few ulp (CUDA's libm and glibc are each within
// 1-4 ulp of the true value).

#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"

#include "support/inputs.hpp"
#include "support/op_case.hpp"

namespace {

using ember::Device;
using ember::Shape;
using ember::Tensor;
using ember::test::agree;
using ember::test::Bound;
using ember::test::random_tensor;

enum class Bin { add, sub, mul, div };

template <class T>
Tensor<T> apply_binary(Bin op, const Tensor<T>& a, const Tensor<T>& b) {
  switch (op) {
    case Bin::add: return ember::add(a, b);
    case Bin::sub: return ember::sub(a, b);
    case Bin::mul: return ember::mul(a, b);
    case Bin::div: return ember::div(a, b);
  }
  return {};
}

const char* bin_name(Bin op) {
  switch (op) {
    case Bin::add: return "add";
    case Bin::sub: return "sub";
    case Bin::mul: return "mul";
    case Bin::div: return "div";
  }
  return "?";
}

// One operand: stored with shape `stored`, then viewed by `view` inside the op.
template <class T>
struct Operand {
  Shape stored;
  std::function<Tensor<T>(const Tensor<T>&)> view;
};

template <class T>
struct BinaryCase {
  const char* name;
  Operand<T> a, b;
};

template <class T>
std::vector<BinaryCase<T>> binary_cases() {
  using V = std::function<Tensor<T>(const Tensor<T>&)>;
  const V same = [](const Tensor<T>& t) { return t; };
  const V transposed = [](const Tensor<T>& t) { return t.t(); };
  return {
      {"same shape (5, 7)", {{5, 7}, same}, {{5, 7}, same}},
      {"(5, 1) with (1, 7)", {{5, 1}, same}, {{1, 7}, same}},
      {"(1, 7) with (5, 1)", {{1, 7}, same}, {{5, 1}, same}},
      {"(3, 4, 5) with (5)", {{3, 4, 5}, same}, {{5}, same}},
      {"(3, 1, 5) with (4, 1)", {{3, 1, 5}, same}, {{4, 1}, same}},
      {"0-d scalar with (6, 7)", {{}, same}, {{6, 7}, same}},
      {"(6, 7) with 0-d scalar", {{6, 7}, same}, {{}, same}},
      {"0-d with 0-d", {{}, same}, {{}, same}},
      {"transposed (7, 5)^T with (5, 7)", {{7, 5}, transposed}, {{5, 7}, same}},
      {"(5, 7) with transposed (7, 5)^T", {{5, 7}, same}, {{7, 5}, transposed}},
      {"both transposed, (7, 1)^T broadcast", {{7, 5}, transposed}, {{7, 1}, transposed}},
      {"sliced with step 2 (5, 15)[:, 1::2] with (5, 7)",
       {{5, 15}, [](const Tensor<T>& t) { return t.slice(1, 1, 15, 2); }},
       {{5, 7}, same}},
      {"sliced rows (9, 7)[2:7] with (1, 7)",
       {{9, 7}, [](const Tensor<T>& t) { return t.slice(0, 2, 7); }},
       {{1, 7}, same}},
      {"permuted (4, 3, 6) -> (6, 4, 3) with (4, 1)",
       {{4, 3, 6}, [](const Tensor<T>& t) { return t.permute({2, 0, 1}); }},
       {{4, 1}, same}},
      {"selected column (6, 8)[:, 3] with (5, 1)",
       {{6, 8}, [](const Tensor<T>& t) { return t.select(1, 3); }},
       {{5, 1}, same}},
      {"rank 6 broadcast", {{2, 1, 3, 1, 2, 1}, same}, {{1, 2, 1, 3, 1, 2}, same}},
      {"odd sizes (33, 1) with (1, 257)", {{33, 1}, same}, {{1, 257}, same}},
      {"large (1000, 3) with (3)", {{1000, 3}, same}, {{3}, same}},
      {"empty (0, 3) with (1, 3)", {{0, 3}, same}, {{1, 3}, same}},
  };
}

// Distance in units in the last place (same-sign values; a sign change counts as "far").
template <class T>
std::int64_t ulp_distance(T a, T b) {
  if (a == b || (std::isnan(a) && std::isnan(b))) return 0;
  if (std::isnan(a) || std::isnan(b) || std::signbit(a) != std::signbit(b))
    return std::numeric_limits<std::int64_t>::max();
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  const U ua = std::bit_cast<U>(std::fabs(a)), ub = std::bit_cast<U>(std::fabs(b));
  return static_cast<std::int64_t>(ua > ub ? ua - ub : ub - ua);
}

// got (computed on `on`) within max_ulps of the CPU's want, element for element.
template <class T>
void check_ulps(const Tensor<T>& got, const Tensor<T>& want, Device on, const std::string& what,
                std::int64_t max_ulps) {
  INFO(what << " on " << on.str() << " vs cpu");
  REQUIRE(got.defined());
  REQUIRE(want.defined());
  REQUIRE(got.device().str() == on.str());
  REQUIRE(got.shape() == want.shape());
  const std::vector<T> g = got.to_vector(), w = want.to_vector();
  std::size_t bad = 0, worst = 0;
  std::int64_t worst_ulps = -1;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const std::int64_t d = ulp_distance(g[i], w[i]);
    if (d <= max_ulps) continue;
    ++bad;
    if (d > worst_ulps) {
      worst_ulps = d;
      worst = i;
    }
  }
  INFO(bad << " of " << g.size() << " elements more than " << max_ulps << " ulp apart; worst at "
            << worst << ": got " << (g.empty() ? 0.0 : static_cast<double>(g[worst])) << ", want "
            << (w.empty() ? 0.0 : static_cast<double>(w[worst])));
  CHECK(bad == 0);
}

template <class T>
struct Unary {
  const char* name;
  std::function<Tensor<T>(const Tensor<T>&)> f;
  bool positive;  // defined (or differentiable) only for x > 0
};

template <class T>
std::vector<Unary<T>> exp_log_pow() {
  return {
      {"exp", [](const Tensor<T>& t) { return ember::exp(t); }, false},
      {"log", [](const Tensor<T>& t) { return ember::log(t); }, true},
      {"pow 2", [](const Tensor<T>& t) { return ember::pow(t, T(2)); }, false},
      {"pow 3", [](const Tensor<T>& t) { return ember::pow(t, T(3)); }, false},
      {"pow 0.5", [](const Tensor<T>& t) { return ember::pow(t, T(0.5)); }, true},
      {"pow -1.5", [](const Tensor<T>& t) { return ember::pow(t, T(-1.5)); }, true},
      {"pow 1", [](const Tensor<T>& t) { return ember::pow(t, T(1)); }, false},
      {"pow 0", [](const Tensor<T>& t) { return ember::pow(t, T(0)); }, false},
  };
}

}  // namespace

TEMPLATE_TEST_CASE("add/sub/mul/div with broadcasting and views agree on every device (exact forward)",
                   "[op][elementwise]", float, double) {
  using T = TestType;
  std::uint64_t seed = 100;
  for (const auto& c : binary_cases<T>()) {
    for (Bin op : {Bin::add, Bin::sub, Bin::mul, Bin::div}) {
      const std::string what = std::string(bin_name(op)) + ", " + c.name;
      const Tensor<T> a = random_tensor<T>(c.a.stored, ++seed, -2.0, 2.0);
      // Divisors in [0.5, 2): no overflow, so every result is a finite IEEE quotient.
      const Tensor<T> b = op == Bin::div ? random_tensor<T>(c.b.stored, ++seed, 0.5, 2.0)
                                         : random_tensor<T>(c.b.stored, ++seed, -2.0, 2.0);
      const auto va = c.a.view, vb = c.b.view;
      const ember::test::OpFn<T> f = [op, va, vb](const std::vector<Tensor<T>>& v) {
        return apply_binary(op, va(v[0]), vb(v[1]));
      };
      // Forward: one IEEE operation per element on every device. Backward: broadcasting
      // reduces the gradient (sum_to), whose summation order may differ.
      ember::test::check_devices_agree<T>(f, {a, b}, agree<T>(Bound::exact, Bound::magnitudes), what, ++seed);
    }
  }
}

TEST_CASE("add/sub/mul/div gradients with broadcasting and views match finite differences", "[op][elementwise]") {
  std::uint64_t seed = 150;
  for (const auto& c : binary_cases<double>()) {
    if (c.a.stored == Shape{1000, 3}) continue;  // the same broadcast as (3, 4, 5) with (5), only longer
    for (Bin op : {Bin::add, Bin::sub, Bin::mul, Bin::div}) {
      const Tensor<double> a = random_tensor<double>(c.a.stored, ++seed, -2.0, 2.0);
      const Tensor<double> b = op == Bin::div ? random_tensor<double>(c.b.stored, ++seed, 0.5, 2.0)
                                              : random_tensor<double>(c.b.stored, ++seed, -2.0, 2.0);
      const auto va = c.a.view, vb = c.b.view;
      ember::test::check_gradients_cpu(
          [op, va, vb](const std::vector<Tensor<double>>& v) { return apply_binary(op, va(v[0]), vb(v[1])); },
          {a, b}, std::string(bin_name(op)) + ", " + c.name);
    }
  }
}

TEMPLATE_TEST_CASE("elementwise operators: the same tensor on both sides, scalar forms, chains agree on every device",
                   "[op][elementwise]", float, double) {
  using T = TestType;
  const Tensor<T> a = random_tensor<T>({6, 9}, 1, -2.0, 2.0), b = random_tensor<T>({6, 9}, 2, 0.5, 2.0);
  ember::test::check_devices_agree<T>(
      [](const std::vector<Tensor<T>>& v) { return (v[0] * v[0]) - (v[0] / v[1]); }, {a, b},
      agree<T>(Bound::exact, Bound::magnitudes), "a op a (one leaf used twice)", 3);
  ember::test::check_devices_agree<T>(
      [](const std::vector<Tensor<T>>& v) {
        return ((v[0] + T(0.75)) * T(-1.5) - T(0.25)) / T(4) + (T(3) - v[1]) + (T(2) * v[0]) + (T(-1) + v[1]);
      },
      {a, b}, agree<T>(Bound::exact, Bound::magnitudes), "scalar operator forms", 4);
  if constexpr (std::is_same_v<T, double>) {
    ember::test::check_gradients_cpu([](const std::vector<Tensor<T>>& v) { return (v[0] * v[0]) - (v[0] / v[1]); },
                                     {a, b}, "a op a (one leaf used twice)");
    ember::test::check_gradients_cpu(
        [](const std::vector<Tensor<T>>& v) {
          return ((v[0] + T(0.75)) * T(-1.5) - T(0.25)) / T(4) + (T(3) - v[1]) + (T(2) * v[0]) + (T(-1) + v[1]);
        },
        {a, b}, "scalar operator forms");
  }
}

TEMPLATE_TEST_CASE("neg, add_scalar, mul_scalar agree on every device exactly", "[op][elementwise]", float, double) {
  using T = TestType;
  const auto exact = agree<T>(Bound::exact, Bound::exact);
  const std::vector<Shape> shapes = {{}, {1}, {7}, {33, 17}, {4, 5, 6}, {0, 4}, {1001}};
  std::uint64_t seed = 300;
  for (const Shape& s : shapes) {
    const Tensor<T> x = random_tensor<T>(s, ++seed, -3.0, 3.0);
    INFO("shape " << ember::shape_str(s));
    ember::test::check_devices_agree<T>([](const std::vector<Tensor<T>>& v) { return ember::neg(v[0]); }, {x}, exact,
                                        "neg", ++seed);
    ember::test::check_devices_agree<T>(
        [](const std::vector<Tensor<T>>& v) { return ember::add_scalar(v[0], T(0.375)); }, {x}, exact, "add_scalar",
        ++seed);
    ember::test::check_devices_agree<T>(
        [](const std::vector<Tensor<T>>& v) { return ember::mul_scalar(v[0], T(-1.7)); }, {x}, exact, "mul_scalar",
        ++seed);
  }
  // A non-contiguous operand is made contiguous first.
  const Tensor<T> y = random_tensor<T>({9, 4}, 399);
  ember::test::check_devices_agree<T>(
      [](const std::vector<Tensor<T>>& v) { return ember::mul_scalar(v[0].t(), T(3.5)); }, {y}, exact,
      "mul_scalar of a transposed view", 398);
  ember::test::check_devices_agree<T>(
      [](const std::vector<Tensor<T>>& v) { return ember::neg(v[0].slice(0, 1, 9, 3)); }, {y}, exact,
      "neg of a sliced view", 397);
  if constexpr (std::is_same_v<T, double>) {
    const Tensor<T> z = random_tensor<T>({4, 5, 6}, 396, -3.0, 3.0);
    ember::test::check_gradients_cpu([](const std::vector<Tensor<T>>& v) { return ember::neg(v[0].slice(0, 1, 4, 2)); },
                                     {z}, "neg of a sliced view");
    ember::test::check_gradients_cpu([](const std::vector<Tensor<T>>& v) { return ember::add_scalar(v[0], 0.375); },
                                     {z}, "add_scalar");
    ember::test::check_gradients_cpu([](const std::vector<Tensor<T>>& v) { return ember::mul_scalar(v[0].t(), -1.7); },
                                     {y}, "mul_scalar of a transposed view");
  }
}

TEMPLATE_TEST_CASE("exp, log, pow agree on every device within a few ulp", "[op][elementwise]", float, double) {
  using T = TestType;
  // CUDA's exp/log are within 1-2 ulp, pow within 2-4; glibc's within 1.
  constexpr std::int64_t kUlps = 8;
  const auto devices = ember::test::op_devices();
  std::uint64_t seed = 500;
  for (const Shape& s : std::vector<Shape>{{}, {7}, {33, 65}, {3, 4, 5}, {2049}}) {
    INFO("shape " << ember::shape_str(s));
    const Tensor<T> x = random_tensor<T>(s, ++seed, -4.0, 4.0);
    const Tensor<T> pos = random_tensor<T>(s, ++seed, 0.05, 5.0);
    const Tensor<T> gy = random_tensor<T>(s, ++seed);
    for (const Unary<T>& op : exp_log_pow<T>()) {
      INFO(op.name);
      const Tensor<T> in = op.positive ? pos : x;
      Tensor<T> xc = in.clone().detach().requires_grad_(true);
      const Tensor<T> yc = op.f(xc);
      yc.backward(gy);
      for (std::size_t k = 1; k < devices.size(); ++k) {
        Tensor<T> xd = in.to(devices[k]).detach().requires_grad_(true);
        const Tensor<T> yd = op.f(xd);
        check_ulps(yd, yc, devices[k], std::string(op.name) + " forward", kUlps);
        yd.backward(gy.to(devices[k]));
        check_ulps(xd.grad(), xc.grad(), devices[k], std::string(op.name) + " backward", 2 * kUlps);
      }
    }
  }
}

TEST_CASE("exp, log, pow gradients match finite differences", "[op][elementwise]") {
  const Tensor<double> x = random_tensor<double>({3, 4, 5}, 590, -4.0, 4.0);
  const Tensor<double> pos = random_tensor<double>({3, 4, 5}, 591, 0.05, 5.0);
  for (const Unary<double>& op : exp_log_pow<double>()) {
    const auto f = op.f;
    ember::test::check_gradients_cpu([f](const std::vector<Tensor<double>>& v) { return f(v[0]); },
                                     {op.positive ? pos : x}, op.name);
  }
}
