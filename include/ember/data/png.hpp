#pragma once
// PNG images read as 8-bit greyscale: read_png gives a uint8 tensor (H, W) from a file or from
// bytes in memory, whatever the file's colour type and bit depth. Used, as pgm.hpp's read_pgm,
// to classify single images. read_png_image gives (1, H, W) grey or (3, H, W) RGB (for
// ImageFolder), and write_png writes an 8-bit image (tests' fixtures, augmented samples).
//
// Decoding is libpng 1.6's simplified API (png_image_*), so a program that includes this
// header links libpng; in CMake: find_package(PNG REQUIRED) and
// target_link_libraries(<target> PRIVATE PNG::PNG).
//
// How each kind of PNG becomes grey levels 0..255 (libpng converts, this file composites):
//   grey, 1/2/4/8 bit     the levels scaled to 0..255 (a 1-bit 1 is 255, a 4-bit 15 is 255)
//   grey, 16 bit          round(v / 257): 16-bit samples are taken as sRGB-encoded, as 8-bit
//                         ones are (PNG_IMAGE_FLAG_16BIT_sRGB), not as linear light
//   RGB, palette          as RGB (read_png_image with 3 channels): as stored; as grey:
//                         libpng's luminance: Y = 0.2126 R + 0.7152 G + 0.0722 B in linear
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
// Every failure throws ember::Error naming the file (or the name given for bytes in memory):
// missing or unreadable file, a directory, an empty file, not a PNG (bad signature), truncated
// data, CRC or zlib errors (libpng's message), a bad header, or an image refused before libpng
// allocates anything for it: more than PngOptions::max_pixels pixels, or more pixel data than
// the file could hold even at deflate's best ratio (1032:1), the sign of a tiny file claiming
// huge dimensions. (These checks read IHDR themselves: libpng's simplified API has no handle
// for png_set_user_limits; libpng still applies its default limit of 10^6 per side.) A failed
// allocation names the file and the size. libpng's error handling (its longjmp) stays inside
// libpng.

#include <png.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember::data {

