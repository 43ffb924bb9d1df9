// Tests for ember/io/safetensors.hpp, ember/io/json_reader.hpp and ember/io/atomic_file.hpp:
// round trips, byte-exact agreement with the reference implementation's output
// (tests/fixtures/io/reference.safetensors, made by make_reference.py beside it), rejection
// of corrupt files with a worded error, and atomic replacement of files.

#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/io/atomic_file.hpp"
#include "ember/io/safetensors.hpp"
#include "support/tmp.hpp"

namespace fs = std::filesystem;
using Catch::Contains;
using ember::io::SafetensorsFile;
using ember::io::TensorRecord;

namespace {

// A fresh directory per test case under EMBER_TEST_TMP (set by CTest), so that "no temporary
// file is left" can be checked by listing it.
fs::path test_dir(const std::string& name) {
  return ember::test::tmp_dir("safetensors_" + name, /*fresh=*/true);
}

// Little-endian bytes of values, whatever the host's byte order.
template <class T>
std::vector<std::byte> le_bytes(std::initializer_list<T> values) {
  std::vector<std::byte> out(values.size() * sizeof(T));
  std::size_t at = 0;
  for (const T value : values) {
    std::byte* raw = out.data() + at;
    std::memcpy(raw, &value, sizeof(T));
    if constexpr (std::endian::native == std::endian::big) std::reverse(raw, raw + sizeof(T));
    at += sizeof(T);
  }
  return out;
}

template <class T>
std::vector<T> values_of(const TensorRecord& record) {
  REQUIRE(record.data.size() % sizeof(T) == 0);
  std::vector<T> out(record.data.size() / sizeof(T));
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::byte raw[sizeof(T)];
    std::memcpy(raw, record.data.data() + i * sizeof(T), sizeof(T));
    if constexpr (std::endian::native == std::endian::big) std::reverse(raw, raw + sizeof(T));
    std::memcpy(&out[i], raw, sizeof(T));
  }
  return out;
}

std::vector<std::byte> as_bytes(const std::string& s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

// A file image: 8-byte little-endian length, the header text as given, then data.
std::vector<std::byte> make_image(const std::string& header, const std::vector<std::byte>& data) {
  std::vector<std::byte> out = le_bytes<std::uint64_t>({header.size()});
  const auto h = as_bytes(header);
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<std::byte> zeros(std::size_t n) { return std::vector<std::byte>(n); }

SafetensorsFile parse(const std::vector<std::byte>& image) {
  return ember::io::parse_safetensors(image, "mem.safetensors");
}

// Parses a one-line header over n zero bytes of data.
SafetensorsFile parse_header(const std::string& header, std::size_t n = 0) {
  return parse(make_image(header, zeros(n)));
}

void write_plain(const fs::path& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::vector<std::byte> read_plain(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  const std::vector<char> chars((std::istreambuf_iterator<char>(in)), {});
  const auto* p = reinterpret_cast<const std::byte*>(chars.data());
  return {p, p + chars.size()};
}

std::string header_text(const std::vector<std::byte>& image) {
  REQUIRE(image.size() >= 8);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(image[i]);
  REQUIRE(8 + n <= image.size());
  return std::string(reinterpret_cast<const char*>(image.data() + 8), n);
}

void require_same(const SafetensorsFile& a, const SafetensorsFile& b) {
  REQUIRE(a.metadata == b.metadata);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (const auto& [name, record] : a.tensors) {
    INFO("tensor \"" << name << "\"");
    REQUIRE(b.tensors.count(name) == 1);
    const TensorRecord& other = b.tensors.at(name);
    CHECK(record.dtype == other.dtype);
    CHECK(record.shape == other.shape);
    CHECK(record.data == other.data);
  }
}

std::vector<std::string> leftover_temp_files(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".tmp.") != std::string::npos) found.push_back(name);
  }
  return found;
}

