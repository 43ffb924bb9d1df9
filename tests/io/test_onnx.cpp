// Tests for ember/io/onnx.hpp: the protobuf encoding, the structure of exported models (read
// back with the independent decoder of support/onnx_reader.hpp), the committed fixture
// (tests/fixtures/onnx: the exact bytes, and onnxruntime's outputs on them, which ember's
// forward must reproduce), Sequential models and every refusal.

#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ember/backend/device_backend.hpp"
#include "ember/io/onnx.hpp"
#include "ember/io/safetensors.hpp"
#include "ember/models/mnist_net.hpp"
#include "ember/nn/layers.hpp"
#include "ember/nn/normalization.hpp"
#include "ember/nn/pooling.hpp"
#include "ember/io/state_dict.hpp"
#include "support/layer_zoo.hpp"
#include "support/onnx_reader.hpp"
#include "support/tmp.hpp"

namespace {

using namespace ember;
using test::decode_onnx;
using test::OnnxModelView;

const std::string fixture_dir = std::string(EMBER_TEST_DIR) + "/fixtures/onnx/";
constexpr std::uint64_t fixture_seed = 7;
const models::MnistNetConfig fixture_widths{4, 8, 16};

std::vector<std::byte> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(c.size());
  if (!c.empty()) std::memcpy(out.data(), c.data(), c.size());
  return out;
}

std::vector<std::uint8_t> as_u8(const std::vector<std::byte>& b) {
  std::vector<std::uint8_t> out;
  for (const std::byte x : b) out.push_back(static_cast<std::uint8_t>(x));
  return out;
}

// A parameter's floats as little-endian bytes, built without the exporter's code.
std::vector<std::byte> le_bytes(const nn::Tensor& t) {
  std::vector<std::byte> out;
  for (const float v : t.to_vector()) {
    const auto u = std::bit_cast<std::uint32_t>(v);
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::byte>((u >> (8 * i)) & 0xFF));
  }
  return out;
}

bool same_bytes(std::span<const std::byte> a, const std::vector<std::byte>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

std::vector<std::string> dims_of(const Shape& s, std::int64_t symbolic_batch) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < s.size(); ++i)
    out.push_back(i == 0 && symbolic_batch ? "N" : std::to_string(s[i]));
  return out;
}

// Checks every value's recorded shape against what ember computes: the output of step i is
// run_steps over the first i + 1 steps.
void check_shapes_against_forward(const nn::Module& m, const OnnxModelView& v, const Shape& in,
                                  bool symbolic_batch) {
  const auto steps = m.steps();
  const nn::Tensor x = nn::Tensor::randn(in);
  std::size_t node = 0;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].op == nn::Step::Op::dropout) continue;
    REQUIRE(node < v.nodes.size());
    const std::vector<nn::Step> prefix(steps.begin(), steps.begin() + static_cast<long>(i) + 1);
    const Shape want = nn::run_steps(prefix, x).shape();
    const std::string& out = v.nodes[node].outputs.at(0);
    INFO("step " << steps[i].name << " -> " << out);
    const auto& info = node + 1 == v.nodes.size() ? v.outputs.at(0) : v.value_info(out);
    CHECK(info.elem_type == 1);
    CHECK(info.dims == dims_of(want, symbolic_batch));
    ++node;
  }
  CHECK(node == v.nodes.size());
}

// A module that does not list its steps.
class Custom : public nn::Module {
 public:
  Custom() : nn::Module("Custom") {}
  nn::Tensor forward(const nn::Tensor& x) override { return x; }
};

// Lists a step whose layer is not one of its own modules.
class Borrowing : public nn::Module {
 public:
  explicit Borrowing(const nn::Linear& other) : nn::Module("Borrowing"), other_(other) {}

 protected:
  [[nodiscard]] std::vector<nn::Step> list_steps(const std::string& prefix) const override {
    return {{.op = nn::Step::Op::linear, .name = prefix + "borrowed", .layer = &other_,
             .weight = other_.weight, .bias = other_.bias}};
  }

 private:
  const nn::Linear& other_;
};

// A "CUDA device" whose memory is host memory: enough for a module to move its parameters to
// cuda:0 (allocation and copies), in a test program without a GPU backend.
class HostMemoryRuntime final : public backend::DeviceRuntime {
 public:
  int device_count() override { return 1; }
  std::string device_name(int) override { return "host memory"; }
  void* allocate(int, std::size_t bytes) override { return ::operator new(bytes == 0 ? 1 : bytes); }
  void deallocate(int, void* p, std::size_t) override { ::operator delete(p); }
  void copy_to_device(int, void* dst, const void* src, std::size_t n) override {
    std::memcpy(dst, src, n);
  }
  void copy_to_host(int, void* dst, const void* src, std::size_t n) override {
    std::memcpy(dst, src, n);
  }
  void copy_on_device(int, void* dst, const void* src, std::size_t n) override {
    std::memcpy(dst, src, n);
  }
  void synchronize(int) override {}
  bool capturing(int) override { return false; }
  void* graph_begin_capture(int) override { throw Error("no graphs here"); }
  void graph_end_capture(void*) override {}
  void graph_replay(void*) override {}
  void graph_destroy(void*) noexcept override {}
  void set_gemm_backend(const std::string&) override {}
  void set_conv_backend(const std::string&) override {}
  std::string gemm_backend() override { return "custom"; }
  std::string conv_backend() override { return "custom"; }
};

}  // namespace

