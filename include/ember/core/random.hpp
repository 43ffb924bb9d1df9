#pragma once
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator. Element i of a draw made at offset o is a pure function of
// (seed, o + i), so the CPU and a GPU kernel produce the same numbers in any order, and a
// run is reproducible from its seed.

#include <cmath>
#include <cstdint>
#include <numbers>

#include "ember/core/macros.hpp"

namespace ember {

/// Philox-4x32-10, the counter-based generator PyTorch's CUDA backend uses: the n-th number of a
/// seed is a pure function of (seed, n), on the CPU and in CUDA kernels alike.
struct Philox {
  /// Four 32-bit words; a plain aggregate so that CUDA kernels (kernels/dropout.cuh) use the
  /// very same code.
  struct Block {
    /// The words.
    std::uint32_t v[4];
    /// Word i.
    [[nodiscard]] EMBER_HOST_DEVICE constexpr std::uint32_t operator[](int i) const { return v[i]; }
    /// Word i.
    [[nodiscard]] EMBER_HOST_DEVICE constexpr std::uint32_t& operator[](int i) { return v[i]; }
    friend constexpr bool operator==(const Block& a, const Block& b) {
      return a.v[0] == b.v[0] && a.v[1] == b.v[1] && a.v[2] == b.v[2] && a.v[3] == b.v[3];
    }
  };

  /// One 128-bit output block for a 64-bit key and a 64-bit counter (the upper counter words
  /// select a sub-stream).
  [[nodiscard]] EMBER_HOST_DEVICE static constexpr Block block(std::uint64_t key, std::uint64_t counter,
                                             std::uint32_t stream = 0) {
    constexpr std::uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
    constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
    Block c{{static_cast<std::uint32_t>(counter), static_cast<std::uint32_t>(counter >> 32),
             stream, 0u}};
    std::uint32_t k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
    for (int round = 0; round < 10; ++round) {
      const std::uint64_t p0 = std::uint64_t{m0} * c[0];
      const std::uint64_t p1 = std::uint64_t{m1} * c[2];
      c = {{static_cast<std::uint32_t>(p1 >> 32) ^ c[1] ^ k0, static_cast<std::uint32_t>(p1),
            static_cast<std::uint32_t>(p0 >> 32) ^ c[3] ^ k1, static_cast<std::uint32_t>(p0)}};
      k0 += w0;
      k1 += w1;
    }
    return c;
  }

  /// Uniform in [0, 1) with 24 (float) or 53 (double) random bits.
  [[nodiscard]] EMBER_HOST_DEVICE static constexpr float to_float(std::uint32_t x) {
    return static_cast<float>(x >> 8) * (1.0f / 16777216.0f);
  }
  /// Uniform in [0, 1) from 53 random bits of two words.
  [[nodiscard]] EMBER_HOST_DEVICE static constexpr double to_double(std::uint32_t hi, std::uint32_t lo) {
    const std::uint64_t bits = (std::uint64_t{hi} << 21) ^ (lo >> 11);
    return static_cast<double>(bits & ((std::uint64_t{1} << 53) - 1)) * 0x1.0p-53;
  }

