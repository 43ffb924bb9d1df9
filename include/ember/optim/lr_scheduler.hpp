#pragma once
// Learning-rate schedulers over any optimizer (optim/optimizer.hpp), with PyTorch's exact
// semantics (torch.optim.lr_scheduler, PyTorch 2.15): each step() computes the next rates by
// the scheduler's chainable get_lr() from the groups' current rates (not a closed form), with
// the same last_epoch counting: constructing a scheduler takes the initial step (last_epoch 0)
// and sets each group's initial_lr; call step() after the optimizer's step(), once per epoch
// (or per batch for OneCycleLR).
//
//   StepLR             lr * gamma every step_size epochs
//   MultiStepLR        lr * gamma at each milestone (a milestone listed twice: gamma^2)
//   ExponentialLR      lr * gamma every epoch
//   CosineAnnealingLR  eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2, chained
//   LinearLR           base_lr * factor, the factor linear from start_factor to end_factor over
//                      total_iters epochs (a warm-up)
//   OneCycleLR         1cycle: up to max_lr then down to max_lr / div_factor / final_div_factor,
//                      momentum (or Adam's beta1) cycled the other way
//   SequentialLR       one scheduler after another, switching at the milestones
//   ReduceLROnPlateau  lr * factor when a metric stops improving: step(metric)
//
// state_dict()/load_state_dict() hold every field PyTorch's do (io/checkpoint.hpp stores
// them), so a resumed schedule continues exactly.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <numbers>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/macros.hpp"
#include "ember/optim/optimizer.hpp"

// The rates are computed in double exactly as PyTorch's Python computes them: no a * b + c may
// become a fused multiply-add, which Python never does (g++ fuses by default in GNU mode on an
// FMA target, clang within an expression; nvcc's front end knows no such pragma, so a
// translation unit compiled by nvcc may fuse them).
EMBER_FP_CONTRACT_OFF

namespace ember::optim {

/// A scheduler's whole state: numbers, lists of numbers, words, and SequentialLR's children.
struct SchedulerState {
  /// The scheduler's type_name() ("StepLR", ...), checked when the state is loaded.
  std::string type;
  /// Numbers by PyTorch's attribute names (last_epoch, gamma, ...).
  std::map<std::string, double> values;
  /// Lists of numbers (base_lrs, milestones, ...).
  std::map<std::string, std::vector<double>> lists;
  /// Words (anneal_strategy, mode, ...).
  std::map<std::string, std::string> texts;
  /// SequentialLR's children's states, in order.
  std::vector<SchedulerState> children;
};

class SequentialLR;

/// The base of every learning-rate scheduler, as torch.optim.lr_scheduler.LRScheduler: works over
/// any Optimizer, and sets each group's lr on every step().
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  /// The scheduler's class name, as PyTorch's ("StepLR", "OneCycleLR", ...).
  [[nodiscard]] virtual std::string_view type_name() const = 0;
  /// One epoch on: last_epoch + 1, and each group's lr from get_lr().
  virtual void step() {
    ++step_count_;
    update_lr(std::nullopt);
  }
  /// The rates the last step() set, one per group.
  [[nodiscard]] const std::vector<double>& get_last_lr() const { return last_lr_; }
  /// Epochs (or, for per-batch schedules, steps) taken; 0 after construction.
  [[nodiscard]] std::int64_t last_epoch() const { return last_epoch_; }
  /// Each group's initial_lr, the rates the schedule starts from.
  [[nodiscard]] const std::vector<double>& base_lrs() const { return base_lrs_; }
  /// The optimizer whose rates this scheduler sets.
  [[nodiscard]] Optimizer& optimizer() const { return *opt_; }

  /// The scheduler's state (last_epoch, base_lrs, its settings), as PyTorch's state_dict();
  /// io/checkpoint.hpp stores it.
  [[nodiscard]] virtual SchedulerState state_dict() const {
    SchedulerState s;
    s.type = std::string(type_name());
    s.values["last_epoch"] = static_cast<double>(last_epoch_);
    s.values["_step_count"] = static_cast<double>(step_count_);
    s.lists["base_lrs"] = base_lrs_;
    s.lists["_last_lr"] = last_lr_;
    save_fields(s);
    return s;
  }
  /// Replaces every field, the settings too (PyTorch's __dict__.update), after checking them.
  virtual void load_state_dict(const SchedulerState& s) {
    EMBER_CHECK(s.type == type_name(), type_name(), ".load_state_dict: the state is a ", s.type,
                "'s");
    const std::int64_t last_epoch = whole(s, "last_epoch", -1);
    const std::int64_t step_count = whole(s, "_step_count", 0);
    const std::vector<double>& base = list(s, "base_lrs", opt_->num_param_groups());
    const std::vector<double>& last = list(s, "_last_lr", opt_->num_param_groups());
    load_fields(s);  // checks and sets the settings (throws before anything changed)
    last_epoch_ = last_epoch;
    step_count_ = step_count;
    base_lrs_ = base;
    last_lr_ = last;
  }

 protected:
  friend class SequentialLR;

