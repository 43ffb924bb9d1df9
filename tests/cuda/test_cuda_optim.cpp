// Adam, AdamW, RMSprop and SGD (maximize, two groups) stepping parameters on the device (the
// fused kernels kernels/adam.cuh, rmsprop.cuh and sgd.cuh, through backend::run) against the
// same optimizers on the CPU (backend/cpu/), for each option that changes the rule, with
// tensors of odd sizes in one launch, more tensors than one launch's list holds, and a parameter
// without a gradient in one step. Runs on the CPU execution harness (test_cuda_ops_emu) and on a
// GPU (test_cuda_ops). Gradient clipping on the device against the CPU.
//
// Exactness: the kernels round every operation on its own; the CPU loop may be contracted into
// fused multiply-adds by the host compiler (ember's default flags), so elements may differ by a
// few float ulps per step, and that is what the comparison allows. Where the host does not
// contract, every element is bit-identical.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "ember/core/device.hpp"
#include "ember/core/tensor.hpp"
#include "ember/nn/clip_grad.hpp"
#include "ember/optim/adam.hpp"
#include "ember/optim/rmsprop.hpp"
#include "ember/optim/sgd.hpp"

namespace {

using ember::Device;
using ember::Shape;
using ember::Tensor;
namespace optim = ember::optim;

const Device kDevice = Device::cuda(0);

constexpr bool host_may_fuse =
#if defined(__clang__) || (defined(__FP_FAST_FMAF) && !defined(__STRICT_ANSI__))
    true;
#else
    false;
#endif

// The sizes stepped together: odd sizes, and 36 tensors in all (more than the 32 one launch's
// list holds).
std::vector<Shape> shapes() {
  std::vector<Shape> s = {{7}, {33, 65}, {4, 3, 3, 3}, {2049}, {1}};
  for (int i = 0; i < 31; ++i) s.push_back({i % 5 + 1});
  return s;
}

Tensor<float> uniform(const Shape& s, std::uint64_t seed, double lo, double hi) {
  ember::Generator gen(seed);
  return Tensor<float>::uniform(s, lo, hi, gen);
}

// Steps a CPU and a device optimizer made by make(params) four times with the same gradients
// and compares parameters and every state tensor after each step.
template <class Make>
void check_agreement(const std::string& what, Make make) {
  INFO(what);
  const std::vector<Shape> ss = shapes();
  std::vector<Tensor<float>> pc, pg;
  std::uint64_t seed = 7100;
  for (const Shape& s : ss) {
    const Tensor<float> p = uniform(s, ++seed, -1, 1);
    pc.push_back(p.clone().detach().requires_grad_(true));
    pg.push_back(p.to(kDevice).detach().requires_grad_(true));
  }
  auto opt_c = make(pc), opt_g = make(pg);
  std::int64_t compared = 0, identical = 0;
  for (int step = 0; step < 4; ++step) {
    for (std::size_t i = 0; i < ss.size(); ++i) {
      if (i == 2 && step == 1) {  // no gradient: skipped, its step count falls behind
        pc[i].set_grad(Tensor<float>());
        pg[i].set_grad(Tensor<float>());
        continue;
      }
      const Tensor<float> g = uniform(ss[i], ++seed, -2, 2);
      pc[i].set_grad(g);
      pg[i].set_grad(g.to(kDevice));
    }
    opt_c->step();
    opt_g->step();
    const optim::OptimizerState sc = opt_c->state_dict(), sg = opt_g->state_dict();
    for (std::size_t i = 0; i < ss.size(); ++i) {
      INFO("step " << step << ", parameter " << i);
      std::vector<std::pair<std::string, std::pair<Tensor<float>, Tensor<float>>>> pairs = {
          {"param", {pc[i].detach(), pg[i].detach().to(Device::cpu())}}};
      REQUIRE(sc.state[i].size() == sg.state[i].size());
      for (const auto& [key, t] : sc.state[i]) pairs.push_back({key, {t, sg.state[i].at(key)}});
      for (const auto& [key, ts] : pairs) {
        const std::vector<float> want = ts.first.to_vector(), got = ts.second.to_vector();
        REQUIRE(want.size() == got.size());
        std::int64_t bad = 0;
        for (std::size_t k = 0; k < want.size(); ++k) {
          ++compared;
          identical += got[k] == want[k] ? 1 : 0;
          const float tol = 16 * std::numeric_limits<float>::epsilon() * (1 + std::abs(want[k]));
          if (!(std::abs(got[k] - want[k]) <= tol)) ++bad;
        }
        INFO(key << ": " << bad << " elements apart");
        CHECK(bad == 0);
      }
    }
  }
  INFO("bit-identical to the CPU loop: " << identical << " of " << compared << " elements");
  if (host_may_fuse)
    CHECK(identical > 0);
  else
    CHECK(identical == compared);
}

}  // namespace

