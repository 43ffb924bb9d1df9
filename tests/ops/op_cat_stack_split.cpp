// cat, stack, split and chunk (ops/cat.hpp: compositions of slice, copy_ and unsqueeze, so no
// kernel of their own): PyTorch goldens, finite-difference gradients (including pieces of a
// split that are not used), CPU vs CUDA (exact: copies), views, and the errors. Runs on every
// backend (support/op_case.hpp).
//
// The goldens are PyTorch 2's, in float64, with
//   ramp(n, shape, start=0) = (((arange(n) + start) * 0.37 % 5) - 2).reshape(shape)
//   up(shape) = ((arange(numel) % 7 + 1) / 4).reshape(shape)   # the upstream gradient
// # cat: a = ramp(6, (2, 3)), b = ramp(2, (2, 1), 6), c = ramp(4, (2, 2), 8)
//   out = torch.cat([a, b, c], -1); out.backward(up(out.shape))
// # stack: xs = [ramp(6, (2, 3), 6 k) for k in 0, 1, 2]
//   out = torch.stack(xs, 1); out.backward(up(out.shape))
// # split: x = ramp(20, (5, 4)); p = x.split(2, 0); only p[0] and p[2] used
//   ((p[0] * up(p[0].shape)).sum() + (p[2] * 3).sum()).backward()
// # split with sizes: q = ramp(20, (5, 4)).split([1, 3], -1); only q[1] used
//   (q[1] * up(q[1].shape)).sum().backward()
// # chunk: ch = ramp(20, (4, 5)).chunk(3, 1) (widths 2, 2, 1); ch[1] and ch[2] used
//   ((ch[1] * up(ch[1].shape)).sum() - (ch[2] * 2).sum()).backward()

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/cat.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/reduce.hpp"

#include "support/inputs.hpp"
#include "support/matchers.hpp"
#include "support/op_case.hpp"

namespace {

using ember::Shape;
using ember::Tensor;
using V = std::vector<Tensor<double>>;

Tensor<double> ramp(std::int64_t n, const Shape& shape, std::int64_t start = 0) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = std::fmod(static_cast<double>(static_cast<std::int64_t>(i) + start) * 0.37, 5.0) - 2.0;
  return Tensor<double>::from_vector(v, shape);
}
Tensor<double> up(const Shape& shape) {
  std::vector<double> v(static_cast<std::size_t>(ember::numel_of(shape)));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i % 7 + 1) / 4.0;
  return Tensor<double>::from_vector(v, shape);
}
Tensor<double> leaf(const Tensor<double>& t, ember::Device dev) {
  Tensor<double> l = t.to(dev);
  l.requires_grad_();
  return l;
}
// The shapes of a split's pieces.
std::vector<Shape> shapes(const std::vector<Tensor<double>>& pieces) {
  std::vector<Shape> s;
  for (const auto& p : pieces) s.push_back(p.shape());
  return s;
}

}  // namespace

