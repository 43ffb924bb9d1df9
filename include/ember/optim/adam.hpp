#pragma once
// Adam and AdamW with PyTorch's exact update rules and defaults (torch.optim.Adam and AdamW,
// the single-tensor loop of PyTorch 2.15; backend/cpu/adam.hpp has the element-wise math).
// For each parameter with a gradient, step = step + 1 (a float count, as PyTorch's), then
//   bias_correction1 = 1 - beta1^step,  bias_correction2 = 1 - beta2^step     (in double)
//   g = maximize ? -grad : grad
//   Adam:   g = g + weight_decay * p          AdamW: p = p * (1 - lr * weight_decay)
//   exp_avg = lerp(exp_avg, g, 1 - beta1)
//   exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g
//   amsgrad: max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq), used below instead
//   p = p - lr / bias_correction1 * exp_avg / (sqrt(exp_avg_sq) / sqrt(bias_correction2) + eps)
// One fused launch per parameter group on a device (kernels/adam.cuh). A step is an in-place
// write: it bumps each updated parameter's version, as SGD's does.

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ember/backend/cpu/adam.hpp"
#include "ember/backend/dispatch.hpp"
#include "ember/backend/optim_params.hpp"
#include "ember/core/macros.hpp"
#include "ember/core/tensor.hpp"
#include "ember/optim/optimizer.hpp"

namespace ember::op {
/// One Adam/AdamW step over `count` float parameters, fused on a device.
struct AdamStep {
  static constexpr const char* name = "Adam step";
  template <class T>
  static constexpr auto cpu = &ember::cpu::adam_step<T>;
};
}  // namespace ember::op

// The step's scalars (bias corrections, step size, AdamW's 1 - lr * weight_decay) are worked
// out in double as PyTorch's Python does, with no fused multiply-add (but in a translation unit
// compiled by nvcc, whose front end knows no such pragma).
EMBER_FP_CONTRACT_OFF

namespace ember::optim {

/// torch.optim.Adam's options and defaults; with decoupled_weight_decay, AdamW's update.
struct AdamOptions {
  /// Learning rate (PyTorch's lr).
  double lr = 1e-3;
  /// Decay rates of the first and second moment averages (beta1, beta2), each in [0, 1).
  std::pair<double, double> betas = {0.9, 0.999};
  /// Added to the denominator sqrt(v_hat) for numerical stability.
  double eps = 1e-8;
  /// L2 penalty added to the gradient (or decoupled, see decoupled_weight_decay).
  double weight_decay = 0;
  /// Use the maximum of past second moments (AMSGrad).
  bool amsgrad = false;
  /// Maximize the objective: step along the gradient instead of against it.
  bool maximize = false;
  /// true: AdamW's decay, p = p * (1 - lr * weight_decay), instead of adding it to the gradient
  bool decoupled_weight_decay = false;

  /// Calls f(name, field) for every option, with PyTorch's names (betas as beta1 and beta2).
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f("lr", s.lr);
    f("beta1", s.betas.first);
    f("beta2", s.betas.second);
    f("eps", s.eps);
    f("weight_decay", s.weight_decay);
    f("amsgrad", s.amsgrad);
    f("maximize", s.maximize);
    f("decoupled_weight_decay", s.decoupled_weight_decay);
  }
};

/// AdamW's options: Adam's, with weight_decay 1e-2 and the decay always decoupled.
/// torch.optim.AdamW's options and defaults (weight_decay 1e-2, always decoupled).
struct AdamWOptions {
  /// Learning rate.
  double lr = 1e-3;
  /// Decay rates of the first and second moment averages (beta1, beta2), each in [0, 1).
  std::pair<double, double> betas = {0.9, 0.999};
  /// Added to the denominator for numerical stability.
  double eps = 1e-8;
  /// Decoupled weight decay: p = p * (1 - lr * weight_decay) before the Adam update.
  double weight_decay = 1e-2;
  /// Use the maximum of past second moments (AMSGrad).
  bool amsgrad = false;
  /// Maximize the objective instead of minimizing it.
  bool maximize = false;

