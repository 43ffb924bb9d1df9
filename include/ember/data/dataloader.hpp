#pragma once
// DataLoader: batches of normalised float images (B, 1, H, W) and int64 labels (B) from a
// Subset, with a seeded shuffle per epoch, drop_last, and the next batch prepared on a
// background thread while the current one trains.

#include <cmath>
#include <cstdint>
#include <future>
#include <numeric>
#include <optional>
#include <utility>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/mnist.hpp"
#include "ember/data/normalize.hpp"

namespace ember::data {

struct Batch {
  Tensor<float> images;         // (B, 1, H, W), (pixel / 255 - mean) / std
  Tensor<std::int64_t> labels;  // (B)
};

struct DataLoaderOptions {
  std::int64_t batch_size = 64;
  bool shuffle = false;
  bool drop_last = false;
  std::uint64_t seed = 0;  // of the shuffle's own generator
  float mean = 0.5f, std = 0.5f;
  bool prefetch = true;  // prepare the next batch on a background thread
};

namespace detail {
inline void check_loader_options(const DataLoaderOptions& o, const char* loader) {
  EMBER_CHECK(o.batch_size > 0, loader, ": batch_size must be positive, got ", o.batch_size);
  EMBER_CHECK(std::isfinite(o.mean), loader, ": mean must be finite, got ", o.mean);
  EMBER_CHECK(std::isfinite(o.std) && o.std > 0, loader, ": std must be positive, got ", o.std);
}
}  // namespace detail

// Validates its Subset and the dataset behind it (Subset::validate) when made and at every
// epoch, so that a hand-built dataset cannot make it read past a buffer.
class DataLoader {
 public:
  DataLoader(Subset data, DataLoaderOptions options)
      : data_(std::move(data)), options_(options), gen_(options.seed) {
    detail::check_loader_options(options, "DataLoader");
    data_.validate("DataLoader");
  }

  [[nodiscard]] std::int64_t size() const { return data_.size(); }
  [[nodiscard]] std::int64_t num_classes() const { return data_.dataset->num_classes; }
  [[nodiscard]] std::int64_t num_batches() const {
    const std::int64_t n = data_.size(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }
  [[nodiscard]] const DataLoaderOptions& options() const { return options_; }
  // The shuffle generator, whose offset is part of a resumable training state.
  [[nodiscard]] Generator& generator() { return gen_; }

  // One pass over the data: for (const Batch& b : loader.epoch()) ...
  class Epoch {
   public:
    class Iterator {
     public:
      using value_type = Batch;
      using difference_type = std::ptrdiff_t;
      Iterator(Epoch* e, std::int64_t i) : e_(e), i_(i) {}
      const Batch& operator*() const { return e_->current_; }
      Iterator& operator++() {
        ++i_;
        e_->advance(i_);
        return *this;
      }
      bool operator==(const Iterator& o) const { return i_ == o.i_; }

     private:
      Epoch* e_;
      std::int64_t i_;
    };

    Epoch(const DataLoader* loader, std::vector<std::int64_t> order)
        : loader_(loader), order_(std::move(order)) {}
    Epoch(const Epoch&) = delete;
    Epoch& operator=(const Epoch&) = delete;
    ~Epoch() {
      if (next_.valid()) next_.wait();
    }
    Iterator begin() {
      advance(0);
      return {this, 0};
    }
    Iterator end() { return {this, loader_->num_batches()}; }

   private:
    void advance(std::int64_t i) {
      const std::int64_t n = loader_->num_batches();
      if (i >= n) return;
      current_ = next_.valid() ? next_.get() : loader_->make_batch(order_, i);
      if (loader_->options_.prefetch && i + 1 < n)
        next_ = std::async(std::launch::async, [this, i] { return loader_->make_batch(order_, i + 1); });
    }
    const DataLoader* loader_;
    std::vector<std::int64_t> order_;
    Batch current_;
    std::future<Batch> next_;
  };

  // Starts an epoch: draws this epoch's order from the shuffle generator when shuffling.
  // Checks the dataset again (it is shared: its owner may have changed it since).
  [[nodiscard]] Epoch epoch() {
    data_.validate("DataLoader");
    std::vector<std::int64_t> order =
        options_.shuffle ? random_permutation(data_.size(), gen_) : std::vector<std::int64_t>{};
    if (!options_.shuffle) {
      order.resize(static_cast<std::size_t>(data_.size()));
      std::iota(order.begin(), order.end(), 0);
    }
    return Epoch(this, std::move(order));
  }

  // Batch i of an epoch with the given order (positions into the subset).
  [[nodiscard]] Batch make_batch(const std::vector<std::int64_t>& order, std::int64_t i) const {
    const std::int64_t n = data_.size(), bs = options_.batch_size;
    EMBER_CHECK(i >= 0 && i < num_batches(), "DataLoader: batch ", i, " is out of range for ",
                num_batches(), " batches");
    EMBER_CHECK(static_cast<std::int64_t>(order.size()) == n, "DataLoader: the order holds ",
                order.size(), " positions for a subset of ", n, " samples");
    const std::int64_t start = i * bs, count = std::min(bs, n - start);
    for (std::int64_t k = start; k < start + count; ++k) {
      const std::int64_t pos = order[static_cast<std::size_t>(k)];
      EMBER_CHECK(pos >= 0 && pos < n, "DataLoader: order[", k, "] = ", pos,
                  " is out of range for a subset of ", n, " samples");
    }
    const ImageDataset& d = *data_.dataset;
    const std::int64_t h = d.images.size(1), w = d.images.size(2), hw = h * w;
    Batch b{Tensor<float>::empty({count, 1, h, w}), Tensor<std::int64_t>::empty({count})};
    const PixelNormalization norm = PixelNormalization::from(options_.mean, options_.std);
    const std::uint8_t* pixels = d.images.data();
    float* out = b.images.data();
    for (std::int64_t k = 0; k < count; ++k) {
      const std::int64_t s = data_.indices[static_cast<std::size_t>(order[static_cast<std::size_t>(start + k)])];
      const std::uint8_t* src = pixels + s * hw;
      for (std::int64_t j = 0; j < hw; ++j) out[k * hw + j] = norm(src[j]);
      b.labels.data()[k] = d.labels.data()[s];
    }
    return b;
  }

 private:
  Subset data_;
  DataLoaderOptions options_;
  Generator gen_;
};

}  // namespace ember::data
