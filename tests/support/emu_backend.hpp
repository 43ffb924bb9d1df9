#pragma once
// A CUDA backend for machines without a GPU (test-only): the interfaces of
// ember/backend/device_backend.hpp carried out by the very kernels of kernels/, run on the CPU
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

#include <ember/kernels/activation.cuh>
#include <ember/kernels/conv.cuh>
#include <ember/kernels/data.cuh>
#include <ember/kernels/dropout.cuh>
#include <ember/kernels/elementwise.cuh>
#include <ember/kernels/loss.cuh>
#include <ember/kernels/pool.cuh>
#include <ember/kernels/reduce.cuh>
#include <ember/kernels/scalar.cuh>
#include <ember/kernels/sgd.cuh>
#include <ember/kernels/sgemm.cuh>
#include <ember/kernels/softmax.cuh>

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

template <class T>
class EmuMath final : public backend::DeviceMath<T> {
 public:
  explicit EmuMath(EmuRuntime& rt) : rt_(rt) {}
  void binary(int, backend::BinaryOp op, const T* a, const StridedView& va, const T* b,
              const StridedView& vb, T* out, std::int64_t n) override {
    kernels::binary<T>(static_cast<kernels::BinaryOp>(op), a, va, b, vb, out, n, nullptr);
  }
  void unary(int, backend::UnaryOp op, const T* a, T* out, std::int64_t n, T s) override {
    kernels::unary<T>(static_cast<kernels::UnaryOp>(op), a, out, n, s, nullptr);
  }
  void sum_to(int, const T* g, const StridedView& vg, T* out, const StridedView& vo, std::int64_t n) override {
    kernels::sum_to<T>(g, vg, out, vo, n, nullptr);
  }
  void sum_all(int d, const T* x, std::int64_t n, T* out, T scale) override {
    Scratch<T> ws(rt_, d, kernels::reduce_workspace_elems<T>(n));
    kernels::sum_all<T>(x, n, out, scale, ws.p, nullptr);
  }
  void argmax_rows(int, const T* x, std::int64_t r, std::int64_t c, std::int64_t* out) override {
    kernels::argmax_rows<T>(x, r, c, out, nullptr);
  }
  void count_correct(int, const T* x, std::int64_t r, std::int64_t c, const std::int64_t* l,
                     std::int64_t* out) override {
    kernels::count_correct<T>(x, r, c, l, out, nullptr);
  }
  void gemm(int d, const GemmParams& p, T alpha, const T* a, const T* b, T beta, T* c) override {
    Scratch<T> ws(rt_, d, kernels::gemm_workspace_bytes<T>(p) / sizeof(T));
    kernels::gemm<T>(p, alpha, a, b, beta, c, nullptr, ws.p);
  }
  void conv2d_forward(int d, const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y) override {
    Scratch<T> ws(rt_, d, kernels::conv2d_workspace_elems<T>(p));
    kernels::conv2d_forward<T>(p, x, w, bias, y, ws.p, nullptr);
  }
  void conv2d_backward_data(int d, const Conv2dParams& p, const T* w, const T* gy, T* gx) override {
    Scratch<T> ws(rt_, d, kernels::conv2d_workspace_elems<T>(p));
    kernels::conv2d_backward_data<T>(p, w, gy, gx, ws.p, nullptr);
  }
  void conv2d_backward_weight(int d, const Conv2dParams& p, const T* x, const T* gy, T* gw, T* gb) override {
    Scratch<T> ws(rt_, d, kernels::conv2d_workspace_elems<T>(p));
    kernels::conv2d_backward_weight<T>(p, x, gy, gw, gb, ws.p, nullptr);
  }
  void max_pool2d_forward(int, const MaxPool2dParams& p, const T* x, T* y, std::int32_t* am) override {
    kernels::max_pool2d_forward<T>(p, x, y, am, nullptr);
  }
  void max_pool2d_backward(int, const MaxPool2dParams& p, const T* gy, const std::int32_t* am, T* gx) override {
    kernels::max_pool2d_backward<T>(p, gy, am, gx, nullptr);
  }
  void relu_forward(int, const T* x, T* y, std::int64_t n) override { kernels::relu_forward<T>(x, y, n, nullptr); }
  void relu_backward(int, const T* g, const T* y, T* gx, std::int64_t n) override {
    kernels::relu_backward<T>(g, y, gx, n, nullptr);
  }
  void bias_add_rows(int, T* y, const T* b, std::int64_t r, std::int64_t c) override {
    kernels::bias_add_rows<T>(y, b, r, c, nullptr);
  }
  void bias_add_channels(int, T* y, const T* b, std::int64_t n, std::int64_t c, std::int64_t hw) override {
    kernels::bias_add_channels<T>(y, b, n, c, hw, nullptr);
  }
  void bias_grad_rows(int, const T* g, T* gb, std::int64_t r, std::int64_t c) override {
    kernels::bias_grad_rows<T>(g, gb, r, c, nullptr);
  }
  void log_softmax_forward(int, const T* x, T* y, std::int64_t r, std::int64_t c) override {
    kernels::log_softmax_forward<T>(x, y, r, c, nullptr);
  }
  void log_softmax_backward(int, const T* g, const T* y, T* gx, std::int64_t r, std::int64_t c) override {
    kernels::log_softmax_backward<T>(g, y, gx, r, c, nullptr);
  }
  void nll_forward(int, const T* logp, const std::int64_t* labels, std::int64_t r, std::int64_t c, T* out,
                   bool mean) override {
    if (rt_.capturing(0)) {
      kernels::nll_forward<T>(logp, labels, r, c, out, mean, nullptr, nullptr);
      return;
    }
    int bad = 0;
    kernels::nll_forward<T>(logp, labels, r, c, out, mean, &bad, nullptr);
    EMBER_CHECK(bad == 0, "nll_loss: a target is out of range for ", c, " classes (on cuda:0)");
  }
  void nll_backward(int, const T* g, const std::int64_t* labels, std::int64_t r, std::int64_t c, T* gx,
                    bool mean) override {
    kernels::nll_backward<T>(g, labels, r, c, gx, mean, nullptr);
  }
  void dropout_mask(int, PhiloxArgs rng, float p, T scale, T* mask, std::int64_t n) override {
    kernels::dropout_mask<T>(rng, p, scale, mask, n, nullptr);
  }

