#pragma once
// Where tests write their files: $EMBER_TEST_TMP (CTest sets it to a folder in the build
// tree), else the system's temporary directory.

#include <cstdlib>
#include <filesystem>
#include <string>

namespace ember::test {

// The folder `name` under the tests' temporary root, created if missing; fresh=true empties
// it first.
inline std::filesystem::path tmp_dir(const std::string& name, bool fresh = false) {
  const char* env = std::getenv("EMBER_TEST_TMP");
  const std::filesystem::path base = env != nullptr && *env != '\0'
                                         ? std::filesystem::path(env)
                                         : std::filesystem::temp_directory_path();
  const std::filesystem::path dir = base / name;
  if (fresh) std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace ember::test
