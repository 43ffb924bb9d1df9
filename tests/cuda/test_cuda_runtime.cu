// Tests of the CUDA runtime layer (include/ember/backend/cuda): error checks, the caching
// allocators, copies, cuBLAS GEMM, cuDNN convolution, graph capture and backend selection.
// Compiled by nvcc only. Every test that needs a GPU skips (with a warning) on a machine
// without one, so the binary also passes where it can only be built.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "ember/backend/cuda/allocator.hpp"
#include "ember/backend/cuda/blas.hpp"
#include "ember/backend/cuda/dnn.hpp"
#include "ember/backend/cuda/graph.hpp"
#include "ember/backend/cuda/runtime.hpp"
#include "ember/backend/cuda/select.hpp"
#include "ember/backend/params.hpp"
#include "ember/core/error.hpp"
#include "support/reference.hpp"

namespace ecuda = ember::cuda;  // not `cuda`: libcu++ owns ::cuda
using Catch::Matchers::Contains;

namespace {

// Skips the rest of the test case (with a warning) when there is no usable CUDA device.
#define EMBER_REQUIRE_GPU()                                                \
  do {                                                                     \
    if (ecuda::device_count() == 0) {                                       \
      WARN("no CUDA device on this machine: GPU test skipped");            \
      return;                                                              \
    }                                                                      \
  } while (0)

constexpr int kDev = 0;

template <class T>
std::vector<T> random_vector(std::size_t n, unsigned seed, T lo = T(-1), T hi = T(1)) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<T> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

// A device array of T on cuda:0, from the DeviceAllocator.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host)
      : n_(host.size()), buf_(host.size() * sizeof(T), kDev) {
    ecuda::copy_to_device(buf_.data(), host.data(), bytes(), kDev);
  }
  [[nodiscard]] T* data() const { return static_cast<T*>(buf_.data()); }
  [[nodiscard]] std::size_t bytes() const { return n_ * sizeof(T); }
  [[nodiscard]] std::vector<T> host() const {
    std::vector<T> out(n_);
    ecuda::copy_to_host(out.data(), buf_.data(), bytes(), kDev);
    return out;
  }
  void upload(const std::vector<T>& host) {
    REQUIRE(host.size() == n_);
    ecuda::copy_to_device(buf_.data(), host.data(), bytes(), kDev);
  }

 private:
  std::size_t n_;
  ecuda::DeviceBuffer buf_;
};

// Tolerance for a GEMM result whose exact terms have absolute sum `abs_sum` (a bound of the
// order of K * epsilon * abs_sum, which any summation order meets for our K).
template <class T>
double tolerance(double abs_sum) {
  return (std::is_same_v<T, float> ? 2e-5 : 1e-12) * abs_sum + 1e-30;
}

// The same for convolutions: looser, because cuDNN may pick transform-based algorithms
// (Winograd, FFT) whose rounding error exceeds a plain dot product's. (That no TF32 is used is
// checked separately, exactly.)
template <class T>
double conv_tolerance(double abs_sum) {
  return (std::is_same_v<T, float> ? 1e-4 : 1e-11) * abs_sum + 1e-30;
}

template <class T>
void check_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                T beta, unsigned seed) {
  CAPTURE(ta, tb, m, n, k, alpha, beta);
  const std::int64_t pad_a = 3, pad_b = 1, pad_c = 2;
  ember::GemmParams p{ta, tb, m, n, k, (ta ? m : k) + pad_a, (tb ? k : n) + pad_b, n + pad_c};
  const std::int64_t a_rows = ta ? k : m, b_rows = tb ? n : k;
  const auto a = random_vector<T>(static_cast<std::size_t>(a_rows * p.lda), seed);
  const auto b = random_vector<T>(static_cast<std::size_t>(b_rows * p.ldb), seed + 1);
  auto c0 = random_vector<T>(static_cast<std::size_t>(m * p.ldc), seed + 2);
  if (beta == T(0))  // C must not be read: poison it (padding included)
    for (auto& x : c0) x = std::numeric_limits<T>::quiet_NaN();
  DeviceArray<T> da(a), db(b), dc(c0);
  ecuda::cublas_gemm<T>(p, alpha, da.data(), db.data(), beta, dc.data(), kDev);
  const auto got = dc.host();
  std::vector<double> want, mag;
  ember::test::reference::gemm(p, alpha, a, b, beta, c0, want, mag);
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < p.ldc; ++j) {
      const std::size_t idx = static_cast<std::size_t>(i * p.ldc + j);
      if (j >= n) {  // padding of C: untouched (NaN stays NaN)
        const bool same = (std::isnan(got[idx]) && std::isnan(c0[idx])) || got[idx] == c0[idx];
        REQUIRE(same);
        continue;
      }
      CAPTURE(i, j, want[idx], got[idx]);
      REQUIRE(std::fabs(static_cast<double>(got[idx]) - want[idx]) <= tolerance<T>(mag[idx]));
    }
  }
}

