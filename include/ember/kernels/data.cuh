#pragma once
// Batching on the GPU for a dataset kept whole in device memory (mnist_train --device cuda):
// gather a batch's images by index and normalise them, and gather their labels, with the CPU
// DataLoader's arithmetic: the same data::PixelNormalization (include/ember/data/normalize.hpp),
// (pixel - center) * scale, which no compiler can contract into a multiply-add, so batches are
// bit-identical on both devices.

#include <cstdint>

#include "common.cuh"
#include "ember/data/normalize.hpp"

namespace ember::kernels {

// (Templates only so that the header can be included by several translation units.)
template <class T>
EMBER_KERNEL void gather_normalize_kernel(const std::uint8_t* __restrict__ images,
                                          const std::int64_t* __restrict__ indices,
                                          std::int64_t batch, std::int64_t pixels,
                                          data::PixelNormalization norm, T* __restrict__ out) {
  const std::int64_t n = batch * pixels;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t k = i / pixels, j = i - k * pixels;
    const std::uint8_t px = images[indices[k] * pixels + j];
    out[i] = norm(px);
  }
}

template <class T>
EMBER_KERNEL void gather_labels_kernel(const T* __restrict__ labels,
                                       const std::int64_t* __restrict__ indices, std::int64_t batch,
                                       std::int64_t* __restrict__ out) {
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < batch;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[i] = static_cast<std::int64_t>(labels[indices[i]]);
}

// out (batch, pixels) = normalised images[indices[k]] for k < batch. images: the dataset's
// uint8 pixels (N, pixels); indices: device array of `batch` dataset rows (already mapped
// through the Subset, i.e. DataLoader's data_.indices[order[...]]), each in [0, N).
inline void gather_normalize(const std::uint8_t* images, const std::int64_t* indices,
                             std::int64_t batch, std::int64_t pixels, float mean, float std,
                             float* out, Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(std > 0, "gather_normalize: std must be positive, got ", std);
  EMBER_CHECK(threads >= 1 && threads <= 1024, "gather_normalize: bad block size ", threads);
  if (batch <= 0 || pixels <= 0) return;
  const data::PixelNormalization norm = data::PixelNormalization::from(mean, std);  // as DataLoader
  EMBER_LAUNCH(gather_normalize_kernel<float>, grid_for(batch * pixels, threads), threads, 0,
               stream)
  (images, indices, batch, pixels, norm, out);
  check_launch("gather_normalize_kernel");
}

// out[k] = labels[indices[k]]. The dataset's labels are int64 (ImageDataset::labels).
inline void gather_labels(const std::int64_t* labels, const std::int64_t* indices,
                          std::int64_t batch, std::int64_t* out, Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(threads >= 1 && threads <= 1024, "gather_labels: bad block size ", threads);
  if (batch <= 0) return;
  EMBER_LAUNCH(gather_labels_kernel<std::int64_t>, grid_for(batch, threads), threads, 0, stream)
  (labels, indices, batch, out);
  check_launch("gather_labels_kernel");
}

// The same for labels stored as uint8 (e.g. a raw IDX label file copied to the device).
inline void gather_labels(const std::uint8_t* labels, const std::int64_t* indices,
                          std::int64_t batch, std::int64_t* out, Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(threads >= 1 && threads <= 1024, "gather_labels: bad block size ", threads);
  if (batch <= 0) return;
  EMBER_LAUNCH(gather_labels_kernel<std::uint8_t>, grid_for(batch, threads), threads, 0, stream)
  (labels, indices, batch, out);
  check_launch("gather_labels_kernel");
}

}  // namespace ember::kernels
