#pragma once
// The layers of the MNIST example and their PyTorch names and printed forms.

#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ember/nn/init.hpp"
#include "ember/nn/module.hpp"
#include "ember/nn/steps.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/conv.hpp"
#include "ember/ops/dropout.hpp"
#include "ember/ops/linear.hpp"
#include "ember/ops/pool.hpp"

namespace ember::nn {

/// torch.nn.Conv2d with a square kernel: input (N, C_in, H, W) -> (N, C_out, P, Q); weight (C_out,
/// C_in, k, k) and bias initialised as PyTorch's (Kaiming uniform).
class Conv2d : public Module {
 public:
  /// Throws ember::Error unless channels and kernel size are positive; `gen` draws the initial
  /// weights.
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
         Conv2dOptions options = {}, bool bias = true, Generator& gen = default_generator())
      : Module("Conv2d"), in_(in_channels), out_(out_channels), kernel_(kernel_size), opt_(options) {
    EMBER_CHECK(in_channels > 0 && out_channels > 0 && kernel_size > 0,
                "Conv2d: channels and kernel size must be positive");
    weight = register_parameter("weight", Tensor::empty({out_, in_, kernel_, kernel_}));
    init::kaiming_uniform_(weight, std::sqrt(5.0), gen);
    if (bias) {
      this->bias = register_parameter("bias", Tensor::empty({out_}));
      const double bound = 1.0 / std::sqrt(static_cast<double>(init::fan_in(weight)));
      init::uniform_(this->bias, -bound, bound, gen);
    }
  }
  Tensor forward(const Tensor& x) override { return conv2d(x, weight, bias, opt_); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::conv2d, .name = step_name(prefix), .layer = this, .kernel = kernel_,
             .stride = opt_.stride, .padding = opt_.padding, .dilation = opt_.dilation,
             .weight = weight, .bias = bias}};
  }
  /// C_in.
  [[nodiscard]] std::int64_t in_channels() const { return in_; }
  /// C_out.
  [[nodiscard]] std::int64_t out_channels() const { return out_; }
  /// The kernel's side, k.
  [[nodiscard]] std::int64_t kernel_size() const { return kernel_; }
  /// Stride, padding and dilation.
  [[nodiscard]] const Conv2dOptions& options() const { return opt_; }
  [[nodiscard]] std::string extra_repr() const override {
    auto pair = [](std::int64_t v) {  // appended piece by piece: g++ 12's -Wrestrict misfires on "(" + str
      const std::string n = std::to_string(v);
      std::string p = "(";
      p.append(n).append(", ").append(n).append(")");
      return p;
    };
    std::string s = std::to_string(in_) + ", " + std::to_string(out_) + ", kernel_size=" +
                    pair(kernel_) + ", stride=" + pair(opt_.stride);
    if (opt_.padding != 0) s += ", padding=" + pair(opt_.padding);
    if (opt_.dilation != 1) s += ", dilation=" + pair(opt_.dilation);
    if (!bias.defined()) s += ", bias=False";
    return s;
  }

  /// (C_out, C_in, k, k) and (C_out), or an undefined bias when made with bias = false.
  /// @{
  Tensor weight, bias;
  /// @}

 private:
  std::int64_t in_, out_, kernel_;
  Conv2dOptions opt_;
};

/// torch.nn.Linear: y = x W^T + b over the last dimension, input (*, in_features) -> (*,
/// out_features); initialised as PyTorch's.
class Linear : public Module {
 public:
  /// Throws ember::Error unless both sizes are positive; `gen` draws the initial weights.
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true,
         Generator& gen = default_generator())
      : Module("Linear"), in_(in_features), out_(out_features) {
    EMBER_CHECK(in_features > 0 && out_features > 0, "Linear: feature counts must be positive");
    weight = register_parameter("weight", Tensor::empty({out_, in_}));
    init::kaiming_uniform_(weight, std::sqrt(5.0), gen);
    if (bias) {
      this->bias = register_parameter("bias", Tensor::empty({out_}));
      const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
      init::uniform_(this->bias, -bound, bound, gen);
    }
  }
  Tensor forward(const Tensor& x) override { return linear(x, weight, bias); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::linear, .name = step_name(prefix), .layer = this, .weight = weight,
             .bias = bias}};
  }
  /// in_features.
  [[nodiscard]] std::int64_t in_features() const { return in_; }
  /// out_features.
  [[nodiscard]] std::int64_t out_features() const { return out_; }
  [[nodiscard]] std::string extra_repr() const override {
    return "in_features=" + std::to_string(in_) + ", out_features=" + std::to_string(out_) +
           ", bias=" + (bias.defined() ? "True" : "False");
  }

  /// (out_features, in_features) and (out_features), or an undefined bias.
  /// @{
  Tensor weight, bias;
  /// @}

 private:
  std::int64_t in_, out_;
};

