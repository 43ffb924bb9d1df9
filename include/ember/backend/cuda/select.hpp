#pragma once
// Run-time choice between ember's own CUDA kernels and the vendor libraries, per op family:
//   GEMM: EMBER_GEMM=custom|cublas   (default cublas)
//   conv: EMBER_CONV=custom|cudnn    (default cudnn)
// The environment variable is read once, on the first query; set_*_backend overrides it for the
// whole process (thread-safe). An unknown value throws ember::Error listing the accepted ones
// (on the first query, and again on each later one until a setter is called).
// The defaults favour the vendor libraries for now; to be revisited with measurements
// (docs/performance.md).

#if !defined(__CUDACC__)
#error "ember/backend/cuda/select.hpp is CUDA host code: compile this translation unit with nvcc"
#endif

#include <atomic>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ember/core/error.hpp"

namespace ember::cuda {

enum class GemmBackend { custom, cublas };
enum class ConvBackend { custom, cudnn };

[[nodiscard]] inline const char* to_string(GemmBackend b) {
  return b == GemmBackend::custom ? "custom" : "cublas";
}
[[nodiscard]] inline const char* to_string(ConvBackend b) {
  return b == ConvBackend::custom ? "custom" : "cudnn";
}

namespace detail {

// -1: not yet decided (the environment has not been read and no setter was called).
inline std::atomic<int>& gemm_backend_state() {
  static std::atomic<int> state{-1};
  return state;
}
inline std::atomic<int>& conv_backend_state() {
  static std::atomic<int> state{-1};
  return state;
}

// The backend named by environment variable `var` (`library` when unset or empty).
template <class Backend>
Backend backend_from_env(const char* var, Backend library) {
  const char* raw = std::getenv(var);
  if (raw == nullptr || *raw == '\0') return library;
  const std::string_view v(raw);
  if (v == to_string(Backend::custom)) return Backend::custom;
  if (v == to_string(library)) return library;
  throw Error(::ember::detail::concat(var, "=", v, " is not a known backend; accepted values: ",
                                      to_string(Backend::custom), ", ", to_string(library)));
}

template <class Backend>
Backend current_backend(std::atomic<int>& state, const char* var, Backend library) {
  const int s = state.load(std::memory_order_acquire);
  if (s >= 0) return static_cast<Backend>(s);
  const Backend b = backend_from_env(var, library);
  int expected = -1;
  // A setter that ran meanwhile wins.
  if (!state.compare_exchange_strong(expected, static_cast<int>(b), std::memory_order_acq_rel))
    return static_cast<Backend>(expected);
  return b;
}

}  // namespace detail

[[nodiscard]] inline GemmBackend gemm_backend() {
  return detail::current_backend(detail::gemm_backend_state(), "EMBER_GEMM", GemmBackend::cublas);
}
inline void set_gemm_backend(GemmBackend b) {
  detail::gemm_backend_state().store(static_cast<int>(b), std::memory_order_release);
}

[[nodiscard]] inline ConvBackend conv_backend() {
  return detail::current_backend(detail::conv_backend_state(), "EMBER_CONV", ConvBackend::cudnn);
}
inline void set_conv_backend(ConvBackend b) {
  detail::conv_backend_state().store(static_cast<int>(b), std::memory_order_release);
}

}  // namespace ember::cuda
