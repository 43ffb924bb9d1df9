#pragma once
// The CUDA backend's op table: for every op tag (ops/X.hpp) and element type, the launch of
// its kernel from include/ember/kernels/, set into the op's slot (backend/dispatch.hpp).
//
// Written once for two execution contexts: `Ctx` is the real CUDA runtime (CudaContext in
// backend/cuda/register.hpp, with the cuBLAS / cuDNN choices) or the tests' CPU execution
// harness (tests/support/emu_backend.hpp), so that every launch below runs in CI too. Ctx
// provides:
//   Ctx::Guard(device)                  makes `device` current for the launch
//   Ctx::stream(device)                 the device's stream
//   Ctx::Scratch<U>(device, elems).get()  stream-ordered scratch memory
//   Ctx::capturing(device)              true while a graph is being captured
//   Ctx::to_host(device, dst, src, bytes)
//   Ctx::vendor_gemm / vendor_gemm_batched / vendor_conv2d_forward / _backward_data / _backward_weight
//                                       true when the vendor library did the work
//
// Adding an op: one `launch` overload set and one set_cuda_kernel line below.

#include <algorithm>
#include <cstdint>

#include "ember/backend/dispatch.hpp"
#include "ember/backend/graph.hpp"
#include "ember/data/device_loader.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/batch_norm.hpp"
#include "ember/ops/compare.hpp"
#include "ember/ops/conv.hpp"
#include "ember/ops/dropout.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/linear.hpp"
#include "ember/ops/loss.hpp"
#include "ember/ops/pool.hpp"
#include "ember/ops/reduce.hpp"
#include "ember/optim/adam.hpp"
#include "ember/optim/rmsprop.hpp"
#include "ember/optim/sgd.hpp"

#include <ember/kernels/activation.cuh>
#include <ember/kernels/adam.cuh>
#include <ember/kernels/batch_norm.cuh>
#include <ember/kernels/compare.cuh>
#include <ember/kernels/conv.cuh>
#include <ember/kernels/data.cuh>
#include <ember/kernels/dropout.cuh>
#include <ember/kernels/elementwise.cuh>
#include <ember/kernels/loss.cuh>
#include <ember/kernels/pool.cuh>
#include <ember/kernels/reduce.cuh>
#include <ember/kernels/rmsprop.cuh>
#include <ember/kernels/scalar.cuh>
#include <ember/kernels/sgd.cuh>
#include <ember/kernels/sgemm.cuh>
#include <ember/kernels/softmax.cuh>

namespace ember::cuda_ops {

template <class Ctx, class T>
struct Launch {
  using G = typename Ctx::Guard;
  template <class U>
  using Scratch = typename Ctx::template Scratch<U>;

