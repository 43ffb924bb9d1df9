// The CPU execution harness itself: barriers, shuffles, shared memory, atomics and launch
// checks behave as on a GPU, and the mistakes a GPU would punish are reported.
#include "support/kernel_test.hpp"

#include <catch2/catch.hpp>

#include <ember/kernels/common.cuh>

#include <numeric>

namespace ek = ember::kernels;
using ember::ktest::Buffer;

namespace {

// Block-wide sum through shared memory: needs every barrier to be real.
EMBER_KERNEL void block_sum_kernel(const float* x, float* out, int n) {
  __shared__ float partial[1024];
  const int t = static_cast<int>(threadIdx.x);
  const int i = static_cast<int>(blockIdx.x * blockDim.x) + t;
  partial[t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int s = static_cast<int>(blockDim.x) / 2; s > 0; s /= 2) {
    if (t < s) partial[t] += partial[t + s];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = partial[0];
}

// The same without the barriers: wrong in one of the two thread orders.
EMBER_KERNEL void racy_sum_kernel(const float* x, float* out, int n) {
  __shared__ float partial[1024];
  const int t = static_cast<int>(threadIdx.x);
  const int i = static_cast<int>(blockIdx.x * blockDim.x) + t;
  partial[t] = i < n ? x[i] : 0.0f;
  for (int s = static_cast<int>(blockDim.x) / 2; s > 0; s /= 2)
    if (t < s) partial[t] += partial[t + s];
  if (t == 0) out[blockIdx.x] = partial[0];
}

EMBER_KERNEL void divergent_barrier_kernel(float* out) {
  if (threadIdx.x % 2 == 0) __syncthreads();
  out[threadIdx.x] = 1.0f;
}

EMBER_KERNEL void early_return_kernel(float* out, int n) {
  if (static_cast<int>(threadIdx.x) >= n) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

EMBER_KERNEL void warp_sum_kernel(const float* x, float* out) {
  float v = x[blockIdx.x * blockDim.x + threadIdx.x];
  for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  if (threadIdx.x % 32 == 0) out[(blockIdx.x * blockDim.x + threadIdx.x) / 32] = v;
}

EMBER_KERNEL void shuffle_kinds_kernel(int* xor_out, int* up_out, int* idx_out, double* dbl_out) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  xor_out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, lane * 10, 1);
  up_out[threadIdx.x] = __shfl_up_sync(0xffffffffu, lane, 3);
  idx_out[threadIdx.x] = __shfl_sync(0xffffffffu, lane + 100, 5);
  dbl_out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 0.5 + lane, 16);
}

EMBER_KERNEL void dynamic_shared_kernel(float* out) {
  EMBER_DYNAMIC_SHARED(float, buf);
  out[blockIdx.x * blockDim.x + threadIdx.x] = buf[threadIdx.x];  // nobody wrote it
}

EMBER_KERNEL void atomic_count_kernel(int* counter, float* total) {
  atomicAdd(counter, 1);
  atomicAdd(total, 0.5f);
}

EMBER_KERNEL void index_kernel(int* out) {
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  out[b * blockDim.x * blockDim.y * blockDim.z + t] = static_cast<int>(b * 10000 + t);
}

}  // namespace

TEST_CASE("emulated __syncthreads makes a shared-memory reduction exact", "[emu]") {
  for (int threads : {32, 64, 256, 1024}) {
    const int n = 3 * threads - 5;
    std::vector<float> host(static_cast<std::size_t>(n));
    std::iota(host.begin(), host.end(), 1.0f);
    Buffer<float> x(host), out(3);
    EMBER_LAUNCH(block_sum_kernel, 3, threads, 0, nullptr)(x.data(), out.data(), n);
    ek::check_launch("block_sum_kernel");
    const auto got = out.host();
    for (int b = 0; b < 3; ++b) {
      double want = 0;
      for (int i = b * threads; i < std::min(n, (b + 1) * threads); ++i) want += host[static_cast<std::size_t>(i)];
      CHECK(got[static_cast<std::size_t>(b)] == Approx(want));
    }
  }
}

TEST_CASE("a missing barrier gives a wrong result in one of the thread orders", "[emu]") {
  if (ember::ktest::on_gpu) return;  // the point is the harness's thread orders
  std::vector<float> host(512, 1.0f);
  Buffer<float> x(host), out(2);
  EMBER_LAUNCH(racy_sum_kernel, 2, 256, 0, nullptr)(x.data(), out.data(), 512);
  const auto got = out.host();
  CHECK((got[0] != 256.0f || got[1] != 256.0f));
}

