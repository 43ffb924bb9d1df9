#pragma once
// The parameter structs shared by every backend: one op, one struct, the same meaning on the
// CPU (backend/cpu), in the CUDA kernels (kernels/) and in the vendor-library paths. Plain
// aggregates, so device code can take them by value; their host-only check() validates sizes
// that come from a file or a user before p() and q() are trusted.

#include <cstdint>
#include <string>

#include "ember/core/error.hpp"
#include "ember/core/macros.hpp"
#include "ember/core/strided_view.hpp"

namespace ember {

namespace detail {
// in + 2 * pad - dil * (kernel - 1) - 1, the numerator of a convolution or pooling output
// size, with every step overflow-checked (the arguments are already known non-negative, dil
// and kernel >= 1). Throws naming `what`, the axis and the values.
inline std::int64_t window_numerator(const std::string& what, const char* axis, std::int64_t in,
                                     std::int64_t pad, std::int64_t dil, std::int64_t kernel) {
  std::int64_t twice_pad = 0, padded = 0, reach = 0;
  EMBER_CHECK(!__builtin_mul_overflow(pad, std::int64_t{2}, &twice_pad) &&
                  !__builtin_add_overflow(in, twice_pad, &padded),
              what, ": padding ", pad, " on input ", axis, " ", in, " overflows int64");
  EMBER_CHECK(!__builtin_mul_overflow(dil, kernel - 1, &reach), what, ": dilation ", dil,
              " times kernel ", axis, " ", kernel, " - 1 overflows int64");
  return padded - reach - 1;  // padded >= 0 and reach >= 0: cannot overflow
}
}  // namespace detail

// Row-major GEMM: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, where op(A) is A
// stored [M,K] (trans_a false) or [K,M] (trans_a true); lda, ldb, ldc are the row strides of
// A, B and C as stored.
struct GemmParams {
  bool trans_a = false, trans_b = false;
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t lda = 0, ldb = 0, ldc = 0;
};

// `batch` products of one shape (torch.bmm): entry i multiplies a + i * stride_a by
// b + i * stride_b into c + i * stride_c, each as GemmParams says.
struct BatchedGemmParams {
  GemmParams gemm;
  std::int64_t batch = 0;
  std::int64_t stride_a = 0, stride_b = 0, stride_c = 0;
};

// 2-D convolution. Layouts: x (N, C, H, W), w (K, C, R, S), y (N, K, P, Q), all contiguous.
struct Conv2dParams {
  std::int64_t n = 0, c = 0, h = 0, w = 0;  // input  (N, C, H, W)
  std::int64_t k = 0, r = 0, s = 0;         // weight (K, C, R, S)
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;
  std::int64_t dil_h = 1, dil_w = 1;

  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t p() const {
    return (h + 2 * pad_h - dil_h * (r - 1) - 1) / stride_h + 1;
  }
  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t q() const {
    return (w + 2 * pad_w - dil_w * (s - 1) - 1) / stride_w + 1;
  }
  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t crs() const { return c * r * s; }

