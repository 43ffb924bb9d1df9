#pragma once
// A single-thread store of a 64-bit value, ordered on the stream. A CUDA graph captures the
// value with the launch, so replays that each need a fresh value (the Philox offset of a
// replayed training step) launch this kernel outside the graph, just before the replay.

#include "common.cuh"

namespace ember::kernels {

// (A template so that several translation units may include it.)
template <class T>
EMBER_KERNEL void set_scalar_kernel(T* p, T value) {
  if (threadIdx.x == 0 && blockIdx.x == 0) *p = value;
}

inline void set_u64(std::uint64_t* p, std::uint64_t value, Stream stream) {
  EMBER_LAUNCH(set_scalar_kernel<std::uint64_t>, 1, 32, 0, stream)(p, value);
  check_launch("set_scalar_kernel");
}

}  // namespace ember::kernels
