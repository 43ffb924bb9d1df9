// kernels/softmax.cuh: log_softmax forward and backward over the last dimension against
// ember::log_softmax and its autograd backward, for the warp-per-row (cols <= 1024) and the
// block-per-row layouts, odd sizes, every block size, poisoned outputs, NaN and -inf rows,
// and run-to-run determinism.
#include "support/kernel_test.hpp"

#include <catch2/catch.hpp>

#include <ember/kernels/softmax.cuh>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/activation.hpp"

namespace {

namespace ek = ember::kernels;
using ember::Tensor;
using ember::ktest::Buffer;
using I64 = std::int64_t;

// got[i] == want[i] (NaN matching NaN, inf matching inf) or within tol[i]. Counts mismatches
// rather than checking element by element, so that large shapes stay fast.
template <class T>
void check_close(const std::vector<T>& got, const std::vector<T>& want,
                 const std::vector<double>& tol) {
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double a = static_cast<double>(got[i]), b = static_cast<double>(want[i]);
    const bool ok = std::isnan(b) ? std::isnan(a) : (a == b || std::abs(a - b) <= tol[i]);
    if (!ok && bad++ == 0) first = i;
  }
  INFO("mismatches: " << bad << "; first at " << first << ": got " << got[first] << ", want "
                      << want[first] << ", tolerance " << tol[first]);
  CHECK(bad == 0);
}

// The kernel's sums run in double in another order than the CPU's; the result is then rounded
// to T. Allowed: 2 ulps of T plus the double sum's reordering error, both on `scale`.
template <class T>
double tolerance(double scale, I64 cols) {
  return (2 * static_cast<double>(std::numeric_limits<T>::epsilon()) +
          4 * static_cast<double>(cols) * std::numeric_limits<double>::epsilon()) *
         scale;
}

template <class T>
std::vector<double> forward_tolerances(const std::vector<T>& x, const std::vector<T>& y, I64 cols) {
  std::vector<double> tol(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double lse = static_cast<double>(x[i]) - static_cast<double>(y[i]);
    tol[i] = tolerance<T>(std::abs(static_cast<double>(x[i])) + std::abs(lse) + 1e-300, cols);
  }
  return tol;
}

struct Shape2 {
  I64 rows, cols;
};
// Warp layout (cols <= 1024) and block layout (cols > 1024), single rows, odd sizes, and many
// rows (several rows per block, many blocks).
// The harness runs every shuffle and barrier as fiber switches (tens of thousands per launch
// for a few hundred rows), so on the CPU the many-rows case is 257 rows with one block size;
// on a GPU it is 1000 rows with every block size.
const std::vector<Shape2>& shapes() {
  static const std::vector<Shape2> s = [] {
    std::vector<Shape2> v{{1, 1},  {1, 10}, {1, 33},   {1, 2000}, {7, 1},
                          {7, 10}, {7, 33}, {7, 2000}, {3, 1024}, {3, 1025}};
    if (ember::ktest::on_gpu) {
      v.push_back({1000, 10});
      v.push_back({1000, 33});
      v.push_back({1000, 2000});
    } else {
      v.push_back({257, 10});
    }
    return v;
  }();
  return s;
}
const std::vector<int>& blocks_for(const Shape2& s) {
  static const std::vector<int> one{64};
  return ember::ktest::on_gpu || s.rows < 100 ? ember::ktest::block_sizes() : one;
}

}  // namespace

TEMPLATE_TEST_CASE("log_softmax_forward matches ember::log_softmax", "[kernels][softmax]", float,
                   double) {
  using T = TestType;
  for (const Shape2 s : shapes()) {
    const auto xv =
        ember::ktest::random_vector<T>(static_cast<std::size_t>(s.rows * s.cols),
                                       static_cast<std::uint64_t>(11 + s.rows * 7 + s.cols), -4, 4);
    const Tensor<T> x = Tensor<T>::from_vector(xv, {s.rows, s.cols});
    const std::vector<T> want = ember::log_softmax(x, 1).to_vector();
    const std::vector<double> tol = forward_tolerances(xv, want, s.cols);
    const Buffer<T> dx(xv);
    for (const int threads : blocks_for(s)) {
      CAPTURE(s.rows, s.cols, threads);
      Buffer<T> dy(xv.size());
      ek::log_softmax_forward(dx.data(), dy.data(), s.rows, s.cols, nullptr, threads);
      check_close(dy.host(), want, tol);
    }
  }
}

