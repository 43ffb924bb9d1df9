#pragma once
// SGD with PyTorch's exact update rule and defaults (torch.optim.SGD):
//   g = (maximize ? -grad : grad) + weight_decay * p
//   if momentum != 0:
//     buf = g                                   on the first step
//     buf = momentum * buf + (1 - dampening) * g  afterwards
//     g = g + momentum * buf   if nesterov,  else  g = buf
//   p = p - lr * g
// Parameters without a gradient are skipped, as in PyTorch. A step is an in-place write: it
// bumps each updated parameter's version, so that backward() through a graph recorded before
// the step refuses to use the changed weights (stepping after backward(), as usual, is fine).

#include <cmath>
#include <cstdint>
#include <vector>

#include "ember/backend/cpu/sgd.hpp"
#include "ember/backend/dispatch.hpp"
#include "ember/core/tensor.hpp"
#include "ember/optim/optimizer.hpp"

namespace ember::op {
/// One SGD step over `count` float parameters (PyTorch's rule), fused on a device.
struct SgdStep {
  static constexpr const char* name = "SGD step";
  template <class T>
  static constexpr auto cpu = &ember::cpu::sgd_step<T>;
};
}  // namespace ember::op

namespace ember::optim {

/// torch.optim.SGD's options; lr defaults to 1e-3 as in PyTorch 2.
struct SGDOptions {
  /// Learning rate.
  double lr = 1e-3;
  /// Momentum factor (0: plain SGD).
  double momentum = 0.0;
  /// Dampening for momentum.
  double dampening = 0.0;
  /// L2 penalty added to the gradient.
  double weight_decay = 0.0;
  /// Nesterov momentum (needs momentum > 0 and dampening 0).
  bool nesterov = false;
  /// Maximize the objective instead of minimizing it.
  bool maximize = false;

  /// Calls f(name, field) for every option, with PyTorch's names.
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f("lr", s.lr);
    f("momentum", s.momentum);
    f("dampening", s.dampening);
    f("weight_decay", s.weight_decay);
    f("nesterov", s.nesterov);
    f("maximize", s.maximize);
  }
};

/// The per-parameter state is the momentum buffer (PyTorch's "momentum_buffer"), undefined until
/// the parameter's first step with a momentum.
class SGD : public OptimizerBase<SGDOptions, Tensor<float>> {
 public:
  /// One group of parameters with one set of options, as torch.optim.SGD(params, ...).
  SGD(std::vector<Tensor<float>> params, SGDOptions options = {})
      : SGD(std::vector<ParamGroup<SGDOptions>>{{std::move(params), options}}) {}
  /// Several parameter groups, each with its own options.
  explicit SGD(std::vector<ParamGroup<SGDOptions>> groups)
      : OptimizerBase(std::move(groups), "SGD", &check) {}

  /// Throws ember::Error with PyTorch's message for a negative lr, momentum or weight_decay, or
  /// nesterov without momentum or with dampening.
  static void check(const SGDOptions& o) {
    EMBER_CHECK(o.lr >= 0, "SGD: invalid learning rate ", o.lr);
    EMBER_CHECK(o.momentum >= 0, "SGD: invalid momentum ", o.momentum);
    EMBER_CHECK(o.weight_decay >= 0, "SGD: invalid weight_decay ", o.weight_decay);
    EMBER_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
                "SGD: nesterov momentum requires a momentum and zero dampening");
  }

  /// One step of every parameter with a gradient: per group, those taking their first momentum
  /// step in one call of the device's kernel (backend/cpu/sgd.hpp, kernels/sgd.cuh), the rest
  /// in another.
  void step() override {
    const Device dev = device();
    std::size_t index = 0;
    for (Entry& e : groups_) {
      const SGDOptions& o = e.group.options;
      std::vector<backend::SgdTensorRef> first, rest;
      const bool use_momentum = o.momentum != 0;
      for (Tensor<float>& p : e.group.params) {
        Tensor<float>& buf = state_[index++];
        Tensor<float> grad = checked_grad(p, dev);
        if (!grad.defined()) continue;
        const bool is_first = use_momentum && !buf.defined();
        if (is_first) buf = Tensor<float>::empty(p.shape(), dev);
        p.bump_version("SGD.step");  // an in-place update: a graph that saved p sees it
        if (use_momentum) buf.bump_version("SGD.step");
        backend::SgdTensorRef ref{p.data(), grad.data(), use_momentum ? buf.data() : nullptr,
                                  p.numel()};
        (is_first ? first : rest).push_back(ref);
      }
      backend::SgdStepArgs args{static_cast<float>(o.lr),
                                static_cast<float>(o.momentum),
                                static_cast<float>(1.0 - o.dampening),
                                static_cast<float>(o.weight_decay),
                                o.nesterov,
                                false,
                                o.maximize};
      using Step = op::SgdStep;
      if (!rest.empty())
        backend::run<Step, float>(dev, rest.data(), static_cast<int>(rest.size()), args);
      if (!first.empty()) {
        args.first_step = true;
        backend::run<Step, float>(dev, first.data(), static_cast<int>(first.size()), args);
      }
    }
    ++steps_;
  }

  /// One momentum buffer per parameter (undefined until that parameter's first step).
  [[nodiscard]] std::vector<Tensor<float>>& momentum_buffers() { return state_; }
  /// One momentum buffer per parameter (undefined until that parameter's first step).
  [[nodiscard]] const std::vector<Tensor<float>>& momentum_buffers() const { return state_; }
  /// Restores the step count of a resumed run (io/checkpoint.hpp); the update does not use it.
  void set_steps(std::int64_t steps) {
    EMBER_CHECK(steps >= 0, "SGD: invalid step count ", steps);
    steps_ = steps;
  }

 protected:
  [[nodiscard]] std::map<std::string, Tensor<float>> save_state(
      const Tensor<float>& buf) const override {
    if (!buf.defined()) return {};
    return {{"momentum_buffer", detail::copy_to(buf, Device::cpu())}};
  }
  [[nodiscard]] Tensor<float> load_state(const std::map<std::string, Tensor<float>>& saved,
                                         const Tensor<float>& param, std::size_t k) const override {
    check_keys(saved, {"momentum_buffer"}, k);
    if (saved.empty()) return {};
    return load_tensor(saved, "momentum_buffer", param, k);
  }
};

}  // namespace ember::optim

// StepLR lived here before the schedulers had their own header.
#include "ember/optim/lr_scheduler.hpp"
