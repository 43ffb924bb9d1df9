#pragma once
// Dynamic batching for one served model version, as Triton's dynamic batcher: requests wait in
// a bounded queue, and an inference thread runs together the requests at its front, up to
// max_batch_size images, as soon as the batch is full or the oldest request has waited
// max_queue_delay_us. A request that finds the queue full is refused at once (the server
// answers 503) instead of growing memory; a request whose timeout passes while it waits is
// answered 504 and never runs. instance_count threads take batches in turn.
//
// Stopping (an unload, or the server's shutdown) refuses new requests and runs every queued one
// before the threads end.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/serve/metrics.hpp"
#include "ember/serve/model_config.hpp"

namespace ember::serve {

/// One request's images in the queue, and then its result.
class BatchJob {
 public:
  using Clock = std::chrono::steady_clock;  ///< the clock of enqueue times and deadlines
  /// x: (n, 1, 28, 28) normalised; deadline: when waiting in the queue ends in a timeout.
  BatchJob(Tensor<float> x, Clock::time_point deadline)
      : x_(std::move(x)), n_(x_.size(0)), enqueued_(Clock::now()), deadline_(deadline) {}

  /// Waits for the result; returns 0 and fills log_probs (n x 10) on success, else an HTTP
  /// status (504 timeout, 500 a failed forward) with error().
  int wait() {
    std::unique_lock lock(mutex_);
    if (deadline_ != Clock::time_point::max()) {
      if (!cv_.wait_until(lock, deadline_, [&] { return done_; })) {
        int expected = kQueued;
        if (state_.compare_exchange_strong(expected, kTimedOut)) {
          status_ = 504;
          error_ = timeout_message();
          done_ = true;
        }
      }
    }
    cv_.wait(lock, [&] { return done_; });
    return status_;
  }
  /// The log-probabilities, n x 10, after wait() returned 0.
  [[nodiscard]] const std::vector<float>& log_probs() const { return log_probs_; }
  /// The error after wait() returned a status.
  [[nodiscard]] const std::string& error() const { return error_; }
  /// Images in the request.
  [[nodiscard]] std::int64_t images() const { return n_; }
  /// Seconds in the queue, after success.
  double queue_seconds = 0;
  double compute_seconds = 0;  ///< seconds of the forward of its batch
  std::int64_t batch_images = 0;  ///< images in the forward this request ran in

 private:
  friend class Batcher;
  static constexpr int kQueued = 0, kTaken = 1, kTimedOut = 2;

  std::string timeout_message() const {
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(deadline_ - enqueued_).count();
    return ::ember::detail::concat("the request timed out after ", us,
                                   " microseconds waiting in the queue");
  }
  void finish(int status, std::string error) {
    {
      std::lock_guard lock(mutex_);
      status_ = status;
      error_ = std::move(error);
      done_ = true;
    }
    cv_.notify_all();
  }

  Tensor<float> x_;
  std::int64_t n_;
  Clock::time_point enqueued_, deadline_;
  std::atomic<int> state_{kQueued};  // who owns the job: the queue, a batch, or its timeout
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  int status_ = 0;
  std::string error_;
  std::vector<float> log_probs_;
};

/// The queue and inference threads of one model version.
class Batcher {
 public:
  using Clock = BatchJob::Clock;  ///< the clock of enqueue times and deadlines
  /// A model's forward: (N, 1, 28, 28) normalised -> (N, 10) log-probabilities.
  using Forward = std::function<Tensor<float>(const Tensor<float>&)>;

  /// Starts config.instance_count inference threads running `forward`.
  Batcher(Forward forward, const ModelConfig& config, std::shared_ptr<ModelMetrics> metrics)
      : forward_(std::move(forward)), config_(config), metrics_(std::move(metrics)) {
    for (int i = 0; i < config_.instance_count; ++i) threads_.emplace_back([this] { run(); });
  }
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;
  ~Batcher() { stop(); }