TEST_CASE("ProtoWriter writes protobuf's wire format", "[io][onnx]") {
  using io::detail::ProtoWriter;
  auto hex = [](const ProtoWriter& w) { return as_u8(w.bytes()); };
  ProtoWriter a;
  a.varint_field(1, 0);
  a.varint_field(1, 1);
  a.varint_field(2, 300);  // the example of protobuf's encoding guide
  CHECK(hex(a) == std::vector<std::uint8_t>{0x08, 0x00, 0x08, 0x01, 0x10, 0xAC, 0x02});

  ProtoWriter b;
  b.int_field(3, -1);  // int64 -1: ten bytes
  CHECK(hex(b) == std::vector<std::uint8_t>{0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                            0xFF, 0x01});

  ProtoWriter c;
  c.float_field(2, 1.0f);   // fixed32, little-endian IEEE 754
  c.float_field(2, -2.5f);  // 0xC0200000
  CHECK(hex(c) ==
        std::vector<std::uint8_t>{0x15, 0x00, 0x00, 0x80, 0x3F, 0x15, 0x00, 0x00, 0x20, 0xC0});

  ProtoWriter d;
  d.string_field(4, "Relu");
  d.int_field(20, 2);  // a two-byte key: (20 << 3) | 0 = 160
  CHECK(hex(d) == std::vector<std::uint8_t>{0x22, 0x04, 'R', 'e', 'l', 'u', 0xA0, 0x01, 0x02});

  ProtoWriter inner, outer;
  inner.varint_field(1, 150);
  outer.message_field(3, inner);
  CHECK(hex(outer) == std::vector<std::uint8_t>{0x1A, 0x03, 0x08, 0x96, 0x01});

  ProtoWriter big;  // a length that itself takes two varint bytes
  big.string_field(1, std::string(200, 'x'));
  REQUIRE(big.bytes().size() == 203);
  CHECK(as_u8({big.bytes().begin(), big.bytes().begin() + 3}) ==
        std::vector<std::uint8_t>{0x0A, 0xC8, 0x01});

  CHECK_THROWS_WITH(ProtoWriter().varint_field(0, 1), Catch::Contains("invalid field number 0"));
}

TEST_CASE("an exported MnistNet has the right graph, attributes and initializers", "[io][onnx]") {
  Generator gen(3);
  models::MnistNet net(fixture_widths, gen);
  const std::vector<std::byte> bytes = io::to_onnx_bytes(net);
  const OnnxModelView v = decode_onnx(bytes);

  CHECK(v.ir_version == 7);
  CHECK(v.opset_domain.empty());
  CHECK(v.opset_version == 13);
  CHECK(v.producer_name == "ember");
  CHECK(v.producer_version == "0.1.0");
  CHECK(v.graph_name == "Net");
  // Fields in field-number order, as protobuf's serializers write them.
  CHECK(v.model_fields == std::vector<int>{1, 2, 3, 7, 8});
  CHECK(std::is_sorted(v.graph_fields.begin(), v.graph_fields.end()));

  std::vector<std::string> ops, names;
  for (const auto& n : v.nodes) {
    ops.push_back(n.op_type);
    names.push_back(n.name);
  }
  CHECK(ops == std::vector<std::string>{"Conv", "Relu", "Conv", "Relu", "MaxPool", "Flatten",
                                        "Gemm", "Relu", "Gemm", "LogSoftmax"});
  CHECK(names == std::vector<std::string>{"conv1", "relu", "conv2", "relu_1", "max_pool2d",
                                          "flatten", "fc1", "relu_2", "fc2", "log_softmax"});
  // Each node reads the previous one's output; the first reads the input, the last writes the
  // output.
  CHECK(v.nodes.front().inputs == std::vector<std::string>{"input", "conv1.weight", "conv1.bias"});
  for (std::size_t i = 1; i < v.nodes.size(); ++i)
    CHECK(v.nodes[i].inputs.at(0) == v.nodes[i - 1].outputs.at(0));
  CHECK(v.nodes[6].inputs == std::vector<std::string>{"flatten_output", "fc1.weight", "fc1.bias"});
  CHECK(v.nodes.back().outputs == std::vector<std::string>{"log_probs"});
  for (const auto& n : v.nodes) CHECK(n.outputs.size() == 1);

  const auto& conv = v.nodes[2];
  CHECK(conv.attribute("dilations").ints == std::vector<std::int64_t>{1, 1});
  CHECK(conv.attribute("dilations").type == 7);
  CHECK(conv.attribute("group").i == 1);
  CHECK(conv.attribute("group").type == 2);
  CHECK(conv.attribute("kernel_shape").ints == std::vector<std::int64_t>{3, 3});
  CHECK(conv.attribute("pads").ints == std::vector<std::int64_t>{0, 0, 0, 0});
  CHECK(conv.attribute("strides").ints == std::vector<std::int64_t>{1, 1});
  const auto& pool = v.nodes[4];
  CHECK(pool.attribute("ceil_mode").i == 0);
  CHECK(pool.attribute("kernel_shape").ints == std::vector<std::int64_t>{2, 2});
  CHECK(pool.attribute("pads").ints == std::vector<std::int64_t>{0, 0, 0, 0});
  CHECK(pool.attribute("strides").ints == std::vector<std::int64_t>{2, 2});
  CHECK(v.nodes[5].attribute("axis").i == 1);
  const auto& gemm = v.nodes[8];
  CHECK(gemm.attribute("alpha").f == 1.0f);
  CHECK(gemm.attribute("alpha").type == 1);
  CHECK(gemm.attribute("beta").f == 1.0f);
  CHECK(gemm.attribute("transB").i == 1);
  CHECK(v.nodes[9].attribute("axis").i == 1);
  CHECK(v.nodes[1].attributes.empty());

  // Initializers: the state_dict, in its order, as FLOAT raw data equal to the parameters.
  const auto params = net.named_parameters();
  REQUIRE(v.initializers.size() == params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    INFO(params[i].first);
    CHECK(v.initializers[i].name == params[i].first);
    CHECK(v.initializers[i].data_type == 1);
    CHECK(v.initializers[i].dims == params[i].second.shape());
    CHECK(same_bytes(v.initializers[i].raw_data, le_bytes(params[i].second)));
  }
  CHECK(v.initializers[4].dims == std::vector<std::int64_t>{16, 8 * 12 * 12});

  REQUIRE(v.inputs.size() == 1);
  CHECK(v.inputs[0].name == "input");
  CHECK(v.inputs[0].dims == std::vector<std::string>{"N", "1", "28", "28"});
  REQUIRE(v.outputs.size() == 1);
  CHECK(v.outputs[0].name == "log_probs");
  CHECK(v.outputs[0].dims == std::vector<std::string>{"N", "10"});
  CHECK(v.value_infos.size() == v.nodes.size() - 1);
  CHECK(v.value_info("max_pool2d_output").dims == std::vector<std::string>{"N", "8", "12", "12"});
  check_shapes_against_forward(net, v, {2, 1, 28, 28}, true);

  // The same model gives the same bytes; export_onnx writes exactly them.
  CHECK(io::to_onnx_bytes(net) == bytes);
  const std::string path = (test::tmp_dir("onnx") / "net.onnx").string();
  io::export_onnx(net, path);
  CHECK(read_bytes(path) == bytes);
}

