// Tests for ember/ops/elementwise.hpp: forward values against plain loops (with numpy
// broadcasting), finite-difference gradients of every op in double, and shape errors.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/reduce.hpp"

#include "support/gradcheck.hpp"
#include "support/inputs.hpp"
#include "support/matchers.hpp"

namespace {

using ember::Shape;
using ember::Tensor;
using ember::test::check_gradients;
using ember::test::ErrorContains;
using ember::test::random_tensor;
using TD = Tensor<double>;
using Inputs = std::vector<TD>;

// The element of `t` (shape s) that broadcasting reads for output index `idx` of shape out.
template <class T>
T broadcast_read(const Tensor<T>& t, const Shape& out, const Shape& idx) {
  const std::size_t lead = out.size() - t.shape().size();
  Shape ti(t.shape().size());
  for (std::size_t d = 0; d < ti.size(); ++d) ti[d] = t.shape()[d] == 1 ? 0 : idx[lead + d];
  return t.at(ti);
}

// All multi-indices of a shape, in C order.
std::vector<Shape> indices_of(const Shape& shape) {
  std::vector<Shape> out;
  Shape idx(shape.size(), 0);
  const std::int64_t n = ember::numel_of(shape);
  for (std::int64_t i = 0; i < n; ++i) {
    out.push_back(idx);
    for (std::size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

enum class BinOp { add, sub, mul, div };
const char* name_of(BinOp op) {
  switch (op) {
    case BinOp::add:
      return "add";
    case BinOp::sub:
      return "sub";
    case BinOp::mul:
      return "mul";
    case BinOp::div:
      return "div";
  }
  return "?";
}
template <class T>
Tensor<T> apply(BinOp op, const Tensor<T>& a, const Tensor<T>& b) {
  switch (op) {
    case BinOp::add:
      return ember::add(a, b);
    case BinOp::sub:
      return ember::sub(a, b);
    case BinOp::mul:
      return ember::mul(a, b);
    case BinOp::div:
      return ember::div(a, b);
  }
  return {};
}
double apply(BinOp op, double a, double b) {
  switch (op) {
    case BinOp::add:
      return a + b;
    case BinOp::sub:
      return a - b;
    case BinOp::mul:
      return a * b;
    case BinOp::div:
      return a / b;
  }
  return 0;
}

// Broadcasting pairs, odd sizes: [3,1,5] with [4,1], scalars, equal shapes, both expanding.
const std::vector<std::pair<Shape, Shape>> kBroadcastPairs = {
    {{3, 1, 5}, {4, 1}}, {{4, 1}, {3, 1, 5}}, {{2, 3}, {}}, {{}, {2, 3}}, {{2, 3}, {2, 3}},
    {{3, 1}, {1, 4}},    {{5}, {2, 1, 5}},    {{1}, {3}},   {{}, {}},     {{2, 1, 3}, {2, 5, 1}}};

}  // namespace

TEMPLATE_TEST_CASE("Binary ops broadcast like numpy", "[ops][elementwise]", float, double) {
  const auto [sa, sb] = GENERATE(from_range(kBroadcastPairs));
  const BinOp op = GENERATE(BinOp::add, BinOp::sub, BinOp::mul, BinOp::div);
  CAPTURE(sa, sb, name_of(op));
  const auto a = ember::test::away_from_zero<TestType>(sa, 1, 0.25);
  const auto b = ember::test::away_from_zero<TestType>(sb, 2, 0.25);
  const Shape out_shape = ember::broadcast_shapes(sa, sb);
  const auto y = apply(op, a, b);
  REQUIRE(y.shape() == out_shape);
  CHECK(y.is_contiguous());
  const double tol = std::is_same_v<TestType, float> ? 1e-6 : 1e-15;
  for (const Shape& idx : indices_of(out_shape)) {
    const double expected = apply(op, static_cast<double>(broadcast_read(a, out_shape, idx)),
                                  static_cast<double>(broadcast_read(b, out_shape, idx)));
    CHECK(static_cast<double>(y.at(idx)) == Approx(expected).epsilon(tol).margin(tol));
  }
}

TEST_CASE("Binary ops read non-contiguous operands correctly", "[ops][elementwise]") {
  const auto a = random_tensor<float>({4, 3}, 3);
  const auto b = random_tensor<float>({3, 4}, 4);
  const auto y = ember::add(a.t(), b);  // [3, 4] + [3, 4], a read transposed
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < 4; ++j) CHECK(y(i, j) == a(j, i) + b(i, j));
  const auto col = b.select(1, 2);                                   // [3], stride 4
  const auto z = ember::mul(b.slice(1, 0, 4, 2), col.unsqueeze(1));  // [3, 2] * [3, 1]
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < 2; ++j) CHECK(z(i, j) == b(i, 2 * j) * b(i, 2));
}

TEST_CASE("Large elementwise ops split over threads correctly", "[ops][elementwise]") {
  // Over 2^15 elements the contiguous paths run through parallel_for.
  const auto a = random_tensor<float>({257, 301}, 16);
  const auto b = random_tensor<float>({257, 301}, 17);
  const auto av = a.to_vector(), bv = b.to_vector();
  const auto sum = ember::add(a, b).to_vector();
  const auto prod = ember::mul(a, b).to_vector();
  const auto e = ember::exp(a).to_vector();
  std::size_t bad = 0;
  for (std::size_t i = 0; i < av.size(); ++i) {
    bad += sum[i] != av[i] + bv[i];
    bad += prod[i] != av[i] * bv[i];
    bad += std::abs(static_cast<double>(e[i]) - std::exp(static_cast<double>(av[i]))) >
           1e-6 * std::exp(static_cast<double>(av[i]));
  }
  CHECK(bad == 0);
}

TEST_CASE("Binary op gradients match finite differences", "[ops][elementwise][grad]") {
  const auto [sa, sb] = GENERATE(from_range(kBroadcastPairs));
  const BinOp op = GENERATE(BinOp::add, BinOp::sub, BinOp::mul, BinOp::div);
  CAPTURE(sa, sb, name_of(op));
  const TD a = ember::test::away_from_zero<double>(sa, 5, 0.5);
  const TD b = ember::test::away_from_zero<double>(sb, 6, 0.5);
  check_gradients([op](const Inputs& in) { return apply(op, in[0], in[1]); }, {a, b});
}

TEST_CASE("Operators and scalar forms agree with the named ops", "[ops][elementwise]") {
  const auto a = random_tensor<double>({2, 3}, 7);
  const auto b = ember::test::away_from_zero<double>({3}, 8, 0.5);
  CHECK((a + b).to_vector() == ember::add(a, b).to_vector());
  CHECK((a - b).to_vector() == ember::sub(a, b).to_vector());
  CHECK((a * b).to_vector() == ember::mul(a, b).to_vector());
  CHECK((a / b).to_vector() == ember::div(a, b).to_vector());
  CHECK((-a).to_vector() == ember::neg(a).to_vector());
  CHECK((a + 2.0).to_vector() == ember::add_scalar(a, 2.0).to_vector());
  CHECK((2.0 + a).to_vector() == ember::add_scalar(a, 2.0).to_vector());
  CHECK((a - 2.0).to_vector() == ember::add_scalar(a, -2.0).to_vector());
  CHECK((a * 3.0).to_vector() == ember::mul_scalar(a, 3.0).to_vector());
  CHECK((3.0 * a).to_vector() == ember::mul_scalar(a, 3.0).to_vector());
  const auto av = a.to_vector();
  const auto r = (1.0 - a).to_vector();
  const auto q = (a / 4.0).to_vector();
  for (std::size_t i = 0; i < av.size(); ++i) {
    CHECK(r[i] == 1.0 - av[i]);
    CHECK(q[i] == av[i] * 0.25);
  }
}

TEMPLATE_TEST_CASE("Unary ops compute their functions", "[ops][elementwise]", float, double) {
  const Shape shape = GENERATE(Shape{}, Shape{7}, Shape{3, 5}, Shape{2, 1, 3});
  CAPTURE(shape);
  const auto x = random_tensor<TestType>(shape, 9, 0.1, 2.0);  // positive, for log and pow
  const auto xv = x.to_vector();
  const double tol = std::is_same_v<TestType, float> ? 1e-6 : 1e-14;
  struct Case {
    const char* name;
    std::function<Tensor<TestType>(const Tensor<TestType>&)> op;
    std::function<double(double)> ref;
  };
  const std::vector<Case> cases = {
      {"neg", [](const auto& t) { return ember::neg(t); }, [](double v) { return -v; }},
      {"add_scalar", [](const auto& t) { return ember::add_scalar(t, TestType(0.75)); },
       [](double v) { return v + 0.75; }},
      {"mul_scalar", [](const auto& t) { return ember::mul_scalar(t, TestType(-1.5)); },
       [](double v) { return v * -1.5; }},
      {"exp", [](const auto& t) { return ember::exp(t); }, [](double v) { return std::exp(v); }},
      {"log", [](const auto& t) { return ember::log(t); }, [](double v) { return std::log(v); }},
      {"pow 3", [](const auto& t) { return ember::pow(t, TestType(3)); },
       [](double v) { return v * v * v; }},
      {"pow -1.5", [](const auto& t) { return ember::pow(t, TestType(-1.5)); },
       [](double v) { return std::pow(v, -1.5); }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const auto y = c.op(x);
    REQUIRE(y.shape() == shape);
    const auto yv = y.to_vector();
    for (std::size_t i = 0; i < xv.size(); ++i)
      CHECK(static_cast<double>(yv[i]) ==
            Approx(c.ref(static_cast<double>(xv[i]))).epsilon(tol).margin(tol));
  }
  // On a non-contiguous input.
  const auto m = random_tensor<TestType>({3, 4}, 10);
  const auto e = ember::exp(m.t());
  for (std::int64_t i = 0; i < 4; ++i)
    for (std::int64_t j = 0; j < 3; ++j)
      CHECK(static_cast<double>(e(i, j)) ==
            Approx(std::exp(static_cast<double>(m(j, i)))).epsilon(tol));
}

TEST_CASE("Unary op gradients match finite differences", "[ops][elementwise][grad]") {
  const Shape shape = GENERATE(Shape{}, Shape{7}, Shape{3, 5}, Shape{2, 1, 3});
  CAPTURE(shape);
  const TD x = random_tensor<double>(shape, 11, 0.2, 2.0);  // positive: log, fractional pow
  const TD s = random_tensor<double>(shape, 12, -1.0, 1.0);
  check_gradients([](const Inputs& in) { return ember::neg(in[0]); }, {s});
  check_gradients([](const Inputs& in) { return ember::add_scalar(in[0], 0.3); }, {s});
  check_gradients([](const Inputs& in) { return ember::mul_scalar(in[0], -2.5); }, {s});
  check_gradients([](const Inputs& in) { return ember::exp(in[0]); }, {s});
  check_gradients([](const Inputs& in) { return ember::log(in[0]); }, {x});
  check_gradients([](const Inputs& in) { return ember::pow(in[0], 3.0); }, {s});
  check_gradients([](const Inputs& in) { return ember::pow(in[0], 2.5); }, {x});
  check_gradients([](const Inputs& in) { return ember::pow(in[0], -1.5); }, {x});
  // Composite: x / (1 + exp(-x)) from primitives, and the operators.
  check_gradients([](const Inputs& in) { return in[0] / (1.0 + ember::exp(-in[0])); }, {s});
  check_gradients([](const Inputs& in) { return 2.0 - in[0] * 0.5; }, {s});
}

TEST_CASE("broadcast_to and sum_to are each other's backward", "[ops][elementwise]") {
  const auto t = Tensor<double>::from_list({1, 2, 3}, {3, 1});
  const auto b = ember::broadcast_to(t, {2, 3, 4});
  REQUIRE(b.shape() == Shape{2, 3, 4});
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t j = 0; j < 3; ++j)
      for (std::int64_t k = 0; k < 4; ++k) CHECK(b(i, j, k) == t(j, 0));
  CHECK(ember::broadcast_to(t, {3, 1}).shares_storage(t));  // same shape: no copy

  const auto g = random_tensor<double>({2, 3, 4}, 13);
  const auto s = ember::sum_to(g, {3, 1});
  REQUIRE(s.shape() == Shape{3, 1});
  for (std::int64_t j = 0; j < 3; ++j) {
    double acc = 0;
    for (std::int64_t i = 0; i < 2; ++i)
      for (std::int64_t k = 0; k < 4; ++k) acc += g(i, j, k);
    CHECK(s(j, 0) == Approx(acc).epsilon(1e-14));
  }
  CHECK(ember::sum_to(g, {}).item() == Approx(ember::sum(g).item()).epsilon(1e-14));
  CHECK(ember::sum_to(g, {4}).shape() == Shape{4});

  const auto pairs = GENERATE(values<std::pair<Shape, Shape>>(
      {{{3, 1}, {2, 3, 4}}, {{}, {2, 3}}, {{1, 5}, {3, 5}}, {{4}, {2, 1, 4}}}));
  CAPTURE(pairs.first, pairs.second);
  const Shape small = pairs.first, big = pairs.second;
  check_gradients([big](const Inputs& in) { return ember::broadcast_to(in[0], big); },
                  {random_tensor<double>(small, 14)});
  check_gradients([small](const Inputs& in) { return ember::sum_to(in[0], small); },
                  {random_tensor<double>(big, 15)});

  CHECK_THROWS_MATCHES(ember::broadcast_to(t, {3, 2, 2}), ember::Error,
                       ErrorContains({"[3, 1]", "[3, 2, 2]"}));
  CHECK_THROWS_MATCHES(ember::broadcast_to(t, {2, 1}), ember::Error,  // [3, 1] vs [2, 1]
                       ErrorContains({"[3, 1]", "[2, 1]"}));
  CHECK_THROWS_MATCHES(ember::broadcast_to(t, {3}), ember::Error,  // [3, 1] -> [3, 3] != [3]
                       ErrorContains({"broadcast_to", "[3, 1]", "[3]"}));
  CHECK_THROWS_MATCHES(ember::sum_to(g, {5}), ember::Error, ErrorContains({"[5]", "[2, 3, 4]"}));
  CHECK_THROWS_MATCHES(ember::sum_to(g, {1, 2, 3, 4}), ember::Error,
                       ErrorContains({"sum_to", "[2, 3, 4]", "[1, 2, 3, 4]"}));
}

TEST_CASE("Tensors of more than 8 dimensions broadcast on the CPU", "[ops][elementwise]") {
  // The kernels take at most 8 dimensions; the op merges the dimensions every operand walks alike
  // first, so these rank-10 operands run (as 3 and 2 dimensions), forward and backward.
  const Shape sa{2, 3, 1, 2, 1, 1, 2, 1, 1, 2}, sb{3, 1, 2, 2, 1, 1, 1, 1};
  const auto a = random_tensor<double>(sa, 21), b = random_tensor<double>(sb, 22);
  const auto y = ember::add(a, b);
  const Shape out{2, 3, 3, 2, 2, 2, 2, 1, 1, 2};
  REQUIRE(y.shape() == out);
  const auto ya = y.to_vector(), av = a.to_vector(), bv = b.to_vector();
  // element (i0, ..., i9) of the output reads a and b at the same index, 0 where they are 1
  auto flat = [](const Shape& shape, const Shape& idx) {
    std::int64_t f = 0;
    const std::size_t lead = idx.size() - shape.size();
    for (std::size_t d = 0; d < shape.size(); ++d)
      f = f * shape[d] + (shape[d] == 1 ? 0 : idx[lead + d]);
    return f;
  };
  for (std::int64_t i = 0; i < ember::numel_of(out); ++i) {
    Shape idx(out.size());
    std::int64_t r = i;
    for (std::size_t d = out.size(); d-- > 0;) {
      idx[d] = r % out[d];
      r /= out[d];
    }
    const auto ia = static_cast<std::size_t>(flat(sa, idx)), ib = static_cast<std::size_t>(flat(sb, idx));
    REQUIRE(ya[static_cast<std::size_t>(i)] == av[ia] + bv[ib]);
  }
  check_gradients([](const Inputs& in) { return ember::mul(in[0], in[1]); }, {a, b});
  // alternating broadcast dimensions cannot merge: 10 of them are refused, naming the shape
  CHECK_THROWS_MATCHES(ember::add(Tensor<float>::ones({2, 1, 2, 1, 2, 1, 2, 1, 2, 1}),
                                  Tensor<float>::ones({1, 2, 1, 2, 1, 2, 1, 2, 1, 2})),
                       ember::Error,
                       ErrorContains({"[2, 2, 2, 2, 2, 2, 2, 2, 2, 2]", "10 dimensions"}));
}

TEST_CASE("Mismatched shapes are refused with both shapes named", "[ops][elementwise][error]") {
  const auto a = Tensor<float>::ones({2, 3});
  const auto b = Tensor<float>::ones({4});
  CHECK_THROWS_MATCHES(ember::add(a, b), ember::Error,
                       ErrorContains({"[2, 3]", "[4]", "broadcast"}));
  CHECK_THROWS_MATCHES(ember::mul(Tensor<float>::ones({3, 1, 5}), Tensor<float>::ones({4, 2})),
                       ember::Error, ErrorContains({"[3, 1, 5]", "[4, 2]"}));
  CHECK_THROWS_AS(ember::sub(a, Tensor<float>::ones({3, 2})), ember::Error);
  CHECK_THROWS_AS(ember::div(a, Tensor<float>::ones({2, 2})), ember::Error);
}

TEST_CASE("scalar arithmetic takes any arithmetic literal, converted to the tensor's type", "[elementwise][scalar]") {
  const ember::Tensor<float> x = ember::Tensor<float>::from_vector({1.5f, -2.0f, 4.0f}, {3});
  CHECK((x * 2.0).to_vector() == std::vector<float>{3.0f, -4.0f, 8.0f});
  CHECK((x * 2).to_vector() == std::vector<float>{3.0f, -4.0f, 8.0f});
  CHECK((3u * x).to_vector() == std::vector<float>{4.5f, -6.0f, 12.0f});
  CHECK((1 - x).to_vector() == std::vector<float>{-0.5f, 3.0f, -3.0f});
  CHECK((x - 0.5).to_vector() == std::vector<float>{1.0f, -2.5f, 3.5f});
  CHECK((x + 1L).to_vector() == std::vector<float>{2.5f, -1.0f, 5.0f});
  CHECK((x / 2).to_vector() == std::vector<float>{0.75f, -1.0f, 2.0f});
  CHECK((2 / x).to_vector() == std::vector<float>{2.0f / 1.5f, -1.0f, 0.5f});
  CHECK(ember::pow(x, 2).to_vector() == std::vector<float>{2.25f, 4.0f, 16.0f});
  static_assert(std::is_same_v<decltype(x * 2.0), ember::Tensor<float>>);
  static_assert(std::is_same_v<decltype(1 - ember::Tensor<double>()), ember::Tensor<double>>);

  // gradients: d/dx sum(3 * x - 1 + 2 / x + x / 4) = 3 - 2 / x^2 + 1/4
  ember::Tensor<double> xd = ember::Tensor<double>::from_vector({0.5, -2.0, 4.0}, {3});
  xd.requires_grad_();
  ember::sum(3 * xd - 1 + 2 / xd + xd / 4).backward();
  const std::vector<double> g = xd.grad().to_vector();
  const std::vector<double> x0{0.5, -2.0, 4.0};
  for (std::size_t i = 0; i < 3; ++i) CHECK(g[i] == Approx(3.0 - 2.0 / (x0[i] * x0[i]) + 0.25));
}
