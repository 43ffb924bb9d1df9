// Tests for data/transforms.hpp (and image_ops.hpp), dataset.hpp, image_folder.hpp and the
// DataLoader over a Dataset: the transforms against torchvision's outputs
// (transform_goldens.hpp), RandomCrop and the flips' draws, ImageFolder on PNG files written
// here, batches that are the same bits for any number of worker threads, and the errors for
// bad input, each naming the file or sample.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/transform_goldens.hpp"
#include "ember/data/dataloader.hpp"
#include "ember/data/dataset.hpp"
#include "ember/data/image_folder.hpp"
#include "ember/data/png.hpp"
#include "ember/data/transforms.hpp"
#include "support/tmp.hpp"

namespace {

namespace fs = std::filesystem;
using namespace ember;
using namespace ember::data::transforms;
using data::Image;
using data::Interpolation;
using data::PaddingMode;
using data::Padding;
using data::Size2;

// The goldens' input: uint8 (2, 5, 7), pixel (c, y, x) = (37 c + 11 y + 5 x) % 256.
Tensor<std::uint8_t> golden_input() {
  Tensor<std::uint8_t> img = Tensor<std::uint8_t>::empty({2, 5, 7});
  for (std::int64_t c = 0; c < 2; ++c)
    for (std::int64_t y = 0; y < 5; ++y)
      for (std::int64_t x = 0; x < 7; ++x)
        img.data()[(c * 5 + y) * 7 + x] =
            static_cast<std::uint8_t>((c * 37 + y * 11 + x * 5) % 256);
  return img;
}

const test::TransformGolden& golden(const std::string& name) {
  for (const auto& g : test::transform_goldens())
    if (name == g.name) return g;
  throw std::runtime_error("no golden " + name);
}

// Our output against torchvision's: the shape, and every value within `tol` (0: the same bits;
// a uint8 image must match exactly).
void check_golden(const Image& out, const std::string& name, double tol = 0) {
  const auto& g = golden(name);
  INFO(name);
  REQUIRE(data::image_shape(out) == Shape(g.shape));
  std::vector<double> got;
  if (const auto* u = std::get_if<Tensor<std::uint8_t>>(&out))
    for (auto v : u->to_vector()) got.push_back(v);
  else
    for (auto v : std::get<Tensor<float>>(out).to_vector()) got.push_back(v);
  REQUIRE(got.size() == g.values.size());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::abs(got[i] - g.values[i]) > tol) {
      if (bad++ < 5) UNSCOPED_INFO("element " << i << ": " << got[i] << " vs " << g.values[i]);
    }
  }
  CHECK(bad == 0);
}

Image to_float(const Tensor<std::uint8_t>& img) { return ToTensor()(img); }

}  // namespace

