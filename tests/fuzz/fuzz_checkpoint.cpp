// libFuzzer harness: training checkpoints (ember/io/checkpoint.hpp) read from safetensors
// bytes and restored into a live run: a narrow MnistNet (conv1 1, conv2 1, hidden 2), SGD with
// momentum 0.9, StepLR(step_size 1, gamma 0.7) and two generators, made afresh per input. A
// checkpoint that restores must leave a run that trains on (one scheduler step, one SGD step)
// and that saves and reads back again.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ember/io/checkpoint.hpp"
#include "ember/models/mnist_net.hpp"
#include "ember/ops/loss.hpp"
#include "ember/optim/sgd.hpp"
#include "fuzz/harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ember;
  Generator gen(7), loader_gen(8);
  models::MnistNet model(models::MnistNetConfig{1, 1, 2}, gen);
  optim::SGD opt(model.parameters(), {.lr = 0.01, .momentum = 0.9});
  optim::StepLR sched(opt, 1, 0.7);
  const io::TrainingState state{.model = &model,
                                .optimizer = &opt,
                                .scheduler = &sched,
                                .generator = &gen,
                                .loader_generator = &loader_gen};
  io::Checkpoint c;
  const bool restored = fuzz::accepts([&] {
    c = io::checkpoint_from_safetensors(
        io::parse_safetensors(fuzz::as_bytes(data, size), "fuzz.safetensors"), "fuzz.safetensors");
    io::restore_checkpoint(c, state);
  });
  (void)fuzz::accepts([&] { io::check_settings(c, {{"seed", "1"}, {"batch-size", "64"}}); });
  if (!restored) return 0;

  // The run goes on: the next epoch's learning rate, one training step.
  sched.step();
  {
    model.train();
    opt.zero_grad();
    const Tensor<float> images = Tensor<float>::zeros({2, 1, 28, 28});
    const Tensor<std::int64_t> labels = Tensor<std::int64_t>::from_list({3, 7});
    Tensor<float> loss = nll_loss(model(images), labels);
    loss.backward();
    opt.step();
  }
  // And saves and reads back: an error here is a finding.
  const io::Checkpoint again = io::capture_checkpoint(state, c.epoch + 1, c.settings);
  const std::vector<std::byte> bytes =
      io::serialize_safetensors(io::checkpoint_to_safetensors(again));
  const io::Checkpoint back =
      io::checkpoint_from_safetensors(io::parse_safetensors(bytes, "again"), "again");
  fuzz::require(back.epoch == c.epoch + 1 && back.settings == c.settings &&
                    back.optimizer.steps == opt.steps(),
                "a saved checkpoint read back differently");
  return 0;
}