// Reference convolution (the ember::cpu::conv2d_* contract) in double.
struct ConvRef {
  std::vector<double> y, y_mag, gx, gx_mag, gw, gw_mag, gb, gb_mag;
};

template <class T>
ConvRef reference_conv(const ember::Conv2dParams& p, const std::vector<T>& x,
                       const std::vector<T>& w, const std::vector<T>& bias,
                       const std::vector<T>& gy) {
  const std::int64_t P = p.p(), Q = p.q();
  ConvRef r;
  r.y.assign(static_cast<std::size_t>(p.n * p.k * P * Q), 0.0);
  r.y_mag = r.y;
  r.gx.assign(x.size(), 0.0);
  r.gx_mag = r.gx;
  r.gw.assign(w.size(), 0.0);
  r.gw_mag = r.gw;
  r.gb.assign(static_cast<std::size_t>(p.k), 0.0);
  r.gb_mag = r.gb;
  for (std::int64_t n = 0; n < p.n; ++n)
    for (std::int64_t k = 0; k < p.k; ++k)
      for (std::int64_t oh = 0; oh < P; ++oh)
        for (std::int64_t ow = 0; ow < Q; ++ow) {
          const std::size_t yi = static_cast<std::size_t>(((n * p.k + k) * P + oh) * Q + ow);
          const double g = gy[yi];
          r.y[yi] = bias[static_cast<std::size_t>(k)];
          r.y_mag[yi] = std::fabs(r.y[yi]);
          r.gb[static_cast<std::size_t>(k)] += g;
          r.gb_mag[static_cast<std::size_t>(k)] += std::fabs(g);
          for (std::int64_t c = 0; c < p.c; ++c)
            for (std::int64_t i = 0; i < p.r; ++i)
              for (std::int64_t j = 0; j < p.s; ++j) {
                const std::int64_t ih = oh * p.stride_h - p.pad_h + i * p.dil_h;
                const std::int64_t iw = ow * p.stride_w - p.pad_w + j * p.dil_w;
                if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
                const std::size_t xi = static_cast<std::size_t>(((n * p.c + c) * p.h + ih) * p.w + iw);
                const std::size_t wi = static_cast<std::size_t>(((k * p.c + c) * p.r + i) * p.s + j);
                const double xv = x[xi], wv = w[wi];
                r.y[yi] += xv * wv;
                r.y_mag[yi] += std::fabs(xv * wv);
                r.gx[xi] += wv * g;
                r.gx_mag[xi] += std::fabs(wv * g);
                r.gw[wi] += xv * g;
                r.gw_mag[wi] += std::fabs(xv * g);
              }
        }
  return r;
}

template <class T>
void require_close(const std::vector<T>& got, const std::vector<double>& want,
                   const std::vector<double>& mag, const char* what) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(what, i, want[i], got[i]);
    REQUIRE(std::fabs(static_cast<double>(got[i]) - want[i]) <= conv_tolerance<T>(mag[i]));
  }
}

