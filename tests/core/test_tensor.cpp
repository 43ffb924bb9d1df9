// Tests for ember/core/tensor.hpp, print.hpp, allocator.hpp and device.hpp: factories,
// views and their shared storage, element access, casts and copies, PyTorch-style printing,
// the caching allocator, and the errors of bad use.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "ember/core/allocator.hpp"
#include "ember/core/print.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"

#include "support/matchers.hpp"

namespace {

using ember::Shape;
using ember::Tensor;
using I64 = std::int64_t;

using ember::test::ErrorContains;

template <class T>
std::string str(const Tensor<T>& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

// [0, 1, ..., n) as a float tensor of the given shape.
Tensor<float> iota(const Shape& shape) {
  return Tensor<float>::arange(0.0, static_cast<double>(ember::numel_of(shape))).reshape(shape);
}

}  // namespace

// ---- factories ----------------------------------------------------------------------------

TEMPLATE_TEST_CASE("zeros, ones, full and empty make the asked shape", "[tensor][factory]", float,
                   double, std::int64_t, std::int32_t, std::uint8_t) {
  const Shape shape =
      GENERATE(Shape{}, Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 1, 3}, Shape{4, 0, 2});
  CAPTURE(shape);
  const I64 n = ember::numel_of(shape);
  const auto z = Tensor<TestType>::zeros(shape);
  const auto o = ember::ones<TestType>(shape);
  const auto f = Tensor<TestType>::full(shape, TestType(3));
  const auto e = Tensor<TestType>::empty(shape);
  for (const auto* t : {&z, &o, &f, &e}) {
    CHECK(t->shape() == shape);
    CHECK(t->numel() == n);
    CHECK(t->dim() == static_cast<I64>(shape.size()));
    CHECK(t->strides() == ember::contiguous_strides(shape));
    CHECK(t->is_contiguous());
    CHECK(t->device() == ember::Device::cpu());
    CHECK(t->dtype() == ember::dtype_of<TestType>());
  }
  CHECK(z.to_vector() == std::vector<TestType>(static_cast<std::size_t>(n), TestType(0)));
  CHECK(o.to_vector() == std::vector<TestType>(static_cast<std::size_t>(n), TestType(1)));
  CHECK(f.to_vector() == std::vector<TestType>(static_cast<std::size_t>(n), TestType(3)));
}

TEST_CASE("arange follows PyTorch's [start, end) with a step", "[tensor][factory]") {
  CHECK(Tensor<I64>::arange(5).to_vector() == std::vector<I64>{0, 1, 2, 3, 4});
  CHECK(Tensor<float>::arange(1.0, 2.0, 0.25).to_vector() ==
        std::vector<float>{1.0f, 1.25f, 1.5f, 1.75f});
  CHECK(Tensor<double>::arange(5.0, 0.0, -1.5).to_vector() ==
        std::vector<double>{5.0, 3.5, 2.0, 0.5});
  CHECK(Tensor<double>::arange(3.0, 1.0).numel() == 0);
  CHECK(ember::arange<std::int32_t>(0, 7, 3).to_vector() == std::vector<std::int32_t>{0, 3, 6});
  CHECK_THROWS_MATCHES(Tensor<float>::arange(0.0, 1.0, 0.0), ember::Error, ErrorContains({"step"}));
}

TEST_CASE("from_vector and from_list copy values into a shape", "[tensor][factory]") {
  std::vector<double> v{1, 2, 3, 4, 5, 6};
  const auto t = Tensor<double>::from_vector(v, {2, 3});
  v[0] = 100;  // a copy: the tensor is unaffected
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t(0, 0) == 1);
  CHECK(t(1, 2) == 6);
  CHECK(Tensor<float>::from_list({1, 2, 3}).shape() == Shape{3});
  CHECK(Tensor<float>::from_list({4}).shape() == Shape{});  // one value, no shape: a scalar
  CHECK(Tensor<float>::scalar(2.5f).item() == 2.5f);
  CHECK_THROWS_MATCHES(Tensor<float>::from_list({1, 2, 3}, {2, 2}), ember::Error,
                       ErrorContains({"3 values", "[2, 2]"}));
}

