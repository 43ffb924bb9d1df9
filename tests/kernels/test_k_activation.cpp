// kernels/activation.cuh against ember's CPU ops: relu and its backward (autograd), the bias adds
// of linear / conv2d (alone and fused with relu), and the bias gradients (the CPU's sum(g, 0) and
// conv2d_backward). Every block size, odd sizes, special values, poisoned outputs.
#include "support/kernel_test.hpp"

#include <catch2/catch.hpp>

#include <ember/kernels/activation.cuh>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "ember/backend/cpu/conv.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/reduce.hpp"

namespace ek = ember::kernels;
namespace kt = ember::ktest;
using ember::Shape;
using ember::Tensor;
using kt::Buffer;
using kt::random_tensor;
using kt::same_value;

namespace {

template <class T>
void require_identical(const std::vector<T>& got, const std::vector<T>& want) {
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!same_value(got[i], want[i]) && bad++ == 0) first = i;
  INFO(bad << " elements differ; first at " << first << ": got "
            << (got.empty() ? 0.0 : static_cast<double>(got[first])) << ", want "
            << (want.empty() ? 0.0 : static_cast<double>(want[first])));
  REQUIRE(bad == 0);
}

template <class T>
void require_close(const std::vector<T>& got, const std::vector<T>& want, double tol) {
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool ok = std::abs(static_cast<double>(got[i]) - static_cast<double>(want[i])) <= tol;
    if (!ok && bad++ == 0) first = i;
  }
  INFO(bad << " elements off by more than " << tol << "; first at " << first << ": got "
            << (got.empty() ? 0.0 : static_cast<double>(got[first])) << ", want "
            << (want.empty() ? 0.0 : static_cast<double>(want[first])));
  REQUIRE(bad == 0);
}

// Random values with NaN, infinities and both zeros sprinkled in.
template <class T>
Tensor<T> with_specials(Tensor<T> t) {
  const T specials[] = {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                        -std::numeric_limits<T>::infinity(), T(0), -T(0)};
  for (std::int64_t i = 0; i < t.numel(); i += 11) t.data()[i] = specials[(i / 11) % 5];
  return t;
}

}  // namespace

TEMPLATE_TEST_CASE("relu_forward is ember::relu", "[kernels][activation]", float, double) {
  using T = TestType;
  std::uint64_t seed = 1;
  for (const std::int64_t n : {0, 1, 7, 33, 1000, 4097})
    for (const std::int64_t offset : {0, 1}) {
      const Tensor<T> all = with_specials(random_tensor<T>({n + offset}, seed++));
      const Tensor<T> x = all.slice(0, offset, offset + n);
      const std::vector<T> want = ember::relu(x).to_vector();
      Buffer<T> dx(all.to_vector());
      for (const int threads : kt::block_sizes()) {
        INFO("n " << n << ", offset " << offset << ", " << threads << " threads");
        Buffer<T> y(static_cast<std::size_t>(n));
        ek::relu_forward(dx.data() + offset, y.data(), n, nullptr, threads);
        require_identical(y.host(), want);
      }
      Buffer<T> inplace(x.to_vector());
      ek::relu_forward(inplace.data(), inplace.data(), n, nullptr, 64);
      require_identical(inplace.host(), want);
    }
}

TEMPLATE_TEST_CASE("relu_backward is ReluBackward0", "[kernels][activation]", float, double) {
  using T = TestType;
  std::uint64_t seed = 100;
  for (const std::int64_t n : {0, 1, 7, 33, 1000, 4097}) {
    Tensor<T> x = with_specials(random_tensor<T>({n}, seed++)).requires_grad_();
    const Tensor<T> g = with_specials(random_tensor<T>({n}, seed++, -2, 2));
    Tensor<T> y = ember::relu(x);
    const std::vector<T> yv = y.to_vector();
    if (n > 0) {
      y.backward(g);
    }
    const std::vector<T> want = n > 0 ? x.grad().to_vector() : std::vector<T>{};
    Buffer<T> dg(g.to_vector()), dy(yv);
    for (const int threads : kt::block_sizes()) {
      INFO("n " << n << ", " << threads << " threads");
      Buffer<T> gx(static_cast<std::size_t>(n));
      ek::relu_backward(dg.data(), dy.data(), gx.data(), n, nullptr, threads);
      require_identical(gx.host(), want);
    }
    Buffer<T> inplace(g.to_vector());  // gx over g
    ek::relu_backward(inplace.data(), dy.data(), inplace.data(), n, nullptr, 96);
    require_identical(inplace.host(), want);
  }
}

