#pragma once
// DataLoader: batches (B, C, H, W) of float images and int64 labels (B) from any Dataset
// (dataset.hpp), as torch.utils.data.DataLoader: batch_size, a seeded shuffle per epoch,
// drop_last, num_workers worker threads keeping num_workers * prefetch_factor batches in
// flight. Or from a Subset of an ImageDataset (MNIST's pixels), normalised as
// (pixel / 255 - mean) / std, the loader mnist_train uses.
//
// Reproducibility: the order of an epoch is a permutation drawn from the loader's own
// Generator (options.seed; its offset is what a checkpoint keeps). For a dataset whose
// transforms are random, each epoch then draws one 64-bit key from the same generator, and
// sample i of that epoch is made with RandomStream(key, i): its augmentation is a function of
// the seed, the epoch and i alone, so the batches are the same bits for any num_workers.
//
//   auto train = std::make_shared<data::FashionMNIST>(data::FashionMNIST::default_root,
//       data::Split::train, transforms::Compose({transforms::RandomCrop(28, {.padding = 4}),
//           transforms::RandomHorizontalFlip(), transforms::ToTensor(),
//           transforms::Normalize({0.2860}, {0.3530})}));
//   data::DataLoader loader(train, {.batch_size = 128, .shuffle = true, .seed = 1,
//                                   .num_workers = 2});
//   for (const data::Batch& b : loader.epoch()) ...   // b.images (128, 1, 28, 28)

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/dataset.hpp"
#include "ember/data/mnist.hpp"
#include "ember/data/normalize.hpp"
#include "ember/data/sampler.hpp"

namespace ember::data {

/// One batch: images and their labels, on the CPU.
struct Batch {
  Tensor<float> images;         ///< (B, C, H, W)
  Tensor<std::int64_t> labels;  ///< (B)
};

/// torch.utils.data.DataLoader's settings.
struct DataLoaderOptions {
  /// Samples per batch (> 0).
  std::int64_t batch_size = 64;
  /// A new random order every epoch, drawn from the loader's generator.
  bool shuffle = false;
  /// Drop the last, smaller batch.
  bool drop_last = false;
  std::uint64_t seed = 0;  ///< of the loader's own generator: the shuffle and the epoch keys
  /// a Subset's normalisation (not used for a Dataset)
  /// @{
  float mean = 0.5f, std = 0.5f;
  /// @}
  /// With num_workers = 0: prepare the next batch on one background thread while the current
  /// one trains (false: every batch on the calling thread, as PyTorch's num_workers=0).
  bool prefetch = true;
  /// Worker threads making batches; each keeps up to prefetch_factor batches ahead.
  int num_workers = 0;
  /// Batches each worker keeps ready ahead of the training step (>= 1).
  int prefetch_factor = 2;
};

namespace detail {
inline void check_loader_options(const DataLoaderOptions& o, const char* loader) {
  EMBER_CHECK(o.batch_size > 0, loader, ": batch_size must be positive, got ", o.batch_size);
  EMBER_CHECK(std::isfinite(o.mean), loader, ": mean must be finite, got ", o.mean);
  EMBER_CHECK(std::isfinite(o.std) && o.std > 0, loader, ": std must be positive, got ", o.std);
  EMBER_CHECK(o.num_workers >= 0, loader, ": num_workers must not be negative, got ",
              o.num_workers);
  EMBER_CHECK(o.prefetch_factor >= 1, loader, ": prefetch_factor must be positive, got ",
              o.prefetch_factor);
}

// A Subset of an ImageDataset as a Dataset: image (1, H, W) normalised by PixelNormalization.
class NormalizedSubset : public Dataset {
 public:
  NormalizedSubset(Subset data, float mean, float std)
      : data_(std::move(data)), norm_(PixelNormalization::from(mean, std)) {}
  [[nodiscard]] std::int64_t size() const override { return data_.size(); }
  [[nodiscard]] Example get(std::int64_t index) const override {
    const ImageDataset& d = *data_.dataset;
    const std::int64_t h = d.images.size(1), w = d.images.size(2), hw = h * w;
    const std::int64_t s = data_.indices[static_cast<std::size_t>(index)];
    Tensor<float> img = Tensor<float>::empty({1, h, w});
    const std::uint8_t* src = d.images.data() + s * hw;
    float* out = img.data();
    for (std::int64_t j = 0; j < hw; ++j) out[j] = norm_(src[j]);
    return {std::move(img), d.labels.data()[s]};
  }
  [[nodiscard]] std::int64_t num_classes() const override { return data_.dataset->num_classes; }
  void validate(const std::string& consumer) const override { data_.validate(consumer); }
  [[nodiscard]] std::string describe(std::int64_t index) const override {
    return "image " + std::to_string(data_.indices[static_cast<std::size_t>(index)]);
  }

