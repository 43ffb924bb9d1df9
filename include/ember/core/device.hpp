#pragma once
// Device: where a tensor's storage lives. A run-time property of every tensor.

#include <cstdint>
#include <string>


namespace ember {

/// Where a tensor's storage lives: the CPU or CUDA device `index` (torch.device).
struct Device {
  /// The device type.
  enum class Kind : std::uint8_t { cpu, cuda };
  /// CPU or CUDA.
  Kind kind = Kind::cpu;
  /// The CUDA device's ordinal (0 for the CPU).
  int index = 0;

  /// The CPU.
  [[nodiscard]] static constexpr Device cpu() { return {Kind::cpu, 0}; }
  /// CUDA device i (needs the CUDA build; using it without one throws ember::Error).
  [[nodiscard]] static constexpr Device cuda(int i = 0) { return {Kind::cuda, i}; }
  /// True for the CPU.
  [[nodiscard]] constexpr bool is_cpu() const { return kind == Kind::cpu; }
  /// True for a CUDA device.
  [[nodiscard]] constexpr bool is_cuda() const { return kind == Kind::cuda; }
  /// "cpu" or "cuda:N", as PyTorch prints it.
  [[nodiscard]] std::string str() const {
    return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
  }
  friend constexpr bool operator==(const Device&, const Device&) = default;
};

}  // namespace ember
