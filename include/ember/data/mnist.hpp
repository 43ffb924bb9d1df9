#pragma once
// Image-classification datasets: pixels kept as uint8 (N, H, W) with int64 labels (N),
// MNIST's four IDX files, and random_split for a validation set.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/idx.hpp"

namespace ember::data {

/// Raw images and labels; normalisation happens when a batch is made. The element types are
/// fixed by the fields; a hand-built dataset's shapes, layout and labels are checked by
/// validate(), which every consumer (DataLoader, DeviceDataLoader) calls before it reads them.
struct ImageDataset {
  Tensor<std::uint8_t> images;  ///< (N, H, W), contiguous, on the CPU
  Tensor<std::int64_t> labels;  ///< (N), contiguous, on the CPU, each in [0, num_classes)
  /// Labels are in [0, num_classes).
  std::int64_t num_classes = 10;

  /// N (0 without labels).
  [[nodiscard]] std::int64_t size() const { return labels.defined() ? labels.size(0) : 0; }

  /// Throws an ember::Error, "<consumer>: ImageDataset: <what is wrong>", unless the dataset is
  /// as the fields above say. O(N): it reads every label.
  void validate(const std::string& consumer) const {
    const std::string where = consumer + ": ImageDataset: ";
    check_tensor(images, "images", "(N, H, W)", 3, where);
    check_tensor(labels, "labels", "(N)", 1, where);
    EMBER_CHECK(images.size(0) == labels.size(0), where, "images hold ", images.size(0),
                " samples of ", images.size(1), "x", images.size(2), " but labels hold ",
                labels.size(0));
    EMBER_CHECK(num_classes > 0, where, "num_classes must be positive, got ", num_classes);
    const std::int64_t* l = labels.data();
    for (std::int64_t i = 0; i < labels.numel(); ++i)
      EMBER_CHECK(l[i] >= 0 && l[i] < num_classes, where, "label ", l[i], " at index ", i,
                  " is out of range for num_classes ", num_classes);
  }

 private:
  template <class T>
  static void check_tensor(const Tensor<T>& t, const char* name, const char* layout,
                           std::int64_t rank, const std::string& where) {
    EMBER_CHECK(t.defined(), where, name, " is undefined (a default-constructed tensor)");
    EMBER_CHECK(t.dim() == rank, where, name, " must be ", layout, ", got shape ",
                shape_str(t.shape()));
    EMBER_CHECK(t.device().is_cpu(), where, name, " must be on the CPU, got ", t.device().str());
    EMBER_CHECK(t.is_contiguous(), where, name, " must be contiguous (use .contiguous()), got ",
                "shape ", shape_str(t.shape()), " with strides ", shape_str(t.strides()));
  }
};

/// A view of some of a dataset's samples, by index.
struct Subset {
  /// The dataset the indices point into.
  std::shared_ptr<const ImageDataset> dataset;
  /// Sample numbers, each in [0, dataset->size()).
  std::vector<std::int64_t> indices;

  /// The number of indices.
  [[nodiscard]] std::int64_t size() const { return static_cast<std::int64_t>(indices.size()); }
  /// Every sample of `d`, in order.
  [[nodiscard]] static Subset all(std::shared_ptr<const ImageDataset> d) {
    EMBER_CHECK(d != nullptr, "Subset::all: no dataset (a null pointer)");
    std::vector<std::int64_t> idx(static_cast<std::size_t>(d->size()));
    std::iota(idx.begin(), idx.end(), 0);
    return {std::move(d), std::move(idx)};
  }

