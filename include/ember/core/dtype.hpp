#pragma once
// The fixed list of element types: float and double carry gradients; integer types hold
// labels, indices and raw pixels.

#include <concepts>
#include <cstdint>
#include <string_view>

namespace ember {

template <class T>
concept Element = std::same_as<T, float> || std::same_as<T, double> ||
                  std::same_as<T, std::int64_t> || std::same_as<T, std::int32_t> ||
                  std::same_as<T, std::uint8_t>;

template <class T>
concept Real = std::same_as<T, float> || std::same_as<T, double>;

/// The element types a tensor can have: float32, float64, int64, int32 and uint8.
enum class DType : std::uint8_t { f32, f64, i64, i32, u8 };

/// The DType of element type T.
template <Element T>
constexpr DType dtype_of() {
  if constexpr (std::same_as<T, float>) return DType::f32;
  else if constexpr (std::same_as<T, double>) return DType::f64;
  else if constexpr (std::same_as<T, std::int64_t>) return DType::i64;
  else if constexpr (std::same_as<T, std::int32_t>) return DType::i32;
  else return DType::u8;
}

/// PyTorch's names, used in printing and error messages.
constexpr std::string_view dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i64: return "int64";
    case DType::i32: return "int32";
    case DType::u8: return "uint8";
  }
  return "?";
}

/// safetensors' names.
constexpr std::string_view safetensors_dtype(DType d) {
  switch (d) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i64: return "I64";
    case DType::i32: return "I32";
    case DType::u8: return "U8";
  }
  return "?";
}

}  // namespace ember
