#pragma once
// The CNN of PyTorch's classic MNIST example, with its parameter names:
//   conv1 Conv2d(1, 32, 3) -> relu -> conv2 Conv2d(32, 64, 3) -> relu -> max_pool2d(2)
//   -> Dropout2d(0.25) -> flatten -> fc1 Linear(9216, 128) -> relu -> Dropout(0.5)
//   -> fc2 Linear(128, 10) -> log_softmax(dim 1)
// Input (N, 1, 28, 28) normalised pixels; output (N, 10) log-probabilities.

#include <memory>

#include "ember/nn/layers.hpp"

namespace ember::models {

class MnistNet : public nn::Module {
 public:
  explicit MnistNet(Generator& gen = default_generator()) : nn::Module("Net") {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(1, 32, 3, Conv2dOptions{}, true, gen));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(32, 64, 3, Conv2dOptions{}, true, gen));
    dropout1 = register_module("dropout1", std::make_shared<nn::Dropout2d>(0.25, gen));
    dropout2 = register_module("dropout2", std::make_shared<nn::Dropout>(0.5, gen));
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(9216, 128, true, gen));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(128, 10, true, gen));
  }

  nn::Tensor forward(const nn::Tensor& input) override {
    nn::Tensor x = relu(conv1->forward(input));  // (N, 32, 26, 26)
    x = relu(conv2->forward(x));                 // (N, 64, 24, 24)
    x = max_pool2d(x, 2);                        // (N, 64, 12, 12)
    x = dropout1->forward(x);
    x = x.flatten(1);                            // (N, 9216)
    x = relu(fc1->forward(x));                   // (N, 128)
    x = dropout2->forward(x);
    x = fc2->forward(x);                         // (N, 10)
    return log_softmax(x, 1);
  }

  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::Dropout2d> dropout1;
  std::shared_ptr<nn::Dropout> dropout2;
  std::shared_ptr<nn::Linear> fc1, fc2;
};

}  // namespace ember::models
