// CPU-vs-CUDA agreement of what is not one op: the tensor copies, casts and fills between
// devices, autograd across devices, SGD on the device, the MNIST network's training steps and
// the device data loader, and the device error messages; and, for now, matmul and max_pool2d.
// Every other op has its case in tests/ops/op_*.cpp (support/op_case.hpp), compiled into this
// program too, where it runs on every device.
//
// A plain C++ file (compiled by g++), linked with the nvcc-compiled CUDA backend
// (include/ember/backend/cuda/ember_cuda.cu) and tests/cuda/cuda_test_main.cu, whose main exits
// with 77 (CTest: skipped) on a machine without a CUDA device; so every test here may assume
// that cuda:0 exists.
//
// Method: the same inputs (Philox draws, reproducible from their seeds) go through the same ops
// on the CPU and on cuda:0, with the same upstream gradient; the CUDA results are copied back
// and compared with the CPU backend's. Ops with a vendor-library path run with each backend
// in turn, chosen through the registry (support/backend_scope.hpp: "cublas" and "custom" for
// GEMMs, "cudnn" and "custom" for convolutions), and the previous choice is restored afterwards.
//
// Tolerances (want = the CPU result, got = the CUDA result):
//  * exact (equal values, NaN matching NaN) where both backends do the same single IEEE
//    operation per element or only move data: copies, casts, fills, max pooling (forward;
//    backward when windows do not overlap), dropout masks, and the device data loader (see
//    that test for the one build-flag caveat).
//  * GEMMs and everything linear in its inputs:
//      |got - want| <= tol * |want| + tol * S
//    where S is the largest element of the same computation run on |inputs| with |upstream
//    gradient| (the scale of the rounding-error bound, sum |terms|, which is >= max |want|);
//    tol = 1e-5 for float, 1e-11 for double.
//  * composites: the same with S = max |want|.
//  * the MNIST training steps: tol = 1e-4.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/backend/device_backend.hpp"
#include "ember/core/device.hpp"
#include "ember/core/error.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/dataloader.hpp"
#include "ember/data/device_loader.hpp"
#include "ember/data/mnist.hpp"
#include "ember/models/mnist_net.hpp"
#include "ember/nn/layers.hpp"
#include "ember/nn/module.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/conv.hpp"
#include "ember/ops/dropout.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/linear.hpp"
#include "ember/ops/loss.hpp"
#include "ember/ops/pool.hpp"
#include "ember/ops/reduce.hpp"
#include "ember/optim/sgd.hpp"

#include "support/backend_scope.hpp"
#include "support/inputs.hpp"
#include "support/matchers.hpp"

namespace {

using ember::Device;
using ember::Generator;
using ember::Shape;
using ember::Tensor;
using ember::test::BackendScope;
using ember::test::ErrorContains;
using ember::test::quantized;
using I64 = std::int64_t;

const Device kCpu = Device::cpu();
const Device kCuda = Device::cuda(0);

// The relative tolerance for rounding-order differences (see the file comment).
template <class T>
constexpr double kTol = std::is_same_v<T, float> ? 1e-5 : 1e-11;

// ---- inputs ----------------------------------------------------------------------------------

template <class T>
Tensor<T> uniform(const Shape& s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Generator g(seed);
  return Tensor<T>::uniform(s, lo, hi, g);
}

template <class T>
Tensor<T> normal(const Shape& s, std::uint64_t seed) {
  Generator g(seed);
  return Tensor<T>::randn(s, g);
}

// Random values of any element type (integers: int64/int32 in [-1000, 1000), uint8 any byte).
template <class T>
Tensor<T> random_of(const Shape& s, std::uint64_t seed) {
  if constexpr (ember::Real<T>) {
    return uniform<T>(s, seed, -100.0, 100.0);
  } else {
    Generator g(seed);
    auto t = Tensor<T>::empty(s);
    for (I64 i = 0; i < t.numel(); ++i) {
      if constexpr (std::is_same_v<T, std::uint8_t>) t.data()[i] = static_cast<T>(g.below(256));
      else t.data()[i] = static_cast<T>(static_cast<I64>(g.below(2000)) - 1000);
    }
    return t;
  }
}

Tensor<I64> labels_of(I64 n, I64 classes, std::uint64_t seed) {
  return ember::test::random_labels(n, classes, seed);
}

// A CPU copy of |t|.
template <class T>
Tensor<T> abs_of(const Tensor<T>& t) {
  std::vector<T> v = t.to_vector();
  for (T& x : v) x = std::abs(x);
  return Tensor<T>::from_vector(v, t.shape());
}

template <class T>
double max_abs(const Tensor<T>& t) {
  double m = 0;
  for (T v : t.to_vector()) m = std::max(m, std::fabs(static_cast<double>(v)));
  return m;
}

// ---- comparisons ---------------------------------------------------------------------------

template <class T>
std::string show(T v) {
  std::ostringstream os;
  if constexpr (ember::Real<T>) os << std::setprecision(std::numeric_limits<T>::max_digits10) << v;
  else os << static_cast<long long>(v);
  return os.str();
}

template <class T>
bool same_value(T a, T b) {
  if constexpr (ember::Real<T>) {
    if (std::isnan(a) && std::isnan(b)) return true;
  }
  return a == b;
}

template <class T>
void require_layout(const Tensor<T>& got, const Tensor<T>& want, Device on) {
  REQUIRE(got.defined());
  REQUIRE(want.defined());
  REQUIRE(got.device().str() == on.str());
  REQUIRE(got.shape() == want.shape());
}

// got (on device `on`) equals want (any device) element for element.
template <class T>
void require_equal(const Tensor<T>& got, const Tensor<T>& want, const std::string& what,
                   Device on = kCuda) {
  INFO(what);
  require_layout(got, want, on);
  const std::vector<T> g = got.to_vector(), w = want.to_vector();
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < g.size(); ++i)
    if (!same_value(g[i], w[i]) && bad++ == 0) first = i;
  if (bad != 0)
    FAIL(what << ": " << bad << " of " << g.size() << " elements differ; first at flat index "
              << first << ": got " << show(g[first]) << ", expected " << show(w[first]));
}

// |got - want| <= tol * |want| + tol * scale elementwise; scale < 0 means max |want|.
template <class T>
void require_close(const Tensor<T>& got, const Tensor<T>& want, const std::string& what, double tol,
                   double scale = -1.0, Device on = kCuda) {
  INFO(what);
  require_layout(got, want, on);
  if (scale < 0) scale = max_abs(want);
  const std::vector<T> g = got.to_vector(), w = want.to_vector();
  std::size_t bad = 0, worst = 0;
  double worst_excess = -1;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const double a = static_cast<double>(g[i]), b = static_cast<double>(w[i]);
    if (a == b || (std::isnan(a) && std::isnan(b))) continue;
    const double bound = tol * std::fabs(b) + tol * scale;
    const double err = std::fabs(a - b);
    if (err <= bound) continue;  // a NaN error fails here
    ++bad;
    const double excess = std::isnan(err) ? std::numeric_limits<double>::infinity() : err / (bound + 1e-300);
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = i;
    }
  }
  if (bad != 0)
    FAIL(what << ": " << bad << " of " << g.size() << " elements outside the tolerance (tol "
              << tol << ", scale " << scale << "); worst at flat index " << worst << ": got "
              << show(g[worst]) << ", expected " << show(w[worst]));
}

