#pragma once
// The CUDA backend's vendor-library choices, for tests that run an op with each in turn: GEMMs
// ("cublas" and ember's "custom" kernels) and convolutions ("cudnn" and "custom"), chosen through
// the registry (DeviceRuntime::set_gemm_backend / set_conv_backend) for one scope.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "ember/backend/device_backend.hpp"
#include "support/op_case.hpp"

namespace ember::test {

// Selects a GEMM or convolution backend for a scope and restores the previous one after it.
class BackendScope {
 public:
  enum Family { gemm, conv };
  BackendScope(Family family, const std::string& name) : family_(family) {
    auto& rt = ember::backend::cuda_runtime();
    previous_ = family == gemm ? rt.gemm_backend() : rt.conv_backend();
    if (family == gemm) rt.set_gemm_backend(name);
    else rt.set_conv_backend(name);
    REQUIRE((family == gemm ? rt.gemm_backend() : rt.conv_backend()) == name);
  }
  BackendScope(const BackendScope&) = delete;
  BackendScope& operator=(const BackendScope&) = delete;
  ~BackendScope() {
    try {
      auto& rt = ember::backend::cuda_runtime();
      if (family_ == gemm) rt.set_gemm_backend(previous_);
      else rt.set_conv_backend(previous_);
    } catch (...) {  // a destructor must not throw; the previous name came from the runtime
    }
  }

 private:
  Family family_;
  std::string previous_;
};

// The backends of a family to run each device agreement with: both where the program has a
// CUDA device (op_devices()), none in a program without one (nothing to agree with there).
[[nodiscard]] inline std::vector<std::string> cuda_backends(BackendScope::Family family) {
  if (op_devices().size() < 2) return {};
  if (family == BackendScope::gemm) return {"cublas", "custom"};
  return {"cudnn", "custom"};
}

}  // namespace ember::test
