#pragma once
// StridedView: how a tensor's elements sit in its storage, in a form a kernel takes by value.

#include <cstdint>

#include "ember/core/macros.hpp"

namespace ember {

/// Shape and element strides of a tensor of rank <= kMaxDims, passed to kernels by value.
/// Broadcast operands carry stride 0 on the dimensions they are expanded along.
inline constexpr int kMaxDims = 8;
/// A tensor's shape, element strides and offset by value (rank at most kMaxDims), as the device
/// kernels take them; broadcast operands have stride 0 along expanded dimensions.
struct StridedView {
  /// The number of dimensions.
  int rank = 0;
  /// Sizes; the first `rank` are used.
  std::int64_t shape[kMaxDims] = {};
  /// Strides in elements; the first `rank` are used.
  std::int64_t strides[kMaxDims] = {};
  /// Element offset of the first element in the storage.
  std::int64_t offset = 0;

  /// Storage index of element i (in C order of shape).
  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t index(std::int64_t i) const {
    std::int64_t off = offset;
    for (int d = rank - 1; d >= 0; --d) {
      const std::int64_t q = i / shape[d];
      off += (i - q * shape[d]) * strides[d];
      i = q;
    }
    return off;
  }
};

}  // namespace ember
