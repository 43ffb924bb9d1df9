// bench_cuda_kernels: ember's hand-written CUDA kernels against cuBLAS / cuDNN on the shapes
// that matter (a big square SGEMM and the MNIST net's layers), plus the kernels that have no
// vendor counterpart here (max_pool2d, log_softmax, the fused SGD step).
//
// Names line up in pairs: BM_<op>/<impl>/<shape>, impl = custom | cublas | cudnn, e.g.
//   BM_gemm/custom/4096          BM_gemm/cublas/4096
//   BM_conv_fwd/custom/conv2_n64 BM_conv_fwd/cudnn/conv2_n64
// bench/peer/pytorch_kernels_cuda.py times the same shapes with PyTorch under the names
// BM_<op>/torch/<shape>.
//
// Method (docs: /work/.library/device/METHOD.md):
//   * inputs are random in [-1, 1] (never zeros), generated on the device;
//   * correctness first: before a pair is timed, the custom and the vendor outputs are computed
//     from the same inputs (outputs poisoned with NaN first) and must agree to
//     ||custom - vendor|| / ||vendor|| < 1e-4; a failure skips both benchmarks with an error and
//     makes the program exit with status 1 after printing every failure. The kernels without a
//     vendor pair are checked against a small host computation instead;
//   * every benchmark warms up, then times batches of back-to-back launches with CUDA events on
//     ember's stream (cuda::stream(0), the one the vendor paths use too); a batch runs about a
//     millisecond, and the reported time is per call (manual time, `real_time` in the JSON);
//   * operand sets rotate: when one call's working set is smaller than twice the L2 cache,
//     several independent copies of the inputs are used in turn, so each call starts with a
//     cold L2 (both members of a pair see the same conditions);
//   * counters: GFLOP/s (2 flops per multiply-add) or GB/s (the minimum bytes: each input read
//     once, each output written once), rel_err (the pair's check), sets, batch.
// Run:  bench_cuda_kernels --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//                          --benchmark_out=kernels.json --benchmark_out_format=json
// Without a CUDA device the program says so and exits with status 77.

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/backend/cuda/blas.hpp"
#include "ember/backend/cuda/dnn.hpp"
#include "ember/backend/cuda/runtime.hpp"
#include "ember/backend/params.hpp"

#include <ember/kernels/sgd.cuh>
#include <ember/kernels/sgemm.cuh>
#include <ember/kernels/softmax.cuh>

#if __has_include(<ember/kernels/conv.cuh>)
#include <ember/kernels/conv.cuh>
#define EMBER_BENCH_HAVE_CONV 1
#else
#define EMBER_BENCH_HAVE_CONV 0
#endif
#if __has_include(<ember/kernels/pool.cuh>)
#include <ember/kernels/pool.cuh>
#define EMBER_BENCH_HAVE_POOL 1
#else
#define EMBER_BENCH_HAVE_POOL 0
#endif

namespace {

using ember::Conv2dParams;
using ember::GemmParams;
using ember::MaxPool2dParams;
namespace cuda = ember::cuda;
namespace kernels = ember::kernels;

constexpr int kDevice = 0;
constexpr double kTolerance = 1e-4;    // ||custom - vendor|| / ||vendor||
constexpr double kBatchSeconds = 1e-3;  // target length of one timed batch of launches
constexpr int kMaxBatch = 2048;
constexpr int kMaxSets = 32;

cudaStream_t stream() { return cuda::stream(kDevice); }
void sync() { EMBER_CUDA_CHECK(cudaStreamSynchronize(stream())); }

struct DeviceInfo {
  std::string name;
  int sms = 0;
  std::size_t l2_bytes = 0;
  std::size_t global_bytes = 0;
};
DeviceInfo g_device;

std::vector<std::string>& failures() {
  static std::vector<std::string> f;
  return f;
}

// ---- device buffers ---------------------------------------------------------------------------

__global__ void bench_fill_uniform_kernel(float* p, std::int64_t n, std::uint64_t seed, float lo, float hi) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    // splitmix64 of (seed, i): independent values, cheap, reproducible
    std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    p[i] = lo + (hi - lo) * u;
  }
}

std::uint64_t next_seed() {
  static std::uint64_t s = 0x5EED;
  s += 0x1234567;
  return s;
}

