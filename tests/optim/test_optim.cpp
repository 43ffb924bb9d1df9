// Tests for ember/optim/sgd.hpp: SGD's update rule against torch.optim.SGD (PyTorch 1.13) for
// each option set, skipping of parameters without a gradient, rejection of invalid options,
// StepLR's schedule, and zero_grad.

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/optim/sgd.hpp"

namespace {

using ember::Tensor;
using ember::optim::SGD;
using ember::optim::SGDOptions;
using ember::optim::StepLR;
using Values = std::vector<float>;

Tensor<float> make_param(const Values& v) {
  Tensor<float> p = Tensor<float>::from_vector(v);
  p.requires_grad_(true);
  return p;
}

// Matches ember's float32 results to PyTorch's printed with 9 significant digits. The
// tolerance, 2e-7 relative plus 1e-7 absolute (about 2 float32 ulps near 1), covers a fused
// multiply-add on either side.
void check_values(const Tensor<float>& actual, const Values& expected) {
  const Values a = actual.to_vector();
  REQUIRE(a.size() == expected.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("element " << i);
    CHECK(a[i] == Approx(expected[i]).epsilon(2e-7).margin(1e-7));
  }
}

}  // namespace

// The reference numbers were printed by this snippet (PyTorch 1.13, /usr/bin/python3):
//
//   import torch
//   p0 = [0.5, -1.25, 2.0, 0.125]
//   grads = [[0.25, -0.5, 1.0, -2.0], [-0.75, 0.125, 0.5, 1.5], [0.3, 0.6, -0.9, 0.05]]
//   sets = {"plain": dict(lr=0.1), "momentum": dict(lr=0.1, momentum=0.9),
//           "dampening": dict(lr=0.1, momentum=0.9, dampening=0.1),
//           "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
//           "weight_decay": dict(lr=0.1, momentum=0.5, weight_decay=0.01)}
//   for name, kw in sets.items():
//       p = torch.tensor(p0, dtype=torch.float32, requires_grad=True)
//       opt = torch.optim.SGD([p], **kw)
//       for g in grads:
//           p.grad = torch.tensor(g, dtype=torch.float32)
//           opt.step()
//           print(name, ", ".join("%.9g" % v for v in p.detach().tolist()))
TEST_CASE("SGD follows torch.optim.SGD step by step", "[optim][sgd]") {
  const Values p0 = {0.5f, -1.25f, 2.0f, 0.125f};
  const std::vector<Values> grads = {
      {0.25f, -0.5f, 1.0f, -2.0f}, {-0.75f, 0.125f, 0.5f, 1.5f}, {0.3f, 0.6f, -0.9f, 0.05f}};

  struct Case {
    std::string name;
    SGDOptions options;
    std::vector<Values> after;  // the parameter after each step
  };
  const std::vector<Case> cases = {
      {"plain",
       {.lr = 0.1},
       {{0.474999994f, -1.20000005f, 1.89999998f, 0.324999988f},
        {0.550000012f, -1.2125001f, 1.85000002f, 0.174999982f},
        {0.519999981f, -1.27250016f, 1.94000006f, 0.169999987f}}},
      {"momentum 0.9",
       {.lr = 0.1, .momentum = 0.9},
       {{0.474999994f, -1.20000005f, 1.89999998f, 0.324999988f},
        {0.527499974f, -1.16750002f, 1.75999999f, 0.354999989f},
        {0.544749975f, -1.19825006f, 1.72399998f, 0.376999974f}}},
      {"momentum 0.9, dampening 0.1",
       {.lr = 0.1, .momentum = 0.9, .dampening = 0.1},
       {{0.474999994f, -1.20000005f, 1.89999998f, 0.324999988f},
        {0.519999981f, -1.16624999f, 1.76499999f, 0.369999975f},
        {0.533499956f, -1.18987501f, 1.72449994f, 0.405999988f}}},
      {"nesterov, momentum 0.9",
       {.lr = 0.1, .momentum = 0.9, .nesterov = true},
       {{0.452499986f, -1.15499997f, 1.80999994f, 0.504999995f},
        {0.574750006f, -1.13824999f, 1.63399994f, 0.381999999f},
        {0.560275018f, -1.22592497f, 1.69159997f, 0.396799982f}}},
      {"weight_decay 0.01, momentum 0.5",
       {.lr = 0.1, .momentum = 0.5, .weight_decay = 0.01},
       {{0.4745f, -1.19875002f, 1.898f, 0.324874997f},
        {0.536275506f, -1.18442631f, 1.795102f, 0.274487615f},
        {0.536626995f, -1.23608005f, 1.83185792f, 0.244019449f}}},
  };
  for (const Case& c : cases) {
    SECTION(c.name) {
      Tensor<float> p = make_param(p0);
      SGD opt({p}, c.options);
      for (std::size_t step = 0; step < grads.size(); ++step) {
        INFO("step " << step + 1);
        p.set_grad(Tensor<float>::from_vector(grads[step]));
        opt.step();
        check_values(p, c.after[step]);
      }
      CHECK(opt.steps() == 3);
    }
  }
}

