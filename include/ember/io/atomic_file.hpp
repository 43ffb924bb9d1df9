#pragma once
// write_file_atomic: replace a file's contents all at once or not at all.
//
// The bytes go to a temporary file in the target's own directory (rename is only atomic within
// one file system), which is flushed and fsync'd, then renamed over the target; the directory
// is fsync'd last so that the rename itself survives a crash. A reader, or a machine that loses
// power, sees either the old file or the whole new one, never a half-written target. On any
// failure the temporary file is removed and ember::Error names the path and the OS error.
// POSIX only (open/fsync/rename).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <system_error>

#include "ember/core/error.hpp"

namespace ember::io {

namespace detail {

[[noreturn]] inline void throw_write_error(const std::string& path, const char* step, int err) {
  throw Error(::ember::detail::concat("cannot write '", path, "': ", step, ": ",
                                      std::generic_category().message(err)));
}

// Creates "<path>.tmp.<pid>.<counter>" exclusively, so that two writers (threads or processes)
// never share a temporary file. Returns the open descriptor and sets tmp_path.
inline int create_temp_beside(const std::string& path, std::string& tmp_path) {
  static std::atomic<unsigned long> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    tmp_path = ::ember::detail::concat(path, ".tmp.", ::getpid(), ".", counter.fetch_add(1));
    const int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST) throw_write_error(path, "cannot create temporary file", errno);
  }
  throw_write_error(path, "cannot create temporary file", EEXIST);
}

// fsync on the directory makes the rename durable. File systems that cannot fsync a directory
// answer EINVAL; the rename has happened there all the same, so that is not an error.
inline void sync_directory_of(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_write_error(path, "cannot open its directory to sync it", errno);
  if (::fsync(fd) != 0 && errno != EINVAL) {
    const int err = errno;
    ::close(fd);
    throw_write_error(path, "cannot sync its directory", err);
  }
  ::close(fd);
}

}  // namespace detail

// Calls writer(file) on a temporary file beside path, then atomically replaces path with it.
// writer may throw; the exception propagates after the temporary file is removed and the old
// target, if any, is left as it was. Errors from std::fwrite inside writer need not be checked
// there: the stream's error flag is checked afterwards.
inline void write_file_atomic(const std::string& path,
                              const std::function<void(std::FILE*)>& writer) {
  std::string tmp_path;
  const int fd = detail::create_temp_beside(path, tmp_path);
  std::FILE* file = ::fdopen(fd, "wb");
  if (file == nullptr) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp_path.c_str());
    detail::throw_write_error(path, "fdopen failed", err);
  }
  // Every failure from here on closes (once) and removes the temporary file.
  const auto fail = [&](const char* step, int err, bool close_file) {
    if (close_file) std::fclose(file);
    ::unlink(tmp_path.c_str());
    detail::throw_write_error(path, step, err != 0 ? err : EIO);
  };
  try {
    errno = 0;
    writer(file);
  } catch (...) {
    std::fclose(file);
    ::unlink(tmp_path.c_str());
    throw;
  }
  if (std::fflush(file) != 0 || std::ferror(file) != 0) fail("write failed", errno, true);
  if (::fsync(::fileno(file)) != 0) fail("fsync failed", errno, true);
  if (std::fclose(file) != 0) fail("close failed", errno, false);
  if (std::rename(tmp_path.c_str(), path.c_str()) != 0) fail("rename failed", errno, false);
  detail::sync_directory_of(path);
}

// Atomically replaces path with the given bytes.
inline void write_file_atomic(const std::string& path, std::span<const std::byte> bytes) {
  write_file_atomic(path, [&](std::FILE* file) {
    if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), file);
  });
}

}  // namespace ember::io