// An exact-size device array from cudaMalloc, freed on destruction.
template <class T>
class DBuf {
 public:
  DBuf() = default;
  explicit DBuf(std::int64_t n) : n_(n) {
    if (n_ > 0) EMBER_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), bytes()));
  }
  DBuf(const DBuf&) = delete;
  DBuf& operator=(const DBuf&) = delete;
  DBuf(DBuf&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DBuf& operator=(DBuf&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~DBuf() { release(); }

  [[nodiscard]] T* get() const { return p_; }
  [[nodiscard]] std::int64_t size() const { return n_; }
  [[nodiscard]] std::size_t bytes() const { return static_cast<std::size_t>(n_) * sizeof(T); }

  // Uniform random values in [lo, hi) (float only).
  void random(float lo = -1.0f, float hi = 1.0f) {
    static_assert(std::is_same_v<T, float>, "random fill: float buffers");
    if (n_ == 0) return;
    const int threads = 256;
    const auto blocks = static_cast<unsigned>(std::min<std::int64_t>((n_ + threads - 1) / threads, 4096));
    bench_fill_uniform_kernel<<<blocks, threads, 0, stream()>>>(p_, n_, next_seed(), lo, hi);
    EMBER_CUDA_CHECK(cudaGetLastError());
  }
  // All bytes 0xFF: NaN for floats, -1 for integers.
  void poison() {
    if (n_ > 0) EMBER_CUDA_CHECK(cudaMemsetAsync(p_, 0xFF, bytes(), stream()));
  }
  [[nodiscard]] std::vector<T> host() const {
    std::vector<T> h(static_cast<std::size_t>(n_));
    sync();
    if (n_ > 0) EMBER_CUDA_CHECK(cudaMemcpy(h.data(), p_, bytes(), cudaMemcpyDeviceToHost));
    return h;
  }
  void upload(const std::vector<T>& h) {
    EMBER_CHECK(static_cast<std::int64_t>(h.size()) == n_, "upload: size mismatch");
    sync();
    if (n_ > 0) EMBER_CUDA_CHECK(cudaMemcpy(p_, h.data(), bytes(), cudaMemcpyHostToDevice));
  }

 private:
  void release() {
    if (p_ != nullptr) (void)cudaFree(p_);
    p_ = nullptr;
    n_ = 0;
  }
  T* p_ = nullptr;
  std::int64_t n_ = 0;
};

using FBuf = DBuf<float>;

// How many independent operand sets to rotate through: enough that the sets together are at
// least twice the L2, within kMaxSets and about 4 GiB.
int sets_for(std::size_t bytes_per_set) {
  if (bytes_per_set == 0) return 1;
  const std::size_t want = (2 * g_device.l2_bytes + bytes_per_set - 1) / bytes_per_set;
  const std::size_t cap = std::max<std::size_t>(1, (std::size_t(4) << 30) / bytes_per_set);
  return static_cast<int>(std::clamp<std::size_t>(want, 1, std::min<std::size_t>(kMaxSets, cap)));
}

// ---- correctness ------------------------------------------------------------------------------

// ||a - b|| / ||b|| in double; +inf when a NaN / inf appears or the sizes differ.
template <class T>
double rel_error(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    if (!std::isfinite(x) || !std::isfinite(y)) return std::numeric_limits<double>::infinity();
    num += (x - y) * (x - y);
    den += y * y;
  }
  if (den == 0) return num == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}

struct Check {
  double rel = 0;
  bool ok = true;
  std::string what;
};

// Runs `check` once per key (the pair's name) and caches the outcome; a failure is recorded
// once and reported on stderr.
const Check& checked(const std::string& key, const std::function<Check()>& check) {
  static std::map<std::string, Check> cache;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  Check c;
  try {
    c = check();
  } catch (const std::exception& e) {
    c.ok = false;
    c.rel = std::numeric_limits<double>::infinity();
    c.what = std::string("exception during the check: ") + e.what();
  }
  if (!c.ok) {
    const std::string msg = "CORRECTNESS FAILURE " + key + ": " + c.what;
    std::fprintf(stderr, "%s\n", msg.c_str());
    failures().push_back(msg);
  }
  return cache.emplace(key, c).first->second;
}

// Compares several outputs (custom vs reference); the worst relative error decides.
Check compare_all(const std::vector<std::pair<std::string, double>>& errs, double tol = kTolerance) {
  Check c;
  for (const auto& [name, e] : errs) {
    if (!(e <= c.rel)) c.rel = e;  // NaN-safe max
    if (!(e < tol)) {
      c.ok = false;
      char buf[160];
      std::snprintf(buf, sizeof(buf), "%s%s: rel error %.3g (tolerance %.1g)", c.what.empty() ? "" : "; ",
                    name.c_str(), e, tol);
      c.what += buf;
    }
  }
  return c;
}

// ---- timing -------------------------------------------------------------------------------------

