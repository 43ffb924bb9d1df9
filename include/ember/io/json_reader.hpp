#pragma once
// JsonReader: a strict pull reader for the JSON subset that file headers need (objects,
// arrays, strings, integers), used by the safetensors reader.
//
// A pull reader, not a tree: the caller asks for the value it expects next, so a document
// costs memory in proportion to what the caller keeps, and a hostile 100 MB header of nested
// or repeated values cannot blow up into gigabytes of nodes. Strict: no true/false/null, no
// fractions or exponents, no leading zeros, no duplicate keys, strings must be valid UTF-8
// with valid escapes (\uXXXX surrogate pairs are joined); every error names the byte offset.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "ember/core/error.hpp"

namespace ember::io::detail {

inline constexpr int max_json_depth = 64;

// Length of the UTF-8 sequence starting at text[start], or 0 where it is not valid UTF-8.
// Strict: no overlong forms, no encoded surrogates, nothing past U+10FFFF.
inline std::size_t utf8_sequence_length(std::string_view text, std::size_t start) {
  const auto lead = static_cast<unsigned char>(text[start]);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (start + length > text.size()) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    const auto c = static_cast<unsigned char>(text[start + i]);
    if (c < (i == 1 ? low : 0x80) || c > (i == 1 ? high : 0xBF)) return 0;
  }
  return length;
}

