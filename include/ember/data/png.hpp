#pragma once
// PNG images read as 8-bit greyscale: read_png gives a uint8 tensor (H, W) from a file or from
// bytes in memory, whatever the file's colour type and bit depth. Used, as pgm.hpp's read_pgm,
// to classify single images.
//
// Decoding is libpng 1.6's simplified API (png_image_*), so a program that includes this
// header links libpng; in CMake: find_package(PNG REQUIRED) and
// target_link_libraries(<target> PRIVATE PNG::PNG).
//
// How each kind of PNG becomes grey levels 0..255 (libpng converts, this file composites):
//   grey, 1/2/4/8 bit     the levels scaled to 0..255 (a 1-bit 1 is 255, a 4-bit 15 is 255)
//   grey, 16 bit          round(v / 257): 16-bit samples are taken as sRGB-encoded, as 8-bit
//                         ones are (PNG_IMAGE_FLAG_16BIT_sRGB), not as linear light
//   RGB, palette          libpng's luminance: Y = 0.2126 R + 0.7152 G + 0.0722 B in linear
//                         light, encoded back to sRGB. A grey (R = G = B) keeps its value;
//                         pure red reads as about 127, pure green 220, pure blue 76.
//   alpha (RGBA, grey + alpha, tRNS)
//                         composited onto PngOptions::background (0, black, by default) in the
//                         8-bit values, as image editors flatten a layer:
//                           out = (v * a + background * (255 - a)) / 255, rounded,
//                         so a white stroke at half opacity (a = 128) reads as 128. (libpng's
//                         own compositing works in linear light and would give 188.) A dark
//                         digit drawn on a transparent canvas needs background = 255.
// A gAMA or sRGB chunk in the file is taken into account by libpng's conversion.
//
// Every failure throws ember::Error naming the file (or the name given for bytes in memory)
// and libpng's message: missing or unreadable file, not a PNG, truncated data, CRC or zlib
// errors, a bad header, or more than PngOptions::max_pixels pixels (checked before the
// image's buffer is allocated). libpng's error handling (its longjmp) stays inside libpng.

#include <png.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember::data {

struct PngOptions {
  // The grey level that transparent pixels are composited onto.
  std::uint8_t background = 0;
  // Largest width * height accepted: 64 Mi pixels (8192 x 8192), far above any digit.
  std::int64_t max_pixels = std::int64_t{1} << 26;
};

namespace detail {

// A png_image that is freed on every path. png_image_free may run again after libpng has
// freed the image itself (it does so when a read fails or finishes).
class PngImage {
 public:
  PngImage() {
    std::memset(&image_, 0, sizeof image_);
    image_.version = PNG_IMAGE_VERSION;
  }
  PngImage(const PngImage&) = delete;
  PngImage& operator=(const PngImage&) = delete;
  ~PngImage() { png_image_free(&image_); }

  [[nodiscard]] png_image& get() { return image_; }

 private:
  png_image image_;
};

[[nodiscard]] inline std::string png_failure(const std::string& where, const png_image& image) {
  std::string message = image.message[0] != '\0' ? image.message : "unknown libpng error";
  // libpng's words for data that end early (a file, bytes in memory).
  if (message == "Read Error") message += " (the file is truncated or cannot be read)";
  if (message == "read beyond end of data") message += " (the data are truncated)";
  return where + message;
}

// Decodes the image whose header png_image_begin_read_* has read, and flattens its alpha.
[[nodiscard]] inline Tensor<std::uint8_t> finish_png(png_image& image, const std::string& where,
                                                     const PngOptions& options) {
  EMBER_CHECK(options.max_pixels > 0, where, "max_pixels must be positive, got ",
              options.max_pixels);
  // libpng bounds width and height by 2^31 - 1 (and by default 10^6), so this cannot overflow.
  const auto h = static_cast<std::int64_t>(image.height);
  const auto w = static_cast<std::int64_t>(image.width);
  EMBER_CHECK(w * h <= options.max_pixels, where, w, " x ", h, " image has ", w * h,
              " pixels, more than the limit of ", options.max_pixels);

  image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;  // only valid after png_image_begin_read_*
  image.format = PNG_FORMAT_GA;              // 8-bit sRGB grey + alpha, not premultiplied
  std::vector<std::uint8_t> ga(static_cast<std::size_t>(2 * w * h));  // (H, W, 2)
  const int ok =
      png_image_finish_read(&image, nullptr, ga.data(), static_cast<png_int_32>(2 * w), nullptr);
  if (ok == 0) throw Error(png_failure(where, image));

  auto img = Tensor<std::uint8_t>::empty({h, w});
  std::uint8_t* out = img.data();
  const unsigned bg = options.background;
  for (std::int64_t i = 0; i < w * h; ++i) {
    const unsigned v = ga[static_cast<std::size_t>(2 * i)];
    const unsigned a = ga[static_cast<std::size_t>(2 * i + 1)];
    out[i] = static_cast<std::uint8_t>((v * a + bg * (255 - a) + 127) / 255);
  }
  return img;
}

}  // namespace detail

// Reads a PNG file as an 8-bit greyscale (H, W) image.
[[nodiscard]] inline Tensor<std::uint8_t> read_png(const std::string& path,
                                                   const PngOptions& options = {}) {
  const std::string where = "PNG file '" + path + "': ";
  detail::PngImage image;
  if (png_image_begin_read_from_file(&image.get(), path.c_str()) == 0) {
    throw Error(detail::png_failure(where, image.get()));
  }
  return detail::finish_png(image.get(), where, options);
}

// Reads PNG bytes held in memory; `name` stands for them in error messages.
[[nodiscard]] inline Tensor<std::uint8_t> read_png(std::span<const std::byte> bytes,
                                                   const std::string& name = "<memory>",
                                                   const PngOptions& options = {}) {
  const std::string where = "PNG data '" + name + "': ";
  EMBER_CHECK(!bytes.empty(), where, "no bytes");
  detail::PngImage image;
  if (png_image_begin_read_from_memory(&image.get(), bytes.data(), bytes.size()) == 0) {
    throw Error(detail::png_failure(where, image.get()));
  }
  return detail::finish_png(image.get(), where, options);
}

}  // namespace ember::data
