#pragma once
// CPU reductions along one dimension of a contiguous x [outer, size, inner]
// (DimReduceParams), threaded over the outputs:
//  * extremum_dim: the max (or min) of each [o, :, i] and its index, a scan in index order
//    with PyTorch's rule (DimReduceParams::beats: the first NaN, else the first extreme);
//  * extremum_dim_backward: the gradient of amax/amin, gy split evenly among the elements
//    equal to the result, (gy / count) * (x == y) as PyTorch computes it;
//  * index_dim_backward: the gradient of max/min with indices, gy put at the index.
// kernels/reduce.cuh runs the same scans, so the two agree exactly.

#include <algorithm>
#include <cstdint>

#include "ember/backend/params.hpp"
#include "ember/core/parallel.hpp"

namespace ember::cpu {

// values [outer, inner] (null for argmax/argmin), indices [outer, inner] <- x [outer, size, inner]
template <class T>
void extremum_dim(const DimReduceParams& p, const T* x, T* values, std::int64_t* indices) {
  parallel_for(0, p.outer, std::max<std::int64_t>(1, 4096 / (p.size * p.inner + 1)),
               [&](std::int64_t lo, std::int64_t hi) {
                 for (std::int64_t o = lo; o < hi; ++o)
                   for (std::int64_t i = 0; i < p.inner; ++i) {
                     const T* col = x + o * p.size * p.inner + i;
                     std::int64_t best_i = 0;
                     T best = col[0];
                     for (std::int64_t s = 1; s < p.size; ++s) {
                       const T v = col[s * p.inner];
                       if (p.beats(v, best)) {
                         best = v;
                         best_i = s;
                       }
                     }
                     if (values != nullptr) values[o * p.inner + i] = best;
                     indices[o * p.inner + i] = best_i;
                   }
               });
}

// gx [outer, size, inner] <- x [outer, size, inner], y = amax/amin of x [outer, inner], gy
// [outer, inner]: gx = (gy / count) * (x == y), count the number of x equal to y in the slice
// (a NaN equal to a NaN y when p.nan_equal). gx is overwritten.
template <class T>
void extremum_dim_backward(const DimReduceParams& p, const T* x, const T* y, const T* gy, T* gx) {
  parallel_for(0, p.outer, std::max<std::int64_t>(1, 4096 / (p.size * p.inner + 1)),
               [&](std::int64_t lo, std::int64_t hi) {
                 for (std::int64_t o = lo; o < hi; ++o)
                   for (std::int64_t i = 0; i < p.inner; ++i) {
                     const std::int64_t base = o * p.size * p.inner + i;
                     const T m = y[o * p.inner + i];
                     const bool nan_m = p.nan_equal && m != m;
                     std::int64_t count = 0;
                     for (std::int64_t s = 0; s < p.size; ++s) {
                       const T v = x[base + s * p.inner];
                       count += (v == m || (nan_m && v != v)) ? 1 : 0;
                     }
                     const T share = gy[o * p.inner + i] / static_cast<T>(count);
                     for (std::int64_t s = 0; s < p.size; ++s) {
                       const T v = x[base + s * p.inner];
                       const bool hit = v == m || (nan_m && v != v);
                       gx[base + s * p.inner] = share * (hit ? T(1) : T(0));
                     }
                   }
               });
}

// gx [outer, size, inner] = gy [outer, inner] at indices [outer, inner], 0 elsewhere (gx is
// overwritten).
template <class T>
void index_dim_backward(const DimReduceParams& p, const T* gy, const std::int64_t* indices, T* gx) {
  parallel_for(0, p.outer, std::max<std::int64_t>(1, 4096 / (p.size * p.inner + 1)),
               [&](std::int64_t lo, std::int64_t hi) {
                 for (std::int64_t o = lo; o < hi; ++o)
                   for (std::int64_t s = 0; s < p.size; ++s)
                     for (std::int64_t i = 0; i < p.inner; ++i)
                       gx[(o * p.size + s) * p.inner + i] =
                           indices[o * p.inner + i] == s ? gy[o * p.inner + i] : T(0);
               });
}

}  // namespace ember::cpu
