#pragma once
// PGM (netpbm greyscale) images: binary P5 and text P2, 8-bit (maxval <= 255), read into
// a uint8 tensor (H, W) and written from one. Used to classify single images.
//
// The header follows netpbm: tokens separated by whitespace, '#' comments to the end of the
// line anywhere in it, including right after maxval (the comment then ends the header, and
// the binary pixels start after its newline). P2 pixel values may have comments between them.
//
// A file is checked against what its header claims before the image is allocated: a P5 file
// must hold width * height bytes after the header, a P2 file at least two characters per pixel
// (a digit and a separator), and width * height is capped by PgmOptions::max_pixels. Every
// failure throws ember::Error naming the file: cannot open, a directory, a bad header, truncated
// or bad pixel data, a failed allocation (with its size). Text from the file is clipped in
// messages.

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/io/atomic_file.hpp"

namespace ember::data {

/// Limits and conventions for reading PGM files.
struct PgmOptions {
  /// Largest width * height accepted: 64 Mi pixels (8192 x 8192), as PngOptions. Width and
  /// height are each at most 16384 whatever this says.
  std::int64_t max_pixels = std::int64_t{1} << 26;
};

namespace detail {

inline constexpr std::int64_t pgm_max_side = std::int64_t{1} << 14;
inline constexpr std::size_t pgm_max_token = 32;  // longer header tokens are an error

// Skips a '#' comment (the next character is '#') up to and including its end of line.
inline void pgm_skip_comment(std::istream& in) {
  int c;
  while ((c = in.get()) != EOF && c != '\n' && c != '\r') {
  }
}

// Skips whitespace and '#' comments; returns the next character (EOF at the end), unread.
inline int pgm_skip_space(std::istream& in) {
  int c;
  while ((c = in.peek()) != EOF) {
    if (c == '#') {
      pgm_skip_comment(in);
    } else if (std::isspace(c)) {
      in.get();
    } else {
      break;
    }
  }
  return c;
}

// Next header token: up to the next whitespace or '#', at most pgm_max_token characters.
inline std::string pgm_token(std::istream& in, const std::string& where) {
  std::string tok;
  int c = pgm_skip_space(in);
  while (c != EOF && !std::isspace(c) && c != '#') {
    EMBER_CHECK(tok.size() < pgm_max_token, where, "header token '", tok, "...' is too long");
    tok += static_cast<char>(in.get());
    c = in.peek();
  }
  EMBER_CHECK(!tok.empty(), where, "header ends early");
  return tok;
}

inline std::int64_t pgm_number(std::istream& in, const std::string& where, const char* what,
                               std::int64_t max) {
  const std::string tok = pgm_token(in, where);
  EMBER_CHECK(tok.find_first_not_of("0123456789") == std::string::npos && tok.size() <= 9, where,
              "bad ", what, " '", tok, "'");
  const std::int64_t v = std::stoll(tok);
  EMBER_CHECK(v >= 1 && v <= max, where, what, " ", v, " is out of range [1, ", max, "]");
  return v;
}

// The P2 value of pixel i (of n): digits after whitespace and comments.
inline std::int64_t pgm_text_value(std::istream& in, const std::string& where, std::int64_t i,
                                   std::int64_t n, std::int64_t maxval) {
  int c = pgm_skip_space(in);
  EMBER_CHECK(c != EOF, where, "truncated pixel data (expected ", n, " values, got ", i, ")");
  std::int64_t v = 0;
  std::int64_t digits = 0;  // significant ones (after leading zeros)
  bool any = false;
  while ((c = in.peek()) != EOF && std::isdigit(c)) {
    in.get();
    any = true;
    if (digits > 0 || c != '0')
      if (++digits <= 9) v = v * 10 + (c - '0');  // exact up to 9 digits, no overflow
  }
  EMBER_CHECK(any && (c == EOF || std::isspace(c) || c == '#'), where, "bad pixel data at pixel ",
              i, " (character code ", c, ")");
  EMBER_CHECK(digits <= 9 && v <= maxval, where, "pixel ", i, " value ",
              digits <= 9 ? std::to_string(v) : "of " + std::to_string(digits) + " digits",
              " exceeds maxval ", maxval);
  return v;
}

// The pixels after the header as an (h, w) image, rescaled to 0..255. sized: the file is known
// to hold them (read_pgm has checked its size), so the image is allocated first and read into;
// else (a pipe) they are collected as they come and the image is allocated at the end.
inline Tensor<std::uint8_t> pgm_pixels(std::istream& in, const std::string& where, bool binary,
                                       std::int64_t h, std::int64_t w, std::int64_t maxval,
                                       bool sized) {
  const std::int64_t n = h * w;
  std::vector<std::uint8_t> pending;  // a pipe's pixels so far
  auto img = sized ? Tensor<std::uint8_t>::empty({h, w}) : Tensor<std::uint8_t>();
  if (binary) {
    std::int64_t got = 0;
    while (got < n) {
      const std::int64_t chunk = std::min<std::int64_t>(n - got, std::int64_t{1} << 20);
      if (!sized) pending.resize(static_cast<std::size_t>(got + chunk));
      std::uint8_t* dst = (sized ? img.data() : pending.data()) + got;
      in.read(reinterpret_cast<char*>(dst), chunk);
      got += in.gcount();
      if (in.gcount() < chunk) break;
    }
    EMBER_CHECK(got == n, where, "truncated pixel data (expected ", n, " bytes, got ", got, ")");
  } else {
    for (std::int64_t i = 0; i < n; ++i) {
      const auto v = static_cast<std::uint8_t>(pgm_text_value(in, where, i, n, maxval));
      if (sized)
        img.data()[i] = v;
      else
        pending.push_back(v);
    }
  }
  if (!sized) {
    img = Tensor<std::uint8_t>::empty({h, w});
    std::copy(pending.begin(), pending.end(), img.data());
  }
  if (maxval != 255) {
    std::uint8_t* p = img.data();
    for (std::int64_t i = 0; i < n; ++i) {
      EMBER_CHECK(p[i] <= maxval, where, "pixel ", i, " value ", int{p[i]}, " exceeds maxval ",
                  maxval);
      p[i] = static_cast<std::uint8_t>((p[i] * 255 + maxval / 2) / maxval);
    }
  }
  return img;
}

}  // namespace detail

/// Reads a PGM file (P2 or P5) as uint8 (H, W); throws ember::Error naming the file and what is
/// wrong.
inline Tensor<std::uint8_t> read_pgm(const std::string& path, const PgmOptions& options = {}) {
  const std::string where = "PGM file '" + path + "': ";
  EMBER_CHECK(options.max_pixels > 0, where, "max_pixels must be positive, got ",
              options.max_pixels);
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  EMBER_CHECK(!std::filesystem::is_directory(status), where, "is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  EMBER_CHECK(in.good(), where, "cannot open", ec ? " (" + ec.message() + ")" : std::string());
  // The bytes the file holds (a regular file), else unknown (a pipe): then nothing is
  // allocated before the pixels are read.
  std::optional<std::uint64_t> file_size;
  if (std::filesystem::is_regular_file(status)) {
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec) file_size = size;
  }
  const std::string magic = detail::pgm_token(in, where);
  EMBER_CHECK(magic == "P5" || magic == "P2", where, "bad magic '", magic, "' (expected P5 or P2)");
  const std::int64_t w = detail::pgm_number(in, where, "width", detail::pgm_max_side);
  const std::int64_t h = detail::pgm_number(in, where, "height", detail::pgm_max_side);
  const std::int64_t maxval = detail::pgm_number(in, where, "maxval", 255);
  const std::int64_t n = h * w;  // at most 2^28
  EMBER_CHECK(n <= options.max_pixels, where, w, " x ", h, " image has ", n,
              " pixels, more than the limit of ", options.max_pixels);
  // After maxval: one whitespace character, or a comment up to its newline.
  if (in.peek() == '#')
    detail::pgm_skip_comment(in);
  else
    in.get();
  EMBER_CHECK(!in.bad(), where, "read error in the header");
  in.clear();  // an EOF here shows below as truncated data
  const std::streamoff header = in.tellg();
  const std::uint64_t left =
      file_size && header >= 0 && static_cast<std::uint64_t>(header) <= *file_size
          ? *file_size - static_cast<std::uint64_t>(header)
          : 0;
  if (magic == "P5" && file_size)
    EMBER_CHECK(left >= static_cast<std::uint64_t>(n), where, "truncated pixel data (expected ", n,
                " bytes, got ", left, ")");
  // P2: each value takes a digit and a separator (the last one may end the file).
  if (magic == "P2" && file_size)
    EMBER_CHECK(left + 1 >= 2 * static_cast<std::uint64_t>(n), where, "truncated pixel data (", w,
                " x ", h, " text values need at least ", 2 * n - 1, " bytes, the file has ", left,
                " after the header)");
  return allocate_or_throw(where + std::to_string(w) + " x " + std::to_string(h) + " image",
                           static_cast<std::uint64_t>(n), [&] {
                             return detail::pgm_pixels(in, where, magic == "P5", h, w, maxval,
                                                       file_size.has_value());
                           });
}

/// Writes a (H, W) uint8 tensor as binary P5, atomically.
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
