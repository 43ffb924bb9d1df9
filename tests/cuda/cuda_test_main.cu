// Catch2's main for the CUDA tests: on a machine without a CUDA device they cannot run, so the
// program says so and exits with 77, which CTest reports as skipped (not passed).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cuda_runtime.h>

#include <cstdio>

int main(int argc, char** argv) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::printf("no CUDA device (%s): CUDA tests skipped\n",
                e != cudaSuccess ? cudaGetErrorName(e) : "0 devices");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
