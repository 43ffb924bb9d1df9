// Tests for ember/io/state_dict.hpp: models saved and loaded through safetensors keep
// their names and values; F64 files load into float modules; corrupt or mismatched model
// files give clear errors and leave the module untouched.

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ember/io/state_dict.hpp"
#include "ember/models/mnist_net.hpp"
#include "ember/nn/layers.hpp"
#include "support/matchers.hpp"
#include "support/tmp.hpp"

namespace {

namespace fs = std::filesystem;
using namespace ember;

fs::path temp_file(const std::string& name) { return ember::test::tmp_dir("state_dict") / name; }

bool same_parameters(const nn::Module& a, const nn::Module& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  if (pa.size() != pb.size()) return false;
  for (std::size_t i = 0; i < pa.size(); ++i)
    if (pa[i].first != pb[i].first || pa[i].second.to_vector() != pb[i].second.to_vector())
      return false;
  return true;
}

}  // namespace

TEST_CASE("a saved MnistNet loads back bit for bit with PyTorch's names", "[io]") {
  Generator g1(1), g2(2);
  models::MnistNet a(g1), b(g2);
  REQUIRE_FALSE(same_parameters(a, b));
  const std::string path = temp_file("net.safetensors").string();
  io::save(a, path, {{"format", "pt"}});
  const io::SafetensorsFile raw = io::load_safetensors(path);
  CHECK(raw.metadata.at("format") == "pt");
  CHECK(raw.tensors.at("fc1.weight").dtype == "F32");
  CHECK(raw.tensors.at("fc1.weight").shape == std::vector<std::int64_t>{128, 9216});
  CHECK(raw.tensors.size() == 8);
  io::load(b, path);
  CHECK(same_parameters(a, b));
}

TEST_CASE("F64 files load into float modules", "[io]") {
  nn::Linear lin(3, 2);
  io::SafetensorsFile f;
  auto w = Tensor<double>::from_list({0.5, -1.25, 2.0, 3.0, 0.0, -0.5}, {2, 3});
  auto b = Tensor<double>::from_list({1.0, 2.0});
  f.tensors["weight"] = io::to_record(w);
  f.tensors["bias"] = io::to_record(b);
  const std::string path = temp_file("f64.safetensors").string();
  io::save_safetensors(path, f);
  io::load(lin, path);
  CHECK(lin.weight.to_vector() == std::vector<float>{0.5f, -1.25f, 2.0f, 3.0f, 0.0f, -0.5f});
  CHECK(lin.bias.to_vector() == std::vector<float>{1.0f, 2.0f});
}

TEST_CASE("bad model files give clear errors and change nothing", "[io]") {
  nn::Linear lin(3, 2);
  const auto before = lin.weight.to_vector();
  auto save = [](const std::string& name, const io::SafetensorsFile& f) {
    const std::string path = temp_file(name).string();
    io::save_safetensors(path, f);
    return path;
  };
  const auto w = io::to_record(Tensor<float>::ones({2, 3}));
  const auto bias = io::to_record(Tensor<float>::ones({2}));

  SECTION("missing key") {
    io::SafetensorsFile f;
    f.tensors["weight"] = w;
    CHECK_THROWS_WITH(io::load(lin, save("missing.safetensors", f)),
                      Catch::Contains("missing key(s): \"bias\""));
  }
  SECTION("unexpected key") {
    io::SafetensorsFile f;
    f.tensors["weight"] = w;
    f.tensors["bias"] = bias;
    f.tensors["extra"] = bias;
    CHECK_THROWS_WITH(io::load(lin, save("extra.safetensors", f)),
                      Catch::Contains("unexpected key(s): \"extra\""));
  }
  SECTION("wrong shape") {
    io::SafetensorsFile f;
    f.tensors["weight"] = io::to_record(Tensor<float>::ones({3, 2}));
    f.tensors["bias"] = bias;
    CHECK_THROWS_WITH(io::load(lin, save("shape.safetensors", f)),
                      Catch::Contains("size mismatch for 'weight'") && Catch::Contains("[3, 2]"));
  }
  SECTION("wrong dtype") {
    io::SafetensorsFile f;
    f.tensors["weight"] = io::to_record(Tensor<std::int64_t>::ones({2, 3}));
    f.tensors["bias"] = bias;
    CHECK_THROWS_WITH(io::load(lin, save("dtype.safetensors", f)),
                      Catch::Contains("'weight' has dtype I64, which cannot be read as F32"));
  }
  SECTION("truncated header") {
    const std::string path = temp_file("trunc.safetensors").string();
    std::ofstream(path, std::ios::binary) << "abc";
    CHECK_THROWS_AS(io::load(lin, path), Error);
  }
  SECTION("header length past the end of the file") {
    const std::string path = temp_file("past.safetensors").string();
    std::ofstream out(path, std::ios::binary);
    const unsigned char len[8] = {0xff, 0x00, 0x00, 0x00, 0, 0, 0, 0};
    out.write(reinterpret_cast<const char*>(len), 8);
    out << "{}";
    out.close();
    CHECK_THROWS_WITH(io::load(lin, path), Catch::Contains("past.safetensors"));
  }
  SECTION("missing file") {
    CHECK_THROWS_WITH(io::load(lin, temp_file("none.safetensors").string()),
                      Catch::Contains("none.safetensors"));
  }
  CHECK(lin.weight.to_vector() == before);
}