  /// The per-element values every draw uses. Element i of a draw at offset o reads
  /// block(seed, o + i) only.
  template <class T>
  [[nodiscard]] EMBER_HOST_DEVICE static T uniform(std::uint64_t seed, std::uint64_t counter) {
    const Block b = block(seed, counter);
    if constexpr (sizeof(T) == 4) return static_cast<T>(to_float(b[0]));
    else return static_cast<T>(to_double(b[0], b[1]));
  }
  /// Standard normal by Box-Muller on two uniforms from the same block.
  template <class T>
  [[nodiscard]] static T normal(std::uint64_t seed, std::uint64_t counter) {
    const Block b = block(seed, counter);
    const double u1 = 1.0 - to_double(b[0], b[1]);  // (0, 1]: log is finite
    const double u2 = to_double(b[2], b[3]);
    return static_cast<T>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
  }
  /// A 64-bit random integer.
  [[nodiscard]] static std::uint64_t bits64(std::uint64_t seed, std::uint64_t counter) {
    const Block b = block(seed, counter);
    return (std::uint64_t{b[0]} << 32) | b[1];
  }
};

/// The counters of one random draw on a device: element i uses counter offset + i, plus
/// *offset_ptr (a device scalar) when that is set. A CUDA graph captured once and replayed many
/// times reads a fresh base from offset_ptr on every replay (see Generator::begin_capture).
struct PhiloxArgs {
  /// The generator's seed.
  std::uint64_t seed = 0;
  /// Counter of the draw's first element.
  std::uint64_t offset = 0;
  /// A device scalar added to offset during a CUDA graph replay, or null.
  const std::uint64_t* offset_ptr = nullptr;
};

/// Generator: a seed and an offset. Each draw of n elements reserves counters
/// [offset, offset + n) and advances the offset, so consecutive draws never overlap.
class Generator {
 public:
  /// A generator at offset 0 of `seed` (torch.Generator().manual_seed(seed)).
  explicit Generator(std::uint64_t seed = 0) : seed_(seed) {}

  /// Reseeds and rewinds to offset 0 (torch.Generator.manual_seed).
  void manual_seed(std::uint64_t seed) {
    seed_ = seed;
    offset_ = 0;
  }
  /// The seed.
  [[nodiscard]] std::uint64_t seed() const { return seed_; }
  /// Counters used so far: with the seed, the generator's whole state (a checkpoint stores both).
  [[nodiscard]] std::uint64_t offset() const { return offset_; }
  /// Moves to a counter offset (restores a state saved with offset()).
  void set_offset(std::uint64_t offset) { offset_ = offset; }

  /// Reserves n counters and returns the first.
  std::uint64_t reserve(std::uint64_t n) {
    const std::uint64_t first = offset_;
    offset_ += n;
    return first;
  }

  /// The device arguments for a draw whose first counter is `first` (from reserve()).
  [[nodiscard]] PhiloxArgs philox_args(std::uint64_t first) const {
    if (capture_ptr_ == nullptr) return {seed_, first, nullptr};
    return {seed_, first - capture_base_, capture_ptr_};
  }

  /// Graph capture: draws made between begin_capture and end_capture are recorded relative to
  /// the offset at begin_capture and read their base from the device scalar *device_offset when
  /// they run. end_capture rewinds the offset (nothing was drawn yet) and returns how many
  /// counters one replay consumes; before each replay the caller stores offset() in
  /// *device_offset and then advances the offset by that count, so a replayed step draws exactly
  /// the numbers the same step run eagerly would have drawn.
  void begin_capture(const std::uint64_t* device_offset) {
    capture_ptr_ = device_offset;
    capture_base_ = offset_;
  }
  /// Ends a capture begun by begin_capture(): rewinds the offset and returns the counters one
  /// replay consumes.
  std::uint64_t end_capture() {
    const std::uint64_t used = offset_ - capture_base_;
    offset_ = capture_base_;
    capture_ptr_ = nullptr;
    return used;
  }

  /// Convenience single draws (each consumes one counter).
  template <class T = double>
  T uniform() {
    return Philox::uniform<T>(seed_, reserve(1));
  }
  /// Uniform integer in [0, n), by Lemire's multiply-shift (bias below 2^-32 for the sizes a
  /// shuffle uses).
  std::uint64_t below(std::uint64_t n) {
    __extension__ using U128 = unsigned __int128;
    const auto x = static_cast<U128>(Philox::bits64(seed_, reserve(1)));
    return static_cast<std::uint64_t>((x * n) >> 64);
  }

 private:
  std::uint64_t seed_ = 0;
  std::uint64_t offset_ = 0;
  const std::uint64_t* capture_ptr_ = nullptr;
  std::uint64_t capture_base_ = 0;
};

/// The process-wide generator used when no generator is passed (seed 0 until manual_seed).
inline Generator& default_generator() {
  static Generator g(0);
  return g;
}
/// Reseeds the default generator (torch.manual_seed).
inline void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace ember
