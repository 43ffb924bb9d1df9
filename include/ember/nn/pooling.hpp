#pragma once
// Average pooling modules: AvgPool2d and AdaptiveAvgPool2d, with PyTorch's names, defaults and
// printed forms, each listing its step.

#include <string>
#include <vector>

#include "ember/nn/module.hpp"
#include "ember/nn/steps.hpp"
#include "ember/ops/pool.hpp"

namespace ember::nn {

namespace detail {
inline std::string size2_repr(const Size2& s) {
  return s.h == s.w ? std::to_string(s.h) : "(" + std::to_string(s.h) + ", " + std::to_string(s.w) + ")";
}
}  // namespace detail

// torch.nn.AvgPool2d(kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True)
class AvgPool2d : public Module {
 public:
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
    return "kernel_size=" + detail::size2_repr(kernel_) + ", stride=" + detail::size2_repr(stride_) +
           ", padding=" + detail::size2_repr(padding_);
  }

 private:
  Size2 kernel_, stride_, padding_;
  bool ceil_mode_, count_include_pad_;
};

// torch.nn.AdaptiveAvgPool2d(output_size)
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size) : Module("AdaptiveAvgPool2d"), out_(output_size) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, out_); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::adaptive_avg_pool2d, .name = step_name(prefix), .layer = this,
             .pool = {.out_h = out_.h, .out_w = out_.w}}};
  }
  [[nodiscard]] std::string extra_repr() const override {
    return "output_size=" + (out_.h == out_.w ? std::to_string(out_.h)
                                               : "(" + std::to_string(out_.h) + ", " + std::to_string(out_.w) + ")");
  }

 private:
  Size2 out_;
};

}  // namespace ember::nn