// A file with one tensor of every kind the tests care about.
SafetensorsFile sample_file() {
  SafetensorsFile file;
  file.tensors["layer.weight"] = {"F32", {2, 3}, le_bytes<float>({1.5f, -2, 0.25f, 3, -0.125f, 7})};
  file.tensors["layer.bias"] = {"F64", {3}, le_bytes<double>({0.1, -1e300, 42})};
  file.tensors["step"] = {"I64", {}, le_bytes<std::int64_t>({-9'000'000'000'123})};
  file.tensors["mask"] = {"U8", {4}, le_bytes<std::uint8_t>({0, 1, 128, 255})};
  file.tensors[""] = {"I32", {1, 1}, le_bytes<std::int32_t>({-5})};
  file.tensors["nothing"] = {"F32", {3, 0}, {}};
  file.tensors["caf\xc3\xa9 \"q\"\n"] = {"BOOL", {2}, le_bytes<std::uint8_t>({1, 0})};
  file.metadata["format"] = "pt";
  file.metadata["note"] = "tab\there, quote \" backslash \\ \xe2\x82\xac \x01";
  return file;
}

}  // namespace

TEST_CASE("safetensors: dtype sizes", "[io][safetensors]") {
  CHECK(ember::io::dtype_size("F64") == 8);
  CHECK(ember::io::dtype_size("I64") == 8);
  CHECK(ember::io::dtype_size("U64") == 8);
  CHECK(ember::io::dtype_size("F32") == 4);
  CHECK(ember::io::dtype_size("I32") == 4);
  CHECK(ember::io::dtype_size("U32") == 4);
  CHECK(ember::io::dtype_size("F16") == 2);
  CHECK(ember::io::dtype_size("BF16") == 2);
  CHECK(ember::io::dtype_size("I16") == 2);
  CHECK(ember::io::dtype_size("U16") == 2);
  CHECK(ember::io::dtype_size("I8") == 1);
  CHECK(ember::io::dtype_size("U8") == 1);
  CHECK(ember::io::dtype_size("BOOL") == 1);
  REQUIRE_THROWS_WITH(ember::io::dtype_size("f32"), Contains("unknown safetensors dtype \"f32\""));
}

TEST_CASE("safetensors: round trip through memory and through a file", "[io][safetensors]") {
  const SafetensorsFile file = sample_file();

  SECTION("memory") {
    const std::vector<std::byte> image = ember::io::serialize_safetensors(file);
    require_same(parse(image), file);
    CHECK(header_text(image).size() % 8 == 0);
  }
  SECTION("file") {
    const fs::path path = test_dir("round_trip") / "model.safetensors";
    ember::io::save_safetensors(path.string(), file);
    require_same(ember::io::load_safetensors(path.string()), file);
    CHECK(read_plain(path) == ember::io::serialize_safetensors(file));
    CHECK(leftover_temp_files(path.parent_path()).empty());
  }
  SECTION("values survive") {
    const SafetensorsFile back = parse(ember::io::serialize_safetensors(file));
    CHECK(values_of<float>(back.tensors.at("layer.weight")) ==
          std::vector<float>{1.5f, -2, 0.25f, 3, -0.125f, 7});
    CHECK(values_of<std::int64_t>(back.tensors.at("step")) ==
          std::vector<std::int64_t>{-9'000'000'000'123});
    CHECK(back.tensors.at("step").shape.empty());
    CHECK(back.tensors.at("nothing").shape == std::vector<std::int64_t>{3, 0});
    CHECK(back.tensors.at("").shape == std::vector<std::int64_t>{1, 1});
  }
  SECTION("an empty file") {
    const SafetensorsFile empty;
    const std::vector<std::byte> image = ember::io::serialize_safetensors(empty);
    CHECK(header_text(image) == "{}      ");
    const SafetensorsFile back = parse(image);
    CHECK(back.tensors.empty());
    CHECK(back.metadata.empty());
  }
}

