#pragma once
// evaluate(): a classifier's mean negative log-likelihood and accuracy over a DataLoader,
// in eval mode with autograd off. The model must return log-probabilities (N, classes).

#include <cstdint>

#include "ember/autograd/grad_mode.hpp"
#include "ember/data/dataloader.hpp"
#include "ember/data/device_loader.hpp"
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
}  // namespace detail

/// Leaves the model in eval mode. The loader has checked its data (Subset::validate); the
/// model's output is checked here, batch by batch.
inline EvalResult evaluate(Module& model, data::DataLoader& loader) {
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
  }
  r.loss = r.total ? loss_sum / static_cast<double>(r.total) : 0.0;
  return r;
}

/// The same over data that lives on a CUDA device (the model must be there too).
inline EvalResult evaluate(Module& model, data::DeviceDataLoader& loader) {
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
  }
  r.loss = r.total ? loss_sum / static_cast<double>(r.total) : 0.0;
  return r;
}

}  // namespace ember::nn