template <class T>
void check_conv(const ember::Conv2dParams& p, unsigned seed) {
  CAPTURE(p.n, p.c, p.h, p.w, p.k, p.r, p.s, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dil_h,
          p.dil_w);
  const std::int64_t P = p.p(), Q = p.q();
  const auto x = random_vector<T>(static_cast<std::size_t>(p.n * p.c * p.h * p.w), seed);
  const auto w = random_vector<T>(static_cast<std::size_t>(p.k * p.c * p.r * p.s), seed + 1);
  const auto bias = random_vector<T>(static_cast<std::size_t>(p.k), seed + 2);
  const auto gy = random_vector<T>(static_cast<std::size_t>(p.n * p.k * P * Q), seed + 3);
  const ConvRef ref = reference_conv(p, x, w, bias, gy);
  const T nan = std::numeric_limits<T>::quiet_NaN();
  DeviceArray<T> dx(x), dw(w), db(bias), dgy(gy);
  DeviceArray<T> dy(std::vector<T>(gy.size(), nan)), dgx(std::vector<T>(x.size(), nan));
  DeviceArray<T> dgw(std::vector<T>(w.size(), nan)), dgb(std::vector<T>(bias.size(), nan));

  ecuda::cudnn_conv2d_forward<T>(p, dx.data(), dw.data(), db.data(), dy.data(), kDev);
  require_close(dy.host(), ref.y, ref.y_mag, "y");

  ecuda::cudnn_conv2d_backward_data<T>(p, dw.data(), dgy.data(), dgx.data(), kDev);
  require_close(dgx.host(), ref.gx, ref.gx_mag, "gx");

  ecuda::cudnn_conv2d_backward_weight<T>(p, dx.data(), dgy.data(), dgw.data(), dgb.data(), kDev);
  const auto gw1 = dgw.host(), gb1 = dgb.host();
  require_close(gw1, ref.gw, ref.gw_mag, "gw");
  require_close(gb1, ref.gb, ref.gb_mag, "gb");

  // Deterministic algorithms: a second run gives bit-identical gradients.
  const auto gx1 = dgx.host();
  ecuda::cudnn_conv2d_backward_data<T>(p, dw.data(), dgy.data(), dgx.data(), kDev);
  ecuda::cudnn_conv2d_backward_weight<T>(p, dx.data(), dgy.data(), dgw.data(), dgb.data(), kDev);
  REQUIRE(dgx.host() == gx1);
  REQUIRE(dgw.host() == gw1);
  REQUIRE(dgb.host() == gb1);

  // Without bias: y is the plain convolution.
  ecuda::cudnn_conv2d_forward<T>(p, dx.data(), dw.data(), nullptr, dy.data(), kDev);
  const auto y_nb = dy.host();
  for (std::size_t i = 0; i < y_nb.size(); ++i) {
    const std::size_t k = (i / static_cast<std::size_t>(P * Q)) % static_cast<std::size_t>(p.k);
    const double want = ref.y[i] - static_cast<double>(bias[k]);
    CAPTURE(i, want, y_nb[i]);
    REQUIRE(std::fabs(static_cast<double>(y_nb[i]) - want) <= conv_tolerance<T>(ref.y_mag[i]));
  }
}

}  // namespace

TEST_CASE("cuda: device_count never throws and check_device explains", "[cuda][runtime]") {
  const int n = ecuda::device_count();
  REQUIRE(n >= 0);
  if (n == 0) {
    // No device: check_device says so.
    REQUIRE_THROWS_WITH(ecuda::check_device(0), Contains("no CUDA device"));
    WARN("no CUDA device on this machine: GPU part skipped");
    return;
  }
  REQUIRE_NOTHROW(ecuda::check_device(0));
  REQUIRE_THROWS_WITH(ecuda::check_device(n),
                      Contains("cuda:" + std::to_string(n) + " requested but this machine has " +
                               std::to_string(n) + " CUDA device(s)"));
  REQUIRE_THROWS_AS(ecuda::check_device(-1), ember::Error);
}

