#pragma once
// Node<T>: one recorded op of the define-by-run graph. It keeps the inputs (the graph's
// edges) and a backward function that maps the gradient of the op's output to the gradients
// of its inputs. Every op has exactly one output, so a node stands for that output.
// It also keeps the version of every tensor its backward function saved, so that backward()
// can refuse to run on a saved tensor that an in-place op has changed since.

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ember {

/// Forward declaration of ember::Tensor (core/tensor.hpp).
template <class T>
class Tensor;
/// Forward declaration of a tensor's shared implementation (core/tensor.hpp).
template <class T>
struct TensorImpl;
class VersionCounter;  // core/storage.hpp

namespace autograd {

/// A tensor saved for backward, as the version check sees it: its storage's counter and the
/// count when it was saved. The counter is not owned: the backward function that saved the
/// tensor holds it (and so its storage) for as long as the node can run.
struct SavedVersion {
  /// The storage's version counter (not owned).
  const VersionCounter* counter = nullptr;
  /// Its value when the tensor was saved.
  std::uint64_t version = 0;
};
/// The saved tensors of one node: at most kMax (conv2d, mul, div, linear save two), no
/// allocation. Made by autograd::saved(tensors...) in core/tensor.hpp.
struct SavedVersions {
  /// The most tensors a node saves.
  static constexpr std::size_t kMax = 4;
  /// The saved tensors' versions; the first `count` are used.
  std::array<SavedVersion, kMax> items{};
  /// How many are saved.
  std::size_t count = 0;
};

/// One operation in the autograd graph (PyTorch's grad_fn): its inputs and the function that maps
/// the output's gradient to theirs.
template <class T>
struct Node {
  /// Maps the output's gradient to one gradient per input.
  using BackwardFn = std::function<std::vector<Tensor<T>>(const Tensor<T>& grad_out)>;

  std::string name;  ///< PyTorch's spelling, e.g. "AddBackward0"
  /// The inputs' implementations, kept alive for backward.
  std::vector<std::shared_ptr<TensorImpl<T>>> inputs;
  BackwardFn backward;  ///< returns one gradient per input (undefined where none is needed)
  SavedVersions saved;  ///< what `backward` captured, with its versions at the time
  /// True once backward has run and the saved tensors are freed.
  bool released = false;

  /// Frees what the backward function saved; a second walk then throws.
  void release() {
    backward = nullptr;
    saved = {};
    released = true;
  }
};

}  // namespace autograd
}  // namespace ember
