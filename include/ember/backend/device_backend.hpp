#pragma once
// What the ops hand a GPU backend beyond the device runtime (core/device_runtime.hpp: memory,
// copies, graphs): the elementwise op codes and the fused SGD step's arguments. The op kernels
// themselves are a table, backend/dispatch.hpp.

#include <cstdint>

#include "ember/backend/params.hpp"
#include "ember/core/device_runtime.hpp"
#include "ember/core/random.hpp"

namespace ember::backend {

enum class BinaryOp { add, sub, mul, div, pow, relu_grad, max, min };
enum class UnaryOp {
  neg, exp, log, add_scalar, mul_scalar, pow_scalar, rsub_scalar, relu, sqrt, abs, rsqrt, sign
};

using ember::PhiloxArgs;

// One parameter's slice of a fused SGD step.
struct SgdTensorRef {
  float* param;
  const float* grad;
  float* momentum;  // null when momentum is 0
  std::int64_t n;
};
struct SgdStepArgs {
  float lr, momentum, dampening_factor, weight_decay;
  bool nesterov, first_step;
  bool maximize = false;  // steps along +grad (the gradient is negated first)
};

}  // namespace ember::backend
