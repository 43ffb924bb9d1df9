// CPU benchmarks of the layer set beyond the MNIST net, each on one activation-sized float
// tensor x (64, 64, 24, 24) (conv2's output in the MNIST net, 2.36 M elements):
//   BatchNorm2d/train   F.batch_norm in training mode (batch statistics, running stats
//                       updated), forward + backward to x, weight and bias
//   BatchNorm2d/eval    the same in eval mode (running statistics), forward only, no grad
//   AvgPool2d           avg_pool2d(x, 2), forward + backward
//   Activation/<name>   sigmoid, tanh, gelu, silu, leaky_relu, elu, softmax (dim 1),
//                       log_softmax (dim 1), forward + backward
//   Bmm                 bmm of a (64, 49, 64) by b (64, 64, 49) (64 heads' attention scores
//                       over 7 x 7 windows), forward + backward to a and b; items are outputs
//   OptimStep/<name>    one optimizer step over the MNIST net's parameters (1,199,882 floats,
//                       gradients fixed and random): adam, adamw (weight_decay 1e-2),
//                       sgd_momentum (momentum 0.9); items are parameters
// Every forward+backward is timed as PyTorch's peer (bench/peer/pytorch_layers.py) times it:
// clear x's gradient, y = f(x), y.backward(gy) with a fixed random gy. Items are x's elements.
// Besides the wall-clock time, cpu_time is the whole process's CPU time (all threads), as the
// peer's median_cpu_ms is: on a machine shared with other work, the two programs' CPU times
// compare the work they do even when their time slices differ.
// scripts/bench.sh --layers runs both on 1 and 2 threads and prints ember / PyTorch.
//
// Threads: --threads=N or EMBER_THREADS=N (the flag wins; default 2, 0 = all cores).
//   build-bench/bench/bench_layers --threads=1 --benchmark_filter=Activation

#include <benchmark/benchmark.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "ember/ember.hpp"

namespace {

using ember::nn::Tensor;  // float

constexpr std::int64_t kN = 64, kC = 64, kH = 24, kW = 24;

void configure(benchmark::internal::Benchmark* b) {
  ember::bench::configure(b);
  b->MeasureProcessCPUTime();
}

void set_items(benchmark::State& state) {
  state.SetItemsProcessed(state.iterations() * kN * kC * kH * kW);
}

// ---- batch_norm ----------------------------------------------------------------------------

void BM_BatchNorm2dTrain(benchmark::State& state) {
  ember::Generator gen(11);
  Tensor x = Tensor::randn({kN, kC, kH, kW}, gen);  // (N, C, H, W)
  Tensor w = Tensor::uniform({kC}, 0.5, 1.5, gen);
  Tensor b = Tensor::uniform({kC}, -0.5, 0.5, gen);
  Tensor running_mean = Tensor::zeros({kC});
  Tensor running_var = Tensor::ones({kC});
  x.requires_grad_();
  w.requires_grad_();
  b.requires_grad_();
  const Tensor gy = Tensor::randn({kN, kC, kH, kW}, gen);
  for (auto _ : state) {
    x.zero_grad(true);
    w.zero_grad(true);
    b.zero_grad(true);
    Tensor y = ember::batch_norm(x, running_mean, running_var, w, b, /*training=*/true);
    y.backward(gy);
    benchmark::DoNotOptimize(x.grad().data());
  }
  set_items(state);
}
BENCHMARK(BM_BatchNorm2dTrain)->Name("BM_BatchNorm2d/train")->Apply(configure);

void BM_BatchNorm2dEval(benchmark::State& state) {
  ember::Generator gen(12);
  const Tensor x = Tensor::randn({kN, kC, kH, kW}, gen);
  const Tensor w = Tensor::uniform({kC}, 0.5, 1.5, gen);
  const Tensor b = Tensor::uniform({kC}, -0.5, 0.5, gen);
  const Tensor running_mean = Tensor::uniform({kC}, -0.5, 0.5, gen);
  const Tensor running_var = Tensor::uniform({kC}, 0.5, 2.0, gen);
  ember::NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor y = ember::batch_norm(x, running_mean, running_var, w, b, /*training=*/false);
    benchmark::DoNotOptimize(y.data());
  }
  set_items(state);
}
BENCHMARK(BM_BatchNorm2dEval)->Name("BM_BatchNorm2d/eval")->Apply(configure);

// ---- avg_pool2d(2) ---------------------------------------------------------------------------

void BM_AvgPool2d(benchmark::State& state) {
  ember::Generator gen(13);
  Tensor x = Tensor::randn({kN, kC, kH, kW}, gen);
  x.requires_grad_();
  const Tensor gy = Tensor::randn({kN, kC, kH / 2, kW / 2}, gen);
  for (auto _ : state) {
    x.zero_grad(true);
    Tensor y = ember::avg_pool2d(x, 2);  // (N, C, 12, 12)
    y.backward(gy);
    benchmark::DoNotOptimize(x.grad().data());
  }
  set_items(state);
}
BENCHMARK(BM_AvgPool2d)->Apply(configure);

