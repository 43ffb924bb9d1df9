#pragma once
// ONNX export: a feed-forward model's eval-mode forward (nn::Module::steps) as an ONNX model
// file, for onnxruntime and every other ONNX runtime.
//
//   io::export_onnx(model, "model.onnx");         // input (N, 1, 28, 28), output "log_probs"
//
// The file is written in protobuf's wire format directly (detail::ProtoWriter below), with the
// field numbers of onnx/onnx.proto; no protobuf library is needed. The bytes are a function of
// the model and the options only (no time stamps, fields in field-number order as protobuf's
// own serializers write them), so exporting the same model twice gives the same file.
//
// The steps are first put through nn::fold_batch_norm: a batch norm right after a conv2d or
// linear is folded into that layer's weight and bias. Then (ONNX operator set 13 by default;
// ops come from the default domain):
//   conv2d      -> Conv (dilations, group 1, kernel_shape, pads, strides; bias input if any)
//   linear      -> Gemm (alpha 1, beta 1, transB 1: x W^T + b, W as stored, (out, in))
//   batch_norm  -> BatchNormalization (epsilon; scale, B, input_mean, input_var) when not folded
//   relu        -> Relu
//   max_pool2d  -> MaxPool (ceil_mode 0, i.e. floor, kernel_shape, pads, strides)
//   avg_pool2d  -> AveragePool (ceil_mode, count_include_pad, kernel_shape, pads, strides);
//                  ceil_mode 1 only where rounding up adds a window (see add_node)
//   adaptive_avg_pool2d -> GlobalAveragePool for output (1, 1); AveragePool with kernel =
//                  stride = input / output where the output size divides the input's; other
//                  sizes (windows of unequal sizes, which ONNX cannot say) are refused
//   flatten     -> Flatten (axis 1). ONNX Flatten always gives a 2-D result, which equals
//                  torch.flatten(x, 1) (end_dim -1); other start dims are refused.
//   log_softmax, softmax -> LogSoftmax, Softmax (axis; since opset 13 along that one axis)
//   sigmoid, tanh -> Sigmoid, Tanh;  leaky_relu, elu -> LeakyRelu, Elu (alpha)
//   silu        -> Sigmoid, Mul (x * sigmoid(x))
//   gelu        -> Gelu (approximate) from opset 20; before it, its formula in primitive ops:
//                  0.5 x (1 + erf(x / sqrt 2)) as Mul, Erf, Add, Mul, Mul, or
//                  0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) as Mul, Mul, Mul, Add,
//                  Mul, Tanh, Add, Mul, Mul, with scalar initializers for the constants
//   dropout     -> nothing (the identity at inference)
// Nodes are named after their steps ("conv1", "relu", ...; the nodes of one step after it,
// "3/Erf"); parameters and buffers are initializers with their state_dict names
// ("conv1.weight", "bn.running_mean") as little-endian FLOAT raw_data; folded weights are
// "<layer>.weight_folded" and "<layer>.bias_folded". The graph's input and output, and every
// value between two nodes, carry their shapes (value_info): the first dimension is symbolic
// ("N") unless the options fix it, the rest are inferred step by step here, and a model that
// does not fit its input shape is refused with the step at fault.
//
// Operator sets 13 to 21 may be asked for: the operators above mean the same in all of them
// (later versions only add element types), Gelu aside. The model's IR version is the one ONNX
// released with that operator set (7 for opset 13). onnxruntime 1.32 runs all of them.
//
// Refused with ember::Error: a module that does not list its steps (the error from steps()),
// parameters off the CPU, steps that do not fit the input shape, flatten from a dim other
// than 1, adaptive pooling to a size that does not divide the input, options out of range.
// scripts/check_onnx.py puts a file through the ONNX checker and shape inference, and compares
// onnxruntime with PyTorch on the MNIST test set; scripts/check_onnx_layers.py compares
// onnxruntime with ember on a model of every layer.

#include <bit>
#include <charconv>
#include <functional>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/backend/params.hpp"
#include "ember/core/error.hpp"
#include "ember/core/shape.hpp"
#include "ember/io/atomic_file.hpp"
#include "ember/nn/layers.hpp"
#include "ember/nn/module.hpp"
#include "ember/nn/steps.hpp"

