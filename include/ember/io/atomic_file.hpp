#pragma once
// write_file_atomic: replace a file's contents all at once or not at all.
//
// The bytes go to a temporary file in the target's own directory (rename is only atomic within
// one file system), which is flushed and fsync'd, then renamed over the target; the directory
// is fsync'd last so that the rename itself survives a crash. A reader, or a machine that loses
// power, sees either the old file or the whole new one, never a half-written target. On any
// failure the temporary file is removed and ember::Error names the path and the OS error.
// POSIX only (open/fsync/rename).
//
// A temporary file is also removed when SIGINT, SIGTERM or SIGHUP ends the process during the
// write: while it exists its name sits in a fixed table, and a handler, installed for each of
// those signals whose action is still the default (never over a program's own handler or an
// ignored signal), unlinks what the table holds and raises the signal again with the default
// action, so that the process ends as it would have. A program with its own handler can call
// remove_temporary_files() from it. What no handler sees (SIGKILL, a power cut) can leave
// "<target>.tmp.<pid>.<n>" behind; remove_stale_temporaries(target) deletes those whose
// process is gone.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "ember/core/error.hpp"

namespace ember::io {

namespace detail {

[[noreturn]] inline void throw_write_error(const std::string& path, const char* step, int err) {
  throw Error(::ember::detail::concat("cannot write '", path, "': ", step, ": ",
                                      std::generic_category().message(err)));
}

// The temporary files being written, in fixed buffers: a signal handler may call only
// async-signal-safe functions (unlink, raise), so it cannot read a std::string. A slot's state:
enum TempSlotState : int {
  slot_free = 0,
  slot_filling = 1,   // its writer is copying a name in
  slot_holds = 2,     // holds the name of a temporary file that exists or is being created
  slot_removing = 3,  // a signal handler is unlinking it
  slot_removed = 4,   // the handler has unlinked it; the writer frees the slot
};
struct TempSlot {
  std::atomic<int> state{slot_free};
  char path[4096] = {};
};
static_assert(std::atomic<int>::is_always_lock_free, "signal handlers need lock-free atomics");
inline constexpr int temp_slot_count = 16;    // writes in flight at once that a signal cleans up
inline TempSlot temp_slots[temp_slot_count];  // constant-initialised: no guard to run

// Takes a slot for `path`; -1 when all are busy or the name is too long (that file is then
// not removed on a signal, only on the writer's own failures).
inline int register_temp(const std::string& path) {
  if (path.size() >= sizeof(TempSlot::path)) return -1;
  for (int i = 0; i < temp_slot_count; ++i) {
    int expected = slot_free;
    if (!temp_slots[i].state.compare_exchange_strong(expected, slot_filling)) continue;
    std::memcpy(temp_slots[i].path, path.c_str(), path.size() + 1);
    temp_slots[i].state.store(slot_holds, std::memory_order_release);
    return i;
  }
  return -1;
}

// Frees a slot once its file is renamed or removed. A handler on another thread that is
// unlinking it is waited for, so that the name is not overwritten while it reads it.
inline void unregister_temp(int slot) {
  if (slot < 0) return;
  std::atomic<int>& state = temp_slots[slot].state;
  int expected = slot_holds;
  if (state.compare_exchange_strong(expected, slot_free)) return;
  while (state.load() == slot_removing) std::this_thread::yield();
  state.store(slot_free);
}

}  // namespace detail

/// Unlinks every temporary file that a write_file_atomic in progress holds. Async-signal-safe,
/// for a program's own SIGINT/SIGTERM handler; the writes it interrupts then fail, so call it
/// only when the process is about to end. Returns how many it unlinked.
inline int remove_temporary_files() noexcept {
  int removed = 0;
  for (detail::TempSlot& slot : detail::temp_slots) {
    int expected = detail::slot_holds;
    if (!slot.state.compare_exchange_strong(expected, detail::slot_removing)) continue;
    if (::unlink(slot.path) == 0) ++removed;
    slot.state.store(detail::slot_removed);
  }
  return removed;
}

namespace detail {

// The handler: installed with SA_RESETHAND, so the default action is back when it runs, and
// raising the signal again ends the process with it (its exit status shows the signal).
inline void remove_temporary_files_and_reraise(int sig) {
  const int saved_errno = errno;
  (void)remove_temporary_files();
  errno = saved_errno;
  (void)::raise(sig);
}

// Installs the handler for each signal whose action is the default. Runs before every write:
// a program may have reset a signal since, and its own handlers or SIG_IGN are left alone.
inline void install_cleanup_handlers() {
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) != 0) continue;
    if ((old.sa_flags & SA_SIGINFO) != 0 || old.sa_handler != SIG_DFL) continue;
    struct sigaction action {};
    action.sa_handler = remove_temporary_files_and_reraise;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;
    (void)::sigaction(sig, &action, nullptr);
  }
}