/// How PNG files are read.
struct PngOptions {
  /// The grey level that transparent pixels are composited onto.
  std::uint8_t background = 0;
  /// Largest width * height accepted: 64 Mi pixels (8192 x 8192), far above any digit.
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

// libpng's message, with its words for data that end early ("Read Error" from a file,
// "read beyond end of data" from memory) said plainly. `size` is the file's or the data's.
[[nodiscard]] inline std::string png_failure(const std::string& where, const png_image& image,
                                             std::uint64_t size, std::FILE* file = nullptr) {
  const std::string message = image.message[0] != '\0' ? image.message : "unknown libpng error";
  if (message == "Read Error" && file != nullptr && std::ferror(file) != 0)
    return where + "read error (libpng: " + message + ")";
  if (message == "Read Error" || message == "read beyond end of data")
    return where + "truncated: its " + std::to_string(size) +
           " bytes end before the image does (libpng: " + message + ")";
  return where + message;
}

[[nodiscard]] inline std::uint32_t png_be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

// Bytes of a PNG read before libpng sees them: the signature and the IHDR chunk.
inline constexpr std::size_t png_head_bytes = 8 + 8 + 13;

// The first n bytes of the data against the PNG signature's (n may be less than 8).
inline void png_check_signature(const void* head, std::size_t n, const std::string& where) {
  static constexpr unsigned char signature[8] = {137, 'P', 'N', 'G', '\r', '\n', 26, '\n'};
  EMBER_CHECK(std::memcmp(head, signature, n < 8 ? n : 8) == 0, where, "not a PNG (bad signature)");
}

// Checks the first n = min(size, png_head_bytes) bytes `head` of PNG data of `size` bytes: not
// empty, the signature, and the IHDR's width and height against options.max_pixels and
// against what `size` bytes can hold. A malformed IHDR is left to libpng, which names it.
inline void png_check_head(const unsigned char* head, std::size_t n, std::uint64_t size,
                           const std::string& where, const PngOptions& options) {
  EMBER_CHECK(options.max_pixels > 0, where, "max_pixels must be positive, got ",
              options.max_pixels);
  EMBER_CHECK(size > 0, where, "empty file (0 bytes)");
  png_check_signature(head, n, where);
  EMBER_CHECK(n >= 8, where, "truncated inside the PNG signature (", n, " of 8 bytes)");
  if (n < png_head_bytes || png_be32(head + 8) != 13 || std::memcmp(head + 12, "IHDR", 4) != 0)
    return;
  const std::uint32_t w = png_be32(head + 16), h = png_be32(head + 20);
  if (w == 0 || h == 0 || w > 0x7fffffffu || h > 0x7fffffffu) return;  // libpng's error
  const std::uint64_t pixels = std::uint64_t{w} * h;
  EMBER_CHECK(pixels <= static_cast<std::uint64_t>(options.max_pixels), where, w, " x ", h,
              " image has ", pixels, " pixels, more than the limit of ", options.max_pixels);
  // The fewest bytes of pixel data a valid image of this header decompresses to, without
  // filter bytes; deflate packs at most 1032 bytes into one.
  const int depth = head[24], colour = head[25];
  const int channels = colour == 2 ? 3 : colour == 4 ? 2 : colour == 6 ? 4 : 1;
  const std::uint64_t bits = depth >= 1 && depth <= 16 ? std::uint64_t(depth) * channels : 1;
  const std::uint64_t least = (pixels * bits + 7) / 8;  // < 2^26 * 64
  EMBER_CHECK(least <= 1032 * size + 1032, where, "its ", size, " bytes cannot hold a ", w, " x ",
              h, " image (at least ", least,
              " bytes of pixel data, more than deflate can pack into them): truncated or corrupt");
}

// Decodes the image whose header png_image_begin_read_* has read, and flattens its alpha:
// channels 0 gives grey (H, W), 1 grey (1, H, W), 3 RGB (3, H, W).
[[nodiscard]] inline Tensor<std::uint8_t> finish_png(png_image& image, const std::string& where,
                                                     const PngOptions& options, std::uint64_t size,
                                                     std::FILE* file = nullptr,
                                                     int channels = 0) {
  // png_check_head has checked the header, libpng bounds width and height by 2^31 - 1 (and by
  // default 10^6): this cannot overflow.
  const auto h = static_cast<std::int64_t>(image.height);
  const auto w = static_cast<std::int64_t>(image.width);
  EMBER_CHECK(w * h <= options.max_pixels, where, w, " x ", h, " image has ", w * h,
              " pixels, more than the limit of ", options.max_pixels);

  const std::int64_t c = channels == 3 ? 3 : 1;
  image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;  // only valid after png_image_begin_read_*
  // 8-bit sRGB grey + alpha or RGBA, not premultiplied
  image.format = c == 3 ? PNG_FORMAT_RGBA : PNG_FORMAT_GA;
  const auto bytes = static_cast<std::size_t>((c + 1) * w * h);
  std::vector<std::uint8_t> ga = allocate_or_throw(where + "pixel + alpha buffer", bytes, [&] {
    return std::vector<std::uint8_t>(bytes);  // (H, W, c + 1)
  });
  const int ok = png_image_finish_read(&image, nullptr, ga.data(),
                                       static_cast<png_int_32>((c + 1) * w), nullptr);
  if (ok == 0) throw Error(png_failure(where, image, size, file));

  auto img = allocate_or_throw(where + "image", bytes / static_cast<std::size_t>(c + 1) *
                                                    static_cast<std::size_t>(c), [&] {
    return channels == 0 ? Tensor<std::uint8_t>::empty({h, w})
                         : Tensor<std::uint8_t>::empty({c, h, w});
  });
  std::uint8_t* out = img.data();  // (c, H, W)
  const unsigned bg = options.background;
  for (std::int64_t i = 0; i < w * h; ++i) {
    const std::uint8_t* px = ga.data() + static_cast<std::size_t>((c + 1) * i);
    const unsigned a = px[c];
    for (std::int64_t k = 0; k < c; ++k)
      out[k * w * h + i] = static_cast<std::uint8_t>((px[k] * a + bg * (255 - a) + 127) / 255);
  }
  return img;
}

// Decodes PNG data held in memory; `where` begins every message.
[[nodiscard]] inline Tensor<std::uint8_t> read_png_memory(std::span<const std::byte> bytes,
                                                          const std::string& where,
                                                          const PngOptions& options,
                                                          int channels = 0) {
  EMBER_CHECK(!bytes.empty(), where, "no bytes (empty)");
  const std::size_t n = std::min(bytes.size(), png_head_bytes);
  png_check_head(reinterpret_cast<const unsigned char*>(bytes.data()), n, bytes.size(), where,
                 options);
  PngImage image;
  if (png_image_begin_read_from_memory(&image.get(), bytes.data(), bytes.size()) == 0) {
    throw Error(png_failure(where, image.get(), bytes.size()));
  }
  return finish_png(image.get(), where, options, bytes.size(), nullptr, channels);
}

}  // namespace detail

