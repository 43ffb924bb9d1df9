// The PyTorch round trip of a model file, both ways, against fixtures that PyTorch wrote
// (tests/golden/roundtrip_*.safetensors, made by tests/golden/make_roundtrip.py):
//   PyTorch -> ember: a state_dict trained in PyTorch loads strictly into MnistNet and gives
//     PyTorch's eval-mode log-probabilities (within 1e-5) and the same predictions;
//   ember -> PyTorch: the files ember saves hold exactly the keys, dtypes and shapes of
//     PyTorch's state_dict (what load_state_dict(strict=True) needs), laid out as
//     safetensors.torch.load_file reads them, with the tensors' bytes as PyTorch writes them.
// scripts/roundtrip_pytorch.py runs the same round trip with PyTorch itself on real MNIST.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "ember/autograd/grad_mode.hpp"
#include "ember/data/normalize.hpp"
#include "ember/io/json_reader.hpp"
#include "ember/io/state_dict.hpp"
#include "ember/models/mnist_net.hpp"
#include "ember/ops/reduce.hpp"
#include "support/golden.hpp"
#include "support/tmp.hpp"

namespace {

using namespace ember;
using Catch::Contains;
using io::detail::JsonKind;
using io::detail::JsonReader;
using test::Golden;

const std::string weights_path =
    std::string(EMBER_TEST_DIR) + "/golden/roundtrip_weights.safetensors";
constexpr models::MnistNetConfig small_config{4, 8, 16};
constexpr double log_prob_tolerance = 1e-5;  // absolute

std::string temp_file(const std::string& name) {
  return (test::tmp_dir("roundtrip") / name).string();
}

// max |a - b| over all elements, same shapes required.
double max_abs_diff(const Tensor<float>& a, const Tensor<float>& b) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<float> va = a.to_vector(), vb = b.to_vector();
  double worst = 0;
  for (std::size_t i = 0; i < va.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(va[i]) - static_cast<double>(vb[i])));
  return worst;
}

// One entry of a recorded PyTorch state_dict schema.
struct SchemaEntry {
  std::string name, dtype;
  std::vector<std::int64_t> shape;
};

// The fixture's metadata "schema.<size>": [["conv1.weight", "F32", [32, 1, 3, 3]], ...], in
// the order of PyTorch's state_dict.
std::vector<SchemaEntry> read_schema(const Golden& fixture, const std::string& size) {
  const std::string json = fixture.meta("schema." + size);
  JsonReader reader(json, "schema." + size);
  std::vector<SchemaEntry> out;
  REQUIRE(reader.peek_kind() == JsonKind::array);
  reader.read_array([&] {
    SchemaEntry e;
    int field = 0;
    REQUIRE(reader.peek_kind() == JsonKind::array);
    reader.read_array([&] {
      const JsonKind kind = reader.peek_kind();
      if (field == 0 || field == 1) {
        REQUIRE(kind == JsonKind::string);
        (field == 0 ? e.name : e.dtype) = reader.read_string();
      } else {
        REQUIRE(field == 2);
        REQUIRE(kind == JsonKind::array);
        reader.read_array([&] {
          REQUIRE(reader.peek_kind() == JsonKind::integer);
          e.shape.push_back(reader.read_integer());
        });
      }
      ++field;
    });
    REQUIRE(field == 3);
    out.push_back(std::move(e));
  });
  reader.finish();
  return out;
}

std::vector<std::byte> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(raw.size());
  if (!raw.empty()) std::memcpy(out.data(), raw.data(), raw.size());
  return out;
}

// A tensor entry of a header, as an independent reading of the file sees it.
struct RawEntry {
  std::string name, dtype;
  std::vector<std::int64_t> shape;
  std::int64_t begin = -1, end = -1;
};

}  // namespace