TEST_CASE("rand, randn and uniform have the right distributions", "[tensor][factory][random]") {
  ember::Generator gen(42);
  constexpr I64 n = 100000;

  // rand: in [0, 1); mean 1/2 (sd of the mean 0.29/sqrt(n) ~ 9e-4: tolerance 5e-3).
  const auto u = Tensor<float>::rand({n}, gen).to_vector();
  double sum = 0;
  float lo = 1, hi = 0;
  for (float x : u) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    sum += x;
  }
  CHECK(lo >= 0.0f);
  CHECK(hi < 1.0f);
  CHECK(sum / n == Approx(0.5).margin(5e-3));

  // randn: mean 0 (sd of the mean 3.2e-3: tolerance 0.02), sd 1 (sd of the estimate
  // 1/sqrt(2n) ~ 2.2e-3: tolerance 0.015), and 68.3% within one sd (tolerance 0.01).
  const auto z = Tensor<double>::randn({n}, gen).to_vector();
  double s1 = 0, s2 = 0;
  I64 within = 0;
  for (double x : z) {
    s1 += x;
    s2 += x * x;
    within += std::abs(x) < 1.0;
  }
  const double mean = s1 / n, sd = std::sqrt(s2 / n - mean * mean);
  REQUIRE(std::isfinite(s2));
  CHECK(mean == Approx(0.0).margin(0.02));
  CHECK(sd == Approx(1.0).margin(0.015));
  CHECK(static_cast<double>(within) / n == Approx(0.6827).margin(0.01));

  // uniform(lo, hi): in [lo, hi), mean (lo + hi) / 2.
  const auto w = Tensor<double>::uniform({n}, -3.0, 5.0, gen).to_vector();
  double ws = 0, wlo = 5, whi = -3;
  for (double x : w) {
    wlo = std::min(wlo, x);
    whi = std::max(whi, x);
    ws += x;
  }
  CHECK(wlo >= -3.0);
  CHECK(whi < 5.0);
  CHECK(ws / n == Approx(1.0).margin(0.04));
}

TEST_CASE("Random factories are reproducible from seed and offset", "[tensor][factory][random]") {
  ember::Generator a(7), b(7);
  CHECK(Tensor<float>::rand({3, 4}, a).to_vector() == Tensor<float>::rand({3, 4}, b).to_vector());
  CHECK(ember::randn<double>({5}, a).to_vector() == ember::randn<double>({5}, b).to_vector());
  // Consecutive draws start at different offsets, so they differ.
  const auto first = Tensor<float>::rand({16}, a).to_vector();
  const auto second = Tensor<float>::rand({16}, a).to_vector();
  CHECK(first != second);
  // A different seed gives different values.
  ember::Generator c(8);
  c.set_offset(a.offset() - 16);
  CHECK(Tensor<float>::rand({16}, c).to_vector() != second);
}

// ---- views --------------------------------------------------------------------------------