namespace ember::io {

/// export_onnx's options: the graph's input, names and operator set.
struct OnnxExportOptions {
  /// The input's shape. A first (batch) dimension of -1 is symbolic, named batch_name; every
  /// other dimension is a positive size.
  std::vector<std::int64_t> input_shape = {-1, 1, 28, 28};
  /// The symbolic batch dimension's name.
  std::string batch_name = "N";
  /// The graph input's name.
  std::string input_name = "input";
  /// The graph output's name.
  std::string output_name = "log_probs";
  std::int64_t opset = 13;  ///< 13 ... 21 (see the top of this file)
  /// Written to the model's producer_name.
  std::string producer_name = "ember";
  std::string producer_version = "0.1.0";  ///< ember's version (CMakeLists.txt, project())
};

/// The ONNX IR version released together with operator set `opset` (13 ... 21).
[[nodiscard]] inline std::int64_t onnx_ir_version(std::int64_t opset) {
  EMBER_CHECK(opset >= 13 && opset <= 21, "ONNX export: operator set ", opset,
              " is not supported (13 to 21 are: ember's operators need LogSoftmax-13 and "
              "Flatten-13, and have the same meaning up to 21)");
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

namespace detail {

// The part of protobuf's wire format ONNX files need
// (https://protobuf.dev/programming-guides/encoding/). A field is a key, the varint
// (field_number << 3 | wire_type), then its value: wire type 0 a varint (7 bits a byte, low
// group first, high bit set on all but the last byte; an int64 is its two's complement, so a
// negative one takes 10 bytes), 2 a length-delimited run (a varint byte count, then the bytes:
// strings, bytes and embedded messages), 5 a little-endian 32-bit value (float). Repeated
// scalar fields are written unpacked, one key per element, as proto2 (onnx.proto) does.
class ProtoWriter {
 public:
  enum class WireType : std::uint8_t { varint = 0, length_delimited = 2, fixed32 = 5 };

  void varint_field(int field, std::uint64_t value) {
    key(field, WireType::varint);
    varint(value);
  }
  void int_field(int field, std::int64_t value) {
    varint_field(field, static_cast<std::uint64_t>(value));
  }
  void float_field(int field, float value) {
    key(field, WireType::fixed32);
    const auto bits = std::bit_cast<std::uint32_t>(value);
    for (int shift = 0; shift < 32; shift += 8)
      buf_.push_back(static_cast<std::byte>((bits >> shift) & 0xFFu));
  }
  void bytes_field(int field, std::span<const std::byte> bytes) {
    key(field, WireType::length_delimited);
    varint(bytes.size());
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
  }
  void string_field(int field, std::string_view s) {
    bytes_field(field, std::as_bytes(std::span<const char>(s.data(), s.size())));
  }
  void message_field(int field, const ProtoWriter& message) { bytes_field(field, message.bytes()); }

  [[nodiscard]] const std::vector<std::byte>& bytes() const { return buf_; }
  [[nodiscard]] std::vector<std::byte> take() { return std::move(buf_); }
  void reserve(std::size_t n) { buf_.reserve(n); }

 private:
  void key(int field, WireType type) {
    EMBER_CHECK(field > 0 && field < (1 << 29), "protobuf: invalid field number ", field);
    varint(static_cast<std::uint64_t>(field) << 3 | static_cast<std::uint64_t>(type));
  }
  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      buf_.push_back(static_cast<std::byte>((v & 0x7F) | 0x80));
      v >>= 7;
    }
    buf_.push_back(static_cast<std::byte>(v));
  }
  std::vector<std::byte> buf_;
};

// Field numbers of onnx/onnx.proto (ONNX 1.8 and later agree on every one used here).
namespace onnx_field {
// ModelProto
inline constexpr int model_ir_version = 1, model_producer_name = 2, model_producer_version = 3,
                     model_graph = 7, model_opset_import = 8;
// OperatorSetIdProto
inline constexpr int opset_version = 2;
// GraphProto
inline constexpr int graph_node = 1, graph_name = 2, graph_initializer = 5, graph_input = 11,
                     graph_output = 12, graph_value_info = 13;
// NodeProto
inline constexpr int node_input = 1, node_output = 2, node_name = 3, node_op_type = 4,
                     node_attribute = 5;
// AttributeProto; its AttributeType values
inline constexpr int attr_name = 1, attr_f = 2, attr_i = 3, attr_s = 4, attr_ints = 8, attr_type = 20;
inline constexpr int attr_type_float = 1, attr_type_int = 2, attr_type_string = 3, attr_type_ints = 7;
// TensorProto; its DataType FLOAT
inline constexpr int tensor_dims = 1, tensor_data_type = 2, tensor_name = 8, tensor_raw_data = 9;
inline constexpr int data_type_float = 1;
// ValueInfoProto, TypeProto, TypeProto.Tensor, TensorShapeProto, TensorShapeProto.Dimension
inline constexpr int value_info_name = 1, value_info_type = 2;
inline constexpr int type_tensor_type = 1;
inline constexpr int tensor_type_elem_type = 1, tensor_type_shape = 2;
inline constexpr int shape_dim = 1;
inline constexpr int dim_value = 1, dim_param = 2;
}  // namespace onnx_field

// A value's shape during export: sizes, with -1 for the symbolic batch dimension.
using OnnxShape = std::vector<std::int64_t>;

inline std::string onnx_shape_str(const OnnxShape& s, const std::string& batch_name) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + (s[i] < 0 ? batch_name : std::to_string(s[i]));
  return out + "]";
}

