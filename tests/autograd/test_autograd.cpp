// Tests for ember/autograd (engine.hpp, grad_mode.hpp, node.hpp): how gradients accumulate,
// retain_graph, requires_grad propagation, detach, NoGradGuard, zero_grad, the version check
// on tensors saved for backward, and the errors of bad use. The gradients of the individual ops
// are checked in tests/ops.

#include <catch2/catch.hpp>
#include <algorithm>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

#include "ember/autograd/engine.hpp"
#include "ember/autograd/grad_mode.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/linear.hpp"
#include "ember/ops/loss.hpp"
#include "ember/ops/reduce.hpp"
#include "ember/optim/sgd.hpp"

#include "support/matchers.hpp"

namespace {

using ember::NoGradGuard;
using ember::Shape;
using ember::Tensor;
using T = Tensor<double>;

using ember::test::ErrorContains;

T leaf(std::initializer_list<double> values, Shape shape = {}) {
  T t = T::from_list(values, std::move(shape));
  t.requires_grad_();
  return t;
}

}  // namespace

TEST_CASE("Gradients accumulate across backward() calls on separate graphs", "[autograd]") {
  T x = leaf({1.0, 2.0, 3.0});
  ember::sum(ember::mul(x, x)).backward();  // d/dx sum(x^2) = 2x
  CHECK(x.grad().to_vector() == std::vector<double>{2, 4, 6});
  ember::sum(ember::mul_scalar(x, 3.0)).backward();  // + 3
  CHECK(x.grad().to_vector() == std::vector<double>{5, 7, 9});
  // The leaf's gradient has the leaf's shape and is not itself recorded.
  CHECK(x.grad().shape() == Shape{3});
  CHECK_FALSE(x.grad().requires_grad());
}

TEST_CASE("retain_graph allows a second backward through the same graph", "[autograd]") {
  T x = leaf({0.5, -1.0});
  T y = ember::sum(ember::exp(x));
  y.backward(T(), /*retain_graph=*/true);
  const std::vector<double> once = x.grad().to_vector();
  CHECK(once[0] == Approx(std::exp(0.5)));
  CHECK(once[1] == Approx(std::exp(-1.0)));
  y.backward();  // allowed once more; this one frees the graph
  const std::vector<double> twice = x.grad().to_vector();
  CHECK(twice[0] == Approx(2 * once[0]));
  CHECK(twice[1] == Approx(2 * once[1]));
  CHECK_THROWS_MATCHES(y.backward(), ember::Error, ErrorContains({"second time", "retain_graph"}));
}

TEST_CASE("A second backward without retain_graph throws", "[autograd]") {
  T x = leaf({2.0});
  T y = ember::sum(ember::mul(x, x));
  y.backward();
  CHECK(x.grad().item() == 4.0);
  CHECK_THROWS_MATCHES(y.backward(), ember::Error, ErrorContains({"second time"}));
  CHECK(y.grad_fn()->released);
  CHECK(x.grad().item() == 4.0);  // the failed call changed nothing
}

TEST_CASE("requires_grad propagates to results and only to them", "[autograd]") {
  T a = leaf({1.0, 2.0});
  T b = T::from_list({3.0, 4.0});
  CHECK(a.requires_grad());
  CHECK(a.is_leaf());
  CHECK_FALSE(b.requires_grad());

  T ab = ember::add(a, b);
  CHECK(ab.requires_grad());
  CHECK_FALSE(ab.is_leaf());
  REQUIRE(ab.grad_fn() != nullptr);
  CHECK(ab.grad_fn()->name == "AddBackward0");
  CHECK(ab.grad_fn()->inputs.size() == 2);

  T bb = ember::mul(b, b);
  CHECK_FALSE(bb.requires_grad());
  CHECK(bb.grad_fn() == nullptr);

  // Views of a leaf that requires grad are recorded too.
  CHECK(a.reshape({2, 1}).requires_grad());
  CHECK(a.reshape({2, 1}).grad_fn()->name == "ViewBackward0");
  CHECK(a.slice(0, 0, 1).grad_fn()->name == "SliceBackward0");

  // b does not require grad, so no gradient is accumulated into it.
  ember::sum(ember::mul(ab, b)).backward();
  CHECK(a.grad().to_vector() == std::vector<double>{3, 4});
  CHECK_FALSE(b.grad().defined());

  // requires_grad_(false) is only for leaves.
  CHECK_THROWS_MATCHES(ab.requires_grad_(false), ember::Error, ErrorContains({"detach"}));
  a.requires_grad_(false);
  CHECK_FALSE(ember::neg(a).requires_grad());
}