TEST_CASE("safetensors: header layout matches the reference writer", "[io][safetensors]") {
  // Expected text as the reference (safetensors 0.8.0) writes it: metadata first, tensors by
  // dtype (its enum order, descending) then name, compact JSON, spaces to a multiple of 8.
  SafetensorsFile file;
  file.tensors["b"] = {"U8", {2}, zeros(2)};
  file.tensors["a"] = {"U8", {2}, zeros(2)};
  file.tensors["h"] = {"BF16", {1}, zeros(2)};
  file.tensors["w"] = {"F32", {1, 2}, zeros(8)};
  file.tensors["d"] = {"F64", {}, zeros(8)};
  file.tensors["flag"] = {"BOOL", {1}, zeros(1)};
  file.metadata["k"] = std::string("\b\t\n\x0b\f\r\x1f\x7f/\\\xc3\xa9\xf0\x9f\x98\x80");
  const std::string expected =
      R"({"__metadata__":{"k":"\b\t\n\u000b\f\r\u001f)"
      "\x7f/\\\\\xc3\xa9\xf0\x9f\x98\x80"
      R"("},"d":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
      R"("w":{"dtype":"F32","shape":[1,2],"data_offsets":[8,16]},)"
      R"("h":{"dtype":"BF16","shape":[1],"data_offsets":[16,18]},)"
      R"("a":{"dtype":"U8","shape":[2],"data_offsets":[18,20]},)"
      R"("b":{"dtype":"U8","shape":[2],"data_offsets":[20,22]},)"
      R"("flag":{"dtype":"BOOL","shape":[1],"data_offsets":[22,23]}})";
  const std::string header = header_text(ember::io::serialize_safetensors(file));
  REQUIRE(header.size() % 8 == 0);
  CHECK(header.substr(0, expected.size()) == expected);
  CHECK(header.find_first_not_of(' ', expected.size()) == std::string::npos);
  CHECK(header.size() - expected.size() < 8);
}

TEST_CASE("safetensors: reads the reference implementation's file", "[io][safetensors]") {
  const std::string path = std::string(EMBER_TEST_DIR) + "/fixtures/io/reference.safetensors";
  const SafetensorsFile file = ember::io::load_safetensors(path);

  REQUIRE(file.metadata == std::map<std::string, std::string>{{"format", "ember-test \xc3\xa9"}});
  REQUIRE(file.tensors.size() == 7);
  const TensorRecord& weight = file.tensors.at("conv.weight");
  CHECK(weight.dtype == "F32");
  CHECK(weight.shape == std::vector<std::int64_t>{2, 1, 2, 2});
  CHECK(values_of<float>(weight) == std::vector<float>{-1, -0.5f, 0, 0.5f, 1, 1.5f, 2, 2.5f});
  CHECK(file.tensors.at("conv.bias").dtype == "F64");
  CHECK(values_of<double>(file.tensors.at("conv.bias")) == std::vector<double>{0.25, -3});
  CHECK(file.tensors.at("step").dtype == "I64");
  CHECK(file.tensors.at("step").shape.empty());
  CHECK(values_of<std::int64_t>(file.tensors.at("step")) ==
        std::vector<std::int64_t>{1234567890123});
  CHECK(file.tensors.at("mask").dtype == "U8");
  CHECK(values_of<std::uint8_t>(file.tensors.at("mask")) == std::vector<std::uint8_t>{0, 1, 255});
  CHECK(file.tensors.at("index").dtype == "I32");
  CHECK(values_of<std::int32_t>(file.tensors.at("index")) == std::vector<std::int32_t>{-1, 7});
  CHECK(file.tensors.at("half").dtype == "F16");
  CHECK(values_of<std::uint16_t>(file.tensors.at("half")) ==
        std::vector<std::uint16_t>{0x3E00, 0xC000});  // 1.5, -2.0 in binary16
  CHECK(file.tensors.at("empty").shape == std::vector<std::int64_t>{0, 3});
  CHECK(file.tensors.at("empty").data.empty());

  // The same content built by hand serializes to the reference's bytes exactly.
  SafetensorsFile by_hand;
  by_hand.metadata["format"] = "ember-test \xc3\xa9";
  by_hand.tensors["conv.weight"] = {
      "F32", {2, 1, 2, 2}, le_bytes<float>({-1, -0.5f, 0, 0.5f, 1, 1.5f, 2, 2.5f})};
  by_hand.tensors["conv.bias"] = {"F64", {2}, le_bytes<double>({0.25, -3})};
  by_hand.tensors["step"] = {"I64", {}, le_bytes<std::int64_t>({1234567890123})};
  by_hand.tensors["mask"] = {"U8", {3}, le_bytes<std::uint8_t>({0, 1, 255})};
  by_hand.tensors["index"] = {"I32", {2}, le_bytes<std::int32_t>({-1, 7})};
  by_hand.tensors["half"] = {"F16", {2}, le_bytes<std::uint16_t>({0x3E00, 0xC000})};
  by_hand.tensors["empty"] = {"F32", {0, 3}, {}};
  const std::vector<std::byte> reference = read_plain(path);
  CHECK(ember::io::serialize_safetensors(by_hand) == reference);
  CHECK(ember::io::serialize_safetensors(file) == reference);
}

