// kernels/sgd.cuh: the fused multi-tensor SGD step against ember::optim::SGD on CPU tensors over
// several steps, for plain SGD, momentum (first step and later ones), dampening, weight decay and
// Nesterov; tensors of odd sizes in one launch, every block size, poisoned momentum buffers
// before the first step.
//
// Exactness: the kernel rounds every product and sum on its own, which is the CPU loop's
// arithmetic when the host compiler does not contract a * b + c into a fused multiply-add.
// Where it may (g++ in GNU mode on an FMA target, e.g. ember's default CMake flags
// -std=gnu++20 -march=native; clang), each element may differ by a few float ulps, and that is
// what the comparison allows; where it cannot, every element must be bit-identical.
#include "support/kernel_test.hpp"

#include <catch2/catch.hpp>

#include <ember/kernels/sgd.cuh>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/optim/sgd.hpp"

namespace {

namespace ek = ember::kernels;
using ember::Tensor;
using ember::ktest::Buffer;
using ember::optim::SGD;
using ember::optim::SGDOptions;
using I64 = std::int64_t;

struct Config {
  const char* name;
  SGDOptions options;
};

const std::vector<Config>& configs() {
  static const std::vector<Config> c{
      {"plain", {0.1, 0.0, 0.0, 0.0, false}},
      {"weight decay", {0.05, 0.0, 0.0, 0.05, false}},
      {"momentum", {0.05, 0.9, 0.0, 0.0, false}},
      {"momentum, dampening, weight decay", {0.03, 0.9, 0.1, 1e-2, false}},
      {"half dampening", {0.2, 0.5, 0.5, 0.0, false}},
      {"nesterov, weight decay", {0.05, 0.9, 0.0, 1e-3, true}},
  };
  return c;
}

// The sizes stepped together in one launch. On a GPU a tensor larger than 1024 blocks of 32
// threads also exercises the grid-stride loop; on the harness (one fiber per GPU thread) the
// sizes stay small.
std::vector<I64> sizes() {
  std::vector<I64> s{1, 7, 33, 1000, 257};
  if (ember::ktest::on_gpu) s.push_back(40000);
  return s;
}

// Whether the host compiler may fuse a * b + c in SGD::step: g++ contracts by default in GNU
// mode (not with -std=c++20) and only on a target with FMA instructions; clang contracts
// within expressions.
constexpr bool host_may_fuse =
#if defined(__clang__) || (defined(__FP_FAST_FMAF) && !defined(__STRICT_ANSI__))
    true;
#else
    false;
#endif

// a within a few float ulps of b. The values stay of order 1 (parameters in [-1, 1], gradients
// in [-2, 2], momentum buffers up to about 10): a fused multiply-add moves a result by about
// one ulp of the larger term per operation.
bool close(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return false;
  return std::abs(a - b) <= 8 * std::numeric_limits<float>::epsilon() * (1.0f + std::abs(b));
}

}  // namespace

