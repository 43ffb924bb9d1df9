#pragma once
// The Open Inference Protocol's (KServe v2) inference request and response over HTTP/REST, with
// Triton's binary tensor data extension, as pure functions: bytes and headers in, a request or
// a RequestError out; outputs in, the body and headers out. No sockets here, so that a fuzzer
// (tests/fuzz/fuzz_serve_request.cpp) drives the decoder directly.
//
// A request body is a JSON object, optionally followed by binary tensor data:
//   {"id": "42", "parameters": {"binary_data_output": true, "timeout": 100000},
//    "inputs": [{"name": "input", "datatype": "UINT8", "shape": [2, 28, 28],
//                "data": [0, 0, ...]  or  "parameters": {"binary_data_size": 1568}}],
//    "outputs": [{"name": "log_probs", "parameters": {"binary_data": true}}, {"name": "class"}]}
// With binary data, the header Inference-Header-Content-Length gives the JSON's length in bytes
// and the tensors' bytes follow it, in the order of the inputs that have "binary_data_size":
// little-endian, row-major; a BYTES element is a 4-byte little-endian length and its bytes.
// JSON "data" is row-major, flat or nested as the shape. "timeout" (a request parameter, in
// microseconds, as Triton's) bounds the time the request may wait in the queue.
//
// A response holds the outputs asked for ("outputs"; all when none is named), each as JSON
// "data" or, when asked ("binary_data": true, or "binary_data_output": true for the request),
// as binary data after the JSON with "parameters": {"binary_data_size": n}; the response's
// Inference-Header-Content-Length header then gives the JSON's length.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ember/core/error.hpp"

namespace ember::serve {

/// A request refused: the HTTP status (4xx) and a message naming the problem.
class RequestError : public Error {
 public:
  /// `status` is the HTTP status the server answers with.
  RequestError(int status, const std::string& message) : Error(message), status_(status) {}
  /// The HTTP status.
  [[nodiscard]] int status() const { return status_; }

 private:
  int status_;
};

/// Throws RequestError(status, parts...) unless `cond`.
template <class... Args>
void require(bool cond, int status, const Args&... parts) {
  if (!cond) throw RequestError(status, ::ember::detail::concat(parts...));
}

/// Bounds on what a request may hold.
struct DecodeLimits {
  std::size_t max_json_depth = 16;          ///< nesting of JSON objects and arrays
  std::int64_t max_elements = 1 << 24;      ///< elements of one input tensor
  std::size_t max_inputs = 16;              ///< inputs of one request
  std::size_t max_outputs = 16;             ///< requested outputs of one request
  std::size_t max_bytes_element = 1 << 24;  ///< bytes of one BYTES element
};

/// One input tensor of a request, its data decoded by datatype: FP32 in `fp32`, UINT8 in `u8`,
/// BYTES in `bytes` (one string per element). Other datatypes are refused by the decoder.
struct InputTensor {
  std::string name;                  ///< the input's name
  std::string datatype;              ///< "FP32", "UINT8" or "BYTES"
  std::vector<std::int64_t> shape;   ///< dimensions, each >= 0
  std::vector<float> fp32;           ///< FP32 data, row-major
  std::vector<std::uint8_t> u8;      ///< UINT8 data, row-major
  std::vector<std::string> bytes;    ///< BYTES elements
  bool binary = false;               ///< the data came as binary data
  /// Elements the shape holds.
  [[nodiscard]] std::int64_t elements() const {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    return n;
  }
};

/// An output named in "outputs", and whether it is wanted as binary data.
struct RequestedOutput {
  std::string name;     ///< the output's name
  bool binary = false;  ///< wanted as binary data
};

/// A decoded inference request.
struct InferRequest {
  std::string id;                        ///< "id", echoed in the response ("" when absent)
  std::vector<InputTensor> inputs;       ///< the inputs, in the request's order
  std::vector<RequestedOutput> outputs;  ///< empty: every output
  bool binary_output = false;            ///< "binary_data_output": the default for outputs
  std::optional<std::int64_t> timeout_us;  ///< "timeout" parameter, microseconds
};

/// The datatypes the decoder knows, with their element sizes in bytes (0 for BYTES).
[[nodiscard]] inline std::optional<std::size_t> element_size(std::string_view datatype) {
  struct Entry {
    std::string_view name;
    std::size_t size;
  };
  static constexpr Entry table[] = {{"BOOL", 1}, {"UINT8", 1}, {"UINT16", 2}, {"UINT32", 4},
                                    {"UINT64", 8}, {"INT8", 1}, {"INT16", 2}, {"INT32", 4},
                                    {"INT64", 8}, {"FP16", 2}, {"FP32", 4}, {"FP64", 8},
                                    {"BF16", 2}, {"BYTES", 0}};
  for (const Entry& e : table)
    if (e.name == datatype) return e.size;
  return std::nullopt;
}

namespace detail {

using nlohmann::json;

// Parses JSON text, refusing nesting deeper than max_depth before it is built.
inline json parse_json(std::string_view text, std::size_t max_depth, const char* what) {
  try {
    return json::parse(text.begin(), text.end(),
                       [max_depth, what](int depth, json::parse_event_t event, json&) {
                         if ((event == json::parse_event_t::object_start ||
                              event == json::parse_event_t::array_start) &&
                             static_cast<std::size_t>(depth) >= max_depth)
                           throw RequestError(400, ::ember::detail::concat(
                                                       what, " nests deeper than the limit of ",
                                                       max_depth, " levels"));
                         return true;
                       });
  } catch (const json::exception& e) {
    throw RequestError(400, ::ember::detail::concat(what, " is not valid JSON: ", e.what()));
  }
}

inline std::string quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 64) out += "...";
  return out + "'";
}

