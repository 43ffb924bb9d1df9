#pragma once
// Whether ops record the autograd graph, per thread. NoGradGuard turns recording off for a
// scope (evaluation, optimiser updates).

namespace ember {

/// Whether autograd records operations, per thread (torch.is_grad_enabled()).
class GradMode {
 public:
  /// True when ops record the graph on this thread (the default).
  [[nodiscard]] static bool enabled() { return flag(); }
  /// Turns recording on or off for this thread (torch.set_grad_enabled).
  static void set_enabled(bool on) { flag() = on; }

 private:
  static bool& flag() {
    thread_local bool on = true;
    return on;
  }
};

/// torch.no_grad() as a scope: recording is off until the guard is destroyed, then restored.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(GradMode::enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace ember