TEST_CASE("options: fixed batch, names, opset", "[io][onnx]") {
  Generator gen(4);
  models::MnistNet net(fixture_widths, gen);
  io::OnnxExportOptions o;
  o.input_shape = {5, 1, 28, 28};
  o.input_name = "image";
  o.output_name = "scores";
  o.opset = 21;
  const std::vector<std::byte> bytes = io::to_onnx_bytes(net, o);
  const OnnxModelView v = decode_onnx(bytes);
  CHECK(v.ir_version == 10);
  CHECK(v.opset_version == 21);
  CHECK(v.inputs.at(0).name == "image");
  CHECK(v.inputs.at(0).dims == std::vector<std::string>{"5", "1", "28", "28"});
  CHECK(v.outputs.at(0).name == "scores");
  CHECK(v.outputs.at(0).dims == std::vector<std::string>{"5", "10"});
  CHECK(v.nodes.front().inputs.at(0) == "image");
  check_shapes_against_forward(net, v, {5, 1, 28, 28}, false);

  CHECK(io::onnx_ir_version(13) == 7);
  CHECK(io::onnx_ir_version(15) == 8);
  CHECK(io::onnx_ir_version(19) == 9);
  o.batch_name = "batch";
  o.input_shape = {-1, 1, 28, 28};
  CHECK(decode_onnx(io::to_onnx_bytes(net, o)).outputs.at(0).dims ==
        std::vector<std::string>{"batch", "10"});
}

TEST_CASE("the committed fixture: exact bytes of a small MnistNet", "[io][onnx][fixture]") {
  Generator gen(fixture_seed);
  models::MnistNet net(fixture_widths, gen);
  const std::vector<std::byte> bytes = io::to_onnx_bytes(net);
  const std::vector<std::byte> fixture = read_bytes(fixture_dir + "small_mnist_net.onnx");
  if (bytes != fixture) {
    const std::string fresh = (test::tmp_dir("onnx") / "small_mnist_net.onnx").string();
    io::write_file_atomic(fresh, bytes);
    FAIL("the export differs from tests/fixtures/onnx/small_mnist_net.onnx ("
         << bytes.size() << " vs " << fixture.size() << " bytes); the new export is " << fresh
         << ". If the change is intended, regenerate the fixtures (tests/fixtures/onnx/README.md)");
  }
}

