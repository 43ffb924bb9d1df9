#pragma once
// Joining and splitting along a dimension, with PyTorch's names and semantics: cat, stack,
// split (by size or by sizes) and chunk, for every element type (gradients for float and
// double).
//
// These are compositions of existing device ops and need no kernel of their own: cat copies
// each input into its slice of the output (Tensor::slice + copy_, a strided copy on every
// device) and its backward slices the gradient; stack is cat of unsqueezed inputs; split and
// chunk return slices, views of the input as in PyTorch, each with its own backward.

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "ember/autograd/grad_mode.hpp"
#include "ember/core/tensor.hpp"

namespace ember {

namespace detail {
inline std::string sizes_str(const std::vector<std::int64_t>& v) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << ']';
  return os.str();
}

// `dim` in [-rank, rank) made non-negative, or an error naming the op.
inline std::int64_t wrap_dim_for(const char* op, std::int64_t dim, std::int64_t rank) {
  EMBER_CHECK(dim >= -rank && dim < rank, op, ": dimension ", dim, " out of range (expected to be "
              "in [", -rank, ", ", rank - 1, "])");
  return dim < 0 ? dim + rank : dim;
}
}  // namespace detail

/// Concatenates `tensors` along `dim` (negative counts from the end). All must have the same
/// rank and device and equal sizes outside `dim`; as in PyTorch, 1-D empty tensors (shape [0])
/// are skipped whatever the others' shapes.
template <Element T>
Tensor<T> cat(const std::vector<Tensor<T>>& tensors, std::int64_t dim = 0) {
  EMBER_CHECK(!tensors.empty(), "cat: expected a non-empty list of tensors");
  auto skipped = [](const Tensor<T>& t) { return t.dim() == 1 && t.numel() == 0; };
  std::size_t first = 0;
  while (first + 1 < tensors.size() && skipped(tensors[first])) ++first;
  const Tensor<T>& ref = tensors[first];
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    EMBER_CHECK(tensors[i].dim() > 0, "cat: zero-dimensional tensor (at position ", i,
                ") cannot be concatenated");
    EMBER_CHECK(tensors[i].device() == ref.device(), "cat: expected all tensors on the same device, "
                "but tensor ", first, " is on ", ref.device().str(), " and tensor ", i, " on ",
                tensors[i].device().str());
  }
  const std::int64_t d = detail::wrap_dim_for("cat", dim, ref.dim());
  const auto dd = static_cast<std::size_t>(d);
  Shape shape = ref.shape();
  shape[dd] = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor<T>& t = tensors[i];
    if (skipped(t) && !skipped(ref)) continue;
    EMBER_CHECK(t.dim() == ref.dim(), "cat: tensors must have the same number of dimensions: tensor ",
                first, " has shape ", shape_str(ref.shape()), ", tensor ", i, " has shape ",
                shape_str(t.shape()));
    for (std::size_t k = 0; k < shape.size(); ++k)
      EMBER_CHECK(k == dd || t.shape()[k] == ref.shape()[k], "cat: sizes of tensors must match "
                  "except in dimension ", d, ": tensor ", first, " has shape ", shape_str(ref.shape()),
                  ", tensor ", i, " has shape ", shape_str(t.shape()));
    shape[dd] += t.shape()[dd];
  }
  Tensor<T> out = Tensor<T>::empty(shape, ref.device());
  std::vector<std::int64_t> starts(tensors.size(), -1);  // -1: skipped
  {
    NoGradGuard guard;
    std::int64_t at = 0;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const Tensor<T>& t = tensors[i];
      if (skipped(t) && !skipped(ref)) continue;
      starts[i] = at;
      const std::int64_t size = t.shape()[dd];
      if (size > 0) out.slice(d, at, at + size).copy_(t);
      at += size;
    }
  }
  std::vector<std::int64_t> sizes(tensors.size(), 0);
  for (std::size_t i = 0; i < tensors.size(); ++i)
    if (starts[i] >= 0) sizes[i] = tensors[i].shape()[dd];
  // The gradient of each input is its slice of the output's.
  autograd::record(out, "CatBackward0", tensors, [d, starts, sizes](const Tensor<T>& g) {
    std::vector<Tensor<T>> grads(starts.size());
    for (std::size_t i = 0; i < starts.size(); ++i)
      if (starts[i] >= 0) grads[i] = g.slice(d, starts[i], starts[i] + sizes[i]);
    return grads;
  });
  return out;
}

