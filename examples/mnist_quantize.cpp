// mnist_quantize: compresses a float model saved by mnist_train into an int8 model for CPU
// inference, and compares the two: test accuracy, file size and inference throughput.
//
//   mnist_quantize --model mnist_cnn.safetensors --out mnist_int8.safetensors
//
// Calibration reads the first --calibration-batches batches of 64 training images (in file
// order, so the int8 model is reproducible). Throughput is the forward pass alone over the test
// set in batches of --batch-size (inputs normalised beforehand), the median of --repeat passes.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "cli.hpp"
#include "ember/ember.hpp"
#include "ember/quant/quantize.hpp"
#include "ember/quant/serialize.hpp"

namespace {

using namespace ember;

struct Measured {
  nn::EvalResult eval;
  double images_per_second = 0;
};

// Accuracy, mean NLL and the median throughput of `forward` over pre-normalised batches.
template <class F>
Measured measure(F&& forward, const std::vector<data::Batch>& batches, int repeat) {
  Measured m;
  NoGradGuard no_grad;
  std::vector<double> rates;
  for (int r = 0; r < repeat; ++r) {
    std::int64_t images = 0;
    double seconds = 0, loss = 0;
    std::int64_t correct = 0;
    for (const data::Batch& b : batches) {
      const auto t0 = std::chrono::steady_clock::now();
      const Tensor<float> out = forward(b.images);
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      images += b.labels.size(0);
      if (r == 0) {
        loss += nll_loss(out, b.labels, Reduction::sum).item();
        correct += count_correct(out, b.labels);
      }
    }
    if (r == 0) m.eval = {loss / static_cast<double>(images), correct, images};
    rates.push_back(static_cast<double>(images) / seconds);
  }
  std::sort(rates.begin(), rates.end());
  m.images_per_second = rates[rates.size() / 2];
  return m;
}

int run(int argc, char** argv) {
  examples::Flags f;
  f.add("model", "mnist_cnn.safetensors", "float model written by mnist_train")
      .add("out", "mnist_int8.safetensors", "where to write the int8 model")
      .add("data", "", "MNIST folder (default: $EMBER_DATA, else data/mnist)")
      .add_int("calibration-batches", 20, 1, 1'000'000,
               "batches of 64 training images used to calibrate activations (at most all)")
      .add_int("batch-size", 1000, 1, 1 << 20, "inference batch size for accuracy and throughput")
      .add_int("repeat", 5, 1, 1000, "timed passes over the test set (the median is reported)")
      .add_threads();
  if (!f.parse(argc, argv, "Quantize an MNIST model to int8 and compare it with the float one."))
    return 0;
  set_num_threads(f.threads());
  const std::string model_path = f.str("model"), out_path = f.str("out");
  EMBER_CHECK(!out_path.empty(), "--out: needs a file name");
  examples::check_output_path("out", out_path);
  std::error_code ec;
  EMBER_CHECK(out_path != model_path && !std::filesystem::equivalent(out_path, model_path, ec),
              "--out '", out_path, "' is the --model file; the int8 model would replace it");
  const std::string dir = examples::resolve_data_dir(f.str("data"));

  // The float model, read once; an int8 model (this program's own output) is told apart by its
  // "format" metadata and refused in those words.
  const io::SafetensorsFile file = io::load_safetensors(model_path);
  EMBER_CHECK(!quant::is_quantized(file), "--model '", model_path,
              "' is already an int8 model (written by mnist_quantize); give the float model "
              "that mnist_train saved");
  models::MnistNet model;
  io::load_into(model, io::state_dict_from_safetensors(file, model_path), model_path);
  model.eval();

  auto train = data::load_mnist(dir, data::Split::train);
  data::DataLoader calib(data::Subset::all(train), {.batch_size = 64});
  const auto t0 = std::chrono::steady_clock::now();
  const quant::QuantizedModel q = quant::quantize(model, calib, {.batches = f.integer("calibration-batches")});
  const double quantize_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  quant::save_quantized(q, out_path);
  const quant::QuantizedModel loaded = quant::load_quantized(out_path);  // what a user deploys

  auto test = data::load_mnist(dir, data::Split::test);
  data::DataLoader loader(data::Subset::all(test), {.batch_size = f.integer("batch-size")});
  std::vector<data::Batch> batches;
  for (const data::Batch& b : loader.epoch()) batches.push_back(b);
  const int repeat = static_cast<int>(f.integer("repeat"));
  const Measured fm = measure([&](const Tensor<float>& x) { return model.forward(x); }, batches, repeat);
  const Measured qm = measure([&](const Tensor<float>& x) { return loaded.forward(x); }, batches, repeat);

  const auto fsize = std::filesystem::file_size(f.str("model"));
  const auto qsize = std::filesystem::file_size(f.str("out"));
  std::printf("Calibrated on %s training images in %.2f s; int8 kernel: %s; %d threads\n",
              q.info().at("calibration_samples").c_str(), quantize_s, quant::kernel_name(quant::int8_kernel()),
              get_num_threads());
  std::printf("%-6s %-36s %9s %12s %12s\n", "model", "file", "accuracy", "size (bytes)", "images/s");
  std::printf("%-6s %-36s %8.2f%% %12ju %12.0f\n", "float", f.str("model").c_str(), fm.eval.accuracy(),
              static_cast<std::uintmax_t>(fsize), fm.images_per_second);
  std::printf("%-6s %-36s %8.2f%% %12ju %12.0f\n", "int8", f.str("out").c_str(), qm.eval.accuracy(),
              static_cast<std::uintmax_t>(qsize), qm.images_per_second);
  std::printf("int8 vs float: accuracy %+.2f points, %.2fx smaller, %.2fx throughput (batch %lld)\n",
              qm.eval.accuracy() - fm.eval.accuracy(), static_cast<double>(fsize) / static_cast<double>(qsize),
              qm.images_per_second / fm.images_per_second, static_cast<long long>(f.integer("batch-size")));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return ember::examples::run_main("mnist_quantize", run, argc, argv);
}
