// CPU benchmarks of int8 inference (quant/) against the float path, in the same run:
//   Forward/float         MnistNet forward at batch 1000, eval mode, NoGradGuard (the float path)
//   Forward/int8_<kernel> the quantized MnistNet at batch 1000, for each int8 kernel this CPU has
//   Gemm/...              conv2's product alone (576 x 64 x 288, one image), one thread:
//                         ember's float GEMM against each int8 kernel
// The ratio int8 / float of the Forward images/s is the measure docs/performance.md quotes.
// Weights are a seeded initialisation and calibration uses random images: the speed of int8
// inference does not depend on the values.
//
// Threads: --threads=N or EMBER_THREADS=N (default 2). Median of 5 repetitions.
//   build-bench/bench/bench_quant --benchmark_filter=Forward

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"
#include "ember/ember.hpp"
#include "ember/quant/quantize.hpp"

namespace {

using ember::nn::Tensor;
using ember::quant::Int8Kernel;

constexpr std::int64_t kBatch = 1000;

struct Models {
  ember::models::MnistNet net;
  ember::quant::QuantizedModel q;
  Tensor x;
  Models() : net(gen()) {
    net.eval();
    ember::Generator g(2);
    x = Tensor::rand({kBatch, 1, 28, 28}, g) * 2.0f - 1.0f;
    q = ember::quant::quantize(net, std::vector<Tensor>{x});
  }
  static ember::Generator& gen() {
    static ember::Generator g(1);
    return g;
  }
};

Models& models() {
  static Models m;
  return m;
}

void BM_ForwardFloat(benchmark::State& state) {
  Models& m = models();
  ember::NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(m.net.forward(m.x).data());
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(kBatch), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ForwardFloat)->Name("Forward/float")->Apply(ember::bench::configure);

void BM_ForwardInt8(benchmark::State& state, Int8Kernel kernel) {
  if (!ember::quant::kernel_supported(kernel)) {
    state.SkipWithError("this CPU cannot run the kernel");
    return;
  }
  Models& m = models();
  const Int8Kernel before = ember::quant::int8_kernel();
  ember::quant::set_int8_kernel(kernel);
  for (auto _ : state) benchmark::DoNotOptimize(m.q.forward(m.x).data());
  ember::quant::set_int8_kernel(before);
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(kBatch), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK_CAPTURE(BM_ForwardInt8, int8_avx512_vnni, Int8Kernel::avx512_vnni)->Name("Forward/int8_avx512_vnni")->Apply(ember::bench::configure);
BENCHMARK_CAPTURE(BM_ForwardInt8, int8_avx2, Int8Kernel::avx2)->Name("Forward/int8_avx2")->Apply(ember::bench::configure);
BENCHMARK_CAPTURE(BM_ForwardInt8, int8_portable, Int8Kernel::portable)->Name("Forward/int8_portable")->Apply(ember::bench::configure);

// conv2's GEMM for one image: M = 576 output pixels, N = 64 channels, K = 288.
constexpr std::int64_t kM = 576, kN = 64, kK = 288;

void BM_GemmFloat(benchmark::State& state) {
  const int before = ember::get_num_threads();
  ember::set_num_threads(1);
  std::vector<float> a(kN * kK, 0.5f), b(kK * kM, 0.25f), c(kN * kM);
  const ember::cpu::GemmParams p{.m = kN, .n = kM, .k = kK, .lda = kK, .ldb = kM, .ldc = kM};
  for (auto _ : state) {
    ember::cpu::gemm<float>(p, 1.0f, a.data(), b.data(), 0.0f, c.data());
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  ember::set_num_threads(before);
  state.counters["MAC/s"] = benchmark::Counter(static_cast<double>(kM * kN * kK), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_GemmFloat)->Name("Gemm/float")->Apply(ember::bench::configure);

void BM_GemmInt8(benchmark::State& state, Int8Kernel kernel) {
  if (!ember::quant::kernel_supported(kernel)) {
    state.SkipWithError("this CPU cannot run the kernel");
    return;
  }
  std::mt19937 rng(3);
  std::vector<std::uint8_t> a(static_cast<std::size_t>(kM * kK + 4));
  for (auto& v : a) v = static_cast<std::uint8_t>(rng() % 128);
  std::vector<std::int8_t> w(static_cast<std::size_t>(kN * kK));
  for (auto& v : w) v = static_cast<std::int8_t>(static_cast<int>(rng() % 255) - 127);
  const ember::quant::PackedWeights pw = ember::quant::pack_weights(w.data(), kN, kK, kK);
  std::vector<float> scale(static_cast<std::size_t>(pw.np), 0.001f), bias(static_cast<std::size_t>(pw.np), 1.0f);
  const ember::quant::Epilogue e{scale.data(), bias.data(), 0, true, false, 0};
  std::vector<std::uint8_t> out(static_cast<std::size_t>(kM * kN));
  for (auto _ : state) {
    ember::quant::gemm_u8s8(kM, a.data(), kK, pw, e, out.data(), kN, kernel);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["MAC/s"] = benchmark::Counter(static_cast<double>(kM * kN * kK), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK_CAPTURE(BM_GemmInt8, avx512_vnni, Int8Kernel::avx512_vnni)->Name("Gemm/int8_avx512_vnni")->Apply(ember::bench::configure);
BENCHMARK_CAPTURE(BM_GemmInt8, avx2, Int8Kernel::avx2)->Name("Gemm/int8_avx2")->Apply(ember::bench::configure);
BENCHMARK_CAPTURE(BM_GemmInt8, portable, Int8Kernel::portable)->Name("Gemm/int8_portable")->Apply(ember::bench::configure);

}  // namespace

int main(int argc, char** argv) {
  ember::set_num_threads(ember::bench::take_threads_flag(argc, argv));
  benchmark::AddCustomContext("ember_threads", std::to_string(ember::get_num_threads()));
  benchmark::AddCustomContext("int8_kernel", ember::quant::kernel_name(ember::quant::int8_kernel()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