// ---- one op, forward and backward, on both devices -----------------------------------------

template <class T>
using Fn = std::function<Tensor<T>(const std::vector<Tensor<T>>&)>;

template <class T>
struct Result {
  Tensor<T> out;
  std::vector<Tensor<T>> grads;  // one per input; undefined where no gradient arrived
};

// out = f(leaves) on device d, the leaves being fresh copies of `inputs` (|inputs| when
// `magnitudes`) that require grad; then out.backward(gy) with gy uniform in [-1, 1) drawn from
// `gseed` in out's shape (|gy| when `magnitudes`).
template <class T>
Result<T> run(const Fn<T>& f, const std::vector<Tensor<T>>& inputs, std::uint64_t gseed, Device d,
              bool magnitudes = false) {
  std::vector<Tensor<T>> leaves;
  for (const Tensor<T>& t : inputs) {
    if (!t.defined()) {
      leaves.emplace_back();
      continue;
    }
    const Tensor<T> src = magnitudes ? abs_of(t) : t;
    Tensor<T> leaf = (d.is_cpu() ? src.clone() : src.to(d)).detach();
    leaf.requires_grad_(true);
    leaves.push_back(leaf);
  }
  Result<T> r;
  r.out = f(leaves);
  REQUIRE(r.out.device().str() == d.str());
  Tensor<T> gy = uniform<T>(r.out.shape(), gseed);
  if (magnitudes) gy = abs_of(gy);
  r.out.backward(gy.to(d));
  for (const Tensor<T>& l : leaves) r.grads.push_back(l.defined() ? l.grad() : Tensor<T>());
  return r;
}

enum class Scale {
  exact,       // equal values
  magnitudes,  // tolerance scaled by the same computation on |inputs|, |gy|
  output,      // tolerance scaled by max |expected|
};

template <class T>
void compare(const Tensor<T>& got, const Tensor<T>& want, const std::string& what, Scale scale,
             double tol, double mag) {
  if (scale == Scale::exact) require_equal(got, want, what);
  else require_close(got, want, what, tol, scale == Scale::magnitudes ? mag : -1.0);
}

// Runs f forward and backward on the CPU and on cuda:0 and compares the output (by `fwd`) and
// the gradient of every input (by `bwd`).
template <class T>
void check_agreement(const std::string& what, const Fn<T>& f, const std::vector<Tensor<T>>& inputs,
                     std::uint64_t gseed, Scale fwd, Scale bwd, double tol = kTol<T>) {
  INFO(what);
  const Result<T> want = run(f, inputs, gseed, kCpu);
  const Result<T> got = run(f, inputs, gseed, kCuda);
  Result<T> mag;
  if (fwd == Scale::magnitudes || bwd == Scale::magnitudes) mag = run(f, inputs, gseed, kCpu, true);
  compare(got.out, want.out, what + ": output", fwd, tol,
          fwd == Scale::magnitudes ? max_abs(mag.out) : -1.0);
  REQUIRE(got.grads.size() == want.grads.size());
  for (std::size_t i = 0; i < got.grads.size(); ++i) {
    const std::string name = what + ": gradient of input " + std::to_string(i);
    INFO(name);
    REQUIRE(got.grads[i].defined() == want.grads[i].defined());
    if (!want.grads[i].defined()) continue;
    compare(got.grads[i], want.grads[i], name, bwd, tol,
            bwd == Scale::magnitudes ? max_abs(mag.grads[i]) : -1.0);
  }
}

// ---- backend selection -----------------------------------------------------------------------

const std::vector<std::string> kGemmBackends = {"cublas", "custom"};

}  // namespace

// =============================================================================================
// GEMM: matmul
// =============================================================================================

TEMPLATE_TEST_CASE("cuda ops: matmul, every shape class, both GEMM backends", "[cuda][gemm]", float,
                   double) {
  using T = TestType;
  struct Mnk {
    I64 m, k, n;
  };
  const std::vector<Mnk> shapes = {
      {1, 1, 1},   {1, 7, 1},    {7, 1, 5},     {5, 7, 3},   {2, 3, 4},    {16, 16, 16},
      {33, 17, 65}, {64, 64, 64}, {100, 1, 100}, {1, 100, 1}, {130, 70, 129}, {257, 33, 3},
      {3, 257, 33}, {31, 130, 1},  {128, 9216 / 8, 10},
  };
  for (const std::string& be : kGemmBackends) {
    BackendScope scope(BackendScope::gemm, be);
    std::uint64_t seed = 1300;
    for (const Mnk& s : shapes) {
      INFO("GEMM backend " << be << ", M " << s.m << ", K " << s.k << ", N " << s.n);
      const Tensor<T> a = uniform<T>({s.m, s.k}, ++seed), b = uniform<T>({s.k, s.n}, ++seed);
      check_agreement<T>("matmul", [](const std::vector<Tensor<T>>& v) { return ember::matmul(v[0], v[1]); },
                         {a, b}, ++seed, Scale::magnitudes, Scale::magnitudes);
      // Transposed (non-contiguous) operands, stored the other way round.
      const Tensor<T> at = uniform<T>({s.k, s.m}, ++seed), bt = uniform<T>({s.n, s.k}, ++seed);
      check_agreement<T>("matmul of transposed views",
                         [](const std::vector<Tensor<T>>& v) { return ember::matmul(v[0].t(), v[1].t()); },
                         {at, bt}, ++seed, Scale::magnitudes, Scale::magnitudes);
    }
    // A sliced operand (row stride larger than its width).
    const Tensor<T> wide = uniform<T>({9, 20}, 1390), b = uniform<T>({7, 5}, 1391);
    check_agreement<T>("matmul of a sliced view",
                       [](const std::vector<Tensor<T>>& v) { return ember::matmul(v[0].slice(1, 3, 10), v[1]); },
                       {wide, b}, 1392, Scale::magnitudes, Scale::magnitudes);
  }
}

TEMPLATE_TEST_CASE("cuda ops: matmul with an empty dimension", "[cuda][gemm]", float, double) {
  using T = TestType;
  for (const std::string& be : kGemmBackends) {
    BackendScope scope(BackendScope::gemm, be);
    INFO("GEMM backend " << be);
    // K = 0: the product is all zeros (C is written, not read).
    const Tensor<T> a = Tensor<T>::empty({3, 0}), b = Tensor<T>::empty({0, 4});
    const auto c = ember::matmul(a.to(kCuda), b.to(kCuda));
    require_equal(c, Tensor<T>::zeros({3, 4}), "matmul (3, 0) x (0, 4)");
    // M = 0 or N = 0: an empty result.
    const auto e = ember::matmul(Tensor<T>::empty({0, 5}, kCuda), uniform<T>({5, 2}, 1).to(kCuda));
    REQUIRE(e.shape() == Shape{0, 2});
    const auto f = ember::matmul(uniform<T>({2, 5}, 2).to(kCuda), Tensor<T>::empty({5, 0}, kCuda));
    REQUIRE(f.shape() == Shape{2, 0});
  }
}