  // -- elementwise, reductions -------------------------------------------------------------
  static void binary(int d, backend::BinaryOp op, const T* a, const StridedView& va, const T* b,
                     const StridedView& vb, T* out, std::int64_t n) {
    G g(d);
    kernels::binary<T>(static_cast<kernels::BinaryOp>(op), a, va, b, vb, out, n, Ctx::stream(d));
  }
  static void unary(int d, backend::UnaryOp op, const T* a, T* out, std::int64_t n, T scalar) {
    static_assert(static_cast<int>(backend::UnaryOp::sign) == static_cast<int>(kernels::UnaryOp::sign));
    G g(d);
    kernels::unary<T>(static_cast<kernels::UnaryOp>(op), a, out, n, scalar, Ctx::stream(d));
  }
  static void sum_to(int d, const T* x, const StridedView& vx, T* out, const StridedView& vout,
                     std::int64_t out_n) {
    G g(d);
    kernels::sum_to<T>(x, vx, out, vout, out_n, Ctx::stream(d));
  }
  static void broadcast_copy(int d, const T* src, const StridedView& vs, T* dst,
                             const StridedView& vd, std::int64_t n) {
    G g(d);
    kernels::strided_copy<T>(src, vs, dst, vd, n, Ctx::stream(d));
  }
  // y [outer, inner] = x [outer, size, inner] summed along size: sum_to with size reduced.
  static void sum_dim(int d, const T* x, T* y, std::int64_t outer, std::int64_t size,
                      std::int64_t inner) {
    StridedView vx, vy;
    vx.rank = vy.rank = 3;
    const std::int64_t shape[3] = {outer, size, inner}, strides[3] = {size * inner, inner, 1};
    for (int i = 0; i < 3; ++i) {
      vx.shape[i] = shape[i];
      vx.strides[i] = strides[i];
    }
    vy.shape[0] = outer;
    vy.shape[1] = 1;
    vy.shape[2] = inner;
    vy.strides[0] = inner;
    vy.strides[2] = 1;
    G g(d);
    kernels::sum_to<T>(x, vx, y, vy, outer * inner, Ctx::stream(d));
  }
  static void sum_all(int d, const T* x, std::int64_t n, T* out, T scale) {
    G g(d);
    Scratch<T> ws(d, kernels::reduce_workspace_elems<T>(n));
    kernels::sum_all<T>(x, n, out, scale, ws.get(), Ctx::stream(d));
  }
  static void extremum_dim(int d, const DimReduceParams& p, const T* x, T* values,
                           std::int64_t* indices) {
    G g(d);
    kernels::extremum_dim<T>(p, x, values, indices, Ctx::stream(d));
  }
  static void extremum_dim_backward(int d, const DimReduceParams& p, const T* x, const T* y,
                                    const T* gy, T* gx) {
    G g(d);
    kernels::extremum_dim_backward<T>(p, x, y, gy, gx, Ctx::stream(d));
  }
  static void index_dim_backward(int d, const DimReduceParams& p, const T* gy,
                                 const std::int64_t* indices, T* gx) {
    G g(d);
    kernels::index_dim_backward<T>(p, gy, indices, gx, Ctx::stream(d));
  }
  static void count_correct(int d, const T* x, std::int64_t rows, std::int64_t cols,
                            const std::int64_t* labels, std::int64_t* out) {
    G g(d);
    kernels::count_correct<T>(x, rows, cols, labels, out, Ctx::stream(d));
  }

  // -- comparisons, where, clamp -------------------------------------------------------------
  static void compare(int d, CompareOp op, const T* a, const StridedView& va, const T* b,
                      const StridedView& vb, std::uint8_t* out, std::int64_t n) {
    G g(d);
    kernels::compare<T>(op, a, va, b, vb, out, n, Ctx::stream(d));
  }
  static void where(int d, const std::uint8_t* cond, const StridedView& vc, const T* a,
                    const StridedView& va, const T* b, const StridedView& vb, T* out, std::int64_t n) {
    G g(d);
    kernels::where<T>(cond, vc, a, va, b, vb, out, n, Ctx::stream(d));
  }
  static void clamp_forward(int d, const ClampParams<T>& p, const T* x, T* y, std::int64_t n) {
    G g(d);
    kernels::clamp_forward<T>(p, x, y, n, Ctx::stream(d));
  }
  static void clamp_backward(int d, const ClampParams<T>& p, const T* gy, const T* x, T* gx,
                             std::int64_t n) {
    G g(d);
    kernels::clamp_backward<T>(p, gy, x, gx, n, Ctx::stream(d));
  }

  static void clamp_tensor_forward(int d, const ClampTensorParams<T>& p, const T* x,
                                   const StridedView& vx, const T* lo, const StridedView& vlo,
                                   const T* hi, const StridedView& vhi, T* y, std::int64_t n) {
    G g(d);
    kernels::clamp_tensor_forward<T>(p, x, vx, lo, vlo, hi, vhi, y, n, Ctx::stream(d));
  }
  static void clamp_tensor_backward(int d, const ClampTensorParams<T>& p, const T* gy,
                                    const T* x, const StridedView& vx, const T* lo,
                                    const StridedView& vlo, const T* hi, const StridedView& vhi,
                                    T* gx, T* glo, T* ghi, std::int64_t n) {
    G g(d);
    kernels::clamp_tensor_backward<T>(p, gy, x, vx, lo, vlo, hi, vhi, gx, glo, ghi, n,
                                      Ctx::stream(d));
  }