// A JSON integer (signed or unsigned) that fits in int64, or nullopt.
inline std::optional<std::int64_t> as_int64(const json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return std::nullopt;
    return static_cast<std::int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<std::int64_t>();
  return std::nullopt;
}

// Appends the leaves of `data` (flat or nested arrays) to `out`, in row-major order.
template <class Leaf>
void flatten(const json& data, std::int64_t limit, const std::string& where, Leaf&& leaf,
             std::int64_t& count) {
  if (data.is_array()) {
    for (const json& v : data) flatten(v, limit, where, leaf, count);
    return;
  }
  require(++count <= limit, 400, where, ": \"data\" holds more elements than the shape's ",
          limit);
  leaf(data);
}

inline std::uint32_t le32(const unsigned char* p) {
  return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) |
         (std::uint32_t{p[3]} << 24);
}

inline void parse_shape(const json& in, InputTensor& t, const std::string& where,
                        const DecodeLimits& limits) {
  const auto it = in.find("shape");
  require(it != in.end() && it->is_array(), 400, where, ": \"shape\" must be an array of integers");
  require(it->size() <= 8, 400, where, ": \"shape\" has ", it->size(),
          " dimensions, more than 8");
  std::int64_t n = 1;
  for (const json& d : *it) {
    const auto v = as_int64(d);
    require(v && *v >= 0, 400, where, ": \"shape\" must hold non-negative integers, got ",
            d.dump());
    t.shape.push_back(*v);
    require(*v == 0 || n <= limits.max_elements / *v, 400, where, ": shape holds more than ",
            limits.max_elements, " elements");
    n *= *v;
  }
}

inline void parse_json_data(const json& data, InputTensor& t, const std::string& where,
                            const DecodeLimits& limits) {
  const std::int64_t n = t.elements();
  std::int64_t count = 0;
  if (t.datatype == "FP32") {
    t.fp32.reserve(static_cast<std::size_t>(n));
    flatten(data, n, where, [&](const json& v) {
      require(v.is_number(), 400, where, ": FP32 data must be numbers, got ", v.dump().substr(0, 40));
      t.fp32.push_back(v.get<float>());
    }, count);
  } else if (t.datatype == "UINT8") {
    t.u8.reserve(static_cast<std::size_t>(n));
    flatten(data, n, where, [&](const json& v) {
      const auto x = as_int64(v);
      require(x && *x >= 0 && *x <= 255, 400, where,
              ": UINT8 data must be integers in [0, 255], got ", v.dump().substr(0, 40));
      t.u8.push_back(static_cast<std::uint8_t>(*x));
    }, count);
  } else {  // BYTES: JSON strings, taken as their UTF-8 bytes
    flatten(data, n, where, [&](const json& v) {
      require(v.is_string(), 400, where, ": BYTES data must be strings, got ",
              v.dump().substr(0, 40));
      require(v.get_ref<const std::string&>().size() <= limits.max_bytes_element, 400, where,
              ": a BYTES element is larger than ", limits.max_bytes_element, " bytes");
      t.bytes.push_back(v.get<std::string>());
    }, count);
  }
  require(count == n, 400, where, ": \"data\" holds ", count, " elements, but the shape holds ",
          n);
}

