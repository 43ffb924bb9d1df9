#pragma once
// Running kernels/ in tests on either executor with one source:
//   * compiled by the host compiler, the kernels run on the CPU execution harness
//     (support/cuda_emu.hpp): CI, which has no GPU, checks every kernel's exact source;
//   * compiled by nvcc (the tests/kernels/cuda/*.cu wrappers), the same tests run on the GPU.
// Include this before any kernels/*.cuh.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <type_traits>
#include <vector>

#if !defined(__CUDACC__)
#include "support/cuda_emu.hpp"
#else
#include <cuda_runtime.h>
#endif

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember::ktest {

inline constexpr bool on_gpu =
#if defined(__CUDACC__)
    true;
#else
    false;
#endif

inline void check(cudaError_t e, const char* what) {
  EMBER_CHECK(e == cudaSuccess, what, " failed: ", cudaGetErrorName(e));
}

// Waits for every launched kernel (a no-op on the harness, which runs launches inline).
inline void sync() {
#if defined(__CUDACC__)
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
#endif
}

// A value nothing should leave behind: NaN for floating types, a pattern for integers.
template <class T>
T poison() {
  if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<T>::quiet_NaN();
  else return static_cast<T>(0x5A5A5A5A5A5A5A5Aull);
}

// An exactly-sized buffer in device memory (host memory on the harness, where AddressSanitizer
// then catches any access past its end). Made from host values, or poisoned.
template <class T>
class Buffer {
 public:
  explicit Buffer(const std::vector<T>& host) : n_(host.size()) {
    allocate();
    if (n_ == 0) return;
#if defined(__CUDACC__)
    check(cudaMemcpy(ptr_, host.data(), bytes(), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
#else
    std::memcpy(ptr_, host.data(), bytes());
#endif
  }
  explicit Buffer(std::size_t n) : Buffer(std::vector<T>(n, poison<T>())) {}
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() {
#if defined(__CUDACC__)
    cudaFree(ptr_);
#else
    delete[] ptr_;
#endif
  }

  [[nodiscard]] T* data() { return ptr_; }
  [[nodiscard]] const T* data() const { return ptr_; }
  [[nodiscard]] std::size_t size() const { return n_; }
  // Copies the contents back (after waiting for the device).
  [[nodiscard]] std::vector<T> host() const {
    sync();
    std::vector<T> out(n_);
    if (n_ == 0) return out;
#if defined(__CUDACC__)
    check(cudaMemcpy(out.data(), ptr_, bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
#else
    std::memcpy(out.data(), ptr_, bytes());
#endif
    return out;
  }

 private:
  std::size_t bytes() const { return n_ * sizeof(T); }
  void allocate() {
#if defined(__CUDACC__)
    check(cudaMalloc(reinterpret_cast<void**>(&ptr_), n_ == 0 ? 1 : bytes()), "cudaMalloc");
#else
    ptr_ = new T[n_ == 0 ? 1 : n_];
#endif
  }
  T* ptr_ = nullptr;
  std::size_t n_ = 0;
};

// Uniform values in [lo, hi) from a seeded engine (fresh, non-zero data for every check).
template <class T>
std::vector<T> random_vector(std::size_t n, std::uint64_t seed, double lo = -1, double hi = 1) {
  std::mt19937_64 rng(seed);
  std::vector<T> v(n);
  if constexpr (std::is_floating_point_v<T>) {
    std::uniform_real_distribution<double> d(lo, hi);
    for (auto& x : v) x = static_cast<T>(d(rng));
  } else {
    std::uniform_int_distribution<long long> d(static_cast<long long>(lo), static_cast<long long>(hi) - 1);
    for (auto& x : v) x = static_cast<T>(d(rng));
  }
  return v;
}

// A CPU tensor of the given shape filled by random_vector.
template <class T>
Tensor<T> random_tensor(const Shape& shape, std::uint64_t seed, double lo = -1, double hi = 1) {
  return Tensor<T>::from_vector(random_vector<T>(static_cast<std::size_t>(numel_of(shape)), seed, lo, hi), shape);
}

// Equal as results: the same bits (so -0 differs from +0), or both NaN; integers by value.
template <class T>
bool same_value(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (a != a && b != b) return true;
    return std::memcmp(&a, &b, sizeof(T)) == 0;
  } else {
    return a == b;
  }
}

// Block sizes every 1-D kernel is tested with.
inline const std::vector<int>& block_sizes() {
  static const std::vector<int> sizes{32, 64, 128, 256, 512};
  return sizes;
}

}  // namespace ember::ktest