  /// Records each group's initial_lr (when last_epoch is -1) and the base rates.
  LRScheduler(Optimizer& opt, std::int64_t last_epoch, const char* name) : opt_(&opt) {
    EMBER_CHECK(last_epoch >= -1, name, ": invalid last_epoch ", last_epoch);
    for (std::size_t g = 0; g < opt.num_param_groups(); ++g) {
      std::optional<double>& initial = opt.initial_lr(g);
      if (last_epoch == -1) {
        if (!initial) initial = opt.option(g, "lr");
      } else {
        EMBER_CHECK(initial.has_value(), name, ": param 'initial_lr' is not specified in group ", g,
                    " when resuming a scheduler with last_epoch >= 0");
      }
      base_lrs_.push_back(*initial);
    }
    last_epoch_ = last_epoch;
  }
  /// A base that records nothing and takes no initial step (SequentialLR and ReduceLROnPlateau
  /// set their own fields, as PyTorch's do).
  explicit LRScheduler(Optimizer& opt) : opt_(&opt) {}
  /// PyTorch's _initial_step: the derived constructor's last statement.
  void initial_step() {
    step_count_ = 0;
    is_initial_ = true;
    step();
    is_initial_ = false;
  }
  /// The next rates (last_epoch already advanced).
  [[nodiscard]] virtual std::vector<double> get_lr() = 0;
  /// The closed form, where PyTorch has one (used by SequentialLR at a milestone).
  [[nodiscard]] virtual std::optional<std::vector<double>> closed_form_lr() const {
    return std::nullopt;
  }
  /// Adds the derived scheduler's settings to a state (state_dict()).
  virtual void save_fields(SchedulerState&) const {}
  /// Checks and sets the derived scheduler's settings from a state (load_state_dict()); throws
  /// before changing anything.
  virtual void load_fields(const SchedulerState&) {}

  /// Advances last_epoch (or sets it to *epoch, then uses the closed form) and sets every group's
  /// lr.
  void update_lr(std::optional<std::int64_t> epoch) {
    std::vector<double> values;
    if (!epoch) {
      ++last_epoch_;
      values = get_lr();
    } else {
      last_epoch_ = *epoch;
      auto closed = closed_form_lr();
      values = closed ? std::move(*closed) : get_lr();
    }
    for (std::size_t g = 0; g < values.size(); ++g) opt_->set_option(g, "lr", values[g]);
    last_lr_ = current_lrs();
  }
  /// Every group's lr, read from the optimizer.
  [[nodiscard]] std::vector<double> current_lrs() const {
    std::vector<double> lrs;
    for (std::size_t g = 0; g < opt_->num_param_groups(); ++g) lrs.push_back(opt_->lr(g));
    return lrs;
  }

  /// Checked reads of a state.
  [[nodiscard]] double value(const SchedulerState& s, const std::string& key) const {
    const auto it = s.values.find(key);
    EMBER_CHECK(it != s.values.end(), type_name(), ".load_state_dict: no \"", key, "\"");
    return it->second;
  }
  /// A value of the state that must be a whole number >= min (throws ember::Error otherwise).
  [[nodiscard]] std::int64_t whole(const SchedulerState& s, const std::string& key,
                                   std::int64_t min) const {
    const double v = value(s, key);
    EMBER_CHECK(v >= static_cast<double>(min) && v <= 9.0e15 && v == std::floor(v), type_name(),
                ".load_state_dict: \"", key, "\" is ", v, ", expected a whole number >= ", min);
    return static_cast<std::int64_t>(v);
  }
  /// A list of the state, with `size` values when given (throws ember::Error otherwise).
  [[nodiscard]] const std::vector<double>& list(const SchedulerState& s, const std::string& key,
                                                std::optional<std::size_t> size) const {
    const auto it = s.lists.find(key);
    EMBER_CHECK(it != s.lists.end(), type_name(), ".load_state_dict: no \"", key, "\"");
    EMBER_CHECK(!size || it->second.size() == *size, type_name(), ".load_state_dict: \"", key,
                "\" has ", it->second.size(), " values, expected ", size.value_or(0));
    return it->second;
  }

  /// The optimizer whose rates are set (not owned: it must outlive the scheduler).
  Optimizer* opt_;
  /// Each group's starting lr (PyTorch's base_lrs).
  std::vector<double> base_lrs_;
  /// The rates the last step set (get_last_lr()).
  std::vector<double> last_lr_;
  /// Steps taken; -1 before the initial step.
  std::int64_t last_epoch_ = -1;
  /// Calls of step() (PyTorch's _step_count).
  std::int64_t step_count_ = 0;
  /// True during the initial step of construction.
  bool is_initial_ = false;
};

/// lr * gamma every step_size epochs.
class StepLR : public LRScheduler {
 public:
  /// Multiplies every group's lr by gamma each step_size epochs (torch.optim.lr_scheduler.StepLR);
  /// throws for step_size < 1.
  StepLR(Optimizer& opt, std::int64_t step_size, double gamma = 0.1, std::int64_t last_epoch = -1)
      : LRScheduler(opt, last_epoch, "StepLR"), step_size_(step_size), gamma_(gamma) {
    EMBER_CHECK(step_size > 0, "StepLR: step_size must be positive, got ", step_size);
    initial_step();
  }
  [[nodiscard]] std::string_view type_name() const override { return "StepLR"; }
  /// Epochs between decays.
  [[nodiscard]] std::int64_t step_size() const { return step_size_; }
  /// The decay factor.
  [[nodiscard]] double gamma() const { return gamma_; }

