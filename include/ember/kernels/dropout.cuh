#pragma once
// Dropout masks from the Philox generator, and applying a mask (forward and backward), with
// the CPU ops' exact formulas (include/ember/ops/dropout.hpp):
//   mask[i] = Philox::uniform<float>(seed, base + i) >= float(p) ? T(1.0 / (1.0 - p)) : T(0)
//   y[i]    = x[i] * mask[i / inner]   (inner = 1 for dropout, H * W for dropout2d)
// so a GPU draw at the same seed and counter base as a CPU Generator draw gives the very same
// mask. The caller reserves the counters (Generator::reserve(n)) as the CPU op does, and
// handles p == 0 (identity, nothing drawn) and p == 1 (zeros, nothing drawn) the same way.

#include <cstdint>

#include "common.cuh"
#include "ember/core/random.hpp"

namespace ember::kernels {

// Where a draw's counters start: base = offset + (offset_ptr ? *offset_ptr : 0). The same
// struct as the CPU side's (ember::PhiloxArgs, include/ember/core/random.hpp).
// offset_ptr, when set, points to a 64-bit counter in device memory that the kernel reads when
// it runs, not when it is launched. A CUDA graph captures kernel arguments by value, so a
// captured dropout launch with only `offset` would replay the same mask forever; with
// offset_ptr (Generator::begin_capture makes the draws relative to it) the host, or a small
// kernel in the same stream, sets the device counter before each replay and every replay draws
// fresh counters.
using PhiloxArgs = ::ember::PhiloxArgs;

template <class T>
EMBER_KERNEL void dropout_mask_kernel(std::uint64_t seed, std::uint64_t offset,
                                      const std::uint64_t* __restrict__ offset_ptr, float p,
                                      T scale, T* __restrict__ mask, std::int64_t n) {
  const std::uint64_t base = offset + (offset_ptr != nullptr ? *offset_ptr : std::uint64_t{0});
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    mask[i] =
        Philox::uniform<float>(seed, base + static_cast<std::uint64_t>(i)) >= p ? scale : T(0);
}

template <class T>
EMBER_KERNEL void dropout_apply_kernel(const T* x, const T* __restrict__ mask,
                                       T* y,  // y may alias x
                                       std::int64_t n, std::int64_t inner) {
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    y[i] = x[i] * mask[inner == 1 ? i : i / inner];
}

// mask[i] for i in [0, n): 0 or `scale`, the element being kept when
// Philox::uniform<float>(seed, base + i) >= p. The caller passes the CPU op's values:
// p = static_cast<float>(p_double) and scale = static_cast<T>(1.0 / (1.0 - p_double)), both from
// the double probability (the form the device backend's interface takes).
template <class T>
void dropout_mask(PhiloxArgs rng, float p, T scale, T* mask, std::int64_t n, Stream stream,
                  int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(p >= 0.0f && p <= 1.0f, "dropout probability has to be between 0 and 1, but got ", p);
  EMBER_CHECK(threads >= 1 && threads <= 1024, "dropout_mask: bad block size ", threads);
  if (n <= 0) return;
  EMBER_LAUNCH(dropout_mask_kernel<T>, grid_for(n, threads), threads, 0, stream)
  (rng.seed, rng.offset, rng.offset_ptr, p, scale, mask, n);
  check_launch("dropout_mask_kernel");
}

// The same from the probability itself, exactly as ember::detail::dropout_mask: p is taken in
// double as the CPU op takes it (a float argument converts exactly), the threshold being
// float(p) and the scale static_cast<T>(1.0 / (1.0 - p)), computed here on the host in double.
template <class T>
void dropout_mask(PhiloxArgs rng, double p, T* mask, std::int64_t n, Stream stream,
                  int threads = 256) {
  EMBER_CHECK(p >= 0.0 && p <= 1.0, "dropout probability has to be between 0 and 1, but got ", p);
  dropout_mask<T>(rng, static_cast<float>(p), static_cast<T>(1.0 / (1.0 - p)), mask, n, stream,
                  threads);
}

// y[i] = x[i] * mask[i / inner] for i in [0, n): the dropout forward (x = input) and backward
// (x = upstream gradient) alike. inner = 1 for dropout (mask has n elements) and H * W for
// dropout2d on NCHW (mask has N * C elements). y may alias x.
template <class T>
void dropout_apply(const T* x, const T* mask, T* y, std::int64_t n, std::int64_t inner,
                   Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(inner >= 1, "dropout_apply: inner must be positive, got ", inner);
  EMBER_CHECK(threads >= 1 && threads <= 1024, "dropout_apply: bad block size ", threads);
  if (n <= 0) return;
  EMBER_LAUNCH(dropout_apply_kernel<T>, grid_for(n, threads), threads, 0, stream)
  (x, mask, y, n, inner);
  check_launch("dropout_apply_kernel");
}

}  // namespace ember::kernels
