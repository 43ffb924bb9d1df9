// kernels/pool.cuh: max_pool2d forward (values and int32 argmax) and backward against
// ember::cpu::max_pool2d_forward / max_pool2d_backward, exactly (same comparisons, same
// summation order), for 2x2 stride 2, 3x3 stride 2 padding 1, overlapping and other windows,
// odd sizes, ties, NaN and -inf inputs, every block size, poisoned outputs, and the gather
// backward's determinism.
#include "support/kernel_test.hpp"

#include <catch2/catch.hpp>

#include <ember/kernels/pool.cuh>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "ember/backend/cpu/pool.hpp"

namespace {

namespace ek = ember::kernels;
using ember::MaxPool2dParams;
using ember::ktest::Buffer;
using ember::ktest::same_value;
using I64 = std::int64_t;

MaxPool2dParams pool(I64 planes, I64 h, I64 w, I64 kernel, I64 stride, I64 padding) {
  MaxPool2dParams p;
  p.planes = planes;
  p.h = h;
  p.w = w;
  p.kernel = kernel;
  p.stride = stride;
  p.padding = padding;
  return p;
}

const std::vector<MaxPool2dParams>& shapes() {
  static const std::vector<MaxPool2dParams> s{
      pool(1, 1, 1, 1, 1, 0),  pool(3, 4, 4, 2, 2, 0),   pool(5, 7, 9, 2, 2, 0),    // odd: last row/col unused
      pool(2, 24, 24, 2, 2, 0), pool(4, 9, 7, 3, 2, 1),  pool(3, 8, 8, 3, 2, 1),
      pool(2, 10, 11, 3, 1, 1), pool(2, 6, 7, 2, 1, 0),  pool(1, 13, 12, 4, 3, 2),  // overlapping, general kernel
      pool(3, 5, 5, 5, 1, 2),   pool(7, 3, 33, 2, 2, 1),
  };
  return s;
}

// Values drawn from a small set, so that windows hold ties; optional NaN and -inf sprinkled in.
std::vector<float> pool_input(std::size_t n, std::uint64_t seed, bool specials) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> level(-3, 3);
  std::uniform_int_distribution<int> pick(0, 19);
  std::vector<float> v(n);
  for (auto& x : v) {
    x = 0.5f * static_cast<float>(level(rng));
    if (specials) {
      const int s = pick(rng);
      if (s == 0) x = std::numeric_limits<float>::quiet_NaN();
      if (s == 1) x = -std::numeric_limits<float>::infinity();
    }
  }
  return v;
}

template <class T>
void check_pool(const MaxPool2dParams& p, const std::vector<T>& x, std::uint64_t seed, int threads) {
  const I64 P = p.p(), Q = p.q();
  const auto ny = static_cast<std::size_t>(p.planes * P * Q);
  std::vector<T> want_y(ny);
  std::vector<std::int32_t> want_arg(ny);
  ember::cpu::max_pool2d_forward<T>(p, x.data(), want_y.data(), want_arg.data());
  const auto gy = ember::ktest::random_vector<T>(ny, seed, -1, 1);
  std::vector<T> want_gx(x.size());
  ember::cpu::max_pool2d_backward<T>(p, gy.data(), want_arg.data(), want_gx.data());

  Buffer<T> dx(x), dy(ny), dgy(gy), dgx(x.size());
  Buffer<std::int32_t> darg(ny);
  ek::max_pool2d_forward<T>(p, dx.data(), dy.data(), darg.data(), nullptr, threads);
  ek::max_pool2d_backward<T>(p, dgy.data(), darg.data(), dgx.data(), nullptr, threads);
  const auto y = dy.host();
  const auto arg = darg.host();
  const auto gx = dgx.host();

  INFO("planes=" << p.planes << " H=" << p.h << " W=" << p.w << " kernel=" << p.kernel << " stride=" << p.stride
                 << " padding=" << p.padding << " threads=" << threads);
  std::size_t bad_y = 0, bad_arg = 0, bad_gx = 0;
  for (std::size_t i = 0; i < ny; ++i) {
    bad_y += same_value(static_cast<float>(y[i]), static_cast<float>(want_y[i])) ? 0 : 1;
    bad_arg += arg[i] == want_arg[i] ? 0 : 1;
  }
  for (std::size_t i = 0; i < gx.size(); ++i) bad_gx += same_value(static_cast<float>(gx[i]), static_cast<float>(want_gx[i])) ? 0 : 1;
  CHECK(bad_y == 0);
  CHECK(bad_arg == 0);
  CHECK(bad_gx == 0);
}

}  // namespace

