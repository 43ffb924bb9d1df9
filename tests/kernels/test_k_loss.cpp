// kernels/loss.cuh: nll_loss forward (mean and sum) and backward against ember::nll_loss and its
// autograd backward, odd sizes up to 60000 rows, every block size, poisoned outputs, the
// out-of-range label flag, determinism and argument checks.
#include "support/kernel_test.hpp"

#include <catch2/catch.hpp>

#include <ember/kernels/loss.cuh>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/loss.hpp"

namespace {

namespace ek = ember::kernels;
using ember::Reduction;
using ember::Tensor;
using ember::ktest::Buffer;
using I64 = std::int64_t;

std::vector<I64> random_labels(I64 rows, I64 cols, std::uint64_t seed) {
  return ember::ktest::random_vector<I64>(static_cast<std::size_t>(rows), seed, 0,
                                          static_cast<double>(cols));
}

struct Shape2 {
  I64 rows, cols;
};

}  // namespace

TEMPLATE_TEST_CASE("nll_forward matches ember::nll_loss (mean and sum)", "[kernels][loss]", float,
                   double) {
  using T = TestType;
  const std::vector<Shape2> shapes{{1, 1},  {1, 10},    {7, 1},     {7, 10},
                                   {7, 33}, {1000, 10}, {1000, 33}, {60000, 10}};
  for (const Shape2 s : shapes) {
    const auto n = static_cast<std::size_t>(s.rows * s.cols);
    const auto seed = static_cast<std::uint64_t>(s.rows * 31 + s.cols);
    const auto lv = ember::ktest::random_vector<T>(n, seed, -6, -0.01);
    const auto labels = random_labels(s.rows, s.cols, seed + 1);
    const Tensor<T> logp = Tensor<T>::from_vector(lv, {s.rows, s.cols});
    const Tensor<I64> target = Tensor<I64>::from_vector(labels, {s.rows});
    // The kernel sums in double in another order: 2 ulps of T plus the reordering error.
    double abs_sum = 0;
    for (I64 r = 0; r < s.rows; ++r)
      abs_sum += std::abs(static_cast<double>(
          lv[static_cast<std::size_t>(r * s.cols + labels[static_cast<std::size_t>(r)])]));
    const Buffer<T> dlogp(lv);
    const Buffer<I64> dlabels(labels);
    for (const bool mean : {true, false}) {
      const T want = ember::nll_loss(logp, target, mean ? Reduction::mean : Reduction::sum).item();
      const double scale = mean ? abs_sum / static_cast<double>(s.rows) : abs_sum;
      const double tol =
          (2 * static_cast<double>(std::numeric_limits<T>::epsilon()) +
           4 * static_cast<double>(s.rows) * std::numeric_limits<double>::epsilon()) *
          scale;
      const auto& blocks = s.rows > 10000 ? std::vector<int>{256} : ember::ktest::block_sizes();
      for (const int threads : blocks) {
        CAPTURE(s.rows, s.cols, mean, threads);
        Buffer<T> out(1);
        Buffer<int> flag(std::vector<int>{0});
        ek::nll_forward(dlogp.data(), dlabels.data(), s.rows, s.cols, out.data(), mean, flag.data(),
                        nullptr, threads);
        const T got = out.host()[0];
        CHECK_FALSE(std::isnan(got));
        CHECK(std::abs(static_cast<double>(got) - static_cast<double>(want)) <= tol);
        CHECK(flag.host()[0] == 0);
        if (threads != 256) continue;
        // The same launch again gives the very same bits (fixed-order reduction).
        Buffer<T> again(1);
        ek::nll_forward(dlogp.data(), dlabels.data(), s.rows, s.cols, again.data(), mean, nullptr,
                        nullptr, threads);
        const T a = again.host()[0];
        CHECK(std::memcmp(&a, &got, sizeof(T)) == 0);
      }
    }
  }
}

TEMPLATE_TEST_CASE("nll_backward matches ember::nll_loss's autograd backward", "[kernels][loss]",
                   float, double) {
  using T = TestType;
  const std::vector<Shape2> shapes{{1, 1},  {1, 10},   {7, 1},    {7, 10},
                                   {7, 33}, {7, 2000}, {1000, 10}};
  for (const Shape2 s : shapes) {
    const auto n = static_cast<std::size_t>(s.rows * s.cols);
    const auto seed = static_cast<std::uint64_t>(s.rows * 17 + s.cols);
    const auto lv = ember::ktest::random_vector<T>(n, seed, -6, -0.01);
    const auto labels = random_labels(s.rows, s.cols, seed + 1);
    const Buffer<I64> dlabels(labels);
    for (const bool mean : {true, false}) {
      for (const T upstream : {mean ? T(0.7) : T(-2.5), T(1)}) {
        Tensor<T> logp = Tensor<T>::from_vector(lv, {s.rows, s.cols});
        logp.requires_grad_(true);
        const Tensor<T> loss = ember::nll_loss(logp, Tensor<I64>::from_vector(labels, {s.rows}),
                                               mean ? Reduction::mean : Reduction::sum);
        loss.backward(Tensor<T>::scalar(upstream));
        const std::vector<T> want = logp.grad().to_vector();
        const Buffer<T> dg(std::vector<T>{upstream});
        for (const int threads : ember::ktest::block_sizes()) {
          CAPTURE(s.rows, s.cols, mean, upstream, threads);
          Buffer<T> gx(n);  // poisoned: every element must be written
          ek::nll_backward(dg.data(), dlabels.data(), s.rows, s.cols, gx.data(), mean, nullptr,
                           threads);
          const std::vector<T> got = gx.host();
          CHECK(std::memcmp(got.data(), want.data(), n * sizeof(T)) == 0);  // the same arithmetic
        }
      }
    }
  }
}

