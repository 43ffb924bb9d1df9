// Tests for ember/nn/module.hpp, ember/nn/layers.hpp and ember/nn/init.hpp: names and order of
// parameters in a module tree (PyTorch's), train/eval propagation, state_dict round trips and
// load_state_dict's errors, registration checks, default initialisation, printing (PyTorch's
// repr, character for character), Sequential, and evaluate()'s check of a model's output.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/data/dataloader.hpp"
#include "ember/models/mnist_net.hpp"
#include "ember/nn/evaluate.hpp"
#include "ember/nn/layers.hpp"
#include "ember/nn/module.hpp"
#include "ember/nn/normalization.hpp"
#include "ember/nn/pooling.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/conv.hpp"
#include "ember/ops/linear.hpp"
#include "support/layer_zoo.hpp"
#include "support/matchers.hpp"
#include "ember/ops/pool.hpp"
#include "ember/ops/reduce.hpp"

namespace {

using ember::Generator;
using ember::models::MnistNet;
using ember::nn::Conv2d;
using ember::nn::Dropout;
using ember::nn::Dropout2d;
using ember::nn::Flatten;
using ember::nn::Linear;
using ember::nn::LogSoftmax;
using ember::nn::MaxPool2d;
using ember::nn::Module;
using ember::nn::NamedTensors;
using ember::nn::ReLU;
using ember::nn::Sequential;
using ember::nn::Tensor;
using Catch::Contains;

std::shared_ptr<Sequential> seq(std::initializer_list<std::shared_ptr<Module>> modules) {
  return std::make_shared<Sequential>(modules);
}

std::vector<std::string> names_of(const NamedTensors& named) {
  std::vector<std::string> out;
  for (auto& [name, t] : named) out.push_back(name);
  return out;
}

// Every parameter's values, in order (to check that a failed load changed nothing).
std::vector<std::vector<float>> values_of(const Module& m) {
  std::vector<std::vector<float>> out;
  for (auto& t : m.parameters()) out.push_back(t.to_vector());
  return out;
}

// Registers parameters, a buffer and children interleaved, to check PyTorch's order: own
// parameters (then own buffers) first, children after, each in registration order.
class Custom : public Module {
 public:
  explicit Custom(Generator& gen) : Module("Custom") {
    inner = register_module("inner", std::make_shared<Linear>(3, 2, true, gen));
    scale = register_parameter("scale", Tensor::ones({2}));
    count = register_buffer("count", Tensor::zeros({1}));
    head = register_module("head", std::make_shared<Linear>(2, 1, false, gen));
    shift = register_parameter("shift", Tensor::zeros({1}));
  }
  std::shared_ptr<Linear> inner, head;
  Tensor scale, count, shift;
};

// A small CNN with distinct module names, for load_state_dict's messages.
class TinyNet : public Module {
 public:
  explicit TinyNet(Generator& gen) : Module("TinyNet") {
    conv = register_module("conv",
                           std::make_shared<Conv2d>(1, 2, 3, ember::Conv2dOptions{}, true, gen));
    fc = register_module("fc", std::make_shared<Linear>(2 * 3 * 3, 4, true, gen));
  }
  Tensor forward(const Tensor& x) override {
    return fc->forward(ember::max_pool2d(ember::relu(conv->forward(x)), 2).flatten(1));
  }
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<Linear> fc;
};

// A copy of `state` with entry `key` replaced by t (removed when t is undefined).
NamedTensors edited(const NamedTensors& state, const std::string& key, const Tensor& t) {
  NamedTensors out;
  for (auto& [name, value] : state) {
    if (name != key) out.emplace_back(name, value);
    else if (t.defined()) out.emplace_back(name, t);
  }
  return out;
}

}  // namespace

TEST_CASE("nested modules name their parameters with dotted paths", "[nn][module]") {
  Generator gen(1);
  auto net = seq({std::make_shared<Linear>(4, 3, true, gen),
                  seq({std::make_shared<Linear>(3, 3, true, gen), std::make_shared<ReLU>(),
                       std::make_shared<Linear>(3, 2, true, gen)})});
  // PyTorch: [n for n, _ in Sequential(Linear(4,3), Sequential(Linear(3,3), ReLU(),
  //           Linear(3,2))).named_parameters()]
  const std::vector<std::string> expected = {"0.weight",   "0.bias",   "1.0.weight",
                                             "1.0.bias",   "1.2.weight", "1.2.bias"};
  CHECK(names_of(net->named_parameters()) == expected);
  CHECK(names_of(net->state_dict()) == expected);
  CHECK(net->named_parameters(false).empty());
  CHECK(net->size() == 2);
  CHECK(net->num_parameters() == 4 * 3 + 3 + 3 * 3 + 3 + 3 * 2 + 2);
  // The names lead to the modules' own tensors.
  auto inner = std::dynamic_pointer_cast<Sequential>((*net)[1]);
  REQUIRE(inner != nullptr);
  auto last = std::dynamic_pointer_cast<Linear>((*inner)[2]);
  REQUIRE(last != nullptr);
  CHECK(net->named_parameters()[4].second.shares_storage(last->weight));
  CHECK_THROWS_AS((*net)[2], ember::Error);
}

