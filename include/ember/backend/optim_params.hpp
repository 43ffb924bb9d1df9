#pragma once
// The arguments of the fused Adam/AdamW and RMSprop steps (optim/adam.hpp, optim/rmsprop.hpp),
// shared by the CPU kernels (backend/cpu/adam.hpp, backend/cpu/rmsprop.hpp), the CUDA kernels
// (kernels/adam.cuh, kernels/rmsprop.cuh) and the tests. Every scalar is the float PyTorch's
// single-tensor loop hands its float32 kernels: worked out in double on the host, then
// rounded once.

#include <cstdint>

namespace ember::backend {

// One parameter's slice of an Adam step. The bias corrections depend on the parameter's own
// step count, so they travel with it.
struct AdamTensorRef {
  float* param;
  const float* grad;
  float* exp_avg;
  float* exp_avg_sq;
  float* max_exp_avg_sq;  // null unless amsgrad
  std::int64_t n;
  float neg_step_size;          // -(lr / (1 - beta1^step))
  float bias_correction2_sqrt;  // (1 - beta2^step)^0.5
};
struct AdamStepArgs {
  float one_minus_beta1;  // lerp weight of exp_avg
  float beta2;
  float one_minus_beta2;
  float eps;
  float weight_decay;  // L2 (added to the gradient); 0 when decoupled
  float decay_factor;  // 1 - lr * weight_decay when decoupled (AdamW), else 1
  bool amsgrad;
  bool maximize;
};

// One parameter's slice of an RMSprop step.
struct RmspropTensorRef {
  float* param;
  const float* grad;
  float* square_avg;
  float* grad_avg;         // null unless centered
  float* momentum_buffer;  // null unless momentum > 0
  std::int64_t n;
};
struct RmspropStepArgs {
  float neg_lr;  // -lr
  float alpha;
  float one_minus_alpha;
  float eps;
  float weight_decay;
  float momentum;
  bool centered;
  bool maximize;
};

}  // namespace ember::backend
