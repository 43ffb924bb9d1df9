#pragma once
// CPU dropout mask, as kernels/dropout.cuh: mask[i] = scale where Philox's uniform float for
// counter rng.offset + i (seed rng.seed) is >= p, else 0. scale is 1 / (1 - p), worked out by
// the caller from the double p.

#include <cstdint>

#include "ember/core/random.hpp"

namespace ember::cpu {

template <class T>
void dropout_mask(PhiloxArgs rng, float p, T scale, T* mask, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i)
    mask[i] = Philox::uniform<float>(rng.seed, rng.offset + static_cast<std::uint64_t>(i)) >= p ? scale : T(0);
}

}  // namespace ember::cpu