TEST_CASE("ember's forward reproduces onnxruntime's outputs on the fixture",
          "[io][onnx][fixture]") {
  // small_mnist_net.expected.safetensors: inputs and onnxruntime's outputs on
  // small_mnist_net.onnx (scripts/check_onnx.py --make-fixture), which the test above shows is
  // exactly what ember exports for this model.
  const io::SafetensorsFile f =
      io::load_safetensors(fixture_dir + "small_mnist_net.expected.safetensors");
  auto tensor = [&](const std::string& name) {
    const io::TensorRecord& r = f.tensors.at(name);
    REQUIRE(r.dtype == "F32");
    nn::Tensor t = nn::Tensor::empty(r.shape);
    REQUIRE(r.data.size() == static_cast<std::size_t>(t.numel()) * 4);
    std::memcpy(t.data(), r.data.data(), r.data.size());
    return t;
  };
  const nn::Tensor x = tensor("input"), expected = tensor("log_probs");
  REQUIRE(x.shape() == Shape{8, 1, 28, 28});
  REQUIRE(expected.shape() == Shape{8, 10});
  CHECK(f.metadata.at("onnx_file") == "small_mnist_net.onnx");

  Generator gen(fixture_seed);
  models::MnistNet net(fixture_widths, gen);
  net.eval();
  NoGradGuard no_grad;
  const std::vector<float> want = expected.to_vector();
  for (const nn::Tensor& got : {nn::run_steps(net.steps(), x), net.forward(x)}) {
    REQUIRE(got.shape() == expected.shape());
    const std::vector<float> g = got.to_vector();
    double max_diff = 0;
    for (std::size_t i = 0; i < g.size(); ++i)
      max_diff = std::max(max_diff, std::abs(static_cast<double>(g[i]) - want[i]));
    INFO("max |ember - onnxruntime| = " << max_diff);
    CHECK(max_diff <= 1e-5);
  }
}

TEST_CASE("a Sequential exports with PyTorch's index names", "[io][onnx]") {
  Generator gen(5);
  auto conv = std::make_shared<nn::Conv2d>(
      2, 3, 3, Conv2dOptions{.stride = 2, .padding = 1, .dilation = 2}, true, gen);
  nn::Sequential seq{conv,
                     std::make_shared<nn::ReLU>(),
                     std::make_shared<nn::MaxPool2d>(3, 2, 1),
                     std::make_shared<nn::Dropout2d>(0.3, gen),
                     std::make_shared<nn::Flatten>(-3),
                     std::make_shared<nn::Linear>(3 * 3 * 3, 4, false, gen),
                     std::make_shared<nn::LogSoftmax>(-1),
                     std::make_shared<nn::Dropout>(0.5, gen)};
  io::OnnxExportOptions o;
  o.input_shape = {-1, 2, 11, 11};
  o.output_name = "y";
  const std::vector<std::byte> bytes = io::to_onnx_bytes(seq, o);
  const OnnxModelView v = decode_onnx(bytes);

  CHECK(v.graph_name == "Sequential");
  std::vector<std::string> ops, names;
  for (const auto& n : v.nodes) {
    ops.push_back(n.op_type);
    names.push_back(n.name);
  }
  CHECK(ops ==
        std::vector<std::string>{"Conv", "Relu", "MaxPool", "Flatten", "Gemm", "LogSoftmax"});
  CHECK(names == std::vector<std::string>{"0", "1", "2", "4", "5", "6"});
  CHECK(v.nodes[0].inputs == std::vector<std::string>{"input", "0.weight", "0.bias"});
  CHECK(v.nodes[0].attribute("strides").ints == std::vector<std::int64_t>{2, 2});
  CHECK(v.nodes[0].attribute("pads").ints == std::vector<std::int64_t>{1, 1, 1, 1});
  CHECK(v.nodes[0].attribute("dilations").ints == std::vector<std::int64_t>{2, 2});
  CHECK(v.nodes[2].attribute("kernel_shape").ints == std::vector<std::int64_t>{3, 3});
  CHECK(v.nodes[2].attribute("pads").ints == std::vector<std::int64_t>{1, 1, 1, 1});
  CHECK(v.nodes[2].attribute("strides").ints == std::vector<std::int64_t>{2, 2});
  CHECK(v.nodes[3].inputs.at(0) == "2_output");  // the dropout in between is skipped
  CHECK(v.nodes[3].attribute("axis").i == 1);    // start_dim -3 of a rank-4 tensor
  CHECK(v.nodes[4].inputs == std::vector<std::string>{"4_output", "5.weight"});  // no bias
  CHECK(v.nodes[5].attribute("axis").i == 1);                                    // dim -1
  CHECK(v.nodes[5].outputs == std::vector<std::string>{"y"});  // a trailing dropout is skipped

  REQUIRE(v.initializers.size() == 3);
  CHECK(v.initializers[0].name == "0.weight");
  CHECK(v.initializers[0].dims == std::vector<std::int64_t>{3, 2, 3, 3});
  CHECK(same_bytes(v.initializers[0].raw_data, le_bytes(conv->weight)));
  CHECK(v.initializers[1].name == "0.bias");
  CHECK(v.initializers[2].name == "5.weight");
  CHECK(v.initializers[2].dims == std::vector<std::int64_t>{4, 27});
  check_shapes_against_forward(seq, v, {2, 2, 11, 11}, true);

  // A bare layer: its step has no name, so the node is named after the op.
  nn::Linear lin(6, 2, true, gen);
  io::OnnxExportOptions lo;
  lo.input_shape = {-1, 6};
  const OnnxModelView lv = decode_onnx(io::to_onnx_bytes(lin, lo));
  REQUIRE(lv.nodes.size() == 1);
  CHECK(lv.nodes[0].name == "linear");
  CHECK(lv.nodes[0].inputs == std::vector<std::string>{"input", "weight", "bias"});
  CHECK(lv.graph_name == "Linear");
}

