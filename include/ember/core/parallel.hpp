#pragma once
// A small persistent thread pool and parallel_for. The calling thread takes part in the
// work; a parallel_for inside another one runs serially, so kernels may nest freely.
//
// Waking a thread that sleeps on a condition variable costs tens of microseconds (a futex
// wake and a reschedule, more in a virtual machine): as much as a whole elementwise kernel on
// a few megabytes. So a worker that finishes a job spins on the job counter for a while
// (kSpinMicros) before it sleeps, as OpenMP runtimes do, and the caller spins for the last
// chunks before it sleeps: back-to-back kernels (a forward and its backward, a training step)
// find their workers awake. A pool with nothing to do for longer than that sleeps and costs
// nothing.
//
// The chunks of a parallel_for depend on the range and the grain only, never on the thread
// count: threads take whole chunks in any order, and a serial run (one thread, or nested)
// goes through the very same chunks in order. A kernel that combines per-chunk results in
// chunk order, or whose rounding depends on where a chunk starts (SIMD remainders, GEMM
// blocks), therefore gives the same bits at any thread count.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "ember/core/simd.hpp"  // <immintrin.h> (_mm_pause), included there only

namespace ember {

namespace detail {
// One step of a spin-wait: tells the core it spins (frees the pipeline for its sibling
// hyper-thread and saves power).
inline void spin_pause() {
#if EMBER_X86
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins until done() or until `micros` microseconds have passed; returns done().
template <class Done>
bool spin_until(Done&& done, std::int64_t micros) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(micros);
  for (int i = 1;; ++i) {
    if (done()) return true;
    if (i % 64 == 0 && std::chrono::steady_clock::now() >= until) return done();
    spin_pause();
  }
}
}  // namespace detail

/// At most this many chunks per parallel_for: enough to balance up to a few dozen threads,
/// few enough that taking a chunk costs nothing next to running it.
inline constexpr std::int64_t kParallelForMaxChunks = 64;

/// The number of chunks parallel_for cuts n items into with this grain: n / grain, at least 1
/// and at most kParallelForMaxChunks. Chunk c is [n * c / chunks, n * (c + 1) / chunks).
[[nodiscard]] inline std::int64_t parallel_for_chunk_count(std::int64_t n, std::int64_t grain) {
  return std::clamp<std::int64_t>(n / std::max<std::int64_t>(1, grain), 1, kParallelForMaxChunks);
}

/// The process-wide pool of worker threads behind parallel_for (the calling thread works too).
class ThreadPool {
 public:
  /// How long an idle worker, or a caller waiting for the last chunks, spins before it sleeps.
  static constexpr std::int64_t kSpinMicros = 200;

  /// The process-wide pool (never destroyed: workers outlive static destructors).
  static ThreadPool& instance() {
    static ThreadPool* pool = new ThreadPool();  // leaked on purpose: workers outlive statics
    return *pool;
  }

  /// Threads parallel_for uses, the caller included.
  [[nodiscard]] int num_threads() const { return num_threads_.load(); }

  /// Sets how many threads (the caller included) parallel_for uses. n <= 0 means all cores.
  void set_num_threads(int n) {
    if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    std::lock_guard run_lock(run_mutex_);
    while (static_cast<int>(workers_.size()) < n - 1) {
      const int id = static_cast<int>(workers_.size());
      workers_.emplace_back([this, id] { worker_loop(id); });
      workers_.back().detach();
    }
    num_threads_ = n;
  }