TEST_CASE("cuda: stream, guard and synchronize", "[cuda][runtime]") {
  EMBER_REQUIRE_GPU();
  cudaStream_t s = ecuda::stream(kDev);
  REQUIRE(s != nullptr);
  REQUIRE(ecuda::stream(kDev) == s);  // one stream per device
  unsigned flags = 0;
  EMBER_CUDA_CHECK(cudaStreamGetFlags(s, &flags));
  REQUIRE((flags & cudaStreamNonBlocking) != 0u);
  int before = -1;
  EMBER_CUDA_CHECK(cudaGetDevice(&before));
  {
    ecuda::DeviceGuard guard(kDev);
    int now = -1;
    EMBER_CUDA_CHECK(cudaGetDevice(&now));
    REQUIRE(now == kDev);
  }
  int after = -1;
  EMBER_CUDA_CHECK(cudaGetDevice(&after));
  REQUIRE(after == before);
  REQUIRE_NOTHROW(ecuda::synchronize(kDev));
  REQUIRE_FALSE(ecuda::capturing(kDev));
  REQUIRE_THROWS_AS(ecuda::stream(ecuda::device_count()), ember::Error);
}

TEST_CASE("cuda: DeviceAllocator caches and reuses blocks", "[cuda][allocator]") {
  EMBER_REQUIRE_GPU();
  auto& alloc = ecuda::DeviceAllocator::instance(kDev);
  REQUIRE(&alloc == &ecuda::DeviceAllocator::instance(kDev));
  // A size no other test uses, so that the cache starts without a block of it.
  const std::size_t bytes = 777777;  // rounds to 778240 (512-byte granularity below 1 MiB)
  void* a = alloc.allocate(bytes);
  REQUIRE(a != nullptr);
  REQUIRE(reinterpret_cast<std::uintptr_t>(a) % 256 == 0);
  const auto s0 = alloc.stats();
  REQUIRE(s0.allocated_bytes >= 778240);
  alloc.deallocate(a, bytes);
  const auto s1 = alloc.stats();
  REQUIRE(s1.cached_bytes == s0.cached_bytes + 778240);
  REQUIRE(s1.allocated_bytes == s0.allocated_bytes - 778240);
  // The same rounded size again: a hit, no new cudaMalloc, the same block.
  void* b = alloc.allocate(bytes - 100);
  const auto s2 = alloc.stats();
  REQUIRE(b == a);
  REQUIRE(s2.hits == s1.hits + 1);
  REQUIRE(s2.cuda_mallocs == s1.cuda_mallocs);
  REQUIRE(s2.cached_bytes == s0.cached_bytes);
  // A second live block of that size needs a new cudaMalloc.
  void* c = alloc.allocate(bytes);
  REQUIRE(c != b);
  REQUIRE(alloc.stats().cuda_mallocs == s2.cuda_mallocs + 1);
  alloc.deallocate(b, bytes);
  alloc.deallocate(c, bytes);

  // Large blocks round to 2 MiB: 3 MiB + 1 and 4 MiB share a size class.
  void* big = alloc.allocate((std::size_t(3) << 20) + 1);
  alloc.deallocate(big, (std::size_t(3) << 20) + 1);
  const auto s3 = alloc.stats();
  void* big2 = alloc.allocate(std::size_t(4) << 20);
  REQUIRE(big2 == big);
  REQUIRE(alloc.stats().cuda_mallocs == s3.cuda_mallocs);
  alloc.deallocate(big2, std::size_t(4) << 20);

  // Zero bytes still gives a real, distinct block.
  void* z = alloc.allocate(0);
  REQUIRE(z != nullptr);
  alloc.deallocate(z, 0);

  // Misuse is reported.
  REQUIRE_THROWS_WITH(alloc.deallocate(z, 0), Contains("already freed"));
  void* d = alloc.allocate(1000);
  REQUIRE_THROWS_AS(alloc.deallocate(d, 5000), ember::Error);
  alloc.deallocate(d, 1000);

  // empty_cache returns the general cache to the driver.
  alloc.empty_cache();
  REQUIRE(alloc.stats().cached_bytes == 0);
}

TEST_CASE("cuda: PinnedAllocator caches blocks", "[cuda][allocator]") {
  EMBER_REQUIRE_GPU();
  auto& pinned = ecuda::PinnedAllocator::instance();
  void* a = pinned.allocate(12345);
  const auto s0 = pinned.stats();
  pinned.deallocate(a, 12345);
  void* b = pinned.allocate(12345);
  REQUIRE(b == a);
  REQUIRE(pinned.stats().hits == s0.hits + 1);
  REQUIRE(pinned.stats().host_allocs == s0.host_allocs);
  static_cast<unsigned char*>(b)[12344] = 7;  // host-accessible
  pinned.deallocate(b, 12345);
}

