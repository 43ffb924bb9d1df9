// ember against PyTorch 1.13: every fixture in tests/golden/ (made by make_golden.py), forward
// values and the gradients of sum(out * grad_out), and two SGD steps of the classic MNIST net.
//
// Tolerance (tests/support/golden.hpp), the same for every tensor including the MNIST step:
//   |actual - expected| <= 1e-5 |expected| + 1e-5 max|expected|
// the references being float64 results rounded to float32. Observed (EMBER_GOLDEN_REPORT=1,
// x86-64, g++ 12): at most a tenth of that bound is used; max_pool2d, relu, dropout and the
// nll gradients are exact or within an ulp.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ember/autograd/grad_mode.hpp"
#include "ember/models/mnist_net.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/conv.hpp"
#include "ember/ops/dropout.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/linear.hpp"
#include "ember/ops/loss.hpp"
#include "ember/ops/pool.hpp"
#include "ember/optim/sgd.hpp"
#include "support/golden.hpp"

namespace {

using ember::Tensor;
using ember::test::check_close;
using ember::test::Golden;
using I64Tensor = ember::Tensor<std::int64_t>;

// A golden input as a leaf that requires grad.
Tensor<float> leaf(const Golden& g, const std::string& name) {
  Tensor<float> t = g.f32(name);
  t.requires_grad_(true);
  return t;
}

}  // namespace

TEST_CASE("the golden comparison catches a small error", "[golden]") {
  // Guards the harness itself: a 1e-4 * max|b| error in one element must fail the bound.
  const Golden g("linear.safetensors");
  const Tensor<float> expected = g.f32("out");
  Tensor<float> perturbed = expected.clone();
  float max_abs = 0;
  for (float v : expected.to_vector()) max_abs = std::max(max_abs, std::abs(v));
  perturbed.data()[3] += 1e-4f * max_abs;
  CHECK(ember::test::deviation(expected, expected, 1e-5, 1e-5).max_used == 0.0);
  CHECK(ember::test::deviation(perturbed, expected, 1e-5, 1e-5).max_used > 1.0);
}

TEST_CASE("conv2d matches PyTorch: forward and all three gradients", "[golden][conv]") {
  const Golden g("conv2d.safetensors");
  for (const std::string c : {"a", "b", "c"}) {
    SECTION("case " + c) {
      const ember::Conv2dOptions o{g.meta_int(c + ".stride"), g.meta_int(c + ".padding"),
                                   g.meta_int(c + ".dilation")};
      Tensor<float> x = leaf(g, c + ".x"), w = leaf(g, c + ".w"), b = leaf(g, c + ".b");
      const Tensor<float> out = ember::conv2d(x, w, b, o);
      check_close(out, g.f32(c + ".out"), "conv2d." + c + ".out");
      out.backward(g.f32(c + ".grad_out"));
      check_close(x.grad(), g.f32(c + ".grad_x"), "conv2d." + c + ".grad_x");
      check_close(w.grad(), g.f32(c + ".grad_w"), "conv2d." + c + ".grad_w");
      check_close(b.grad(), g.f32(c + ".grad_b"), "conv2d." + c + ".grad_b");
    }
  }
}

TEST_CASE("linear matches PyTorch: forward and all three gradients", "[golden][linear]") {
  const Golden g("linear.safetensors");
  Tensor<float> x = leaf(g, "x"), w = leaf(g, "w"), b = leaf(g, "b");
  const Tensor<float> out = ember::linear(x, w, b);
  check_close(out, g.f32("out"), "linear.out");
  out.backward(g.f32("grad_out"));
  check_close(x.grad(), g.f32("grad_x"), "linear.grad_x");
  check_close(w.grad(), g.f32("grad_w"), "linear.grad_w");
  check_close(b.grad(), g.f32("grad_b"), "linear.grad_b");
}