TEST_CASE("transforms give torchvision's pixels", "[data][transforms]") {
  const Tensor<std::uint8_t> img = golden_input();
  const Image f = to_float(img);
  check_golden(f, "to_tensor");
  check_golden(RandomHorizontalFlip(1.0)(img), "hflip");
  check_golden(RandomVerticalFlip(1.0)(img), "vflip");
  check_golden(Pad({1, 2, 3, 1}, {.fill = 9})(img), "pad_constant");
  check_golden(Pad({1, 2, 3, 1}, {.padding_mode = PaddingMode::edge})(img), "pad_edge");
  check_golden(Pad({1, 2, 3, 1}, {.padding_mode = PaddingMode::reflect})(img), "pad_reflect");
  check_golden(Pad({1, 2, 3, 1}, {.padding_mode = PaddingMode::symmetric})(img), "pad_symmetric");
  check_golden(data::image_window(img, 1, 2, 3, 4, PaddingMode::constant, 0), "crop_inside");
  check_golden(data::image_window(img, -1, 5, 4, 4, PaddingMode::constant, 0), "crop_outside");
  check_golden(CenterCrop({3, 4})(img), "center_crop_3x4");  // left = round(1.5) = 2
  check_golden(CenterCrop(4)(img), "center_crop_4x4");        // top = round(0.5) = 0
  check_golden(CenterCrop({2, 3})(img), "center_crop_2x3");
  check_golden(CenterCrop({6, 10})(img), "center_crop_6x10");  // padded first
  check_golden(Compose({ToTensor(), Normalize({0.5, 0.25}, {0.2, 0.3})})(img), "normalize");
  // Bilinear: PyTorch's float arithmetic, up to the order it sums in.
  check_golden(Resize({4, 9})(f), "resize_bilinear_4x9", 1e-6);
  check_golden(Resize({3, 4})(f), "resize_bilinear_3x4", 1e-6);
  check_golden(Resize({3, 5})(img), "resize_bilinear_u8_3x5");
  check_golden(Resize({8, 3}, Interpolation::nearest)(img), "resize_nearest_8x3");
  check_golden(Resize(3)(f), "resize_short_3", 1e-6);  // the smaller edge: (3, int(3 * 7 / 5))
  // Rotations and affine warps: a fixed angle (a range of one value) and F.affine's matrix.
  check_golden(RandomRotation(Degrees(90, 90))(f), "rotate_90");
  check_golden(RandomRotation(Degrees(30, 30))(f), "rotate_30");
  check_golden(RandomRotation(Degrees(30, 30), {.fill = 200})(img), "rotate_30_u8_fill");
  check_golden(RandomRotation(Degrees(30, 30), {.interpolation = Interpolation::bilinear,
                                                .fill = 0.5})(f),
               "rotate_30_bilinear", 1e-6);
  const auto& ft = std::get<Tensor<float>>(f);
  check_golden(data::image_affine(ft, data::inverse_affine_matrix({0, 0}, 20, {1, -1}, 1.1, {5, 3}),
                                  Interpolation::nearest, 0),
               "affine_nearest");
  check_golden(data::image_affine(ft,
                                  data::inverse_affine_matrix({0, 0}, -15, {0, 1}, 0.9, {-4, 0}),
                                  Interpolation::bilinear, 0.25),
               "affine_bilinear", 1e-6);
}

TEST_CASE("RandomCrop pads, then crops at a uniform corner drawn from the sample's stream",
          "[data][transforms]") {
  const Tensor<std::uint8_t> img = golden_input();  // 5 x 7
  for (const PaddingMode mode : {PaddingMode::constant, PaddingMode::reflect, PaddingMode::edge}) {
    INFO(data::padding_mode_name(mode));
    const RandomCrop crop(Size2(5, 7), {.padding = 2, .fill = 3, .padding_mode = mode});
    const auto padded =
        std::get<Tensor<std::uint8_t>>(Pad(2, {.fill = 3, .padding_mode = mode})(img));
    std::set<std::pair<std::int64_t, std::int64_t>> corners;
    for (std::uint64_t s = 0; s < 400; ++s) {
      data::RandomStream rng(77, s), replay(77, s);
      const auto out = std::get<Tensor<std::uint8_t>>(crop.apply(img, rng));
      const std::int64_t top = replay.randint(0, 5), left = replay.randint(0, 5);
      corners.insert({top, left});
      const auto want = data::image_window(padded, top, left, 5, 7, PaddingMode::constant, 0);
      REQUIRE(out.to_vector() == want.to_vector());
      REQUIRE(rng.draws() == 2);
    }
    CHECK(corners.size() == 25);  // every corner of the 9 x 11 padded image is drawn
  }
  SECTION("no draw when the image is the crop's size") {
    data::RandomStream rng(1, 2);
    const auto out = std::get<Tensor<std::uint8_t>>(RandomCrop({5, 7}).apply(img, rng));
    CHECK(out.to_vector() == img.to_vector());
    CHECK(rng.draws() == 0);
  }
  SECTION("pad_if_needed pads (size - W) on the left and the right, as torchvision") {
    data::RandomStream rng(3, 4);
    const auto out = std::get<Tensor<std::uint8_t>>(
        RandomCrop({7, 9}, {.pad_if_needed = true}).apply(img, rng));
    CHECK(out.shape() == Shape{2, 7, 9});
    // (5 + 2 + 2) x (7 + 2 + 2) padded, then a 7 x 9 crop: the image's pixel (0, 0) lies in it
    // at (2 - top, 2 - left).
    data::RandomStream replay(3, 4);
    const std::int64_t top = replay.randint(0, 3), left = replay.randint(0, 3);
    CHECK(out(0, 2 - top, 2 - left) == img(0, 0, 0));
    CHECK(out(1, 2 - top + 4, 2 - left + 6) == img(1, 4, 6));
  }
  CHECK_THROWS_WITH(RandomCrop(9)(img),
                    Catch::Contains("RandomCrop: required crop size (9, 9) is larger than the "
                                    "input image size (5, 7)"));
  CHECK_THROWS_WITH(RandomCrop(5, {.padding = 5, .padding_mode = PaddingMode::reflect})(img),
                    Catch::Contains("reflect padding") && Catch::Contains("5x7 image"));
}