TEST_CASE("detach stops gradients", "[autograd]") {
  T x = leaf({1.0, 2.0});
  T d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(d.shares_storage(x));
  // z = 2x + 5 * detach(x): only the first term reaches x.
  T z = ember::add(ember::mul_scalar(x, 2.0), ember::mul_scalar(d, 5.0));
  ember::sum(z).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{2, 2});
  // A detached non-leaf is a fresh leaf.
  T y = ember::exp(x).detach();
  CHECK(y.grad_fn() == nullptr);
  CHECK_FALSE(y.requires_grad());
}

TEST_CASE("NoGradGuard disables recording for its scope", "[autograd]") {
  T x = leaf({1.0, 2.0});
  CHECK(ember::GradMode::enabled());
  {
    NoGradGuard guard;
    CHECK_FALSE(ember::GradMode::enabled());
    T y = ember::mul(x, x);
    CHECK(y.grad_fn() == nullptr);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.to_vector() == std::vector<double>{1, 4});
    {
      NoGradGuard nested;
      CHECK_FALSE(ember::GradMode::enabled());
    }
    CHECK_FALSE(ember::GradMode::enabled());  // the inner guard restores "off"
    // In-place updates of a leaf are allowed here (what an optimiser does).
    x.fill_(3.0);
  }
  CHECK(ember::GradMode::enabled());
  CHECK(x.to_vector() == std::vector<double>{3, 3});
  CHECK(ember::mul(x, x).grad_fn() != nullptr);

  // Grad mode is per thread: another thread starts with recording on.
  NoGradGuard guard;
  bool other_thread_enabled = false;
  std::thread([&] { other_thread_enabled = ember::GradMode::enabled(); }).join();
  CHECK(other_thread_enabled);
}

TEST_CASE("zero_grad zeroes the gradient, or drops it with set_to_none", "[autograd]") {
  T x = leaf({1.0, -1.0, 2.0});
  x.zero_grad();  // nothing to zero yet
  CHECK_FALSE(x.grad().defined());
  ember::sum(ember::mul(x, x)).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{2, -2, 4});
  x.zero_grad();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().to_vector() == std::vector<double>{0, 0, 0});
  ember::sum(x).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{1, 1, 1});
  x.zero_grad(/*set_to_none=*/true);
  CHECK_FALSE(x.grad().defined());
  ember::sum(x).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{1, 1, 1});
}

TEST_CASE("backward() on a non-scalar needs an explicit gradient", "[autograd]") {
  T x = leaf({1.0, 2.0, 3.0});
  T y = ember::mul_scalar(x, 2.0);
  CHECK_THROWS_MATCHES(y.backward(), ember::Error, ErrorContains({"scalar outputs", "[3]"}));
  CHECK_THROWS_MATCHES(y.backward(T::ones({2})), ember::Error, ErrorContains({"[2]", "[3]"}));
  y.backward(T::from_list({1.0, 0.5, -1.0}));
  CHECK(x.grad().to_vector() == std::vector<double>{2, 1, -2});
  // A one-element non-0-d tensor is fine without one.
  T z = leaf({4.0}, {1, 1});
  ember::mul(z, z).backward();
  CHECK(z.grad().item() == 8.0);
}

TEST_CASE("backward() on a tensor without history throws", "[autograd]") {
  T plain = T::from_list({1.0});
  CHECK_THROWS_MATCHES(plain.backward(), ember::Error, ErrorContains({"does not require grad"}));
  // A leaf that requires grad is its own root.
  T x = leaf({2.0});
  x.backward();
  CHECK(x.grad().item() == 1.0);
}

TEST_CASE("A tensor used twice sums its gradients (diamond graph)", "[autograd]") {
  T x = leaf({0.5, 1.5});
  // f = x*x + exp(x): x feeds mul twice and exp once; df/dx = 2x + exp(x).
  T f = ember::add(ember::mul(x, x), ember::exp(x));
  ember::sum(f).backward();
  const auto g = x.grad().to_vector();
  CHECK(g[0] == Approx(1.0 + std::exp(0.5)));
  CHECK(g[1] == Approx(3.0 + std::exp(1.5)));

  // A shared intermediate: h = 2x; out = h * h + h -> d/dx = 2 * (2h + 1).
  T y = leaf({1.0, -2.0});
  T h = ember::mul_scalar(y, 2.0);
  ember::sum(ember::add(ember::mul(h, h), h)).backward();
  CHECK(y.grad().to_vector() == std::vector<double>{2 * (2 * 2.0 + 1), 2 * (2 * -4.0 + 1)});

  // a + a
  T a = leaf({3.0});
  ember::add(a, a).backward();
  CHECK(a.grad().item() == 2.0);
}