TEST_CASE("parameters come in PyTorch's order: own first, then children", "[nn][module]") {
  Generator gen(2);
  Custom m(gen);
  // The same class in PyTorch 1.13 lists named_parameters() as below and state_dict() with
  // the buffer after the module's own parameters.
  CHECK(names_of(m.named_parameters()) ==
        std::vector<std::string>{"scale", "shift", "inner.weight", "inner.bias", "head.weight"});
  CHECK(names_of(m.named_parameters(false)) == std::vector<std::string>{"scale", "shift"});
  CHECK(names_of(m.named_buffers()) == std::vector<std::string>{"count"});
  CHECK(names_of(m.state_dict()) == std::vector<std::string>{"scale", "shift", "count",
                                                             "inner.weight", "inner.bias",
                                                             "head.weight"});
  CHECK(m.parameters().size() == 5);
  for (auto& p : m.parameters()) CHECK(p.requires_grad());
  CHECK_FALSE(m.count.requires_grad());
  // The state_dict shares storage with the module.
  CHECK(m.state_dict()[2].second.shares_storage(m.count));
}

TEST_CASE("train() and eval() reach every module and switch dropout", "[nn][module]") {
  Generator gen(3);
  auto drop = std::make_shared<Dropout>(0.5, gen);
  auto drop2d = std::make_shared<Dropout2d>(0.5, gen);
  auto inner = seq({drop2d, std::make_shared<ReLU>()});
  auto net = seq({std::make_shared<Flatten>(0), drop});
  auto outer = seq({inner, net});
  auto all_training = [&](bool on) {
    for (const Module* m : {static_cast<Module*>(outer.get()), static_cast<Module*>(inner.get()),
                            static_cast<Module*>(net.get()), static_cast<Module*>(drop.get()),
                            static_cast<Module*>(drop2d.get())})
      if (m->is_training() != on) return false;
    return true;
  };
  CHECK(all_training(true));  // modules start in training mode, as in PyTorch
  outer->eval();
  CHECK(all_training(false));
  outer->train();
  CHECK(all_training(true));
  outer->train(false);
  CHECK(all_training(false));
  inner->train();  // a subtree only
  CHECK(inner->is_training());
  CHECK(drop2d->is_training());
  CHECK_FALSE(outer->is_training());
  CHECK_FALSE(drop->is_training());

  const Tensor x = ember::Tensor<float>::ones({2, 50, 2, 2});
  const std::vector<float> ones = x.to_vector();
  SECTION("eval: dropout is the identity") {
    outer->eval();
    CHECK(drop->forward(x).to_vector() == ones);
    CHECK(drop2d->forward(x).to_vector() == ones);
    CHECK(outer->forward(x).to_vector() == ones);
  }
  SECTION("train: elements (Dropout) or channels (Dropout2d) become 0 or 1/(1-p)") {
    outer->train();
    const std::vector<float> y = drop->forward(x).to_vector();
    const auto zeros = std::count(y.begin(), y.end(), 0.0f);
    const auto twos = std::count(y.begin(), y.end(), 2.0f);
    CHECK(zeros + twos == static_cast<std::ptrdiff_t>(y.size()));
    CHECK(zeros > 100);  // of 400, each dropped with probability 1/2
    CHECK(twos > 100);
    const Tensor y2 = drop2d->forward(x);
    int dropped = 0;
    for (std::int64_t n = 0; n < 2; ++n)
      for (std::int64_t c = 0; c < 50; ++c) {
        const float first = y2(n, c, 0, 0);
        CHECK((first == 0.0f || first == 2.0f));
        CHECK(y2(n, c, 1, 1) == first);  // the whole channel shares one draw
        CHECK(y2(n, c, 0, 1) == first);
        dropped += first == 0.0f;
      }
    CHECK(dropped > 20);  // of 100 channels
    CHECK(dropped < 80);
  }
}

TEST_CASE("state_dict / load_state_dict round trip", "[nn][state]") {
  Generator gen_a(10), gen_b(20), gen_x(30);
  MnistNet a(gen_a), b(gen_b);
  a.eval();
  b.eval();
  const Tensor x = ember::Tensor<float>::randn({2, 1, 28, 28}, gen_x);
  REQUIRE(a.forward(x).to_vector() != b.forward(x).to_vector());  // differently initialised
  b.load_state_dict(a.state_dict());
  CHECK(a.forward(x).to_vector() == b.forward(x).to_vector());
  CHECK(values_of(a) == values_of(b));
  // load_state_dict copies: the two nets still own separate storage.
  const auto pa = a.parameters(), pb = b.parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) CHECK_FALSE(pa[i].shares_storage(pb[i]));
  for (auto& p : pb) CHECK(p.requires_grad());
}