class OnnxNode {
 public:
  OnnxNode(std::string op_type, std::string name)
      : op_type_(std::move(op_type)), name_(std::move(name)) {}
  OnnxNode& input(const std::string& v) {
    inputs_.push_back(v);
    return *this;
  }
  OnnxNode& output(const std::string& v) {
    outputs_.push_back(v);
    return *this;
  }
  // Attributes are kept in the order given (ember gives them in alphabetical order, as
  // PyTorch's exporter writes them).
  OnnxNode& attr(const std::string& name, std::int64_t v) {
    ProtoWriter a;
    a.string_field(onnx_field::attr_name, name);
    a.int_field(onnx_field::attr_i, v);
    a.int_field(onnx_field::attr_type, onnx_field::attr_type_int);
    attrs_.push_back(std::move(a));
    return *this;
  }
  OnnxNode& attr(const std::string& name, float v) {
    ProtoWriter a;
    a.string_field(onnx_field::attr_name, name);
    a.float_field(onnx_field::attr_f, v);
    a.int_field(onnx_field::attr_type, onnx_field::attr_type_float);
    attrs_.push_back(std::move(a));
    return *this;
  }
  OnnxNode& attr(const std::string& name, const std::string& v) {
    ProtoWriter a;
    a.string_field(onnx_field::attr_name, name);
    a.string_field(onnx_field::attr_s, v);
    a.int_field(onnx_field::attr_type, onnx_field::attr_type_string);
    attrs_.push_back(std::move(a));
    return *this;
  }
  OnnxNode& attr(const std::string& name, const std::vector<std::int64_t>& v) {
    ProtoWriter a;
    a.string_field(onnx_field::attr_name, name);
    for (const std::int64_t x : v) a.int_field(onnx_field::attr_ints, x);
    a.int_field(onnx_field::attr_type, onnx_field::attr_type_ints);
    attrs_.push_back(std::move(a));
    return *this;
  }
  [[nodiscard]] ProtoWriter proto() const {
    ProtoWriter n;
    for (const auto& v : inputs_) n.string_field(onnx_field::node_input, v);
    for (const auto& v : outputs_) n.string_field(onnx_field::node_output, v);
    n.string_field(onnx_field::node_name, name_);
    n.string_field(onnx_field::node_op_type, op_type_);
    for (const auto& a : attrs_) n.message_field(onnx_field::node_attribute, a);
    return n;
  }

 private:
  std::string op_type_, name_;
  std::vector<std::string> inputs_, outputs_;
  std::vector<ProtoWriter> attrs_;
};

// ValueInfoProto: name and float tensor type with its shape.
inline ProtoWriter onnx_value_info(const std::string& name, const OnnxShape& shape,
                                   const std::string& batch_name) {
  namespace f = onnx_field;
  ProtoWriter dims;
  for (const std::int64_t d : shape) {
    ProtoWriter dim;
    if (d < 0)
      dim.string_field(f::dim_param, batch_name);
    else
      dim.int_field(f::dim_value, d);
    dims.message_field(f::shape_dim, dim);
  }
  ProtoWriter tensor_type;
  tensor_type.int_field(f::tensor_type_elem_type, f::data_type_float);
  tensor_type.message_field(f::tensor_type_shape, dims);
  ProtoWriter type;
  type.message_field(f::type_tensor_type, tensor_type);
  ProtoWriter info;
  info.string_field(f::value_info_name, name);
  info.message_field(f::value_info_type, type);
  return info;
}