TEST_CASE("roundtrip: a state_dict trained in PyTorch gives PyTorch's outputs in ember",
          "[io][roundtrip]") {
  const Golden fixture("roundtrip_io.safetensors");
  REQUIRE(fixture.meta("small.config") == "4,8,16");
  Generator gen(3);
  models::MnistNet net(small_config, gen);
  io::load(net, weights_path, /*strict=*/true);
  net.eval();
  NoGradGuard no_grad;

  const Tensor<float> x = fixture.f32("io.x");  // (32, 1, 28, 28)
  const Tensor<float> out = net(x);             // (32, 10)
  REQUIRE(out.shape() == Shape{32, 10});
  const double vs_f32 = max_abs_diff(out, fixture.f32("io.log_probs"));
  const double vs_f64 = max_abs_diff(out, fixture.f32("io.log_probs_f64"));
  if (const char* env = std::getenv("EMBER_GOLDEN_REPORT"); env != nullptr && *env != '\0')
    std::printf("roundtrip log_probs: max |ember - torch f32| %.3e, |ember - torch f64| %.3e\n",
                vs_f32, vs_f64);
  CHECK(vs_f32 <= log_prob_tolerance);
  CHECK(vs_f64 <= log_prob_tolerance);
  CHECK(argmax(out, 1).to_vector() == fixture.i64("io.predicted").to_vector());
}

TEST_CASE("roundtrip: the fixture's inputs are pixels normalised bit for bit as ember does",
          "[io][roundtrip]") {
  // scripts/roundtrip_pytorch.py normalises MNIST in numpy with the same float32 steps as
  // make_roundtrip.py; here each input must be PixelNormalization's value for some pixel.
  const Golden fixture("roundtrip_io.safetensors");
  const data::PixelNormalization norm = data::PixelNormalization::from(0.5f, 0.5f);
  std::int64_t not_a_pixel = 0, distinct = 0;
  std::vector<bool> seen(256, false);
  for (const float v : fixture.f32("io.x").to_vector()) {
    const double p = std::round(static_cast<double>(v) * 127.5 + 127.5);
    if (p < 0 || p > 255 || norm(static_cast<std::uint8_t>(p)) != v) {
      ++not_a_pixel;
      continue;
    }
    if (!seen[static_cast<std::size_t>(p)]) ++distinct;
    seen[static_cast<std::size_t>(p)] = true;
  }
  CHECK(not_a_pixel == 0);
  CHECK(distinct > 200);  // the inputs use most pixel values, not just a few exact ones
}

TEST_CASE("roundtrip: ember's MnistNet files have PyTorch's state_dict schema", "[io][roundtrip]") {
  const Golden fixture("roundtrip_io.safetensors");
  const auto [size, config] = GENERATE(table<std::string, models::MnistNetConfig>(
      {{"full", models::MnistNetConfig{}}, {"small", small_config}}));
  INFO("Net size " << size);
  const std::vector<SchemaEntry> schema = read_schema(fixture, size);
  REQUIRE(schema.size() == 8);
  Generator gen(5);
  const models::MnistNet net(config, gen);

  // state_dict(): PyTorch's keys in PyTorch's order, with its shapes.
  const nn::NamedTensors state = net.state_dict();
  REQUIRE(state.size() == schema.size());
  for (std::size_t i = 0; i < schema.size(); ++i) {
    INFO("entry " << i << " '" << schema[i].name << "'");
    CHECK(state[i].first == schema[i].name);
    CHECK(state[i].second.shape() == Shape(schema[i].shape));
  }

  // The saved file: the same keys, nothing more, every one F32 with the schema's shape.
  const std::string path = temp_file("net_" + size + ".safetensors");
  io::save(net, path);
  const io::SafetensorsFile file = io::load_safetensors(path);
  CHECK(file.tensors.size() == schema.size());
  CHECK(file.metadata.empty());
  for (const SchemaEntry& e : schema) {
    INFO("key '" << e.name << "'");
    const auto it = file.tensors.find(e.name);
    REQUIRE(it != file.tensors.end());
    CHECK(e.dtype == "F32");
    CHECK(it->second.dtype == e.dtype);
    CHECK(it->second.shape == e.shape);
  }
}

