#pragma once
// The CUDA runtime layer of ember's GPU backend: error checking, device queries, the one
// stream per device that all ember GPU work runs on, and host<->device copies.
//
// Execution model: every ember kernel, cuBLAS call and cuDNN call for device d is enqueued on
// cuda::stream(d), a non-blocking stream created on first use and never destroyed. Because
// there is one stream per device, the order in which the host enqueues work is the order in
// which the GPU runs it; the caching allocator (allocator.hpp) relies on that.
//
// Include order: this header and allocator.hpp include each other (the copy helpers stage
// through the pinned allocator, the allocators use the checks and guards defined here); either
// may be included first.

#if !defined(__CUDACC__)
#error "ember/backend/cuda/runtime.hpp is CUDA host code: compile this translation unit with nvcc"
#endif

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <mutex>

#include "ember/core/error.hpp"

namespace ember::cuda {

// The most devices ember addresses (per-device state lives in fixed arrays of this size).
inline constexpr int kMaxDevices = 64;

namespace detail {

[[noreturn]] inline void throw_cuda_error(cudaError_t e, const char* expr, const char* file,
                                          int line) {
  // Clear the thread's last-error slot so that a later check does not report this failure
  // again (sticky errors, which poison the context, stay sticky regardless).
  (void)cudaGetLastError();
  throw ::ember::Error(::ember::detail::concat("CUDA call `", expr, "` failed with ",
                                               cudaGetErrorName(e), " (", cudaGetErrorString(e),
                                               ") at ", file, ":", line));
}

}  // namespace detail
}  // namespace ember::cuda

// EMBER_CUDA_CHECK(expr): evaluates a CUDA runtime call once and throws ember::Error naming the
// call's text, the error's name and description, and file:line unless it returned cudaSuccess.
#define EMBER_CUDA_CHECK(expr)                                                        \
  do {                                                                                \
    const cudaError_t ember_cuda_check_e_ = (expr);                                   \
    if (ember_cuda_check_e_ != cudaSuccess)                                           \
      ::ember::cuda::detail::throw_cuda_error(ember_cuda_check_e_, #expr, __FILE__, __LINE__); \
  } while (0)

// EMBER_CUBLAS_CHECK(expr) / EMBER_CUDNN_CHECK(expr): the same for cuBLAS and cuDNN status
// codes. Their helpers (detail::throw_cublas_error / throw_cudnn_error) are defined in
// blas.hpp and dnn.hpp, so that this header does not pull in the library headers: include
// blas.hpp / dnn.hpp where these macros are used.
#define EMBER_CUBLAS_CHECK(expr)                                                      \
  do {                                                                                \
    const cublasStatus_t ember_cublas_check_s_ = (expr);                              \
    if (ember_cublas_check_s_ != CUBLAS_STATUS_SUCCESS)                               \
      ::ember::cuda::detail::throw_cublas_error(ember_cublas_check_s_, #expr, __FILE__, __LINE__); \
  } while (0)

#define EMBER_CUDNN_CHECK(expr)                                                       \
  do {                                                                                \
    const cudnnStatus_t ember_cudnn_check_s_ = (expr);                                \
    if (ember_cudnn_check_s_ != CUDNN_STATUS_SUCCESS)                                 \
      ::ember::cuda::detail::throw_cudnn_error(ember_cudnn_check_s_, #expr, __FILE__, __LINE__); \
  } while (0)

namespace ember::cuda {

// The number of CUDA devices; 0 when there is no driver, no device, or the driver is too old
// for this runtime. Never throws for that.
[[nodiscard]] inline int device_count() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

// Throws a clear ember::Error unless `index` names a CUDA device of this machine.
inline void check_device(int index) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(::ember::detail::concat("no CUDA device: ", cudaGetErrorName(e), " (",
                                        cudaGetErrorString(e), ")"));
  }
  EMBER_CHECK(n > 0, "no CUDA device: the CUDA runtime reports 0 devices");
  EMBER_CHECK(index >= 0 && index < n, "cuda:", index, " requested but this machine has ", n,
              " CUDA device(s)");
  EMBER_CHECK(index < kMaxDevices, "cuda:", index, " requested but ember supports at most ",
              kMaxDevices, " CUDA devices");
}

// RAII: makes `device` the calling thread's current device and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) : device_(device) {
    EMBER_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device_) EMBER_CUDA_CHECK(cudaSetDevice(device_));
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  ~DeviceGuard() {
    if (previous_ != device_) (void)cudaSetDevice(previous_);  // a destructor must not throw
  }

 private:
  int device_ = 0;
  int previous_ = 0;
};

namespace detail {
inline void check_device_index(int device) {
  EMBER_CHECK(device >= 0 && device < kMaxDevices, "cuda:", device,
              " is not a valid CUDA device index");
}
}  // namespace detail