  /// Throws an ember::Error naming `consumer` unless the dataset is there and valid
  /// (ImageDataset::validate) and every index names one of its samples. O(N + size()).
  void validate(const std::string& consumer) const {
    EMBER_CHECK(dataset != nullptr, consumer, ": Subset: no dataset (a null pointer)");
    dataset->validate(consumer);
    const std::int64_t n = dataset->size();
    for (std::size_t k = 0; k < indices.size(); ++k)
      EMBER_CHECK(indices[k] >= 0 && indices[k] < n, consumer, ": Subset: index ", indices[k],
                  " at position ", k, " is out of range for a dataset of ", n, " samples");
  }
};

/// Fisher-Yates shuffle of [0, n) drawn from `gen`.
inline std::vector<std::int64_t> random_permutation(std::int64_t n, Generator& gen) {
  EMBER_CHECK(n >= 0, "random_permutation: negative length ", n);
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  for (std::int64_t i = n - 1; i > 0; --i)
    std::swap(p[static_cast<std::size_t>(i)],
              p[static_cast<std::size_t>(gen.below(static_cast<std::uint64_t>(i) + 1))]);
  return p;
}

/// Splits a dataset into disjoint random subsets of the given lengths (which must add up to
/// its size), like torch.utils.data.random_split.
inline std::vector<Subset> random_split(const std::shared_ptr<const ImageDataset>& d,
                                        const std::vector<std::int64_t>& lengths,
                                        Generator& gen) {
  EMBER_CHECK(d != nullptr, "random_split: no dataset (a null pointer)");
  std::int64_t total = 0;
  for (auto l : lengths) {
    EMBER_CHECK(l >= 0, "random_split: negative length ", l);
    EMBER_CHECK(l <= d->size() - total, "random_split: lengths add up to more than the ",
                d->size(), " samples of the dataset");
    total += l;
  }
  EMBER_CHECK(total == d->size(), "random_split: lengths add up to ", total,
              " but the dataset has ", d->size(), " samples");
  const auto perm = random_permutation(d->size(), gen);
  std::vector<Subset> out;
  std::int64_t start = 0;
  for (auto l : lengths) {
    out.push_back({d, std::vector<std::int64_t>(perm.begin() + start, perm.begin() + start + l)});
    start += l;
  }
  return out;
}

namespace detail {
// dir/name, or dir/name.gz when only the compressed file exists.
inline std::string find_idx_file(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  for (const std::string& candidate : {name + ".gz", name}) {
    const fs::path p = fs::path(dir) / candidate;
    if (fs::exists(p)) return p.string();
  }
  throw Error("MNIST file '" + name + "(.gz)' not found in '" + dir +
              "' (download it with scripts/get_mnist.sh, or pass --data DIR / set EMBER_DATA)");
}
}  // namespace detail

/// Reads an images IDX file (N, H, W) and a labels IDX file (N) into an ImageDataset,
/// checking that they agree and that every label is below num_classes.
inline ImageDataset load_idx_dataset(const std::string& images_path,
                                     const std::string& labels_path,
                                     std::int64_t num_classes = 10) {
  // The images are inflated straight into the dataset's tensor (one copy of 47 MB, not two).
  Tensor<std::uint8_t> images = read_idx_u8_tensor(images_path);
  std::vector<std::int64_t> ldims;
  std::vector<std::uint8_t> labels = read_idx_u8(labels_path, ldims);
  EMBER_CHECK(images.dim() == 3, "IDX file '", images_path,
              "': expected 3 dimensions (N, H, W), got ", images.dim());
  EMBER_CHECK(ldims.size() == 1, "IDX file '", labels_path, "': expected 1 dimension (N), got ",
              ldims.size());
  EMBER_CHECK(images.size(0) == ldims[0], "'", images_path, "' holds ", images.size(0),
              " images but '", labels_path, "' holds ", ldims[0], " labels");
  ImageDataset d;
  d.num_classes = num_classes;
  d.images = std::move(images);
  d.labels = Tensor<std::int64_t>::empty({ldims[0]});
  for (std::size_t i = 0; i < labels.size(); ++i) {
    EMBER_CHECK(labels[i] < num_classes, "IDX file '", labels_path, "': label ", int(labels[i]),
                " at index ", i, " is not below ", num_classes);
    d.labels.data()[i] = labels[i];
  }
  return d;
}

/// Which of MNIST's files: the 60,000 training images or the 10,000 test images.
enum class Split { train, test };

/// MNIST (or Fashion-MNIST, same files) from `dir`: train-images-idx3-ubyte(.gz) and friends.
inline std::shared_ptr<const ImageDataset> load_mnist(const std::string& dir, Split split) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  const std::string images = detail::find_idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels = detail::find_idx_file(dir, prefix + "-labels-idx1-ubyte");
  return std::make_shared<const ImageDataset>(load_idx_dataset(images, labels));
}

}  // namespace ember::data
