#pragma once
// A CUDA backend for machines without a GPU (test-only): the runtime interfaces of
// ember/backend/device_backend.hpp, and the very op table of the real backend
// (ember/backend/cuda/ops.hpp) with the kernels of include/ember/kernels/ run on the CPU
// execution harness (support/cuda_emu.hpp), over "device" memory that is ordinary host memory.
// Registered in place of the real backend, it lets the op-level CUDA tests
// (tests/cuda/test_cuda_ops.cpp) run in CI: every op's device path, the autograd engine,
// modules, SGD, the device data loader and graph capture/replay all reach the kernels exactly
// as they do on a GPU. The vendor-library choices (cublas, cudnn) are accepted by name and run
// the hand-written kernels.
//
// Graphs: while capturing, kernel launches and device copies are recorded with their
// arguments (support/cuda_emu.hpp) and replay() runs them again; memory freed during or after
// a capture is kept until the graph is destroyed, as the real backend's private pools do, so
// a replay that wrote to memory the graph no longer owned would be caught by AddressSanitizer.

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "support/cuda_emu.hpp"

#include "ember/backend/device_backend.hpp"

#include "ember/backend/cuda/ops.hpp"
#include <ember/kernels/elementwise.cuh>

namespace ember::emu {

struct EmuGraph {
  std::vector<Recorded> steps;
  std::vector<void*> kept;  // memory freed while this graph lived
};

class EmuRuntime final : public backend::DeviceRuntime {
 public:
  int device_count() override { return 1; }
  std::string device_name(int) override { return "CPU execution harness"; }
  void* allocate(int device, std::size_t bytes) override {
    check(device);
    void* p = ::operator new(bytes == 0 ? 1 : bytes);
    if (capture_ != nullptr) graph_blocks_.insert(p);
    return p;
  }
  void deallocate(int, void* p, std::size_t) override {
    if (p == nullptr) return;
    // Memory a graph wrote to stays until the graph goes (the private pool's guarantee).
    if (capture_ != nullptr || graph_blocks_.count(p) != 0) {
      if (capture_ != nullptr) capture_->kept.push_back(p);
      else orphans_.push_back(p);
      return;
    }
    ::operator delete(p);
  }
  void copy_to_device(int device, void* dst, const void* src, std::size_t bytes) override {
    check(device);
    EMBER_CHECK(capture_ == nullptr, "copy to the device during a graph capture");
    std::memcpy(dst, src, bytes);
  }
  void copy_to_host(int device, void* dst, const void* src, std::size_t bytes) override {
    check(device);
    EMBER_CHECK(capture_ == nullptr, "copy to the host during a graph capture");
    std::memcpy(dst, src, bytes);
  }
  void copy_on_device(int device, void* dst, const void* src, std::size_t bytes) override {
    check(device);
    cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice);
  }
  void synchronize(int device) override { check(device); }
  bool capturing(int) override { return capture_ != nullptr; }

  void* graph_begin_capture(int device) override {
    check(device);
    EMBER_CHECK(capture_ == nullptr, "nested graph capture");
    capture_ = new EmuGraph();
    recorder() = &capture_->steps;
    return capture_;
  }
  void graph_end_capture(void* graph) override {
    EMBER_CHECK(graph == capture_, "graph_end_capture of a graph that is not capturing");
    recorder() = nullptr;
    capture_ = nullptr;
  }
  void graph_replay(void* graph) override {
    for (auto& step : static_cast<EmuGraph*>(graph)->steps) step();
  }
  void graph_destroy(void* graph) noexcept override {
    auto* g = static_cast<EmuGraph*>(graph);
    if (g == capture_) {
      recorder() = nullptr;
      capture_ = nullptr;
    }
    for (void* p : g->kept) {
      graph_blocks_.erase(p);
      ::operator delete(p);
    }
    delete g;
  }

  void set_gemm_backend(const std::string& name) override {
    EMBER_CHECK(name == "custom" || name == "cublas", "unknown GEMM backend '", name,
                "' (expected custom or cublas)");
    gemm_ = name;
  }
  void set_conv_backend(const std::string& name) override {
    EMBER_CHECK(name == "custom" || name == "cudnn", "unknown convolution backend '", name,
                "' (expected custom or cudnn)");
    conv_ = name;
  }
  std::string gemm_backend() override { return gemm_; }
  std::string conv_backend() override { return conv_; }

