#pragma once
// Datasets as torch.utils.data's map-style Dataset: a size and an example per index, which a
// DataLoader (dataloader.hpp) batches. Users implement size() and get(i):
//
//   struct Squares : ember::data::Dataset {
//     std::int64_t size() const override { return 100; }
//     Example get(std::int64_t i) const override {
//       return {Tensor<float>::full({1, 8, 8}, float(i) / 100), i % 10};
//     }
//     std::int64_t num_classes() const override { return 10; }
//   };
//
// Here too: MNIST and FashionMNIST (IDX files, as torchvision.datasets.MNIST and
// FashionMNIST), TensorDataset (images in one tensor), DatasetSubset and random_split over any
// dataset, and TransformedDataset, which applies a transform (transforms.hpp) to another
// dataset's images. ImageFolder, which reads PNG files, is in image_folder.hpp (it links
// libpng).
//
// Randomness: the DataLoader calls fetch(i, rng) with sample i's own stream; a dataset whose
// transforms are random draws from it (and says so by random()). get(i) is fetch(i) with the
// stream of key 0.

#include <array>
#include <concepts>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/mnist.hpp"
#include "ember/data/transforms.hpp"

namespace ember::data {

/// One sample: an image (C, H, W), uint8 or float, and its class.
struct Example {
  /// (C, H, W), uint8 pixels or float.
  Image image;
  /// The class, in [0, num_classes()).
  std::int64_t label = 0;
};

/// torch.utils.data.Dataset (map-style): implement size() and get(i); a DataLoader batches it.
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// The number of samples (PyTorch's __len__).
  [[nodiscard]] virtual std::int64_t size() const = 0;
  /// Sample `index`, in [0, size()). Called from the DataLoader's worker threads at once: it
  /// must not change the dataset (or must lock what it changes).
  [[nodiscard]] virtual Example get(std::int64_t index) const = 0;

  /// What the DataLoader calls: sample `index` with `rng`, its own random stream, for random
  /// transforms. A dataset that draws nothing need not override it.
  [[nodiscard]] virtual Example fetch(std::int64_t index, RandomStream& rng) const {
    (void)rng;
    return get(index);
  }
  /// Whether fetch() draws from its stream (the DataLoader then draws a key per epoch).
  [[nodiscard]] virtual bool random() const { return false; }
  /// The number of classes, labels being in [0, num_classes()); 0 when unknown.
  [[nodiscard]] virtual std::int64_t num_classes() const { return 0; }
  /// Sample `index` in words, for error messages: a file's path where there is one.
  [[nodiscard]] virtual std::string describe(std::int64_t index) const {
    return "sample " + std::to_string(index);
  }
  /// Throws an ember::Error, naming `consumer`, unless the dataset holds together. The
  /// DataLoader calls it when made and at each epoch.
  virtual void validate(const std::string& consumer) const { (void)consumer; }
};

namespace detail {
// An Error's message without the "ember: " that Error puts before it, to wrap it in another.
[[nodiscard]] inline std::string error_text(const Error& e) {
  const std::string what = e.what();
  return what.rfind("ember: ", 0) == 0 ? what.substr(7) : what;
}
inline void check_index(std::int64_t index, std::int64_t size, const char* what) {
  EMBER_CHECK(index >= 0 && index < size, what, ": index ", index,
              " is out of range for a dataset of ", size, " samples");
}
}  // namespace detail

/// Another dataset's images through a transform.
class TransformedDataset : public Dataset {
 public:
  /// `base`'s samples with `transform` applied to each image; throws for a null base.
  TransformedDataset(std::shared_ptr<const Dataset> base, transforms::Transform transform)
      : base_(std::move(base)), transform_(std::move(transform)) {
    EMBER_CHECK(base_ != nullptr, "TransformedDataset: no dataset (a null pointer)");
  }
  /// The base's size.
  [[nodiscard]] std::int64_t size() const override { return base_->size(); }
  [[nodiscard]] Example get(std::int64_t index) const override {
    RandomStream rng(0, static_cast<std::uint64_t>(index));
    return fetch(index, rng);
  }
  [[nodiscard]] Example fetch(std::int64_t index, RandomStream& rng) const override {
    Example e = base_->fetch(index, rng);
    e.image = transform_(std::move(e.image), rng);
    return e;
  }
  [[nodiscard]] bool random() const override { return base_->random() || transform_.random(); }
  [[nodiscard]] std::int64_t num_classes() const override { return base_->num_classes(); }
  [[nodiscard]] std::string describe(std::int64_t index) const override {
    return base_->describe(index);
  }
  void validate(const std::string& consumer) const override { base_->validate(consumer); }

 private:
  std::shared_ptr<const Dataset> base_;
  transforms::Transform transform_;
};