/// Joins `tensors`, which must all have the same shape, along a new dimension `dim` (in
/// [-(rank + 1), rank]).
template <Element T>
Tensor<T> stack(const std::vector<Tensor<T>>& tensors, std::int64_t dim = 0) {
  EMBER_CHECK(!tensors.empty(), "stack: expected a non-empty list of tensors");
  const std::int64_t d = detail::wrap_dim_for("stack", dim, tensors[0].dim() + 1);
  std::vector<Tensor<T>> parts;
  parts.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    EMBER_CHECK(tensors[i].device() == tensors[0].device(), "stack: expected all tensors on the same "
                "device, but tensor 0 is on ", tensors[0].device().str(), " and tensor ", i, " on ",
                tensors[i].device().str());
    EMBER_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: expected each tensor to be of "
                "equal size, but got ", shape_str(tensors[0].shape()), " at entry 0 and ",
                shape_str(tensors[i].shape()), " at entry ", i);
    parts.push_back(tensors[i].unsqueeze(d));
  }
  return cat(parts, d);
}

/// Splits `input` along `dim` into pieces of `split_size` (the last one smaller when the size
/// does not divide), as views.
template <Element T>
std::vector<Tensor<T>> split(const Tensor<T>& input, std::int64_t split_size, std::int64_t dim = 0) {
  EMBER_CHECK(input.dim() > 0, "split: expected at least a 1-dimensional tensor");
  const std::int64_t d = detail::wrap_dim_for("split", dim, input.dim());
  const std::int64_t size = input.shape()[static_cast<std::size_t>(d)];
  EMBER_CHECK(split_size >= 0, "split: expected split_size to be non-negative, but got split_size=",
              split_size);
  EMBER_CHECK(split_size > 0 || size == 0, "split: split_size can only be 0 if dimension size is 0, "
              "but got dimension size of ", size);
  const std::int64_t count = split_size == 0 ? 1 : std::max<std::int64_t>((size + split_size - 1) / split_size, 1);
  std::vector<Tensor<T>> out;
  out.reserve(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t start = i * split_size;
    out.push_back(input.slice(d, start, std::min(start + split_size, size)));
  }
  return out;
}

/// Splits `input` along `dim` into pieces of the given sizes (which must sum to its size there),
/// as views: PyTorch's split with a list (split_with_sizes).
template <Element T>
std::vector<Tensor<T>> split(const Tensor<T>& input, const std::vector<std::int64_t>& split_sizes,
                             std::int64_t dim = 0) {
  EMBER_CHECK(input.dim() > 0, "split: expected at least a 1-dimensional tensor");
  const std::int64_t d = detail::wrap_dim_for("split", dim, input.dim());
  const std::int64_t size = input.shape()[static_cast<std::size_t>(d)];
  for (const std::int64_t s : split_sizes)
    EMBER_CHECK(s >= 0, "split_with_sizes: expected split_sizes to have only non-negative entries, "
                "but got split_sizes=", detail::sizes_str(split_sizes));
  const std::int64_t total = std::accumulate(split_sizes.begin(), split_sizes.end(), std::int64_t{0});
  EMBER_CHECK(total == size, "split_with_sizes: expected split_sizes to sum exactly to ", size,
              " (input tensor's size at dimension ", d, "), but got split_sizes=",
              detail::sizes_str(split_sizes));
  std::vector<Tensor<T>> out;
  out.reserve(split_sizes.size());
  std::int64_t at = 0;
  for (const std::int64_t s : split_sizes) {
    out.push_back(input.slice(d, at, at + s));
    at += s;
  }
  return out;
}

/// Splits `input` along `dim` into `chunks` pieces of ceil(size / chunks) (the last smaller),
/// as views; fewer than `chunks` when the size runs out first, as in PyTorch.
template <Element T>
std::vector<Tensor<T>> chunk(const Tensor<T>& input, std::int64_t chunks, std::int64_t dim = 0) {
  EMBER_CHECK(input.dim() > 0, "chunk: expected at least a 1-dimensional tensor");
  EMBER_CHECK(chunks > 0, "chunk: expected 'chunks' to be greater than 0, got: ", chunks);
  const std::int64_t d = detail::wrap_dim_for("chunk", dim, input.dim());
  const std::int64_t size = input.shape()[static_cast<std::size_t>(d)];
  const std::int64_t split_size = (size + chunks - 1) / chunks;
  // An empty dimension gives `chunks` empty pieces (split would give one).
  if (split_size == 0 && size == 0)
    return split(input, std::vector<std::int64_t>(static_cast<std::size_t>(chunks), 0), d);
  return split(input, split_size, d);
}

}  // namespace ember