TEMPLATE_TEST_CASE("log_softmax_backward matches ember::log_softmax's autograd backward",
                   "[kernels][softmax]", float, double) {
  using T = TestType;
  for (const Shape2 s : shapes()) {
    const auto n = static_cast<std::size_t>(s.rows * s.cols);
    const auto seed = static_cast<std::uint64_t>(23 + s.rows * 5 + s.cols);
    const auto xv = ember::ktest::random_vector<T>(n, seed, -4, 4);
    const auto gv = ember::ktest::random_vector<T>(n, seed + 1, -1, 1);
    Tensor<T> x = Tensor<T>::from_vector(xv, {s.rows, s.cols});
    x.requires_grad_(true);
    const Tensor<T> y = ember::log_softmax(x, 1);
    y.backward(Tensor<T>::from_vector(gv, {s.rows, s.cols}));
    const std::vector<T> want = x.grad().to_vector();
    const std::vector<T> yv = y.detach().to_vector();
    // error scale: |g| + softmax * sum |g| over the row
    std::vector<double> tol(n);
    for (I64 r = 0; r < s.rows; ++r) {
      double abs_sum = 0;
      for (I64 c = 0; c < s.cols; ++c)
        abs_sum += std::abs(static_cast<double>(gv[static_cast<std::size_t>(r * s.cols + c)]));
      for (I64 c = 0; c < s.cols; ++c) {
        const auto i = static_cast<std::size_t>(r * s.cols + c);
        tol[i] = tolerance<T>(
            std::abs(static_cast<double>(gv[i])) + std::exp(static_cast<double>(yv[i])) * abs_sum,
            s.cols);
      }
    }
    const Buffer<T> dg(gv), dy(yv);
    for (const int threads : blocks_for(s)) {
      CAPTURE(s.rows, s.cols, threads);
      Buffer<T> dgx(n);
      ek::log_softmax_backward(dg.data(), dy.data(), dgx.data(), s.rows, s.cols, nullptr, threads);
      check_close(dgx.host(), want, tol);
    }
  }
}

TEMPLATE_TEST_CASE("log_softmax kernels handle NaN and infinite entries like the CPU op",
                   "[kernels][softmax]", float, double) {
  using T = TestType;
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  for (const I64 cols : {I64{10}, I64{2000}}) {  // both layouts
    const I64 rows = 5;
    auto xv = ember::ktest::random_vector<T>(static_cast<std::size_t>(rows * cols), 77, -3, 3);
    xv[static_cast<std::size_t>(0 * cols + 3)] = nan;   // row 0: a NaN -> all NaN
    xv[static_cast<std::size_t>(1 * cols + 0)] = -inf;  // row 1: one -inf -> that entry -inf
    for (I64 c = 0; c < cols; ++c) xv[static_cast<std::size_t>(2 * cols + c)] = -inf;  // row 2: NaN
    xv[static_cast<std::size_t>(3 * cols + cols - 1)] = inf;  // row 3: +inf -> NaN (inf - inf)
    // row 4: ordinary
    const std::vector<T> want =
        ember::log_softmax(Tensor<T>::from_vector(xv, {rows, cols}), 1).to_vector();
    CHECK(std::isnan(want[0]));
    CHECK(want[static_cast<std::size_t>(cols)] == -inf);
    const std::vector<double> tol = forward_tolerances(xv, want, cols);
    const Buffer<T> dx(xv);
    for (const int threads : ember::ktest::block_sizes()) {
      CAPTURE(cols, threads);
      Buffer<T> dy(xv.size());
      ek::log_softmax_forward(dx.data(), dy.data(), rows, cols, nullptr, threads);
      check_close(dy.host(), want, tol);
    }
  }
}

TEST_CASE("log_softmax kernels are deterministic and check their arguments", "[kernels][softmax]") {
  const I64 rows = 9, cols = 1500;
  const auto xv =
      ember::ktest::random_vector<float>(static_cast<std::size_t>(rows * cols), 5, -6, 6);
  const Buffer<float> dx(xv);
  Buffer<float> a(xv.size()), b(xv.size());
  ek::log_softmax_forward(dx.data(), a.data(), rows, cols, nullptr, 128);
  ek::log_softmax_forward(dx.data(), b.data(), rows, cols, nullptr, 128);
  const auto av = a.host(), bv = b.host();
  CHECK(std::memcmp(av.data(), bv.data(), av.size() * sizeof(float)) == 0);

  // Block sizes must be whole warps.
  CHECK_THROWS_AS(ek::log_softmax_forward(dx.data(), a.data(), rows, cols, nullptr, 48),
                  ember::Error);
  CHECK_THROWS_AS(
      ek::log_softmax_backward(dx.data(), dx.data(), a.data(), rows, cols, nullptr, 2048),
      ember::Error);
  // Empty shapes launch nothing and write nothing.
  Buffer<float> untouched(4);
  ek::log_softmax_forward(dx.data(), untouched.data(), 0, cols, nullptr);
  ek::log_softmax_backward(dx.data(), dx.data(), untouched.data(), rows, 0, nullptr);
  for (const float v : untouched.host()) CHECK(std::isnan(v));
}
