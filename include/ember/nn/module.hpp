#pragma once
// nn::Module: a tree of modules owning named parameters and buffers, as in PyTorch.
// Names are dotted paths ("conv1.weight"), in registration order, so a state_dict moves
// between ember and PyTorch unchanged.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ember/autograd/grad_mode.hpp"
#include "ember/backend/params.hpp"
#include "ember/core/tensor.hpp"

namespace ember::nn {

/// The float tensor that modules take and return.
using Tensor = ember::Tensor<float>;
/// Named tensors in order, as a state_dict.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module;

/// One step of a feed-forward model's inference computation. A model that lists its forward as
/// steps (Module::steps) can be exported (io/onnx.hpp) and quantized (quant/) without tracing:
/// the list says in order what forward() computes in eval mode.
///
/// A step carries everything it computes with (the tensors of conv2d, linear and batch_norm,
/// the attributes of the others), so a pass over a step list (fold_batch_norm in
/// nn/steps.hpp) can rewrite steps without the layers. Adding a layer: its op here, in op_name
/// and kAllStepOps, its case in run_step (nn/steps.hpp), and its node(s) in the ONNX exporter;
/// the int8 model runs any op it has no int8 form for in float (quant/quantize.hpp), and its
/// file format writes the op's attributes (quant/serialize.hpp; the compiler points at each
/// switch that lacks the new op).
struct Step {
  /// The step's operation; each maps to one ember op and one or more ONNX nodes.
  enum class Op {
    conv2d, linear, relu, max_pool2d, flatten, log_softmax, dropout,  // version 1 of the int8 file
    batch_norm, avg_pool2d, adaptive_avg_pool2d, sigmoid, tanh, gelu, leaky_relu, elu, silu,
    softmax
  };
  /// What the step computes.
  Op op;
  std::string name;                ///< the layer's state_dict prefix ("conv1"), or a made-up one
  const Module* layer = nullptr;  ///< the module that listed the step (its type names it in errors)
  /// max_pool2d; conv2d (square kernel)
  /// @{
  std::int64_t kernel = 0, stride = 0, padding = 0;
  /// @}
  std::int64_t dilation = 1;       ///< conv2d
  std::int64_t dim = 1;           ///< flatten: start_dim (end_dim is -1); softmax, log_softmax: dim
  /// conv2d: weight (K, C, R, R), bias (K) or undefined; linear: weight (out, in), bias (out) or
  /// undefined; batch_norm: weight (gamma) and bias (beta) of (C), undefined when not affine.
  /// @{
  Tensor weight{}, bias{};
  /// @}
  /// batch_norm (C)
  /// @{
  Tensor running_mean{}, running_var{};
  /// @}
  double eps = 1e-5;                        ///< batch_norm
  double alpha = 0;                ///< leaky_relu: negative_slope; elu: alpha
  bool approximate_tanh = false;   ///< gelu: approximate='tanh' (else the exact erf form)
  /// avg_pool2d: kh, kw, sh, sw, ph, pw, ceil_mode, count_include_pad; adaptive_avg_pool2d:
  /// out_h, out_w. planes, h and w are the input's, filled in where it is known.
  Pool2dParams pool{};
  std::string folded{};            ///< conv2d, linear: the batch_norm step folded into the weights
};

/// The op's name ("conv2d", "batch_norm", ...).
[[nodiscard]] inline const char* op_name(Step::Op op) {
  switch (op) {
    case Step::Op::conv2d: return "conv2d";
    case Step::Op::linear: return "linear";
    case Step::Op::relu: return "relu";
    case Step::Op::max_pool2d: return "max_pool2d";
    case Step::Op::flatten: return "flatten";
    case Step::Op::log_softmax: return "log_softmax";
    case Step::Op::dropout: return "dropout";
    case Step::Op::batch_norm: return "batch_norm";
    case Step::Op::avg_pool2d: return "avg_pool2d";
    case Step::Op::adaptive_avg_pool2d: return "adaptive_avg_pool2d";
    case Step::Op::sigmoid: return "sigmoid";
    case Step::Op::tanh: return "tanh";
    case Step::Op::gelu: return "gelu";
    case Step::Op::leaky_relu: return "leaky_relu";
    case Step::Op::elu: return "elu";
    case Step::Op::silu: return "silu";
    case Step::Op::softmax: return "softmax";
  }
  return "?";
}

/// Every op, in declaration order (for parsers of op names).
inline constexpr Step::Op kAllStepOps[] = {
    Step::Op::conv2d,     Step::Op::linear,     Step::Op::relu,     Step::Op::max_pool2d,
    Step::Op::flatten,    Step::Op::log_softmax, Step::Op::dropout, Step::Op::batch_norm,
    Step::Op::avg_pool2d, Step::Op::adaptive_avg_pool2d, Step::Op::sigmoid, Step::Op::tanh,
    Step::Op::gelu,       Step::Op::leaky_relu, Step::Op::elu,      Step::Op::silu,
    Step::Op::softmax};

/// torch.nn.Module: a tree of modules owning named parameters and buffers (dotted PyTorch names),
/// with train/eval modes, device moves, state_dict and PyTorch's printed form. Subclass it and
/// override forward().
class Module {
 public:
  /// A module whose print() and error messages call it `type_name` (PyTorch's class name, e.g.
  /// "Conv2d").
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// The module's computation. Modules without a single-input forward leave this alone.
  virtual Tensor forward(const Tensor& x) {
    (void)x;
    throw Error(type_name_ + " does not define forward(x)");
  }
  /// Calls forward(x), as PyTorch's module(x).
  Tensor operator()(const Tensor& x) { return forward(x); }

