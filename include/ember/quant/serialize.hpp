#pragma once
// int8 models on disk: one safetensors file, written atomically.
//
// Per layer with weights, under its name ("conv1", "fc1", ...):
//   <name>.weight             I8  PyTorch's shape, (out, in, k, k) or (out, in)
//   <name>.weight_scale       F32 (out)          w = weight * weight_scale[out channel]
//   <name>.bias               F32 (out)
//   <name>.input_scale        F32 ()             x = (code - zero_point) * input_scale
//   <name>.input_zero_point   I32 ()
// Per average pooling layer: <name>.input_scale and <name>.input_zero_point as above. Per batch
// norm run in float: <name>.weight_scale and <name>.bias, F32 (C): y = x * weight_scale + bias.
// Metadata: "format" = "ember-int8", "version", "input_shape" = "1,28,28", and "steps",
// the layer list: "conv2d:conv1:in,out,kernel,stride,padding,dilation;relu:relu;
// max_pool2d:max_pool2d:kernel,stride,padding;flatten:flatten:dim;linear:fc1:in,out;
// log_softmax:log_softmax:dim;dropout:dropout1". Other metadata (the model's info()) is kept.
//
// Version 1 has the steps above, log_softmax over dim 1 only. Version 2 adds
//   batch_norm:name:channels   avg_pool2d:name:kh,kw,sh,sw,ph,pw,ceil_mode,count_include_pad
//   adaptive_avg_pool2d:name:out_h,out_w   sigmoid:name   tanh:name   silu:name
//   gelu:name:0 (exact) or 1 (tanh)   leaky_relu:name:negative_slope   elu:name:alpha
//   softmax:name:dim   log_softmax:name:dim (any dim)
// (negative_slope and alpha as the shortest decimal that reads back to the same double). A
// model is written as version 1 when it has only version 1's steps, so that older readers load
// it; both versions are read.
//
// Reading checks every number of the metadata against the bounds below before any size is
// computed from it (QuantizedModel then overflow-checks every product and sum of them), and
// every error names the file and the field; text from the file is clipped in messages.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ember/io/safetensors.hpp"
#include "ember/quant/quantize.hpp"