inline void parse_binary_data(std::string_view bin, InputTensor& t, const std::string& where,
                              const DecodeLimits& limits) {
  const std::int64_t n = t.elements();
  const auto* p = reinterpret_cast<const unsigned char*>(bin.data());
  if (t.datatype == "FP32" || t.datatype == "UINT8") {
    const std::size_t size = *element_size(t.datatype);
    require(bin.size() == static_cast<std::size_t>(n) * size, 400, where,
            ": \"binary_data_size\" is ", bin.size(), " bytes, but shape and datatype take ",
            static_cast<std::size_t>(n) * size);
    if (t.datatype == "FP32") {
      t.fp32.resize(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) {
        const std::uint32_t bits = le32(p + 4 * i);
        std::memcpy(&t.fp32[static_cast<std::size_t>(i)], &bits, 4);
      }
    } else {
      t.u8.assign(p, p + n);
    }
    return;
  }
  // BYTES: each element a 4-byte little-endian length and its bytes, exactly filling the size.
  std::size_t at = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    require(bin.size() - at >= 4, 400, where, ": BYTES element ", i, " of ", n,
            " starts past the end of its ", bin.size(), " bytes of binary data");
    const std::uint32_t len = le32(p + at);
    at += 4;
    require(len <= limits.max_bytes_element, 400, where, ": BYTES element ", i, " is ", len,
            " bytes, more than the limit of ", limits.max_bytes_element);
    require(bin.size() - at >= len, 400, where, ": BYTES element ", i, " of ", len,
            " bytes runs past the end of its binary data");
    t.bytes.emplace_back(bin.substr(at, len));
    at += len;
  }
  require(at == bin.size(), 400, where, ": ", bin.size() - at,
          " bytes of binary data are left after its ", n, " BYTES elements");
}

inline std::optional<bool> bool_parameter(const json& params, const char* key,
                                          const std::string& where) {
  const auto it = params.find(key);
  if (it == params.end()) return std::nullopt;
  require(it->is_boolean(), 400, where, ": parameter \"", key, "\" must be true or false");
  return it->get<bool>();
}

inline const json* parameters(const json& obj, const std::string& where) {
  const auto it = obj.find("parameters");
  if (it == obj.end()) return nullptr;
  require(it->is_object(), 400, where, ": \"parameters\" must be an object");
  return &*it;
}

}  // namespace detail