TEST_CASE("safetensors: JSON header details", "[io][safetensors][json]") {
  SECTION("escapes are decoded, surrogate pairs joined") {
    const SafetensorsFile f = parse_header(
        R"({"__metadata__":{"k":"a\"\\\/\b\f\n\r\t\u00e9\u20AC\ud83d\ude00"}})");
    CHECK(f.metadata.at("k") == "a\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  }
  SECTION("whitespace around tokens and unknown tensor fields are accepted") {
    const SafetensorsFile f = parse_header(
        " {\n \"t\" : { \"extra\" : [ {\"x\": [1, \"y\"]} ], \"dtype\" : \"U8\" ,\r\n"
        "\t\"shape\" : [ 2 ] , \"data_offsets\" : [ 0 , 2 ] } }  ",
        2);
    CHECK(f.tensors.at("t").shape == std::vector<std::int64_t>{2});
  }
  SECTION("tensor and metadata keys may be any string") {
    const SafetensorsFile f = parse_header(
        R"({"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"__metadata__":{"":""}})", 1);
    CHECK(f.tensors.count("") == 1);
    CHECK(f.metadata.at("").empty());
  }
  const auto bad = [](const std::string& header, const std::string& message) {
    INFO(header);
    REQUIRE_THROWS_WITH(parse_header(header), Contains(message) && Contains("mem.safetensors"));
  };
  SECTION("malformed JSON names the byte offset") {
    bad(R"({"a" 1})", "invalid JSON at byte 5: expected ':'");
    bad(R"({"a":{"dtype":"U8",}})", "invalid JSON at byte 19: expected a string key");
    bad(R"({"__metadata__":{})", "invalid JSON at byte 18: expected '}', found the end");
    bad(R"({"a)", "invalid JSON at byte 1: unterminated string");
    bad(R"({"a":true})", "invalid JSON at byte 5: expected an object, array, string or integer");
    bad(R"({"a":null})", "expected an object, array, string or integer");
    bad(R"({"a":{"shape":[1.5]}})", "byte 15: only integers are allowed");
    bad(R"({"a":{"shape":[1e3]}})", "only integers are allowed");
    bad(R"({"a":{"shape":[01]}})", "byte 15: integer with a leading zero");
    bad(R"({"a":{"shape":[99999999999999999999]}})", "integer out of the 64-bit range");
    bad(R"({"a":{"shape":[-]}})", "expected a digit");
    bad(R"({"a\q":1})", "byte 3: invalid escape sequence");
    bad(R"({"a\u12G4":1})", "invalid hex digit in \\u escape");
    bad(R"({"\udc00":1})", "lone low surrogate");
    bad(R"({"\ud800x":1})", "high surrogate without a low one");
    bad("{\"a\tb\":1}", "byte 3: unescaped control character in string");
    bad("{\"\xff\":1}", "byte 2: invalid UTF-8");
    bad("{\"\xc0\xaf\":1}", "invalid UTF-8");          // overlong '/'
    bad("{\"\xed\xa0\x80\":1}", "invalid UTF-8");      // an encoded surrogate
    bad("{\"\xe2\x82\":1}", "invalid UTF-8");          // cut short
    bad(R"({} {})", "byte 3: unexpected data after the top-level object");
    bad("", "invalid JSON at byte 0: expected a value, found the end");
    bad(R"({"a":{"x":)" + std::string(100, '[') + std::string(100, ']') + "}}",
        "nested deeper than 64 levels");
  }
  SECTION("structure") {
    bad(R"([1])", "header is an array, expected a JSON object");
    bad(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{}})", "duplicate key \"a\"");
    bad(R"({"a":{"dtype":"U8","shape":[],"dtype":"U8"}})", "duplicate key \"dtype\"");
    bad(R"({"a":[]})", "tensor \"a\": the entry is an array, expected an object");
    bad(R"({"a":{"shape":[],"data_offsets":[0,1]}})", "tensor \"a\": missing \"dtype\"");
    bad(R"({"a":{"dtype":"U8","data_offsets":[0,1]}})", "tensor \"a\": missing \"shape\"");
    bad(R"({"a":{"dtype":"U8","shape":[]}})", "tensor \"a\": missing \"data_offsets\"");
    bad(R"({"a":{"dtype":1}})", "\"dtype\" is an integer, expected a string (header byte 14)");
    bad(R"({"a":{"shape":"2"}})", "\"shape\" is a string, expected an array");
    bad(R"({"a":{"shape":[[2]]}})", "an element of \"shape\" is an array, expected an integer");
    bad(R"({"__metadata__":[]})", "\"__metadata__\" is an array, expected an object");
    bad(R"({"__metadata__":{"k":1}})", "metadata value \"k\" is an integer, expected a string");
    bad(R"({"__metadata__":{"k":"a","k":"b"}})", "duplicate key \"k\"");
  }
}