TEST_CASE("reshape, view and flatten of a contiguous tensor share its storage", "[tensor][view]") {
  const auto base = iota({2, 3, 4});
  const auto r = base.reshape({6, 4});
  auto v = base.view({4, -1});
  const auto f = base.flatten();
  const auto f1 = base.flatten(1);
  CHECK(r.shape() == Shape{6, 4});
  CHECK(v.shape() == Shape{4, 6});
  CHECK(f.shape() == Shape{24});
  CHECK(f1.shape() == Shape{2, 12});
  CHECK(base.flatten(0, 1).shape() == Shape{6, 4});
  for (const Tensor<float>* t : {&r, static_cast<const Tensor<float>*>(&v), &f, &f1}) {
    CHECK(t->shares_storage(base));
    CHECK(t->is_contiguous());
    CHECK(t->to_vector() == base.to_vector());
  }
  // Writing through a view changes the base.
  r(5, 3) = -1.0f;
  CHECK(base(1, 2, 3) == -1.0f);
  v.fill_(2.0f);
  CHECK(base.to_vector() == std::vector<float>(24, 2.0f));

  CHECK(Tensor<float>::scalar(1.0f).flatten().shape() == Shape{1});
  CHECK(Tensor<float>::scalar(1.0f).reshape({1, 1}).shape() == Shape{1, 1});
  CHECK(iota({1, 1}).reshape({}).shape() == Shape{});
  CHECK_THROWS_MATCHES(base.reshape({5, 5}), ember::Error, ErrorContains({"[5, 5]", "24"}));
  CHECK_THROWS_AS(base.reshape({-1, -1}), ember::Error);
  CHECK_THROWS_AS(base.view({-1, 7}), ember::Error);
}

TEST_CASE("transpose and permute are strided views", "[tensor][view]") {
  const auto base = iota({2, 3, 4});
  const auto t = base.transpose(0, 2);
  CHECK(t.shape() == Shape{4, 3, 2});
  CHECK(t.strides() == Shape{1, 4, 12});
  CHECK(t.shares_storage(base));
  CHECK_FALSE(t.is_contiguous());
  for (I64 i = 0; i < 2; ++i)
    for (I64 j = 0; j < 3; ++j)
      for (I64 k = 0; k < 4; ++k) CHECK(t(k, j, i) == base(i, j, k));

  const auto p = base.permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p(3, 1, 2) == base(1, 2, 3));
  CHECK(base.permute({-3, -2, -1}).is_contiguous());
  CHECK(iota({3, 5}).t().shape() == Shape{5, 3});

  p(0, 1, 0) = 99.0f;
  CHECK(base(1, 0, 0) == 99.0f);

  CHECK_THROWS_MATCHES(base.permute({0, 0, 1}), ember::Error, ErrorContains({"repeated"}));
  CHECK_THROWS_AS(base.permute({0, 1}), ember::Error);
  CHECK_THROWS_MATCHES(base.transpose(0, 3), ember::Error, ErrorContains({"out of range"}));
}

TEST_CASE("slice (with step), select, unsqueeze and squeeze are views", "[tensor][view]") {
  const auto v = iota({10});
  auto s = v.slice(0, 1, 8, 3);
  CHECK(s.to_vector() == std::vector<float>{1, 4, 7});
  CHECK(s.strides() == Shape{3});
  CHECK(s.shares_storage(v));
  CHECK_FALSE(s.is_contiguous());
  CHECK(v.slice(0, -3, 10).to_vector() == std::vector<float>{7, 8, 9});
  CHECK(v.slice(0, 5, 100).numel() == 5);  // clamped, as in Python
  CHECK(v.slice(0, 8, 2).numel() == 0);
  CHECK_THROWS_AS(v.slice(0, 0, 5, 0), ember::Error);
  s.fill_(-1.0f);
  CHECK(v(4) == -1.0f);
  CHECK(v(5) == 5.0f);

  const auto m = iota({4, 6});
  const auto cols = m.slice(1, 1, 6, 2);  // columns 1, 3, 5
  CHECK(cols.shape() == Shape{4, 3});
  CHECK(cols(2, 1) == m(2, 3));
  const auto row = m.select(0, 2);
  CHECK(row.shape() == Shape{6});
  CHECK(row.is_contiguous());
  CHECK(row.to_vector() == std::vector<float>{12, 13, 14, 15, 16, 17});
  auto col = m.select(1, -1);
  CHECK(col.to_vector() == std::vector<float>{5, 11, 17, 23});
  CHECK_FALSE(col.is_contiguous());
  col.fill_(0.0f);
  CHECK(m(3, 5) == 0.0f);
  CHECK_THROWS_MATCHES(m.select(0, 4), ember::Error, ErrorContains({"out of range"}));
  CHECK_THROWS_AS(m.select(1, -7), ember::Error);

  const auto u = m.unsqueeze(1);
  CHECK(u.shape() == Shape{4, 1, 6});
  CHECK(u.shares_storage(m));
  CHECK(m.unsqueeze(-1).shape() == Shape{4, 6, 1});
  CHECK(u.squeeze(1).shape() == Shape{4, 6});
  CHECK(u.squeeze(0).shape() == Shape{4, 1, 6});  // not of size 1: unchanged
  CHECK(u.squeeze(-2).shares_storage(m));
  CHECK(Tensor<float>::scalar(1.0f).unsqueeze(0).shape() == Shape{1});
}