TEST_CASE("roundtrip: ember's model file is laid out as safetensors.torch.load_file reads it",
          "[io][roundtrip]") {
  // Read back independently of ember's reader: the 8-byte length, a JSON object starting at
  // byte 8 and padded with spaces to a multiple of 8 (so every F32 tensor starts 4-byte
  // aligned in the file, which PyTorch's views of the buffer need), offsets that tile the
  // data exactly, and each parameter's float bytes in C order at its offsets.
  Generator gen(11);
  const models::MnistNet net(small_config, gen);
  const std::string path = temp_file("layout.safetensors");
  io::save(net, path);
  const std::vector<std::byte> bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 8);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(bytes[i]);
  REQUIRE(n % 8 == 0);
  REQUIRE(8 + n <= bytes.size());
  const std::string header(reinterpret_cast<const char*>(bytes.data()) + 8, n);
  CHECK(header.front() == '{');
  const std::size_t close = header.find_last_not_of(' ');
  REQUIRE(close != std::string::npos);
  CHECK(header[close] == '}');
  CHECK(n - (close + 1) < 8);  // at most 7 spaces of padding

  std::vector<RawEntry> entries;
  JsonReader reader(header, "layout header");
  reader.read_object([&](const std::string& key) {
    RawEntry e{key, {}, {}};
    REQUIRE(key != "__metadata__");  // none given: none written
    reader.read_object([&](const std::string& field) {
      if (field == "dtype") {
        e.dtype = reader.read_string();
      } else if (field == "shape") {
        reader.read_array([&] { e.shape.push_back(reader.read_integer()); });
      } else {
        REQUIRE(field == "data_offsets");
        std::vector<std::int64_t> offsets;
        reader.read_array([&] { offsets.push_back(reader.read_integer()); });
        REQUIRE(offsets.size() == 2);
        e.begin = offsets[0];
        e.end = offsets[1];
      }
    });
    entries.push_back(std::move(e));
  });
  reader.finish();

  std::sort(entries.begin(), entries.end(),
            [](const RawEntry& a, const RawEntry& b) { return a.begin < b.begin; });
  const nn::NamedTensors state = net.state_dict();
  REQUIRE(entries.size() == state.size());
  std::int64_t covered = 0;
  const auto data_start = static_cast<std::int64_t>(8 + n);
  for (const RawEntry& e : entries) {
    INFO("tensor '" << e.name << "' at [" << e.begin << ", " << e.end << ")");
    CHECK(e.dtype == "F32");
    CHECK(e.begin == covered);
    CHECK((data_start + e.begin) % 4 == 0);
    const auto it =
        std::find_if(state.begin(), state.end(), [&](const auto& s) { return s.first == e.name; });
    REQUIRE(it != state.end());
    const Tensor<float> t = it->second.contiguous();
    CHECK(e.shape == std::vector<std::int64_t>(t.shape().begin(), t.shape().end()));
    REQUIRE(e.end - e.begin == t.numel() * 4);
    CHECK(std::memcmp(bytes.data() + data_start + e.begin, t.data(),
                      static_cast<std::size_t>(e.end - e.begin)) == 0);
    covered = e.end;
  }
  CHECK(data_start + covered == static_cast<std::int64_t>(bytes.size()));
}

TEST_CASE("roundtrip: PyTorch's tensor bytes come back unchanged from ember", "[io][roundtrip]") {
  // PyTorch's file -> MnistNet -> ember's file: every tensor has the same dtype, shape and
  // bytes (only the header's order and spacing may differ).
  Generator gen(13);
  models::MnistNet net(small_config, gen);
  io::load(net, weights_path);
  const std::string path = temp_file("resaved.safetensors");
  io::save(net, path);
  const io::SafetensorsFile torch_file = io::load_safetensors(weights_path);
  const io::SafetensorsFile ember_file = io::load_safetensors(path);
  REQUIRE(torch_file.tensors.size() == 8);
  REQUIRE(ember_file.tensors.size() == torch_file.tensors.size());
  for (const auto& [name, r] : torch_file.tensors) {
    INFO("tensor '" << name << "'");
    const auto it = ember_file.tensors.find(name);
    REQUIRE(it != ember_file.tensors.end());
    CHECK(it->second.dtype == r.dtype);
    CHECK(it->second.shape == r.shape);
    CHECK(it->second.data == r.data);
  }
}

TEST_CASE("roundtrip: a PyTorch state_dict of other widths is refused, naming the key",
          "[io][roundtrip]") {
  Generator gen(17);
  models::MnistNet full(gen);  // 32, 64, 128: the fixture's Net is 4, 8, 16
  const std::vector<float> before = full.conv1->weight.to_vector();
  REQUIRE_THROWS_WITH(
      io::load(full, weights_path),
      Contains("size mismatch for 'conv1.weight'") && Contains("the file has shape [4, 1, 3, 3]"));
  CHECK(full.conv1->weight.to_vector() == before);
}
