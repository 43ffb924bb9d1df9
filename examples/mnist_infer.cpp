// mnist_infer: loads a model saved by mnist_train (safetensors, PyTorch names), reports its
// accuracy on the MNIST test set and classifies chosen images: test-set indices and PGM
// files (28 x 28, white digit on black, as MNIST).
//
//   mnist_infer --model mnist_cnn.safetensors --index 0,1,2 --pgm digit.pgm
//
// prints, for example:
//   Test set: Average loss: 0.0302, Accuracy: 9899/10000 (98.99%), 6120 images/s
//   test[0]: predicted 7 (p=0.9999), label 7
//   digit.pgm: predicted 3 (p=0.9873)

#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "ember/data/pgm.hpp"
#include "ember/ember.hpp"

namespace {

using namespace ember;

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// (1, 1, H, W) normalised as in training.
Tensor<float> normalise(const Tensor<std::uint8_t>& img, float mean, float std) {
  Tensor<float> x = img.contiguous().cast<float>().reshape({1, 1, img.size(0), img.size(1)});
  float* p = x.data();
  const data::PixelNormalization norm = data::PixelNormalization::from(mean, std);
  for (std::int64_t i = 0; i < x.numel(); ++i) p[i] = norm(static_cast<std::uint8_t>(p[i]));
  return x;
}

void print_prediction(const std::string& what, const Tensor<float>& log_probs, int label) {
  const std::int64_t pred = argmax(log_probs, 1).item();
  const double p = std::exp(static_cast<double>(log_probs(0, pred)));
  std::printf("%s: predicted %lld (p=%.4f)", what.c_str(), static_cast<long long>(pred), p);
  if (label >= 0) std::printf(", label %d%s", label, pred == label ? "" : "  <- wrong");
  std::printf("\n");
}

int run(int argc, char** argv) {
  examples::Flags f;
  f.add("model", "mnist_cnn.safetensors", "model file written by mnist_train")
      .add("data", "", "MNIST folder (default: $EMBER_DATA, else data/mnist)")
      .add("index", "", "comma-separated test-set indices to classify")
      .add("pgm", "", "comma-separated PGM files (28 x 28) to classify")
      .add_bool("no-eval", "skip the test-set evaluation")
      .add("batch-size", "1000", "evaluation batch size")
      .add("threads", "0", "CPU threads (0: all cores)");
  if (!f.parse(argc, argv, "Classify MNIST digits with a model saved by mnist_train.")) return 0;
  set_num_threads(static_cast<int>(f.integer("threads")));
  const float mean = 0.5f, std = 0.5f;

  models::MnistNet model;
  io::load(model, f.str("model"));
  model.eval();
  NoGradGuard no_grad;

  const auto indices = split_list(f.str("index"));
  std::shared_ptr<const data::ImageDataset> test;
  if (!f.flag("no-eval") || !indices.empty())
    test = data::load_mnist(examples::resolve_data_dir(f.str("data")), data::Split::test);

  if (!f.flag("no-eval")) {
    data::DataLoader loader(data::Subset::all(test), {.batch_size = f.integer("batch-size")});
    const auto t0 = std::chrono::steady_clock::now();
    const nn::EvalResult r = nn::evaluate(model, loader);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("Test set: Average loss: %.4f, Accuracy: %lld/%lld (%.2f%%), %.0f images/s\n",
                r.loss, static_cast<long long>(r.correct), static_cast<long long>(r.total),
                r.accuracy(), static_cast<double>(r.total) / s);
  }
  for (const std::string& s : indices) {
    char* end = nullptr;
    const long long i = std::strtoll(s.c_str(), &end, 10);
    EMBER_CHECK(*end == '\0' && i >= 0 && i < test->size(), "--index: '", s,
                "' is not a test-set index in [0, ", test->size(), ")");
    const Tensor<float> out = model(normalise(test->images.select(0, i), mean, std));
    print_prediction("test[" + s + "]", out, static_cast<int>(test->labels(i)));
  }
  for (const std::string& path : split_list(f.str("pgm"))) {
    const Tensor<std::uint8_t> img = data::read_pgm(path);
    EMBER_CHECK(img.size(0) == 28 && img.size(1) == 28, "PGM file '", path, "' is ",
                img.size(1), " x ", img.size(0), "; the model takes 28 x 28 images");
    print_prediction(path, model(normalise(img, mean, std)), -1);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return ember::examples::run_main("mnist_infer", run, argc, argv);
}