TEMPLATE_TEST_CASE("max_pool2d forward/backward match the CPU exactly", "[kernels][pool]", float, double) {
  using T = TestType;
  std::uint64_t seed = 10;
  for (const MaxPool2dParams& p : shapes())
    for (bool specials : {false, true}) {
      const auto xf = pool_input(static_cast<std::size_t>(p.planes * p.h * p.w), seed++, specials);
      const std::vector<T> x(xf.begin(), xf.end());
      for (int threads : ember::ktest::block_sizes()) check_pool<T>(p, x, seed++, threads);
    }
}

TEST_CASE("max_pool2d: ties keep the first element, the last NaN of a window wins", "[kernels][pool]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // One 2 x 4 plane, two 2 x 2 windows: all equal (argmax = the top-left), then NaN at the
  // top-right and the bottom-left (the later NaN, bottom-left, wins).
  const std::vector<float> x{1, 1, 2, nan, 1, 1, nan, 2};
  const MaxPool2dParams p = pool(1, 2, 4, 2, 2, 0);
  Buffer<float> dx(x), dy(2);
  Buffer<std::int32_t> arg(2);
  ek::max_pool2d_forward<float>(p, dx.data(), dy.data(), arg.data(), nullptr);
  const auto y = dy.host();
  const auto a = arg.host();
  CHECK(y[0] == 1.0f);
  CHECK(a[0] == 0);
  CHECK(std::isnan(y[1]));
  CHECK(a[1] == 6);
  check_pool<float>(p, x, 1, 32);
}

TEST_CASE("max_pool2d: padded windows never pick a padding cell", "[kernels][pool]") {
  // Every input is -inf: each window's first in-bounds element wins.
  const MaxPool2dParams p = pool(2, 5, 6, 3, 2, 1);
  const std::vector<float> x(static_cast<std::size_t>(p.planes * p.h * p.w), -std::numeric_limits<float>::infinity());
  check_pool<float>(p, x, 2, 64);
  Buffer<float> dx(x), dy(static_cast<std::size_t>(p.planes * p.p() * p.q()));
  Buffer<std::int32_t> arg(static_cast<std::size_t>(p.planes * p.p() * p.q()));
  ek::max_pool2d_forward<float>(p, dx.data(), dy.data(), arg.data(), nullptr);
  const auto a = arg.host();
  CHECK(a[0] == 0);  // window (-1..1, -1..1) clipped to (0..1, 0..1)
  CHECK(a[1] == 1);  // window (-1..1, 1..3)
}

TEST_CASE("max_pool2d backward: overlapping windows sum in output order, deterministically", "[kernels][pool]") {
  // Stride 1 windows of 3 overlap heavily; constant inputs make one element win many windows.
  const MaxPool2dParams p = pool(2, 7, 8, 3, 1, 1);
  const std::vector<float> x(static_cast<std::size_t>(p.planes * p.h * p.w), 0.25f);
  check_pool<float>(p, x, 3, 128);
  const auto ny = static_cast<std::size_t>(p.planes * p.p() * p.q());
  const auto gy = ember::ktest::random_vector<float>(ny, 4, -1, 1);
  Buffer<float> dx(x), dy(ny), dgy(gy);
  Buffer<std::int32_t> arg(ny);
  ek::max_pool2d_forward<float>(p, dx.data(), dy.data(), arg.data(), nullptr);
  std::vector<std::vector<float>> runs;
  for (int threads : {32, 512}) {
    Buffer<float> dgx(x.size());
    ek::max_pool2d_backward<float>(p, dgy.data(), arg.data(), dgx.data(), nullptr, threads);
    runs.push_back(dgx.host());
  }
  CHECK(runs[0] == runs[1]);
}