namespace ember::quant {

/// The "format" in an int8 model file's metadata.
inline constexpr const char* kInt8Format = "ember-int8";

/// Bounds on the numbers a file's metadata may give, far above any real model: channels and
/// features, a sample's dimensions and its elements, the kernel, stride, dilation and padding
/// of conv2d and max_pool2d.
inline constexpr std::int64_t kMaxFileChannels = std::int64_t{1} << 24;
/// See kMaxFileChannels.
inline constexpr std::int64_t kMaxFileInputDim = std::int64_t{1} << 24;
/// See kMaxFileChannels.
inline constexpr std::int64_t kMaxFileInputElements = std::int64_t{1} << 30;
inline constexpr std::int64_t kMaxFileWindow = 1024;   ///< kernel, stride, dilation, padding

namespace detail {

inline std::string join_ints(const std::vector<std::int64_t>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}

inline std::vector<std::int64_t> parse_ints(const std::string& s, const std::string& what) {
  std::vector<std::int64_t> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const std::size_t end = std::min(s.find(',', pos), s.size());
    std::int64_t v = 0;
    const auto [p, ec] = std::from_chars(s.data() + pos, s.data() + end, v);
    EMBER_CHECK(ec == std::errc() && p == s.data() + end && end > pos, what, ": '",
                ::ember::detail::clip_text(s, 80), "' is not a list of integers");
    out.push_back(v);
    pos = end + 1;
  }
  return out;
}

inline nn::Step::Op parse_op(const std::string& s, const std::string& what) {
  for (nn::Step::Op op : nn::kAllStepOps)
    if (s == nn::op_name(op)) return op;
  throw Error(what + ": unknown step '" + ::ember::detail::clip_text(s, 80) + "'");
}

// The format version a layer needs (see the top of this file).
inline int version_needed(const QLayer& l) {
  using Op = nn::Step::Op;
  switch (l.op) {
    case Op::conv2d:
    case Op::linear:
    case Op::relu:
    case Op::max_pool2d:
    case Op::flatten:
    case Op::dropout: return 1;
    case Op::log_softmax: return l.dim == 1 ? 1 : 2;
    default: return 2;
  }
}

// A double written exactly (the shortest decimal that reads back to it) and read back.
inline std::string format_double(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}
inline double parse_double(const std::string& s, const std::string& what) {
  double v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  EMBER_CHECK(ec == std::errc() && p == s.data() + s.size() && !s.empty() && std::isfinite(v), what,
              ": '", ::ember::detail::clip_text(s, 80), "' is not a finite number");
  return v;
}

// Checks that a number from the metadata lies in [lo, hi].
inline void check_range(const std::string& what, const char* field, std::int64_t v, std::int64_t lo,
                        std::int64_t hi) {
  EMBER_CHECK(v >= lo && v <= hi, what, ": ", field, " ", v, " is out of range [", lo, ", ", hi,
              "]");
}

// The version field: "1" and "2" are read; a larger number is a newer format, anything else is
// invalid. Returns the version.
inline int check_version(const std::string& version, const std::string& source) {
  if (version == "1") return 1;
  if (version == "2") return 2;
  std::int64_t v = 0;
  const auto [p, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
  const bool number =
      ec == std::errc() && p == version.data() + version.size() && version[0] != '0';
  EMBER_CHECK(!(number && v > 2), "int8 model '", source, "': version ", v,
              " is newer than this ember reads (1 and 2)");
  throw Error("int8 model '" + source + "': version \"" + ::ember::detail::clip_text(version, 40) +
              "\" is invalid (this ember reads versions 1 and 2)");
}

// input_shape: (C, H, W) or (features), each size and their product bounded.
inline void check_input_shape(const std::vector<std::int64_t>& shape, const std::string& source) {
  const std::string what = "int8 model '" + source + "': input_shape";
  EMBER_CHECK(shape.size() == 1 || shape.size() == 3, what, " ", shape_str(shape),
              " must be (C, H, W) or (features)");
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    check_range(what + " " + shape_str(shape), "size", d, 1, kMaxFileInputDim);
    n *= d;  // at most 2^30 * 2^24: no overflow
    EMBER_CHECK(n <= kMaxFileInputElements, what, " ", shape_str(shape), " has more than ",
                kMaxFileInputElements, " elements");
  }
}

// The numbers of one step, each within its bound.
inline void check_step_ranges(const QLayer& l, const std::string& what) {
  switch (l.op) {
    case nn::Step::Op::conv2d:
      check_range(what, "kernel", l.kernel, 1, kMaxFileWindow);
      check_range(what, "stride", l.stride, 1, kMaxFileWindow);
      check_range(what, "padding", l.padding, 0, kMaxFileWindow);
      check_range(what, "dilation", l.dilation, 1, kMaxFileWindow);
      [[fallthrough]];
    case nn::Step::Op::linear:
      check_range(what, "in", l.in, 1, kMaxFileChannels);
      check_range(what, "out", l.out, 1, kMaxFileChannels);
      break;
    case nn::Step::Op::max_pool2d:
      check_range(what, "kernel", l.kernel, 1, kMaxFileWindow);
      check_range(what, "stride", l.stride, 1, kMaxFileWindow);
      check_range(what, "padding", l.padding, 0, l.kernel / 2);
      break;
    case nn::Step::Op::flatten:
      check_range(what, "dim", l.dim, 1, 1);
      break;
    case nn::Step::Op::log_softmax:
    case nn::Step::Op::softmax:
      check_range(what, "dim", l.dim, -4, 3);
      break;
    case nn::Step::Op::batch_norm:
      check_range(what, "channels", l.in, 1, kMaxFileChannels);
      break;
    case nn::Step::Op::avg_pool2d:
      check_range(what, "kernel height", l.pool.kh, 1, kMaxFileWindow);
      check_range(what, "kernel width", l.pool.kw, 1, kMaxFileWindow);
      check_range(what, "stride height", l.pool.sh, 1, kMaxFileWindow);
      check_range(what, "stride width", l.pool.sw, 1, kMaxFileWindow);
      check_range(what, "padding height", l.pool.ph, 0, l.pool.kh / 2);
      check_range(what, "padding width", l.pool.pw, 0, l.pool.kw / 2);
      break;
    case nn::Step::Op::adaptive_avg_pool2d:
      check_range(what, "output height", l.pool.out_h, 1, kMaxFileInputDim);
      check_range(what, "output width", l.pool.out_w, 1, kMaxFileInputDim);
      break;
    case nn::Step::Op::relu:
    case nn::Step::Op::dropout:
    case nn::Step::Op::sigmoid:
    case nn::Step::Op::tanh:
    case nn::Step::Op::gelu:
    case nn::Step::Op::leaky_relu:
    case nn::Step::Op::elu:
    case nn::Step::Op::silu:
      break;
  }
}

template <class T>
io::TensorRecord record(const char* dtype, std::vector<std::int64_t> shape, const std::vector<T>& v) {
  io::TensorRecord r{dtype, std::move(shape), std::vector<std::byte>(v.size() * sizeof(T))};
  if (!v.empty()) std::memcpy(r.data.data(), v.data(), r.data.size());
  return r;
}

// The tensor `name` of the file, checked for dtype and shape, as values of type T.
template <class T>
std::vector<T> read_record(const io::SafetensorsFile& f, const std::string& name, const char* dtype,
                           const std::vector<std::int64_t>& shape, const std::string& source) {
  const auto it = f.tensors.find(name);
  const std::string shown = ::ember::detail::clip_text(name, 100);
  EMBER_CHECK(it != f.tensors.end(), "int8 model '", source, "': missing tensor '", shown, "'");
  const io::TensorRecord& r = it->second;
  EMBER_CHECK(r.dtype == dtype, "int8 model '", source, "': tensor '", shown, "' has dtype ",
              ::ember::detail::clip_text(r.dtype, 20), ", expected ", dtype);
  EMBER_CHECK(r.shape == shape, "int8 model '", source, "': tensor '", shown, "' has shape ",
              shape_str(r.shape), ", expected ", shape_str(shape));
  std::vector<T> v(r.data.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), r.data.data(), v.size() * sizeof(T));
  return v;
}

}  // namespace detail

