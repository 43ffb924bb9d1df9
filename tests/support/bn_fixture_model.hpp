#pragma once
// The model of tests/golden/bn_fixture_*.safetensors (made by tests/golden/make_bn_fixture.py)
// in ember: the same nn.Sequential, layer for layer, so PyTorch's state_dict names ("0.weight",
// "1.running_mean", "1.num_batches_tracked", ...) are ember's. Used by tests/io/
// test_bn_fixture.cpp and the end-to-end tool tests/e2e/bn_fixture_tool.cpp.

#include <memory>
#include <string>

#include "ember/nn/layers.hpp"
#include "ember/nn/normalization.hpp"
#include "ember/nn/pooling.hpp"

namespace ember::test {

inline const std::string bn_fixture_weights = "bn_fixture_weights.safetensors";
inline const std::string bn_fixture_io = "bn_fixture_io.safetensors";

// (N, 1, 28, 28) -> (N, 10) log-probabilities; the weights are PyTorch's default initialisation
// until a state_dict is loaded.
inline std::shared_ptr<nn::Sequential> make_bn_fixture_model() {
  using std::make_shared;
  const Conv2dOptions same{.padding = 1};
  auto m = make_shared<nn::Sequential>();
  m->push_back(make_shared<nn::Conv2d>(1, 16, 3, same));  // (N,16,28,28)
  m->push_back(make_shared<nn::BatchNorm2d>(16));
  m->push_back(make_shared<nn::GELU>());
  m->push_back(make_shared<nn::AvgPool2d>(2));             // (N,16,14,14)
  m->push_back(make_shared<nn::Conv2d>(16, 32, 3, same));  // (N,32,14,14)
  m->push_back(make_shared<nn::BatchNorm2d>(32));
  m->push_back(make_shared<nn::GELU>());
  m->push_back(make_shared<nn::AvgPool2d>(2));             // (N,32,7,7)
  m->push_back(make_shared<nn::Conv2d>(32, 32, 3, same));  // (N,32,7,7)
  m->push_back(make_shared<nn::BatchNorm2d>(32));
  m->push_back(make_shared<nn::GELU>("tanh"));
  m->push_back(make_shared<nn::AdaptiveAvgPool2d>(Size2{1, 1}));  // (N,32,1,1)
  m->push_back(make_shared<nn::Flatten>());                       // (N,32)
  m->push_back(make_shared<nn::Linear>(32, 10));
  m->push_back(make_shared<nn::LogSoftmax>(1));  // (N,10)
  return m;
}

}  // namespace ember::test