inline bool is_valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t length = utf8_sequence_length(text, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

enum class JsonKind { object, array, string, integer };

inline const char* json_kind_name(JsonKind kind) {
  switch (kind) {
    case JsonKind::object: return "an object";
    case JsonKind::array: return "an array";
    case JsonKind::string: return "a string";
    case JsonKind::integer: return "an integer";
  }
  return "?";
}

class JsonReader {
 public:
  // context starts every error message, e.g. "safetensors 'model.safetensors': header".
  JsonReader(std::string_view text, std::string context)
      : text_(text), context_(std::move(context)) {}

  [[noreturn]] void fail(std::size_t at, const std::string& what) const {
    throw Error(::ember::detail::concat(context_, ": invalid JSON at byte ", at, ": ", what));
  }

  // Skips whitespace and says what the next value is, without consuming it.
  JsonKind peek_kind() {
    skip_whitespace();
    if (at_end()) fail(pos_, "expected a value, found the end");
    const unsigned char c = peek();
    if (c == '{') return JsonKind::object;
    if (c == '[') return JsonKind::array;
    if (c == '"') return JsonKind::string;
    if (c == '-' || (c >= '0' && c <= '9')) return JsonKind::integer;
    fail(pos_, "expected an object, array, string or integer");
  }

  [[nodiscard]] std::size_t position() const { return pos_; }

  // Reads an object; for each member calls on_member(key) with the reader at the value, which
  // the callback must consume. Duplicate keys are rejected.
  template <class OnMember>
  void read_object(OnMember&& on_member) {
    skip_whitespace();
    expect('{');
    skip_whitespace();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return;
    }
    std::set<std::string> seen;
    while (true) {
      skip_whitespace();
      const std::size_t key_offset = pos_;
      if (at_end() || peek() != '"') fail(pos_, "expected a string key");
      std::string key = read_string();
      if (!seen.insert(key).second) {
        fail(key_offset,
             ::ember::detail::concat("duplicate key \"", ::ember::detail::clip_text(key), "\""));
      }
      skip_whitespace();
      expect(':');
      on_member(std::move(key));
      skip_whitespace();
      if (!at_end() && peek() == ',') {
        ++pos_;
        continue;
      }
      expect('}');
      return;
    }
  }

  // Reads an array, calling on_item() with the reader at each element, which it must consume.
  template <class OnItem>
  void read_array(OnItem&& on_item) {
    skip_whitespace();
    expect('[');
    skip_whitespace();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return;
    }
    while (true) {
      on_item();
      skip_whitespace();
      if (!at_end() && peek() == ',') {
        ++pos_;
        continue;
      }
      expect(']');
      return;
    }
  }

  // Validates and discards one value of any supported kind (an unknown field).
  void skip_value(int depth = 0) {
    if (depth >= max_json_depth) fail(pos_, "nested deeper than 64 levels");
    switch (peek_kind()) {
      case JsonKind::object: read_object([&](const std::string&) { skip_value(depth + 1); });
        return;
      case JsonKind::array: read_array([&] { skip_value(depth + 1); }); return;
      case JsonKind::string: read_string(); return;
      case JsonKind::integer: read_integer(); return;
    }
  }

  // Only whitespace may follow the top-level value.
  void finish() {
    skip_whitespace();
    if (!at_end()) fail(pos_, "unexpected data after the top-level object");
  }

  // Optional '-', then digits without a leading zero; fractions and exponents are rejected.
  std::int64_t read_integer() {
    skip_whitespace();
    const std::size_t start = pos_;
    const bool negative = !at_end() && peek() == '-';
    if (negative) ++pos_;
    if (at_end() || peek() < '0' || peek() > '9') fail(pos_, "expected a digit");
    if (peek() == '0' && pos_ + 1 < text_.size() && text_[pos_ + 1] >= '0' &&
        text_[pos_ + 1] <= '9') {
      fail(pos_, "integer with a leading zero");
    }
    std::uint64_t magnitude = 0;
    constexpr auto limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      const std::uint64_t digit = peek() - '0';
      if (magnitude > (limit - digit) / 10) fail(start, "integer out of the 64-bit range");
      magnitude = magnitude * 10 + digit;
      ++pos_;
    }
    if (!at_end() && (peek() == '.' || peek() == 'e' || peek() == 'E')) {
      fail(start, "only integers are allowed in a header, not fractions or exponents");
    }
    const auto value = static_cast<std::int64_t>(magnitude);
    return negative ? -value : value;
  }

  // A string, with escapes decoded and raw bytes checked to be UTF-8.
  std::string read_string() {
    skip_whitespace();
    const std::size_t start = pos_;
    expect('"');
    std::string out;
    while (true) {
      if (at_end()) fail(start, "unterminated string");
      const unsigned char c = peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c == '\\') {
        ++pos_;
        read_escape(out);
      } else if (c < 0x20) {
        fail(pos_, "unescaped control character in string");
      } else if (c < 0x80) {
        out += static_cast<char>(c);
        ++pos_;
      } else {
        copy_utf8_sequence(out);
      }
    }
  }

 private:
  [[nodiscard]] bool at_end() const { return pos_ >= text_.size(); }
  [[nodiscard]] unsigned char peek() const { return static_cast<unsigned char>(text_[pos_]); }

  void skip_whitespace() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) {
      ++pos_;
    }
  }

  void expect(char c) {
    if (at_end()) fail(pos_, ::ember::detail::concat("expected '", c, "', found the end"));
    if (peek() != static_cast<unsigned char>(c)) {
      fail(pos_, ::ember::detail::concat("expected '", c, "'"));
    }
    ++pos_;
  }

  std::uint32_t read_hex4() {
    if (pos_ + 4 > text_.size()) fail(pos_, "truncated \\u escape");
    std::uint32_t code = 0;
    for (int i = 0; i < 4; ++i) {
      const unsigned char c = peek();
      std::uint32_t digit = 0;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        fail(pos_, "invalid hex digit in \\u escape");
      }
      code = code * 16 + digit;
      ++pos_;
    }
    return code;
  }

  static void append_utf8(std::string& out, std::uint32_t code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  // After a backslash: one escape, \uXXXX with surrogate pairs joined into one code point.
  void read_escape(std::string& out) {
    const std::size_t start = pos_ - 1;
    if (at_end()) fail(start, "unterminated string");
    const char c = text_[pos_++];
    switch (c) {
      case '"': out += '"'; return;
      case '\\': out += '\\'; return;
      case '/': out += '/'; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'u': break;
      default: fail(start, "invalid escape sequence");
    }
    std::uint32_t code = read_hex4();
    if (code >= 0xDC00 && code <= 0xDFFF) fail(start, "lone low surrogate in \\u escape");
    if (code >= 0xD800 && code <= 0xDBFF) {
      if (text_.substr(pos_, 2) != "\\u") fail(start, "high surrogate without a low one");
      pos_ += 2;
      const std::uint32_t low = read_hex4();
      if (low < 0xDC00 || low > 0xDFFF) fail(start, "high surrogate without a low one");
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(out, code);
  }

  // A raw multi-byte UTF-8 sequence starting at pos_, copied to out.
  void copy_utf8_sequence(std::string& out) {
    const std::size_t length = utf8_sequence_length(text_, pos_);
    if (length == 0) fail(pos_, "invalid UTF-8");
    out.append(text_.substr(pos_, length));
    pos_ += length;
  }

  std::string_view text_;
  std::string context_;
  std::size_t pos_ = 0;
};

}  // namespace ember::io::detail