TEST_CASE("models that cannot be exported are refused with the reason", "[io][onnx]") {
  Generator gen(6);
  auto contains = [](const std::string& s) { return Catch::Contains(s); };

  SECTION("a module without steps") {
    Custom c;
    CHECK_THROWS_WITH(io::to_onnx_bytes(c),
                      contains("Custom does not list its forward as steps, so it cannot be "
                               "exported"));
    nn::Sequential seq{std::make_shared<nn::ReLU>(), std::make_shared<Custom>()};
    CHECK_THROWS_WITH(io::to_onnx_bytes(seq), contains("Custom does not list its forward"));
  }
  SECTION("Flatten with an end_dim other than -1") {
    nn::Sequential seq{std::make_shared<nn::Flatten>(1, 2)};
    CHECK_THROWS_WITH(io::to_onnx_bytes(seq),
                      contains("Flatten(start_dim=1, end_dim=2): only end_dim -1"));
  }
  SECTION("Flatten from a dim other than 1") {
    nn::Sequential seq{std::make_shared<nn::Flatten>(2), std::make_shared<nn::ReLU>()};
    CHECK_THROWS_WITH(io::to_onnx_bytes(seq),
                      contains("step '0' (flatten) gets input shape [N, 1, 28, 28]: "
                               "flatten(start_dim=2) cannot be written as ONNX Flatten"));
  }
  SECTION("steps that do not fit the input shape") {
    nn::Sequential conv{std::make_shared<nn::Conv2d>(3, 4, 3, Conv2dOptions{}, true, gen)};
    CHECK_THROWS_WITH(io::to_onnx_bytes(conv),
                      contains("ONNX export of Sequential: step '0' (conv2d) gets input shape "
                               "[N, 1, 28, 28]: the layer has 3 input channels"));
    io::OnnxExportOptions tiny;
    tiny.input_shape = {-1, 3, 2, 2};
    CHECK_THROWS_WITH(io::to_onnx_bytes(conv, tiny), contains("smaller than the kernel"));
    nn::Sequential lin{std::make_shared<nn::Linear>(784, 10, true, gen)};
    CHECK_THROWS_WITH(io::to_onnx_bytes(lin),
                      contains("step '0' (linear) gets input shape [N, 1, 28, 28]: Gemm takes "
                               "(N, features); flatten first"));
    io::OnnxExportOptions flat;
    flat.input_shape = {-1, 100};
    CHECK_THROWS_WITH(io::to_onnx_bytes(lin, flat), contains("the layer has 784 input features"));
    nn::Sequential pool{std::make_shared<nn::MaxPool2d>(2)};
    CHECK_THROWS_WITH(io::to_onnx_bytes(pool, flat), contains("MaxPool takes (N, C, H, W)"));
    nn::Sequential soft{std::make_shared<nn::LogSoftmax>(2)};
    CHECK_THROWS_WITH(io::to_onnx_bytes(soft, flat),
                      contains("(log_softmax) gets input shape [N, 100]: dim 2 is out of range"));
  }
  SECTION("nothing but dropout") {
    nn::Sequential seq{std::make_shared<nn::Dropout>(0.5, gen)};
    CHECK_THROWS_WITH(io::to_onnx_bytes(seq), contains("nothing but the identity"));
    nn::Sequential empty;
    CHECK_THROWS_WITH(io::to_onnx_bytes(empty), contains("nothing but the identity"));
  }
  SECTION("a step whose layer is not the model's") {
    nn::Linear other(4, 2, true, gen);
    Borrowing b(other);
    io::OnnxExportOptions o;
    o.input_shape = {-1, 4};
    CHECK_THROWS_WITH(io::to_onnx_bytes(b, o),
                      contains("step 'borrowed': its weight is not one of the model's "
                               "parameters"));
  }
  SECTION("bad options") {
    models::MnistNet net(fixture_widths, gen);
    io::OnnxExportOptions o;
    o.opset = 12;
    CHECK_THROWS_WITH(io::to_onnx_bytes(net, o), contains("operator set 12 is not supported"));
    o.opset = 22;
    CHECK_THROWS_WITH(io::to_onnx_bytes(net, o), contains("operator set 22 is not supported"));
    o = {};
    o.input_shape = {-1, 0, 28, 28};
    CHECK_THROWS_WITH(io::to_onnx_bytes(net, o),
                      contains("input shape [-1, 0, 28, 28]: dimension 1 is 0"));
    o.input_shape = {2, -1, 28, 28};
    CHECK_THROWS_WITH(io::to_onnx_bytes(net, o), contains("dimension 1 is -1"));
    o.input_shape = {};
    CHECK_THROWS_WITH(io::to_onnx_bytes(net, o), contains("the input shape is empty"));
    o = {};
    o.output_name = "input";
    CHECK_THROWS_WITH(io::to_onnx_bytes(net, o), contains("must be non-empty and differ"));
    o = {};
    o.output_name = "fc2.bias";
    CHECK_THROWS_WITH(io::to_onnx_bytes(net, o),
                      contains("the name 'fc2.bias' is a parameter's name; choose another"));
    o = {};
    o.batch_name = "";
    CHECK_THROWS_WITH(io::to_onnx_bytes(net, o), contains("needs a name"));
  }
  SECTION("a file that cannot be written") {
    models::MnistNet net(fixture_widths, gen);
    CHECK_THROWS_WITH(io::export_onnx(net, "/nonexistent-dir/net.onnx"),
                      contains("cannot write '/nonexistent-dir/net.onnx'"));
  }
}

