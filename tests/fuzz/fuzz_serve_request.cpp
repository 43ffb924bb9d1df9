// libFuzzer harness: the inference server's request decoder (ember/serve/protocol.hpp), which
// reads bytes from any client, and the preparation of a decoded request for a model
// (serve/model_config.hpp: shapes, datatypes, PNG files in BYTES). The input's first byte
// chooses whether an Inference-Header-Content-Length header comes with the body and, with the
// second, its value (so that the JSON / binary split lands anywhere); the rest is the body.
// Properties: a decoded request's tensors hold exactly the elements their shapes say, and
// encoding a response to it either succeeds or refuses an output by name.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ember/serve/model_config.hpp"
#include "ember/serve/protocol.hpp"
#include "fuzz/harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ember;
  if (size < 2) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);
  std::optional<std::string> header;
  if (data[0] % 3 == 1) header = std::to_string(data[1] % (body.size() + 2));  // may overrun
  if (data[0] % 3 == 2) header = std::string(reinterpret_cast<const char*>(data) + 1, 1);
  std::optional<std::string_view> header_view;
  if (header) header_view = *header;
  serve::DecodeLimits limits;
  limits.max_elements = 1 << 16;  // shapes stay small enough to fuzz fast
  (void)fuzz::accepts([&] {
    const serve::InferRequest req = serve::decode_infer_request(body, header_view, limits);
    for (const serve::InputTensor& t : req.inputs) {
      const auto n = static_cast<std::size_t>(t.elements());
      const std::size_t held = t.datatype == "FP32"    ? t.fp32.size()
                               : t.datatype == "UINT8" ? t.u8.size()
                                                       : t.bytes.size();
      fuzz::require(held == n, "a decoded tensor holds other than its shape's elements");
    }
    serve::ModelConfig config;
    config.max_batch_size = 4;
    const Tensor<float> x = serve::prepare_input(req, config);
    fuzz::require(x.dim() == 4 && x.size(0) >= 1 && x.size(0) <= 4, "a prepared batch's shape");
    std::vector<float> log_probs(static_cast<std::size_t>(x.size(0) * 10), -2.3f);
    (void)serve::encode_infer_response(req, "m", "1",
                                       serve::make_outputs(log_probs.data(), x.size(0)));
  });
  return 0;
}