  // Host only: throws ember::Error, prefixed by `what` and naming the field and its value,
  // unless the sizes are non-negative, the kernel, strides and dilations positive, the
  // paddings non-negative, the input at least as large as the dilated kernel, and every
  // intermediate of p(), q() and crs() fits an int64. Afterwards p() and q() are exact and
  // at least 1. (p() alone truncates a negative quotient up to 0 or 1 when stride > 1.)
  void check(const std::string& what) const {
    EMBER_CHECK(n >= 0 && c >= 0 && h >= 0 && w >= 0 && k >= 0, what, ": negative size (n ", n,
                ", c ", c, ", h ", h, ", w ", w, ", k ", k, ")");
    EMBER_CHECK(r >= 1 && s >= 1, what, ": kernel ", r, " x ", s, " must be positive");
    EMBER_CHECK(stride_h >= 1 && stride_w >= 1, what, ": stride ", stride_h, " x ", stride_w,
                " must be positive");
    EMBER_CHECK(pad_h >= 0 && pad_w >= 0, what, ": padding ", pad_h, " x ", pad_w,
                " must be non-negative");
    EMBER_CHECK(dil_h >= 1 && dil_w >= 1, what, ": dilation ", dil_h, " x ", dil_w,
                " must be positive");
    EMBER_CHECK(detail::window_numerator(what, "height", h, pad_h, dil_h, r) >= 0 &&
                    detail::window_numerator(what, "width", w, pad_w, dil_w, s) >= 0,
                what, ": input ", h, " x ", w, " with padding ", pad_h, " x ", pad_w,
                " is smaller than the kernel ", r, " x ", s, " dilated by ", dil_h, " x ", dil_w);
    std::int64_t cr = 0, crs_ = 0;
    EMBER_CHECK(!__builtin_mul_overflow(c, r, &cr) && !__builtin_mul_overflow(cr, s, &crs_), what,
                ": channels ", c, " times kernel ", r, " x ", s, " overflows int64");
  }
};

struct Pool2dParams;

// A square, floor-mode, undilated max pooling window, as an nn::Step holds it (ONNX export and
// int8 take no other). It converts to the Pool2dParams that the max pooling kernels take.
struct MaxPool2dParams {
  std::int64_t planes = 0, h = 0, w = 0;
  std::int64_t kernel = 2, stride = 2, padding = 0;
  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t p() const {
    return (h + 2 * padding - kernel) / stride + 1;
  }
  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t q() const {
    return (w + 2 * padding - kernel) / stride + 1;
  }
  // Implicit, so that the kernels (cpu::max_pool2d_forward, kernels::max_pool2d_forward, ...)
  // take this square window as they take any other. Defined below Pool2dParams.
  // NOLINTNEXTLINE(google-explicit-constructor)
  operator Pool2dParams() const;

  // Host only: as Conv2dParams::check(), for a pooling window (padding at most half the
  // kernel, as PyTorch requires). Afterwards p() and q() are exact and at least 1.
  void check(const std::string& what) const {
    EMBER_CHECK(planes >= 0 && h >= 0 && w >= 0, what, ": negative size (planes ", planes, ", h ",
                h, ", w ", w, ")");
    EMBER_CHECK(kernel >= 1 && stride >= 1, what, ": kernel ", kernel, " and stride ", stride,
                " must be positive");
    EMBER_CHECK(padding >= 0 && padding <= kernel / 2, what, ": padding ", padding,
                " must be in [0, kernel / 2] for kernel ", kernel);
    EMBER_CHECK(detail::window_numerator(what, "height", h, padding, 1, kernel) >= 0 &&
                    detail::window_numerator(what, "width", w, padding, 1, kernel) >= 0,
                what, ": input ", h, " x ", w, " with padding ", padding,
                " is smaller than the window ", kernel);
  }
};

// A pooling window over (planes, h, w): kernel, stride, padding and dilation per axis, with
// PyTorch's output size (ceil_mode: a last window may start in the input's right/bottom edge,
// never in the padding beyond it) and averaging divisor (count_include_pad: the window clipped to
// the padded input, else to the input). Average pooling has dilation 1. Adaptive pooling
// (out_h, out_w > 0) has PyTorch's adaptive windows instead: output i of n over an axis of size s
// spans [floor(i s / n), ceil((i+1) s / n)).
struct Pool2dParams {
  std::int64_t planes = 0, h = 0, w = 0;
  std::int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  bool ceil_mode = false, count_include_pad = true;
  std::int64_t out_h = 0, out_w = 0;  // > 0: adaptive pooling to this size

