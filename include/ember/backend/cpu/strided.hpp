#pragma once
// Walking strided views on the CPU: the index arithmetic of the kernels that read operands
// through StridedView (rank <= kMaxDims), as their CUDA twins in kernels/ do.

#include <array>
#include <cstddef>
#include <cstdint>

#include "ember/backend/params.hpp"
#include "ember/core/parallel.hpp"

namespace ember::cpu {

namespace strided_detail {
// Calls f(i, offsets) for i in [lo, hi): decomposes lo once, then steps an odometer.
template <std::size_t K, class F>
void walk_offsets(const std::array<const StridedView*, K>& views, std::int64_t lo, std::int64_t hi,
                  F& f) {
  const StridedView& s = *views[0];
  std::int64_t idx[kMaxDims] = {};
  std::array<std::int64_t, K> off{};
  for (std::size_t k = 0; k < K; ++k) off[k] = views[k]->offset;
  std::int64_t rem = lo;
  for (int d = s.rank - 1; d >= 0; --d) {
    idx[d] = rem % s.shape[d];
    rem /= s.shape[d];
    for (std::size_t k = 0; k < K; ++k) off[k] += idx[d] * views[k]->strides[d];
  }
  for (std::int64_t i = lo; i < hi; ++i) {
    f(i, off);
    for (int d = s.rank - 1; d >= 0; --d) {
      for (std::size_t k = 0; k < K; ++k) off[k] += views[k]->strides[d];
      if (++idx[d] < s.shape[d]) break;
      for (std::size_t k = 0; k < K; ++k) off[k] -= views[k]->strides[d] * s.shape[d];
      idx[d] = 0;
    }
  }
}
}  // namespace strided_detail

// Calls f(i, offsets) for every element i < n of K views of one shape (views[0]'s), offsets[k]
// being element i's storage index in view k. Threaded in chunks; each chunk decomposes its first
// index once and then steps an odometer.
template <std::size_t K, class F>
void for_each_offsets(const std::array<const StridedView*, K>& views, std::int64_t n, F&& f) {
  if (n <= 0) return;
  parallel_for(0, n, 1 << 14, [&](std::int64_t lo, std::int64_t hi) {
    strided_detail::walk_offsets<K>(views, lo, hi, f);
  });
}

// As for_each_offsets, on the calling thread and in C order (for accumulations whose order
// must not depend on the thread count).
template <std::size_t K, class F>
void for_each_offsets_serial(const std::array<const StridedView*, K>& views, std::int64_t n,
                             F&& f) {
  if (n <= 0) return;
  strided_detail::walk_offsets<K>(views, 0, n, f);
}

}  // namespace ember::cpu
