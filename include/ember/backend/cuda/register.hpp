#pragma once
// The CUDA backend behind ember's ops: the runtime interfaces of backend/device_backend.hpp,
// and the op table (backend/cuda/ops.hpp) in the real CUDA context, where the hand-written
// kernels or, where selected (backend/cuda/select.hpp), cuBLAS and cuDNN do the work. Compiled only by nvcc; registered at start-up by every translation unit that
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
#include "ember/backend/cuda/ops.hpp"
#include "ember/backend/device_backend.hpp"

#include <ember/kernels/elementwise.cuh>

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

// The execution context of the op table (backend/cuda/ops.hpp) on a real GPU.
struct CudaContext {
  struct Guard {
    explicit Guard(int device) : g(device) {}
    DeviceGuard g;
  };
  static cudaStream_t stream(int device) { return cuda::stream(device); }
  template <class U>
  using Scratch = detail::Scratch<U>;
  static bool capturing(int device) { return cuda::capturing(device); }
  static void to_host(int device, void* dst, const void* src, std::size_t bytes) {
    cuda::copy_to_host(dst, src, bytes, device);
  }
  template <class T>
  static bool vendor_gemm(int device, const GemmParams& p, T alpha, const T* a, const T* b, T beta, T* c) {
    if (gemm_backend() != GemmBackend::cublas) return false;
    cublas_gemm<T>(p, alpha, a, b, beta, c, device);
    return true;
  }
  template <class T>
  static bool vendor_gemm_batched(int device, const BatchedGemmParams& p, T alpha, const T* a,
                                  const T* b, T beta, T* c) {
    if (gemm_backend() != GemmBackend::cublas) return false;
    cublas_gemm_batched<T>(p, alpha, a, b, beta, c, device);
    return true;
  }
  template <class T>
  static bool vendor_conv2d_forward(int device, const Conv2dParams& p, const T* x, const T* w, const T* bias,
                                    T* y) {
    if (conv_backend() != ConvBackend::cudnn) return false;
    cudnn_conv2d_forward<T>(p, x, w, bias, y, device);
    return true;
  }
  template <class T>
  static bool vendor_conv2d_backward_data(int device, const Conv2dParams& p, const T* w, const T* gy, T* gx) {
    if (conv_backend() != ConvBackend::cudnn) return false;
    cudnn_conv2d_backward_data<T>(p, w, gy, gx, device);
    return true;
  }
  template <class T>
  static bool vendor_conv2d_backward_weight(int device, const Conv2dParams& p, const T* x, const T* gy, T* gw,
                                            T* gb) {
    if (conv_backend() != ConvBackend::cudnn) return false;
    cudnn_conv2d_backward_weight<T>(p, x, gy, gw, gb, device);
    return true;
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
  backend::register_cuda_backend({&runtime, &c32, &c64, &ci64, &ci32, &cu8});
  cuda_ops::register_ops<CudaContext>();
  return true;
}();

}  // namespace ember::cuda