 private:
  static void check(int device) {
    EMBER_CHECK(device == 0, "cuda:", device, " requested, but this machine has 1 CUDA device(s)");
  }
  EmuGraph* capture_ = nullptr;
  std::set<void*> graph_blocks_;
  std::vector<void*> orphans_;  // graph memory freed after its capture: never reused
  std::string gemm_ = "custom", conv_ = "custom";
};

template <class T>
class EmuCopy final : public backend::DeviceCopy<T> {
 public:
  void fill(int, T* out, std::int64_t n, T value) override { kernels::fill<T>(out, n, value, nullptr); }
  void strided_copy(int, const T* src, const StridedView& vs, T* dst, const StridedView& vd,
                    std::int64_t n) override {
    kernels::strided_copy<T>(src, vs, dst, vd, n, nullptr);
  }
  void cast(int, const T* src, void* dst, DType t, std::int64_t n) override {
    switch (t) {
      case DType::f32: kernels::cast<T, float>(src, static_cast<float*>(dst), n, nullptr); break;
      case DType::f64: kernels::cast<T, double>(src, static_cast<double*>(dst), n, nullptr); break;
      case DType::i64: kernels::cast<T, std::int64_t>(src, static_cast<std::int64_t*>(dst), n, nullptr); break;
      case DType::i32: kernels::cast<T, std::int32_t>(src, static_cast<std::int32_t*>(dst), n, nullptr); break;
      case DType::u8: kernels::cast<T, std::uint8_t>(src, static_cast<std::uint8_t*>(dst), n, nullptr); break;
    }
  }
};

// The execution context of the op table (ember/backend/cuda/ops.hpp) on the harness: the same
// launches as on a GPU, with no streams, no device switch, and the hand-written kernels in
// place of the vendor libraries.
struct EmuContext {
  struct Guard {
    explicit Guard(int device) {
      EMBER_CHECK(device == 0, "cuda:", device, " requested, but this machine has 1 CUDA device(s)");
    }
  };
  static cudaStream_t stream(int) { return nullptr; }
  static EmuRuntime*& runtime() {
    static EmuRuntime* rt = nullptr;
    return rt;
  }
  template <class U>
  struct Scratch {
    Scratch(int d, std::size_t n) : d(d), bytes(n * sizeof(U)) {
      if (n > 0) p = static_cast<U*>(runtime()->allocate(d, bytes));
    }
    ~Scratch() {
      if (p != nullptr) runtime()->deallocate(d, p, bytes);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    [[nodiscard]] U* get() const { return p; }
    int d;
    std::size_t bytes;
    U* p = nullptr;
  };
  static bool capturing(int d) { return runtime()->capturing(d); }
  static void to_host(int d, void* dst, const void* src, std::size_t bytes) {
    runtime()->copy_to_host(d, dst, src, bytes);
  }
  template <class... A>
  static bool vendor_gemm(A&&...) { return false; }
  template <class... A>
  static bool vendor_gemm_batched(A&&...) { return false; }
  template <class... A>
  static bool vendor_conv2d_forward(A&&...) { return false; }
  template <class... A>
  static bool vendor_conv2d_backward_data(A&&...) { return false; }
  template <class... A>
  static bool vendor_conv2d_backward_weight(A&&...) { return false; }
};

// Registers the harness backend (call before any CUDA tensor is made).
inline void register_emulated_cuda_backend() {
  static EmuRuntime runtime;
  static EmuCopy<float> c32;
  static EmuCopy<double> c64;
  static EmuCopy<std::int64_t> ci64;
  static EmuCopy<std::int32_t> ci32;
  static EmuCopy<std::uint8_t> cu8;
  EmuContext::runtime() = &runtime;
  backend::register_cuda_backend({&runtime, &c32, &c64, &ci64, &ci32, &cu8});
  cuda_ops::register_ops<EmuContext>();
}

}  // namespace ember::emu
