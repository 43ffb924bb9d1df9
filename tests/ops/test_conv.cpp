// Tests for ember/ops/conv.hpp and backend/cpu/conv.hpp: the im2col + GEMM forward and the
// backward kernels against the direct 7-loop reference (float and double, many shapes,
// outputs poisoned first), finite-difference gradients in double, and the shape errors.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "ember/backend/cpu/conv.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/conv.hpp"

#include "support/gradcheck.hpp"
#include "support/inputs.hpp"
#include "support/matchers.hpp"
#include "support/reference.hpp"

namespace {

using ember::Conv2dOptions;
using ember::Conv2dParams;
using ember::Shape;
using ember::Tensor;
using ember::test::check_gradients;
using ember::test::ErrorContains;
using ember::test::random_tensor;
namespace ref = ember::test::reference;
using I64 = std::int64_t;
using TD = Tensor<double>;
using Inputs = std::vector<TD>;

struct ConvCase {
  I64 n, c, h, w, k, r, s, stride, pad, dil;
  bool bias;
};

Conv2dParams params_of(const ConvCase& cc) {
  Conv2dParams p;
  p.n = cc.n, p.c = cc.c, p.h = cc.h, p.w = cc.w, p.k = cc.k, p.r = cc.r, p.s = cc.s;
  p.stride_h = p.stride_w = cc.stride;
  p.pad_h = p.pad_w = cc.pad;
  p.dil_h = p.dil_w = cc.dil;
  return p;
}

std::ostream& operator<<(std::ostream& os, const ConvCase& c) {
  return os << "x [" << c.n << ", " << c.c << ", " << c.h << ", " << c.w << "] w [" << c.k << ", "
            << c.c << ", " << c.r << ", " << c.s << "] stride " << c.stride << " pad " << c.pad
            << " dil " << c.dil << (c.bias ? " bias" : " no bias");
}

// Random valid configurations (odd sizes included) from a fixed seed.
std::vector<ConvCase> random_cases(int count, std::uint64_t seed) {
  ember::Generator g(seed);
  std::vector<ConvCase> out;
  while (static_cast<int>(out.size()) < count) {
    ConvCase c{};
    c.n = 1 + static_cast<I64>(g.below(3));
    c.c = 1 + static_cast<I64>(g.below(4));
    c.h = 1 + static_cast<I64>(g.below(12));
    c.w = 1 + static_cast<I64>(g.below(12));
    c.k = 1 + static_cast<I64>(g.below(5));
    c.r = 1 + static_cast<I64>(g.below(4));
    c.s = 1 + static_cast<I64>(g.below(4));
    c.stride = 1 + static_cast<I64>(g.below(3));
    c.pad = static_cast<I64>(g.below(3));
    c.dil = 1 + static_cast<I64>(g.below(2));
    c.bias = g.below(2) == 1;
    // Keep those whose padded input holds the dilated kernel (what conv2d accepts).
    if (c.h + 2 * c.pad >= c.dil * (c.r - 1) + 1 && c.w + 2 * c.pad >= c.dil * (c.s - 1) + 1)
      out.push_back(c);
  }
  return out;
}

// Fast vs reference with the error bound of a sum of products: |fast - ref| <= rel * ref_abs,
// ref_abs the reference computed on |x|, |w|, |b|; rel = 1e-4 in float, 1e-12 in double.
template <class T>
void check_close(const std::vector<T>& fast, const std::vector<double>& expected,
                 const std::vector<double>& bound) {
  constexpr double rel = std::is_same_v<T, float> ? 1e-4 : 1e-12;
  REQUIRE(fast.size() == expected.size());
  std::size_t bad = 0, first_bad = 0;
  for (std::size_t i = 0; i < fast.size(); ++i) {
    const double err = std::abs(static_cast<double>(fast[i]) - expected[i]);
    if (!(err <= rel * bound[i] + 1e-30) && bad++ == 0) first_bad = i;  // NaN fails too
  }
  INFO(bad << " mismatches; first at " << first_bad << ": " << fast[first_bad] << " vs "
           << expected[first_bad]);
  CHECK(bad == 0);
}

template <class T>
std::vector<T> to_vec(const Tensor<T>& t) {
  return t.defined() ? t.to_vector() : std::vector<T>{};
}

}  // namespace

