// Tests for ember/ops/linear.hpp and backend/cpu/gemm.hpp: matmul and linear against the
// naive reference in float and double (error bound stated below), the raw GEMM with every
// transpose and leading dimension, finite-difference gradients, and shape errors.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

#include "ember/backend/cpu/gemm.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/linear.hpp"

#include "support/gradcheck.hpp"
#include "support/inputs.hpp"
#include "support/matchers.hpp"
#include "support/reference.hpp"

namespace {

using ember::Shape;
using ember::Tensor;
using ember::test::check_gradients;
using ember::test::ErrorContains;
using ember::test::random_tensor;
namespace ref = ember::test::reference;
using I64 = std::int64_t;
using TD = Tensor<double>;
using Inputs = std::vector<TD>;

// A sum of k products has rounding error at most ~k u sum|a_i b_i| (u the unit roundoff), so
// fast and reference results are compared relative to the reference computed on |a|, |b|:
//   |fast - ref| <= rel * ref_abs,  rel = 1e-4 (float) or 1e-12 (double).
template <class T>
constexpr double kRel = std::is_same_v<T, float> ? 1e-4 : 1e-12;

template <class T>
void check_close(const std::vector<T>& fast, const std::vector<double>& expected,
                 const std::vector<double>& bound) {
  REQUIRE(fast.size() == expected.size());
  std::size_t bad = 0, first_bad = 0;
  for (std::size_t i = 0; i < fast.size(); ++i) {
    const double err = std::abs(static_cast<double>(fast[i]) - expected[i]);
    if (!(err <= kRel<T> * bound[i] + 1e-30)) {
      if (bad++ == 0) first_bad = i;
    }
  }
  INFO("first mismatch at " << first_bad << ": " << fast[first_bad] << " vs "
                            << expected[first_bad]);
  CHECK(bad == 0);
}

}  // namespace

TEMPLATE_TEST_CASE("matmul matches the naive reference", "[ops][linear]", float, double) {
  const auto [m, k, n] = GENERATE(table<I64, I64, I64>(
      {{1, 1, 1}, {3, 4, 5}, {1, 7, 1}, {5, 1, 3}, {17, 33, 9}, {67, 129, 45}, {130, 70, 260}}));
  CAPTURE(m, k, n);
  const auto a = random_tensor<TestType>({m, k}, 31);
  const auto b = random_tensor<TestType>({k, n}, 32);
  const auto c = ember::matmul(a, b);
  REQUIRE(c.shape() == Shape{m, n});
  const auto expected = ref::matmul(m, k, n, a.to_vector(), b.to_vector());
  const auto bound = ref::matmul(m, k, n, ref::abs_of(a.to_vector()), ref::abs_of(b.to_vector()));
  check_close(c.to_vector(), expected, bound);
  // Non-contiguous operands give the same product.
  const auto at = random_tensor<TestType>({k, m}, 33).t();
  const auto bt = random_tensor<TestType>({n, k}, 34).t();
  const auto ct = ember::matmul(at, bt);
  check_close(ct.to_vector(), ref::matmul(m, k, n, at.to_vector(), bt.to_vector()),
              ref::matmul(m, k, n, ref::abs_of(at.to_vector()), ref::abs_of(bt.to_vector())));
}

TEMPLATE_TEST_CASE("linear matches x W^T + b", "[ops][linear]", float, double) {
  const auto [batch, in, out] =
      GENERATE(table<I64, I64, I64>({{1, 6, 2}, {3, 4, 5}, {33, 65, 17}, {64, 200, 130}}));
  CAPTURE(batch, in, out);
  const auto x = random_tensor<TestType>({batch, in}, 35);
  const auto w = random_tensor<TestType>({out, in}, 36);
  const auto b = random_tensor<TestType>({out}, 37);
  const auto wt = w.t().contiguous().to_vector();  // [in, out]
  auto expected = ref::matmul(batch, in, out, x.to_vector(), wt);
  auto bound = ref::matmul(batch, in, out, ref::abs_of(x.to_vector()), ref::abs_of(wt));
  check_close(ember::linear(x, w).to_vector(), expected, bound);
  const auto bv = b.to_vector();
  for (I64 i = 0; i < batch; ++i)
    for (I64 j = 0; j < out; ++j) {
      expected[static_cast<std::size_t>(i * out + j)] +=
          static_cast<double>(bv[static_cast<std::size_t>(j)]);
      bound[static_cast<std::size_t>(i * out + j)] +=
          std::abs(static_cast<double>(bv[static_cast<std::size_t>(j)]));
    }
  const auto y = ember::linear(x, w, b);
  REQUIRE(y.shape() == Shape{batch, out});
  check_close(y.to_vector(), expected, bound);
}

