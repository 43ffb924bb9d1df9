// Tests for ember/quant/: the int8 GEMM kernels (portable, AVX2, AVX512-VNNI where the CPU has
// them) against an exact reference and against each other, weight and activation quantization,
// quantized layers against a float model fed the same quantized values, the int8 file format
// and its errors.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "ember/io/safetensors.hpp"
#include "ember/io/state_dict.hpp"
#include "ember/models/mnist_net.hpp"
#include "ember/nn/layers.hpp"
#include "ember/nn/normalization.hpp"
#include "ember/nn/pooling.hpp"
#include "ember/ops/batch_norm.hpp"
#include "ember/quant/int8_gemm.hpp"
#include "ember/quant/quantize.hpp"
#include "ember/quant/serialize.hpp"
#include "support/layer_zoo.hpp"
#include "support/tmp.hpp"

namespace {

using namespace ember;
using quant::Int8Kernel;

std::vector<Int8Kernel> kernels_here() {
  std::vector<Int8Kernel> ks;
  for (Int8Kernel k : {Int8Kernel::portable, Int8Kernel::avx2, Int8Kernel::avx512_vnni})
    if (quant::kernel_supported(k)) ks.push_back(k);
  return ks;
}

// The epilogue of int8_gemm.hpp evaluated from exact int64 sums.
struct Case {
  std::int64_t m, n, k;
  std::vector<std::uint8_t> a;  // m x k, stride k (+ slack)
  std::vector<std::int8_t> w;   // n x k
  std::vector<float> scale, bias;
};

Case make_case(std::int64_t m, std::int64_t n, std::int64_t k, std::mt19937& rng) {
  Case c{m, n, k, {}, {}, {}, {}};
  c.a.resize(static_cast<std::size_t>(m * k + 4));
  for (auto& v : c.a) v = static_cast<std::uint8_t>(rng() % 128);
  c.w.resize(static_cast<std::size_t>(n * k));
  for (auto& v : c.w) v = static_cast<std::int8_t>(static_cast<int>(rng() % 255) - 127);
  const std::int64_t np = quant::round_up(n, quant::kPanel);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (std::int64_t j = 0; j < np; ++j) {
    c.scale.push_back(0.002f + 0.001f * std::fabs(u(rng)));
    c.bias.push_back(40.0f * u(rng));
  }
  return c;
}

std::int64_t exact_sum(const Case& c, std::int64_t i, std::int64_t j, std::int32_t zp) {
  std::int64_t s = 0;
  for (std::int64_t kk = 0; kk < c.k; ++kk)
    s += (std::int64_t{c.a[static_cast<std::size_t>(i * c.k + kk)]} - zp) * c.w[static_cast<std::size_t>(j * c.k + kk)];
  return s;
}

}  // namespace

TEST_CASE("int8 GEMM: every kernel gives the exact sums and the same epilogue bits", "[quant][gemm]") {
  std::mt19937 rng(7);
  const auto kernels = kernels_here();
  REQUIRE(kernels.front() == Int8Kernel::portable);
  INFO("kernels on this CPU: " << kernels.size());
  for (auto [m, n, k] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{1, 1, 1}, {3, 10, 9}, {8, 16, 12},
                         {13, 33, 37}, {17, 64, 288}, {5, 128, 1001}, {64, 20, 3}}) {
    const Case c = make_case(m, n, k, rng);
    const quant::PackedWeights pw = quant::pack_weights(c.w.data(), n, k, k);
    CHECK(pw.kp % 4 == 0);
    CHECK(pw.np % quant::kPanel == 0);
    for (std::int32_t zp : {0, 37}) {
      for (bool relu : {false, true}) {
        // float output: y = fma(sum, scale, bias)
        quant::Epilogue ef{c.scale.data(), c.bias.data(), zp, relu, true, 0};
        // code output with a zero point of 5
        quant::Epilogue eq{c.scale.data(), c.bias.data(), zp, relu, false, 5};
        std::vector<std::vector<float>> f_out;
        std::vector<std::vector<std::uint8_t>> q_out;
        for (Int8Kernel kern : kernels) {
          std::vector<float> fo(static_cast<std::size_t>(m * n), -1.0f);
          std::vector<std::uint8_t> qo(static_cast<std::size_t>(m * n), 255);
          quant::gemm_u8s8(m, c.a.data(), k, pw, ef, fo.data(), n, kern);
          quant::gemm_u8s8(m, c.a.data(), k, pw, eq, qo.data(), n, kern);
          f_out.push_back(fo);
          q_out.push_back(qo);
        }
        // the portable kernel against the exact sums
        for (std::int64_t i = 0; i < m; ++i)
          for (std::int64_t j = 0; j < n; ++j) {
            const std::int64_t s = exact_sum(c, i, j, zp);
            const auto ju = static_cast<std::size_t>(j);
            float y = std::fma(static_cast<float>(s), c.scale[ju], c.bias[ju]);
            const float yf = relu && !(y > 0) ? 0.0f : y;
            REQUIRE(f_out[0][static_cast<std::size_t>(i * n + j)] == yf);
            const float q = std::clamp(std::nearbyint(y) + 5.0f, relu ? 5.0f : 0.0f, 127.0f);
            REQUIRE(q_out[0][static_cast<std::size_t>(i * n + j)] == static_cast<std::uint8_t>(q));
          }
        // every other kernel: the same bits
        for (std::size_t t = 1; t < kernels.size(); ++t) {
          INFO("kernel " << quant::kernel_name(kernels[t]) << ", m n k " << m << " " << n << " " << k);
          REQUIRE(f_out[t] == f_out[0]);
          REQUIRE(q_out[t] == q_out[0]);
        }
      }
    }
  }
}

