// Tests for ember/dist/sampler.hpp (no MPI: the rank and world size are given) and a
// DataLoader reading through a sampler: every sample exactly once per epoch over the ranks
// (padding repeats the start of the order, drop_last cuts the tail), PyTorch's sizes, a new
// order per epoch from seed + epoch, the same order on every rank.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "ember/data/dataloader.hpp"
#include "ember/dist/sampler.hpp"

namespace {

using namespace ember;

// Sample i is a 1x1x1 image holding i, label i % 10.
struct Counting : data::Dataset {
  explicit Counting(std::int64_t n) : n_(n) {}
  std::int64_t size() const override { return n_; }
  data::Example get(std::int64_t i) const override {
    Tensor<float> img = Tensor<float>::full({1, 1, 1}, static_cast<float>(i));
    return {img, i % 10};
  }
  std::int64_t num_classes() const override { return 10; }
  std::int64_t n_;
};

std::vector<dist::DistributedSampler> samplers(std::int64_t n, int world, bool shuffle,
                                               bool drop_last, std::uint64_t seed = 7) {
  std::vector<dist::DistributedSampler> out;
  for (int r = 0; r < world; ++r)
    out.emplace_back(n, dist::DistributedSamplerOptions{.num_replicas = world, .rank = r,
                                                        .shuffle = shuffle, .seed = seed,
                                                        .drop_last = drop_last});
  return out;
}

}  // namespace

TEST_CASE("DistributedSampler: each sample exactly once per epoch, padded by repetition",
          "[dist][sampler]") {
  const std::int64_t n = GENERATE(1, 2, 7, 10, 12, 13, 100);
  const int world = GENERATE(1, 2, 3, 4, 5);
  const bool shuffle = GENERATE(false, true);
  CAPTURE(n, world, shuffle);
  auto s = samplers(n, world, shuffle, /*drop_last=*/false);
  const std::int64_t per = (n + world - 1) / world;  // PyTorch: ceil(n / world)
  for (std::int64_t epoch = 0; epoch < 3; ++epoch) {
    std::map<std::int64_t, int> seen;
    for (auto& sm : s) {
      sm.set_epoch(epoch);
      const auto idx = sm.indices();
      REQUIRE(static_cast<std::int64_t>(idx.size()) == per);
      REQUIRE(sm.size() == per);
      for (std::int64_t i : idx) ++seen[i];
    }
    // Every sample at least once; exactly total - n of them twice (or more when n < padding).
    REQUIRE(static_cast<std::int64_t>(seen.size()) == n);
    std::int64_t extra = 0;
    for (auto [i, c] : seen) {
      REQUIRE(i >= 0);
      REQUIRE(i < n);
      extra += c - 1;
    }
    REQUIRE(extra == per * world - n);
    // The padding is the start of the epoch's order repeated.
    const auto order = s[0].global_order();
    for (std::int64_t k = n; k < per * world; ++k)
      REQUIRE(order[static_cast<std::size_t>(k)] == order[static_cast<std::size_t>(k % n)]);
  }
}

TEST_CASE("DistributedSampler: drop_last keeps each sample at most once, ranks equal",
          "[dist][sampler]") {
  const std::int64_t n = GENERATE(3, 7, 10, 12, 13, 100);
  const int world = GENERATE(1, 2, 3, 4);
  const bool shuffle = GENERATE(false, true);
  CAPTURE(n, world, shuffle);
  auto s = samplers(n, world, shuffle, /*drop_last=*/true);
  // PyTorch: ceil((n - world) / world) when world does not divide n, else n / world.
  const std::int64_t per = n % world != 0 ? (n - world + world - 1) / world : n / world;
  std::set<std::int64_t> seen;
  for (auto& sm : s) {
    const auto idx = sm.indices();
    REQUIRE(static_cast<std::int64_t>(idx.size()) == per);
    for (std::int64_t i : idx) REQUIRE(seen.insert(i).second);  // never twice
  }
  REQUIRE(static_cast<std::int64_t>(seen.size()) == per * world);
  REQUIRE(n - per * world < world);  // fewer than world samples dropped
}

