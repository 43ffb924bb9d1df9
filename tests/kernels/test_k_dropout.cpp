// kernels/dropout.cuh: Philox dropout masks identical to ember::detail::dropout_mask at the same
// seed and counter offset (including offsets past 2^32 and the device-side offset_ptr), and
// dropout / dropout2d forward and backward identical to ember::dropout / ember::dropout2d with
// the same generator; odd sizes, every block size, poisoned outputs, in-place application.
#include "support/kernel_test.hpp"

#include <catch2/catch.hpp>

#include <ember/kernels/dropout.cuh>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/dropout.hpp"
#include "support/inputs.hpp"

namespace {

namespace ek = ember::kernels;
using ember::Generator;
using ember::Shape;
using ember::Tensor;
using ember::ktest::Buffer;
using I64 = std::int64_t;
using U64 = std::uint64_t;

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// The CPU mask drawn at `offset`, and the generator's offset afterwards.
template <class T>
std::vector<T> cpu_mask(const Shape& shape, double p, U64 seed, U64 offset) {
  Generator gen(seed);
  gen.set_offset(offset);
  return ember::detail::dropout_mask<T>(shape, p, gen).to_vector();
}

// Block sizes for a case: every one for small sizes; on the harness (where each GPU thread is a
// fiber) large sizes take one, rotating with `turn` so that the loop still covers them all.
std::vector<int> blocks_for(I64 n, std::size_t turn) {
  const auto& all = ember::ktest::block_sizes();
  if (ember::ktest::on_gpu || n <= 100) return all;
  return {all[turn % all.size()]};
}

}  // namespace

TEMPLATE_TEST_CASE("dropout_mask draws the CPU generator's masks", "[kernels][dropout]", float,
                   double) {
  using T = TestType;
  const U64 seed = 0x1234abcdULL;
  std::size_t turn = 0;
  for (const I64 n : {I64{1}, I64{7}, I64{33}, I64{1000}, I64{4099}}) {
    for (const double p : {0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 1.0}) {
      for (const U64 offset : {U64{0}, U64{77}, (U64{1} << 32) - 5}) {  // the last crosses 2^32
        const std::vector<T> want = cpu_mask<T>({n}, p, seed, offset);
        for (const int threads : blocks_for(n, turn++)) {
          CAPTURE(n, p, offset, threads);
          Buffer<T> mask(static_cast<std::size_t>(n));
          ek::dropout_mask<T>({seed, offset, nullptr}, p, mask.data(), n, nullptr, threads);
          CHECK(same_bits(mask.host(), want));
        }
      }
    }
  }
  // A different seed gives a different mask.
  Buffer<T> a(1000), b(1000);
  ek::dropout_mask<T>({1, 0, nullptr}, 0.5, a.data(), 1000, nullptr);
  ek::dropout_mask<T>({2, 0, nullptr}, 0.5, b.data(), 1000, nullptr);
  CHECK_FALSE(same_bits(a.host(), b.host()));
}

TEST_CASE("dropout_mask's kept fraction and scale", "[kernels][dropout]") {
  const I64 n = 20000;
  Buffer<float> mask(static_cast<std::size_t>(n));
  ek::dropout_mask<float>({42, 0, nullptr}, 0.3, mask.data(), n, nullptr);
  const auto m = mask.host();
  I64 kept = 0;
  const float scale = static_cast<float>(1.0 / (1.0 - 0.3));
  for (const float v : m) {
    CHECK((v == 0.0f || v == scale));
    kept += v != 0.0f ? 1 : 0;
  }
  CHECK(std::abs(static_cast<double>(kept) / static_cast<double>(n) - 0.7) < 0.02);
}

TEMPLATE_TEST_CASE("dropout_mask reads a device offset through offset_ptr", "[kernels][dropout]",
                   float, double) {
  using T = TestType;
  const U64 seed = 99;
  const I64 n = 517;
  Buffer<U64> device_offset(std::vector<U64>{1000});
  for (const int threads : ember::ktest::block_sizes()) {
    CAPTURE(threads);
    // base = offset + *offset_ptr
    Buffer<T> mask(static_cast<std::size_t>(n));
    ek::dropout_mask<T>({seed, 5, device_offset.data()}, 0.4, mask.data(), n, nullptr, threads);
    CHECK(same_bits(mask.host(), cpu_mask<T>({n}, 0.4, seed, 1005)));
  }
  // The value is read when the kernel runs: a new device offset, the same launch arguments
  // (as in a replayed CUDA graph), a fresh mask.
  Buffer<U64> other(std::vector<U64>{(U64{1} << 33) + 3});
  Buffer<T> m1(static_cast<std::size_t>(n)), m2(static_cast<std::size_t>(n));
  ek::dropout_mask<T>({seed, 0, device_offset.data()}, 0.4, m1.data(), n, nullptr);
  ek::dropout_mask<T>({seed, 0, other.data()}, 0.4, m2.data(), n, nullptr);
  CHECK(same_bits(m1.host(), cpu_mask<T>({n}, 0.4, seed, 1000)));
  CHECK(same_bits(m2.host(), cpu_mask<T>({n}, 0.4, seed, (U64{1} << 33) + 3)));
  CHECK_FALSE(same_bits(m1.host(), m2.host()));
}

