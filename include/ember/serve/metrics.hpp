#pragma once
// The inference server's metrics, written in Prometheus' text exposition format (version
// 0.0.4) at /metrics:
//   ember_requests_total{model,version,code}      requests answered, by model and HTTP status
//   ember_request_failures_total{model,version,code}  those with a status >= 400
//   ember_queue_duration_seconds{model,version}   histogram: time waiting in the queue
//   ember_compute_duration_seconds{model,version} histogram: the batch's forward
//   ember_request_duration_seconds{model,version} histogram: decode to encoded response
//   ember_batch_size{model,version}                histogram: images per forward
//   ember_queue_depth{model,version}               gauge: requests waiting now
//   ember_inflight_requests                        gauge: HTTP requests being handled
// Requests that name no model (health, metadata) count under model="".

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace ember::serve {

/// A Prometheus histogram: cumulative counts per upper bound, a sum and a count.
class Histogram {
 public:
  /// `bounds` are the upper bounds, increasing; +Inf is added.
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)),
                                                   counts_(bounds_.size() + 1, 0) {}
  /// Records one observation.
  void observe(double v) {
    std::lock_guard lock(mutex_);
    std::size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    ++counts_[i];
    sum_ += v;
    ++count_;
  }
  /// The number of observations.
  [[nodiscard]] std::uint64_t count() const {
    std::lock_guard lock(mutex_);
    return count_;
  }
  /// Appends the histogram's lines for metric `name` with `labels` ("model=\"a\"", no braces).
  void write(std::string& out, const std::string& name, const std::string& labels) const {
    std::lock_guard lock(mutex_);
    std::uint64_t cumulative = 0;
    char buf[64];
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += counts_[i];
      if (i < bounds_.size()) {
        std::snprintf(buf, sizeof buf, "%g", bounds_[i]);
      } else {
        std::snprintf(buf, sizeof buf, "+Inf");
      }
      out += name + "_bucket{" + labels + (labels.empty() ? "" : ",") + "le=\"" + buf + "\"} " +
             std::to_string(cumulative) + "\n";
    }
    std::snprintf(buf, sizeof buf, "%.9g", sum_);
    out += name + "_sum{" + labels + "} " + buf + "\n";
    out += name + "_count{" + labels + "} " + std::to_string(count_) + "\n";
  }

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<std::uint64_t> counts_;
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

/// Latency buckets in seconds, 50 us to 10 s.
inline std::vector<double> latency_buckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,    0.5,    1,       2.5,    5,     10};
}

/// Batch-size buckets: powers of two to 4096.
inline std::vector<double> batch_buckets() {
  std::vector<double> b;
  for (double v = 1; v <= 4096; v *= 2) b.push_back(v);
  return b;
}

/// One model version's histograms and queue depth.
struct ModelMetrics {
  Histogram queue{latency_buckets()};        ///< seconds in the queue
  Histogram compute{latency_buckets()};      ///< seconds of the batch's forward
  Histogram total{latency_buckets()};        ///< seconds from request to response
  Histogram batch_size{batch_buckets()};     ///< images per forward
  std::atomic<std::int64_t> queue_depth{0};  ///< requests waiting
};

/// Escapes a label value (backslash, quote, newline), as the exposition format asks.
inline std::string label_value(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

/// The server's metrics: request counters by (model, version, code), and one ModelMetrics per
/// model version, kept after an unload so that counters never go back.
class Metrics {
 public:
  /// Counts one answered request.
  void count_request(const std::string& model, const std::string& version, int code) {
    std::lock_guard lock(mutex_);
    ++requests_[{model, version, code}];
  }
  /// The ModelMetrics of a model version, made on first use.
  std::shared_ptr<ModelMetrics> model(const std::string& name, const std::string& version) {
    std::lock_guard lock(mutex_);
    auto& m = models_[{name, version}];
    if (!m) m = std::make_shared<ModelMetrics>();
    return m;
  }
  /// The number of requests answered with `code` for a model ("" for none).
  [[nodiscard]] std::uint64_t requests(const std::string& model, const std::string& version,
                                       int code) const {
    std::lock_guard lock(mutex_);
    const auto it = requests_.find({model, version, code});
    return it == requests_.end() ? 0 : it->second;
  }
  std::atomic<std::int64_t> inflight{0};  ///< HTTP requests being handled

  /// Everything, in Prometheus' text format.
  [[nodiscard]] std::string text() const {
    std::lock_guard lock(mutex_);
    std::string out;
    const auto labels = [](const std::string& m, const std::string& v) {
      return "model=\"" + label_value(m) + "\",version=\"" + label_value(v) + "\"";
    };
    out += "# HELP ember_requests_total Requests answered, by model, version and HTTP status.\n"
           "# TYPE ember_requests_total counter\n";
    for (const auto& [k, n] : requests_)
      out += "ember_requests_total{" + labels(std::get<0>(k), std::get<1>(k)) + ",code=\"" +
             std::to_string(std::get<2>(k)) + "\"} " + std::to_string(n) + "\n";
    out += "# HELP ember_request_failures_total Requests answered with a status of 400 or more.\n"
           "# TYPE ember_request_failures_total counter\n";
    for (const auto& [k, n] : requests_)
      if (std::get<2>(k) >= 400)
        out += "ember_request_failures_total{" + labels(std::get<0>(k), std::get<1>(k)) +
               ",code=\"" + std::to_string(std::get<2>(k)) + "\"} " + std::to_string(n) + "\n";
    const auto histograms = [&](const char* name, const char* help,
                                Histogram ModelMetrics::*member) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " histogram\n";
      for (const auto& [k, m] : models_) (m.get()->*member).write(out, name, labels(k.first, k.second));
    };
    histograms("ember_queue_duration_seconds", "Time a request waited in the batching queue.",
               &ModelMetrics::queue);
    histograms("ember_compute_duration_seconds", "Time of the forward pass of the request's batch.",
               &ModelMetrics::compute);
    histograms("ember_request_duration_seconds",
               "Time from the request's decoding to its encoded response.", &ModelMetrics::total);
    histograms("ember_batch_size", "Images per forward pass.", &ModelMetrics::batch_size);
    out += "# HELP ember_queue_depth Requests waiting in the batching queue.\n"
           "# TYPE ember_queue_depth gauge\n";
    for (const auto& [k, m] : models_)
      out += "ember_queue_depth{" + labels(k.first, k.second) + "} " +
             std::to_string(m->queue_depth.load()) + "\n";
    out += "# HELP ember_inflight_requests HTTP requests being handled.\n"
           "# TYPE ember_inflight_requests gauge\nember_inflight_requests " +
           std::to_string(inflight.load()) + "\n";
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::tuple<std::string, std::string, int>, std::uint64_t> requests_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<ModelMetrics>> models_;
};

}  // namespace ember::serve
