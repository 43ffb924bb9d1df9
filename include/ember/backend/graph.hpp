#pragma once
// DeviceGraph: capture the work a piece of code queues on a CUDA device once, then replay it
// with one launch (a CUDA graph). Usable from plain C++ files: it goes through the registered
// CUDA backend. Inside a capture nothing may read results on the host (item(), to_vector(),
// .cpu()), and tensors made during the capture keep their device addresses for every replay,
// in a memory pool private to the graph, so outputs read after a replay are the captured ones.

#include <utility>

#include "ember/backend/dispatch.hpp"
#include "ember/backend/device_backend.hpp"
#include "ember/core/device.hpp"

namespace ember::op {
// *p = value, ordered on the device's stream: a kernel, so that a graph captures it as a node
// whose value is fixed (used to hand a fresh Philox offset to each graph replay).
struct SetU64 {
  static constexpr const char* name = "set_u64";
  template <class T>
  using sig = void(std::uint64_t* p, std::uint64_t value);
};
}  // namespace ember::op

namespace ember {

class DeviceGraph {
 public:
  DeviceGraph() = default;
  DeviceGraph(const DeviceGraph&) = delete;
  DeviceGraph& operator=(const DeviceGraph&) = delete;
  DeviceGraph(DeviceGraph&& o) noexcept : handle_(std::exchange(o.handle_, nullptr)) {}
  DeviceGraph& operator=(DeviceGraph&& o) noexcept {
    if (this != &o) {
      reset();
      handle_ = std::exchange(o.handle_, nullptr);
    }
    return *this;
  }
  ~DeviceGraph() { reset(); }

  void begin_capture(Device d) {
    EMBER_CHECK(d.is_cuda(), "DeviceGraph: ", d.str(), " is not a CUDA device");
    check_device_available(d);
    reset();
    handle_ = backend::cuda_runtime().graph_begin_capture(d.index);
  }
  void end_capture() {
    EMBER_CHECK(handle_ != nullptr, "DeviceGraph::end_capture without begin_capture");
    backend::cuda_runtime().graph_end_capture(handle_);
  }
  void replay() {
    EMBER_CHECK(handle_ != nullptr, "DeviceGraph::replay: nothing captured");
    backend::cuda_runtime().graph_replay(handle_);
  }
  [[nodiscard]] bool captured() const { return handle_ != nullptr; }
  // Destroys the graph. Tensors made during its capture must be gone first.
  void reset() noexcept {
    if (handle_ != nullptr) backend::cuda_registry().runtime->graph_destroy(handle_);
    handle_ = nullptr;
  }

 private:
  void* handle_ = nullptr;
};

}  // namespace ember
