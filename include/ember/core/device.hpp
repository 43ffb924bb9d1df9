#pragma once
// Device: where a tensor's storage lives. A run-time property of every tensor.

#include <cstdint>
#include <string>


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

}  // namespace ember
