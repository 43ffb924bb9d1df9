#pragma once
// Pixel normalisation, (pixel / 255 - mean) / std, shared by every path that feeds a model:
// DataLoader, DeviceDataLoader's kernel (kernels/data.cuh) and mnist_infer. Computed as
// (pixel - 255 * mean) * (1 / (255 * std)): a subtraction and then a product, which no compiler
// can fuse into a multiply-add, so the CPU and the GPU give the same bits whatever the
// floating-point contraction settings (with the default mean 0.5, pixel - 127.5 is exact).

#include <cmath>
#include <cstdint>

#include "ember/core/error.hpp"
#include "ember/core/macros.hpp"

namespace ember::data {

/// A uint8 pixel to float, (pixel / 255 - mean) / std, computed as (pixel - 255 * mean) * (1 / (255
/// * std)) on the CPU and CUDA alike.
struct PixelNormalization {
  float center = 127.5f;       ///< 255 * mean
  float scale = 1.0f / 127.5f;  ///< 1 / (255 * std)

  /// Out of line on purpose: were 255 * mean visible where the pixel is subtracted, a compiler
  /// that contracts could fuse the two (pixel - 255 * mean as one multiply-add). Refuses a
  /// mean or std that would make every pixel inf or NaN.
  [[nodiscard, gnu::noinline]] static PixelNormalization from(float mean, float std) {
    EMBER_CHECK(std::isfinite(mean), "PixelNormalization: mean must be finite, got ", mean);
    EMBER_CHECK(std::isfinite(std) && std > 0,
                "PixelNormalization: std must be positive and finite, got ", std);
    return {255.0f * mean, 1.0f / (255.0f * std)};
  }
  /// The pixel normalised.
  [[nodiscard]] EMBER_HOST_DEVICE float operator()(std::uint8_t pixel) const {
    return (static_cast<float>(pixel) - center) * scale;
  }
};

}  // namespace ember::data
