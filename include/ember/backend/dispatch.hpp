#pragma once
// Op dispatch, written once for every op.
//
// A device op is a tag type, declared beside the op that uses it (ops/X.hpp):
//
//   namespace ember::op {
//   struct AvgPool2dForward {
//     static constexpr const char* name = "avg_pool2d";
//     template <class T> static constexpr auto cpu = &ember::cpu::avg_pool2d_forward<T>;
//   };
//   }
//
// `cpu` is the op's CPU kernel (backend/cpu/X.hpp); its signature is the op's signature. An op
// with no CPU kernel of that form (its CPU path is written on tensors) names the signature
// instead: `template <class T> using sig = void(const T*, T*, std::int64_t);`.
//
// backend::run<Op, T>(device, args...) calls the CPU kernel for a CPU device and the CUDA
// backend's kernel otherwise. The CUDA backend fills one slot per (op, element type) when it
// registers (backend/cuda/ops.hpp, the same code for a GPU and for the tests' CPU execution
// harness); the slot's function takes the device index first. Adding an op adds a tag and a
// slot and changes no interface: nothing here, in the registry or in the harness names an op.

#include <string_view>
#include <type_traits>
#include <utility>

#include "ember/backend/device_backend.hpp"
#include "ember/core/device.hpp"
#include "ember/core/dtype.hpp"
#include "ember/core/error.hpp"

namespace ember::backend {

namespace detail {
template <class Op, class T>
struct OpSignature {
  using type = std::remove_pointer_t<std::remove_cvref_t<decltype(Op::template cpu<T>)>>;
};
template <class Op, class T>
  requires requires { typename Op::template sig<T>; }
struct OpSignature<Op, T> {
  using type = typename Op::template sig<T>;
};

template <class F>
struct WithDevice;
template <class R, class... A>
struct WithDevice<R(A...)> {
  using type = R(int device, A...);
};
}  // namespace detail

// The op's signature for element type T (the CPU kernel's).
template <class Op, class T>
using op_signature = typename detail::OpSignature<Op, T>::type;

// The CUDA backend's kernel for (Op, T): null until a backend registers one.
template <class Op, class T>
struct CudaKernel {
  using Fn = typename detail::WithDevice<op_signature<Op, T>>::type;
  static inline Fn* fn = nullptr;
};

template <class Op, class T>
void set_cuda_kernel(typename CudaKernel<Op, T>::Fn* fn) {
  CudaKernel<Op, T>::fn = fn;
}

template <class Op, class T>
[[nodiscard]] bool has_cuda_kernel() {
  return CudaKernel<Op, T>::fn != nullptr;
}

// The op's CUDA kernel on device `device` (ordered on the device's stream).
template <class Op, class T, class... A>
void cuda(int device, A&&... args) {
  (void)cuda_runtime();  // throws when the program carries no CUDA backend
  auto* fn = CudaKernel<Op, T>::fn;
  EMBER_CHECK(fn != nullptr, Op::name, ": this program's CUDA backend has no ",
              dtype_name(dtype_of<T>()), " kernel for it");
  fn(device, std::forward<A>(args)...);
}

// The op's kernel for `device`: the CPU kernel or the CUDA backend's.
template <class Op, class T, class... A>
void run(const Device& device, A&&... args) {
  if (device.is_cpu()) {
    Op::template cpu<T>(std::forward<A>(args)...);
    return;
  }
  cuda<Op, T>(device.index, std::forward<A>(args)...);
}

}  // namespace ember::backend
