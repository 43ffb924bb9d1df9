#pragma once
// The interface every optimizer has (PyTorch's torch.optim.Optimizer):
//   * parameter groups, each with its own options (lr, weight_decay, momentum or betas, ...):
//       optim::AdamW opt({{decay, {.lr = 1e-3}}, {no_decay, {.lr = 1e-3, .weight_decay = 0}}});
//     (optim::decay_groups() splits a model's parameters that way: no decay on biases and on
//     normalisation weights);
//   * step(), zero_grad(set_to_none = true);
//   * state_dict() / load_state_dict(): the group options and the per-parameter state
//     (momentum buffers, exp_avg, exp_avg_sq, max_exp_avg_sq, square_avg, grad_avg, step
//     counts), all as float tensors under PyTorch's names, parameters numbered in group order
//     as PyTorch numbers them. io/checkpoint.hpp stores and restores it bit for bit.
// Schedulers (optim/lr_scheduler.hpp) see an optimizer through this interface only: a group's
// options by PyTorch's name (option(g, "lr"), set_option(g, "beta1", ...)).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/autograd/grad_mode.hpp"
#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember::optim {

/// A group of parameters with its options (one of the optimizers' XOptions structs).
template <class Options>
struct ParamGroup {
  /// The group's parameters (float tensors that require grad, all on one device).
  std::vector<Tensor<float>> params;
  /// The group's options (lr, weight_decay, ...).
  Options options{};
};

/// An optimizer's whole state, as torch.optim.Optimizer.state_dict() holds it.
struct OptimizerState {
  /// One parameter group: its options and which parameters it holds.
  struct Group {
    /// Every option by PyTorch's name (booleans as 0 or 1; Adam's betas as beta1 and beta2),
    /// and "initial_lr" once a scheduler has set it.
    std::map<std::string, double> options;
    std::vector<std::size_t> params;  ///< indices into the optimizer's parameters, in order
  };
  std::string type;  ///< "SGD", "Adam", "AdamW", "RMSprop"
  /// The groups, in order.
  std::vector<Group> param_groups;
  /// Per parameter (by index): its state tensors by PyTorch's name; empty before its first step.
  std::vector<std::map<std::string, Tensor<float>>> state;
  std::int64_t steps = 0;  ///< calls of step()
};

/// The interface every optimizer has (torch.optim.Optimizer): parameter groups with options by
/// PyTorch's names, step(), zero_grad(), state_dict(); what schedulers and checkpoints work
/// through.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// "SGD", "Adam", "AdamW", "RMSprop".
  [[nodiscard]] virtual std::string_view type_name() const = 0;
  /// One update of every parameter that has a gradient.
  virtual void step() = 0;
  /// Drops (set_to_none, the default, as PyTorch 2) or zeroes every parameter's gradient.
  void zero_grad(bool set_to_none = true) {
    for (std::size_t g = 0; g < num_param_groups(); ++g)
      for (const Tensor<float>& p : group_params(g)) Tensor<float>(p).zero_grad(set_to_none);
  }

  /// The number of parameter groups.
  [[nodiscard]] virtual std::size_t num_param_groups() const = 0;
  /// Group g's parameters.
  [[nodiscard]] virtual const std::vector<Tensor<float>>& group_params(std::size_t g) const = 0;
  /// A group's option by PyTorch's name ("lr", "momentum", "beta1", "weight_decay", ...).
  [[nodiscard]] virtual bool has_option(std::string_view name) const = 0;
  /// Group g's option `name` (throws ember::Error for an unknown name or group).
  [[nodiscard]] virtual double option(std::size_t g, std::string_view name) const = 0;
  /// Sets group g's option `name` (schedulers set "lr" and momentum this way); throws for an
  /// unknown name or group.
  virtual void set_option(std::size_t g, std::string_view name, double value) = 0;
  /// The lr a scheduler started the group from (PyTorch's group["initial_lr"]); unset until a
  /// scheduler sets it.
  [[nodiscard]] virtual std::optional<double>& initial_lr(std::size_t g) = 0;

  /// The optimizer's state as PyTorch's state_dict(): group options and per-parameter state,
  /// tensors on the CPU.
  [[nodiscard]] virtual OptimizerState state_dict() const = 0;
  /// Checks everything (type, group sizes, tensor shapes), then replaces the group options and
  /// the per-parameter state (tensors copied onto their parameter's device).
  virtual void load_state_dict(const OptimizerState& state) = 0;

  /// Every parameter, groups in order (the numbering of state_dict()).
  [[nodiscard]] std::vector<Tensor<float>> params() const {
    std::vector<Tensor<float>> all;
    for (std::size_t g = 0; g < num_param_groups(); ++g)
      for (const Tensor<float>& p : group_params(g)) all.push_back(p);
    return all;
  }
  /// Group g's learning rate.
  [[nodiscard]] double lr(std::size_t g = 0) const { return option(g, "lr"); }
  /// Sets every group's lr.
  void set_lr(double lr) {
    for (std::size_t g = 0; g < num_param_groups(); ++g) set_option(g, "lr", lr);
  }
  /// Calls of step() so far.
  [[nodiscard]] std::int64_t steps() const { return steps_; }

 protected:
  /// Calls of step() so far (restored from a checkpoint).
  std::int64_t steps_ = 0;
};