TEST_CASE("load_state_dict rejects bad state and then changes nothing", "[nn][state]") {
  Generator gen_a(11), gen_b(21);
  TinyNet source(gen_a), target(gen_b);
  const NamedTensors good = source.state_dict();
  const auto before = values_of(target);
  REQUIRE(before != values_of(source));

  SECTION("missing key") {
    const NamedTensors state = edited(good, "fc.bias", {});
    CHECK_THROWS_MATCHES(target.load_state_dict(state), ember::Error,
                         Catch::Matchers::Predicate<ember::Error>([](const ember::Error& e) {
                           const std::string w = e.what();
                           return w.find("missing key(s): \"fc.bias\"") != std::string::npos &&
                                  w.find("unexpected") == std::string::npos;
                         }, "names fc.bias as missing, and nothing as unexpected"));
    CHECK(values_of(target) == before);
  }
  SECTION("unexpected keys are all listed") {
    NamedTensors state = good;
    state.emplace_back("fc2.weight", Tensor::zeros({1}));
    state.emplace_back("extra", Tensor::zeros({3}));
    CHECK_THROWS_WITH(target.load_state_dict(state),
                      Contains("unexpected key(s): \"fc2.weight\", \"extra\""));
    CHECK(values_of(target) == before);
  }
  SECTION("missing and unexpected together") {
    NamedTensors state = edited(good, "conv.weight", {});
    state.emplace_back("conv.kernel", Tensor::zeros({2, 1, 3, 3}));
    CHECK_THROWS_WITH(target.load_state_dict(state),
                      Contains("missing key(s): \"conv.weight\"") &&
                          Contains("unexpected key(s): \"conv.kernel\""));
    CHECK(values_of(target) == before);
  }
  SECTION("shape mismatch names the key and both shapes") {
    // The last key, so that every other entry has passed its checks when it fails.
    const NamedTensors state = edited(good, "fc.bias", Tensor::zeros({5}));
    CHECK_THROWS_WITH(target.load_state_dict(state),
                      Contains("fc.bias") && Contains("[5]") && Contains("[4]"));
    CHECK(values_of(target) == before);
  }
  SECTION("duplicate keys") {
    NamedTensors state = good;
    state.push_back(good.front());
    CHECK_THROWS_WITH(target.load_state_dict(state), Contains("duplicate key 'conv.weight'"));
    CHECK(values_of(target) == before);
  }
  SECTION("non-strict ignores missing and unexpected keys") {
    NamedTensors state = edited(good, "fc.weight", {});
    state.emplace_back("extra", Tensor::zeros({3}));
    CHECK_NOTHROW(target.load_state_dict(state, /*strict=*/false));
    const auto after = values_of(target), wanted = values_of(source);
    CHECK(after[0] == wanted[0]);  // conv.weight
    CHECK(after[1] == wanted[1]);  // conv.bias
    CHECK(after[2] == before[2]);  // fc.weight: missing, unchanged
    CHECK(after[3] == wanted[3]);  // fc.bias
  }
  SECTION("non-strict still rejects a shape mismatch") {
    NamedTensors state = edited(good, "fc.bias", Tensor::zeros({5}));
    state.emplace_back("extra", Tensor::zeros({3}));
    CHECK_THROWS_WITH(target.load_state_dict(state, false),
                      Contains("fc.bias") && Contains("[5]") && Contains("[4]"));
    CHECK(values_of(target) == before);
  }
}

TEST_CASE("registering a name twice, or a bad name, throws", "[nn][module]") {
  Module m;
  m.register_parameter("w", Tensor::zeros({2}));
  CHECK_THROWS_WITH(m.register_parameter("w", Tensor::zeros({2})), Contains("already registered"));
  CHECK_THROWS_AS(m.register_buffer("w", Tensor::zeros({2})), ember::Error);
  CHECK_THROWS_AS(m.register_module("w", std::make_shared<ReLU>()), ember::Error);
  m.register_module("child", std::make_shared<ReLU>());
  CHECK_THROWS_AS(m.register_parameter("child", Tensor::zeros({1})), ember::Error);
  CHECK_THROWS_AS(m.register_module("child", std::make_shared<ReLU>()), ember::Error);
  CHECK_THROWS_AS(m.register_parameter("a.b", Tensor::zeros({1})), ember::Error);
  CHECK_THROWS_AS(m.register_parameter("", Tensor::zeros({1})), ember::Error);
  CHECK_THROWS_AS(m.register_module("null", std::shared_ptr<ReLU>()), ember::Error);
  // Nothing of the failed registrations was kept.
  CHECK(names_of(m.named_parameters()) == std::vector<std::string>{"w"});
  CHECK(m.named_children().size() == 1);
}

