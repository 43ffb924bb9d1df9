#pragma once
// Sampler: what a DataLoader reads in an epoch, as torch.utils.data.Sampler: a list of positions
// into the dataset, possibly a subset of it or with repeats (DistributedSampler pads by
// repeating). A loader given a sampler asks it for each epoch's positions instead of drawing its
// own order.

#include <cstdint>
#include <vector>

namespace ember::data {

/// torch.utils.data.Sampler: the positions into a dataset that an epoch visits, in order.
class Sampler {
 public:
  virtual ~Sampler() = default;
  /// How many positions an epoch has (len(sampler)).
  [[nodiscard]] virtual std::int64_t size() const = 0;
  /// The positions of the current epoch, size() of them, each in [0, dataset size).
  [[nodiscard]] virtual std::vector<std::int64_t> indices() const = 0;
};

}  // namespace ember::data
