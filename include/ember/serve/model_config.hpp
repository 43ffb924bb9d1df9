#pragma once
// A served model's settings and what it takes and gives, for the inference server (serve/):
// the per-model config.json of a model repository, the input a request may send (FP32
// normalised, UINT8 raw, BYTES holding PNG files) made into one normalised batch, and the
// outputs made from the model's log-probabilities.
//
// config.json (every key optional; unknown keys are refused):
//   {"max_batch_size": 64,
//    "input": {"shape": [1, 28, 28], "mean": 0.5, "std": 0.5},
//    "dynamic_batching": {"max_queue_delay_microseconds": 2000, "max_queue_size": 256,
//                         "default_timeout_microseconds": 0},
//    "instance_count": 1,
//    "version_policy": "latest"}          // or "all"
// "mean" and "std" are the pixel normalisation of training, (pixel / 255 - mean) / std, applied
// by the server to UINT8 and BYTES inputs; FP32 inputs come normalised. "instance_count" is
// the number of inference threads that run the model's batches. A timeout of 0 means none.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ember/core/tensor.hpp"
#include "ember/data/digit_png.hpp"
#include "ember/data/normalize.hpp"
#include "ember/serve/protocol.hpp"

namespace ember::serve {

/// The name of the one input, and of the two outputs, of every served classifier.
inline constexpr const char* kInputName = "input";
inline constexpr const char* kLogProbsName = "log_probs";  ///< FP32 [N, 10]
inline constexpr const char* kClassName = "class";         ///< INT64 [N]
inline constexpr std::int64_t kClasses = 10;  ///< classes of the served classifiers
inline constexpr std::int64_t kSide = 28;     ///< side of an input image, pixels

/// Settings of one served model.
struct ModelConfig {
  std::int64_t max_batch_size = 64;             ///< images in one forward, and in one request
  float mean = 0.5f;                            ///< normalisation of UINT8 and BYTES inputs
  float std = 0.5f;                             ///< (pixel / 255 - mean) / std
  std::int64_t max_queue_delay_us = 2000;       ///< how long a batch waits to fill
  std::int64_t max_queue_size = 256;            ///< requests waiting; beyond: 503
  std::int64_t default_timeout_us = 0;          ///< queue timeout when a request gives none
  int instance_count = 1;                       ///< inference threads
  bool all_versions = false;                    ///< version_policy "all" (else "latest")

  /// Checks the values; throws ember::Error naming `source` and the field.
  void validate(const std::string& source) const {
    EMBER_CHECK(max_batch_size >= 1 && max_batch_size <= 4096, source,
                ": max_batch_size must be in [1, 4096], got ", max_batch_size);
    EMBER_CHECK(std > 0 && std::isfinite(std) && std::isfinite(mean), source,
                ": input mean must be finite and std positive, got ", mean, " and ", std);
    EMBER_CHECK(max_queue_delay_us >= 0 && max_queue_delay_us <= 10'000'000, source,
                ": max_queue_delay_microseconds must be in [0, 10000000], got ",
                max_queue_delay_us);
    EMBER_CHECK(max_queue_size >= 1 && max_queue_size <= 1'000'000, source,
                ": max_queue_size must be in [1, 1000000], got ", max_queue_size);
    EMBER_CHECK(default_timeout_us >= 0, source,
                ": default_timeout_microseconds must be >= 0, got ", default_timeout_us);
    EMBER_CHECK(instance_count >= 1 && instance_count <= 64, source,
                ": instance_count must be in [1, 64], got ", instance_count);
  }
};

namespace detail {

inline void check_keys(const nlohmann::json& obj, std::initializer_list<const char*> keys,
                       const std::string& where) {
  EMBER_CHECK(obj.is_object(), where, " must be a JSON object");
  for (const auto& [k, v] : obj.items()) {
    bool known = false;
    for (const char* key : keys) known = known || k == key;
    std::string list;
    for (const char* key : keys) list += (list.empty() ? "" : ", ") + std::string(key);
    EMBER_CHECK(known, where, ": unknown key '", k, "' (known: ", list, ")");
  }
}

inline std::int64_t config_int(const nlohmann::json& obj, const char* key, std::int64_t def,
                               const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end()) return def;
  EMBER_CHECK(it->is_number_integer(), where, ": '", key, "' must be an integer, got ",
              it->dump());
  return it->get<std::int64_t>();
}

inline float config_float(const nlohmann::json& obj, const char* key, float def,
                          const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end()) return def;
  EMBER_CHECK(it->is_number(), where, ": '", key, "' must be a number, got ", it->dump());
  return it->get<float>();
}

}  // namespace detail

