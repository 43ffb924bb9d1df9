#pragma once
// Shapes and strides: small vectors of int64, plus the helpers every op uses to check them.
//
// Sizes read from files (IDX dimensions, safetensors shapes and offsets, checkpoints) go through
// the checked helpers here: every product or sum of them is overflow-checked and a failure
// throws ember::Error naming the shape, never wraps around.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ember/core/error.hpp"

namespace ember {

/// A tensor's sizes, outermost first (torch.Size).
using Shape = std::vector<std::int64_t>;

/// The most elements a tensor may have (2^48), far above any real tensor and low enough that
/// numel * sizeof(double) fits an int64 with room to spare.
inline constexpr std::int64_t max_numel = std::int64_t{1} << 48;
/// How many dimensions shape_str shows before it elides the rest: a hostile file's shape with
/// millions of dimensions must not turn into a megabyte-long error message.
inline constexpr std::size_t shape_str_max_dims = 16;

/// "[2, 3]"; a shape of more than max_dims dimensions shows the first max_dims and then
/// "... (N dims)", so the text stays short whatever the rank.
[[nodiscard]] inline std::string shape_str(const Shape& s,
                                           std::size_t max_dims = shape_str_max_dims) {
  std::string out = "[";
  const std::size_t shown = std::min(s.size(), max_dims);
  for (std::size_t i = 0; i < shown; ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  if (shown < s.size()) out += (shown ? ", ... (" : "... (") + std::to_string(s.size()) + " dims)";
  return out + "]";
}

/// a * b and a + b, or nullopt where the result does not fit an int64.
[[nodiscard]] inline std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}
/// a + b, or nullopt when the sum does not fit an int64.
[[nodiscard]] inline std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// The number of elements, checked: no negative dimension, at most max_numel elements, and
/// contiguous strides that fit an int64 (a shape [0, 2^40, 2^40] holds no element, yet its
/// strides overflow).
[[nodiscard]] inline std::int64_t numel_of(const Shape& s) {
  std::int64_t n = 1;
  std::int64_t extent = 1;  // product of the non-zero dimensions
  for (auto d : s) {
    EMBER_CHECK(d >= 0, "negative dimension in shape ", shape_str(s));
    EMBER_CHECK(d == 0 || n <= max_numel / d, "shape ", shape_str(s), " has too many elements");
    const auto e = checked_mul(extent, d > 0 ? d : 1);
    EMBER_CHECK(e.has_value() && *e <= max_numel, "shape ", shape_str(s),
                " is too large: its strides overflow");
    n *= d;
    extent = *e;
  }
  return n;
}

/// numel_of(s) * element_size, checked: the bytes a C-contiguous array of shape s takes.
[[nodiscard]] inline std::int64_t byte_size_of(const Shape& s, std::int64_t element_size) {
  EMBER_CHECK(element_size > 0, "byte_size_of: element size ", element_size, " is not positive");
  const auto bytes = checked_mul(numel_of(s), element_size);
  EMBER_CHECK(bytes.has_value(), "shape ", shape_str(s), " of ", element_size,
              "-byte elements is too large to address");
  return *bytes;
}

/// C-order strides (in elements); zero dimensions count as 1 so that strides stay meaningful.
/// Throws for a shape whose strides overflow an int64 (see numel_of).
[[nodiscard]] inline Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  std::int64_t acc = 1;
  for (std::size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    const auto next = checked_mul(acc, s[i] > 0 ? s[i] : 1);
    EMBER_CHECK(next.has_value(), "shape ", shape_str(s), " is too large: its strides overflow");
    acc = *next;
  }
  return st;
}

/// Wraps a possibly negative dimension index, PyTorch style.
[[nodiscard]] inline std::int64_t wrap_dim(std::int64_t d, std::int64_t rank) {
  const std::int64_t r = rank == 0 ? 1 : rank;
  EMBER_CHECK(d >= -r && d < r, "dimension ", d, " out of range for a tensor of rank ", rank);
  return d < 0 ? d + r : d;
}

/// The shape two operands broadcast to (numpy rules), or an error naming both shapes.
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