TEST_CASE("safetensors: corrupt files are rejected with a worded error", "[io][safetensors]") {
  const fs::path dir = test_dir("corrupt");
  const auto load_image = [&](const std::vector<std::byte>& image) {
    const fs::path path = dir / "broken.safetensors";
    write_plain(path, image);
    return ember::io::load_safetensors(path.string());
  };
  const auto bad = [&](const std::vector<std::byte>& image, const std::string& message) {
    // Both entry points, the file one naming the path.
    REQUIRE_THROWS_WITH(load_image(image), Contains(message) && Contains("broken.safetensors"));
    REQUIRE_THROWS_WITH(parse(image), Contains(message) && Contains("mem.safetensors"));
  };

  SECTION("shorter than the length prefix") {
    bad(zeros(5), "file is 5 bytes, shorter than the 8-byte header length");
    bad({}, "file is 0 bytes");
  }
  SECTION("header length past the end of the file") {
    std::vector<std::byte> image = make_image(R"({})", {});
    image[0] = std::byte{200};
    bad(image, "header length 200 runs past the end of the file (10 bytes)");
    bad(le_bytes<std::uint64_t>({~std::uint64_t{0}}), "exceeds the limit of 100000000 bytes");
    bad(le_bytes<std::uint64_t>({100'000'001}), "header length 100000001 exceeds the limit");
  }
  SECTION("broken JSON") {
    bad(make_image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1])", zeros(1)),
        "invalid JSON at byte 51: expected '}', found the end");
  }
  SECTION("unknown dtype") {
    bad(make_image(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", zeros(4)),
        "tensor \"a\": unknown dtype \"F33\"");
  }
  SECTION("negative or absurd shape") {
    bad(make_image(R"({"a":{"dtype":"U8","shape":[2,-1],"data_offsets":[0,0]}})", {}),
        "shape [2,-1] has a negative dimension");
    bad(make_image(R"({"a":{"dtype":"F32","shape":[4611686018427387904,8],)"
                   R"("data_offsets":[0,0]}})",
                   {}),
        "shape [4611686018427387904,8] is too large to address");
  }
  SECTION("shape does not match the offsets") {
    bad(make_image(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", zeros(8)),
        "tensor \"a\": data_offsets [0,8] hold 8 bytes but shape [3] of F32 needs 12");
    bad(make_image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", zeros(1)),
        "\"data_offsets\" [0] is not [begin, end]");
    bad(make_image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", zeros(1)),
        "\"data_offsets\" [-1,0] is not [begin, end]");
    bad(make_image(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[2,1]}})", zeros(2)),
        "data_offsets [2,1] end before begin");
  }
  SECTION("data truncated") {
    const std::vector<std::byte> whole = make_image(
        R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})", le_bytes<double>({1, 2}));
    const std::vector<std::byte> cut(whole.begin(), whole.end() - 8);
    bad(cut, "tensor \"a\": data_offsets [0,16] run past the end of the data buffer (8 bytes)");
  }
  SECTION("overlapping offsets") {
    bad(make_image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                   zeros(12)),
        "tensor \"b\" overlaps tensor \"a\"");
    bad(make_image(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                   R"("b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                   zeros(4)),
        "overlaps tensor");
  }
  SECTION("holes and uncovered bytes") {
    bad(make_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                   R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                   zeros(12)),
        "gap of 4 bytes in the data buffer before tensor \"b\"");
    bad(make_image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", zeros(3)),
        "the last 2 bytes of the data buffer are not covered by any tensor");
  }
  SECTION("a good image in between still loads") {
    const SafetensorsFile f = load_image(make_image(
        R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},)"
        R"("a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
        le_bytes<std::uint8_t>({10, 20})));
    CHECK(values_of<std::uint8_t>(f.tensors.at("a")) == std::vector<std::uint8_t>{10});
    CHECK(values_of<std::uint8_t>(f.tensors.at("b")) == std::vector<std::uint8_t>{20});
  }
}