 protected:
  std::vector<double> get_lr() override {
    std::vector<double> lrs = current_lrs();
    if (last_epoch_ == 0 || last_epoch_ % step_size_ != 0) return lrs;
    for (double& lr : lrs) lr *= gamma_;
    return lrs;
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    std::vector<double> lrs;
    for (double b : base_lrs_)
      lrs.push_back(b * std::pow(gamma_, static_cast<double>(last_epoch_ / step_size_)));
    return lrs;
  }
  void save_fields(SchedulerState& s) const override {
    s.values["step_size"] = static_cast<double>(step_size_);
    s.values["gamma"] = gamma_;
  }
  void load_fields(const SchedulerState& s) override {
    const std::int64_t step_size = whole(s, "step_size", 1);
    gamma_ = value(s, "gamma");
    step_size_ = step_size;
  }

 private:
  std::int64_t step_size_;
  double gamma_;
};

/// lr * gamma^(times last_epoch is listed) at each milestone.
class MultiStepLR : public LRScheduler {
 public:
  /// Multiplies the lr by gamma at each milestone epoch (torch.optim.lr_scheduler.MultiStepLR).
  MultiStepLR(Optimizer& opt, std::vector<std::int64_t> milestones, double gamma = 0.1,
              std::int64_t last_epoch = -1)
      : LRScheduler(opt, last_epoch, "MultiStepLR"),
        milestones_(std::move(milestones)),
        gamma_(gamma) {
    std::sort(milestones_.begin(), milestones_.end());
    initial_step();
  }
  [[nodiscard]] std::string_view type_name() const override { return "MultiStepLR"; }

 protected:
  std::vector<double> get_lr() override {
    std::vector<double> lrs = current_lrs();
    const auto n = std::count(milestones_.begin(), milestones_.end(), last_epoch_);
    if (n == 0) return lrs;
    for (double& lr : lrs) lr *= std::pow(gamma_, static_cast<double>(n));
    return lrs;
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    const auto passed =
        std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch_) - milestones_.begin();
    std::vector<double> lrs;
    for (double b : base_lrs_) lrs.push_back(b * std::pow(gamma_, static_cast<double>(passed)));
    return lrs;
  }
  void save_fields(SchedulerState& s) const override {
    s.values["gamma"] = gamma_;
    std::vector<double>& m = s.lists["milestones"];
    for (std::int64_t v : milestones_) m.push_back(static_cast<double>(v));
  }
  void load_fields(const SchedulerState& s) override {
    std::vector<std::int64_t> m;
    for (double v : list(s, "milestones", std::nullopt)) {
      EMBER_CHECK(v == std::floor(v) && std::abs(v) <= 9.0e15,
                  "MultiStepLR.load_state_dict: milestone ", v, " is not a whole number");
      m.push_back(static_cast<std::int64_t>(v));
    }
    std::sort(m.begin(), m.end());
    gamma_ = value(s, "gamma");
    milestones_ = std::move(m);
  }

 private:
  std::vector<std::int64_t> milestones_;  // sorted, repeats kept
  double gamma_;
};

/// lr * gamma every epoch.
class ExponentialLR : public LRScheduler {
 public:
  /// Multiplies the lr by gamma every epoch (torch.optim.lr_scheduler.ExponentialLR).
  ExponentialLR(Optimizer& opt, double gamma, std::int64_t last_epoch = -1)
      : LRScheduler(opt, last_epoch, "ExponentialLR"), gamma_(gamma) {
    initial_step();
  }
  [[nodiscard]] std::string_view type_name() const override { return "ExponentialLR"; }

 protected:
  std::vector<double> get_lr() override {
    std::vector<double> lrs = current_lrs();
    if (is_initial_) return lrs;
    for (double& lr : lrs) lr *= gamma_;
    return lrs;
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    std::vector<double> lrs;
    for (double b : base_lrs_)
      lrs.push_back(b * std::pow(gamma_, static_cast<double>(last_epoch_)));
    return lrs;
  }
  void save_fields(SchedulerState& s) const override { s.values["gamma"] = gamma_; }
  void load_fields(const SchedulerState& s) override { gamma_ = value(s, "gamma"); }

 private:
  double gamma_;
};

/// Cosine annealing from base_lr to eta_min over T_max epochs (then back up: SGDR without
/// restarts), by PyTorch's recursive form.
class CosineAnnealingLR : public LRScheduler {
 public:
  /// Cosine from each base lr down to eta_min over T_max epochs
  /// (torch.optim.lr_scheduler.CosineAnnealingLR, the chainable form).
  CosineAnnealingLR(Optimizer& opt, std::int64_t T_max, double eta_min = 0.0,
                    std::int64_t last_epoch = -1)
      : LRScheduler(opt, last_epoch, "CosineAnnealingLR"), t_max_(T_max), eta_min_(eta_min) {
    EMBER_CHECK(T_max > 0, "CosineAnnealingLR: T_max must be positive, got ", T_max);
    initial_step();
  }
  [[nodiscard]] std::string_view type_name() const override { return "CosineAnnealingLR"; }

