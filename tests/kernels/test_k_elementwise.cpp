// kernels/elementwise.cuh against ember's CPU ops: binary arithmetic on contiguous, broadcast and
// strided operands, unary maps, fill, strided copies (contiguous(), copy_ into views,
// broadcast_to), casts and sum_to. Every block size, odd sizes, poisoned outputs.
#include "support/kernel_test.hpp"

#include <catch2/catch.hpp>

#include <ember/kernels/elementwise.cuh>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/elementwise.hpp"

namespace ek = ember::kernels;
namespace kt = ember::ktest;
using ember::Shape;
using ember::Tensor;
using kt::Buffer;

namespace {

const std::vector<std::int64_t> kSizes{0, 1, 7, 33, 1000, 4097};

// The whole storage behind a tensor (what a device copy of it holds).
template <class T>
std::vector<T> storage_of(const Tensor<T>& t) {
  const auto& st = *t.impl().storage;
  return std::vector<T>(st.data(), st.data() + st.size());
}

// The view reading `t` (its storage) as shape `out`: stride 0 on broadcast dimensions.
template <class T>
ek::StridedView view_as(const Tensor<T>& t, const Shape& out) {
  ek::StridedView v;
  v.rank = static_cast<int>(out.size());
  v.offset = t.offset();
  const std::size_t lead = out.size() - t.shape().size();
  for (std::size_t d = 0; d < out.size(); ++d) {
    v.shape[d] = out[d];
    if (d < lead) {
      v.strides[d] = 0;
    } else {
      const std::int64_t s = t.shape()[d - lead];
      v.strides[d] = s == 1 && out[d] != 1 ? 0 : t.strides()[d - lead];
    }
  }
  return v;
}
template <class T>
ek::StridedView view_of(const Tensor<T>& t) {
  return view_as(t, t.shape());
}
ek::StridedView contiguous_view(const Shape& shape) {
  ek::StridedView v;
  v.rank = static_cast<int>(shape.size());
  std::int64_t s = 1;
  for (int d = v.rank - 1; d >= 0; --d) {
    v.shape[d] = shape[static_cast<std::size_t>(d)];
    v.strides[d] = s;
    s *= v.shape[d];
  }
  return v;
}

template <class T>
void value_range(double& lo, double& hi) {
  if constexpr (std::is_same_v<T, std::uint8_t>) {
    lo = 0;
    hi = 256;
  } else if constexpr (std::is_integral_v<T>) {
    lo = -1000;
    hi = 1000;
  } else {
    lo = -1;
    hi = 1;
  }
}

template <class T>
Tensor<T> random_typed(const Shape& shape, std::uint64_t seed) {  // over the type's test range
  double lo = 0, hi = 0;
  value_range<T>(lo, hi);
  return kt::random_tensor<T>(shape, seed, lo, hi);
}
using kt::random_tensor;
using kt::same_value;

template <class T>
void require_identical(const std::vector<T>& got, const std::vector<T>& want) {
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!same_value(got[i], want[i]) && bad++ == 0) first = i;
  if (bad != 0) {
    INFO(bad << " elements differ; first at " << first << ": got " << +got[first] << ", want "
              << +want[first]);
    REQUIRE(bad == 0);
  }
  REQUIRE(bad == 0);
}

// |got - want| <= ulps * eps * |want| (NaN matches NaN, infinities must be equal).
template <class T>
void require_ulps(const std::vector<T>& got, const std::vector<T>& want, double ulps) {
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    bool ok = same_value(got[i], want[i]);
    if (!ok && std::isfinite(w))
      ok = std::abs(g - w) <= ulps * std::numeric_limits<T>::epsilon() * std::abs(w);
    if (!ok && bad++ == 0) first = i;
  }
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

