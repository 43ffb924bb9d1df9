#pragma once
// PGM (netpbm greyscale) images: binary P5 and text P2, 8-bit (maxval <= 255), read into
// a uint8 tensor (H, W) and written from one. Used to classify single images.

#include <cctype>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "ember/core/tensor.hpp"
#include "ember/io/atomic_file.hpp"

namespace ember::data {

namespace detail {
// Next header token, skipping whitespace and '#' comments.
inline std::string pgm_token(std::istream& in, const std::string& path) {
  std::string tok;
  int c;
  while ((c = in.get()) != EOF) {
    if (c == '#') {
      while ((c = in.get()) != EOF && c != '\n') {
      }
    } else if (!std::isspace(c)) {
      tok += static_cast<char>(c);
      break;
    }
  }
  while ((c = in.peek()) != EOF && !std::isspace(c) && c != '#') tok += static_cast<char>(in.get());
  EMBER_CHECK(!tok.empty(), "PGM file '", path, "': header ends early");
  return tok;
}
inline std::int64_t pgm_number(std::istream& in, const std::string& path, const char* what,
                               std::int64_t max) {
  const std::string tok = pgm_token(in, path);
  EMBER_CHECK(tok.find_first_not_of("0123456789") == std::string::npos && tok.size() <= 9,
              "PGM file '", path, "': bad ", what, " '", tok, "'");
  const std::int64_t v = std::stoll(tok);
  EMBER_CHECK(v >= 1 && v <= max, "PGM file '", path, "': ", what, " ", v, " is out of range [1, ",
              max, "]");
  return v;
}
}  // namespace detail

inline Tensor<std::uint8_t> read_pgm(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EMBER_CHECK(in.good(), "PGM file '", path, "': cannot open");
  const std::string magic = detail::pgm_token(in, path);
  EMBER_CHECK(magic == "P5" || magic == "P2", "PGM file '", path, "': bad magic '", magic,
              "' (expected P5 or P2)");
  const std::int64_t w = detail::pgm_number(in, path, "width", 1 << 14);
  const std::int64_t h = detail::pgm_number(in, path, "height", 1 << 14);
  const std::int64_t maxval = detail::pgm_number(in, path, "maxval", 255);
  auto img = Tensor<std::uint8_t>::empty({h, w});
  std::uint8_t* p = img.data();
  if (magic == "P5") {
    in.get();  // the single whitespace after maxval
    in.read(reinterpret_cast<char*>(p), h * w);
    EMBER_CHECK(in.gcount() == h * w, "PGM file '", path, "': truncated pixel data (expected ",
                h * w, " bytes, got ", in.gcount(), ")");
  } else {
    for (std::int64_t i = 0; i < h * w; ++i) {
      std::int64_t v = -1;
      in >> v;
      EMBER_CHECK(in.good() || (in.eof() && i + 1 == h * w), "PGM file '", path,
                  "': truncated or bad pixel data at pixel ", i);
      EMBER_CHECK(v >= 0 && v <= maxval, "PGM file '", path, "': pixel ", i, " value ", v,
                  " exceeds maxval ", maxval);
      p[i] = static_cast<std::uint8_t>(v);
    }
  }
  if (maxval != 255)  // rescale to 0..255
    for (std::int64_t i = 0; i < h * w; ++i)
      p[i] = static_cast<std::uint8_t>((p[i] * 255 + maxval / 2) / maxval);
  return img;
}

// Writes a (H, W) uint8 tensor as binary P5, atomically.
inline void write_pgm(const std::string& path, const Tensor<std::uint8_t>& img) {
  EMBER_CHECK(img.dim() == 2, "write_pgm: expected an (H, W) image, got ", shape_str(img.shape()));
  const Tensor<std::uint8_t> c = img.contiguous();
  std::ostringstream os;
  os << "P5\n" << c.size(1) << ' ' << c.size(0) << "\n255\n";
  const std::string header = os.str();
  io::write_file_atomic(path, [&](std::FILE* f) {
    std::fwrite(header.data(), 1, header.size(), f);
    std::fwrite(c.data(), 1, static_cast<std::size_t>(c.numel()), f);
  });
}

}  // namespace ember::data
