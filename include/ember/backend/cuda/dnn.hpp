#pragma once
// cuDNN path for ember's 2-D convolution, with the semantics of ember::cpu::conv2d_forward /
// conv2d_backward (Conv2dParams: x NCHW, w KCRS, y NKPQ, all contiguous; cross-correlation,
// as PyTorch).
//
// API: cuDNN 9's legacy convolution API (cudnnConvolutionForward / BackwardData /
// BackwardFilter / BackwardBias with tensor, filter and convolution descriptors). cuDNN 9 marks
// it deprecated but only warns when CUDNN_WARN_DEPRECATED is defined; do not define it (our
// warnings are errors).
//
// Numerics: the convolution descriptor's math type is CUDNN_FMA_MATH. CUDNN_DEFAULT_MATH would
// let cuDNN run FP32 convolutions on TF32 tensor cores (Ampere and later); CUDNN_FMA_MATH
// restricts it to FMA kernels (full FP32 / FP64 arithmetic).
//
// Algorithms: chosen by cuDNN's heuristics (cudnnGet*Algorithm_v7), not by benchmarking
// (cudnnFind*AlgorithmEx): timing-based choices can differ from run to run and would break
// run-to-run reproducibility; heuristics are a pure function of the shape, GPU and cuDNN
// version. In every direction we take the best-ranked algorithm that is supported, reported
// CUDNN_DETERMINISTIC and not a tensor-op algorithm; this rules out the atomics-based backward
// algorithms (BWD_DATA_ALGO_0, BWD_FILTER_ALGO_0 and _3), so gradients are bit-identical run
// to run. If the heuristics offer none, ALGO_1 / IMPLICIT_GEMM is tried, else ember::Error.
// The choice (and its workspace size) is cached per (device, Conv2dParams, dtype, direction).
// Workspaces come from the DeviceAllocator and are freed right after the call is enqueued
// (stream order, see allocator.hpp).
//
// Handles: one per device, stream cuda::stream(device), created on first use (do that outside
// a graph capture: run one eager step first), never destroyed.

#if !defined(__CUDACC__)
#error "ember/backend/cuda/dnn.hpp is CUDA host code: compile this translation unit with nvcc"
#endif

#include <cuda_runtime.h>
#include <cudnn.h>

#if !defined(CUDNN_MAJOR) || CUDNN_MAJOR < 9
#error "ember's cuDNN path needs cuDNN 9 or later (cudnn_version.h: CUDNN_MAJOR)"
#endif

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>

#include "ember/backend/cuda/allocator.hpp"
#include "ember/backend/cuda/runtime.hpp"
#include "ember/backend/params.hpp"
#include "ember/core/error.hpp"

namespace ember::cuda {

namespace detail {

[[noreturn]] inline void throw_cudnn_error(cudnnStatus_t s, const char* expr, const char* file,
                                           int line) {
  char last[512] = {};
  cudnnGetLastErrorString(last, sizeof(last));  // cuDNN 9: the last error's detailed message
  last[sizeof(last) - 1] = '\0';
  throw ::ember::Error(::ember::detail::concat(
      "cuDNN call `", expr, "` failed with ", cudnnGetErrorString(s), " (status ",
      static_cast<int>(s), last[0] != '\0' ? "; " : "", last, ") at ", file, ":", line));
}

template <class T>
constexpr cudnnDataType_t dnn_type() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "the cuDNN convolution supports float and double");
  return std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

// RAII descriptors.
class TensorDesc {
 public:
  TensorDesc() { EMBER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d_)); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  ~TensorDesc() { (void)cudnnDestroyTensorDescriptor(d_); }
  // A contiguous NCHW tensor.
  void set(cudnnDataType_t t, int n, int c, int h, int w) {
    EMBER_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d_, CUDNN_TENSOR_NCHW, t, n, c, h, w));
  }
  [[nodiscard]] cudnnTensorDescriptor_t get() const { return d_; }

 private:
  cudnnTensorDescriptor_t d_ = nullptr;
};

class FilterDesc {
 public:
  FilterDesc() { EMBER_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d_)); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
  ~FilterDesc() { (void)cudnnDestroyFilterDescriptor(d_); }
  [[nodiscard]] cudnnFilterDescriptor_t get() const { return d_; }

 private:
  cudnnFilterDescriptor_t d_ = nullptr;
};

class ConvDesc {
 public:
  ConvDesc() { EMBER_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d_)); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
  ~ConvDesc() { (void)cudnnDestroyConvolutionDescriptor(d_); }
  [[nodiscard]] cudnnConvolutionDescriptor_t get() const { return d_; }

 private:
  cudnnConvolutionDescriptor_t d_ = nullptr;
};