const char* name(ek::BinaryOp op) {
  switch (op) {
    case ek::BinaryOp::add: return "add";
    case ek::BinaryOp::sub: return "sub";
    case ek::BinaryOp::mul: return "mul";
    case ek::BinaryOp::div: return "div";
    case ek::BinaryOp::pow: return "pow";
    case ek::BinaryOp::relu_grad: return "relu_grad";
    case ek::BinaryOp::max: return "max";
    case ek::BinaryOp::min: return "min";
  }
  return "?";
}

const ek::BinaryOp kBinaryOps[] = {ek::BinaryOp::add, ek::BinaryOp::sub,       ek::BinaryOp::mul,
                                   ek::BinaryOp::div, ek::BinaryOp::pow,       ek::BinaryOp::relu_grad,
                                   ek::BinaryOp::max, ek::BinaryOp::min};

template <class T>
T nan_max(T x, T y) {
  return std::isnan(x) ? x : (std::isnan(y) ? y : std::max(x, y));
}
template <class T>
T nan_min(T x, T y) {
  return std::isnan(x) ? x : (std::isnan(y) ? y : std::min(x, y));
}

// The CPU result of a op b (broadcast). add/sub/mul/div are ember's ops; relu_grad is
// ReluBackward0 through autograd where the shapes agree; pow, max and min have no CPU tensor op
// and are computed from the materialised broadcast operands with std:: functions.
template <class T>
std::vector<T> binary_reference(ek::BinaryOp op, const Tensor<T>& a, const Tensor<T>& b) {
  switch (op) {
    case ek::BinaryOp::add: return ember::add(a, b).to_vector();
    case ek::BinaryOp::sub: return ember::sub(a, b).to_vector();
    case ek::BinaryOp::mul: return ember::mul(a, b).to_vector();
    case ek::BinaryOp::div: return ember::div(a, b).to_vector();
    default: break;
  }
  if (op == ek::BinaryOp::relu_grad && a.shape() == b.shape()) {
    // x with relu(x) > 0 exactly where b > 0: x = b itself.
    Tensor<T> x = b.clone().detach().requires_grad_();
    Tensor<T> y = ember::relu(x);
    y.backward(a.contiguous());
    return x.grad().to_vector();
  }
  const Shape shape = ember::broadcast_shapes(a.shape(), b.shape());
  const std::vector<T> va = ember::broadcast_to(a, shape).to_vector();
  const std::vector<T> vb = ember::broadcast_to(b, shape).to_vector();
  std::vector<T> out(va.size());
  for (std::size_t i = 0; i < va.size(); ++i) {
    const T x = va[i], y = vb[i];
    switch (op) {
      case ek::BinaryOp::pow: out[i] = std::pow(x, y); break;
      case ek::BinaryOp::relu_grad: out[i] = y > T(0) ? x : T(0); break;
      case ek::BinaryOp::max: out[i] = nan_max(x, y); break;
      case ek::BinaryOp::min: out[i] = nan_min(x, y); break;
      default: break;
    }
  }
  return out;
}

