#pragma once
// nll_loss and cross_entropy, PyTorch's semantics (reduction mean or sum).

#include <cstdint>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/activation.hpp"

namespace ember {

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
    backend::cuda_math<T>().nll_forward(dev, ic.data(), tc.data(), n, c, out.data(), mean);
    autograd::record(out, "NllLossBackward0", {input}, autograd::saved(tc),
                     [tc, n, c, mean, dev](const Tensor<T>& g) {
      Tensor<T> gx = Tensor<T>::empty({n, c}, g.device());
      const Tensor<T> gc = g.contiguous();
      if (gx.numel() > 0) backend::cuda_math<T>().nll_backward(dev, gc.data(), tc.data(), n, c, gx.data(), mean);
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
