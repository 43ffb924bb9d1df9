// README.md's "Your own model": a BatchNorm CNN trained on Fashion-MNIST with AdamW and a
// one-cycle schedule. scripts/check_doc_samples.sh checks that the README quotes the lines
// between the markers; the Release build compiles this file with the project's -Werror flags
// (it is not run by the tests: ten epochs take minutes).
#include <cstdio>
#include <memory>

// [own_model]
#include <ember/ember.hpp>
using namespace ember;
namespace T = ember::data::transforms;
using std::make_shared;

int main() {
  const auto root = data::FashionMNIST::default_root;  // Debian's dataset-fashion-mnist
  auto norm = T::Normalize({0.2860}, {0.3530});
  data::DataLoader loader(make_shared<data::FashionMNIST>(root, data::Split::train, T::Compose(
      {T::RandomCrop(28, {.padding = 2}), T::RandomHorizontalFlip(), T::ToTensor(), norm})),
      {.batch_size = 128, .shuffle = true, .seed = 1, .num_workers = 2});
  data::DataLoader test(make_shared<data::FashionMNIST>(root, data::Split::test,
      T::Compose({T::ToTensor(), norm})), {.batch_size = 1000});

  nn::Sequential model({
      make_shared<nn::Conv2d>(1, 32, 3, Conv2dOptions{.padding = 1}),
      make_shared<nn::BatchNorm2d>(32), make_shared<nn::ReLU>(), make_shared<nn::MaxPool2d>(2),
      make_shared<nn::Conv2d>(32, 64, 3, Conv2dOptions{.padding = 1}),
      make_shared<nn::BatchNorm2d>(64), make_shared<nn::ReLU>(), make_shared<nn::MaxPool2d>(2),
      make_shared<nn::Flatten>(), make_shared<nn::Linear>(64 * 7 * 7, 10),
      make_shared<nn::LogSoftmax>(1)});
  optim::AdamW opt(optim::decay_groups<optim::AdamWOptions>(  // no decay on biases and BN
      model.named_parameters(), {.lr = 1e-3, .weight_decay = 0.05}));
  const int epochs = 10;
  optim::OneCycleLR sched(opt, {.max_lr = {3e-3}, .epochs = epochs,
                                .steps_per_epoch = loader.num_batches()});
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    model.train();
    for (const data::Batch& b : loader.epoch()) {
      opt.zero_grad();
      nll_loss(model(b.images), b.labels).backward();
      opt.step();
      sched.step();  // OneCycleLR steps per batch
    }
    const nn::EvalResult r = nn::evaluate(model, test);  // eval mode, no autograd
    std::printf("epoch %d: test loss %.4f, accuracy %.2f%%\n", epoch, r.loss, r.accuracy());
  }
  io::save(model, "fashion_cnn.safetensors");  // PyTorch's names: load_state_dict reads it
}
// [own_model]