// TensorProto: a CPU float tensor as FLOAT raw_data, little-endian whatever the host.
inline ProtoWriter onnx_initializer(const std::string& name, const nn::Tensor& t) {
  namespace f = onnx_field;
  const nn::Tensor c = t.contiguous();
  const auto n = static_cast<std::size_t>(c.numel());
  std::vector<std::byte> raw(n * 4);
  const float* p = c.data();
  for (std::size_t i = 0; i < n; ++i) {
    const auto bits = std::bit_cast<std::uint32_t>(p[i]);
    for (std::size_t b = 0; b < 4; ++b)
      raw[4 * i + b] = static_cast<std::byte>((bits >> (8 * b)) & 0xFFu);
  }
  ProtoWriter tp;
  tp.reserve(raw.size() + name.size() + 64);
  for (const std::int64_t d : c.shape()) tp.int_field(f::tensor_dims, d);
  tp.int_field(f::tensor_data_type, f::data_type_float);
  tp.string_field(f::tensor_name, name);
  tp.bytes_field(f::tensor_raw_data, raw);
  return tp;
}

// Builds the graph step by step: shapes, names, nodes and initializers.
class OnnxGraphBuilder {
 public:
  OnnxGraphBuilder(const nn::Module& m, const OnnxExportOptions& o) : model_(m), o_(o) {
    check_options();
    for (const auto& [name, t] : m.named_parameters()) {
      // nn::Module parameters are float tensors by type; only their device can be wrong.
      EMBER_CHECK(t.device().is_cpu(), "ONNX export of ", m.type_name(), ": parameter '", name,
                  "' is on ", t.device().str(),
                  "; ONNX initializers are read from the CPU, so move the model there first "
                  "(model.to(Device::cpu()))");
      param_names_.emplace(t.data(), name);
      taken_.insert(name);
    }
    for (const auto& [name, t] : m.named_buffers()) {
      EMBER_CHECK(t.device().is_cpu(), "ONNX export of ", m.type_name(), ": buffer '", name,
                  "' is on ", t.device().str(),
                  "; ONNX initializers are read from the CPU, so move the model there first "
                  "(model.to(Device::cpu()))");
      param_names_.emplace(t.data(), name);
      taken_.insert(name);
    }
    for (const std::string& io_name : {o.input_name, o.output_name}) {
      const bool fresh = taken_.insert(io_name).second;
      EMBER_CHECK(fresh, "ONNX export of ", m.type_name(), ": the name '", io_name,
                  "' is a parameter's name; choose another input or output name");
    }
  }

