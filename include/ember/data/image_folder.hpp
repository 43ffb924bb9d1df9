#pragma once
// ImageFolder: a dataset of PNG images kept one folder per class, as
// torchvision.datasets.ImageFolder:
//
//   root/cat/001.png          classes: the sub-folders of root, sorted by name (byte order,
//   root/cat/kittens/002.png  as Python's sorted); class i is the i-th. Samples: every .png
//   root/dog/a.png            file (any case) under a class folder, sub-folders included,
//                             folders sorted by path and files by name within each.
//
// Images are read when asked for (get), as (channels, H, W) uint8: channels 3 (RGB, the
// default, as torchvision's loader converts to RGB) or 1 (grey, libpng's luminance; see
// png.hpp, which also says how alpha is composited). Images may differ in size: a transform
// (Resize, CenterCrop, RandomCrop) makes them one size for batching, or the DataLoader says
// which two files differ. Every error names the file or folder.
//
// Needs libpng: link ember::png.

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "ember/data/dataset.hpp"
#include "ember/data/png.hpp"
#include "ember/data/transforms.hpp"

namespace ember::data {

/// How ImageFolder reads its files.
struct ImageFolderOptions {
  int channels = 3;  ///< 3: RGB, 1: grey
  /// Applied to each image (uint8 (C, H, W) as read).
  transforms::Transform transform{};
  /// How PNG files are read (size limit, background for transparency).
  PngOptions png{};
};

/// torchvision.datasets.ImageFolder over PNG files: each sub-folder of root is a class (sorted
/// by name), its .png files (sub-folders included) the class's samples; any size, grey or RGB.
class ImageFolder : public Dataset {
 public:
  /// One file and its class.
  struct Sample {
    /// The file's path.
    std::string path;
    /// Its class index.
    std::int64_t label;
  };

  /// Lists the class folders and their PNG files (get() reads the images); throws ember::Error for
  /// channels other than 1 or 3, a root that is not a folder, no class folder, or a class without
  /// .png files.
  explicit ImageFolder(const std::string& root, ImageFolderOptions options = {})
      : root_(root), options_(std::move(options)) {
    namespace fs = std::filesystem;
    EMBER_CHECK(options_.channels == 1 || options_.channels == 3, "ImageFolder '", root,
                "': channels must be 1 (grey) or 3 (RGB), got ", options_.channels);
    std::error_code ec;
    EMBER_CHECK(fs::is_directory(root, ec), "ImageFolder: '", root, "' is not a folder",
                ec ? " (" + ec.message() + ")" : std::string());
    for (const fs::directory_entry& e : fs::directory_iterator(root)) {
      if (e.is_directory()) classes_.push_back(e.path().filename().string());
    }
    std::sort(classes_.begin(), classes_.end());
    EMBER_CHECK(!classes_.empty(), "ImageFolder: found no class folder in '", root, "'");
    for (std::size_t c = 0; c < classes_.size(); ++c) {
      class_to_idx_[classes_[c]] = static_cast<std::int64_t>(c);
      const fs::path dir = fs::path(root) / classes_[c];
      std::vector<std::string> folders{dir.string()};
      for (const fs::directory_entry& e : fs::recursive_directory_iterator(
               dir, fs::directory_options::follow_directory_symlink)) {
        if (e.is_directory()) folders.push_back(e.path().string());
      }
      std::sort(folders.begin(), folders.end());
      for (const std::string& folder : folders) {
        std::vector<std::string> files;
        for (const fs::directory_entry& e : fs::directory_iterator(folder))
          if (!e.is_directory() && is_png_name(e.path().filename().string()))
            files.push_back(e.path().filename().string());
        std::sort(files.begin(), files.end());
        for (const std::string& f : files)
          samples_.push_back({(fs::path(folder) / f).string(), static_cast<std::int64_t>(c)});
      }
    }
    std::string empty;
    std::vector<bool> seen(classes_.size(), false);
    for (const Sample& s : samples_) seen[static_cast<std::size_t>(s.label)] = true;
    for (std::size_t c = 0; c < classes_.size(); ++c)
      if (!seen[c]) empty += (empty.empty() ? "'" : ", '") + classes_[c] + "'";
    EMBER_CHECK(empty.empty(), "ImageFolder: found no .png file for the classes ", empty,
                " in '", root, "'");
  }

  /// The number of image files.
  [[nodiscard]] std::int64_t size() const override {
    return static_cast<std::int64_t>(samples_.size());
  }
  [[nodiscard]] Example get(std::int64_t index) const override {
    RandomStream rng(0, static_cast<std::uint64_t>(index));
    return fetch(index, rng);
  }
  [[nodiscard]] Example fetch(std::int64_t index, RandomStream& rng) const override {
    detail::check_index(index, size(), "ImageFolder");
    const Sample& s = samples_[static_cast<std::size_t>(index)];
    Image img = read_png_image(s.path, options_.channels, options_.png);
    if (options_.transform.defined()) {
      try {
        img = options_.transform(std::move(img), rng);
      } catch (const Error& e) {
        throw Error("ImageFolder: '" + s.path + "': " + detail::error_text(e));
      }
    }
    return {std::move(img), s.label};
  }
  [[nodiscard]] bool random() const override { return options_.transform.random(); }
  [[nodiscard]] std::int64_t num_classes() const override {
    return static_cast<std::int64_t>(classes_.size());
  }
  [[nodiscard]] std::string describe(std::int64_t index) const override {
    detail::check_index(index, size(), "ImageFolder");
    return "'" + samples_[static_cast<std::size_t>(index)].path + "'";
  }

  /// The class names (the sub-folders of root), sorted.
  [[nodiscard]] const std::vector<std::string>& classes() const { return classes_; }
  /// Class name -> index, as torchvision's class_to_idx.
  [[nodiscard]] const std::map<std::string, std::int64_t>& class_to_idx() const {
    return class_to_idx_;
  }
  /// Every file and its class, in the dataset's order.
  [[nodiscard]] const std::vector<Sample>& samples() const { return samples_; }
  /// The folder it was made from.
  [[nodiscard]] const std::string& root() const { return root_; }

 private:
  static bool is_png_name(std::string name) {
    if (name.size() < 4) return false;
    std::transform(name.end() - 4, name.end(), name.end() - 4,
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    return name.compare(name.size() - 4, 4, ".png") == 0;
  }

  std::string root_;
  ImageFolderOptions options_;
  std::vector<std::string> classes_;
  std::map<std::string, std::int64_t> class_to_idx_;
  std::vector<Sample> samples_;
};

}  // namespace ember::data
