// bn_fixture_tool WEIGHTS DATA_DIR OUT_DIR: what tests/e2e/bn_fixture_check.py compares with
// onnxruntime. Loads the BatchNorm/AvgPool/GELU fixture model (support/bn_fixture_model.hpp,
// PyTorch's state_dict WEIGHTS), then writes to OUT_DIR:
//   model.onnx             io::export_onnx of the model (batch dimension symbolic)
//   ember.safetensors      test.log_probs (10000, 10): the float model's eval-mode output on the
//                          MNIST test set, in file order; test.labels (10000) and
//                          int8.predicted (10000): the int8 model's argmax, as floats
// The int8 model is quant::quantize's, calibrated on the first 20 batches of 64 training
// images (unshuffled), as examples/mnist_quantize.cpp does. Prints both accuracies.

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "ember/autograd/grad_mode.hpp"
#include "ember/data/dataloader.hpp"
#include "ember/data/mnist.hpp"
#include "ember/io/onnx.hpp"
#include "ember/io/state_dict.hpp"
#include "ember/ops/reduce.hpp"
#include "ember/quant/quantize.hpp"
#include "support/bn_fixture_model.hpp"

namespace {

using namespace ember;

int run(const std::string& weights, const std::string& dir, const std::string& out) {
  set_num_threads(2);
  auto model = test::make_bn_fixture_model();
  io::load(*model, weights, /*strict=*/true);
  model->eval();
  NoGradGuard no_grad;
  io::export_onnx(*model, out + "/model.onnx");

  auto test = data::load_mnist(dir, data::Split::test);
  data::DataLoader loader(data::Subset::all(test), {.batch_size = 1000});
  std::vector<data::Batch> batches;
  for (const data::Batch& b : loader.epoch()) batches.push_back(b);

  auto train = data::load_mnist(dir, data::Split::train);
  data::DataLoader calib(data::Subset::all(train), {.batch_size = 64});
  const quant::QuantizedModel q = quant::quantize(*model, calib, {.batches = 20});

  std::vector<float> log_probs, labels, int8_predicted;
  std::int64_t n = 0, float_correct = 0, int8_correct = 0;
  for (const data::Batch& b : batches) {
    const Tensor<float> y = model->forward(b.images);  // (B, 10)
    const std::vector<float> yv = y.contiguous().to_vector();
    log_probs.insert(log_probs.end(), yv.begin(), yv.end());
    const std::vector<std::int64_t> fp = argmax(y, 1).to_vector();
    const std::vector<std::int64_t> qp = argmax(q.forward(b.images), 1).to_vector();
    const std::vector<std::int64_t> lv = b.labels.to_vector();
    for (std::size_t i = 0; i < lv.size(); ++i) {
      float_correct += fp[i] == lv[i];
      int8_correct += qp[i] == lv[i];
      labels.push_back(static_cast<float>(lv[i]));
      int8_predicted.push_back(static_cast<float>(qp[i]));
    }
    n += static_cast<std::int64_t>(lv.size());
  }
  io::save_state_dict(out + "/ember.safetensors",
                      {{"test.log_probs", Tensor<float>::from_vector(log_probs, {n, 10})},
                       {"test.labels", Tensor<float>::from_vector(labels, {n})},
                       {"int8.predicted", Tensor<float>::from_vector(int8_predicted, {n})}});
  std::printf("float accuracy %.2f%% (%lld/%lld), int8 accuracy %.2f%% (%lld/%lld)\n",
              100.0 * static_cast<double>(float_correct) / static_cast<double>(n),
              static_cast<long long>(float_correct), static_cast<long long>(n),
              100.0 * static_cast<double>(int8_correct) / static_cast<double>(n),
              static_cast<long long>(int8_correct), static_cast<long long>(n));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s WEIGHTS DATA_DIR OUT_DIR\n", argv[0]);
    return 2;
  }
  try {
    return run(argv[1], argv[2], argv[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bn_fixture_tool: %s\n", e.what());
    return 1;
  }
}