  // The output size over one axis: (in + 2 pad - dil (k - 1) - 1) / s + 1, rounded down, or up
  // when ceil (then without a last window starting beyond the input and its left padding).
  [[nodiscard]] static EMBER_HOST_DEVICE std::int64_t out_size(std::int64_t in, std::int64_t k,
                                                               std::int64_t s, std::int64_t pad,
                                                               bool ceil, std::int64_t dil = 1) {
    const std::int64_t num = in + 2 * pad - dil * (k - 1) - 1;
    std::int64_t o = (ceil ? (num + s - 1) / s : num / s) + 1;
    if (ceil && (o - 1) * s >= in + pad) --o;
    return o;
  }
  [[nodiscard]] EMBER_HOST_DEVICE bool adaptive() const { return out_h > 0; }
  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t p() const {
    return adaptive() ? out_h : out_size(h, kh, sh, ph, ceil_mode, dh);
  }
  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t q() const {
    return adaptive() ? out_w : out_size(w, kw, sw, pw, ceil_mode, dw);
  }

  // Output (oh, ow)'s window clipped to the input, [h0, h1) x [w0, w1), and its averaging
  // divisor (PyTorch's: the window clipped to the padded input when count_include_pad).
  // Dilation 1 (average pooling, and max pooling's dilation 1).
  struct Window {
    std::int64_t h0, h1, w0, w1, divisor;
  };
  [[nodiscard]] EMBER_HOST_DEVICE Window window(std::int64_t oh, std::int64_t ow) const {
    if (adaptive()) {
      Window r{oh * h / out_h, ((oh + 1) * h + out_h - 1) / out_h, ow * w / out_w,
               ((ow + 1) * w + out_w - 1) / out_w, 0};
      r.divisor = (r.h1 - r.h0) * (r.w1 - r.w0);
      return r;
    }
    const std::int64_t hs = oh * sh - ph, ws = ow * sw - pw;
    const std::int64_t he = hs + kh < h + ph ? hs + kh : h + ph;
    const std::int64_t we = ws + kw < w + pw ? ws + kw : w + pw;
    Window r{hs > 0 ? hs : 0, he < h ? he : h, ws > 0 ? ws : 0, we < w ? we : w, 0};
    r.divisor = count_include_pad ? (he - hs) * (we - ws) : (r.h1 - r.h0) * (r.w1 - r.w0);
    return r;
  }
  // Max pooling: output (oh, ow)'s dilated window taps inside the input, rows h0, h0 + dh, ...
  // below h1 and columns w0, w0 + dw, ... below w1 (divisor unused). Empty (h0 >= h1 or
  // w0 >= w1) when every tap of a dilated window falls in the padding or beyond the input.
  [[nodiscard]] EMBER_HOST_DEVICE Window taps(std::int64_t oh, std::int64_t ow) const {
    if (adaptive() || (dh == 1 && dw == 1)) return window(oh, ow);
    const std::int64_t hs = oh * sh - ph, ws = ow * sw - pw;
    const std::int64_t he = hs + dh * (kh - 1) + 1, we = ws + dw * (kw - 1) + 1;
    // The first tap at or after 0: a multiple of the dilation past the window's start.
    return {hs >= 0 ? hs : hs + (-hs + dh - 1) / dh * dh, he < h ? he : h,
            ws >= 0 ? ws : ws + (-ws + dw - 1) / dw * dw, we < w ? we : w, 0};
  }
  // The outputs whose windows (dilated: their span) contain input (ih, iw): rows [oh0, oh1),
  // columns [ow0, ow1). With dilation some of them skip (ih, iw).
  struct Cover {
    std::int64_t oh0, oh1, ow0, ow1;
  };
  [[nodiscard]] EMBER_HOST_DEVICE Cover cover(std::int64_t ih, std::int64_t iw) const {
    const std::int64_t P = p(), Q = q();
    if (adaptive()) {
      const std::int64_t oh1 = ((ih + 1) * P + h - 1) / h, ow1 = ((iw + 1) * Q + w - 1) / w;
      return {ih * P / h, oh1 < P ? oh1 : P, iw * Q / w, ow1 < Q ? ow1 : Q};
    }
    const std::int64_t a = ih + ph - dh * (kh - 1), b = iw + pw - dw * (kw - 1);
    const std::int64_t oh1 = (ih + ph) / sh + 1, ow1 = (iw + pw) / sw + 1;
    return {a <= 0 ? 0 : (a + sh - 1) / sh, oh1 < P ? oh1 : P, b <= 0 ? 0 : (b + sw - 1) / sw,
            ow1 < Q ? ow1 : Q};
  }

