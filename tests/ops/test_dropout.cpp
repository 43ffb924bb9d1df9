// Tests for ember/ops/dropout.hpp: PyTorch's semantics (identity in evaluation and for
// p = 0, zeros for p = 1, survivors scaled by 1 / (1 - p)), the kept fraction, whole
// channels for dropout2d, masks reproducible from the generator's state, gradients with the
// mask held fixed, and the errors.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/dropout.hpp"
#include "ember/ops/reduce.hpp"

#include "support/gradcheck.hpp"
#include "support/inputs.hpp"
#include "support/matchers.hpp"

namespace {

using ember::Generator;
using ember::Shape;
using ember::Tensor;
using ember::test::check_gradients;
using ember::test::ErrorContains;
using ember::test::random_tensor;
using I64 = std::int64_t;
using TD = Tensor<double>;
using Inputs = std::vector<TD>;

}  // namespace

TEMPLATE_TEST_CASE("dropout is the identity in evaluation and for p = 0", "[ops][dropout]", float,
                   double) {
  const auto x = random_tensor<TestType>({4, 5}, 101);
  Generator gen(1);
  for (double p : {0.0, 0.3, 1.0}) {
    CAPTURE(p);
    const auto y = ember::dropout(x, p, /*training=*/false, gen);
    CHECK(y.shares_storage(x));
    CHECK(y.to_vector() == x.to_vector());
    const auto y2 = ember::dropout2d(x.reshape({2, 2, 5}), p, false, gen);
    CHECK(y2.to_vector() == x.to_vector());
  }
  const auto y0 = ember::dropout(x, 0.0, /*training=*/true, gen);
  CHECK(y0.to_vector() == x.to_vector());
  CHECK(gen.offset() == 0);  // nothing was drawn
}

TEMPLATE_TEST_CASE("dropout with p = 1 zeroes everything", "[ops][dropout]", float, double) {
  auto x = random_tensor<TestType>({3, 4}, 102);
  x.requires_grad_();
  Generator gen(2);
  const auto y = ember::dropout(x, 1.0, true, gen);
  CHECK(y.to_vector() == std::vector<TestType>(12, TestType(0)));
  ember::sum(y).backward();
  CHECK(x.grad().to_vector() == std::vector<TestType>(12, TestType(0)));
  const auto y2 = ember::dropout2d(x.detach().reshape({1, 3, 2, 2}), 1.0, true, gen);
  CHECK(y2.to_vector() == std::vector<TestType>(12, TestType(0)));
}

TEMPLATE_TEST_CASE("dropout keeps about 1 - p and scales survivors by 1 / (1 - p)",
                   "[ops][dropout]", float, double) {
  const double p = GENERATE(0.1, 0.3, 0.5, 0.8);
  CAPTURE(p);
  constexpr I64 n = 100000;
  const auto x = random_tensor<TestType>({n}, 103, 0.5, 1.5);  // never 0, so a 0 is a drop
  Generator gen(3);
  gen.set_offset(17);
  const auto y = ember::dropout(x, p, true, gen);
  CHECK(gen.offset() == 17 + static_cast<std::uint64_t>(n));
  const auto xv = x.to_vector(), yv = y.to_vector();
  const TestType scale = static_cast<TestType>(1.0 / (1.0 - p));
  I64 kept = 0, wrong = 0, mask_mismatch = 0;
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const bool k = yv[i] != TestType(0);
    kept += k;
    if (k && yv[i] != xv[i] * scale) ++wrong;
    // Element i is kept exactly when uniform(seed, offset + i) >= p.
    if (k != (ember::Philox::uniform<float>(3, 17 + i) >= static_cast<float>(p))) ++mask_mismatch;
  }
  CHECK(wrong == 0);
  CHECK(mask_mismatch == 0);
  // The kept fraction has standard deviation sqrt(p (1 - p) / n) <= 1.6e-3; allow 0.01.
  CHECK(static_cast<double>(kept) / n == Approx(1.0 - p).margin(0.01));
}

