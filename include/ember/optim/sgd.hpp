#pragma once
// SGD with PyTorch's exact update rule (torch.optim.SGD):
//   g = grad + weight_decay * p
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

namespace ember::op {
// One SGD step over `count` float parameters (PyTorch's rule), fused on a device.
struct SgdStep {
  static constexpr const char* name = "SGD step";
  template <class T>
  static constexpr auto cpu = &ember::cpu::sgd_step<T>;
};
}  // namespace ember::op

namespace ember::optim {

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD {
 public:
  SGD(std::vector<Tensor<float>> params, SGDOptions options)
      : params_(std::move(params)), options_(options), momentum_(params_.size()) {
    EMBER_CHECK(options.lr >= 0, "SGD: invalid learning rate ", options.lr);
    EMBER_CHECK(options.momentum >= 0, "SGD: invalid momentum ", options.momentum);
    EMBER_CHECK(options.weight_decay >= 0, "SGD: invalid weight_decay ", options.weight_decay);
    EMBER_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
                "SGD: nesterov momentum requires a momentum and zero dampening");
    for (auto& p : params_)
      EMBER_CHECK(p.is_leaf() && p.is_contiguous(), "SGD: parameters must be contiguous leaves");
  }

  // One step of every parameter with a gradient: those taking their first momentum step in one
  // call of the device's kernel (backend/cpu/sgd.hpp, kernels/sgd.cuh), the rest in another.
  void step() {
    if (params_.empty()) return;
    const Device dev = params_.front().device();
    std::vector<backend::SgdTensorRef> first, rest;
    const bool use_momentum = options_.momentum != 0;
    for (std::size_t k = 0; k < params_.size(); ++k) {
      Tensor<float>& p = params_[k];
      EMBER_CHECK(p.device() == dev, "SGD: parameters on different devices: ", dev.str(), " and ",
                  p.device().str());
      Tensor<float> grad = p.grad();
      if (!grad.defined()) continue;
      EMBER_CHECK(grad.shape() == p.shape(), "SGD: gradient of shape ", shape_str(grad.shape()),
                  " for a parameter of shape ", shape_str(p.shape()));
      EMBER_CHECK(grad.device() == dev, "SGD: gradient on ", grad.device().str(), " for a parameter on ",
                  dev.str());
      grad = grad.contiguous();  // a gradient set by set_grad() may be any view
      if (!grad.shares_storage(p.grad())) p.set_grad(grad);  // keep the contiguous copy alive
      const bool is_first = use_momentum && !momentum_[k].defined();
      if (is_first) momentum_[k] = Tensor<float>::empty(p.shape(), dev);
      p.bump_version("SGD.step");  // an in-place update: a graph that saved p sees it
      if (use_momentum) momentum_[k].bump_version("SGD.step");
      backend::SgdTensorRef ref{p.data(), grad.data(), use_momentum ? momentum_[k].data() : nullptr,
                                p.numel()};
      (is_first ? first : rest).push_back(ref);
    }
    backend::SgdStepArgs args{static_cast<float>(options_.lr), static_cast<float>(options_.momentum),
                              static_cast<float>(1.0 - options_.dampening),
                              static_cast<float>(options_.weight_decay), options_.nesterov, false};
    using Step = op::SgdStep;
    if (!rest.empty()) backend::run<Step, float>(dev, rest.data(), static_cast<int>(rest.size()), args);
    if (!first.empty()) {
      args.first_step = true;
      backend::run<Step, float>(dev, first.data(), static_cast<int>(first.size()), args);
    }
    ++steps_;
  }

  // Drops (set_to_none) or zeroes every parameter's gradient.
  void zero_grad(bool set_to_none = true) {
    for (auto& p : params_) p.zero_grad(set_to_none);
  }

  [[nodiscard]] double lr() const { return options_.lr; }
  void set_lr(double lr) { options_.lr = lr; }
  [[nodiscard]] const SGDOptions& options() const { return options_; }
  [[nodiscard]] const std::vector<Tensor<float>>& params() const { return params_; }
  // One momentum buffer per parameter (undefined until that parameter's first step).
  [[nodiscard]] std::vector<Tensor<float>>& momentum_buffers() { return momentum_; }
  [[nodiscard]] std::int64_t steps() const { return steps_; }
  // Restores the step count of a resumed run (io/checkpoint.hpp); the update does not use it.
  void set_steps(std::int64_t steps) {
    EMBER_CHECK(steps >= 0, "SGD: invalid step count ", steps);
    steps_ = steps;
  }

 private:
  std::vector<Tensor<float>> params_;
  SGDOptions options_;
  std::vector<Tensor<float>> momentum_;
  std::int64_t steps_ = 0;
};

// StepLR: lr = base_lr * gamma^(epoch / step_size), updated by step() once per epoch.
class StepLR {
 public:
  StepLR(SGD& opt, std::int64_t step_size, double gamma = 0.1)
      : opt_(&opt), base_lr_(opt.lr()), step_size_(step_size), gamma_(gamma) {
    EMBER_CHECK(step_size > 0, "StepLR: step_size must be positive");
  }
  void step() {
    ++epoch_;
    opt_->set_lr(base_lr_ * std::pow(gamma_, static_cast<double>(epoch_ / step_size_)));
  }
  [[nodiscard]] double get_last_lr() const { return opt_->lr(); }
  [[nodiscard]] std::int64_t last_epoch() const { return epoch_; }
  [[nodiscard]] std::int64_t step_size() const { return step_size_; }
  [[nodiscard]] double gamma() const { return gamma_; }
  [[nodiscard]] double base_lr() const { return base_lr_; }
  // Restores the epoch count of a resumed run. The optimiser's lr is left alone: a checkpoint
  // restores the lr itself, exactly as it was saved.
  void set_last_epoch(std::int64_t epoch) {
    EMBER_CHECK(epoch >= 0, "StepLR: invalid last_epoch ", epoch);
    epoch_ = epoch;
  }

 private:
  SGD* opt_;
  double base_lr_;
  std::int64_t step_size_;
  double gamma_;
  std::int64_t epoch_ = 0;
};

}  // namespace ember::optim