  /// Queues a job; false when the queue is full or the batcher stops (answer 503).
  bool submit(const std::shared_ptr<BatchJob>& job) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_ || static_cast<std::int64_t>(queue_.size()) >= config_.max_queue_size)
        return false;
      queue_.push_back(job);
      queued_images_ += job->images();
      metrics_->queue_depth = static_cast<std::int64_t>(queue_.size());
    }
    cv_.notify_all();  // the thread filling a batch, not only an idle one
    return true;
  }

  /// Refuses new jobs, runs the queued ones, and ends the threads. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_)
      if (t.joinable()) t.join();
  }

  /// The model's settings.
  [[nodiscard]] const ModelConfig& config() const { return config_; }

 private:
  // Removes the front job; the caller holds mutex_.
  std::shared_ptr<BatchJob> pop_front() {
    std::shared_ptr<BatchJob> job = std::move(queue_.front());
    queue_.pop_front();
    queued_images_ -= job->images();
    metrics_->queue_depth = static_cast<std::int64_t>(queue_.size());
    return job;
  }

  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
      // Wait for a full batch or for the oldest request's delay to pass.
      const auto until = queue_.front()->enqueued_ +
                         std::chrono::microseconds(config_.max_queue_delay_us);
      while (!stopping_ && !queue_.empty() && queued_images_ < config_.max_batch_size &&
             Clock::now() < until)
        cv_.wait_until(lock, until);
      // Take requests from the front while they fit; drop the ones that timed out.
      std::vector<std::shared_ptr<BatchJob>> batch;
      std::int64_t images = 0;
      const auto now = Clock::now();
      while (!queue_.empty() && images + queue_.front()->images() <= config_.max_batch_size) {
        std::shared_ptr<BatchJob> job = pop_front();
        int expected = BatchJob::kQueued;
        if (now >= job->deadline_) {
          if (job->state_.compare_exchange_strong(expected, BatchJob::kTimedOut))
            job->finish(504, job->timeout_message());
          continue;
        }
        if (!job->state_.compare_exchange_strong(expected, BatchJob::kTaken)) continue;
        images += job->images();
        batch.push_back(std::move(job));
      }
      if (batch.empty()) continue;
      lock.unlock();
      run_batch(batch, images);
      lock.lock();
    }
  }

  void run_batch(const std::vector<std::shared_ptr<BatchJob>>& batch, std::int64_t images) {
    constexpr std::int64_t pixels = kSide * kSide;
    const auto start = Clock::now();
    try {
      Tensor<float> x;
      if (batch.size() == 1) {
        x = batch[0]->x_;
      } else {
        x = Tensor<float>::empty({images, 1, kSide, kSide});
        float* p = x.data();
        for (const auto& job : batch) {
          std::memcpy(p, job->x_.data(), static_cast<std::size_t>(job->images() * pixels) * 4);
          p += job->images() * pixels;
        }
      }
      const Tensor<float> out = forward_(x).contiguous();
      EMBER_CHECK(out.dim() == 2 && out.size(0) == images && out.size(1) == kClasses,
                  "the model returned ", shape_str(out.shape()), " for a batch of ", images,
                  " images; expected [", images, ", ", kClasses, "]");
      const double compute = std::chrono::duration<double>(Clock::now() - start).count();
      metrics_->batch_size.observe(static_cast<double>(images));
      const float* lp = out.data();
      for (const auto& job : batch) {
        const auto count = static_cast<std::size_t>(job->images() * kClasses);
        job->log_probs_.assign(lp, lp + count);
        lp += count;
        job->queue_seconds = std::chrono::duration<double>(start - job->enqueued_).count();
        job->compute_seconds = compute;
        job->batch_images = images;
        metrics_->queue.observe(job->queue_seconds);
        metrics_->compute.observe(compute);
        job->finish(0, "");
      }
    } catch (const std::exception& e) {
      for (const auto& job : batch) job->finish(500, std::string("inference failed: ") + e.what());
    }
  }

  Forward forward_;
  ModelConfig config_;
  std::shared_ptr<ModelMetrics> metrics_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<BatchJob>> queue_;
  std::int64_t queued_images_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace ember::serve
