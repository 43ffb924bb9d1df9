#pragma once
// RMSprop with PyTorch's exact update rule and defaults (torch.optim.RMSprop, the single-tensor
// loop of PyTorch 2.15; backend/cpu/rmsprop.hpp has the element-wise math):
//   g = (maximize ? -grad : grad) + weight_decay * p
//   square_avg = alpha * square_avg + (1 - alpha) * g * g
//   centered: grad_avg = lerp(grad_avg, g, 1 - alpha); avg = sqrt(square_avg - grad_avg^2) + eps
//   else:     avg = sqrt(square_avg) + eps
//   momentum > 0: buf = momentum * buf + g / avg;  p = p - lr * buf
//   else:         p = p - lr * g / avg
// One fused launch per parameter group on a device (kernels/rmsprop.cuh).

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ember/backend/cpu/rmsprop.hpp"
#include "ember/backend/dispatch.hpp"
#include "ember/backend/optim_params.hpp"
#include "ember/core/tensor.hpp"
#include "ember/optim/optimizer.hpp"

namespace ember::op {
/// One RMSprop step over `count` float parameters, fused on a device.
struct RmspropStep {
  static constexpr const char* name = "RMSprop step";
  template <class T>
  static constexpr auto cpu = &ember::cpu::rmsprop_step<T>;
};
}  // namespace ember::op

namespace ember::optim {

/// torch.optim.RMSprop's options and defaults.
struct RMSpropOptions {
  /// Learning rate.
  double lr = 1e-2;
  /// Smoothing constant of the squared-gradient average.
  double alpha = 0.99;
  /// Added to the denominator for numerical stability.
  double eps = 1e-8;
  /// L2 penalty added to the gradient.
  double weight_decay = 0;
  /// Momentum factor (0: none).
  double momentum = 0;
  /// Normalise by the estimated variance (subtract the squared mean gradient).
  bool centered = false;
  /// Maximize the objective instead of minimizing it.
  bool maximize = false;

  /// Calls f(name, field) for every option, with PyTorch's names.
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f("lr", s.lr);
    f("alpha", s.alpha);
    f("eps", s.eps);
    f("weight_decay", s.weight_decay);
    f("momentum", s.momentum);
    f("centered", s.centered);
    f("maximize", s.maximize);
  }
};

/// One parameter's RMSprop state (PyTorch's "step", "square_avg", "momentum_buffer",
/// "grad_avg"); the last two only with momentum > 0 and centered.
struct RMSpropParamState {
  /// Steps taken for this parameter.
  float step = 0;
  /// Average squared gradient, momentum buffer (momentum > 0) and average gradient (centered), each
  /// of the parameter's shape.
  /// @{
  Tensor<float> square_avg, momentum_buffer, grad_avg;
  /// @}
};

/// RMSprop (torch.optim.RMSprop, the single-tensor update; fused on CUDA).
class RMSprop : public OptimizerBase<RMSpropOptions, RMSpropParamState> {
 public:
  /// One group of parameters with one set of options.
  RMSprop(std::vector<Tensor<float>> params, RMSpropOptions options = {})
      : RMSprop(std::vector<ParamGroup<RMSpropOptions>>{{std::move(params), options}}) {}
  /// Several parameter groups, each with its own options.
  explicit RMSprop(std::vector<ParamGroup<RMSpropOptions>> groups)
      : OptimizerBase(std::move(groups), "RMSprop", &check) {}

  /// Throws ember::Error with PyTorch's message for a negative lr, alpha, eps, momentum or
  /// weight_decay.
  static void check(const RMSpropOptions& o) {
    EMBER_CHECK(o.lr >= 0, "RMSprop: invalid learning rate ", o.lr);
    EMBER_CHECK(o.eps >= 0, "RMSprop: invalid epsilon value ", o.eps);
    EMBER_CHECK(o.momentum >= 0, "RMSprop: invalid momentum value ", o.momentum);
    EMBER_CHECK(o.weight_decay >= 0, "RMSprop: invalid weight_decay value ", o.weight_decay);
    EMBER_CHECK(o.alpha >= 0, "RMSprop: invalid alpha value ", o.alpha);
  }

