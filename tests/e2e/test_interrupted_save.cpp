// Tests for the signal path of ember/io/atomic_file.hpp: SIGINT, SIGTERM or SIGHUP in the
// middle of write_file_atomic ends the process as the signal asks and leaves no
// "<target>.tmp.<pid>.<n>" behind (each in a forked child, which never returns into Catch);
// a program's own handler or an ignored signal is left alone; remove_temporary_files() works
// from a handler; and remove_stale_temporaries() removes only the leftovers of this target
// whose process is gone.

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ember/io/atomic_file.hpp"
#include "support/tmp.hpp"

namespace {

namespace fs = std::filesystem;

std::vector<std::string> temporaries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos)
      out.push_back(e.path().filename().string());
  return out;
}

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs child() in a forked process and returns its wait status.
template <class F>
int in_child(F child) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    try {
      child();
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return status;
}

// A megabyte, then `signal_now`, then another megabyte.
void write_and_signal(const std::string& path, int sig) {
  ember::io::write_file_atomic(path, [&](std::FILE* f) {
    const std::string block(1 << 20, 'x');
    std::fwrite(block.data(), 1, block.size(), f);
    std::fflush(f);
    ::raise(sig);
    std::fwrite(block.data(), 1, block.size(), f);
  });
}

}  // namespace

TEST_CASE("a signal during write_file_atomic leaves no temporary file", "[io][atomic][signal]") {
  const int sig = GENERATE(SIGINT, SIGTERM, SIGHUP);
  INFO("signal " << sig);
  const fs::path dir = ember::test::tmp_dir("interrupted_save", true);
  const fs::path target = dir / "model.safetensors";
  write_text(target, "old");
  const int status = in_child([&] {
    ::signal(sig, SIG_DFL);  // as in a program; Catch has its own handlers
    write_and_signal(target.string(), sig);
    ::_exit(2);  // the signal did not end the process
  });
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == sig);  // ended by the signal itself, as without the handler
  CHECK(temporaries(dir).empty());
  CHECK(read_text(target) == "old");
}

TEST_CASE("a signal from outside, while the writer waits, leaves no temporary file",
          "[io][atomic][signal]") {
  const fs::path dir = ember::test::tmp_dir("interrupted_save_kill", true);
  const fs::path target = dir / "run.ckpt";
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::signal(SIGTERM, SIG_DFL);
    try {
      ember::io::write_file_atomic(target.string(), [&](std::FILE* f) {
        std::fputs("partial", f);
        std::fflush(f);
        if (::write(ready[1], "r", 1) != 1) ::_exit(4);
        for (;;) ::pause();
      });
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(2);
  }
  char byte = 0;
  REQUIRE(::read(ready[0], &byte, 1) == 1);
  ::close(ready[0]);
  ::close(ready[1]);
  CHECK(temporaries(dir).size() == 1);  // the write is under way
  REQUIRE(::kill(pid, SIGTERM) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
  CHECK(temporaries(dir).empty());
  CHECK_FALSE(fs::exists(target));
}

TEST_CASE("a program's own signal handling is left alone", "[io][atomic][signal]") {
  const fs::path dir = ember::test::tmp_dir("interrupted_save_own", true);
  const fs::path target = dir / "out.bin";
  SECTION("an ignored SIGINT does not stop the write") {
    const int status = in_child([&] {
      ::signal(SIGINT, SIG_IGN);
      write_and_signal(target.string(), SIGINT);
    });
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(fs::file_size(target) == 2u << 20);
  }
  SECTION("a handler of the program's own runs, and may call remove_temporary_files()") {
    const int status = in_child([&] {
      struct sigaction action {};
      action.sa_handler = [](int) { ::_exit(ember::io::remove_temporary_files() == 1 ? 7 : 8); };
      sigemptyset(&action.sa_mask);
      ::sigaction(SIGINT, &action, nullptr);
      write_and_signal(target.string(), SIGINT);
    });
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 7);  // its handler, which found one file to remove
    CHECK_FALSE(fs::exists(target));
  }
  CHECK(temporaries(dir).empty());
}

TEST_CASE("remove_stale_temporaries removes only this target's, of processes gone",
          "[io][atomic]") {
  const fs::path dir = ember::test::tmp_dir("stale_temporaries", true);
  const std::string target = (dir / "run.ckpt").string();
  const int dead = [] {  // the id of a process that has ended
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return static_cast<int>(pid);
  }();
  const auto make = [&](const std::string& name, bool old) {
    const fs::path p = dir / name;
    write_text(p, "partial");
    if (old) {
      const timespec times[2] = {{0, UTIME_OMIT}, {::time(nullptr) - 3600, 0}};
      REQUIRE(::utimensat(AT_FDCWD, p.c_str(), times, 0) == 0);
    }
  };
  const std::string stale = "run.ckpt.tmp." + std::to_string(dead) + ".3";
  make(stale, true);
  const std::vector<std::string> kept = {
      "run.ckpt.tmp." + std::to_string(dead) + ".4",        // written to a moment ago
      "run.ckpt.tmp." + std::to_string(::getpid()) + ".0",  // this process's
      "run.ckpt.tmp.1.0",                                   // init's: alive
      "other.ckpt.tmp." + std::to_string(dead) + ".0",      // another target
      "run.ckpt.tmp.x.0",
      "run.ckpt.tmp." + std::to_string(dead),  // not the pattern
      "run.ckpt.probe"};
  for (const std::string& name : kept) make(name, name != kept[0]);

  const std::vector<std::string> removed = ember::io::remove_stale_temporaries(target);
  REQUIRE(removed.size() == 1);
  CHECK(fs::path(removed[0]).filename() == stale);
  CHECK_FALSE(fs::exists(dir / stale));
  for (const std::string& name : kept) CHECK(fs::exists(dir / name));
  // With no minimum age, the fresh one of the dead process goes too.
  CHECK(ember::io::remove_stale_temporaries(target, std::chrono::seconds(0)).size() == 1);
  CHECK_FALSE(fs::exists(dir / kept[0]));
  // A folder that cannot be listed gives nothing.
  CHECK(ember::io::remove_stale_temporaries((dir / "missing" / "x").string()).empty());
}
