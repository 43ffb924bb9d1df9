#pragma once
// What the example programs share: a small flag parser (--name value, --name=value and
// boolean --name; unknown flags and bad values are errors, with the usage text), the MNIST
// folder's lookup, main()'s error reporting, and a JSON writer for machine-readable output.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ember/core/error.hpp"

namespace ember::examples {

class Flags {
 public:
  struct Spec {
    std::string value;  // default, as text
    std::string help;
    bool is_bool = false;
  };

  Flags& add(const std::string& name, const std::string& def, const std::string& help) {
    specs_[name] = {def, help, false};
    order_.push_back(name);
    return *this;
  }
  Flags& add_bool(const std::string& name, const std::string& help) {
    specs_[name] = {"false", help, true};
    order_.push_back(name);
    return *this;
  }

  // Returns false when --help was asked for (usage printed).
  bool parse(int argc, char** argv, const std::string& about) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "-h" || arg == "--help") {
        usage(argv[0], about);
        return false;
      }
      EMBER_CHECK(arg.rfind("--", 0) == 0, "unexpected argument '", arg, "' (see --help)");
      std::string name = arg.substr(2), value;
      const auto eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      auto it = specs_.find(name);
      EMBER_CHECK(it != specs_.end(), "unknown flag --", name, " (see --help)");
      if (it->second.is_bool) {
        it->second.value = eq == std::string::npos ? "true" : value;
      } else if (eq == std::string::npos) {
        EMBER_CHECK(i + 1 < argc, "flag --", name, " needs a value");
        it->second.value = argv[++i];
      } else {
        it->second.value = value;
      }
      set_.push_back(name);
    }
    return true;
  }

  [[nodiscard]] std::string str(const std::string& n) const { return spec(n).value; }
  [[nodiscard]] bool flag(const std::string& n) const { return spec(n).value == "true"; }
  [[nodiscard]] bool given(const std::string& n) const {
    for (auto& s : set_)
      if (s == n) return true;
    return false;
  }
  [[nodiscard]] std::int64_t integer(const std::string& n) const {
    const std::string& v = spec(n).value;
    char* end = nullptr;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    EMBER_CHECK(!v.empty() && *end == '\0', "flag --", n, ": '", v, "' is not an integer");
    return x;
  }
  [[nodiscard]] double real(const std::string& n) const {
    const std::string& v = spec(n).value;
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    EMBER_CHECK(!v.empty() && *end == '\0', "flag --", n, ": '", v, "' is not a number");
    return x;
  }

 private:
  const Spec& spec(const std::string& n) const {
    auto it = specs_.find(n);
    EMBER_CHECK(it != specs_.end(), "internal: flag --", n, " was not declared");
    return it->second;
  }
  void usage(const char* prog, const std::string& about) const {
    std::cout << "usage: " << prog << " [flags]\n" << about << "\n\nflags:\n";
    for (auto& n : order_) {
      const Spec& s = specs_.at(n);
      const std::string shown = s.value.empty() ? std::string("X") : s.value;
      std::string left = "  --" + n + (s.is_bool ? "" : " " + shown);
      if (left.size() < 30) left.resize(30, ' ');
      std::cout << left << "  " << s.help << "\n";
    }
  }
  std::map<std::string, Spec> specs_;
  std::vector<std::string> order_, set_;
};

// The MNIST folder: --data, else $EMBER_DATA, else data/mnist in the source tree.
inline std::string resolve_data_dir(const std::string& flag_value) {
  if (!flag_value.empty()) return flag_value;
  if (const char* env = std::getenv("EMBER_DATA"); env != nullptr && *env != '\0') return env;
#ifdef EMBER_SOURCE_DIR
  return std::string(EMBER_SOURCE_DIR) + "/data/mnist";
#else
  return "data/mnist";
#endif
}