  /// Calls f(name, field) for every option, with PyTorch's names (betas as beta1 and beta2).
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f("lr", s.lr);
    f("beta1", s.betas.first);
    f("beta2", s.betas.second);
    f("eps", s.eps);
    f("weight_decay", s.weight_decay);
    f("amsgrad", s.amsgrad);
    f("maximize", s.maximize);
  }
};

/// One parameter's Adam state (PyTorch's "step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq").
struct AdamParamState {
  float step = 0;  ///< undefined tensors below: no step yet
  /// First and second moment averages and (amsgrad) their running maximum, each of the parameter's
  /// shape and device.
  /// @{
  Tensor<float> exp_avg, exp_avg_sq, max_exp_avg_sq;
  /// @}
};

/// The common code of Adam and AdamW: one update per step() over every group, fused on CUDA.
template <class Options>
class AdamBase : public OptimizerBase<Options, AdamParamState> {
  using Base = OptimizerBase<Options, AdamParamState>;

 public:
  /// Checks every group's options (throws ember::Error naming the bad one).
  AdamBase(std::vector<ParamGroup<Options>> groups, const char* name)
      : Base(std::move(groups), name, &check) {}

  /// Throws ember::Error with PyTorch's message for a negative lr, eps or weight_decay, or betas
  /// outside [0, 1).
  static void check(const Options& o) {
    EMBER_CHECK(o.lr >= 0, "Adam: invalid learning rate ", o.lr);
    EMBER_CHECK(o.eps >= 0, "Adam: invalid epsilon value ", o.eps);
    EMBER_CHECK(o.betas.first >= 0 && o.betas.first < 1,
                "Adam: invalid beta parameter at index 0: ", o.betas.first);
    EMBER_CHECK(o.betas.second >= 0 && o.betas.second < 1,
                "Adam: invalid beta parameter at index 1: ", o.betas.second);
    EMBER_CHECK(o.weight_decay >= 0, "Adam: invalid weight_decay value ", o.weight_decay);
  }

  /// One Adam update of every parameter that has a gradient (throws if parameters are on different
  /// devices).
  void step() override {
    const Device dev = this->device();
    std::size_t index = 0;
    for (auto& e : this->groups_) {
      const Options& o = e.group.options;
      bool decoupled = true;
      if constexpr (requires { o.decoupled_weight_decay; }) decoupled = o.decoupled_weight_decay;
      const double beta1 = o.betas.first, beta2 = o.betas.second;
      std::vector<backend::AdamTensorRef> refs;
      for (Tensor<float>& p : e.group.params) {
        AdamParamState& s = this->state_[index++];
        Tensor<float> grad = this->checked_grad(p, dev);
        if (!grad.defined()) continue;
        if (!s.exp_avg.defined()) {  // PyTorch's lazy state initialisation
          s.step = 0;
          s.exp_avg = Tensor<float>::zeros(p.shape(), dev);
          s.exp_avg_sq = Tensor<float>::zeros(p.shape(), dev);
          if (o.amsgrad) s.max_exp_avg_sq = Tensor<float>::zeros(p.shape(), dev);
        }
        EMBER_CHECK(!o.amsgrad || s.max_exp_avg_sq.defined(), this->name_,
                    ": amsgrad was switched on after the parameter's first step");
        s.step += 1.0f;
        const double step = static_cast<double>(s.step);
        const double bias_correction1 = 1 - std::pow(beta1, step);
        const double bias_correction2 = 1 - std::pow(beta2, step);
        const double step_size = o.lr / bias_correction1;
        const double bias_correction2_sqrt = std::pow(bias_correction2, 0.5);
        p.bump_version("Adam.step");
        s.exp_avg.bump_version("Adam.step");
        s.exp_avg_sq.bump_version("Adam.step");
        refs.push_back({p.data(), grad.data(), s.exp_avg.data(), s.exp_avg_sq.data(),
                        o.amsgrad ? s.max_exp_avg_sq.data() : nullptr, p.numel(),
                        static_cast<float>(-step_size), static_cast<float>(bias_correction2_sqrt)});
      }
      const bool has_decay = o.weight_decay != 0;
      const backend::AdamStepArgs args{
          static_cast<float>(1 - beta1),
          static_cast<float>(beta2),
          static_cast<float>(1 - beta2),
          static_cast<float>(o.eps),
          static_cast<float>(has_decay && !decoupled ? o.weight_decay : 0.0),
          static_cast<float>(has_decay && decoupled ? 1 - o.lr * o.weight_decay : 1.0),
          o.amsgrad,
          o.maximize};
      if (!refs.empty())
        backend::run<op::AdamStep, float>(dev, refs.data(), static_cast<int>(refs.size()), args);
    }
    ++this->steps_;
  }

