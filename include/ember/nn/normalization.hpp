#pragma once
// BatchNorm1d and BatchNorm2d, with PyTorch's names, defaults, state_dict entries (weight,
// bias, running_mean, running_var, num_batches_tracked) and train/eval semantics:
//  * training, or track_running_stats = false: normalize with the batch's statistics; when
//    tracking, update running_mean / running_var (unbiased variance) by `momentum`, or by the
//    cumulative average 1 / num_batches_tracked when momentum is unset (PyTorch's None);
//  * eval with track_running_stats: normalize with running_mean / running_var.
// num_batches_tracked is a float buffer here (PyTorch's is int64): a state_dict from PyTorch
// loads into it, and PyTorch loads ember's.

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ember/nn/module.hpp"
#include "ember/nn/steps.hpp"
#include "ember/ops/batch_norm.hpp"

namespace ember::nn {

/// The common part of BatchNorm1d and BatchNorm2d (torch.nn.modules.batchnorm._BatchNorm):
/// per-channel normalisation with batch statistics in training and running statistics in eval.
class BatchNormBase : public Module {
 public:
  Tensor forward(const Tensor& x) override {
    check_input(x);
    const bool use_batch = is_training() || !track_;
    double m = momentum_.value_or(0.0);
    if (is_training() && track_) {
      NoGradGuard no_grad;
      num_batches_tracked.copy_(add_scalar(num_batches_tracked, 1.0f));
      if (!momentum_) m = 1.0 / static_cast<double>(num_batches_tracked.item());
    }
    return batch_norm(x, track_ ? running_mean : Tensor(), track_ ? running_var : Tensor(), weight, bias, use_batch,
                      m, eps_);
  }
  [[nodiscard]] std::string extra_repr() const override {
    std::ostringstream s;
    s << features_ << ", eps=" << eps_ << ", momentum=";
    if (momentum_) s << *momentum_;
    else s << "None";
    s << ", affine=" << (affine_ ? "True" : "False") << ", track_running_stats=" << (track_ ? "True" : "False");
    return s.str();
  }
  /// Eval mode normalizes with the running statistics: one batch_norm step (folded into a conv2d
  /// or linear right before it by the exporters). Without running statistics eval mode uses each
  /// batch's own, which no inference graph of fixed weights computes: refused, naming the layer.
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    EMBER_CHECK(track_, type_name(), " '", step_name(prefix), "' (track_running_stats=False) normalizes "
                "with each batch's own statistics in eval mode too, so it cannot be exported or quantized");
    return {{.op = Step::Op::batch_norm, .name = step_name(prefix), .layer = this, .weight = weight,
             .bias = bias, .running_mean = running_mean, .running_var = running_var, .eps = eps_}};
  }
  /// C, the number of channels.
  [[nodiscard]] std::int64_t num_features() const { return features_; }
  /// The epsilon added to the variance.
  [[nodiscard]] double eps() const { return eps_; }

  /// gamma (C) and beta (C) when affine; running_mean (C), running_var (C) and num_batches_tracked
  /// (an int64 count kept as a float scalar) when tracking; undefined otherwise.
  /// @{
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  /// @}

 protected:
  /// PyTorch's arguments; momentum nullopt means a cumulative average (PyTorch's momentum=None).
  /// Throws ember::Error for num_features < 1, eps <= 0 or momentum outside [0, 1].
  BatchNormBase(const char* type, std::int64_t num_features, double eps, std::optional<double> momentum, bool affine,
                bool track_running_stats)
      : Module(type), features_(num_features), eps_(eps), momentum_(momentum), affine_(affine),
        track_(track_running_stats) {
    EMBER_CHECK(num_features > 0, type, ": num_features must be positive, got ", num_features);
    EMBER_CHECK(eps > 0, type, ": eps must be positive, got ", eps);
    EMBER_CHECK(!momentum || (*momentum >= 0 && *momentum <= 1), type, ": momentum must be in [0, 1], got ",
                momentum.value_or(0));
    if (affine) {
      weight = register_parameter("weight", Tensor::ones({num_features}));
      bias = register_parameter("bias", Tensor::zeros({num_features}));
    }
    if (track_running_stats) {
      running_mean = register_buffer("running_mean", Tensor::zeros({num_features}));
      running_var = register_buffer("running_var", Tensor::ones({num_features}));
      num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}));
    }
  }
  /// Throws ember::Error unless x has the rank this layer takes.
  virtual void check_input(const Tensor& x) const = 0;
  /// C.
  std::int64_t features_;
  /// The epsilon added to the variance.
  double eps_;
  /// The running statistics' momentum; nullopt for a cumulative average.
  std::optional<double> momentum_;
  /// affine and track_running_stats, as constructed.
  /// @{
  bool affine_, track_;
  /// @}
};

/// torch.nn.BatchNorm1d: input (N, C) or (N, C, L).
class BatchNorm1d : public BatchNormBase {
 public:
  /// PyTorch's arguments and defaults; input (N, C) or (N, C, L).
  explicit BatchNorm1d(std::int64_t num_features, double eps = 1e-5, std::optional<double> momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNormBase("BatchNorm1d", num_features, eps, momentum, affine, track_running_stats) {}

 protected:
  /// Throws unless x is 2D or 3D.
  void check_input(const Tensor& x) const override {
    EMBER_CHECK(x.dim() == 2 || x.dim() == 3, "BatchNorm1d: expected 2D or 3D input (got ", shape_str(x.shape()),
                ")");
  }
};

/// torch.nn.BatchNorm2d: input (N, C, H, W).
class BatchNorm2d : public BatchNormBase {
 public:
  /// PyTorch's arguments and defaults; input (N, C, H, W).
  explicit BatchNorm2d(std::int64_t num_features, double eps = 1e-5, std::optional<double> momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNormBase("BatchNorm2d", num_features, eps, momentum, affine, track_running_stats) {}

 protected:
  /// Throws unless x is 4D.
  void check_input(const Tensor& x) const override {
    EMBER_CHECK(x.dim() == 4, "BatchNorm2d: expected 4D input (got ", shape_str(x.shape()), ")");
  }
};

}  // namespace ember::nn
