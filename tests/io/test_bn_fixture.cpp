// A PyTorch-trained model with BatchNorm2d, AvgPool2d, AdaptiveAvgPool2d and GELU (both forms)
// gives PyTorch's outputs in ember: tests/golden/bn_fixture_weights.safetensors is the
// state_dict safetensors.torch.save_file wrote (num_batches_tracked as I64 scalars), and
// bn_fixture_io.safetensors holds 64 MNIST test images with PyTorch's eval-mode log-probs
// (float32, and float64 rounded once) and predictions. Both made by
// tests/golden/make_bn_fixture.py; the model is support/bn_fixture_model.hpp.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ember/autograd/grad_mode.hpp"
#include "ember/data/normalize.hpp"
#include "ember/io/state_dict.hpp"
#include "ember/ops/reduce.hpp"
#include "support/bn_fixture_model.hpp"
#include "support/golden.hpp"

namespace {

using namespace ember;
using test::Golden;

// Absolute, 2e-5 against both of PyTorch's outputs. The issue asked for 1e-5, but that is below
// this model's float32 rounding: PyTorch's own float32 output is 1.45e-5 from its float64 one
// (make_bn_fixture.py prints it), and ember's float32 error is of the same size and depends on
// the instruction set (measured against PyTorch's float32: 8.6e-6 built for AVX-512, 1.14e-5 for
// x86-64-v2, which has no FMA). Predictions must match exactly.
constexpr double vs_torch_f32_tolerance = 2e-5;
constexpr double vs_torch_f64_tolerance = 2e-5;

std::string golden_path(const std::string& file) {
  return std::string(EMBER_TEST_DIR) + "/golden/" + file;
}

double max_abs_diff(const Tensor<float>& a, const Tensor<float>& b) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<float> va = a.to_vector(), vb = b.to_vector();
  double worst = 0;
  for (std::size_t i = 0; i < va.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(va[i]) - static_cast<double>(vb[i])));
  return worst;
}

// io.pixels (N, 28, 28) U8 -> (N, 1, 28, 28), normalised as ember's DataLoader does.
Tensor<float> normalised_pixels(const std::string& path) {
  const io::SafetensorsFile f = io::load_safetensors(path);
  const auto it = f.tensors.find("io.pixels");
  REQUIRE(it != f.tensors.end());
  const io::TensorRecord& r = it->second;
  REQUIRE(r.dtype == "U8");
  REQUIRE(r.shape.size() == 3);
  const Shape shape{r.shape[0], 1, r.shape[1], r.shape[2]};
  Tensor<float> x = Tensor<float>::empty(shape);
  REQUIRE(r.data.size() == static_cast<std::size_t>(x.numel()));
  const data::PixelNormalization norm = data::PixelNormalization::from(0.5f, 0.5f);
  float* px = x.data();
  for (std::size_t i = 0; i < r.data.size(); ++i)
    px[i] = norm(static_cast<std::uint8_t>(r.data[i]));
  return x;
}

}  // namespace

TEST_CASE("bn fixture: the state_dict PyTorch saved loads strictly, num_batches_tracked included",
          "[io][bn_fixture]") {
  const io::SafetensorsFile f = io::load_safetensors(golden_path(test::bn_fixture_weights));
  auto model = test::make_bn_fixture_model();
  const nn::NamedTensors ours = model->state_dict();
  REQUIRE(ours.size() == f.tensors.size());
  for (const auto& [name, t] : ours) {
    INFO("key '" << name << "'");
    const auto it = f.tensors.find(name);
    REQUIRE(it != f.tensors.end());
    CHECK(it->second.shape == std::vector<std::int64_t>(t.shape().begin(), t.shape().end()));
    const bool counter = name.ends_with("num_batches_tracked");
    CHECK(it->second.dtype == (counter ? "I64" : "F32"));
  }
  io::load(*model, golden_path(test::bn_fixture_weights), /*strict=*/true);
  // PyTorch's int64 count of training batches, exactly, in ember's float buffer.
  const double batches = Golden(test::bn_fixture_io).meta_double("batches");
  REQUIRE(batches > 100);
  const nn::NamedTensors loaded = model->state_dict();
  for (const char* bn : {"1", "5", "9"}) {
    INFO("BatchNorm2d '" << bn << "'");
    const auto it = std::find_if(loaded.begin(), loaded.end(), [&](const auto& kv) {
      return kv.first == std::string(bn) + ".num_batches_tracked";
    });
    REQUIRE(it != loaded.end());
    CHECK(static_cast<double>(it->second.item()) == batches);
  }
}

TEST_CASE("bn fixture: ember gives PyTorch's eval-mode log-probs and predictions",
          "[io][bn_fixture]") {
  const Golden fixture(test::bn_fixture_io);
  auto model = test::make_bn_fixture_model();
  io::load(*model, golden_path(test::bn_fixture_weights), /*strict=*/true);
  model->eval();
  NoGradGuard no_grad;

  const Tensor<float> x = normalised_pixels(golden_path(test::bn_fixture_io));  // (64, 1, 28, 28)
  const Tensor<float> out = model->forward(x);                                  // (64, 10)
  REQUIRE(out.shape() == Shape{64, 10});
  const double vs_f32 = max_abs_diff(out, fixture.f32("io.log_probs"));
  const double vs_f64 = max_abs_diff(out, fixture.f32("io.log_probs_f64"));
  if (const char* env = std::getenv("EMBER_GOLDEN_REPORT"); env != nullptr && *env != '\0')
    std::printf("bn fixture log_probs: max |ember - torch f32| %.3e, |ember - torch f64| %.3e\n",
                vs_f32, vs_f64);
  CHECK(vs_f32 <= vs_torch_f32_tolerance);
  CHECK(vs_f64 <= vs_torch_f64_tolerance);
  CHECK(argmax(out, 1).to_vector() == fixture.i64("io.predicted").to_vector());

  // In training mode the batch's statistics replace the running ones: the outputs move (the
  // comparison above is not one that any normalisation would pass).
  model->train();
  const Tensor<float> train_out = model->forward(x);
  CHECK(max_abs_diff(train_out, fixture.f32("io.log_probs")) > 1e-3);
}