TEST_CASE("cuda: host/device round trips", "[cuda][copy]") {
  EMBER_REQUIRE_GPU();
  // Odd sizes, and one larger than the 16 MiB staging chunk (5.5M floats = 22 MB).
  for (std::size_t n : {std::size_t(1), std::size_t(7), std::size_t(1000003), std::size_t(5500001)}) {
    CAPTURE(n);
    const auto host = random_vector<float>(n, static_cast<unsigned>(n));
    DeviceArray<float> d(host);
    REQUIRE(d.host() == host);

    // device -> device, then memset of a prefix.
    DeviceArray<float> e(std::vector<float>(n, -1.0f));
    ecuda::copy_device_to_device(e.data(), d.data(), d.bytes(), kDev);
    REQUIRE(e.host() == host);
    const std::size_t prefix = (n + 1) / 2;
    ecuda::memset_async(e.data(), 0, prefix * sizeof(float), kDev);
    auto want = host;
    for (std::size_t i = 0; i < prefix; ++i) want[i] = 0.0f;
    REQUIRE(e.host() == want);
  }
  // Zero bytes is a no-op.
  REQUIRE_NOTHROW(ecuda::copy_to_device(nullptr, nullptr, 0, kDev));
  REQUIRE_NOTHROW(ecuda::copy_to_host(nullptr, nullptr, 0, kDev));
}

TEST_CASE("cuda: cublas_gemm matches the row-major reference", "[cuda][blas]") {
  EMBER_REQUIRE_GPU();
  struct Shape {
    std::int64_t m, n, k;
  };
  const Shape shapes[] = {{1, 1, 1}, {7, 33, 5}, {33, 7, 64}, {64, 17, 130}, {100, 129, 3}};
  unsigned seed = 1;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const Shape& s : shapes) {
        check_gemm<float>(ta, tb, s.m, s.n, s.k, 1.0f, 0.0f, seed++);
        check_gemm<float>(ta, tb, s.m, s.n, s.k, 1.5f, 0.5f, seed++);
        check_gemm<double>(ta, tb, s.m, s.n, s.k, -0.75, 2.0, seed++);
      }
  // K == 0: C = beta * C (beta == 0: zeros, C not read).
  check_gemm<float>(false, false, 5, 6, 0, 1.0f, 0.0f, 100);
  check_gemm<float>(true, true, 5, 6, 0, 1.0f, 2.0f, 101);
}

TEST_CASE("cuda: cublas_gemm computes in full FP32 (no TF32)", "[cuda][blas]") {
  EMBER_REQUIRE_GPU();
  // Every partial sum of j * (1 + 2^-20), j <= 16, is exact in FP32; TF32 (10-bit mantissa)
  // would round 1 + 2^-20 to 1 and give 16.
  const std::int64_t m = 8, n = 8, k = 16;
  const float v = 1.0f + std::ldexp(1.0f, -20);
  ember::GemmParams p{false, false, m, n, k, k, n, n};
  DeviceArray<float> a(std::vector<float>(static_cast<std::size_t>(m * k), v));
  DeviceArray<float> b(std::vector<float>(static_cast<std::size_t>(k * n), 1.0f));
  DeviceArray<float> c(std::vector<float>(static_cast<std::size_t>(m * n), 0.0f));
  ecuda::cublas_gemm<float>(p, 1.0f, a.data(), b.data(), 0.0f, c.data(), kDev);
  const float want = 16.0f + std::ldexp(1.0f, -16);
  for (float got : c.host()) REQUIRE(got == want);
}

TEST_CASE("cuda: cuDNN convolution matches the reference", "[cuda][dnn]") {
  EMBER_REQUIRE_GPU();
  // n, c, h, w, k, r, s, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w
  const ember::Conv2dParams shapes[] = {
      {1, 1, 5, 5, 1, 3, 3, 1, 1, 0, 0, 1, 1},
      {2, 3, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1},
      {3, 2, 11, 8, 5, 3, 2, 2, 1, 1, 0, 1, 1},
      {2, 4, 12, 12, 3, 3, 3, 2, 2, 2, 2, 2, 2},
      {4, 1, 28, 28, 8, 5, 5, 1, 1, 2, 2, 1, 1},
      {2, 16, 6, 6, 7, 1, 1, 1, 1, 0, 0, 1, 1},
  };
  unsigned seed = 10;
  for (const auto& p : shapes) {
    check_conv<float>(p, seed);
    check_conv<double>(p, seed + 100);
    seed += 10;
  }
}