TEST_CASE("parameters off the CPU are refused", "[io][onnx]") {
  // Registered for this test program only; no other test here uses a CUDA device.
  static HostMemoryRuntime runtime;
  if (!backend::cuda_backend_present()) backend::register_cuda_backend({.runtime = &runtime});
  Generator gen(8);
  models::MnistNet net(fixture_widths, gen);
  net.to(Device::cuda(0));
  REQUIRE(net.conv1->weight.device() == Device::cuda(0));
  CHECK_THROWS_WITH(io::to_onnx_bytes(net),
                    Catch::Contains("ONNX export of Net: parameter 'conv1.weight' is on cuda:0; "
                                    "ONNX initializers are read from the CPU"));
  net.to(Device::cpu());
  CHECK(decode_onnx(io::to_onnx_bytes(net)).initializers.size() == 8);
}

namespace {

constexpr std::uint64_t every_layer_seed = 31;

nn::Tensor fixture_tensor(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorRecord& r = f.tensors.at(name);
  REQUIRE(r.dtype == "F32");
  nn::Tensor t = nn::Tensor::empty(r.shape);
  REQUIRE(r.data.size() == static_cast<std::size_t>(t.numel()) * 4);
  std::memcpy(t.data(), r.data.data(), r.data.size());
  return t;
}

// Every value's recorded shape: a value is named after its step ("7_output", "2_erf"), and
// has the shape of that layer's output in ember's forward (a folded conv2d's output is its
// batch norm's, of the same shape).
void check_every_value_shape(nn::Sequential& m, const OnnxModelView& v, const Shape& in) {
  std::vector<Shape> outputs;
  nn::Tensor h = nn::Tensor::randn(in);
  for (std::size_t i = 0; i < m.size(); ++i) outputs.push_back((h = m[i]->forward(h)).shape());
  for (const auto& info : v.value_infos) {
    INFO(info.name);
    const std::size_t step = std::stoul(info.name.substr(0, info.name.find('_')));
    REQUIRE(step < outputs.size());
    CHECK(info.elem_type == 1);
    CHECK(info.dims == dims_of(outputs[step], 1));
  }
  CHECK(v.outputs.at(0).dims == dims_of(outputs.back(), 1));
}

}  // namespace

