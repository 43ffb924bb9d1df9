// Catch2's main for tests/cuda/*.cpp on a machine without a GPU: the CUDA backend is the
// harness one (support/emu_backend.hpp), so every device path runs the real kernels on the CPU.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "support/emu_backend.hpp"

int main(int argc, char** argv) {
  ember::emu::register_emulated_cuda_backend();
  return Catch::Session().run(argc, argv);
}