TEST_CASE("cat and stack match PyTorch's values and gradients on every device", "[op][cat][stack]") {
  using ember::test::check_golden;
  for (const ember::Device dev : ember::test::op_devices()) {
    INFO("on " << dev.str());
    {
      Tensor<double> a = leaf(ramp(6, {2, 3}), dev), b = leaf(ramp(2, {2, 1}, 6), dev), c = leaf(ramp(4, {2, 2}, 8), dev);
      const Tensor<double> out = ember::cat<double>({a, b, c}, -1);
      REQUIRE(out.shape() == Shape{2, 6});
      CHECK(out.device() == dev);
      out.backward(up(out.shape()).to(dev));
      check_golden(out, {-2.0, -1.63, -1.26, 0.21999999999999975, 0.96, 1.33, -0.8900000000000001, -0.52, -0.1499999999999999, 0.5899999999999999, 1.7000000000000002, 2.0700000000000003}, 0.0, "cat");
      check_golden(a.grad(), {0.25, 0.5, 0.75, 1.75, 0.25, 0.5}, 0.0, "cat: gradient of tensor 0");
      check_golden(b.grad(), {1.0, 0.75}, 0.0, "cat: gradient of tensor 1");
      check_golden(c.grad(), {1.25, 1.5, 1.0, 1.25}, 0.0, "cat: gradient of tensor 2");
    }
    {
      std::vector<Tensor<double>> xs;
      for (std::int64_t k = 0; k < 3; ++k) xs.push_back(leaf(ramp(6, {2, 3}, 6 * k), dev));
      const Tensor<double> out = ember::stack(xs, 1);
      REQUIRE(out.shape() == Shape{2, 3, 3});
      out.backward(up(out.shape()).to(dev));
      check_golden(out, {-2.0, -1.63, -1.26, 0.21999999999999975, 0.5899999999999999, 0.96, 2.4399999999999995, 2.8099999999999996, -1.8200000000000003, -0.8900000000000001, -0.52, -0.1499999999999999, 1.33, 1.7000000000000002, 2.0700000000000003, -1.4500000000000002, -1.08, -0.71}, 0.0, "stack");
      check_golden(xs[0].grad(), {0.25, 0.5, 0.75, 0.75, 1.0, 1.25}, 0.0, "stack: gradient of tensor 0");
      check_golden(xs[1].grad(), {1.0, 1.25, 1.5, 1.5, 1.75, 0.25}, 0.0, "stack: gradient of tensor 1");
      check_golden(xs[2].grad(), {1.75, 0.25, 0.5, 0.5, 0.75, 1.0}, 0.0, "stack: gradient of tensor 2");
    }
    // stack's dim in [-(rank + 1), rank]; cat skips 1-D empty tensors (PyTorch's legacy rule)
    const Tensor<double> x = ramp(6, {2, 3}).to(dev), y = ramp(6, {2, 3}, 6).to(dev);
    CHECK(ember::stack<double>({x, y}, -1).shape() == Shape{2, 3, 2});
    CHECK(ember::stack<double>({x, y}, 2).to(ember::Device::cpu()).to_vector() == ember::stack<double>({x, y}, -1).to(ember::Device::cpu()).to_vector());
    CHECK(ember::stack<double>({x, y}, -3).shape() == Shape{2, 2, 3});
    const Tensor<double> skipped = ember::cat<double>({Tensor<double>::empty({0}, dev), x, Tensor<double>::empty({0}, dev)}, 1);
    CHECK(skipped.shape() == Shape{2, 3});
    CHECK(skipped.to(ember::Device::cpu()).to_vector() == x.to(ember::Device::cpu()).to_vector());
    CHECK_FALSE(ember::cat<double>({x}).shares_storage(x));  // a copy, as in PyTorch
    CHECK(ember::cat<double>({Tensor<double>::empty({0}, dev), Tensor<double>::empty({0}, dev)}).shape() == Shape{0});
    // integer tensors and masks too
    const auto labels = Tensor<std::int64_t>::from_list({3, 1, 4, 1, 5, 9}, {2, 3}).to(dev);
    CHECK(ember::cat<std::int64_t>({labels, labels.slice(1, 1, 3)}, 1).to(ember::Device::cpu()).to_vector() ==
          std::vector<std::int64_t>{3, 1, 4, 1, 4, 1, 5, 9, 5, 9});
    const auto mask = Tensor<std::uint8_t>::from_list({1, 0, 0, 1}).to(dev);
    CHECK(ember::stack<std::uint8_t>({mask, mask}, 1).to(ember::Device::cpu()).to_vector() ==
          std::vector<std::uint8_t>{1, 1, 0, 0, 0, 0, 1, 1});
    CHECK(ember::chunk(mask, 2)[1].to(ember::Device::cpu()).to_vector() == std::vector<std::uint8_t>{0, 1});
  }
}