TEST_CASE("contiguous copies only when needed; view refuses what reshape copies",
          "[tensor][view]") {
  const auto base = iota({3, 4});
  CHECK(base.contiguous().shares_storage(base));
  // Size-1 dimensions do not break contiguity whatever their stride.
  CHECK(base.unsqueeze(0).select(0, 0).is_contiguous());
  CHECK(iota({3, 1}).transpose(0, 1).is_contiguous());

  const auto t = base.t();
  const auto c = t.contiguous();
  CHECK_FALSE(c.shares_storage(base));
  CHECK(c.is_contiguous());
  CHECK(c.to_vector() == t.to_vector());
  CHECK(c.to_vector() == std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});

  CHECK_THROWS_MATCHES(t.view({12}), ember::Error, ErrorContains({"view", "reshape"}));
  const auto r = t.reshape({12});
  CHECK_FALSE(r.shares_storage(base));
  CHECK(r.to_vector() == c.to_vector());

  // A non-contiguous layout that can still be viewed: rows 0 and 2 of a [4, 6].
  const auto m = iota({4, 6});
  const auto rows = m.slice(0, 0, 4, 2);  // [2, 6], strides [12, 1]
  const auto split = rows.view({2, 2, 3});
  CHECK(split.shares_storage(m));
  CHECK(split.strides() == Shape{12, 3, 1});
  CHECK(split(1, 1, 2) == m(2, 5));
  CHECK_THROWS_AS(rows.view({12}), ember::Error);
  // The transposed view can be viewed as long as the swapped dimensions stay apart.
  CHECK(t.view({2, 2, 3}).shape() == Shape{2, 2, 3});
  CHECK(t.view({2, 2, 3}).shares_storage(base));
}

TEST_CASE("0-d tensors: views that make sense work, the others throw", "[tensor][view]") {
  const auto s = Tensor<float>::scalar(2.0f);
  CHECK(s.dim() == 0);
  CHECK(s.squeeze(0).shape() == Shape{});  // PyTorch: the tensor itself
  CHECK(s.squeeze(-1).shares_storage(s));
  CHECK(s.transpose(0, -1).shape() == Shape{});
  CHECK(s.t().item() == 2.0f);
  CHECK(s.unsqueeze(-1).shape() == Shape{1});
  CHECK(s.reshape({1, 1, 1}).shape() == Shape{1, 1, 1});
  CHECK_THROWS_MATCHES(s.size(0), ember::Error, ErrorContains({"0-d"}));
  CHECK_THROWS_MATCHES(s.select(0, 0), ember::Error, ErrorContains({"select", "0-d"}));
  CHECK_THROWS_MATCHES(s.slice(0, 0, 1), ember::Error, ErrorContains({"slice", "0-d"}));
  CHECK_THROWS_AS(s.squeeze(1), ember::Error);
}

// ---- element access, item, cast, copy -------------------------------------------------------