TEST_CASE("default initialisation is PyTorch's kaiming_uniform(a = sqrt(5))", "[nn][init]") {
  // U(-b, b) with b = 1/sqrt(fan_in) for weights and biases; its standard deviation is
  // b/sqrt(3). With n draws the sample std has a relative standard error of about
  // sqrt(0.8 / (4 n)) (uniform kurtosis 1.8) and the mean a standard error of std/sqrt(n);
  // the tolerances below are 5-8 of those errors.
  struct Stats {
    double min, max, mean, std;
  };
  auto stats = [](const Tensor& t) {
    const std::vector<float> v = t.to_vector();
    Stats s{INFINITY, -INFINITY, 0, 0};
    for (float x : v) {
      s.min = std::min(s.min, double(x));
      s.max = std::max(s.max, double(x));
      s.mean += x;
    }
    s.mean /= static_cast<double>(v.size());
    for (float x : v) s.std += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(s.std / static_cast<double>(v.size()));
    return s;
  };

  SECTION("Linear(400, 300): fan_in 400") {
    Generator gen(5);
    Linear fc(400, 300, true, gen);
    const double bound = 1.0 / std::sqrt(400.0);  // 0.05
    const Stats w = stats(fc.weight), b = stats(fc.bias);
    CHECK(w.min >= -bound);
    CHECK(w.max <= bound);
    CHECK(std::max(-w.min, w.max) > 0.999 * bound);  // the full range is used
    // n = 120000: std's standard error is 0.13 %, the mean's 8.3e-5.
    CHECK(w.std == Approx(bound / std::sqrt(3.0)).epsilon(0.01));
    CHECK(std::abs(w.mean) < 5e-4);
    CHECK(b.min >= -bound);
    CHECK(b.max <= bound);
    CHECK(fc.bias.shape() == ember::Shape{300});
    CHECK(std::max(-b.min, b.max) > 0.9 * bound);  // 300 draws
  }
  SECTION("Conv2d(3, 8, 5): fan_in 3 * 5 * 5 = 75") {
    Generator gen(6);
    Conv2d conv(3, 8, 5, {}, true, gen);
    const double bound = 1.0 / std::sqrt(75.0);
    const Stats w = stats(conv.weight), b = stats(conv.bias);
    CHECK(conv.weight.shape() == ember::Shape{8, 3, 5, 5});
    CHECK(w.min >= -bound);
    CHECK(w.max <= bound);
    CHECK(std::max(-w.min, w.max) > 0.98 * bound);
    // n = 600: std's standard error is 1.8 %, the mean's 1.9e-3.
    CHECK(w.std == Approx(bound / std::sqrt(3.0)).epsilon(0.1));
    CHECK(std::abs(w.mean) < 0.012);
    CHECK(b.min >= -bound);
    CHECK(b.max <= bound);
  }
}

TEST_CASE("the same seed gives the same initialisation", "[nn][init]") {
  Generator g1(42), g2(42), g3(43);
  Linear a(20, 10, true, g1), b(20, 10, true, g2), c(20, 10, true, g3);
  CHECK(values_of(a) == values_of(b));
  CHECK(values_of(a)[0] != values_of(c)[0]);
  CHECK(values_of(a)[1] != values_of(c)[1]);
  // Consecutive layers on one generator differ from each other.
  Linear d(20, 10, true, g1);
  CHECK(values_of(a)[0] != values_of(d)[0]);
  // A whole model, likewise.
  Generator m1(7), m2(7);
  TinyNet n1(m1), n2(m2);
  CHECK(values_of(n1) == values_of(n2));
}

TEST_CASE("printing a module matches PyTorch's repr", "[nn][print]") {
  SECTION("the MNIST net") {
    // PyTorch 1.13, print(Net()) for the classic example with dropout1 = nn.Dropout2d(0.25)
    // (this project's MnistNet), dropout2 = nn.Dropout(0.5).
    const std::string expected =
        "Net(\n"
        "  (conv1): Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))\n"
        "  (conv2): Conv2d(32, 64, kernel_size=(3, 3), stride=(1, 1))\n"
        "  (dropout1): Dropout2d(p=0.25, inplace=False)\n"
        "  (dropout2): Dropout(p=0.5, inplace=False)\n"
        "  (fc1): Linear(in_features=9216, out_features=128, bias=True)\n"
        "  (fc2): Linear(in_features=128, out_features=10, bias=True)\n"
        ")";
    MnistNet net;
    std::ostringstream os;
    os << net;
    CHECK(os.str() == expected);
  }
  SECTION("every layer, nested") {
    // PyTorch 1.13:
    //   print(nn.Sequential(nn.Conv2d(3, 8, 5, stride=2, padding=1, bias=False),
    //       nn.MaxPool2d(2), nn.Flatten(), nn.LogSoftmax(dim=1),
    //       nn.Sequential(nn.ReLU(), nn.Dropout(0.1)), nn.Linear(4, 2, bias=False)))
    const std::string expected =
        "Sequential(\n"
        "  (0): Conv2d(3, 8, kernel_size=(5, 5), stride=(2, 2), padding=(1, 1), bias=False)\n"
        "  (1): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)\n"
        "  (2): Flatten(start_dim=1, end_dim=-1)\n"
        "  (3): LogSoftmax(dim=1)\n"
        "  (4): Sequential(\n"
        "    (0): ReLU()\n"
        "    (1): Dropout(p=0.1, inplace=False)\n"
        "  )\n"
        "  (5): Linear(in_features=4, out_features=2, bias=False)\n"
        ")";
    auto net = seq({std::make_shared<Conv2d>(3, 8, 5, ember::Conv2dOptions{2, 1, 1}, false),
                    std::make_shared<MaxPool2d>(2), std::make_shared<Flatten>(),
                    std::make_shared<LogSoftmax>(1),
                    seq({std::make_shared<ReLU>(), std::make_shared<Dropout>(0.1)}),
                    std::make_shared<Linear>(4, 2, false)});
    std::ostringstream os;
    os << *net;
    CHECK(os.str() == expected);
  }
}

