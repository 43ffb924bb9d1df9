#pragma once
// Tensors and state_dicts to and from safetensors files, with PyTorch's parameter names,
// so that safetensors.torch.load_file + load_state_dict read what ember writes and back.

#include <bit>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/io/safetensors.hpp"
#include "ember/nn/module.hpp"

namespace ember::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; ember reads it on little-endian hosts only");

/// A tensor as a safetensors record (contiguous copy of its elements).
template <Element T>
[[nodiscard]] TensorRecord to_record(const Tensor<T>& t) {
  const Tensor<T> c = t.contiguous();
  TensorRecord r{std::string(safetensors_dtype(dtype_of<T>())), c.shape(), {}};
  r.data.resize(static_cast<std::size_t>(c.numel()) * sizeof(T));
  if (!r.data.empty()) std::memcpy(r.data.data(), c.data(), r.data.size());
  return r;
}

namespace detail {
// An ember::Error's message without its "ember: " prefix, at most max_bytes long (a module's
// list of unexpected keys from a hostile file could otherwise run to megabytes).
[[nodiscard]] inline std::string error_text(const Error& e, std::size_t max_bytes = 2000) {
  return ::ember::detail::clip_text(std::string(e.what()).substr(7), max_bytes);
}
}  // namespace detail

/// A record as a Tensor<T>. F32 and F64 records convert to either floating type, and so does
/// an I64 scalar whose value the type holds exactly (a counter such as BatchNorm's
/// num_batches_tracked, int64 in PyTorch); every other dtype must match T exactly. The dtype, shape
/// and data size are checked before the tensor is allocated; the data is converted straight into
/// it.
template <Element T>
[[nodiscard]] Tensor<T> from_record(const TensorRecord& r, const std::string& name) {
  const std::string where = "tensor '" + ::ember::detail::clip_text(name) + "'";
  const std::string want(safetensors_dtype(dtype_of<T>()));
  const bool int_counter = Real<T> && r.dtype == "I64" && r.shape.empty();
  const bool real_source = r.dtype == "F32" || r.dtype == "F64" || int_counter;
  if (Real<T> ? !real_source : r.dtype != want) {
    throw Error(where + " has dtype " + ::ember::detail::clip_text(r.dtype, 20) +
                ", which cannot be read as " + want);
  }
  std::int64_t n = 0;
  try {
    n = numel_of(r.shape);
  } catch (const Error& e) {
    throw Error(where + ": " + detail::error_text(e));
  }
  const auto convert = [&](auto tag) {
    using S = decltype(tag);
    EMBER_CHECK(r.data.size() == static_cast<std::uint64_t>(n) * sizeof(S), where, ": ",
                r.data.size(), " bytes for shape ", shape_str(r.shape), " of ", r.dtype);
    Tensor<T> out = allocate_or_throw(where, static_cast<std::uint64_t>(n) * sizeof(T),
                                      [&] { return Tensor<T>::empty(r.shape); });
    const std::byte* src = r.data.data();
    T* dst = out.data();
    for (std::int64_t i = 0; i < n; ++i) {
      S v;
      std::memcpy(&v, src + static_cast<std::size_t>(i) * sizeof(S), sizeof(S));
      dst[i] = static_cast<T>(v);
    }
    return out;
  };
  if constexpr (Real<T>) {
    if (int_counter) {
      std::int64_t v = 0;
      EMBER_CHECK(r.data.size() == sizeof v, where, ": ", r.data.size(), " bytes for an I64 scalar");
      std::memcpy(&v, r.data.data(), sizeof v);
      // every integer of magnitude up to 2^24 (float) or 2^53 (double) is exact in T
      constexpr std::int64_t exact = std::int64_t{1} << std::numeric_limits<T>::digits;
      EMBER_CHECK(v >= -exact && v <= exact, where, ": the int64 value ", v, " is not exactly a ",
                  dtype_name(dtype_of<T>()));
      return convert(std::int64_t{});
    }
    return r.dtype == "F32" ? convert(float{}) : convert(double{});
  } else {
    return convert(T{});
  }
}

/// Writes named float tensors (a state_dict) atomically.
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

/// Every tensor of a parsed safetensors file as float (F32 or F64 in the file); source names
/// the file in errors.
inline nn::NamedTensors state_dict_from_safetensors(const SafetensorsFile& f,
                                                    const std::string& source) {
  nn::NamedTensors out;
  for (const auto& [name, r] : f.tensors) {
    try {
      out.emplace_back(name, from_record<float>(r, name));
    } catch (const Error& e) {
      throw Error("'" + source + "': " + detail::error_text(e));
    }
  }
  return out;
}

/// Reads every tensor of a safetensors file as float (F32 or F64 on disk).
inline nn::NamedTensors load_state_dict(const std::string& path) {
  return state_dict_from_safetensors(load_safetensors(path), path);
}

/// Loads a state_dict into a module (see nn::Module::load_state_dict), naming source in errors.
inline void load_into(nn::Module& m, const nn::NamedTensors& state, const std::string& source,
                      bool strict = true) {
  try {
    m.load_state_dict(state, strict);
  } catch (const Error& e) {
    throw Error("'" + source + "': " + detail::error_text(e));
  }
}

/// Module conveniences: save a module's state_dict; load one into a module (strict by
/// default: the keys must match exactly, and shapes always).
inline void save(const nn::Module& m, const std::string& path,
                 const std::map<std::string, std::string>& metadata = {}) {
  save_state_dict(path, m.state_dict(), metadata);
}
/// Loads a safetensors state_dict (e.g. one PyTorch wrote) into `m`; with strict, missing or
/// unexpected names throw, as in PyTorch; shapes must always match.
inline void load(nn::Module& m, const std::string& path, bool strict = true) {
  load_into(m, load_state_dict(path), path, strict);
}

}  // namespace ember::io