TEMPLATE_TEST_CASE("nll_forward flags labels out of range and returns NaN", "[kernels][loss]",
                   float, double) {
  using T = TestType;
  const I64 rows = 300, cols = 10;
  const auto lv =
      ember::ktest::random_vector<T>(static_cast<std::size_t>(rows * cols), 3, -5, -0.1);
  const Buffer<T> dlogp(lv);
  const std::vector<std::pair<I64, I64>> cases{{-1, 0}, {cols, 123}, {I64{1} << 40, rows - 1}};
  for (const auto& [bad, where] : cases) {
    {
      auto labels = random_labels(rows, cols, 4);
      labels[static_cast<std::size_t>(where)] = bad;
      // The CPU op refuses such a target.
      CHECK_THROWS_AS(ember::nll_loss(Tensor<T>::from_vector(lv, {rows, cols}),
                                      Tensor<I64>::from_vector(labels, {rows})),
                      ember::Error);
      const Buffer<I64> dlabels(labels);
      for (const int threads : ember::ktest::block_sizes()) {
        CAPTURE(bad, where, threads);
        Buffer<T> out(std::vector<T>{T(5)});
        Buffer<int> flag(std::vector<int>{0});
        ek::nll_forward(dlogp.data(), dlabels.data(), rows, cols, out.data(), true, flag.data(),
                        nullptr, threads);
        CHECK(std::isnan(out.host()[0]));
        CHECK(flag.host()[0] == 1);
        // Without a flag the loss is still NaN.
        Buffer<T> out2(std::vector<T>{T(5)});
        ek::nll_forward(dlogp.data(), dlabels.data(), rows, cols, out2.data(), false, nullptr,
                        nullptr, threads);
        CHECK(std::isnan(out2.host()[0]));
      }
      // The backward leaves the bad row all zeros and is otherwise unaffected.
      const Buffer<T> dg(std::vector<T>{T(1)});
      Buffer<T> gx(static_cast<std::size_t>(rows * cols));
      ek::nll_backward(dg.data(), dlabels.data(), rows, cols, gx.data(), true, nullptr);
      const auto g = gx.host();
      for (I64 c = 0; c < cols; ++c) CHECK(g[static_cast<std::size_t>(where * cols + c)] == T(0));
    }
  }
  // A set flag stays set after a good batch (the caller clears it).
  const auto good = random_labels(rows, cols, 5);
  const Buffer<I64> dgood(good);
  Buffer<int> flag(std::vector<int>{1});
  Buffer<T> out(1);
  ek::nll_forward(dlogp.data(), dgood.data(), rows, cols, out.data(), true, flag.data(), nullptr);
  CHECK(flag.host()[0] == 1);
  CHECK_FALSE(std::isnan(out.host()[0]));
}

TEST_CASE("nll kernels: empty batches and argument checks", "[kernels][loss]") {
  const Buffer<float> logp(std::vector<float>{-1.0f, -2.0f});
  const Buffer<I64> labels(std::vector<I64>{1});
  Buffer<float> out(1);
  // sum over no rows is 0; mean over no rows is refused, as on the CPU
  ek::nll_forward(logp.data(), labels.data(), 0, 2, out.data(), false, nullptr, nullptr);
  CHECK(out.host()[0] == 0.0f);
  CHECK_THROWS_AS(
      ek::nll_forward(logp.data(), labels.data(), 0, 2, out.data(), true, nullptr, nullptr),
      ember::Error);
  CHECK_THROWS_AS(ember::nll_loss(Tensor<float>::empty({0, 2}), Tensor<I64>::empty({0})),
                  ember::Error);
  CHECK(ember::nll_loss(Tensor<float>::empty({0, 2}), Tensor<I64>::empty({0}), Reduction::sum)
            .item() == 0.0f);
  // a single block whose size is whole warps
  CHECK_THROWS_AS(
      ek::nll_forward(logp.data(), labels.data(), 1, 2, out.data(), true, nullptr, nullptr, 100),
      ember::Error);
}