TEST_CASE("int8 GEMM: packing checks its input, kernels are chosen by what the CPU has", "[quant][gemm]") {
  const std::vector<std::int8_t> bad{1, -128, 3, 4};
  REQUIRE_THROWS_WITH(quant::pack_weights(bad.data(), 1, 4, 4), Catch::Contains("below -127"));
  REQUIRE_THROWS_WITH(quant::pack_weights(bad.data(), 0, 4, 4), Catch::Contains("bad shape"));
  REQUIRE(quant::kernel_supported(Int8Kernel::portable));
  REQUIRE(quant::kernel_supported(quant::int8_kernel()));
  const Int8Kernel before = quant::int8_kernel();
  quant::set_int8_kernel(Int8Kernel::portable);
  CHECK(quant::int8_kernel() == Int8Kernel::portable);
  quant::set_int8_kernel(before);
  if (!quant::kernel_supported(Int8Kernel::avx512_vnni))
    REQUIRE_THROWS_WITH(quant::set_int8_kernel(Int8Kernel::avx512_vnni), Catch::Contains("cannot run"));
}

TEST_CASE("quantization parameters: activations and per-channel weights", "[quant]") {
  const quant::QParams relu_range = quant::choose_qparams(0.0f, 2.54f);
  CHECK(relu_range.zero_point == 0);
  CHECK(relu_range.scale == Approx(0.02f));
  const quant::QParams signed_range = quant::choose_qparams(-1.0f, 1.0f);
  CHECK(signed_range.zero_point == 64);  // round(1 / (2/127)) = round(63.5) = 64 (half to even)
  CHECK(quant::quantize_value(-1.0f, signed_range) == 0);
  CHECK(quant::quantize_value(1.0f, signed_range) == 127);
  CHECK(quant::quantize_value(0.0f, signed_range) == 64);
  CHECK(quant::quantize_value(5.0f, signed_range) == 127);  // clamped
  CHECK(quant::choose_qparams(0.0f, 0.0f).scale == 1.0f);
  REQUIRE_THROWS_WITH(quant::choose_qparams(1.0f, NAN), Catch::Contains("bad range"));

  Generator gen(3);
  Tensor<float> w = Tensor<float>::randn({4, 3, 3, 3}, gen);
  w.data()[5] = 0;  // channel 0 stays finite; make channel 3 all zero
  for (int i = 81; i < 108; ++i) w.data()[i] = 0;
  quant::QLayer l;
  l.name = "conv";
  quant::quantize_weights(w, l);
  REQUIRE(l.weight_scale.size() == 4);
  CHECK(l.weight_scale[3] == 1.0f);
  for (int o = 0; o < 3; ++o) {
    float m = 0;
    for (int k = 0; k < 27; ++k) m = std::max(m, std::fabs(w.data()[o * 27 + k]));
    CHECK(l.weight_scale[static_cast<std::size_t>(o)] == Approx(m / 127));
    bool has_extreme = false;
    for (int k = 0; k < 27; ++k) {
      const auto i = static_cast<std::size_t>(o * 27 + k);
      CHECK(std::fabs(l.weight[i] * l.weight_scale[static_cast<std::size_t>(o)] - w.data()[i]) <=
            0.5f * l.weight_scale[static_cast<std::size_t>(o)] * 1.0001f);
      has_extreme = has_extreme || std::abs(l.weight[i]) == 127;
    }
    CHECK(has_extreme);
  }
  w.data()[0] = NAN;
  REQUIRE_THROWS_WITH(quant::quantize_weights(w, l), Catch::Contains("non-finite weight"));
}