/// Decodes an inference request: `body` as received and the value of its
/// Inference-Header-Content-Length header (nullopt when absent: the whole body is JSON).
/// Checks the JSON (depth, types), every input's datatype, shape and data count, and the binary
/// data's sizes; throws RequestError (400) naming the problem. Does not know the model: which
/// inputs, datatypes and shapes a model takes is checked when the request is prepared for it.
[[nodiscard]] inline InferRequest decode_infer_request(std::string_view body,
                                                       std::optional<std::string_view> header_length,
                                                       const DecodeLimits& limits = {}) {
  using detail::json;
  std::size_t json_size = body.size();
  if (header_length) {
    const std::string_view h = *header_length;
    require(!h.empty() && h.size() <= 18 && h.find_first_not_of("0123456789") == h.npos, 400,
            "Inference-Header-Content-Length: ", detail::quoted(h), " is not a byte count");
    json_size = std::stoull(std::string(h));
    require(json_size <= body.size(), 400, "Inference-Header-Content-Length: ", json_size,
            " is more than the body's ", body.size(), " bytes");
  }
  const json doc = detail::parse_json(body.substr(0, json_size), limits.max_json_depth,
                                      "the request");
  std::string_view binary = body.substr(json_size);
  require(doc.is_object(), 400, "the request must be a JSON object");

  InferRequest req;
  if (const auto it = doc.find("id"); it != doc.end()) {
    require(it->is_string(), 400, "\"id\" must be a string");
    req.id = it->get<std::string>();
    require(req.id.size() <= 256, 400, "\"id\" is longer than 256 characters");
  }
  if (const json* params = detail::parameters(doc, "the request")) {
    req.binary_output =
        detail::bool_parameter(*params, "binary_data_output", "the request").value_or(false);
    if (const auto t = params->find("timeout"); t != params->end()) {
      const auto us = detail::as_int64(*t);
      require(us && *us >= 0, 400, "parameter \"timeout\" must be a non-negative integer "
              "(microseconds), got ", t->dump());
      req.timeout_us = *us;
    }
  }

  const auto inputs = doc.find("inputs");
  require(inputs != doc.end() && inputs->is_array() && !inputs->empty(), 400,
          "the request needs \"inputs\", a non-empty array");
  require(inputs->size() <= limits.max_inputs, 400, "the request has ", inputs->size(),
          " inputs, more than ", limits.max_inputs);
  for (const json& in : *inputs) {
    require(in.is_object(), 400, "each input must be a JSON object");
    InputTensor t;
    const auto name = in.find("name");
    require(name != in.end() && name->is_string(), 400, "an input has no \"name\" string");
    t.name = name->get<std::string>();
    const std::string where = "input " + detail::quoted(t.name);
    for (const InputTensor& other : req.inputs)
      require(other.name != t.name, 400, where, " is given twice");
    const auto dt = in.find("datatype");
    require(dt != in.end() && dt->is_string(), 400, where, ": no \"datatype\" string");
    t.datatype = dt->get<std::string>();
    require(element_size(t.datatype).has_value(), 400, where, ": unknown datatype ",
            detail::quoted(t.datatype));
    require(t.datatype == "FP32" || t.datatype == "UINT8" || t.datatype == "BYTES", 400, where,
            ": datatype ", t.datatype, " is not served; send FP32, UINT8 or BYTES");
    detail::parse_shape(in, t, where, limits);

    std::optional<std::int64_t> binary_size;
    if (const json* params = detail::parameters(in, where)) {
      if (const auto b = params->find("binary_data_size"); b != params->end()) {
        binary_size = detail::as_int64(*b);
        require(binary_size && *binary_size >= 0, 400, where,
                ": \"binary_data_size\" must be a non-negative integer, got ", b->dump());
      }
    }
    const auto data = in.find("data");
    if (binary_size) {
      require(data == in.end(), 400, where, ": has both \"data\" and \"binary_data_size\"");
      require(static_cast<std::uint64_t>(*binary_size) <= binary.size(), 400, where,
              ": \"binary_data_size\" is ", *binary_size, " bytes, but only ", binary.size(),
              " bytes of binary data are left in the body");
      const auto size = static_cast<std::size_t>(*binary_size);
      detail::parse_binary_data(binary.substr(0, size), t, where, limits);
      binary = binary.substr(size);
      t.binary = true;
    } else {
      require(data != in.end(), 400, where, ": no \"data\" and no \"binary_data_size\"");
      detail::parse_json_data(*data, t, where, limits);
    }
    req.inputs.push_back(std::move(t));
  }
  require(binary.empty(), 400, binary.size(),
          " bytes of binary data follow the inputs' (binary_data_size does not add up to the "
          "body after Inference-Header-Content-Length)");

  if (const auto outs = doc.find("outputs"); outs != doc.end()) {
    require(outs->is_array(), 400, "\"outputs\" must be an array");
    require(outs->size() <= limits.max_outputs, 400, "the request asks for ", outs->size(),
            " outputs, more than ", limits.max_outputs);
    for (const json& o : *outs) {
      require(o.is_object(), 400, "each requested output must be a JSON object");
      const auto name = o.find("name");
      require(name != o.end() && name->is_string(), 400, "a requested output has no \"name\"");
      RequestedOutput r{name->get<std::string>(), req.binary_output};
      const std::string where = "output " + detail::quoted(r.name);
      for (const RequestedOutput& other : req.outputs)
        require(other.name != r.name, 400, where, " is asked for twice");
      if (const json* params = detail::parameters(o, where))
        r.binary = detail::bool_parameter(*params, "binary_data", where).value_or(r.binary);
      req.outputs.push_back(std::move(r));
    }
  }
  return req;
}