inline int to_dnn_int(std::int64_t v, const char* what) {
  EMBER_CHECK(v >= 1 && v <= std::numeric_limits<int>::max(), "cuDNN convolution: ", what,
              " = ", v, " is not in [1, INT_MAX]");
  return static_cast<int>(v);
}

inline int to_dnn_int0(std::int64_t v, const char* what) {
  EMBER_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), "cuDNN convolution: ", what,
              " = ", v, " is not in [0, INT_MAX]");
  return static_cast<int>(v);
}

// x, w, y and the bias descriptors of one convolution.
struct ConvDescs {
  TensorDesc x, y, bias;
  FilterDesc w;
  ConvDesc conv;

  ConvDescs(const Conv2dParams& p, cudnnDataType_t t) {
    const std::int64_t P = p.p(), Q = p.q();
    const int n = to_dnn_int(p.n, "N"), c = to_dnn_int(p.c, "C"), h = to_dnn_int(p.h, "H"),
              w_ = to_dnn_int(p.w, "W"), k = to_dnn_int(p.k, "K"), r = to_dnn_int(p.r, "R"),
              s = to_dnn_int(p.s, "S"), pp = to_dnn_int(P, "P (output height)"),
              qq = to_dnn_int(Q, "Q (output width)");
    // The legacy API indexes tensors with 32-bit ints.
    // (Products in double: exact enough here and free of int64 overflow.)
    constexpr double kMaxElems = std::numeric_limits<int>::max();
    const auto elems = [](std::int64_t a, std::int64_t b, std::int64_t c2, std::int64_t d) {
      return static_cast<double>(a) * static_cast<double>(b) * static_cast<double>(c2) *
             static_cast<double>(d);
    };
    EMBER_CHECK(elems(p.n, p.c, p.h, p.w) <= kMaxElems && elems(p.n, p.k, P, Q) <= kMaxElems &&
                    elems(p.k, p.c, p.r, p.s) <= kMaxElems,
                "cuDNN convolution: a tensor has 2^31 elements or more (legacy API limit)");
    x.set(t, n, c, h, w_);
    y.set(t, n, k, pp, qq);
    bias.set(t, 1, k, 1, 1);
    EMBER_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w.get(), t, CUDNN_TENSOR_NCHW, k, c, r, s));
    EMBER_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv.get(), to_dnn_int0(p.pad_h, "pad_h"), to_dnn_int0(p.pad_w, "pad_w"),
        to_dnn_int(p.stride_h, "stride_h"), to_dnn_int(p.stride_w, "stride_w"),
        to_dnn_int(p.dil_h, "dil_h"), to_dnn_int(p.dil_w, "dil_w"), CUDNN_CROSS_CORRELATION, t));
    EMBER_CUDNN_CHECK(cudnnSetConvolutionMathType(conv.get(), CUDNN_FMA_MATH));
    // cuDNN must agree with Conv2dParams about the output shape.
    int on = 0, oc = 0, oh = 0, ow = 0;
    EMBER_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv.get(), x.get(), w.get(), &on,
                                                            &oc, &oh, &ow));
    EMBER_CHECK(on == n && oc == k && oh == pp && ow == qq, "cuDNN convolution: cuDNN's output ",
                "shape (", on, ", ", oc, ", ", oh, ", ", ow, ") differs from ember's (", n, ", ",
                k, ", ", pp, ", ", qq, ")");
  }
};

enum class ConvDirection : int { forward = 0, backward_data = 1, backward_filter = 2 };

struct AlgoChoice {
  int algo = 0;
  std::size_t workspace = 0;
};

using AlgoKey = std::array<std::int64_t, 16>;

inline AlgoKey algo_key(const Conv2dParams& p, cudnnDataType_t t, ConvDirection d, int device) {
  return {p.n,        p.c,        p.h,     p.w,     p.k,     p.r,
          p.s,        p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dil_h,
          p.dil_w,    static_cast<std::int64_t>(t), static_cast<std::int64_t>(d), device};
}

struct AlgoCache {
  std::mutex mutex;
  std::map<AlgoKey, AlgoChoice> map;
};

inline AlgoCache& algo_cache() {
  static AlgoCache* cache = new AlgoCache();  // never destroyed
  return *cache;
}

