#pragma once
// The CNN of PyTorch's classic MNIST example, with its parameter names:
//   conv1 Conv2d(1, 32, 3) -> relu -> conv2 Conv2d(32, 64, 3) -> relu -> max_pool2d(2)
//   -> Dropout2d(0.25) -> flatten -> fc1 Linear(9216, 128) -> relu -> Dropout(0.5)
//   -> fc2 Linear(128, 10) -> log_softmax(dim 1)
// Input (N, 1, 28, 28) normalised pixels; output (N, 10) log-probabilities.
// MnistNetConfig narrows the widths (same layers, same names) for small models and tests.

#include <memory>
#include <string>
#include <vector>

#include "ember/nn/layers.hpp"

namespace ember::models {

/// The widths of MnistNet's layers (PyTorch's MNIST example: 32, 64, 128).
struct MnistNetConfig {
  std::int64_t conv1 = 32;    ///< conv1's output channels
  std::int64_t conv2 = 64;    ///< conv2's output channels
  std::int64_t hidden = 128;  ///< fc1's output features
};

/// PyTorch's MNIST example network: conv1 (1->32, 3x3), ReLU, conv2 (->64, 3x3), ReLU, max_pool 2,
/// dropout 0.25, fc1 (9216->128), ReLU, dropout 0.5, fc2 (->10), log_softmax; input (N, 1, 28, 28).
class MnistNet : public nn::Module {
 public:
  /// The default widths; `gen` draws the initial weights.
  explicit MnistNet(Generator& gen = default_generator()) : MnistNet(MnistNetConfig{}, gen) {}
  /// Widths from `c`; `gen` draws the initial weights.
  explicit MnistNet(MnistNetConfig c, Generator& gen = default_generator()) : nn::Module("Net"), config_(c) {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(1, c.conv1, 3, Conv2dOptions{}, true, gen));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(c.conv1, c.conv2, 3, Conv2dOptions{}, true, gen));
    dropout1 = register_module("dropout1", std::make_shared<nn::Dropout2d>(0.25, gen));
    dropout2 = register_module("dropout2", std::make_shared<nn::Dropout>(0.5, gen));
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(c.conv2 * 12 * 12, c.hidden, true, gen));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(c.hidden, 10, true, gen));
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

  /// The widths it was built with.
  [[nodiscard]] const MnistNetConfig& config() const { return config_; }

  /// The convolutions (3x3, stride 1, no padding).
  /// @{
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  /// @}
  /// Dropout 0.25 after the pooling.
  std::shared_ptr<nn::Dropout2d> dropout1;
  /// Dropout 0.5 after fc1.
  std::shared_ptr<nn::Dropout> dropout2;
  /// The hidden and the output layer.
  /// @{
  std::shared_ptr<nn::Linear> fc1, fc2;
  /// @}

 protected:
  /// forward() above, step by step (the functional ops get the names PyTorch's exporter gives).
  [[nodiscard]] std::vector<nn::Step> list_steps(const std::string& prefix) const override {
    using Op = nn::Step::Op;
    std::vector<nn::Step> s;
    auto add = [&](std::vector<nn::Step> more) { s.insert(s.end(), more.begin(), more.end()); };
    add(conv1->steps(prefix + "conv1."));
    s.push_back({.op = Op::relu, .name = prefix + "relu"});
    add(conv2->steps(prefix + "conv2."));
    s.push_back({.op = Op::relu, .name = prefix + "relu_1"});
    s.push_back({.op = Op::max_pool2d, .name = prefix + "max_pool2d", .kernel = 2, .stride = 2});
    add(dropout1->steps(prefix + "dropout1."));
    s.push_back({.op = Op::flatten, .name = prefix + "flatten", .dim = 1});
    add(fc1->steps(prefix + "fc1."));
    s.push_back({.op = Op::relu, .name = prefix + "relu_2"});
    add(dropout2->steps(prefix + "dropout2."));
    add(fc2->steps(prefix + "fc2."));
    s.push_back({.op = Op::log_softmax, .name = prefix + "log_softmax", .dim = 1});
    return s;
  }

 private:
  MnistNetConfig config_;
};

}  // namespace ember::models
