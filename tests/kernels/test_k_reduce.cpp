// kernels/reduce.cuh against ember's CPU ops: sum / mean of everything, argmax along rows (ties,
// NaN; extremum_dim), count_correct, the [outer, mid, inner] -> [mid] sums, and max / min along a
// dimension with their backward (against backend/cpu/reduce.hpp, exactly). Every block size, odd
// sizes, poisoned outputs and workspaces, repeated runs bit-identical.
#include "support/kernel_test.hpp"

#include <catch2/catch.hpp>

#include <ember/kernels/reduce.cuh>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "ember/backend/cpu/reduce.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/reduce.hpp"

namespace ek = ember::kernels;
namespace kt = ember::ktest;
using ember::Shape;
using ember::Tensor;
using kt::Buffer;
using kt::random_tensor;

namespace {

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <class T>
void require_close(const std::vector<T>& got, const std::vector<T>& want, double tol) {
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool ok = std::abs(static_cast<double>(got[i]) - static_cast<double>(want[i])) <= tol;
    if (!ok && bad++ == 0) first = i;
  }
  INFO(bad << " elements off by more than " << tol << "; first at " << first << ": got "
            << (got.empty() ? 0.0 : static_cast<double>(got[first])) << ", want "
            << (want.empty() ? 0.0 : static_cast<double>(want[first])));
  REQUIRE(bad == 0);
}

}  // namespace

TEMPLATE_TEST_CASE("sum_all gives ember::sum and ember::mean", "[kernels][reduce]", float, double) {
  using T = TestType;
  std::uint64_t seed = 10;
  for (const std::int64_t n : {0, 1, 7, 33, 1000, 4097, 20000})
    for (const std::int64_t offset : {0, 1}) {  // offset 1: misaligned, no vector loads
      const Tensor<T> all = random_tensor<T>({n + offset}, seed++, -1, 3);
      const Tensor<T> x = all.slice(0, offset, offset + n);
      const T want_sum = ember::sum(x).item();
      double l1 = 0;
      for (const T v : x.to_vector()) l1 += std::abs(static_cast<double>(v));
      const double tol = 4 * std::numeric_limits<T>::epsilon() * std::sqrt(static_cast<double>(n) + 1) * l1;
      Buffer<T> dx(all.to_vector());
      for (const int threads : kt::block_sizes()) {
        INFO("n " << n << ", offset " << offset << ", " << threads << " threads");
        Buffer<T> ws(ek::reduce_workspace_elems<T>(n)), out(1);
        ek::sum_all(dx.data() + offset, n, out.data(), T(1), ws.data(), nullptr, threads);
        const T got = out.host()[0];
        CHECK(std::abs(static_cast<double>(got) - static_cast<double>(want_sum)) <= tol);
        if (threads == 256) {  // deterministic: a second run gives the same bits
          Buffer<T> again(1);
          ek::sum_all(dx.data() + offset, n, again.data(), T(1), ws.data(), nullptr, threads);
          CHECK(same_bits(again.host()[0], got));
        }
        if (n > 0 && threads == 64) {
          const T want_mean = ember::mean(x).item();
          Buffer<T> mean(1);
          ek::sum_all(dx.data() + offset, n, mean.data(), T(1) / static_cast<T>(n), ws.data(),
                      nullptr, threads);
          CHECK(std::abs(static_cast<double>(mean.host()[0]) - static_cast<double>(want_mean)) <=
                tol / static_cast<double>(n) +
                    std::numeric_limits<T>::epsilon() * std::abs(static_cast<double>(want_mean)));
        }
      }
    }
}

TEMPLATE_TEST_CASE("sum_all propagates infinities and NaN", "[kernels][reduce]", float, double) {
  using T = TestType;
  const std::int64_t n = 20000;
  for (const T special : {std::numeric_limits<T>::infinity(), -std::numeric_limits<T>::infinity(),
                          std::numeric_limits<T>::quiet_NaN()}) {
    Tensor<T> x = random_tensor<T>({n}, 77);
    x.data()[12345] = special;
    const T want = ember::sum(x).item();
    Buffer<T> dx(x.to_vector()), ws(ek::reduce_workspace_elems<T>(n)), out(1);
    ek::sum_all(dx.data(), n, out.data(), T(1), ws.data(), nullptr, 256);
    const T got = out.host()[0];
    if (std::isnan(want)) CHECK(std::isnan(got));
    else CHECK(got == want);
  }
}