TEMPLATE_TEST_CASE("conv2d forward matches the direct 7-loop reference", "[ops][conv]", float,
                   double) {
  std::vector<ConvCase> cases = {
      {1, 1, 5, 5, 1, 3, 3, 1, 0, 1, false},  {2, 3, 8, 6, 4, 3, 3, 1, 1, 1, true},
      {3, 2, 9, 7, 3, 3, 2, 2, 1, 1, true},   {1, 3, 11, 10, 2, 3, 3, 2, 2, 2, false},
      {2, 1, 28, 28, 8, 5, 5, 1, 2, 1, true}, {1, 4, 7, 9, 5, 1, 1, 1, 0, 1, true},
      {1, 2, 6, 5, 2, 6, 5, 1, 0, 1, true},   {2, 3, 4, 4, 2, 3, 3, 3, 2, 1, false},
  };
  const auto extra = random_cases(24, 51);
  cases.insert(cases.end(), extra.begin(), extra.end());
  for (const ConvCase& cc : cases) {
    CAPTURE(cc);
    const Conv2dParams p = params_of(cc);
    const auto x = random_tensor<TestType>({cc.n, cc.c, cc.h, cc.w}, 52);
    const auto w = random_tensor<TestType>({cc.k, cc.c, cc.r, cc.s}, 53);
    const auto b = cc.bias ? random_tensor<TestType>({cc.k}, 54) : Tensor<TestType>();
    const auto expected = ref::conv2d_forward(p, x.to_vector(), w.to_vector(), to_vec(b));
    const auto bound = ref::conv2d_forward(p, ref::abs_of(x.to_vector()),
                                           ref::abs_of(w.to_vector()), ref::abs_of(to_vec(b)));

    // Through the op.
    const auto y = ember::conv2d(x, w, b, Conv2dOptions{cc.stride, cc.pad, cc.dil});
    REQUIRE(y.shape() == Shape{cc.n, cc.k, p.p(), p.q()});
    check_close(y.to_vector(), expected, bound);

    // Through the raw kernel, into a poisoned output.
    auto raw = Tensor<TestType>::empty(y.shape());
    ember::test::poison(raw);
    ember::cpu::conv2d_forward<TestType>(p, x.data(), w.data(), cc.bias ? b.data() : nullptr,
                                         raw.data());
    check_close(raw.to_vector(), expected, bound);
  }
}

TEMPLATE_TEST_CASE("conv2d backward kernels match the reference", "[ops][conv]", float, double) {
  std::vector<ConvCase> cases = {
      {2, 3, 8, 6, 4, 3, 3, 1, 1, 1, true},
      {3, 2, 9, 7, 3, 3, 2, 2, 1, 1, true},
      {1, 3, 11, 10, 2, 3, 3, 2, 2, 2, true},
      {5, 2, 6, 6, 3, 2, 2, 2, 0, 1, true},
  };
  const auto extra = random_cases(16, 55);
  cases.insert(cases.end(), extra.begin(), extra.end());
  for (const ConvCase& cc : cases) {
    CAPTURE(cc);
    const Conv2dParams p = params_of(cc);
    const auto x = random_tensor<TestType>({cc.n, cc.c, cc.h, cc.w}, 56);
    const auto w = random_tensor<TestType>({cc.k, cc.c, cc.r, cc.s}, 57);
    const auto gy = random_tensor<TestType>({cc.n, cc.k, p.p(), p.q()}, 58);
    const auto expected = ref::conv2d_backward(p, x.to_vector(), w.to_vector(), gy.to_vector());
    const auto bound = ref::conv2d_backward(
        p, ref::abs_of(x.to_vector()), ref::abs_of(w.to_vector()), ref::abs_of(gy.to_vector()));
    auto gx = Tensor<TestType>::empty(x.shape()), gw = Tensor<TestType>::empty(w.shape());
    auto gb = Tensor<TestType>::empty({cc.k});
    ember::test::poison(gx);
    ember::test::poison(gw);
    ember::test::poison(gb);
    ember::cpu::conv2d_backward<TestType>(p, x.data(), w.data(), gy.data(), gx.data(), gw.data(),
                                          gb.data());
    {
      INFO("gx");
      check_close(gx.to_vector(), expected.gx, bound.gx);
    }
    {
      INFO("gw");
      check_close(gw.to_vector(), expected.gw, bound.gw);
    }
    {
      INFO("gb");
      check_close(gb.to_vector(), expected.gb, bound.gb);
    }
    // Only some gradients asked for: the others stay untouched.
    auto gw_only = Tensor<TestType>::empty(w.shape());
    ember::test::poison(gw_only);
    ember::cpu::conv2d_backward<TestType>(p, x.data(), w.data(), gy.data(), nullptr, gw_only.data(),
                                          nullptr);
    check_close(gw_only.to_vector(), expected.gw, bound.gw);
    auto gx_only = Tensor<TestType>::empty(x.shape());
    ember::test::poison(gx_only);
    ember::cpu::conv2d_backward<TestType>(p, x.data(), w.data(), gy.data(), gx_only.data(), nullptr,
                                          nullptr);
    check_close(gx_only.to_vector(), expected.gx, bound.gx);
  }
}