TEST_CASE("sizes in a model file are checked before they are used", "[io]") {
  nn::Linear lin(3, 2);
  const auto before = lin.weight.to_vector();
  const std::int64_t big = std::int64_t{1} << 40;
  SECTION("a record whose shape holds no element but whose strides overflow") {
    const io::TensorRecord r{"F32", {0, big, big}, {}};
    CHECK_THROWS_WITH(io::from_record<float>(r, "w"),
                      Catch::Contains("tensor 'w'") && Catch::Contains("strides overflow"));
    // The reader refuses such a file before any tensor is made.
    std::string header =
        R"({"weight":{"dtype":"F32","shape":[0,1099511627776,1099511627776],)"
        R"("data_offsets":[0,0]}})";
    const std::string path = temp_file("strides.safetensors").string();
    {
      std::ofstream out(path, std::ios::binary);
      const std::uint64_t n = header.size();
      for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xFF));
      out << header;
    }
    CHECK_THROWS_WITH(io::load(lin, path),
                      Catch::Contains("strides.safetensors") && Catch::Contains("too large"));
  }
  SECTION("data size checked against the shape before allocating") {
    const io::TensorRecord r{"F64", {4}, std::vector<std::byte>(24)};
    CHECK_THROWS_WITH(io::from_record<float>(r, "w"),
                      Catch::Contains("tensor 'w': 24 bytes for shape [4] of F64"));
  }
  SECTION("a file with thousands of unexpected keys gives a short message") {
    io::SafetensorsFile f;
    f.tensors["weight"] = io::to_record(Tensor<float>::ones({2, 3}));
    f.tensors["bias"] = io::to_record(Tensor<float>::ones({2}));
    for (int i = 0; i < 20000; ++i)
      f.tensors["extra." + std::string(100, 'x') + std::to_string(i)] = f.tensors["bias"];
    const nn::NamedTensors state = io::state_dict_from_safetensors(f, "mem.safetensors");
    try {
      io::load_into(lin, state, "mem.safetensors");
      FAIL("loaded a state_dict with unexpected keys");
    } catch (const Error& e) {
      const std::string what = e.what();
      CHECK_THAT(what, Catch::Contains("'mem.safetensors'") &&
                           Catch::Contains("unexpected key(s)") && Catch::Contains("bytes)"));
      CHECK(what.size() < 2100);
    }
  }
  CHECK(lin.weight.to_vector() == before);
}

TEST_CASE("an int64 scalar (PyTorch's num_batches_tracked) reads into a float buffer; other int64 tensors do not",
          "[io][state_dict]") {
  auto int64_record = [](std::vector<std::int64_t> shape, std::vector<std::int64_t> values) {
    ember::io::TensorRecord r{"I64", std::move(shape), {}};
    r.data.resize(values.size() * sizeof(std::int64_t));
    std::memcpy(r.data.data(), values.data(), r.data.size());
    return r;
  };
  const auto t = ember::io::from_record<float>(int64_record({}, {1234}), "bn.num_batches_tracked");
  CHECK(t.dim() == 0);
  CHECK(t.item() == 1234.0f);
  CHECK_THROWS_MATCHES(ember::io::from_record<float>(int64_record({}, {(1LL << 24) + 1}), "n"), ember::Error,
                       ember::test::ErrorContains({"int64 value 16777217 is not exactly a float32"}));
  CHECK_THROWS_MATCHES(ember::io::from_record<float>(int64_record({2}, {1, 2}), "w"), ember::Error,
                       ember::test::ErrorContains({"tensor 'w' has dtype I64"}));
}
