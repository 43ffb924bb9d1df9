// CPU benchmarks of the MNIST CNN (models/mnist_net.hpp):
//   TrainStep   one SGD step at batch 64 (zero_grad, forward, nll_loss, backward, step)
//   Eval        one forward at batch 1000 in eval mode under NoGradGuard
//   the layers' kernels on the net's shapes: conv1, conv2, fc1, max_pool2d and the raw GEMM.
// bench/peer/pytorch_mnist.py times the same net in PyTorch; scripts/bench.sh runs both.
//
// Threads: --threads=N or EMBER_THREADS=N (the flag wins; default 2, 0 = all cores).
// Times are wall-clock (UseRealTime: the work runs on ember's pool, not only this thread),
// reported as the median of 5 repetitions because the machine is shared and noisy.
//   build-bench/bench/bench_mnist --benchmark_filter='TrainStep|Eval'
//   build-bench/bench/bench_mnist --threads=1 --benchmark_format=json

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common.hpp"
#include "ember/ember.hpp"

namespace {

using ember::nn::Tensor;  // float
using Labels = ember::Tensor<std::int64_t>;

constexpr std::int64_t kTrainBatch = 64;
constexpr std::int64_t kEvalBatch = 1000;

// FLOPs per image of each layer's forward (a multiply-add counts 2): 2 * K * P*Q * C*R*S for
// a convolution, 2 * in * out for a linear layer. Pooling, activations and the loss are
// memory-bound and left out.
constexpr double kConv1Flops = 2.0 * 32 * (26 * 26) * (1 * 3 * 3);    //  0.39 MFLOP
constexpr double kConv2Flops = 2.0 * 64 * (24 * 24) * (32 * 3 * 3);   // 21.2  MFLOP
constexpr double kFc1Flops = 2.0 * 9216 * 128;                        //  2.36 MFLOP
constexpr double kFc2Flops = 2.0 * 128 * 10;
constexpr double kForwardFlops = kConv1Flops + kConv2Flops + kFc1Flops + kFc2Flops;
// Backward: weight and input gradients cost a forward each, except conv1, whose input
// (the images) needs no gradient.
constexpr double kTrainFlops =
    kForwardFlops + kConv1Flops + 2 * (kConv2Flops + kFc1Flops + kFc2Flops);

void set_flop_rate(benchmark::State& state, double flops_per_iteration) {
  state.counters["FLOP/s"] =
      benchmark::Counter(flops_per_iteration, benchmark::Counter::kIsIterationInvariantRate);
}

Labels random_labels(std::int64_t n, ember::Generator& gen) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  for (auto& y : v) y = static_cast<std::int64_t>(gen.below(10));
  return Labels::from_vector(v, {n});
}

// ---- the whole net ------------------------------------------------------------------------

// The net, optimiser and data are built once per process: Google Benchmark calls a benchmark
// function several times (to size the iteration count, then once per repetition), and
// rebuilding the model each time would put its initialisation into `perf` profiles.
struct TrainSetup {
  ember::Generator gen{1};
  ember::models::MnistNet model{gen};
  ember::optim::SGD opt{model.parameters(), {.lr = 0.01, .momentum = 0.5}};
  Tensor images = Tensor::randn({kTrainBatch, 1, 28, 28}, gen);  // (N, 1, 28, 28)
  Labels labels = random_labels(kTrainBatch, gen);                // (N)
};

void BM_TrainStep(benchmark::State& state) {
  static TrainSetup s;
  s.model.train();
  for (auto _ : state) {
    s.opt.zero_grad();
    Tensor loss = ember::nll_loss(s.model(s.images), s.labels);
    loss.backward();
    s.opt.step();
    benchmark::DoNotOptimize(loss.data());
  }
  set_flop_rate(state, kTrainBatch * kTrainFlops);
  state.SetItemsProcessed(state.iterations() * kTrainBatch);
}
BENCHMARK(BM_TrainStep)->Apply(ember::bench::configure);

