// Cross-cutting op tests: the view ops of core/tensor.hpp as differentiable ops, a small
// CNN composed from every op checked end to end by finite differences, and thread-count
// independence of the threaded kernels (conv2d, linear).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ember/core/parallel.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/conv.hpp"
#include "ember/ops/dropout.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/linear.hpp"
#include "ember/ops/loss.hpp"
#include "ember/ops/pool.hpp"
#include "ember/ops/reduce.hpp"

#include "support/gradcheck.hpp"
#include "support/inputs.hpp"

namespace {

using ember::Shape;
using ember::Tensor;
using ember::test::check_gradients;
using ember::test::random_tensor;
using I64 = std::int64_t;
using TD = Tensor<double>;
using Inputs = std::vector<TD>;

// Restores the thread count when a test ends, however it ends.
class ThreadCountGuard {
 public:
  ThreadCountGuard() : saved_(ember::get_num_threads()) {}
  ~ThreadCountGuard() { ember::set_num_threads(saved_); }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int saved_;
};

template <class T>
bool bit_identical(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace

TEST_CASE("The gradient checker catches a wrong backward", "[ops][grad][harness]") {
  // y = 2x recorded with a backward that returns 3g: the checker must fail it, and pass the
  // same op with the right backward.
  const auto scaled = [](double backward_factor) {
    return [backward_factor](const Inputs& in) {
      TD y = ember::mul_scalar(in[0].detach(), 2.0);
      ember::autograd::record(y, "ScaleBackward", {in[0]}, [backward_factor](const TD& g) {
        return std::vector<TD>{ember::mul_scalar(g, backward_factor)};
      });
      return y;
    };
  };
  const TD x = random_tensor<double>({3, 4}, 110);
  const auto wrong = ember::test::gradcheck(scaled(3.0), {x});
  CHECK_FALSE(wrong.ok);
  CHECK(wrong.checked == 12);
  CHECK(wrong.max_abs_err > 0.1);
  const auto right = ember::test::gradcheck(scaled(2.0), {x});
  CHECK(right.ok);
  CHECK(right.max_abs_err < 1e-8);
  // A gradient that never arrives counts as zero, and fails too.
  const auto none = ember::test::gradcheck([](const Inputs& in) { return in[0].detach(); }, {x});
  CHECK_FALSE(none.ok);
  // Only the first of two inputs is wrong: the report names input 0.
  const auto two = ember::test::gradcheck(
      [&scaled](const Inputs& in) { return ember::add(scaled(1.0)({in[0]}), in[1]); }, {x, x});
  CHECK_FALSE(two.ok);
  CHECK(two.report.find("input 0") != std::string::npos);
  CHECK(two.report.find("input 1") == std::string::npos);
}

TEST_CASE("View ops are differentiable", "[ops][view][grad]") {
  const TD x = random_tensor<double>({2, 3, 4}, 111);
  check_gradients([](const Inputs& in) { return in[0].reshape({4, 6}); }, {x});
  check_gradients([](const Inputs& in) { return in[0].view({-1, 2}); }, {x});
  check_gradients([](const Inputs& in) { return in[0].flatten(1); }, {x});
  check_gradients([](const Inputs& in) { return in[0].transpose(0, 2); }, {x});
  check_gradients([](const Inputs& in) { return in[0].permute({1, 2, 0}); }, {x});
  check_gradients([](const Inputs& in) { return in[0].slice(2, 1, 4, 2); }, {x});
  check_gradients([](const Inputs& in) { return in[0].slice(1, -2, 3); }, {x});
  check_gradients([](const Inputs& in) { return in[0].select(1, 1); }, {x});
  check_gradients([](const Inputs& in) { return in[0].select(-1, -1); }, {x});
  check_gradients([](const Inputs& in) { return in[0].unsqueeze(1); }, {x});
  check_gradients([](const Inputs& in) { return in[0].unsqueeze(3).squeeze(3); }, {x});
  check_gradients([](const Inputs& in) { return in[0].clone(); }, {x});
  check_gradients([](const Inputs& in) { return in[0].t(); }, {random_tensor<double>({3, 5}, 112)});
  // reshape of a non-contiguous tensor copies (CloneBackward0, then ViewBackward0).
  check_gradients([](const Inputs& in) { return in[0].transpose(0, 1).reshape({12, 2}); }, {x});
  check_gradients([](const Inputs& in) { return in[0].permute({2, 0, 1}).contiguous(); }, {x});
  // Chains of views, and a view used twice.
  check_gradients(
      [](const Inputs& in) {
        const TD s = in[0].slice(0, 0, 2).select(2, 0);  // [2, 3]
        return ember::mul(s, in[0].select(2, 3).t().t());
      },
      {x});
  // Overlapping slices add their gradients.
  check_gradients(
      [](const Inputs& in) { return ember::add(in[0].slice(2, 0, 3), in[0].slice(2, 1, 4)); }, {x});
}

TEST_CASE("A small CNN is differentiable end to end", "[ops][grad]") {
  // conv -> relu -> max_pool -> flatten -> linear -> cross_entropy (+ dropout, fixed mask),
  // every parameter checked at once. Inputs are nudged so no relu input or pool tie sits
  // within the probes (checked by the finite-difference agreement itself).
  const TD x = random_tensor<double>({2, 1, 6, 6}, 113);
  const TD w = random_tensor<double>({3, 1, 3, 3}, 114);
  const TD b = random_tensor<double>({3}, 115, 0.05, 0.1);
  const TD fw = random_tensor<double>({4, 12}, 116);
  const TD fb = random_tensor<double>({4}, 117);
  const auto target = Tensor<I64>::from_list({2, 0});
  const ember::Generator start(118);
  check_gradients(
      [&target, start](const Inputs& in) {
        ember::Generator g = start;
        TD h = ember::conv2d(in[0], in[1], in[2], ember::Conv2dOptions{1, 1, 1});  // [2,3,6,6]
        h = ember::max_pool2d(ember::relu(h), 3, 3);                               // [2,3,2,2]
        h = ember::dropout(h.flatten(1), 0.25, true, g);                           // [2,12]
        h = ember::linear(h, in[3], in[4]);                                        // [2,4]
        return ember::cross_entropy(h, target);
      },
      {x, w, b, fw, fb});
}

namespace {

// Everything the thread tests compare: forward values and every gradient.
struct ThreadedResults {
  std::vector<float> conv, conv_b1, conv_gx, conv_gw, conv_gb, lin, lin_gx, lin_gw, lin_gb;
};

ThreadedResults run_threaded_ops(int threads) {
  ember::set_num_threads(threads);
  REQUIRE(ember::get_num_threads() == threads);
  ThreadedResults r;
  auto x = random_tensor<float>({4, 3, 17, 15}, 121);
  auto w = random_tensor<float>({8, 3, 3, 3}, 122);
  auto b = random_tensor<float>({8}, 123);
  x.requires_grad_();
  w.requires_grad_();
  b.requires_grad_();
  const auto y = ember::conv2d(x, w, b, ember::Conv2dOptions{1, 1, 1});  // [4, 8, 17, 15]
  r.conv = y.to_vector();
  y.backward(random_tensor<float>(y.shape(), 124));
  r.conv_gx = x.grad().to_vector();
  r.conv_gw = w.grad().to_vector();
  r.conv_gb = b.grad().to_vector();
  // Batch 1 with a wide output: the GEMM inside is what splits.
  const auto xs = random_tensor<float>({1, 16, 40, 41}, 125);
  const auto ws = random_tensor<float>({32, 16, 3, 3}, 126);
  r.conv_b1 = ember::conv2d(xs, ws, {}, ember::Conv2dOptions{1, 1, 1}).to_vector();

  auto fx = random_tensor<float>({64, 256}, 127);
  auto fw = random_tensor<float>({130, 256}, 128);
  auto fb = random_tensor<float>({130}, 129);
  fx.requires_grad_();
  fw.requires_grad_();
  fb.requires_grad_();
  const auto z = ember::linear(fx, fw, fb);  // [64, 130]
  r.lin = z.to_vector();
  z.backward(random_tensor<float>(z.shape(), 130));
  r.lin_gx = fx.grad().to_vector();
  r.lin_gw = fw.grad().to_vector();
  r.lin_gb = fb.grad().to_vector();
  return r;
}

// |a - b| <= 1e-5 * max|b|: the same sums, only grouped differently.
bool close(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  float scale = 0;
  for (float v : b) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(std::abs(a[i] - b[i]) <= 1e-5f * scale)) return false;
  return true;
}

}  // namespace

TEST_CASE("conv2d and linear are deterministic for a given thread count", "[ops][threads]") {
  ThreadCountGuard restore;
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    const ThreadedResults a = run_threaded_ops(threads), b = run_threaded_ops(threads);
    CHECK(bit_identical(a.conv, b.conv));
    CHECK(bit_identical(a.conv_b1, b.conv_b1));
    CHECK(bit_identical(a.conv_gx, b.conv_gx));
    CHECK(bit_identical(a.conv_gw, b.conv_gw));
    CHECK(bit_identical(a.conv_gb, b.conv_gb));
    CHECK(bit_identical(a.lin, b.lin));
    CHECK(bit_identical(a.lin_gx, b.lin_gx));
    CHECK(bit_identical(a.lin_gw, b.lin_gw));
    CHECK(bit_identical(a.lin_gb, b.lin_gb));
  }
}