// Runs binary(op) on a and b (views into their storages) for every block size and compares.
template <class T>
void check_binary(ek::BinaryOp op, const Tensor<T>& a, const Tensor<T>& b) {
  const Shape shape = ember::broadcast_shapes(a.shape(), b.shape());
  const std::int64_t n = ember::numel_of(shape);
  const std::vector<T> want = binary_reference(op, a, b);
  Buffer<T> da(storage_of(a)), db(storage_of(b));
  for (const int threads : kt::block_sizes()) {
    INFO(name(op) << " " << ember::shape_str(a.shape()) << " with " << ember::shape_str(b.shape())
                  << ", " << threads << " threads");
    Buffer<T> out(static_cast<std::size_t>(n));
    ek::binary(op, da.data(), view_as(a, shape), db.data(), view_as(b, shape), out.data(), n,
               nullptr, threads);
    if (op == ek::BinaryOp::pow && kt::on_gpu) require_ulps(out.host(), want, 8);
    else require_identical(out.host(), want);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("binary kernels on contiguous operands match the CPU ops",
                   "[kernels][elementwise]", float, double) {
  using T = TestType;
  std::uint64_t seed = 100;
  for (const std::int64_t n : kSizes)
    for (const std::int64_t offset : {0, 1}) {  // offset 1: not 16-byte aligned, the scalar loop
      Tensor<T> A = random_tensor<T>({n + offset}, seed++, 0.25, 2);
      Tensor<T> B = random_tensor<T>({n + offset}, seed++, -2, 2);
      if (n > 8) {  // NaN operands: propagated by the arithmetic, chosen by max/min, masked by relu_grad
        A.data()[offset + 3] = std::numeric_limits<T>::quiet_NaN();
        B.data()[offset + 5] = std::numeric_limits<T>::quiet_NaN();
        B.data()[offset + 6] = T(0);
      }
      const Tensor<T> a = A.slice(0, offset, offset + n), b = B.slice(0, offset, offset + n);
      for (const ek::BinaryOp op : kBinaryOps) check_binary(op, a, b);
    }
}

TEMPLATE_TEST_CASE("binary kernels broadcast and read strided operands like the CPU ops",
                   "[kernels][elementwise]", float, double) {
  using T = TestType;
  struct Case {
    Tensor<T> a, b;
  };
  std::uint64_t seed = 200;
  auto r = [&](const Shape& s) { return random_tensor<T>(s, seed++, 0.25, 2); };
  const std::vector<Case> cases{
      {r({5, 1}), r({1, 7})},                                  // outer sum
      {r({3, 1, 5}), r({4, 1})},                               // rank padding on both sides
      {r({7, 3}), Tensor<T>::scalar(T(1.5))},                  // 0-d operand
      {Tensor<T>::full({1}, T(-0.75)), r({33})},               // one-element operand first
      {r({33, 10}), r({10})},                                  // bias-like row broadcast
      {r({64, 130}), r({130})},
      {r({6, 9}).t(), r({9, 6})},                              // transposed
      {r({2, 3, 4, 5}).permute({2, 0, 3, 1}), r({4, 1, 5, 1})},  // permuted and broadcast
      {r({10, 12}).slice(1, 1, 11, 3), r({10, 1})},            // stepped slice
      {r({5, 6, 7}).select(1, 2), r({5, 7}).t().t()},          // select (offset view)
      {r({4, 0, 3}), r({1, 3})},                               // empty
  };
  for (const Case& c : cases)
    for (const ek::BinaryOp op : kBinaryOps) check_binary(op, c.a, c.b);
}

TEST_CASE("binary kernels may write over a contiguous operand", "[kernels][elementwise]") {
  const Tensor<float> a = random_typed<float>({1001}, 7), b = random_typed<float>({1001}, 8);
  const std::vector<float> want = ember::mul(a, b).to_vector();
  for (const int threads : kt::block_sizes()) {
    Buffer<float> da(a.to_vector()), db(b.to_vector());
    ek::binary(ek::BinaryOp::mul, da.data(), view_of(a), db.data(), view_of(b), da.data(), 1001,
               nullptr, threads);
    require_identical(da.host(), want);
  }
}

namespace {

const char* name(ek::UnaryOp op) {
  switch (op) {
    case ek::UnaryOp::neg: return "neg";
    case ek::UnaryOp::exp: return "exp";
    case ek::UnaryOp::log: return "log";
    case ek::UnaryOp::add_scalar: return "add_scalar";
    case ek::UnaryOp::mul_scalar: return "mul_scalar";
    case ek::UnaryOp::pow_scalar: return "pow_scalar";
    case ek::UnaryOp::rsub_scalar: return "rsub_scalar";
    case ek::UnaryOp::relu: return "relu";
    case ek::UnaryOp::sqrt: return "sqrt";
    case ek::UnaryOp::abs: return "abs";
    case ek::UnaryOp::rsqrt: return "rsqrt";
    case ek::UnaryOp::sign: return "sign";
  }
  return "?";
}

template <class T>
std::vector<T> unary_reference(ek::UnaryOp op, const Tensor<T>& a, T s) {
  switch (op) {
    case ek::UnaryOp::neg: return ember::neg(a).to_vector();
    case ek::UnaryOp::exp: return ember::exp(a).to_vector();
    case ek::UnaryOp::log: return ember::log(a).to_vector();
    case ek::UnaryOp::add_scalar: return ember::add_scalar(a, s).to_vector();
    case ek::UnaryOp::mul_scalar: return ember::mul_scalar(a, s).to_vector();
    case ek::UnaryOp::pow_scalar: return ember::pow(a, s).to_vector();
    case ek::UnaryOp::rsub_scalar: return (s - a).to_vector();
    case ek::UnaryOp::relu: return ember::relu(a).to_vector();
    case ek::UnaryOp::sqrt: return ember::sqrt(a).to_vector();
    case ek::UnaryOp::abs: return ember::abs(a).to_vector();
    case ek::UnaryOp::rsqrt: return ember::rsqrt(a).to_vector();
    case ek::UnaryOp::sign: return ember::sign(a).to_vector();
  }
  return {};
}

}  // namespace

TEMPLATE_TEST_CASE("unary kernels match the CPU ops", "[kernels][elementwise]", float, double) {
  using T = TestType;
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  const ek::UnaryOp ops[] = {ek::UnaryOp::neg,        ek::UnaryOp::exp,        ek::UnaryOp::log,
                             ek::UnaryOp::add_scalar, ek::UnaryOp::mul_scalar, ek::UnaryOp::pow_scalar,
                             ek::UnaryOp::rsub_scalar, ek::UnaryOp::relu,      ek::UnaryOp::sqrt,
                             ek::UnaryOp::abs,        ek::UnaryOp::rsqrt,      ek::UnaryOp::sign};
  std::uint64_t seed = 300;
  for (const ek::UnaryOp op : ops)
    for (const std::int64_t n : kSizes)
      for (const std::int64_t offset : {0, 1}) {
        const bool positive = op == ek::UnaryOp::log || op == ek::UnaryOp::pow_scalar ||
                              op == ek::UnaryOp::sqrt || op == ek::UnaryOp::rsqrt;
        Tensor<T> A = positive ? random_tensor<T>({n + offset}, seed++, 0.1, 3)
                               : random_tensor<T>({n + offset}, seed++, -3, 3);
        if (n >= 6) {  // special values, each op's own rule for them
          T* p = A.data() + offset;
          p[0] = nan;
          p[1] = inf;
          p[2] = positive ? T(0) : -inf;
          p[3] = T(0);
          p[4] = positive ? T(1) : -T(0);
        }
        const Tensor<T> a = A.slice(0, offset, offset + n);
        const T s = op == ek::UnaryOp::pow_scalar ? T(1.7) : T(-0.625);
        const std::vector<T> want = unary_reference(op, a, s);
        const bool libm = op == ek::UnaryOp::exp || op == ek::UnaryOp::log ||
                          op == ek::UnaryOp::pow_scalar;
        Buffer<T> da(storage_of(A));
        for (const int threads : kt::block_sizes()) {
          INFO(name(op) << ", n " << n << ", offset " << offset << ", " << threads << " threads");
          Buffer<T> out(static_cast<std::size_t>(n));
          ek::unary(op, da.data() + offset, out.data(), n, s, nullptr, threads);
          if (libm && kt::on_gpu) require_ulps(out.host(), want, 8);
          else require_identical(out.host(), want);
        }
        // in place
        Buffer<T> inplace(a.to_vector());
        ek::unary(op, inplace.data(), inplace.data(), n, s, nullptr, 128);
        if (libm && kt::on_gpu) require_ulps(inplace.host(), want, 8);
        else require_identical(inplace.host(), want);
      }
}

TEMPLATE_TEST_CASE("fill writes every element and nothing else", "[kernels][elementwise]", float,
                   double, std::int64_t, std::int32_t, std::uint8_t) {
  using T = TestType;
  const T value = std::is_floating_point_v<T> ? static_cast<T>(-1.5) : static_cast<T>(201);
  for (const std::int64_t n : kSizes)
    for (const std::int64_t offset : {0, 1})
      for (const int threads : kt::block_sizes()) {
        INFO("n " << n << ", offset " << offset << ", " << threads << " threads");
        Buffer<T> out(static_cast<std::size_t>(n + offset));
        ek::fill(out.data() + offset, n, value, nullptr, threads);
        const std::vector<T> got = out.host();
        require_identical(std::vector<T>(got.begin() + offset, got.end()),
                          Tensor<T>::full({n}, value).to_vector());
        if (offset == 1) REQUIRE(same_value(got[0], kt::poison<T>()));
      }
}

namespace {

// Copies `src` (any view) into a fresh contiguous buffer of `dst_shape` and compares with want.
template <class T>
void check_copy_to_contiguous(const Tensor<T>& src, const Shape& dst_shape, const std::vector<T>& want) {
  const std::int64_t n = ember::numel_of(dst_shape);
  Buffer<T> ds(storage_of(src));
  for (const int threads : kt::block_sizes()) {
    INFO("copy of " << ember::shape_str(src.shape()) << " (strides "
                    << ember::shape_str(src.strides()) << ", offset " << src.offset() << ") into "
                    << ember::shape_str(dst_shape) << ", " << threads << " threads");
    Buffer<T> out(static_cast<std::size_t>(n));
    ek::strided_copy(ds.data(), view_of(src), out.data(), contiguous_view(dst_shape), n, nullptr,
                     threads);
    require_identical(out.host(), want);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("strided_copy makes views contiguous like Tensor::contiguous",
                   "[kernels][elementwise]", float, double, std::int64_t, std::int32_t, std::uint8_t) {
  using T = TestType;
  std::uint64_t seed = 400;
  auto r = [&](const Shape& s) { return random_typed<T>(s, seed++); };
  const std::vector<Tensor<T>> views{
      r({4097}),                                // contiguous, 16-byte aligned: the int4 copy
      r({1001}).slice(0, 1, 1001),              // contiguous but misaligned
      r({33, 7}).t(),                           // transposed
      r({2, 3, 4, 5}).permute({3, 1, 0, 2}),    // permuted
      r({10, 12}).slice(1, 1, 11, 3),           // stepped slice with an offset
      r({5, 6, 7}).select(1, 2),                // select
      r({3, 1, 4}).permute({2, 1, 0}),          // size-1 dimension
      Tensor<T>::full({}, T(7)),                // 0-d
      r({0, 3}),                                // empty
      r({2, 2, 2, 2, 2, 2, 2, 3}).permute({7, 0, 6, 1, 5, 2, 4, 3}),  // rank 8
  };
  for (const Tensor<T>& v : views) check_copy_to_contiguous(v, v.shape(), v.contiguous().to_vector());
  // A different destination shape with the same element count reads in the source's C order.
  const Tensor<T> tr = r({7, 33}).t();
  check_copy_to_contiguous(tr, {231}, tr.contiguous().to_vector());
}

TEMPLATE_TEST_CASE("strided_copy into a strided view matches Tensor::copy_", "[kernels][elementwise]",
                   float, double, std::int64_t, std::int32_t, std::uint8_t) {
  using T = TestType;
  const Tensor<T> base = random_typed<T>({9, 10}, 500);
  const Tensor<T> src = random_typed<T>({4, 10}, 501).t();  // (10, 4), strided
  Tensor<T> expect = base.clone();
  expect.slice(0, 1, 8, 2).t().copy_(src);
  const Tensor<T> dst_view = base.slice(0, 1, 8, 2).t();  // (10, 4), strides (1, 20), offset 10
  Buffer<T> ds(storage_of(src));
  for (const int threads : kt::block_sizes()) {
    INFO(threads << " threads");
    Buffer<T> dd(storage_of(base));
    ek::strided_copy(ds.data(), view_of(src), dd.data(), view_of(dst_view), 40, nullptr, threads);
    require_identical(dd.host(), storage_of(expect));
  }
}

TEMPLATE_TEST_CASE("strided_copy materialises broadcast_to", "[kernels][elementwise]", float, double) {
  using T = TestType;
  struct Case {
    Tensor<T> t;
    Shape shape;
  };
  const std::vector<Case> cases{
      {random_typed<T>({3, 1, 5}, 600), {3, 4, 5}},
      {random_typed<T>({7}, 601), {33, 7}},
      {random_typed<T>({6, 1}, 602).t(), {5, 6}},
      {Tensor<T>::scalar(T(2.5)), {4, 3}},
  };
  for (const Case& c : cases) {
    const std::int64_t n = ember::numel_of(c.shape);
    const std::vector<T> want = ember::broadcast_to(c.t, c.shape).to_vector();
    Buffer<T> ds(storage_of(c.t));
    for (const int threads : kt::block_sizes()) {
      INFO(ember::shape_str(c.t.shape()) << " -> " << ember::shape_str(c.shape) << ", " << threads);
      Buffer<T> out(static_cast<std::size_t>(n));
      ek::strided_copy(ds.data(), view_as(c.t, c.shape), out.data(), contiguous_view(c.shape), n,
                       nullptr, threads);
      require_identical(out.host(), want);
    }
  }
}

namespace {

template <class S, class D>
void check_cast(double lo, double hi, std::uint64_t seed) {
  for (const std::int64_t n : {0, 1, 7, 33, 1000}) {
    const Tensor<S> src = random_tensor<S>({n}, seed++, lo, hi);
    const std::vector<D> want = src.template cast<D>().to_vector();
    Buffer<S> ds(src.to_vector());
    for (const int threads : kt::block_sizes()) {
      INFO(ember::dtype_name(ember::dtype_of<S>()) << " -> " << ember::dtype_name(ember::dtype_of<D>())
                                                   << ", n " << n << ", " << threads << " threads");
      Buffer<D> out(static_cast<std::size_t>(n));
      ek::cast(ds.data(), out.data(), n, nullptr, threads);
      require_identical(out.host(), want);
    }
  }
}

}  // namespace

TEST_CASE("cast converts between element types like Tensor::cast", "[kernels][elementwise]") {
  check_cast<float, double>(-5, 5, 700);
  check_cast<double, float>(-5, 5, 710);
  check_cast<float, std::int64_t>(-100, 100, 720);
  check_cast<double, std::int32_t>(-100, 100, 730);
  check_cast<float, std::uint8_t>(0, 255, 740);
  check_cast<double, std::uint8_t>(0, 255, 745);
  check_cast<std::int64_t, float>(-100000, 100000, 750);
  check_cast<std::int32_t, double>(-100000, 100000, 760);
  check_cast<std::uint8_t, float>(0, 256, 770);
  check_cast<std::int64_t, std::int32_t>(-100000, 100000, 780);
  check_cast<std::uint8_t, std::int64_t>(0, 256, 790);
  check_cast<std::int32_t, std::uint8_t>(0, 256, 795);
  check_cast<float, float>(-1, 1, 798);
}

namespace {

// sum_to(g, target) on the device against ember::sum_to. `exact`: every output sums at most 32
// terms (the sequential path, bit-identical to the CPU). The output view is spelled both ways
// sum_to accepts: the target shape padded with 1s, and out read with broadcast strides as g's
// shape (as ember's ops pass it).
template <class T>
void check_sum_to(const Tensor<T>& g, const Shape& target, bool exact) {
  const std::vector<T> want = ember::sum_to(g, target).to_vector();
  const std::int64_t out_n = ember::numel_of(target);
  ek::StridedView reduced;
  reduced.rank = static_cast<int>(g.dim());
  const std::size_t lead = g.shape().size() - target.size();
  std::int64_t stride = 1;
  for (int d = reduced.rank - 1; d >= 0; --d) {
    const auto du = static_cast<std::size_t>(d);
    reduced.shape[d] = du < lead ? 1 : target[du - lead];
    reduced.strides[d] = reduced.shape[d] == 1 ? 0 : stride;
    stride *= reduced.shape[d];
  }
  const ek::StridedView broadcast = view_as(Tensor<T>::empty(target), g.shape());
  const std::vector<T> gv = g.to_vector();
  double max_abs = 0;
  for (const T x : gv) max_abs = std::max(max_abs, std::abs(static_cast<double>(x)));
  const double terms = out_n == 0 ? 0.0 : static_cast<double>(gv.size()) / static_cast<double>(out_n);
  const double tol = 2 * std::numeric_limits<T>::epsilon() * terms * max_abs;
  Buffer<T> dg(storage_of(g));
  for (const int threads : kt::block_sizes()) {
    const bool spell_reduced = threads == 32 || threads == 128 || threads == 512;
    INFO("sum_to " << ember::shape_str(g.shape()) << " (strides " << ember::shape_str(g.strides())
                   << ") -> " << ember::shape_str(target) << ", " << threads << " threads, "
                   << (spell_reduced ? "reduced" : "broadcast") << " output view");
    const ek::StridedView& vout = spell_reduced ? reduced : broadcast;
    Buffer<T> out(static_cast<std::size_t>(out_n));
    ek::sum_to(dg.data(), view_of(g), out.data(), vout, out_n, nullptr, threads);
    const std::vector<T> got = out.host();
    if (exact) require_identical(got, want);
    else require_close(got, want, tol);
    if (threads == 128) {  // deterministic: a second run gives the same bits
      Buffer<T> again(static_cast<std::size_t>(out_n));
      ek::sum_to(dg.data(), view_of(g), again.data(), vout, out_n, nullptr, threads);
      require_identical(again.host(), got);
    }
  }
}

}  // namespace

TEMPLATE_TEST_CASE("sum_to reduces broadcast dimensions like ember::sum_to", "[kernels][elementwise]",
                   float, double) {
  using T = TestType;
  std::uint64_t seed = 800;
  auto r = [&](const Shape& s) { return random_typed<T>(s, seed++); };
  // bias-like: (N, K) -> (1, K) / (K), (N, C, H, W) -> (1, C, 1, 1)
  check_sum_to(r({64, 10}), {1, 10}, false);
  check_sum_to(r({64, 10}), {10}, false);
  check_sum_to(r({300, 17}), {1, 17}, false);
  check_sum_to(r({7, 10}), {1, 10}, true);
  check_sum_to(r({4, 3, 5, 6}), {1, 3, 1, 1}, false);
  check_sum_to(r({3, 5, 33}), {1, 5, 1}, false);
  check_sum_to(r({2, 5, 3, 3}), {5, 1, 1}, true);
  // rows: (N, K) -> (N, 1)
  check_sum_to(r({9, 40}), {9, 1}, false);
  check_sum_to(r({33, 7}), {33, 1}, true);
  // everything
  check_sum_to(r({1000}), {}, false);
  check_sum_to(r({5, 6, 7}), {1, 1, 1}, false);
  check_sum_to(r({4, 5}), {1}, true);
  // interleaved kept and summed dimensions (the general paths)
  check_sum_to(r({2, 3, 4, 5}), {1, 3, 1, 5}, true);
  check_sum_to(r({6, 2, 7, 3}), {2, 1, 3}, false);
  // strided g
  check_sum_to(r({4, 40}).t(), {1, 4}, false);
  check_sum_to(r({10, 12}).t(), {1, 10}, true);
  check_sum_to(r({8, 9, 3}).permute({2, 0, 1}), {3, 1, 1}, false);
  check_sum_to(r({12, 50}).slice(1, 3, 50, 2), {12, 1}, true);
  // nothing to sum, a 0-d g, an empty g
  check_sum_to(r({3, 4}).t(), {4, 3}, true);
  check_sum_to(Tensor<T>::scalar(T(0.5)), {}, true);
  check_sum_to(r({0, 5}), {1, 5}, true);
}