// =============================================================================================
// Pooling
// =============================================================================================

TEMPLATE_TEST_CASE("cuda ops: max_pool2d forward and backward", "[cuda][pool]", float, double) {
  using T = TestType;
  struct PoolCase {
    I64 n, c, h, w, kernel, stride, pad;
  };
  const std::vector<PoolCase> cases = {
      {2, 3, 8, 8, 2, 2, 0},  {1, 2, 7, 9, 3, 3, 1},   {2, 64, 24, 24, 2, 2, 0}, {1, 1, 1, 1, 1, 1, 0},
      {3, 2, 9, 9, 3, 4, 1},  {1, 3, 5, 7, 2, 2, 1},   // non-overlapping windows
      {2, 2, 9, 9, 3, 2, 1},  {1, 1, 5, 5, 5, 1, 2},   {1, 3, 6, 7, 2, 1, 0}, {2, 4, 11, 10, 3, 1, 1},
  };
  std::uint64_t seed = 1600;
  for (const PoolCase& c : cases) {
    const bool overlap = c.stride < c.kernel;
    for (int kind = 0; kind < 3; ++kind) {  // distinct values, random values, many ties
      INFO("x (" << c.n << ", " << c.c << ", " << c.h << ", " << c.w << "), kernel " << c.kernel
                 << ", stride " << c.stride << ", padding " << c.pad << ", inputs " << kind);
      const Shape s{c.n, c.c, c.h, c.w};
      Tensor<T> x;
      if (kind == 0) x = ember::test::distinct_values<T>(s, ++seed);
      else if (kind == 1) x = uniform<T>(s, ++seed);
      else x = quantized<T>(s, ++seed, 1);
      const I64 k = c.kernel, st = c.stride, p = c.pad;
      // Forward: a selection, exact. Backward: a scatter; exact unless windows overlap (then
      // several gradients add into one input, in an order that may differ).
      check_agreement<T>("max_pool2d",
                         [k, st, p](const std::vector<Tensor<T>>& v) { return ember::max_pool2d(v[0], k, st, p); },
                         {x}, ++seed, Scale::exact, overlap ? Scale::output : Scale::exact);
    }
  }
  // Default stride (= kernel) and a non-contiguous input.
  const Tensor<T> xt = ember::test::distinct_values<T>({2, 3, 10, 8}, 1690);
  check_agreement<T>("max_pool2d of a transposed input",
                     [](const std::vector<Tensor<T>>& v) { return ember::max_pool2d(v[0].transpose(2, 3), 2); },
                     {xt}, 1691, Scale::exact, Scale::exact);
}

// =============================================================================================
// Copies, casts, fills
// =============================================================================================

TEMPLATE_TEST_CASE("cuda tensors: to/cpu round trips, contiguous, clone", "[cuda][copy]", float,
                   double, std::int64_t, std::int32_t, std::uint8_t) {
  using T = TestType;
  const Tensor<T> x = random_of<T>({6, 8}, 2200);
  const Tensor<T> g = x.to(kCuda);
  REQUIRE(g.device().str() == kCuda.str());
  REQUIRE(g.is_contiguous());
  REQUIRE_FALSE(g.shares_storage(x));
  require_equal(g, x, "to(cuda)");
  require_equal(g.cpu(), x, "to(cuda).cpu()", kCpu);
  REQUIRE(g.to(kCuda).shares_storage(g));  // already there: the same tensor
  REQUIRE(x.cpu().shares_storage(x));
  REQUIRE(g.to_vector() == x.to_vector());

  // 0-d and empty tensors.
  const Tensor<T> s = random_of<T>({}, 2201);
  REQUIRE(s.to(kCuda).item() == s.item());
  const Tensor<T> e = Tensor<T>::empty({0, 3}).to(kCuda);
  REQUIRE(e.shape() == Shape{0, 3});
  REQUIRE(e.cpu().numel() == 0);

  // Non-contiguous sources: the copy on the device is contiguous, in C order of the view.
  require_equal(x.t().to(kCuda), x.t().contiguous(), "to(cuda) of a transposed view");
  require_equal(x.slice(1, 1, 8, 3).to(kCuda), x.slice(1, 1, 8, 3).contiguous(), "to(cuda) of a slice");
  require_equal(g.t().cpu(), x.t().contiguous(), "cpu() of a transposed CUDA view", kCpu);
  require_equal(g.select(0, 4).cpu(), x.select(0, 4).contiguous(), "cpu() of a selected CUDA row", kCpu);

  // contiguous(): the same tensor when already contiguous, else a copy.
  REQUIRE(g.contiguous().shares_storage(g));
  const Tensor<T> gc = g.permute({1, 0}).contiguous();
  REQUIRE(gc.is_contiguous());
  REQUIRE_FALSE(gc.shares_storage(g));
  require_equal(gc, x.permute({1, 0}).contiguous(), "contiguous() of a permuted CUDA view");
  const Tensor<T> g3 = random_of<T>({3, 4, 5}, 2202).to(kCuda);
  require_equal(g3.permute({2, 0, 1}).contiguous(), g3.cpu().permute({2, 0, 1}).contiguous(),
                "contiguous() of a rank-3 permutation");

  // clone(): always a fresh copy with the view's values.
  const Tensor<T> cl = g.slice(0, 1, 6, 2).clone();
  REQUIRE(cl.device().str() == kCuda.str());
  REQUIRE_FALSE(cl.shares_storage(g));
  require_equal(cl, x.slice(0, 1, 6, 2).clone(), "clone() of a sliced CUDA view");
  require_equal(g.clone(), x, "clone()");
}