TEMPLATE_TEST_CASE("dropout mask + dropout_apply equal ember::dropout forward and backward",
                   "[kernels][dropout]", float, double) {
  using T = TestType;
  const U64 seed = 7;
  std::size_t turn = 0;
  for (const Shape& shape : {Shape{1}, Shape{7}, Shape{3, 11}, Shape{4, 5, 6, 7}, Shape{64, 128}}) {
    const I64 n = ember::numel_of(shape);
    for (const double p : {0.1, 0.5, 0.8}) {
      Generator gen(seed);
      gen.set_offset(12345);
      const U64 offset = gen.offset();
      Tensor<T> x = ember::test::random_tensor<T>(shape, 3);
      x.requires_grad_(true);
      const Tensor<T> y = ember::dropout(x, p, /*training=*/true, gen);
      CHECK(gen.offset() == offset + static_cast<U64>(n));  // what the caller reserves
      const Tensor<T> g = ember::test::random_tensor<T>(shape, 4);
      y.backward(g);
      const std::vector<T> want_y = y.detach().to_vector(), want_gx = x.grad().to_vector();

      const Buffer<T> dx(x.detach().to_vector()), dg(g.to_vector());
      for (const int threads : blocks_for(n, turn++)) {
        CAPTURE(shape, p, threads);
        Buffer<T> mask(static_cast<std::size_t>(n)), dy(static_cast<std::size_t>(n)),
            dgx(static_cast<std::size_t>(n));
        ek::dropout_mask<T>({seed, offset, nullptr}, p, mask.data(), n, nullptr, threads);
        ek::dropout_apply(dx.data(), mask.data(), dy.data(), n, 1, nullptr, threads);
        ek::dropout_apply(dg.data(), mask.data(), dgx.data(), n, 1, nullptr, threads);
        CHECK(same_bits(dy.host(), want_y));
        CHECK(same_bits(dgx.host(), want_gx));
        // In place (y aliasing x).
        Buffer<T> inplace(x.detach().to_vector());
        ek::dropout_apply(inplace.data(), mask.data(), inplace.data(), n, 1, nullptr, threads);
        CHECK(same_bits(inplace.host(), want_y));
      }
    }
  }
}

TEMPLATE_TEST_CASE(
    "dropout mask over channels + dropout_apply(inner = H * W) equal ember::dropout2d",
    "[kernels][dropout]", float, double) {
  using T = TestType;
  const U64 seed = 2024;
  std::size_t turn = 0;
  for (const Shape& shape : {Shape{2, 3, 4, 5}, Shape{1, 1, 1, 1}, Shape{3, 7, 1, 9},
                             Shape{5, 6, 7}, Shape{4, 32, 12, 12}}) {
    const I64 n = ember::numel_of(shape);
    const I64 inner = shape[shape.size() - 1] * shape[shape.size() - 2];
    const I64 channels = n / inner;
    for (const double p : {0.25, 0.5}) {
      Generator gen(seed);
      gen.set_offset(31);
      const U64 offset = gen.offset();
      Tensor<T> x = ember::test::random_tensor<T>(shape, 8);
      x.requires_grad_(true);
      const Tensor<T> y = ember::dropout2d(x, p, /*training=*/true, gen);
      CHECK(gen.offset() == offset + static_cast<U64>(channels));  // one draw per (n, c)
      const Tensor<T> g = ember::test::random_tensor<T>(shape, 9);
      y.backward(g);
      const std::vector<T> want_y = y.detach().to_vector(), want_gx = x.grad().to_vector();

      const Buffer<T> dx(x.detach().to_vector()), dg(g.to_vector());
      for (const int threads : blocks_for(n, turn++)) {
        CAPTURE(shape, p, threads);
        Buffer<T> mask(static_cast<std::size_t>(channels)), dy(static_cast<std::size_t>(n)),
            dgx(static_cast<std::size_t>(n));
        ek::dropout_mask<T>({seed, offset, nullptr}, p, mask.data(), channels, nullptr, threads);
        ek::dropout_apply(dx.data(), mask.data(), dy.data(), n, inner, nullptr, threads);
        ek::dropout_apply(dg.data(), mask.data(), dgx.data(), n, inner, nullptr, threads);
        CHECK(same_bits(dy.host(), want_y));
        CHECK(same_bits(dgx.host(), want_gx));
      }
    }
  }
}

TEST_CASE("dropout kernels check their arguments and skip empty work", "[kernels][dropout]") {
  Buffer<float> mask(4);
  CHECK_THROWS_AS(ek::dropout_mask<float>({1, 0, nullptr}, 1.5, mask.data(), 4, nullptr),
                  ember::Error);
  CHECK_THROWS_AS(ek::dropout_mask<float>({1, 0, nullptr}, -0.1, mask.data(), 4, nullptr),
                  ember::Error);
  CHECK_THROWS_AS(ek::dropout_apply<float>(mask.data(), mask.data(), mask.data(), 4, 0, nullptr),
                  ember::Error);
  ek::dropout_mask<float>({1, 0, nullptr}, 0.5, mask.data(), 0, nullptr);
  ek::dropout_apply<float>(mask.data(), mask.data(), mask.data(), 0, 1, nullptr);
  for (const float v : mask.host()) CHECK(std::isnan(v));  // untouched
}