TEST_CASE("a Sequential of every layer exports: folded batch norms, GELU by formula or Gelu",
          "[io][onnx][layers]") {
  Generator gen(every_layer_seed);
  const auto model = test::every_layer_model(gen);
  io::OnnxExportOptions o;
  o.input_shape = {-1, 3, 12, 12};
  const std::vector<std::byte> bytes = io::to_onnx_bytes(*model, o);
  const OnnxModelView v = decode_onnx(bytes);

  std::vector<std::string> ops, names;
  for (const auto& n : v.nodes) {
    ops.push_back(n.op_type);
    names.push_back(n.name);
  }
  CHECK(ops == std::vector<std::string>{
                   "Conv", "Mul", "Erf", "Add", "Mul", "Mul", "AveragePool", "Conv", "LeakyRelu", "MaxPool",
                   "AveragePool", "BatchNormalization", "Elu", "Softmax", "Sigmoid", "Mul", "Tanh",
                   "AveragePool", "Sigmoid", "Mul", "Mul", "Mul", "Add", "Mul", "Tanh", "Add", "Mul", "Mul",
                   "GlobalAveragePool", "Flatten", "Gemm", "Relu", "Gemm", "LogSoftmax"});
  CHECK(names[0] == "0");
  CHECK(names[1] == "2/Mul");
  CHECK(names[4] == "2/Mul_1");
  CHECK(names[11] == "9");
  // Each node reads what the one before wrote (the nodes of one step may also read its input).
  for (std::size_t i = 1; i < v.nodes.size(); ++i) {
    const auto& in = v.nodes[i].inputs;
    CHECK(std::find(in.begin(), in.end(), v.nodes[i - 1].outputs.at(0)) != in.end());
  }
  CHECK(v.nodes[5].outputs.at(0) == "2_output");
  CHECK(v.nodes[3].inputs.at(1) == "const_1");
  CHECK(v.nodes[4].inputs == std::vector<std::string>{"0_output", "2_add"});

  // Folded conv and linear: weights computed from the layer and its batch norm.
  CHECK(v.nodes[0].inputs == std::vector<std::string>{"input", "0.weight_folded", "0.bias_folded"});
  CHECK(v.nodes[30].inputs == std::vector<std::string>{"18_output", "19.weight_folded", "19.bias_folded"});
  CHECK(v.nodes[32].inputs == std::vector<std::string>{"21_output", "23.weight",
                                                      "23.bias"});
  const auto folded = nn::fold_batch_norm(model->steps());
  for (const auto& t : v.initializers) {
    if (t.name == "0.weight_folded") CHECK(same_bytes(t.raw_data, le_bytes(folded[0].weight)));
    if (t.name == "19.bias_folded") CHECK(same_bytes(t.raw_data, le_bytes(folded[17].bias)));
    if (t.name == "const_0.5") CHECK(t.dims.empty());
  }
  // The unfolded batch norm: its four tensors under their state_dict names.
  CHECK(v.nodes[11].inputs ==
        std::vector<std::string>{"8_output", "9.weight", "9.bias", "9.running_mean",
                                 "9.running_var"});
  CHECK(v.nodes[11].attribute("epsilon").f == 1e-5f);

  const auto& avg = v.nodes[6];
  CHECK(avg.attribute("kernel_shape").ints == std::vector<std::int64_t>{3, 3});
  CHECK(avg.attribute("strides").ints == std::vector<std::int64_t>{2, 2});
  CHECK(avg.attribute("pads").ints == std::vector<std::int64_t>{1, 1, 1, 1});
  CHECK(avg.attribute("ceil_mode").i == 0);
  CHECK(avg.attribute("count_include_pad").i == 1);
  CHECK(v.nodes[10].attribute("ceil_mode").i == 1);
  CHECK(v.nodes[10].attribute("count_include_pad").i == 0);
  CHECK(v.nodes[17].attribute("kernel_shape").ints == std::vector<std::int64_t>{2, 2});  // adaptive 4x4 -> 2x2
  CHECK(v.nodes[17].attribute("strides").ints == std::vector<std::int64_t>{2, 2});
  CHECK(v.nodes[8].attribute("alpha").f == 0.2f);
  CHECK(v.nodes[12].attribute("alpha").f == 0.7f);
  CHECK(v.nodes[13].attribute("axis").i == 1);
  CHECK(v.nodes[33].attribute("axis").i == 1);  // dim -1 of (N, 5)
  check_every_value_shape(*model, v, {2, 3, 12, 12});

  // Operator set 20 has Gelu.
  io::OnnxExportOptions o20 = o;
  o20.opset = 20;
  const std::vector<std::byte> bytes20 = io::to_onnx_bytes(*model, o20);
  const OnnxModelView v20 = decode_onnx(bytes20);
  std::vector<const test::OnnxNodeView*> gelus;
  for (const auto& n : v20.nodes)
    if (n.op_type == "Gelu") gelus.push_back(&n);
  REQUIRE(gelus.size() == 2);
  CHECK(gelus[0]->name == "2");
  CHECK(gelus[0]->attribute("approximate").s == "none");
  CHECK(gelus[0]->attribute("approximate").type == 3);
  CHECK(gelus[1]->attribute("approximate").s == "tanh");
  CHECK(v20.nodes.size() == v.nodes.size() - 4 - 8);
  check_every_value_shape(*model, v20, {2, 3, 12, 12});

  // The files scripts/check_onnx_layers.py checks with onnxruntime and PyTorch: both exports,
  // the float model, and an input with ember's output on it.
  const auto dir = test::tmp_dir("onnx_layers", true);
  io::write_file_atomic((dir / "every_layer.onnx").string(), bytes);
  io::write_file_atomic((dir / "every_layer_opset20.onnx").string(), bytes20);
  io::save(*model, (dir / "every_layer.safetensors").string());
  Generator input_gen(every_layer_seed + 1);
  const nn::Tensor x = nn::Tensor::randn({6, 3, 12, 12}, input_gen);
  io::SafetensorsFile out;
  out.tensors["input"] = io::to_record(x);
  out.tensors["log_probs"] = io::to_record(model->forward(x));
  io::save_safetensors((dir / "every_layer.ember.safetensors").string(), out);
}

TEST_CASE("the committed every-layer fixture: exact bytes, and ember reproduces onnxruntime",
          "[io][onnx][fixture][layers]") {
  Generator gen(every_layer_seed);
  const auto model = test::every_layer_model(gen);
  io::OnnxExportOptions o;
  o.input_shape = {-1, 3, 12, 12};
  const std::vector<std::byte> bytes = io::to_onnx_bytes(*model, o);
  if (bytes != read_bytes(fixture_dir + "every_layer.onnx")) {
    const std::string fresh = (test::tmp_dir("onnx") / "every_layer.onnx").string();
    io::write_file_atomic(fresh, bytes);
    FAIL("the export differs from tests/fixtures/onnx/every_layer.onnx; the new export is "
         << fresh << " (tests/fixtures/onnx/README.md says how to regenerate the fixtures)");
  }
  // every_layer.expected.safetensors: onnxruntime's outputs on the file above
  // (scripts/check_onnx_layers.py --make-fixture).
  const io::SafetensorsFile f = io::load_safetensors(fixture_dir + "every_layer.expected.safetensors");
  const nn::Tensor x = fixture_tensor(f, "input"), expected = fixture_tensor(f, "log_probs");
  REQUIRE(expected.shape() == Shape{6, 5});
  NoGradGuard no_grad;
  const std::vector<float> want = expected.to_vector();
  for (const nn::Tensor& got : {nn::run_steps(model->steps(), x), model->forward(x)}) {
    REQUIRE(got.shape() == expected.shape());
    const std::vector<float> g = got.to_vector();
    double max_diff = 0;
    for (std::size_t i = 0; i < g.size(); ++i)
      max_diff = std::max(max_diff, std::abs(static_cast<double>(g[i]) - want[i]));
    INFO("max |ember - onnxruntime| = " << max_diff);
    CHECK(max_diff <= 1e-5);
  }
}

