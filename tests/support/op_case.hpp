#pragma once
// The checks every op case in tests/ops/op_*.cpp makes, on every backend the program carries.
//
// An op case file is compiled into three programs: test_ops (the CPU), test_cuda_ops_emu
// (the CUDA backend's op table run on the CPU execution harness, in CI) and test_cuda_ops (a
// real GPU, when there is one). `op_devices()` is the CPU plus cuda:0 where the program has a
// CUDA backend, so the same case checks:
//   * the op's gradient against finite differences, in double (gradcheck.hpp), on the CPU;
//   * each non-CPU device against the CPU: the output, and the gradients of sum(out * r) for a
//     fixed random r, within `tol` (0: exactly equal, NaN matching NaN); or, given an
//     Agreement, the output and the gradients each within its own Bound (exact, scaled by the
//     output, or scaled by the same computation on |inputs|: see below).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
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

// ---- agreement with a stated bound, for the output and the gradients separately ------------
//
// Some ops are exact on every device forward and only rounding-close backward (a broadcast's
// gradient is a sum) or the reverse (sum_to's backward is a copy), and a sum's rounding error
// scales with sum |terms|, not with |result|. An Agreement states the bound of each:
//   Bound::exact       equal values, NaN matching NaN;
//   Bound::output      |got - want| <= tol * |want| + tol * max |want|;
//   Bound::magnitudes  |got - want| <= tol * |want| + tol * S, where S is the largest element of
//                      the same computation on the CPU on |inputs| with |upstream gradient| (the
//                      scale of the rounding-error bound, sum |terms|, which is >= max |want|).
// The upstream gradient is uniform in [-1, 1) drawn from `seed` in the output's shape; an
// undefined input gets no gradient (on every device alike).
enum class Bound { exact, output, magnitudes };

// The relative tolerance for rounding-order differences between two devices.
template <class T>
constexpr double rounding_tol = std::is_same_v<T, float> ? 1e-5 : 1e-11;

struct Agreement {
  Bound out, grad;
  double tol;
};

template <class T>
[[nodiscard]] Agreement agree(Bound out, Bound grad, double tol = rounding_tol<T>) {
  return {out, grad, tol};
}

namespace detail {
template <class T>
double max_abs(const Tensor<T>& t) {
  double m = 0;
  for (T v : t.to(Device::cpu()).to_vector()) m = std::max(m, std::fabs(static_cast<double>(v)));
  return m;
}

template <class T>
Tensor<T> abs_of(const Tensor<T>& t) {
  std::vector<T> v = t.to(Device::cpu()).to_vector();
  for (T& x : v) x = static_cast<T>(std::fabs(static_cast<double>(x)));
  return Tensor<T>::from_vector(v, t.shape());
}

// out = f(leaves) on d, the leaves fresh copies of `inputs` (|inputs| when `magnitudes`) that
// require grad; then out.backward(gy), gy uniform in [-1, 1) from `seed` (|gy| when `magnitudes`).
template <class T>
std::pair<Tensor<T>, std::vector<Tensor<T>>> run_backward(const OpFn<T>& f, const std::vector<Tensor<T>>& inputs,
                                                          Device d, std::uint64_t seed, bool magnitudes) {
  std::vector<Tensor<T>> leaves;
  for (const Tensor<T>& x : inputs) {
    if (!x.defined()) {
      leaves.emplace_back();
      continue;
    }
    const Tensor<T> src = magnitudes ? abs_of(x) : x;
    Tensor<T> leaf = (d.is_cpu() ? src.clone() : src.to(d)).detach();
    leaf.requires_grad_(true);
    leaves.push_back(leaf);
  }
  Tensor<T> out = f(leaves);
  REQUIRE(out.device().str() == d.str());
  Generator gen(seed);
  Tensor<T> gy = Tensor<T>::uniform(out.shape(), T(-1), T(1), gen);
  if (magnitudes) gy = abs_of(gy);
  out.backward(gy.to(d));
  std::vector<Tensor<T>> grads;
  for (const Tensor<T>& l : leaves) grads.push_back(l.defined() ? l.grad() : Tensor<T>());
  return {out.detach(), grads};
}
}  // namespace detail