TEMPLATE_TEST_CASE("The raw GEMM handles transposes, leading dimensions, alpha and beta",
                   "[ops][linear][gemm]", float, double) {
  const bool ta = GENERATE(false, true), tb = GENERATE(false, true);
  const auto [m, n, k] = GENERATE(table<I64, I64, I64>({{3, 5, 4}, {1, 9, 2}, {40, 33, 70}}));
  CAPTURE(ta, tb, m, n, k);
  // Stored A is [M, K] (or [K, M] when transposed) inside rows of lda = cols + 3.
  const I64 a_rows = ta ? k : m, a_cols = ta ? m : k, lda = a_cols + 3;
  const I64 b_rows = tb ? n : k, b_cols = tb ? k : n, ldb = b_cols + 2;
  const I64 ldc = n + 1;
  const auto a_store = random_tensor<TestType>({a_rows, lda}, 38);
  const auto b_store = random_tensor<TestType>({b_rows, ldb}, 39);
  // op(A) and op(B) as plain [M, K] and [K, N] for the reference.
  std::vector<TestType> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(k * n));
  for (I64 i = 0; i < m; ++i)
    for (I64 l = 0; l < k; ++l)
      a[static_cast<std::size_t>(i * k + l)] = ta ? a_store(l, i) : a_store(i, l);
  for (I64 l = 0; l < k; ++l)
    for (I64 j = 0; j < n; ++j)
      b[static_cast<std::size_t>(l * n + j)] = tb ? b_store(j, l) : b_store(l, j);
  const auto expected = ref::matmul(m, k, n, a, b);
  const auto bound = ref::matmul(m, k, n, ref::abs_of(a), ref::abs_of(b));
  ember::cpu::GemmParams p{ta, tb, m, n, k, lda, ldb, ldc};

  // beta = 0: C is overwritten, even where it held NaN (BLAS semantics).
  auto c = Tensor<TestType>::empty({m, ldc});
  ember::test::poison(c);
  ember::cpu::gemm<TestType>(p, TestType(1), a_store.data(), b_store.data(), TestType(0), c.data());
  check_close(c.slice(1, 0, n).to_vector(), expected, bound);
  // The padding column past N is never written.
  for (I64 i = 0; i < m; ++i) CHECK(std::isnan(c(i, n)));

  // alpha = 2, beta = 1 accumulates onto C.
  const auto c0 = random_tensor<TestType>({m, ldc}, 40);
  auto c1 = c0.clone();
  ember::cpu::gemm<TestType>(p, TestType(2), a_store.data(), b_store.data(), TestType(1),
                             c1.data());
  std::vector<double> acc(expected.size()), acc_bound(expected.size());
  for (I64 i = 0; i < m; ++i)
    for (I64 j = 0; j < n; ++j) {
      const auto o = static_cast<std::size_t>(i * n + j);
      acc[o] = 2 * expected[o] + static_cast<double>(c0(i, j));
      acc_bound[o] = 2 * bound[o] + std::abs(static_cast<double>(c0(i, j)));
    }
  check_close(c1.slice(1, 0, n).to_vector(), acc, acc_bound);
}

TEST_CASE("GEMM with K = 0 scales C by beta", "[ops][linear][gemm]") {
  auto c = Tensor<float>::full({2, 3}, 4.0f);
  ember::cpu::GemmParams p{false, false, 2, 3, 0, 0, 3, 3};
  ember::cpu::gemm<float>(p, 1.0f, nullptr, nullptr, 0.5f, c.data());
  CHECK(c.to_vector() == std::vector<float>(6, 2.0f));
  ember::test::poison(c);
  ember::cpu::gemm<float>(p, 1.0f, nullptr, nullptr, 0.0f, c.data());
  CHECK(c.to_vector() == std::vector<float>(6, 0.0f));
  // matmul of [2, 0] by [0, 3] is all zeros.
  CHECK(ember::matmul(Tensor<float>::zeros({2, 0}), Tensor<float>::zeros({0, 3})).to_vector() ==
        std::vector<float>(6, 0.0f));
}

TEST_CASE("matmul and linear gradients match finite differences", "[ops][linear][grad]") {
  const auto [m, k, n] = GENERATE(table<I64, I64, I64>({{3, 4, 5}, {1, 7, 1}, {5, 1, 3}}));
  CAPTURE(m, k, n);
  const TD a = random_tensor<double>({m, k}, 41), b = random_tensor<double>({k, n}, 42);
  check_gradients([](const Inputs& in) { return ember::matmul(in[0], in[1]); }, {a, b});
  // Transposed (non-contiguous) operands.
  check_gradients([](const Inputs& in) { return ember::matmul(in[0].t(), in[1].t()); },
                  {random_tensor<double>({k, m}, 43), random_tensor<double>({n, k}, 44)});
  // Only one operand differentiated.
  ember::test::GradcheckOptions only_b;
  only_b.wrt = {false, true};
  check_gradients([](const Inputs& in) { return ember::matmul(in[0], in[1]); }, {a, b}, only_b);

  // linear: x [m, k], W [n, k], b [n]
  const TD x = random_tensor<double>({m, k}, 45), w = random_tensor<double>({n, k}, 46);
  const TD bias = random_tensor<double>({n}, 47);
  check_gradients([](const Inputs& in) { return ember::linear(in[0], in[1]); }, {x, w});
  check_gradients([](const Inputs& in) { return ember::linear(in[0], in[1], in[2]); },
                  {x, w, bias});
}

TEST_CASE("matmul and linear refuse mismatched shapes", "[ops][linear][error]") {
  const auto a = Tensor<float>::ones({2, 3}), b = Tensor<float>::ones({4, 5});
  CHECK_THROWS_MATCHES(ember::matmul(a, b), ember::Error,
                       ErrorContains({"matmul", "[2, 3]", "[4, 5]"}));
  CHECK_THROWS_AS(ember::matmul(Tensor<float>::ones({4}), Tensor<float>::ones({3, 2})),
                  ember::Error);
  CHECK_THROWS_MATCHES(ember::linear(a, b), ember::Error,
                       ErrorContains({"linear", "[2, 3]", "[4, 5]", "[N, 5]"}));
  CHECK_THROWS_AS(ember::linear(Tensor<float>::ones({3}), Tensor<float>::ones({2, 3})),
                  ember::Error);
  CHECK_THROWS_MATCHES(ember::linear(a, Tensor<float>::ones({4, 3}), Tensor<float>::ones({3})),
                       ember::Error, ErrorContains({"linear", "bias", "[3]", "[4, 3]"}));
}