// A temporary file's entry in the table, for as long as the write runs.
class TempRegistration {
 public:
  explicit TempRegistration(const std::string& path) : slot_(register_temp(path)) {}
  TempRegistration(const TempRegistration&) = delete;
  TempRegistration& operator=(const TempRegistration&) = delete;
  ~TempRegistration() { unregister_temp(slot_); }

 private:
  int slot_;
};

// The name "<path>.tmp.<pid>.<counter>" of a writer's temporary file.
inline std::string temp_name(const std::string& path, unsigned long counter) {
  return ::ember::detail::concat(path, ".tmp.", ::getpid(), ".", counter);
}

// Creates "<path>.tmp.<pid>.<counter>" exclusively, so that two writers (threads or processes)
// never share a temporary file. Returns the open descriptor and sets tmp_path; `registration`
// holds the name from before the file exists until the write ends.
inline int create_temp_beside(const std::string& path, std::string& tmp_path,
                              std::optional<TempRegistration>& registration) {
  static std::atomic<unsigned long> counter{0};
  install_cleanup_handlers();
  for (int attempt = 0; attempt < 100; ++attempt) {
    tmp_path = temp_name(path, counter.fetch_add(1));
    registration.reset();
    registration.emplace(tmp_path);
    const int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST) {
      const int err = errno;
      registration.reset();
      throw_write_error(path, "cannot create temporary file", err);
    }
  }
  registration.reset();
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

/// Calls writer(file) on a temporary file beside path, then atomically replaces path with it.
/// writer may throw; the exception propagates after the temporary file is removed and the old
/// target, if any, is left as it was. Errors from std::fwrite inside writer need not be checked
/// there: the stream's error flag is checked afterwards.
inline void write_file_atomic(const std::string& path,
                              const std::function<void(std::FILE*)>& writer) {
  std::string tmp_path;
  std::optional<detail::TempRegistration> registration;
  const int fd = detail::create_temp_beside(path, tmp_path, registration);
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

/// Atomically replaces path with the given bytes.
inline void write_file_atomic(const std::string& path, std::span<const std::byte> bytes) {
  write_file_atomic(path, [&](std::FILE* file) {
    if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), file);
  });
}

/// Removes what interrupted writes of `path` left behind: the files "PATH.tmp.PID.N"
/// whose process PID no longer exists and that nobody has written to for `min_age`. The age
/// guards against a writer this process cannot see (another PID namespace, or another host on a
/// shared file system), which would not pause that long. Temporary files of other targets and
/// of live processes are left alone. Returns the paths removed; a folder that cannot be listed
/// gives none.
inline std::vector<std::string> remove_stale_temporaries(
    const std::string& path, std::chrono::seconds min_age = std::chrono::minutes(10)) {
  namespace fs = std::filesystem;
  std::vector<std::string> removed;
  const fs::path target(path);
  const std::string prefix = target.filename().string() + ".tmp.";
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  const auto is_number = [](const std::string& s) {
    return !s.empty() && s.size() <= 18 && s.find_first_not_of("0123456789") == std::string::npos;
  };
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());  // "<pid>.<n>"
    const auto dot = rest.find('.');
    if (dot == std::string::npos || !is_number(rest.substr(0, dot)) ||
        !is_number(rest.substr(dot + 1)))
      continue;
    const long long pid = std::stoll(rest.substr(0, dot));
    if (pid <= 0 || pid > 0x7fffffff || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (EPERM too)
    const std::string file = (dir / name).string();
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    const auto age =
        std::chrono::system_clock::now() - std::chrono::system_clock::from_time_t(st.st_mtime);
    if (age < min_age) continue;
    if (::unlink(file.c_str()) == 0) removed.push_back(file);
  }
  return removed;
}

}  // namespace ember::io