TEST_CASE("conv2d gradients match finite differences", "[ops][conv][grad]") {
  // stride 1/2, padding 0/1/2, dilation 1/2, non-square, 1 and 3 channels, batch 1 and 3.
  const ConvCase cc = GENERATE(values<ConvCase>({
      {1, 1, 5, 5, 2, 3, 3, 1, 0, 1, true},
      {3, 1, 6, 5, 2, 3, 3, 1, 1, 1, false},
      {1, 3, 7, 6, 2, 3, 3, 2, 1, 1, true},
      {3, 3, 5, 7, 2, 3, 2, 2, 0, 1, true},
      {1, 3, 8, 7, 2, 3, 3, 1, 2, 2, false},
      {2, 1, 7, 8, 3, 2, 3, 2, 2, 2, true},
      {1, 2, 4, 3, 3, 1, 1, 1, 0, 1, true},
  }));
  CAPTURE(cc);
  const TD x = random_tensor<double>({cc.n, cc.c, cc.h, cc.w}, 59);
  const TD w = random_tensor<double>({cc.k, cc.c, cc.r, cc.s}, 60);
  const Conv2dOptions o{cc.stride, cc.pad, cc.dil};
  if (cc.bias) {
    check_gradients([o](const Inputs& in) { return ember::conv2d(in[0], in[1], in[2], o); },
                    {x, w, random_tensor<double>({cc.k}, 61)});
  } else {
    check_gradients([o](const Inputs& in) { return ember::conv2d(in[0], in[1], TD(), o); }, {x, w});
  }
}

TEST_CASE("conv2d gradients with only some inputs requiring grad", "[ops][conv][grad]") {
  const TD x = random_tensor<double>({2, 2, 5, 4}, 62);
  const TD w = random_tensor<double>({3, 2, 3, 3}, 63);
  const TD b = random_tensor<double>({3}, 64);
  const Conv2dOptions o{1, 1, 1};
  const auto f = [o](const Inputs& in) { return ember::conv2d(in[0], in[1], in[2], o); };
  for (const std::vector<bool>& wrt :
       {std::vector<bool>{true, false, false}, std::vector<bool>{false, true, false},
        std::vector<bool>{false, false, true}}) {
    ember::test::GradcheckOptions opt;
    opt.wrt = wrt;
    check_gradients(f, {x, w, b}, opt);
  }
  // A non-contiguous input is read correctly.
  check_gradients(
      [o](const Inputs& in) { return ember::conv2d(in[0].transpose(2, 3), in[1], TD(), o); },
      {random_tensor<double>({2, 2, 4, 5}, 65), w});
}

TEST_CASE("conv2d refuses bad shapes and options", "[ops][conv][error]") {
  const auto x = Tensor<float>::ones({1, 3, 8, 8});
  const auto w = Tensor<float>::ones({4, 3, 3, 3});
  CHECK_THROWS_MATCHES(
      ember::conv2d(x, Tensor<float>::ones({4, 2, 3, 3})), ember::Error,
      ErrorContains({"conv2d", "[1, 3, 8, 8]", "3 channels", "[4, 2, 3, 3]", "expects 2"}));
  CHECK_THROWS_MATCHES(ember::conv2d(Tensor<float>::ones({3, 8, 8}), w), ember::Error,
                       ErrorContains({"conv2d", "(N, C, H, W)", "[3, 8, 8]"}));
  CHECK_THROWS_MATCHES(ember::conv2d(x, Tensor<float>::ones({4, 3, 3})), ember::Error,
                       ErrorContains({"weight"}));
  CHECK_THROWS_MATCHES(ember::conv2d(x, Tensor<float>::ones({1, 3, 9, 9})), ember::Error,
                       ErrorContains({"smaller than"}));
  CHECK_THROWS_AS(ember::conv2d(x, w, {}, Conv2dOptions{1, 0, 5}), ember::Error);  // dilated 11
  // A dilated kernel of 9 > 8 with stride 2: (8 - 9) / 2 must floor to -1, not truncate to 0.
  CHECK_THROWS_MATCHES(ember::conv2d(x, w, {}, Conv2dOptions{2, 0, 4}), ember::Error,
                       ErrorContains({"smaller than"}));
  CHECK_THROWS_AS(ember::conv2d(x, Tensor<float>::ones({4, 3, 9, 9}), {}, Conv2dOptions{3, 0, 1}),
                  ember::Error);
  CHECK_THROWS_MATCHES(ember::conv2d(x, w, Tensor<float>::ones({3})), ember::Error,
                       ErrorContains({"bias", "[4]"}));
  CHECK_THROWS_AS(ember::conv2d(x, w, {}, Conv2dOptions{0, 0, 1}), ember::Error);
  CHECK_THROWS_AS(ember::conv2d(x, w, {}, Conv2dOptions{1, -1, 1}), ember::Error);
  CHECK_THROWS_AS(ember::conv2d(x, w, {}, Conv2dOptions{1, 0, 0}), ember::Error);
  // The smallest valid case: a kernel as large as the padded input.
  CHECK(ember::conv2d(x, Tensor<float>::ones({1, 3, 10, 10}), {}, Conv2dOptions{1, 1, 1}).shape() ==
        Shape{1, 1, 1, 1});
}
