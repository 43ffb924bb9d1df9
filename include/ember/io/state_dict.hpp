#pragma once
// Tensors and state_dicts to and from safetensors files, with PyTorch's parameter names,
// so that safetensors.torch.load_file + load_state_dict read what ember writes and back.

#include <bit>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/io/safetensors.hpp"
#include "ember/nn/module.hpp"

namespace ember::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; ember reads it on little-endian hosts only");

// A tensor as a safetensors record (contiguous copy of its elements).
template <Element T>
[[nodiscard]] TensorRecord to_record(const Tensor<T>& t) {
  const Tensor<T> c = t.contiguous();
  TensorRecord r{std::string(safetensors_dtype(dtype_of<T>())), c.shape(), {}};
  r.data.resize(static_cast<std::size_t>(c.numel()) * sizeof(T));
  if (!r.data.empty()) std::memcpy(r.data.data(), c.data(), r.data.size());
  return r;
}

// A record as a Tensor<T>. F32 and F64 records convert to either floating type; every
// other dtype must match T exactly.
template <Element T>
[[nodiscard]] Tensor<T> from_record(const TensorRecord& r, const std::string& name) {
  Tensor<T> out = Tensor<T>::empty(r.shape);
  const std::size_t n = static_cast<std::size_t>(out.numel());
  auto convert = [&](auto tag) {
    using S = decltype(tag);
    EMBER_CHECK(r.data.size() == n * sizeof(S), "tensor '", name, "': ", r.data.size(),
                " bytes for shape ", shape_str(r.shape), " of ", r.dtype);
    std::vector<S> tmp(n);
    if (n) std::memcpy(tmp.data(), r.data.data(), r.data.size());
    for (std::size_t i = 0; i < n; ++i) out.data()[i] = static_cast<T>(tmp[i]);
  };
  const std::string want(safetensors_dtype(dtype_of<T>()));
  if constexpr (Real<T>) {
    if (r.dtype == "F32") return convert(float{}), out;
    if (r.dtype == "F64") return convert(double{}), out;
  } else if (r.dtype == want) {
    return convert(T{}), out;
  }
  throw Error("tensor '" + name + "' has dtype " + r.dtype + ", which cannot be read as " + want);
}

// Writes named float tensors (a state_dict) atomically.
inline void save_state_dict(const std::string& path, const nn::NamedTensors& state,
                            const std::map<std::string, std::string>& metadata = {}) {
  SafetensorsFile f;
  f.metadata = metadata;
  for (const auto& [name, t] : state) {
    EMBER_CHECK(f.tensors.emplace(name, to_record(t)).second, "save_state_dict: duplicate name '",
                name, "'");
  }
  save_safetensors(path, f);
}

// Reads every tensor of a safetensors file as float (F32 or F64 on disk).
inline nn::NamedTensors load_state_dict(const std::string& path) {
  const SafetensorsFile f = load_safetensors(path);
  nn::NamedTensors out;
  for (const auto& [name, r] : f.tensors) {
    try {
      out.emplace_back(name, from_record<float>(r, name));
    } catch (const Error& e) {
      throw Error("'" + path + "': " + std::string(e.what()).substr(7));
    }
  }
  return out;
}

// Module conveniences: save a module's state_dict; load one into a module (strict by
// default: the keys must match exactly, and shapes always).
inline void save(const nn::Module& m, const std::string& path,
                 const std::map<std::string, std::string>& metadata = {}) {
  save_state_dict(path, m.state_dict(), metadata);
}
inline void load(nn::Module& m, const std::string& path, bool strict = true) {
  const nn::NamedTensors state = load_state_dict(path);
  try {
    m.load_state_dict(state, strict);
  } catch (const Error& e) {
    throw Error("'" + path + "': " + std::string(e.what()).substr(7));
  }
}

}  // namespace ember::io
