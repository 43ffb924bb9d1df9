#pragma once
// The CUDA backend behind ember's ops: the interfaces of backend/device_backend.hpp carried out
// with the hand-written kernels of kernels/ or, where selected (backend/cuda/select.hpp), with
// cuBLAS and cuDNN. Compiled only by nvcc; registered at start-up by every translation unit that
// includes ember under nvcc (the registration is idempotent).

#if !defined(__CUDACC__)
#error "ember/backend/cuda/register.hpp is compiled only by nvcc"
#endif

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include "ember/backend/cuda/allocator.hpp"
#include "ember/backend/cuda/blas.hpp"
#include "ember/backend/cuda/dnn.hpp"
#include "ember/backend/cuda/graph.hpp"
#include "ember/backend/cuda/runtime.hpp"
#include "ember/backend/cuda/select.hpp"
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

namespace ember::cuda {

namespace detail {
// Scratch memory for one call, from the caching allocator (stream-ordered reuse).
template <class T>
class Scratch {
 public:
  Scratch(int device, std::size_t elems) : device_(device), bytes_(elems * sizeof(T)) {
    if (bytes_ > 0) p_ = static_cast<T*>(DeviceAllocator::instance(device).allocate(bytes_));
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    if (p_ != nullptr) DeviceAllocator::instance(device_).deallocate(p_, bytes_);
  }
  [[nodiscard]] T* get() const { return p_; }

 private:
  int device_;
  std::size_t bytes_;
  T* p_ = nullptr;
};
}  // namespace detail

class Runtime final : public backend::DeviceRuntime {
 public:
  int device_count() override { return cuda::device_count(); }
  std::string device_name(int device) override {
    check_device(device);
    cudaDeviceProp prop{};
    EMBER_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    return prop.name;
  }
  void* allocate(int device, std::size_t bytes) override {
    return DeviceAllocator::instance(device).allocate(bytes);
  }
  void deallocate(int device, void* p, std::size_t bytes) override {
    DeviceAllocator::instance(device).deallocate(p, bytes);
  }
  void copy_to_device(int device, void* dst, const void* src, std::size_t bytes) override {
    cuda::copy_to_device(dst, src, bytes, device);
  }
  void copy_to_host(int device, void* dst, const void* src, std::size_t bytes) override {
    cuda::copy_to_host(dst, src, bytes, device);
  }
  void copy_on_device(int device, void* dst, const void* src, std::size_t bytes) override {
    cuda::copy_device_to_device(dst, src, bytes, device);
  }
  void synchronize(int device) override { cuda::synchronize(device); }
  bool capturing(int device) override { return cuda::capturing(device); }

  void* graph_begin_capture(int device) override {
    auto graph = std::make_unique<Graph>();
    graph->capture_begin(device);
    return graph.release();
  }
  void graph_end_capture(void* graph) override { static_cast<Graph*>(graph)->capture_end(); }
  void graph_replay(void* graph) override { static_cast<Graph*>(graph)->replay(); }
  void graph_destroy(void* graph) noexcept override { delete static_cast<Graph*>(graph); }

