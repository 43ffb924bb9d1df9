// End to end on real MNIST: the example's net trained on 2,000 training images for 250
// SGD steps must classify held-out test images well above chance. Needs the data: set
// EMBER_DATA to the folder with the four IDX files (.ci/run does); skipped otherwise.
// The trained model is then quantized to int8 and must keep its accuracy.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <string>

#include "ember/ember.hpp"
#include "ember/quant/quantize.hpp"

using namespace ember;

TEST_CASE("MnistNet learns real MNIST from 2000 images", "[e2e]") {
  const char* dir = std::getenv("EMBER_DATA");
  if (dir == nullptr || *dir == '\0') {
    WARN("SKIPPED: EMBER_DATA is not set, so the end-to-end MNIST test cannot run");
    return;
  }
  set_num_threads(2);
  manual_seed(7);
  Generator split_gen(8);
  auto train = data::load_mnist(dir, data::Split::train);
  auto test = data::load_mnist(dir, data::Split::test);
  REQUIRE(train->size() == 60000);
  REQUIRE(test->size() == 10000);

  auto parts = data::random_split(train, {2000, train->size() - 2000}, split_gen);
  data::Subset test_part = data::Subset::all(test);
  test_part.indices.resize(2000);
  data::DataLoader train_loader(parts[0], {.batch_size = 64, .shuffle = true, .drop_last = true, .seed = 9});
  data::DataLoader test_loader(test_part, {.batch_size = 500});

  models::MnistNet model;
  optim::SGD opt(model.parameters(), {.lr = 0.01, .momentum = 0.9});
  int steps = 0;
  double first_loss = 0, last_loss = 0;
  while (steps < 250) {
    model.train();
    for (const data::Batch& b : train_loader.epoch()) {
      opt.zero_grad();
      Tensor<float> loss = nll_loss(model(b.images), b.labels);
      loss.backward();
      opt.step();
      if (steps == 0) first_loss = loss.item();
      last_loss = loss.item();
      if (++steps == 250) break;
    }
  }
  model.eval();
  NoGradGuard no_grad;
  std::int64_t correct = 0;
  for (const data::Batch& b : test_loader.epoch()) correct += count_correct(model(b.images), b.labels);
  const double accuracy = 100.0 * static_cast<double>(correct) / 2000.0;
  INFO("first loss " << first_loss << ", last loss " << last_loss << ", test accuracy " << accuracy);
  CHECK(first_loss > 2.0);  // ln(10) = 2.30 at the start
  CHECK(last_loss < 0.6);
  // Measured 93.25% with these seeds on 2 threads; 90% leaves a margin for other thread
  // counts and is far above chance (10%) and what a broken backward pass reaches.
  CHECK(accuracy > 90.0);

  // The trained model quantized to int8 (calibrated on 10 training batches) keeps its accuracy.
  data::DataLoader calib(parts[0], {.batch_size = 64});
  const quant::QuantizedModel q = quant::quantize(model, calib, {.batches = 10});
  std::int64_t q_correct = 0;
  for (const data::Batch& b : test_loader.epoch()) q_correct += count_correct(q(b.images), b.labels);
  const double q_accuracy = 100.0 * static_cast<double>(q_correct) / 2000.0;
  INFO("int8 test accuracy " << q_accuracy);
  CHECK(std::abs(q_accuracy - accuracy) <= 1.0);
}