TEST_CASE("max_pool2d matches PyTorch: forward and gradient", "[golden][pool]") {
  const Golden g("max_pool2d.safetensors");
  for (const std::string c : {"a", "b", "c"}) {
    SECTION("case " + c) {
      Tensor<float> x = leaf(g, c + ".x");
      const Tensor<float> out = ember::max_pool2d(
          x, g.meta_int(c + ".kernel"), g.meta_int(c + ".stride"), g.meta_int(c + ".padding"));
      check_close(out, g.f32(c + ".out"), "max_pool2d." + c + ".out");
      out.backward(g.f32(c + ".grad_out"));
      check_close(x.grad(), g.f32(c + ".grad_x"), "max_pool2d." + c + ".grad_x");
    }
  }
}

TEST_CASE("relu, log_softmax, nll_loss and cross_entropy match PyTorch", "[golden][activation]") {
  const Golden g("activations.safetensors");

  SECTION("relu") {
    Tensor<float> x = leaf(g, "relu.x");
    const Tensor<float> out = ember::relu(x);
    check_close(out, g.f32("relu.out"), "relu.out");
    out.backward(g.f32("relu.grad_out"));
    check_close(x.grad(), g.f32("relu.grad_x"), "relu.grad_x");
  }
  SECTION("log_softmax") {
    Tensor<float> x = leaf(g, "log_softmax.x");
    const Tensor<float> out = ember::log_softmax(x, g.meta_int("log_softmax.dim"));
    check_close(out, g.f32("log_softmax.out"), "log_softmax.out");
    out.backward(g.f32("log_softmax.grad_out"));
    check_close(x.grad(), g.f32("log_softmax.grad_x"), "log_softmax.grad_x");
  }
  SECTION("nll_loss, mean and sum") {
    const I64Tensor target = g.i64("nll.target");
    Tensor<float> in_mean = leaf(g, "nll.input"), in_sum = leaf(g, "nll.input");
    const Tensor<float> mean_loss = ember::nll_loss(in_mean, target, ember::Reduction::mean);
    const Tensor<float> sum_loss = ember::nll_loss(in_sum, target, ember::Reduction::sum);
    check_close(mean_loss, g.f32("nll.mean_loss"), "nll.mean_loss");
    check_close(sum_loss, g.f32("nll.sum_loss"), "nll.sum_loss");
    mean_loss.backward();
    sum_loss.backward();
    check_close(in_mean.grad(), g.f32("nll.grad_input_mean"), "nll.grad_input_mean");
    check_close(in_sum.grad(), g.f32("nll.grad_input_sum"), "nll.grad_input_sum");
  }
  SECTION("cross_entropy (mean)") {
    REQUIRE(g.meta("ce.reduction") == "mean");
    Tensor<float> logits = leaf(g, "ce.logits");
    const Tensor<float> loss = ember::cross_entropy(logits, g.i64("ce.target"));
    check_close(loss, g.f32("ce.loss"), "ce.loss");
    loss.backward();
    check_close(logits.grad(), g.f32("ce.grad_logits"), "ce.grad_logits");
  }
}

TEST_CASE("dropout and dropout2d with PyTorch's masks match PyTorch", "[golden][dropout]") {
  const Golden g("dropout.safetensors");
  for (const std::string c : {"dropout", "dropout2d"}) {
    SECTION(c) {
      // The fixture's mask holds 0/1; apply_mask wants 0 or 1/(1-p).
      const double p = g.meta_double(c + ".p");
      const Tensor<float> mask = ember::mul_scalar(g.f32(c + ".mask"), float(1.0 / (1.0 - p)));
      Tensor<float> x = leaf(g, c + ".x");
      const Tensor<float> out = ember::apply_mask(x, mask);
      check_close(out, g.f32(c + ".out"), c + ".out");
      out.backward(g.f32(c + ".grad_out"));
      check_close(x.grad(), g.f32(c + ".grad_x"), c + ".grad_x");
    }
  }
}

// ---- the MNIST training step -------------------------------------------------------------