inline bool usable_math(cudnnMathType_t m) {
  return m != CUDNN_TENSOR_OP_MATH && m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// From heuristic results (best first), the first supported, deterministic, non-tensor-op
// algorithm whose workspace size query succeeds; else `fallback` if its query succeeds.
// `workspace(algo, &bytes)` returns the cudnnStatus_t of the size query.
template <class Perf, class WorkspaceFn>
AlgoChoice pick_algo(const std::vector<Perf>& perf, int returned, int fallback,
                     WorkspaceFn workspace, const char* direction) {
  for (int i = 0; i < returned; ++i) {
    const Perf& r = perf[static_cast<std::size_t>(i)];
    if (r.status != CUDNN_STATUS_SUCCESS || r.determinism != CUDNN_DETERMINISTIC ||
        !usable_math(r.mathType))
      continue;
    std::size_t bytes = 0;
    if (workspace(static_cast<int>(r.algo), &bytes) == CUDNN_STATUS_SUCCESS)
      return {static_cast<int>(r.algo), bytes};
  }
  std::size_t bytes = 0;
  EMBER_CHECK(workspace(fallback, &bytes) == CUDNN_STATUS_SUCCESS,
              "cuDNN offers no deterministic FP32/FP64 algorithm for this convolution's ",
              direction, " pass; use ember's own kernels (EMBER_CONV=custom)");
  return {fallback, bytes};
}

// The cached algorithm for (p, dtype, direction, device), chosen on first use.
inline AlgoChoice choose_algo(cudnnHandle_t h, const Conv2dParams& p, cudnnDataType_t t,
                              ConvDirection d, int device, const ConvDescs& desc) {
  const AlgoKey key = algo_key(p, t, d, device);
  AlgoCache& cache = algo_cache();
  {
    std::lock_guard lock(cache.mutex);
    auto it = cache.map.find(key);
    if (it != cache.map.end()) return it->second;
  }
  AlgoChoice choice;
  int max_count = 0, returned = 0;
  if (d == ConvDirection::forward) {
    EMBER_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<std::size_t>(max_count > 0 ? max_count : 1));
    EMBER_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
        h, desc.x.get(), desc.w.get(), desc.conv.get(), desc.y.get(), max_count, &returned,
        perf.data()));
    choice = pick_algo(
        perf, returned, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
        [&](int algo, std::size_t* bytes) {
          return cudnnGetConvolutionForwardWorkspaceSize(
              h, desc.x.get(), desc.w.get(), desc.conv.get(), desc.y.get(),
              static_cast<cudnnConvolutionFwdAlgo_t>(algo), bytes);
        },
        "forward");
  } else if (d == ConvDirection::backward_data) {
    EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(static_cast<std::size_t>(max_count > 0 ? max_count : 1));
    EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        h, desc.w.get(), desc.y.get(), desc.conv.get(), desc.x.get(), max_count, &returned,
        perf.data()));
    choice = pick_algo(
        perf, returned, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
        [&](int algo, std::size_t* bytes) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(
              h, desc.w.get(), desc.y.get(), desc.conv.get(), desc.x.get(),
              static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), bytes);
        },
        "backward-data");
  } else {
    EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(static_cast<std::size_t>(max_count > 0 ? max_count : 1));
    EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        h, desc.x.get(), desc.y.get(), desc.conv.get(), desc.w.get(), max_count, &returned,
        perf.data()));
    choice = pick_algo(
        perf, returned, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
        [&](int algo, std::size_t* bytes) {
          return cudnnGetConvolutionBackwardFilterWorkspaceSize(
              h, desc.x.get(), desc.y.get(), desc.conv.get(), desc.w.get(),
              static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), bytes);
        },
        "backward-filter");
  }
  std::lock_guard lock(cache.mutex);
  // Another thread may have chosen meanwhile: the heuristics are deterministic, so both agree.
  return cache.map.emplace(key, choice).first->second;
}

}  // namespace detail

// The cuDNN handle of cuda:device (created on first use; thread-safe; never destroyed).
[[nodiscard]] inline cudnnHandle_t dnn_handle(int device) {
  detail::check_device_index(device);
  static std::once_flag flags[kMaxDevices];
  static cudnnHandle_t handles[kMaxDevices] = {};
  std::call_once(flags[device], [device] {
    cudaStream_t s = stream(device);  // validates the device
    DeviceGuard guard(device);
    cudnnHandle_t h = nullptr;
    EMBER_CUDNN_CHECK(cudnnCreate(&h));
    const cudnnStatus_t st = cudnnSetStream(h, s);
    if (st != CUDNN_STATUS_SUCCESS) {
      (void)cudnnDestroy(h);
      detail::throw_cudnn_error(st, "cudnnSetStream(h, stream)", __FILE__, __LINE__);
    }
    handles[device] = h;
  });
  return handles[device];
}

