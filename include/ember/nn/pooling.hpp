#pragma once
// Pooling modules: AvgPool2d, AdaptiveAvgPool2d and AdaptiveMaxPool2d, with PyTorch's names,
// defaults and printed forms (MaxPool2d is in layers.hpp). The average pools list their forward
// as a step (ONNX export, int8); AdaptiveMaxPool2d does not yet, so exporting or quantizing a
// model that holds one is refused with an error naming the layer (nn::Module::list_steps).

#include <string>
#include <vector>

#include "ember/nn/module.hpp"
#include "ember/nn/steps.hpp"
#include "ember/ops/pool.hpp"

namespace ember::nn {

/// torch.nn.AvgPool2d(kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True)
class AvgPool2d : public Module {
 public:
  /// PyTorch's arguments and defaults; stride defaults to the kernel.
  explicit AvgPool2d(Size2 kernel, Size2 stride = {}, Size2 padding = {0}, bool ceil_mode = false,
                     bool count_include_pad = true)
      : Module("AvgPool2d"), kernel_(kernel), stride_(stride == Size2{} ? kernel : stride), padding_(padding),
        ceil_mode_(ceil_mode), count_include_pad_(count_include_pad) {}
  Tensor forward(const Tensor& x) override {
    return avg_pool2d(x, kernel_, stride_, padding_, ceil_mode_, count_include_pad_);
  }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::avg_pool2d, .name = step_name(prefix), .layer = this,
             .pool = {.kh = kernel_.h, .kw = kernel_.w, .sh = stride_.h, .sw = stride_.w, .ph = padding_.h,
                      .pw = padding_.w, .ceil_mode = ceil_mode_, .count_include_pad = count_include_pad_}}};
  }
  [[nodiscard]] std::string extra_repr() const override {
    return "kernel_size=" + size2_repr(kernel_) + ", stride=" + size2_repr(stride_) +
           ", padding=" + size2_repr(padding_);
  }

 private:
  Size2 kernel_, stride_, padding_;
  bool ceil_mode_, count_include_pad_;
};

/// torch.nn.AdaptiveAvgPool2d(output_size)
class AdaptiveAvgPool2d : public Module {
 public:
  /// Pools every (N, C, H, W) input to output_size (H_out, W_out).
  explicit AdaptiveAvgPool2d(Size2 output_size) : Module("AdaptiveAvgPool2d"), out_(output_size) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, out_); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::adaptive_avg_pool2d, .name = step_name(prefix), .layer = this,
             .pool = {.out_h = out_.h, .out_w = out_.w}}};
  }
  [[nodiscard]] std::string extra_repr() const override {
    return "output_size=" + size2_repr(out_);
  }

 private:
  Size2 out_;
};

/// torch.nn.AdaptiveMaxPool2d(output_size). forward() returns one tensor, so there is no
/// return_indices (adaptive_max_pool2d_with_indices gives them); without that second argument
/// AdaptiveMaxPool2d({2, 3}) is unambiguous, as AdaptiveAvgPool2d's.
class AdaptiveMaxPool2d : public Module {
 public:
  /// Pools every (N, C, H, W) input to output_size (H_out, W_out).
  explicit AdaptiveMaxPool2d(Size2 output_size) : Module("AdaptiveMaxPool2d"), out_(output_size) {}
  Tensor forward(const Tensor& x) override { return adaptive_max_pool2d(x, out_); }
  [[nodiscard]] std::string extra_repr() const override {
    return "output_size=" + size2_repr(out_);
  }

 private:
  Size2 out_;
};

}  // namespace ember::nn
