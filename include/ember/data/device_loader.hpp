#pragma once
// DeviceDataLoader: a DataLoader whose data lives on a CUDA device. The subset's pixels (uint8)
// and labels are uploaded once; each epoch's order is drawn on the host from the same shuffle
// generator as DataLoader (so both loaders visit samples in the same order for the same seed)
// and uploaded (8 bytes per sample); each batch is gathered and normalised on the device by one
// kernel, with the same float arithmetic as DataLoader::make_batch. The subset and its dataset
// are validated (Subset::validate) before anything touches the device.

#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "ember/backend/dispatch.hpp"
#include "ember/backend/device_backend.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/dataloader.hpp"
#include "ember/data/mnist.hpp"

namespace ember::op {
/// out (batch, pixels) = (images[indices[b]] / 255 - mean) / std, from uint8 images on the device
struct GatherNormalize {
  static constexpr const char* name = "DeviceDataLoader gather";
  template <class T>
  using sig = void(const std::uint8_t* images, const std::int64_t* indices, std::int64_t batch,
                   std::int64_t pixels, float mean, float std, float* out);
};
/// out[b] = labels[indices[b]]
struct GatherLabels {
  static constexpr const char* name = "DeviceDataLoader labels";
  template <class T>
  using sig = void(const std::int64_t* labels, const std::int64_t* indices, std::int64_t batch,
                   std::int64_t* out);
};
}  // namespace ember::op

namespace ember::data {

/// A DataLoader whose data live on a device: the images are copied there once and every batch is
/// gathered and normalised there (no host transfer per step); no transforms.
class DeviceDataLoader {
 public:
  /// Copies the subset's images and labels to `device` (a CUDA device; throws otherwise); options
  /// as DataLoader's, mean and std normalising.
  DeviceDataLoader(const Subset& data, DataLoaderOptions options, Device device)
      : options_(options), gen_(options.seed), device_(device) {
    // The data first: these checks need no device.
    detail::check_loader_options(options, "DeviceDataLoader");
    data.validate("DeviceDataLoader");
    EMBER_CHECK(device.is_cuda(), "DeviceDataLoader: ", device.str(),
                " is not a CUDA device (use DataLoader on the CPU)");
    const ImageDataset& d = *data.dataset;
    num_classes_ = d.num_classes;
    n_ = data.size();
    h_ = d.images.size(1);
    w_ = d.images.size(2);
    const std::int64_t hw = h_ * w_;
    // The subset's samples in subset order, so that device positions are subset positions.
    auto pixels = Tensor<std::uint8_t>::empty({n_, hw});
    auto labels = Tensor<std::int64_t>::empty({n_});
    const std::uint8_t* src = d.images.data();
    for (std::int64_t k = 0; k < n_; ++k) {
      const std::int64_t s = data.indices[static_cast<std::size_t>(k)];
      std::copy_n(src + s * hw, hw, pixels.data() + k * hw);
      labels.data()[k] = d.labels.data()[s];
    }
    pixels_ = pixels.to(device);
    labels_ = labels.to(device);
    order_ = Tensor<std::int64_t>::empty({n_}, device);
    start_epoch_order(false);
  }

  /// The number of samples.
  [[nodiscard]] std::int64_t size() const { return n_; }
  /// Batches per epoch.
  [[nodiscard]] std::int64_t num_batches() const {
    const std::int64_t b = options_.batch_size;
    return options_.drop_last ? n_ / b : (n_ + b - 1) / b;
  }
  /// The dataset's number of classes.
  [[nodiscard]] std::int64_t num_classes() const { return num_classes_; }
  /// The number of samples in batch i.
  [[nodiscard]] std::int64_t batch_count(std::int64_t i) const {
    EMBER_CHECK(i >= 0 && i < num_batches(), "DeviceDataLoader: batch ", i,
                " is out of range for ", num_batches(), " batches");
    return std::min(options_.batch_size, n_ - i * options_.batch_size);
  }
  /// The settings it was made with.
  [[nodiscard]] const DataLoaderOptions& options() const { return options_; }
  /// The loader's generator (its shuffle), part of a resumable training state.
  [[nodiscard]] Generator& generator() { return gen_; }
  /// Where the batches are.
  [[nodiscard]] Device device() const { return device_; }

  /// Starts an epoch: draws and uploads its order (the identity when not shuffling).
  void start_epoch() { start_epoch_order(options_.shuffle); }

  /// Batch i of the current epoch, in new tensors.
  [[nodiscard]] Batch batch(std::int64_t i) const {
    const std::int64_t count = batch_count(i);
    Batch b{Tensor<float>::empty({count, 1, h_, w_}, device_),
            Tensor<std::int64_t>::empty({count}, device_)};
    batch_into(i, b.images, b.labels);
    return b;
  }

  /// Batch i written into existing tensors of the batch's shape (a captured CUDA graph reads
  /// its input from fixed addresses).
  void batch_into(std::int64_t i, const Tensor<float>& images, const Tensor<std::int64_t>& labels) const {
    const std::int64_t count = batch_count(i);
    EMBER_CHECK(images.defined() && labels.defined(),
                "DeviceDataLoader: batch_into needs defined tensors");
    EMBER_CHECK(images.is_contiguous() && images.numel() == count * h_ * w_ &&
                    images.device() == device_ && labels.is_contiguous() && labels.numel() == count &&
                    labels.device() == device_,
                "DeviceDataLoader: batch_into needs contiguous tensors on ", device_.str(),
                " with room for ", count, " samples");
    images.bump_version("DeviceDataLoader.batch_into");  // both are overwritten in place
    labels.bump_version("DeviceDataLoader.batch_into");
    const std::int64_t* idx = order_.data() + i * options_.batch_size;
    backend::cuda<op::GatherNormalize, float>(device_.index, pixels_.data(), idx, count, h_ * w_,
                                              options_.mean, options_.std, images.data());
    backend::cuda<op::GatherLabels, float>(device_.index, labels_.data(), idx, count, labels.data());
  }

 private:
  void start_epoch_order(bool shuffle) {
    std::vector<std::int64_t> order = shuffle ? random_permutation(n_, gen_) : std::vector<std::int64_t>{};
    if (!shuffle) {
      order.resize(static_cast<std::size_t>(n_));
      std::iota(order.begin(), order.end(), 0);
    }
    if (n_ > 0)
      backend::cuda_runtime().copy_to_device(device_.index, order_.data(), order.data(),
                                             order.size() * sizeof(std::int64_t));
  }

  DataLoaderOptions options_;
  Generator gen_;
  Device device_;
  std::int64_t n_ = 0, h_ = 0, w_ = 0, num_classes_ = 0;
  Tensor<std::uint8_t> pixels_;
  Tensor<std::int64_t> labels_, order_;
};

}  // namespace ember::data