 protected:
  std::vector<double> get_lr() override {
    constexpr double pi = std::numbers::pi;
    const auto e = static_cast<double>(last_epoch_), t = static_cast<double>(t_max_);
    std::vector<double> lrs = current_lrs();
    if (is_initial_) return lrs;
    if (step_count_ == 1 && last_epoch_ > 0) {
      for (std::size_t g = 0; g < lrs.size(); ++g)
        lrs[g] = eta_min_ + (base_lrs_[g] - eta_min_) * (1 + std::cos(e * pi / t)) / 2;
      return lrs;
    }
    const std::int64_t r = (last_epoch_ - 1 - t_max_) % (2 * t_max_);  // Python's modulo
    if (r == 0) {
      for (std::size_t g = 0; g < lrs.size(); ++g)
        lrs[g] = lrs[g] + (base_lrs_[g] - eta_min_) * (1 - std::cos(pi / t)) / 2;
      return lrs;
    }
    for (double& lr : lrs) {
      lr = (1 + std::cos(pi * e / t)) / (1 + std::cos(pi * (e - 1) / t)) * (lr - eta_min_) +
           eta_min_;
    }
    return lrs;
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    const auto e = static_cast<double>(last_epoch_), t = static_cast<double>(t_max_);
    std::vector<double> lrs;
    for (double b : base_lrs_)
      lrs.push_back(eta_min_ + (b - eta_min_) * (1 + std::cos(std::numbers::pi * e / t)) / 2);
    return lrs;
  }
  void save_fields(SchedulerState& s) const override {
    s.values["T_max"] = static_cast<double>(t_max_);
    s.values["eta_min"] = eta_min_;
  }
  void load_fields(const SchedulerState& s) override {
    const std::int64_t t = whole(s, "T_max", 1);
    eta_min_ = value(s, "eta_min");
    t_max_ = t;
  }

 private:
  std::int64_t t_max_;
  double eta_min_;
};

/// base_lr * factor, the factor going linearly from start_factor to end_factor over
/// total_iters epochs, then staying (a warm-up).
class LinearLR : public LRScheduler {
 public:
  /// Scales the lr linearly from start_factor to end_factor over total_iters epochs: a warm-up
  /// (torch.optim.lr_scheduler.LinearLR).
  LinearLR(Optimizer& opt, double start_factor = 1.0 / 3, double end_factor = 1.0,
           std::int64_t total_iters = 5, std::int64_t last_epoch = -1)
      : LRScheduler(opt, last_epoch, "LinearLR"),
        start_(start_factor),
        end_(end_factor),
        total_iters_(total_iters) {
    EMBER_CHECK(start_factor > 0 && start_factor <= 1.0,
                "LinearLR: starting multiplicative factor expected to be greater than 0 and "
                "less or equal to 1, got ",
                start_factor);
    EMBER_CHECK(end_factor >= 0 && end_factor <= 1.0,
                "LinearLR: ending multiplicative factor expected to be between 0 and 1, got ",
                end_factor);
    initial_step();
  }
  [[nodiscard]] std::string_view type_name() const override { return "LinearLR"; }

 protected:
  std::vector<double> get_lr() override {
    std::vector<double> lrs = current_lrs();
    if (last_epoch_ == 0) {
      for (double& lr : lrs) lr *= start_;
      return lrs;
    }
    if (is_initial_ || last_epoch_ > total_iters_) return lrs;
    for (double& lr : lrs) {
      lr *= 1.0 + (end_ - start_) / (static_cast<double>(total_iters_) * start_ +
                                     static_cast<double>(last_epoch_ - 1) * (end_ - start_));
    }
    return lrs;
  }
  std::optional<std::vector<double>> closed_form_lr() const override {
    std::vector<double> lrs;
    const auto done = static_cast<double>(std::min(total_iters_, last_epoch_));
    for (double b : base_lrs_)
      lrs.push_back(b * (start_ + (end_ - start_) * done / static_cast<double>(total_iters_)));
    return lrs;
  }
  void save_fields(SchedulerState& s) const override {
    s.values["start_factor"] = start_;
    s.values["end_factor"] = end_;
    s.values["total_iters"] = static_cast<double>(total_iters_);
  }
  void load_fields(const SchedulerState& s) override {
    const std::int64_t total = whole(s, "total_iters", 0);
    start_ = value(s, "start_factor");
    end_ = value(s, "end_factor");
    total_iters_ = total;
  }

 private:
  double start_, end_;
  std::int64_t total_iters_;
};

/// OneCycleLR's options, PyTorch's keyword arguments and defaults; give max_lr and either
/// total_steps or epochs and steps_per_epoch.
struct OneCycleLROptions {
  std::vector<double> max_lr = {};  ///< one value for every group, or one per group
  std::optional<std::int64_t> total_steps = std::nullopt;  ///< or epochs * steps_per_epoch
  /// Epochs, with steps_per_epoch, when total_steps is not given.
  std::optional<std::int64_t> epochs = std::nullopt;
  /// Optimizer steps per epoch, with epochs.
  std::optional<std::int64_t> steps_per_epoch = std::nullopt;
  /// Fraction of the cycle spent raising the lr.
  double pct_start = 0.3;
  std::string anneal_strategy = "cos";  ///< or "linear"
  /// Cycle the momentum (SGD's momentum, or Adam's beta1) inversely to the lr.
  bool cycle_momentum = true;
  /// Lowest momentum, at the peak lr.
  double base_momentum = 0.85;
  /// Highest momentum, at the start and end.
  double max_momentum = 0.95;
  /// initial_lr = max_lr / div_factor.
  double div_factor = 25.0;
  /// min_lr = initial_lr / final_div_factor.
  double final_div_factor = 1e4;
  /// A third phase that anneals from initial_lr down to min_lr (else two phases).
  bool three_phase = false;
};

