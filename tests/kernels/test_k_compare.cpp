// kernels/compare.cuh: compare (every CompareOp), where and clamp forward / backward against
// ember::cpu::compare / where / clamp_forward / clamp_backward (backend/cpu/compare.hpp),
// exactly, on odd broadcast and strided shapes with NaN, ties and offsets, for every block size,
// with poisoned outputs.
#include "support/kernel_test.hpp"

#include <catch2/catch.hpp>

#include <ember/kernels/compare.cuh>

#include <cstdint>
#include <limits>
#include <vector>

#include "ember/backend/cpu/compare.hpp"

namespace {

namespace ek = ember::kernels;
namespace kt = ember::ktest;
using ember::ClampParams;
using ember::CompareOp;
using ember::StridedView;
using ember::ktest::Buffer;
using ember::ktest::same_value;
using I64 = std::int64_t;

// A view of `shape` (rank <= 8) with the given strides and offset.
StridedView view(const std::vector<I64>& shape, const std::vector<I64>& strides, I64 offset) {
  StridedView v;
  v.rank = static_cast<int>(shape.size());
  for (int d = 0; d < v.rank; ++d) {
    v.shape[d] = shape[static_cast<std::size_t>(d)];
    v.strides[d] = strides[static_cast<std::size_t>(d)];
  }
  v.offset = offset;
  return v;
}

// Three operand views of one output shape: broadcast (stride 0), transposed and contiguous.
struct Case {
  std::vector<I64> shape;
  std::vector<I64> s0, s1, s2;  // strides of the three operands
  I64 o0, o1, o2;               // offsets
  I64 storage;                  // elements in each operand's storage (enough for every view)
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {{7}, {1}, {1}, {1}, 0, 1, 3, 10},
      {{3, 5, 7}, {0, 0, 1}, {35, 7, 1}, {1, 3, 15}, 2, 0, 1, 110},   // broadcast / contiguous / transposed
      {{2, 1, 9}, {9, 9, 1}, {0, 0, 0}, {1, 9, 2}, 0, 4, 0, 40},     // a scalar operand
      {{4, 3, 2, 5}, {0, 5, 0, 1}, {30, 10, 5, 1}, {1, 4, 12, 24}, 3, 0, 0, 130},
      {{1000}, {1}, {0}, {2}, 0, 0, 1, 2010},
      {{}, {}, {}, {}, 1, 0, 2, 4},
  };
  return c;
}

template <class T>
std::vector<T> with_specials(std::vector<T> v) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  for (std::size_t i = 0; i < v.size(); i += 5) v[i] = nan;
  for (std::size_t i = 2; i < v.size(); i += 7) v[i] = T(0.25);  // ties across operands
  return v;
}

}  // namespace

TEMPLATE_TEST_CASE("compare kernels match the CPU kernels exactly", "[kernels][compare]", float, double) {
  using T = TestType;
  std::uint64_t seed = 900;
  for (const Case& c : cases())
    for (const CompareOp op : {CompareOp::eq, CompareOp::ne, CompareOp::lt, CompareOp::le, CompareOp::gt, CompareOp::ge}) {
      const std::vector<T> a = with_specials(kt::random_vector<T>(static_cast<std::size_t>(c.storage), seed++));
      const std::vector<T> b = with_specials(kt::random_vector<T>(static_cast<std::size_t>(c.storage), seed++));
      const StridedView va = view(c.shape, c.s0, c.o0), vb = view(c.shape, c.s2, c.o2);
      const I64 n = ember::numel_of(c.shape);
      std::vector<std::uint8_t> want(static_cast<std::size_t>(n));
      ember::cpu::compare<T>(op, a.data(), va, b.data(), vb, want.data(), n);
      Buffer<T> da(a), db(b);
      for (const int threads : kt::block_sizes()) {
        INFO("shape rank " << c.shape.size() << ", n " << n << ", op " << static_cast<int>(op) << ", " << threads
                           << " threads");
        Buffer<std::uint8_t> out(static_cast<std::size_t>(n));
        ek::compare<T>(op, da.data(), va, db.data(), vb, out.data(), n, nullptr, threads);
        CHECK(out.host() == want);
      }
    }
}

