#pragma once
// What the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp) share: an ember::Error is the expected
// outcome of a bad input and returns normally; anything else (a crash, a sanitizer report, an
// exception of another type, std::bad_alloc included) reaches libFuzzer as a finding. A
// harness that needs a file writes the input to one temporary file per process, in a folder of
// its own under $TMPDIR, and never anywhere else.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "ember/core/error.hpp"

namespace ember::fuzz {

// Runs f(); an ember::Error ends the input normally (returns false), anything else escapes.
template <class F>
bool accepts(F&& f) {
  try {
    f();
    return true;
  } catch (const ember::Error&) {
    return false;
  }
}

// Stops the run with a message when a property that must hold does not (a finding).
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "ember fuzz: property violated: %s\n", what);
    std::abort();
  }
}

// The process's one temporary file: $TMPDIR/ember_fuzz_XXXXXX/input, removed at exit.
class TempFile {
 public:
  TempFile() {
    std::string pattern = (std::filesystem::temp_directory_path() / "ember_fuzz_XXXXXX").string();
    require(::mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
    dir_ = pattern;
    path_ = (dir_ / "input").string();
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Replaces the file's contents with bytes and returns its path.
  const std::string& write(std::span<const std::uint8_t> bytes) {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    require(f != nullptr, "cannot open the temporary file");
    const bool ok = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    require(std::fclose(f) == 0 && ok, "cannot write the temporary file");
    return path_;
  }

 private:
  std::filesystem::path dir_;
  std::string path_;
};

inline TempFile& temp_file() {
  static TempFile file;
  return file;
}

inline std::span<const std::byte> as_bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}

}  // namespace ember::fuzz