// y (N, K, P, Q) = conv(x (N, C, H, W), w (K, C, R, S)) + bias (K; may be null). Device
// pointers on `device`; asynchronous on cuda::stream(device). y is overwritten.
template <class T>
void cudnn_conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y,
                          int device) {
  if (p.n == 0 || p.k == 0 || p.p() <= 0 || p.q() <= 0) return;  // y is empty
  constexpr cudnnDataType_t t = detail::dnn_type<T>();
  cudnnHandle_t h = dnn_handle(device);
  DeviceGuard guard(device);
  const detail::ConvDescs desc(p, t);
  const detail::AlgoChoice algo =
      detail::choose_algo(h, p, t, detail::ConvDirection::forward, device, desc);
  DeviceBuffer workspace(algo.workspace, device);
  const T one = 1, zero = 0;
  EMBER_CUDNN_CHECK(cudnnConvolutionForward(
      h, &one, desc.x.get(), x, desc.w.get(), w, desc.conv.get(),
      static_cast<cudnnConvolutionFwdAlgo_t>(algo.algo), workspace.data(), algo.workspace,
      &zero, desc.y.get(), y));
  if (bias != nullptr)
    EMBER_CUDNN_CHECK(cudnnAddTensor(h, &one, desc.bias.get(), bias, &one, desc.y.get(), y));
}

// gx (N, C, H, W) = the gradient of the input from gy (N, K, P, Q); overwritten.
template <class T>
void cudnn_conv2d_backward_data(const Conv2dParams& p, const T* w, const T* gy, T* gx,
                                int device) {
  if (p.n == 0 || p.c == 0 || p.h == 0 || p.w == 0) return;  // gx is empty
  constexpr cudnnDataType_t t = detail::dnn_type<T>();
  if (p.k == 0 || p.p() <= 0 || p.q() <= 0) {  // nothing flows back: the gradient is zero
    memset_async(gx, 0, static_cast<std::size_t>(p.n * p.c * p.h * p.w) * sizeof(T), device);
    return;
  }
  cudnnHandle_t h = dnn_handle(device);
  DeviceGuard guard(device);
  const detail::ConvDescs desc(p, t);
  const detail::AlgoChoice algo =
      detail::choose_algo(h, p, t, detail::ConvDirection::backward_data, device, desc);
  DeviceBuffer workspace(algo.workspace, device);
  const T one = 1, zero = 0;
  EMBER_CUDNN_CHECK(cudnnConvolutionBackwardData(
      h, &one, desc.w.get(), w, desc.y.get(), gy, desc.conv.get(),
      static_cast<cudnnConvolutionBwdDataAlgo_t>(algo.algo), workspace.data(), algo.workspace,
      &zero, desc.x.get(), gx));
}

// gw (K, C, R, S) and gb (K) from x and gy; both overwritten; either may be null (not needed).
template <class T>
void cudnn_conv2d_backward_weight(const Conv2dParams& p, const T* x, const T* gy, T* gw, T* gb,
                                  int device) {
  if (p.k == 0) return;  // gw and gb are empty
  constexpr cudnnDataType_t t = detail::dnn_type<T>();
  const std::size_t gw_bytes = static_cast<std::size_t>(p.k * p.c * p.r * p.s) * sizeof(T);
  if (p.n == 0 || p.c == 0 || p.p() <= 0 || p.q() <= 0) {  // no terms: gradients are zero
    if (gw != nullptr) memset_async(gw, 0, gw_bytes, device);
    if (gb != nullptr) memset_async(gb, 0, static_cast<std::size_t>(p.k) * sizeof(T), device);
    return;
  }
  cudnnHandle_t h = dnn_handle(device);
  DeviceGuard guard(device);
  const detail::ConvDescs desc(p, t);
  const T one = 1, zero = 0;
  if (gw != nullptr) {
    const detail::AlgoChoice algo =
        detail::choose_algo(h, p, t, detail::ConvDirection::backward_filter, device, desc);
    DeviceBuffer workspace(algo.workspace, device);
    EMBER_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        h, &one, desc.x.get(), x, desc.y.get(), gy, desc.conv.get(),
        static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo.algo), workspace.data(),
        algo.workspace, &zero, desc.w.get(), gw));
  }
  if (gb != nullptr)
    EMBER_CUDNN_CHECK(
        cudnnConvolutionBackwardBias(h, &one, desc.y.get(), gy, &zero, desc.bias.get(), gb));
}

}  // namespace ember::cuda
