// libFuzzer harness: safetensors files (ember/io/safetensors.hpp, its JSON header through
// io/json_reader.hpp). The input is the file. The in-memory reader (parse_safetensors) and the
// file reader (load_safetensors) must agree; whatever they accept must serialize again and read
// back the same (the writer may not refuse what the reader accepts).

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ember/io/safetensors.hpp"
#include "fuzz/harness.hpp"

namespace {

bool same(const ember::io::SafetensorsFile& a, const ember::io::SafetensorsFile& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (const auto& [name, ra] : a.tensors) {
    const auto it = b.tensors.find(name);
    if (it == b.tensors.end()) return false;
    const ember::io::TensorRecord& rb = it->second;
    if (ra.dtype != rb.dtype || ra.shape != rb.shape || ra.data != rb.data) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ember;
  const auto bytes = fuzz::as_bytes(data, size);
  io::SafetensorsFile memory, file;
  const bool in_memory =
      fuzz::accepts([&] { memory = io::parse_safetensors(bytes, "fuzz.safetensors"); });
  const std::string& path = fuzz::temp_file().write({data, size});
  const bool from_file = fuzz::accepts([&] { file = io::load_safetensors(path); });
  fuzz::require(in_memory == from_file,
                "parse_safetensors and load_safetensors disagree on accepting the input");
  if (!in_memory) return 0;
  fuzz::require(same(memory, file), "parse_safetensors and load_safetensors read different files");
  for (const auto& [name, record] : memory.tensors) {
    std::uint64_t n = io::dtype_size(record.dtype);
    for (const std::int64_t d : record.shape) n *= static_cast<std::uint64_t>(d);
    fuzz::require(n == record.data.size(), "a record's data size differs from its shape");
  }
  // Outside accepts(): an ember::Error here is a finding too.
  const std::vector<std::byte> again = io::serialize_safetensors(memory);
  fuzz::require(same(io::parse_safetensors(again, "again.safetensors"), memory),
                "serialize_safetensors then parse_safetensors changed the file");
  return 0;
}