namespace {

// y (rows, cols) += bias (then relu) against ember::add (and ember::relu). `skew` shifts y by one
// element in its buffer (misaligned: the scalar loop).
template <class T>
void check_bias_rows(std::int64_t rows, std::int64_t cols, bool relu, std::int64_t skew, std::uint64_t seed) {
  const Tensor<T> y = with_specials(random_tensor<T>({rows, cols}, seed));
  const Tensor<T> bias = random_tensor<T>({cols}, seed + 1);
  Tensor<T> ref = ember::add(y, bias);
  if (relu) ref = ember::relu(ref);
  const std::vector<T> want = ref.to_vector();
  Buffer<T> db(bias.to_vector());
  std::vector<T> init(static_cast<std::size_t>(skew), T(-7));
  const std::vector<T> yv = y.to_vector();
  init.insert(init.end(), yv.begin(), yv.end());
  for (const int threads : kt::block_sizes()) {
    INFO((relu ? "bias_relu_rows " : "bias_add_rows ") << rows << "x" << cols << ", skew " << skew
                                                       << ", " << threads << " threads");
    Buffer<T> dy(init);
    if (relu) ek::bias_relu_rows(dy.data() + skew, db.data(), rows, cols, nullptr, threads);
    else ek::bias_add_rows(dy.data() + skew, db.data(), rows, cols, nullptr, threads);
    const std::vector<T> got = dy.host();
    require_identical(std::vector<T>(got.begin() + skew, got.end()), want);
  }
}

// y (n, c, hw) += bias[c] (then relu) against ember::add with a (c, 1) bias.
template <class T>
void check_bias_channels(std::int64_t n, std::int64_t c, std::int64_t hw, bool relu, std::int64_t skew,
                         std::uint64_t seed) {
  const Tensor<T> y = with_specials(random_tensor<T>({n, c, hw}, seed));
  const Tensor<T> bias = random_tensor<T>({c}, seed + 1);
  Tensor<T> ref = ember::add(y, bias.reshape({c, 1}));
  if (relu) ref = ember::relu(ref);
  const std::vector<T> want = ref.to_vector();
  Buffer<T> db(bias.to_vector());
  std::vector<T> init(static_cast<std::size_t>(skew), T(-7));
  const std::vector<T> yv = y.to_vector();
  init.insert(init.end(), yv.begin(), yv.end());
  for (const int threads : kt::block_sizes()) {
    INFO((relu ? "bias_relu_channels " : "bias_add_channels ")
         << n << "x" << c << "x" << hw << ", skew " << skew << ", " << threads << " threads");
    Buffer<T> dy(init);
    if (relu) ek::bias_relu_channels(dy.data() + skew, db.data(), n, c, hw, nullptr, threads);
    else ek::bias_add_channels(dy.data() + skew, db.data(), n, c, hw, nullptr, threads);
    const std::vector<T> got = dy.host();
    require_identical(std::vector<T>(got.begin() + skew, got.end()), want);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("bias_add_rows / bias_relu_rows add linear's bias", "[kernels][activation]", float,
                   double) {
  using T = TestType;
  std::uint64_t seed = 200;
  const std::int64_t shapes[][2] = {{0, 5}, {1, 1}, {7, 3}, {5, 4}, {33, 10}, {64, 128}, {3, 33}, {2, 0}};
  for (const auto& s : shapes)
    for (const bool relu : {false, true})
      for (const std::int64_t skew : {0, 1}) check_bias_rows<T>(s[0], s[1], relu, skew, seed += 2);
}

TEMPLATE_TEST_CASE("bias_add_channels / bias_relu_channels add conv2d's bias", "[kernels][activation]",
                   float, double) {
  using T = TestType;
  std::uint64_t seed = 300;
  const std::int64_t shapes[][3] = {{0, 3, 4}, {1, 1, 1}, {2, 3, 1}, {2, 5, 4}, {3, 6, 49},
                                    {4, 16, 16}, {2, 7, 9}, {1, 33, 2}};
  for (const auto& s : shapes)
    for (const bool relu : {false, true})
      for (const std::int64_t skew : {0, 1})
        check_bias_channels<T>(s[0], s[1], s[2], relu, skew, seed += 2);
}

TEMPLATE_TEST_CASE("bias_grad_rows is sum(g, 0)", "[kernels][activation]", float, double) {
  using T = TestType;
  std::uint64_t seed = 400;
  const std::int64_t shapes[][2] = {{1, 1}, {7, 3}, {32, 10}, {33, 10}, {64, 128}, {500, 7}, {3, 33}, {0, 4}};
  for (const auto& s : shapes) {
    const std::int64_t rows = s[0], cols = s[1];
    const Tensor<T> g = random_tensor<T>({rows, cols}, seed++);
    const std::vector<T> want = ember::sum(g, 0).to_vector();
    const double tol = 2 * std::numeric_limits<T>::epsilon() * static_cast<double>(rows + 1);
    Buffer<T> dg(g.to_vector());
    for (const int threads : kt::block_sizes()) {
      INFO(rows << "x" << cols << ", " << threads << " threads");
      Buffer<T> gb(static_cast<std::size_t>(cols)), again(static_cast<std::size_t>(cols));
      ek::bias_grad_rows(dg.data(), gb.data(), rows, cols, nullptr, threads);
      ek::bias_grad_rows(dg.data(), again.data(), rows, cols, nullptr, threads);
      require_close(gb.host(), want, tol);
      require_identical(again.host(), gb.host());
    }
  }
}

TEMPLATE_TEST_CASE("bias_grad_channels is conv2d_backward's bias gradient", "[kernels][activation]",
                   float, double) {
  using T = TestType;
  std::uint64_t seed = 500;
  const std::int64_t shapes[][3] = {{1, 1, 1}, {2, 3, 1}, {2, 5, 4}, {3, 6, 49}, {8, 16, 16},
                                    {40, 4, 1}, {1, 33, 2}, {0, 3, 4}, {2, 3, 0}};
  for (const auto& s : shapes) {
    const std::int64_t n = s[0], c = s[1], hw = s[2];
    const Tensor<T> g = random_tensor<T>({n, c, hw}, seed++);
    ember::Conv2dParams p;  // a 1x1 convolution whose output planes are (hw, 1)
    p.n = n;
    p.c = 1;
    p.h = hw;
    p.w = 1;
    p.k = c;
    p.r = 1;
    p.s = 1;
    std::vector<T> want(static_cast<std::size_t>(c));
    ember::cpu::conv2d_backward<T>(p, nullptr, nullptr, g.data(), nullptr, nullptr, want.data());
    // Both sum in double; only the order differs.
    const double tol = 2 * std::numeric_limits<T>::epsilon() * (1 + 1e-8 * static_cast<double>(n * hw));
    Buffer<T> dg(g.to_vector());
    for (const int threads : kt::block_sizes()) {
      INFO(n << "x" << c << "x" << hw << ", " << threads << " threads");
      Buffer<T> gb(static_cast<std::size_t>(c)), again(static_cast<std::size_t>(c));
      ek::bias_grad_channels(dg.data(), gb.data(), n, c, hw, nullptr, threads);
      ek::bias_grad_channels(dg.data(), again.data(), n, c, hw, nullptr, threads);
      require_close(gb.host(), want, tol * (1 + static_cast<double>(n * hw)));
      require_identical(again.host(), gb.host());
    }
  }
}
