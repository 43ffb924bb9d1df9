#pragma once
// Test support: a minimal protobuf reader and, on top of it, a decoder for the parts of an ONNX
// ModelProto that ember writes (io/onnx.hpp). Written from onnx/onnx.proto independently of the
// exporter, so that the tests check the exporter's bytes rather than the exporter against itself.
// Malformed input throws std::runtime_error naming the byte offset.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace ember::test {

struct ProtoField {
  int number = 0;
  int wire = 0;                      // 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
  std::uint64_t value = 0;           // varint, fixed64 and fixed32 values
  std::span<const std::byte> bytes;  // length-delimited payload
};

// One message's fields, in the order they appear.
class ProtoMessage {
 public:
  explicit ProtoMessage(std::span<const std::byte> data) {
    std::size_t pos = 0;
    while (pos < data.size()) {
      const std::size_t start = pos;
      const std::uint64_t key = varint(data, pos);
      ProtoField f;
      f.number = static_cast<int>(key >> 3);
      f.wire = static_cast<int>(key & 7);
      if (f.number == 0) fail("field number 0", start);
      switch (f.wire) {
        case 0:
          f.value = varint(data, pos);
          break;
        case 1:
          f.value = little_endian(data, pos, 8);
          break;
        case 5:
          f.value = little_endian(data, pos, 4);
          break;
        case 2: {
          const std::uint64_t n = varint(data, pos);
          if (n > data.size() - pos) fail("length past the end", start);
          f.bytes = data.subspan(pos, static_cast<std::size_t>(n));
          pos += static_cast<std::size_t>(n);
          break;
        }
        default:
          fail("unknown wire type " + std::to_string(f.wire), start);
      }
      fields_.push_back(f);
    }
  }

  [[nodiscard]] const std::vector<ProtoField>& fields() const { return fields_; }
  [[nodiscard]] std::vector<int> numbers() const {
    std::vector<int> out;
    for (const auto& f : fields_) out.push_back(f.number);
    return out;
  }
  [[nodiscard]] std::vector<ProtoField> all(int number) const {
    std::vector<ProtoField> out;
    for (const auto& f : fields_)
      if (f.number == number) out.push_back(f);
    return out;
  }
  [[nodiscard]] bool has(int number) const { return !all(number).empty(); }
  // The one field `number` with wire type `wire` (protobuf would take the last of several;
  // ember writes each singular field once, which this checks).
  [[nodiscard]] ProtoField one(int number, int wire) const {
    const auto v = all(number);
    if (v.size() != 1)
      throw std::runtime_error("field " + std::to_string(number) + " appears " +
                               std::to_string(v.size()) + " times, expected once");
    if (v[0].wire != wire)
      throw std::runtime_error("field " + std::to_string(number) + " has wire type " +
                               std::to_string(v[0].wire) + ", expected " + std::to_string(wire));
    return v[0];
  }
  [[nodiscard]] std::int64_t integer(int number) const {
    return static_cast<std::int64_t>(one(number, 0).value);
  }
  [[nodiscard]] float real32(int number) const {
    return std::bit_cast<float>(static_cast<std::uint32_t>(one(number, 5).value));
  }
  [[nodiscard]] std::string str(int number) const { return text(one(number, 2)); }
  [[nodiscard]] ProtoMessage message(int number) const {
    return ProtoMessage(one(number, 2).bytes);
  }
  [[nodiscard]] std::vector<ProtoMessage> messages(int number) const {
    std::vector<ProtoMessage> out;
    for (const auto& f : all(number)) out.emplace_back(f.bytes);
    return out;
  }
  [[nodiscard]] std::vector<std::string> strs(int number) const {
    std::vector<std::string> out;
    for (const auto& f : all(number)) out.push_back(text(f));
    return out;
  }
  // A repeated int64, unpacked (one key per element) or packed (one run of varints).
  [[nodiscard]] std::vector<std::int64_t> integers(int number) const {
    std::vector<std::int64_t> out;
    for (const auto& f : all(number)) {
      if (f.wire == 0) {
        out.push_back(static_cast<std::int64_t>(f.value));
      } else {
        for (std::size_t pos = 0; pos < f.bytes.size();)
          out.push_back(static_cast<std::int64_t>(varint(f.bytes, pos)));
      }
    }
    return out;
  }

 private:
  [[noreturn]] static void fail(const std::string& what, std::size_t at) {
    throw std::runtime_error("protobuf: " + what + " at byte " + std::to_string(at));
  }
  static std::uint64_t varint(std::span<const std::byte> d, std::size_t& pos) {
    const std::size_t start = pos;
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= d.size()) fail("truncated varint", start);
      const auto b = static_cast<std::uint64_t>(d[pos++]);
      v |= (b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    fail("varint longer than 10 bytes", start);
  }
  static std::uint64_t little_endian(std::span<const std::byte> d, std::size_t& pos, int n) {
    if (d.size() - pos < static_cast<std::size_t>(n)) fail("truncated fixed-size value", pos);
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(d[pos++]) << (8 * i);
    return v;
  }
  static std::string text(const ProtoField& f) {
    return {reinterpret_cast<const char*>(f.bytes.data()), f.bytes.size()};
  }
  std::vector<ProtoField> fields_;
};