TEST_CASE("Sequential's forward is its layers composed by hand", "[nn][sequential]") {
  Generator gen(8);
  auto conv = std::make_shared<Conv2d>(2, 3, 3, ember::Conv2dOptions{}, true, gen);
  auto fc = std::make_shared<Linear>(3 * 3 * 3, 4, true, gen);
  auto net = seq({conv, std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
                  std::make_shared<Flatten>(), fc, std::make_shared<LogSoftmax>(1)});
  const Tensor x = ember::Tensor<float>::randn({2, 2, 8, 8}, gen);
  // (2, 2, 8, 8) -conv-> (2, 3, 6, 6) -pool-> (2, 3, 3, 3) -flatten-> (2, 27) -fc-> (2, 4)
  const Tensor by_hand = ember::log_softmax(
      ember::linear(ember::max_pool2d(ember::relu(ember::conv2d(x, conv->weight, conv->bias)), 2)
                        .flatten(1),
                    fc->weight, fc->bias),
      1);
  const Tensor out = (*net)(x);
  CHECK(out.shape() == ember::Shape{2, 4});
  CHECK(out.to_vector() == by_hand.to_vector());
  // Gradients flow back to the layers' parameters.
  ember::sum(out).backward();
  CHECK(conv->weight.grad().defined());
  CHECK(fc->bias.grad().defined());
}

TEST_CASE("a model's step list computes what its forward computes in eval mode", "[nn][steps]") {
  Generator gen(11);
  MnistNet net({.conv1 = 4, .conv2 = 6, .hidden = 16}, gen);
  net.eval();
  const ember::Tensor<float> x = ember::Tensor<float>::randn({3, 1, 28, 28}, gen);
  const auto steps = net.steps();
  REQUIRE(steps.size() == 12);
  CHECK(steps[0].name == "conv1");
  CHECK(steps[0].layer == net.conv1.get());
  CHECK(steps[7].name == "fc1");
  CHECK(steps[4].op == ember::nn::Step::Op::max_pool2d);
  CHECK(steps[4].kernel == 2);
  CHECK(ember::nn::run_steps(steps, x).to_vector() == net.forward(x).to_vector());
  CHECK(net.fc1->in_features() == 6 * 12 * 12);

  // Sequential names its steps by position, as its state_dict does.
  ember::nn::Sequential seq{std::make_shared<ember::nn::Conv2d>(1, 3, 3, ember::Conv2dOptions{.stride = 2, .padding = 1}),
                     std::make_shared<ember::nn::ReLU>(), std::make_shared<ember::nn::MaxPool2d>(2),
                     std::make_shared<ember::nn::Flatten>(), std::make_shared<ember::nn::Dropout>(0.5),
                     std::make_shared<ember::nn::Linear>(3 * 7 * 7, 5), std::make_shared<ember::nn::LogSoftmax>(1)};
  seq.eval();
  const auto ss = seq.steps();
  REQUIRE(ss.size() == 7);
  CHECK(ss[0].name == "0");
  CHECK(ss[5].name == "5");
  CHECK(ss[5].layer == seq[5].get());
  CHECK(ember::nn::run_steps(ss, x).to_vector() == seq.forward(x).to_vector());

  // A module with a hand-written forward and no step list says so.
  struct Custom : ember::nn::Module {
    Custom() : ember::nn::Module("Custom") {}
  } custom;
  REQUIRE_THROWS_WITH(custom.steps(), Catch::Contains("Custom does not list its forward as steps"));
  REQUIRE_THROWS_WITH(ember::nn::Flatten(1, 2).steps(), Catch::Contains("only end_dim -1"));
}

namespace {
// Scores every image alike: log-probabilities over `classes` classes with class 0 the likeliest,
// and `extra_rows` rows more than there are images.
class FixedScores : public Module {
 public:
  explicit FixedScores(std::int64_t classes, std::int64_t extra_rows = 0)
      : Module("FixedScores"), classes_(classes), extra_rows_(extra_rows) {}
  Tensor forward(const Tensor& x) override {
    Tensor s = Tensor::zeros({x.size(0) + extra_rows_, classes_});
    for (std::int64_t i = 0; i < s.size(0); ++i) s(i, 0) = 1.0f;
    return ember::log_softmax(s, 1);
  }

 private:
  std::int64_t classes_, extra_rows_;
};

// 10 images of 4 x 3, label i for image i.
ember::data::DataLoader ten_image_loader() {
  auto d = std::make_shared<ember::data::ImageDataset>();
  d->images = ember::Tensor<std::uint8_t>::full({10, 4, 3}, 1);
  d->labels = ember::Tensor<std::int64_t>::arange(10);
  return ember::data::DataLoader(ember::data::Subset::all(d), {.batch_size = 4});
}
}  // namespace

