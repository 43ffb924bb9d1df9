// libFuzzer harness: IDX files as raw bytes (ember/data/idx.hpp). The input is the file. The
// in-memory reader (parse_idx), the file reader (read_idx) and the tensor reader
// (read_idx_u8_tensor) must agree: all refuse it, or all return the same array.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "ember/data/idx.hpp"
#include "fuzz/harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ember;
  const std::span<const std::uint8_t> bytes(data, size);
  data::IdxArray memory, file;
  const bool in_memory = fuzz::accepts([&] { memory = data::parse_idx(bytes, "fuzz.idx"); });
  const std::string& path = fuzz::temp_file().write(bytes);
  const bool from_file = fuzz::accepts([&] { file = data::read_idx(path); });
  fuzz::require(in_memory == from_file, "parse_idx and read_idx disagree on accepting the input");
  if (!in_memory) return 0;
  fuzz::require(
      memory.type_code == file.type_code && memory.dims == file.dims && memory.bytes == file.bytes,
      "parse_idx and read_idx read different arrays");
  std::uint64_t n = static_cast<std::uint64_t>(data::idx_element_size(memory.type_code));
  for (const std::int64_t d : memory.dims) n *= static_cast<std::uint64_t>(d);
  fuzz::require(n == memory.bytes.size(), "payload size differs from prod(dims) * element size");
  if (memory.type_code == 0x08) {
    const Tensor<std::uint8_t> t = data::read_idx_u8_tensor(path);
    fuzz::require(t.shape() == memory.dims, "read_idx_u8_tensor: wrong shape");
    fuzz::require(n == 0 || std::memcmp(t.data(), memory.bytes.data(), n) == 0,
                  "read_idx_u8_tensor: wrong data");
  }
  return 0;
}