/// A config.json's text (see the top of this file) over `defaults`; `source` names it in
/// errors. Throws ember::Error for bad JSON, unknown keys, wrong types or values.
[[nodiscard]] inline ModelConfig parse_model_config(const std::string& text,
                                                    const std::string& source,
                                                    ModelConfig c = {}) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(::ember::detail::concat(source, ": not valid JSON: ", e.what()));
  }
  detail::check_keys(doc, {"max_batch_size", "input", "dynamic_batching", "instance_count",
                           "version_policy", "name", "platform"}, source);
  c.max_batch_size = detail::config_int(doc, "max_batch_size", c.max_batch_size, source);
  c.instance_count = static_cast<int>(std::clamp<std::int64_t>(
      detail::config_int(doc, "instance_count", c.instance_count, source), -1, 1000));
  if (const auto in = doc.find("input"); in != doc.end()) {
    const std::string where = source + ": \"input\"";
    detail::check_keys(*in, {"shape", "mean", "std"}, where);
    if (const auto s = in->find("shape"); s != in->end())
      EMBER_CHECK(*s == nlohmann::json({1, kSide, kSide}), where, ": shape must be [1, 28, 28] "
                  "(the served classifiers take MNIST digits), got ", s->dump());
    c.mean = detail::config_float(*in, "mean", c.mean, where);
    c.std = detail::config_float(*in, "std", c.std, where);
  }
  if (const auto db = doc.find("dynamic_batching"); db != doc.end()) {
    const std::string where = source + ": \"dynamic_batching\"";
    detail::check_keys(*db, {"max_queue_delay_microseconds", "max_queue_size",
                             "default_timeout_microseconds"}, where);
    c.max_queue_delay_us =
        detail::config_int(*db, "max_queue_delay_microseconds", c.max_queue_delay_us, where);
    c.max_queue_size = detail::config_int(*db, "max_queue_size", c.max_queue_size, where);
    c.default_timeout_us =
        detail::config_int(*db, "default_timeout_microseconds", c.default_timeout_us, where);
  }
  if (const auto vp = doc.find("version_policy"); vp != doc.end()) {
    EMBER_CHECK(*vp == "latest" || *vp == "all", source,
                ": version_policy must be \"latest\" or \"all\", got ", vp->dump());
    c.all_versions = *vp == "all";
  }
  c.validate(source);
  return c;
}

/// A request's one input made into a normalised batch (N, 1, 28, 28) for a model with config
/// `c`: FP32 [N, 1, 28, 28] as given (already normalised), UINT8 [N, 28, 28] or [N, 1, 28, 28]
/// raw pixels normalised with c's mean and std, BYTES [N] or [N, 1] holding PNG files of any
/// size and polarity (data::png_to_mnist_digit, as mnist_infer prepares them), then normalised.
/// Throws RequestError (400) naming the problem: input name, datatype, shape, batch size over
/// max_batch_size, a BYTES element that is no PNG or holds no digit.
[[nodiscard]] inline Tensor<float> prepare_input(const InferRequest& req, const ModelConfig& c) {
  require(req.inputs.size() == 1, 400, "the model takes 1 input ('", kInputName, "'), got ",
          req.inputs.size());
  const InputTensor& t = req.inputs[0];
  require(t.name == kInputName, 400, "unknown input ", detail::quoted(t.name),
          "; the model's input is '", kInputName, "'");
  const std::vector<std::int64_t>& s = t.shape;
  const std::int64_t n = s.empty() ? 0 : s[0];
  const auto shape_text = [&] { return nlohmann::json(s).dump(); };
  if (t.datatype == "FP32") {
    require(s.size() == 4 && s[1] == 1 && s[2] == kSide && s[3] == kSide, 400,
            "FP32 input must have shape [N, 1, 28, 28] (normalised pixels), got ", shape_text());
  } else if (t.datatype == "UINT8") {
    require((s.size() == 3 && s[1] == kSide && s[2] == kSide) ||
                (s.size() == 4 && s[1] == 1 && s[2] == kSide && s[3] == kSide),
            400, "UINT8 input must have shape [N, 28, 28] (raw pixels), got ", shape_text());
  } else {
    require(s.size() == 1 || (s.size() == 2 && s[1] == 1), 400,
            "BYTES input must have shape [N] or [N, 1] (one PNG file each), got ", shape_text());
  }
  require(n >= 1, 400, "the batch is empty (shape ", shape_text(), ")");
  require(n <= c.max_batch_size, 400, "a batch of ", n, " images is more than the model's "
          "max_batch_size of ", c.max_batch_size);

  auto x = Tensor<float>::empty({n, 1, kSide, kSide});
  float* out = x.data();
  const auto norm = data::PixelNormalization::from(c.mean, c.std);
  constexpr std::int64_t pixels = kSide * kSide;
  if (t.datatype == "FP32") {
    std::copy(t.fp32.begin(), t.fp32.end(), out);
    for (std::int64_t i = 0; i < n * pixels; ++i)
      require(std::isfinite(out[i]), 400, "FP32 input element ", i, " is not finite");
  } else if (t.datatype == "UINT8") {
    for (std::int64_t i = 0; i < n * pixels; ++i)
      out[i] = norm(t.u8[static_cast<std::size_t>(i)]);
  } else {
    for (std::int64_t i = 0; i < n; ++i) {
      const std::string& png = t.bytes[static_cast<std::size_t>(i)];
      Tensor<std::uint8_t> digit;
      try {
        digit = data::png_to_mnist_digit(
            std::span(reinterpret_cast<const std::byte*>(png.data()), png.size()),
            "input[" + std::to_string(i) + "]", data::Polarity::detect);
      } catch (const RequestError&) {
        throw;
      } catch (const Error& e) {
        throw RequestError(400, e.what());
      }
      const std::uint8_t* d = digit.data();
      for (std::int64_t k = 0; k < pixels; ++k) out[i * pixels + k] = norm(d[k]);
    }
  }
  return x;
}

/// The outputs of a batch's log-probabilities (N, 10): "log_probs" FP32 [N, 10] and "class"
/// INT64 [N], the index of the largest log-probability (the first on ties).
[[nodiscard]] inline std::vector<OutputTensor> make_outputs(const float* log_probs,
                                                            std::int64_t n) {
  OutputTensor lp{kLogProbsName, "FP32", {n, kClasses}, {}, {}};
  lp.fp32.assign(log_probs, log_probs + n * kClasses);
  OutputTensor cls{kClassName, "INT64", {n}, {}, {}};
  for (std::int64_t i = 0; i < n; ++i) {
    const float* row = log_probs + i * kClasses;
    cls.i64.push_back(std::max_element(row, row + kClasses) - row);
  }
  return {std::move(lp), std::move(cls)};
}

}  // namespace ember::serve