struct EvalSetup {
  ember::Generator gen{2};
  ember::models::MnistNet model{gen};
  Tensor images = Tensor::randn({kEvalBatch, 1, 28, 28}, gen);  // (N, 1, 28, 28)
};

void BM_Eval(benchmark::State& state) {
  static EvalSetup s;
  s.model.eval();
  ember::NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor out = s.model(s.images);  // (N, 10)
    benchmark::DoNotOptimize(out.data());
  }
  set_flop_rate(state, kEvalBatch * kForwardFlops);
  state.SetItemsProcessed(state.iterations() * kEvalBatch);
}
BENCHMARK(BM_Eval)->Apply(ember::bench::configure);

// ---- layers on the net's shapes, batch 64 -------------------------------------------------

struct ConvCase {
  std::int64_t c, k, h, w;  // input (N, C, H, W), weight (K, C, 3, 3)
  bool input_grad;          // whether the input needs a gradient (not for the images)
  double flops;             // forward FLOPs per image
};
constexpr ConvCase kConv1{1, 32, 28, 28, false, kConv1Flops};
constexpr ConvCase kConv2{32, 64, 26, 26, true, kConv2Flops};

void BM_ConvForward(benchmark::State& state, ConvCase cc) {
  ember::Generator gen(3);
  const Tensor x = Tensor::randn({kTrainBatch, cc.c, cc.h, cc.w}, gen);
  const Tensor w = Tensor::uniform({cc.k, cc.c, 3, 3}, -0.1, 0.1, gen);
  const Tensor b = Tensor::uniform({cc.k}, -0.1, 0.1, gen);
  for (auto _ : state) {
    Tensor y = ember::conv2d(x, w, b);  // (N, K, H-2, W-2)
    benchmark::DoNotOptimize(y.data());
  }
  set_flop_rate(state, kTrainBatch * cc.flops);
}
BENCHMARK_CAPTURE(BM_ConvForward, conv1, kConv1)->Apply(ember::bench::configure);
BENCHMARK_CAPTURE(BM_ConvForward, conv2, kConv2)->Apply(ember::bench::configure);

void BM_ConvForwardBackward(benchmark::State& state, ConvCase cc) {
  ember::Generator gen(4);
  Tensor x = Tensor::randn({kTrainBatch, cc.c, cc.h, cc.w}, gen);
  if (cc.input_grad) x.requires_grad_();
  Tensor w = Tensor::uniform({cc.k, cc.c, 3, 3}, -0.1, 0.1, gen);
  Tensor b = Tensor::uniform({cc.k}, -0.1, 0.1, gen);
  w.requires_grad_();
  b.requires_grad_();
  const Tensor gy = Tensor::randn({kTrainBatch, cc.k, cc.h - 2, cc.w - 2}, gen);
  for (auto _ : state) {
    x.zero_grad(true);
    w.zero_grad(true);
    b.zero_grad(true);
    Tensor y = ember::conv2d(x, w, b);
    y.backward(gy);
    benchmark::DoNotOptimize(w.grad().data());
  }
  set_flop_rate(state, kTrainBatch * cc.flops * (cc.input_grad ? 3 : 2));
}
BENCHMARK_CAPTURE(BM_ConvForwardBackward, conv1, kConv1)->Apply(ember::bench::configure);
BENCHMARK_CAPTURE(BM_ConvForwardBackward, conv2, kConv2)->Apply(ember::bench::configure);

void BM_Fc1Forward(benchmark::State& state) {
  ember::Generator gen(5);
  const Tensor x = Tensor::randn({kTrainBatch, 9216}, gen);
  const Tensor w = Tensor::uniform({128, 9216}, -0.01, 0.01, gen);
  const Tensor b = Tensor::uniform({128}, -0.01, 0.01, gen);
  for (auto _ : state) {
    Tensor y = ember::linear(x, w, b);  // (N, 128)
    benchmark::DoNotOptimize(y.data());
  }
  set_flop_rate(state, kTrainBatch * kFc1Flops);
}
BENCHMARK(BM_Fc1Forward)->Apply(ember::bench::configure);

