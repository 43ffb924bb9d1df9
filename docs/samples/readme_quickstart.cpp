// README.md's first example: PyTorch's MNIST example, one epoch. scripts/check_doc_samples.sh
// checks that the README quotes the lines between the markers; the Release build compiles
// this file with the project's -Werror flags (it is not run by the tests: it needs MNIST).

// [quickstart]
#include <ember/ember.hpp>
using namespace ember;

int main() {
  manual_seed(1);
  auto train = data::load_mnist("data/mnist", data::Split::train);
  data::DataLoader loader(data::Subset::all(train), {.batch_size = 64, .shuffle = true, .seed = 1});

  models::MnistNet model;                                   // conv1, conv2, fc1, fc2: PyTorch's names
  optim::SGD opt(model.parameters(), {.lr = 0.01, .momentum = 0.5});
  for (const data::Batch& b : loader.epoch()) {
    opt.zero_grad();
    Tensor<float> loss = nll_loss(model(b.images), b.labels);
    loss.backward();
    opt.step();
  }
  io::save(model, "mnist_cnn.safetensors");                 // safetensors.torch.load_file reads it
}
// [quickstart]