namespace {

// The float computation the int8 model approximates: each layer sees its input rounded to its
// codes and dequantized, and its dequantized weights.
Tensor<float> fake_quant(const Tensor<float>& x, quant::QParams q) {
  Tensor<float> y = x.contiguous().clone();
  for (std::int64_t i = 0; i < y.numel(); ++i)
    y.data()[i] = static_cast<float>(quant::quantize_value(y.data()[i], q) - q.zero_point) * q.scale;
  return y;
}

Tensor<float> dequantized_weight(const quant::QLayer& l, const Shape& shape) {
  Tensor<float> w = Tensor<float>::empty(shape);
  const std::int64_t per = w.numel() / l.out;
  for (std::int64_t i = 0; i < w.numel(); ++i)
    w.data()[i] = l.weight[static_cast<std::size_t>(i)] * l.weight_scale[static_cast<std::size_t>(i / per)];
  return w;
}

float max_abs_diff(const Tensor<float>& a, const Tensor<float>& b) {
  REQUIRE(a.shape() == b.shape());
  const auto va = a.contiguous().to_vector(), vb = b.contiguous().to_vector();
  float m = 0;
  for (std::size_t i = 0; i < va.size(); ++i) m = std::max(m, std::fabs(va[i] - vb[i]));
  return m;
}

}  // namespace

TEST_CASE("a quantized conv2d or linear layer computes the float layer on quantized values", "[quant]") {
  Generator gen(5);
  for (const Conv2dOptions o : {Conv2dOptions{}, Conv2dOptions{.stride = 2, .padding = 1},
                                Conv2dOptions{.stride = 1, .padding = 2, .dilation = 2}}) {
    nn::Sequential net{std::make_shared<nn::Conv2d>(3, 20, 3, o, true, gen)};
    const Tensor<float> x = Tensor<float>::randn({2, 3, 9, 11}, gen);
    const quant::QuantizedModel q = quant::quantize(net, {x});
    const quant::QLayer& l = q.layers()[0];
    CHECK(l.input.zero_point > 0);  // a signed input
    const auto* conv = dynamic_cast<const nn::Conv2d*>(net[0].get());
    const Tensor<float> want = conv2d(fake_quant(x, l.input), dequantized_weight(l, conv->weight.shape()), conv->bias, o);
    const Tensor<float> got = q(x);
    INFO("stride " << o.stride << " padding " << o.padding << " dilation " << o.dilation);
    CHECK(max_abs_diff(got, want) < 1e-4f);
    CHECK(max_abs_diff(got, net.forward(x)) < 0.1f);  // and near the float layer
  }
  nn::Sequential fc{std::make_shared<nn::Linear>(37, 19, true, gen), std::make_shared<nn::ReLU>()};
  const Tensor<float> x = Tensor<float>::randn({5, 37}, gen);
  const quant::QuantizedModel q = quant::quantize(fc, {x});
  const quant::QLayer& l = q.layers()[0];
  const auto* lin = dynamic_cast<const nn::Linear*>(fc[0].get());
  const Tensor<float> want = relu(linear(fake_quant(x, l.input), dequantized_weight(l, lin->weight.shape()), lin->bias));
  CHECK(max_abs_diff(q(x), want) < 1e-4f);
}

TEST_CASE("a quantized MnistNet follows the float model, channels-last codes and all", "[quant]") {
  Generator gen(9);
  models::MnistNet net({.conv1 = 6, .conv2 = 10, .hidden = 24}, gen);
  net.eval();
  std::vector<Tensor<float>> calib;
  for (int b = 0; b < 3; ++b) calib.push_back(Tensor<float>::rand({16, 1, 28, 28}, gen) * 2.0f - 1.0f);
  const quant::QuantizedModel q = quant::quantize(net, calib);
  REQUIRE(q.layers().size() == net.steps().size());
  CHECK(q.layers()[2].input.zero_point == 0);  // conv2's input follows a ReLU
  CHECK(q.info().at("calibration_samples") == "48");

  // The float model run on the same quantized values, layer by layer.
  const Tensor<float> x = Tensor<float>::rand({8, 1, 28, 28}, gen) * 2.0f - 1.0f;
  const auto& L = q.layers();
  Tensor<float> h = relu(conv2d(fake_quant(x, L[0].input), dequantized_weight(L[0], net.conv1->weight.shape()),
                                net.conv1->bias));
  h = relu(conv2d(fake_quant(h, L[2].input), dequantized_weight(L[2], net.conv2->weight.shape()), net.conv2->bias));
  h = max_pool2d(h, 2).flatten(1);
  h = relu(linear(fake_quant(h, L[7].input), dequantized_weight(L[7], net.fc1->weight.shape()), net.fc1->bias));
  h = log_softmax(linear(fake_quant(h, L[10].input), dequantized_weight(L[10], net.fc2->weight.shape()), net.fc2->bias), 1);
  const Tensor<float> got = q(x);
  // Equal up to an occasional code that rounds the other way (float sums in another order).
  CHECK(max_abs_diff(got, h) < 0.02f);
  CHECK(max_abs_diff(got, net.forward(x)) < 0.1f);
  CHECK(argmax(got, 1).to_vector() == argmax(h, 1).to_vector());

  // Every kernel gives the same model output, bit for bit.
  const Int8Kernel before = quant::int8_kernel();
  for (Int8Kernel k : kernels_here()) {
    quant::set_int8_kernel(k);
    CHECK(q(x).to_vector() == got.to_vector());
  }
  quant::set_int8_kernel(before);

  REQUIRE_THROWS_WITH(q(Tensor<float>::zeros({2, 1, 27, 28})), Catch::Contains("does not match the model"));
  Tensor<float> bad = x.clone();
  bad.data()[100] = NAN;
  REQUIRE_THROWS_WITH(q(bad), Catch::Contains("input element 100 is nan"));
  struct Custom : nn::Module {
    Custom() : nn::Module("Custom") {}
  } custom;
  REQUIRE_THROWS_WITH(quant::quantize(custom, calib), Catch::Contains("cannot be exported or quantized"));
  REQUIRE_THROWS_WITH(quant::quantize(net, std::vector<Tensor<float>>{}), Catch::Contains("calibration batch"));
}

