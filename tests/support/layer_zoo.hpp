#pragma once
// A Sequential with every layer that lists steps (tests/nn, tests/io/test_onnx.cpp,
// tests/quant, and scripts/check_onnx_layers.py, which builds the same model in PyTorch):
// input (N, 3, 12, 12), output (N, 5) log-probabilities. Batch norms get random statistics and
// affine parameters, so that folding them changes the weights; three follow a conv2d or linear
// (folded), one follows a pooling (exported as BatchNormalization).

#include <memory>
#include <string>
#include <vector>

#include "ember/autograd/grad_mode.hpp"
#include "ember/core/random.hpp"
#include "ember/nn/layers.hpp"
#include "ember/nn/normalization.hpp"
#include "ember/nn/pooling.hpp"

namespace ember::test {

inline void randomize_batch_norm(nn::BatchNormBase& bn, Generator& gen) {
  NoGradGuard no_grad;
  const std::int64_t c = bn.num_features();
  bn.running_mean.copy_(nn::Tensor::uniform({c}, -0.5, 0.5, gen));
  bn.running_var.copy_(nn::Tensor::uniform({c}, 0.5, 2.0, gen));
  bn.weight.copy_(nn::Tensor::uniform({c}, 0.5, 1.5, gen));
  bn.bias.copy_(nn::Tensor::uniform({c}, -0.3, 0.3, gen));
}

// The layers, in order (printed by PyTorch as the same Sequential; see check_onnx_layers.py):
//   0 Conv2d(3, 6, 3, padding=1)  1 BatchNorm2d(6)  2 GELU()  3 AvgPool2d(3, 2, 1)
//   4 Conv2d(6, 8, 3, padding=1)  5 BatchNorm2d(8)  6 LeakyReLU(0.2)  7 MaxPool2d(3, 1, 1)
//   8 AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)  9 BatchNorm2d(8)  10 ELU(0.7)
//   11 Softmax(1)  12 SiLU()  13 Tanh()  14 AdaptiveAvgPool2d(2)  15 Sigmoid()  16 GELU('tanh')
//   17 AdaptiveAvgPool2d(1)  18 Flatten()  19 Linear(8, 10)  20 BatchNorm1d(10)  21 ReLU()
//   22 Dropout(0.5)  23 Linear(10, 5)  24 LogSoftmax(-1)
// Sizes: 12x12 -> 3: 6x6 -> 8: 4x4 (ceil mode: the last window starts in the last row) ->
// 14: 2x2 -> 17: 1x1.
inline std::shared_ptr<nn::Sequential> every_layer_model(Generator& gen) {
  using namespace nn;
  auto bn0 = std::make_shared<BatchNorm2d>(6), bn1 = std::make_shared<BatchNorm2d>(8),
       bn2 = std::make_shared<BatchNorm2d>(8);
  auto bn3 = std::make_shared<BatchNorm1d>(10);
  for (BatchNormBase* bn : {static_cast<BatchNormBase*>(bn0.get()), static_cast<BatchNormBase*>(bn1.get()),
                            static_cast<BatchNormBase*>(bn2.get()), static_cast<BatchNormBase*>(bn3.get())})
    randomize_batch_norm(*bn, gen);
  auto m = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
      std::make_shared<Conv2d>(3, 6, 3, Conv2dOptions{.padding = 1}, true, gen), bn0,
      std::make_shared<GELU>(), std::make_shared<AvgPool2d>(3, 2, 1),
      std::make_shared<Conv2d>(6, 8, 3, Conv2dOptions{.padding = 1}, true, gen), bn1,
      std::make_shared<LeakyReLU>(0.2), std::make_shared<MaxPool2d>(3, 1, 1),
      std::make_shared<AvgPool2d>(3, 2, 1, true, false), bn2, std::make_shared<ELU>(0.7),
      std::make_shared<Softmax>(1), std::make_shared<SiLU>(), std::make_shared<Tanh>(),
      std::make_shared<AdaptiveAvgPool2d>(2), std::make_shared<Sigmoid>(), std::make_shared<GELU>("tanh"),
      std::make_shared<AdaptiveAvgPool2d>(1), std::make_shared<Flatten>(),
      std::make_shared<Linear>(8, 10, true, gen), bn3, std::make_shared<ReLU>(),
      std::make_shared<Dropout>(0.5, gen), std::make_shared<Linear>(10, 5, true, gen),
      std::make_shared<LogSoftmax>(-1)});
  m->eval();
  return m;
}

}  // namespace ember::test

namespace ember::test {

// A module of one's own built from layers: conv, batch norm, SiLU, listing its children's
// steps in the order its forward runs them (what a user writes to export and quantize it).
class ConvBnSiLU : public nn::Module {
 public:
  ConvBnSiLU(std::int64_t in, std::int64_t out, Generator& gen) : nn::Module("ConvBnSiLU") {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(in, out, 3, Conv2dOptions{.padding = 1}, false, gen));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(out));
    randomize_batch_norm(*bn, gen);
  }
  nn::Tensor forward(const nn::Tensor& x) override { return silu(bn->forward(conv->forward(x))); }

  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;

 protected:
  [[nodiscard]] std::vector<nn::Step> list_steps(const std::string& prefix) const override {
    std::vector<nn::Step> s = conv->steps(prefix + "conv.");
    for (nn::Step& b : bn->steps(prefix + "bn.")) s.push_back(std::move(b));
    s.push_back({.op = nn::Step::Op::silu, .name = prefix + "silu", .layer = this});
    return s;
  }
};

}  // namespace ember::test
