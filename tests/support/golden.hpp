#pragma once
// Test support: reads the PyTorch golden fixtures (tests/golden/*.safetensors, written by
// tests/golden/make_golden.py) into ember tensors, and compares results against them.
//
// Tolerance (see tests/golden/README.md): the references are float64 results rounded once to
// float32, ember computes in float32, so an element passes when
//     |actual - expected| <= rtol * |expected| + atol,   atol = atol_scale * max|expected|
// with rtol = atol_scale = 1e-5 by default. The absolute part, relative to the tensor's largest
// magnitude, is what lets elements that cancel to near zero (conv outputs, gradient samples)
// pass: they cannot meet a purely element-wise relative bound, not even in PyTorch's float32.
//
// Set EMBER_GOLDEN_REPORT=1 to print, for every comparison, the largest absolute deviation,
// that deviation relative to max|expected|, and the share of the tolerance used.

#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/io/safetensors.hpp"

namespace ember::test {

static_assert(std::endian::native == std::endian::little,
              "the golden loader copies little-endian bytes as they are");

class Golden {
 public:
  // Loads tests/golden/<file>.
  explicit Golden(const std::string& file)
      : file_(file), data_(io::load_safetensors(std::string(EMBER_TEST_DIR) + "/golden/" + file)) {}

  [[nodiscard]] const std::string& file() const { return file_; }
  [[nodiscard]] bool has(const std::string& name) const { return data_.tensors.count(name) != 0; }

  [[nodiscard]] Tensor<float> f32(const std::string& name) const {
    return read<float>(name, "F32");
  }
  [[nodiscard]] Tensor<std::int64_t> i64(const std::string& name) const {
    return read<std::int64_t>(name, "I64");
  }

  [[nodiscard]] std::string meta(const std::string& key) const {
    const auto it = data_.metadata.find(key);
    EMBER_CHECK(it != data_.metadata.end(), file_, ": no metadata entry '", key, "'");
    return it->second;
  }
  [[nodiscard]] std::int64_t meta_int(const std::string& key) const {
    return std::stoll(meta(key));
  }
  [[nodiscard]] double meta_double(const std::string& key) const { return std::stod(meta(key)); }

 private:
  template <class T>
  [[nodiscard]] Tensor<T> read(const std::string& name, const char* dtype) const {
    const auto it = data_.tensors.find(name);
    EMBER_CHECK(it != data_.tensors.end(), file_, ": no tensor '", name, "'");
    const io::TensorRecord& r = it->second;
    EMBER_CHECK(r.dtype == dtype, file_, ": tensor '", name, "' is ", r.dtype, ", not ", dtype);
    Tensor<T> t = Tensor<T>::empty(r.shape);
    EMBER_CHECK(r.data.size() == static_cast<std::size_t>(t.numel()) * sizeof(T), file_,
                ": tensor '", name, "' has ", r.data.size(), " bytes for shape ",
                shape_str(r.shape));
    if (!r.data.empty()) std::memcpy(t.data(), r.data.data(), r.data.size());
    return t;
  }

  std::string file_;
  io::SafetensorsFile data_;
};

struct Deviation {
  double max_abs = 0;     // max |a - b|
  double max_scaled = 0;  // max |a - b| / max|b|
  double max_used = 0;    // max |a - b| / (rtol |b| + atol): passes when <= 1
  std::int64_t worst = -1;
  double worst_actual = 0, worst_expected = 0;
};

template <Real T>
[[nodiscard]] Deviation deviation(const Tensor<T>& actual, const Tensor<float>& expected,
                                  double rtol, double atol_scale) {
  const std::vector<T> a = actual.to_vector();
  const std::vector<float> b = expected.to_vector();
  double scale = 0;
  for (float v : b) scale = std::max(scale, std::abs(static_cast<double>(v)));
  const double atol = atol_scale * scale;
  Deviation d;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double ai = static_cast<double>(a[i]), bi = static_cast<double>(b[i]);
    const double diff = std::isnan(ai) || std::isnan(bi) ? INFINITY : std::abs(ai - bi);
    const double allowed = rtol * std::abs(bi) + atol;
    const double used = allowed > 0 ? diff / allowed : (diff > 0 ? INFINITY : 0.0);
    d.max_abs = std::max(d.max_abs, diff);
    if (scale > 0) d.max_scaled = std::max(d.max_scaled, diff / scale);
    if (used > d.max_used || d.worst < 0) {
      d.max_used = used;
      d.worst = static_cast<std::int64_t>(i);
      d.worst_actual = ai;
      d.worst_expected = bi;
    }
  }
  return d;
}

// CHECKs that `actual` matches the golden tensor elementwise (see the tolerance above).
template <Real T>
void check_close(const Tensor<T>& actual, const Tensor<float>& expected, const std::string& what,
                 double rtol = 1e-5, double atol_scale = 1e-5) {
  INFO(what << ": shape " << shape_str(actual.shape()) << " vs golden "
            << shape_str(expected.shape()));
  REQUIRE(actual.defined());
  REQUIRE(actual.shape() == expected.shape());
  const Deviation d = deviation(actual, expected, rtol, atol_scale);
  if (const char* env = std::getenv("EMBER_GOLDEN_REPORT"); env != nullptr && *env != '\0')
    std::printf("golden %-40s max_abs %.3e  max_abs/max|ref| %.3e  tolerance used %.3f\n",
                what.c_str(), d.max_abs, d.max_scaled, d.max_used);
  INFO("rtol " << rtol << ", atol " << atol_scale << " * max|expected|; worst element "
               << d.worst << ": actual " << d.worst_actual << ", expected " << d.worst_expected
               << " (" << d.max_used << " of the tolerance)");
  CHECK(d.max_used <= 1.0);
}

}  // namespace ember::test
