#pragma once
// Random test inputs (never zeros), reproducible from a seed. Each helper takes its own
// seed so that a test's inputs do not depend on what other tests drew before it.

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"

namespace ember::test {

// Uniform in [lo, hi).
template <class T = double>
ember::Tensor<T> random_tensor(const ember::Shape& shape, std::uint64_t seed, double lo = -1.0,
                               double hi = 1.0) {
  ember::Generator gen(seed);
  return ember::Tensor<T>::uniform(shape, lo, hi, gen);
}

// |v| uniform in [margin, 1] with a random sign: clear of a kink at 0 (relu) by `margin`.
template <class T = double>
ember::Tensor<T> away_from_zero(const ember::Shape& shape, std::uint64_t seed,
                                double margin = 0.05) {
  ember::Generator gen(seed);
  auto t = ember::Tensor<T>::uniform(shape, -1.0, 1.0, gen);
  T* p = t.data();
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    const double v = static_cast<double>(p[i]);
    const double mag = margin + (1.0 - margin) * (v < 0 ? -v : v);
    p[i] = static_cast<T>(v < 0 ? -mag : mag);
  }
  return t;
}

// A random permutation of {0, spacing, 2 spacing, ...} shifted by -n spacing / 2: all
// values distinct by at least `spacing` (no ties for max_pool2d to break).
template <class T = double>
ember::Tensor<T> distinct_values(const ember::Shape& shape, std::uint64_t seed,
                                 double spacing = 0.01) {
  auto t = ember::Tensor<T>::empty(shape);
  std::vector<std::int64_t> order(static_cast<std::size_t>(t.numel()));
  std::iota(order.begin(), order.end(), 0);
  ember::Generator gen(seed);
  for (std::size_t i = order.size(); i > 1; --i)  // Fisher-Yates
    std::swap(order[i - 1], order[static_cast<std::size_t>(gen.below(i))]);
  const double shift = static_cast<double>(t.numel()) * spacing / 2;
  for (std::size_t i = 0; i < order.size(); ++i)
    t.data()[i] = static_cast<T>(static_cast<double>(order[i]) * spacing - shift);
  return t;
}

// Values k / 4 for random integers k in [-levels, levels]: many exact ties and exact zeros.
template <class T = double>
ember::Tensor<T> quantized(const ember::Shape& shape, std::uint64_t seed, int levels = 4) {
  ember::Generator gen(seed);
  auto t = ember::Tensor<T>::empty(shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    const int k = static_cast<int>(gen.below(static_cast<std::uint64_t>(2 * levels + 1))) - levels;
    t.data()[i] = static_cast<T>(k) / T(4);
  }
  return t;
}

// Class labels in [0, classes).
inline ember::Tensor<std::int64_t> random_labels(std::int64_t n, std::int64_t classes,
                                                 std::uint64_t seed) {
  ember::Generator gen(seed);
  auto t = ember::Tensor<std::int64_t>::empty({n});
  for (std::int64_t i = 0; i < n; ++i)
    t.data()[i] = static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(classes)));
  return t;
}

}  // namespace ember::test