TEST_CASE("cuda: cuDNN convolution computes in full FP32 (no TF32)", "[cuda][dnn]") {
  EMBER_REQUIRE_GPU();
  // A 1x1 convolution over 16 channels of 1 + 2^-20 with unit weights: exactly 16 + 2^-16 in
  // FP32; TF32 would give 16.
  const ember::Conv2dParams p{2, 16, 4, 4, 3, 1, 1, 1, 1, 0, 0, 1, 1};
  const float v = 1.0f + std::ldexp(1.0f, -20);
  DeviceArray<float> x(std::vector<float>(static_cast<std::size_t>(p.n * p.c * p.h * p.w), v));
  DeviceArray<float> w(std::vector<float>(static_cast<std::size_t>(p.k * p.c), 1.0f));
  DeviceArray<float> y(std::vector<float>(static_cast<std::size_t>(p.n * p.k * p.h * p.w), 0.0f));
  ecuda::cudnn_conv2d_forward<float>(p, x.data(), w.data(), nullptr, y.data(), kDev);
  const double want = 16.0 + std::ldexp(1.0, -16);
  for (float got : y.host()) REQUIRE(std::fabs(static_cast<double>(got) - want) < std::ldexp(1.0, -17));
}

TEST_CASE("cuda: graph capture and replay", "[cuda][graph]") {
  EMBER_REQUIRE_GPU();
  const std::size_t n = 4099;
  const auto src1 = random_vector<float>(n, 5), src2 = random_vector<float>(n, 6);
  DeviceArray<float> src(src1), dst(std::vector<float>(n, 42.0f));
  auto& alloc = ecuda::DeviceAllocator::instance(kDev);

  ecuda::Graph g;
  REQUIRE_FALSE(g.captured());
  REQUIRE_THROWS_AS(g.replay(), ember::Error);
  g.capture_begin(kDev);
  REQUIRE(g.is_capturing());
  REQUIRE(ecuda::capturing(kDev));
  const int pool = alloc.active_private_pool();
  REQUIRE(pool != 0);
  // A temporary allocated and freed inside the capture: served by the private pool.
  void* tmp = alloc.allocate(n * sizeof(float));
  ecuda::memset_async(dst.data(), 0, n * sizeof(float), kDev);
  ecuda::copy_device_to_device(tmp, src.data(), n * sizeof(float), kDev);
  ecuda::copy_device_to_device(dst.data(), tmp, (n / 2) * sizeof(float), kDev);
  alloc.deallocate(tmp, n * sizeof(float));
  // Host copies refuse to be captured (and leave the capture intact).
  std::vector<float> scratch(4);
  REQUIRE_THROWS_WITH(ecuda::copy_to_host(scratch.data(), src.data(), 16, kDev),
                      Contains("cannot be captured"));
  g.capture_end();
  REQUIRE(g.captured());
  REQUIRE_FALSE(ecuda::capturing(kDev));
  REQUIRE(alloc.active_private_pool() == 0);

  // Capturing ran nothing.
  REQUIRE(dst.host() == std::vector<float>(n, 42.0f));
  // The private block is not handed out outside the capture.
  void* outside = alloc.allocate(n * sizeof(float));
  REQUIRE(outside != tmp);
  alloc.deallocate(outside, n * sizeof(float));

  auto expected = [&](const std::vector<float>& s) {
    std::vector<float> e(n, 0.0f);
    for (std::size_t i = 0; i < n / 2; ++i) e[i] = s[i];
    return e;
  };
  g.replay();
  REQUIRE(dst.host() == expected(src1));
  src.upload(src2);
  g.replay();
  g.replay();
  REQUIRE(dst.host() == expected(src2));

  // Moving keeps the graph; destroying it returns the pool's memory to the general cache.
  ecuda::Graph moved = std::move(g);
  REQUIRE(moved.captured());
  REQUIRE_FALSE(g.captured());  // NOLINT(bugprone-use-after-move): moved-from state is defined
  moved.replay();
  ecuda::synchronize(kDev);
  const auto before = alloc.stats().cached_bytes;
  { ecuda::Graph sink = std::move(moved); }
  REQUIRE(alloc.stats().cached_bytes >= before + n * sizeof(float));

  // A Graph captures once.
  ecuda::Graph once;
  once.capture_begin(kDev);
  once.capture_end();
  REQUIRE_THROWS_AS(once.capture_begin(kDev), ember::Error);
}