/// The file's bytes-to-be: tensors and metadata.
[[nodiscard]] inline io::SafetensorsFile to_safetensors(const QuantizedModel& m) {
  io::SafetensorsFile f;
  f.metadata = m.info();
  f.metadata["format"] = kInt8Format;
  int version = 1;
  for (const QLayer& l : m.layers()) version = std::max(version, detail::version_needed(l));
  f.metadata["version"] = std::to_string(version);
  f.metadata["input_shape"] = detail::join_ints(m.input_shape());
  f.metadata["activation_bits"] = "7";
  f.metadata["weights"] = "int8, symmetric, per output channel";
  std::string steps;
  for (const QLayer& l : m.layers()) {
    EMBER_CHECK(l.name.find_first_of(":;") == std::string::npos && !l.name.empty(),
                "save_quantized: layer name '", l.name, "' must be non-empty without ':' or ';'");
    if (!steps.empty()) steps += ';';
    steps += std::string(nn::op_name(l.op)) + ":" + l.name;
    switch (l.op) {
      case nn::Step::Op::conv2d:
        steps += ":" + detail::join_ints({l.in, l.out, l.kernel, l.stride, l.padding, l.dilation});
        break;
      case nn::Step::Op::linear: steps += ":" + detail::join_ints({l.in, l.out}); break;
      case nn::Step::Op::max_pool2d: steps += ":" + detail::join_ints({l.kernel, l.stride, l.padding}); break;
      case nn::Step::Op::flatten:
      case nn::Step::Op::log_softmax:
      case nn::Step::Op::softmax: steps += ":" + std::to_string(l.dim); break;
      case nn::Step::Op::batch_norm: steps += ":" + std::to_string(l.in); break;
      case nn::Step::Op::avg_pool2d: {
        const Pool2dParams& g = l.pool;
        steps += ":" + detail::join_ints({g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.ceil_mode ? 1 : 0,
                                          g.count_include_pad ? 1 : 0});
        break;
      }
      case nn::Step::Op::adaptive_avg_pool2d:
        steps += ":" + detail::join_ints({l.pool.out_h, l.pool.out_w});
        break;
      case nn::Step::Op::gelu: steps += l.approximate_tanh ? ":1" : ":0"; break;
      case nn::Step::Op::leaky_relu:
      case nn::Step::Op::elu: steps += ":" + detail::format_double(l.alpha); break;
      case nn::Step::Op::relu:
      case nn::Step::Op::dropout:
      case nn::Step::Op::sigmoid:
      case nn::Step::Op::tanh:
      case nn::Step::Op::silu: break;
    }
    if (l.op == nn::Step::Op::batch_norm) {
      f.tensors[l.name + ".weight_scale"] = detail::record("F32", {l.in}, l.weight_scale);
      f.tensors[l.name + ".bias"] = detail::record("F32", {l.in}, l.bias);
      continue;
    }
    if (l.has_input_qparams()) {
      f.tensors[l.name + ".input_scale"] = detail::record("F32", {}, std::vector<float>{l.input.scale});
      f.tensors[l.name + ".input_zero_point"] =
          detail::record("I32", {}, std::vector<std::int32_t>{l.input.zero_point});
    }
    if (!l.has_weights()) continue;
    std::vector<std::int64_t> wshape{l.out, l.in};
    if (l.op == nn::Step::Op::conv2d) wshape = {l.out, l.in, l.kernel, l.kernel};
    f.tensors[l.name + ".weight"] = detail::record("I8", wshape, l.weight);
    f.tensors[l.name + ".weight_scale"] = detail::record("F32", {l.out}, l.weight_scale);
    f.tensors[l.name + ".bias"] = detail::record("F32", {l.out}, l.bias);
  }
  f.metadata["steps"] = steps;
  return f;
}