TEMPLATE_TEST_CASE("where kernels match the CPU kernel exactly", "[kernels][compare]", float, double) {
  using T = TestType;
  std::uint64_t seed = 1900;
  for (const Case& c : cases()) {
    std::vector<std::uint8_t> cond = kt::random_vector<std::uint8_t>(static_cast<std::size_t>(c.storage), seed++, 0, 3);
    const std::vector<T> a = with_specials(kt::random_vector<T>(static_cast<std::size_t>(c.storage), seed++));
    const std::vector<T> b = kt::random_vector<T>(static_cast<std::size_t>(c.storage), seed++);
    const I64 n = ember::numel_of(c.shape);
    // each operand in each of the three layouts
    const std::vector<std::vector<I64>> strides = {c.s0, c.s1, c.s2};
    const std::vector<I64> offsets = {c.o0, c.o1, c.o2};
    for (std::size_t r = 0; r < 3; ++r) {
      const StridedView vc = view(c.shape, strides[r], offsets[r]);
      const StridedView va = view(c.shape, strides[(r + 1) % 3], offsets[(r + 1) % 3]);
      const StridedView vb = view(c.shape, strides[(r + 2) % 3], offsets[(r + 2) % 3]);
      std::vector<T> want(static_cast<std::size_t>(n));
      ember::cpu::where<T>(cond.data(), vc, a.data(), va, b.data(), vb, want.data(), n);
      Buffer<std::uint8_t> dc(cond);
      Buffer<T> da(a), db(b);
      for (const int threads : kt::block_sizes()) {
        INFO("shape rank " << c.shape.size() << ", n " << n << ", rotation " << r << ", " << threads << " threads");
        Buffer<T> out(static_cast<std::size_t>(n));
        ek::where<T>(dc.data(), vc, da.data(), va, db.data(), vb, out.data(), n, nullptr, threads);
        const std::vector<T> got = out.host();
        bool same = true;
        for (std::size_t i = 0; i < got.size(); ++i) same = same && same_value(got[i], want[i]);
        CHECK(same);
      }
    }
    // all three contiguous: the flat path
    const StridedView flat = view({n}, {1}, 1);
    if (n + 1 <= c.storage) {
      std::vector<T> want(static_cast<std::size_t>(n));
      ember::cpu::where<T>(cond.data(), flat, a.data(), flat, b.data(), flat, want.data(), n);
      Buffer<std::uint8_t> dc(cond);
      Buffer<T> da(a), db(b);
      Buffer<T> out(static_cast<std::size_t>(n));
      ek::where<T>(dc.data(), flat, da.data(), flat, db.data(), flat, out.data(), n, nullptr, 128);
      const std::vector<T> got = out.host();
      bool same = true;
      for (std::size_t i = 0; i < got.size(); ++i) same = same && same_value(got[i], want[i]);
      CHECK(same);
    }
  }
}

TEMPLATE_TEST_CASE("clamp kernels match the CPU kernels exactly", "[kernels][compare]", float, double) {
  using T = TestType;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  std::vector<ClampParams<T>> params(5);
  params[0] = {T(-0.25), T(0.5), true, true};
  params[1] = {T(-0.25), T(0), true, false};
  params[2] = {T(0), T(0.5), false, true};
  params[3] = {T(0.5), T(-0.5), true, true};  // min > max: max everywhere
  params[4] = {nan, T(0.5), true, true};      // NaN bound: NaN everywhere
  std::uint64_t seed = 2900;
  for (const ClampParams<T>& p : params)
    for (const I64 n : {I64{1}, I64{7}, I64{1000}, I64{4099}}) {
      std::vector<T> x = with_specials(kt::random_vector<T>(static_cast<std::size_t>(n), seed++));
      if (n > 3) {
        x[1] = T(-0.25);  // on the bounds
        x[3] = T(0.5);
      }
      const std::vector<T> gy = kt::random_vector<T>(static_cast<std::size_t>(n), seed++);
      std::vector<T> want_y(static_cast<std::size_t>(n)), want_gx(static_cast<std::size_t>(n));
      ember::cpu::clamp_forward<T>(p, x.data(), want_y.data(), n);
      ember::cpu::clamp_backward<T>(p, gy.data(), x.data(), want_gx.data(), n);
      Buffer<T> dx(x), dg(gy);
      for (const int threads : kt::block_sizes()) {
        INFO("n " << n << ", min " << p.min << " (" << p.has_min << "), max " << p.max << " (" << p.has_max << "), "
                  << threads << " threads");
        Buffer<T> y(static_cast<std::size_t>(n)), gx(static_cast<std::size_t>(n));
        ek::clamp_forward<T>(p, dx.data(), y.data(), n, nullptr, threads);
        ek::clamp_backward<T>(p, dg.data(), dx.data(), gx.data(), n, nullptr, threads);
        const std::vector<T> gy_out = y.host(), gx_out = gx.host();
        bool same = true;
        for (std::size_t i = 0; i < gy_out.size(); ++i)
          same = same && same_value(gy_out[i], want_y[i]) && same_value(gx_out[i], want_gx[i]);
        CHECK(same);
      }
    }
}
