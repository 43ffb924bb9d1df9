#pragma once
// DistributedSampler: torch.utils.data.distributed.DistributedSampler. Each of num_replicas
// processes reads its own share of the dataset: the epoch's order (a permutation drawn from
// Generator(seed + epoch) when shuffling, else 0..n-1) is padded to a multiple of num_replicas by
// repeating its start (drop_last=false) or cut to one (drop_last=true), and rank r takes
// positions r, r + num_replicas, r + 2 num_replicas, ... Every process must call set_epoch(e)
// with the same e before each epoch, or every epoch repeats the first one's order.
//
// Plain C++ (no MPI): the rank and the number of replicas are given, as PyTorch allows.
//
//   auto sampler = std::make_shared<dist::DistributedSampler>(train->size(),
//       dist::DistributedSamplerOptions{.num_replicas = dist::world_size(),
//                                       .rank = dist::rank(), .seed = 1});
//   data::DataLoader loader(train, {.batch_size = 32});  // 32 per process
//   loader.set_sampler(sampler);
//   for (epoch ...) { sampler->set_epoch(epoch); for (const data::Batch& b : loader.epoch()) ... }

#include <cstdint>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/random.hpp"
#include "ember/data/mnist.hpp"
#include "ember/data/sampler.hpp"

namespace ember::dist {

/// DistributedSampler's settings (PyTorch's arguments and defaults).
struct DistributedSamplerOptions {
  int num_replicas = 1;  ///< the world size
  int rank = 0;          ///< this process, in [0, num_replicas)
  bool shuffle = true;   ///< a new order every epoch, from Generator(seed + epoch)
  std::uint64_t seed = 0;  ///< the same on every process
  /// Drop the tail that does not divide evenly (instead of padding by repeating the start).
  bool drop_last = false;
};

/// One process's share of a dataset of `dataset_size` samples per epoch.
class DistributedSampler : public data::Sampler {
 public:
  DistributedSampler(std::int64_t dataset_size, DistributedSamplerOptions options)
      : n_(dataset_size), o_(options) {
    EMBER_CHECK(dataset_size >= 0, "DistributedSampler: negative dataset size ", dataset_size);
    EMBER_CHECK(o_.num_replicas >= 1, "DistributedSampler: num_replicas must be at least 1, got ",
                o_.num_replicas);
    EMBER_CHECK(o_.rank >= 0 && o_.rank < o_.num_replicas, "DistributedSampler: invalid rank ",
                o_.rank, ", rank should be in the interval [0, ", o_.num_replicas - 1, "]");
    const std::int64_t r = o_.num_replicas;
    // PyTorch: with drop_last and an uneven split, ceil((n - r) / r) each; else ceil(n / r).
    num_samples_ = (o_.drop_last && n_ % r != 0) ? (n_ - r + r - 1) / r : (n_ + r - 1) / r;
    if (num_samples_ < 0) num_samples_ = 0;
    total_size_ = num_samples_ * r;
  }

  /// Samples this process reads per epoch (len(sampler)).
  [[nodiscard]] std::int64_t size() const override { return num_samples_; }
  /// Samples all processes read together per epoch (with the padding).
  [[nodiscard]] std::int64_t total_size() const { return total_size_; }
  /// The epoch whose order indices() gives; call it before each epoch on every process.
  void set_epoch(std::int64_t epoch) { epoch_ = epoch; }
  /// The current epoch.
  [[nodiscard]] std::int64_t epoch() const { return epoch_; }
  /// The settings.
  [[nodiscard]] const DistributedSamplerOptions& options() const { return o_; }

  /// The order of the whole epoch before it is dealt out: padded or cut to total_size().
  [[nodiscard]] std::vector<std::int64_t> global_order() const {
    std::vector<std::int64_t> order;
    if (o_.shuffle) {
      Generator gen(o_.seed + static_cast<std::uint64_t>(epoch_));
      order = data::random_permutation(n_, gen);
    } else {
      order.resize(static_cast<std::size_t>(n_));
      for (std::int64_t i = 0; i < n_; ++i) order[static_cast<std::size_t>(i)] = i;
    }
    const auto total = static_cast<std::size_t>(total_size_);
    if (order.size() > total) {
      order.resize(total);  // drop_last: the tail that does not divide evenly
    } else if (n_ > 0) {
      // Pad by repeating the order from its start (more than once when n < padding).
      for (std::size_t i = 0; order.size() < total; ++i) order.push_back(order[i]);
    }
    return order;
  }

  /// This rank's positions: global_order()[rank], [rank + num_replicas], ...
  [[nodiscard]] std::vector<std::int64_t> indices() const override {
    const std::vector<std::int64_t> order = global_order();
    std::vector<std::int64_t> mine;
    mine.reserve(static_cast<std::size_t>(num_samples_));
    for (std::size_t i = static_cast<std::size_t>(o_.rank); i < order.size();
         i += static_cast<std::size_t>(o_.num_replicas))
      mine.push_back(order[i]);
    return mine;
  }

 private:
  std::int64_t n_;
  DistributedSamplerOptions o_;
  std::int64_t num_samples_ = 0, total_size_ = 0;
  std::int64_t epoch_ = 0;
};

}  // namespace ember::dist
