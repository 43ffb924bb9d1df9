// libFuzzer harness: PNG files (ember/data/png.hpp, libpng's simplified API). The input is the
// file. read_png from the file and from the same bytes in memory must agree: both refuse it, or
// both give the same image, of at most max_pixels pixels. Images are capped at 2^22 pixels here
// so that each input decodes quickly.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "ember/data/png.hpp"
#include "fuzz/harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ember;
  const data::PngOptions options{.background = static_cast<std::uint8_t>(size % 2 ? 255 : 0),
                                 .max_pixels = std::int64_t{1} << 22};
  Tensor<std::uint8_t> memory, file;
  const bool in_memory = fuzz::accepts(
      [&] { memory = data::read_png(fuzz::as_bytes(data, size), "fuzz.png", options); });
  const std::string& path = fuzz::temp_file().write(std::span<const std::uint8_t>(data, size));
  const bool from_file = fuzz::accepts([&] { file = data::read_png(path, options); });
  fuzz::require(in_memory == from_file, "read_png: file and memory disagree on accepting it");
  if (!in_memory) return 0;
  fuzz::require(memory.dim() == 2 && memory.numel() >= 1 && memory.numel() <= options.max_pixels,
                "read_png: image size outside the cap");
  fuzz::require(memory.shape() == file.shape() && memory.to_vector() == file.to_vector(),
                "read_png: file and memory give different images");
  return 0;
}
