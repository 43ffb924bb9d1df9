#pragma once
// One fused launch of an RMSprop step over many float tensors (include/ember/optim/rmsprop.hpp),
// element for element the CPU loop's operations in the same order (backend/cpu/rmsprop.hpp):
//   g = (maximize ? -grad : grad) + weight_decay * p
//   sq = sq * alpha + ((1 - alpha) * g) * g
//   centered: ga = lerp(ga, g, 1 - alpha) (torch.lerp's two forms); avg = sqrt(sq + (-1 * ga) * ga)
//   else:     avg = sqrt(sq)
//   avg = avg + eps
//   momentum buffer: buf = buf * momentum + g / avg;  p = p + (-lr) * buf
//   else:            p = p + (-lr * g) / avg
// Rounding as kernels/adam.cuh: each operation rounded on its own, IEEE division and sqrt.

#include <cstdint>

#include "common.cuh"

namespace ember::kernels {

struct RmspropTensor {
  float* param = nullptr;
  const float* grad = nullptr;
  float* square_avg = nullptr;
  float* grad_avg = nullptr;         // null unless RmspropArgs::centered
  float* momentum_buffer = nullptr;  // null: no momentum
  std::int64_t n = 0;
};

struct RmspropArgs {
  float neg_lr = -0.01f;
  float alpha = 0.99f;
  float one_minus_alpha = 0.01f;
  float eps = 1e-8f;
  float weight_decay = 0;
  float momentum = 0;
  bool centered = false;
  bool maximize = false;
};

// Up to this many tensors per launch, passed by value (48 bytes each).
inline constexpr int kRmspropMaxTensors = 32;
struct RmspropTensorList {
  int count = 0;
  RmspropTensor t[kRmspropMaxTensors];
};

namespace rmsprop_detail {
EMBER_DEVICE void update(const RmspropTensor& t, const RmspropArgs& a) {
  const float w = a.one_minus_alpha;
  const bool small_weight = (w < 0.0f ? -w : w) < 0.5f;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < t.n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float p = t.param[i];
    float g = a.maximize ? -t.grad[i] : t.grad[i];
    if (a.weight_decay != 0.0f) g = __fadd_rn(g, __fmul_rn(a.weight_decay, p));
    const float sq = __fadd_rn(__fmul_rn(t.square_avg[i], a.alpha),
                               __fmul_rn(__fmul_rn(a.one_minus_alpha, g), g));
    t.square_avg[i] = sq;
    float avg;
    if (a.centered) {
      const float ga0 = t.grad_avg[i];
      const float diff = __fsub_rn(g, ga0);
      const float ga = small_weight ? __fadd_rn(ga0, __fmul_rn(w, diff))
                                    : __fsub_rn(g, __fmul_rn(diff, __fsub_rn(1.0f, w)));
      t.grad_avg[i] = ga;
      avg = __fsqrt_rn(__fadd_rn(sq, __fmul_rn(-ga, ga)));
    } else {
      avg = __fsqrt_rn(sq);
    }
    avg = __fadd_rn(avg, a.eps);
    if (t.momentum_buffer != nullptr) {
      const float buf = __fadd_rn(__fmul_rn(t.momentum_buffer[i], a.momentum), __fdiv_rn(g, avg));
      t.momentum_buffer[i] = buf;
      t.param[i] = __fadd_rn(p, __fmul_rn(a.neg_lr, buf));
    } else {
      t.param[i] = __fadd_rn(p, __fdiv_rn(__fmul_rn(a.neg_lr, g), avg));
    }
  }
}
inline void check_threads(int threads) {
  EMBER_CHECK(threads >= 1 && threads <= 1024, "rmsprop_step: bad block size ", threads);
}
}  // namespace rmsprop_detail

// blockIdx.y: the tensor. (T = float.)
template <class T>
EMBER_KERNEL void rmsprop_step_list_kernel(RmspropTensorList list, RmspropArgs a) {
  rmsprop_detail::update(list.t[blockIdx.y], a);
}

// One RMSprop step for list.count tensors; max_n: the largest tensor's element count.
inline void rmsprop_step(const RmspropTensorList& list, std::int64_t max_n, RmspropArgs args,
                         Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(list.count >= 0 && list.count <= kRmspropMaxTensors,
              "rmsprop_step: a list holds at most ", kRmspropMaxTensors, " tensors, got ",
              list.count);
  rmsprop_detail::check_threads(threads);
  for (int k = 0; k < list.count; ++k) {
    EMBER_CHECK(!args.centered || list.t[k].grad_avg != nullptr || list.t[k].n == 0,
                "rmsprop_step: centered without a grad_avg buffer for tensor ", k);
  }
  if (list.count == 0 || max_n <= 0) return;
  const dim3 grid(grid_for(max_n, threads, 1024), static_cast<unsigned>(list.count));
  EMBER_LAUNCH(rmsprop_step_list_kernel<float>, grid, threads, 0, stream)(list, args);
  check_launch("rmsprop_step_list_kernel");
}

}  // namespace ember::kernels