  [[nodiscard]] ProtoWriter graph() {
    const std::vector<nn::Step> steps = nn::fold_batch_norm(model_.steps());
    std::vector<std::size_t> emitted;  // the steps that become nodes (dropout does not)
    for (std::size_t i = 0; i < steps.size(); ++i)
      if (steps[i].op != nn::Step::Op::dropout) emitted.push_back(i);
    EMBER_CHECK(!emitted.empty(), "ONNX export of ", model_.type_name(),
                ": its steps compute nothing but the identity, so there is no graph to write");

    OnnxShape shape = o_.input_shape;
    std::string value = o_.input_name;
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const nn::Step& s = steps[i];
      if (s.op == nn::Step::Op::dropout) continue;
      const std::string node = unique_node_name(s);
      const bool last = i == emitted.back();
      const std::string out = last ? o_.output_name : unique_value_name(node + "_output");
      shape = add_node(s, node, value, out, shape);
      if (!last) value_infos_.push_back(onnx_value_info(out, shape, o_.batch_name));
      value = out;
    }
    namespace f = onnx_field;
    ProtoWriter g;
    for (const OnnxNode& n : nodes_) g.message_field(f::graph_node, n.proto());
    g.string_field(f::graph_name, model_.type_name());
    for (const ProtoWriter& t : initializers_) g.message_field(f::graph_initializer, t);
    g.message_field(f::graph_input, onnx_value_info(o_.input_name, o_.input_shape, o_.batch_name));
    g.message_field(f::graph_output, onnx_value_info(o_.output_name, shape, o_.batch_name));
    for (const ProtoWriter& v : value_infos_) g.message_field(f::graph_value_info, v);
    return g;
  }

 private:
  void check_options() const {
    const auto& s = o_.input_shape;
    EMBER_CHECK(!s.empty(), "ONNX export: the input shape is empty");
    for (std::size_t i = 0; i < s.size(); ++i)
      EMBER_CHECK(s[i] > 0 || (i == 0 && s[i] == -1), "ONNX export: input shape ", shape_str(s),
                  ": dimension ", i, " is ", s[i],
                  " (sizes are positive; only the first, the "
                  "batch, may be -1 for a symbolic size)");
    EMBER_CHECK(
        !o_.input_name.empty() && !o_.output_name.empty() && o_.input_name != o_.output_name,
        "ONNX export: the input and output names must be non-empty and differ (got '",
        o_.input_name, "' and '", o_.output_name, "')");
    EMBER_CHECK(s[0] != -1 || !o_.batch_name.empty(),
                "ONNX export: a symbolic batch dimension needs a name (batch_name is empty)");
    (void)onnx_ir_version(o_.opset);
  }

  std::string unique_value_name(const std::string& want) {
    std::string name = want;
    for (int k = 1; !taken_.insert(name).second; ++k) name = want + "_" + std::to_string(k);
    return name;
  }
  std::string unique_node_name(const std::string& want) {
    std::string name = want;
    for (int k = 1; !node_names_.insert(name).second; ++k) name = want + "_" + std::to_string(k);
    return name;
  }
  std::string unique_node_name(const nn::Step& s) {
    return unique_node_name(s.name.empty() ? std::string(nn::op_name(s.op)) : s.name);
  }

  // The initializer for one of the model's parameters or buffers (written once, however often
  // used).
  std::string initializer(const nn::Step& s, const nn::Tensor& t, const char* what) {
    const auto it = param_names_.find(t.data());
    EMBER_CHECK(it != param_names_.end(), "ONNX export of ", model_.type_name(), ": step '", s.name,
                "': its ", what, " is not one of the model's parameters");
    if (written_.insert(it->second).second)
      initializers_.push_back(onnx_initializer(it->second, t));
    return it->second;
  }
  // An initializer the export computed (folded weights, ones and zeros): written under a fresh
  // name from `want`.
  std::string computed_initializer(const std::string& want, const nn::Tensor& t) {
    const std::string name = unique_value_name(want);
    initializers_.push_back(onnx_initializer(name, t));
    return name;
  }
  // A float scalar constant, written once per value.
  std::string scalar(float v) {
    const auto it = scalars_.find(v);
    if (it != scalars_.end()) return it->second;
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    const std::string name = computed_initializer("const_" + std::string(buf, r.ptr), nn::Tensor::scalar(v));
    scalars_.emplace(v, name);
    return name;
  }

  [[noreturn]] void fail_shape(const nn::Step& s, const OnnxShape& in,
                               const std::string& why) const {
    throw Error(::ember::detail::concat("ONNX export of ", model_.type_name(), ": step '", s.name,
                                        "' (", nn::op_name(s.op), ") gets input shape ",
                                        onnx_shape_str(in, o_.batch_name), ": ", why));
  }

  // The nodes of one step: `in` is its input value, `out` the value its last node writes;
  // values between its own nodes are named after the step and carry `shape`.
  struct StepNodes {
    OnnxGraphBuilder& b;
    const std::string& name;  // the step's node name
    std::string in, out;
    const OnnxShape& shape;
    // A node of op_type reading `inputs` and writing a fresh value (or `out` when last).
    std::string add(const std::string& op_type, std::vector<std::string> inputs, bool last = false,
                    const std::function<void(OnnxNode&)>& attrs = {}) {
      OnnxNode n(op_type, b.unique_node_name(name + "/" + op_type));
      for (const auto& v : inputs) n.input(v);
      const std::string value =
          last ? out : b.unique_value_name(name + "_" + to_lower(op_type));
      n.output(value);
      if (attrs) attrs(n);
      b.nodes_.push_back(std::move(n));
      if (!last) b.value_infos_.push_back(onnx_value_info(value, shape, b.o_.batch_name));
      return value;
    }
    static std::string to_lower(std::string s) {
      for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      return s;
    }
  };

  // Appends the node for step s (input value `in` of shape `shape`, output `out`) and returns
  // the output's shape.
  OnnxShape add_node(const nn::Step& s, const std::string& name, const std::string& in,
                     const std::string& out, const OnnxShape& shape) {
    using Op = nn::Step::Op;
    const auto rank = static_cast<std::int64_t>(shape.size());
    // A one-node step with the same output shape as its input.
    const auto unary = [&](const char* op_type) -> OnnxNode& {
      OnnxNode n(op_type, name);
      n.input(in).output(out);
      nodes_.push_back(std::move(n));
      return nodes_.back();
    };
    const auto axis_of = [&](std::int64_t dim) {
      if (dim < -rank || dim >= rank)
        fail_shape(s, shape, "dim " + std::to_string(dim) + " is out of range");
      return dim < 0 ? dim + rank : dim;
    };
    switch (s.op) {
      case Op::conv2d: {
        EMBER_CHECK(s.weight.defined() && s.weight.dim() == 4, "ONNX export of ", model_.type_name(),
                    ": step '", s.name, "': conv2d without a (K, C, R, R) weight");
        const std::int64_t out_ch = s.weight.size(0), in_ch = s.weight.size(1), k = s.weight.size(2);
        if (rank != 4) fail_shape(s, shape, "Conv takes (N, C, H, W)");
        if (shape[1] != in_ch)
          fail_shape(s, shape, "the layer has " + std::to_string(in_ch) + " input channels");
        const std::int64_t reach = s.dilation * (k - 1) + 1;
        for (int d = 2; d < 4; ++d)
          if (shape[d] + 2 * s.padding < reach)
            fail_shape(s, shape, "the image is smaller than the kernel's reach");
        const Conv2dParams g{.c = shape[1], .h = shape[2], .w = shape[3], .k = out_ch, .r = k,
                             .s = k, .stride_h = s.stride, .stride_w = s.stride, .pad_h = s.padding,
                             .pad_w = s.padding, .dil_h = s.dilation, .dil_w = s.dilation};
        const OnnxShape y = {shape[0], out_ch, g.p(), g.q()};
        OnnxNode n("Conv", name);
        add_weights(n.input(in), s, name);
        n.output(out)
            .attr("dilations", std::vector<std::int64_t>{s.dilation, s.dilation})
            .attr("group", std::int64_t{1})
            .attr("kernel_shape", std::vector<std::int64_t>{k, k})
            .attr("pads", std::vector<std::int64_t>(4, s.padding))
            .attr("strides", std::vector<std::int64_t>{s.stride, s.stride});
        nodes_.push_back(std::move(n));
        return y;
      }
      case Op::linear: {
        EMBER_CHECK(s.weight.defined() && s.weight.dim() == 2, "ONNX export of ", model_.type_name(),
                    ": step '", s.name, "': linear without an (out, in) weight");
        if (rank != 2) fail_shape(s, shape, "Gemm takes (N, features); flatten first");
        if (shape[1] != s.weight.size(1))
          fail_shape(s, shape,
                     "the layer has " + std::to_string(s.weight.size(1)) + " input features");
        OnnxNode n("Gemm", name);
        add_weights(n.input(in), s, name);
        n.output(out).attr("alpha", 1.0f).attr("beta", 1.0f).attr("transB", std::int64_t{1});
        nodes_.push_back(std::move(n));
        return {shape[0], s.weight.size(0)};
      }
      case Op::batch_norm: {
        const std::int64_t c = s.running_mean.numel();
        if (rank < 2 || shape[1] != c)
          fail_shape(s, shape, "the layer normalizes " + std::to_string(c) + " channels of (N, C, ...)");
        OnnxNode n("BatchNormalization", name);
        n.input(in);
        n.input(s.weight.defined() ? initializer(s, s.weight, "weight")
                                   : computed_initializer(name + ".weight", nn::Tensor::ones({c})));
        n.input(s.bias.defined() ? initializer(s, s.bias, "bias")
                                 : computed_initializer(name + ".bias", nn::Tensor::zeros({c})));
        n.input(initializer(s, s.running_mean, "running_mean"));
        n.input(initializer(s, s.running_var, "running_var"));
        n.output(out).attr("epsilon", static_cast<float>(s.eps));
        nodes_.push_back(std::move(n));
        return shape;
      }
      case Op::relu: unary("Relu"); return shape;
      case Op::sigmoid: unary("Sigmoid"); return shape;
      case Op::tanh: unary("Tanh"); return shape;
      case Op::leaky_relu: unary("LeakyRelu").attr("alpha", static_cast<float>(s.alpha)); return shape;
      case Op::elu: unary("Elu").attr("alpha", static_cast<float>(s.alpha)); return shape;
      case Op::silu: {
        StepNodes sn{*this, name, in, out, shape};
        const std::string sig = sn.add("Sigmoid", {in});
        sn.add("Mul", {in, sig}, true);
        return shape;
      }
      case Op::gelu: {
        if (o_.opset >= 20) {
          unary("Gelu").attr("approximate", std::string(s.approximate_tanh ? "tanh" : "none"));
          return shape;
        }
        StepNodes sn{*this, name, in, out, shape};
        std::string u;
        if (s.approximate_tanh) {  // tanh(sqrt(2 / pi) (x + 0.044715 x^3))
          const std::string x2 = sn.add("Mul", {in, in});
          const std::string x3 = sn.add("Mul", {x2, in});
          const std::string kx3 = sn.add("Mul", {x3, scalar(0.044715f)});
          const std::string sum = sn.add("Add", {in, kx3});
          const std::string arg = sn.add("Mul", {sum, scalar(0.79788456080286535588f)});
          u = sn.add("Tanh", {arg});
        } else {  // erf(x / sqrt 2)
          const std::string arg = sn.add("Mul", {in, scalar(0.70710678118654752440f)});
          u = sn.add("Erf", {arg});
        }
        const std::string one_plus = sn.add("Add", {u, scalar(1.0f)});
        const std::string times_x = sn.add("Mul", {in, one_plus});
        sn.add("Mul", {times_x, scalar(0.5f)}, true);
        return shape;
      }
      case Op::max_pool2d: {
        if (rank != 4) fail_shape(s, shape, "MaxPool takes (N, C, H, W)");
        if (s.kernel <= 0 || s.stride <= 0 || s.padding < 0 || 2 * s.padding > s.kernel)
          fail_shape(s, shape,
                     "kernel " + std::to_string(s.kernel) + ", stride " + std::to_string(s.stride) +
                         ", padding " + std::to_string(s.padding) + " are not a valid pooling");
        for (int d = 2; d < 4; ++d)
          if (shape[d] + 2 * s.padding < s.kernel)
            fail_shape(s, shape, "the image is smaller than the pooling window");
        const MaxPool2dParams g{.h = shape[2], .w = shape[3], .kernel = s.kernel, .stride = s.stride,
                                .padding = s.padding};
        const OnnxShape y = {shape[0], shape[1], g.p(), g.q()};  // floor mode
        OnnxNode n("MaxPool", name);
        n.input(in)
            .output(out)
            .attr("ceil_mode", std::int64_t{0})
            .attr("kernel_shape", std::vector<std::int64_t>{s.kernel, s.kernel})
            .attr("pads", std::vector<std::int64_t>(4, s.padding))
            .attr("strides", std::vector<std::int64_t>{s.stride, s.stride});
        nodes_.push_back(std::move(n));
        return y;
      }
      case Op::avg_pool2d:
      case Op::adaptive_avg_pool2d: {
        if (rank != 4) fail_shape(s, shape, "pooling takes (N, C, H, W)");
        Pool2dParams g = s.pool;
        g.planes = 1;
        g.h = shape[2];
        g.w = shape[3];
        try {
          g.check(nn::op_name(s.op));
        } catch (const Error& e) {
          fail_shape(s, shape, std::string(e.what()).substr(7));
        }
        const OnnxShape y = {shape[0], shape[1], g.p(), g.q()};
        if (s.op == Op::adaptive_avg_pool2d) {
          if (g.out_h == 1 && g.out_w == 1) {
            unary("GlobalAveragePool");
            return y;
          }
          if (g.h % g.out_h != 0 || g.w % g.out_w != 0)
            fail_shape(s, shape,
                       "adaptive pooling to " + std::to_string(g.out_h) + " x " + std::to_string(g.out_w) +
                           " has windows of unequal sizes here, which ONNX cannot express (only an "
                           "output of 1 x 1 or one that divides the input's height and width can be "
                           "exported)");
          g = {.kh = g.h / g.out_h, .kw = g.w / g.out_w, .sh = g.h / g.out_h, .sw = g.w / g.out_w};
        }
        // PyTorch's ceil mode drops a last window that would start in the padding; ONNX's
        // shape inference does not. Where the rounding up adds no window, ceil_mode 0 gives the
        // same windows (and the floor size, which then is PyTorch's); where it adds one,
        // ceil_mode 1 gives PyTorch's windows and size.
        const bool up_h = g.p() > Pool2dParams::out_size(g.h, g.kh, g.sh, g.ph, false);
        const bool up_w = g.q() > Pool2dParams::out_size(g.w, g.kw, g.sw, g.pw, false);
        if (up_h != up_w)
          fail_shape(s, shape,
                     "ceil_mode rounds the output height up but not the width (or the reverse); ONNX's "
                     "AveragePool has one ceil_mode for both");
        unary("AveragePool")
            .attr("ceil_mode", std::int64_t{up_h ? 1 : 0})
            .attr("count_include_pad", std::int64_t{g.count_include_pad ? 1 : 0})
            .attr("kernel_shape", std::vector<std::int64_t>{g.kh, g.kw})
            .attr("pads", std::vector<std::int64_t>{g.ph, g.pw, g.ph, g.pw})
            .attr("strides", std::vector<std::int64_t>{g.sh, g.sw});
        return y;
      }
      case Op::flatten: {
        const std::int64_t start = s.dim < 0 ? s.dim + rank : s.dim;
        if (start != 1 || rank < 2)
          fail_shape(s, shape,
                     "flatten(start_dim=" + std::to_string(s.dim) +
                         ") cannot be written as ONNX Flatten, which always gives a "
                         "2-D result; only start_dim 1 of a tensor of rank 2 or more "
                         "can");
        std::int64_t features = 1;
        for (std::size_t d = 1; d < shape.size(); ++d) features *= shape[d];
        unary("Flatten").attr("axis", std::int64_t{1});
        return {shape[0], features};
      }
      case Op::log_softmax: {
        const std::int64_t axis = axis_of(s.dim);
        unary("LogSoftmax").attr("axis", axis);
        return shape;
      }
      case Op::softmax: {
        const std::int64_t axis = axis_of(s.dim);
        unary("Softmax").attr("axis", axis);
        return shape;
      }
      case Op::dropout:
        return shape;
    }
    throw Error("ONNX export: unknown step kind");
  }

  // The weight and bias inputs of a conv2d or linear node: the model's own, or folded ones.
  void add_weights(OnnxNode& n, const nn::Step& s, const std::string& node) {
    if (!s.folded.empty()) {
      n.input(computed_initializer(node + ".weight_folded", s.weight));
      n.input(computed_initializer(node + ".bias_folded", s.bias));
      return;
    }
    n.input(initializer(s, s.weight, "weight"));
    if (s.bias.defined()) n.input(initializer(s, s.bias, "bias"));
  }

  const nn::Module& model_;
  const OnnxExportOptions& o_;
  std::map<const float*, std::string> param_names_;  // a parameter's data -> its name
  std::set<std::string> taken_, node_names_, written_;
  std::vector<OnnxNode> nodes_;
  std::vector<ProtoWriter> initializers_, value_infos_;
  std::map<float, std::string> scalars_;  // scalar constants written, by value
};

}  // namespace detail