  /// The inference computation as a list of steps, with names prefixed by `prefix`. Layers and
  /// feed-forward models (Sequential, models::MnistNet) override this; others cannot be
  /// exported or quantized and say so.
  [[nodiscard]] std::vector<Step> steps(const std::string& prefix = "") const {
    return list_steps(prefix);
  }

  // ---- registration -------------------------------------------------------------------
  /// Returns the handle (shared with the module) for the caller to keep as a member.
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true) {
    check_new_name(name);
    if (requires_grad) t.requires_grad_(true);
    params_.emplace_back(name, t);
    return t;
  }
  /// Registers a tensor that is state but not a parameter (BatchNorm's running_mean), saved in
  /// state_dict(); returns it. Throws for an empty, dotted or taken name.
  Tensor register_buffer(const std::string& name, Tensor t) {
    check_new_name(name);
    buffers_.emplace_back(name, t);
    return t;
  }
  /// Registers a child module under `name` (its parameters become "name.*") and returns it; throws
  /// for a null module or a taken name.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    check_new_name(name);
    EMBER_CHECK(m != nullptr, "register_module('", name, "'): null module");
    children_.emplace_back(name, m);
    return m;
  }

  // ---- traversal ----------------------------------------------------------------------
  /// Every parameter with its dotted name ("conv1.weight"), in registration order; only this
  /// module's own when recurse is false.
  [[nodiscard]] NamedTensors named_parameters(bool recurse = true) const {
    NamedTensors out;
    collect(out, "", recurse, false);
    return out;
  }
  /// Every parameter, in the order of named_parameters().
  [[nodiscard]] std::vector<Tensor> parameters(bool recurse = true) const {
    std::vector<Tensor> out;
    for (auto& [n, t] : named_parameters(recurse)) out.push_back(t);
    return out;
  }
  /// Every buffer (running statistics, ...) with its dotted name.
  [[nodiscard]] NamedTensors named_buffers(bool recurse = true) const {
    NamedTensors out;
    collect(out, "", recurse, true);
    return out;
  }
  [[nodiscard]] const std::vector<std::pair<std::string, std::shared_ptr<Module>>>&
  /// The direct children with their names, in registration order.
  named_children() const {
    return children_;
  }
  /// The number of parameter elements (PyTorch's sum(p.numel() for p in model.parameters())).
  [[nodiscard]] std::int64_t num_parameters() const {
    std::int64_t n = 0;
    for (auto& [name, t] : named_parameters()) n += t.numel();
    return n;
  }

  // ---- modes ----------------------------------------------------------------------------
  /// Training mode (on) or evaluation mode for this module and every child, as PyTorch's train();
  /// affects Dropout and BatchNorm.
  void train(bool on = true) {
    training_ = on;
    for (auto& [n, c] : children_) c->train(on);
  }
  /// Evaluation mode, as PyTorch's eval(): train(false).
  void eval() { train(false); }
  /// True in training mode (PyTorch's module.training).
  [[nodiscard]] bool is_training() const { return training_; }

  // ---- device --------------------------------------------------------------------------
  /// Moves every parameter and buffer to device d in place (the handles layers keep see the
  /// move); optimisers made before the move keep working, as in PyTorch.
  Module& to(Device d) {
    for (auto& [n, t] : named_parameters()) t.move_to_(d);
    for (auto& [n, t] : named_buffers()) t.move_to_(d);
    return *this;
  }
  /// The device of the first parameter (the CPU for a module without parameters).
  [[nodiscard]] Device device() const {
    const auto params = named_parameters();
    return params.empty() ? Device::cpu() : params.front().second.device();
  }

  /// Drops (or zeroes) every parameter's gradient.
  void zero_grad(bool set_to_none = true) {
    for (auto& t : parameters()) t.zero_grad(set_to_none);
  }

  // ---- state ----------------------------------------------------------------------------
  /// Parameters, then buffers, of every module in registration order (as PyTorch orders
  /// them module by module). The tensors share storage with the module.
  [[nodiscard]] NamedTensors state_dict() const {
    NamedTensors out;
    collect_state(out, "");
    return out;
  }

  /// Copies values into the module's tensors. strict: every key must match both ways.
  /// Shapes must always match. Nothing is changed when any check fails.
  void load_state_dict(const NamedTensors& state, bool strict = true) {
    NamedTensors own = state_dict();
    std::set<std::string> given;
    for (auto& [name, t] : state) {
      EMBER_CHECK(given.insert(name).second, "load_state_dict: duplicate key '", name, "'");
    }
    std::vector<std::string> missing, unexpected;
    std::vector<std::pair<Tensor, Tensor>> copies;
    for (auto& [name, dst] : own) {
      auto it = std::find_if(state.begin(), state.end(), [&](auto& e) { return e.first == name; });
      if (it == state.end()) {
        missing.push_back(name);
        continue;
      }
      EMBER_CHECK(it->second.shape() == dst.shape(), "load_state_dict: size mismatch for '", name,
                  "': the file has shape ", shape_str(it->second.shape()),
                  ", the module has shape ", shape_str(dst.shape()));
      copies.emplace_back(dst, it->second);
    }
    for (auto& [name, t] : state)
      if (std::none_of(own.begin(), own.end(), [&](auto& e) { return e.first == name; }))
        unexpected.push_back(name);
    if (strict && (!missing.empty() || !unexpected.empty())) {
      std::ostringstream os;
      os << "load_state_dict: error(s) in loading state_dict for " << type_name_ << ":";
      if (!missing.empty()) os << " missing key(s): " << join(missing) << ".";
      if (!unexpected.empty()) os << " unexpected key(s): " << join(unexpected) << ".";
      throw Error(os.str());
    }
    NoGradGuard guard;
    for (auto& [dst, src] : copies) dst.copy_(src);
  }

  // ---- printing -------------------------------------------------------------------------
  /// The module's class name as printed ("Conv2d", "Sequential", ...).
  [[nodiscard]] const std::string& type_name() const { return type_name_; }
  /// The text inside the parentheses of this module's line, e.g. "1, 32, kernel_size=(3, 3)".
  [[nodiscard]] virtual std::string extra_repr() const { return ""; }
  /// Writes PyTorch's printed form of the module tree (print(model)); operator<< calls it.
  void print(std::ostream& os, int indent = 0) const {
    os << type_name_ << '(' << extra_repr();
    if (!children_.empty()) {
      os << '\n';
      for (auto& [name, c] : children_) {
        os << std::string(static_cast<std::size_t>(indent + 2), ' ') << '(' << name << "): ";
        c->print(os, indent + 2);
        os << '\n';
      }
      os << std::string(static_cast<std::size_t>(indent), ' ');
    }
    os << ')';
  }

 protected:
  /// What steps() returns; the default says the module cannot be listed.
  [[nodiscard]] virtual std::vector<Step> list_steps(const std::string& prefix) const {
    std::string where;
    if (!prefix.empty()) where = " (it is '" + prefix.substr(0, prefix.size() - 1) + "' in the model)";
    throw Error(type_name_ + " does not list its forward as steps, so it cannot be exported or "
                "quantized (Sequential, models::MnistNet and the built-in layers can)" + where);
  }
  /// Renames the module's type as printed (for subclasses of a layer).
  void set_type_name(std::string n) { type_name_ = std::move(n); }

 private:
  void check_new_name(const std::string& name) const {
    EMBER_CHECK(!name.empty() && name.find('.') == std::string::npos, "invalid name '", name,
                "': names must be non-empty and contain no '.'");
    auto taken = [&](const auto& list) {
      return std::any_of(list.begin(), list.end(), [&](auto& e) { return e.first == name; });
    };
    EMBER_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_), "name '", name,
                "' is already registered in ", type_name_);
  }
  void collect(NamedTensors& out, const std::string& prefix, bool recurse, bool buffers) const {
    for (auto& [n, t] : buffers ? buffers_ : params_) out.emplace_back(prefix + n, t);
    if (recurse)
      for (auto& [n, c] : children_) c->collect(out, prefix + n + ".", true, buffers);
  }
  void collect_state(NamedTensors& out, const std::string& prefix) const {
    for (auto& [n, t] : params_) out.emplace_back(prefix + n, t);
    for (auto& [n, t] : buffers_) out.emplace_back(prefix + n, t);
    for (auto& [n, c] : children_) c->collect_state(out, prefix + n + ".");
  }
  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (auto& x : v) s += (s.empty() ? "\"" : ", \"") + x + "\"";
    return s;
  }

  std::string type_name_;
  bool training_ = true;
  NamedTensors params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

/// Prints the module tree as PyTorch's print(model).
inline std::ostream& operator<<(std::ostream& os, const Module& m) {
  m.print(os);
  return os;
}

}  // namespace ember::nn