TEST_CASE("int8 models save and load bit for bit, about 4x smaller than float", "[quant][io]") {
  Generator gen(13);
  models::MnistNet net({.conv1 = 8, .conv2 = 16, .hidden = 32}, gen);
  net.eval();
  const std::vector<Tensor<float>> calib{Tensor<float>::rand({32, 1, 28, 28}, gen) * 2.0f - 1.0f};
  const quant::QuantizedModel q = quant::quantize(net, calib);
  const auto dir = test::tmp_dir("quant", true);
  const std::string qpath = (dir / "int8.safetensors").string(), fpath = (dir / "float.safetensors").string();
  quant::save_quantized(q, qpath);
  io::save(net, fpath);
  const quant::QuantizedModel back = quant::load_quantized(qpath);
  const Tensor<float> x = Tensor<float>::rand({4, 1, 28, 28}, gen);
  CHECK(back(x).to_vector() == q(x).to_vector());
  REQUIRE(back.layers().size() == q.layers().size());
  for (std::size_t i = 0; i < q.layers().size(); ++i) {
    CHECK(back.layers()[i].name == q.layers()[i].name);
    CHECK(back.layers()[i].weight == q.layers()[i].weight);
    CHECK(back.layers()[i].input.scale == q.layers()[i].input.scale);
  }
  CHECK(back.info().at("source_model") == "Net");
  const double ratio = static_cast<double>(std::filesystem::file_size(fpath)) /
                       static_cast<double>(std::filesystem::file_size(qpath));
  CHECK(ratio > 3.5);
  CHECK(ratio < 4.0);

  const io::SafetensorsFile good = io::load_safetensors(qpath);
  CHECK(quant::is_quantized(good));
  CHECK_FALSE(quant::is_quantized(io::load_safetensors(fpath)));
  const auto fails = [&](const io::SafetensorsFile& f, const std::string& message) {
    const std::string path = (dir / "bad.safetensors").string();
    io::save_safetensors(path, f);
    REQUIRE_THROWS_WITH(quant::load_quantized(path), Catch::Contains(message) && Catch::Contains("bad.safetensors"));
  };
  SECTION("a float model") { fails(io::load_safetensors(fpath), "not an int8 model"); }
  SECTION("a missing tensor") {
    io::SafetensorsFile f = good;
    f.tensors.erase("fc1.weight_scale");
    fails(f, "missing tensor 'fc1.weight_scale'");
  }
  SECTION("a wrong dtype") {
    io::SafetensorsFile f = good;
    f.tensors["conv2.weight"] = io::to_record(net.conv2->weight);
    fails(f, "tensor 'conv2.weight' has dtype F32, expected I8");
  }
  SECTION("a wrong shape") {
    io::SafetensorsFile f = good;
    f.tensors["fc2.bias"].shape = {5, 2};
    fails(f, "tensor 'fc2.bias' has shape [5, 2], expected [10]");
  }
  SECTION("a weight of -128") {
    io::SafetensorsFile f = good;
    f.tensors["fc2.weight"].data[3] = std::byte{0x80};
    fails(f, "holds -128, outside [-127, 127]");
  }
  SECTION("a broken step list") {
    io::SafetensorsFile f = good;
    f.metadata["steps"] = "conv2d:conv1:1,8,3,1,0;relu:relu";
    fails(f, "expected 6 arguments, got 5");
    f.metadata["steps"] = "hardswish:s";
    fails(f, "unknown step 'hardswish'");
  }
  SECTION("layers that do not fit together") {
    io::SafetensorsFile f = good;
    f.metadata["input_shape"] = "1,20,20";
    fails(f, "takes 2304 features, gets [1024]");
  }
  SECTION("a bad scale") {
    io::SafetensorsFile f = good;
    const float neg = -1.0f;
    std::memcpy(f.tensors["conv1.input_scale"].data.data(), &neg, 4);
    fails(f, "bad input scale -1");
  }
  SECTION("an unused tensor") {
    io::SafetensorsFile f = good;
    f.tensors["extra"] = io::to_record(Tensor<float>::zeros({1}));
    fails(f, "1 tensor(s) belong to no step");
  }
  SECTION("a newer version") {
    io::SafetensorsFile f = good;
    f.metadata["version"] = "3";
    fails(f, "version 3 is newer");
  }
  SECTION("a truncated file") {
    const std::string path = (dir / "cut.safetensors").string();
    const auto bytes = io::serialize_safetensors(good);
    io::write_file_atomic(path, std::span<const std::byte>(bytes.data(), bytes.size() / 2));
    REQUIRE_THROWS_WITH(quant::load_quantized(path), Catch::Contains("cut.safetensors"));
  }
}

