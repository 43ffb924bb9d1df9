#pragma once
// Reductions: sum and mean (over everything or one dimension); max/min along a dimension with
// their indices, amax/amin, argmax/argmin and max/min of everything (PyTorch's: NaN propagates,
// the first index on ties; CPU kernel backend/cpu/reduce.hpp, CUDA kernel kernels/reduce.cuh);
// var/std with PyTorch's correction (compositions of mean, sub, mul, sum and pow, no kernel of
// their own); and the count of correct predictions that evaluation needs.

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <vector>

#include "ember/backend/cpu/reduce.hpp"
#include "ember/backend/dispatch.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"

namespace ember {

namespace op {
/// out[0] = scale * sum(x[0..n))
struct SumAll {
  static constexpr const char* name = "sum";
  template <class T>
  static constexpr auto cpu = &ember::cpu::sum_all<T>;
};
/// y [outer, inner] = sum of x [outer, size, inner] along size
struct SumDim {
  static constexpr const char* name = "sum along a dim";
  template <class T>
  static constexpr auto cpu = &ember::cpu::sum_dim<T>;
};
/// values, indices [outer, inner] = max (p.take_min: min) of x [outer, size, inner] along size
/// (values may be null: argmax/argmin)
struct ExtremumDim {
  static constexpr const char* name = "max/min along a dimension";
  template <class T>
  static constexpr auto cpu = &ember::cpu::extremum_dim<T>;
};
/// gx [outer, size, inner] = amax/amin's gradient from x, y and gy [outer, inner]
struct ExtremumDimBackward {
  static constexpr const char* name = "amax/amin backward";
  template <class T>
  static constexpr auto cpu = &ember::cpu::extremum_dim_backward<T>;
};
/// gx [outer, size, inner] = gy [outer, inner] at indices [outer, inner], else 0
struct IndexDimBackward {
  static constexpr const char* name = "max/min backward";
  template <class T>
  static constexpr auto cpu = &ember::cpu::index_dim_backward<T>;
};
/// out[0] = number of rows of x (rows, cols) whose argmax is labels[row]
struct CountCorrect {
  static constexpr const char* name = "count_correct";
  template <class T>
  static constexpr auto cpu = &ember::cpu::count_correct<T>;
};
}  // namespace op

namespace detail {
// Views a contiguous tensor as [outer, size, inner] around dimension d.
struct DimSplit {
  std::int64_t outer = 1, size = 1, inner = 1;
};
inline DimSplit split_at(const Shape& s, std::int64_t d) {
  DimSplit r;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(s.size()); ++i) {
    if (i < d) r.outer *= s[static_cast<std::size_t>(i)];
    else if (i == d) r.size = s[static_cast<std::size_t>(i)];
    else r.inner *= s[static_cast<std::size_t>(i)];
  }
  return r;
}
inline Shape reduced_shape(Shape s, std::int64_t d, bool keepdim) {
  if (s.empty()) return s;  // a 0-d tensor reduces over its one pseudo-dimension to itself
  if (keepdim) s[static_cast<std::size_t>(d)] = 1;
  else s.erase(s.begin() + d);
  return s;
}
}  // namespace detail

/// Sum of all elements (a scalar), accumulated in double.
template <Real T>
Tensor<T> sum(const Tensor<T>& a) {
  const Tensor<T> ac = a.contiguous();
  Tensor<T> out = Tensor<T>::zeros({}, a.device());
  if (a.numel() > 0) backend::run<op::SumAll, T>(a.device(), ac.data(), ac.numel(), out.data(), T(1));
  autograd::record(out, "SumBackward0", {a}, [s = a.shape()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{broadcast_to(g, s)};
  });
  return out;
}

/// The sum along `dim` (torch.sum(a, dim, keepdim)).
template <Real T>
Tensor<T> sum(const Tensor<T>& a, std::int64_t dim, bool keepdim = false) {
  const std::int64_t d = wrap_dim(dim, a.dim());
  const auto sp = detail::split_at(a.shape(), d);
  const Tensor<T> ac = a.contiguous();
  Tensor<T> out = Tensor<T>::zeros(detail::reduced_shape(a.shape(), d, keepdim), a.device());
  if (out.numel() > 0 && sp.size > 0)  // an empty dim sums to the zeros
    backend::run<op::SumDim, T>(a.device(), ac.data(), out.data(), sp.outer, sp.size, sp.inner);
  autograd::record(out, "SumBackward1", {a}, [s = a.shape(), d](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{broadcast_to(g.reshape(detail::reduced_shape(s, d, true)), s)};
  });
  return out;
}