  // -- GEMM, bias, convolution, pooling ----------------------------------------------------
  static void gemm(int d, const GemmParams& p, T alpha, const T* a, const T* b, T beta, T* c) {
    G g(d);
    if (Ctx::vendor_gemm(d, p, alpha, a, b, beta, c)) return;
    Scratch<T> ws(d, kernels::gemm_workspace_bytes<T>(p) / sizeof(T));
    kernels::gemm<T>(p, alpha, a, b, beta, c, Ctx::stream(d), ws.get());  // null: no split-K
  }
  static void gemm_batched(int d, const BatchedGemmParams& p, T alpha, const T* a, const T* b,
                           T beta, T* c) {
    G g(d);
    if (Ctx::vendor_gemm_batched(d, p, alpha, a, b, beta, c)) return;
    kernels::gemm_batched<T>(p, alpha, a, b, beta, c, Ctx::stream(d));
  }
  static void bias_add_rows(int d, T* y, const T* bias, std::int64_t rows, std::int64_t cols) {
    G g(d);
    kernels::bias_add_rows<T>(y, bias, rows, cols, Ctx::stream(d));
  }
  static void bias_grad_rows(int d, const T* gy, T* gb, std::int64_t rows, std::int64_t cols) {
    G g(d);
    kernels::bias_grad_rows<T>(gy, gb, rows, cols, Ctx::stream(d));
  }
  static void conv2d_forward(int d, const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y) {
    G g(d);
    if (Ctx::vendor_conv2d_forward(d, p, x, w, bias, y)) return;
    Scratch<T> ws(d, kernels::conv2d_workspace_elems<T>(p));
    kernels::conv2d_forward<T>(p, x, w, bias, y, ws.get(), Ctx::stream(d));
  }
  static void conv2d_backward_data(int d, const Conv2dParams& p, const T* w, const T* gy, T* gx) {
    G g(d);
    if (Ctx::vendor_conv2d_backward_data(d, p, w, gy, gx)) return;
    Scratch<T> ws(d, kernels::conv2d_workspace_elems<T>(p));
    kernels::conv2d_backward_data<T>(p, w, gy, gx, ws.get(), Ctx::stream(d));
  }
  static void conv2d_backward_weight(int d, const Conv2dParams& p, const T* x, const T* gy, T* gw, T* gb) {
    G g(d);
    if (Ctx::vendor_conv2d_backward_weight(d, p, x, gy, gw, gb)) return;
    Scratch<T> ws(d, kernels::conv2d_workspace_elems<T>(p));
    kernels::conv2d_backward_weight<T>(p, x, gy, gw, gb, ws.get(), Ctx::stream(d));
  }
  // Both gradients, as the CPU's one-pass conv2d_backward: the input's, then the weight's and
  // bias's (each pointer null when not wanted).
  static void conv2d_backward(int d, const Conv2dParams& p, const T* x, const T* w, const T* gy, T* gx, T* gw,
                              T* gb) {
    if (gx != nullptr) conv2d_backward_data(d, p, w, gy, gx);
    if (gw != nullptr || gb != nullptr) conv2d_backward_weight(d, p, x, gy, gw, gb);
  }
  static void max_pool2d_forward(int d, const Pool2dParams& p, const T* x, T* y,
                                 std::int32_t* argmax) {
    G g(d);
    kernels::max_pool2d_forward<T>(p, x, y, argmax, Ctx::stream(d));
  }
  static void max_pool2d_backward(int d, const Pool2dParams& p, const T* gy,
                                  const std::int32_t* argmax, T* gx) {
    G g(d);
    kernels::max_pool2d_backward<T>(p, gy, argmax, gx, Ctx::stream(d));
  }

  static void avg_pool2d_forward(int d, const Pool2dParams& p, const T* x, T* y) {
    G g(d);
    kernels::avg_pool2d_forward<T>(p, x, y, Ctx::stream(d));
  }
  static void avg_pool2d_backward(int d, const Pool2dParams& p, const T* gy, T* gx) {
    G g(d);
    kernels::avg_pool2d_backward<T>(p, gy, gx, Ctx::stream(d));
  }

  static void batch_norm_forward(int d, const BatchNormParams& p, const T* x, const T* w, const T* b,
                                 const T* running_mean, const T* running_var, T* save_mean, T* save_var, T* y) {
    G g(d);
    Scratch<double> ws(d, kernels::batch_norm_workspace_elems(p));
    kernels::batch_norm_forward<T>(p, x, w, b, running_mean, running_var, save_mean, save_var, y, ws.get(),
                                   Ctx::stream(d));
  }
  static void batch_norm_backward(int d, const BatchNormParams& p, const T* gy, const T* x, const T* w,
                                  const T* save_mean, const T* save_var, T* gx, T* gw, T* gb) {
    G g(d);
    Scratch<double> ws(d, kernels::batch_norm_workspace_elems(p));
    kernels::batch_norm_backward<T>(p, gy, x, w, save_mean, save_var, gx, gw, gb, ws.get(), Ctx::stream(d));
  }

