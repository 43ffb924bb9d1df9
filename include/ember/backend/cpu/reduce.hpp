#pragma once
// CPU reductions along one dimension of a contiguous x [outer, size, inner]
// (DimReduceParams), threaded over the outputs:
//  * extremum_dim: the max (or min) of each [o, :, i] and its index, a scan in index order
//    with PyTorch's rule (DimReduceParams::beats: the first NaN, else the first extreme);
//  * extremum_dim_backward: the gradient of amax/amin, gy split evenly among the elements
//    equal to the result, (gy / count) * (x == y) as PyTorch computes it;
//  * index_dim_backward: the gradient of max/min with indices, gy put at the index.
// kernels/reduce.cuh runs the same scans, so the two agree exactly. And over whole arrays:
//  * sum_all: the sum of a contiguous array in double, in index order (kernels/reduce.cuh
//    sums in double in a fixed tree: the two agree to double rounding before the cast);
//  * sum_dim: y [outer, inner] = the sum of x [outer, size, inner] along size, in T, in index
//    order (kernels/reduce.cuh reaches the same result through sum_to);
//  * count_correct: the number of rows whose argmax (extremum_dim's rule) is the label.

#include <algorithm>
#include <cstdint>
#include <vector>

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

// out[0] = T(the double sum of x[0, n)) * scale (scale 1: ember::sum).
template <class T>
void sum_all(const T* x, std::int64_t n, T* out, T scale) {
  double acc = 0;
  for (std::int64_t i = 0; i < n; ++i) acc += x[i];
  out[0] = static_cast<T>(acc) * scale;
}

// y [outer, inner] = sum over s of x [outer, size, inner], accumulated in T from 0, s ascending.
// Threaded over the outputs (runs of columns of each o), so that one row of sums (outer 1, as
// linear's bias gradient) is split as well as many.
template <class T>
void sum_dim(const T* x, T* y, std::int64_t outer, std::int64_t size, std::int64_t inner) {
  parallel_for(0, outer * inner, std::max<std::int64_t>(64, 16384 / (size + 1)),
               [=](std::int64_t lo, std::int64_t hi) {
                 for (std::int64_t k = lo; k < hi;) {
                   const std::int64_t o = k / inner, i0 = k - o * inner;
                   const std::int64_t i1 = std::min(inner, i0 + (hi - k));
                   T* __restrict yo = y + o * inner;
                   for (std::int64_t i = i0; i < i1; ++i) yo[i] = T(0);
                   for (std::int64_t s = 0; s < size; ++s) {
                     const T* __restrict xs = x + (o * size + s) * inner;
                     for (std::int64_t i = i0; i < i1; ++i) yo[i] += xs[i];
                   }
                   k += i1 - i0;
                 }
               });
}

// out[0] = the number of rows r of x [rows, cols] whose argmax is labels[r].
template <class T>
void count_correct(const T* x, std::int64_t rows, std::int64_t cols, const std::int64_t* labels,
                   std::int64_t* out) {
  DimReduceParams p;
  p.outer = rows;
  p.size = cols;
  std::vector<std::int64_t> pred(static_cast<std::size_t>(rows));
  if (rows > 0 && cols > 0) extremum_dim<T>(p, x, nullptr, pred.data());
  std::int64_t correct = 0;
  for (std::int64_t r = 0; r < rows && cols > 0; ++r) correct += pred[static_cast<std::size_t>(r)] == labels[r];
  out[0] = correct;
}

}  // namespace ember::cpu
