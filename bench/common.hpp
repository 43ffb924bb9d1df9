#pragma once
// What every CPU benchmark program here shares: the timing settings and the thread flag.

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>

namespace ember::bench {

// Wall-clock milliseconds, a warm-up, and the median (with mean, stddev, cv) of 5 repetitions
// of at least 0.5 s each: the machine is shared and noisy.
inline void configure(benchmark::internal::Benchmark* b) {
  b->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinWarmUpTime(0.2)
      ->MinTime(0.5)
      ->Repetitions(5)
      ->ReportAggregatesOnly(true);
}

// The thread count from --threads=N (removed from argv) or EMBER_THREADS; default 2.
inline int take_threads_flag(int& argc, char** argv) {
  int threads = 2;
  if (const char* env = std::getenv("EMBER_THREADS"); env != nullptr && *env != '\0') threads = std::atoi(env);
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0)
      threads = std::atoi(argv[i] + 10);
    else
      argv[out++] = argv[i];
  }
  argc = out;
  return threads;
}

}  // namespace ember::bench
