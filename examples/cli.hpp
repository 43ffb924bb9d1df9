#pragma once
// What the example programs share: a small flag parser (--name value, --name=value and
// boolean --name; unknown flags and bad values are errors naming the flag, and every number is
// checked against its range before the program starts work), the MNIST folder's lookup, the
// checks and fallbacks of output files, main()'s error reporting, and a JSON writer for
// machine-readable output.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "ember/core/error.hpp"

namespace ember::examples {

// ---- numbers: one parser per kind, each error naming the flag ------------------------------

// An accepted range of real numbers, each end open or closed; the numbers are always finite.
struct RealRange {
  double lo, hi;
  bool lo_open, hi_open;

  static constexpr double inf = std::numeric_limits<double>::infinity();
  static constexpr RealRange positive() { return {0, inf, true, true}; }       // (0, inf)
  static constexpr RealRange non_negative() { return {0, inf, false, true}; }  // [0, inf)
  static constexpr RealRange below_one() { return {0, 1, false, true}; }       // [0, 1)
  static constexpr RealRange factor() { return {0, 1, true, false}; }          // (0, 1]

  [[nodiscard]] bool contains(double x) const {
    return (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
  }
  [[nodiscard]] std::string str() const {
    const auto end = [](double v) {
      if (std::isinf(v)) return std::string(v > 0 ? "inf" : "-inf");
      std::ostringstream os;
      os << v;
      return os.str();
    };
    return (lo_open ? "(" : "[") + end(lo) + ", " + end(hi) + (hi_open ? ")" : "]");
  }
};

// `text` as a decimal integer in [lo, hi]; anything else (empty, trailing characters, leading
// space, beyond what int64 holds, outside the range) is an error naming --flag.
inline std::int64_t parse_integer(const std::string& flag, const std::string& text, std::int64_t lo,
                                  std::int64_t hi) {
  const auto range = [&] {
    if (hi == std::numeric_limits<std::int64_t>::max())
      return ::ember::detail::concat("an integer >= ", lo);
    return ::ember::detail::concat("an integer in [", lo, ", ", hi, "]");
  };
  EMBER_CHECK(!text.empty() && text.find_first_of(" \t\n\r\f\v") == std::string::npos, "--", flag,
              ": '", text, "' is not an integer; expected ", range());
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(text.c_str(), &end, 10);
  EMBER_CHECK(*end == '\0', "--", flag, ": '", text, "' is not an integer; expected ", range());
  EMBER_CHECK(errno != ERANGE && x >= lo && x <= hi, "--", flag, ": ", text,
              " is out of range; expected ", range());
  return x;
}

/// The non-empty items of a comma-separated flag value ("a,b,,c" -> a, b, c).
inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// `text` as a finite real number in `range`: "nan", "inf", trailing characters, overflow and
// values outside the range are errors naming --flag.
inline double parse_real(const std::string& flag, const std::string& text, RealRange range) {
  const auto expected = [&] { return "a number in " + range.str(); };
  EMBER_CHECK(!text.empty() && text.find_first_of(" \t\n\r\f\v") == std::string::npos, "--", flag,
              ": '", text, "' is not a number; expected ", expected());
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(text.c_str(), &end);
  EMBER_CHECK(*end == '\0', "--", flag, ": '", text, "' is not a number; expected ", expected());
  EMBER_CHECK(std::isfinite(x) && errno != ERANGE, "--", flag, ": '", text,
              "' is not a finite number; expected ", expected());
  EMBER_CHECK(range.contains(x), "--", flag, ": ", text, " is out of range; expected ", expected());
  return x;
}

// Every program's --threads: 0 for all cores, else at most this many.
inline constexpr std::int64_t max_threads = 1024;

// ---- flags ---------------------------------------------------------------------------------

// Flags of four kinds: text, boolean, integer (in a range) and real (in a RealRange). parse()
// checks every integer and real against its range, so that a bad value stops a program before
// it reads data or trains, with a message naming the flag.
class Flags {
 public:
  enum class Kind { text, boolean, integer, real };
  struct Spec {
    std::string value;  // default, as text
    std::string help;
    Kind kind = Kind::text;
    std::int64_t lo = 0, hi = 0;  // Kind::integer
    RealRange range{};            // Kind::real
  };

  Flags& add(const std::string& name, const std::string& def, const std::string& help) {
    return declare(name, {def, help});
  }
  Flags& add_bool(const std::string& name, const std::string& help) {
    return declare(name, {"false", help, Kind::boolean});
  }
  Flags& add_int(const std::string& name, std::int64_t def, std::int64_t lo, std::int64_t hi,
                 const std::string& help) {
    return declare(name, {std::to_string(def), help, Kind::integer, lo, hi});
  }
  Flags& add_real(const std::string& name, const std::string& def, RealRange range,
                  const std::string& help) {
    return declare(name, {def, help, Kind::real, 0, 0, range});
  }
  // --threads, the same rule in every program.
  Flags& add_threads() {
    return add_int("threads", 0, 0, max_threads, "CPU threads (0: all cores; at most 1024)");
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
      if (it->second.kind == Kind::boolean) {
        EMBER_CHECK(eq == std::string::npos || value == "true" || value == "false", "--", name,
                    ": '", value, "' is not true or false");
        it->second.value = eq == std::string::npos ? "true" : value;
      } else if (eq == std::string::npos) {
        EMBER_CHECK(i + 1 < argc, "flag --", name, " needs a value");
        it->second.value = argv[++i];
      } else {
        it->second.value = value;
      }
      set_.push_back(name);
    }
    for (const auto& name : order_) {  // every number, given or default, in its range
      const Spec& s = specs_.at(name);
      if (s.kind == Kind::integer) (void)parse_integer(name, s.value, s.lo, s.hi);
      if (s.kind == Kind::real) (void)parse_real(name, s.value, s.range);
    }
    return true;
  }

