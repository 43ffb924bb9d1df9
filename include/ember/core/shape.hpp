#pragma once
// Shapes and strides: small vectors of int64, plus the helpers every op uses to check them.

#include <cstdint>
#include <string>
#include <vector>

#include "ember/core/error.hpp"

namespace ember {

using Shape = std::vector<std::int64_t>;

[[nodiscard]] inline std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

[[nodiscard]] inline std::int64_t numel_of(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) {
    EMBER_CHECK(d >= 0, "negative dimension in shape ", shape_str(s));
    EMBER_CHECK(d == 0 || n <= (std::int64_t{1} << 48) / d, "shape ", shape_str(s),
                " has too many elements");
    n *= d;
  }
  return n;
}

[[nodiscard]] inline Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  std::int64_t acc = 1;
  for (std::size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i] > 0 ? s[i] : 1;
  }
  return st;
}

// Wraps a possibly negative dimension index, PyTorch style.
[[nodiscard]] inline std::int64_t wrap_dim(std::int64_t d, std::int64_t rank) {
  const std::int64_t r = rank == 0 ? 1 : rank;
  EMBER_CHECK(d >= -r && d < r, "dimension ", d, " out of range for a tensor of rank ", rank);
  return d < 0 ? d + r : d;
}

// The shape two operands broadcast to (numpy rules), or an error naming both shapes.
[[nodiscard]] inline Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    EMBER_CHECK(da == db || da == 1 || db == 1, "shapes ", shape_str(a), " and ", shape_str(b),
                " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace ember