TEST_CASE("conv2d and linear agree across 1 and 2 threads", "[ops][threads]") {
  ThreadCountGuard restore;
  const ThreadedResults one = run_threaded_ops(1), two = run_threaded_ops(2);
  // Work split over images only (conv2d forward and input gradient with batch > 1, bias
  // gradient) is bit-identical whatever the thread count.
  CHECK(bit_identical(one.conv, two.conv));
  CHECK(bit_identical(one.conv_gx, two.conv_gx));
  CHECK(bit_identical(one.conv_gb, two.conv_gb));
  // The rest agrees to rounding (see the [!mayfail] test below for why not bit for bit).
  CHECK(close(one.conv_b1, two.conv_b1));
  CHECK(close(one.conv_gw, two.conv_gw));
  CHECK(close(one.lin, two.lin));
  CHECK(close(one.lin_gx, two.lin_gx));
  CHECK(close(one.lin_gw, two.lin_gw));
  CHECK(close(one.lin_gb, two.lin_gb));
}

// Known limitation, reported rather than hidden: cpu::gemm splits the larger output
// dimension into one chunk per thread, and Eigen rounds a column (or row) differently
// depending on where it falls in its block (remainder columns take another micro-kernel),
// so a split GEMM (linear, batch-1 conv2d) changes in the last bits with the thread count;
// conv2d's weight gradient sums one partial per thread. Both are deterministic for a fixed
// thread count (the test above). Bit-identity across thread counts would need a partition
// that depends on the problem size only.
TEST_CASE("conv2d and linear are bit-identical across 1 and 2 threads",
          "[ops][threads][!mayfail]") {
  ThreadCountGuard restore;
  const ThreadedResults one = run_threaded_ops(1), two = run_threaded_ops(2);
  CHECK(bit_identical(one.conv_b1, two.conv_b1));
  CHECK(bit_identical(one.conv_gw, two.conv_gw));
  CHECK(bit_identical(one.lin, two.lin));
  CHECK(bit_identical(one.lin_gx, two.lin_gx));
  CHECK(bit_identical(one.lin_gw, two.lin_gw));
  CHECK(bit_identical(one.lin_gb, two.lin_gb));
}
