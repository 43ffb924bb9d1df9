#pragma once
// A PNG file (or PNG bytes) of one digit, of any size and either polarity, made into an MNIST
// digit as mnist_infer and the inference server prepare them: read as grey (png.hpp), its
// transparent pixels flattened onto the background they mean, then to_mnist_digit
// (digit_image.hpp: the ink cropped, scaled to 20 pixels, centred by its centre of mass).
// Needs libpng, as png.hpp does (ember::png in CMake).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "ember/data/digit_image.hpp"
#include "ember/data/png.hpp"

namespace ember::data {

/// PNG data as grey levels (H, W), its transparent pixels flattened onto the background they
/// mean: black or white when `polarity` says which (as_is: light ink on black; invert: dark ink
/// on white), else as flatten_transparency finds. `read(options)` reads the data.
template <class Read>
[[nodiscard]] Tensor<std::uint8_t> read_png_grey_with(Read&& read, Polarity polarity) {
  if (polarity != Polarity::detect) {
    const bool light_paper = polarity == Polarity::invert;
    return read(PngOptions{.background = static_cast<std::uint8_t>(light_paper ? 255 : 0)});
  }
  return flatten_transparency(read(PngOptions{.background = 0}),
                              read(PngOptions{.background = 255}));
}

/// A PNG file as grey levels (H, W), transparency flattened (read_png_grey_with).
[[nodiscard]] inline Tensor<std::uint8_t> read_png_grey(const std::string& path,
                                                        Polarity polarity) {
  return read_png_grey_with([&](const PngOptions& o) { return read_png(path, o); }, polarity);
}

/// PNG bytes as grey levels (H, W), transparency flattened; `name` stands for them in errors.
[[nodiscard]] inline Tensor<std::uint8_t> read_png_grey(std::span<const std::byte> bytes,
                                                        const std::string& name,
                                                        Polarity polarity) {
  return read_png_grey_with([&](const PngOptions& o) { return read_png(bytes, name, o); },
                            polarity);
}

/// PNG bytes of one digit as an MNIST digit: uint8 (28, 28), light ink on black. Throws
/// ember::Error naming `name` when the data is not a PNG or holds no digit.
[[nodiscard]] inline Tensor<std::uint8_t> png_to_mnist_digit(std::span<const std::byte> bytes,
                                                             const std::string& name,
                                                             Polarity polarity) {
  const Tensor<std::uint8_t> grey = read_png_grey(bytes, name, polarity);
  try {
    return to_mnist_digit(grey, polarity);
  } catch (const Error& e) {
    throw Error(::ember::detail::concat("PNG data '", name, "': ", e.what()));
  }
}

}  // namespace ember::data