/// A model from a file's contents; `source` names it in errors.
[[nodiscard]] inline QuantizedModel from_safetensors(const io::SafetensorsFile& f, const std::string& source) {
  const auto meta = [&](const std::string& key) -> const std::string& {
    const auto it = f.metadata.find(key);
    EMBER_CHECK(it != f.metadata.end(), "int8 model '", source, "': no \"", key, "\" in the metadata",
                key == "format" ? " (not an int8 model: a float model loads with io::load)" : "");
    return it->second;
  };
  EMBER_CHECK(meta("format") == kInt8Format, "int8 model '", source, "': format is \"",
              ::ember::detail::clip_text(meta("format"), 40), "\", expected \"", kInt8Format, "\"");
  const int version = detail::check_version(meta("version"), source);
  const std::vector<std::int64_t> input = detail::parse_ints(meta("input_shape"), "int8 model '" + source + "': input_shape");
  detail::check_input_shape(input, source);
  std::vector<QLayer> layers;
  std::set<std::string> used;  // the tensors the steps have read
  std::stringstream ss(meta("steps"));
  for (std::string item; std::getline(ss, item, ';');) {
    const std::string what =
        "int8 model '" + source + "': step '" + ::ember::detail::clip_text(item, 80) + "'";
    const std::size_t c1 = item.find(':'), c2 = item.find(':', c1 == std::string::npos ? c1 : c1 + 1);
    EMBER_CHECK(c1 != std::string::npos, what, ": expected op:name[:arguments]");
    QLayer l;
    l.op = detail::parse_op(item.substr(0, c1), what);
    l.name = item.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1);
    EMBER_CHECK(!l.name.empty(), what, ": empty name");
    const bool real_arg = l.op == nn::Step::Op::leaky_relu || l.op == nn::Step::Op::elu;
    const std::vector<std::int64_t> args =
        c2 == std::string::npos || real_arg ? std::vector<std::int64_t>{}
                                            : detail::parse_ints(item.substr(c2 + 1), what);
    const auto want = [&](std::size_t n) {
      EMBER_CHECK(args.size() == n, what, ": expected ", n, " arguments, got ", args.size());
    };
    switch (l.op) {
      case nn::Step::Op::conv2d:
        want(6);
        l.in = args[0], l.out = args[1], l.kernel = args[2], l.stride = args[3], l.padding = args[4],
        l.dilation = args[5];
        break;
      case nn::Step::Op::linear:
        want(2);
        l.in = args[0], l.out = args[1];
        break;
      case nn::Step::Op::max_pool2d:
        want(3);
        l.kernel = args[0], l.stride = args[1], l.padding = args[2];
        break;
      case nn::Step::Op::flatten:
      case nn::Step::Op::log_softmax:
      case nn::Step::Op::softmax:
        want(1);
        l.dim = args[0];
        break;
      case nn::Step::Op::batch_norm:
        want(1);
        l.in = l.out = args[0];
        break;
      case nn::Step::Op::avg_pool2d:
        want(8);
        EMBER_CHECK(args[6] >= 0 && args[6] <= 1 && args[7] >= 0 && args[7] <= 1, what,
                    ": ceil_mode and count_include_pad must be 0 or 1");
        l.pool = {.kh = args[0], .kw = args[1], .sh = args[2], .sw = args[3], .ph = args[4], .pw = args[5],
                  .ceil_mode = args[6] == 1, .count_include_pad = args[7] == 1};
        break;
      case nn::Step::Op::adaptive_avg_pool2d:
        want(2);
        l.pool = {.out_h = args[0], .out_w = args[1]};
        break;
      case nn::Step::Op::gelu:
        want(1);
        EMBER_CHECK(args[0] == 0 || args[0] == 1, what, ": gelu's argument is 0 (exact) or 1 (tanh)");
        l.approximate_tanh = args[0] == 1;
        break;
      case nn::Step::Op::leaky_relu:
      case nn::Step::Op::elu:
        EMBER_CHECK(c2 != std::string::npos, what, ": expected 1 argument, got 0");
        l.alpha = detail::parse_double(item.substr(c2 + 1), what);
        break;
      case nn::Step::Op::relu:
      case nn::Step::Op::dropout:
      case nn::Step::Op::sigmoid:
      case nn::Step::Op::tanh:
      case nn::Step::Op::silu: want(0); break;
    }
    detail::check_step_ranges(l, what);
    EMBER_CHECK(detail::version_needed(l) <= version, what, ": needs version 2 of the format (the file says ",
                version, ")");
    const auto claim = [&](const char* first) {
      EMBER_CHECK(used.insert(l.name + first).second, what, ": layer '", ::ember::detail::clip_text(l.name, 80),
                  "' appears twice in the steps");
    };
    if (l.op == nn::Step::Op::batch_norm) {
      claim(".weight_scale");
      used.insert(l.name + ".bias");
      l.weight_scale = detail::read_record<float>(f, l.name + ".weight_scale", "F32", {l.in}, source);
      l.bias = detail::read_record<float>(f, l.name + ".bias", "F32", {l.in}, source);
    }
    if (l.has_input_qparams() && !l.has_weights()) {
      claim(".input_scale");
      used.insert(l.name + ".input_zero_point");
      l.input.scale = detail::read_record<float>(f, l.name + ".input_scale", "F32", {}, source).at(0);
      l.input.zero_point = detail::read_record<std::int32_t>(f, l.name + ".input_zero_point", "I32", {}, source).at(0);
    }
    if (l.has_weights()) {
      EMBER_CHECK(used.insert(l.name + ".weight").second, what, ": layer '",
                  ::ember::detail::clip_text(l.name, 80), "' appears twice in the steps");
      for (const char* t : {".weight_scale", ".bias", ".input_scale", ".input_zero_point"})
        used.insert(l.name + t);
      std::vector<std::int64_t> wshape{l.out, l.in};
      if (l.op == nn::Step::Op::conv2d) wshape = {l.out, l.in, l.kernel, l.kernel};
      l.weight = detail::read_record<std::int8_t>(f, l.name + ".weight", "I8", wshape, source);
      for (std::int8_t v : l.weight)
        EMBER_CHECK(v >= -kWeightMax, "int8 model '", source, "': tensor '",
                    ::ember::detail::clip_text(l.name, 80), ".weight' holds ", int{v},
                    ", outside [-127, 127]");
      l.weight_scale = detail::read_record<float>(f, l.name + ".weight_scale", "F32", {l.out}, source);
      l.bias = detail::read_record<float>(f, l.name + ".bias", "F32", {l.out}, source);
      l.input.scale = detail::read_record<float>(f, l.name + ".input_scale", "F32", {}, source).at(0);
      l.input.zero_point = detail::read_record<std::int32_t>(f, l.name + ".input_zero_point", "I32", {}, source).at(0);
    }
    layers.push_back(std::move(l));
  }
  EMBER_CHECK(!layers.empty(), "int8 model '", source, "': no steps");
  std::size_t unused = 0;
  std::string first_unused;
  for (const auto& [name, record] : f.tensors)
    if (used.count(name) == 0 && unused++ == 0) first_unused = name;
  EMBER_CHECK(unused == 0, "int8 model '", source, "': ", unused,
              " tensor(s) belong to no step (first '", ::ember::detail::clip_text(first_unused, 80),
              "')");
  std::map<std::string, std::string> info = f.metadata;
  for (const char* k : {"format", "version", "input_shape", "steps", "activation_bits", "weights"}) info.erase(k);
  try {
    return QuantizedModel(std::move(layers), input, std::move(info));
  } catch (const Error& e) {
    throw Error("int8 model '" + source + "': " + std::string(e.what()).substr(7));
  }
}

/// Writes the int8 model as a safetensors file with the "ember-int8" metadata.
inline void save_quantized(const QuantizedModel& m, const std::string& path) {
  io::save_safetensors(path, to_safetensors(m));
}

/// Reads an int8 model file written by save_quantized, checking every field; throws ember::Error
/// naming the file.
[[nodiscard]] inline QuantizedModel load_quantized(const std::string& path) {
  return from_safetensors(io::load_safetensors(path), path);
}

/// Whether a safetensors file's contents are an int8 model (else a float state_dict).
[[nodiscard]] inline bool is_quantized(const io::SafetensorsFile& f) {
  const auto it = f.metadata.find("format");
  return it != f.metadata.end() && it->second == kInt8Format;
}

}  // namespace ember::quant
