// The data loader alone, with augmentation: images per second that the DataLoader delivers
// as batches of 128, shuffled, each image through
//   RandomCrop(side, padding 4) + RandomHorizontalFlip + ToTensor + Normalize
// (the recipe of a small CNN on Fashion-MNIST or CIFAR-10), for num_workers 0 (batches made
// on the calling thread), 1 and 2 worker threads (prefetch_factor 2). Nothing consumes the
// batches: this is the most the loader can feed a training step, to set against the step's
// own images per second (a batch-64 MNIST step of ~70 ms on 2 threads needs ~900 images/s).
//
//   Loader/FashionMNIST28/workers:N   Fashion-MNIST's training images, 1 x 28 x 28 uint8 (from
//                                     /usr/share/datasets/fashion-mnist, Debian's
//                                     dataset-fashion-mnist; synthetic images of that size
//                                     when it is not installed, which the label says)
//   Loader/RGB32/workers:N            synthetic 3 x 32 x 32 uint8 images (CIFAR-10's size)
//
// Each iteration is one epoch over 8,192 images (64 batches). Items are images; cpu_time is
// the whole process's (the workers' included).
//   build-bench/bench/bench_data --benchmark_filter=RGB32

#include <benchmark/benchmark.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "common.hpp"
#include "ember/data/dataloader.hpp"
#include "ember/data/dataset.hpp"
#include "ember/data/transforms.hpp"

namespace {

using namespace ember;
using namespace ember::data::transforms;

constexpr std::int64_t kImages = 8192, kBatch = 128;

Transform augment(std::int64_t side, std::vector<double> mean, std::vector<double> std) {
  return Compose({RandomCrop(side, {.padding = 4}), RandomHorizontalFlip(), ToTensor(),
                  Normalize(std::move(mean), std::move(std))});
}

// kImages random uint8 images (c, side, side) with labels in [0, 10).
std::shared_ptr<const data::Dataset> synthetic(std::int64_t c, std::int64_t side, Transform t) {
  Generator gen(5);
  Tensor<std::uint8_t> images = Tensor<std::uint8_t>::empty({kImages, c, side, side});
  for (std::int64_t i = 0; i < images.numel(); ++i)
    images.data()[i] = static_cast<std::uint8_t>(gen.below(256));
  Tensor<std::int64_t> labels = Tensor<std::int64_t>::empty({kImages});
  for (std::int64_t i = 0; i < kImages; ++i)
    labels.data()[i] = static_cast<std::int64_t>(gen.below(10));
  return std::make_shared<const data::TensorDataset>(images, labels, std::move(t), 10);
}

// The first kImages of Fashion-MNIST's training set, or synthetic images of its size.
std::shared_ptr<const data::Dataset> fashion(bool& real) {
  Transform t = augment(28, {0.2860}, {0.3530});
  const std::string root = data::FashionMNIST::default_root;
  real = std::filesystem::exists(std::filesystem::path(root) / "train-images-idx3-ubyte.gz");
  if (!real) return synthetic(1, 28, t);
  auto all = std::make_shared<const data::FashionMNIST>(root, data::Split::train, t);
  std::vector<std::int64_t> first(static_cast<std::size_t>(kImages));
  for (std::int64_t i = 0; i < kImages; ++i) first[static_cast<std::size_t>(i)] = i;
  return std::make_shared<const data::DatasetSubset>(all, first);
}

void run(benchmark::State& state, const std::shared_ptr<const data::Dataset>& d) {
  data::DataLoader loader(d, {.batch_size = kBatch, .shuffle = true, .seed = 1,
                              .prefetch = false,
                              .num_workers = static_cast<int>(state.range(0)),
                              .prefetch_factor = 2});
  std::int64_t images = 0;
  for (auto _ : state) {
    for (const data::Batch& b : loader.epoch()) {
      benchmark::DoNotOptimize(b.images.data());
      images += b.labels.size(0);
    }
  }
  state.SetItemsProcessed(images);
}

void BM_LoaderFashionMNIST28(benchmark::State& state) {
  static bool real = false;
  static const auto d = fashion(real);
  if (!real) state.SetLabel("synthetic: Fashion-MNIST is not installed");
  run(state, d);
}

void BM_LoaderRGB32(benchmark::State& state) {
  static const auto d = synthetic(3, 32, augment(32, {0.4914, 0.4822, 0.4465},
                                                 {0.2470, 0.2435, 0.2616}));
  run(state, d);
}

void configure(benchmark::internal::Benchmark* b) {
  ember::bench::configure(b);
  b->MeasureProcessCPUTime();  // the workers' time too
  b->ArgName("workers")->Arg(0)->Arg(1)->Arg(2);
}

BENCHMARK(BM_LoaderFashionMNIST28)->Name("Loader/FashionMNIST28")->Apply(configure);
BENCHMARK(BM_LoaderRGB32)->Name("Loader/RGB32")->Apply(configure);

}  // namespace

BENCHMARK_MAIN();
