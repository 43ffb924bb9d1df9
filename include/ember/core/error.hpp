#pragma once
// ember::Error: the one exception type ember throws for bad input or bad use.

#include <cstdint>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>

namespace ember {

/// The exception every check in ember throws: bad shapes, devices, options, files; what() starts
/// with "ember: ".
class Error : public std::runtime_error {
 public:
  /// An error whose what() is "ember: " + what.
  explicit Error(const std::string& what) : std::runtime_error("ember: " + what) {}
};

namespace detail {
template <class... Args>
[[nodiscard]] inline std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

// Text from a file (a name, a key, a value) as an error message shows it: whole up to
// max_bytes, else its first max_bytes bytes and "... (N bytes)", so that a hostile file's
// 100 MB name cannot become a 100 MB message.
[[nodiscard]] inline std::string clip_text(const std::string& text, std::size_t max_bytes = 200) {
  if (text.size() <= max_bytes) return text;
  return text.substr(0, max_bytes) + "... (" + std::to_string(text.size()) + " bytes)";
}
}  // namespace detail

/// Returns make(), turning an allocation failure (std::bad_alloc, or std::length_error from a
/// container asked for more than it can hold) into an ember::Error that says what was being
/// allocated and its size: "<what>: cannot allocate <bytes> bytes". For buffers whose size
/// comes from a file, so that a huge size names the file instead of ending in a bare bad_alloc.
template <class Make>
decltype(auto) allocate_or_throw(const std::string& what, std::uint64_t bytes, Make&& make) {
  try {
    return make();
  } catch (const std::bad_alloc&) {
    throw Error(detail::concat(what, ": cannot allocate ", bytes, " bytes (out of memory)"));
  } catch (const std::length_error&) {
    throw Error(detail::concat(what, ": cannot allocate ", bytes, " bytes (too large)"));
  }
}

}  // namespace ember

// EMBER_CHECK(cond, parts...): throws ember::Error built from the streamed parts when cond is
// false. A macro so that the message is only built on failure.
#define EMBER_CHECK(cond, ...)                                  \
  do {                                                          \
    if (!(cond)) throw ::ember::Error(::ember::detail::concat(__VA_ARGS__)); \
  } while (0)