TEST_CASE("split and chunk match PyTorch's pieces and gradients, with pieces left unused, on every device",
          "[op][split][chunk]") {
  using ember::test::check_golden;
  for (const ember::Device dev : ember::test::op_devices()) {
    INFO("on " << dev.str());
    {
      Tensor<double> x = leaf(ramp(20, {5, 4}), dev);
      const auto p = ember::split(x, 2, 0);
      REQUIRE(shapes(p) == std::vector<Shape>{{2, 4}, {2, 4}, {1, 4}});
      for (const auto& piece : p) CHECK(piece.shares_storage(x));  // views
      ember::add(ember::sum(p[0] * up(p[0].shape()).to(dev)), ember::sum(p[2] * 3)).backward();
      check_golden(x.grad(), {0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 3.0, 3.0, 3.0}, 0.0, "split: gradient");
    }
    {
      Tensor<double> x = leaf(ramp(20, {5, 4}), dev);
      const auto q = ember::split(x, {1, 3}, -1);
      REQUIRE(shapes(q) == std::vector<Shape>{{5, 1}, {5, 3}});
      check_golden(q[1], {-1.63, -1.26, -0.8900000000000001, -0.1499999999999999, 0.21999999999999975, 0.5899999999999999, 1.33, 1.7000000000000002, 2.0700000000000003, 2.8099999999999996, -1.8200000000000003, -1.4500000000000002, -0.71, -0.33999999999999986, 0.03000000000000025}, 0.0, "split with sizes: piece 1");
      ember::sum(q[1] * up(q[1].shape()).to(dev)).backward();
      check_golden(x.grad(), {0.0, 0.25, 0.5, 0.75, 0.0, 1.0, 1.25, 1.5, 0.0, 1.75, 0.25, 0.5, 0.0, 0.75, 1.0, 1.25, 0.0, 1.5, 1.75, 0.25}, 0.0, "split with sizes: gradient");
    }
    {
      Tensor<double> x = leaf(ramp(20, {4, 5}), dev);
      const auto ch = ember::chunk(x, 3, 1);
      REQUIRE(shapes(ch) == std::vector<Shape>{{4, 2}, {4, 2}, {4, 1}});
      check_golden(ch[2], {-0.52, 1.33, -1.8200000000000003, 0.03000000000000025}, 0.0, "chunk: piece 2");
      ember::sub(ember::sum(ch[1] * up(ch[1].shape()).to(dev)), ember::sum(ch[2] * 2)).backward();
      check_golden(x.grad(), {0.0, 0.0, 0.25, 0.5, -2.0, 0.0, 0.0, 0.75, 1.0, -2.0, 0.0, 0.0, 1.25, 1.5, -2.0, 0.0, 0.0, 1.75, 0.25, -2.0}, 0.0, "chunk: gradient");
    }
    // PyTorch's piece counts: chunk(4) of 5 gives 3 pieces; an empty dimension gives `chunks`
    // empty pieces from chunk and one from split
    const Tensor<double> five = ramp(5, {5}).to(dev), none = Tensor<double>::empty({0}, dev);
    CHECK(shapes(ember::chunk(five, 4)) == std::vector<Shape>{{2}, {2}, {1}});
    CHECK(shapes(ember::chunk(none, 3)) == std::vector<Shape>{{0}, {0}, {0}});
    CHECK(shapes(ember::split(none, 2)) == std::vector<Shape>{{0}});
    CHECK(shapes(ember::split(none, 0)) == std::vector<Shape>{{0}});
    CHECK(shapes(ember::split(five, 5)) == std::vector<Shape>{{5}});
    CHECK(shapes(ember::split(five, 7)) == std::vector<Shape>{{5}});
    CHECK(shapes(ember::split(five, {0, 5, 0})) == std::vector<Shape>{{0}, {5}, {0}});
  }
}