  void step() override {
    const Device dev = device();
    std::size_t index = 0;
    for (Entry& e : groups_) {
      const RMSpropOptions& o = e.group.options;
      std::vector<backend::RmspropTensorRef> refs;
      for (Tensor<float>& p : e.group.params) {
        RMSpropParamState& s = state_[index++];
        Tensor<float> grad = checked_grad(p, dev);
        if (!grad.defined()) continue;
        if (!s.square_avg.defined()) {  // PyTorch's lazy state initialisation
          s.step = 0;
          s.square_avg = Tensor<float>::zeros(p.shape(), dev);
          if (o.momentum > 0) s.momentum_buffer = Tensor<float>::zeros(p.shape(), dev);
          if (o.centered) s.grad_avg = Tensor<float>::zeros(p.shape(), dev);
        }
        EMBER_CHECK(!(o.momentum > 0) || s.momentum_buffer.defined(), name_,
                    ": momentum was switched on after the parameter's first step");
        EMBER_CHECK(!o.centered || s.grad_avg.defined(), name_,
                    ": centered was switched on after the parameter's first step");
        s.step += 1.0f;
        p.bump_version("RMSprop.step");
        s.square_avg.bump_version("RMSprop.step");
        refs.push_back({p.data(), grad.data(), s.square_avg.data(),
                        o.centered ? s.grad_avg.data() : nullptr,
                        o.momentum > 0 ? s.momentum_buffer.data() : nullptr, p.numel()});
      }
      const backend::RmspropStepArgs args{static_cast<float>(-o.lr),
                                          static_cast<float>(o.alpha),
                                          static_cast<float>(1 - o.alpha),
                                          static_cast<float>(o.eps),
                                          static_cast<float>(o.weight_decay),
                                          static_cast<float>(o.momentum),
                                          o.centered,
                                          o.maximize};
      if (!refs.empty()) {
        backend::run<op::RmspropStep, float>(dev, refs.data(), static_cast<int>(refs.size()), args);
      }
    }
    ++steps_;
  }

  /// Parameter k's state (in the order of params()).
  [[nodiscard]] const RMSpropParamState& param_state(std::size_t k) const {
    EMBER_CHECK(k < state_.size(), name_, ": no parameter ", k);
    return state_[k];
  }

 protected:
  [[nodiscard]] std::map<std::string, Tensor<float>> save_state(
      const RMSpropParamState& s) const override {
    if (!s.square_avg.defined()) return {};
    std::map<std::string, Tensor<float>> m{
        {"step", Tensor<float>::scalar(s.step)},
        {"square_avg", detail::copy_to(s.square_avg, Device::cpu())}};
    if (s.momentum_buffer.defined())
      m["momentum_buffer"] = detail::copy_to(s.momentum_buffer, Device::cpu());
    if (s.grad_avg.defined()) m["grad_avg"] = detail::copy_to(s.grad_avg, Device::cpu());
    return m;
  }
  [[nodiscard]] RMSpropParamState load_state(const std::map<std::string, Tensor<float>>& saved,
                                             const Tensor<float>& param,
                                             std::size_t k) const override {
    check_keys(saved, {"step", "square_avg", "momentum_buffer", "grad_avg"}, k);
    RMSpropParamState s;
    if (saved.empty()) return s;
    s.step = load_step(saved, k);
    s.square_avg = load_tensor(saved, "square_avg", param, k);
    if (saved.count("momentum_buffer") != 0)
      s.momentum_buffer = load_tensor(saved, "momentum_buffer", param, k);
    if (saved.count("grad_avg") != 0) s.grad_avg = load_tensor(saved, "grad_avg", param, k);
    return s;
  }
};

}  // namespace ember::optim