TEST_CASE("SGD skips parameters without a gradient", "[optim][sgd]") {
  Tensor<float> a = make_param({1.0f, 2.0f}), b = make_param({3.0f, 4.0f});
  SGD opt({a, b}, {.lr = 0.5, .momentum = 0.9});
  a.set_grad(Tensor<float>::from_vector({1.0f, -1.0f}));
  opt.step();
  check_values(a, {0.5f, 2.5f});
  check_values(b, {3.0f, 4.0f});  // untouched
  CHECK(opt.momentum_buffers()[0].defined());
  CHECK_FALSE(opt.momentum_buffers()[1].defined());  // no buffer either, as in PyTorch

  // b's first step with a gradient starts its buffer at that gradient (buf = g), while a's
  // momentum carries on: buf = 0.9 * [1, -1] + [1, -1].
  a.set_grad(Tensor<float>::from_vector({1.0f, -1.0f}));
  b.set_grad(Tensor<float>::from_vector({2.0f, 2.0f}));
  opt.step();
  check_values(a, {0.5f - 0.5f * 1.9f, 2.5f + 0.5f * 1.9f});
  check_values(b, {2.0f, 3.0f});
}

TEST_CASE("SGD reads a gradient of any layout and rejects a wrong shape", "[optim][sgd]") {
  // set_grad() accepts any tensor; a transposed view must be read by index, not by memory.
  Tensor<float> p = Tensor<float>::zeros({2, 2});
  p.requires_grad_(true);
  SGD opt({p}, {.lr = 1.0});
  p.set_grad(Tensor<float>::from_vector({1.0f, 2.0f, 3.0f, 4.0f}, {2, 2}).t());
  opt.step();
  check_values(p, {-1.0f, -3.0f, -2.0f, -4.0f});
  // A gradient smaller than the parameter would be read past its end.
  p.set_grad(Tensor<float>::zeros({2}));
  CHECK_THROWS_WITH(opt.step(), Catch::Contains("[2]") && Catch::Contains("[2, 2]"));
}