TEST_CASE("Element access is bounds-checked and honours negative indices", "[tensor][access]") {
  const auto m = iota({3, 4});
  CHECK(m(1, 2) == 6.0f);
  CHECK(m(-1, -1) == 11.0f);
  CHECK(m.at({2, 0}) == 8.0f);
  m(0, 0) = 42.0f;
  CHECK(m.data()[0] == 42.0f);
  CHECK_THROWS_MATCHES(m(3, 0), ember::Error,
                       ErrorContains({"index 3", "out of range", "dimension 0", "size 3"}));
  CHECK_THROWS_AS(m(0, 4), ember::Error);
  CHECK_THROWS_AS(m(-4, 0), ember::Error);
  CHECK_THROWS_MATCHES(m(1), ember::Error, ErrorContains({"1 indices", "rank 2"}));
  CHECK_THROWS_AS(m.at({1, 1, 1}), ember::Error);
  const auto s = Tensor<double>::scalar(2.0);
  CHECK(s() == 2.0);
  CHECK(m.size(-1) == 4);
  CHECK_THROWS_AS(m.size(2), ember::Error);
}

TEST_CASE("item() needs exactly one element", "[tensor][access]") {
  CHECK(Tensor<float>::scalar(1.5f).item() == 1.5f);
  CHECK(Tensor<I64>::full({1, 1}, 9).item() == 9);
  CHECK_THROWS_MATCHES(iota({2, 2}).item(), ember::Error,
                       ErrorContains({"item()", "[2, 2]", "4 elements"}));
  CHECK_THROWS_AS(Tensor<float>::zeros({0}).item(), ember::Error);
}

TEST_CASE("cast converts element types in C order of any layout", "[tensor][cast]") {
  const auto f = Tensor<float>::from_list({2.7f, -2.7f, 0.5f, 3.0f}, {2, 2});
  CHECK(f.cast<I64>().to_vector() == std::vector<I64>{2, -2, 0, 3});
  const auto d = f.t().cast<double>();
  CHECK(d.shape() == Shape{2, 2});
  CHECK(d.is_contiguous());
  CHECK(d.to_vector() == std::vector<double>{2.7f, 0.5f, -2.7f, 3.0f});
  const auto u = Tensor<std::uint8_t>::from_list({0, 128, 255});
  CHECK(u.cast<float>().to_vector() == std::vector<float>{0, 128, 255});
  CHECK(u.cast<std::int32_t>().dtype() == ember::DType::i32);
  // cast is a copy.
  auto c = f.cast<float>();
  c(0, 0) = 0.0f;
  CHECK(f(0, 0) == 2.7f);
}

TEST_CASE("copy_, clone, fill_ and zero_", "[tensor][copy]") {
  auto dst = Tensor<float>::zeros({2, 3});
  dst.copy_(iota({2, 3}));
  CHECK(dst.to_vector() == std::vector<float>{0, 1, 2, 3, 4, 5});
  // Into and out of non-contiguous views.
  auto wide = Tensor<float>::zeros({3, 2});
  wide.t().copy_(dst);
  CHECK(wide.to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
  // Overlapping source and destination in the same storage.
  auto v = iota({6});
  v.slice(0, 1, 6).copy_(v.slice(0, 0, 5));
  CHECK(v.to_vector() == std::vector<float>{0, 0, 1, 2, 3, 4});
  CHECK_THROWS_MATCHES(dst.copy_(iota({3, 2})), ember::Error,
                       ErrorContains({"copy_", "[3, 2]", "[2, 3]"}));

  const auto c = dst.clone();
  CHECK_FALSE(c.shares_storage(dst));
  CHECK(c.to_vector() == dst.to_vector());
  const auto ct = dst.t().clone();
  CHECK(ct.is_contiguous());
  CHECK(ct.to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});

  dst.select(1, 1).fill_(7.0f);
  CHECK(dst.to_vector() == std::vector<float>{0, 7, 2, 3, 7, 5});
  dst.zero_();
  CHECK(dst.to_vector() == std::vector<float>(6, 0.0f));
  CHECK(c.to_vector() == std::vector<float>{0, 1, 2, 3, 4, 5});

  // detach shares storage but not history.
  auto x = iota({3});
  const auto dx = x.detach();
  CHECK(dx.shares_storage(x));
  CHECK_FALSE(dx.requires_grad());
}