TEMPLATE_TEST_CASE("cuda tensors: copy_ between devices and into views", "[cuda][copy]", float,
                   double, std::int64_t, std::int32_t, std::uint8_t) {
  using T = TestType;
  const Tensor<T> base = random_of<T>({6, 8}, 2300);
  const Tensor<T> src = random_of<T>({6, 4}, 2301);
  const Tensor<T> src_t = random_of<T>({8, 6}, 2302);

  SECTION("CPU -> CUDA, into a strided view") {
    Tensor<T> dg = base.to(kCuda), dc = base.clone();
    dg.slice(1, 1, 8, 2).copy_(src);
    dc.slice(1, 1, 8, 2).copy_(src);
    require_equal(dg, dc, "CPU -> CUDA slice");
  }
  SECTION("CPU -> CUDA, into a transposed view") {
    Tensor<T> dg = base.to(kCuda), dc = base.clone();
    dg.t().copy_(src_t);
    dc.t().copy_(src_t);
    require_equal(dg, dc, "CPU -> CUDA transpose");
  }
  SECTION("CUDA -> CPU, into a strided view") {
    Tensor<T> dc = base.clone(), want = base.clone();
    dc.t().slice(0, 0, 8, 2).copy_(src_t.slice(0, 0, 8, 2).to(kCuda));
    want.t().slice(0, 0, 8, 2).copy_(src_t.slice(0, 0, 8, 2));
    require_equal(dc, want, "CUDA -> CPU view", kCpu);
  }
  SECTION("CUDA -> CUDA, both strided") {
    Tensor<T> dg = base.to(kCuda), dc = base.clone();
    const Tensor<T> sg = src_t.to(kCuda);
    dg.slice(1, 0, 8, 2).copy_(sg.t().slice(1, 1, 8, 2));
    dc.slice(1, 0, 8, 2).copy_(src_t.t().slice(1, 1, 8, 2));
    require_equal(dg, dc, "CUDA -> CUDA views");
    // A contiguous source into a contiguous destination.
    Tensor<T> whole = Tensor<T>::zeros({6, 8}, kCuda);
    whole.copy_(dg);
    require_equal(whole, dc, "CUDA -> CUDA whole");
  }
  SECTION("CUDA -> CUDA, overlapping views of one storage") {
    Tensor<T> dg = base.to(kCuda), dc = base.clone();
    dg.slice(0, 0, 4).copy_(dg.slice(0, 2, 6));
    dc.slice(0, 0, 4).copy_(dc.slice(0, 2, 6));
    require_equal(dg, dc, "overlapping copy (rows)");
    Tensor<T> sq = random_of<T>({5, 5}, 2303);
    Tensor<T> sqg = sq.to(kCuda);
    sqg.copy_(sqg.t());  // in-place transpose through a copy
    sq.copy_(sq.t());
    require_equal(sqg, sq, "overlapping copy (transpose onto itself)");
  }
  SECTION("copy_ checks shapes") {
    Tensor<T> dg = base.to(kCuda);
    REQUIRE_THROWS_MATCHES(dg.copy_(src), ember::Error, ErrorContains({"copy_", "[6, 4]", "[6, 8]"}));
  }
}

namespace {

template <class T, class U>
void check_cast(const Tensor<T>& x, const char* to_name) {
  INFO("cast to " << to_name);
  const Tensor<T> g = x.to(kCuda);
  const Tensor<U> got = g.template cast<U>();
  REQUIRE(got.device().str() == kCuda.str());
  require_equal(got, x.template cast<U>(), "cast");
  // From a non-contiguous view.
  require_equal(g.t().template cast<U>(), x.t().template cast<U>(), "cast of a transposed view");
}

template <class T>
void check_all_casts(const Tensor<T>& x) {
  check_cast<T, float>(x, "float32");
  check_cast<T, double>(x, "float64");
  check_cast<T, std::int64_t>(x, "int64");
  check_cast<T, std::int32_t>(x, "int32");
  check_cast<T, std::uint8_t>(x, "uint8");
}

}  // namespace

TEMPLATE_TEST_CASE("cuda tensors: cast<U>() on the device matches the CPU", "[cuda][copy]", float,
                   double, std::int64_t, std::int32_t, std::uint8_t) {
  using T = TestType;
  if constexpr (ember::Real<T>) {
    // In [0, 250): every conversion, uint8 included, is defined (truncation toward zero).
    check_all_casts(uniform<T>({7, 9}, 2400, 0.0, 250.0));
    // Negative values to the signed types and the other float type.
    const Tensor<T> neg = uniform<T>({7, 9}, 2401, -1000.0, 1000.0);
    check_cast<T, float>(neg, "float32 (signed)");
    check_cast<T, double>(neg, "float64 (signed)");
    check_cast<T, std::int64_t>(neg, "int64 (signed)");
    check_cast<T, std::int32_t>(neg, "int32 (signed)");
  } else {
    check_all_casts(random_of<T>({7, 9}, 2402));  // integer to uint8 wraps modulo 256 on both
  }
  // Empty.
  REQUIRE(Tensor<T>::empty({0, 4}, kCuda).template cast<double>().shape() == Shape{0, 4});
}

TEMPLATE_TEST_CASE("cuda tensors: full/zeros/ones, fill_ and zero_", "[cuda][copy]", float, double,
                   std::int64_t, std::int32_t, std::uint8_t) {
  using T = TestType;
  const T v = static_cast<T>(7);
  require_equal(Tensor<T>::full({5, 3}, v, kCuda), Tensor<T>::full({5, 3}, v), "full");
  require_equal(Tensor<T>::zeros({4, 6}, kCuda), Tensor<T>::zeros({4, 6}), "zeros");
  require_equal(Tensor<T>::ones({1001}, kCuda), Tensor<T>::ones({1001}), "ones");
  require_equal(Tensor<T>::full({}, v, kCuda), Tensor<T>::full({}, v), "full 0-d");
  REQUIRE(Tensor<T>::zeros({0, 7}, kCuda).numel() == 0);

  const Tensor<T> base = random_of<T>({6, 8}, 2500);
  {
    Tensor<T> g = base.to(kCuda), c = base.clone();
    g.fill_(static_cast<T>(3));
    c.fill_(static_cast<T>(3));
    require_equal(g, c, "fill_ whole");
  }
  {
    Tensor<T> g = base.to(kCuda), c = base.clone();
    g.slice(1, 1, 8, 3).fill_(static_cast<T>(5));
    c.slice(1, 1, 8, 3).fill_(static_cast<T>(5));
    require_equal(g, c, "fill_ of a strided view");
  }
  {
    Tensor<T> g = base.to(kCuda), c = base.clone();
    g.t().select(0, 2).zero_();
    c.t().select(0, 2).zero_();
    require_equal(g, c, "zero_ of a column");
  }
  {
    Tensor<T> g = base.to(kCuda), c = base.clone();
    g.slice(0, 2, 5).zero_();  // contiguous rows in the middle of the storage
    c.slice(0, 2, 5).zero_();
    require_equal(g, c, "zero_ of contiguous rows");
  }
  {
    Tensor<T> g = base.to(kCuda);
    g.zero_();
    require_equal(g, Tensor<T>::zeros({6, 8}), "zero_ whole");
  }
}

TEST_CASE("cuda tensors: a module's state moves between devices with load_state_dict", "[cuda][copy]") {
  Generator g1(1), g2(2), g3(3);
  ember::nn::Linear cpu_lin(5, 3, true, g1), gpu_lin(5, 3, true, g2), back(5, 3, true, g3);
  gpu_lin.to(kCuda);
  REQUIRE(gpu_lin.device().str() == kCuda.str());
  gpu_lin.load_state_dict(cpu_lin.state_dict());  // CPU -> CUDA
  require_equal(gpu_lin.weight, cpu_lin.weight, "weight CPU -> CUDA");
  require_equal(gpu_lin.bias, cpu_lin.bias, "bias CPU -> CUDA");
  back.load_state_dict(gpu_lin.state_dict());  // CUDA -> CPU
  require_equal(back.weight, cpu_lin.weight, "weight CUDA -> CPU", kCpu);
  require_equal(back.bias, cpu_lin.bias, "bias CUDA -> CPU", kCpu);
  // Moving back to the CPU keeps the values.
  gpu_lin.to(kCpu);
  require_equal(gpu_lin.weight, cpu_lin.weight, "weight after to(cpu)", kCpu);
}

// =============================================================================================
// Autograd
// =============================================================================================

