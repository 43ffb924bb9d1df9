#pragma once
// ember::Error: the one exception type ember throws for bad input or bad use.

#include <sstream>
#include <stdexcept>
#include <string>

namespace ember {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error("ember: " + what) {}
};

namespace detail {
template <class... Args>
[[nodiscard]] inline std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace ember

// EMBER_CHECK(cond, parts...): throws ember::Error built from the streamed parts when cond is
// false. A macro so that the message is only built on failure.
#define EMBER_CHECK(cond, ...)                                  \
  do {                                                          \
    if (!(cond)) throw ::ember::Error(::ember::detail::concat(__VA_ARGS__)); \
  } while (0)
