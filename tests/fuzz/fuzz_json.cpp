// libFuzzer harness: the JSON the project parses, all of it safetensors headers
// (ember/io/json_reader.hpp, and the header's meaning in io/safetensors.hpp). The input is
//   - a JSON document, walked value by value whatever its shape (objects, arrays, strings,
//     integers, nested up to the reader's limit): every string read must be valid UTF-8;
//   - a safetensors header over a data buffer of a size the first byte picks;
//   - when it is valid UTF-8, a string to escape as the writer does and read back unchanged.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ember/io/json_reader.hpp"
#include "ember/io/safetensors.hpp"
#include "fuzz/harness.hpp"

namespace {

using ember::io::detail::JsonKind;
using ember::io::detail::JsonReader;

void walk(JsonReader& reader, int depth) {
  // Deeper than the reader's own limit for skip_value: nesting must stay bounded here too.
  if (depth > 200) throw ember::Error("fuzz: nested too deep");
  switch (reader.peek_kind()) {
    case JsonKind::object:
      reader.read_object([&](const std::string& key) {
        ember::fuzz::require(ember::io::detail::is_valid_utf8(key), "a key is not UTF-8");
        walk(reader, depth + 1);
      });
      return;
    case JsonKind::array:
      reader.read_array([&] { walk(reader, depth + 1); });
      return;
    case JsonKind::string:
      ember::fuzz::require(ember::io::detail::is_valid_utf8(reader.read_string()),
                           "a string is not UTF-8");
      return;
    case JsonKind::integer:
      (void)reader.read_integer();
      return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ember;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)fuzz::accepts([&] {
    JsonReader reader(text, "fuzz");
    walk(reader, 0);
    reader.finish();
  });
  (void)fuzz::accepts([&] {
    JsonReader reader(text, "fuzz");
    reader.skip_value();
    reader.finish();
  });
  if (size > 0) {
    const std::uint64_t buffer_size = std::uint64_t{data[0]} * 4;
    (void)fuzz::accepts(
        [&] { (void)io::detail::parse_header(text.substr(1), buffer_size, "fuzz"); });
  }
  if (io::detail::is_valid_utf8(text)) {
    std::string json;
    io::detail::append_json_string(json, text);
    JsonReader reader(json, "escaped");
    fuzz::require(reader.read_string() == text, "an escaped string read back differently");
    reader.finish();
  }
  return 0;
}