  // Host only: every size positive or zero as it must be, padding at most half the kernel (as
  // PyTorch requires, whatever the dilation), the padded input at least one (dilated) window,
  // every intermediate of p() and q() within int64. Afterwards p() and q() are >= 1.
  void check(const std::string& what) const {
    EMBER_CHECK(planes >= 0 && h >= 0 && w >= 0, what, ": negative size (planes ", planes, ", h ",
                h, ", w ", w, ")");
    if (adaptive() || out_w > 0) {
      EMBER_CHECK(out_h >= 1 && out_w >= 1, what, ": output size ", out_h, "x", out_w, " must be positive");
      EMBER_CHECK(h >= 1 && w >= 1, what, ": input planes of ", h, " x ", w, " are empty");
      return;
    }
    EMBER_CHECK(kh >= 1 && kw >= 1 && sh >= 1 && sw >= 1, what, ": kernel ", kh, "x", kw,
                " and stride ", sh, "x", sw, " must be positive");
    EMBER_CHECK(dh >= 1 && dw >= 1, what, ": dilation ", dh, "x", dw, " must be positive");
    EMBER_CHECK(ph >= 0 && pw >= 0 && ph <= kh / 2 && pw <= kw / 2, what, ": padding ", ph, "x", pw,
                " must be in [0, kernel / 2] for kernel ", kh, "x", kw, " (at most half of it)");
    const std::string dilated =
        dh == 1 && dw == 1 ? "" : " dilated by " + std::to_string(dh) + "x" + std::to_string(dw);
    EMBER_CHECK(detail::window_numerator(what, "height", h, ph, dh, kh) >= 0 &&
                    detail::window_numerator(what, "width", w, pw, dw, kw) >= 0,
                what, ": input ", h, " x ", w, " with padding ", ph, "x", pw,
                " is smaller than the window ", kh, "x", kw, dilated);
    // ceil_mode rounds (in + 2 pad - ...) + stride - 1, where in + 2 pad is known to fit
    EMBER_CHECK(
        !ceil_mode || (sh - 1 <= INT64_MAX - (h + 2 * ph) && sw - 1 <= INT64_MAX - (w + 2 * pw)),
        what, ": stride ", sh, "x", sw, " overflows int64 with input ", h, " x ", w);
  }
};

inline MaxPool2dParams::operator Pool2dParams() const {
  return Pool2dParams{.planes = planes, .h = h, .w = w, .kh = kernel, .kw = kernel, .sh = stride,
                      .sw = stride, .ph = padding, .pw = padding};
}

// Batch normalization over x (n, c, s): s is the product of the dimensions after the channel
// (1 for (N, C), L for (N, C, L), H*W for (N, C, H, W)). training: normalize with the batch's
// per-channel mean and biased variance; else with the given running statistics.
struct BatchNormParams {
  std::int64_t n = 0, c = 0, s = 1;
  double eps = 1e-5;
  bool training = true;
  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t per_channel() const { return n * s; }
};

// A reduction along one dimension of a contiguous tensor viewed as x [outer, size, inner]
// (size the reduced dimension) to [outer, inner]: max/min with their indices, argmax/argmin,
// amax/amin and their backward. take_min picks min over max.
struct DimReduceParams {
  std::int64_t outer = 1, size = 1, inner = 1;
  bool take_min = false;
  // amax/amin backward: whether a NaN input counts as equal to a NaN result (max(x)'s
  // gradient goes to the NaNs; amax's is NaN, as PyTorch's).
  bool nan_equal = false;