namespace {

template <class T>
void check_argmax(const Tensor<T>& x) {
  const std::int64_t rows = x.size(0), cols = x.size(1);
  const std::vector<std::int64_t> want = ember::argmax(x, 1).to_vector();
  // labels: the CPU argmax on even rows (hits), something else on odd ones
  std::vector<std::int64_t> labels(static_cast<std::size_t>(rows));
  for (std::size_t r = 0; r < labels.size(); ++r)
    labels[r] = r % 2 == 0 ? want[r] : (want[r] + 1) % cols + (r % 3 == 1 ? cols : 0);
  const std::int64_t want_correct =
      ember::count_correct(x, Tensor<std::int64_t>::from_vector(labels, {rows}));
  Buffer<T> dx(x.to_vector());
  Buffer<std::int64_t> dl(labels);
  for (const int threads : kt::block_sizes()) {
    INFO("argmax of " << ember::shape_str(x.shape()) << ", " << threads << " threads");
    Buffer<std::int64_t> out(static_cast<std::size_t>(rows)), correct(1);
    ek::extremum_dim(ember::DimReduceParams{rows, cols, 1}, dx.data(), static_cast<T*>(nullptr),
                     out.data(), nullptr, threads);
    CHECK(out.host() == want);
    ek::count_correct(dx.data(), rows, cols, dl.data(), correct.data(), nullptr, threads);
    CHECK(correct.host()[0] == want_correct);
  }
}

}  // namespace

TEMPLATE_TEST_CASE(
    "extremum_dim's argmax and count_correct follow ember::argmax's first-maximum rule",
    "[kernels][reduce]", float, double) {
  using T = TestType;
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  std::uint64_t seed = 20;
  const std::vector<Shape> shapes{{1, 1}, {7, 1}, {5, 10}, {9, 7}, {4, 100}, {2, 1000}, {20, 33}, {0, 5}};
  for (const Shape& s : shapes) {
    check_argmax(random_tensor<T>(s, seed++));
    // few distinct values: ties everywhere (the first maximum wins)
    Tensor<T> ties = random_tensor<T>(s, seed++, 0, 3);
    for (std::int64_t i = 0; i < ties.numel(); ++i) ties.data()[i] = std::floor(ties.data()[i]);
    check_argmax(ties);
  }
  // NaN wins (the first one), -inf / inf, a constant row, -0 against +0
  Tensor<T> special = random_tensor<T>({8, 40}, seed++);  // 40 columns: lanes hold one or two each
  special(0, 17) = nan;
  special(1, 3) = nan;
  special(1, 30) = nan;
  special(2, 39) = nan;
  special(2, 0) = inf;
  for (std::int64_t c = 0; c < 40; ++c) special(3, c) = -inf;
  for (std::int64_t c = 0; c < 40; ++c) special(4, c) = T(0.5);
  special(5, 35) = inf;
  special(5, 36) = inf;
  for (std::int64_t c = 0; c < 40; ++c) special(6, c) = c % 2 == 0 ? -T(0) : T(0);
  special(7, 0) = nan;
  check_argmax(special);
}

namespace {

template <class T, class Acc>
void check_sum_outer_inner(std::int64_t outer, std::int64_t mid, std::int64_t inner, std::uint64_t seed) {
  const Tensor<T> x = random_tensor<T>({outer, mid, inner}, seed);
  const std::vector<T> want = ember::sum_to(x, {1, mid, 1}).to_vector();
  double max_abs = 0;
  for (const T v : x.to_vector()) max_abs = std::max(max_abs, std::abs(static_cast<double>(v)));
  const double tol = 2 * std::numeric_limits<T>::epsilon() * static_cast<double>(outer * inner) * max_abs;
  Buffer<T> dx(x.to_vector());
  for (const int threads : kt::block_sizes()) {
    INFO("[" << outer << ", " << mid << ", " << inner << "], " << threads << " threads, "
             << sizeof(Acc) << "-byte accumulator");
    Buffer<T> out(static_cast<std::size_t>(mid));
    ek::sum_outer_inner<T, Acc>(dx.data(), outer, mid, inner, out.data(), nullptr, threads);
    const std::vector<T> got = out.host();
    require_close(got, want, tol);
    if (threads == 128) {  // deterministic: a second run gives the same bits
      Buffer<T> again(static_cast<std::size_t>(mid));
      ek::sum_outer_inner<T, Acc>(dx.data(), outer, mid, inner, again.data(), nullptr, threads);
      const std::vector<T> got2 = again.host();
      std::size_t differ = 0;
      for (std::size_t k = 0; k < got.size(); ++k) differ += same_bits(got[k], got2[k]) ? 0 : 1;
      REQUIRE(differ == 0);
    }
  }
}

}  // namespace

