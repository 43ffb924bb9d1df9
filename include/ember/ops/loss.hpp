#pragma once
// nll_loss and cross_entropy (with label_smoothing), PyTorch's semantics (reduction mean or sum);
// mse_loss, l1_loss, binary_cross_entropy and binary_cross_entropy_with_logits as compositions of
// differentiable elementwise ops (every backend, autograd from the parts; reduction also none).

#include <cstdint>
#include <vector>

#include "ember/backend/cpu/loss.hpp"
#include "ember/backend/dispatch.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/reduce.hpp"

namespace ember {

namespace op {
// out[0] = -sum (or mean) over rows of logp[row, labels[row]]; a label outside [0, cols) is an error
struct NllForward {
  static constexpr const char* name = "nll_loss";
  template <class T>
  static constexpr auto cpu = &ember::cpu::nll_forward<T>;
};
struct NllBackward {
  static constexpr const char* name = "nll_loss backward";
  template <class T>
  static constexpr auto cpu = &ember::cpu::nll_backward<T>;
};
}  // namespace op

/// none (the elementwise loss) is for the elementwise losses below; nll_loss and cross_entropy
/// refuse it.
enum class Reduction { mean, sum, none };

/// input (N, C) log-probabilities, target (N) class indices in [0, C) -> scalar
template <Real T>
Tensor<T> nll_loss(const Tensor<T>& input, const Tensor<std::int64_t>& target,
                   Reduction reduction = Reduction::mean) {
  EMBER_CHECK(input.dim() == 2, "nll_loss: input must be (N, C), got ", shape_str(input.shape()));
  EMBER_CHECK(reduction != Reduction::none, "nll_loss: reduction none is not supported");
  EMBER_CHECK(target.dim() == 1 && target.size(0) == input.size(0), "nll_loss: target ",
              shape_str(target.shape()), " does not match input ", shape_str(input.shape()));
  const std::int64_t n = input.size(0), c = input.size(1);
  EMBER_CHECK(n > 0 || reduction == Reduction::sum, "nll_loss: empty batch with mean reduction");
  detail::check_same_device(input.device(), target.device());
  const Tensor<T> ic = input.contiguous();
  const Tensor<std::int64_t> tc = target.contiguous();
  const bool mean = reduction == Reduction::mean;
  const Device dev = input.device();
  Tensor<T> out = Tensor<T>::empty({}, dev);
  backend::run<op::NllForward, T>(dev, ic.data(), tc.data(), n, c, out.data(), mean);
  autograd::record(out, "NllLossBackward0", {input}, autograd::saved(tc),
                   [tc, n, c, mean, dev](const Tensor<T>& g) {
    Tensor<T> gx = Tensor<T>::empty({n, c}, dev);
    const Tensor<T> gc = g.contiguous();
    if (gx.numel() > 0) backend::run<op::NllBackward, T>(dev, gc.data(), tc.data(), n, c, gx.data(), mean);
    return std::vector<Tensor<T>>{gx};
  });
  return out;
}

/// log_softmax over classes, then nll_loss. With label_smoothing ls in [0, 1] (PyTorch's
/// F.cross_entropy with class-index targets and no weight) the loss of row i is
///   (1 - ls) * -logp[i, target[i]] + ls / C * sum_c -logp[i, c],
/// summed over the rows, or averaged over them for mean.
template <Real T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<std::int64_t>& target,
                        Reduction reduction = Reduction::mean, double label_smoothing = 0.0) {
  EMBER_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0,
              "cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
  const Tensor<T> logp = log_softmax(logits, 1);
  const Tensor<T> nll = nll_loss(logp, target, reduction);  // checks the shapes and the reduction
  if (label_smoothing == 0.0) return nll;
  const std::int64_t n = logits.size(0), c = logits.size(1);
  double smooth_scale = label_smoothing / static_cast<double>(c);
  if (reduction == Reduction::mean) smooth_scale /= static_cast<double>(n);
  return add(mul_scalar(nll, static_cast<T>(1.0 - label_smoothing)),
             mul_scalar(sum(neg(logp)), static_cast<T>(smooth_scale)));
}