TEST_CASE("flips and rotations draw from the sample's stream", "[data][transforms]") {
  const Tensor<std::uint8_t> img = golden_input();
  const auto flipped = std::get<Tensor<std::uint8_t>>(RandomHorizontalFlip(1.0)(img));
  int n_flipped = 0;
  for (std::uint64_t s = 0; s < 2000; ++s) {
    data::RandomStream rng(5, s), replay(5, s);
    const auto out = std::get<Tensor<std::uint8_t>>(RandomHorizontalFlip().apply(img, rng));
    const bool flip = replay.uniform() < 0.5;
    n_flipped += flip;
    REQUIRE(out.to_vector() == (flip ? flipped : img).to_vector());
  }
  CHECK(n_flipped > 900);
  CHECK(n_flipped < 1100);
  data::RandomStream rng(5, 0);
  CHECK(std::get<Tensor<std::uint8_t>>(RandomHorizontalFlip(0.0).apply(img, rng)).to_vector() ==
        img.to_vector());
  // A rotation by 0 degrees reads every pixel at its own centre.
  CHECK(std::get<Tensor<std::uint8_t>>(RandomRotation(0.0)(img)).to_vector() == img.to_vector());
  // RandomRotation(10) turns by an angle in [-10, 10]: a corner pixel of a 21 x 21 image
  // moves, and the centre stays.
  Tensor<float> big = Tensor<float>::zeros({1, 21, 21});
  big.data()[10 * 21 + 10] = 1;
  for (std::uint64_t s = 0; s < 20; ++s) {
    data::RandomStream r(9, s);
    const auto out = std::get<Tensor<float>>(RandomRotation(10.0).apply(big, r));
    CHECK(out(0, 10, 10) == 1.0f);
  }
  // RandomAffine with every parameter drawn keeps the image's size and type.
  data::RandomStream r(2, 3);
  const RandomAffine affine(15.0, {.translate = std::array{0.1, 0.1},
                                   .scale = std::array{0.9, 1.1},
                                   .shear = {-5, 5, -5, 5}});
  const Image out = affine.apply(img, r);
  CHECK(data::image_str(out) == "uint8 [2, 5, 7]");
  CHECK(r.draws() == 6);  // angle, tx, ty, scale, shear x, shear y
  CHECK(affine.random());
  CHECK_FALSE(Compose({ToTensor(), Normalize({0.5}, {0.5})}).random());
}

