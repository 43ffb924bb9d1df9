#pragma once
// The device runtime interface: what core (storage, tensor copies and fills) needs from a GPU
// backend: memory, copies, fills, casts and graphs, all type-erased, and the registry a backend
// fills when it starts (backend/cuda/register.hpp for a GPU, the tests' CPU execution harness in
// tests/support/emu_backend.hpp). Core owns the interface and includes nothing from backend/;
// a backend implements it. (The op kernels are a table of their own, backend/dispatch.hpp.)
//
// Ops are templates compiled by whichever compiler includes them, so they must not change
// with __CUDACC__ (two translation units of one program would then disagree about the same
// inline function). Instead core and the ops call the CUDA backend through the interfaces below
// and the op table, and the backend registers itself at start-up from any translation unit
// compiled by nvcc that includes <ember/ember.hpp> (backend/cuda/register.hpp, included at
// the end of ember.hpp under __CUDACC__). A program with no such translation unit has no CUDA
// backend, and asking it for a CUDA tensor throws ember::Error saying so.
//
// All pointers are device pointers; sizes are elements unless named bytes; every call is
// ordered on the device's one stream (so results are ready for the next call without waits).

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "ember/core/device.hpp"
#include "ember/core/dtype.hpp"
#include "ember/core/error.hpp"
#include "ember/core/strided_view.hpp"

// (In namespace ember::backend: the names every backend and op already use.)
namespace ember::backend {

/// Memory, copies and synchronisation (type-erased).
class DeviceRuntime {
 public:
  virtual ~DeviceRuntime() = default;
  [[nodiscard]] virtual int device_count() = 0;
  [[nodiscard]] virtual std::string device_name(int device) = 0;
  [[nodiscard]] virtual void* allocate(int device, std::size_t bytes) = 0;
  virtual void deallocate(int device, void* p, std::size_t bytes) = 0;
  virtual void copy_to_device(int device, void* dst, const void* src, std::size_t bytes) = 0;
  virtual void copy_to_host(int device, void* dst, const void* src, std::size_t bytes) = 0;
  virtual void copy_on_device(int device, void* dst, const void* src, std::size_t bytes) = 0;
  virtual void synchronize(int device) = 0;
  /// True while the device's stream is being captured into a CUDA graph (no host reads then).
  [[nodiscard]] virtual bool capturing(int device) = 0;

  /// CUDA graphs of the device's stream, as opaque handles (see backend/graph.hpp).
  [[nodiscard]] virtual void* graph_begin_capture(int device) = 0;
  virtual void graph_end_capture(void* graph) = 0;
  virtual void graph_replay(void* graph) = 0;
  virtual void graph_destroy(void* graph) noexcept = 0;

  /// Run-time choice between the hand-written kernels and the vendor libraries:
  /// gemm "custom" or "cublas", conv "custom" or "cudnn" (environment: EMBER_GEMM, EMBER_CONV).
  virtual void set_gemm_backend(const std::string& name) = 0;
  virtual void set_conv_backend(const std::string& name) = 0;
  [[nodiscard]] virtual std::string gemm_backend() = 0;
  [[nodiscard]] virtual std::string conv_backend() = 0;
};

/// Element copies, fills and casts: every element type.
template <class T>
class DeviceCopy {
 public:
  virtual ~DeviceCopy() = default;
  virtual void fill(int device, T* out, std::int64_t n, T value) = 0;
  virtual void strided_copy(int device, const T* src, const StridedView& vsrc, T* dst,
                            const StridedView& vdst, std::int64_t n) = 0;
  /// dst (contiguous, n elements of dst_type) = static_cast<dst_type>(src)
  virtual void cast(int device, const T* src, void* dst, DType dst_type, std::int64_t n) = 0;
};

struct CudaBackend {
  DeviceRuntime* runtime = nullptr;
  DeviceCopy<float>* copy_f32 = nullptr;
  DeviceCopy<double>* copy_f64 = nullptr;
  DeviceCopy<std::int64_t>* copy_i64 = nullptr;
  DeviceCopy<std::int32_t>* copy_i32 = nullptr;
  DeviceCopy<std::uint8_t>* copy_u8 = nullptr;
};

inline CudaBackend& cuda_registry() {
  static CudaBackend b;
  return b;
}
inline void register_cuda_backend(const CudaBackend& b) { cuda_registry() = b; }
[[nodiscard]] inline bool cuda_backend_present() { return cuda_registry().runtime != nullptr; }

// Why a program has no CUDA backend, and what gives it one.
inline constexpr const char* kNoCudaBackend =
    "this program carries no CUDA backend. The backend is compiled into a program by one "
    "nvcc-compiled source file that includes ember: with CMake, link the program to ember::cuda "
    "(target_link_libraries(app PRIVATE ember::cuda), which adds that file; needs nvcc, cuBLAS "
    "and cuDNN 9 when ember is configured); for ember's own programs, configure ember with "
    "-DEMBER_ENABLE_CUDA=ON";

[[nodiscard]] inline DeviceRuntime& cuda_runtime() {
  EMBER_CHECK(cuda_backend_present(), "a CUDA device was requested, but ", kNoCudaBackend);
  return *cuda_registry().runtime;
}

template <class T>
[[nodiscard]] DeviceCopy<T>& cuda_copy() {
  (void)cuda_runtime();
  CudaBackend& b = cuda_registry();
  if constexpr (std::is_same_v<T, float>) return *b.copy_f32;
  else if constexpr (std::is_same_v<T, double>) return *b.copy_f64;
  else if constexpr (std::is_same_v<T, std::int64_t>) return *b.copy_i64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return *b.copy_i32;
  else return *b.copy_u8;
}
}  // namespace ember::backend

namespace ember {
/// Throws ember::Error unless tensors can live on `d` in this program.
inline void check_device_available(const Device& d) {
  if (d.is_cpu()) return;
  EMBER_CHECK(backend::cuda_backend_present(), "device ", d.str(), " requested, but ",
              backend::kNoCudaBackend);
  const int count = backend::cuda_runtime().device_count();
  EMBER_CHECK(d.index >= 0 && d.index < count, "device ", d.str(),
              " requested, but this machine has ", count, " CUDA device(s)");
}
}  // namespace ember