TEMPLATE_TEST_CASE("dropout2d zeroes whole channels", "[ops][dropout]", float, double) {
  const Shape shape = GENERATE(Shape{8, 16, 3, 5}, Shape{64, 2, 2}, Shape{2, 3, 1, 1});
  CAPTURE(shape);
  const auto x = random_tensor<TestType>(shape, 104, 0.5, 1.5);
  Generator gen(4);
  const double p = 0.5;
  const auto y = ember::dropout2d(x, p, true, gen);
  REQUIRE(y.shape() == shape);
  const I64 hw = shape[shape.size() - 1] * shape[shape.size() - 2];
  const I64 channels = x.numel() / hw;
  CHECK(gen.offset() == static_cast<std::uint64_t>(channels));  // one draw per channel
  const auto xv = x.to_vector(), yv = y.to_vector();
  I64 kept_channels = 0, mixed = 0, wrong = 0;
  for (I64 ch = 0; ch < channels; ++ch) {
    I64 kept = 0;
    for (I64 i = ch * hw; i < (ch + 1) * hw; ++i) {
      const auto u = static_cast<std::size_t>(i);
      if (yv[u] != TestType(0)) {
        ++kept;
        if (yv[u] != xv[u] * TestType(2)) ++wrong;
      }
    }
    if (kept == hw)
      ++kept_channels;
    else if (kept != 0)
      ++mixed;
  }
  CHECK(mixed == 0);
  CHECK(wrong == 0);
  if (channels >= 100) {  // 128 channels: the kept count is 64 +- 5.7; allow 25
    CHECK(std::abs(static_cast<double>(kept_channels) - channels * 0.5) < 25);
  }
}

TEST_CASE("The same generator state gives the same mask", "[ops][dropout]") {
  const auto x = random_tensor<float>({6, 7}, 105);
  Generator gen(5);
  Generator saved = gen;  // a copy holds (seed, offset)
  const auto a = ember::dropout(x, 0.4, true, gen).to_vector();
  const auto b = ember::dropout(x, 0.4, true, saved).to_vector();
  CHECK(a == b);
  CHECK(gen.offset() == saved.offset());
  // The next draw uses new counters: a different mask.
  CHECK(ember::dropout(x, 0.4, true, gen).to_vector() != a);
  // Reseeding replays.
  Generator g1(6), g2(6);
  const auto c = ember::dropout2d(x.reshape({1, 6, 7, 1}), 0.5, true, g1).to_vector();
  CHECK(ember::dropout2d(x.reshape({1, 6, 7, 1}), 0.5, true, g2).to_vector() == c);
  // The default generator is used when none is given.
  ember::manual_seed(7);
  const auto d = ember::dropout(x, 0.4, true).to_vector();
  ember::manual_seed(7);
  CHECK(ember::dropout(x, 0.4, true).to_vector() == d);
}

TEST_CASE("dropout gradients match finite differences with the mask fixed",
          "[ops][dropout][grad]") {
  const TD x = random_tensor<double>({3, 4, 5}, 106);
  const TD x4 = random_tensor<double>({2, 3, 2, 3}, 107);
  const Generator start(8);
  // Each call starts from a copy of the same state, so every evaluation sees the same mask.
  check_gradients(
      [start](const Inputs& in) {
        Generator g = start;
        return ember::dropout(in[0], 0.4, true, g);
      },
      {x});
  check_gradients(
      [start](const Inputs& in) {
        Generator g = start;
        return ember::dropout2d(in[0], 0.5, true, g);
      },
      {x4});
  check_gradients(
      [start](const Inputs& in) {
        Generator g = start;
        return ember::dropout2d(in[0], 0.5, true, g);
      },
      {x});  // (C, H, W)
  // And the mask really is fixed by the state.
  Generator g1 = start, g2 = start;
  CHECK(ember::dropout(x, 0.4, true, g1).to_vector() ==
        ember::dropout(x, 0.4, true, g2).to_vector());
}

TEST_CASE("dropout refuses p outside [0, 1] and bad ranks", "[ops][dropout][error]") {
  const auto x = Tensor<float>::ones({2, 3, 4, 4});
  for (double p : {-0.1, 1.5, std::nan("")}) {
    CAPTURE(p);
    CHECK_THROWS_MATCHES(ember::dropout(x, p, true), ember::Error,
                         ErrorContains({"between 0 and 1"}));
    CHECK_THROWS_AS(ember::dropout(x, p, false), ember::Error);
    CHECK_THROWS_MATCHES(ember::dropout2d(x, p, true), ember::Error,
                         ErrorContains({"between 0 and 1"}));
  }
  CHECK_THROWS_MATCHES(ember::dropout2d(Tensor<float>::ones({4, 4}), 0.5, true), ember::Error,
                       ErrorContains({"dropout2d", "[4, 4]"}));
}
