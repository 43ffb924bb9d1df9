#pragma once
// The checks every op case in tests/ops/op_*.cpp makes, on every backend the program carries.
//
// An op case file is compiled into three programs: test_ops (the CPU), test_cuda_ops_emu
// (the CUDA backend's op table run on the CPU execution harness, in CI) and test_cuda_ops (a
// real GPU, when there is one). `op_devices()` is the CPU plus cuda:0 where the program has a
// CUDA backend, so the same case checks:
//   * the op's gradient against finite differences, in double (gradcheck.hpp), on the CPU;
//   * each non-CPU device against the CPU: the output, and the gradients of sum(out * r) for a
//     fixed random r, within `tol` (0: exactly equal, NaN matching NaN).

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ember/backend/device_backend.hpp"
#include "ember/core/device.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/reduce.hpp"
#include "support/gradcheck.hpp"

namespace ember::test {

[[nodiscard]] inline std::vector<Device> op_devices() {
  std::vector<Device> d{Device::cpu()};
  if (backend::cuda_backend_present() && backend::cuda_runtime().device_count() > 0)
    d.push_back(Device::cuda(0));
  return d;
}

template <class T>
using OpFn = std::function<Tensor<T>(const std::vector<Tensor<T>>&)>;

namespace detail {
template <class T>
void check_same_values(const Tensor<T>& got, const Tensor<T>& want, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  const std::vector<T> g = got.to(Device::cpu()).to_vector(), w = want.to(Device::cpu()).to_vector();
  double scale = 0;
  for (T v : w)
    if (std::isfinite(static_cast<double>(v))) scale = std::max(scale, std::abs(static_cast<double>(v)));
  std::int64_t bad = 0, first = -1;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const double a = static_cast<double>(g[i]), b = static_cast<double>(w[i]);
    const bool same = (std::isnan(a) && std::isnan(b)) || a == b ||
                      (tol > 0 && std::abs(a - b) <= tol * (std::abs(b) + scale));
    if (!same) {
      if (first < 0) first = static_cast<std::int64_t>(i);
      ++bad;
    }
  }
  INFO(bad << " of " << g.size() << " elements differ; first at " << first << ": got "
           << (first >= 0 ? static_cast<double>(g[static_cast<std::size_t>(first)]) : 0.0) << ", want "
           << (first >= 0 ? static_cast<double>(w[static_cast<std::size_t>(first)]) : 0.0) << " (tol " << tol
           << ")");
  CHECK(bad == 0);
}

template <class T>
std::pair<Tensor<T>, std::vector<Tensor<T>>> forward_backward(const OpFn<T>& f, const std::vector<Tensor<T>>& inputs,
                                                             Device d, std::uint64_t seed) {
  std::vector<Tensor<T>> leaves;
  for (const auto& x : inputs) {
    Tensor<T> l = x.detach().to(d).contiguous().clone();
    l.requires_grad_();
    leaves.push_back(l);
  }
  Tensor<T> out = f(leaves);
  Generator gen(seed);
  const Tensor<T> r = Tensor<T>::uniform(out.shape(), T(-1), T(1), gen).to(d);
  sum(mul(out, r)).backward();
  std::vector<Tensor<T>> grads;
  for (const auto& l : leaves) grads.push_back(l.grad().defined() ? l.grad() : Tensor<T>::zeros(l.shape(), d));
  return {out.detach(), grads};
}
}  // namespace detail

// CHECKs every element of `got` (on any device) within `margin` of the golden `want`.
template <class T>
void check_golden(const Tensor<T>& got, const std::vector<double>& want, double margin, const std::string& what) {
  INFO(what);
  const std::vector<T> g = got.to(Device::cpu()).to_vector();
  REQUIRE(g.size() == want.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i << ": got " << static_cast<double>(g[i]) << ", want " << want[i]);
    CHECK(std::abs(static_cast<double>(g[i]) - want[i]) <= margin);
  }
}

// Every non-CPU device's output and input gradients against the CPU's.
template <class T>
void check_devices_agree(const OpFn<T>& f, const std::vector<Tensor<T>>& inputs, double tol,
                         const std::string& what, std::uint64_t seed = 7) {
  const auto devices = op_devices();
  if (devices.size() < 2) return;
  const auto [want, want_g] = detail::forward_backward<T>(f, inputs, Device::cpu(), seed);
  for (std::size_t k = 1; k < devices.size(); ++k) {
    const auto [got, got_g] = detail::forward_backward<T>(f, inputs, devices[k], seed);
    const std::string on = what + " on " + devices[k].str() + " vs cpu";
    detail::check_same_values(got, want, tol, on + ": output");
    for (std::size_t i = 0; i < got_g.size(); ++i)
      detail::check_same_values(got_g[i], want_g[i], tol, on + ": gradient of input " + std::to_string(i));
  }
}

// The op's gradient against finite differences, in double on the CPU (the other devices are
// held to the CPU's gradients by check_devices_agree).
inline void check_gradients_cpu(const OpFn<double>& f, const std::vector<Tensor<double>>& inputs,
                                const std::string& what) {
  INFO(what);
  check_gradients(f, inputs);
}

}  // namespace ember::test