TEST_CASE("transforms refuse what torchvision refuses", "[data][transforms]") {
  const Tensor<std::uint8_t> img = golden_input();
  CHECK_THROWS_WITH(ToTensor()(to_float(img)), Catch::Contains("ToTensor: expected a uint8 "
                                                               "image, got float [2, 5, 7]"));
  CHECK_THROWS_WITH(Normalize({0.5}, {0.5})(img),
                    Catch::Contains("Normalize: expected a float image, got uint8 [2, 5, 7]") &&
                        Catch::Contains("put ToTensor() before Normalize"));
  CHECK_THROWS_WITH(Normalize({0.5, 0.5, 0.5}, {0.5})(to_float(img)),
                    Catch::Contains("mean has 3 values for an image of 2 channels"));
  CHECK_THROWS_WITH(Normalize({0.5}, {0.0}), Catch::Contains("std evaluated to zero"));
  CHECK_THROWS_WITH(Resize({0, 3}), Catch::Contains("Resize: size must be positive, got 0"));
  CHECK_THROWS_WITH(CenterCrop(3)(Tensor<std::uint8_t>::zeros({5, 7})),
                    Catch::Contains("CenterCrop: expected an image (C, H, W), got shape [5, 7]"));
  CHECK_THROWS_WITH(RandomHorizontalFlip(1.5), Catch::Contains("p must be in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(RandomRotation(-3.0), Catch::Contains("must not be negative, got -3"));
  CHECK_THROWS_WITH(Pad(-1), Catch::Contains("Pad: padding must not be negative"));
}

namespace {

// n synthetic uint8 images (C, H, W): pixel = (7 i + 3 c + 5 y + x) % 256, label i % 10.
class Synthetic : public data::Dataset {
 public:
  Synthetic(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w)
      : n_(n), c_(c), h_(h), w_(w) {}
  [[nodiscard]] std::int64_t size() const override { return n_; }
  [[nodiscard]] data::Example get(std::int64_t i) const override {
    if (i == fail_at) throw Error("Synthetic: cannot make sample " + std::to_string(i));
    Tensor<std::uint8_t> img = Tensor<std::uint8_t>::empty({c_, h_, w_});
    for (std::int64_t c = 0; c < c_; ++c)
      for (std::int64_t y = 0; y < h_; ++y)
        for (std::int64_t x = 0; x < w_; ++x)
          img.data()[(c * h_ + y) * w_ + x] =
              static_cast<std::uint8_t>((7 * i + 3 * c + 5 * y + x) % 256);
    return {img, i % 10};
  }
  [[nodiscard]] std::int64_t num_classes() const override { return 10; }
  std::int64_t fail_at = -1;

 private:
  std::int64_t n_, c_, h_, w_;
};

Transform augment(std::int64_t side) {
  return Compose({RandomCrop(side, {.padding = 4}), RandomHorizontalFlip(), ToTensor(),
                  Normalize({0.5, 0.4, 0.3}, {0.2, 0.25, 0.3})});
}

std::vector<std::vector<float>> run_epochs(const std::shared_ptr<const data::Dataset>& d,
                                           data::DataLoaderOptions o, int epochs) {
  data::DataLoader loader(d, o);
  std::vector<std::vector<float>> out;
  for (int e = 0; e < epochs; ++e) {
    std::vector<float> all;
    for (const data::Batch& b : loader.epoch()) {
      const auto v = b.images.to_vector();
      all.insert(all.end(), v.begin(), v.end());
      for (auto l : b.labels.to_vector()) all.push_back(static_cast<float>(l));
    }
    out.push_back(all);
  }
  return out;
}

}  // namespace

TEST_CASE("DataLoader over a Dataset: the same batches for any number of workers",
          "[data][loader]") {
  auto base = std::make_shared<const Synthetic>(53, 3, 12, 12);
  auto train = std::make_shared<const data::TransformedDataset>(base, augment(12));
  REQUIRE(train->random());
  const data::DataLoaderOptions o{.batch_size = 8, .shuffle = true, .seed = 11,
                                  .prefetch = false};
  const auto want = run_epochs(train, o, 3);
  REQUIRE(want.size() == 3);
  CHECK(want[0] != want[1]);  // a new order and new augmentation each epoch
  for (const int workers : {0, 1, 2, 3}) {
    for (const int factor : {1, 3}) {
      INFO("num_workers " << workers << ", prefetch_factor " << factor);
      auto w = o;
      w.num_workers = workers;
      w.prefetch_factor = factor;
      w.prefetch = workers == 0;  // the one background thread of num_workers = 0
      CHECK(run_epochs(train, w, 3) == want);
    }
  }
  // A sample's augmentation depends on the seed, the epoch and its index, not on the batch.
  SECTION("without shuffling, the batch size changes nothing but the batching") {
    const auto a = run_epochs(train, {.batch_size = 4, .seed = 2}, 2);
    const auto b = run_epochs(train, {.batch_size = 53, .seed = 2, .num_workers = 2}, 2);
    auto strip = [](const std::vector<float>& v, std::int64_t bs) {  // drop the labels
      std::vector<float> images;
      const std::int64_t per = 3 * 12 * 12;
      std::size_t at = 0;
      for (std::int64_t left = 53; left > 0; left -= bs) {
        const std::int64_t n = std::min(bs, left);
        const auto from = v.begin() + static_cast<std::ptrdiff_t>(at);
        images.insert(images.end(), from, from + static_cast<std::ptrdiff_t>(n * per));
        at += static_cast<std::size_t>(n * per + n);
      }
      return images;
    };
    CHECK(strip(a[0], 4) == strip(b[0], 53));
    CHECK(strip(a[1], 4) == strip(b[1], 53));
    CHECK(strip(a[0], 4) != strip(a[1], 4));  // epoch 2 is augmented differently
  }
  SECTION("another seed, other batches; the same seed, the same") {
    auto other = o;
    other.seed = 12;
    CHECK(run_epochs(train, other, 1)[0] != want[0]);
    CHECK(run_epochs(train, o, 1)[0] == want[0]);
  }
}

TEST_CASE("DataLoader over a Dataset: batch shapes, drop_last, errors named by sample",
          "[data][loader]") {
  auto base = std::make_shared<Synthetic>(10, 3, 6, 5);
  auto ds = std::make_shared<const data::TransformedDataset>(base, Compose({ToTensor()}));
  data::DataLoader loader(ds, {.batch_size = 4, .drop_last = true, .num_workers = 2});
  CHECK(loader.num_batches() == 2);
  CHECK(loader.num_classes() == 10);
  std::int64_t seen = 0;
  for (const data::Batch& b : loader.epoch()) {
    CHECK(b.images.shape() == Shape{4, 3, 6, 5});
    CHECK(b.images(1, 2, 3, 4) == Approx(((7 * (seen + 1) + 6 + 15 + 4) % 256) / 255.0));
    CHECK(b.labels(1) == (seen + 1) % 10);
    seen += 4;
  }
  CHECK(seen == 8);

  SECTION("uint8 images need ToTensor") {
    data::DataLoader raw(base, {.batch_size = 4});
    CHECK_THROWS_WITH(raw.epoch().begin(),
                      Catch::Contains("DataLoader: sample 0 is a uint8 [3, 6, 5] image") &&
                          Catch::Contains("add transforms::ToTensor()"));
  }
  SECTION("an error in a worker reaches the loop at its batch, and stops the epoch") {
    base->fail_at = 6;
    for (const int workers : {0, 1, 3}) {
      data::DataLoader l(ds, {.batch_size = 4, .num_workers = workers});
      int batches = 0;
      auto run = [&] {
        for (const data::Batch& b : l.epoch()) {
          (void)b;
          ++batches;
        }
      };
      CHECK_THROWS_WITH(run(), Catch::Contains("Synthetic: cannot make sample 6"));
      CHECK(batches == 1);  // batch 0 arrived, batch 1 held sample 6
    }
  }
  SECTION("leaving an epoch early stops its workers") {
    data::DataLoader l(ds, {.batch_size = 1, .num_workers = 3, .prefetch_factor = 2});
    for (int e = 0; e < 3; ++e)
      for (const data::Batch& b : l.epoch()) {
        CHECK(b.labels.size(0) == 1);
        break;
      }
  }
  SECTION("bad options and datasets") {
    CHECK_THROWS_WITH(data::DataLoader(ds, {.num_workers = -1}),
                      Catch::Contains("num_workers must not be negative, got -1"));
    CHECK_THROWS_WITH(data::DataLoader(ds, {.prefetch_factor = 0}),
                      Catch::Contains("prefetch_factor must be positive, got 0"));
    CHECK_THROWS_WITH(data::DataLoader(std::shared_ptr<const data::Dataset>(), {}),
                      Catch::Contains("DataLoader: no dataset"));
  }
}

TEST_CASE("random_split and DatasetSubset over any dataset", "[data][loader]") {
  auto base = std::make_shared<const Synthetic>(20, 1, 2, 2);
  Generator g1(4), g2(4);
  const auto parts = data::random_split(base, {15, 5}, g1);
  // The same permutation as random_split over an ImageDataset with the same generator.
  const auto perm = data::random_permutation(20, g2);
  REQUIRE(parts.size() == 2);
  REQUIRE(parts[1]->size() == 5);
  for (std::int64_t k = 0; k < 5; ++k)
    CHECK(parts[1]->get(k).label == perm[static_cast<std::size_t>(15 + k)] % 10);
  CHECK_THROWS_WITH(data::random_split(base, {15, 6}, g1), Catch::Contains("add up to 21"));
  CHECK_THROWS_WITH(data::DatasetSubset(base, {3, 20}),
                    Catch::Contains("index 20 at position 1 is out of range for a dataset of 20"));
  CHECK_THROWS_WITH(parts[1]->get(5), Catch::Contains("index 5 is out of range"));
}

namespace {
// A fake MNIST: n images of 6 x 5, pixel (i, y, x) = (i + 2 y + x) % 256, label i % 10.
std::shared_ptr<const data::ImageDataset> fake_mnist(std::int64_t n) {
  auto d = std::make_shared<data::ImageDataset>();
  d->images = Tensor<std::uint8_t>::empty({n, 6, 5});
  d->labels = Tensor<std::int64_t>::empty({n});
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < 30; ++j)
      d->images.data()[i * 30 + j] = static_cast<std::uint8_t>((i + 2 * (j / 5) + j % 5) % 256);
    d->labels.data()[i] = i % 10;
  }
  return d;
}
}  // namespace

