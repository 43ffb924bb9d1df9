#pragma once
// Device: where a tensor's storage lives. A run-time property of every tensor.

#include <cstdint>
#include <string>

#include "ember/core/error.hpp"

namespace ember {

struct Device {
  enum class Kind : std::uint8_t { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;

  [[nodiscard]] static constexpr Device cpu() { return {Kind::cpu, 0}; }
  [[nodiscard]] static constexpr Device cuda(int i = 0) { return {Kind::cuda, i}; }
  [[nodiscard]] constexpr bool is_cpu() const { return kind == Kind::cpu; }
  [[nodiscard]] constexpr bool is_cuda() const { return kind == Kind::cuda; }
  [[nodiscard]] std::string str() const {
    return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
  }
  friend constexpr bool operator==(const Device&, const Device&) = default;
};

// True when the including translation unit is compiled by nvcc and so carries the CUDA
// backend; asking for a CUDA tensor anywhere else is an error.
#if defined(__CUDACC__)
inline constexpr bool cuda_compiled = true;
#else
inline constexpr bool cuda_compiled = false;
#endif

inline void check_device_available(const Device& d) {
  EMBER_CHECK(d.is_cpu() || cuda_compiled, "device ", d.str(),
              " requested, but this translation unit was not compiled by nvcc, so ember's "
              "CUDA backend is not available (compile it as CUDA to use GPUs)");
}

}  // namespace ember