  [[nodiscard]] std::string str(const std::string& n) const { return spec(n, Kind::text).value; }
  [[nodiscard]] bool flag(const std::string& n) const {
    return spec(n, Kind::boolean).value == "true";
  }
  [[nodiscard]] bool given(const std::string& n) const {
    for (auto& s : set_)
      if (s == n) return true;
    return false;
  }
  [[nodiscard]] std::int64_t integer(const std::string& n) const {
    const Spec& s = spec(n, Kind::integer);
    return parse_integer(n, s.value, s.lo, s.hi);
  }
  [[nodiscard]] double real(const std::string& n) const {
    const Spec& s = spec(n, Kind::real);
    return parse_real(n, s.value, s.range);
  }
  [[nodiscard]] int threads() const { return static_cast<int>(integer("threads")); }

 private:
  Flags& declare(const std::string& name, Spec spec) {
    EMBER_CHECK(specs_.emplace(name, std::move(spec)).second, "internal: flag --", name,
                " declared twice");
    order_.push_back(name);
    return *this;
  }
  const Spec& spec(const std::string& n, Kind kind) const {
    auto it = specs_.find(n);
    EMBER_CHECK(it != specs_.end(), "internal: flag --", n, " was not declared");
    EMBER_CHECK(it->second.kind == kind, "internal: flag --", n, " is read as another kind");
    return it->second;
  }
  void usage(const char* prog, const std::string& about) const {
    std::cout << "usage: " << prog << " [flags]\n" << about << "\n\nflags:\n";
    for (auto& n : order_) {
      const Spec& s = specs_.at(n);
      const std::string shown = s.value.empty() ? std::string("X") : s.value;
      std::string left = "  --" + n + (s.kind == Kind::boolean ? "" : " " + shown);
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

// ---- output files: checked before the work, never lost after it ---------------------------

// Checks, before any work, that --flag's `path` can be written: it is not a folder nor another
// kind of non-regular file, its folder exists, and a file can be created there (a probe file
// is created and removed: permissions, read-only mounts and full inode tables all show).
// An empty path (the output is off) passes.
inline void check_output_path(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty()) return;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  EMBER_CHECK(!fs::is_directory(st), "--", flag, ": '", path,
              "' is a folder; give a file name (in it, for example)");
  EMBER_CHECK(!fs::exists(st) || fs::is_regular_file(st), "--", flag, ": '", path,
              "' exists and is not a regular file");
  const fs::path parent = fs::path(path).parent_path();
  const fs::path dir = parent.empty() ? fs::path(".") : parent;
  EMBER_CHECK(fs::is_directory(dir, ec), "--", flag, ": cannot write '", path, "': folder '",
              dir.string(), "' ", fs::exists(dir, ec) ? "is not a folder" : "does not exist");
  const std::string probe = ::ember::detail::concat(path, ".probe.", ::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  EMBER_CHECK(fd >= 0, "--", flag, ": cannot write '", path, "': cannot create a file in '",
              dir.string(), "': ", std::generic_category().message(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

// Where an output goes when its own path fails after the work is done: the same file name,
// marked "rescued" with this process's id, in the current folder, else $TMPDIR, else /tmp.
inline std::vector<std::string> fallback_paths(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const std::string name =
      ::ember::detail::concat(p.stem().string(), ".rescued.", ::getpid(), p.extension().string());
  std::error_code ec;
  const fs::path cwd = fs::current_path(ec);
  std::vector<std::string> out{ec ? name : (cwd / name).string()};
  if (const char* tmp = std::getenv("TMPDIR"); tmp != nullptr && *tmp != '\0')
    out.push_back((fs::path(tmp) / name).string());
  out.push_back((fs::path("/tmp") / name).string());
  return out;
}

// An output file that must not be lost, such as a trained model: write() saves it to its path,
// and when that fails, to the first of fallback_paths() that works, telling stderr where; the
// later writes (the next checkpoint) go there too. failed() then stays true so that the program
// can end with a non-zero status. Throws only when every place fails.
class SafeOutput {
 public:
  SafeOutput(std::string flag, std::string path)
      : flag_(std::move(flag)), asked_(std::move(path)), path_(asked_) {}

  [[nodiscard]] bool enabled() const { return !asked_.empty(); }
  [[nodiscard]] bool failed() const { return path_ != asked_; }
  [[nodiscard]] const std::string& asked() const { return asked_; }  // the flag's path
  [[nodiscard]] const std::string& path() const { return path_; }    // where it now goes

  // Calls save(place) for the current place, then for the fallbacks until one works; returns
  // the place written.
  std::string write(const std::function<void(const std::string&)>& save) {
    std::vector<std::string> places{path_};
    for (const std::string& p : fallback_paths(asked_))
      if (p != path_) places.push_back(p);
    std::string errors;
    for (const std::string& p : places) {
      try {
        save(p);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "--%s: %s\n", flag_.c_str(), e.what());
        errors += ::ember::detail::concat("; ", e.what());
        continue;
      }
      if (p != path_)
        std::fprintf(stderr, "--%s: '%s' could not be written; saved to '%s' instead\n",
                     flag_.c_str(), asked_.c_str(), p.c_str());
      path_ = p;
      return p;
    }
    throw Error(::ember::detail::concat("--", flag_, ": '", asked_,
                                        "' could not be written, nor any fallback", errors));
  }

 private:
  std::string flag_, asked_, path_;
};

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