namespace detail {

// A copy of t on device dev that shares nothing with t.
inline Tensor<float> copy_to(const Tensor<float>& t, Device dev) {
  NoGradGuard no_grad;
  return dev.is_cpu() ? t.detach().to(Device::cpu()).clone() : t.detach().to(dev);
}

// The options of an XOptions struct by name: Options::fields(options, f) calls f(name, member)
// for each (double& or bool&).
template <class Options, class S>
bool find_field(S& options, std::string_view name, auto&& use) {
  bool found = false;
  Options::fields(options, [&](const char* n, auto& member) {
    if (!found && name == n) {
      use(member);
      found = true;
    }
  });
  return found;
}

}  // namespace detail

/// The common machinery of the optimizers: groups of one XOptions type, one PState per
/// parameter (what step() keeps between calls), state_dict in PyTorch's names. Derived
/// classes write step() and the conversions of their PState.
template <class Options, class PState>
class OptimizerBase : public Optimizer {
 public:
  /// Every group's options are checked by Derived's check(options) (through check_fn).
  using options_type = Options;

  /// Adds each group (add_param_group); throws for no groups or a group without parameters.
  OptimizerBase(std::vector<ParamGroup<Options>> groups, const char* name,
                void (*check_fn)(const Options&))
      : name_(name), check_(check_fn) {
    EMBER_CHECK(!groups.empty(), name_, ": optimizer got an empty parameter list");
    for (auto& g : groups) add_param_group(std::move(g));
  }

  /// Adds a group (PyTorch's add_param_group): its parameters must be contiguous float leaves
  /// that are in no other group.
  void add_param_group(ParamGroup<Options> group) {
    check_(group.options);
    EMBER_CHECK(!group.params.empty(), name_, ": a parameter group without parameters");
    for (const Tensor<float>& p : group.params) {
      EMBER_CHECK(p.defined() && p.is_leaf() && p.is_contiguous(), name_,
                  ": parameters must be contiguous leaves");
      for (const auto& other : groups_) {
        for (const Tensor<float>& q : other.group.params) {
          EMBER_CHECK(q.impl_ptr() != p.impl_ptr(), name_,
                      ": some parameters appear in more than one parameter group");
        }
      }
      for (const Tensor<float>& q : group.params) {
        EMBER_CHECK(&q == &p || q.impl_ptr() != p.impl_ptr(), name_,
                    ": a parameter appears twice in one group");
      }
    }
    state_.resize(state_.size() + group.params.size());
    groups_.push_back({std::move(group), std::nullopt});
  }

  /// The optimizer's name, as constructed ("SGD", "Adam", "AdamW", "RMSprop").
  [[nodiscard]] std::string_view type_name() const override { return name_; }
  /// The number of parameter groups.
  [[nodiscard]] std::size_t num_param_groups() const override { return groups_.size(); }
  /// Group g's parameters (throws ember::Error for a group that does not exist).
  [[nodiscard]] const std::vector<Tensor<float>>& group_params(std::size_t g) const override {
    return at(g).group.params;
  }
  /// Group g's options struct.
  [[nodiscard]] const Options& options(std::size_t g = 0) const { return at(g).group.options; }
  /// Replaces group g's options (checked).
  void set_options(std::size_t g, const Options& o) {
    check_(o);
    at(g).group.options = o;
  }
  /// True when the optimizer has an option of that PyTorch name.
  [[nodiscard]] bool has_option(std::string_view name) const override {
    Options o{};
    return detail::find_field<Options>(o, name, [](auto&) {});
  }
  /// Group g's option by PyTorch's name; throws ember::Error for an unknown name or group.
  [[nodiscard]] double option(std::size_t g, std::string_view name) const override {
    double v = 0;
    const bool found = detail::find_field<Options>(
        at(g).group.options, name, [&](const auto& m) { v = static_cast<double>(m); });
    EMBER_CHECK(found, name_, " has no option \"", name, "\"");
    return v;
  }
  /// Sets group g's option by PyTorch's name and checks the group's options again; throws for an
  /// unknown name or group or a bad value.
  void set_option(std::size_t g, std::string_view name, double value) override {
    Options o = at(g).group.options;
    const bool found = detail::find_field<Options>(o, name, [&](auto& m) {
      using M = std::decay_t<decltype(m)>;
      if constexpr (std::is_same_v<M, bool>) {
        EMBER_CHECK(value == 0 || value == 1, name_, ": option \"", name,
                    "\" is a boolean (0 or 1), got ", value);
        m = value != 0;
      } else {
        m = value;
      }
    });
    EMBER_CHECK(found, name_, " has no option \"", name, "\"");
    set_options(g, o);
  }
  /// Group g's initial_lr (PyTorch's group["initial_lr"]); unset until a scheduler sets it.
  [[nodiscard]] std::optional<double>& initial_lr(std::size_t g) override {
    return at(g).initial_lr;
  }

