#pragma once
// The backward pass: walk the graph from a root in reverse topological order, call each
// node's backward function once with the sum of the gradients reaching it, and accumulate
// into the .grad() of the leaves that require grad.

#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ember/backend/dispatch.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise_tags.hpp"

namespace ember {
namespace autograd {

namespace detail {
// out = a + b for contiguous tensors of one shape on a CUDA device (out may be a).
template <class T>
void add_on_device(const Tensor<T>& a, const Tensor<T>& b, const Tensor<T>& out) {
  EMBER_CHECK(a.device() == b.device(), "backward: gradients on different devices: ",
              a.device().str(), " and ", b.device().str());
  if (out.numel() == 0) return;
  backend::cuda<op::Binary, T>(a.device().index, backend::BinaryOp::add, a.data(), a.view_desc(),
                                 b.data(), b.view_desc(), out.data(), out.numel());
}

// A new contiguous tensor holding a + b (same shape), not recorded.
template <class T>
Tensor<T> add_fresh(const Tensor<T>& a, const Tensor<T>& b) {
  Tensor<T> ac = a.contiguous(), bc = b.contiguous();
  Tensor<T> out = Tensor<T>::empty(a.shape(), a.device());
  if (a.device().is_cuda()) {
    add_on_device(ac, bc, out);
    return out;
  }
  const T* pa = ac.data();
  const T* pb = bc.data();
  T* po = out.data();
  for (std::int64_t i = 0; i < out.numel(); ++i) po[i] = pa[i] + pb[i];
  return out;
}

// Refuses to run a node's backward function on a saved tensor that an in-place op changed
// after the op saved it: the function would compute a wrong gradient from the new values.
template <class T>
void check_saved_versions(const Node<T>& node) {
  for (std::size_t i = 0; i < node.saved.count; ++i) {
    const SavedVersion& s = node.saved.items[i];
    const std::uint64_t now = s.counter->version();
    EMBER_CHECK(now == s.version, "backward: a tensor saved by ", node.name,
                " for its gradient (saved tensor ", i + 1, " of ", node.saved.count,
                ") was modified in place (version ", s.version, " -> ", now, ", last by ",
                s.counter->last_op(), "); clone() it before the in-place op, or make the "
                "change after backward()");
  }
}

template <class T>
void check_grad_shape(const Tensor<T>& g, const TensorImpl<T>& input, const Node<T>& node) {
  EMBER_CHECK(g.shape() == input.shape, node.name, " returned a gradient of shape ",
              shape_str(g.shape()), " for an input of shape ", shape_str(input.shape));
}
}  // namespace detail

/// The backward pass from `root` with initial gradient `grad` (what Tensor::backward() calls):
/// accumulates into every leaf that requires grad; frees the graph's saved tensors unless
/// retain_graph.
template <class T>
void run_backward(const Tensor<T>& root, Tensor<T> grad, bool retain_graph) {
  static_assert(Real<T>, "backward() needs a float or double tensor");
  EMBER_CHECK(root.requires_grad(),
              "backward(): the tensor does not require grad and has no grad_fn");
  if (!grad.defined()) {
    EMBER_CHECK(root.numel() == 1, "backward(): grad can be implicitly created only for "
                                   "scalar outputs; this one has shape ",
                shape_str(root.shape()));
    grad = Tensor<T>::ones(root.shape(), root.device());
  }
  EMBER_CHECK(grad.shape() == root.shape(), "backward(): gradient of shape ",
              shape_str(grad.shape()), " for a tensor of shape ", shape_str(root.shape()));
  NoGradGuard no_grad;

  auto accumulate_leaf = [](TensorImpl<T>& leaf, const Tensor<T>& g) {  // g: a temporary
    if (!leaf.requires_grad) return;
    if (!leaf.grad) {
      // A gradient nothing else refers to (the usual case: a backward function's fresh
      // output) becomes .grad() as it is; anything else is copied, so that later
      // accumulation cannot write into another tensor.
      const auto& impl = g.impl_ptr();
      if (g.is_contiguous() && g.offset() == 0 && impl.use_count() == 1 &&
          impl->storage.use_count() == 1 && impl->grad_fn == nullptr) {
        leaf.grad = impl;
        return;
      }
      Tensor<T> fresh = Tensor<T>::empty(leaf.shape, leaf.storage->device());
      fresh.copy_(g);
      leaf.grad = fresh.impl_ptr();
    } else {
      Tensor<T> acc(leaf.grad);
      Tensor<T> gc = g.contiguous();
      acc.bump_version("gradient accumulation");  // .grad() changes in place
      if (acc.device().is_cuda()) {
        detail::add_on_device(acc, gc, acc);
        return;
      }
      T* pa = acc.data();
      const T* pg = gc.data();
      for (std::int64_t i = 0; i < acc.numel(); ++i) pa[i] += pg[i];
    }
  };

  auto run_hooks = [](const std::shared_ptr<TensorImpl<T>>& leaf) {
    // A copy: a hook may register or remove hooks.
    const auto hooks = leaf->post_grad_hooks;
    for (const auto& h : hooks) h.second(leaf);
  };

  Node<T>* start = root.grad_fn().get();
  if (start == nullptr) {  // the root is itself a leaf
    accumulate_leaf(root.impl(), grad);
    if (root.impl().requires_grad) run_hooks(root.impl_ptr());
    return;
  }

  // Post-order DFS gives a topological order; reversed, every node comes after all of
  // its consumers.
  std::vector<Node<T>*> order;
  std::unordered_map<Node<T>*, bool> visited;
  std::vector<std::pair<Node<T>*, std::size_t>> stack{{start, 0}};
  visited[start] = true;
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      Node<T>* child = node->inputs[next++]->grad_fn.get();
      if (child != nullptr && !visited[child]) {
        visited[child] = true;
        stack.emplace_back(child, 0);
      }
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  // Every saved tensor is checked before any gradient is computed, so that a refused
  // backward() leaves every .grad() as it was.
  for (Node<T>* node : order) detail::check_saved_versions(*node);

  // Leaves with post-accumulate-grad hooks: how many edges of the graph lead into each, so that
  // the hooks run once the last one has delivered (a leaf used twice gets two gradients).
  struct HookedLeaf {
    std::size_t edges_left = 0;
    bool reached = false, done = false;
  };
  std::unordered_map<TensorImpl<T>*, HookedLeaf> hooked;
  std::vector<std::shared_ptr<TensorImpl<T>>> hooked_order;
  for (Node<T>* node : order) {
    for (const auto& in : node->inputs) {
      if (in->grad_fn != nullptr || !in->requires_grad || in->post_grad_hooks.empty()) continue;
      auto [slot, inserted] = hooked.try_emplace(in.get());
      if (inserted) hooked_order.push_back(in);
      ++slot->second.edges_left;
    }
  }

  std::unordered_map<Node<T>*, Tensor<T>> pending;
  pending[start] = grad;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node<T>* node = *it;
    auto found = pending.find(node);
    if (found == pending.end()) continue;  // no gradient flows here
    const Tensor<T> g = std::move(found->second);
    pending.erase(found);
    EMBER_CHECK(!node->released, "backward(): trying to walk the graph through ", node->name,
                " a second time, but its saved values were freed by the first backward(); "
                "pass retain_graph=true to the first call");
    std::vector<Tensor<T>> grads = node->backward(g);
    EMBER_CHECK(grads.size() == node->inputs.size(), node->name, " returned ", grads.size(),
                " gradients for ", node->inputs.size(), " inputs");
    for (std::size_t i = 0; i < grads.size(); ++i) {
      TensorImpl<T>& input = *node->inputs[i];
      HookedLeaf* h = nullptr;
      if (!hooked.empty() && input.grad_fn == nullptr) {
        auto found_leaf = hooked.find(&input);
        if (found_leaf != hooked.end()) h = &found_leaf->second;
      }
      if (grads[i].defined() && input.requires_grad) {
        detail::check_grad_shape(grads[i], input, *node);
        if (Node<T>* child = input.grad_fn.get()) {
          auto [slot, inserted] = pending.try_emplace(child, grads[i]);
          if (!inserted) slot->second = detail::add_fresh(slot->second, grads[i]);
        } else {
          accumulate_leaf(input, grads[i]);
          if (h != nullptr) h->reached = true;
        }
      }
      if (h != nullptr && --h->edges_left == 0 && h->reached) {
        h->done = true;
        run_hooks(node->inputs[i]);
      }
    }
    if (!retain_graph) node->release();
  }
  // A leaf whose other edges came from nodes no gradient reached: its gradient is complete now.
  for (const auto& leaf : hooked_order) {
    HookedLeaf& h = hooked[leaf.get()];
    if (h.reached && !h.done) run_hooks(leaf);
  }
}

}  // namespace autograd

template <class T>
void Tensor<T>::backward(const Tensor<T>& grad, bool retain_graph) const {
  if constexpr (Real<T>) {
    autograd::run_backward(*this, grad, retain_graph);
  } else {
    (void)grad, (void)retain_graph;
    throw Error("backward() on an integer tensor");
  }
}

}  // namespace ember