TEST_CASE("DistributedSampler: the order depends on seed + epoch only", "[dist][sampler]") {
  dist::DistributedSampler a(50, {.num_replicas = 2, .rank = 1, .seed = 3});
  dist::DistributedSampler b(50, {.num_replicas = 2, .rank = 1, .seed = 3});
  REQUIRE(a.indices() == b.indices());
  const auto first = a.indices();
  a.set_epoch(1);
  REQUIRE(a.indices() != first);  // a new shuffle each epoch
  b.set_epoch(1);
  REQUIRE(a.indices() == b.indices());
  // seed + epoch, as PyTorch: seed 3 epoch 1 is seed 4 epoch 0.
  dist::DistributedSampler c(50, {.num_replicas = 2, .rank = 1, .seed = 4});
  REQUIRE(c.indices() == a.indices());
  // Without shuffle: rank r takes r, r + world, ...
  dist::DistributedSampler d(7, {.num_replicas = 3, .rank = 2, .shuffle = false});
  REQUIRE(d.indices() == std::vector<std::int64_t>{2, 5, 1});  // 0..6 padded by 0, 1
}

TEST_CASE("DistributedSampler: bad settings are refused", "[dist][sampler]") {
  REQUIRE_THROWS_WITH(dist::DistributedSampler(10, {.num_replicas = 2, .rank = 2}),
                      Catch::Contains("invalid rank 2"));
  REQUIRE_THROWS_WITH(dist::DistributedSampler(10, {.num_replicas = 0}),
                      Catch::Contains("num_replicas"));
  auto ds = std::make_shared<Counting>(10);
  data::DataLoader shuffled(ds, {.batch_size = 2, .shuffle = true});
  REQUIRE_THROWS_WITH(shuffled.set_sampler(std::make_shared<dist::DistributedSampler>(
                          10, dist::DistributedSamplerOptions{})),
                      Catch::Contains("mutually exclusive with shuffle"));
}

TEST_CASE("DataLoader with a DistributedSampler: the ranks' batches cover the epoch",
          "[dist][sampler]") {
  const int world = GENERATE(2, 3);
  const bool drop_last = GENERATE(false, true);
  CAPTURE(world, drop_last);
  const std::int64_t n = 23;
  auto ds = std::make_shared<Counting>(n);
  std::multiset<std::int64_t> seen;
  std::int64_t batches = -1;
  for (int r = 0; r < world; ++r) {
    auto sm = std::make_shared<dist::DistributedSampler>(
        n, dist::DistributedSamplerOptions{.num_replicas = world, .rank = r, .seed = 5,
                                           .drop_last = drop_last});
    sm->set_epoch(2);
    data::DataLoader loader(ds, {.batch_size = 4, .num_workers = 2});
    loader.set_sampler(sm);
    REQUIRE(loader.epoch_size() == sm->size());
    if (batches < 0) batches = loader.num_batches();
    REQUIRE(loader.num_batches() == batches);  // the same number of steps on every rank
    std::vector<std::int64_t> got;
    for (const data::Batch& b : loader.epoch())
      for (std::int64_t k = 0; k < b.images.size(0); ++k) {
        got.push_back(static_cast<std::int64_t>(b.images.data()[k]));
        REQUIRE(b.labels.data()[k] == got.back() % 10);
      }
    REQUIRE(got == sm->indices());
    seen.insert(got.begin(), got.end());
  }
  for (std::int64_t i = 0; i < n; ++i) {
    if (drop_last) REQUIRE(seen.count(i) <= 1);
    else REQUIRE(seen.count(i) >= 1);
  }
  const std::int64_t per = drop_last ? (n - world + world - 1) / world : (n + world - 1) / world;
  REQUIRE(static_cast<std::int64_t>(seen.size()) == per * world);
}