  /// The group options and every parameter's state, tensors copied to the CPU (torch.optim's
  /// state_dict()).
  [[nodiscard]] OptimizerState state_dict() const override {
    OptimizerState s;
    s.type = name_;
    s.steps = steps_;
    std::size_t index = 0;
    for (const auto& e : groups_) {
      OptimizerState::Group g;
      Options::fields(e.group.options,
                      [&](const char* n, const auto& m) { g.options[n] = static_cast<double>(m); });
      if (e.initial_lr) g.options["initial_lr"] = *e.initial_lr;
      for (std::size_t k = 0; k < e.group.params.size(); ++k) g.params.push_back(index++);
      s.param_groups.push_back(std::move(g));
    }
    for (const PState& ps : state_) s.state.push_back(save_state(ps));
    return s;
  }

  /// Checks the state (type, group sizes, tensor shapes) against this optimizer, then replaces the
  /// group options and the per-parameter state; changes nothing if a check fails.
  void load_state_dict(const OptimizerState& s) override {
    EMBER_CHECK(s.type == name_, name_, ".load_state_dict: the state is of a ", s.type,
                " optimizer");
    EMBER_CHECK(s.param_groups.size() == groups_.size(), name_, ".load_state_dict: the state has ",
                s.param_groups.size(), " parameter groups, the optimizer ", groups_.size());
    EMBER_CHECK(s.state.size() == state_.size(), name_, ".load_state_dict: the state has ",
                s.state.size(), " parameters, the optimizer ", state_.size());
    EMBER_CHECK(s.steps >= 0, name_, ".load_state_dict: invalid step count ", s.steps);
    // Check everything first.
    std::vector<Options> options(groups_.size());
    std::vector<std::optional<double>> initial(groups_.size());
    std::vector<Tensor<float>> all = params();
    std::size_t index = 0;
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      const OptimizerState::Group& sg = s.param_groups[g];
      EMBER_CHECK(sg.params.size() == groups_[g].group.params.size(), name_,
                  ".load_state_dict: group ", g, " has ", sg.params.size(),
                  " parameters in the state but ", groups_[g].group.params.size(),
                  " in the optimizer");
      for (std::size_t k = 0; k < sg.params.size(); ++k) {
        EMBER_CHECK(sg.params[k] == index + k, name_, ".load_state_dict: group ", g,
                    " lists parameter ", sg.params[k], " where ", index + k, " was expected");
      }
      index += sg.params.size();
      options[g] = groups_[g].group.options;
      for (const auto& [key, value] : sg.options) {
        if (key == "initial_lr") {
          initial[g] = value;
          continue;
        }
        const bool found = detail::find_field<Options>(options[g], key, [&](auto& m) {
          using M = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<M, bool>) {
            EMBER_CHECK(value == 0 || value == 1, name_, ".load_state_dict: option \"", key,
                        "\" of group ", g, " is ", value, ", expected 0 or 1");
            m = value != 0;
          } else {
            m = value;
          }
        });
        EMBER_CHECK(found, name_, ".load_state_dict: unknown option \"", key, "\" in group ", g);
      }
      check_(options[g]);
    }
    std::vector<PState> loaded(state_.size());
    for (std::size_t k = 0; k < state_.size(); ++k) loaded[k] = load_state(s.state[k], all[k], k);
    // Then apply.
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      groups_[g].group.options = options[g];
      groups_[g].initial_lr = initial[g];
    }
    state_ = std::move(loaded);
    steps_ = s.steps;
  }

 protected:
  /// A group and the lr a scheduler started it from.
  struct Entry {
    /// The group's parameters and options.
    ParamGroup<Options> group;
    /// PyTorch's group["initial_lr"], set by the first scheduler.
    std::optional<double> initial_lr;
  };

  /// PState <-> PyTorch's per-parameter state.
  [[nodiscard]] virtual std::map<std::string, Tensor<float>> save_state(const PState&) const = 0;
  /// Checks one parameter's saved state against the parameter and makes its PState (tensors on
  /// the parameter's device).
  [[nodiscard]] virtual PState load_state(const std::map<std::string, Tensor<float>>& saved,
                                          const Tensor<float>& param, std::size_t k) const = 0;

  /// A saved tensor of parameter k: checked against the parameter's shape and copied to its
  /// device (a step count, shape [], stays on the CPU).
  [[nodiscard]] Tensor<float> load_tensor(const std::map<std::string, Tensor<float>>& saved,
                                          const std::string& key, const Tensor<float>& param,
                                          std::size_t k) const {
    const auto it = saved.find(key);
    EMBER_CHECK(it != saved.end() && it->second.defined(), name_, ".load_state_dict: parameter ", k,
                " has no \"", key, "\"");
    EMBER_CHECK(it->second.shape() == param.shape(), name_, ".load_state_dict: \"", key,
                "\" of parameter ", k, " has shape ", shape_str(it->second.shape()),
                " but the parameter has shape ", shape_str(param.shape()));
    return detail::copy_to(it->second, param.device());
  }
  /// A saved step count (a float scalar, as PyTorch's): a non-negative whole number.
  [[nodiscard]] float load_step(const std::map<std::string, Tensor<float>>& saved,
                                std::size_t k) const {
    const auto it = saved.find("step");
    EMBER_CHECK(it != saved.end() && it->second.defined() && it->second.numel() == 1, name_,
                ".load_state_dict: parameter ", k, " has no scalar \"step\"");
    const float step = it->second.cpu().item();
    EMBER_CHECK(step >= 0 && step == static_cast<float>(static_cast<std::int64_t>(step)), name_,
                ".load_state_dict: step of parameter ", k, " is ", step,
                ", expected a whole number >= 0");
    return step;
  }
  /// Only these keys may be present.
  void check_keys(const std::map<std::string, Tensor<float>>& saved,
                  std::initializer_list<std::string_view> allowed, std::size_t k) const {
    for (const auto& [key, t] : saved) {
      EMBER_CHECK(std::find(allowed.begin(), allowed.end(), key) != allowed.end(), name_,
                  ".load_state_dict: unexpected state \"", key, "\" for parameter ", k);
    }
  }

  /// The device every parameter is on (one device per optimizer, as SGD's step has it), and
  /// each parameter's gradient, checked and made contiguous; undefined when it has none.
  [[nodiscard]] Device device() const { return groups_.front().group.params.front().device(); }
  /// Parameter p's gradient, checked (shape, device) and contiguous; undefined when it has none.
  [[nodiscard]] Tensor<float> checked_grad(Tensor<float>& p, Device dev) const {
    EMBER_CHECK(p.device() == dev, name_, ": parameters on different devices: ", dev.str(), " and ",
                p.device().str());
    Tensor<float> grad = p.grad();
    if (!grad.defined()) return grad;
    EMBER_CHECK(grad.shape() == p.shape(), name_, ": gradient of shape ", shape_str(grad.shape()),
                " for a parameter of shape ", shape_str(p.shape()));
    EMBER_CHECK(grad.device() == dev, name_, ": gradient on ", grad.device().str(),
                " for a parameter on ", dev.str());
    grad = grad.contiguous();  // a gradient set by set_grad() may be any view
    if (!grad.shares_storage(p.grad())) p.set_grad(grad);  // keep the contiguous copy alive
    return grad;
  }

  /// Group g, or ember::Error naming g and the number of groups.
  [[nodiscard]] Entry& at(std::size_t g) {
    EMBER_CHECK(g < groups_.size(), name_, ": no parameter group ", g, " (it has ", groups_.size(),
                ")");
    return groups_[g];
  }
  /// Group g, or ember::Error naming g and the number of groups.
  [[nodiscard]] const Entry& at(std::size_t g) const {
    EMBER_CHECK(g < groups_.size(), name_, ": no parameter group ", g, " (it has ", groups_.size(),
                ")");
    return groups_[g];
  }

  /// The optimizer's name in messages ("SGD", "Adam", ...).
  const char* name_;
  /// Checks a group's options (the derived class's check()).
  void (*check_)(const Options&);
  /// The parameter groups, in order.
  std::vector<Entry> groups_;
  std::vector<PState> state_;  ///< one per parameter, groups in order
};

/// Splits named parameters into two groups, PyTorch's usual recipe for weight decay: those of
/// rank >= 2 (convolution and linear weights) with options.weight_decay, and the rest
/// (biases, BatchNorm/LayerNorm weights and biases, all of rank 1) with weight_decay 0.
/// A group that would be empty is left out.
template <class Options>
[[nodiscard]] std::vector<ParamGroup<Options>> decay_groups(
    const std::vector<std::pair<std::string, Tensor<float>>>& named, Options options) {
  ParamGroup<Options> decay{{}, options}, no_decay{{}, options};
  no_decay.options.weight_decay = 0;
  for (const auto& [name, p] : named) (p.dim() >= 2 ? decay : no_decay).params.push_back(p);
  std::vector<ParamGroup<Options>> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

}  // namespace ember::optim