TEST_CASE("safetensors: sizes from the file are checked, messages stay short",
          "[io][safetensors]") {
  const auto message = [](const std::vector<std::byte>& image) -> std::string {
    try {
      (void)parse(image);
    } catch (const ember::Error& e) {
      return e.what();
    }
    FAIL("the image was accepted");
    return "";
  };
  SECTION("no element, yet strides overflow: [0, 2^40, 2^40]") {
    const std::string m = message(make_image(
        R"({"a":{"dtype":"F32","shape":[0,1099511627776,1099511627776],"data_offsets":[0,0]}})",
        {}));
    CHECK_THAT(m, Contains("tensor \"a\": shape [0,1099511627776,1099511627776] is too large"));
    // A zero dimension with a sane rest is an ordinary empty tensor.
    CHECK(parse_header(R"({"a":{"dtype":"F32","shape":[0,1048576,1048576],)"
                       R"("data_offsets":[0,0]}})")
              .tensors.at("a")
              .data.empty());
  }
  SECTION("rank is capped, and reading stops at the first dimension too many") {
    std::string shape = "1";
    for (int i = 0; i < 500'000; ++i) shape += ",1";
    const std::string m = message(make_image(
        R"({"a":{"dtype":"U8","shape":[)" + shape + R"(],"data_offsets":[0,1]}})", zeros(1)));
    CHECK_THAT(m, Contains("\"shape\" has more than 8 values"));
    CHECK(m.size() < 200);
    CHECK(parse_header(R"({"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1],"data_offsets":[0,1]}})",
                       1)
              .tensors.at("a")
              .shape.size() == 8);
    CHECK_THAT(message(make_image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})",
                                  zeros(2))),
               Contains("\"data_offsets\" has more than 2 values"));
  }
  SECTION("names and dtypes from the file are clipped in messages") {
    const std::string name(1'000'000, 'n');
    const std::string m = message(make_image(
        "{\"" + name + "\":{\"dtype\":\"" + std::string(1'000'000, 'D') +
            "\",\"shape\":[1],\"data_offsets\":[0,1]}}",
        zeros(1)));
    CHECK_THAT(m, Contains("unknown dtype") && Contains("... (1000000 bytes)"));
    CHECK(m.size() < 400);
    const std::string entry = R"({"dtype":"U8","shape":[1],"data_offsets":[0,1]})";
    const std::string dup =
        message(make_image("{\"" + name + "\":" + entry + ",\"" + name + "\":{}}", zeros(1)));
    CHECK_THAT(dup, Contains("duplicate key"));
    CHECK(dup.size() < 400);
  }
  SECTION("the writer refuses what the reader would refuse") {
    SafetensorsFile file;
    file.tensors["w"] = {"U8", std::vector<std::int64_t>(9, 1), zeros(1)};
    REQUIRE_THROWS_WITH(ember::io::serialize_safetensors(file),
                        Contains("rank 9 exceeds the readable maximum of 8"));
    file.tensors["w"] = {"U8", {0, std::int64_t{1} << 40, std::int64_t{1} << 40}, {}};
    REQUIRE_THROWS_WITH(ember::io::serialize_safetensors(file), Contains("needs too many"));
  }
}

