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

template <class T>
class Tensor;
template <class T>
struct TensorImpl;
class VersionCounter;  // core/storage.hpp

namespace autograd {

// A tensor saved for backward, as the version check sees it: its storage's counter and the
// count when it was saved. The counter is not owned: the backward function that saved the
// tensor holds it (and so its storage) for as long as the node can run.
struct SavedVersion {
  const VersionCounter* counter = nullptr;
  std::uint64_t version = 0;
};
// The saved tensors of one node: at most kMax (conv2d, mul, div, linear save two), no
// allocation. Made by autograd::saved(tensors...) in core/tensor.hpp.
struct SavedVersions {
  static constexpr std::size_t kMax = 4;
  std::array<SavedVersion, kMax> items{};
  std::size_t count = 0;
};

template <class T>
struct Node {
  using BackwardFn = std::function<std::vector<Tensor<T>>(const Tensor<T>& grad_out)>;

  std::string name;  // PyTorch's spelling, e.g. "AddBackward0"
  std::vector<std::shared_ptr<TensorImpl<T>>> inputs;
  BackwardFn backward;  // returns one gradient per input (undefined where none is needed)
  SavedVersions saved;  // what `backward` captured, with its versions at the time
  bool released = false;

  // Frees what the backward function saved; a second walk then throws.
  void release() {
    backward = nullptr;
    saved = {};
    released = true;
  }
};

}  // namespace autograd
}  // namespace ember