// `got`, computed on `on`, against `want` (the CPU's result): tol 0 asks for equal values (NaN
// matching NaN), else |got - want| <= tol * |want| + tol * scale, scale < 0 meaning max |want|.
template <class T>
void check_on_device(const Tensor<T>& got, const Tensor<T>& want, Device on, double tol, const std::string& what,
                     double scale = -1.0) {
  INFO(what);
  REQUIRE(got.defined());
  REQUIRE(want.defined());
  REQUIRE(got.device().str() == on.str());
  REQUIRE(got.shape() == want.shape());
  if (scale < 0) scale = detail::max_abs(want);
  const std::vector<T> g = got.to(Device::cpu()).to_vector(), w = want.to(Device::cpu()).to_vector();
  std::int64_t bad = 0, worst = -1;
  double worst_excess = -1;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const double a = static_cast<double>(g[i]), b = static_cast<double>(w[i]);
    if (a == b || (std::isnan(a) && std::isnan(b))) continue;
    const double bound = tol * std::fabs(b) + tol * scale, err = std::fabs(a - b);
    if (tol > 0 && err <= bound) continue;  // a NaN error fails here
    ++bad;
    const double excess = std::isnan(err) ? std::numeric_limits<double>::infinity() : err / (bound + 1e-300);
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = static_cast<std::int64_t>(i);
    }
  }
  INFO(bad << " of " << g.size() << " elements differ (tol " << tol << ", scale " << scale << "); worst at "
           << worst << ": got " << std::setprecision(17)
           << (worst >= 0 ? static_cast<double>(g[static_cast<std::size_t>(worst)]) : 0.0) << ", want "
           << (worst >= 0 ? static_cast<double>(w[static_cast<std::size_t>(worst)]) : 0.0));
  CHECK(bad == 0);
}

// Every non-CPU device's output and input gradients against the CPU's, each within its Bound.
template <class T>
void check_devices_agree(const OpFn<T>& f, const std::vector<Tensor<T>>& inputs, const Agreement& a,
                         const std::string& what, std::uint64_t seed = 7) {
  const auto devices = op_devices();
  if (devices.size() < 2) return;
  INFO(what);
  const auto [want, want_g] = detail::run_backward<T>(f, inputs, Device::cpu(), seed, false);
  Tensor<T> mag_out;
  std::vector<Tensor<T>> mag_g;
  if (a.out == Bound::magnitudes || a.grad == Bound::magnitudes)
    std::tie(mag_out, mag_g) = detail::run_backward<T>(f, inputs, Device::cpu(), seed, true);
  const auto tol_of = [&a](Bound b) { return b == Bound::exact ? 0.0 : a.tol; };
  const auto scale_of = [](Bound b, const Tensor<T>& m) { return b == Bound::magnitudes ? detail::max_abs(m) : -1.0; };
  for (std::size_t k = 1; k < devices.size(); ++k) {
    const auto [got, got_g] = detail::run_backward<T>(f, inputs, devices[k], seed, false);
    const std::string on = what + " on " + devices[k].str() + " vs cpu";
    check_on_device(got, want, devices[k], tol_of(a.out), on + ": output", scale_of(a.out, mag_out));
    REQUIRE(got_g.size() == want_g.size());
    for (std::size_t i = 0; i < got_g.size(); ++i) {
      const std::string name = on + ": gradient of input " + std::to_string(i);
      INFO(name);
      REQUIRE(got_g[i].defined() == want_g[i].defined());
      if (!want_g[i].defined()) continue;
      check_on_device(got_g[i], want_g[i], devices[k], tol_of(a.grad), name, scale_of(a.grad, mag_g[i]));
    }
  }
}

}  // namespace ember::test