class Events {
 public:
  Events() {
    EMBER_CUDA_CHECK(cudaEventCreate(&start_));
    EMBER_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  ~Events() {
    (void)cudaEventDestroy(start_);
    (void)cudaEventDestroy(stop_);
  }
  void start() { EMBER_CUDA_CHECK(cudaEventRecord(start_, stream())); }
  // Seconds since start(), after waiting for the stream to reach this point.
  double stop() {
    EMBER_CUDA_CHECK(cudaEventRecord(stop_, stream()));
    EMBER_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    EMBER_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return static_cast<double>(ms) * 1e-3;
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// Warms up, picks a batch size, then times batches of `launch(set)` calls until the library
// has enough; per-call time is reported (KeepRunningBatch counts each call as an iteration).
void time_launches(benchmark::State& st, int sets, const std::function<void(int)>& launch, double flops,
                   double bytes, const Check* check = nullptr) {
  for (int i = 0; i < std::max(3, sets); ++i) launch(i % sets);  // warm-up: every set once
  sync();
  EMBER_CUDA_CHECK(cudaGetLastError());
  Events ev;
  int next = 0;
  ev.start();
  constexpr int kProbe = 3;
  for (int i = 0; i < kProbe; ++i) launch(next++ % sets);
  const double per_call = ev.stop() / kProbe;
  const int batch = static_cast<int>(
      std::clamp(std::ceil(kBatchSeconds / std::max(per_call, 1e-9)), 1.0, static_cast<double>(kMaxBatch)));
  double total = 0, host = 0;
  std::int64_t calls = 0;
  while (st.KeepRunningBatch(batch)) {
    ev.start();
    const auto h0 = std::chrono::steady_clock::now();
    for (int i = 0; i < batch; ++i) launch(next++ % sets);
    host += std::chrono::duration<double>(std::chrono::steady_clock::now() - h0).count();
    const double t = ev.stop();
    st.SetIterationTime(t);
    total += t;
    calls += batch;
  }
  EMBER_CUDA_CHECK(cudaGetLastError());
  if (total > 0 && calls > 0) {
    if (flops > 0) st.counters["GFLOP/s"] = flops * static_cast<double>(calls) / total * 1e-9;
    if (bytes > 0) st.counters["GB/s"] = bytes * static_cast<double>(calls) / total * 1e-9;
    // Host time to enqueue one call: when it reaches the device time per call, the benchmark
    // measures the launch path (host-bound), not the kernels.
    st.counters["host_us"] = host / static_cast<double>(calls) * 1e6;
  }
  st.counters["sets"] = sets;
  st.counters["batch"] = batch;
  if (check != nullptr) st.counters["rel_err"] = check->rel;
}

// Runs a benchmark body, turning exceptions (ember::Error from a CUDA / cuBLAS / cuDNN call)
// into a reported error instead of terminating the program.
void guarded(benchmark::State& st, const std::string& name, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    const std::string msg = name + ": " + e.what();
    std::fprintf(stderr, "ERROR %s\n", msg.c_str());
    failures().push_back("ERROR " + msg);
    st.SkipWithError(msg.c_str());
    (void)cudaGetLastError();
  }
}

// Whether to time a benchmark after its pair's check: yes when it passed; also when it failed
// narrowly (relative error below kTimeAnyway: the failure is recorded, reported on stderr, makes
// the exit status 1 and labels the benchmark, but the one device run still yields its timing);
// otherwise the benchmark is skipped with an error.
constexpr double kTimeAnyway = 1e-3;
bool check_passed(benchmark::State& st, const Check& c) {
  if (c.ok) return true;
  if (c.rel < kTimeAnyway) {
    st.SetLabel("CHECK FAILED (timed anyway): " + c.what);
    return true;
  }
  st.SkipWithError(("correctness check failed: " + c.what).c_str());
  return false;
}

benchmark::internal::Benchmark* configure(benchmark::internal::Benchmark* b) {
  return b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.2);
}

// ---- GEMM: custom vs cuBLAS ---------------------------------------------------------------------

struct GemmCase {
  std::string name;
  GemmParams p;
};

GemmParams make_gemm(std::int64_t m, std::int64_t n, std::int64_t k, bool ta, bool tb) {
  GemmParams p;
  p.trans_a = ta;
  p.trans_b = tb;
  p.m = m;
  p.n = n;
  p.k = k;
  p.lda = ta ? m : k;  // A stored [K,M] when transposed, else [M,K]
  p.ldb = tb ? k : n;  // B stored [N,K] when transposed, else [K,N]
  p.ldc = n;
  return p;
}

std::vector<GemmCase> gemm_cases() {
  return {
      {"4096", make_gemm(4096, 4096, 4096, false, false)},
      // fc1 = Linear(9216, 128): y[N,128] = x[N,9216] W[128,9216]^T
      {"fc1_fwd_b64", make_gemm(64, 128, 9216, false, true)},
      // dx[64,9216] = gy[64,128] W[128,9216]
      {"fc1_dx_b64", make_gemm(64, 9216, 128, false, false)},
      // dW[128,9216] = gy[64,128]^T x[64,9216]
      {"fc1_dw_b64", make_gemm(128, 9216, 64, true, false)},
      {"fc1_fwd_b1000", make_gemm(1000, 128, 9216, false, true)},
  };
}

std::int64_t a_elems(const GemmParams& p) { return p.m * p.k; }
std::int64_t b_elems(const GemmParams& p) { return p.k * p.n; }

struct GemmSet {
  FBuf a, b, c;
};

std::vector<GemmSet> make_gemm_sets(const GemmParams& p, int sets) {
  std::vector<GemmSet> v;
  for (int i = 0; i < sets; ++i) {
    GemmSet s{FBuf(a_elems(p)), FBuf(b_elems(p)), FBuf(p.m * p.n)};
    s.a.random();
    s.b.random();
    s.c.random();
    v.push_back(std::move(s));
  }
  return v;
}

std::size_t custom_gemm_workspace_bytes(const GemmParams& p) { return kernels::gemm_workspace_bytes<float>(p); }

void run_custom_gemm(const GemmParams& p, const GemmSet& s, float* ws) {
  kernels::gemm<float>(p, 1.0f, s.a.get(), s.b.get(), 0.0f, s.c.get(), stream(), ws);
}
void run_cublas_gemm(const GemmParams& p, const GemmSet& s) {
  cuda::cublas_gemm<float>(p, 1.0f, s.a.get(), s.b.get(), 0.0f, s.c.get(), kDevice);
}

const Check& gemm_check(const GemmCase& gc) {
  return checked("gemm/" + gc.name, [&] {
    const GemmParams& p = gc.p;
    auto sets = make_gemm_sets(p, 1);
    FBuf ws(static_cast<std::int64_t>(custom_gemm_workspace_bytes(p) / sizeof(float)));
    FBuf c_vendor(p.m * p.n);
    GemmSet& s = sets[0];
    s.c.poison();
    run_custom_gemm(p, s, ws.size() > 0 ? ws.get() : nullptr);
    const auto custom = s.c.host();
    s.c.poison();
    run_cublas_gemm(p, s);
    const auto vendor = s.c.host();
    return compare_all({{"C", rel_error(custom, vendor)}});
  });
}

void register_gemm() {
  for (const GemmCase& gc : gemm_cases()) {
    const double flops = 2.0 * static_cast<double>(gc.p.m) * static_cast<double>(gc.p.n) * static_cast<double>(gc.p.k);
    const std::size_t set_bytes = static_cast<std::size_t>(a_elems(gc.p) + b_elems(gc.p) + gc.p.m * gc.p.n) * sizeof(float);
    for (const bool custom : {true, false}) {
      const std::string name = std::string("BM_gemm/") + (custom ? "custom/" : "cublas/") + gc.name;
      configure(benchmark::RegisterBenchmark(name.c_str(), [gc, custom, flops, set_bytes, name](benchmark::State& st) {
        guarded(st, name, [&] {
          const Check& c = gemm_check(gc);
          if (!check_passed(st, c)) return;
          const int nsets = sets_for(set_bytes);
          auto sets = make_gemm_sets(gc.p, nsets);
          FBuf ws(static_cast<std::int64_t>(custom ? custom_gemm_workspace_bytes(gc.p) / sizeof(float) : 0));
          float* wsp = ws.size() > 0 ? ws.get() : nullptr;
          if (custom) {
            const kernels::GemmPlan plan = kernels::gemm_plan<float>(gc.p.m, gc.p.n, gc.p.k, wsp != nullptr);
            st.counters["splits"] = plan.splits;
            st.counters["config"] = static_cast<int>(plan.config);
          }
          sync();
          time_launches(
              st, nsets,
              [&](int i) {
                if (custom) run_custom_gemm(gc.p, sets[static_cast<std::size_t>(i)], wsp);
                else run_cublas_gemm(gc.p, sets[static_cast<std::size_t>(i)]);
              },
              flops, 0, &c);
        });
      }));
    }
  }
}

// ---- convolution: custom vs cuDNN ---------------------------------------------------------------

struct ConvCase {
  std::string name;  // conv1_n64 ...
  Conv2dParams p;
  bool input_grad;  // conv2 needs dx; conv1's input (the images) does not
};

Conv2dParams make_conv(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t k) {
  Conv2dParams p;
  p.n = n;
  p.c = c;
  p.h = hw;
  p.w = hw;
  p.k = k;
  p.r = 3;
  p.s = 3;
  return p;
}

std::vector<ConvCase> conv_cases() {
  std::vector<ConvCase> v;
  for (const std::int64_t n : {64, 1000}) {
    v.push_back({"conv1_n" + std::to_string(n), make_conv(n, 1, 28, 32), false});
    v.push_back({"conv2_n" + std::to_string(n), make_conv(n, 32, 26, 64), true});
  }
  return v;
}

std::int64_t x_elems(const Conv2dParams& p) { return p.n * p.c * p.h * p.w; }
std::int64_t w_elems(const Conv2dParams& p) { return p.k * p.c * p.r * p.s; }
std::int64_t y_elems(const Conv2dParams& p) { return p.n * p.k * p.p() * p.q(); }
double conv_flops(const Conv2dParams& p) {
  return 2.0 * static_cast<double>(y_elems(p)) * static_cast<double>(p.c * p.r * p.s);
}

enum class ConvOp { fwd, bwd_data, bwd_weight, fwd_bwd };
const char* conv_op_name(ConvOp op) {
  switch (op) {
    case ConvOp::fwd: return "conv_fwd";
    case ConvOp::bwd_data: return "conv_bwd_data";
    case ConvOp::bwd_weight: return "conv_bwd_weight";
    case ConvOp::fwd_bwd: return "conv_fwd_bwd";
  }
  return "conv";
}

// One operand set: inputs x, w, bias, gy; outputs y, gx, gw, gb.
struct ConvSet {
  FBuf x, w, bias, gy, y, gx, gw, gb;
};

ConvSet make_conv_set(const Conv2dParams& p, bool input_grad) {
  ConvSet s{FBuf(x_elems(p)), FBuf(w_elems(p)), FBuf(p.k),        FBuf(y_elems(p)),
            FBuf(y_elems(p)), FBuf(input_grad ? x_elems(p) : 0), FBuf(w_elems(p)), FBuf(p.k)};
  s.x.random();
  s.w.random(-0.5f, 0.5f);
  s.bias.random();
  s.gy.random();
  return s;
}

// The bytes one call of `op` touches (its working set, which decides the operand rotation).
std::size_t conv_op_bytes(ConvOp op, const Conv2dParams& p, bool input_grad) {
  const std::int64_t x = x_elems(p), w = w_elems(p), y = y_elems(p), k = p.k;
  std::int64_t e = 0;
  switch (op) {
    case ConvOp::fwd: e = x + w + k + y; break;
    case ConvOp::bwd_data: e = w + y + x; break;
    case ConvOp::bwd_weight: e = x + y + w + k; break;
    case ConvOp::fwd_bwd: e = x + w + k + 2 * y + (input_grad ? x : 0) + w + k; break;
  }
  return static_cast<std::size_t>(e) * sizeof(float);
}

#if EMBER_BENCH_HAVE_CONV
std::int64_t custom_conv_workspace_elems(const Conv2dParams& p) {
  return static_cast<std::int64_t>(kernels::conv2d_workspace_elems<float>(p));
}
#endif

// One direction (or the whole training-step sequence) with either implementation.
void run_conv(ConvOp op, bool custom, const ConvCase& cc, const ConvSet& s, float* ws) {
  const Conv2dParams& p = cc.p;
  const bool fwd = op == ConvOp::fwd || op == ConvOp::fwd_bwd;
  const bool data = (op == ConvOp::bwd_data || op == ConvOp::fwd_bwd) && cc.input_grad;
  const bool weight = op == ConvOp::bwd_weight || op == ConvOp::fwd_bwd;
  if (custom) {
#if EMBER_BENCH_HAVE_CONV
    if (fwd) kernels::conv2d_forward<float>(p, s.x.get(), s.w.get(), s.bias.get(), s.y.get(), ws, stream());
    if (data) kernels::conv2d_backward_data<float>(p, s.w.get(), s.gy.get(), s.gx.get(), ws, stream());
    if (weight)
      kernels::conv2d_backward_weight<float>(p, s.x.get(), s.gy.get(), s.gw.get(), s.gb.get(), ws, stream());
#else
    (void)ws;
    throw ember::Error("kernels/conv.cuh is missing: no custom convolution to time");
#endif
  } else {
    if (fwd) cuda::cudnn_conv2d_forward<float>(p, s.x.get(), s.w.get(), s.bias.get(), s.y.get(), kDevice);
    if (data) cuda::cudnn_conv2d_backward_data<float>(p, s.w.get(), s.gy.get(), s.gx.get(), kDevice);
    if (weight)
      cuda::cudnn_conv2d_backward_weight<float>(p, s.x.get(), s.gy.get(), s.gw.get(), s.gb.get(), kDevice);
  }
}

// Every direction of one convolution shape, custom against cuDNN.
const Check& conv_check(const ConvCase& cc) {
  return checked("conv/" + cc.name, [&] {
#if EMBER_BENCH_HAVE_CONV
    ConvSet s = make_conv_set(cc.p, cc.input_grad);
    FBuf ws(custom_conv_workspace_elems(cc.p));
    auto outputs = [&](bool custom) {
      s.y.poison();
      s.gx.poison();
      s.gw.poison();
      s.gb.poison();
      run_conv(ConvOp::fwd_bwd, custom, cc, s, ws.size() > 0 ? ws.get() : nullptr);
      std::vector<std::vector<float>> out{s.y.host(), s.gw.host(), s.gb.host()};
      if (cc.input_grad) out.push_back(s.gx.host());
      return out;
    };
    const auto mine = outputs(true);
    const auto ref = outputs(false);
    std::vector<std::pair<std::string, double>> errs{{"y", rel_error(mine[0], ref[0])},
                                                     {"gw", rel_error(mine[1], ref[1])},
                                                     {"gb", rel_error(mine[2], ref[2])}};
    if (cc.input_grad) errs.emplace_back("gx", rel_error(mine[3], ref[3]));
    return compare_all(errs);
#else
    Check c;
    c.ok = false;
    c.rel = std::numeric_limits<double>::infinity();
    c.what = "kernels/conv.cuh is missing (not built with the custom convolution)";
    return c;
#endif
  });
}

void register_conv() {
  for (const ConvOp op : {ConvOp::fwd, ConvOp::bwd_data, ConvOp::bwd_weight, ConvOp::fwd_bwd}) {
    for (const ConvCase& cc : conv_cases()) {
      if (op == ConvOp::bwd_data && !cc.input_grad) continue;
      const double f = conv_flops(cc.p);
      double flops = f;
      if (op == ConvOp::fwd_bwd) flops = f * (cc.input_grad ? 3 : 2);
      const std::size_t set_bytes = conv_op_bytes(op, cc.p, cc.input_grad);
      for (const bool custom : {true, false}) {
        const std::string name =
            std::string("BM_") + conv_op_name(op) + (custom ? "/custom/" : "/cudnn/") + cc.name;
        configure(benchmark::RegisterBenchmark(name.c_str(), [op, cc, custom, flops, set_bytes, name](benchmark::State& st) {
          guarded(st, name, [&] {
            const Check& c = conv_check(cc);
            if (!check_passed(st, c)) return;
            const int nsets = sets_for(set_bytes);
            std::vector<ConvSet> sets;
            for (int i = 0; i < nsets; ++i) sets.push_back(make_conv_set(cc.p, cc.input_grad));
            FBuf ws;
#if EMBER_BENCH_HAVE_CONV
            if (custom) ws = FBuf(custom_conv_workspace_elems(cc.p));
#endif
            float* wsp = ws.size() > 0 ? ws.get() : nullptr;
            sync();
            time_launches(
                st, nsets, [&](int i) { run_conv(op, custom, cc, sets[static_cast<std::size_t>(i)], wsp); },
                flops, 0, &c);
          });
        }));
      }
    }
  }
}

// ---- max_pool2d (the net's 2x2 pool after conv2), log_softmax, SGD: custom only ------------------

#if EMBER_BENCH_HAVE_POOL
MaxPool2dParams pool_params(std::int64_t n) {
  MaxPool2dParams p;
  p.planes = n * 64;
  p.h = 24;
  p.w = 24;
  p.kernel = 2;
  p.stride = 2;
  p.padding = 0;
  return p;
}

struct PoolSet {
  FBuf x, y, gy, gx;
  DBuf<std::int32_t> argmax;
};

PoolSet make_pool_set(const MaxPool2dParams& p) {
  const std::int64_t in = p.planes * p.h * p.w, out = p.planes * p.p() * p.q();
  PoolSet s{FBuf(in), FBuf(out), FBuf(out), FBuf(in), DBuf<std::int32_t>(out)};
  s.x.random();
  s.gy.random();
  kernels::max_pool2d_forward<float>(p, s.x.get(), s.y.get(), s.argmax.get(), stream());  // argmax for bwd
  return s;
}

// Forward against the host max of each window; backward: every input gradient is the sum of
// the output gradients whose window picked it, so sum(gx) == sum(gy) and gx is 0 elsewhere
// than at the maxima.
const Check& pool_check(std::int64_t n) {
  return checked("max_pool2d/n" + std::to_string(n), [&] {
    const MaxPool2dParams p = pool_params(n);
    PoolSet s = make_pool_set(p);
    s.y.poison();
    s.argmax.poison();
    s.gx.poison();
    kernels::max_pool2d_forward<float>(p, s.x.get(), s.y.get(), s.argmax.get(), stream());
    kernels::max_pool2d_backward<float>(p, s.gy.get(), s.argmax.get(), s.gx.get(), stream());
    const auto x = s.x.host(), y = s.y.host(), gy = s.gy.host(), gx = s.gx.host();
    std::vector<float> ref(y.size());
    const std::int64_t P = p.p(), Q = p.q();
    for (std::int64_t pl = 0; pl < p.planes; ++pl)
      for (std::int64_t i = 0; i < P; ++i)
        for (std::int64_t j = 0; j < Q; ++j) {
          float m = -std::numeric_limits<float>::infinity();
          for (std::int64_t a = 0; a < p.kernel; ++a)
            for (std::int64_t b = 0; b < p.kernel; ++b)
              m = std::max(m, x[static_cast<std::size_t>((pl * p.h + i * p.stride + a) * p.w + j * p.stride + b)]);
          ref[static_cast<std::size_t>((pl * P + i) * Q + j)] = m;
        }
    double sgx = 0, sgy = 0;
    std::int64_t nonzero = 0;
    bool finite = true;
    for (const float v : gx) {
      finite = finite && std::isfinite(v);
      sgx += v;
      nonzero += v != 0.0f;
    }
    for (const float v : gy) sgy += v;
    const double sum_err = std::fabs(sgx - sgy) / std::max(1.0, std::fabs(sgy));
    Check c = compare_all({{"y", rel_error(y, ref)}, {"sum(gx) vs sum(gy)", finite ? sum_err : INFINITY}});
    if (nonzero > static_cast<std::int64_t>(gy.size())) {
      c.ok = false;
      c.what += "; gx has more non-zeros than gy has elements";
    }
    return c;
  });
}

void register_pool() {
  for (const std::int64_t n : {64, 1000}) {
    const MaxPool2dParams p = pool_params(n);
    const std::int64_t in = p.planes * p.h * p.w, out = p.planes * p.p() * p.q();
    for (const bool fwd : {true, false}) {
      // fwd: read x, write y and the int32 argmax; bwd: read gy and argmax, write gx.
      const double bytes = fwd ? 4.0 * static_cast<double>(in + 2 * out) : 4.0 * static_cast<double>(2 * out + in);
      const std::size_t set_bytes = static_cast<std::size_t>(2 * in + 3 * out) * 4;
      const std::string name = std::string(fwd ? "BM_max_pool2d_fwd" : "BM_max_pool2d_bwd") + "/custom/n" + std::to_string(n);
      configure(benchmark::RegisterBenchmark(name.c_str(), [p, n, fwd, bytes, set_bytes, name](benchmark::State& st) {
        guarded(st, name, [&] {
          const Check& c = pool_check(n);
          if (!check_passed(st, c)) return;
          const int nsets = sets_for(set_bytes);
          std::vector<PoolSet> sets;
          for (int i = 0; i < nsets; ++i) sets.push_back(make_pool_set(p));
          sync();
          time_launches(
              st, nsets,
              [&](int i) {
                const PoolSet& s = sets[static_cast<std::size_t>(i)];
                if (fwd) kernels::max_pool2d_forward<float>(p, s.x.get(), s.y.get(), s.argmax.get(), stream());
                else kernels::max_pool2d_backward<float>(p, s.gy.get(), s.argmax.get(), s.gx.get(), stream());
              },
              0, bytes, &c);
        });
      }));
    }
  }
}
#endif  // EMBER_BENCH_HAVE_POOL

// log_softmax over the net's (N, 10) logits: forward against a double-precision host
// computation, backward likewise.
const Check& log_softmax_check(std::int64_t rows, std::int64_t cols) {
  return checked("log_softmax/n" + std::to_string(rows), [&] {
    FBuf x(rows * cols), y(rows * cols), g(rows * cols), gx(rows * cols);
    x.random(-5.0f, 5.0f);
    g.random();
    y.poison();
    gx.poison();
    kernels::log_softmax_forward<float>(x.get(), y.get(), rows, cols, stream());
    kernels::log_softmax_backward<float>(g.get(), y.get(), gx.get(), rows, cols, stream());
    const auto hx = x.host(), hy = y.host(), hg = g.host(), hgx = gx.host();
    std::vector<double> ry(hy.size()), rgx(hy.size());
    for (std::int64_t r = 0; r < rows; ++r) {
      const auto row = static_cast<std::size_t>(r * cols);
      double m = -INFINITY, s = 0, gs = 0;
      for (std::int64_t j = 0; j < cols; ++j) m = std::max(m, static_cast<double>(hx[row + static_cast<std::size_t>(j)]));
      for (std::int64_t j = 0; j < cols; ++j) s += std::exp(static_cast<double>(hx[row + static_cast<std::size_t>(j)]) - m);
      for (std::int64_t j = 0; j < cols; ++j) {
        const auto k = row + static_cast<std::size_t>(j);
        ry[k] = static_cast<double>(hx[k]) - m - std::log(s);
        gs += static_cast<double>(hg[k]);
      }
      for (std::int64_t j = 0; j < cols; ++j) {
        const auto k = row + static_cast<std::size_t>(j);
        rgx[k] = static_cast<double>(hg[k]) - std::exp(ry[k]) * gs;
      }
    }
    std::vector<double> dy(hy.begin(), hy.end()), dgx(hgx.begin(), hgx.end());
    return compare_all({{"y", rel_error(dy, ry)}, {"gx", rel_error(dgx, rgx)}});
  });
}

void register_log_softmax() {
  constexpr std::int64_t cols = 10;
  for (const std::int64_t rows : {64, 1000}) {
    for (const bool fwd : {true, false}) {
      const double bytes = 4.0 * static_cast<double>(rows * cols) * (fwd ? 2 : 3);
      const std::string name = std::string(fwd ? "BM_log_softmax_fwd" : "BM_log_softmax_bwd") + "/custom/n" +
                               std::to_string(rows);
      configure(benchmark::RegisterBenchmark(name.c_str(), [rows, fwd, bytes, name](benchmark::State& st) {
        guarded(st, name, [&] {
          const Check& c = log_softmax_check(rows, cols);
          if (!check_passed(st, c)) return;
          const int nsets = sets_for(static_cast<std::size_t>(rows * cols) * 16);
          std::vector<FBuf> x, y, g, gx;
          for (int i = 0; i < nsets; ++i) {
            x.emplace_back(rows * cols);
            y.emplace_back(rows * cols);
            g.emplace_back(rows * cols);
            gx.emplace_back(rows * cols);
            x.back().random(-5.0f, 5.0f);
            g.back().random();
            kernels::log_softmax_forward<float>(x.back().get(), y.back().get(), rows, cols, stream());
          }
          sync();
          time_launches(
              st, nsets,
              [&](int i) {
                const auto k = static_cast<std::size_t>(i);
                if (fwd) kernels::log_softmax_forward<float>(x[k].get(), y[k].get(), rows, cols, stream());
                else kernels::log_softmax_backward<float>(g[k].get(), y[k].get(), gx[k].get(), rows, cols, stream());
              },
              0, bytes, &c);
        });
      }));
    }
  }
}

// The fused SGD step over the net's 8 parameter tensors (lr 0.01, momentum 0.5, not the first
// step): per element, read param, grad and momentum, write param and momentum.
const std::vector<std::int64_t>& net_param_sizes() {
  static const std::vector<std::int64_t> sizes{32 * 1 * 3 * 3, 32, 64 * 32 * 3 * 3, 64, 128 * 9216, 128, 10 * 128, 10};
  return sizes;
}

struct SgdSet {
  std::vector<FBuf> param, grad, mom;
};

SgdSet make_sgd_set() {
  SgdSet s;
  for (const std::int64_t n : net_param_sizes()) {
    s.param.emplace_back(n);
    s.grad.emplace_back(n);
    s.mom.emplace_back(n);
    s.param.back().random();
    s.grad.back().random();
    s.mom.back().random();
  }
  return s;
}

kernels::SgdArgs sgd_args() {
  kernels::SgdArgs a;
  a.lr = 0.01f;
  a.momentum = 0.5f;
  a.dampening_factor = 1.0f;
  a.weight_decay = 0.0f;
  a.nesterov = false;
  a.first_step = false;
  return a;
}

// The launch, in the form kernels/sgd.cuh takes: the tensor list by value (kSgdMaxTensors per
// launch).
void run_sgd(const SgdSet& s) {
  const auto& sizes = net_param_sizes();
  const int count = static_cast<int>(sizes.size());
  for (int start = 0; start < count; start += kernels::kSgdMaxTensors) {
    kernels::SgdTensorList list{};
    list.count = std::min(kernels::kSgdMaxTensors, count - start);
    std::int64_t max_n = 0;
    for (int i = 0; i < list.count; ++i) {
      const auto k = static_cast<std::size_t>(start + i);
      list.t[i] = kernels::SgdTensor{s.param[k].get(), s.grad[k].get(), s.mom[k].get(), sizes[k]};
      max_n = std::max(max_n, sizes[k]);
    }
    kernels::sgd_step(list, max_n, sgd_args(), stream());
  }
}

const Check& sgd_check() {
  return checked("sgd_step/mnist_net", [] {
    SgdSet s = make_sgd_set();
    std::vector<std::vector<float>> p0, g0, m0;
    for (std::size_t k = 0; k < s.param.size(); ++k) {
      p0.push_back(s.param[k].host());
      g0.push_back(s.grad[k].host());
      m0.push_back(s.mom[k].host());
    }
    run_sgd(s);
    const kernels::SgdArgs a = sgd_args();
    std::vector<std::pair<std::string, double>> errs;
    for (std::size_t k = 0; k < s.param.size(); ++k) {
      const auto p1 = s.param[k].host(), m1 = s.mom[k].host();
      std::vector<double> rp(p1.size()), rm(p1.size()), dp(p1.begin(), p1.end()), dm(m1.begin(), m1.end());
      for (std::size_t i = 0; i < p1.size(); ++i) {
        const double buf = static_cast<double>(a.momentum) * m0[k][i] + static_cast<double>(a.dampening_factor) * g0[k][i];
        rm[i] = buf;
        rp[i] = static_cast<double>(p0[k][i]) - static_cast<double>(a.lr) * buf;
      }
      errs.emplace_back("param" + std::to_string(k), rel_error(dp, rp));
      errs.emplace_back("momentum" + std::to_string(k), rel_error(dm, rm));
    }
    return compare_all(errs, 1e-5);
  });
}

void register_sgd() {
  std::int64_t total = 0;
  for (const std::int64_t n : net_param_sizes()) total += n;
  const double bytes = 20.0 * static_cast<double>(total);
  const auto set_bytes = static_cast<std::size_t>(12 * total);
  const std::string name = "BM_sgd_step/custom/mnist_net";
  configure(benchmark::RegisterBenchmark(name.c_str(), [bytes, set_bytes, name](benchmark::State& st) {
    guarded(st, name, [&] {
      const Check& c = sgd_check();
      if (!check_passed(st, c)) return;
      const int nsets = sets_for(set_bytes);
      std::vector<SgdSet> sets;
      for (int i = 0; i < nsets; ++i) sets.push_back(make_sgd_set());
      sync();
      time_launches(st, nsets, [&](int i) { run_sgd(sets[static_cast<std::size_t>(i)]); }, 0, bytes, &c);
    });
  }));
}

void register_all() {
  register_gemm();
  register_conv();
#if EMBER_BENCH_HAVE_POOL
  register_pool();
#endif
  register_log_softmax();
  register_sgd();
}

}  // namespace