// ---- printing -------------------------------------------------------------------------------

TEST_CASE("Tensors print as PyTorch 1.13 prints them", "[tensor][print]") {
  // Each expected string is str(t) from PyTorch 1.13 for the same values.
  CHECK(str(Tensor<float>::from_list({1.5f, -2.25f, 0.125f})) ==
        "tensor([ 1.5000, -2.2500,  0.1250])");
  CHECK(str(Tensor<float>::from_list({1, 2, -3})) == "tensor([ 1.,  2., -3.])");
  CHECK(str(Tensor<float>::from_list({0, 0})) == "tensor([0., 0.])");
  CHECK(str(Tensor<float>::from_list({-0.5f, 100.25f})) == "tensor([ -0.5000, 100.2500])");
  CHECK(str(Tensor<I64>::from_list({1, 2, 3, 40, 5, 6}, {2, 3})) ==
        "tensor([[ 1,  2,  3],\n        [40,  5,  6]])");
  CHECK(str(Tensor<double>::from_list({0.5, 1.25, 3, -4}, {2, 2})) ==
        "tensor([[ 0.5000,  1.2500],\n        [ 3.0000, -4.0000]], dtype=torch.float64)");
  CHECK(str(Tensor<std::int32_t>::from_list({1, 2})) == "tensor([1, 2], dtype=torch.int32)");
  CHECK(str(Tensor<std::uint8_t>::from_list({1, 2})) == "tensor([1, 2], dtype=torch.uint8)");
  CHECK(str(Tensor<float>::scalar(3.5f)) == "tensor(3.5000)");
  CHECK(str(Tensor<float>::scalar(2.0f)) == "tensor(2.)");
  CHECK(str(Tensor<I64>::scalar(7)) == "tensor(7)");
  CHECK(str(Tensor<I64>::arange(8).reshape({2, 2, 2})) ==
        "tensor([[[0, 1],\n         [2, 3]],\n\n        [[4, 5],\n         [6, 7]]])");
  CHECK(str(Tensor<float>::zeros({0})) == "tensor([])");

  // Scientific notation when the magnitudes call for it.
  CHECK(str(Tensor<float>::from_list({1e-5f, 1.0f})) == "tensor([1.0000e-05, 1.0000e+00])");
  CHECK(str(Tensor<float>::from_list({1e9f, 1.0f})) == "tensor([1.0000e+09, 1.0000e+00])");
  CHECK(str(Tensor<float>::from_list({1.0f, 2000.0f})) == "tensor([1.0000e+00, 2.0000e+03])");

  // Non-finite values take no part in choosing the width.
  const float nan = std::nanf(""), inf = INFINITY;
  CHECK(str(Tensor<float>::from_list({1.0f, nan, inf})) == "tensor([1., nan, inf])");
  CHECK(str(Tensor<float>::from_list({1.5f, nan, -inf})) == "tensor([1.5000,    nan,   -inf])");

  // Autograd suffixes.
  auto x = Tensor<float>::from_list({1, 2});
  x.requires_grad_();
  CHECK(str(x) == "tensor([1., 2.], requires_grad=True)");
  CHECK(str(ember::add(x, x)) == "tensor([2., 4.], grad_fn=<AddBackward0>)");
  CHECK(str(ember::mul_scalar(x, 2.0f)) == "tensor([2., 4.], grad_fn=<MulBackward1>)");
  auto xd = Tensor<double>::from_list({0.25}, {1});
  xd.requires_grad_();
  CHECK(str(xd) == "tensor([0.2500], dtype=torch.float64, requires_grad=True)");

  // A non-contiguous view prints its own elements.
  CHECK(str(Tensor<I64>::arange(6).reshape({2, 3}).t()) ==
        "tensor([[0, 3],\n        [1, 4],\n        [2, 5]])");

  CHECK(str(Tensor<float>()) == "tensor(undefined)");
}