namespace detail {
[[nodiscard]] inline Tensor<std::uint8_t> read_png_file(const std::string& path,
                                                        const PngOptions& options, int channels) {
  const std::string where = "PNG file '" + path + "': ";
  std::FILE* file = std::fopen(path.c_str(), "rb");
  EMBER_CHECK(file != nullptr, where, "cannot open: ", std::generic_category().message(errno));
  struct Closer {
    std::FILE* f;
    ~Closer() { std::fclose(f); }
  } closer{file};
  struct stat info {};
  EMBER_CHECK(::fstat(::fileno(file), &info) == 0, where,
              "cannot read: ", std::generic_category().message(errno));
  EMBER_CHECK(!S_ISDIR(info.st_mode), where, "is a directory, not a file");
  if (!S_ISREG(info.st_mode)) {  // a pipe: its bytes (up to 1 GiB), decoded from memory
    std::vector<std::byte> bytes;
    for (std::size_t got = 1; got > 0;) {
      EMBER_CHECK(bytes.size() < (std::size_t{1} << 30), where, "more than 1 GiB of data");
      const std::size_t at = bytes.size();
      bytes.resize(at + (std::size_t{1} << 16));
      got = std::fread(bytes.data() + at, 1, std::size_t{1} << 16, file);
      bytes.resize(at + got);
      detail::png_check_signature(bytes.data(), bytes.size(), where);  // not all of /dev/zero
    }
    EMBER_CHECK(std::ferror(file) == 0, where, "read error");
    return detail::read_png_memory(bytes, where, options, channels);
  }
  const auto size = static_cast<std::uint64_t>(info.st_size);
  unsigned char head[detail::png_head_bytes];
  const std::size_t n = std::fread(head, 1, sizeof head, file);
  EMBER_CHECK(std::ferror(file) == 0, where,
              "read error: ", std::generic_category().message(errno));
  detail::png_check_head(head, n, size, where, options);
  std::rewind(file);
  detail::PngImage image;  // freed before the file is closed
  if (png_image_begin_read_from_stdio(&image.get(), file) == 0) {
    throw Error(detail::png_failure(where, image.get(), size, file));
  }
  return detail::finish_png(image.get(), where, options, size, file, channels);
}
}  // namespace detail

/// Reads a PNG file as an 8-bit greyscale (H, W) image.
[[nodiscard]] inline Tensor<std::uint8_t> read_png(const std::string& path,
                                                   const PngOptions& options = {}) {
  return detail::read_png_file(path, options, 0);
}

/// Reads a PNG file as an image (channels, H, W): channels 1 for grey (as read_png), 3 for
/// RGB (grey files give R = G = B; alpha is composited onto options.background in each
/// channel as above; libpng converts palettes and bit depths).
[[nodiscard]] inline Tensor<std::uint8_t> read_png_image(const std::string& path, int channels,
                                                         const PngOptions& options = {}) {
  EMBER_CHECK(channels == 1 || channels == 3, "PNG file '", path,
              "': channels must be 1 (grey) or 3 (RGB), got ", channels);
  return detail::read_png_file(path, options, channels);
}

/// Reads PNG bytes held in memory; `name` stands for them in error messages.
[[nodiscard]] inline Tensor<std::uint8_t> read_png(std::span<const std::byte> bytes,
                                                   const std::string& name = "<memory>",
                                                   const PngOptions& options = {}) {
  return detail::read_png_memory(bytes, "PNG data '" + name + "': ", options);
}

/// Writes an 8-bit image as a PNG file: (H, W) or (1, H, W) grey, (2, H, W) grey + alpha,
/// (3, H, W) RGB or (4, H, W) RGBA. Throws an ember::Error naming the file if it cannot.
inline void write_png(const std::string& path, const Tensor<std::uint8_t>& image) {
  const std::string where = "PNG file '" + path + "': ";
  EMBER_CHECK(image.defined() && (image.dim() == 2 || image.dim() == 3), where,
              "expected an image (H, W) or (C, H, W), got shape ",
              image.defined() ? shape_str(image.shape()) : std::string("undefined"));
  const Tensor<std::uint8_t> img = image.is_contiguous() ? image : image.contiguous();
  const std::int64_t c = img.dim() == 2 ? 1 : img.size(0);
  const std::int64_t h = img.size(img.dim() - 2), w = img.size(img.dim() - 1);
  EMBER_CHECK(c >= 1 && c <= 4, where, "expected 1 to 4 channels, got ", c);
  EMBER_CHECK(h > 0 && w > 0 && h <= 0x7fffffff && w <= 0x7fffffff, where,
              "cannot write a ", h, " x ", w, " image");
  std::vector<std::uint8_t> interleaved(static_cast<std::size_t>(c * h * w));  // (H, W, C)
  const std::uint8_t* src = img.data();
  for (std::int64_t k = 0; k < c; ++k)
    for (std::int64_t i = 0; i < h * w; ++i)
      interleaved[static_cast<std::size_t>(i * c + k)] = src[k * h * w + i];
  detail::PngImage png;
  png.get().width = static_cast<png_uint_32>(w);
  png.get().height = static_cast<png_uint_32>(h);
  png.get().format = c == 1   ? PNG_FORMAT_GRAY
                     : c == 2 ? PNG_FORMAT_GA
                     : c == 3 ? PNG_FORMAT_RGB
                              : PNG_FORMAT_RGBA;
  if (png_image_write_to_file(&png.get(), path.c_str(), 0, interleaved.data(),
                              static_cast<png_int_32>(c * w), nullptr) == 0) {
    throw Error(where + "cannot write: " +
                (png.get().message[0] != '\0' ? png.get().message : "unknown libpng error"));
  }
}

}  // namespace ember::data
