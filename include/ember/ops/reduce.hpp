#pragma once
// Reductions: sum and mean (over everything or one dimension), argmax, and the count of
// correct predictions that evaluation needs.

#include <cstdint>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"

namespace ember {

namespace op {
// out[0] = scale * sum(x[0..n))
struct SumAll {
  static constexpr const char* name = "sum";
  template <class T>
  using sig = void(const T* x, std::int64_t n, T* out, T scale);
};
// out[r] = argmax of row r of x (rows, cols); NaN wins
struct ArgmaxRows {
  static constexpr const char* name = "argmax";
  template <class T>
  using sig = void(const T* x, std::int64_t rows, std::int64_t cols, std::int64_t* out);
};
// out[0] = number of rows of x (rows, cols) whose argmax is labels[row]
struct CountCorrect {
  static constexpr const char* name = "count_correct";
  template <class T>
  using sig = void(const T* x, std::int64_t rows, std::int64_t cols, const std::int64_t* labels,
                   std::int64_t* out);
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

// Sum of all elements (a scalar), accumulated in double.
template <Real T>
Tensor<T> sum(const Tensor<T>& a) {
  Tensor<T> ac = a.contiguous();
  if (a.device().is_cuda()) {
    Tensor<T> out = Tensor<T>::zeros({}, a.device());
    if (a.numel() > 0) backend::cuda<op::SumAll, T>(a.device().index, ac.data(), ac.numel(), out.data(), T(1));
    autograd::record(out, "SumBackward0", {a}, [s = a.shape()](const Tensor<T>& g) {
      return std::vector<Tensor<T>>{broadcast_to(g, s)};
    });
    return out;
  }
  double acc = 0;
  const T* p = ac.data();
  for (std::int64_t i = 0; i < ac.numel(); ++i) acc += p[i];
  Tensor<T> out = Tensor<T>::scalar(static_cast<T>(acc));
  autograd::record(out, "SumBackward0", {a}, [s = a.shape()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{broadcast_to(g, s)};
  });
  return out;
}

template <Real T>
Tensor<T> sum(const Tensor<T>& a, std::int64_t dim, bool keepdim = false) {
  const std::int64_t d = wrap_dim(dim, a.dim());
  if (a.device().is_cuda()) {  // a reduction to the kept shape; sum_to records the backward
    Tensor<T> out = sum_to(a, detail::reduced_shape(a.shape(), d, true));
    return keepdim ? out : out.reshape(detail::reduced_shape(a.shape(), d, false));
  }
  const auto sp = detail::split_at(a.shape(), d);
  Tensor<T> ac = a.contiguous();
  Tensor<T> out = Tensor<T>::zeros(detail::reduced_shape(a.shape(), d, true));
  const T* p = ac.data();
  T* po = out.data();
  for (std::int64_t o = 0; o < sp.outer; ++o)
    for (std::int64_t s = 0; s < sp.size; ++s)
      for (std::int64_t i = 0; i < sp.inner; ++i)
        po[o * sp.inner + i] += p[(o * sp.size + s) * sp.inner + i];
  if (!keepdim) out = out.detach().reshape(detail::reduced_shape(a.shape(), d, false));
  autograd::record(out, "SumBackward1", {a}, [s = a.shape(), d](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{broadcast_to(g.reshape(detail::reduced_shape(s, d, true)), s)};
  });
  return out;
}

template <Real T>
Tensor<T> mean(const Tensor<T>& a) {
  EMBER_CHECK(a.numel() > 0, "mean() of an empty tensor");
  return mul_scalar(sum(a), T(1) / static_cast<T>(a.numel()));
}

template <Real T>
Tensor<T> mean(const Tensor<T>& a, std::int64_t dim, bool keepdim = false) {
  const std::int64_t n = a.dim() == 0 ? 1 : a.size(dim);  // sum() checks dim
  EMBER_CHECK(n > 0, "mean() over an empty dimension");
  return mul_scalar(sum(a, dim, keepdim), T(1) / static_cast<T>(n));
}

// Index of the largest element along `dim` (the first one on ties), as int64.
template <Element T>
Tensor<std::int64_t> argmax(const Tensor<T>& a, std::int64_t dim, bool keepdim = false) {
  const std::int64_t d = wrap_dim(dim, a.dim());
  const auto sp = detail::split_at(a.shape(), d);
  EMBER_CHECK(sp.size > 0, "argmax over an empty dimension");
  if (a.device().is_cuda()) {
    if constexpr (Real<T>) {
      if (sp.inner != 1) {  // rows: move the dimension last
        auto idx = argmax(a.transpose(d, -1).contiguous(), -1, true).transpose(d, -1);
        return keepdim ? idx.contiguous() : idx.reshape(detail::reduced_shape(a.shape(), d, false));
      }
      Tensor<T> ac = a.contiguous();
      auto out = Tensor<std::int64_t>::empty(detail::reduced_shape(a.shape(), d, keepdim), a.device());
      if (out.numel() > 0)
        backend::cuda<op::ArgmaxRows, T>(a.device().index, ac.data(), sp.outer, sp.size, out.data());
      return out;
    } else {
      EMBER_CHECK(false, "argmax of an integer tensor on ", a.device().str(), " is not supported; use .cpu()");
    }
  }
  Tensor<T> ac = a.contiguous();
  auto out = Tensor<std::int64_t>::empty(detail::reduced_shape(a.shape(), d, keepdim));
  const T* p = ac.data();
  std::int64_t* po = out.data();
  for (std::int64_t o = 0; o < sp.outer; ++o)
    for (std::int64_t i = 0; i < sp.inner; ++i) {
      std::int64_t best = 0;
      T best_v = p[o * sp.size * sp.inner + i];
      for (std::int64_t s = 1; s < sp.size; ++s) {
        const T v = p[(o * sp.size + s) * sp.inner + i];
        if (v > best_v || (v != v && best_v == best_v)) {  // NaN wins, as in PyTorch
          best_v = v;
          best = s;
        }
      }
      po[o * sp.inner + i] = best;
    }
  return out;
}

// Number of rows of `scores` [N, C] whose argmax equals `labels` [N].
template <Real T>
std::int64_t count_correct(const Tensor<T>& scores, const Tensor<std::int64_t>& labels) {
  EMBER_CHECK(scores.dim() == 2 && labels.dim() == 1 && labels.size(0) == scores.size(0),
              "count_correct: scores ", shape_str(scores.shape()), " and labels ",
              shape_str(labels.shape()), " do not match");
  if (scores.device().is_cuda()) {
    detail::check_same_device(scores.device(), labels.device());
    const Tensor<T> sc = scores.contiguous();
    const Tensor<std::int64_t> lc = labels.contiguous();
    auto count = Tensor<std::int64_t>::empty({}, scores.device());
    backend::cuda<op::CountCorrect, T>(scores.device().index, sc.data(), sc.size(0), sc.size(1),
                                       lc.data(), count.data());
    return count.item();
  }
  const auto pred = argmax(scores, 1).to_vector();
  const auto lab = labels.to_vector();
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) correct += pred[i] == lab[i];
  return correct;
}

}  // namespace ember