/// Some of another dataset's samples, by index (torch.utils.data.Subset).
class DatasetSubset : public Dataset {
 public:
  /// Samples indices[0], indices[1], ... of `base`; throws for a null base or an index out of
  /// range.
  DatasetSubset(std::shared_ptr<const Dataset> base, std::vector<std::int64_t> indices)
      : base_(std::move(base)), indices_(std::move(indices)) {
    EMBER_CHECK(base_ != nullptr, "DatasetSubset: no dataset (a null pointer)");
    for (std::size_t k = 0; k < indices_.size(); ++k)
      EMBER_CHECK(indices_[k] >= 0 && indices_[k] < base_->size(), "DatasetSubset: index ",
                  indices_[k], " at position ", k, " is out of range for a dataset of ",
                  base_->size(), " samples");
  }
  /// The number of indices.
  [[nodiscard]] std::int64_t size() const override {
    return static_cast<std::int64_t>(indices_.size());
  }
  [[nodiscard]] Example get(std::int64_t index) const override {
    return base_->get(base_index(index));
  }
  /// The sample keeps the stream the DataLoader gave its position here.
  [[nodiscard]] Example fetch(std::int64_t index, RandomStream& rng) const override {
    return base_->fetch(base_index(index), rng);
  }
  [[nodiscard]] bool random() const override { return base_->random(); }
  [[nodiscard]] std::int64_t num_classes() const override { return base_->num_classes(); }
  [[nodiscard]] std::string describe(std::int64_t index) const override {
    return base_->describe(base_index(index));
  }
  void validate(const std::string& consumer) const override { base_->validate(consumer); }
  /// The base's indices, in order.
  [[nodiscard]] const std::vector<std::int64_t>& indices() const { return indices_; }

 private:
  [[nodiscard]] std::int64_t base_index(std::int64_t index) const {
    detail::check_index(index, size(), "DatasetSubset");
    return indices_[static_cast<std::size_t>(index)];
  }
  std::shared_ptr<const Dataset> base_;
  std::vector<std::int64_t> indices_;
};

/// Splits a dataset into disjoint random subsets of the given lengths (adding up to its size),
/// as torch.utils.data.random_split; the same permutation as random_split over an
/// ImageDataset with the same generator.
template <class D>
  requires std::derived_from<D, Dataset>
std::vector<std::shared_ptr<const Dataset>> random_split(const std::shared_ptr<D>& d,
                                                         const std::vector<std::int64_t>& lengths,
                                                         Generator& gen) {
  EMBER_CHECK(d != nullptr, "random_split: no dataset (a null pointer)");
  std::int64_t total = 0;
  for (auto l : lengths) {
    EMBER_CHECK(l >= 0, "random_split: negative length ", l);
    total += l;
  }
  EMBER_CHECK(total == d->size(), "random_split: lengths add up to ", total,
              " but the dataset has ", d->size(), " samples");
  const auto perm = random_permutation(d->size(), gen);
  std::vector<std::shared_ptr<const Dataset>> out;
  std::int64_t start = 0;
  for (auto l : lengths) {
    out.push_back(std::make_shared<const DatasetSubset>(
        d, std::vector<std::int64_t>(perm.begin() + start, perm.begin() + start + l)));
    start += l;
  }
  return out;
}

/// Images held in one tensor (N, C, H, W), uint8 or float, with labels (N), as
/// torch.utils.data.TensorDataset; sample i is a copy of image i through `transform`.
class TensorDataset : public Dataset {
 public:
  /// images (N, C, H, W) uint8 or float and labels (N) int64, contiguous on the CPU (throws
  /// otherwise); `transform` applies to each sample.
  TensorDataset(Image images, Tensor<std::int64_t> labels, transforms::Transform transform = {},
                std::int64_t num_classes = 0)
      : images_(std::move(images)), labels_(std::move(labels)), transform_(std::move(transform)),
        num_classes_(num_classes) {
    const Shape s = image_shape(images_);
    EMBER_CHECK(s.size() == 4, "TensorDataset: images must be (N, C, H, W), got shape ",
                shape_str(s));
    std::visit([](const auto& t) {
      EMBER_CHECK(t.device().is_cpu() && t.is_contiguous(),
                  "TensorDataset: images must be contiguous on the CPU");
    }, images_);
    EMBER_CHECK(labels_.defined() && labels_.dim() == 1 && labels_.size(0) == s[0] &&
                    labels_.device().is_cpu() && labels_.is_contiguous(),
                "TensorDataset: labels must be (N) = (", s[0], ") contiguous on the CPU, got ",
                labels_.defined() ? shape_str(labels_.shape()) : std::string("undefined"));
  }
  /// N.
  [[nodiscard]] std::int64_t size() const override { return labels_.size(0); }
  [[nodiscard]] Example get(std::int64_t index) const override {
    RandomStream rng(0, static_cast<std::uint64_t>(index));
    return fetch(index, rng);
  }
  [[nodiscard]] Example fetch(std::int64_t index, RandomStream& rng) const override {
    detail::check_index(index, size(), "TensorDataset");
    Image img = std::visit([&](const auto& t) -> Image {
      using T = typename std::decay_t<decltype(t)>::value_type;
      const std::int64_t per = t.size(1) * t.size(2) * t.size(3);
      Tensor<T> out = Tensor<T>::empty({t.size(1), t.size(2), t.size(3)});
      std::copy_n(t.data() + index * per, per, out.data());
      return out;
    }, images_);
    return {transform_(std::move(img), rng), labels_.data()[index]};
  }
  [[nodiscard]] bool random() const override { return transform_.random(); }
  [[nodiscard]] std::int64_t num_classes() const override { return num_classes_; }