 private:
  Subset data_;
  PixelNormalization norm_;
};
}  // namespace detail

/// torch.utils.data.DataLoader over any Dataset: batches (B, C, H, W) float with int64 labels,
/// optionally shuffled, made by worker threads ahead of the training step; the same bits for any
/// number of workers.
class DataLoader {
 public:
  /// Over any dataset; its examples must be float images of one shape (C, H, W).
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
      : dataset_(std::move(dataset)), options_(options), gen_(options.seed) {
    detail::check_loader_options(options, "DataLoader");
    EMBER_CHECK(dataset_ != nullptr, "DataLoader: no dataset (a null pointer)");
    dataset_->validate("DataLoader");
  }
  /// Over a Subset of an ImageDataset, normalised by options.mean and options.std. Validates
  /// the subset and the dataset behind it (Subset::validate) when made and at every epoch, so
  /// that a hand-built dataset cannot make it read past a buffer.
  DataLoader(Subset data, DataLoaderOptions options) : options_(options), gen_(options.seed) {
    detail::check_loader_options(options, "DataLoader");
    data.validate("DataLoader");
    dataset_ = std::make_shared<const detail::NormalizedSubset>(std::move(data), options.mean,
                                                                options.std);
    what_ = "a subset";
  }

  /// The number of samples.
  [[nodiscard]] std::int64_t size() const { return dataset_->size(); }
  /// Reads the positions a sampler gives each epoch instead of its own order (PyTorch's
  /// sampler= argument, which excludes shuffle=True); null goes back to the loader's own order.
  void set_sampler(std::shared_ptr<const Sampler> sampler) {
    EMBER_CHECK(sampler == nullptr || !options_.shuffle,
                "DataLoader: sampler option is mutually exclusive with shuffle");
    sampler_ = std::move(sampler);
  }
  /// The sampler set by set_sampler, or null.
  [[nodiscard]] const std::shared_ptr<const Sampler>& sampler() const { return sampler_; }
  /// Samples per epoch: the sampler's size, or the dataset's.
  [[nodiscard]] std::int64_t epoch_size() const {
    return sampler_ != nullptr ? sampler_->size() : size();
  }
  /// The dataset's number of classes (0 when unknown).
  [[nodiscard]] std::int64_t num_classes() const { return dataset_->num_classes(); }
  /// Batches per epoch (len(loader)).
  [[nodiscard]] std::int64_t num_batches() const {
    const std::int64_t n = epoch_size(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }
  /// The settings it was made with.
  [[nodiscard]] const DataLoaderOptions& options() const { return options_; }
  /// The dataset it reads.
  [[nodiscard]] const Dataset& dataset() const { return *dataset_; }
  /// The loader's generator, whose offset is part of a resumable training state.
  [[nodiscard]] Generator& generator() { return gen_; }

  /// One pass over the data: for (const Batch& b : loader.epoch()) ...
  class Epoch {
   public:
    /// An input iterator over an epoch's batches.
    class Iterator {
     public:
      /// The batch type.
      using value_type = Batch;
      /// Iterator distance.
      using difference_type = std::ptrdiff_t;
      /// Batch i of epoch e.
      Iterator(Epoch* e, std::int64_t i) : e_(e), i_(i) {}
      /// The current batch; valid until the iterator advances.
      const Batch& operator*() const { return e_->current_; }
      /// Moves to the next batch (waits for a worker to finish it); rethrows a worker's error.
      Iterator& operator++() {
        ++i_;
        e_->advance(i_);
        return *this;
      }
      /// Same position.
      bool operator==(const Iterator& o) const { return i_ == o.i_; }

     private:
      Epoch* e_;
      std::int64_t i_;
    };

    /// The epoch's sample order and the key of its random streams; made by DataLoader::epoch().
    Epoch(const DataLoader* loader, std::vector<std::int64_t> order, std::uint64_t key)
        : loader_(loader), state_(std::make_unique<State>()) {
      state_->order = std::move(order);
      state_->key = key;
    }
    Epoch(const Epoch&) = delete;
    Epoch& operator=(const Epoch&) = delete;
    ~Epoch() { stop(); }

    /// Starts the workers and returns the first batch.
    Iterator begin() {
      start_workers();
      advance(0);
      return {this, 0};
    }
    /// Past the last batch.
    Iterator end() { return {this, loader_->num_batches()}; }

   private:
    // What the workers share with the consumer. A worker takes the next batch number while it
    // is less than `window` ahead of the one the consumer takes next, makes it unlocked, and
    // files it (or its exception) under its number; the consumer waits for its number.
    struct State {
      std::vector<std::int64_t> order;
      std::uint64_t key = 0;
      std::mutex mutex;
      std::condition_variable cv;
      std::int64_t next_to_make = 0, next_to_take = 0, window = 1;
      bool stopping = false;
      std::map<std::int64_t, std::pair<Batch, std::exception_ptr>> ready;
    };

    [[nodiscard]] int threads() const {
      const auto& o = loader_->options_;
      return o.num_workers > 0 ? o.num_workers : (o.prefetch ? 1 : 0);
    }

    void start_workers() {
      const int n = threads();
      if (n == 0 || !workers_.empty() || loader_->num_batches() == 0) return;
      const auto& o = loader_->options_;
      state_->window = o.num_workers > 0 ? std::int64_t{o.num_workers} * o.prefetch_factor : 1;
      for (int t = 0; t < n; ++t) workers_.emplace_back([this] { work(); });
    }

    void work() {
      State& s = *state_;
      const std::int64_t n = loader_->num_batches();
      for (;;) {
        std::int64_t i = 0;
        {
          std::unique_lock lock(s.mutex);
          s.cv.wait(lock, [&] {
            return s.stopping || s.next_to_make >= n || s.next_to_make < s.next_to_take + s.window;
          });
          if (s.stopping || s.next_to_make >= n) return;
          i = s.next_to_make++;
        }
        std::pair<Batch, std::exception_ptr> result;
        try {
          result.first = loader_->make_batch(s.order, i, s.key);
        } catch (...) {
          result.second = std::current_exception();
        }
        {
          std::lock_guard lock(s.mutex);
          s.ready.emplace(i, std::move(result));
        }
        s.cv.notify_all();
      }
    }

    void advance(std::int64_t i) {
      if (i >= loader_->num_batches()) return;
      if (workers_.empty()) {
        current_ = loader_->make_batch(state_->order, i, state_->key);
        return;
      }
      State& s = *state_;
      std::pair<Batch, std::exception_ptr> result;
      {
        std::unique_lock lock(s.mutex);
        s.next_to_take = i + 1;  // the window moves on: batch i is being taken
        s.cv.notify_all();
        s.cv.wait(lock, [&] { return s.ready.count(i) != 0; });
        auto it = s.ready.find(i);
        result = std::move(it->second);
        s.ready.erase(it);
      }
      if (result.second) std::rethrow_exception(result.second);
      current_ = std::move(result.first);
    }

    void stop() {
      if (workers_.empty()) return;
      {
        std::lock_guard lock(state_->mutex);
        state_->stopping = true;
      }
      state_->cv.notify_all();
      for (std::thread& t : workers_) t.join();
      workers_.clear();
    }

    const DataLoader* loader_;
    std::unique_ptr<State> state_;
    std::vector<std::thread> workers_;
    Batch current_;
  };

  /// Starts an epoch: draws this epoch's order from the generator when shuffling, then, for a
  /// random dataset, the epoch's key. Checks the dataset again (it is shared: its owner may have
  /// changed it since).
  [[nodiscard]] Epoch epoch() {
    dataset_->validate("DataLoader");
    std::vector<std::int64_t> order =
        options_.shuffle ? random_permutation(size(), gen_) : std::vector<std::int64_t>{};
    if (sampler_ != nullptr) {
      order = sampler_->indices();
    } else if (!options_.shuffle) {
      order.resize(static_cast<std::size_t>(size()));
      std::iota(order.begin(), order.end(), 0);
    }
    if (dataset_->random()) key_ = Philox::bits64(gen_.seed(), gen_.reserve(1));
    return Epoch(this, std::move(order), key_);
  }

  /// Batch i of an epoch with the given order (positions into the dataset), with the last
  /// epoch's key for random transforms.
  [[nodiscard]] Batch make_batch(const std::vector<std::int64_t>& order, std::int64_t i) const {
    return make_batch(order, i, key_);
  }

  /// Batch i, its samples made with RandomStream(key, index).
  [[nodiscard]] Batch make_batch(const std::vector<std::int64_t>& order, std::int64_t i,
                                 std::uint64_t key) const {
    const std::int64_t n = size(), bs = options_.batch_size, len = epoch_size();
    EMBER_CHECK(i >= 0 && i < num_batches(), "DataLoader: batch ", i, " is out of range for ",
                num_batches(), " batches");
    EMBER_CHECK(static_cast<std::int64_t>(order.size()) == len, "DataLoader: the order holds ",
                order.size(), " positions for ",
                sampler_ != nullptr ? "the sampler's epoch of " + std::to_string(len) +
                                          " positions over "
                                    : std::string(),
                what_, " of ", n, " samples");
    const std::int64_t start = i * bs, count = std::min(bs, len - start);
    for (std::int64_t k = start; k < start + count; ++k) {
      const std::int64_t pos = order[static_cast<std::size_t>(k)];
      EMBER_CHECK(pos >= 0 && pos < n, "DataLoader: order[", k, "] = ", pos,
                  " is out of range for ", what_, " of ", n, " samples");
    }
    Batch b;
    b.labels = Tensor<std::int64_t>::empty({count});
    Shape first_shape;
    std::int64_t first = -1, per = 0;
    for (std::int64_t k = 0; k < count; ++k) {
      const std::int64_t idx = order[static_cast<std::size_t>(start + k)];
      RandomStream rng(key, static_cast<std::uint64_t>(idx));
      Example e = dataset_->fetch(idx, rng);
      const auto* img = std::get_if<Tensor<float>>(&e.image);
      EMBER_CHECK(img != nullptr && img->defined(), "DataLoader: ", dataset_->describe(idx),
                  " is a ", image_str(e.image),
                  " image; batches hold float images (add transforms::ToTensor())");
      EMBER_CHECK(img->dim() == 3 && img->device().is_cpu(), "DataLoader: ",
                  dataset_->describe(idx), " is an image of shape ", shape_str(img->shape()),
                  " on ", img->device().str(), "; expected (C, H, W) on the CPU");
      const Tensor<float> x = img->is_contiguous() ? *img : img->contiguous();
      if (k == 0) {
        first_shape = x.shape();
        first = idx;
        per = x.numel();
        b.images = Tensor<float>::empty({count, x.size(0), x.size(1), x.size(2)});
      }
      EMBER_CHECK(x.shape() == first_shape, "DataLoader: ", dataset_->describe(idx), " is ",
                  shape_str(x.shape()), " but ", dataset_->describe(first),
                  " in the same batch is ", shape_str(first_shape),
                  ": batched images need one size (add Resize, CenterCrop or RandomCrop)");
      const std::int64_t classes = dataset_->num_classes();
      EMBER_CHECK(classes <= 0 || (e.label >= 0 && e.label < classes), "DataLoader: ",
                  dataset_->describe(idx), " has label ", e.label,
                  ", out of range for num_classes ", classes);
      std::copy_n(x.data(), per, b.images.data() + k * per);
      b.labels.data()[k] = e.label;
    }
    return b;
  }

 private:
  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
  Generator gen_;
  std::shared_ptr<const Sampler> sampler_;
  std::uint64_t key_ = 0;
  const char* what_ = "a dataset";
};

}  // namespace ember::data
