#pragma once
// Node<T>: one recorded op of the define-by-run graph. It keeps the inputs (the graph's
// edges) and a backward function that maps the gradient of the op's output to the gradients
// of its inputs. Every op has exactly one output, so a node stands for that output.

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

namespace autograd {

template <class T>
struct Node {
  using BackwardFn = std::function<std::vector<Tensor<T>>(const Tensor<T>& grad_out)>;

  std::string name;  // PyTorch's spelling, e.g. "AddBackward0"
  std::vector<std::shared_ptr<TensorImpl<T>>> inputs;
  BackwardFn backward;  // returns one gradient per input (undefined where none is needed)
  bool released = false;

  // Frees what the backward function saved; a second walk then throws.
  void release() {
    backward = nullptr;
    released = true;
  }
};

}  // namespace autograd
}  // namespace ember
