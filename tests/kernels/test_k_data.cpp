// kernels/data.cuh: batches gathered and normalised on the device from a dataset kept whole
// in device memory, against the CPU DataLoader's batches for the same indices (shuffled epochs
// of a random_split subset, an unshuffled MNIST-sized loader with a short last batch), int64 and
// uint8 labels, every block size, poisoned outputs.
//
// Exactness: both sides use data::PixelNormalization, (pixel - center) * scale, which no compiler
// can contract into a multiply-add, so batches must be bit-identical.
#include "support/kernel_test.hpp"

#include <catch2/catch.hpp>

#include <ember/kernels/data.cuh>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/dataloader.hpp"
#include "ember/data/mnist.hpp"

namespace {

namespace ek = ember::kernels;
using ember::Generator;
using ember::Tensor;
using ember::ktest::Buffer;
using I64 = std::int64_t;


// n images of h x w with random pixels (0 and 255 included) and random labels in [0, 10).
std::shared_ptr<const ember::data::ImageDataset> make_dataset(I64 n, I64 h, I64 w,
                                                              std::uint64_t seed) {
  ember::data::ImageDataset d;
  auto px =
      ember::ktest::random_vector<std::uint8_t>(static_cast<std::size_t>(n * h * w), seed, 0, 256);
  px[0] = 0;
  px[1] = 255;
  d.images = Tensor<std::uint8_t>::from_vector(px, {n, h, w});
  d.labels = Tensor<I64>::from_vector(
      ember::ktest::random_vector<I64>(static_cast<std::size_t>(n), seed + 1, 0, 10), {n});
  return std::make_shared<const ember::data::ImageDataset>(std::move(d));
}

// The same bits.
void check_images(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool same = std::memcmp(&got[i], &want[i], sizeof(float)) == 0;
    if (!same && bad++ == 0) first = i;
  }
  INFO("mismatches: " << bad << "; first at " << first << ": got " << got[first] << ", want "
                      << want[first]);
  CHECK(bad == 0);
}

// Block sizes for a batch of `elements`: every one when small; on the harness (one fiber per GPU
// thread) large batches take one, rotating with `turn`.
std::vector<int> blocks_for(I64 elements, std::size_t turn) {
  const auto& all = ember::ktest::block_sizes();
  if (ember::ktest::on_gpu || elements <= 5000) return all;
  return {all[turn % all.size()]};
}

// Runs `loader` for `epochs` epochs and compares every batch with the device gather of the same
// dataset rows. `order_gen` replays the loader's shuffle (a Generator with the loader's seed).
void compare_loader(ember::data::DataLoader& loader, const ember::data::Subset& subset,
                    int epochs) {
  const auto& d = *subset.dataset;
  const I64 pixels = d.images.size(1) * d.images.size(2);
  const Buffer<std::uint8_t> dimages(d.images.to_vector());
  const Buffer<I64> dlabels(d.labels.to_vector());
  std::vector<std::uint8_t> labels8;
  for (const I64 l : d.labels.to_vector()) labels8.push_back(static_cast<std::uint8_t>(l));
  const Buffer<std::uint8_t> dlabels8(labels8);
  const auto& opt = loader.options();
  Generator order_gen(opt.seed);
  std::size_t turn = 0;
  for (int e = 0; e < epochs; ++e) {
    std::vector<I64> order;
    if (opt.shuffle) {
      order = ember::data::random_permutation(subset.size(), order_gen);
    } else {
      for (I64 i = 0; i < subset.size(); ++i) order.push_back(i);
    }
    I64 b = 0;
    for (const ember::data::Batch& batch : loader.epoch()) {
      const I64 count = batch.labels.size(0);
      std::vector<I64> rows;
      for (I64 k = 0; k < count; ++k)
        rows.push_back(subset.indices[static_cast<std::size_t>(
            order[static_cast<std::size_t>(b * opt.batch_size + k)])]);
      const Buffer<I64> dindices(rows);
      const std::vector<float> want = batch.images.to_vector();
      const std::vector<I64> want_labels = batch.labels.to_vector();
      for (const int threads : blocks_for(count * pixels, turn++)) {
        CAPTURE(e, b, count, threads);
        Buffer<float> out(static_cast<std::size_t>(count * pixels));
        ek::gather_normalize(dimages.data(), dindices.data(), count, pixels, opt.mean, opt.std,
                             out.data(), nullptr, threads);
        check_images(out.host(), want);
        Buffer<I64> lab(static_cast<std::size_t>(count)), lab8(static_cast<std::size_t>(count));
        ek::gather_labels(dlabels.data(), dindices.data(), count, lab.data(), nullptr, threads);
        ek::gather_labels(dlabels8.data(), dindices.data(), count, lab8.data(), nullptr, threads);
        CHECK(lab.host() == want_labels);
        CHECK(lab8.host() == want_labels);
      }
      ++b;
    }
    CHECK(b == loader.num_batches());
  }
}

}  // namespace

TEST_CASE("gather_normalize and gather_labels reproduce shuffled DataLoader batches",
          "[kernels][data]") {
  const auto d = make_dataset(37, 5, 7, 11);
  Generator split_gen(3);
  const auto parts = ember::data::random_split(d, {29, 8}, split_gen);
  ember::data::DataLoaderOptions opt;
  opt.batch_size = 8;  // 3 full batches and one of 5
  opt.shuffle = true;
  opt.seed = 5;
  opt.mean = 0.1307f;
  opt.std = 0.3081f;
  opt.prefetch = false;
  ember::data::DataLoader loader(parts[0], opt);
  compare_loader(loader, parts[0], 2);
}

TEST_CASE("gather_normalize reproduces an MNIST-sized unshuffled DataLoader", "[kernels][data]") {
  const auto d = make_dataset(100, 28, 28, 21);
  ember::data::DataLoaderOptions opt;  // mean = std = 0.5
  opt.batch_size = 64;                 // one full batch, one of 36
  opt.prefetch = false;
  ember::data::DataLoader loader(ember::data::Subset::all(d), opt);
  compare_loader(loader, ember::data::Subset::all(d), 1);
}

TEST_CASE("data kernels: argument checks and empty batches", "[kernels][data]") {
  const Buffer<std::uint8_t> images(std::vector<std::uint8_t>{1, 2, 3, 4});
  const Buffer<I64> indices(std::vector<I64>{1});
  Buffer<float> out(2);
  CHECK_THROWS_AS(
      ek::gather_normalize(images.data(), indices.data(), 1, 2, 0.5f, 0.0f, out.data(), nullptr),
      ember::Error);
  ek::gather_normalize(images.data(), indices.data(), 0, 2, 0.5f, 0.5f, out.data(), nullptr);
  for (const float v : out.host()) CHECK(std::isnan(v));  // untouched
  ek::gather_normalize(images.data(), indices.data(), 1, 2, 0.5f, 0.5f, out.data(), nullptr);
  const auto v = out.host();
  // (pixel - 127.5) / 127.5, written out
  const float center = 127.5f, scale = 1.0f / 127.5f;
  // row 1 of the (2, 2) images
  CHECK(v[0] == (3.0f - center) * scale);
  CHECK(v[1] == (4.0f - center) * scale);
}
