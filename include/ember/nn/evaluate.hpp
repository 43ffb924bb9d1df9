#pragma once
// evaluate(): a classifier's mean negative log-likelihood and accuracy over a DataLoader,
// in eval mode with autograd off. The model must return log-probabilities (N, classes).
// The overloads with a ConfusionMatrix also add every prediction (the argmax, first on ties as
// count_correct's) to it, sizing an empty one from the model's outputs.

#include <algorithm>
#include <cstdint>

#include "ember/autograd/grad_mode.hpp"
#include "ember/data/dataloader.hpp"
#include "ember/data/device_loader.hpp"
#include "ember/nn/confusion_matrix.hpp"
#include "ember/nn/module.hpp"
#include "ember/ops/loss.hpp"
#include "ember/ops/reduce.hpp"

namespace ember::nn {

/// What evaluate() measures: the mean loss and the number of correct predictions.
struct EvalResult {
  double loss = 0;  ///< mean NLL per sample
  /// Samples whose argmax matched the label, and samples seen.
  /// @{
  std::int64_t correct = 0, total = 0;
  /// @}
  /// Percentage correct, 100 * correct / total (0 for no samples).
  [[nodiscard]] double accuracy() const {
    return total ? 100.0 * static_cast<double>(correct) / static_cast<double>(total) : 0.0;
  }
};

namespace detail {
// The model's output for a batch of `count` samples must be log-probabilities (count, classes)
// with the dataset's number of classes (any number when the dataset does not say: 0).
inline void check_scores(const ember::Tensor<float>& out, std::int64_t count,
                         std::int64_t classes) {
  EMBER_CHECK(out.dim() == 2 && out.size(0) == count && (classes <= 0 || out.size(1) == classes),
              "evaluate: the model returned scores of shape ", shape_str(out.shape()),
              " for a batch of ", count, " images; expected [", count, ", ", classes,
              "] (the dataset's num_classes)");
}

// Adds a batch's predictions (the argmax of each row of out (count, classes)) to `confusion`.
inline void add_predictions(const ember::Tensor<float>& out,
                            const ember::Tensor<std::int64_t>& labels, ConfusionMatrix& confusion) {
  const ember::Tensor<float> scores = out.to(Device::cpu()).contiguous();
  const ember::Tensor<std::int64_t> targets = labels.to(Device::cpu()).contiguous();
  const std::int64_t classes = scores.size(1);
  if (confusion.num_classes() == 0) confusion.resize(classes);
  EMBER_CHECK(confusion.num_classes() == classes, "evaluate: the model scores ", classes,
              " classes but the confusion matrix has ", confusion.num_classes());
  for (std::int64_t i = 0; i < scores.size(0); ++i) {
    const float* row = scores.data() + i * classes;
    confusion.add(targets.data()[i], std::max_element(row, row + classes) - row);
  }
}
}  // namespace detail

/// Leaves the model in eval mode. The loader has checked its data (Subset::validate); the
/// model's output is checked here, batch by batch. With `confusion`, every prediction is added
/// to it too.
inline EvalResult evaluate(Module& model, data::DataLoader& loader,
                           ConfusionMatrix* confusion) {
  model.eval();
  NoGradGuard no_grad;
  EvalResult r;
  double loss_sum = 0;
  const Device dev = model.device();  // batches go where the model is
  for (const data::Batch& b : loader.epoch()) {
    const ember::Tensor<std::int64_t> labels = b.labels.to(dev);
    const ember::Tensor<float> out = model(b.images.to(dev));
    detail::check_scores(out, b.labels.size(0), loader.num_classes());
    loss_sum += nll_loss(out, labels, Reduction::sum).item();
    r.correct += count_correct(out, labels);
    r.total += b.labels.size(0);
    if (confusion != nullptr) detail::add_predictions(out, labels, *confusion);
  }
  r.loss = r.total ? loss_sum / static_cast<double>(r.total) : 0.0;
  return r;
}

/// The same over data that lives on a CUDA device (the model must be there too).
inline EvalResult evaluate(Module& model, data::DeviceDataLoader& loader,
                           ConfusionMatrix* confusion) {
  model.eval();
  NoGradGuard no_grad;
  EvalResult r;
  double loss_sum = 0;
  EMBER_CHECK(model.parameters().empty() || model.device() == loader.device(),
              "evaluate: the model is on ", model.device().str(),
              " but the DeviceDataLoader's data is on ", loader.device().str());
  loader.start_epoch();
  for (std::int64_t i = 0; i < loader.num_batches(); ++i) {
    const data::Batch b = loader.batch(i);
    const ember::Tensor<float> out = model(b.images);
    detail::check_scores(out, b.labels.size(0), loader.num_classes());
    loss_sum += nll_loss(out, b.labels, Reduction::sum).item();
    r.correct += count_correct(out, b.labels);
    r.total += b.labels.size(0);
    if (confusion != nullptr) detail::add_predictions(out, b.labels, *confusion);
  }
  r.loss = r.total ? loss_sum / static_cast<double>(r.total) : 0.0;
  return r;
}

/// Mean loss and accuracy over the loader.
inline EvalResult evaluate(Module& model, data::DataLoader& loader) {
  return evaluate(model, loader, nullptr);
}
/// Mean loss and accuracy, each prediction also added to `confusion`.
inline EvalResult evaluate(Module& model, data::DataLoader& loader, ConfusionMatrix& confusion) {
  return evaluate(model, loader, &confusion);
}
/// Mean loss and accuracy over data on a CUDA device.
inline EvalResult evaluate(Module& model, data::DeviceDataLoader& loader) {
  return evaluate(model, loader, nullptr);
}
/// Mean loss and accuracy over data on a CUDA device, each prediction added to `confusion`.
inline EvalResult evaluate(Module& model, data::DeviceDataLoader& loader,
                           ConfusionMatrix& confusion) {
  return evaluate(model, loader, &confusion);
}

}  // namespace ember::nn