/// The ONNX model (ModelProto) of m's eval-mode forward, as bytes. Throws ember::Error when m
/// does not list its forward as steps, a parameter is not on the CPU, or the steps do not fit
/// the input shape.
[[nodiscard]] inline std::vector<std::byte> to_onnx_bytes(const nn::Module& m,
                                                          const OnnxExportOptions& o = {}) {
  namespace f = detail::onnx_field;
  detail::ProtoWriter graph = detail::OnnxGraphBuilder(m, o).graph();
  detail::ProtoWriter opset;
  opset.int_field(f::opset_version, o.opset);
  detail::ProtoWriter model;
  model.reserve(graph.bytes().size() + 64);
  model.int_field(f::model_ir_version, onnx_ir_version(o.opset));
  model.string_field(f::model_producer_name, o.producer_name);
  model.string_field(f::model_producer_version, o.producer_version);
  model.message_field(f::model_graph, graph);
  model.message_field(f::model_opset_import, opset);
  return model.take();
}

/// Writes m as an ONNX model file (atomically: the old file, if any, stays until the new one is
/// complete).
inline void export_onnx(const nn::Module& m, const std::string& path,
                        const OnnxExportOptions& o = {}) {
  const std::vector<std::byte> bytes = to_onnx_bytes(m, o);
  write_file_atomic(path, bytes);
}

}  // namespace ember::io