TEMPLATE_TEST_CASE("cuda autograd: backward through a small network matches the CPU for every "
                   "parameter",
                   "[cuda][autograd]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-10;
  const Tensor<T> x = uniform<T>({6, 3, 8, 8}, 2600);
  const Tensor<I64> labels = labels_of(6, 5, 2601);
  // Parameters: conv (4, 3, 3, 3) + bias, linear (5, 64) + bias, a per-class scale (1, 5).
  const std::vector<Tensor<T>> params = {
      uniform<T>({4, 3, 3, 3}, 2602, -0.5, 0.5), uniform<T>({4}, 2603, -0.1, 0.1),
      uniform<T>({5, 64}, 2604, -0.2, 0.2),      uniform<T>({5}, 2605, -0.1, 0.1),
      uniform<T>({1, 5}, 2606, 0.5, 1.5),
  };
  const Fn<T> net = [x, labels](const std::vector<Tensor<T>>& v) {
    const Device d = v[0].device();
    Generator gen(4242);  // the same masks on both devices (p exact in float: see the dropout test)
    const Tensor<T> xd = x.to(d);
    Tensor<T> h = ember::conv2d(xd, v[0], v[1], ember::Conv2dOptions{1, 1, 1});  // (6, 4, 8, 8)
    h = ember::relu(h);
    h = ember::max_pool2d(h, 2);              // (6, 4, 4, 4)
    h = ember::dropout2d(h, 0.25, true, gen);
    Tensor<T> f = h.flatten(1);                // (6, 64)
    Tensor<T> z = ember::linear(f, v[2], v[3]);  // (6, 5)
    // Broadcasting arithmetic with a (1, 5) parameter, softplus through exp/log, pow.
    const Tensor<T> softplus = ember::log(ember::add_scalar(ember::exp(v[4]), T(1)));
    z = ember::add(ember::mul(z, v[4]), ember::div(z, softplus));
    z = ember::sub(z, ember::mul_scalar(ember::pow(v[4], T(2)), T(0.1)));
    z = ember::dropout(z, 0.5, true, gen);
    Tensor<T> loss = ember::cross_entropy(z, labels.to(d));
    // Regularisers through reductions and views.
    loss = ember::add(loss, ember::mul_scalar(ember::sum(ember::mul(v[2], v[2])), T(1e-3)));
    loss = ember::add(loss, ember::mean(ember::pow(v[1], T(2))));
    loss = ember::add(loss, ember::mul_scalar(ember::sum(v[0].slice(0, 1, 3).select(1, 2).transpose(0, 1)), T(0.01)));
    loss = ember::sub(loss, ember::mean(ember::neg(ember::sum(v[2].t(), 1, true))));
    return loss;
  };
  check_agreement<T>("small network", net, params, 2607, Scale::output, Scale::output, tol);
}

TEMPLATE_TEST_CASE("cuda autograd: gradients through views stay on the device", "[cuda][autograd]",
                   float, double) {
  using T = TestType;
  const Tensor<T> a = uniform<T>({4, 6, 5}, 2700), b = uniform<T>({6, 4}, 2701);
  const std::vector<std::pair<const char*, Fn<T>>> cases = {
      {"slice", [](const std::vector<Tensor<T>>& v) { return v[0].slice(1, 1, 6, 2); }},
      {"select", [](const std::vector<Tensor<T>>& v) { return v[0].select(2, 3); }},
      {"negative select", [](const std::vector<Tensor<T>>& v) { return v[0].select(0, -1); }},
      {"transpose", [](const std::vector<Tensor<T>>& v) { return v[0].transpose(0, 2); }},
      {"permute", [](const std::vector<Tensor<T>>& v) { return v[0].permute({1, 2, 0}); }},
      {"reshape", [](const std::vector<Tensor<T>>& v) { return v[0].reshape({24, 5}); }},
      {"reshape of a transposed view (a copy)",
       [](const std::vector<Tensor<T>>& v) { return v[0].transpose(1, 2).reshape({4, 30}); }},
      {"view", [](const std::vector<Tensor<T>>& v) { return v[0].view({2, 2, 30}); }},
      {"flatten", [](const std::vector<Tensor<T>>& v) { return v[0].flatten(1); }},
      {"unsqueeze/squeeze",
       [](const std::vector<Tensor<T>>& v) { return v[0].unsqueeze(1).squeeze(1).unsqueeze(3); }},
      {"contiguous of a transpose", [](const std::vector<Tensor<T>>& v) { return v[0].transpose(0, 1).contiguous(); }},
      {"clone", [](const std::vector<Tensor<T>>& v) { return v[0].clone(); }},
      {"slice then matmul",
       [](const std::vector<Tensor<T>>& v) { return ember::matmul(v[0].select(2, 1).slice(1, 0, 6), v[1]); }},
      {"sum of two overlapping slices",
       [](const std::vector<Tensor<T>>& v) {
         return ember::add(v[0].slice(1, 0, 4), ember::mul(v[0].slice(1, 2, 6), v[0].slice(1, 1, 5)));
       }},
  };
  for (const auto& [name, f] : cases) {
    INFO(name);
    const Result<T> got = run(f, {a, b}, 2702, kCuda);
    for (const Tensor<T>& g : got.grads)
      if (g.defined()) REQUIRE(g.device().str() == kCuda.str());
    check_agreement<T>(name, f, {a, b}, 2702, Scale::magnitudes, Scale::magnitudes);
  }
}

TEMPLATE_TEST_CASE("cuda autograd: to() carries gradients back across devices, and gradients "
                   "accumulate",
                   "[cuda][autograd]", float, double) {
  using T = TestType;
  const double tol = kTol<T>;
  const Tensor<T> a = uniform<T>({5, 7}, 2800), b = uniform<T>({7, 3}, 2801);
  const Tensor<T> gy = uniform<T>({5, 3}, 2802);

  // All on the CPU.
  Tensor<T> ac = a.clone().detach().requires_grad_(true), bc = b.clone().detach().requires_grad_(true);
  ember::relu(ember::matmul(ac, bc)).backward(gy);
  // CPU leaves, the work on the device, the result back on the CPU.
  Tensor<T> am = a.clone().detach().requires_grad_(true), bm = b.clone().detach().requires_grad_(true);
  const Tensor<T> ym = ember::relu(ember::matmul(am.to(kCuda), bm.to(kCuda))).cpu();
  REQUIRE(ym.device().str() == kCpu.str());
  ym.backward(gy);
  REQUIRE(am.grad().device().str() == kCpu.str());
  require_close(am.grad(), ac.grad(), "grad of a CPU leaf used on the device", tol, -1.0, kCpu);
  require_close(bm.grad(), bc.grad(), "grad of a CPU leaf used on the device", tol, -1.0, kCpu);

  // Two backward passes accumulate into .grad() on the device; zero_grad clears it.
  Tensor<T> ag = a.to(kCuda).detach().requires_grad_(true);
  Tensor<T> ac2 = a.clone().detach().requires_grad_(true);
  for (int pass = 0; pass < 2; ++pass) {
    ember::sum(ember::mul(ag, ag)).backward();
    ember::sum(ember::mul(ac2, ac2)).backward();
  }
  REQUIRE(ag.grad().device().str() == kCuda.str());
  require_close(ag.grad(), ac2.grad(), "accumulated gradient", tol);
  require_close(ag.grad(), ember::mul_scalar(a, T(4)), "accumulated gradient = 4 a", tol);
  ag.zero_grad();
  require_equal(ag.grad(), Tensor<T>::zeros({5, 7}), "zero_grad()");
  ag.zero_grad(true);
  REQUIRE_FALSE(ag.grad().defined());

  // A non-scalar root with an explicit gradient on the device.
  Tensor<T> bg = b.to(kCuda).detach().requires_grad_(true);
  Tensor<T> bc2 = b.clone().detach().requires_grad_(true);
  const Tensor<T> g2 = uniform<T>({7, 3}, 2803);
  ember::exp(bg).backward(g2.to(kCuda));
  ember::exp(bc2).backward(g2);
  require_close(bg.grad(), bc2.grad(), "explicit root gradient", std::is_same_v<T, float> ? 1e-6 : 1e-14);
}