// The device's stream: non-blocking (it does not synchronise with the legacy default stream),
// created on first use (thread-safe), never destroyed (it may be needed by destructors that
// run during static destruction).
[[nodiscard]] inline cudaStream_t stream(int device) {
  detail::check_device_index(device);
  static std::once_flag flags[kMaxDevices];
  static cudaStream_t streams[kMaxDevices] = {};
  // If the creation throws, call_once leaves the flag unset and a later call retries.
  std::call_once(flags[device], [device] {
    check_device(device);
    DeviceGuard guard(device);
    cudaStream_t s = nullptr;
    EMBER_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    streams[device] = s;
  });
  return streams[device];
}

// Waits until all work enqueued on the device's stream has finished; reports (throws) any
// asynchronous error of that work.
inline void synchronize(int device) {
  cudaStream_t s = stream(device);
  DeviceGuard guard(device);
  EMBER_CUDA_CHECK(cudaStreamSynchronize(s));
}

// True while the device's stream is being captured into a CUDA graph (graph.hpp).
[[nodiscard]] inline bool capturing(int device) {
  cudaStream_t s = stream(device);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  EMBER_CUDA_CHECK(cudaStreamIsCapturing(s, &status));
  return status != cudaStreamCaptureStatusNone;  // active, or invalidated but not yet ended
}

namespace detail {
// Pinned staging memory, defined in allocator.hpp (PinnedAllocator).
inline void* pinned_acquire(std::size_t bytes);
inline void pinned_release(void* p, std::size_t bytes);

// A pinned staging buffer for the copy helpers; returned to the pinned cache on scope exit.
class PinnedStaging {
 public:
  explicit PinnedStaging(std::size_t bytes) : bytes_(bytes), p_(pinned_acquire(bytes)) {}
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;
  ~PinnedStaging() {
    try {
      pinned_release(p_, bytes_);
    } catch (...) {  // cannot happen for a pointer we acquired; never throw from a destructor
    }
  }
  [[nodiscard]] unsigned char* data() const { return static_cast<unsigned char*>(p_); }

 private:
  std::size_t bytes_;
  void* p_;
};

// Host<->device copies go through a pinned buffer of at most this size, chunk by chunk.
inline constexpr std::size_t kStagingChunk = std::size_t(16) << 20;

inline void check_not_capturing(int device, const char* what) {
  EMBER_CHECK(!capturing(device), what, " on cuda:", device,
              " cannot be captured into a CUDA graph (it synchronises with the host); move it "
              "outside the capture");
}
}  // namespace detail

// Host -> device. Stages through pinned memory and copies asynchronously on the device's
// stream, then waits for the stream, so `src` may be reused as soon as this returns (and
// everything enqueued before the copy has finished too). Not capturable.
inline void copy_to_device(void* dst, const void* src, std::size_t bytes, int device) {
  if (bytes == 0) return;
  cudaStream_t s = stream(device);
  detail::check_not_capturing(device, "copy_to_device");
  DeviceGuard guard(device);
  detail::PinnedStaging staging(std::min(bytes, detail::kStagingChunk));
  const auto* in = static_cast<const unsigned char*>(src);
  auto* out = static_cast<unsigned char*>(dst);
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t n = std::min(bytes - done, detail::kStagingChunk);
    std::memcpy(staging.data(), in + done, n);
    EMBER_CUDA_CHECK(cudaMemcpyAsync(out + done, staging.data(), n, cudaMemcpyHostToDevice, s));
    // The staging buffer is rewritten by the next chunk (and recycled after the last one):
    // wait until the device has read it.
    EMBER_CUDA_CHECK(cudaStreamSynchronize(s));
    done += n;
  }
}

// Device -> host, synchronous: waits for the work enqueued before it on the device's stream
// (so the data read is the data that work produced). Not capturable.
inline void copy_to_host(void* dst, const void* src, std::size_t bytes, int device) {
  if (bytes == 0) return;
  cudaStream_t s = stream(device);
  detail::check_not_capturing(device, "copy_to_host");
  DeviceGuard guard(device);
  detail::PinnedStaging staging(std::min(bytes, detail::kStagingChunk));
  const auto* in = static_cast<const unsigned char*>(src);
  auto* out = static_cast<unsigned char*>(dst);
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t n = std::min(bytes - done, detail::kStagingChunk);
    EMBER_CUDA_CHECK(cudaMemcpyAsync(staging.data(), in + done, n, cudaMemcpyDeviceToHost, s));
    EMBER_CUDA_CHECK(cudaStreamSynchronize(s));
    std::memcpy(out + done, staging.data(), n);
    done += n;
  }
}

// Device -> device on the same device, asynchronous on the device's stream (capturable).
inline void copy_device_to_device(void* dst, const void* src, std::size_t bytes, int device) {
  if (bytes == 0) return;
  cudaStream_t s = stream(device);
  DeviceGuard guard(device);
  EMBER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s));
}

// Sets `bytes` bytes at p to (unsigned char)value, asynchronous on the device's stream
// (capturable).
inline void memset_async(void* p, int value, std::size_t bytes, int device) {
  if (bytes == 0) return;
  cudaStream_t s = stream(device);
  DeviceGuard guard(device);
  EMBER_CUDA_CHECK(cudaMemsetAsync(p, value, bytes, s));
}

}  // namespace ember::cuda

// Defines the pinned staging functions declared above (and the device allocator).
#include "ember/backend/cuda/allocator.hpp"