// Sizes from an int8 file's metadata: bounded when read, every product and sum of them
// overflow-checked in QuantizedModel (issue 9).
TEST_CASE("int8 model files: metadata sizes are bounded, products overflow-checked",
          "[quant][io]") {
  Generator gen(17);
  models::MnistNet net({.conv1 = 4, .conv2 = 8, .hidden = 16}, gen);
  net.eval();
  const std::vector<Tensor<float>> calib{Tensor<float>::rand({8, 1, 28, 28}, gen)};
  const quant::QuantizedModel q = quant::quantize(net, calib);
  const io::SafetensorsFile good = quant::to_safetensors(q);
  const std::string steps = good.metadata.at("steps");
  const std::string conv1 = "conv2d:conv1:1,4,3,1,0,1", pool = "max_pool2d:max_pool2d:2,2,0";
  REQUIRE(steps.find(conv1) != std::string::npos);
  REQUIRE(steps.find(pool) != std::string::npos);
  const auto dir = test::tmp_dir("quant_bounds", true);
  const std::string path = (dir / "bad.safetensors").string();
  // The model with `from` replaced by `to` in its step list (or in the field `key`).
  const auto load_edited = [&](const std::string& key, const std::string& from,
                               const std::string& to) {
    io::SafetensorsFile f = good;
    std::string& v = f.metadata.at(key);
    const std::size_t at = v.find(from);
    REQUIRE(at != std::string::npos);
    v.replace(at, from.size(), to);
    io::save_safetensors(path, f);
    return quant::load_quantized(path);
  };
  using Catch::Contains;
  const std::string big = "4611686018427387904";  // 2^62
  SECTION("conv padding, conv dilation and pooling padding of 2^62") {
    REQUIRE_THROWS_WITH(load_edited("steps", conv1, "conv2d:conv1:1,4,3,1," + big + ",1"),
                        Contains("bad.safetensors") && Contains("step 'conv2d:conv1:") &&
                            Contains("padding " + big + " is out of range [0, 1024]"));
    REQUIRE_THROWS_WITH(load_edited("steps", conv1, "conv2d:conv1:1,4,3,1,0," + big),
                        Contains("dilation " + big + " is out of range [1, 1024]"));
    REQUIRE_THROWS_WITH(load_edited("steps", pool, "max_pool2d:max_pool2d:2,2," + big),
                        Contains("padding " + big + " is out of range [0, 1]"));
    REQUIRE_THROWS_WITH(load_edited("steps", pool, "max_pool2d:max_pool2d:2,-3,0"),
                        Contains("stride -3 is out of range [1, 1024]"));
  }
  SECTION("an input shape of 1 x 2^40 x 2^40") {
    REQUIRE_THROWS_WITH(load_edited("input_shape", "1,28,28", "1,1099511627776,1099511627776"),
                        Contains("input_shape [1, 1099511627776, 1099511627776]") &&
                            Contains("size 1099511627776 is out of range [1, 16777216]"));
    REQUIRE_THROWS_WITH(
        load_edited("input_shape", "1,28,28", "4,65536,65536"),
        Contains("input_shape [4, 65536, 65536] has more than 1073741824 elements"));
    REQUIRE_THROWS_WITH(load_edited("input_shape", "1,28,28", "1,28"),
                        Contains("input_shape [1, 28] must be (C, H, W) or (features)"));
  }
  SECTION("a layer listed twice, a version that is no version") {
    const std::string fc2 = "linear:fc2:16,10";
    REQUIRE(steps.find(fc2) != std::string::npos);
    REQUIRE_THROWS_WITH(load_edited("steps", fc2, fc2 + ";" + fc2),
                        Contains("layer 'fc2' appears twice in the steps"));
    REQUIRE_THROWS_WITH(load_edited("version", "1", "0"),
                        Contains("version \"0\" is invalid (this ember reads versions 1 and 2)"));
    REQUIRE_THROWS_WITH(load_edited("version", "1", "one"), Contains("version \"one\" is invalid"));
    REQUIRE_THROWS_WITH(load_edited("version", "1", "-1"), Contains("version \"-1\" is invalid"));
    REQUIRE_THROWS_WITH(load_edited("version", "1", "12"), Contains("version 12 is newer"));
  }
  SECTION("text from the file is clipped in messages") {
    try {
      (void)load_edited("steps", conv1, "conv2d:" + std::string(100000, 'x') + ":1");
      FAIL("loaded");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).size() < 600);
      CHECK_THAT(e.what(), Contains("expected 6 arguments, got 1") && Contains("bytes)"));
    }
  }
  SECTION("built in memory: the same sizes overflow-checked, not wrapped around") {
    const auto build = [&](const std::function<void(std::vector<quant::QLayer>&)>& edit,
                           std::vector<std::int64_t> input = {1, 28, 28}) {
      std::vector<quant::QLayer> layers = q.layers();
      edit(layers);
      return quant::QuantizedModel(layers, input);
    };
    const std::int64_t b = std::int64_t{1} << 62;
    REQUIRE_THROWS_WITH(
        build([&](auto& l) { l[0].padding = b; }),
        Contains("layer 'conv1' (conv2d): padding " + big + " on input height 28 overflows int64"));
    REQUIRE_THROWS_WITH(build([&](auto& l) { l[0].dilation = b; }),
                        Contains("dilation " + big + " times kernel height 3 - 1 overflows int64"));
    REQUIRE_THROWS_WITH(build([&](auto& l) { l[4].padding = b; }),
                        Contains("layer 'max_pool2d' (max_pool2d): padding " + big +
                                 " must be in [0, kernel / 2] for kernel 2"));
    REQUIRE_THROWS_WITH(build([](auto&) {}, {1, std::int64_t{1} << 40, std::int64_t{1} << 40}),
                        Contains("more than 281474976710656 elements"));
    // A kernel larger than the input, at a stride that used to truncate the size up to 1.
    REQUIRE_THROWS_WITH(
        build([](auto& l) { l[0].stride = 3; }, {1, 1, 1}),
        Contains("input 1 x 1 with padding 0 x 0 is smaller than the kernel 3 x 3"));
    CHECK(q.largest_sample_buffer() == 24 * 24 * 36);  // conv2's patches: (24 * 24, 4 * 3 * 3)
  }
}

