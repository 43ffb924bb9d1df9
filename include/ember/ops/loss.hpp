#pragma once
// nll_loss and cross_entropy, PyTorch's semantics (reduction mean or sum).

#include <cstdint>
#include <vector>

#include "ember/backend/dispatch.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/activation.hpp"

namespace ember {

namespace op {
// out[0] = -sum (or mean) over rows of logp[row, labels[row]]; a label outside [0, cols) is an error
struct NllForward {
  static constexpr const char* name = "nll_loss";
  template <class T>
  using sig = void(const T* logp, const std::int64_t* labels, std::int64_t rows, std::int64_t cols,
                   T* out, bool mean);
};
struct NllBackward {
  static constexpr const char* name = "nll_loss backward";
  template <class T>
  using sig = void(const T* gy, const std::int64_t* labels, std::int64_t rows, std::int64_t cols,
                   T* gx, bool mean);
};
}  // namespace op

enum class Reduction { mean, sum };

// input (N, C) log-probabilities, target (N) class indices in [0, C) -> scalar
template <Real T>
Tensor<T> nll_loss(const Tensor<T>& input, const Tensor<std::int64_t>& target,
                   Reduction reduction = Reduction::mean) {
  EMBER_CHECK(input.dim() == 2, "nll_loss: input must be (N, C), got ", shape_str(input.shape()));
  EMBER_CHECK(target.dim() == 1 && target.size(0) == input.size(0), "nll_loss: target ",
              shape_str(target.shape()), " does not match input ", shape_str(input.shape()));
  const std::int64_t n = input.size(0), c = input.size(1);
  EMBER_CHECK(n > 0 || reduction == Reduction::sum, "nll_loss: empty batch with mean reduction");
  detail::check_same_device(input.device(), target.device());
  const Tensor<T> ic = input.contiguous();
  const Tensor<std::int64_t> tc = target.contiguous();
  const bool mean = reduction == Reduction::mean;
  if (input.device().is_cuda()) {
    const int dev = input.device().index;
    Tensor<T> out = Tensor<T>::empty({}, input.device());
    backend::cuda<op::NllForward, T>(dev, ic.data(), tc.data(), n, c, out.data(), mean);
    autograd::record(out, "NllLossBackward0", {input}, autograd::saved(tc),
                     [tc, n, c, mean, dev](const Tensor<T>& g) {
      Tensor<T> gx = Tensor<T>::empty({n, c}, g.device());
      const Tensor<T> gc = g.contiguous();
      if (gx.numel() > 0) backend::cuda<op::NllBackward, T>(dev, gc.data(), tc.data(), n, c, gx.data(), mean);
      return std::vector<Tensor<T>>{gx};
    });
    return out;
  }
  const std::int64_t* pt = tc.data();
  double acc = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    EMBER_CHECK(pt[i] >= 0 && pt[i] < c, "nll_loss: target ", pt[i], " at index ", i,
                " is out of range for ", c, " classes");
    acc -= ic.data()[i * c + pt[i]];
  }
  const T scale = reduction == Reduction::mean ? T(1) / static_cast<T>(n) : T(1);
  Tensor<T> out = Tensor<T>::scalar(static_cast<T>(acc) * scale);
  autograd::record(out, "NllLossBackward0", {input}, autograd::saved(tc),
                   [tc, n, c, scale](const Tensor<T>& g) {
    Tensor<T> gx = Tensor<T>::zeros({n, c});
    const T gv = g.item() * scale;
    for (std::int64_t i = 0; i < n; ++i) gx.data()[i * c + tc.data()[i]] = -gv;
    return std::vector<Tensor<T>>{gx};
  });
  return out;
}

// log_softmax over classes, then nll_loss.
template <Real T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<std::int64_t>& target,
                        Reduction reduction = Reduction::mean) {
  return nll_loss(log_softmax(logits, 1), target, reduction);
}

}  // namespace ember