  [[nodiscard]] EMBER_HOST_DEVICE std::int64_t outputs() const { return outer * inner; }
  // Whether v replaces the running best of a scan in index order, PyTorch's rule: a NaN
  // beats any number and the first NaN stays; otherwise a strictly larger (smaller) value
  // wins, so the first of equal values stays.
  template <class T>
  [[nodiscard]] EMBER_HOST_DEVICE bool beats(T v, T best) const {
    if (best != best) return false;
    if (v != v) return true;
    return take_min ? v < best : v > best;
  }
};

// The comparison of ember::eq, ne, lt, le, gt, ge (IEEE: NaN compares unequal to everything).
enum class CompareOp { eq, ne, lt, le, gt, ge };

// clamp's bounds (ember::clamp, clamp_min, clamp_max). A missing bound is not applied; a NaN
// bound makes every output NaN, as in PyTorch. y = min(max(x, min), max) with NaN-propagating
// max and min (so min > max gives max everywhere); the gradient passes where
// min < x < max strictly (0 at the bounds and for NaN, as PyTorch 2's ClampBackward1).
template <class T>
struct ClampParams {
  T min = T(0), max = T(0);
  bool has_min = false, has_max = false;

  [[nodiscard]] EMBER_HOST_DEVICE T apply(T x) const {
    if (has_min) x = x != x ? x : (min != min ? min : (x < min ? min : x));
    if (has_max) x = x != x ? x : (max != max ? max : (max < x ? max : x));
    return x;
  }
  [[nodiscard]] EMBER_HOST_DEVICE bool passes_gradient(T x) const {
    return (!has_min || x > min) && (!has_max || x < max);
  }
};

// clamp with tensor bounds (ember::clamp(x, min, max) on tensors, clamp_min / clamp_max with a
// tensor, maximum, minimum), element by element after broadcasting. The value is ClampParams'
// (NaN anywhere gives NaN; min > max gives max). The gradients are PyTorch 2's
// (ClampBackward0, MaximumBackward0, MinimumBackward0), which differ from the scalar clamp's:
//  - one bound (maximum(x, min), minimum(x, max)): the larger (smaller) one takes the gradient,
//    a tie splits it in halves, and a NaN on either side sends it whole to both;
//  - both bounds: x takes it unless x < min or x > max, min where x < min <= max, max where
//    x > max >= min or max < min; a tie of x with a bound splits it in halves between them
//    when min < max (when min == max, or a bound is NaN, x keeps it whole).
template <class T>
struct ClampTensorParams {
  bool has_min = false, has_max = false;

  [[nodiscard]] EMBER_HOST_DEVICE T apply(T x, T lo, T hi) const {
    ClampParams<T> p;
    p.has_min = has_min;
    p.has_max = has_max;
    p.min = lo;
    p.max = hi;
    return p.apply(x);
  }
  // The gradients of x, min and max for the upstream g (those of an absent bound are 0).
  EMBER_HOST_DEVICE void gradients(T g, T x, T lo, T hi, T& gx, T& glo, T& ghi) const {
    const T half = g / T(2), zero = T(0);
    glo = ghi = zero;
    if (has_min && has_max) {
      const bool inner = lo < hi;
      gx = (x < lo || x > hi) ? zero : (inner && (x == lo || x == hi) ? half : g);
      glo = (x < lo && lo <= hi) ? g : (inner && x == lo ? half : zero);
      ghi = ((x > hi && lo <= hi) || hi < lo) ? g : (inner && x == hi ? half : zero);
    } else if (has_min) {  // maximum(x, lo)
      gx = x < lo ? zero : (x == lo ? half : g);
      glo = x > lo ? zero : (x == lo ? half : g);
    } else if (has_max) {  // minimum(x, hi)
      gx = x > hi ? zero : (x == hi ? half : g);
      ghi = x < hi ? zero : (x == hi ? half : g);
    } else {
      gx = g;
    }
  }
};

namespace cpu {
using ember::BatchedGemmParams;
using ember::GemmParams;
}  // namespace cpu

}  // namespace ember
