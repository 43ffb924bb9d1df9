#pragma once
// --plots DIR for the training examples: checks the folder before the work, and after it runs
// scripts/plot_metrics.py (matplotlib) over the run's metrics folder, which draws the loss and
// accuracy curves and the confusion matrix as PNG and SVG into DIR.
//
// The interpreter is $EMBER_PLOT_PYTHON, else /usr/bin/python3 (Debian's python3-matplotlib);
// the script is $EMBER_PLOT_SCRIPT, else scripts/plot_metrics.py of the source tree. A plot
// that fails (no matplotlib, no python) is reported on stderr with the command to rerun, and
// is not an error of the run: the metrics are written already, and the program goes on.

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "cli.hpp"
#include "ember/core/error.hpp"
#include "ember/io/metrics.hpp"

extern char** environ;  // NOLINT: POSIX's, for posix_spawn

namespace ember::examples {

// --flag DIR: io::MetricsWriter on DIR (created if missing); an error names the flag.
inline io::MetricsWriter open_metrics(const std::string& flag, const std::string& dir,
                                      bool append = false) {
  try {
    return io::MetricsWriter(dir, {.append = append});
  } catch (const Error& e) {
    std::string what = e.what();
    if (what.rfind("ember: ", 0) == 0) what = what.substr(7);
    throw Error("--" + flag + ": " + what);
  }
}

// --flag DIR: creates the folder (and its parents) and checks that files can be made in it.
inline void prepare_output_dir(const std::string& flag, const std::string& dir) {
  namespace fs = std::filesystem;
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  EMBER_CHECK(fs::is_directory(dir), "--", flag, ": cannot create the folder '", dir, "'",
              ec ? ": " + ec.message() : std::string(": a file of that name exists"));
  check_output_path(flag, (fs::path(dir) / "probe").string());
}

// The plot script's interpreter and path (see the top of this file).
inline std::string plot_python() {
  const char* env = std::getenv("EMBER_PLOT_PYTHON");
  return env != nullptr && *env != '\0' ? env : "/usr/bin/python3";
}
inline std::string plot_script() {
  if (const char* env = std::getenv("EMBER_PLOT_SCRIPT"); env != nullptr && *env != '\0')
    return env;
#ifdef EMBER_SOURCE_DIR
  return std::string(EMBER_SOURCE_DIR) + "/scripts/plot_metrics.py";
#else
  return "scripts/plot_metrics.py";
#endif
}

// Runs the plot script: PYTHON plot_metrics.py METRICS_DIR --out PLOTS_DIR EXTRA...; returns
// whether it succeeded. On failure, says so on stderr (as `program`), with the command.
inline bool render_plots(const std::string& program, const std::string& metrics_dir,
                         const std::string& plots_dir,
                         const std::vector<std::string>& extra_args = {}) {
  std::vector<std::string> args{plot_python(), plot_script(), metrics_dir, "--out", plots_dir};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::string command;
  for (const std::string& a : args) command += (command.empty() ? "'" : " '") + a + "'";
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = 0;
  const int err = ::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  int status = 0;
  std::string why;
  if (err != 0) {
    why = "cannot run " + args[0] + ": " + std::generic_category().message(err);
  } else {
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
    why = WIFEXITED(status) ? "the plot script exited with status " +
                                  std::to_string(WEXITSTATUS(status))
                            : std::string("the plot script was killed");
  }
  std::fprintf(stderr,
               "%s: --plots: %s; no plots drawn (the metrics are in '%s'). Needs matplotlib "
               "(Debian: python3-matplotlib; another Python: $EMBER_PLOT_PYTHON). To draw them "
               "later:\n  %s\n",
               program.c_str(), why.c_str(), metrics_dir.c_str(), command.c_str());
  return false;
}

}  // namespace ember::examples