TEST_CASE("evaluate() checks the model's scores against the batch and the classes", "[nn][eval]") {
  ember::data::DataLoader loader = ten_image_loader();
  FixedScores right(10);
  const ember::nn::EvalResult r = ember::nn::evaluate(right, loader);
  CHECK(r.total == 10);
  CHECK(r.correct == 1);  // only image 0 has label 0
  const double log_p0 = 1.0 - std::log(std::exp(1.0) + 9.0);
  CHECK(r.loss == Approx(-(log_p0 + 9 * (log_p0 - 1.0)) / 10).epsilon(1e-5));

  FixedScores too_few_classes(3);
  REQUIRE_THROWS_WITH(ember::nn::evaluate(too_few_classes, loader),
                      Catch::Contains("evaluate: the model returned scores of shape [4, 3] for a "
                                      "batch of 4 images; expected [4, 10]") &&
                          Catch::Contains("num_classes"));
  FixedScores extra_row(10, 1);
  REQUIRE_THROWS_WITH(ember::nn::evaluate(extra_row, loader),
                      Catch::Contains("shape [5, 10] for a batch of 4 images"));

  // A dataset that does not say how many classes it has (num_classes() 0): any count.
  ember::Tensor<std::int64_t> labels = ember::Tensor<std::int64_t>::empty({10});
  for (std::int64_t i = 0; i < 10; ++i) labels.data()[i] = i % 3;
  auto unsaid = std::make_shared<const ember::data::TensorDataset>(
      ember::Tensor<float>::ones({10, 1, 4, 3}), labels);
  ember::data::DataLoader any_classes(unsaid, {.batch_size = 4});
  FixedScores three(3);
  const ember::nn::EvalResult r3 = ember::nn::evaluate(three, any_classes);
  CHECK(r3.total == 10);
  CHECK(r3.correct == 4);  // the labels 0 of images 0, 3, 6 and 9
}

TEST_CASE("AvgPool2d and AdaptiveAvgPool2d: the functions, PyTorch's printed forms, their steps",
          "[nn][pooling]") {
  using ember::nn::AdaptiveAvgPool2d;
  using ember::nn::AvgPool2d;
  ember::Generator gen(3);
  const ember::Tensor<float> x = ember::Tensor<float>::uniform({2, 3, 9, 8}, -1.0, 1.0, gen);
  AvgPool2d pool(3, 2, 1, true, false);
  CHECK(pool.forward(x).to_vector() == ember::avg_pool2d(x, 3, 2, 1, true, false).to_vector());
  AdaptiveAvgPool2d gap(1);
  CHECK(gap.forward(x).shape() == ember::Shape{2, 3, 1, 1});
  CHECK(gap.forward(x).to_vector() == ember::adaptive_avg_pool2d(x, 1).to_vector());

  std::ostringstream a, b, c;
  a << AvgPool2d(2);
  b << AvgPool2d({3, 2}, {2, 1}, {1, 0});
  c << AdaptiveAvgPool2d({2, 3});
  CHECK(a.str() == "AvgPool2d(kernel_size=2, stride=2, padding=0)");
  CHECK(b.str() == "AvgPool2d(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))");
  CHECK(c.str() == "AdaptiveAvgPool2d(output_size=(2, 3))");

  ember::nn::Sequential net{std::make_shared<ember::nn::ReLU>(), std::make_shared<AvgPool2d>(3, 2, 1, true, false),
                            std::make_shared<AdaptiveAvgPool2d>(ember::Size2{2, 1})};
  const auto steps = net.steps();
  REQUIRE(steps.size() == 3);
  CHECK(steps[1].op == ember::nn::Step::Op::avg_pool2d);
  CHECK(steps[1].pool.kh == 3);
  CHECK(steps[1].pool.sw == 2);
  CHECK(steps[1].pool.pw == 1);
  CHECK(steps[1].pool.ceil_mode);
  CHECK_FALSE(steps[1].pool.count_include_pad);
  CHECK(steps[2].op == ember::nn::Step::Op::adaptive_avg_pool2d);
  CHECK(steps[2].pool.out_h == 2);
  CHECK(steps[2].pool.out_w == 1);
  CHECK(ember::nn::run_steps(steps, x).to_vector() == net.forward(x).to_vector());
}