TEST_CASE("Tensors over 1000 elements print summarised", "[tensor][print]") {
  // Shapes whose summarised rows fit PyTorch's 80 columns, so no line wrapping is involved.
  CHECK(str(Tensor<I64>::arange(1001)) == "tensor([   0,    1,    2,  ...,  998,  999, 1000])");
  std::vector<float> v(1500);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 5) * 0.5f + 0.25f;
  CHECK(str(Tensor<float>::from_vector(v)) ==
        "tensor([0.2500, 0.7500, 1.2500,  ..., 1.2500, 1.7500, 2.2500])");
  std::vector<float> m(1200);
  for (std::size_t i = 0; i < m.size(); ++i) m[i] = static_cast<float>(i % 7) * 0.25f + 1.0f;
  CHECK(str(Tensor<float>::from_vector(m, {30, 40})) ==
        "tensor([[1.0000, 1.2500, 1.5000,  ..., 1.5000, 1.7500, 2.0000],\n"
        "        [2.2500, 2.5000, 1.0000,  ..., 1.0000, 1.2500, 1.5000],\n"
        "        [1.7500, 2.0000, 2.2500,  ..., 2.2500, 2.5000, 1.0000],\n"
        "        ...,\n"
        "        [1.5000, 1.7500, 2.0000,  ..., 2.0000, 2.2500, 2.5000],\n"
        "        [1.0000, 1.2500, 1.5000,  ..., 1.5000, 1.7500, 2.0000],\n"
        "        [2.2500, 2.5000, 1.0000,  ..., 1.0000, 1.2500, 1.5000]])");
  // At exactly 1000 elements nothing is left out.
  const std::string full = str(Tensor<I64>::arange(1000));
  CHECK(full.find("...") == std::string::npos);
  CHECK(full.find(" 500,") != std::string::npos);
}

// ---- allocator, devices, undefined tensors -------------------------------------------------

TEST_CASE("The CPU allocator hands a freed block out again", "[tensor][allocator]") {
  auto& alloc = ember::CpuAllocator::instance();
  const Shape shape{12345, 3};  // a size no other test uses
  const float* first = nullptr;
  {
    const auto t = Tensor<float>::empty(shape);
    first = t.data();
    CHECK(reinterpret_cast<std::uintptr_t>(first) % ember::CpuAllocator::alignment == 0);
  }
  const auto before = alloc.stats();
  CHECK(before.cached_bytes >= sizeof(float) * 12345 * 3);
  const auto again = Tensor<float>::empty(shape);
  const auto after = alloc.stats();
  CHECK(after.hits == before.hits + 1);
  CHECK(after.misses == before.misses);
  CHECK(again.data() == first);
  CHECK(after.cached_bytes < before.cached_bytes);
}

TEST_CASE("CUDA devices are refused in a CPU build", "[tensor][device]") {
  const auto t = iota({2});
  CHECK_THROWS_MATCHES(t.to(ember::Device::cuda()), ember::Error,
                       ErrorContains({"cuda:0", "nvcc", "CUDA"}));
  CHECK_THROWS_MATCHES(Tensor<float>::zeros({2}, ember::Device::cuda(1)), ember::Error,
                       ErrorContains({"cuda:1", "nvcc"}));
  CHECK(t.to(ember::Device::cpu()).shares_storage(t));
  CHECK(t.cpu().shares_storage(t));
  CHECK(ember::Device::cuda(2).str() == "cuda:2");
  CHECK(ember::Device::cpu().str() == "cpu");
}