namespace detail {

// OneCycleLR's settings, a base constructed before LRScheduler: it checks the options and sets
// the groups' initial_lr and momentum as PyTorch's constructor does before it calls
// LRScheduler's.
struct OneCycleLRSetup {
  OneCycleLRSetup(Optimizer& opt, const OneCycleLROptions& o, std::int64_t last_epoch) {
    if (o.total_steps) {
      EMBER_CHECK(*o.total_steps > 0, "OneCycleLR: expected positive integer total_steps, got ",
                  *o.total_steps);
      total_steps = *o.total_steps;
    } else {
      EMBER_CHECK(o.epochs && o.steps_per_epoch,
                  "OneCycleLR: you must define either total_steps OR (epochs AND steps_per_epoch)");
      EMBER_CHECK(*o.epochs > 0, "OneCycleLR: expected positive integer epochs, got ", *o.epochs);
      EMBER_CHECK(*o.steps_per_epoch > 0,
                  "OneCycleLR: expected positive integer steps_per_epoch, got ",
                  *o.steps_per_epoch);
      total_steps = *o.epochs * *o.steps_per_epoch;
    }
    EMBER_CHECK(o.pct_start >= 0 && o.pct_start <= 1,
                "OneCycleLR: expected float between 0 and 1 pct_start, got ", o.pct_start);
    EMBER_CHECK(o.anneal_strategy == "cos" || o.anneal_strategy == "linear",
                "OneCycleLR: anneal_strategy must be one of 'cos' or 'linear', instead got ",
                o.anneal_strategy);
    pct_start = o.pct_start;
    three_phase = o.three_phase;
    cos = o.anneal_strategy == "cos";
    const std::size_t n = opt.num_param_groups();
    EMBER_CHECK(o.max_lr.size() == 1 || o.max_lr.size() == n,
                "OneCycleLR: max_lr must have the same length as optimizer.param_groups: it has ",
                o.max_lr.size(), " values, param_groups has ", n);
    cycle_momentum = o.cycle_momentum;
    momentum = momentum_name(opt);
    EMBER_CHECK(!cycle_momentum || !momentum.empty(),
                "OneCycleLR: optimizer must support momentum or beta1 with `cycle_momentum` "
                "option enabled");
    for (std::size_t g = 0; g < n; ++g) {
      const double max = o.max_lr.size() == 1 ? o.max_lr[0] : o.max_lr[g];
      if (last_epoch == -1) opt.initial_lr(g) = max / o.div_factor;
      EMBER_CHECK(opt.initial_lr(g).has_value(),
                  "OneCycleLR: param 'initial_lr' is not "
                  "specified in group ",
                  g, " when resuming with last_epoch >= 0");
      initial.push_back(*opt.initial_lr(g));
      max_lr.push_back(max);
      min_lr.push_back(initial.back() / o.final_div_factor);
      max_m.push_back(o.max_momentum);
      base_m.push_back(o.base_momentum);
      if (cycle_momentum && last_epoch == -1) opt.set_option(g, momentum, o.max_momentum);
    }
  }
  // The option OneCycleLR cycles: Adam's beta1, else the momentum, else none.
  static std::string momentum_name(const Optimizer& opt) {
    if (opt.has_option("beta1")) return "beta1";
    if (opt.has_option("momentum")) return "momentum";
    return "";
  }

  std::int64_t total_steps = 0;
  double pct_start = 0.3;
  bool cycle_momentum = true, three_phase = false, cos = true;
  std::string momentum;
  std::vector<double> initial, max_lr, min_lr, max_m, base_m;  // per group
};

}  // namespace detail

/// The 1cycle policy (Smith and Topin): lr from max_lr / div_factor up to max_lr over
/// pct_start of total_steps, then down to initial_lr / final_div_factor; with cycle_momentum
/// the group's momentum (SGD, RMSprop) or beta1 (Adam, AdamW) goes from max_momentum down to
/// base_momentum and back. Stepped once per batch; a step past total_steps is an error.
class OneCycleLR : private detail::OneCycleLRSetup, public LRScheduler {
 public:
  /// The one-cycle policy (torch.optim.lr_scheduler.OneCycleLR): step it after every batch; throws
  /// for options PyTorch refuses.
  OneCycleLR(Optimizer& opt, const OneCycleLROptions& o, std::int64_t last_epoch = -1)
      : OneCycleLRSetup(opt, o, last_epoch), LRScheduler(opt, last_epoch, "OneCycleLR") {
    initial_step();
  }
  [[nodiscard]] std::string_view type_name() const override { return "OneCycleLR"; }
  /// The number of steps in the cycle (total_steps, or epochs * steps_per_epoch).
  [[nodiscard]] std::int64_t total_steps() const { return OneCycleLRSetup::total_steps; }

 protected:
  /// One phase of the cycle: where it ends and which rates and momenta it moves between.
  struct Phase {
    /// The step at which the phase ends.
    double end_step;
    /// 0 initial_lr, 1 max_lr, 2 min_lr; 0 max_m, 1 base_m
    /// @{
    int start_lr, end_lr, start_m, end_m;
    /// @}
  };