int main(int argc, char** argv) {
  bool list_only = false;  // --benchmark_list_tests works without a GPU
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--benchmark_list_tests" || a == "--benchmark_list_tests=true") list_only = true;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  if (cuda::device_count() == 0) {
    if (list_only) {
      register_all();
      benchmark::RunSpecifiedBenchmarks();
      return 0;
    }
    std::printf("no CUDA device: bench_cuda_kernels needs a GPU\n");
    return 77;
  }
  try {
    cudaDeviceProp prop{};
    EMBER_CUDA_CHECK(cudaGetDeviceProperties(&prop, kDevice));
    g_device.name = prop.name;
    g_device.sms = prop.multiProcessorCount;
    g_device.l2_bytes = static_cast<std::size_t>(prop.l2CacheSize);
    g_device.global_bytes = prop.totalGlobalMem;
    (void)stream();                     // create ember's stream, cuBLAS's and cuDNN's handles first
    (void)cuda::blas_handle(kDevice);   // (outside any timing)
    (void)cuda::dnn_handle(kDevice);
    int runtime = 0, driver = 0;
    EMBER_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
    EMBER_CUDA_CHECK(cudaDriverGetVersion(&driver));
    int cublas_version = 0;
    EMBER_CUBLAS_CHECK(cublasGetVersion(cuda::blas_handle(kDevice), &cublas_version));
    std::printf("device: %s, %d SMs, L2 %.1f MiB, %.1f GiB; CUDA runtime %d, driver %d, cuBLAS %d, cuDNN %zu\n",
                g_device.name.c_str(), g_device.sms, static_cast<double>(g_device.l2_bytes) / (1 << 20),
                static_cast<double>(g_device.global_bytes) / (1 << 30), runtime, driver, cublas_version,
                static_cast<std::size_t>(cudnnGetVersion()));
    benchmark::AddCustomContext("device", g_device.name);
    benchmark::AddCustomContext("sms", std::to_string(g_device.sms));
    benchmark::AddCustomContext("l2_bytes", std::to_string(g_device.l2_bytes));
    benchmark::AddCustomContext("cudnn_version", std::to_string(cudnnGetVersion()));
    benchmark::AddCustomContext("cublas_version", std::to_string(cublas_version));
    benchmark::AddCustomContext("have_custom_conv", EMBER_BENCH_HAVE_CONV ? "1" : "0");
    benchmark::AddCustomContext("have_custom_pool", EMBER_BENCH_HAVE_POOL ? "1" : "0");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_kernels: device setup failed: %s\n", e.what());
    return 1;
  }
#if !EMBER_BENCH_HAVE_CONV
  std::fprintf(stderr, "note: kernels/conv.cuh not found at build time: the custom convolution benchmarks report errors\n");
#endif
#if !EMBER_BENCH_HAVE_POOL
  std::fprintf(stderr, "note: kernels/pool.cuh not found at build time: no max_pool2d benchmarks\n");
#endif

  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  if (!failures().empty()) {
    std::fprintf(stderr, "\n%zu failure(s):\n", failures().size());
    for (const auto& f : failures()) std::fprintf(stderr, "  %s\n", f.c_str());
    return 1;
  }
  return 0;
}