namespace {

// Conv2d, BatchNorm2d (folded), GELU (in float), AvgPool2d (float, then on codes), a batch norm
// after a pooling (in float), AdaptiveAvgPool2d (on codes), Flatten, Linear, LogSoftmax:
// input (N, 3, 16, 16).
std::shared_ptr<nn::Sequential> bn_gelu_pool_model(Generator& gen) {
  auto bn = [&](std::int64_t c) {
    auto m = std::make_shared<nn::BatchNorm2d>(c);
    test::randomize_batch_norm(*m, gen);
    return m;
  };
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Conv2d>(3, 8, 3, Conv2dOptions{.padding = 1}, true, gen), bn(8),
      std::make_shared<nn::GELU>(), std::make_shared<nn::AvgPool2d>(2), bn(8),
      std::make_shared<nn::Conv2d>(8, 16, 3, Conv2dOptions{.padding = 1}, true, gen), bn(16),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::AvgPool2d>(3, 2, 1, true, false),
      std::make_shared<nn::AdaptiveAvgPool2d>(1), std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(16, 10, true, gen), std::make_shared<nn::LogSoftmax>(1)});
  net->eval();
  return net;
}

// Codes of q, dequantized, as the int8 model holds them between layers.
Tensor<float> fq(const Tensor<float>& x, quant::QParams q) { return fake_quant(x, q); }

}  // namespace