 private:
  Image images_;
  Tensor<std::int64_t> labels_;
  transforms::Transform transform_;
  std::int64_t num_classes_;
};

/// MNIST from its four IDX files (load_mnist): images (1, 28, 28) uint8, as torchvision's
/// MNIST gives PIL images; add transforms::ToTensor() (and Normalize) for the DataLoader.
class MNIST : public Dataset {
 public:
  /// Reads the split's IDX files under `root` (load_mnist); throws ember::Error naming a missing or
  /// bad file.
  MNIST(const std::string& root, Split split, transforms::Transform transform = {})
      : MNIST(load_mnist(root, split), std::move(transform)) {}
  /// Images already loaded (one copy shared by, say, a training and a validation view with
  /// different transforms).
  MNIST(std::shared_ptr<const ImageDataset> data, transforms::Transform transform = {})
      : data_(std::move(data)), transform_(std::move(transform)) {
    EMBER_CHECK(data_ != nullptr, "MNIST: no data (a null pointer)");
    data_->validate("MNIST");
  }

  /// 60,000 (train) or 10,000 (test) for the standard files.
  [[nodiscard]] std::int64_t size() const override { return data_->size(); }
  [[nodiscard]] Example get(std::int64_t index) const override {
    RandomStream rng(0, static_cast<std::uint64_t>(index));
    return fetch(index, rng);
  }
  [[nodiscard]] Example fetch(std::int64_t index, RandomStream& rng) const override {
    detail::check_index(index, size(), name());
    const std::int64_t h = data_->images.size(1), w = data_->images.size(2);
    Tensor<std::uint8_t> img = Tensor<std::uint8_t>::empty({1, h, w});
    std::copy_n(data_->images.data() + index * h * w, h * w, img.data());
    return {transform_(std::move(img), rng), data_->labels.data()[index]};
  }
  [[nodiscard]] bool random() const override { return transform_.random(); }
  [[nodiscard]] std::int64_t num_classes() const override { return data_->num_classes; }
  [[nodiscard]] std::string describe(std::int64_t index) const override {
    return std::string(name()) + " image " + std::to_string(index);
  }
  /// The images and labels.
  [[nodiscard]] const ImageDataset& data() const { return *data_; }
  /// The images and labels, shared (to make another view with other transforms).
  [[nodiscard]] std::shared_ptr<const ImageDataset> shared_data() const { return data_; }
  /// "MNIST", used in messages.
  [[nodiscard]] virtual const char* name() const { return "MNIST"; }
  /// The class names, as torchvision's MNIST.classes.
  static constexpr std::array<const char*, 10> classes = {
      "0 - zero", "1 - one", "2 - two",   "3 - three", "4 - four",
      "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"};

 private:
  std::shared_ptr<const ImageDataset> data_;
  transforms::Transform transform_;
};

/// Fashion-MNIST (Zalando): MNIST's format and sizes, ten kinds of clothing. Debian's
/// dataset-fashion-mnist installs it in default_root.
class FashionMNIST : public MNIST {
 public:
  /// Where Debian's dataset-fashion-mnist installs the IDX files.
  static constexpr const char* default_root = "/usr/share/datasets/fashion-mnist";
  /// The class names, as torchvision's FashionMNIST.classes.
  static constexpr std::array<const char*, 10> classes = {
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

  /// Reads the split's IDX files under `root` (default_root for Debian's package); a missing file's
  /// error names the package.
  FashionMNIST(const std::string& root, Split split, transforms::Transform transform = {})
      : MNIST(load(root, split), std::move(transform)) {}
  /// Images already loaded (load()), with its own transform.
  FashionMNIST(std::shared_ptr<const ImageDataset> data, transforms::Transform transform = {})
      : MNIST(std::move(data), std::move(transform)) {}
  /// "FashionMNIST", used in messages.
  [[nodiscard]] const char* name() const override { return "FashionMNIST"; }

  /// The images and labels of a split, read once (to share between views).
  [[nodiscard]] static std::shared_ptr<const ImageDataset> load(const std::string& root,
                                                                Split split) {
    try {
      return load_mnist(root, split);
    } catch (const Error& e) {
      const std::string what = detail::error_text(e);
      if (what.find("not found") == std::string::npos) throw;
      throw Error("FashionMNIST: " + what.substr(0, what.find(" (download")) +
                  " (Debian's dataset-fashion-mnist installs it in " + default_root + ")");
    }
  }
};

}  // namespace ember::data