TEST_CASE("A deep chain back-propagates without recursion trouble", "[autograd]") {
  T x = leaf({1.0});
  T y = x;
  for (int i = 0; i < 5000; ++i) y = ember::add_scalar(y, 1.0);
  y.backward();
  CHECK(x.grad().item() == 1.0);
  CHECK(y.item() == 5001.0);
}

TEST_CASE("Gradients flow only to inputs that require them", "[autograd]") {
  T w = leaf({1.0, 2.0, 3.0, 4.0}, {2, 2});
  T x = T::from_list({1.0, 1.0, 2.0, 0.0}, {2, 2});
  T y = ember::matmul(x, w);
  ember::sum(y).backward();
  // d sum(x w) / dw = x^T 1
  CHECK(w.grad().to_vector() == std::vector<double>{3, 3, 1, 1});
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("In-place ops on a leaf that requires grad are refused while recording", "[autograd]") {
  T x = leaf({1.0, 2.0});
  CHECK_THROWS_MATCHES(x.fill_(0.0), ember::Error, ErrorContains({"fill_", "leaf", "NoGradGuard"}));
  CHECK_THROWS_MATCHES(x.zero_(), ember::Error, ErrorContains({"leaf"}));
  CHECK_THROWS_MATCHES(x.copy_(T::zeros({2})), ember::Error, ErrorContains({"copy_"}));
  CHECK(x.to_vector() == std::vector<double>{1, 2});  // untouched
  {
    NoGradGuard guard;
    x.copy_(T::from_list({5.0, 6.0}));
  }
  CHECK(x.to_vector() == std::vector<double>{5, 6});
  // A leaf that does not require grad may be changed freely.
  T plain = T::zeros({2});
  plain.fill_(1.0);
  CHECK(plain.to_vector() == std::vector<double>{1, 1});
}

TEST_CASE("float tensors back-propagate too", "[autograd]") {
  Tensor<float> x = Tensor<float>::from_list({1.0f, 2.0f});
  x.requires_grad_();
  ember::sum(ember::relu(ember::mul(x, x))).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{2.0f, 4.0f});
}

// ---- in-place changes to tensors saved for backward ------------------------------------------

TEST_CASE("Views, detach() and handles share one version counter", "[autograd][version]") {
  T x = T::zeros({2, 3});
  T view = x.view({6});
  T column = x.select(1, 2);
  const T detached = x.detach();
  const T other = T::zeros({2, 3});
  CHECK(x.version() == 0);
  view.fill_(1.0);
  CHECK(x.version() == 1);
  column.zero_();
  x.copy_(other);
  for (const T& t : {x, view, column, detached}) CHECK(t.version() == 3);
  CHECK(other.version() == 0);      // the source of copy_ is only read
  CHECK(x.clone().version() == 1);  // a copy has its own storage (written once by clone)
  {
    NoGradGuard guard;  // in-place ops count in no-grad mode too
    x.fill_(2.0);
  }
  CHECK(detached.version() == 4);
}