TEST_CASE("a Sequential with BatchNorm2d, GELU, AvgPool2d and AdaptiveAvgPool2d quantizes and round-trips",
          "[quant][layers]") {
  using Op = nn::Step::Op;
  Generator gen(23);
  const auto net = bn_gelu_pool_model(gen);
  std::vector<Tensor<float>> calib;
  for (int b = 0; b < 4; ++b) calib.push_back(Tensor<float>::randn({16, 3, 16, 16}, gen));
  const quant::QuantizedModel q = quant::quantize(*net, calib);
  const auto& L = q.layers();
  // The two batch norms after a conv2d are folded; the one after the pooling runs in float.
  REQUIRE(L.size() == 11);
  const std::vector<Op> ops{Op::conv2d, Op::gelu, Op::avg_pool2d, Op::batch_norm, Op::conv2d, Op::relu,
                            Op::avg_pool2d, Op::adaptive_avg_pool2d, Op::flatten, Op::linear, Op::log_softmax};
  for (std::size_t i = 0; i < L.size(); ++i) CHECK(L[i].op == ops[i]);
  CHECK(L[0].name == "0");
  CHECK(L[3].name == "4");
  CHECK(L[6].input.zero_point == 0);  // the pooling after the ReLU: codes of [0, max]
  CHECK(L[6].pool.ceil_mode);
  CHECK_FALSE(L[6].pool.count_include_pad);
  CHECK(L[7].pool.out_h == 1);

  // The same computation in float on the int8 model's own numbers: each conv2d / linear sees
  // its input as codes and its dequantized weights, the ReLU'd conv writes codes of the
  // pooling's input parameters, each pooling averages those codes and writes codes of the next
  // layer's input parameters; GELU, the first pooling (of float activations) and the
  // unfolded batch norm run in float.
  const Tensor<float> x = Tensor<float>::randn({8, 3, 16, 16}, gen);
  const auto& bn4 = dynamic_cast<const nn::BatchNorm2d&>(*(*net)[4]);
  const Tensor<float> w0 = dequantized_weight(L[0], {8, 3, 3, 3}), w4 = dequantized_weight(L[4], {16, 8, 3, 3});
  const Tensor<float> w9 = dequantized_weight(L[9], {10, 16});
  auto vec = [](const std::vector<float>& v) { return Tensor<float>::from_vector(v, {static_cast<std::int64_t>(v.size())}); };
  Tensor<float> h = conv2d(fq(x, L[0].input), w0, vec(L[0].bias), {.padding = 1});
  h = avg_pool2d(gelu(h), 2);
  h = batch_norm(h, bn4.running_mean, bn4.running_var, bn4.weight, bn4.bias, false, 0.1, 1e-5);
  h = fq(relu(conv2d(fq(h, L[4].input), w4, vec(L[4].bias), {.padding = 1})), L[6].input);
  h = fq(avg_pool2d(h, 3, 2, 1, true, false), L[7].input);
  h = fq(adaptive_avg_pool2d(h, 1), L[9].input).flatten(1);
  h = log_softmax(linear(h, w9, vec(L[9].bias)), 1);
  const Tensor<float> got = q(x), want_float = net->forward(x);
  // Equal up to a code that rounds the other way now and then (sums in another order).
  const float vs_reference = max_abs_diff(got, h), vs_float = max_abs_diff(got, want_float);
  INFO("max |int8 - reference| = " << vs_reference << ", max |int8 - float| = " << vs_float);
  CHECK(vs_reference < 0.02f);
  CHECK(argmax(got, 1).to_vector() == argmax(h, 1).to_vector());
  // Against the float model (about 2e-3 apart here): the int8 model rounds each conv2d input,
  // each pooling's input and the linear's input to 7-bit codes, half a step (1/254 of the
  // calibrated range) at most each, and its weights to 8 bits; on these log-probabilities of
  // magnitude ~2.5 that stays well inside 0.02, and the predictions agree.
  CHECK(vs_float < 0.02f);
  CHECK(argmax(got, 1).to_vector() == argmax(want_float, 1).to_vector());

  // The file: version 2, every attribute back, the same output bits.
  const auto dir = test::tmp_dir("quant_layers", true);
  const std::string path = (dir / "int8.safetensors").string();
  quant::save_quantized(q, path);
  const io::SafetensorsFile file = io::load_safetensors(path);
  CHECK(file.metadata.at("version") == "2");
  CHECK(file.metadata.at("steps").find("avg_pool2d:8:3,3,2,2,1,1,1,0;adaptive_avg_pool2d:9:1,1") !=
        std::string::npos);
  CHECK(file.metadata.at("steps").find("gelu:2:0;avg_pool2d:3:2,2,2,2,0,0,0,1;batch_norm:4:8") != std::string::npos);
  const quant::QuantizedModel back = quant::load_quantized(path);
  REQUIRE(back.layers().size() == L.size());
  for (std::size_t i = 0; i < L.size(); ++i) {
    INFO("layer " << i);
    CHECK(back.layers()[i].op == L[i].op);
    CHECK(back.layers()[i].input.scale == L[i].input.scale);
    CHECK(back.layers()[i].input.zero_point == L[i].input.zero_point);
    CHECK(back.layers()[i].weight_scale == L[i].weight_scale);
    CHECK(back.layers()[i].bias == L[i].bias);
    CHECK(back.layers()[i].pool.ceil_mode == L[i].pool.ceil_mode);
  }
  CHECK(back(x).to_vector() == got.to_vector());

  // Corrupt files give errors naming the file and the step.
  const auto fails = [&](const std::string& from, const std::string& to, const std::string& message,
                         const std::string& key = "steps") {
    io::SafetensorsFile f = file;
    std::string& v = f.metadata.at(key);
    const std::size_t at = v.find(from);
    REQUIRE(at != std::string::npos);
    v.replace(at, from.size(), to);
    const std::string bad = (dir / "bad.safetensors").string();
    io::save_safetensors(bad, f);
    REQUIRE_THROWS_WITH(quant::load_quantized(bad), Catch::Contains(message) && Catch::Contains("bad.safetensors"));
  };
  fails("avg_pool2d:8:3,3,2,2,1,1,1,0", "avg_pool2d:8:3,3,2,2,1,1,2,0", "ceil_mode and count_include_pad must be 0 or 1");
  fails("avg_pool2d:8:3,3,2,2,1,1,1,0", "avg_pool2d:8:3,3,2,2,2,1,1,0", "padding height 2 is out of range [0, 1]");
  fails("adaptive_avg_pool2d:9:1,1", "adaptive_avg_pool2d:9:0,1", "output height 0 is out of range");
  fails("gelu:2:0", "gelu:2:2", "gelu's argument is 0 (exact) or 1 (tanh)");
  fails("gelu:2:0", "gelu:2", "expected 1 arguments, got 0");
  fails("batch_norm:4:8", "batch_norm:4:9", "tensor '4.weight_scale' has shape [8], expected [9]");
  fails("2", "1", "step 'gelu:2:0': needs version 2 of the format", "version");
  fails("2", "3", "version 3 is newer than this ember reads (1 and 2)", "version");
  {
    io::SafetensorsFile f = file;
    f.tensors.erase("8.input_scale");
    const std::string bad = (dir / "bad.safetensors").string();
    io::save_safetensors(bad, f);
    REQUIRE_THROWS_WITH(quant::load_quantized(bad), Catch::Contains("missing tensor '8.input_scale'"));
  }
}