// =============================================================================================
// SGD
// =============================================================================================

TEST_CASE("cuda optim: SGD steps on the device match the CPU", "[cuda][optim]") {
  struct Opts {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
  };
  const std::vector<Opts> variants = {
      {0.1, 0.0, 0.0, 0.0, false}, {0.05, 0.5, 0.0, 0.0, false}, {0.05, 0.9, 0.1, 1e-2, false},
      {0.01, 0.9, 0.0, 5e-4, true},
  };
  std::uint64_t seed = 2900;
  for (const Opts& o : variants) {
    INFO("lr " << o.lr << ", momentum " << o.momentum << ", dampening " << o.dampening
               << ", weight_decay " << o.weight_decay << ", nesterov " << o.nesterov);
    const std::vector<Shape> shapes = {{7}, {33, 65}, {4, 3, 3, 3}, {100003}, {1}};
    std::vector<Tensor<float>> pc, pg;
    for (const Shape& s : shapes) {
      const Tensor<float> p = uniform<float>(s, ++seed);
      pc.push_back(p.clone().detach().requires_grad_(true));
      pg.push_back(p.to(kCuda).detach().requires_grad_(true));
    }
    ember::optim::SGDOptions so;
    so.lr = o.lr;
    so.momentum = o.momentum;
    so.dampening = o.dampening;
    so.weight_decay = o.weight_decay;
    so.nesterov = o.nesterov;
    ember::optim::SGD opt_c(pc, so), opt_g(pg, so);
    for (int step = 0; step < 3; ++step) {
      for (std::size_t i = 0; i < shapes.size(); ++i) {
        // The last parameter gets no gradient in step 1: it is skipped there.
        if (i + 1 == shapes.size() && step == 1) {
          pc[i].set_grad(Tensor<float>());
          pg[i].set_grad(Tensor<float>());
          continue;
        }
        const Tensor<float> g = uniform<float>(shapes[i], ++seed);
        pc[i].set_grad(g);
        pg[i].set_grad(g.to(kCuda));
      }
      opt_c.step();
      opt_g.step();
      for (std::size_t i = 0; i < shapes.size(); ++i) {
        INFO("step " << step << ", parameter " << i);
        // Identical formulas; only FMA contraction may differ (a few ulp).
        require_close(pg[i], pc[i], "parameter after SGD step", 1e-6);
      }
    }
    REQUIRE(opt_g.steps() == opt_c.steps());
  }
}

// =============================================================================================
// The MNIST network: three training steps
// =============================================================================================

namespace {

void mnist_three_steps() {
  constexpr double kTrainTol = 1e-4;
  constexpr I64 kBatch = 16;
  Generator gen_cpu(2024), gen_gpu(9999);
  ember::models::MnistNet net_cpu(gen_cpu), net_gpu(gen_gpu);
  // Same initial state: copied, then the second network moved to the device.
  net_gpu.load_state_dict(net_cpu.state_dict());
  net_gpu.to(kCuda);
  REQUIRE(net_gpu.device().str() == kCuda.str());
  for (const auto& [name, t] : net_gpu.named_parameters()) REQUIRE(t.device().str() == kCuda.str());
  {
    const auto sc = net_cpu.state_dict(), sg = net_gpu.state_dict();
    REQUIRE(sc.size() == sg.size());
    for (std::size_t i = 0; i < sc.size(); ++i) {
      REQUIRE(sc[i].first == sg[i].first);
      require_equal(sg[i].second, sc[i].second, "initial " + sc[i].first);
    }
  }
  // The dropout layers draw from the generators the networks were built with: give both the
  // same seed (offset 0) so that both draw the same masks.
  gen_cpu.manual_seed(77);
  gen_gpu.manual_seed(77);
  net_cpu.train();
  net_gpu.train();

  ember::optim::SGDOptions so;
  so.lr = 0.01;
  so.momentum = 0.5;
  ember::optim::SGD opt_cpu(net_cpu.parameters(), so), opt_gpu(net_gpu.parameters(), so);

  for (int step = 0; step < 3; ++step) {
    INFO("step " << step);
    const Tensor<float> images = normal<float>({kBatch, 1, 28, 28}, 3000 + static_cast<std::uint64_t>(step));
    const Tensor<I64> labels = labels_of(kBatch, 10, 3100 + static_cast<std::uint64_t>(step));

    opt_cpu.zero_grad();
    opt_gpu.zero_grad();
    const Tensor<float> out_cpu = net_cpu(images);
    const Tensor<float> out_gpu = net_gpu(images.to(kCuda));
    REQUIRE(out_gpu.device().str() == kCuda.str());
    require_close(out_gpu, out_cpu, "log-probabilities", kTrainTol);
    const Tensor<float> loss_cpu = ember::nll_loss(out_cpu, labels);
    const Tensor<float> loss_gpu = ember::nll_loss(out_gpu, labels.to(kCuda));
    const double lc = loss_cpu.item(), lg = loss_gpu.item();
    CAPTURE(lc, lg);
    REQUIRE(std::isfinite(lg));
    REQUIRE(std::fabs(lg - lc) <= kTrainTol * std::fabs(lc));
    loss_cpu.backward();
    loss_gpu.backward();
    REQUIRE(gen_gpu.offset() == gen_cpu.offset());  // the same number of dropout draws

    // Gradients of the fully connected layers. (The convolutions' gradients are left to the
    // parameter comparison below: a near-tie in a 2x2 pooling window, which rounding may
    // resolve differently on the two devices, routes one gradient value elsewhere; scaled by
    // the learning rate that is far inside the tolerance, but not in the raw gradient.)
    const auto pc = net_cpu.named_parameters(), pg = net_gpu.named_parameters();
    for (std::size_t i = 0; i < pc.size(); ++i) {
      if (pc[i].first.rfind("fc", 0) != 0) continue;
      REQUIRE(pg[i].second.grad().defined());
      REQUIRE(pg[i].second.grad().device().str() == kCuda.str());
      require_close(pg[i].second.grad(), pc[i].second.grad(), "gradient of " + pc[i].first, kTrainTol);
    }
    opt_cpu.step();
    opt_gpu.step();
  }

  const auto pc = net_cpu.named_parameters(), pg = net_gpu.named_parameters();
  REQUIRE(pc.size() == pg.size());
  for (std::size_t i = 0; i < pc.size(); ++i) {
    REQUIRE(pc[i].first == pg[i].first);
    require_close(pg[i].second, pc[i].second, "parameter " + pc[i].first + " after 3 steps", kTrainTol);
  }
  // The steps did change the parameters.
  Generator fresh(2024);
  ember::models::MnistNet initial(fresh);
  REQUIRE(max_abs(ember::sub(net_cpu.fc2->weight.detach(), initial.fc2->weight.detach())) > 0);
}

}  // namespace

