#pragma once
// Whether ops record the autograd graph, per thread. NoGradGuard turns recording off for a
// scope (evaluation, optimiser updates).

namespace ember {

class GradMode {
 public:
  [[nodiscard]] static bool enabled() { return flag(); }
  static void set_enabled(bool on) { flag() = on; }

 private:
  static bool& flag() {
    thread_local bool on = true;
    return on;
  }
};

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