 private:
  template <class U>
  struct Scratch {
    Scratch(EmuRuntime& rt, int d, std::size_t n) : rt(rt), d(d), bytes(n * sizeof(U)) {
      if (n > 0) p = static_cast<U*>(rt.allocate(d, bytes));
    }
    ~Scratch() {
      if (p != nullptr) rt.deallocate(d, p, bytes);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    EmuRuntime& rt;
    int d;
    std::size_t bytes;
    U* p = nullptr;
  };
  EmuRuntime& rt_;
};

class EmuTraining final : public backend::DeviceTraining {
 public:
  void sgd_step(int, const backend::SgdTensorRef* t, int count, backend::SgdStepArgs a) override {
    const kernels::SgdArgs args{a.lr, a.momentum, a.dampening_factor, a.weight_decay, a.nesterov, a.first_step};
    for (int start = 0; start < count; start += kernels::kSgdMaxTensors) {
      kernels::SgdTensorList list{};
      list.count = std::min(kernels::kSgdMaxTensors, count - start);
      std::int64_t max_n = 0;
      for (int i = 0; i < list.count; ++i) {
        const auto& r = t[start + i];
        list.t[i] = kernels::SgdTensor{r.param, r.grad, r.momentum, r.n};
        max_n = std::max(max_n, r.n);
      }
      kernels::sgd_step(list, max_n, args, nullptr);
    }
  }
  void gather_normalize(int, const std::uint8_t* images, const std::int64_t* idx, std::int64_t batch,
                        std::int64_t pixels, float mean, float std, float* out) override {
    kernels::gather_normalize(images, idx, batch, pixels, mean, std, out, nullptr);
  }
  void gather_labels(int, const std::int64_t* labels, const std::int64_t* idx, std::int64_t batch,
                     std::int64_t* out) override {
    kernels::gather_labels(labels, idx, batch, out, nullptr);
  }
  void set_u64(int, std::uint64_t* p, std::uint64_t v) override { kernels::set_u64(p, v, nullptr); }
};

// Registers the harness backend (call before any CUDA tensor is made).
inline void register_emulated_cuda_backend() {
  static EmuRuntime runtime;
  static EmuCopy<float> c32;
  static EmuCopy<double> c64;
  static EmuCopy<std::int64_t> ci64;
  static EmuCopy<std::int32_t> ci32;
  static EmuCopy<std::uint8_t> cu8;
  static EmuMath<float> m32(runtime);
  static EmuMath<double> m64(runtime);
  static EmuTraining training;
  backend::register_cuda_backend({&runtime, &c32, &c64, &ci64, &ci32, &cu8, &m32, &m64, &training});
}

}  // namespace ember::emu
