#pragma once
// Finite-difference gradient checking in double, for every differentiable op.
//
// For a function f(inputs) -> out and a fixed random tensor R of out's shape, the scalar
//   L(inputs) = sum(f(inputs) * R)
// depends on every element of out, so dL/dinput = J^T R checks the whole backward pass of
// f (the vector-Jacobian product that backward() computes) and not only one column of it.
// The analytic gradient comes from autograd; the numeric one from central differences
//   dL/dx_j ~ (L(x + eps e_j) - L(x - eps e_j)) / (2 eps),   eps = 1e-6,
// whose truncation error is O(eps^2) and rounding error about 1e-16 |L| / eps. Each element
// must satisfy
//   |analytic - numeric| <= atol + rtol * |numeric|,   atol = 1e-6, rtol = 1e-5.
// Inputs must keep a margin of at least ~1e-3 from kinks (relu at 0, ties in max_pool2d)
// so that the two evaluations lie on the same smooth piece.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "ember/autograd/engine.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/reduce.hpp"

namespace ember::test {

using GradFn = std::function<ember::Tensor<double>(const std::vector<ember::Tensor<double>>&)>;

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-5;
  std::uint64_t seed = 20240601;  // for R
  std::vector<bool> wrt;          // which inputs to differentiate (empty: all)
};

struct GradcheckResult {
  bool ok = true;
  std::int64_t checked = 0;  // elements compared
  double max_abs_err = 0;
  std::string report;  // the first mismatches, for INFO
};

// sum(out * R) in double, from the values only (no autograd).
inline double weighted_sum(const ember::Tensor<double>& out, const std::vector<double>& r) {
  const std::vector<double> v = out.to_vector();
  double acc = 0;
  for (std::size_t i = 0; i < v.size(); ++i) acc += v[i] * r[i];
  return acc;
}

inline GradcheckResult gradcheck(const GradFn& f, const std::vector<ember::Tensor<double>>& inputs,
                                 const GradcheckOptions& opt = {}) {
  using ember::Tensor;
  GradcheckResult res;
  std::ostringstream report;

  // Fresh contiguous leaves, so perturbing them cannot touch the caller's tensors.
  std::vector<Tensor<double>> leaves;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    Tensor<double> leaf = inputs[i].detach().contiguous().clone();
    if (opt.wrt.empty() || opt.wrt[i]) leaf.requires_grad_();
    leaves.push_back(leaf);
  }

  // Analytic: backward of sum(f * R).
  Tensor<double> out = f(leaves);
  ember::Generator gen(opt.seed);
  const Tensor<double> r = Tensor<double>::uniform(out.shape(), -1.0, 1.0, gen);
  const std::vector<double> rv = r.to_vector();
  const Tensor<double> loss = ember::sum(ember::mul(out, r));
  if (loss.requires_grad())
    loss.backward();
  else
    report << "the output has no autograd history\n";

  for (std::size_t i = 0; i < leaves.size(); ++i) {
    if (!leaves[i].requires_grad()) continue;
    Tensor<double> g = leaves[i].grad();
    const std::vector<double> analytic =
        g.defined() ? g.to_vector()
                    : std::vector<double>(static_cast<std::size_t>(leaves[i].numel()), 0.0);
    if (!g.defined()) report << "input " << i << ": no gradient reached it (taken as 0)\n";
    double* x = leaves[i].data();
    int shown = 0;
    for (std::int64_t j = 0; j < leaves[i].numel(); ++j) {
      const double saved = x[j];
      double plus = 0, minus = 0;
      {
        ember::NoGradGuard no_grad;
        x[j] = saved + opt.eps;
        plus = weighted_sum(f(leaves), rv);
        x[j] = saved - opt.eps;
        minus = weighted_sum(f(leaves), rv);
        x[j] = saved;
      }
      const double numeric = (plus - minus) / (2 * opt.eps);
      const double a = analytic[static_cast<std::size_t>(j)];
      const double err = std::abs(a - numeric);
      ++res.checked;
      if (err > res.max_abs_err) res.max_abs_err = err;
      if (!(err <= opt.atol + opt.rtol * std::abs(numeric))) {
        res.ok = false;
        if (shown++ < 8)
          report << "input " << i << " element " << j << ": analytic " << a << ", numeric "
                 << numeric << ", |diff| " << err << "\n";
      }
    }
  }
  report << "checked " << res.checked
         << " elements, max |analytic - numeric| = " << res.max_abs_err;
  res.report = report.str();
  return res;
}

// gradcheck with Catch2 assertions; the caller's INFO/CAPTURE context is reported with it.
inline void check_gradients(const GradFn& f, const std::vector<ember::Tensor<double>>& inputs,
                            const GradcheckOptions& opt = {}) {
  const GradcheckResult r = gradcheck(f, inputs, opt);
  INFO(r.report);
  CHECK(r.checked > 0);
  CHECK(r.ok);
}

// Fills a raw output buffer with NaN (or a sentinel for integers) before a kernel runs, so
// that any element the kernel fails to write shows up in the comparison.
template <class T>
void poison(T* p, std::int64_t n) {
  T bad;
  if constexpr (std::is_floating_point_v<T>)
    bad = std::numeric_limits<T>::quiet_NaN();
  else
    bad = static_cast<T>(-7);
  std::fill_n(p, n, bad);
}
template <class T>
void poison(const ember::Tensor<T>& t) {
  poison(t.data(), t.numel());
}

}  // namespace ember::test