TEST_CASE("layers that ONNX cannot express are refused, naming the layer", "[io][onnx][layers]") {
  auto contains = [](const std::string& s) { return Catch::Contains(s); };
  nn::Sequential adaptive{std::make_shared<nn::AdaptiveAvgPool2d>(3)};
  CHECK_THROWS_WITH(io::to_onnx_bytes(adaptive),
                    contains("step '0' (adaptive_avg_pool2d) gets input shape [N, 1, 28, 28]: adaptive pooling "
                             "to 3 x 3 has windows of unequal sizes"));
  nn::Sequential even{std::make_shared<nn::AdaptiveAvgPool2d>(Size2{7, 4})};
  CHECK(decode_onnx(io::to_onnx_bytes(even)).nodes.at(0).attribute("kernel_shape").ints ==
        std::vector<std::int64_t>{4, 7});
  nn::Sequential untracked{std::make_shared<nn::BatchNorm2d>(1, 1e-5, 0.1, true, false)};
  CHECK_THROWS_WITH(io::to_onnx_bytes(untracked), contains("BatchNorm2d '0' (track_running_stats=False)"));
  nn::Sequential wide{std::make_shared<nn::BatchNorm2d>(3)};
  CHECK_THROWS_WITH(io::to_onnx_bytes(wide),
                    contains("step '0' (batch_norm) gets input shape [N, 1, 28, 28]: the layer normalizes 3 "
                             "channels"));
  nn::Sequential pool{std::make_shared<nn::AvgPool2d>(3, 2, 2)};
  CHECK_THROWS_WITH(io::to_onnx_bytes(pool), contains("step '0' (avg_pool2d)") && contains("padding 2x2"));
  // A non-affine batch norm gets ones and zeros.
  nn::Sequential plain{std::make_shared<nn::ReLU>(), std::make_shared<nn::BatchNorm2d>(1, 1e-3, 0.1, false)};
  const auto pv = decode_onnx(io::to_onnx_bytes(plain));
  CHECK(pv.nodes.at(1).inputs == std::vector<std::string>{"0_output", "1.weight", "1.bias", "1.running_mean",
                                                          "1.running_var"});
  CHECK(pv.nodes.at(1).attribute("epsilon").f == 1e-3f);
}

TEST_CASE("AvgPool2d's ceil_mode: PyTorch's windows and sizes in ONNX's terms", "[io][onnx][layers]") {
  // PyTorch drops a last window that would start in the padding (5 -> 3 here, ONNX's formula
  // says 4): written with ceil_mode 0, which gives the same windows and size. Where rounding
  // up adds a window (6 -> 4), ceil_mode 1.
  struct Case {
    std::int64_t kernel, stride, padding, in, ceil_attr, out;
  };
  for (const Case c : {Case{2, 2, 1, 5, 0, 3}, Case{3, 2, 1, 6, 1, 4}, Case{2, 2, 0, 5, 1, 3}, Case{3, 3, 1, 5, 0, 2}}) {
    nn::Sequential m{std::make_shared<nn::AvgPool2d>(c.kernel, c.stride, c.padding, true)};
    io::OnnxExportOptions o;
    o.input_shape = {-1, 2, c.in, c.in};
    const OnnxModelView v = decode_onnx(io::to_onnx_bytes(m, o));
    INFO("kernel " << c.kernel << " stride " << c.stride << " padding " << c.padding << " input " << c.in);
    CHECK(v.nodes.at(0).attribute("ceil_mode").i == c.ceil_attr);
    const auto want = m.forward(nn::Tensor::ones({1, 2, c.in, c.in})).shape();
    CHECK(want[2] == c.out);
    CHECK(v.outputs.at(0).dims == dims_of(want, 1));
  }
  nn::Sequential mixed{std::make_shared<nn::AvgPool2d>(3, 2, 1, true)};  // 5 -> 3 either way, 6 -> 4
  io::OnnxExportOptions o;
  o.input_shape = {-1, 1, 5, 6};
  CHECK_THROWS_WITH(io::to_onnx_bytes(mixed, o), Catch::Contains("ceil_mode rounds the output height up but not"));
}

TEST_CASE("a module of one's own that lists its children's steps exports", "[io][onnx][layers]") {
  Generator gen(38);
  nn::Sequential net{std::make_shared<test::ConvBnSiLU>(1, 4, gen), std::make_shared<nn::AdaptiveAvgPool2d>(1),
                     std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(4, 3, true, gen)};
  const OnnxModelView v = decode_onnx(io::to_onnx_bytes(net));
  std::vector<std::string> ops;
  for (const auto& n : v.nodes) ops.push_back(n.op_type);
  CHECK(ops == std::vector<std::string>{"Conv", "Sigmoid", "Mul", "GlobalAveragePool", "Flatten", "Gemm"});
  // No bias on the conv: the folded one is the batch norm's shift.
  CHECK(v.nodes[0].inputs == std::vector<std::string>{"input", "0.conv.weight_folded", "0.conv.bias_folded"});
  CHECK(v.nodes[1].name == "0.silu/Sigmoid");
  CHECK(v.outputs.at(0).dims == std::vector<std::string>{"N", "3"});
}
