#pragma once
// What every kernel file shares: the CUDA spelling of kernels and launches, the error check
// after each launch, small device helpers, and the strided-view descriptor.
//
// Kernel sources compile in two ways:
//   * by nvcc (__CUDACC__): real CUDA, launched with <<<grid, block, smem, stream>>>;
//   * by the host compiler with EMBER_CUDA_EMULATION defined, after including the test-only
//     CPU execution harness (tests/support/cuda_emu.hpp), which supplies threadIdx, blockIdx,
//     __syncthreads, __shared__, warp shuffles and atomics. CI runs every kernel's exact
//     source this way, because CI machines have no GPU.
// Kernels may use only what the harness emulates; docs/cuda.md lists it.

#include <cstdint>

#include "ember/backend/params.hpp"
#include "ember/core/error.hpp"
#include "ember/core/macros.hpp"

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#define EMBER_KERNEL __global__
#define EMBER_DEVICE __device__ __forceinline__
// EMBER_LAUNCH(kernel, grid, block, smem_bytes, stream)(args...)
#define EMBER_LAUNCH(kernel, grid, block, smem, stream) kernel<<<(grid), (block), (smem), (stream)>>>
// Dynamic shared memory as a typed pointer: EMBER_DYNAMIC_SHARED(float, tile);
#define EMBER_DYNAMIC_SHARED(type, name)                           \
  extern __shared__ __align__(16) unsigned char ember_dynamic_smem_[]; \
  type* name = reinterpret_cast<type*>(ember_dynamic_smem_)
#elif defined(EMBER_CUDA_EMULATION)
// Everything above is defined by the emulation harness.
#else
#error "kernels/*.cuh are CUDA sources: compile them with nvcc, or include tests/support/cuda_emu.hpp first to run them on the CPU"
#endif

namespace ember::kernels {

using Stream = cudaStream_t;

// Throws ember::Error naming the kernel when its launch failed (bad configuration, no device,
// an earlier asynchronous fault).
inline void check_launch(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  EMBER_CHECK(e == cudaSuccess, "CUDA kernel ", kernel, " failed to launch: ",
              cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

template <class T>
EMBER_HOST_DEVICE constexpr T kmin(T a, T b) { return b < a ? b : a; }
template <class T>
EMBER_HOST_DEVICE constexpr T kmax(T a, T b) { return a < b ? b : a; }
EMBER_HOST_DEVICE constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) {
  return (a + b - 1) / b;
}

// StridedView and kMaxDims (ember/backend/params.hpp): a rank <= 8 operand passed by value.
using ember::kMaxDims;
using ember::StridedView;

// Grid size for a 1-D grid-stride loop over n elements.
inline unsigned grid_for(std::int64_t n, int block, std::int64_t max_blocks = 65535) {
  const std::int64_t b = ceil_div(n, block);
  return static_cast<unsigned>(b < 1 ? 1 : (b > max_blocks ? max_blocks : b));
}

}  // namespace ember::kernels