TEST_CASE("cat, stack, split and chunk gradients match finite differences", "[op][cat][stack][split][chunk]") {
  using ember::test::check_gradients_cpu;
  using ember::test::random_tensor;
  const Tensor<double> a = random_tensor<double>({3, 2, 4}, 61), b = random_tensor<double>({3, 5, 4}, 62),
                       c = random_tensor<double>({3, 1, 4}, 63);
  check_gradients_cpu([](const V& in) { return ember::cat(in, 1); }, {a, b, c}, "cat dim 1");
  check_gradients_cpu([](const V& in) { return ember::cat<double>({in[1].transpose(0, 2), in[0].transpose(0, 2)}, -2); },
                      {a, b}, "cat of transposed inputs, dim -2");
  check_gradients_cpu([](const V& in) { return ember::cat<double>({in[0], in[0] * 2, in[0]}, 0); }, {a}, "cat of one input thrice");
  const Tensor<double> s0 = random_tensor<double>({2, 3}, 64), s1 = random_tensor<double>({2, 3}, 65);
  check_gradients_cpu([](const V& in) { return ember::stack(in, -1); }, {s0, s1}, "stack dim -1");
  check_gradients_cpu([](const V& in) { return ember::stack(in, 0); }, {s0, s1}, "stack dim 0");
  const Tensor<double> x = random_tensor<double>({7, 5}, 66);
  // only pieces 2 and 0 of a split by 3 (sizes 3, 3, 1) reach the output
  check_gradients_cpu([](const V& in) {
    const auto p = ember::split(in[0], 3, 0);
    return ember::cat<double>({p[2] * 2, p[0]}, 0);
  }, {x}, "split, two pieces of three used");
  check_gradients_cpu([](const V& in) {
    const auto p = ember::split(in[0], {2, 0, 3}, -1);
    return ember::mul(p[2], p[0].slice(1, 0, 1));
  }, {x}, "split with sizes");
  check_gradients_cpu([](const V& in) {
    const auto p = ember::chunk(in[0], 3, 1);
    return ember::cat<double>({p[1], p[2] * p[2]}, 1);
  }, {x}, "chunk, pieces 1 and 2 used");
}

TEST_CASE("cat, stack, split and chunk agree on every device, exactly", "[op][cat][stack][split][chunk]") {
  using ember::test::check_devices_agree;
  using ember::test::random_tensor;
  std::uint64_t seed = 70;
  for (const std::int64_t dim : {0, 1, 2, -1}) {
    INFO("dim " << dim);
    Shape s0{3, 5, 7}, s1{3, 5, 7}, s2{3, 5, 7};
    const auto d = static_cast<std::size_t>(dim < 0 ? dim + 3 : dim);
    s1[d] = 2;
    s2[d] = 1;
    const std::vector<Tensor<float>> in32 = {random_tensor<float>(s0, seed), random_tensor<float>(s1, seed + 1),
                                             random_tensor<float>(s2, seed + 2)};
    const V in64 = {random_tensor<double>(s0, seed), random_tensor<double>(s1, seed + 1), random_tensor<double>(s2, seed + 2)};
    seed += 3;
    check_devices_agree<float>([dim](const auto& in) { return ember::cat(in, dim); }, in32, 0.0, "cat f32");
    check_devices_agree<double>([dim](const auto& in) { return ember::cat(in, dim); }, in64, 0.0, "cat f64");
    check_devices_agree<double>([dim](const auto& in) { return ember::stack<double>({in[0], in[0] * 3}, dim); }, in64, 0.0,
                                "stack f64");
    check_devices_agree<float>([dim](const auto& in) {
      const auto p = ember::split(in[0], 2, dim);
      return ember::cat<float>({p.back(), p.front()}, dim);
    }, in32, 0.0, "split f32");
    check_devices_agree<double>([dim](const auto& in) {
      const auto p = ember::chunk(in[0], 2, dim);
      return ember::mul(p[0], p[0]);
    }, in64, 0.0, "chunk f64");
  }
}