// ---- bmm, forward + backward -------------------------------------------------------------------

void BM_Bmm(benchmark::State& state) {
  constexpr std::int64_t kB = 64, kRows = 49, kInner = 64;
  ember::Generator gen(16);
  Tensor a = Tensor::randn({kB, kRows, kInner}, gen);  // (B, N, K)
  Tensor b = Tensor::randn({kB, kInner, kRows}, gen);  // (B, K, M)
  a.requires_grad_();
  b.requires_grad_();
  const Tensor gy = Tensor::randn({kB, kRows, kRows}, gen);
  for (auto _ : state) {
    a.zero_grad(true);
    b.zero_grad(true);
    Tensor y = ember::bmm(a, b);  // (B, N, M)
    y.backward(gy);
    benchmark::DoNotOptimize(b.grad().data());
  }
  state.SetItemsProcessed(state.iterations() * kB * kRows * kRows);
}
BENCHMARK(BM_Bmm)->Apply(configure);

// ---- activations, forward + backward ---------------------------------------------------------

void BM_Activation(benchmark::State& state, const std::function<Tensor(const Tensor&)>& f) {
  ember::Generator gen(14);
  Tensor x = Tensor::randn({kN, kC, kH, kW}, gen);
  x.requires_grad_();
  const Tensor gy = Tensor::randn({kN, kC, kH, kW}, gen);
  for (auto _ : state) {
    x.zero_grad(true);
    Tensor y = f(x);
    y.backward(gy);
    benchmark::DoNotOptimize(x.grad().data());
  }
  set_items(state);
}
BENCHMARK_CAPTURE(BM_Activation, sigmoid, [](const Tensor& x) {
  return ember::sigmoid(x);
})->Apply(configure);
BENCHMARK_CAPTURE(BM_Activation, tanh, [](const Tensor& x) {
  return ember::tanh(x);
})->Apply(configure);
BENCHMARK_CAPTURE(BM_Activation, gelu, [](const Tensor& x) {
  return ember::gelu(x);
})->Apply(configure);
BENCHMARK_CAPTURE(BM_Activation, silu, [](const Tensor& x) {
  return ember::silu(x);
})->Apply(configure);
BENCHMARK_CAPTURE(BM_Activation, leaky_relu, [](const Tensor& x) {
  return ember::leaky_relu(x);
})->Apply(configure);
BENCHMARK_CAPTURE(BM_Activation, elu, [](const Tensor& x) {
  return ember::elu(x);
})->Apply(configure);
BENCHMARK_CAPTURE(BM_Activation, softmax, [](const Tensor& x) {
  return ember::softmax(x, 1);
})->Apply(configure);
BENCHMARK_CAPTURE(BM_Activation, log_softmax, [](const Tensor& x) {
  return ember::log_softmax(x, 1);
})->Apply(configure);

// ---- optimizer steps over the MNIST net's parameters --------------------------------------

using MakeOptimizer =
    std::function<std::unique_ptr<ember::optim::Optimizer>(std::vector<Tensor>)>;

void BM_OptimStep(benchmark::State& state, const MakeOptimizer& make) {
  ember::Generator gen(15);
  ember::models::MnistNet net(gen);
  std::vector<Tensor> params = net.parameters();
  std::int64_t n = 0;
  for (Tensor& p : params) {
    p.set_grad(Tensor::randn(p.shape(), gen));
    n += p.numel();
  }
  const std::unique_ptr<ember::optim::Optimizer> opt = make(params);
  for (auto _ : state) {
    opt->step();
    benchmark::DoNotOptimize(params[0].data());
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK_CAPTURE(BM_OptimStep, adam, [](std::vector<Tensor> p) {
  return std::make_unique<ember::optim::Adam>(std::move(p));
})->Apply(configure);
BENCHMARK_CAPTURE(BM_OptimStep, adamw, [](std::vector<Tensor> p) {
  return std::make_unique<ember::optim::AdamW>(std::move(p));
})->Apply(configure);
BENCHMARK_CAPTURE(BM_OptimStep, sgd_momentum, [](std::vector<Tensor> p) {
  return std::make_unique<ember::optim::SGD>(std::move(p),
                                             ember::optim::SGDOptions{.lr = 0.01, .momentum = 0.9});
})->Apply(configure);

}  // namespace

int main(int argc, char** argv) {
  ember::set_num_threads(ember::bench::take_threads_flag(argc, argv));
  benchmark::AddCustomContext("ember_threads", std::to_string(ember::get_num_threads()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