// Writes one JSON value into a string, compactly: objects, arrays, strings, numbers, booleans
// and null. Commas are placed here; the caller keeps the nesting right (key() before each
// member of an object). Strings are escaped, and bytes that are not UTF-8 become U+FFFD, so
// the text is valid JSON whatever a file name holds; numbers that are not finite (which JSON
// cannot hold) are written as null.
class JsonWriter {
 public:
  JsonWriter& begin_object() { return open('{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array() { return open('['); }
  JsonWriter& end_array() { return close(']'); }

  JsonWriter& key(std::string_view k) {
    EMBER_CHECK(!levels_.empty() && levels_.back().object && !after_key_, "JsonWriter: key '", k,
                "' outside an object, or after another key");
    if (!levels_.back().empty) out_ += ',';
    levels_.back().empty = false;
    append_string(k);
    out_ += ':';
    after_key_ = true;
    return *this;
  }

  JsonWriter& string(std::string_view s) {
    before_value();
    append_string(s);
    return *this;
  }
  // `digits` significant digits (%.*g): 9 round-trips a float, 17 a double.
  JsonWriter& number(double v, int digits = 17) {
    before_value();
    if (!std::isfinite(v)) {
      out_ += "null";
      return *this;
    }
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    out_ += buf;
    return *this;
  }
  JsonWriter& integer(std::int64_t v) {
    before_value();
    out_ += std::to_string(v);
    return *this;
  }
  JsonWriter& boolean(bool v) {
    before_value();
    out_ += v ? "true" : "false";
    return *this;
  }
  JsonWriter& null() {
    before_value();
    out_ += "null";
    return *this;
  }

  // The text written so far; complete once every object and array is closed.
  [[nodiscard]] const std::string& str() const { return out_; }

 private:
  struct Level {
    bool object;        // an object (else an array)
    bool empty = true;  // nothing written in it yet
  };

  JsonWriter& open(char c) {
    before_value();
    out_ += c;
    levels_.push_back({c == '{'});
    return *this;
  }
  JsonWriter& close(char c) {
    EMBER_CHECK(!levels_.empty() && levels_.back().object == (c == '}') && !after_key_,
                "JsonWriter: '", c, "' does not close what is open");
    levels_.pop_back();
    out_ += c;
    return *this;
  }
  // In an object a value follows its key; in an array it may need a comma.
  void before_value() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (levels_.empty()) {
      EMBER_CHECK(out_.empty(), "JsonWriter: a second top-level value");
      return;
    }
    EMBER_CHECK(!levels_.back().object, "JsonWriter: a value in an object needs a key");
    if (!levels_.back().empty) out_ += ',';
    levels_.back().empty = false;
  }

  // Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong forms, no
  // surrogates, nothing above U+10FFFF), or 0 if there is none.
  static std::size_t utf8_length(std::string_view s, std::size_t i) {
    const auto byte = [&](std::size_t k) {
      return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u;
    };
    const unsigned c = byte(0);
    const auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
      return byte(k) >= lo && byte(k) <= hi;
    };
    if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
      const unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
      return cont(1, lo, hi) && cont(2) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
      const unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
      return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
    }
    return 0;
  }

  void append_string(std::string_view s) {
    out_ += '"';
    for (std::size_t i = 0; i < s.size();) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c >= 0x80) {
        const std::size_t n = utf8_length(s, i);
        if (n == 0) {
          out_ += "\\ufffd";
          ++i;
        } else {
          out_.append(s.substr(i, n));
          i += n;
        }
        continue;
      }
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += static_cast<char>(c);
      } else if (c == '\n') {
        out_ += "\\n";
      } else if (c < 0x20) {  // other control characters as \u00XX
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out_ += buf;
      } else {
        out_ += static_cast<char>(c);
      }
      ++i;
    }
    out_ += '"';
  }

  std::string out_;
  std::vector<Level> levels_;  // the objects and arrays open, outermost first
  bool after_key_ = false;
};

// main() of an example: runs `run`, and reports any exception as "name: message", exit 1.
inline int run_main(const char* name, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace ember::examples
