// libFuzzer harness: a model's state_dict from a safetensors file (ember/io/state_dict.hpp)
// loaded into a narrow MnistNet (models/mnist_net.hpp, same layers and names, conv1 1, conv2 1,
// hidden 2 wide, so that a valid file is 1.6 KB). What loads must be in the model, value for
// value.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>

#include "ember/io/state_dict.hpp"
#include "ember/models/mnist_net.hpp"
#include "fuzz/harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ember;
  Generator gen(7);
  models::MnistNet model(models::MnistNetConfig{1, 1, 2}, gen);
  const bool strict = size == 0 || (data[size - 1] & 1) == 0;  // the last byte picks
  nn::NamedTensors state;
  const bool loaded = fuzz::accepts([&] {
    const io::SafetensorsFile f =
        io::parse_safetensors(fuzz::as_bytes(data, size), "fuzz.safetensors");
    state = io::state_dict_from_safetensors(f, "fuzz.safetensors");
    io::load_into(model, state, "fuzz.safetensors", strict);
  });
  if (!loaded) return 0;
  std::map<std::string, Tensor<float>> own;
  for (const auto& [name, t] : model.state_dict()) own.emplace(name, t);
  for (const auto& [name, t] : state) {
    const auto it = own.find(name);
    if (it == own.end()) {
      fuzz::require(!strict, "a strict load accepted a key the model does not have");
      continue;
    }
    const Tensor<float>& mine = it->second;
    fuzz::require(mine.shape() == t.shape(), "a loaded tensor has another shape");
    const Tensor<float> c = mine.contiguous();
    fuzz::require(std::memcmp(c.data(), t.contiguous().data(),
                              static_cast<std::size_t>(c.numel()) * sizeof(float)) == 0,
                  "a loaded tensor has other values");
  }
  if (strict) fuzz::require(state.size() == own.size(), "a strict load missed a key");
  return 0;
}