TEST_CASE("MNIST and FashionMNIST datasets", "[data][loader]") {
  const auto raw = fake_mnist(12);
  data::MNIST plain(raw);
  const data::Example e = plain.get(7);
  CHECK(data::image_str(e.image) == "uint8 [1, 6, 5]");
  CHECK(std::get<Tensor<std::uint8_t>>(e.image)(0, 2, 3) == 7 + 4 + 3);
  CHECK(e.label == 7);
  CHECK(plain.num_classes() == 10);
  CHECK_FALSE(plain.random());
  CHECK_THROWS_WITH(plain.get(12), Catch::Contains("MNIST: index 12 is out of range"));

  // Through ToTensor and Normalize, the loader's numbers are the Subset loader's
  // (pixel / 255 - mean) / std, to float rounding.
  auto norm = std::make_shared<const data::MNIST>(raw, Compose({ToTensor(), Normalize({0.1307},
                                                                                      {0.3081})}));
  data::DataLoader a(norm, {.batch_size = 5});
  data::DataLoader b(data::Subset::all(raw), {.batch_size = 5, .mean = 0.1307f, .std = 0.3081f});
  auto ea = a.epoch();
  auto eb = b.epoch();
  auto ia = ea.begin();
  for (auto ib = eb.begin(); ib != eb.end(); ++ia, ++ib) {
    const auto va = (*ia).images.to_vector(), vb = (*ib).images.to_vector();
    REQUIRE(va.size() == vb.size());
    for (std::size_t k = 0; k < va.size(); ++k) REQUIRE(va[k] == Approx(vb[k]).margin(1e-6));
    CHECK((*ia).labels.to_vector() == (*ib).labels.to_vector());
  }

  CHECK_THROWS_WITH(data::FashionMNIST("/nonexistent-folder", data::Split::train),
                    Catch::Contains("FashionMNIST: MNIST file 'train-images-idx3-ubyte(.gz)' "
                                    "not found") &&
                        Catch::Contains("dataset-fashion-mnist"));

  const std::string root = data::FashionMNIST::default_root;
  if (!fs::exists(fs::path(root) / "t10k-images-idx3-ubyte.gz")) {
    WARN("SKIPPED: Fashion-MNIST is not installed in " << root
                                                       << " (Debian: dataset-fashion-mnist)");
    return;
  }
  data::FashionMNIST test(root, data::Split::test);
  REQUIRE(test.size() == 10000);
  CHECK(data::image_shape(test.get(0).image) == Shape{1, 28, 28});
  std::vector<std::int64_t> counts(10, 0);
  for (std::int64_t i = 0; i < test.size(); ++i)
    ++counts[static_cast<std::size_t>(test.data().labels(i))];
  CHECK(counts == std::vector<std::int64_t>(10, 1000));  // 1,000 of each class
  CHECK(test.get(0).label == 9);                          // the test set opens with an ankle boot
  CHECK(std::string(data::FashionMNIST::classes[9]) == "Ankle boot");
}

