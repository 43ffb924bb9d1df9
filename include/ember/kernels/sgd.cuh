#pragma once
// One fused launch of ember::optim::SGD::step over many float tensors
// (include/ember/optim/sgd.hpp), element for element the CPU loop's operations in the same order:
//   g = maximize ? -grad : grad;  if (weight_decay != 0) g = g + weight_decay * p
//   if (momentum != 0) { buf = first_step ? g : momentum * buf + dampening_factor * g;
//                        g = nesterov ? g + momentum * buf : buf; }
//   p = p - lr * g
// Rounding: on the device every product and sum is rounded on its own (__fmul_rn/__fadd_rn/
// __fsub_rn), because nvcc would otherwise contract a * b + c into a fused multiply-add. The
// results are then bit-identical to the CPU loop compiled without contraction (g++ in ISO mode,
// -std=c++20, or without an FMA target). A CPU build that contracts (g++ -std=gnu++20
// -march=native on an FMA machine, ember's default CMake flags) may differ by an ulp or so
// per operation; the tests allow a few ulps for that reason.

#include <cstdint>

#include "common.cuh"

namespace ember::kernels {

struct SgdTensor {
  float* param = nullptr;
  const float* grad = nullptr;
  float* momentum = nullptr;  // the momentum buffer; may be null when SgdArgs::momentum == 0
  std::int64_t n = 0;
};

struct SgdArgs {
  float lr = 0;
  float momentum = 0;
  float dampening_factor = 1;  // 1 - dampening
  float weight_decay = 0;
  bool nesterov = false;
  bool first_step = false;  // the momentum buffers are written with the gradient (their first step)
  bool maximize = false;    // g = -grad: ascends the objective (PyTorch's maximize)
};

// Up to this many tensors per launch in an SgdTensorList (32 bytes each: the list stays well
// inside the 4 KiB of kernel parameters).
inline constexpr int kSgdMaxTensors = 32;

// Tensors passed by value in the kernel's parameters: a CUDA graph that captures the launch
// holds the list itself, so nothing on the host or device has to outlive the capture.
struct SgdTensorList {
  int count = 0;
  SgdTensor t[kSgdMaxTensors];
};

namespace sgd_detail {
// The update of one tensor by this block (grid-stride along x).
EMBER_DEVICE void update(const SgdTensor& t, const SgdArgs& a) {
  const bool use_momentum = a.momentum != 0.0f;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < t.n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float p = t.param[i];
    float g = a.maximize ? -t.grad[i] : t.grad[i];
    if (a.weight_decay != 0.0f) g = __fadd_rn(g, __fmul_rn(a.weight_decay, p));
    if (use_momentum) {
      const float buf = a.first_step ? g
                                     : __fadd_rn(__fmul_rn(a.momentum, t.momentum[i]),
                                                 __fmul_rn(a.dampening_factor, g));
      t.momentum[i] = buf;
      g = a.nesterov ? __fadd_rn(g, __fmul_rn(a.momentum, buf)) : buf;
    }
    t.param[i] = __fsub_rn(p, __fmul_rn(a.lr, g));
  }
}

inline void check_threads(int threads) {
  EMBER_CHECK(threads >= 1 && threads <= 1024, "sgd_step: bad block size ", threads);
}
}  // namespace sgd_detail

// blockIdx.y: the tensor. (Templates only so that the header can be included by several
// translation units; T = float.)
template <class T>
EMBER_KERNEL void sgd_step_kernel(const SgdTensor* __restrict__ tensors, SgdArgs a) {
  sgd_detail::update(tensors[blockIdx.y], a);
}
template <class T>
EMBER_KERNEL void sgd_step_list_kernel(SgdTensorList list, SgdArgs a) {
  sgd_detail::update(list.t[blockIdx.y], a);
}

// At most 1024 blocks per tensor along x (enough to fill the device; the loop strides over the
// rest), one row of blocks per tensor along y.
inline dim3 sgd_grid(std::int64_t max_n, int count, int threads) {
  return dim3(grid_for(max_n, threads, 1024), static_cast<unsigned>(count));
}

// One SGD step for `count` tensors described by a device array of SgdTensor; max_n: the largest
// tensor's element count (sizes the grid). The momentum buffers must be non-null when
// args.momentum != 0; with args.first_step they are only written.
inline void sgd_step(const SgdTensor* tensors, int count, std::int64_t max_n, SgdArgs args,
                     Stream stream, int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(count >= 0 && count <= 65535, "sgd_step: at most 65535 tensors per launch, got ",
              count);
  sgd_detail::check_threads(threads);
  if (count == 0 || max_n <= 0) return;
  EMBER_LAUNCH(sgd_step_kernel<float>, sgd_grid(max_n, count, threads), threads, 0, stream)
  (tensors, args);
  check_launch("sgd_step_kernel");
}

// The same for up to kSgdMaxTensors tensors passed by value (list.count of list.t); the form a
// captured CUDA graph needs (no device array to fill before each replay).
inline void sgd_step(const SgdTensorList& list, std::int64_t max_n, SgdArgs args, Stream stream,
                     int threads = 256) {
  (void)stream;  // (the CPU harness ignores streams)
  EMBER_CHECK(list.count >= 0 && list.count <= kSgdMaxTensors, "sgd_step: a list holds at most ",
              kSgdMaxTensors, " tensors, got ", list.count);
  sgd_detail::check_threads(threads);
  if (list.count == 0 || max_n <= 0) return;
  EMBER_LAUNCH(sgd_step_list_kernel<float>, sgd_grid(max_n, list.count, threads), threads, 0,
               stream)
  (list, args);
  check_launch("sgd_step_list_kernel");
}

}  // namespace ember::kernels