  std::vector<double> get_lr() override {
    const std::int64_t step_num = last_epoch_;
    EMBER_CHECK(step_num <= OneCycleLRSetup::total_steps, "OneCycleLR: tried to step ", step_num,
                " times; the specified number of total steps is ", OneCycleLRSetup::total_steps);
    const std::vector<Phase> phases = this->phases();
    std::vector<double> lrs;
    for (std::size_t g = 0; g < opt_->num_param_groups(); ++g) {
      const double lr_of[3] = {initial[g], max_lr[g], min_lr[g]};
      const double m_of[2] = {max_m[g], base_m[g]};
      double start_step = 0, lr = 0, m = 0;
      for (std::size_t i = 0; i < phases.size(); ++i) {
        const Phase& ph = phases[i];
        if (static_cast<double>(step_num) <= ph.end_step || i == phases.size() - 1) {
          const double pct =
              (static_cast<double>(step_num) - start_step) / (ph.end_step - start_step);
          lr = anneal(lr_of[ph.start_lr], lr_of[ph.end_lr], pct);
          if (cycle_momentum) m = anneal(m_of[ph.start_m], m_of[ph.end_m], pct);
          break;
        }
        start_step = ph.end_step;
      }
      lrs.push_back(lr);
      if (cycle_momentum) opt_->set_option(g, momentum, m);
    }
    return lrs;
  }
  void save_fields(SchedulerState& s) const override {
    s.values["total_steps"] = static_cast<double>(OneCycleLRSetup::total_steps);
    s.values["pct_start"] = pct_start;
    s.values["cycle_momentum"] = cycle_momentum ? 1 : 0;
    s.values["three_phase"] = three_phase ? 1 : 0;
    s.texts["anneal_strategy"] = cos ? "cos" : "linear";
    s.lists["initial_lr"] = initial;
    s.lists["max_lr"] = max_lr;
    s.lists["min_lr"] = min_lr;
    s.lists["max_momentum"] = max_m;
    s.lists["base_momentum"] = base_m;
  }
  void load_fields(const SchedulerState& s) override {
    const std::size_t n = opt_->num_param_groups();
    const std::int64_t total = whole(s, "total_steps", 1);
    const double pct = value(s, "pct_start");
    const bool cycle = value(s, "cycle_momentum") != 0, three = value(s, "three_phase") != 0;
    const auto it = s.texts.find("anneal_strategy");
    EMBER_CHECK(it != s.texts.end() && (it->second == "cos" || it->second == "linear"),
                "OneCycleLR.load_state_dict: anneal_strategy must be \"cos\" or \"linear\"");
    EMBER_CHECK(!cycle || !momentum.empty(),
                "OneCycleLR.load_state_dict: cycle_momentum with an optimizer without momentum");
    const auto& init = list(s, "initial_lr", n);
    const auto& max = list(s, "max_lr", n);
    const auto& min = list(s, "min_lr", n);
    const auto& max_mom = list(s, "max_momentum", n);
    const auto& base_mom = list(s, "base_momentum", n);
    OneCycleLRSetup::total_steps = total;
    pct_start = pct;
    cycle_momentum = cycle;
    three_phase = three;
    cos = it->second == "cos";
    initial = init;
    max_lr = max;
    min_lr = min;
    max_m = max_mom;
    base_m = base_mom;
  }

 private:
  [[nodiscard]] std::vector<Phase> phases() const {
    const auto total = static_cast<double>(OneCycleLRSetup::total_steps);
    if (three_phase) {
      return {{pct_start * total - 1, 0, 1, 0, 1},
              {2 * pct_start * total - 2, 1, 0, 1, 0},
              {total - 1, 0, 2, 0, 0}};
    }
    return {{pct_start * total - 1, 0, 1, 0, 1}, {total - 1, 1, 2, 1, 0}};
  }
  [[nodiscard]] double anneal(double start, double end, double pct) const {
    if (cos) {
      const double cos_out = std::cos(std::numbers::pi * pct) + 1;
      return end + (start - end) / 2.0 * cos_out;
    }
    return (end - start) * pct + start;
  }
};

class ReduceLROnPlateau;

/// Runs schedulers one after another: schedulers[i] from milestones[i - 1] on. At a milestone
/// the next scheduler starts from epoch 0 (its closed form, where it has one).
class SequentialLR : public LRScheduler {
 public:
  /// Runs `schedulers` one after another, switching at `milestones` (one fewer than schedulers);
  /// they must all drive `opt`.
  SequentialLR(Optimizer& opt, std::vector<std::shared_ptr<LRScheduler>> schedulers,
               std::vector<std::int64_t> milestones, std::int64_t last_epoch = -1)
      : LRScheduler(opt), schedulers_(std::move(schedulers)), milestones_(std::move(milestones)) {
    EMBER_CHECK(!schedulers_.empty(),
                "SequentialLR expects at least one scheduler, but got no scheduler");
    for (std::size_t i = 0; i < schedulers_.size(); ++i) {
      EMBER_CHECK(schedulers_[i] != nullptr, "SequentialLR: scheduler ", i, " is null");
      EMBER_CHECK(schedulers_[i]->type_name() != "ReduceLROnPlateau",
                  "SequentialLR does not support `ReduceLROnPlateau` scheduler as it requires "
                  "additional kwargs to be specified when calling `step`, but got one at index ",
                  i, " in the given schedulers sequence");
      EMBER_CHECK(&schedulers_[i]->optimizer() == &opt,
                  "SequentialLR expects all schedulers to belong to the same optimizer, but "
                  "scheduler ",
                  schedulers_[i]->type_name(), " at index ", i, " has another optimizer");
    }
    EMBER_CHECK(milestones_.size() == schedulers_.size() - 1,
                "Sequential Schedulers expects number of schedulers provided to be one more than "
                "the number of milestone points, but got number of schedulers ",
                schedulers_.size(), " and the number of milestones to be equal to ",
                milestones_.size());
    last_epoch_ = last_epoch + 1;
    for (std::size_t g = 0; g < opt.num_param_groups(); ++g) {
      const std::optional<double>& initial = opt.initial_lr(g);
      EMBER_CHECK(initial.has_value(), "SequentialLR: group ", g, " has no initial_lr");
      opt.set_option(g, "lr", *initial);
    }
    recursive_undo(*this);
    const std::size_t idx = index_for(0);
    schedulers_[idx]->initial_step();
    last_lr_ = schedulers_[idx]->get_last_lr();
  }
  [[nodiscard]] std::string_view type_name() const override { return "SequentialLR"; }
  void step() override {
    ++last_epoch_;
    const std::size_t idx = index_for(last_epoch_);
    LRScheduler& s = *schedulers_[idx];
    if (idx > 0 && milestones_[idx - 1] == last_epoch_)
      s.update_lr(0);
    else
      s.step();
    last_lr_ = s.get_last_lr();
  }
  /// The schedulers it runs, in order.
  [[nodiscard]] const std::vector<std::shared_ptr<LRScheduler>>& schedulers() const {
    return schedulers_;
  }