/// The mean of every element, a 0-d tensor (torch.mean).
template <Real T>
Tensor<T> mean(const Tensor<T>& a) {
  EMBER_CHECK(a.numel() > 0, "mean() of an empty tensor");
  return mul_scalar(sum(a), T(1) / static_cast<T>(a.numel()));
}

/// The mean along `dim` (torch.mean(a, dim, keepdim)).
template <Real T>
Tensor<T> mean(const Tensor<T>& a, std::int64_t dim, bool keepdim = false) {
  const std::int64_t n = a.dim() == 0 ? 1 : a.size(dim);  // sum() checks dim
  EMBER_CHECK(n > 0, "mean() over an empty dimension");
  return mul_scalar(sum(a, dim, keepdim), T(1) / static_cast<T>(n));
}

namespace detail {
// `dim` wrapped for a tensor of rank `rank` (a 0-d tensor has one pseudo-dimension), or an error
// naming the op.
inline std::int64_t reduce_dim(const char* op, std::int64_t dim, std::int64_t rank) {
  const std::int64_t r = rank == 0 ? 1 : rank;
  EMBER_CHECK(dim >= -r && dim < r, op, "(): dimension ", dim,
              " out of range for a tensor of rank ", rank, " (expected in [", -r, ", ", r - 1,
              "])");
  return dim < 0 ? dim + r : dim;
}

// The [outer, size, inner] view of `s` around dimension d (wrapped), refusing an empty one.
inline DimReduceParams dim_reduce_params(const char* op, const Shape& s, std::int64_t d,
                                         bool take_min) {
  const DimSplit sp = split_at(s, d);
  EMBER_CHECK(sp.size > 0, op, "(): reduction dimension ", d, " of input ", shape_str(s),
              " is empty (expected a non-zero size)");
  return DimReduceParams{sp.outer, sp.size, sp.inner, take_min, false};
}

// The distinct wrapped dimensions of `dims` in increasing order; every dimension when empty.
inline std::vector<std::int64_t> reduce_dims(const char* op, const std::vector<std::int64_t>& dims,
                                             std::int64_t rank) {
  std::vector<std::int64_t> out;
  if (dims.empty()) {
    for (std::int64_t d = 0; d < std::max<std::int64_t>(rank, 1); ++d) out.push_back(d);
    return out;
  }
  for (const std::int64_t dim : dims) {
    const std::int64_t d = reduce_dim(op, dim, rank);
    EMBER_CHECK(std::find(out.begin(), out.end(), d) == out.end(), op, "(): dimension ", d,
                " appears more than once in the list of dimensions");
    out.push_back(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// `s` with the sorted dimensions `dims` reduced: kept as 1 or removed.
inline Shape reduced_shape(const Shape& s, const std::vector<std::int64_t>& dims, bool keepdim) {
  if (s.empty()) return s;
  Shape r;
  for (std::int64_t d = 0; d < static_cast<std::int64_t>(s.size()); ++d) {
    const bool reduced = std::find(dims.begin(), dims.end(), d) != dims.end();
    if (!reduced)
      r.push_back(s[static_cast<std::size_t>(d)]);
    else if (keepdim)
      r.push_back(1);
  }
  return r;
}

// The index of the max (take_min: min) of `a` along dim, without values or gradient.
template <Element T>
Tensor<std::int64_t> arg_extremum(const char* op, const Tensor<T>& a, std::int64_t dim,
                                  bool keepdim, bool take_min) {
  const std::int64_t d = reduce_dim(op, dim, a.dim());
  const DimReduceParams p = dim_reduce_params(op, a.shape(), d, take_min);
  if constexpr (!Real<T>) {
    EMBER_CHECK(a.device().is_cpu(), op, " of an integer tensor on ", a.device().str(),
                " is not supported; use .cpu()");
  }
  const Tensor<T> ac = a.contiguous();
  auto out = Tensor<std::int64_t>::empty(reduced_shape(a.shape(), d, keepdim), a.device());
  if (out.numel() > 0)
    backend::run<op::ExtremumDim, T>(a.device(), p, ac.data(), static_cast<T*>(nullptr),
                                     out.data());
  return out;
}

// amax/amin of `a` along one wrapped dimension d.
template <Real T>
Tensor<T> extremum_one_dim(const char* op, const Tensor<T>& a, std::int64_t d, bool keepdim,
                           bool take_min) {
  const DimReduceParams p = dim_reduce_params(op, a.shape(), d, take_min);
  const Tensor<T> ac = a.contiguous();
  const Device dev = a.device();
  Tensor<T> y = Tensor<T>::empty(reduced_shape(a.shape(), d, true), dev);
  auto idx = Tensor<std::int64_t>::empty(y.shape(), dev);
  if (y.numel() > 0) backend::run<op::ExtremumDim, T>(dev, p, ac.data(), y.data(), idx.data());
  autograd::record(y, take_min ? "AminBackward0" : "AmaxBackward0", {a}, autograd::saved(a),
                   [p, x = ac.detach(), yv = y.detach(), dev](const Tensor<T>& g) {
                     const Tensor<T> gc = g.contiguous();
                     Tensor<T> gx = Tensor<T>::empty(x.shape(), dev);
                     if (gx.numel() > 0)
                       backend::run<op::ExtremumDimBackward, T>(dev, p, x.data(), yv.data(),
                                                                gc.data(), gx.data());
                     return std::vector<Tensor<T>>{gx};
                   });
  return keepdim ? y : y.reshape(reduced_shape(a.shape(), d, false));
}

// amax/amin over the dimensions `dims` (empty: all): the reduced dimensions are moved last and
// flattened into one, so that ties anywhere in a reduced slice share its gradient evenly.
template <Real T>
Tensor<T> extremum_dims(const char* op, const Tensor<T>& a, const std::vector<std::int64_t>& dims,
                        bool keepdim, bool take_min) {
  const std::vector<std::int64_t> ds = reduce_dims(op, dims, a.dim());
  if (ds.size() == 1) return extremum_one_dim(op, a, ds[0], keepdim, take_min);
  Shape perm, kept;
  std::int64_t reduced = 1;
  for (std::int64_t d = 0; d < a.dim(); ++d)
    if (std::find(ds.begin(), ds.end(), d) == ds.end()) {
      perm.push_back(d);
      kept.push_back(a.size(d));
    }
  for (const std::int64_t d : ds) {
    perm.push_back(d);
    EMBER_CHECK(a.size(d) > 0, op, "(): reduction dimension ", d, " of input ",
                shape_str(a.shape()), " is empty (expected a non-zero size)");
    reduced *= a.size(d);
  }
  Shape flat = kept;
  flat.push_back(reduced);
  const Tensor<T> y = extremum_one_dim(op, a.permute(perm).reshape(flat),
                                       static_cast<std::int64_t>(kept.size()), false, take_min);
  return y.reshape(reduced_shape(a.shape(), ds, keepdim));
}

// max/min of every element (a 0-d tensor); the gradient is split evenly among the elements
// equal to it, or among the NaNs when it is NaN (PyTorch's evenly_distribute_backward).
template <Real T>
Tensor<T> extremum_all(const char* op, const Tensor<T>& a, bool take_min) {
  EMBER_CHECK(a.numel() > 0, op, "(): the input ", shape_str(a.shape()),
              " is empty: give the dimension to reduce with the `dim` argument");
  const DimReduceParams p{1, a.numel(), 1, take_min, true};
  const Tensor<T> ac = a.contiguous();
  const Device dev = a.device();
  Tensor<T> y = Tensor<T>::empty({}, dev);
  auto idx = Tensor<std::int64_t>::empty({}, dev);
  backend::run<op::ExtremumDim, T>(dev, p, ac.data(), y.data(), idx.data());
  autograd::record(y, take_min ? "MinBackward1" : "MaxBackward1", {a}, autograd::saved(a),
                   [p, x = ac.detach(), yv = y.detach(), dev](const Tensor<T>& g) {
                     const Tensor<T> gc = g.contiguous();
                     Tensor<T> gx = Tensor<T>::empty(x.shape(), dev);
                     backend::run<op::ExtremumDimBackward, T>(dev, p, x.data(), yv.data(),
                                                              gc.data(), gx.data());
                     return std::vector<Tensor<T>>{gx};
                   });
  return y;
}

// A dimension argument: any integer type (`max(x, 1)`), so that a braced list `{0, 2}` picks
// the overloads taking several dimensions.
template <class D>
concept DimIndex = std::integral<D> && !std::same_as<D, bool>;
}  // namespace detail

/// PyTorch's torch.return_types.max / min: the values and their int64 indices.
template <Real T>
struct ValuesIndices {
  /// The extreme values.
  Tensor<T> values;
  /// Where they are along the dimension (the first, for ties).
  Tensor<std::int64_t> indices;
};

namespace detail {
template <Real T>
ValuesIndices<T> extremum_with_indices(const char* op, const Tensor<T>& a, std::int64_t dim,
                                       bool keepdim, bool take_min) {
  const std::int64_t d = reduce_dim(op, dim, a.dim());
  const DimReduceParams p = dim_reduce_params(op, a.shape(), d, take_min);
  const Tensor<T> ac = a.contiguous();
  const Device dev = a.device();
  Tensor<T> values = Tensor<T>::empty(reduced_shape(a.shape(), d, true), dev);
  auto indices = Tensor<std::int64_t>::empty(values.shape(), dev);
  if (values.numel() > 0)
    backend::run<op::ExtremumDim, T>(dev, p, ac.data(), values.data(), indices.data());
  autograd::record(values, take_min ? "MinBackward0" : "MaxBackward0", {a},
                   [p, indices, in_shape = a.shape(), dev](const Tensor<T>& g) {
                     const Tensor<T> gc = g.contiguous();
                     Tensor<T> gx = Tensor<T>::empty(in_shape, dev);
                     if (gx.numel() > 0)
                       backend::run<op::IndexDimBackward, T>(dev, p, gc.data(), indices.data(),
                                                             gx.data());
                     return std::vector<Tensor<T>>{gx};
                   });
  if (keepdim) return {values, indices};
  const Shape out = reduced_shape(a.shape(), d, false);
  return {values.reshape(out), indices.reshape(out)};
}
}  // namespace detail

/// torch.max(input, dim, keepdim): the largest element along `dim` and its index (the first on
/// ties; the first NaN if there is one, whose value is NaN). The gradient goes to that index.
template <Real T>
ValuesIndices<T> max(const Tensor<T>& a, std::int64_t dim, bool keepdim = false) {
  return detail::extremum_with_indices("max", a, dim, keepdim, false);
}
/// torch.min(input, dim, keepdim), as max.
template <Real T>
ValuesIndices<T> min(const Tensor<T>& a, std::int64_t dim, bool keepdim = false) {
  return detail::extremum_with_indices("min", a, dim, keepdim, true);
}

/// torch.max(input) / torch.min(input): a 0-d tensor, NaN if any element is; the gradient is
/// split evenly among the elements equal to the result (the NaNs when it is NaN).
template <Real T>
Tensor<T> max(const Tensor<T>& a) {
  return detail::extremum_all("max", a, false);
}
/// The smallest element, a 0-d tensor (torch.min(a)).
template <Real T>
Tensor<T> min(const Tensor<T>& a) {
  return detail::extremum_all("min", a, true);
}

/// torch.amax(input, dim, keepdim) / amin: the values only, over one dimension, a list of them,
/// or every dimension (an empty list, or none). NaN propagates. The gradient is split evenly
/// among the elements of a reduced slice equal to its result, (g / count) * (x == result), as
/// PyTorch's; a NaN result gets NaN gradients.
template <Real T>
Tensor<T> amax(const Tensor<T>& a, const std::vector<std::int64_t>& dims, bool keepdim = false) {
  return detail::extremum_dims("amax", a, dims, keepdim, false);
}
/// The largest values along one dimension (torch.amax(a, dim)).
template <Real T, detail::DimIndex D>
Tensor<T> amax(const Tensor<T>& a, D dim, bool keepdim = false) {
  return detail::extremum_dims("amax", a, {static_cast<std::int64_t>(dim)}, keepdim, false);
}
/// The largest element, a 0-d tensor (torch.amax(a)).
template <Real T>
Tensor<T> amax(const Tensor<T>& a) {
  return detail::extremum_dims("amax", a, {}, false, false);
}
/// The smallest values over several dimensions (torch.amin(a, dims)).
template <Real T>
Tensor<T> amin(const Tensor<T>& a, const std::vector<std::int64_t>& dims, bool keepdim = false) {
  return detail::extremum_dims("amin", a, dims, keepdim, true);
}
/// The smallest values along one dimension (torch.amin(a, dim)).
template <Real T, detail::DimIndex D>
Tensor<T> amin(const Tensor<T>& a, D dim, bool keepdim = false) {
  return detail::extremum_dims("amin", a, {static_cast<std::int64_t>(dim)}, keepdim, true);
}
/// The smallest element, a 0-d tensor (torch.amin(a)).
template <Real T>
Tensor<T> amin(const Tensor<T>& a) {
  return detail::extremum_dims("amin", a, {}, false, true);
}

/// Index of the largest element along `dim` (the first one on ties; the first NaN wins), as
/// int64. Integer tensors on the CPU only.
template <Element T>
Tensor<std::int64_t> argmax(const Tensor<T>& a, std::int64_t dim, bool keepdim = false) {
  return detail::arg_extremum("argmax", a, dim, keepdim, false);
}
/// Index of the smallest element along `dim` (the first one on ties; the first NaN wins).
template <Element T>
Tensor<std::int64_t> argmin(const Tensor<T>& a, std::int64_t dim, bool keepdim = false) {
  return detail::arg_extremum("argmin", a, dim, keepdim, true);
}
/// torch.argmax(input) / argmin(input): the index into the flattened input (a 0-d tensor).
template <Element T>
Tensor<std::int64_t> argmax(const Tensor<T>& a) {
  return detail::arg_extremum("argmax", a.reshape({-1}), 0, false, false);
}
/// The flat index of the smallest element (torch.argmin(a)).
template <Element T>
Tensor<std::int64_t> argmin(const Tensor<T>& a) {
  return detail::arg_extremum("argmin", a.reshape({-1}), 0, false, true);
}

/// torch.var(input, dim, correction, keepdim): sum((x - mean)^2) / max(0, N - correction) over
/// the dimensions `dims` (empty: all), N the number of elements reduced; correction 1 is the
/// unbiased estimate, 0 the population variance. N <= correction gives inf, or NaN (0 / 0), as
/// PyTorch's. A composition of mean, sub, mul, sum and mul_scalar (the backward is theirs).
template <Real T>
Tensor<T> var(const Tensor<T>& x, const std::vector<std::int64_t>& dims, double correction = 1,
              bool keepdim = false) {
  const std::vector<std::int64_t> ds = detail::reduce_dims("var", dims, x.dim());
  std::int64_t n = 1;
  if (x.dim() > 0)
    for (const std::int64_t d : ds) n *= x.size(d);
  // Sums over the dimensions from the last, keeping them, so that the indices stay valid.
  auto sum_dims = [&ds](Tensor<T> t) {
    for (auto it = ds.rbegin(); it != ds.rend(); ++it) t = sum(t, *it, true);
    return t;
  };
  const Tensor<T> mu = mul_scalar(sum_dims(x), T(1) / static_cast<T>(n));
  const Tensor<T> dev = sub(x, mu);
  const double dof = std::max(0.0, static_cast<double>(n) - correction);
  const Tensor<T> v = mul_scalar(sum_dims(mul(dev, dev)), static_cast<T>(1.0 / dof));
  return keepdim ? v : v.reshape(detail::reduced_shape(x.shape(), ds, false));
}
/// The variance along one dimension, with Bessel's correction by default (torch.var(x, dim,
/// correction)).
template <Real T, detail::DimIndex D>
Tensor<T> var(const Tensor<T>& x, D dim, double correction = 1, bool keepdim = false) {
  return var(x, std::vector<std::int64_t>{static_cast<std::int64_t>(dim)}, correction, keepdim);
}
/// The variance of every element (a 0-d tensor), unbiased; var(x, {}, correction) for another.
template <Real T>
Tensor<T> var(const Tensor<T>& x) {
  return var(x, std::vector<std::int64_t>{}, 1.0, false);
}

/// torch.std: sqrt(var(...)), composed as pow(var, 0.5) (its gradient is NaN where var is 0,
/// as PyTorch's).
template <Real T>
Tensor<T> std(const Tensor<T>& x, const std::vector<std::int64_t>& dims, double correction = 1,
              bool keepdim = false) {
  return pow(var(x, dims, correction, keepdim), T(0.5));
}
/// The standard deviation along one dimension (torch.std(x, dim, correction)).
template <Real T, detail::DimIndex D>
Tensor<T> std(const Tensor<T>& x, D dim, double correction = 1, bool keepdim = false) {
  return pow(var(x, dim, correction, keepdim), T(0.5));
}
/// The standard deviation of every element, with Bessel's correction (torch.std(x)).
template <Real T>
Tensor<T> std(const Tensor<T>& x) {
  return pow(var(x), T(0.5));
}

/// Number of rows of `scores` [N, C] whose argmax equals `labels` [N].
template <Real T>
std::int64_t count_correct(const Tensor<T>& scores, const Tensor<std::int64_t>& labels) {
  EMBER_CHECK(scores.dim() == 2 && labels.dim() == 1 && labels.size(0) == scores.size(0),
              "count_correct: scores ", shape_str(scores.shape()), " and labels ",
              shape_str(labels.shape()), " do not match");
  detail::check_same_device(scores.device(), labels.device());
  const Tensor<T> sc = scores.contiguous();
  const Tensor<std::int64_t> lc = labels.contiguous();
  auto count = Tensor<std::int64_t>::zeros({}, scores.device());
  backend::run<op::CountCorrect, T>(scores.device(), sc.data(), sc.size(0), sc.size(1), lc.data(),
                                    count.data());
  return count.item();
}

}  // namespace ember