TEST_CASE("cuda optim: Adam and AdamW steps on the device match the CPU", "[cuda][optim]") {
  struct Case {
    const char* name;
    optim::AdamOptions o;
  };
  const std::vector<Case> adam = {
      {"defaults", {}},
      {"lr, betas (lerp's second form), eps", {.lr = 0.05, .betas = {0.3, 0.99}, .eps = 1e-3}},
      {"L2 weight decay, maximize", {.lr = 0.01, .weight_decay = 0.1, .maximize = true}},
      {"amsgrad", {.lr = 0.01, .amsgrad = true}},
      {"decoupled weight decay", {.lr = 0.01, .weight_decay = 0.1, .decoupled_weight_decay = true}},
  };
  for (const Case& c : adam) {
    check_agreement(std::string("Adam ") + c.name, [&](std::vector<Tensor<float>> p) {
      return std::make_unique<optim::Adam>(std::move(p), c.o);
    });
  }
  check_agreement("AdamW, amsgrad, weight decay 0.1", [](std::vector<Tensor<float>> p) {
    return std::make_unique<optim::AdamW>(
        std::move(p), optim::AdamWOptions{.lr = 0.01, .weight_decay = 0.1, .amsgrad = true});
  });
}

TEST_CASE("cuda optim: RMSprop steps on the device match the CPU", "[cuda][optim]") {
  struct Case {
    const char* name;
    optim::RMSpropOptions o;
  };
  const std::vector<Case> cases = {
      {"defaults", {}},
      {"alpha 0.3 (lerp's second form), centered", {.alpha = 0.3, .centered = true}},
      {"momentum, weight decay", {.lr = 0.01, .weight_decay = 0.1, .momentum = 0.9}},
      {"centered, momentum, maximize, eps",
       {.lr = 0.01, .eps = 1e-3, .momentum = 0.5, .centered = true, .maximize = true}},
  };
  for (const Case& c : cases) {
    check_agreement(std::string("RMSprop ") + c.name, [&](std::vector<Tensor<float>> p) {
      return std::make_unique<optim::RMSprop>(std::move(p), c.o);
    });
  }
}

TEST_CASE("cuda optim: SGD with maximize and two groups matches the CPU", "[cuda][optim]") {
  check_agreement(
      "SGD maximize, nesterov, weight decay; a group without momentum",
      [](std::vector<Tensor<float>> p) {
        std::vector<Tensor<float>> rest(p.begin() + 3, p.end());
        p.resize(3);
        using Groups = std::vector<optim::ParamGroup<optim::SGDOptions>>;
        return std::make_unique<optim::SGD>(Groups{{p,
                                                    {.lr = 0.05,
                                                     .momentum = 0.9,
                                                     .weight_decay = 0.01,
                                                     .nesterov = true,
                                                     .maximize = true}},
                                                   {rest, {.lr = 0.1, .maximize = true}}});
      });
}

TEST_CASE("cuda optim: clip_grad_norm_ and clip_grad_value_ on the device match the CPU",
          "[cuda][optim]") {
  const std::vector<Shape> ss = {{7}, {33, 65}, {1}};
  for (const double norm_type : {2.0, 1.0, 3.0, std::numeric_limits<double>::infinity()}) {
    INFO("norm_type " << norm_type);
    std::vector<Tensor<float>> pc, pg;
    std::uint64_t seed = 9100;
    for (const Shape& s : ss) {
      const Tensor<float> g = uniform(s, ++seed, -2, 2);
      pc.push_back(Tensor<float>::zeros(s).requires_grad_(true));
      pg.push_back(Tensor<float>::zeros(s, kDevice).requires_grad_(true));
      pc.back().set_grad(g);
      pg.back().set_grad(g.to(kDevice));
    }
    const double total_c = ember::nn::utils::clip_grad_norm_(pc, 0.5, norm_type);
    const double total_g = ember::nn::utils::clip_grad_norm_(pg, 0.5, norm_type);
    CHECK(total_g == total_c);
    for (std::size_t i = 0; i < ss.size(); ++i)
      CHECK(pg[i].grad().to(Device::cpu()).to_vector() == pc[i].grad().to_vector());
    ember::nn::utils::clip_grad_value_(pc, 0.01);
    ember::nn::utils::clip_grad_value_(pg, 0.01);
    for (std::size_t i = 0; i < ss.size(); ++i)
      CHECK(pg[i].grad().to(Device::cpu()).to_vector() == pc[i].grad().to_vector());
  }
}