TEST_CASE("cuda e2e: MnistNet, three SGD steps with dropout, matches the CPU", "[cuda][e2e]") {
  SECTION("vendor libraries (cublas, cudnn)") {
    BackendScope gemm(BackendScope::gemm, "cublas");
    BackendScope conv(BackendScope::conv, "cudnn");
    mnist_three_steps();
  }
  SECTION("ember's own kernels (custom, custom)") {
    BackendScope gemm(BackendScope::gemm, "custom");
    BackendScope conv(BackendScope::conv, "custom");
    mnist_three_steps();
  }
}

// =============================================================================================
// Data loading
// =============================================================================================

namespace {

// A synthetic dataset of n random images (h x w bytes) with labels in [0, 10).
std::shared_ptr<const ember::data::ImageDataset> synthetic_dataset(I64 n, I64 h, I64 w, std::uint64_t seed) {
  auto d = std::make_shared<ember::data::ImageDataset>();
  Generator g(seed);
  d->images = Tensor<std::uint8_t>::empty({n, h, w});
  for (I64 i = 0; i < d->images.numel(); ++i) d->images.data()[i] = static_cast<std::uint8_t>(g.below(256));
  d->labels = Tensor<I64>::empty({n});
  for (I64 i = 0; i < n; ++i) d->labels.data()[i] = static_cast<I64>(g.below(10));
  return d;
}

// DataLoader's normalisation: (pixel - 255 mean) * (1 / (255 std)), with the two constants
// rounded to float first (data::PixelNormalization); every device must give exactly these bits.
float normalised(std::uint8_t px, float mean, float std) {
  const auto n = ember::data::PixelNormalization::from(mean, std);
  volatile float center = n.center, scale = n.scale;  // no contraction with how they were made
  return (static_cast<float>(px) - center) * scale;
}

void compare_loaders(const ember::data::Subset& subset, const ember::data::DataLoaderOptions& o, int epochs) {
  using ember::data::Batch;
  ember::data::DataLoader cpu_loader(subset, o);
  ember::data::DeviceDataLoader gpu_loader(subset, o, kCuda);
  REQUIRE(gpu_loader.size() == cpu_loader.size());
  REQUIRE(gpu_loader.num_batches() == cpu_loader.num_batches());
  const I64 n = subset.size(), h = subset.dataset->images.size(1), w = subset.dataset->images.size(2);
  Generator order_gen(o.seed);  // the loaders' shuffle, replayed
  std::vector<std::vector<I64>> epoch_labels;
  for (int e = 0; e < epochs; ++e) {
    INFO("epoch " << e);
    std::vector<I64> order = o.shuffle ? ember::data::random_permutation(n, order_gen) : std::vector<I64>{};
    if (!o.shuffle)
      for (I64 i = 0; i < n; ++i) order.push_back(i);
    gpu_loader.start_epoch();
    I64 i = 0;
    std::vector<I64> seen;
    for (const Batch& b : cpu_loader.epoch()) {
      INFO("batch " << i);
      const Batch g = gpu_loader.batch(i);
      // The expected batch.
      const I64 count = std::min(o.batch_size, n - i * o.batch_size);
      auto want_images = Tensor<float>::empty({count, 1, h, w});
      auto want_labels = Tensor<I64>::empty({count});
      for (I64 k = 0; k < count; ++k) {
        const I64 s = subset.indices[static_cast<std::size_t>(order[static_cast<std::size_t>(i * o.batch_size + k)])];
        for (I64 j = 0; j < h * w; ++j)
          want_images.data()[k * h * w + j] = normalised(subset.dataset->images.data()[s * h * w + j], o.mean, o.std);
        want_labels.data()[k] = subset.dataset->labels.data()[s];
        seen.push_back(s);
      }
      require_equal(g.images, want_images, "DeviceDataLoader images");
      require_equal(g.labels, want_labels, "DeviceDataLoader labels");
      require_equal(b.labels, want_labels, "DataLoader labels", kCpu);
      require_equal(g.labels, b.labels, "DeviceDataLoader labels vs DataLoader");
      require_equal(b.images, want_images, "DataLoader images", kCpu);
      require_equal(g.images, b.images, "DeviceDataLoader images vs DataLoader");
      // batch_into writes the same batch into existing tensors.
      auto into_images = Tensor<float>::zeros({count, 1, h, w}, kCuda);
      auto into_labels = Tensor<I64>::zeros({count}, kCuda);
      gpu_loader.batch_into(i, into_images, into_labels);
      require_equal(into_images, g.images, "batch_into images");
      require_equal(into_labels, g.labels, "batch_into labels");
      ++i;
    }
    REQUIRE(i == cpu_loader.num_batches());
    epoch_labels.push_back(seen);
  }
  if (o.shuffle && epochs > 1 && n > 3) REQUIRE(epoch_labels[0] != epoch_labels[1]);  // a new order each epoch
}

}  // namespace

TEST_CASE("cuda data: DeviceDataLoader gives DataLoader's batches", "[cuda][data]") {
  const auto d = synthetic_dataset(37, 6, 5, 3200);
  // A subset in a scrambled order, not every sample.
  Generator g(3201);
  std::vector<I64> perm = ember::data::random_permutation(37, g);
  perm.resize(29);
  const ember::data::Subset subset{d, perm};

  ember::data::DataLoaderOptions o;
  o.batch_size = 5;  // 29 = 5 * 5 + 4: a short last batch
  o.shuffle = true;
  o.seed = 42;
  o.mean = 0.1307f;
  o.std = 0.3081f;

  SECTION("shuffled, two epochs, prefetching") { compare_loaders(subset, o, 2); }
  SECTION("shuffled, drop_last, no prefetch") {
    o.drop_last = true;
    o.prefetch = false;
    compare_loaders(subset, o, 2);
  }
  SECTION("not shuffled, default normalisation") {
    o.shuffle = false;
    o.mean = 0.5f;
    o.std = 0.5f;
    compare_loaders(subset, o, 1);
  }
  SECTION("one batch holding everything") {
    o.batch_size = 64;
    compare_loaders(ember::data::Subset::all(d), o, 2);
  }
  SECTION("DeviceDataLoader refuses a CPU device") {
    REQUIRE_THROWS_MATCHES(ember::data::DeviceDataLoader(subset, o, kCpu), ember::Error,
                           ErrorContains({"DeviceDataLoader", "cpu"}));
  }
}

// =============================================================================================
// Errors
// =============================================================================================