/// torch.nn.Dropout: in training mode zeroes each element with probability p and scales the rest by
/// 1 / (1 - p); the identity in eval mode.
class Dropout : public Module {
 public:
  /// p in [0, 1] (throws otherwise); the masks are drawn from `gen`.
  explicit Dropout(double p = 0.5, Generator& gen = default_generator())
      : Module("Dropout"), p_(p), gen_(&gen) {
    detail::check_p(p);
  }
  Tensor forward(const Tensor& x) override { return dropout(x, p_, is_training(), *gen_); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::dropout, .name = step_name(prefix), .layer = this}};
  }
  /// The drop probability.
  [[nodiscard]] double p() const { return p_; }
  [[nodiscard]] std::string extra_repr() const override { return "p=" + fmt(p_) + ", inplace=False"; }

 private:
  static std::string fmt(double p) {
    std::string s = std::to_string(p);
    while (s.size() > 3 && s.back() == '0') s.pop_back();
    return s;
  }
  double p_;
  Generator* gen_;
  friend class Dropout2d;
};

/// torch.nn.Dropout2d: in training mode zeroes whole channels of (N, C, H, W) with probability p,
/// scaling the rest by 1 / (1 - p).
class Dropout2d : public Module {
 public:
  /// p in [0, 1] (throws otherwise); the masks are drawn from `gen`.
  explicit Dropout2d(double p = 0.5, Generator& gen = default_generator())
      : Module("Dropout2d"), p_(p), gen_(&gen) {
    detail::check_p(p);
  }
  Tensor forward(const Tensor& x) override { return dropout2d(x, p_, is_training(), *gen_); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::dropout, .name = step_name(prefix), .layer = this}};
  }
  /// The drop probability.
  [[nodiscard]] double p() const { return p_; }
  [[nodiscard]] std::string extra_repr() const override {
    return "p=" + Dropout::fmt(p_) + ", inplace=False";
  }

 private:
  double p_;
  Generator* gen_;
};

/// torch.nn.ReLU: max(x, 0) elementwise.
class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override { return relu(x); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::relu, .name = step_name(prefix), .layer = this}};
  }
};