  // -- activations, losses, dropout ----------------------------------------------------------
  static void relu_backward(int d, const T* gy, const T* y, T* gx, std::int64_t n) {
    G g(d);
    kernels::relu_backward<T>(gy, y, gx, n, Ctx::stream(d));
  }
  static void log_softmax_forward(int d, const T* x, T* y, std::int64_t outer, std::int64_t size,
                                  std::int64_t inner) {
    EMBER_CHECK(inner == 1, "log_softmax: the CUDA kernel takes the last dimension only");
    G g(d);
    kernels::log_softmax_forward<T>(x, y, outer, size, Ctx::stream(d));
  }
  static void log_softmax_backward(int d, const T* gy, const T* y, T* gx, std::int64_t outer,
                                   std::int64_t size, std::int64_t inner) {
    EMBER_CHECK(inner == 1, "log_softmax backward: the CUDA kernel takes the last dimension only");
    G g(d);
    kernels::log_softmax_backward<T>(gy, y, gx, outer, size, Ctx::stream(d));
  }
  static void activation_forward(int d, ActivationKind kind, T a, const T* x, T* y, std::int64_t n) {
    static_assert(static_cast<int>(ActivationKind::silu) == static_cast<int>(kernels::ActivationKind::silu));
    G g(d);
    kernels::activation_forward<T>(static_cast<kernels::ActivationKind>(kind), a, x, y, n, Ctx::stream(d));
  }
  static void activation_backward(int d, ActivationKind kind, T a, const T* gy, const T* s, T* gx,
                                  std::int64_t n) {
    G g(d);
    kernels::activation_backward<T>(static_cast<kernels::ActivationKind>(kind), a, gy, s, gx, n, Ctx::stream(d));
  }
  static void softmax_forward(int d, const T* x, T* y, std::int64_t outer, std::int64_t size, std::int64_t inner) {
    EMBER_CHECK(inner == 1, "softmax: the CUDA kernel takes the last dimension only");
    G g(d);
    kernels::softmax_forward<T>(x, y, outer, size, Ctx::stream(d));
  }
  static void softmax_backward(int d, const T* gy, const T* y, T* gx, std::int64_t outer, std::int64_t size,
                               std::int64_t inner) {
    EMBER_CHECK(inner == 1, "softmax backward: the CUDA kernel takes the last dimension only");
    G g(d);
    kernels::softmax_backward<T>(gy, y, gx, outer, size, Ctx::stream(d));
  }
  static void nll_forward(int d, const T* logp, const std::int64_t* labels, std::int64_t rows,
                          std::int64_t cols, T* out, bool mean) {
    G g(d);
    if (Ctx::capturing(d)) {  // no host read inside a graph: the loss is NaN on a bad label
      kernels::nll_forward<T>(logp, labels, rows, cols, out, mean, nullptr, Ctx::stream(d));
      return;
    }
    Scratch<int> flag(d, 1);
    EMBER_CHECK(cudaMemsetAsync(flag.get(), 0, sizeof(int), Ctx::stream(d)) == cudaSuccess,
                "nll_loss: cudaMemsetAsync failed");
    kernels::nll_forward<T>(logp, labels, rows, cols, out, mean, flag.get(), Ctx::stream(d));
    int bad = 0;
    Ctx::to_host(d, &bad, flag.get(), sizeof(int));
    EMBER_CHECK(bad == 0, "nll_loss: a target is out of range for ", cols, " classes (on cuda:", d, ")");
  }
  static void nll_backward(int d, const T* gy, const std::int64_t* labels, std::int64_t rows,
                           std::int64_t cols, T* gx, bool mean) {
    G g(d);
    kernels::nll_backward<T>(gy, labels, rows, cols, gx, mean, Ctx::stream(d));
  }
  static void dropout_mask(int d, PhiloxArgs rng, float p, T scale, T* mask, std::int64_t n) {
    G g(d);
    // scale: static_cast<T>(1.0 / (1.0 - p)) worked out on the host from the double p, as the CPU does
    kernels::dropout_mask<T>(rng, p, scale, mask, n, Ctx::stream(d));
  }
};

// The training loop's float-only ops.
template <class Ctx>
struct LaunchTraining {
  using G = typename Ctx::Guard;
  static void sgd_step(int d, const backend::SgdTensorRef* tensors, int count, backend::SgdStepArgs args) {
    G g(d);
    const kernels::SgdArgs a{args.lr, args.momentum, args.dampening_factor, args.weight_decay,
                             args.nesterov, args.first_step, args.maximize};
    // Passed by value in the kernel's parameters (chunks of kernels::kSgdMaxTensors), so that a
    // captured graph holds the list itself and needs no host buffer.
    for (int start = 0; start < count; start += kernels::kSgdMaxTensors) {
      kernels::SgdTensorList list{};
      list.count = std::min(kernels::kSgdMaxTensors, count - start);
      std::int64_t max_n = 0;
      for (int i = 0; i < list.count; ++i) {
        const backend::SgdTensorRef& r = tensors[start + i];
        list.t[i] = kernels::SgdTensor{r.param, r.grad, r.momentum, r.n};
        max_n = std::max(max_n, r.n);
      }
      kernels::sgd_step(list, max_n, a, Ctx::stream(d));
    }
  }
  static void adam_step(int d, const backend::AdamTensorRef* tensors, int count,
                        backend::AdamStepArgs args) {
    G g(d);
    const kernels::AdamArgs a{args.one_minus_beta1, args.beta2, args.one_minus_beta2, args.eps,
                              args.weight_decay,    args.decay_factor, args.amsgrad, args.maximize};
    // By value in the kernel's parameters, in chunks of kernels::kAdamMaxTensors (as SGD's).
    for (int start = 0; start < count; start += kernels::kAdamMaxTensors) {
      kernels::AdamTensorList list{};
      list.count = std::min(kernels::kAdamMaxTensors, count - start);
      std::int64_t max_n = 0;
      for (int i = 0; i < list.count; ++i) {
        const backend::AdamTensorRef& r = tensors[start + i];
        list.t[i] = kernels::AdamTensor{r.param,          r.grad, r.exp_avg, r.exp_avg_sq,
                                        r.max_exp_avg_sq, r.n,    r.neg_step_size,
                                        r.bias_correction2_sqrt};
        max_n = std::max(max_n, r.n);
      }
      kernels::adam_step(list, max_n, a, Ctx::stream(d));
    }
  }
  static void rmsprop_step(int d, const backend::RmspropTensorRef* tensors, int count,
                           backend::RmspropStepArgs args) {
    G g(d);
    const kernels::RmspropArgs a{args.neg_lr,       args.alpha,    args.one_minus_alpha,
                                 args.eps,          args.weight_decay, args.momentum,
                                 args.centered,     args.maximize};
    for (int start = 0; start < count; start += kernels::kRmspropMaxTensors) {
      kernels::RmspropTensorList list{};
      list.count = std::min(kernels::kRmspropMaxTensors, count - start);
      std::int64_t max_n = 0;
      for (int i = 0; i < list.count; ++i) {
        const backend::RmspropTensorRef& r = tensors[start + i];
        list.t[i] = kernels::RmspropTensor{r.param,    r.grad,            r.square_avg,
                                           r.grad_avg, r.momentum_buffer, r.n};
        max_n = std::max(max_n, r.n);
      }
      kernels::rmsprop_step(list, max_n, a, Ctx::stream(d));
    }
  }
  static void gather_normalize(int d, const std::uint8_t* images, const std::int64_t* indices,
                               std::int64_t batch, std::int64_t pixels, float mean, float std, float* out) {
    G g(d);
    kernels::gather_normalize(images, indices, batch, pixels, mean, std, out, Ctx::stream(d));
  }
  static void gather_labels(int d, const std::int64_t* labels, const std::int64_t* indices,
                            std::int64_t batch, std::int64_t* out) {
    G g(d);
    kernels::gather_labels(labels, indices, batch, out, Ctx::stream(d));
  }
  static void set_u64(int d, std::uint64_t* p, std::uint64_t value) {
    G g(d);
    kernels::set_u64(p, value, Ctx::stream(d));
  }
};

template <class Ctx, class T>
void register_typed() {
  using L = Launch<Ctx, T>;
  using backend::set_cuda_kernel;
  set_cuda_kernel<op::Binary, T>(&L::binary);
  set_cuda_kernel<op::Unary, T>(&L::unary);
  set_cuda_kernel<op::SumTo, T>(&L::sum_to);
  set_cuda_kernel<op::BroadcastCopy, T>(&L::broadcast_copy);
  set_cuda_kernel<op::SumAll, T>(&L::sum_all);
  set_cuda_kernel<op::SumDim, T>(&L::sum_dim);
  set_cuda_kernel<op::ExtremumDim, T>(&L::extremum_dim);
  set_cuda_kernel<op::ExtremumDimBackward, T>(&L::extremum_dim_backward);
  set_cuda_kernel<op::IndexDimBackward, T>(&L::index_dim_backward);
  set_cuda_kernel<op::CountCorrect, T>(&L::count_correct);
  set_cuda_kernel<op::Compare, T>(&L::compare);
  set_cuda_kernel<op::Where, T>(&L::where);
  set_cuda_kernel<op::ClampForward, T>(&L::clamp_forward);
  set_cuda_kernel<op::ClampBackward, T>(&L::clamp_backward);
  set_cuda_kernel<op::ClampTensorForward, T>(&L::clamp_tensor_forward);
  set_cuda_kernel<op::ClampTensorBackward, T>(&L::clamp_tensor_backward);
  set_cuda_kernel<op::Gemm, T>(&L::gemm);
  set_cuda_kernel<op::GemmBatched, T>(&L::gemm_batched);
  set_cuda_kernel<op::BiasAddRows, T>(&L::bias_add_rows);
  set_cuda_kernel<op::BiasGradRows, T>(&L::bias_grad_rows);
  set_cuda_kernel<op::Conv2dForward, T>(&L::conv2d_forward);
  set_cuda_kernel<op::Conv2dBackward, T>(&L::conv2d_backward);
  set_cuda_kernel<op::MaxPool2dForward, T>(&L::max_pool2d_forward);
  set_cuda_kernel<op::MaxPool2dBackward, T>(&L::max_pool2d_backward);
  set_cuda_kernel<op::AvgPool2dForward, T>(&L::avg_pool2d_forward);
  set_cuda_kernel<op::AvgPool2dBackward, T>(&L::avg_pool2d_backward);
  set_cuda_kernel<op::BatchNormForward, T>(&L::batch_norm_forward);
  set_cuda_kernel<op::BatchNormBackward, T>(&L::batch_norm_backward);
  set_cuda_kernel<op::ReluBackward, T>(&L::relu_backward);
  set_cuda_kernel<op::LogSoftmaxForward, T>(&L::log_softmax_forward);
  set_cuda_kernel<op::LogSoftmaxBackward, T>(&L::log_softmax_backward);
  set_cuda_kernel<op::ActivationForward, T>(&L::activation_forward);
  set_cuda_kernel<op::ActivationBackward, T>(&L::activation_backward);
  set_cuda_kernel<op::SoftmaxForward, T>(&L::softmax_forward);
  set_cuda_kernel<op::SoftmaxBackward, T>(&L::softmax_backward);
  set_cuda_kernel<op::NllForward, T>(&L::nll_forward);
  set_cuda_kernel<op::NllBackward, T>(&L::nll_backward);
  set_cuda_kernel<op::DropoutMask, T>(&L::dropout_mask);
}

// Fills every op's CUDA slot with the launches above in context Ctx.
template <class Ctx>
void register_ops() {
  register_typed<Ctx, float>();
  register_typed<Ctx, double>();
  using L = LaunchTraining<Ctx>;
  backend::set_cuda_kernel<op::SgdStep, float>(&L::sgd_step);
  backend::set_cuda_kernel<op::AdamStep, float>(&L::adam_step);
  backend::set_cuda_kernel<op::RmspropStep, float>(&L::rmsprop_step);
  backend::set_cuda_kernel<op::GatherNormalize, float>(&L::gather_normalize);
  backend::set_cuda_kernel<op::GatherLabels, float>(&L::gather_labels);
  backend::set_cuda_kernel<op::SetU64, float>(&L::set_u64);
}

}  // namespace ember::cuda_ops
