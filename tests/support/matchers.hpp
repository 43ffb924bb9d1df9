#pragma once
// Catch2 matchers shared by the tests.

#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>
#include <vector>

#include "ember/core/error.hpp"

namespace ember::test {

// Matches an ember::Error whose message contains every one of the given parts:
//   CHECK_THROWS_MATCHES(f(), ember::Error, ErrorContains({"conv2d", "[1, 3, 8, 8]"}));
class ErrorContains : public Catch::MatcherBase<ember::Error> {
 public:
  ErrorContains(std::initializer_list<std::string> parts) : parts_(parts) {}
  bool match(const ember::Error& e) const override {
    const std::string what = e.what();
    for (const auto& p : parts_)
      if (what.find(p) == std::string::npos) return false;
    return true;
  }
  std::string describe() const override {
    std::string d = "message contains";
    for (const auto& p : parts_) d += " \"" + p + "\"";
    return d;
  }

 private:
  std::vector<std::string> parts_;
};

}  // namespace ember::test
