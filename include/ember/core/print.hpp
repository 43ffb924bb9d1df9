#pragma once
// operator<< for tensors, in PyTorch's style:
//   tensor([[ 0.1000, -2.0000],
//           [ 3.5000,  4.0000]], requires_grad=True)
// Floats get 4 decimals (scientific when the magnitudes call for it, "1." when every value
// is whole); tensors over 1000 elements show 3 items at each end of each dimension.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"

namespace ember {

namespace detail {
struct PrintFormat {
  enum class Kind { integer, whole, fixed, sci } kind = Kind::fixed;
  int width = 0;
};

template <class T>
std::string format_value(T v, const PrintFormat& f) {
  char buf[64];
  if constexpr (std::is_integral_v<T>) {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  } else {
    const double d = static_cast<double>(v);
    if (std::isnan(d)) std::snprintf(buf, sizeof buf, "nan");
    else if (std::isinf(d)) std::snprintf(buf, sizeof buf, d > 0 ? "inf" : "-inf");
    else if (f.kind == PrintFormat::Kind::whole) std::snprintf(buf, sizeof buf, "%.0f.", d);
    else if (f.kind == PrintFormat::Kind::sci) std::snprintf(buf, sizeof buf, "%.4e", d);
    else std::snprintf(buf, sizeof buf, "%.4f", d);
  }
  std::string s = buf;
  if (static_cast<int>(s.size()) < f.width) s.insert(0, static_cast<std::size_t>(f.width) - s.size(), ' ');
  return s;
}

template <class T>
PrintFormat choose_format(const std::vector<T>& values) {
  PrintFormat f;
  if constexpr (std::is_integral_v<T>) {
    f.kind = PrintFormat::Kind::integer;
  } else {
    bool whole = true;
    double max_abs = 0, min_abs = INFINITY;
    for (T v : values) {
      const double d = static_cast<double>(v);
      if (!std::isfinite(d)) continue;
      whole = whole && d == std::nearbyint(d);
      max_abs = std::max(max_abs, std::abs(d));
      if (d != 0) min_abs = std::min(min_abs, std::abs(d));
    }
    // PyTorch's int mode turns scientific too when the magnitudes span over 1000x.
    const bool wide = min_abs != INFINITY && max_abs / min_abs > 1000;
    if (whole && max_abs < 1e8 && !wide) f.kind = PrintFormat::Kind::whole;
    else if (max_abs >= 1e8 || (min_abs < 1e-4) || (min_abs != INFINITY && max_abs / min_abs > 1000))
      f.kind = PrintFormat::Kind::sci;
    else f.kind = PrintFormat::Kind::fixed;
  }
  // As in PyTorch, only finite values set the width ("tensor([1., nan])").
  for (T v : values)
    if (std::isfinite(static_cast<double>(v)))
      f.width = std::max(f.width, static_cast<int>(format_value(v, f).size()));
  return f;
}

// Writes dimension `d` of the (C-order) values, starting at flat index `base`.
template <class T>
void print_dim(std::ostream& os, const std::vector<T>& v, const Shape& shape, const Shape& st,
               std::size_t d, std::int64_t base, int indent, bool summarize,
               const PrintFormat& f) {
  const std::int64_t n = shape[d];
  const std::int64_t edge = 3;
  os << '[';
  for (std::int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * edge && i == edge) {
      os << (d + 1 == shape.size() ? " ..., " : "...,\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
      i = n - edge;
    }
    if (d + 1 == shape.size()) os << format_value(v[static_cast<std::size_t>(base + i)], f);
    else print_dim(os, v, shape, st, d + 1, base + i * st[d], indent + 1, summarize, f);
    if (i + 1 < n) {
      if (d + 1 == shape.size()) os << ", ";
      else os << ',' << std::string(shape.size() - d - 1, '\n')
              << std::string(static_cast<std::size_t>(indent + 1), ' ');
    }
  }
  os << ']';
}
}  // namespace detail

/// Prints a tensor as PyTorch does: tensor([...]) with its values, dtype and device where PyTorch
/// would show them.
template <Element T>
std::ostream& operator<<(std::ostream& os, const Tensor<T>& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  const std::vector<T> values = t.to_vector();
  const bool summarize = t.numel() > 1000;
  std::vector<T> shown;
  if (summarize) {  // format only what is shown, as PyTorch does
    const Shape st = contiguous_strides(t.shape());
    for_each_strided(t.shape(), st, 0, [&](std::int64_t, std::int64_t s) {
      std::int64_t rem = s;
      bool edge = true;
      for (std::size_t d = 0; d < st.size(); ++d) {
        const std::int64_t i = rem / st[d];
        rem %= st[d];
        if (t.shape()[d] > 6 && i >= 3 && i < t.shape()[d] - 3) edge = false;
      }
      if (edge) shown.push_back(values[static_cast<std::size_t>(s)]);
    });
  }
  const auto f = detail::choose_format(summarize ? shown : values);
  os << "tensor(";
  if (t.dim() == 0) os << detail::format_value(values[0], f);
  else if (t.numel() == 0) os << "[]";
  else detail::print_dim(os, values, t.shape(), contiguous_strides(t.shape()), 0, 0, 7, summarize, f);
  if (!t.device().is_cpu()) os << ", device='" << t.device().str() << "'";
  if constexpr (!std::is_same_v<T, float> && !std::is_same_v<T, std::int64_t>)
    os << ", dtype=torch." << dtype_name(t.dtype());
  if constexpr (Real<T>) {
    if (t.grad_fn()) os << ", grad_fn=<" << t.grad_fn()->name << '>';
    else if (t.requires_grad()) os << ", requires_grad=True";
  }
  return os << ')';
}

}  // namespace ember