namespace {

using ember::models::MnistNet;

// PyTorch's parameter names and shapes for the classic MNIST net, in order.
struct ParamSpec {
  const char* name;
  ember::Shape shape;
  std::int64_t fan_in;
};
const std::vector<ParamSpec>& mnist_params() {
  static const std::vector<ParamSpec> specs = {
      {"conv1.weight", {32, 1, 3, 3}, 9},    {"conv1.bias", {32}, 9},
      {"conv2.weight", {64, 32, 3, 3}, 288}, {"conv2.bias", {64}, 288},
      {"fc1.weight", {128, 9216}, 9216},     {"fc1.bias", {128}, 9216},
      {"fc2.weight", {10, 128}, 128},        {"fc2.bias", {10}, 128},
  };
  return specs;
}

// The fixture's weights (metadata "weight_formula"): parameter l = 1..8 in order, element k
// (flat C order) = float32((1 / sqrt(fan_in)) * sin(0.7 k + l)), computed in double.
void set_formula_weights(MnistNet& net) {
  const ember::nn::NamedTensors params = net.named_parameters();
  REQUIRE(params.size() == mnist_params().size());
  ember::NoGradGuard no_grad;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const ParamSpec& spec = mnist_params()[i];
    Tensor<float> p = params[i].second;
    REQUIRE(params[i].first == spec.name);
    REQUIRE(p.shape() == spec.shape);
    const double l = static_cast<double>(i + 1);
    const double scale = 1.0 / std::sqrt(static_cast<double>(spec.fan_in));
    std::vector<float> values(static_cast<std::size_t>(p.numel()));
    for (std::size_t k = 0; k < values.size(); ++k)
      values[k] = static_cast<float>(scale * std::sin(0.7 * static_cast<double>(k) + l));
    p.copy_(Tensor<float>::from_vector(values, spec.shape));
  }
}

// Dropout masks in apply_mask's form (0 or 1/(1-p)); undefined tensors mean "no dropout".
struct Masks {
  Tensor<float> channel;  // after max_pool2d, (N, 64, 1, 1)
  Tensor<float> feature;  // after relu(fc1), (N, 128)
};

// MnistNet::forward written out with ember's functional ops, so that fixed masks can stand in
// for the modules' generator-drawn ones.
Tensor<float> mnist_forward(const MnistNet& net, const Tensor<float>& input, const Masks& masks) {
  Tensor<float> x = ember::relu(ember::conv2d(input, net.conv1->weight, net.conv1->bias));
  x = ember::relu(ember::conv2d(x, net.conv2->weight, net.conv2->bias));  // (N, 64, 24, 24)
  x = ember::max_pool2d(x, 2);                                            // (N, 64, 12, 12)
  if (masks.channel.defined()) x = ember::apply_mask(x, masks.channel);
  x = x.flatten(1);                                                   // (N, 9216)
  x = ember::relu(ember::linear(x, net.fc1->weight, net.fc1->bias));  // (N, 128)
  if (masks.feature.defined()) x = ember::apply_mask(x, masks.feature);
  x = ember::linear(x, net.fc2->weight, net.fc2->bias);  // (N, 10)
  return ember::log_softmax(x, 1);
}

// flat[::stride], as the fixture samples large tensors.
Tensor<float> strided_sample(const Tensor<float>& t, std::int64_t stride) {
  const std::vector<float> all = t.to_vector();
  std::vector<float> out;
  for (std::size_t i = 0; i < all.size(); i += static_cast<std::size_t>(stride))
    out.push_back(all[i]);
  return Tensor<float>::from_vector(out, {static_cast<std::int64_t>(out.size())});
}

// Sum over every dimension but the first, accumulated in double.
Tensor<float> row_sums(const Tensor<float>& t) {
  const std::vector<float> all = t.to_vector();
  const std::int64_t rows = t.size(0), cols = t.numel() / rows;
  std::vector<float> out(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    double acc = 0;
    for (std::int64_t c = 0; c < cols; ++c) acc += all[static_cast<std::size_t>(r * cols + c)];
    out[static_cast<std::size_t>(r)] = static_cast<float>(acc);
  }
  return Tensor<float>::from_vector(out, {rows});
}

}  // namespace