TEST_CASE("safetensors: opening and writing errors", "[io][safetensors]") {
  const fs::path dir = test_dir("errors");
  REQUIRE_THROWS_WITH(ember::io::load_safetensors((dir / "missing.safetensors").string()),
                      Contains("cannot open safetensors file") &&
                          Contains("missing.safetensors") &&
                          Contains("No such file or directory"));
  REQUIRE_THROWS_WITH(ember::io::load_safetensors(dir.string()),
                      Contains("not a regular file"));

  const auto bad = [&](const TensorRecord& record, const std::string& name,
                       const std::string& message) {
    SafetensorsFile file;
    file.tensors[name] = record;
    REQUIRE_THROWS_WITH(ember::io::serialize_safetensors(file), Contains(message));
    const fs::path path = dir / "out.safetensors";
    REQUIRE_THROWS_WITH(ember::io::save_safetensors(path.string(), file),
                        Contains(message) && Contains("out.safetensors"));
    CHECK_FALSE(fs::exists(path));
  };
  bad({"F32", {2}, zeros(4)}, "w", "tensor \"w\": shape [2] of F32 needs 8 bytes, data has 4");
  bad({"F99", {1}, zeros(4)}, "w", "unknown dtype \"F99\"");
  bad({"U8", {-1}, {}}, "w", "shape has a negative dimension -1");
  bad({"U8", {1}, zeros(1)}, "__metadata__", "the name is reserved for the metadata");
  bad({"U8", {1}, zeros(1)}, "bad\xff", "the name is not valid UTF-8");
  {
    SafetensorsFile file;
    file.metadata["k"] = "\xc0\xaf";
    REQUIRE_THROWS_WITH(ember::io::serialize_safetensors(file),
                        Contains("metadata entry \"k\" is not valid UTF-8"));
  }
  CHECK(leftover_temp_files(dir).empty());

  SafetensorsFile ok;
  ok.tensors["x"] = {"U8", {1}, zeros(1)};
  REQUIRE_THROWS_WITH(
      ember::io::save_safetensors((dir / "no_such_dir" / "x.safetensors").string(), ok),
      Contains("cannot write") && Contains("no_such_dir/x.safetensors") &&
          Contains("No such file or directory"));
}

TEST_CASE("write_file_atomic replaces a file whole or not at all", "[io][atomic]") {
  const fs::path dir = test_dir("atomic");
  const fs::path path = dir / "data.bin";
  const std::vector<std::byte> old_bytes = as_bytes("the old contents");

  ember::io::write_file_atomic(path.string(), old_bytes);
  REQUIRE(read_plain(path) == old_bytes);
  CHECK(leftover_temp_files(dir).empty());

  SECTION("a writer that throws half way leaves the old file and no temporary") {
    const std::vector<std::byte> junk = zeros(4096);
    REQUIRE_THROWS_WITH(ember::io::write_file_atomic(path.string(),
                                                     [&](std::FILE* f) {
                                                       std::fwrite(junk.data(), 1, junk.size(), f);
                                                       std::fflush(f);
                                                       throw std::runtime_error("disk on fire");
                                                     }),
                        "disk on fire");
    CHECK(read_plain(path) == old_bytes);
    CHECK(leftover_temp_files(dir).empty());
  }
  SECTION("a writer that throws leaves no file where there was none") {
    const fs::path fresh = dir / "fresh.bin";
    REQUIRE_THROWS_AS(ember::io::write_file_atomic(fresh.string(),
                                                   [](std::FILE* f) {
                                                     std::fputs("partial", f);
                                                     throw ember::Error("stop");
                                                   }),
                      ember::Error);
    CHECK_FALSE(fs::exists(fresh));
    CHECK(leftover_temp_files(dir).empty());
  }
  SECTION("a successful write replaces the contents") {
    const std::vector<std::byte> new_bytes = as_bytes("new");
    ember::io::write_file_atomic(path.string(), [&](std::FILE* f) {
      std::fwrite(new_bytes.data(), 1, new_bytes.size(), f);
    });
    CHECK(read_plain(path) == new_bytes);
    ember::io::write_file_atomic(path.string(), std::span<const std::byte>{});
    CHECK(fs::file_size(path) == 0);
    CHECK(leftover_temp_files(dir).empty());
  }
  SECTION("save_safetensors over an existing file") {
    SafetensorsFile file = sample_file();
    ember::io::save_safetensors(path.string(), file);
    file.tensors.erase("layer.bias");
    ember::io::save_safetensors(path.string(), file);
    require_same(ember::io::load_safetensors(path.string()), file);
    CHECK(leftover_temp_files(dir).empty());
  }
}