/// torch.nn.MaxPool2d(kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
/// ceil_mode=False). forward() returns one tensor, so return_indices must stay false (use
/// max_pool2d_with_indices). A lone pair is written MaxPool2d(Size2{2, 3}): MaxPool2d({2, 3})
/// also reads as kernel 2, stride 3, and g++ finds it ambiguous. Listed as a step (ONNX export,
/// int8) only with a square kernel, stride and padding, dilation 1 and floor mode; other options
/// are refused naming the layer and the option.
class MaxPool2d : public Module {
 public:
  /// PyTorch's arguments; stride defaults to kernel_size. return_indices = true throws (call
  /// max_pool2d_with_indices).
  explicit MaxPool2d(Size2 kernel_size, Size2 stride = {}, Size2 padding = {0},
                     Size2 dilation = {1}, bool return_indices = false, bool ceil_mode = false)
      : Module("MaxPool2d"),
        kernel_(kernel_size),
        stride_(stride == Size2{} ? kernel_size : stride),
        padding_(padding),
        dilation_(dilation),
        ceil_mode_(ceil_mode) {
    EMBER_CHECK(!return_indices,
                "MaxPool2d: return_indices=True is not supported (forward returns one "
                "tensor); call max_pool2d_with_indices");
  }
  Tensor forward(const Tensor& x) override {
    return max_pool2d(x, kernel_, stride_, padding_, dilation_, ceil_mode_);
  }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    const char* refused = kernel_.h != kernel_.w     ? "a non-square kernel_size"
                          : stride_.h != stride_.w   ? "a non-square stride"
                          : padding_.h != padding_.w ? "a non-square padding"
                          : dilation_ != Size2{1}    ? "dilation other than 1"
                          : ceil_mode_               ? "ceil_mode=True"
                                                     : nullptr;
    EMBER_CHECK(refused == nullptr, "MaxPool2d '", step_name(prefix), "' (", extra_repr(),
                "): ", refused,
                " cannot be listed as a step, so the model cannot be exported or quantized (ONNX "
                "export and int8 take a square, floor-mode max_pool2d with dilation 1)");
    return {{.op = Step::Op::max_pool2d,
             .name = step_name(prefix),
             .layer = this,
             .kernel = kernel_.h,
             .stride = stride_.h,
             .padding = padding_.h}};
  }
  [[nodiscard]] std::string extra_repr() const override {
    return "kernel_size=" + size2_repr(kernel_) + ", stride=" + size2_repr(stride_) +
           ", padding=" + size2_repr(padding_) + ", dilation=" + size2_repr(dilation_) +
           ", ceil_mode=" + (ceil_mode_ ? "True" : "False");
  }

 private:
  Size2 kernel_, stride_, padding_, dilation_;
  bool ceil_mode_;
};

/// torch.nn.Flatten: merges dimensions start_dim..end_dim into one ((N, C, H, W) -> (N, C*H*W) by
/// default).
class Flatten : public Module {
 public:
  /// Dimensions may be negative (counted from the end), as in PyTorch.
  explicit Flatten(std::int64_t start_dim = 1, std::int64_t end_dim = -1)
      : Module("Flatten"), start_(start_dim), end_(end_dim) {}
  Tensor forward(const Tensor& x) override { return x.flatten(start_, end_); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    EMBER_CHECK(end_ == -1, "Flatten(start_dim=", start_, ", end_dim=", end_,
                "): only end_dim -1 can be listed as a step");
    return {{.op = Step::Op::flatten, .name = step_name(prefix), .layer = this, .dim = start_}};
  }
  [[nodiscard]] std::string extra_repr() const override {
    return "start_dim=" + std::to_string(start_) + ", end_dim=" + std::to_string(end_);
  }

 private:
  std::int64_t start_, end_;
};

/// torch.nn.LogSoftmax over dimension dim.
class LogSoftmax : public Module {
 public:
  /// Log-softmax over `dim` (negative counts from the end).
  explicit LogSoftmax(std::int64_t dim = 1) : Module("LogSoftmax"), dim_(dim) {}
  Tensor forward(const Tensor& x) override { return log_softmax(x, dim_); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::log_softmax, .name = step_name(prefix), .layer = this, .dim = dim_}};
  }
  [[nodiscard]] std::string extra_repr() const override { return "dim=" + std::to_string(dim_); }

 private:
  std::int64_t dim_;
};

// The activations of ops/activation.hpp as modules, printed as PyTorch prints them, each listing
// its step.
namespace detail {
// A double as Python's repr prints it: 0.01, 1.0, 1e-05.
inline std::string py_float(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";
  return s;
}
}  // namespace detail

/// torch.nn.Sigmoid: 1 / (1 + exp(-x)) elementwise.
class Sigmoid : public Module {
 public:
  Sigmoid() : Module("Sigmoid") {}
  Tensor forward(const Tensor& x) override { return sigmoid(x); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::sigmoid, .name = step_name(prefix), .layer = this}};
  }
};

/// torch.nn.Tanh, elementwise.
class Tanh : public Module {
 public:
  Tanh() : Module("Tanh") {}
  Tensor forward(const Tensor& x) override { return ember::tanh(x); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::tanh, .name = step_name(prefix), .layer = this}};
  }
};