TEST_CASE("Using an undefined tensor throws", "[tensor][undefined]") {
  const Tensor<float> u;
  CHECK_FALSE(u.defined());
  CHECK_FALSE(u.requires_grad());
  CHECK_THROWS_MATCHES(u.shape(), ember::Error, ErrorContains({"undefined"}));
  CHECK_THROWS_AS(u.numel(), ember::Error);
  CHECK_THROWS_AS(u.data(), ember::Error);
  CHECK_THROWS_AS(u.reshape({1}), ember::Error);
  CHECK_THROWS_AS(u.to_vector(), ember::Error);
  CHECK_THROWS_AS(iota({2}).copy_(u), ember::Error);
  CHECK_THROWS_AS(ember::add(u, iota({1})), ember::Error);
}

TEST_CASE("Shape helpers", "[tensor][shape]") {
  CHECK(ember::shape_str({}) == "[]");
  CHECK(ember::shape_str({2, 3}) == "[2, 3]");
  CHECK(ember::contiguous_strides({2, 3, 4}) == Shape{12, 4, 1});
  CHECK(ember::broadcast_shapes({3, 1, 5}, {4, 1}) == Shape{3, 4, 5});
  CHECK(ember::broadcast_shapes({}, {2}) == Shape{2});
  CHECK_THROWS_MATCHES(ember::broadcast_shapes({2, 3}, {4}), ember::Error,
                       ErrorContains({"[2, 3]", "[4]"}));
  CHECK_THROWS_AS(ember::numel_of({2, -1}), ember::Error);
  CHECK(ember::wrap_dim(-1, 3) == 2);
  CHECK_THROWS_AS(ember::wrap_dim(3, 3), ember::Error);
}

TEST_CASE("Shape sizes are overflow-checked", "[tensor][shape]") {
  const I64 big = I64{1} << 40;
  // No element, yet the strides of [0, 2^40, 2^40] overflow int64: refused, never wrapped.
  CHECK_THROWS_MATCHES(ember::contiguous_strides({0, big, big}), ember::Error,
                       ErrorContains({"[0, 1099511627776, 1099511627776]", "strides overflow"}));
  CHECK_THROWS_MATCHES(ember::numel_of({0, big, big}), ember::Error,
                       ErrorContains({"strides overflow"}));
  CHECK_THROWS_MATCHES(Tensor<float>::empty({0, big, big}), ember::Error,
                       ErrorContains({"strides overflow"}));
  CHECK(ember::numel_of({0, 1 << 20, 1 << 20}) == 0);
  CHECK(ember::contiguous_strides({0, 3}) == Shape{3, 1});
  CHECK_THROWS_MATCHES(ember::numel_of({big, big}), ember::Error,
                       ErrorContains({"too many elements"}));
  CHECK(ember::byte_size_of({2, 3}, 8) == 48);
  CHECK_THROWS_AS(ember::byte_size_of({2}, 0), ember::Error);
  CHECK(ember::checked_mul(I64{1} << 62, 2) == std::nullopt);
  CHECK(ember::checked_mul(-3, 4) == -12);
  CHECK(ember::checked_add(INT64_MAX, 1) == std::nullopt);
  CHECK(ember::checked_add(2, 3) == 5);
}

TEST_CASE("shape_str stays short whatever the rank", "[tensor][shape]") {
  const Shape huge(5'000'000, 1);
  const std::string s = ember::shape_str(huge);
  CHECK(s.size() < 100);
  CHECK(s == "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ... (5000000 dims)]");
  CHECK(ember::shape_str({1, 2, 3}, 2) == "[1, 2, ... (3 dims)]");
  CHECK(ember::shape_str({1, 2}, 0) == "[... (2 dims)]");
  CHECK(ember::shape_str(Shape(16, 2)).find("...") == std::string::npos);
  // An error about such a shape is one short line too.
  Shape negative(5'000'000, 1);
  negative.back() = -1;
  try {
    (void)ember::numel_of(negative);
    FAIL("numel_of accepted a negative dimension");
  } catch (const ember::Error& e) {
    CHECK(std::string(e.what()).size() < 200);
  }
}