void BM_Fc1ForwardBackward(benchmark::State& state) {
  ember::Generator gen(6);
  Tensor x = Tensor::randn({kTrainBatch, 9216}, gen);
  Tensor w = Tensor::uniform({128, 9216}, -0.01, 0.01, gen);
  Tensor b = Tensor::uniform({128}, -0.01, 0.01, gen);
  x.requires_grad_();  // in the net it comes from the conv stack
  w.requires_grad_();
  b.requires_grad_();
  const Tensor gy = Tensor::randn({kTrainBatch, 128}, gen);
  for (auto _ : state) {
    x.zero_grad(true);
    w.zero_grad(true);
    b.zero_grad(true);
    Tensor y = ember::linear(x, w, b);
    y.backward(gy);
    benchmark::DoNotOptimize(w.grad().data());
  }
  set_flop_rate(state, kTrainBatch * kFc1Flops * 3);
}
BENCHMARK(BM_Fc1ForwardBackward)->Apply(ember::bench::configure);

// max_pool2d(2) on conv2's output (64, 64, 24, 24); items are input elements.
void BM_MaxPool2d(benchmark::State& state) {
  const bool backward = state.range(0) != 0;
  ember::Generator gen(7);
  Tensor x = Tensor::randn({kTrainBatch, 64, 24, 24}, gen);
  if (backward) x.requires_grad_();
  const Tensor gy = Tensor::randn({kTrainBatch, 64, 12, 12}, gen);
  for (auto _ : state) {
    x.zero_grad(true);
    Tensor y = ember::max_pool2d(x, 2);  // (N, 64, 12, 12)
    if (backward) y.backward(gy);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * x.numel());
}
BENCHMARK(BM_MaxPool2d)->ArgName("backward")->Arg(0)->Arg(1)->Apply(ember::bench::configure);

// ---- the raw GEMM: C[M,N] = A[M,K] * B[K,N], row-major ------------------------------------
// Args: M, N, K, threads (0: the program's setting; -1: gemm_serial, one Eigen call on this
// thread). conv2's forward multiplies w (64, 288) by one image's col (288, 576) with
// gemm_serial inside its loop over the batch, so that shape runs as there, and through gemm's
// fixed block grid on one thread and threaded. fc1's forward (64, 128, 9216) is the net's
// one threaded GEMM with a large K.
void BM_Gemm(benchmark::State& state) {
  const std::int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool serial = state.range(3) < 0;
  const int threads_before = ember::get_num_threads();
  if (state.range(3) > 0) ember::set_num_threads(static_cast<int>(state.range(3)));
  ember::Generator gen(8);
  const Tensor a = Tensor::randn({m, k}, gen);
  const Tensor b = Tensor::randn({k, n}, gen);
  Tensor c = Tensor::empty({m, n});
  const ember::cpu::GemmParams p{.m = m, .n = n, .k = k, .lda = k, .ldb = n, .ldc = n};
  for (auto _ : state) {
    if (serial) ember::cpu::gemm_serial<float>(p, 1.0f, a.data(), b.data(), 0.0f, c.data());
    else ember::cpu::gemm<float>(p, 1.0f, a.data(), b.data(), 0.0f, c.data());
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  ember::set_num_threads(threads_before);
  set_flop_rate(state, 2.0 * static_cast<double>(m * n * k));
}
BENCHMARK(BM_Gemm)
    ->ArgNames({"M", "N", "K", "threads"})
    ->Args({64, 576, 288, -1})
    ->Args({64, 576, 288, 1})
    ->Args({64, 576, 288, 0})
    ->Args({64, 128, 9216, 0})
    ->Args({512, 512, 512, 0})
    ->Apply(ember::bench::configure);

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