/// torch.nn.GELU: x * Phi(x), exact (erf) or with approximate = "tanh".
class GELU : public Module {
 public:
  /// approximate is "none" or "tanh" (throws otherwise).
  explicit GELU(std::string approximate = "none") : Module("GELU"), approximate_(std::move(approximate)) {
    EMBER_CHECK(approximate_ == "none" || approximate_ == "tanh",
                "GELU: approximate must be 'none' or 'tanh', got '", approximate_, "'");
  }
  Tensor forward(const Tensor& x) override { return gelu(x, approximate_); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::gelu, .name = step_name(prefix), .layer = this,
             .approximate_tanh = approximate_ == "tanh"}};
  }
  /// "none" or "tanh".
  [[nodiscard]] const std::string& approximate() const { return approximate_; }
  [[nodiscard]] std::string extra_repr() const override { return "approximate='" + approximate_ + "'"; }

 private:
  std::string approximate_;
};

/// torch.nn.LeakyReLU: x for x >= 0, negative_slope * x below.
class LeakyReLU : public Module {
 public:
  /// The slope for negative inputs (default 0.01).
  explicit LeakyReLU(double negative_slope = 0.01) : Module("LeakyReLU"), slope_(negative_slope) {}
  Tensor forward(const Tensor& x) override { return leaky_relu(x, slope_); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::leaky_relu, .name = step_name(prefix), .layer = this, .alpha = slope_}};
  }
  [[nodiscard]] std::string extra_repr() const override {
    return "negative_slope=" + detail::py_float(slope_);
  }

 private:
  double slope_;
};

/// torch.nn.ELU: x for x > 0, alpha * (exp(x) - 1) below.
class ELU : public Module {
 public:
  /// The scale of the negative part (default 1).
  explicit ELU(double alpha = 1.0) : Module("ELU"), alpha_(alpha) {}
  Tensor forward(const Tensor& x) override { return elu(x, alpha_); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::elu, .name = step_name(prefix), .layer = this, .alpha = alpha_}};
  }
  [[nodiscard]] std::string extra_repr() const override { return "alpha=" + detail::py_float(alpha_); }

 private:
  double alpha_;
};

/// torch.nn.SiLU (swish): x * sigmoid(x).
class SiLU : public Module {
 public:
  SiLU() : Module("SiLU") {}
  Tensor forward(const Tensor& x) override { return silu(x); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::silu, .name = step_name(prefix), .layer = this}};
  }
};

/// torch.nn.Softmax over dimension dim.
class Softmax : public Module {
 public:
  /// Softmax over `dim` (negative counts from the end); no default, as PyTorch's implicit dim is
  /// deprecated.
  explicit Softmax(std::int64_t dim) : Module("Softmax"), dim_(dim) {}
  Tensor forward(const Tensor& x) override { return softmax(x, dim_); }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    return {{.op = Step::Op::softmax, .name = step_name(prefix), .layer = this, .dim = dim_}};
  }
  [[nodiscard]] std::string extra_repr() const override { return "dim=" + std::to_string(dim_); }

 private:
  std::int64_t dim_;
};

/// Runs its children in order; they are named "0", "1", ... as in PyTorch.
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  /// The modules in order, named "0", "1", ... as in PyTorch.
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules) : Sequential() {
    for (auto& m : modules) push_back(m);
  }
  /// Appends a module, named by its index (PyTorch's append).
  void push_back(std::shared_ptr<Module> m) {
    register_module(std::to_string(named_children().size()), std::move(m));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = x;
    for (auto& [name, m] : named_children()) h = m->forward(h);
    return h;
  }
  [[nodiscard]] std::vector<Step> list_steps(const std::string& prefix) const override {
    std::vector<Step> out;
    for (auto& [name, m] : named_children())
      for (Step& s : m->steps(prefix + name + ".")) out.push_back(std::move(s));
    return out;
  }
  /// The number of modules.
  [[nodiscard]] std::size_t size() const { return named_children().size(); }
  /// Module i (throws ember::Error when i is out of range).
  [[nodiscard]] std::shared_ptr<Module> operator[](std::size_t i) const {
    EMBER_CHECK(i < size(), "Sequential: index ", i, " out of range (size ", size(), ")");
    return named_children()[i].second;
  }
};

}  // namespace ember::nn