  [[nodiscard]] SchedulerState state_dict() const override {
    SchedulerState s;
    s.type = "SequentialLR";
    s.values["last_epoch"] = static_cast<double>(last_epoch_);
    s.lists["_last_lr"] = last_lr_;
    std::vector<double>& m = s.lists["_milestones"];
    for (std::int64_t v : milestones_) m.push_back(static_cast<double>(v));
    for (const auto& c : schedulers_) s.children.push_back(c->state_dict());
    return s;
  }
  void load_state_dict(const SchedulerState& s) override {
    EMBER_CHECK(s.type == "SequentialLR", "SequentialLR.load_state_dict: the state is a ", s.type,
                "'s");
    EMBER_CHECK(s.children.size() == schedulers_.size(),
                "SequentialLR.load_state_dict: the "
                "state has ",
                s.children.size(), " schedulers, this one ", schedulers_.size());
    const std::int64_t last_epoch = whole(s, "last_epoch", 0);
    const std::vector<double>& last = list(s, "_last_lr", opt_->num_param_groups());
    std::vector<std::int64_t> milestones;
    for (double v : list(s, "_milestones", milestones_.size())) {
      EMBER_CHECK(v == std::floor(v) && std::abs(v) <= 9.0e15,
                  "SequentialLR.load_state_dict: milestone ", v, " is not a whole number");
      milestones.push_back(static_cast<std::int64_t>(v));
    }
    // The children check their own states; keep theirs to put back if one fails.
    std::vector<SchedulerState> before;
    for (const auto& c : schedulers_) before.push_back(c->state_dict());
    try {
      for (std::size_t i = 0; i < schedulers_.size(); ++i)
        schedulers_[i]->load_state_dict(s.children[i]);
    } catch (...) {
      for (std::size_t i = 0; i < schedulers_.size(); ++i)
        schedulers_[i]->load_state_dict(before[i]);
      throw;
    }
    last_epoch_ = last_epoch;
    last_lr_ = last;
    milestones_ = std::move(milestones);
  }

 protected:
  std::vector<double> get_lr() override { return current_lrs(); }  // (not called)

 private:
  std::size_t index_for(std::int64_t epoch) const {
    return static_cast<std::size_t>(
        std::upper_bound(milestones_.begin(), milestones_.end(), epoch) - milestones_.begin());
  }
  static void recursive_undo(LRScheduler& s) {
    if (auto* seq = dynamic_cast<SequentialLR*>(&s)) {
      for (const auto& c : seq->schedulers_) recursive_undo(*c);
    } else {
      --s.last_epoch_;
    }
  }

  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
  std::vector<std::int64_t> milestones_;
};

/// ReduceLROnPlateau's options, PyTorch's keyword arguments and defaults.
struct ReduceLROnPlateauOptions {
  std::string mode = "min";  ///< or "max": the metric should fall, or rise
  /// Factor by which the lr is reduced; must be < 1.
  double factor = 0.1;
  /// Epochs without improvement tolerated before the lr is reduced.
  std::int64_t patience = 10;
  /// The least change that counts as an improvement (relative or absolute, see threshold_mode).
  double threshold = 1e-4;
  std::string threshold_mode = "rel";  ///< or "abs"
  /// Epochs to wait after a reduction before counting bad epochs again.
  std::int64_t cooldown = 0;
  std::vector<double> min_lr = {0.0};  ///< one for every group, or one per group
  /// A reduction smaller than this is not applied.
  double eps = 1e-8;
};