  /// Runs f(lo, hi) once for each chunk of [begin, end) (see parallel_for_chunk_count), chunks
  /// of at least `grain` items unless the range is shorter.
  void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain,
                    const std::function<void(std::int64_t, std::int64_t)>& f) {
    const std::int64_t n = end - begin;
    if (n <= 0) return;
    const int chunks = static_cast<int>(parallel_for_chunk_count(n, grain));
    if (chunks == 1) {
      f(begin, end);
      return;
    }
    if (num_threads_.load() == 1 || in_parallel_region()) {
      for (int c = 0; c < chunks; ++c) f(begin + n * c / chunks, begin + n * (c + 1) / chunks);
      return;
    }
    std::unique_lock run_lock(run_mutex_);  // one parallel_for at a time uses the workers
    Job job{&f, begin, n, chunks, {0}, {0}, nullptr, {}};
    {
      std::lock_guard lock(mutex_);
      job_ = &job;
      generation_.fetch_add(1);
    }
    cv_.notify_all();
    run_chunks(job);
    // Spin for the chunks still running, then sleep if they take longer.
    detail::spin_until([&] { return job.finished.load() == job.chunks && active_.load() == 0; },
                       kSpinMicros);
    {
      std::unique_lock lock(mutex_);
      // Wait for every chunk and for every worker to have left the job, which lives on
      // this stack frame.
      done_cv_.wait(lock, [&] { return job.finished.load() == job.chunks && active_.load() == 0; });
      job_ = nullptr;
    }
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  struct Job {
    const std::function<void(std::int64_t, std::int64_t)>* f;
    std::int64_t begin, n;
    int chunks;
    std::atomic<int> next, finished;
    std::exception_ptr error;
    std::mutex error_mutex;
  };

  ThreadPool() { set_num_threads(0); }

  static bool& in_parallel_region() {
    thread_local bool flag = false;
    return flag;
  }

  void run_chunks(Job& job) {
    in_parallel_region() = true;
    for (int c; (c = job.next.fetch_add(1)) < job.chunks;) {
      const std::int64_t lo = job.begin + job.n * c / job.chunks;
      const std::int64_t hi = job.begin + job.n * (c + 1) / job.chunks;
      try {
        (*job.f)(lo, hi);
      } catch (...) {
        std::lock_guard lock(job.error_mutex);
        if (!job.error) job.error = std::current_exception();
      }
      if (job.finished.fetch_add(1) + 1 == job.chunks) {
        std::lock_guard lock(mutex_);
        done_cv_.notify_all();
      }
    }
    in_parallel_region() = false;
  }

  void worker_loop(int id) {
    std::uint64_t seen = 0;
    for (;;) {
      Job* job = nullptr;
      // Awake and spinning, a worker sees a new job without a wake-up.
      detail::spin_until([&] { return generation_.load() != seen; }, kSpinMicros);
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return generation_.load() != seen && job_ != nullptr; });
        seen = generation_.load();
        if (id >= num_threads_.load() - 1) continue;  // this worker is not in use now
        job = job_;
        active_.fetch_add(1);
      }
      run_chunks(*job);
      {
        std::lock_guard lock(mutex_);
        active_.fetch_sub(1);
        done_cv_.notify_all();
      }
    }
  }

  std::atomic<int> num_threads_{1};
  std::vector<std::thread> workers_;
  std::mutex run_mutex_, mutex_;
  std::condition_variable cv_, done_cv_;
  Job* job_ = nullptr;
  std::atomic<std::uint64_t> generation_{0};  // written under mutex_, read by spinning workers
  std::atomic<int> active_{0};                // workers inside a job; written under mutex_
};

/// Threads ember's CPU ops use, the caller included (torch.set_num_threads); n <= 0 means all
/// cores.
inline void set_num_threads(int n) { ThreadPool::instance().set_num_threads(n); }
/// Threads ember's CPU ops use (torch.get_num_threads).
[[nodiscard]] inline int get_num_threads() { return ThreadPool::instance().num_threads(); }

/// Runs f(lo, hi) over chunks of [begin, end) on the thread pool (chunks of at least `grain`
/// items), returning when all are done; an exception in f is rethrown here.
template <class F>
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain, F&& f) {
  const std::function<void(std::int64_t, std::int64_t)> fn = std::forward<F>(f);
  ThreadPool::instance().parallel_for(begin, end, grain, fn);
}

}  // namespace ember
