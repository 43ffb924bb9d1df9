#pragma once
// Gradient clipping, PyTorch's torch.nn.utils.clip_grad_norm_ and clip_grad_value_.
//
// clip_grad_norm_: the total norm is the norm of the per-parameter gradient norms (the norm of
// all gradients taken as one vector); every gradient is multiplied by
// min(1, max_norm / (total_norm + 1e-6)) in float, as PyTorch does, even when that is 1.
// Norms are summed in double and rounded to float once. Compositions of existing ops (a host
// read of each gradient, then mul_scalar / clamp on its device): no kernels of their own.

#include <cmath>
#include <limits>
#include <vector>

#include "ember/autograd/grad_mode.hpp"
#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/compare.hpp"
#include "ember/ops/elementwise.hpp"

namespace ember::nn::utils {

/// The gradients' total norm of order norm_type (2, 1, any p > 0, or infinity), after which
/// every gradient is scaled so that it is at most max_norm. Returns the total norm (before
/// clipping), as a float value. error_if_nonfinite: throw when the total norm is NaN or
/// infinite (and leave the gradients alone).
inline double clip_grad_norm_(const std::vector<::ember::Tensor<float>>& params, double max_norm,
                              double norm_type = 2.0, bool error_if_nonfinite = false) {
  EMBER_CHECK(norm_type > 0 || std::isinf(norm_type),
              "clip_grad_norm_: norm_type must be positive or inf, got ", norm_type);
  std::vector<::ember::Tensor<float>> grads;
  for (const ::ember::Tensor<float>& p : params) {
    ::ember::Tensor<float> g = p.grad();
    if (g.defined()) grads.push_back(g);
  }
  if (grads.empty()) return 0.0;
  const bool inf_norm = std::isinf(norm_type);
  // The norm of a list of values, in double (NaN propagates, as in PyTorch).
  const auto norm_of = [&](const auto& values) {
    double acc = 0;
    for (const auto v : values) {
      const double a = std::abs(static_cast<double>(v));
      if (inf_norm)
        acc = (std::isnan(a) || std::isnan(acc)) ? a + acc : std::max(acc, a);
      else if (norm_type == 2)
        acc += a * a;
      else if (norm_type == 1)
        acc += a;
      else
        acc += std::pow(a, norm_type);
    }
    if (inf_norm || norm_type == 1) return acc;
    return norm_type == 2 ? std::sqrt(acc) : std::pow(acc, 1 / norm_type);
  };
  // Per-gradient norms, each rounded to float as PyTorch's vector_norm returns them.
  std::vector<float> norms;
  for (const ::ember::Tensor<float>& g : grads)
    norms.push_back(static_cast<float>(norm_of(g.to_vector())));
  const double acc = norm_of(norms);
  const float total = static_cast<float>(acc);
  EMBER_CHECK(!error_if_nonfinite || std::isfinite(total), "clip_grad_norm_: the total norm of ",
              "order ", norm_type, " for gradients from `parameters` is non-finite (", total,
              "), so it cannot be clipped. To disable this error and scale the gradients by the "
              "non-finite norm anyway, set `error_if_nonfinite=false`");
  // clip_coef = max_norm / (total_norm + 1e-6), clamped to at most 1 (NaN stays NaN), in float.
  const float coef = static_cast<float>(max_norm) / (total + 1e-6f);
  const float clamped = std::isnan(coef) ? coef : std::min(coef, 1.0f);
  NoGradGuard no_grad;
  for (::ember::Tensor<float>& g : grads) g.copy_(mul_scalar(g, clamped));
  return static_cast<double>(total);
}

/// Clamps every gradient to [-clip_value, clip_value] in place.
inline void clip_grad_value_(const std::vector<::ember::Tensor<float>>& params, double clip_value) {
  EMBER_CHECK(clip_value >= 0, "clip_grad_value_: clip_value must be >= 0, got ", clip_value);
  const auto c = static_cast<float>(clip_value);
  NoGradGuard no_grad;
  for (const ::ember::Tensor<float>& p : params) {
    ::ember::Tensor<float> g = p.grad();
    if (g.defined()) g.copy_(clamp(g, std::optional<float>(-c), std::optional<float>(c)));
  }
}

}  // namespace ember::nn::utils
