// Tests for ember/data/mnist.hpp, dataloader.hpp and pgm.hpp on small synthetic IDX files:
// dataset loading and its consistency checks, random_split, batching, normalisation,
// seeded shuffling, drop_last, prefetching, the checks on hand-built datasets and subsets
// (DataLoader, DeviceDataLoader), and PGM reading.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "ember/data/dataloader.hpp"
#include "ember/data/device_loader.hpp"
#include "ember/data/mnist.hpp"
#include "ember/data/pgm.hpp"
#include "support/tmp.hpp"

namespace {

namespace fs = std::filesystem;
using namespace ember;

fs::path temp_dir(const std::string& name) { return ember::test::tmp_dir(name, /*fresh=*/true); }

// A fake MNIST split with n images of h x w: pixel (i, r, c) = (i + r + c) % 256, label i % 10.
void write_fake_split(const fs::path& dir, const std::string& prefix, std::int64_t n,
                      std::int64_t h = 4, std::int64_t w = 3) {
  data::IdxArray images{0x08, {n, h, w}, {}};
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t r = 0; r < h; ++r)
      for (std::int64_t c = 0; c < w; ++c)
        images.bytes.push_back(static_cast<std::uint8_t>((i + r + c) % 256));
  data::IdxArray labels{0x08, {n}, {}};
  for (std::int64_t i = 0; i < n; ++i) labels.bytes.push_back(static_cast<std::uint8_t>(i % 10));
  data::write_idx((dir / (prefix + "-images-idx3-ubyte.gz")).string(), images, true);
  data::write_idx((dir / (prefix + "-labels-idx1-ubyte")).string(), labels, false);
}

std::shared_ptr<const data::ImageDataset> fake_dataset(std::int64_t n) {
  const fs::path dir = temp_dir("fake_mnist_" + std::to_string(n));
  write_fake_split(dir, "train", n);
  return data::load_mnist(dir.string(), data::Split::train);
}

}  // namespace

TEST_CASE("load_mnist reads gzip and raw IDX files and checks them", "[data]") {
  auto d = fake_dataset(23);
  REQUIRE(d->size() == 23);
  CHECK(d->images.shape() == Shape{23, 4, 3});
  CHECK(d->images(5, 1, 2) == 8);
  CHECK(d->labels(17) == 7);

  const fs::path dir = temp_dir("mnist_errors");
  CHECK_THROWS_WITH(
      data::load_mnist(dir.string(), data::Split::test),
      Catch::Contains("t10k-images-idx3-ubyte(.gz)' not found") && Catch::Contains("get_mnist.sh"));
  // 10 images but 9 labels
  write_fake_split(dir, "t10k", 10);
  data::IdxArray labels{0x08, {9}, std::vector<std::uint8_t>(9, 1)};
  data::write_idx((dir / "t10k-labels-idx1-ubyte").string(), labels, false);
  CHECK_THROWS_WITH(data::load_mnist(dir.string(), data::Split::test),
                    Catch::Contains("holds 10 images") && Catch::Contains("9 labels"));
  // a label out of range
  labels = {0x08, {10}, std::vector<std::uint8_t>(10, 1)};
  labels.bytes[4] = 12;
  data::write_idx((dir / "t10k-labels-idx1-ubyte").string(), labels, false);
  CHECK_THROWS_WITH(data::load_mnist(dir.string(), data::Split::test),
                    Catch::Contains("label 12 at index 4"));
}

TEST_CASE("random_split makes disjoint subsets covering the dataset, reproducibly", "[data]") {
  auto d = fake_dataset(50);
  Generator g1(3), g2(3), g3(4);
  auto a = data::random_split(d, {30, 15, 5}, g1);
  auto b = data::random_split(d, {30, 15, 5}, g2);
  auto c = data::random_split(d, {30, 15, 5}, g3);
  REQUIRE(a.size() == 3);
  CHECK(a[0].size() == 30);
  CHECK(a[2].size() == 5);
  std::set<std::int64_t> all;
  for (auto& s : a) all.insert(s.indices.begin(), s.indices.end());
  CHECK(all.size() == 50);
  CHECK(*all.rbegin() == 49);
  CHECK(a[0].indices == b[0].indices);
  CHECK(a[0].indices != c[0].indices);
  CHECK_THROWS_WITH(data::random_split(d, {30, 10}, g1), Catch::Contains("add up to 40"));
}

