#pragma once
// Step lists (nn::Step, nn/module.hpp): running one (run_steps, the reference for what an
// exporter or a quantizer takes a model to compute) and folding batch normalization into the
// convolution or linear layer before it (fold_batch_norm, used by both exporters).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ember/nn/module.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/batch_norm.hpp"
#include "ember/ops/conv.hpp"
#include "ember/ops/linear.hpp"
#include "ember/ops/pool.hpp"

namespace ember::nn {

/// "conv1." -> "conv1": a layer's step name is its state_dict prefix.
inline std::string step_name(const std::string& prefix) {
  return !prefix.empty() && prefix.back() == '.' ? prefix.substr(0, prefix.size() - 1) : prefix;
}

/// "step 'conv1' (conv2d)", or with the module's type: "step '3' (gelu, a GELU)".
inline std::string describe(const Step& s) {
  std::string d = "step '" + s.name + "' (" + op_name(s.op);
  if (s.layer != nullptr) d += ", a " + s.layer->type_name();
  return d + ")";
}

/// One step in eval mode (dropout is the identity).
inline Tensor run_step(const Step& s, const Tensor& h) {
  using Op = Step::Op;
  switch (s.op) {
    case Op::conv2d:
      EMBER_CHECK(s.weight.defined(), describe(s), ": no weight");
      return conv2d(h, s.weight, s.bias, {.stride = s.stride, .padding = s.padding, .dilation = s.dilation});
    case Op::linear:
      EMBER_CHECK(s.weight.defined(), describe(s), ": no weight");
      return linear(h, s.weight, s.bias);
    case Op::batch_norm:
      EMBER_CHECK(s.running_mean.defined() && s.running_var.defined(), describe(s),
                  ": no running statistics");
      return batch_norm(h, s.running_mean, s.running_var, s.weight, s.bias, false, 0.0, s.eps);
    case Op::relu: return relu(h);
    case Op::max_pool2d: return max_pool2d(h, s.kernel, s.stride, s.padding);
    case Op::avg_pool2d: {
      const Pool2dParams& p = s.pool;
      return avg_pool2d(h, {p.kh, p.kw}, {p.sh, p.sw}, {p.ph, p.pw}, p.ceil_mode, p.count_include_pad);
    }
    case Op::adaptive_avg_pool2d: return adaptive_avg_pool2d(h, {s.pool.out_h, s.pool.out_w});
    case Op::flatten: return h.flatten(s.dim);
    case Op::log_softmax: return log_softmax(h, s.dim);
    case Op::softmax: return softmax(h, s.dim);
    case Op::sigmoid: return sigmoid(h);
    case Op::tanh: return ember::tanh(h);
    case Op::gelu: return gelu(h, s.approximate_tanh ? "tanh" : "none");
    case Op::leaky_relu: return leaky_relu(h, s.alpha);
    case Op::elu: return elu(h, s.alpha);
    case Op::silu: return silu(h);
    case Op::dropout: return h;
  }
  throw Error(describe(s) + ": unknown op");
}

/// Runs a step list in eval mode: what an exporter or a quantizer takes the model to compute. For
/// a model that lists its steps, run_steps(m.steps(), x) equals m.forward(x) after m.eval().
/// observe(i, h), when given, sees the input of every step i.
inline Tensor run_steps(const std::vector<Step>& steps, const Tensor& x,
                        const std::function<void(std::size_t, const Tensor&)>& observe = {}) {
  Tensor h = x;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (observe) observe(i, h);
    h = run_step(steps[i], h);
  }
  return h;
}

/// The steps with every batch_norm that directly follows a conv2d or linear step folded into
/// that step's weight and bias (in double, then rounded to float):
///   a = gamma / sqrt(running_var + eps),  w' = w * a (per output channel),
///   b' = (b - mean) * a + beta
/// (gamma 1 and beta 0 when the batch norm is not affine, b 0 when the layer has no bias). The
/// folded step keeps its name and records the batch norm's in `folded`. Equal to the unfolded
/// steps up to float rounding, provided a linear step's output is (N, features), as both
/// exporters require (a linear over the last dimension of (N, C, L) would be normalized over C).
/// A batch_norm after anything else, or whose channel count differs from the layer's outputs,
/// stays as it is.
inline std::vector<Step> fold_batch_norm(const std::vector<Step>& steps) {
  using Op = Step::Op;
  std::vector<Step> out;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    const bool layer = (s.op == Op::conv2d || s.op == Op::linear) && s.weight.defined();
    if (!layer || i + 1 == steps.size() || steps[i + 1].op != Op::batch_norm) {
      out.push_back(s);
      continue;
    }
    const Step& bn = steps[i + 1];
    const std::int64_t k = s.weight.size(0);
    if (!bn.running_mean.defined() || !bn.running_var.defined() || bn.running_mean.numel() != k) {
      out.push_back(s);
      continue;
    }
    EMBER_CHECK(s.weight.device().is_cpu() && bn.running_mean.device().is_cpu(),
                "fold_batch_norm: ", describe(s), " and ", describe(bn),
                " must be on the CPU (model.to(Device::cpu()))");
    const std::vector<float> w = s.weight.contiguous().to_vector();
    const std::vector<float> mean = bn.running_mean.contiguous().to_vector();
    const std::vector<float> var = bn.running_var.contiguous().to_vector();
    const auto vec_or = [k](const Tensor& t, float v) {
      return t.defined() ? t.contiguous().to_vector() : std::vector<float>(static_cast<std::size_t>(k), v);
    };
    const std::vector<float> gamma = vec_or(bn.weight, 1.0f), beta = vec_or(bn.bias, 0.0f);
    const std::vector<float> b = vec_or(s.bias, 0.0f);
    const std::size_t per = w.size() / static_cast<std::size_t>(k);
    std::vector<float> w2(w.size()), b2(static_cast<std::size_t>(k));
    for (std::size_t o = 0; o < static_cast<std::size_t>(k); ++o) {
      const double a = static_cast<double>(gamma[o]) / std::sqrt(static_cast<double>(var[o]) + bn.eps);
      for (std::size_t j = 0; j < per; ++j) w2[o * per + j] = static_cast<float>(w[o * per + j] * a);
      b2[o] = static_cast<float>((static_cast<double>(b[o]) - mean[o]) * a + beta[o]);
    }
    Step f = s;
    f.weight = Tensor::from_vector(w2, s.weight.shape());
    f.bias = Tensor::from_vector(b2, {k});
    f.folded = bn.name;
    out.push_back(std::move(f));
    ++i;  // the batch norm is done
  }
  return out;
}

}  // namespace ember::nn
