// Tests for ember/data/mnist.hpp, dataloader.hpp and pgm.hpp on small synthetic IDX files:
// dataset loading and its consistency checks, random_split, batching, normalisation,
// seeded shuffling, drop_last, prefetching, and PGM reading.

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "ember/data/dataloader.hpp"
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