TEST_CASE("backward() refuses a saved tensor that was changed in place", "[autograd][version]") {
  SECTION("relu's saved output, filled") {
    T x = leaf({1.0, -2.0, 3.0});
    T y = ember::relu(x);
    T loss = ember::sum(y);  // sum saves nothing
    y.fill_(0.0);            // a non-leaf: allowed, but relu's backward reads y
    CHECK_THROWS_MATCHES(loss.backward(), ember::Error,
                         ErrorContains({"ReluBackward0", "modified in place", "version 0 -> 1",
                                        "fill_", "clone()"}));
    CHECK_FALSE(x.grad().defined());  // refused before any gradient was accumulated
  }
  SECTION("mul's saved input, copied over in no-grad mode") {
    T a = leaf({1.0, 2.0}), b = leaf({3.0, 4.0});
    T loss = ember::sum(ember::mul(a, b));
    {
      NoGradGuard guard;
      a.copy_(T::from_list({5.0, 6.0}));
    }
    CHECK_THROWS_MATCHES(loss.backward(), ember::Error,
                         ErrorContains({"MulBackward0", "saved tensor 1 of 2", "copy_"}));
    CHECK_FALSE(b.grad().defined());
  }
  SECTION("log's saved input, zeroed through a view") {
    T x = leaf({1.0, 2.0, 3.0, 4.0}, {2, 2});
    T h = ember::mul_scalar(x, 2.0);
    T loss = ember::sum(ember::log(h));
    h.view({4}).slice(0, 1, 3).zero_();
    CHECK_THROWS_MATCHES(loss.backward(), ember::Error,
                         ErrorContains({"LogBackward0", "zero_", "version 0 -> 1"}));
  }
  SECTION("exp's saved output, twice") {
    T x = leaf({0.5, 1.5});
    T e = ember::exp(x);
    T loss = ember::sum(e);
    e.fill_(1.0);
    e.copy_(T::from_list({2.0, 3.0}));
    CHECK_THROWS_MATCHES(loss.backward(), ember::Error,
                         ErrorContains({"ExpBackward0", "version 0 -> 2", "last by copy_"}));
  }
  SECTION("nll_loss's saved target (its backward indexes with it)") {
    T x = leaf({0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, {2, 3});
    auto target = Tensor<std::int64_t>::from_list({0, 2});
    T loss = ember::nll_loss(ember::log_softmax(x, 1), target);
    target.fill_(7);  // out of range for 3 classes: backward would write past the gradient
    CHECK_THROWS_MATCHES(loss.backward(), ember::Error,
                         ErrorContains({"NllLossBackward0", "fill_"}));
  }
  SECTION("a linear layer's weight, stepped by SGD before backward()") {
    Tensor<float> w = Tensor<float>::from_list({0.5f, -0.5f, 1.0f, 2.0f}, {2, 2});
    w.requires_grad_();
    const Tensor<float> x = Tensor<float>::from_list({1.0f, 2.0f, 3.0f, 4.0f}, {2, 2});
    ember::optim::SGD opt({w}, {.lr = 0.1});
    ember::sum(ember::linear(x, w)).backward();  // gives w a gradient, so step() updates it
    Tensor<float> loss = ember::sum(ember::linear(x, w));
    opt.step();
    CHECK_THROWS_MATCHES(loss.backward(), ember::Error,
                         ErrorContains({"AddmmBackward0", "SGD.step"}));
  }
  SECTION("a write through data(), announced with bump_version()") {
    T a = leaf({1.0, 2.0});
    T h = ember::mul_scalar(a, 1.0);
    T loss = ember::sum(ember::mul(h, h));
    h.data()[0] = 9.0;
    h.bump_version();
    CHECK_THROWS_MATCHES(loss.backward(), ember::Error,
                         ErrorContains({"MulBackward0", "a write through data()"}));
  }
}

TEST_CASE("In-place changes that backward() does not read are fine", "[autograd][version]") {
  SECTION("an unchanged graph back-propagates as ever") {
    T x = leaf({1.0, -2.0, 3.0});
    ember::sum(ember::mul(ember::relu(x), x)).backward();
    CHECK(x.grad().to_vector() == std::vector<double>{2, 0, 6});
  }
  SECTION("a tensor no backward function saved") {
    T a = leaf({1.0, 2.0}), b = leaf({3.0, 4.0});
    T h = ember::add(a, b);  // add saves only shapes
    T loss = ember::sum(ember::mul_scalar(h, 3.0));
    h.fill_(100.0);
    {
      NoGradGuard guard;
      a.fill_(-1.0);
    }
    loss.backward();
    CHECK(a.grad().to_vector() == std::vector<double>{3, 3});
    CHECK(b.grad().to_vector() == std::vector<double>{3, 3});
  }
  SECTION("a change after backward(), as an optimiser makes") {
    Tensor<float> w = Tensor<float>::from_list({0.5f, -0.5f, 1.0f, 2.0f}, {2, 2});
    w.requires_grad_();
    const Tensor<float> x = Tensor<float>::from_list({1.0f, 2.0f, 3.0f, 4.0f}, {2, 2});
    ember::optim::SGD opt({w}, {.lr = 0.1, .momentum = 0.5});
    for (int step = 0; step < 3; ++step) {
      opt.zero_grad();
      ember::sum(ember::linear(x, w)).backward();
      const std::uint64_t before = w.version();
      opt.step();
      CHECK(w.version() == before + 1);
    }
  }
  SECTION("a changed tensor whose node has already run (retain_graph)") {
    T x = leaf({1.0, 2.0});
    T h = ember::mul_scalar(x, 1.0);
    T loss = ember::sum(ember::mul(h, h));
    loss.backward(T(), /*retain_graph=*/true);
    CHECK(x.grad().to_vector() == std::vector<double>{2, 4});
    // A second walk reads h again: now refused.
    h.fill_(0.0);
    CHECK_THROWS_MATCHES(loss.backward(), ember::Error, ErrorContains({"MulBackward0"}));
  }
  SECTION("gradient accumulation counts as an in-place write to .grad()") {
    T x = leaf({1.0, 2.0});
    ember::sum(x).backward();
    const std::uint64_t v = x.grad().version();
    ember::sum(x).backward();
    CHECK(x.grad().version() == v + 1);
    x.zero_grad();
    CHECK(x.grad().version() == v + 2);
  }
}

TEST_CASE("post-accumulate-grad hooks run once per leaf, after its last gradient",
          "[autograd][hooks]") {
  // y = sum(w * x + w * w) + sum(b * x): w is used three times (two edges into it).
  Tensor<double> x = Tensor<double>::from_list({1.5, -2.0, 0.25});
  Tensor<double> w = Tensor<double>::from_list({0.5, 1.0, -3.0});
  Tensor<double> b = Tensor<double>::from_list({2.0, 2.0, 2.0});
  Tensor<double> unused = Tensor<double>::from_list({1.0, 1.0, 1.0});
  w.requires_grad_();
  b.requires_grad_();
  unused.requires_grad_();
  std::vector<std::string> events;
  std::vector<std::vector<double>> seen_w;
  const auto hw = w.register_post_accumulate_grad_hook([&](const Tensor<double>& t) {
    events.push_back("w");
    seen_w.push_back(t.grad().to_vector());
  });
  b.register_post_accumulate_grad_hook([&](const Tensor<double>&) { events.push_back("b"); });
  unused.register_post_accumulate_grad_hook([&](const Tensor<double>&) { events.push_back("u"); });
  Tensor<double> y = sum(w * x + w * w) + sum(b * x);
  y.backward();
  // Once each, the unused leaf never; w's hook saw its complete gradient x + 2w.
  REQUIRE(events.size() == 2);
  REQUIRE(std::count(events.begin(), events.end(), "w") == 1);
  REQUIRE(std::count(events.begin(), events.end(), "b") == 1);
  REQUIRE(seen_w.size() == 1);
  const std::vector<double> want{1.5 + 1.0, -2.0 + 2.0, 0.25 - 6.0};
  REQUIRE(seen_w[0] == want);
  // A second pass accumulates (2 (x + 2w)) and calls the hooks again; a removed one is silent.
  w.remove_post_accumulate_grad_hook(hw);
  (sum(w * x + w * w) + sum(b * x)).backward();
  REQUIRE(events.size() == 3);
  REQUIRE(events.back() == "b");
  REQUIRE(w.grad().to_vector()[0] == 2 * want[0]);
  // Only leaves that require grad take hooks.
  REQUIRE_THROWS_WITH(x.register_post_accumulate_grad_hook([](const Tensor<double>&) {}),
                      Catch::Contains("leaf that requires grad"));
}

TEST_CASE("post-accumulate-grad hooks: later layers' leaves are ready first", "[autograd][hooks]") {
  // Two chained linear maps: w2's gradient is complete before w1's node has run.
  Tensor<double> x = Tensor<double>::from_list({0.3, -0.7}).reshape({1, 2});
  Tensor<double> w1 = Tensor<double>::from_list({0.1, 0.2, 0.3, 0.4}).reshape({2, 2});
  Tensor<double> w2 = Tensor<double>::from_list({0.5, -0.5}).reshape({1, 2});
  w1.requires_grad_();
  w2.requires_grad_();
  std::vector<std::string> order;
  bool w1_grad_when_w2_ready = true;
  w1.register_post_accumulate_grad_hook([&](const Tensor<double>&) { order.push_back("w1"); });
  w2.register_post_accumulate_grad_hook([&](const Tensor<double>&) {
    order.push_back("w2");
    w1_grad_when_w2_ready = w1.grad().defined();
  });
  sum(matmul(relu(matmul(x, w1.t())), w2.t())).backward();
  REQUIRE(order == std::vector<std::string>{"w2", "w1"});
  REQUIRE_FALSE(w1_grad_when_w2_ready);
}