namespace {

// An RGB image (3, h, w) with pixel (c, y, x) = (seed + 50 c + 7 y + 3 x) % 256.
Tensor<std::uint8_t> rgb(std::int64_t h, std::int64_t w, int seed) {
  Tensor<std::uint8_t> t = Tensor<std::uint8_t>::empty({3, h, w});
  for (std::int64_t c = 0; c < 3; ++c)
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t x = 0; x < w; ++x)
        t.data()[(c * h + y) * w + x] =
            static_cast<std::uint8_t>((seed + 50 * c + 7 * y + 3 * x) % 256);
  return t;
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

}  // namespace

TEST_CASE("ImageFolder reads class folders of PNG files as torchvision does", "[data][folder]") {
  const fs::path root = test::tmp_dir("image_folder", /*fresh=*/true);
  for (const char* d : {"b_dog", "a_cat/sub", "Zebra"}) fs::create_directories(root / d);
  data::write_png((root / "a_cat/2.png").string(), rgb(6, 8, 1));
  data::write_png((root / "a_cat/10.png").string(), rgb(6, 8, 2));
  data::write_png((root / "a_cat/sub/0.png").string(), rgb(6, 8, 3));
  write_text(root / "a_cat/notes.txt", "not an image");
  data::write_png((root / "b_dog/x.PNG").string(), Tensor<std::uint8_t>::full({1, 6, 8}, 90));
  data::write_png((root / "Zebra/z.png").string(), rgb(6, 8, 4));

  data::ImageFolder folder(root.string());
  CHECK(folder.classes() == std::vector<std::string>{"Zebra", "a_cat", "b_dog"});  // byte order
  CHECK(folder.class_to_idx().at("b_dog") == 2);
  std::vector<std::string> names;
  std::vector<std::int64_t> labels;
  for (const auto& s : folder.samples()) {
    names.push_back(fs::relative(s.path, root).string());
    labels.push_back(s.label);
  }
  CHECK(names == std::vector<std::string>{"Zebra/z.png", "a_cat/10.png", "a_cat/2.png",
                                          "a_cat/sub/0.png", "b_dog/x.PNG"});
  CHECK(labels == std::vector<std::int64_t>{0, 1, 1, 1, 2});
  CHECK(folder.num_classes() == 3);

  // RGB pixels come back as written; a grey file gives R = G = B.
  const data::Example cat = folder.get(2);
  CHECK(std::get<Tensor<std::uint8_t>>(cat.image).to_vector() == rgb(6, 8, 1).to_vector());
  CHECK(std::get<Tensor<std::uint8_t>>(folder.get(4).image).to_vector() ==
        Tensor<std::uint8_t>::full({3, 6, 8}, 90).to_vector());
  // channels = 1: one grey channel (a grey file's levels unchanged).
  data::ImageFolder grey(root.string(), {.channels = 1});
  CHECK(std::get<Tensor<std::uint8_t>>(grey.get(4).image).to_vector() ==
        Tensor<std::uint8_t>::full({1, 6, 8}, 90).to_vector());

  // Batches of (B, 3, H, W) through a transform.
  auto ds = std::make_shared<const data::ImageFolder>(
      root.string(), data::ImageFolderOptions{.transform = Compose({CenterCrop(4), ToTensor()})});
  data::DataLoader loader(ds, {.batch_size = 5, .num_workers = 2});
  for (const data::Batch& b : loader.epoch()) {
    CHECK(b.images.shape() == Shape{5, 3, 4, 4});
    CHECK(b.labels.to_vector() == labels);
    CHECK(b.images(2, 1, 0, 0) == Approx(((1 + 50 + 7 * 1 + 3 * 2) % 256) / 255.0));
  }
}

