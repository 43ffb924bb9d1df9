#pragma once
// ConfusionMatrix: counts of (true class, predicted class) pairs for a classifier, as
// sklearn.metrics.confusion_matrix lays them out: row = true class, column = predicted class.
// Its trace is the number of correct predictions; a row's sum is the number of samples of that
// class, and the diagonal over it is the class's accuracy (its recall).

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ember/core/error.hpp"

namespace ember::nn {

/// Counts of (true class, predicted class) pairs: rows are true classes, columns predictions.
class ConfusionMatrix {
 public:
  /// An empty matrix; evaluate() sizes it from the model's outputs on first use.
  ConfusionMatrix() = default;
  /// A num_classes x num_classes matrix of zeros.
  explicit ConfusionMatrix(std::int64_t num_classes) { resize(num_classes); }

  /// Sets the number of classes and clears every count.
  void resize(std::int64_t num_classes) {
    EMBER_CHECK(num_classes > 0 && num_classes <= 100'000,
                "ConfusionMatrix: the number of classes must be in [1, 100000], got ",
                num_classes);
    classes_ = num_classes;
    counts_.assign(static_cast<std::size_t>(num_classes * num_classes), 0);
  }
  /// Adds one sample of class `target` predicted as `predicted`.
  void add(std::int64_t target, std::int64_t predicted) {
    EMBER_CHECK(target >= 0 && target < classes_ && predicted >= 0 && predicted < classes_,
                "ConfusionMatrix::add: class ", target, " predicted as ", predicted,
                " is outside the matrix's ", classes_, " classes");
    ++counts_[index(target, predicted)];
  }

  /// The number of classes (0 before the matrix is sized).
  [[nodiscard]] std::int64_t num_classes() const { return classes_; }
  /// Samples of class `target` predicted as `predicted`.
  [[nodiscard]] std::int64_t operator()(std::int64_t target, std::int64_t predicted) const {
    EMBER_CHECK(target >= 0 && target < classes_ && predicted >= 0 && predicted < classes_,
                "ConfusionMatrix: (", target, ", ", predicted, ") is outside the matrix's ",
                classes_, " classes");
    return counts_[index(target, predicted)];
  }
  /// Every count, row by row (row = true class).
  [[nodiscard]] const std::vector<std::int64_t>& counts() const { return counts_; }
  /// All samples counted.
  [[nodiscard]] std::int64_t total() const {
    std::int64_t n = 0;
    for (const std::int64_t c : counts_) n += c;
    return n;
  }
  /// Correct predictions: the trace.
  [[nodiscard]] std::int64_t correct() const {
    std::int64_t n = 0;
    for (std::int64_t k = 0; k < classes_; ++k) n += counts_[index(k, k)];
    return n;
  }
  /// Samples whose true class is `target`: the row's sum.
  [[nodiscard]] std::int64_t class_total(std::int64_t target) const {
    std::int64_t n = 0;
    for (std::int64_t p = 0; p < classes_; ++p) n += (*this)(target, p);
    return n;
  }
  /// Accuracy over all samples, in percent (0 when empty).
  [[nodiscard]] double accuracy() const { return percent(correct(), total()); }
  /// Accuracy on the samples of class `target` (its recall), in percent (0 when it has none).
  [[nodiscard]] double class_accuracy(std::int64_t target) const {
    return percent((*this)(target, target), class_total(target));
  }

 private:
  [[nodiscard]] std::size_t index(std::int64_t target, std::int64_t predicted) const {
    return static_cast<std::size_t>(target * classes_ + predicted);
  }
  static double percent(std::int64_t part, std::int64_t whole) {
    return whole > 0 ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0;
  }

  std::int64_t classes_ = 0;
  std::vector<std::int64_t> counts_;
};

}  // namespace ember::nn