TEST_CASE("DataLoader batches, normalises, shuffles and drops the last batch", "[data]") {
  auto d = fake_dataset(10);
  SECTION("in order, with a short last batch") {
    data::DataLoader loader(data::Subset::all(d), {.batch_size = 4});
    CHECK(loader.num_batches() == 3);
    std::vector<std::int64_t> sizes, labels;
    for (const data::Batch& b : loader.epoch()) {
      sizes.push_back(b.labels.size(0));
      CHECK(b.images.shape() == Shape{b.labels.size(0), 1, 4, 3});
      for (std::int64_t i = 0; i < b.labels.size(0); ++i) labels.push_back(b.labels(i));
    }
    CHECK(sizes == std::vector<std::int64_t>{4, 4, 2});
    CHECK(labels == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  }
  SECTION("normalisation is (pixel / 255 - mean) / std") {
    data::DataLoader loader(data::Subset::all(d),
                            {.batch_size = 10, .mean = 0.1307f, .std = 0.3081f});
    for (const data::Batch& b : loader.epoch()) {
      // image 7, row 2, column 1: pixel 10
      CHECK(b.images(7, 0, 2, 1) == Approx((10.0 / 255.0 - 0.1307) / 0.3081).epsilon(1e-6));
    }
  }
  SECTION("drop_last") {
    data::DataLoader loader(data::Subset::all(d), {.batch_size = 4, .drop_last = true});
    CHECK(loader.num_batches() == 2);
    int n = 0;
    for (const data::Batch& b : loader.epoch()) n += static_cast<int>(b.labels.size(0));
    CHECK(n == 8);
  }
  SECTION("shuffle: a permutation per epoch, reproducible from the seed") {
    auto order = [](data::DataLoader& l) {
      std::vector<std::int64_t> out;
      for (const data::Batch& b : l.epoch())
        for (std::int64_t i = 0; i < b.labels.size(0); ++i) out.push_back(b.labels(i));
      return out;
    };
    data::DataLoader a(data::Subset::all(d), {.batch_size = 3, .shuffle = true, .seed = 5});
    data::DataLoader b(data::Subset::all(d),
                       {.batch_size = 3, .shuffle = true, .seed = 5, .prefetch = false});
    const auto a1 = order(a), a2 = order(a), b1 = order(b);
    CHECK(a1 == b1);  // prefetching does not change what is produced
    CHECK(a1 != a2);  // each epoch draws a new order
    CHECK(std::multiset<std::int64_t>(a1.begin(), a1.end()) ==
          std::multiset<std::int64_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  }
  SECTION("a subset yields only its samples") {
    data::Subset s{d, {9, 2, 4}};
    data::DataLoader loader(s, {.batch_size = 8});
    for (const data::Batch& b : loader.epoch()) {
      REQUIRE(b.labels.size(0) == 3);
      CHECK(b.labels(0) == 9);
      CHECK(b.labels(1) == 2);
    }
  }
  CHECK_THROWS_WITH(data::DataLoader(data::Subset::all(d), {.batch_size = 0}),
                    Catch::Contains("batch_size must be positive"));
}

namespace {
// A hand-built dataset: n images of 4 x 3 with labels i % 10.
std::shared_ptr<data::ImageDataset> hand_built(std::int64_t n) {
  auto d = std::make_shared<data::ImageDataset>();
  d->images = Tensor<std::uint8_t>::full({n, 4, 3}, 7);
  d->labels = Tensor<std::int64_t>::empty({n});
  for (std::int64_t i = 0; i < n; ++i) d->labels.data()[i] = i % 10;
  return d;
}
}  // namespace

TEST_CASE("DataLoader refuses a hand-built dataset that does not hold together", "[data]") {
  auto d = hand_built(6);
  auto load = [](std::shared_ptr<data::ImageDataset> bad) {
    return data::DataLoader(data::Subset::all(std::move(bad)), {.batch_size = 4});
  };
  SECTION("fewer images than labels") {
    d->images = Tensor<std::uint8_t>::zeros({5, 4, 3});
    REQUIRE_THROWS_WITH(load(d), Catch::Contains("DataLoader: ImageDataset: images hold 5 samples "
                                                 "of 4x3 but labels hold 6"));
  }
  SECTION("images or labels of the wrong rank, undefined, or not contiguous") {
    auto images = d->images;
    d->images = images.reshape({6, 12});
    REQUIRE_THROWS_WITH(load(d), Catch::Contains("images must be (N, H, W), got shape [6, 12]"));
    d->images = Tensor<std::uint8_t>();
    REQUIRE_THROWS_WITH(load(d), Catch::Contains("images is undefined"));
    d->images = Tensor<std::uint8_t>::zeros({4, 6, 3}).transpose(0, 1);  // (6, 4, 3), strided
    REQUIRE_THROWS_WITH(load(d), Catch::Contains("images must be contiguous") &&
                                     Catch::Contains("strides [3, 18, 1]"));
    d->images = images;
    d->labels = d->labels.reshape({2, 3});
    REQUIRE_THROWS_WITH(load(d), Catch::Contains("labels must be (N), got shape [2, 3]"));
  }
  SECTION("labels outside [0, num_classes)") {
    d->labels.data()[3] = 10;
    REQUIRE_THROWS_WITH(load(d), Catch::Contains("label 10 at index 3 is out of range for "
                                                 "num_classes 10"));
    d->labels.data()[3] = -1;
    REQUIRE_THROWS_WITH(load(d), Catch::Contains("label -1 at index 3"));
    d->labels.data()[3] = 3;
    d->num_classes = 3;
    REQUIRE_THROWS_WITH(load(d), Catch::Contains("label 3 at index 3 is out of range for "
                                                 "num_classes 3"));
    d->num_classes = 0;
    REQUIRE_THROWS_WITH(load(d), Catch::Contains("num_classes must be positive, got 0"));
  }
  SECTION("a subset index out of range, or no dataset") {
    REQUIRE_THROWS_WITH(data::DataLoader(data::Subset{d, {0, 1, 5, 70000}}, {}),
                        Catch::Contains("DataLoader: Subset: index 70000 at position 3 is out "
                                        "of range for a dataset of 6 samples"));
    REQUIRE_THROWS_WITH(data::DataLoader(data::Subset{d, {-1}}, {}),
                        Catch::Contains("index -1 at position 0"));
    REQUIRE_THROWS_WITH(data::DataLoader(data::Subset{nullptr, {0}}, {}),
                        Catch::Contains("DataLoader: Subset: no dataset"));
    REQUIRE_THROWS_WITH(data::Subset::all(nullptr), Catch::Contains("Subset::all: no dataset"));
  }
  SECTION("bad options") {
    const auto all = data::Subset::all(d);
    REQUIRE_THROWS_WITH(data::DataLoader(all, {.batch_size = -3}),
                        Catch::Contains("batch_size must be positive, got -3"));
    REQUIRE_THROWS_WITH(data::DataLoader(all, {.std = 0.0f}),
                        Catch::Contains("std must be positive, got 0"));
    REQUIRE_THROWS_WITH(data::DataLoader(all, {.mean = std::nanf("")}),
                        Catch::Contains("mean must be finite"));
    REQUIRE_THROWS_WITH(data::PixelNormalization::from(0.5f, -1.0f),
                        Catch::Contains("PixelNormalization: std must be positive and finite"));
  }
  SECTION("make_batch with a bad order or batch number") {
    data::DataLoader loader(data::Subset::all(d), {.batch_size = 4});
    REQUIRE_THROWS_WITH(loader.make_batch({0, 1}, 0),
                        Catch::Contains("the order holds 2 positions for a subset of 6 samples"));
    REQUIRE_THROWS_WITH(loader.make_batch({0, 99, 2, 3, 4, 5}, 0),
                        Catch::Contains("order[1] = 99 is out of range for a subset of 6"));
    REQUIRE_THROWS_WITH(loader.make_batch({0, 1, 2, 3, 4, 5}, 2),
                        Catch::Contains("batch 2 is out of range for 2 batches"));
    REQUIRE_THROWS_WITH(loader.make_batch({0, 1, 2, 3, 4, 5}, -1), Catch::Contains("batch -1"));
    CHECK(loader.make_batch({5, 4, 3, 2, 1, 0}, 1).labels.to_vector() ==
          std::vector<std::int64_t>{1, 0});
  }
  SECTION("a dataset changed after the loader was made is checked again at each epoch") {
    data::DataLoader loader(data::Subset::all(d), {.batch_size = 4});
    d->labels = Tensor<std::int64_t>::zeros({3});
    REQUIRE_THROWS_WITH(loader.epoch(), Catch::Contains("images hold 6 samples of 4x3 but "
                                                        "labels hold 3"));
  }
}

TEST_CASE("DeviceDataLoader checks its data before it needs a device", "[data]") {
  auto d = hand_built(6);
  REQUIRE_THROWS_WITH(data::DeviceDataLoader(data::Subset{d, {0, 6}}, {}, Device::cpu()),
                      Catch::Contains("DeviceDataLoader: Subset: index 6 at position 1 is out "
                                      "of range for a dataset of 6 samples"));
  d->labels = Tensor<std::int64_t>::zeros({7});
  REQUIRE_THROWS_WITH(data::DeviceDataLoader(data::Subset{d, {0}}, {}, Device::cpu()),
                      Catch::Contains("DeviceDataLoader: ImageDataset: images hold 6 samples of "
                                      "4x3 but labels hold 7"));
  REQUIRE_THROWS_WITH(
      data::DeviceDataLoader(data::Subset{d, {0}}, {.batch_size = 0}, Device::cpu()),
                      Catch::Contains("DeviceDataLoader: batch_size must be positive, got 0"));
  // Valid data: only then the device is refused.
  REQUIRE_THROWS_WITH(data::DeviceDataLoader(data::Subset::all(hand_built(6)), {}, Device::cpu()),
                      Catch::Contains("is not a CUDA device"));
}

TEST_CASE("random_split and random_permutation refuse bad sizes", "[data]") {
  auto d = hand_built(6);
  Generator g(1);
  const std::int64_t huge = std::numeric_limits<std::int64_t>::max();
  REQUIRE_THROWS_WITH(data::random_split(d, {huge, huge}, g),
                      Catch::Contains("lengths add up to more than the 6 samples"));
  REQUIRE_THROWS_WITH(data::random_split(nullptr, {1}, g), Catch::Contains("no dataset"));
  REQUIRE_THROWS_WITH(data::random_permutation(-2, g), Catch::Contains("negative length -2"));
}

TEST_CASE("PGM images: P5 and P2 read, write round trip, bad files rejected", "[data]") {
  const fs::path dir = temp_dir("pgm");
  auto img = Tensor<std::uint8_t>::empty({3, 4});
  for (std::int64_t i = 0; i < 12; ++i) img.data()[i] = static_cast<std::uint8_t>(i * 20);
  data::write_pgm((dir / "a.pgm").string(), img);
  CHECK(data::read_pgm((dir / "a.pgm").string()).to_vector() == img.to_vector());

  std::ofstream((dir / "b.pgm").string()) << "P2\n# comment\n2 2\n15\n0 15\n5 10\n";
  CHECK(data::read_pgm((dir / "b.pgm").string()).to_vector() ==
        std::vector<std::uint8_t>{0, 255, 85, 170});

  std::ofstream((dir / "magic.pgm").string()) << "P6\n2 2\n255\n";
  CHECK_THROWS_WITH(data::read_pgm((dir / "magic.pgm").string()),
                    Catch::Contains("bad magic 'P6'"));
  std::ofstream((dir / "short.pgm").string(), std::ios::binary) << "P5\n4 4\n255\n"
                                                                << std::string(7, 'x');
  CHECK_THROWS_WITH(data::read_pgm((dir / "short.pgm").string()),
                    Catch::Contains("truncated pixel data (expected 16 bytes, got 7)"));
  std::ofstream((dir / "maxval.pgm").string()) << "P5\n2 2\n65535\n";
  CHECK_THROWS_WITH(data::read_pgm((dir / "maxval.pgm").string()),
                    Catch::Contains("maxval 65535 is out of range"));
  CHECK_THROWS_WITH(data::read_pgm((dir / "missing.pgm").string()), Catch::Contains("cannot open"));
}
