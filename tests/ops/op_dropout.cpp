// dropout and dropout2d (ops/dropout.hpp; the mask from the CPU kernel in backend/cpu/dropout.hpp
// or the CUDA one in kernels/): every device draws the CPU's mask from the same Philox stream,
// exactly, forward and backward; finite-difference gradients in double for a fixed mask; the
// masks are not trivial; evaluation mode and the edge probabilities (support/op_case.hpp).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/dropout.hpp"

#include "support/inputs.hpp"
#include "support/op_case.hpp"

namespace {

using ember::Device;
using ember::Generator;
using ember::Shape;
using ember::Tensor;
using ember::test::random_tensor;

struct DropoutCase {
  Shape s;
  bool two_d;
};

}  // namespace

TEMPLATE_TEST_CASE("dropout and dropout2d draw the CPU's mask on every device", "[op][dropout]", float, double) {
  using T = TestType;
  const std::vector<DropoutCase> cases = {{{7}, false},           {{33, 65}, false},     {{4, 5, 6}, false},
                                          {{100003}, false},      {{2, 3, 4, 5}, true},  {{3, 4, 5}, true},
                                          {{8, 64, 12, 12}, true}, {{1, 1, 1, 1}, true}, {{16, 128}, false}};
  const auto devices = ember::test::op_devices();
  for (std::size_t k = 1; k < devices.size(); ++k) {
    const Device dev = devices[k];
    std::uint64_t seed = 2100;
    // 0.5 and 0.25 are exact in float; 0.1, 0.3 and 0.9 are not, so they also check that the
    // device uses the CPU's keep scale, static_cast<T>(1.0 / (1.0 - p)) with p in double (e.g.
    // p = 0.9: 10.0f), and not one recomputed from float(p) (9.999998f).
    for (const DropoutCase& c : cases) {
      for (double p : {0.5, 0.25, 0.1, 0.3, 0.9}) {
        for (std::uint64_t offset : {std::uint64_t{0}, std::uint64_t{12345}}) {
          INFO("on " << dev.str() << ", shape " << ember::shape_str(c.s) << (c.two_d ? ", dropout2d" : ", dropout")
                     << ", p " << p << ", generator offset " << offset);
          const Tensor<T> x = random_tensor<T>(c.s, ++seed);
          const std::uint64_t gen_seed = ++seed;
          Generator gc(gen_seed), gd(gen_seed);
          gc.set_offset(offset);
          gd.set_offset(offset);
          const bool two_d = c.two_d;
          Tensor<T> xc = x.clone().detach().requires_grad_(true);
          Tensor<T> xd = x.to(dev).detach().requires_grad_(true);
          const Tensor<T> yc = two_d ? ember::dropout2d(xc, p, true, gc) : ember::dropout(xc, p, true, gc);
          const Tensor<T> yd = two_d ? ember::dropout2d(xd, p, true, gd) : ember::dropout(xd, p, true, gd);
          ember::test::check_on_device(yd, yc, dev, 0.0, "dropout output");
          REQUIRE(gd.offset() == gc.offset());
          const Tensor<T> gy = random_tensor<T>(c.s, ++seed);
          yc.backward(gy);
          yd.backward(gy.to(dev));
          ember::test::check_on_device(xd.grad(), xc.grad(), dev, 0.0, "dropout gradient");
          // A second draw from the advanced generators: still in step.
          ember::test::check_on_device(ember::dropout(x.to(dev), p, true, gd), ember::dropout(x, p, true, gc), dev,
                                       0.0, "second dropout draw");
        }
      }
    }
  }
}

TEMPLATE_TEST_CASE("dropout masks are not trivial; evaluation mode and p = 0, 1 on every device", "[op][dropout]",
                   float, double) {
  using T = TestType;
  for (const Device dev : ember::test::op_devices()) {
    INFO("on " << dev.str());
    // p = 0.5 over 100003 elements keeps about half, each scaled by 2.
    {
      Generator g(77);
      const auto y = ember::dropout(Tensor<T>::ones({100003}, dev), 0.5, true, g).to_vector();
      const auto kept = std::count_if(y.begin(), y.end(), [](T v) { return v != T(0); });
      REQUIRE(kept > 49000);
      REQUIRE(kept < 51000);
      REQUIRE(std::all_of(y.begin(), y.end(), [](T v) { return v == T(0) || v == T(2); }));
    }
    // Evaluation mode returns the input itself and draws nothing; p = 0 keeps, p = 1 zeroes.
    {
      const Tensor<T> x = random_tensor<T>({6, 7}, 2190);
      const Tensor<T> xd = x.to(dev);
      Generator g(5);
      REQUIRE(ember::dropout(xd, 0.5, false, g).shares_storage(xd));
      REQUIRE(ember::dropout2d(xd.reshape({1, 6, 7}), 0.5, false, g).shares_storage(xd));
      REQUIRE(g.offset() == 0);
      ember::test::check_on_device(ember::dropout(xd, 0.0, true, g), x, dev, 0.0, "dropout p = 0");
      ember::test::check_on_device(ember::dropout(xd, 1.0, true, g), Tensor<T>::zeros({6, 7}), dev, 0.0,
                                   "dropout p = 1");
    }
  }
}

TEST_CASE("dropout and dropout2d gradients match finite differences for a fixed mask", "[op][dropout]") {
  // Each evaluation draws from a fresh generator with the same seed: the same mask every time,
  // so the op is linear in x and its gradient is the mask times the keep scale.
  for (double p : {0.3, 0.5}) {
    INFO("p " << p);
    ember::test::check_gradients_cpu(
        [p](const std::vector<Tensor<double>>& v) {
          Generator g(2150);
          return ember::dropout(v[0], p, true, g);
        },
        {random_tensor<double>({5, 7}, 2151)}, "dropout");
    ember::test::check_gradients_cpu(
        [p](const std::vector<Tensor<double>>& v) {
          Generator g(2152);
          return ember::dropout2d(v[0], p, true, g);
        },
        {random_tensor<double>({2, 4, 3, 3}, 2153)}, "dropout2d");
  }
}