  /// Parameter k's state (in the order of params()).
  [[nodiscard]] const AdamParamState& param_state(std::size_t k) const {
    EMBER_CHECK(k < this->state_.size(), this->name_, ": no parameter ", k);
    return this->state_[k];
  }

 protected:
  /// The parameter's state as PyTorch names it, copied to the CPU; empty before its first step.
  [[nodiscard]] std::map<std::string, Tensor<float>> save_state(
      const AdamParamState& s) const override {
    if (!s.exp_avg.defined()) return {};
    std::map<std::string, Tensor<float>> m{
        {"step", Tensor<float>::scalar(s.step)},
        {"exp_avg", detail::copy_to(s.exp_avg, Device::cpu())},
        {"exp_avg_sq", detail::copy_to(s.exp_avg_sq, Device::cpu())}};
    if (s.max_exp_avg_sq.defined())
      m["max_exp_avg_sq"] = detail::copy_to(s.max_exp_avg_sq, Device::cpu());
    return m;
  }
  /// Reads a parameter's state back, checking keys, shapes and the step count; copies onto the
  /// parameter's device.
  [[nodiscard]] AdamParamState load_state(const std::map<std::string, Tensor<float>>& saved,
                                          const Tensor<float>& param,
                                          std::size_t k) const override {
    this->check_keys(saved, {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}, k);
    AdamParamState s;
    if (saved.empty()) return s;
    s.step = this->load_step(saved, k);
    s.exp_avg = this->load_tensor(saved, "exp_avg", param, k);
    s.exp_avg_sq = this->load_tensor(saved, "exp_avg_sq", param, k);
    if (saved.count("max_exp_avg_sq") != 0)
      s.max_exp_avg_sq = this->load_tensor(saved, "max_exp_avg_sq", param, k);
    return s;
  }
};

/// Adam (L2 weight decay added to the gradient, or decoupled with decoupled_weight_decay).
class Adam : public AdamBase<AdamOptions> {
 public:
  /// One group of parameters with one set of options, as torch.optim.Adam(params, ...).
  Adam(std::vector<Tensor<float>> params, AdamOptions options = {})
      : Adam(std::vector<ParamGroup<AdamOptions>>{{std::move(params), options}}) {}
  /// Several parameter groups, each with its own options.
  explicit Adam(std::vector<ParamGroup<AdamOptions>> groups)
      : AdamBase(std::move(groups), "Adam") {}
};

/// AdamW: Adam with decoupled weight decay (Loshchilov and Hutter), weight_decay 1e-2.
class AdamW : public AdamBase<AdamWOptions> {
 public:
  /// One group of parameters with one set of options, as torch.optim.AdamW(params, ...).
  AdamW(std::vector<Tensor<float>> params, AdamWOptions options = {})
      : AdamW(std::vector<ParamGroup<AdamWOptions>>{{std::move(params), options}}) {}
  /// Several parameter groups, each with its own options (e.g. from decay_groups()).
  explicit AdamW(std::vector<ParamGroup<AdamWOptions>> groups)
      : AdamBase(std::move(groups), "AdamW") {}
};

}  // namespace ember::optim

EMBER_FP_CONTRACT_RESTORE
