#pragma once
// A small flag parser shared by the example programs: --name value, --name=value and
// boolean --name. Unknown flags and bad values are errors, with the usage text.

#include <cstdint>
#include <cstdio>
#include <exception>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
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
    for (auto& s : set_) if (s == n) return true;
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
      std::string left = "  --" + n + (s.is_bool ? "" : " " + (s.value.empty() ? std::string("X") : s.value));
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
