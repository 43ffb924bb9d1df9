// Cross-cutting op tests: the view ops of core/tensor.hpp as differentiable ops, a small
// CNN composed from every op checked end to end by finite differences, and the same bits at
// any thread count: every op forward and backward, and training the MNIST net with SGD.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "ember/backend/cpu/gemm.hpp"
#include "ember/core/parallel.hpp"
#include "ember/core/tensor.hpp"
#include "ember/models/mnist_net.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/conv.hpp"
#include "ember/ops/dropout.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/linear.hpp"
#include "ember/ops/loss.hpp"
#include "ember/ops/pool.hpp"
#include "ember/ops/reduce.hpp"
#include "ember/optim/sgd.hpp"

#include "support/gradcheck.hpp"
#include "support/inputs.hpp"

namespace {

using ember::Shape;
using ember::Tensor;
using ember::test::check_gradients;
using ember::test::random_tensor;
using I64 = std::int64_t;
using TD = Tensor<double>;
using Inputs = std::vector<TD>;

// Restores the thread count when a test ends, however it ends.
class ThreadCountGuard {
 public:
  ThreadCountGuard() : saved_(ember::get_num_threads()) {}
  ~ThreadCountGuard() { ember::set_num_threads(saved_); }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int saved_;
};

template <class T>
bool bit_identical(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace

TEST_CASE("The gradient checker catches a wrong backward", "[ops][grad][harness]") {
  // y = 2x recorded with a backward that returns 3g: the checker must fail it, and pass the
  // same op with the right backward.
  const auto scaled = [](double backward_factor) {
    return [backward_factor](const Inputs& in) {
      TD y = ember::mul_scalar(in[0].detach(), 2.0);
      ember::autograd::record(y, "ScaleBackward", {in[0]}, [backward_factor](const TD& g) {
        return std::vector<TD>{ember::mul_scalar(g, backward_factor)};
      });
      return y;
    };
  };
  const TD x = random_tensor<double>({3, 4}, 110);
  const auto wrong = ember::test::gradcheck(scaled(3.0), {x});
  CHECK_FALSE(wrong.ok);
  CHECK(wrong.checked == 12);
  CHECK(wrong.max_abs_err > 0.1);
  const auto right = ember::test::gradcheck(scaled(2.0), {x});
  CHECK(right.ok);
  CHECK(right.max_abs_err < 1e-8);
  // A gradient that never arrives counts as zero, and fails too.
  const auto none = ember::test::gradcheck([](const Inputs& in) { return in[0].detach(); }, {x});
  CHECK_FALSE(none.ok);
  // Only the first of two inputs is wrong: the report names input 0.
  const auto two = ember::test::gradcheck(
      [&scaled](const Inputs& in) { return ember::add(scaled(1.0)({in[0]}), in[1]); }, {x, x});
  CHECK_FALSE(two.ok);
  CHECK(two.report.find("input 0") != std::string::npos);
  CHECK(two.report.find("input 1") == std::string::npos);
}

TEST_CASE("View ops are differentiable", "[ops][view][grad]") {
  const TD x = random_tensor<double>({2, 3, 4}, 111);
  check_gradients([](const Inputs& in) { return in[0].reshape({4, 6}); }, {x});
  check_gradients([](const Inputs& in) { return in[0].view({-1, 2}); }, {x});
  check_gradients([](const Inputs& in) { return in[0].flatten(1); }, {x});
  check_gradients([](const Inputs& in) { return in[0].transpose(0, 2); }, {x});
  check_gradients([](const Inputs& in) { return in[0].permute({1, 2, 0}); }, {x});
  check_gradients([](const Inputs& in) { return in[0].slice(2, 1, 4, 2); }, {x});
  check_gradients([](const Inputs& in) { return in[0].slice(1, -2, 3); }, {x});
  check_gradients([](const Inputs& in) { return in[0].select(1, 1); }, {x});
  check_gradients([](const Inputs& in) { return in[0].select(-1, -1); }, {x});
  check_gradients([](const Inputs& in) { return in[0].unsqueeze(1); }, {x});
  check_gradients([](const Inputs& in) { return in[0].unsqueeze(3).squeeze(3); }, {x});
  check_gradients([](const Inputs& in) { return in[0].clone(); }, {x});
  check_gradients([](const Inputs& in) { return in[0].t(); }, {random_tensor<double>({3, 5}, 112)});
  // reshape of a non-contiguous tensor copies (CloneBackward0, then ViewBackward0).
  check_gradients([](const Inputs& in) { return in[0].transpose(0, 1).reshape({12, 2}); }, {x});
  check_gradients([](const Inputs& in) { return in[0].permute({2, 0, 1}).contiguous(); }, {x});
  // Chains of views, and a view used twice.
  check_gradients(
      [](const Inputs& in) {
        const TD s = in[0].slice(0, 0, 2).select(2, 0);  // [2, 3]
        return ember::mul(s, in[0].select(2, 3).t().t());
      },
      {x});
  // Overlapping slices add their gradients.
  check_gradients(
      [](const Inputs& in) { return ember::add(in[0].slice(2, 0, 3), in[0].slice(2, 1, 4)); }, {x});
}

TEST_CASE("A small CNN is differentiable end to end", "[ops][grad]") {
  // conv -> relu -> max_pool -> flatten -> linear -> cross_entropy (+ dropout, fixed mask),
  // every parameter checked at once. Inputs are nudged so no relu input or pool tie sits
  // within the probes (checked by the finite-difference agreement itself).
  const TD x = random_tensor<double>({2, 1, 6, 6}, 113);
  const TD w = random_tensor<double>({3, 1, 3, 3}, 114);
  const TD b = random_tensor<double>({3}, 115, 0.05, 0.1);
  const TD fw = random_tensor<double>({4, 12}, 116);
  const TD fb = random_tensor<double>({4}, 117);
  const auto target = Tensor<I64>::from_list({2, 0});
  const ember::Generator start(118);
  check_gradients(
      [&target, start](const Inputs& in) {
        ember::Generator g = start;
        TD h = ember::conv2d(in[0], in[1], in[2], ember::Conv2dOptions{1, 1, 1});  // [2,3,6,6]
        h = ember::max_pool2d(ember::relu(h), 3, 3);                               // [2,3,2,2]
        h = ember::dropout(h.flatten(1), 0.25, true, g);                           // [2,12]
        h = ember::linear(h, in[3], in[4]);                                        // [2,4]
        return ember::cross_entropy(h, target);
      },
      {x, w, b, fw, fb});
}

namespace {

// Everything the thread tests compare, by name: forward values, gradients, parameters.
using Results = std::map<std::string, std::vector<float>>;

// Every threaded op, forward and backward, on shapes whose work is split: conv2d over its
// images (and over the groups of its weight gradient), a one-image conv2d over its GEMMs'
// blocks, linear and matmul over GEMM blocks, pooling, elementwise ops and SGD over
// parallel_for chunks; and the reductions, the loss and dropout, which are not split but
// must not depend on the thread count either.
Results run_threaded_ops(int threads) {
  ember::set_num_threads(threads);
  REQUIRE(ember::get_num_threads() == threads);
  Results r;
  const auto grads = [&r](const std::string& name, const std::vector<Tensor<float>*>& ts) {
    for (std::size_t i = 0; i < ts.size(); ++i)
      r[name + ".grad" + std::to_string(i)] = ts[i]->grad().to_vector();
  };
  {  // conv2d, batch 4, padded
    auto x = random_tensor<float>({4, 3, 17, 15}, 121).requires_grad_();
    auto w = random_tensor<float>({8, 3, 3, 3}, 122).requires_grad_();
    auto b = random_tensor<float>({8}, 123).requires_grad_();
    const auto y = ember::conv2d(x, w, b, ember::Conv2dOptions{1, 1, 1});  // [4, 8, 17, 15]
    r["conv"] = y.to_vector();
    y.backward(random_tensor<float>(y.shape(), 124));
    grads("conv", {&x, &w, &b});
  }
  {  // conv2d, batch 21 (more images than weight-gradient groups, unevenly), strided
    auto x = random_tensor<float>({21, 8, 21, 19}, 131).requires_grad_();
    auto w = random_tensor<float>({16, 8, 3, 3}, 132).requires_grad_();
    const auto y = ember::conv2d(x, w, {}, ember::Conv2dOptions{2, 0, 1});  // [21, 16, 10, 9]
    r["conv_strided"] = y.to_vector();
    y.backward(random_tensor<float>(y.shape(), 133));
    grads("conv_strided", {&x, &w});
  }
  {  // conv2d, batch 1 with a wide output: its GEMMs are what splits
    auto x = random_tensor<float>({1, 16, 40, 41}, 125).requires_grad_();
    auto w = random_tensor<float>({32, 16, 3, 3}, 126).requires_grad_();
    auto b = random_tensor<float>({32}, 134).requires_grad_();
    const auto y = ember::conv2d(x, w, b, ember::Conv2dOptions{1, 1, 1});  // [1, 32, 40, 41]
    r["conv_b1"] = y.to_vector();
    y.backward(random_tensor<float>(y.shape(), 135));
    grads("conv_b1", {&x, &w, &b});
  }
  {  // linear
    auto x = random_tensor<float>({64, 1024}, 127).requires_grad_();
    auto w = random_tensor<float>({300, 1024}, 128).requires_grad_();
    auto b = random_tensor<float>({300}, 129).requires_grad_();
    const auto z = ember::linear(x, w, b);  // [64, 300]
    r["linear"] = z.to_vector();
    z.backward(random_tensor<float>(z.shape(), 130));
    grads("linear", {&x, &w, &b});
  }
  {  // matmul, M > N
    auto a = random_tensor<float>({200, 700}, 136).requires_grad_();
    auto b = random_tensor<float>({700, 150}, 137).requires_grad_();
    const auto c = ember::matmul(a, b);  // [200, 150]
    r["matmul"] = c.to_vector();
    c.backward(random_tensor<float>(c.shape(), 138));
    grads("matmul", {&a, &b});
  }
  {  // max_pool2d, the 2 x 2 kernel and the general one; relu; elementwise ops
    auto x = random_tensor<float>({8, 16, 24, 24}, 139).requires_grad_();
    const auto p2 = ember::max_pool2d(ember::relu(x), 2);        // [8, 16, 12, 12]
    const auto p3 = ember::max_pool2d(x, 3, 2, 1);               // [8, 16, 12, 12]
    const auto e = ember::div(ember::exp(ember::mul(p2, p3)),    // elementwise, 18k each
                              ember::add_scalar(ember::mul(p3, p3), 1.0f));
    const auto xx = ember::mul(x, x);
    const auto big = ember::sub(xx, ember::log(ember::add_scalar(xx, 1.0f)));
    r["pool2"] = p2.to_vector();
    r["pool3"] = p3.to_vector();
    r["elementwise"] = e.to_vector();
    r["elementwise_big"] = big.to_vector();  // 73k elements: several parallel_for chunks
    ember::add(ember::sum(e), ember::mean(big)).backward();
    grads("pool", {&x});
  }
  {  // reductions, log_softmax and the loss
    auto x = random_tensor<float>({512, 100}, 140).requires_grad_();
    auto t = Tensor<I64>::empty({512});
    for (I64 i = 0; i < 512; ++i) t.data()[i] = (i * 37) % 100;
    const auto loss = ember::cross_entropy(x, t);
    const auto s0 = ember::sum(x, 0), m1 = ember::mean(x, 1, true);
    r["loss"] = loss.to_vector();
    r["sum0"] = s0.to_vector();
    r["mean1"] = m1.to_vector();
    r["sum"] = ember::sum(x).to_vector();
    ember::add(ember::add(loss, ember::mean(s0)), ember::sum(m1)).backward();
    grads("reduce", {&x});
  }
  {  // dropout and dropout2d
    ember::Generator gen(141);
    auto x = random_tensor<float>({64, 2000}, 142).requires_grad_();
    auto c = random_tensor<float>({8, 16, 24, 24}, 143).requires_grad_();
    const auto d = ember::dropout(x, 0.5, true, gen);
    const auto d2 = ember::dropout2d(c, 0.25, true, gen);
    r["dropout"] = d.to_vector();
    r["dropout2d"] = d2.to_vector();
    ember::add(ember::sum(d), ember::sum(d2)).backward();
    grads("dropout", {&x, &c});
  }
  {  // SGD with momentum and weight decay, over 300k elements
    auto p = random_tensor<float>({300, 1000}, 144).requires_grad_();
    ember::optim::SGD opt({p}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
    for (int step = 0; step < 3; ++step) {
      opt.zero_grad();
      ember::sum(ember::mul(p, p)).backward();
      opt.step();
    }
    r["sgd"] = p.to_vector();
    r["sgd_momentum"] = opt.momentum_buffers()[0].to_vector();
  }
  return r;
}

// Checks that every result of `got` has the bits of the same result in `want`.
void check_bit_identical(const Results& want, const Results& got) {
  REQUIRE(want.size() == got.size());
  for (const auto& [name, values] : want) {
    CAPTURE(name);
    REQUIRE(got.count(name) == 1);
    CHECK(bit_identical(values, got.at(name)));
  }
}

// A few SGD steps of the MNIST net (momentum, dropout in training mode) at `threads` threads,
// on `batch` random images per step: every parameter and momentum buffer afterwards, and the
// losses.
Results train_mnist_net(int threads, ember::models::MnistNetConfig config, std::int64_t batch,
                        int steps) {
  ember::set_num_threads(threads);
  REQUIRE(ember::get_num_threads() == threads);
  ember::Generator gen(150);  // initialisation and dropout
  ember::models::MnistNet model(config, gen);
  model.train();
  ember::optim::SGD opt(model.parameters(), {.lr = 0.05, .momentum = 0.5});
  ember::Generator data(151);
  Results r;
  std::vector<float>& losses = r["losses"];
  for (int step = 0; step < steps; ++step) {
    // Synthetic data: class c images have a bright row 2c + 4 (so the net has something to
    // learn and its gradients stay alive).
    auto images = Tensor<float>::randn({batch, 1, 28, 28}, data);
    auto labels = Tensor<I64>::empty({batch});
    for (I64 n = 0; n < batch; ++n) {
      const auto c = static_cast<I64>(data.below(10));
      labels.data()[n] = c;
      for (I64 w = 0; w < 28; ++w) images.data()[(n * 28 + 2 * c + 4) * 28 + w] += 2.0f;
    }
    opt.zero_grad();
    Tensor<float> loss = ember::nll_loss(model(images), labels);
    loss.backward();
    opt.step();
    losses.push_back(loss.item());
  }
  for (const auto& [name, t] : model.named_parameters()) r[name] = t.to_vector();
  for (std::size_t i = 0; i < opt.momentum_buffers().size(); ++i)
    r["momentum" + std::to_string(i)] = opt.momentum_buffers()[i].to_vector();
  return r;
}

}  // namespace

TEST_CASE("parallel_for's chunks do not depend on the thread count", "[ops][threads]") {
  ThreadCountGuard restore;
  const auto chunks_at = [](int threads, I64 n, I64 grain) {
    ember::set_num_threads(threads);
    std::mutex m;
    std::vector<std::pair<I64, I64>> seen;
    ember::parallel_for(3, 3 + n, grain, [&](I64 lo, I64 hi) {
      std::lock_guard lock(m);
      seen.emplace_back(lo, hi);
    });
    std::sort(seen.begin(), seen.end());
    return seen;
  };
  const std::pair<I64, I64> cases[] = {{1, 1}, {100, 1}, {100, 7}, {10000, 1}, {5, 10}};
  for (const auto& [n, grain] : cases) {
    CAPTURE(n, grain);
    const auto one = chunks_at(1, n, grain);
    const I64 count = ember::parallel_for_chunk_count(n, grain);
    REQUIRE(static_cast<I64>(one.size()) == count);
    CHECK(count <= ember::kParallelForMaxChunks);
    CHECK(one.front().first == 3);
    CHECK(one.back().second == 3 + n);
    for (std::size_t i = 1; i < one.size(); ++i) CHECK(one[i].first == one[i - 1].second);
    for (int threads : {2, 3, 8}) CHECK(chunks_at(threads, n, grain) == one);
  }
}

TEST_CASE("The test shapes split their work", "[ops][threads]") {
  // Otherwise the thread tests below would compare unsplit work with itself.
  const auto blocks = [](I64 m, I64 n, I64 k) {
    const ember::cpu::GemmParams p{false, false, m, n, k, k, n, n};
    return ember::cpu::gemm_grid<float>(p).blocks;
  };
  CHECK(blocks(64, 300, 1024) > 1);   // linear, forward
  CHECK(blocks(64, 1024, 300) > 1);   // linear, input gradient
  CHECK(blocks(300, 1024, 64) > 1);   // linear, weight gradient
  CHECK(blocks(200, 150, 700) > 1);   // matmul
  CHECK(blocks(32, 1640, 144) > 1);   // the one-image conv2d
  CHECK(blocks(20, 128, 9216) > 1);   // the MNIST net's fc1 at batch 20
  CHECK(blocks(32, 512, 1152) > 1);   // the narrow net's fc1 at batch 32
  CHECK(ember::parallel_for_chunk_count(64 * 2000, 1 << 15) > 1);  // dropout's product
  CHECK(ember::parallel_for_chunk_count(300 * 1000, 1 << 16) > 1);  // SGD
}

TEST_CASE("Every op is repeatable at a given thread count", "[ops][threads]") {
  ThreadCountGuard restore;
  for (int threads : {1, 3}) {
    CAPTURE(threads);
    check_bit_identical(run_threaded_ops(threads), run_threaded_ops(threads));
  }
}

TEST_CASE("Every op is bit-identical at 1, 2, 3 and 8 threads", "[ops][threads]") {
  ThreadCountGuard restore;
  const Results one = run_threaded_ops(1);
  for (int threads : {2, 3, 8}) {
    CAPTURE(threads);
    check_bit_identical(one, run_threaded_ops(threads));
  }
}

TEST_CASE("MNIST net training steps are bit-identical at 1, 2, 3 and 8 threads",
          "[ops][threads][mnist]") {
  ThreadCountGuard restore;
  // Batch 20: more images than conv2d's weight-gradient groups, unevenly.
  const Results one = train_mnist_net(1, {}, 20, 3);
  for (int threads : {2, 3, 8}) {
    CAPTURE(threads);
    check_bit_identical(one, train_mnist_net(threads, {}, 20, 3));
  }
}

TEST_CASE("300 training steps end with the same bits at 1 and 3 threads",
          "[ops][threads][mnist]") {
  ThreadCountGuard restore;
  // A narrow net (fc1 still wide enough for its GEMMs to split) so that 300 steps take seconds.
  const ember::models::MnistNetConfig narrow{.conv1 = 4, .conv2 = 8, .hidden = 512};
  const Results one = train_mnist_net(1, narrow, 32, 300);
  const Results three = train_mnist_net(3, narrow, 32, 300);
  check_bit_identical(one, three);
  // It learnt something: the last ten losses are below the first ten.
  const auto& losses = one.at("losses");
  const auto mean_of = [&](std::size_t from) {
    double s = 0;
    for (std::size_t i = from; i < from + 10; ++i) s += losses[i];
    return s / 10;
  };
  CHECK(mean_of(losses.size() - 10) < 0.5 * mean_of(0));
}