TEST_CASE("cuda: cuBLAS and cuDNN calls replay from a graph", "[cuda][graph]") {
  EMBER_REQUIRE_GPU();
  // GEMM
  const ember::GemmParams gp{false, true, 17, 9, 33, 33, 33, 9};
  auto a1 = random_vector<float>(17 * 33, 1), b1 = random_vector<float>(9 * 33, 2);
  DeviceArray<float> a(a1), b(b1), c(std::vector<float>(17 * 9, 0.0f));
  ecuda::cublas_gemm<float>(gp, 1.0f, a.data(), b.data(), 0.0f, c.data(), kDev);  // warm-up
  // conv
  const ember::Conv2dParams cp{2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1};
  auto x1 = random_vector<float>(2 * 3 * 8 * 8, 3);
  const auto w = random_vector<float>(4 * 3 * 3 * 3, 4), bias = random_vector<float>(4, 5);
  DeviceArray<float> x(x1), dw(w), db(bias), y(std::vector<float>(2 * 4 * 8 * 8, 0.0f));
  ecuda::cudnn_conv2d_forward<float>(cp, x.data(), dw.data(), db.data(), y.data(), kDev);

  ecuda::Graph g;
  g.capture_begin(kDev);
  ecuda::cublas_gemm<float>(gp, 1.0f, a.data(), b.data(), 0.0f, c.data(), kDev);
  ecuda::cudnn_conv2d_forward<float>(cp, x.data(), dw.data(), db.data(), y.data(), kDev);
  g.capture_end();

  const auto a2 = random_vector<float>(17 * 33, 11), b2 = random_vector<float>(9 * 33, 12);
  const auto x2 = random_vector<float>(2 * 3 * 8 * 8, 13);
  a.upload(a2);
  b.upload(b2);
  x.upload(x2);
  g.replay();

  std::vector<double> want, mag;
  ember::test::reference::gemm<float>(gp, 1.0, a2, b2, 0.0, std::vector<float>(17 * 9, 0.0f), want, mag);
  const auto got = c.host();
  for (std::size_t i = 0; i < got.size(); ++i)
    REQUIRE(std::fabs(static_cast<double>(got[i]) - want[i]) <= tolerance<float>(mag[i]));
  const ConvRef ref = reference_conv<float>(cp, x2, w, bias, std::vector<float>(2 * 4 * 8 * 8, 0.0f));
  require_close(y.host(), ref.y, ref.y_mag, "y (graph)");
}