TEST_CASE("every activation quantizes: what has no int8 form runs in float between int8 layers", "[quant][layers]") {
  Generator gen(29);
  const auto net = test::every_layer_model(gen);
  std::vector<Tensor<float>> calib{Tensor<float>::randn({16, 3, 12, 12}, gen)};
  const quant::QuantizedModel q = quant::quantize(*net, calib);
  CHECK(q.layers().size() == net->size() - 3);  // three batch norms folded
  const Tensor<float> x = Tensor<float>::randn({6, 3, 12, 12}, gen);
  const Tensor<float> got = q(x), want = net->forward(x);
  INFO("max |int8 - float| = " << max_abs_diff(got, want));
  CHECK(max_abs_diff(got, want) < 0.02f);  // about 6e-4 (see the test above for the bound)
  // leaky_relu's and elu's alpha, softmax's dim and gelu's form survive the file exactly.
  const quant::QuantizedModel back = quant::from_safetensors(quant::to_safetensors(q), "memory");
  CHECK(back(x).to_vector() == got.to_vector());
  CHECK(back.layers()[4].alpha == 0.2);
  CHECK(back.layers()[8].alpha == 0.7);

  // What the int8 model cannot lay out is refused, naming the layer.
  nn::Sequential flat{std::make_shared<nn::Flatten>(2), std::make_shared<nn::ReLU>()};
  REQUIRE_THROWS_WITH(quant::quantize(flat, {Tensor<float>::randn({2, 3, 4, 4}, gen)}),
                      Catch::Contains("quantized layer '0' (flatten): only flatten(1) is supported"));
  nn::Sequential over_batch{std::make_shared<nn::Linear>(4, 2), std::make_shared<nn::Softmax>(0)};
  REQUIRE_THROWS_WITH(quant::quantize(over_batch, {Tensor<float>::randn({2, 4}, gen)}),
                      Catch::Contains("quantized layer '1' (softmax): dim 0 is not a dimension of a sample of [2]"));
  nn::Sequential untracked{std::make_shared<nn::BatchNorm2d>(3, 1e-5, 0.1, true, false)};
  REQUIRE_THROWS_WITH(quant::quantize(untracked, {Tensor<float>::randn({2, 3, 4, 4}, gen)}),
                      Catch::Contains("BatchNorm2d '0' (track_running_stats=False)"));
}

TEST_CASE("a module of one's own that lists its children's steps quantizes", "[quant][layers]") {
  Generator gen(37);
  nn::Sequential net{std::make_shared<test::ConvBnSiLU>(1, 4, gen), std::make_shared<nn::MaxPool2d>(2),
                     std::make_shared<test::ConvBnSiLU>(4, 6, gen), std::make_shared<nn::AdaptiveAvgPool2d>(3),
                     std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(54, 10, true, gen)};
  net.eval();
  const auto steps = net.steps();
  REQUIRE(steps.size() == 10);
  CHECK(steps[0].name == "0.conv");
  CHECK(steps[2].name == "0.silu");
  const Tensor<float> x = Tensor<float>::randn({5, 1, 14, 14}, gen);
  CHECK(nn::run_steps(steps, x).to_vector() == net.forward(x).to_vector());
  const quant::QuantizedModel q = quant::quantize(net, {Tensor<float>::randn({16, 1, 14, 14}, gen)});
  CHECK(q.layers().size() == 8);  // both batch norms folded
  CHECK(q.layers()[0].name == "0.conv");
  CHECK(max_abs_diff(q(x), net.forward(x)) < 0.05f);  // logits this time, of magnitude ~1
  const quant::QuantizedModel back = quant::from_safetensors(quant::to_safetensors(q), "memory");
  CHECK(back(x).to_vector() == q(x).to_vector());
}
