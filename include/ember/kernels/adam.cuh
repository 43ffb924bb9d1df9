#pragma once
// One fused launch of an Adam/AdamW step over many float tensors (include/ember/optim/adam.hpp),
// element for element the CPU loop's operations in the same order (backend/cpu/adam.hpp):
//   g = maximize ? -grad : grad
//   p = p * decay_factor                      (AdamW; decay_factor = 1 - lr * weight_decay)
//   g = g + weight_decay * p                  (Adam's L2 decay)
//   m = |w| < 0.5 ? m + w * (g - m) : g - (g - m) * (1 - w)      w = 1 - beta1 (torch.lerp)
//   v = v * beta2 + ((1 - beta2) * g) * g
//   vmax = max(vmax, v)                       (amsgrad; NaN wins)
//   p = p + (neg_step_size * m) / (sqrt(amsgrad ? vmax : v) / bias_correction2_sqrt + eps)
// neg_step_size and bias_correction2_sqrt belong to each tensor (its own step count).
// Rounding: every product and sum is rounded on its own (__fmul_rn, __fadd_rn, ...), divisions
// and the square root are IEEE (__fdiv_rn, __fsqrt_rn), so the results are bit-identical to the
// CPU loop compiled without contraction; where the host compiler contracts a * b + c, a few
// ulps apart (the tests allow that, as for SGD).

#include <cstdint>

#include "common.cuh"

namespace ember::kernels {

struct AdamTensor {
  float* param = nullptr;
  const float* grad = nullptr;
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
  float* max_exp_avg_sq = nullptr;  // null unless AdamArgs::amsgrad
  std::int64_t n = 0;
  float neg_step_size = 0;          // -(lr / (1 - beta1^step))
  float bias_correction2_sqrt = 1;  // (1 - beta2^step)^0.5
};

struct AdamArgs {
  float one_minus_beta1 = 0.1f;
  float beta2 = 0.999f;
  float one_minus_beta2 = 0.001f;
  float eps = 1e-8f;
  float weight_decay = 0;  // L2, added to the gradient (0 for AdamW)
  float decay_factor = 1;  // AdamW's 1 - lr * weight_decay (1 for Adam)
  bool amsgrad = false;
  bool maximize = false;
};

// Up to this many tensors per launch, passed by value in the kernel's parameters (56 bytes
// each: the list stays well inside the 4 KiB of kernel parameters), so that a captured CUDA
// graph holds the list itself.
inline constexpr int kAdamMaxTensors = 32;
struct AdamTensorList {
  int count = 0;
  AdamTensor t[kAdamMaxTensors];
};

namespace adam_detail {
// The update of one tensor by this block (grid-stride along x).
EMBER_DEVICE void update(const AdamTensor& t, const AdamArgs& a) {
  const float w = a.one_minus_beta1;
  const bool small_weight = (w < 0.0f ? -w : w) < 0.5f;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < t.n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    float p = t.param[i];
    float g = a.maximize ? -t.grad[i] : t.grad[i];
    if (a.decay_factor != 1.0f) p = __fmul_rn(p, a.decay_factor);
    if (a.weight_decay != 0.0f) g = __fadd_rn(g, __fmul_rn(a.weight_decay, p));
    const float m0 = t.exp_avg[i];
    const float diff = __fsub_rn(g, m0);
    const float m = small_weight ? __fadd_rn(m0, __fmul_rn(w, diff))
                                 : __fsub_rn(g, __fmul_rn(diff, __fsub_rn(1.0f, w)));
    const float v = __fadd_rn(__fmul_rn(t.exp_avg_sq[i], a.beta2),
                              __fmul_rn(__fmul_rn(a.one_minus_beta2, g), g));
    t.exp_avg[i] = m;
    t.exp_avg_sq[i] = v;
    float vhat = v;
    if (a.amsgrad) {
      const float old = t.max_exp_avg_sq[i];
      vhat = (old != old || v != v) ? __fadd_rn(old, v) : (old > v ? old : v);
      t.max_exp_avg_sq[i] = vhat;
    }
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vhat), t.bias_correction2_sqrt), a.eps);
    t.param[i] = __fadd_rn(p, __fdiv_rn(__fmul_rn(t.neg_step_size, m), denom));
  }
}
inline void check_threads(int threads) {
  EMBER_CHECK(threads >= 1 && threads <= 1024, "adam_step: bad block size ", threads);
}
}  // namespace adam_detail

// blockIdx.y: the tensor. (A template only so that the header can be included by several
// translation units; T = float.)
template <class T>
EMBER_KERNEL void adam_step_list_kernel(AdamTensorList list, AdamArgs a) {
  adam_detail::update(list.t[blockIdx.y], a);
}

// One Adam step for list.count tensors; max_n: the largest tensor's element count (sizes the
// grid: at most 1024 blocks per tensor along x, the loop strides over the rest).
inline void adam_step(const AdamTensorList& list, std::int64_t max_n, AdamArgs args, Stream stream,
                      int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(list.count >= 0 && list.count <= kAdamMaxTensors, "adam_step: a list holds at most ",
              kAdamMaxTensors, " tensors, got ", list.count);
  adam_detail::check_threads(threads);
  for (int k = 0; k < list.count; ++k) {
    EMBER_CHECK(!args.amsgrad || list.t[k].max_exp_avg_sq != nullptr || list.t[k].n == 0,
                "adam_step: amsgrad without a max_exp_avg_sq buffer for tensor ", k);
  }
  if (list.count == 0 || max_n <= 0) return;
  const dim3 grid(grid_for(max_n, threads, 1024), static_cast<unsigned>(list.count));
  EMBER_LAUNCH(adam_step_list_kernel<float>, grid, threads, 0, stream)(list, args);
  check_launch("adam_step_list_kernel");
}

}  // namespace ember::kernels