TEST_CASE("cuda: error macros name the call, the status and the place", "[cuda][errors]") {
  EMBER_REQUIRE_GPU();
  (void)ecuda::stream(kDev);  // a context on cuda:0
  void* p = nullptr;
  const std::size_t absurd = std::size_t(1) << 50;  // 1 PiB
  try {
    EMBER_CUDA_CHECK(cudaMalloc(&p, absurd));
    FAIL("cudaMalloc of 1 PiB succeeded");
  } catch (const ember::Error& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Contains("cudaMalloc(&p, absurd)"));
    CHECK_THAT(what, Contains("cudaErrorMemoryAllocation"));
    CHECK_THAT(what, Contains("test_cuda_runtime.cu:"));
  }
  // The error was cleared: the next launch check sees success.
  REQUIRE(cudaGetLastError() == cudaSuccess);

  // The allocator's out-of-memory error names cudaMalloc, the size and the device's memory.
  REQUIRE_THROWS_WITH(ecuda::DeviceAllocator::instance(kDev).allocate(absurd),
                      Contains("cudaMalloc") && Contains(std::to_string(absurd)) &&
                          Contains("MiB free of"));

  // cuBLAS: an invalid argument (m < 0).
  const float one = 1.0f;
  try {
    EMBER_CUBLAS_CHECK(cublasSgemm(ecuda::blas_handle(kDev), CUBLAS_OP_N, CUBLAS_OP_N, -1, 1, 1,
                                   &one, nullptr, 1, nullptr, 1, &one, nullptr, 1));
    FAIL("cublasSgemm with m = -1 succeeded");
  } catch (const ember::Error& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Contains("cublasSgemm"));
    CHECK_THAT(what, Contains("CUBLAS_STATUS_INVALID_VALUE"));
  }

  // cuDNN: a negative tensor dimension.
  ecuda::detail::TensorDesc desc;
  try {
    EMBER_CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                                 -1, 1, 1, 1));
    FAIL("cudnnSetTensor4dDescriptor with n = -1 succeeded");
  } catch (const ember::Error& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Contains("cudnnSetTensor4dDescriptor"));
    CHECK_THAT(what, Contains("CUDNN_STATUS_BAD_PARAM"));
  }

  // Bad shapes are refused before reaching the libraries.
  ember::GemmParams bad{false, false, 4, 4, 4, 2, 4, 4};  // lda < K
  REQUIRE_THROWS_WITH(ecuda::cublas_gemm<float>(bad, 1.0f, nullptr, nullptr, 0.0f, nullptr, kDev),
                      Contains("row strides too small"));
}

TEST_CASE("cuda: backend selection", "[cuda][select]") {
  // No GPU needed: selection is host-side state.
  const auto gemm0 = ecuda::gemm_backend();
  const auto conv0 = ecuda::conv_backend();
  ecuda::set_gemm_backend(ecuda::GemmBackend::custom);
  REQUIRE(ecuda::gemm_backend() == ecuda::GemmBackend::custom);
  ecuda::set_gemm_backend(ecuda::GemmBackend::cublas);
  REQUIRE(ecuda::gemm_backend() == ecuda::GemmBackend::cublas);
  ecuda::set_conv_backend(ecuda::ConvBackend::custom);
  REQUIRE(ecuda::conv_backend() == ecuda::ConvBackend::custom);
  ecuda::set_conv_backend(ecuda::ConvBackend::cudnn);
  REQUIRE(ecuda::conv_backend() == ecuda::ConvBackend::cudnn);
  ecuda::set_gemm_backend(gemm0);
  ecuda::set_conv_backend(conv0);

  REQUIRE(std::string(ecuda::to_string(ecuda::GemmBackend::custom)) == "custom");
  REQUIRE(std::string(ecuda::to_string(ecuda::GemmBackend::cublas)) == "cublas");
  REQUIRE(std::string(ecuda::to_string(ecuda::ConvBackend::custom)) == "custom");
  REQUIRE(std::string(ecuda::to_string(ecuda::ConvBackend::cudnn)) == "cudnn");

  // Parsing of the environment variable (a private name, so the real ones are untouched).
  const char* var = "EMBER_TEST_SELECT_BACKEND";
  ::unsetenv(var);
  REQUIRE(ecuda::detail::backend_from_env(var, ecuda::GemmBackend::cublas) == ecuda::GemmBackend::cublas);
  ::setenv(var, "custom", 1);
  REQUIRE(ecuda::detail::backend_from_env(var, ecuda::GemmBackend::cublas) == ecuda::GemmBackend::custom);
  ::setenv(var, "cudnn", 1);
  REQUIRE(ecuda::detail::backend_from_env(var, ecuda::ConvBackend::cudnn) == ecuda::ConvBackend::cudnn);
  ::setenv(var, "tensorcore", 1);
  REQUIRE_THROWS_WITH(ecuda::detail::backend_from_env(var, ecuda::GemmBackend::cublas),
                      Contains("EMBER_TEST_SELECT_BACKEND=tensorcore") &&
                          Contains("accepted values: custom, cublas"));
  ::unsetenv(var);
}