/// lr * factor (not below min_lr) once the metric passed to step(metric) has not improved for
/// more than `patience` epochs; then `cooldown` epochs without counting.
class ReduceLROnPlateau : public LRScheduler {
 public:
  /// Watches a metric passed to step(metric); throws for factor >= 1 or an unknown mode.
  explicit ReduceLROnPlateau(Optimizer& opt, ReduceLROnPlateauOptions o = {})
      : LRScheduler(opt), o_(std::move(o)) {
    EMBER_CHECK(o_.factor < 1.0, "ReduceLROnPlateau: factor should be < 1.0, got ", o_.factor);
    EMBER_CHECK(o_.mode == "min" || o_.mode == "max", "ReduceLROnPlateau: mode ", o_.mode,
                " is unknown!");
    EMBER_CHECK(o_.threshold_mode == "rel" || o_.threshold_mode == "abs",
                "ReduceLROnPlateau: threshold mode ", o_.threshold_mode, " is unknown!");
    const std::size_t n = opt.num_param_groups();
    EMBER_CHECK(o_.min_lr.size() == 1 || o_.min_lr.size() == n, "ReduceLROnPlateau: expected ", n,
                " min_lrs, got ", o_.min_lr.size());
    if (o_.min_lr.size() == 1) o_.min_lr.assign(n, o_.min_lr[0]);
    last_epoch_ = 0;
    last_lr_ = current_lrs();
    best_ = worse();
  }
  [[nodiscard]] std::string_view type_name() const override { return "ReduceLROnPlateau"; }
  [[noreturn]] void step() override {
    throw Error("ReduceLROnPlateau: step() needs the metric: call step(metric)");
  }
  /// One epoch's metric (e.g. the validation loss): reduces the lr after more than patience epochs
  /// without improvement.
  void step(double metric) {
    const double current = metric;
    last_epoch_ += 1;
    if (is_better(current, best_)) {
      best_ = current;
      num_bad_epochs_ = 0;
    } else {
      num_bad_epochs_ += 1;
    }
    if (cooldown_counter_ > 0) {
      cooldown_counter_ -= 1;
      num_bad_epochs_ = 0;  // ignore any bad epochs in cooldown
    }
    if (num_bad_epochs_ > o_.patience) {
      for (std::size_t g = 0; g < opt_->num_param_groups(); ++g) {
        const double old_lr = opt_->lr(g);
        const double new_lr = std::max(old_lr * o_.factor, o_.min_lr[g]);
        if (old_lr - new_lr > o_.eps) opt_->set_option(g, "lr", new_lr);
      }
      cooldown_counter_ = o_.cooldown;
      num_bad_epochs_ = 0;
    }
    last_lr_ = current_lrs();
  }
  /// The best metric seen so far.
  [[nodiscard]] double best() const { return best_; }
  /// Epochs since the metric last improved.
  [[nodiscard]] std::int64_t num_bad_epochs() const { return num_bad_epochs_; }

  [[nodiscard]] SchedulerState state_dict() const override {
    SchedulerState s;
    s.type = "ReduceLROnPlateau";
    s.values["last_epoch"] = static_cast<double>(last_epoch_);
    s.lists["_last_lr"] = last_lr_;
    s.values["factor"] = o_.factor;
    s.values["patience"] = static_cast<double>(o_.patience);
    s.values["threshold"] = o_.threshold;
    s.values["cooldown"] = static_cast<double>(o_.cooldown);
    s.values["eps"] = o_.eps;
    s.lists["min_lrs"] = o_.min_lr;
    s.texts["mode"] = o_.mode;
    s.texts["threshold_mode"] = o_.threshold_mode;
    s.values["best"] = best_;
    s.values["num_bad_epochs"] = static_cast<double>(num_bad_epochs_);
    s.values["cooldown_counter"] = static_cast<double>(cooldown_counter_);
    return s;
  }
  void load_state_dict(const SchedulerState& s) override {
    EMBER_CHECK(s.type == "ReduceLROnPlateau",
                "ReduceLROnPlateau.load_state_dict: the state "
                "is a ",
                s.type, "'s");
    ReduceLROnPlateauOptions o;
    const auto text = [&](const char* key) {
      const auto it = s.texts.find(key);
      EMBER_CHECK(it != s.texts.end(), "ReduceLROnPlateau.load_state_dict: no \"", key, "\"");
      return it->second;
    };
    o.mode = text("mode");
    o.threshold_mode = text("threshold_mode");
    EMBER_CHECK((o.mode == "min" || o.mode == "max") &&
                    (o.threshold_mode == "rel" || o.threshold_mode == "abs"),
                "ReduceLROnPlateau.load_state_dict: unknown mode ", o.mode, " or threshold mode ",
                o.threshold_mode);
    o.factor = value(s, "factor");
    o.patience = whole(s, "patience", 0);
    o.threshold = value(s, "threshold");
    o.cooldown = whole(s, "cooldown", 0);
    o.eps = value(s, "eps");
    o.min_lr = list(s, "min_lrs", opt_->num_param_groups());
    const std::int64_t last_epoch = whole(s, "last_epoch", 0);
    const std::vector<double>& last = list(s, "_last_lr", opt_->num_param_groups());
    const double best = value(s, "best");
    const std::int64_t bad = whole(s, "num_bad_epochs", 0);
    const std::int64_t cooldown_counter = whole(s, "cooldown_counter", 0);
    o_ = std::move(o);
    last_epoch_ = last_epoch;
    last_lr_ = last;
    best_ = best;
    num_bad_epochs_ = bad;
    cooldown_counter_ = cooldown_counter;
  }

 protected:
  std::vector<double> get_lr() override { return current_lrs(); }  // (not called)

 private:
  [[nodiscard]] double worse() const {
    return o_.mode == "min" ? std::numeric_limits<double>::infinity()
                            : -std::numeric_limits<double>::infinity();
  }
  [[nodiscard]] bool is_better(double a, double best) const {
    if (o_.mode == "min" && o_.threshold_mode == "rel") return a < best * (1.0 - o_.threshold);
    if (o_.mode == "min") return a < best - o_.threshold;
    if (o_.threshold_mode == "rel") return a > best * (o_.threshold + 1.0);
    return a > best + o_.threshold;
  }

  ReduceLROnPlateauOptions o_;
  double best_ = 0;
  std::int64_t num_bad_epochs_ = 0, cooldown_counter_ = 0;
};

}  // namespace ember::optim

EMBER_FP_CONTRACT_RESTORE
