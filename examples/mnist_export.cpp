// mnist_export: writes a model saved by mnist_train (safetensors, PyTorch names) as an ONNX
// file, for onnxruntime or any other ONNX runtime (see include/ember/io/onnx.hpp for what is
// written). scripts/check_onnx.py checks such a file against PyTorch on the MNIST test set.
//
//   mnist_export --model mnist_cnn.safetensors --out mnist_cnn.onnx
//
// prints, for example:
//   mnist_cnn.onnx: 4800791 bytes, opset 13, input "input" [N, 1, 28, 28], output "log_probs"
//
// --init-seed S exports a freshly initialised model (Generator(S)) instead of loading one, and
// --widths narrows it: this is how tests/fixtures/onnx/small_mnist_net.onnx is made
// (--widths 4,8,16 --init-seed 7).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "ember/ember.hpp"
#include "ember/io/onnx.hpp"

namespace {

using namespace ember;

// "32,64,128" -> MnistNetConfig{32, 64, 128}.
models::MnistNetConfig parse_widths(const std::string& s) {
  std::vector<std::int64_t> w;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    w.push_back(examples::parse_integer("widths", item, 1, 1 << 16));
  EMBER_CHECK(w.size() == 3, "--widths: expected conv1,conv2,hidden (3 numbers), got '", s, "'");
  return {w[0], w[1], w[2]};
}

int run(int argc, char** argv) {
  examples::Flags f;
  f.add("model", "mnist_cnn.safetensors", "model file written by mnist_train")
      .add("out", "mnist_cnn.onnx", "ONNX file to write")
      .add("widths", "32,64,128", "the model's widths: conv1,conv2,hidden channels")
      .add_int("init-seed", -1, -1, std::numeric_limits<std::int64_t>::max(),
               "export a fresh model initialised with this seed (no --model; -1: none)")
      .add_int("batch", 0, 0, 1 << 20, "fixed batch size (0: symbolic batch dimension \"N\")")
      .add_int("opset", 13, 13, 21, "ONNX operator set (13 to 21)");
  if (!f.parse(argc, argv, "Export a model saved by mnist_train as an ONNX file.")) return 0;
  const std::int64_t seed = f.integer("init-seed"), batch = f.integer("batch");
  EMBER_CHECK(seed < 0 || !f.given("model"), "--model and --init-seed exclude each other");
  const std::string out = f.str("out");
  EMBER_CHECK(!out.empty(), "--out: needs a file name");
  examples::check_output_path("out", out);

  Generator gen(seed < 0 ? 0 : static_cast<std::uint64_t>(seed));
  models::MnistNet model(parse_widths(f.str("widths")), gen);
  if (seed < 0) io::load(model, f.str("model"));
  model.eval();

  io::OnnxExportOptions o;
  if (batch > 0) o.input_shape[0] = batch;
  o.opset = f.integer("opset");
  const std::vector<std::byte> bytes = io::to_onnx_bytes(model, o);
  io::write_file_atomic(out, bytes);
  std::printf("%s: %zu bytes, opset %lld, input \"%s\" %s, output \"%s\"\n", out.c_str(),
              bytes.size(), static_cast<long long>(o.opset), o.input_name.c_str(),
              io::detail::onnx_shape_str(o.input_shape, o.batch_name).c_str(),
              o.output_name.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return ember::examples::run_main("mnist_export", run, argc, argv);
}
