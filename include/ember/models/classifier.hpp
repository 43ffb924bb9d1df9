#pragma once
// A model file made ready to classify MNIST digits, whichever way its weights are stored:
// MnistNet's float32 state_dict (written by mnist_train) or an int8 model (written by
// mnist_quantize), told apart by the file's "format" metadata. Used by mnist_infer and by the
// inference server (serve/), so that both run the very same forward on the same file.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ember/autograd/grad_mode.hpp"
#include "ember/data/normalize.hpp"
#include "ember/io/safetensors.hpp"
#include "ember/io/state_dict.hpp"
#include "ember/models/mnist_net.hpp"
#include "ember/quant/serialize.hpp"

namespace ember::models {

/// A model ready to classify: `forward` takes a normalised batch (N, 1, 28, 28) and returns
/// log-probabilities (N, 10). `forward` may be called from several threads at once.
struct Classifier {
  std::string format;                      ///< how the weights are stored: "float32" or "int8"
  data::PixelNormalization normalization;  ///< what training applied to the pixels
  std::function<Tensor<float>(const Tensor<float>&)> forward;  ///< (N,1,28,28) -> (N,10)
};

/// The one place that turns a model file into a Classifier: MnistNet's float32 state_dict, or
/// an int8 model, told apart by the file's "format" metadata. Both take pixels normalised as
/// in training, (pixel / 255 - 0.5) / 0.5. Throws ember::Error naming the file.
[[nodiscard]] inline Classifier load_classifier(const std::string& path) {
  const io::SafetensorsFile file = io::load_safetensors(path);
  if (quant::is_quantized(file)) {
    auto q = std::make_shared<const quant::QuantizedModel>(quant::from_safetensors(file, path));
    EMBER_CHECK(q->input_shape() == std::vector<std::int64_t>({1, 28, 28}), "'", path,
                "': the int8 model takes ", shape_str(q->input_shape()),
                " samples, not MNIST's [1, 28, 28]");
    auto forward = [q](const Tensor<float>& x) { return q->forward(x); };
    return {"int8", data::PixelNormalization::from(0.5f, 0.5f), forward};
  }
  auto model = std::make_shared<MnistNet>();
  io::load(*model, path);
  model->eval();
  auto forward = [model](const Tensor<float>& x) {
    NoGradGuard no_grad;
    return (*model)(x);
  };
  return {"float32", data::PixelNormalization::from(0.5f, 0.5f), forward};
}

}  // namespace ember::models