TEST_CASE("cat, stack, split and chunk refuse bad arguments with errors naming them", "[op][cat][stack][split][chunk]") {
  using ember::test::ErrorContains;
  const Tensor<double> x = Tensor<double>::zeros({2, 3}), y = Tensor<double>::zeros({4, 5}), z = Tensor<double>::zeros({4});
  CHECK_THROWS_MATCHES(ember::cat(V{}), ember::Error, ErrorContains({"cat", "non-empty"}));
  CHECK_THROWS_MATCHES(ember::cat<double>({x, y}, 1), ember::Error,
                       ErrorContains({"cat", "except in dimension 1", "tensor 0 has shape [2, 3]", "tensor 1 has shape [4, 5]"}));
  CHECK_THROWS_MATCHES(ember::cat<double>({x, x, z}, 0), ember::Error,
                       ErrorContains({"cat", "same number of dimensions", "tensor 2 has shape [4]"}));
  CHECK_THROWS_MATCHES(ember::cat<double>({x, Tensor<double>::scalar(1.0)}), ember::Error,
                       ErrorContains({"cat", "zero-dimensional tensor (at position 1)"}));
  CHECK_THROWS_MATCHES(ember::cat<double>({x, x}, 2), ember::Error, ErrorContains({"cat", "dimension 2 out of range", "[-2, 1]"}));
  CHECK_THROWS_MATCHES(ember::stack(V{}), ember::Error, ErrorContains({"stack", "non-empty"}));
  CHECK_THROWS_MATCHES(ember::stack<double>({x, x, y}), ember::Error,
                       ErrorContains({"stack", "equal size", "[2, 3] at entry 0", "[4, 5] at entry 2"}));
  CHECK_THROWS_MATCHES(ember::stack<double>({x, x}, 3), ember::Error, ErrorContains({"stack", "dimension 3 out of range"}));
  CHECK_THROWS_MATCHES(ember::split(x, -1), ember::Error, ErrorContains({"split", "non-negative", "split_size=-1"}));
  CHECK_THROWS_MATCHES(ember::split(x, 0, 1), ember::Error, ErrorContains({"split", "only be 0 if dimension size is 0", "3"}));
  CHECK_THROWS_MATCHES(ember::split(x, {1, 1}, 1), ember::Error,
                       ErrorContains({"split_with_sizes", "sum exactly to 3", "dimension 1", "split_sizes=[1, 1]"}));
  CHECK_THROWS_MATCHES(ember::split(x, {4, -1}, 1), ember::Error, ErrorContains({"split_with_sizes", "non-negative", "[4, -1]"}));
  CHECK_THROWS_MATCHES(ember::split(x, 1, 2), ember::Error, ErrorContains({"split", "dimension 2 out of range"}));
  CHECK_THROWS_MATCHES(ember::split(Tensor<double>::scalar(1.0), 1), ember::Error, ErrorContains({"split", "1-dimensional"}));
  CHECK_THROWS_MATCHES(ember::chunk(x, 0), ember::Error, ErrorContains({"chunk", "greater than 0", "got: 0"}));
  CHECK_THROWS_MATCHES(ember::chunk(x, 2, -3), ember::Error, ErrorContains({"chunk", "dimension -3 out of range"}));
  const auto devices = ember::test::op_devices();
  if (devices.size() > 1) {
    CHECK_THROWS_MATCHES(ember::cat<double>({x, x.to(devices[1])}), ember::Error,
                         ErrorContains({"cat", "same device", "tensor 0 is on cpu", "tensor 1 on " + devices[1].str()}));
    CHECK_THROWS_MATCHES(ember::stack<double>({x.to(devices[1]), x}), ember::Error,
                         ErrorContains({"stack", "same device", "tensor 1 on cpu"}));
  }
}