TEST_CASE("ImageFolder and its DataLoader name the file that is wrong", "[data][folder]") {
  const fs::path root = test::tmp_dir("image_folder_bad", /*fresh=*/true);
  CHECK_THROWS_WITH(data::ImageFolder((root / "missing").string()),
                    Catch::Contains("ImageFolder: '" + (root / "missing").string() +
                                    "' is not a folder"));
  CHECK_THROWS_WITH(data::ImageFolder(root.string()),
                    Catch::Contains("found no class folder in '" + root.string() + "'"));
  fs::create_directories(root / "one");
  fs::create_directories(root / "two");
  data::write_png((root / "one/a.png").string(), rgb(5, 5, 0));
  CHECK_THROWS_WITH(data::ImageFolder(root.string()),
                    Catch::Contains("found no .png file for the classes 'two'"));

  // Images of two sizes and no transform that makes them one.
  data::write_png((root / "two/b.png").string(), rgb(5, 6, 0));
  auto ds = std::make_shared<const data::ImageFolder>(
      root.string(), data::ImageFolderOptions{.transform = ToTensor()});
  data::DataLoader loader(ds, {.batch_size = 2});
  CHECK_THROWS_WITH(loader.epoch().begin(),
                    Catch::Contains("'" + (root / "two/b.png").string() + "' is [3, 5, 6] but '" +
                                    (root / "one/a.png").string() + "' in the same batch is "
                                                                    "[3, 5, 5]") &&
                        Catch::Contains("add Resize, CenterCrop or RandomCrop"));

  // A corrupt PNG, reached by a worker thread.
  write_text(root / "two/b.png", "\x89PNG\r\n\x1a\n not really a PNG");
  data::DataLoader workers(ds, {.batch_size = 1, .num_workers = 2});
  auto run = [&] {
    for (const data::Batch& b : workers.epoch()) (void)b;
  };
  CHECK_THROWS_WITH(run(), Catch::Contains("PNG file '" + (root / "two/b.png").string() + "'"));
  // A transform that fails names the file too.
  data::ImageFolder small(root.string(), {.transform = RandomCrop(9)});
  CHECK_THROWS_WITH(small.get(0), Catch::Contains("ImageFolder: '" + (root / "one/a.png").string() +
                                                  "': RandomCrop: required crop size (9, 9)"));
}