TEST_CASE("MnistNet has PyTorch's parameter names and shapes", "[golden][mnist]") {
  MnistNet net;
  const ember::nn::NamedTensors params = net.named_parameters();
  REQUIRE(params.size() == mnist_params().size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    CHECK(params[i].first == mnist_params()[i].name);
    CHECK(params[i].second.shape() == mnist_params()[i].shape);
    CHECK(params[i].second.requires_grad());
  }
  CHECK(net.num_parameters() == 1'199'882);

  // The fixture lists the same names.
  const Golden g("mnist_step.safetensors");
  std::string names;
  for (auto& [name, t] : params) names += (names.empty() ? "" : ",") + name;
  CHECK(g.meta("params") == names);
}

TEST_CASE("MnistNet in eval mode equals the functional forward without dropout",
          "[golden][mnist]") {
  const Golden g("mnist_step.safetensors");
  MnistNet net;
  set_formula_weights(net);
  const Tensor<float> x = g.f32("x");
  net.eval();
  const Tensor<float> by_module = net.forward(x);
  const Tensor<float> by_hand = mnist_forward(net, x, {});
  // The same ops on the same data in the same process: bit-for-bit equal.
  CHECK(by_module.to_vector() == by_hand.to_vector());
  check_close(by_module, g.f32("nodrop.out1"), "mnist.eval.out");
}

TEST_CASE("two SGD steps of the MNIST net match PyTorch", "[golden][mnist]") {
  const Golden g("mnist_step.safetensors");
  const double lr = g.meta_double("lr"), momentum = g.meta_double("momentum");
  REQUIRE(lr == 0.01);
  REQUIRE(momentum == 0.5);
  const Tensor<float> xs[2] = {g.f32("x"), g.f32("x2")};
  const I64Tensor targets[2] = {g.i64("target"), g.i64("target2")};

  for (const std::string v : {"nodrop", "drop"}) {
    SECTION(v) {
      Masks masks;
      if (v == "drop") {
        const double p2d = g.meta_double("drop.mask2d.p"), p = g.meta_double("drop.mask.p");
        masks.channel = ember::mul_scalar(g.f32("drop.mask2d"), float(1.0 / (1.0 - p2d)));
        masks.feature = ember::mul_scalar(g.f32("drop.mask"), float(1.0 / (1.0 - p)));
      }
      MnistNet net;
      set_formula_weights(net);
      // torch.optim.SGD(lr 0.01, momentum 0.5, dampening 0): buf = grad on step 1,
      // buf = 0.5 buf + grad on step 2; param -= lr * buf.
      ember::optim::SGD opt(net.parameters(), {.lr = lr, .momentum = momentum});
      for (int step = 0; step < 2; ++step) {
        const std::string s = std::to_string(step + 1);
        opt.zero_grad(false);  // torch 1.13's default: zero the gradients in place
        const Tensor<float> out = mnist_forward(net, xs[step], masks);
        const Tensor<float> loss = ember::nll_loss(out, targets[step]);
        loss.backward();
        check_close(loss, g.f32(v + ".loss" + s), "mnist." + v + ".loss" + s);
        if (step == 0) {
          check_close(out, g.f32(v + ".out1"), "mnist." + v + ".out1");
          for (auto& [name, p] : net.named_parameters()) {
            const std::string key = v + ".grad1." + name;
            check_close(strided_sample(p.grad(), g.meta_int(key + ".stride")),
                        g.f32(key + ".sample"), "mnist." + key + ".sample");
            check_close(row_sums(p.grad()), g.f32(key + ".rowsum"), "mnist." + key + ".rowsum");
          }
        }
        opt.step();
      }
      for (auto& [name, p] : net.named_parameters()) {
        const std::string key = v + ".param2." + name;
        check_close(strided_sample(p, g.meta_int(v + ".grad1." + name + ".stride")),
                    g.f32(key + ".sample"), "mnist." + key + ".sample");
      }
    }
  }
}