TEST_CASE("every layer lists its steps, and the steps compute the eval forward exactly", "[nn][steps]") {
  using ember::nn::Step;
  Generator gen(21);
  const auto model = ember::test::every_layer_model(gen);
  const ember::Tensor<float> x = ember::Tensor<float>::randn({3, 3, 12, 12}, gen);
  const auto steps = model->steps();
  REQUIRE(steps.size() == model->size());
  const std::vector<Step::Op> ops{
      Step::Op::conv2d,     Step::Op::batch_norm, Step::Op::gelu,    Step::Op::avg_pool2d, Step::Op::conv2d,
      Step::Op::batch_norm, Step::Op::leaky_relu, Step::Op::max_pool2d, Step::Op::avg_pool2d,
      Step::Op::batch_norm, Step::Op::elu,        Step::Op::softmax, Step::Op::silu,       Step::Op::tanh,
      Step::Op::adaptive_avg_pool2d, Step::Op::sigmoid, Step::Op::gelu, Step::Op::adaptive_avg_pool2d,
      Step::Op::flatten,    Step::Op::linear,     Step::Op::batch_norm, Step::Op::relu,    Step::Op::dropout,
      Step::Op::linear,     Step::Op::log_softmax};
  for (std::size_t i = 0; i < steps.size(); ++i) {
    INFO("step " << i);
    CHECK(steps[i].op == ops[i]);
    CHECK(steps[i].name == std::to_string(i));
    CHECK(steps[i].layer == (*model)[i].get());
  }
  CHECK(steps[6].alpha == 0.2);
  CHECK(steps[10].alpha == 0.7);
  CHECK_FALSE(steps[2].approximate_tanh);
  CHECK(steps[16].approximate_tanh);
  CHECK(steps[11].dim == 1);
  CHECK(steps[24].dim == -1);
  CHECK(steps[1].eps == 1e-5);
  CHECK(steps[1].running_var.data() == dynamic_cast<const ember::nn::BatchNorm2d&>(*(*model)[1]).running_var.data());
  // Each step alone, then the whole list, against the layers' eval forward: bit for bit.
  ember::Tensor<float> h = x;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    INFO("step " << i << " (" << ember::nn::op_name(steps[i].op) << ")");
    const ember::Tensor<float> want = (*model)[i]->forward(h);
    CHECK(ember::nn::run_step(steps[i], h).to_vector() == want.to_vector());
    h = want;
  }
  CHECK(ember::nn::run_steps(steps, x).to_vector() == model->forward(x).to_vector());
}

TEST_CASE("fold_batch_norm folds a batch norm into the conv2d or linear right before it", "[nn][steps]") {
  using ember::nn::Step;
  Generator gen(22);
  const auto model = ember::test::every_layer_model(gen);
  const auto steps = model->steps();
  const auto folded = ember::nn::fold_batch_norm(steps);
  // 0+1, 4+5 and 19+20 fold; 9 follows a pooling and stays.
  REQUIRE(folded.size() == steps.size() - 3);
  CHECK(folded[0].name == "0");
  CHECK(folded[0].folded == "1");
  CHECK(folded[3].name == "4");
  CHECK(folded[3].folded == "5");
  CHECK(folded[7].op == Step::Op::batch_norm);
  CHECK(folded[7].name == "9");
  CHECK(folded[17].name == "19");
  CHECK(folded[17].folded == "20");
  CHECK(folded[17].op == Step::Op::linear);
  CHECK(folded[18].op == Step::Op::relu);

  // The formula, for one output channel of the first conv.
  const auto& conv = dynamic_cast<const ember::nn::Conv2d&>(*(*model)[0]);
  const auto& bn = dynamic_cast<const ember::nn::BatchNorm2d&>(*(*model)[1]);
  const double a = bn.weight.to_vector()[2] / std::sqrt(static_cast<double>(bn.running_var.to_vector()[2]) + 1e-5);
  CHECK(folded[0].weight.to_vector()[2 * 27 + 5] == Approx(conv.weight.to_vector()[2 * 27 + 5] * a).epsilon(1e-6));
  CHECK(folded[0].bias.to_vector()[2] ==
        Approx((conv.bias.to_vector()[2] - bn.running_mean.to_vector()[2]) * a + bn.bias.to_vector()[2]).epsilon(1e-6));
  // The model's own tensors are untouched.
  CHECK(steps[0].weight.data() == conv.weight.data());

  // Folded and unfolded compute the same up to float rounding, on every sample.
  const ember::Tensor<float> x = ember::Tensor<float>::randn({4, 3, 12, 12}, gen);
  const std::vector<float> want = model->forward(x).to_vector(), got = ember::nn::run_steps(folded, x).to_vector();
  REQUIRE(got.size() == want.size());
  float diff = 0;
  for (std::size_t i = 0; i < got.size(); ++i) diff = std::max(diff, std::fabs(got[i] - want[i]));
  INFO("max |folded - unfolded| = " << diff);
  CHECK(diff < 1e-5f);

  // Not folded: a batch norm first, or after anything but conv2d / linear, or of other width.
  ember::nn::Sequential other{std::make_shared<ember::nn::BatchNorm1d>(4), std::make_shared<Linear>(4, 3),
                              std::make_shared<ember::nn::ReLU>(), std::make_shared<ember::nn::BatchNorm1d>(3)};
  CHECK(ember::nn::fold_batch_norm(other.steps()).size() == 4);
}

