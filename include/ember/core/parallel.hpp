#pragma once
// A small persistent thread pool and parallel_for. The calling thread takes part in the
// work; a parallel_for inside another one runs serially, so kernels may nest freely.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ember {

class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool* pool = new ThreadPool();  // leaked on purpose: workers outlive statics
    return *pool;
  }

  [[nodiscard]] int num_threads() const { return num_threads_.load(); }

  // Sets how many threads (the caller included) parallel_for uses. n <= 0 means all cores.
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

  // Runs f(begin, end) on chunks of [begin, end) of at least `grain` items.
  void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain,
                    const std::function<void(std::int64_t, std::int64_t)>& f) {
    const std::int64_t n = end - begin;
    if (n <= 0) return;
    const int threads = num_threads_.load();
    const std::int64_t max_chunks = std::max<std::int64_t>(1, n / std::max<std::int64_t>(1, grain));
    const int chunks = static_cast<int>(std::min<std::int64_t>(threads, max_chunks));
    if (chunks <= 1 || in_parallel_region()) {
      f(begin, end);
      return;
    }
    std::unique_lock run_lock(run_mutex_);  // one parallel_for at a time uses the workers
    Job job{&f, begin, n, chunks, {0}, {0}, nullptr, {}};
    {
      std::lock_guard lock(mutex_);
      job_ = &job;
      ++generation_;
    }
    cv_.notify_all();
    run_chunks(job);
    {
      std::unique_lock lock(mutex_);
      // Wait for every chunk and for every worker to have left the job, which lives on
      // this stack frame.
      done_cv_.wait(lock, [&] { return job.finished.load() == job.chunks && active_ == 0; });
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
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return generation_ != seen && job_ != nullptr; });
        seen = generation_;
        if (id >= num_threads_.load() - 1) continue;  // this worker is not in use now
        job = job_;
        ++active_;
      }
      run_chunks(*job);
      {
        std::lock_guard lock(mutex_);
        --active_;
        done_cv_.notify_all();
      }
    }
  }

  std::atomic<int> num_threads_{1};
  std::vector<std::thread> workers_;
  std::mutex run_mutex_, mutex_;
  std::condition_variable cv_, done_cv_;
  Job* job_ = nullptr;
  std::uint64_t generation_ = 0;
  int active_ = 0;
};

inline void set_num_threads(int n) { ThreadPool::instance().set_num_threads(n); }
[[nodiscard]] inline int get_num_threads() { return ThreadPool::instance().num_threads(); }

template <class F>
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain, F&& f) {
  const std::function<void(std::int64_t, std::int64_t)> fn = std::forward<F>(f);
  ThreadPool::instance().parallel_for(begin, end, grain, fn);
}

}  // namespace ember
