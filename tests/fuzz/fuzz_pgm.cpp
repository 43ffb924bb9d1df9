// libFuzzer harness: PGM files (ember/data/pgm.hpp). The input is the file. An image read must
// have the size its header gives within the reader's caps, and write_pgm then read_pgm must give
// it back bit for bit.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "ember/data/pgm.hpp"
#include "fuzz/harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ember;
  const std::string& path = fuzz::temp_file().write(std::span<const std::uint8_t>(data, size));
  Tensor<std::uint8_t> img;
  if (!fuzz::accepts([&] { img = data::read_pgm(path); })) return 0;
  fuzz::require(img.dim() == 2 && img.size(0) >= 1 && img.size(1) >= 1 && img.size(0) <= 16384 &&
                    img.size(1) <= 16384 && img.numel() <= data::PgmOptions{}.max_pixels,
                "read_pgm: image size outside the caps");
  // A P5 image takes its pixels from the file: at least that many bytes.
  fuzz::require(size >= static_cast<std::size_t>(img.numel()), "read_pgm: more pixels than bytes");
  const std::string copy = path + ".copy.pgm";
  data::write_pgm(copy, img);
  fuzz::require(data::read_pgm(copy).to_vector() == img.to_vector(),
                "write_pgm then read_pgm changed the image");
  return 0;
}