TEMPLATE_TEST_CASE("sum_outer_inner sums [outer, mid, inner] down to [mid]", "[kernels][reduce]",
                   float, double) {
  using T = TestType;
  struct Case {
    std::int64_t o, m, i;
  };
  const std::vector<Case> cases{{1, 7, 1},   {5, 6, 3},  {64, 10, 1}, {1000, 3, 1}, {40, 70, 1},
                                {4, 6, 49},  {1, 5, 100}, {3, 2, 1000}, {0, 5, 3},   {3, 5, 0},
                                {2, 0, 3},   {33, 1, 1}, {1, 1, 33}};
  std::uint64_t seed = 30;
  for (const Case& c : cases) {
    check_sum_outer_inner<T, T>(c.o, c.m, c.i, seed++);
    check_sum_outer_inner<T, double>(c.o, c.m, c.i, seed++);
  }
}

namespace {

// Equal values, NaN matching NaN (a poisoned NaN left in place of a NaN result would pass, but
// not in place of a number; the indices are poisoned with a non-index pattern).
template <class T>
void require_same(const std::vector<T>& got, const std::vector<T>& want, const char* what) {
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool ok = got[i] == want[i] || (got[i] != got[i] && want[i] != want[i]);
    if (!ok && bad++ == 0) first = i;
  }
  INFO(what << ": " << bad << " elements differ; first at " << first);
  REQUIRE(bad == 0);
}

template <class T>
void check_extremum_dim(const Tensor<T>& x, std::int64_t outer, std::int64_t size,
                        std::int64_t inner, std::uint64_t seed) {
  const std::size_t n_out = static_cast<std::size_t>(outer * inner),
                    n_in = static_cast<std::size_t>(x.numel());
  const std::vector<T> gy = random_tensor<T>({outer * inner}, seed).to_vector();
  for (const bool take_min : {false, true}) {
    ember::DimReduceParams p{outer, size, inner, take_min, false};
    std::vector<T> want_v(n_out), want_gx(n_in), want_gi(n_in);
    std::vector<std::int64_t> want_i(n_out);
    ember::cpu::extremum_dim(p, x.data(), want_v.data(), want_i.data());
    ember::cpu::index_dim_backward(p, gy.data(), want_i.data(), want_gi.data());
    Buffer<T> dx(x.to_vector()), dgy(gy);
    for (const int threads : kt::block_sizes()) {
      INFO((take_min ? "min" : "max") << " over [" << outer << ", " << size << ", " << inner
                                      << "], " << threads << " threads");
      Buffer<T> v(n_out);
      Buffer<std::int64_t> idx(n_out), idx_only(n_out);
      ek::extremum_dim(p, dx.data(), v.data(), idx.data(), nullptr, threads);
      ek::extremum_dim(p, dx.data(), static_cast<T*>(nullptr), idx_only.data(), nullptr, threads);
      require_same(v.host(), want_v, "values");
      CHECK(idx.host() == want_i);
      CHECK(idx_only.host() == want_i);
      Buffer<std::int64_t> di(want_i);
      Buffer<T> gi(n_in);
      ek::index_dim_backward(p, dgy.data(), di.data(), gi.data(), nullptr, threads);
      require_same(gi.host(), want_gi, "max/min backward");
      for (const bool nan_equal : {false, true}) {
        p.nan_equal = nan_equal;
        ember::cpu::extremum_dim_backward(p, x.data(), want_v.data(), gy.data(), want_gx.data());
        Buffer<T> dv(want_v), gx(n_in);
        ek::extremum_dim_backward(p, dx.data(), dv.data(), dgy.data(), gx.data(), nullptr, threads);
        require_same(gx.host(), want_gx, nan_equal ? "max() backward" : "amax backward");
      }
      p.nan_equal = false;
    }
  }
}

}  // namespace

TEMPLATE_TEST_CASE("extremum_dim and its backward run cpu::extremum_dim's scans exactly",
                   "[kernels][reduce][max]", float, double) {
  using T = TestType;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  std::uint64_t seed = 40;
  struct Dims {
    std::int64_t outer, size, inner;
  };
  for (const Dims d :
       {Dims{1, 1, 1}, Dims{7, 1, 3}, Dims{5, 10, 1}, Dims{3, 100, 1}, Dims{2, 1000, 1},
        Dims{4, 33, 5}, Dims{1, 37, 64}, Dims{9, 7, 33}, Dims{0, 4, 3}}) {
    const Tensor<T> x = random_tensor<T>({d.outer, d.size, d.inner}, seed++);
    check_extremum_dim(x, d.outer, d.size, d.inner, seed++);
    // few distinct values (ties everywhere), some NaNs, a -0 among the zeros
    Tensor<T> ties = random_tensor<T>({d.outer, d.size, d.inner}, seed++, -2, 2);
    for (std::int64_t i = 0; i < ties.numel(); ++i) {
      T& v = ties.data()[i];
      v = std::floor(v);
      if (v == T(0) && i % 2 == 1) v = -T(0);
      if (i % 29 == 11) v = nan;
    }
    check_extremum_dim(ties, d.outer, d.size, d.inner, seed++);
  }
}