TEST_CASE("cuda errors: an op mixing a CPU and a CUDA tensor names both devices", "[cuda][errors]") {
  const Tensor<float> c = uniform<float>({4, 4}, 3300);
  const Tensor<float> g = c.to(kCuda);
  const auto both = ErrorContains({"cpu", "cuda:0"});
  REQUIRE_THROWS_MATCHES(ember::add(c, g), ember::Error, both);
  REQUIRE_THROWS_MATCHES(ember::add(g, c), ember::Error, both);
  REQUIRE_THROWS_MATCHES(ember::sub(g, c), ember::Error, both);
  REQUIRE_THROWS_MATCHES(ember::mul(c, g), ember::Error, both);
  REQUIRE_THROWS_MATCHES(ember::div(g, c), ember::Error, both);
  REQUIRE_THROWS_MATCHES(g + c, ember::Error, both);
  REQUIRE_THROWS_MATCHES(ember::matmul(g, c), ember::Error, both);
  REQUIRE_THROWS_MATCHES(ember::matmul(c, g), ember::Error, both);
  REQUIRE_THROWS_MATCHES(ember::linear(g, c), ember::Error, both);
  REQUIRE_THROWS_MATCHES(ember::linear(g, g, uniform<float>({4}, 3301)), ember::Error, both);
  const Tensor<float> x = uniform<float>({1, 4, 5, 5}, 3302), w = uniform<float>({2, 4, 3, 3}, 3303);
  REQUIRE_THROWS_MATCHES(ember::conv2d(x.to(kCuda), w), ember::Error, both);
  REQUIRE_THROWS_MATCHES(ember::conv2d(x, w.to(kCuda)), ember::Error, both);
  REQUIRE_THROWS_MATCHES(ember::conv2d(x.to(kCuda), w.to(kCuda), uniform<float>({2}, 3304)), ember::Error, both);
  const Tensor<I64> labels = labels_of(4, 4, 3305);
  REQUIRE_THROWS_MATCHES(ember::nll_loss(g, labels), ember::Error, both);
  REQUIRE_THROWS_MATCHES(ember::nll_loss(c, labels.to(kCuda)), ember::Error, both);
  REQUIRE_THROWS_MATCHES(ember::count_correct(g, labels), ember::Error, both);

  // SGD over parameters on two devices.
  Tensor<float> pg = uniform<float>({3}, 3306).to(kCuda).detach().requires_grad_(true);
  Tensor<float> pc = uniform<float>({3}, 3307).detach().requires_grad_(true);
  pg.set_grad(Tensor<float>::ones({3}, kCuda));
  pc.set_grad(Tensor<float>::ones({3}));
  ember::optim::SGDOptions so;
  ember::optim::SGD opt({pg, pc}, so);
  REQUIRE_THROWS_MATCHES(opt.step(), ember::Error, both);
}

TEST_CASE("cuda errors: a device index past the device count names the count", "[cuda][errors]") {
  const int count = ember::backend::cuda_runtime().device_count();
  REQUIRE(count >= 1);
  const std::string has = "this machine has " + std::to_string(count) + " CUDA device(s)";
  const Device bad = Device::cuda(99);
  REQUIRE_THROWS_MATCHES(Tensor<float>::zeros({2}, bad), ember::Error, ErrorContains({"cuda:99", has}));
  REQUIRE_THROWS_MATCHES(Tensor<float>::empty({2, 3}, bad), ember::Error, ErrorContains({"cuda:99", has}));
  const Tensor<float> x = uniform<float>({2, 3}, 3400);
  REQUIRE_THROWS_MATCHES(x.to(bad), ember::Error, ErrorContains({"cuda:99", has}));
  REQUIRE_THROWS_MATCHES(x.to(kCuda).to(bad), ember::Error, ErrorContains({"cuda:99", has}));
  REQUIRE_THROWS_MATCHES(Tensor<float>::zeros({2}, Device::cuda(count)), ember::Error,
                         ErrorContains({"cuda:" + std::to_string(count), has}));
  REQUIRE_THROWS_MATCHES(Tensor<float>::zeros({2}, Device::cuda(-1)), ember::Error, ErrorContains({"cuda:-1"}));
  Generator g(1);
  ember::nn::Linear lin(3, 2, true, g);
  REQUIRE_THROWS_MATCHES(lin.to(bad), ember::Error, ErrorContains({"cuda:99", has}));
}

TEST_CASE("cuda errors: element access to a CUDA tensor throws; item() and to_vector() work",
          "[cuda][errors]") {
  const Tensor<float> c = uniform<float>({3, 4}, 3500);
  const Tensor<float> g = c.to(kCuda);
  REQUIRE_THROWS_MATCHES(g(1, 2), ember::Error, ErrorContains({"element access", "cuda:0", ".cpu()"}));
  REQUIRE_THROWS_MATCHES(g.at({0, 0}), ember::Error, ErrorContains({"element access", "cuda:0"}));
  REQUIRE_THROWS_MATCHES(g.select(0, 1)(2), ember::Error, ErrorContains({"element access", "cuda:0"}));
  const Tensor<I64> gi = labels_of(5, 3, 3501).to(kCuda);
  REQUIRE_THROWS_MATCHES(gi(0), ember::Error, ErrorContains({"element access", "cuda:0"}));
  // The supported ways to read a CUDA tensor.
  REQUIRE(g.cpu()(1, 2) == c(1, 2));
  REQUIRE(g.select(0, 1).select(0, 2).item() == c(1, 2));
  REQUIRE(g.to_vector() == c.to_vector());
}

TEST_CASE("cuda errors: unsupported and invalid uses on the device", "[cuda][errors]") {
  // argmax of an integer tensor is CPU-only.
  const Tensor<I64> gi = labels_of(6, 4, 3600).to(kCuda);
  REQUIRE_THROWS_MATCHES(ember::argmax(gi.reshape({2, 3}), 1), ember::Error, ErrorContains({"argmax", "cuda:0"}));
  // A label out of range is reported on both devices.
  const Tensor<float> logp = ember::log_softmax(uniform<float>({3, 4}, 3601), 1);
  const Tensor<I64> bad = Tensor<I64>::from_vector({0, 4, 1});
  REQUIRE_THROWS_AS(ember::nll_loss(logp, bad), ember::Error);
  REQUIRE_THROWS_MATCHES(ember::nll_loss(logp.to(kCuda), bad.to(kCuda)), ember::Error,
                         ErrorContains({"nll_loss", "out of range"}));
  const Tensor<I64> negative = Tensor<I64>::from_vector({0, -1, 1});
  REQUIRE_THROWS_MATCHES(ember::nll_loss(logp.to(kCuda), negative.to(kCuda)), ember::Error,
                         ErrorContains({"nll_loss", "out of range"}));
  // The device is still usable afterwards.
  const Tensor<I64> good = Tensor<I64>::from_vector({0, 3, 1});
  REQUIRE(std::fabs(ember::nll_loss(logp.to(kCuda), good.to(kCuda)).item() - ember::nll_loss(logp, good).item()) <=
          1e-5f * std::fabs(ember::nll_loss(logp, good).item()));
  // An unknown backend name is refused.
  REQUIRE_THROWS_AS(ember::backend::cuda_runtime().set_gemm_backend("tensorcore"), ember::Error);
  REQUIRE_THROWS_AS(ember::backend::cuda_runtime().set_conv_backend("winograd"), ember::Error);
}