// ---- ONNX, as far as ember writes it (field numbers from onnx/onnx.proto) ------------------

struct OnnxAttribute {
  std::string name;
  std::int64_t type = 0;  // AttributeType: 1 FLOAT, 2 INT, 3 STRING, 7 INTS
  std::int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<std::int64_t> ints;
};

struct OnnxNodeView {
  std::vector<std::string> inputs, outputs;
  std::string name, op_type;
  std::vector<OnnxAttribute> attributes;
  [[nodiscard]] const OnnxAttribute& attribute(const std::string& n) const {
    for (const auto& a : attributes)
      if (a.name == n) return a;
    throw std::runtime_error("node '" + name + "' has no attribute '" + n + "'");
  }
};

struct OnnxTensorView {
  std::vector<std::int64_t> dims;
  std::int64_t data_type = 0;
  std::string name;
  std::span<const std::byte> raw_data;
};

struct OnnxValueView {
  std::string name;
  std::int64_t elem_type = 0;
  std::vector<std::string> dims;  // "N" for a dim_param, the number for a dim_value
};

struct OnnxModelView {
  std::int64_t ir_version = 0;
  std::string producer_name, producer_version;
  std::string opset_domain;
  std::int64_t opset_version = 0;
  std::vector<int> model_fields, graph_fields;  // field numbers in the order written
  std::string graph_name;
  std::vector<OnnxNodeView> nodes;
  std::vector<OnnxTensorView> initializers;
  std::vector<OnnxValueView> inputs, outputs, value_infos;
  [[nodiscard]] const OnnxValueView& value_info(const std::string& n) const {
    for (const auto& v : value_infos)
      if (v.name == n) return v;
    throw std::runtime_error("no value_info for '" + n + "'");
  }
};

inline OnnxValueView decode_value_info(const ProtoMessage& m) {
  OnnxValueView v;
  v.name = m.str(1);
  const ProtoMessage tensor = m.message(2).message(1);  // TypeProto.tensor_type
  v.elem_type = tensor.integer(1);
  for (const ProtoMessage& dim : tensor.message(2).messages(1)) {
    if (dim.has(2))
      v.dims.push_back(dim.str(2));
    else
      v.dims.push_back(std::to_string(dim.integer(1)));
  }
  return v;
}

// Decodes `bytes`, which must stay alive while the view's raw_data is used.
inline OnnxModelView decode_onnx(std::span<const std::byte> bytes) {
  const ProtoMessage model(bytes);
  OnnxModelView v;
  v.model_fields = model.numbers();
  v.ir_version = model.integer(1);
  v.producer_name = model.str(2);
  v.producer_version = model.str(3);
  const ProtoMessage opset = model.message(8);
  v.opset_domain = opset.has(1) ? opset.str(1) : "";
  v.opset_version = opset.integer(2);
  const ProtoMessage graph = model.message(7);
  v.graph_fields = graph.numbers();
  v.graph_name = graph.str(2);
  for (const ProtoMessage& n : graph.messages(1)) {
    OnnxNodeView node;
    node.inputs = n.strs(1);
    node.outputs = n.strs(2);
    node.name = n.str(3);
    node.op_type = n.str(4);
    for (const ProtoMessage& a : n.messages(5)) {
      OnnxAttribute attr;
      attr.name = a.str(1);
      attr.type = a.integer(20);
      if (a.has(2)) attr.f = a.real32(2);
      if (a.has(3)) attr.i = a.integer(3);
      if (a.has(4)) attr.s = a.str(4);
      attr.ints = a.integers(8);
      node.attributes.push_back(attr);
    }
    v.nodes.push_back(node);
  }
  for (const ProtoMessage& t : graph.messages(5)) {
    OnnxTensorView tensor;
    tensor.dims = t.integers(1);
    tensor.data_type = t.integer(2);
    tensor.name = t.str(8);
    tensor.raw_data = t.one(9, 2).bytes;
    v.initializers.push_back(tensor);
  }
  for (const ProtoMessage& m : graph.messages(11)) v.inputs.push_back(decode_value_info(m));
  for (const ProtoMessage& m : graph.messages(12)) v.outputs.push_back(decode_value_info(m));
  for (const ProtoMessage& m : graph.messages(13)) v.value_infos.push_back(decode_value_info(m));
  return v;
}

}  // namespace ember::test