TEST_CASE("what cannot be listed as steps is refused, naming the layer", "[nn][steps]") {
  struct Custom : ember::nn::Module {
    Custom() : ember::nn::Module("Custom") {}
  };
  ember::nn::Sequential seq{std::make_shared<ember::nn::ReLU>(), std::make_shared<Custom>()};
  REQUIRE_THROWS_WITH(seq.steps(), Catch::Contains("Custom does not list its forward as steps") &&
                                       Catch::Contains("(it is '1' in the model)"));
  ember::nn::Sequential bn{std::make_shared<Linear>(4, 3),
                           std::make_shared<ember::nn::BatchNorm1d>(3, 1e-5, 0.1, true, false)};
  REQUIRE_THROWS_WITH(bn.steps(), Catch::Contains("BatchNorm1d '1' (track_running_stats=False)") &&
                                      Catch::Contains("cannot be exported or quantized"));
}

TEST_CASE(
    "MaxPool2d and AdaptiveMaxPool2d: the functions, PyTorch's printed forms, steps only where "
    "they can be",
    "[nn][pooling]") {
  using ember::nn::AdaptiveMaxPool2d;
  using ember::test::ErrorContains;
  ember::Generator gen(4);
  const ember::Tensor<float> x = ember::Tensor<float>::uniform({2, 3, 9, 8}, -1.0, 1.0, gen);
  MaxPool2d pool({3, 2}, {2, 1}, {1, 0}, {2, 3}, false, true);
  CHECK(pool.forward(x).to_vector() ==
        ember::max_pool2d(x, {3, 2}, {2, 1}, {1, 0}, {2, 3}, true).to_vector());
  AdaptiveMaxPool2d gmp(1);
  CHECK(gmp.forward(x).shape() == ember::Shape{2, 3, 1, 1});
  CHECK(gmp.forward(x).to_vector() == ember::adaptive_max_pool2d(x, 1).to_vector());

  // PyTorch 2:
  //   print(nn.MaxPool2d(3, 2, 1)); print(nn.MaxPool2d((2, 3), dilation=(1, 2), ceil_mode=True))
  //   print(nn.AdaptiveMaxPool2d((2, 3))); print(nn.AdaptiveMaxPool2d(3))
  std::ostringstream a, b, c, d;
  a << MaxPool2d(3, 2, 1);
  b << MaxPool2d({2, 3}, {}, 0, {1, 2}, false, true);
  c << AdaptiveMaxPool2d({2, 3});
  d << AdaptiveMaxPool2d(3);
  CHECK(a.str() == "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)");
  CHECK(b.str() ==
        "MaxPool2d(kernel_size=(2, 3), stride=(2, 3), padding=0, dilation=(1, 2), ceil_mode=True)");
  CHECK(c.str() == "AdaptiveMaxPool2d(output_size=(2, 3))");
  CHECK(d.str() == "AdaptiveMaxPool2d(output_size=3)");
  CHECK_THROWS_MATCHES(MaxPool2d(2, {}, 0, 1, true), ember::Error,
                       ErrorContains({"MaxPool2d", "return_indices", "max_pool2d_with_indices"}));

  // A square, floor-mode, undilated MaxPool2d is a step; other options are refused by name.
  ember::nn::Sequential ok{std::make_shared<ember::nn::ReLU>(),
                           std::make_shared<MaxPool2d>(3, 2, 1)};
  const auto steps = ok.steps();
  REQUIRE(steps.size() == 2);
  CHECK(steps[1].op == ember::nn::Step::Op::max_pool2d);
  CHECK(steps[1].name == "1");
  CHECK((steps[1].kernel == 3 && steps[1].stride == 2 && steps[1].padding == 1));
  const auto refused = [](std::shared_ptr<ember::nn::Module> m) {
    return ember::nn::Sequential{std::make_shared<ember::nn::ReLU>(), std::move(m)}.steps();
  };
  CHECK_THROWS_MATCHES(refused(std::make_shared<MaxPool2d>(ember::Size2{2, 3})), ember::Error,
                       ErrorContains({"MaxPool2d '1'", "non-square kernel_size",
                                      "cannot be exported or quantized"}));
  CHECK_THROWS_MATCHES(refused(std::make_shared<MaxPool2d>(2, ember::Size2{1, 2})), ember::Error,
                       ErrorContains({"MaxPool2d '1'", "non-square stride"}));
  CHECK_THROWS_MATCHES(refused(std::make_shared<MaxPool2d>(3, 1, ember::Size2{1, 0})), ember::Error,
                       ErrorContains({"MaxPool2d '1'", "non-square padding"}));
  CHECK_THROWS_MATCHES(refused(std::make_shared<MaxPool2d>(3, 1, 1, 2)), ember::Error,
                       ErrorContains({"MaxPool2d '1'", "dilation other than 1"}));
  CHECK_THROWS_MATCHES(refused(std::make_shared<MaxPool2d>(2, 2, 0, 1, false, true)), ember::Error,
                       ErrorContains({"MaxPool2d '1'", "ceil_mode=True"}));
  CHECK_THROWS_MATCHES(refused(std::make_shared<AdaptiveMaxPool2d>(1)), ember::Error,
                       ErrorContains({"AdaptiveMaxPool2d", "cannot be exported"}));
}