TEST_CASE("a barrier that some threads skip is reported, not hung", "[emu]") {
  if (ember::ktest::on_gpu) return;
  Buffer<float> out(64);
  CHECK_THROWS_WITH((EMBER_LAUNCH(divergent_barrier_kernel, 1, 64, 0, nullptr)(out.data())),
                    Catch::Contains("divergent_barrier_kernel") && Catch::Contains("can never complete"));
  CHECK_THROWS_WITH((EMBER_LAUNCH(early_return_kernel, 1, 64, 0, nullptr)(out.data(), 40)),
                    Catch::Contains("24 have exited"));
  // a launch after a failed one runs normally
  EMBER_LAUNCH(early_return_kernel, 1, 64, 0, nullptr)(out.data(), 64);
  for (float v : out.host()) CHECK(v == 1.0f);
}

TEST_CASE("emulated warp shuffles exchange values between lanes", "[emu]") {
  const int threads = 128;
  std::vector<float> host(threads * 2);
  std::iota(host.begin(), host.end(), 0.0f);
  Buffer<float> x(host), out(8);
  EMBER_LAUNCH(warp_sum_kernel, 2, threads, 0, nullptr)(x.data(), out.data());
  const auto got = out.host();
  for (int w = 0; w < 8; ++w) {
    float want = 0;
    for (int l = 0; l < 32; ++l) want += host[static_cast<std::size_t>(w * 32 + l)];
    CHECK(got[static_cast<std::size_t>(w)] == want);
  }
  Buffer<int> xo(64), up(64), idx(64);
  Buffer<double> dbl(64);
  EMBER_LAUNCH(shuffle_kinds_kernel, 1, 64, 0, nullptr)(xo.data(), up.data(), idx.data(), dbl.data());
  const auto a = xo.host(), b = up.host(), c = idx.host();
  const auto d = dbl.host();
  for (int t = 0; t < 64; ++t) {
    const int lane = t % 32;
    CHECK(a[static_cast<std::size_t>(t)] == (lane ^ 1) * 10);
    CHECK(b[static_cast<std::size_t>(t)] == (lane >= 3 ? lane - 3 : lane));
    CHECK(c[static_cast<std::size_t>(t)] == 105);
    CHECK(d[static_cast<std::size_t>(t)] == 0.5 + (lane ^ 16));
  }
}

TEST_CASE("emulated dynamic shared memory starts poisoned; limits are enforced", "[emu]") {
  if (ember::ktest::on_gpu) return;
  Buffer<float> out(64);
  EMBER_LAUNCH(dynamic_shared_kernel, 2, 32, 32 * sizeof(float), nullptr)(out.data());
  ek::check_launch("dynamic_shared_kernel");
  for (float v : out.host()) CHECK(std::isnan(v));

  EMBER_LAUNCH(dynamic_shared_kernel, 1, 32, 64 * 1024, nullptr)(out.data());
  CHECK_THROWS_WITH(ek::check_launch("dynamic_shared_kernel"),
                    Catch::Contains("cudaErrorInvalidConfiguration"));
  REQUIRE(cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               64 * 1024) == cudaSuccess);
  EMBER_LAUNCH(dynamic_shared_kernel, 1, 32, 64 * 1024, nullptr)(out.data());
  CHECK_NOTHROW(ek::check_launch("dynamic_shared_kernel"));

  EMBER_LAUNCH(dynamic_shared_kernel, 1, 2048, 0, nullptr)(out.data());
  CHECK_THROWS_WITH(ek::check_launch("dynamic_shared_kernel"), Catch::Contains("dynamic_shared_kernel"));
}

TEST_CASE("emulated atomics and 3-D indices", "[emu]") {
  Buffer<int> counter(std::vector<int>{0});
  Buffer<float> total(std::vector<float>{0.0f});
  EMBER_LAUNCH(atomic_count_kernel, dim3(3, 2), dim3(32, 2), 0, nullptr)(counter.data(), total.data());
  CHECK(counter.host()[0] == 3 * 2 * 64);
  CHECK(total.host()[0] == 0.5f * 3 * 2 * 64);

  const dim3 grid(2, 3, 2), block(4, 2, 3);
  Buffer<int> out(2 * 3 * 2 * 24);
  EMBER_LAUNCH(index_kernel, grid, block, 0, nullptr)(out.data());
  const auto got = out.host();
  for (int b = 0; b < 12; ++b)
    for (int t = 0; t < 24; ++t) CHECK(got[static_cast<std::size_t>(b * 24 + t)] == b * 10000 + t);
}