TEST_CASE("SGD rejects invalid options and parameters", "[optim][sgd]") {
  Tensor<float> p = make_param({1.0f});
  CHECK_THROWS_AS(SGD({p}, {.lr = -0.1}), ember::Error);
  CHECK_THROWS_AS(SGD({p}, {.lr = 0.1, .momentum = -0.5}), ember::Error);
  CHECK_THROWS_AS(SGD({p}, {.lr = 0.1, .weight_decay = -1e-4}), ember::Error);
  // nesterov needs a momentum and zero dampening (PyTorch's rule)
  CHECK_THROWS_AS(SGD({p}, {.lr = 0.1, .nesterov = true}), ember::Error);
  CHECK_THROWS_AS(SGD({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                  ember::Error);
  CHECK_THROWS_WITH(SGD({p}, {.lr = -1.0}), Catch::Contains("invalid learning rate"));
  // An op's output is not a leaf.
  Tensor<float> q = make_param({1.0f, 2.0f});
  CHECK_THROWS_AS(SGD({q.reshape({2, 1})}, {.lr = 0.1}), ember::Error);
  // The boundary values are valid.
  CHECK_NOTHROW(SGD({p}, {.lr = 0.0}));
  CHECK_NOTHROW(SGD({p}, {.lr = 0.1, .momentum = 0.9, .nesterov = true}));
}

// PyTorch 1.13:
//   p = torch.zeros(1, requires_grad=True)
//   opt = torch.optim.SGD([p], lr=0.1)
//   s = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
//   lrs = []
//   for e in range(5):
//       lrs.append(s.get_last_lr()[0]); opt.step(); s.step()
//   print(lrs)  # [0.1, 0.1, 0.05, 0.05, 0.025]
TEST_CASE("StepLR halves the rate every two epochs like PyTorch's", "[optim][steplr]") {
  Tensor<float> p = make_param({0.0f});
  SGD opt({p}, {.lr = 0.1});
  StepLR sched(opt, 2, 0.5);
  const std::vector<double> expected = {0.1, 0.1, 0.05, 0.05, 0.025};
  for (std::size_t epoch = 0; epoch < expected.size(); ++epoch) {
    INFO("epoch " << epoch);
    CHECK(sched.get_last_lr()[0] == Approx(expected[epoch]).epsilon(1e-12));
    CHECK(opt.lr() == Approx(expected[epoch]).epsilon(1e-12));
    CHECK(sched.last_epoch() == static_cast<std::int64_t>(epoch));
    opt.step();
    sched.step();
  }
  CHECK_THROWS_AS(StepLR(opt, 0, 0.5), ember::Error);
}

TEST_CASE("zero_grad zeroes in place or drops the gradients", "[optim][sgd]") {
  Tensor<float> a = make_param({1.0f, 2.0f}), b = make_param({3.0f});
  SGD opt({a, b}, {.lr = 0.1});
  a.set_grad(Tensor<float>::from_vector({5.0f, 6.0f}));
  b.set_grad(Tensor<float>::from_vector({7.0f}));

  SECTION("set_to_none = false keeps the tensors and zeroes them") {
    const Tensor<float> held = a.grad();
    opt.zero_grad(false);
    REQUIRE(a.grad().defined());
    REQUIRE(b.grad().defined());
    CHECK(a.grad().to_vector() == Values{0.0f, 0.0f});
    CHECK(b.grad().to_vector() == Values{0.0f});
    CHECK(held.shares_storage(a.grad()));  // in place
    CHECK(held.to_vector() == Values{0.0f, 0.0f});
    opt.step();  // a zero gradient still steps (and changes nothing here)
    check_values(a, {1.0f, 2.0f});
  }
  SECTION("set_to_none = true drops them") {
    opt.zero_grad(true);
    CHECK_FALSE(a.grad().defined());
    CHECK_FALSE(b.grad().defined());
    opt.step();  // nothing to do
    check_values(a, {1.0f, 2.0f});
  }
  SECTION("the default drops them") {
    opt.zero_grad();
    CHECK_FALSE(a.grad().defined());
  }
  SECTION("zeroing a gradient that is a view leaves the rest of its storage alone") {
    Tensor<float> big = Tensor<float>::ones({4});
    a.set_grad(big.slice(0, 1, 3));
    opt.zero_grad(false);
    CHECK(big.to_vector() == Values{1.0f, 0.0f, 0.0f, 1.0f});
  }
  SECTION("a parameter without a gradient is left alone") {
    Tensor<float> c = make_param({1.0f});
    SGD other({c}, {.lr = 0.1});
    CHECK_NOTHROW(other.zero_grad(false));
    CHECK_FALSE(c.grad().defined());
  }
}