TEST_CASE("sgd_step matches ember::optim::SGD over several steps", "[kernels][sgd]") {
  const std::vector<I64> ns = sizes();
  const int steps = 4;
  I64 compared = 0, identical = 0;
  for (const Config& cfg : configs()) {
    for (const int threads : ember::ktest::block_sizes()) {
      for (const bool by_value : {false, true}) {  // a device array, or an SgdTensorList by value
        CAPTURE(cfg.name, threads, by_value);
        const bool use_momentum = cfg.options.momentum != 0;
        // CPU side
        std::vector<Tensor<float>> params;
        for (std::size_t k = 0; k < ns.size(); ++k) {
          Tensor<float> p = Tensor<float>::from_vector(
              ember::ktest::random_vector<float>(static_cast<std::size_t>(ns[k]), 100 + k, -1, 1));
          p.requires_grad_(true);
          params.push_back(p);
        }
        SGD opt(params, cfg.options);
        // GPU side: the same initial values; momentum buffers poisoned (the first step writes them)
        std::vector<std::unique_ptr<Buffer<float>>> dparam, dmom;
        for (std::size_t k = 0; k < ns.size(); ++k) {
          dparam.push_back(std::make_unique<Buffer<float>>(params[k].detach().to_vector()));
          dmom.push_back(std::make_unique<Buffer<float>>(static_cast<std::size_t>(ns[k])));
        }
        // The kernel's arguments, converted from the options as SGD::step converts them.
        ek::SgdArgs args;
        args.lr = static_cast<float>(cfg.options.lr);
        args.momentum = static_cast<float>(cfg.options.momentum);
        args.dampening_factor = static_cast<float>(1.0 - cfg.options.dampening);
        args.weight_decay = static_cast<float>(cfg.options.weight_decay);
        args.nesterov = cfg.options.nesterov;

        for (int step = 0; step < steps; ++step) {
          CAPTURE(step);
          std::vector<std::unique_ptr<Buffer<float>>> dgrad;
          std::vector<ek::SgdTensor> tensors;
          I64 max_n = 0;
          for (std::size_t k = 0; k < ns.size(); ++k) {
            const auto g = ember::ktest::random_vector<float>(
                static_cast<std::size_t>(ns[k]), 1000 * static_cast<std::uint64_t>(step) + k, -2,
                2);
            params[k].set_grad(Tensor<float>::from_vector(g));
            dgrad.push_back(std::make_unique<Buffer<float>>(g));
            tensors.push_back({dparam[k]->data(), dgrad[k]->data(),
                               use_momentum ? dmom[k]->data() : nullptr, ns[k]});
            max_n = std::max(max_n, ns[k]);
          }
          opt.step();
          args.first_step = step == 0;
          if (by_value) {
            ek::SgdTensorList list{};
            list.count = static_cast<int>(tensors.size());
            for (std::size_t k = 0; k < tensors.size(); ++k) list.t[k] = tensors[k];
            ek::sgd_step(list, max_n, args, nullptr, threads);
          } else {
            const Buffer<ek::SgdTensor> dtensors(tensors);
            ek::sgd_step(dtensors.data(), static_cast<int>(tensors.size()), max_n, args, nullptr,
                         threads);
          }

          for (std::size_t k = 0; k < ns.size(); ++k) {
            CAPTURE(ns[k]);
            const std::vector<float> want_p = params[k].detach().to_vector(),
                                     got_p = dparam[k]->host();
            const std::vector<float> want_b =
                use_momentum ? opt.momentum_buffers()[k].to_vector() : std::vector<float>{};
            const std::vector<float> got_b = use_momentum ? dmom[k]->host() : std::vector<float>{};
            I64 bad = 0;
            std::size_t first = 0;
            for (std::size_t i = 0; i < want_p.size(); ++i) {
              bool ok = close(got_p[i], want_p[i]);
              if (use_momentum) ok = ok && close(got_b[i], want_b[i]);
              ++compared;
              identical +=
                  (got_p[i] == want_p[i] && (!use_momentum || got_b[i] == want_b[i])) ? 1 : 0;
              if (!ok && bad++ == 0) first = i;
            }
            INFO("first mismatch at " << first << ": param " << got_p[first] << " vs "
                                      << want_p[first]);
            CHECK(bad == 0);
          }
        }
      }
    }
  }
  INFO("bit-identical to the CPU loop: " << identical << " of " << compared << " elements");
  if (host_may_fuse)
    CHECK(identical > 0);
  else
    CHECK(identical == compared);
}

TEST_CASE("sgd_step: empty launches and argument checks", "[kernels][sgd]") {
  Buffer<float> p(std::vector<float>{1.0f}), g(std::vector<float>{0.5f});
  const Buffer<ek::SgdTensor> t(std::vector<ek::SgdTensor>{{p.data(), g.data(), nullptr, 1}});
  ek::SgdArgs args;
  args.lr = 0.1f;
  ek::sgd_step(t.data(), 0, 1, args, nullptr);
  ek::sgd_step(t.data(), 1, 0, args, nullptr);
  CHECK(p.host()[0] == 1.0f);
  ek::sgd_step(t.data(), 1, 1, args, nullptr);
  CHECK(p.host()[0] == 1.0f - 0.1f * 0.5f);
  CHECK_THROWS_AS(ek::sgd_step(t.data(), 70000, 1, args, nullptr), ember::Error);
  // The by-value list: at most kSgdMaxTensors; empty lists launch nothing.
  ek::SgdTensorList list{};
  list.t[0] = {p.data(), g.data(), nullptr, 1};
  ek::sgd_step(list, 1, args, nullptr);  // count 0
  CHECK(p.host()[0] == 1.0f - 0.1f * 0.5f);
  list.count = 1;
  ek::sgd_step(list, 1, args, nullptr);
  CHECK(p.host()[0] == (1.0f - 0.1f * 0.5f) - 0.1f * 0.5f);
  list.count = ek::kSgdMaxTensors + 1;
  CHECK_THROWS_AS(ek::sgd_step(list, 1, args, nullptr), ember::Error);
}