/// One output tensor of a response: FP32 or INT64 data, row-major.
struct OutputTensor {
  std::string name;                 ///< the output's name
  std::string datatype;             ///< "FP32" or "INT64"
  std::vector<std::int64_t> shape;  ///< dimensions
  std::vector<float> fp32;          ///< FP32 data, row-major
  std::vector<std::int64_t> i64;    ///< INT64 data, row-major
};

/// A response's body and the value of its Inference-Header-Content-Length header (nullopt
/// when no output is binary: the whole body is JSON).
struct EncodedResponse {
  std::string body;                          ///< the JSON, then any binary data
  std::optional<std::size_t> header_length;  ///< the JSON's bytes, when binary data follow
  /// The Content-Type: application/json, or application/octet-stream with binary data.
  [[nodiscard]] const char* content_type() const {
    return header_length ? "application/octet-stream" : "application/json";
  }
};

/// Encodes the response to `req`: the outputs it asks for (all when it names none), in its
/// order, each as JSON data or binary data as asked. Throws RequestError (400) for an output
/// name the model does not have.
[[nodiscard]] inline EncodedResponse encode_infer_response(
    const InferRequest& req, const std::string& model_name, const std::string& model_version,
    const std::vector<OutputTensor>& outputs) {
  using detail::json;
  std::vector<std::pair<const OutputTensor*, bool>> chosen;  // output, binary
  if (req.outputs.empty()) {
    for (const OutputTensor& o : outputs) chosen.emplace_back(&o, req.binary_output);
  } else {
    for (const RequestedOutput& r : req.outputs) {
      const OutputTensor* found = nullptr;
      for (const OutputTensor& o : outputs)
        if (o.name == r.name) found = &o;
      if (found == nullptr) {
        std::string names;
        for (const OutputTensor& o : outputs) names += (names.empty() ? "'" : ", '") + o.name + "'";
        throw RequestError(400, ::ember::detail::concat("model '", model_name,
                                                        "' has no output ", detail::quoted(r.name),
                                                        "; its outputs are ", names));
      }
      chosen.emplace_back(found, r.binary);
    }
  }
  json doc = {{"model_name", model_name}, {"model_version", model_version}};
  if (!req.id.empty()) doc["id"] = req.id;
  json outs = json::array();
  std::string binary;
  bool any_binary = false;
  for (const auto& [o, as_binary] : chosen) {
    json j = {{"name", o->name}, {"datatype", o->datatype}, {"shape", o->shape}};
    if (as_binary) {
      any_binary = true;
      const std::size_t before = binary.size();
      if (o->datatype == "FP32") {
        for (float v : o->fp32) {
          std::uint32_t bits = 0;
          std::memcpy(&bits, &v, 4);
          for (int b = 0; b < 4; ++b) binary.push_back(static_cast<char>((bits >> (8 * b)) & 0xff));
        }
      } else {
        for (std::int64_t v : o->i64) {
          const auto u = static_cast<std::uint64_t>(v);
          for (int b = 0; b < 8; ++b) binary.push_back(static_cast<char>((u >> (8 * b)) & 0xff));
        }
      }
      j["parameters"] = {{"binary_data_size", binary.size() - before}};
    } else if (o->datatype == "FP32") {
      j["data"] = o->fp32;
    } else {
      j["data"] = o->i64;
    }
    outs.push_back(std::move(j));
  }
  doc["outputs"] = std::move(outs);
  EncodedResponse r;
  r.body = doc.dump();
  if (any_binary) {
    r.header_length = r.body.size();
    r.body += binary;
  }
  return r;
}

/// The JSON error body the server answers a refused request with: {"error": "..."}.
[[nodiscard]] inline std::string error_json(const std::string& message) {
  return nlohmann::json{{"error", message}}.dump(-1, ' ', false,
                                                 nlohmann::json::error_handler_t::replace);
}

}  // namespace ember::serve