namespace detail {
template <Real T>
void check_loss_shapes(const char* op, const Tensor<T>& input, const Tensor<T>& target) {
  EMBER_CHECK(input.shape() == target.shape(), op, ": input ", shape_str(input.shape()), " and target ",
              shape_str(target.shape()), " must have the same shape");
  check_same_device(input.device(), target.device());
}
// A weight multiplies the elementwise loss: its shape must broadcast to the input's.
template <Real T>
void check_loss_weight(const char* op, const char* what, const Tensor<T>& w, const Tensor<T>& input) {
  if (!w.defined()) return;
  const Shape& ws = w.shape();
  const Shape& is = input.shape();
  bool ok = ws.size() <= is.size();
  for (std::size_t i = 0; ok && i < ws.size(); ++i) {
    const std::int64_t d = ws[ws.size() - 1 - i];
    ok = d == 1 || d == is[is.size() - 1 - i];
  }
  EMBER_CHECK(ok, op, ": ", what, " ",
              shape_str(w.shape()), " does not broadcast to input ", shape_str(input.shape()));
  check_same_device(w.device(), input.device());
}
template <Real T>
Tensor<T> reduce_loss(const Tensor<T>& l, Reduction r) {
  switch (r) {
    case Reduction::none: return l;
    case Reduction::sum: return sum(l);
    case Reduction::mean: break;
  }
  return mean(l);
}
// max(a, lo) as relu(a - lo) + lo: the gradient is 1 above lo and 0 at and below it.
template <Real T>
Tensor<T> max_scalar(const Tensor<T>& a, double lo) {
  return add_scalar(relu(add_scalar(a, static_cast<T>(-lo))), static_cast<T>(lo));
}
}  // namespace detail

/// (input - target)^2, reduced
template <Real T>
Tensor<T> mse_loss(const Tensor<T>& input, const Tensor<T>& target, Reduction reduction = Reduction::mean) {
  detail::check_loss_shapes("mse_loss", input, target);
  const Tensor<T> d = sub(input, target);
  return detail::reduce_loss(mul(d, d), reduction);
}

/// |input - target|, reduced; |d| = relu(d) + relu(-d), whose gradient at 0 is 0 (PyTorch's
/// sign(0)).
template <Real T>
Tensor<T> l1_loss(const Tensor<T>& input, const Tensor<T>& target, Reduction reduction = Reduction::mean) {
  detail::check_loss_shapes("l1_loss", input, target);
  const Tensor<T> d = sub(input, target);
  return detail::reduce_loss(add(relu(d), relu(neg(d))), reduction);
}

/// -weight * (target * log(input) + (1 - target) * log(1 - input)), each log clamped to >= -100 as
/// PyTorch does, so input 0 or 1 gives a finite loss (the gradient there is NaN, where PyTorch's
/// clamps its denominator). input is taken to be in [0, 1] (not checked).
template <Real T>
Tensor<T> binary_cross_entropy(const Tensor<T>& input, const Tensor<T>& target, const Tensor<T>& weight = {},
                               Reduction reduction = Reduction::mean) {
  detail::check_loss_shapes("binary_cross_entropy", input, target);
  detail::check_loss_weight("binary_cross_entropy", "weight", weight, input);
  const Tensor<T> log_x = detail::max_scalar(log(input), -100.0);
  const Tensor<T> log_1mx = detail::max_scalar(log(add_scalar(neg(input), T(1))), -100.0);
  Tensor<T> l = neg(add(mul(target, log_x), mul(add_scalar(neg(target), T(1)), log_1mx)));
  if (weight.defined()) l = mul(l, weight);
  return detail::reduce_loss(l, reduction);
}

/// binary_cross_entropy(sigmoid(input), target) in the stable form PyTorch uses:
///   (1 - t) * x + (1 + (pos_weight - 1) * t) * (log(1 + exp(-|x|)) + relu(-x)), times weight.
/// |x| is written x + 2 relu(-x), so that at x = 0 the gradient is the true one (-sigmoid(0) from
/// the softplus term). pos_weight broadcasts to the input (PyTorch: one per class, the last dim).
template <Real T>
Tensor<T> binary_cross_entropy_with_logits(const Tensor<T>& input, const Tensor<T>& target,
                                           const Tensor<T>& weight = {}, const Tensor<T>& pos_weight = {},
                                           Reduction reduction = Reduction::mean) {
  constexpr const char* op = "binary_cross_entropy_with_logits";
  detail::check_loss_shapes(op, input, target);
  detail::check_loss_weight(op, "weight", weight, input);
  detail::check_loss_weight(op, "pos_weight", pos_weight, input);
  const Tensor<T> relu_neg = relu(neg(input));
  const Tensor<T> abs_x = add(input, mul_scalar(relu_neg, T(2)));
  const Tensor<T> softplus_neg = add(log(add_scalar(exp(neg(abs_x)), T(1))), relu_neg);  // log(1 + exp(-x))
  const Tensor<T> one_minus_t = add_scalar(neg(target), T(1));
  Tensor<T> l = mul(one_minus_t, input);
  if (pos_weight.defined())
    l = add(l, mul(add_scalar(mul(add_scalar(pos_weight, T(-1)), target), T(1)), softplus_neg));
  else
    l = add(l, softplus_neg);
  if (weight.defined()) l = mul(l, weight);
  return detail::reduce_loss(l, reduction);
}

}  // namespace ember