  void set_gemm_backend(const std::string& name) override {
    if (name == "custom") cuda::set_gemm_backend(GemmBackend::custom);
    else if (name == "cublas") cuda::set_gemm_backend(GemmBackend::cublas);
    else throw Error("unknown GEMM backend '" + name + "' (expected custom or cublas)");
  }
  void set_conv_backend(const std::string& name) override {
    if (name == "custom") cuda::set_conv_backend(ConvBackend::custom);
    else if (name == "cudnn") cuda::set_conv_backend(ConvBackend::cudnn);
    else throw Error("unknown convolution backend '" + name + "' (expected custom or cudnn)");
  }
  std::string gemm_backend() override { return to_string(cuda::gemm_backend()); }
  std::string conv_backend() override { return to_string(cuda::conv_backend()); }
};

template <class T>
class Copy final : public backend::DeviceCopy<T> {
 public:
  void fill(int device, T* out, std::int64_t n, T value) override {
    DeviceGuard g(device);
    kernels::fill<T>(out, n, value, stream(device));
  }
  void strided_copy(int device, const T* src, const StridedView& vsrc, T* dst, const StridedView& vdst,
                    std::int64_t n) override {
    DeviceGuard g(device);
    kernels::strided_copy<T>(src, vsrc, dst, vdst, n, stream(device));
  }
  void cast(int device, const T* src, void* dst, DType dst_type, std::int64_t n) override {
    DeviceGuard g(device);
    const cudaStream_t s = stream(device);
    switch (dst_type) {
      case DType::f32: kernels::cast<T, float>(src, static_cast<float*>(dst), n, s); break;
      case DType::f64: kernels::cast<T, double>(src, static_cast<double*>(dst), n, s); break;
      case DType::i64: kernels::cast<T, std::int64_t>(src, static_cast<std::int64_t*>(dst), n, s); break;
      case DType::i32: kernels::cast<T, std::int32_t>(src, static_cast<std::int32_t*>(dst), n, s); break;
      case DType::u8: kernels::cast<T, std::uint8_t>(src, static_cast<std::uint8_t*>(dst), n, s); break;
    }
  }
};

template <class T>
class Math final : public backend::DeviceMath<T> {
 public:
  void binary(int device, backend::BinaryOp op, const T* a, const StridedView& va, const T* b,
              const StridedView& vb, T* out, std::int64_t n) override {
    DeviceGuard g(device);
    kernels::binary<T>(static_cast<kernels::BinaryOp>(op), a, va, b, vb, out, n, stream(device));
  }
  void unary(int device, backend::UnaryOp op, const T* a, T* out, std::int64_t n, T scalar) override {
    DeviceGuard g(device);
    kernels::unary<T>(static_cast<kernels::UnaryOp>(op), a, out, n, scalar, stream(device));
  }
  void sum_to(int device, const T* gr, const StridedView& vg, T* out, const StridedView& vout,
              std::int64_t out_n) override {
    DeviceGuard g(device);
    kernels::sum_to<T>(gr, vg, out, vout, out_n, stream(device));
  }
  void sum_all(int device, const T* x, std::int64_t n, T* out, T scale) override {
    DeviceGuard g(device);
    detail::Scratch<T> ws(device, kernels::reduce_workspace_elems<T>(n));
    kernels::sum_all<T>(x, n, out, scale, ws.get(), stream(device));
  }
  void argmax_rows(int device, const T* x, std::int64_t rows, std::int64_t cols, std::int64_t* out) override {
    DeviceGuard g(device);
    kernels::argmax_rows<T>(x, rows, cols, out, stream(device));
  }
  void count_correct(int device, const T* x, std::int64_t rows, std::int64_t cols,
                     const std::int64_t* labels, std::int64_t* out) override {
    DeviceGuard g(device);
    kernels::count_correct<T>(x, rows, cols, labels, out, stream(device));
  }
  void gemm(int device, const GemmParams& p, T alpha, const T* a, const T* b, T beta, T* c) override {
    DeviceGuard g(device);
    if (gemm_backend() == GemmBackend::cublas) {
      cublas_gemm<T>(p, alpha, a, b, beta, c, device);
      return;
    }
    detail::Scratch<T> ws(device, kernels::gemm_workspace_bytes<T>(p) / sizeof(T));
    kernels::gemm<T>(p, alpha, a, b, beta, c, stream(device), ws.get());  // null: no split-K
  }
  void conv2d_forward(int device, const Conv2dParams& p, const T* x, const T* w, const T* bias,
                      T* y) override {
    DeviceGuard g(device);
    if (conv_backend() == ConvBackend::cudnn) {
      cudnn_conv2d_forward<T>(p, x, w, bias, y, device);
      return;
    }
    detail::Scratch<T> ws(device, kernels::conv2d_workspace_elems<T>(p));
    kernels::conv2d_forward<T>(p, x, w, bias, y, ws.get(), stream(device));
  }
  void conv2d_backward_data(int device, const Conv2dParams& p, const T* w, const T* gy, T* gx) override {
    DeviceGuard g(device);
    if (conv_backend() == ConvBackend::cudnn) {
      cudnn_conv2d_backward_data<T>(p, w, gy, gx, device);
      return;
    }
    detail::Scratch<T> ws(device, kernels::conv2d_workspace_elems<T>(p));
    kernels::conv2d_backward_data<T>(p, w, gy, gx, ws.get(), stream(device));
  }
  void conv2d_backward_weight(int device, const Conv2dParams& p, const T* x, const T* gy, T* gw,
                              T* gb) override {
    DeviceGuard g(device);
    if (conv_backend() == ConvBackend::cudnn) {
      cudnn_conv2d_backward_weight<T>(p, x, gy, gw, gb, device);
      return;
    }
    detail::Scratch<T> ws(device, kernels::conv2d_workspace_elems<T>(p));
    kernels::conv2d_backward_weight<T>(p, x, gy, gw, gb, ws.get(), stream(device));
  }
  void max_pool2d_forward(int device, const MaxPool2dParams& p, const T* x, T* y,
                          std::int32_t* argmax) override {
    DeviceGuard g(device);
    kernels::max_pool2d_forward<T>(p, x, y, argmax, stream(device));
  }
  void max_pool2d_backward(int device, const MaxPool2dParams& p, const T* gy, const std::int32_t* argmax,
                           T* gx) override {
    DeviceGuard g(device);
    kernels::max_pool2d_backward<T>(p, gy, argmax, gx, stream(device));
  }
  void relu_forward(int device, const T* x, T* y, std::int64_t n) override {
    DeviceGuard g(device);
    kernels::relu_forward<T>(x, y, n, stream(device));
  }
  void relu_backward(int device, const T* gr, const T* y, T* gx, std::int64_t n) override {
    DeviceGuard g(device);
    kernels::relu_backward<T>(gr, y, gx, n, stream(device));
  }
  void bias_add_rows(int device, T* y, const T* bias, std::int64_t rows, std::int64_t cols) override {
    DeviceGuard g(device);
    kernels::bias_add_rows<T>(y, bias, rows, cols, stream(device));
  }
  void bias_add_channels(int device, T* y, const T* bias, std::int64_t n, std::int64_t c,
                         std::int64_t hw) override {
    DeviceGuard g(device);
    kernels::bias_add_channels<T>(y, bias, n, c, hw, stream(device));
  }
  void bias_grad_rows(int device, const T* gr, T* gb, std::int64_t rows, std::int64_t cols) override {
    DeviceGuard g(device);
    kernels::bias_grad_rows<T>(gr, gb, rows, cols, stream(device));
  }
  void log_softmax_forward(int device, const T* x, T* y, std::int64_t rows, std::int64_t cols) override {
    DeviceGuard g(device);
    kernels::log_softmax_forward<T>(x, y, rows, cols, stream(device));
  }
  void log_softmax_backward(int device, const T* gr, const T* y, T* gx, std::int64_t rows,
                            std::int64_t cols) override {
    DeviceGuard g(device);
    kernels::log_softmax_backward<T>(gr, y, gx, rows, cols, stream(device));
  }
  void nll_forward(int device, const T* logp, const std::int64_t* labels, std::int64_t rows,
                   std::int64_t cols, T* out, bool mean) override {
    DeviceGuard g(device);
    if (capturing(device)) {  // no host read inside a graph: the loss is NaN on a bad label
      kernels::nll_forward<T>(logp, labels, rows, cols, out, mean, nullptr, stream(device));
      return;
    }
    detail::Scratch<int> flag(device, 1);
    EMBER_CUDA_CHECK(cudaMemsetAsync(flag.get(), 0, sizeof(int), stream(device)));
    kernels::nll_forward<T>(logp, labels, rows, cols, out, mean, flag.get(), stream(device));
    int bad = 0;
    cuda::copy_to_host(&bad, flag.get(), sizeof(int), device);
    EMBER_CHECK(bad == 0, "nll_loss: a target is out of range for ", cols, " classes (on cuda:", device,
                ")");
  }
  void nll_backward(int device, const T* gr, const std::int64_t* labels, std::int64_t rows,
                    std::int64_t cols, T* gx, bool mean) override {
    DeviceGuard g(device);
    kernels::nll_backward<T>(gr, labels, rows, cols, gx, mean, stream(device));
  }
  void dropout_mask(int device, backend::PhiloxArgs rng, float p, T scale, T* mask, std::int64_t n) override {
    DeviceGuard g(device);
    // scale: static_cast<T>(1.0 / (1.0 - p)) worked out on the host from the double p, as the CPU does
    kernels::dropout_mask<T>(rng, p, scale, mask, n, stream(device));
  }
};

class Training final : public backend::DeviceTraining {
 public:
  void sgd_step(int device, const backend::SgdTensorRef* tensors, int count, backend::SgdStepArgs args) override {
    DeviceGuard g(device);
    kernels::SgdArgs a{args.lr, args.momentum, args.dampening_factor, args.weight_decay, args.nesterov,
                       args.first_step};
    // Passed by value in the kernel's parameters (chunks of kernels::kSgdMaxTensors), so that a
    // captured graph holds the list itself and needs no host buffer.
    for (int start = 0; start < count; start += kernels::kSgdMaxTensors) {
      kernels::SgdTensorList list{};
      list.count = std::min(kernels::kSgdMaxTensors, count - start);
      std::int64_t max_n = 0;
      for (int i = 0; i < list.count; ++i) {
        const backend::SgdTensorRef& r = tensors[start + i];
        list.t[i] = kernels::SgdTensor{r.param, r.grad, r.momentum, r.n};
        max_n = std::max(max_n, r.n);
      }
      kernels::sgd_step(list, max_n, a, stream(device));
    }
  }
  void gather_normalize(int device, const std::uint8_t* images, const std::int64_t* indices,
                        std::int64_t batch, std::int64_t pixels, float mean, float std, float* out) override {
    DeviceGuard g(device);
    kernels::gather_normalize(images, indices, batch, pixels, mean, std, out, stream(device));
  }
  void gather_labels(int device, const std::int64_t* labels, const std::int64_t* indices, std::int64_t batch,
                     std::int64_t* out) override {
    DeviceGuard g(device);
    kernels::gather_labels(labels, indices, batch, out, stream(device));
  }
  void set_u64(int device, std::uint64_t* p, std::uint64_t value) override {
    DeviceGuard g(device);
    kernels::set_u64(p, value, stream(device));
  }
};

// The one instance of each, registered before main().
inline const bool backend_registered = [] {
  static Runtime runtime;
  static Copy<float> c32;
  static Copy<double> c64;
  static Copy<std::int64_t> ci64;
  static Copy<std::int32_t> ci32;
  static Copy<std::uint8_t> cu8;
  static Math<float> m32;
  static Math<double> m64;
  static Training training;
  backend::register_cuda_backend({&runtime, &c32, &c64, &ci64, &ci32, &cu8, &m32, &m64, &training});
  return true;
}();

}  // namespace ember::cuda
