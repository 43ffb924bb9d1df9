// Trains a tiny classifier with the installed ember and checks that it learned, that its int8
// version (built without -march=native: the int8 kernels pick the CPU's instructions at run
// time) predicts the same, and that ember::png links: exits 0 and prints "consumer: ok".
#include <ember/data/png.hpp>
#include <ember/ember.hpp>

#include <cstdio>
#include <string>

int main() {
  using namespace ember;
  manual_seed(0);
  // Two Gaussian blobs in 2-D, labelled 0 and 1.
  Tensor<float> x = randn({128, 2});
  auto y = Tensor<std::int64_t>::empty({128});
  for (std::int64_t i = 0; i < 128; ++i) {
    y(i) = i % 2;
    x(i, 0) += i % 2 ? 2.0f : -2.0f;
  }
  nn::Sequential model{std::make_shared<nn::Linear>(2, 16), std::make_shared<nn::ReLU>(),
                       std::make_shared<nn::Linear>(16, 2)};
  optim::SGD opt(model.parameters(), {.lr = 0.1, .momentum = 0.9});
  float first = 0, last = 0;
  for (int step = 0; step < 100; ++step) {
    opt.zero_grad();
    Tensor<float> loss = cross_entropy(model(x), y);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  std::printf("consumer: loss %.4f -> %.4f\n", first, last);
  if (!(last < 0.5f * first)) {
    std::printf("consumer: FAILED to learn\n");
    return 1;
  }
  model.eval();
  const quant::QuantizedModel q = quant::quantize(model, std::vector<Tensor<float>>{x});
  const auto want = argmax(model(x), 1).to_vector(), got = argmax(q(x), 1).to_vector();
  int same = 0;
  for (std::size_t i = 0; i < want.size(); ++i) same += want[i] == got[i] ? 1 : 0;
  std::printf("consumer: int8 (%s kernel) agrees on %d of %zu\n", quant::kernel_name(quant::int8_kernel()), same,
              want.size());
  if (same < 120) return 1;
  try {
    (void)data::read_png("no-such-file.png");
    return 1;
  } catch (const Error& e) {
    if (std::string(e.what()).find("no-such-file.png") == std::string::npos) return 1;
  }
  std::printf("consumer: ok\n");
  return 0;
}
