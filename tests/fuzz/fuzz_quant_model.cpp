// libFuzzer harness: int8 model files (ember/quant/serialize.hpp, over the safetensors reader).
// The input is the file. A model that loads is run on a two-sample input when its buffers are
// small (largest_sample_buffer), and must survive a save/load round trip: the reloaded model
// gives the same output bits.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "ember/core/parallel.hpp"
#include "ember/quant/serialize.hpp"
#include "fuzz/harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ember;
  static const bool one_thread = [] {
    set_num_threads(1);  // a forward pass per input: threads would cost more than they save
    return true;
  }();
  (void)one_thread;
  const std::string& path = fuzz::temp_file().write(std::span<const std::uint8_t>(data, size));
  quant::QuantizedModel q;
  if (!fuzz::accepts([&] { q = quant::load_quantized(path); })) return 0;
  fuzz::require(!q.layers().empty() && q.largest_sample_buffer() > 0,
                "load_quantized: a model without steps or buffers");
  const quant::QuantizedModel back =
      quant::from_safetensors(quant::to_safetensors(q), "round trip");
  fuzz::require(back.layers().size() == q.layers().size() && back.input_shape() == q.input_shape(),
                "to_safetensors then from_safetensors changed the model");
  if (q.largest_sample_buffer() > (std::int64_t{1} << 16)) return 0;

  Shape shape{2};
  shape.insert(shape.end(), q.input_shape().begin(), q.input_shape().end());
  auto x = Tensor<float>::empty(shape);
  for (std::int64_t i = 0; i < x.numel(); ++i)
    x.data()[i] =
        static_cast<float>((i * 37 + static_cast<std::int64_t>(size)) % 101) / 50.0f - 1.0f;
  Tensor<float> y, y_back;
  // Layers that do not fit together at run time (a log_softmax over codes, ...) are errors.
  if (!fuzz::accepts([&] { y = q(x); })) return 0;
  y_back = back(x);
  fuzz::require(y.shape() == y_back.shape() && y.size(0) == 2, "forward: wrong output shape");
  fuzz::require(std::memcmp(y.data(), y_back.data(), sizeof(float) * y.numel()) == 0,
                "the reloaded model computes different bits");
  return 0;
}
