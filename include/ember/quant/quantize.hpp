#pragma once
// Post-training int8 quantization of a feed-forward model for CPU inference.
//
//   quant::QuantizedModel q = quant::quantize(model, calibration_loader, {.batches = 20});
//   Tensor<float> log_probs = q(images);        // same input and output as model(images)
//
// What is quantized, and how:
// - conv2d and linear weights: int8, symmetric, one scale per output channel
//   (scale = max|w| / 127, w_q = round(w / scale) in [-127, 127]); biases stay float.
// - the input of every conv2d / linear layer: 7-bit codes q in [0, 127], x = (q - zp) * scale,
//   with scale and zero point zp from the range [min, max] seen on calibration batches (zp = 0
//   when the input is never negative, as after a ReLU). Why 7 bits: see int8_gemm.hpp.
// - a layer's int32 sums go through one fused epilogue: zero-point correction, the two scales,
//   the bias, a following ReLU, and rounding to the codes of the next layer's input, so
//   activations stay 7-bit codes between layers (channels-last). Max-pooling, ReLU and
//   flattening work on the codes directly (they commute with a monotonic quantization); the
//   weights of a linear layer after a flatten are permuted to the channels-last order.
// - average pooling (avg_pool2d, adaptive_avg_pool2d) on codes: its input has calibrated
//   parameters of its own (averaging does not commute with clamping to a range); it sums the
//   codes of each window in int32 and requantizes the mean to the next layer's codes (or writes
//   float). On float activations it pools in float.
// - batch norm: folded into the conv2d / linear before it (nn::fold_batch_norm); one after
//   anything else runs in float as its per-channel affine map x * scale + shift.
// - every other op (sigmoid, tanh, gelu, leaky_relu, elu, silu, softmax, log_softmax) has no
//   int8 form and runs in float, as ONNX Runtime's QDQ models run an op without an int8 kernel:
//   the layer before it writes float (dequantized in its epilogue), the op runs in float, and
//   the next conv2d / linear quantizes its input with the parameters calibrated there.
// A layer whose output is not read by another quantized layer writes float.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ember/backend/params.hpp"
#include "ember/core/parallel.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/dataloader.hpp"
#include "ember/nn/layers.hpp"
#include "ember/nn/steps.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/pool.hpp"
#include "ember/quant/int8_gemm.hpp"

namespace ember::quant {

/// Affine map between float values and 7-bit codes: x = (q - zero_point) * scale.
struct QParams {
  /// The float value of one code step.
  float scale = 1.0f;
  /// The code of the float value 0.
  std::int32_t zero_point = 0;
};

/// The parameters covering [lo, hi] (widened to contain 0, so that 0 and padding are exact).
[[nodiscard]] inline QParams choose_qparams(float lo, float hi) {
  EMBER_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "choose_qparams: bad range [", lo,
              ", ", hi, "]");
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  if (hi == lo) return {1.0f, 0};
  const float scale = (hi - lo) / static_cast<float>(kActMax);
  const auto zp = static_cast<std::int32_t>(std::clamp(std::nearbyint(-lo / scale), 0.0f, static_cast<float>(kActMax)));
  return {scale, zp};
}

/// The code of x: clamp(nearbyint(x / scale) + zero_point, 0, 127). x must be finite.
[[nodiscard]] inline std::uint8_t quantize_value(float x, QParams q) {
  const float v = std::nearbyint(x / q.scale) + static_cast<float>(q.zero_point);
  return static_cast<std::uint8_t>(std::clamp(v, 0.0f, static_cast<float>(kActMax)));
}

namespace detail {

// Checks that every input value is finite (a NaN would have no code).
inline void check_finite_input(const Tensor<float>& x) {
  const float* p = x.data();
  for (std::int64_t i = 0; i < x.numel(); ++i)
    EMBER_CHECK(std::isfinite(p[i]), "quantized forward: input element ", i, " is ", p[i]);
}

// One sample's floats in PyTorch's layout (C, HW) -> its codes channels-last (HW, C).
inline void quantize_sample(const float* src, std::int64_t C, std::int64_t HW, QParams qp, std::uint8_t* dst) {
  for (std::int64_t c = 0; c < C; ++c)
    for (std::int64_t j = 0; j < HW; ++j) dst[j * C + c] = quantize_value(src[c * HW + j], qp);
}

}  // namespace detail

/// One step of a quantized model. conv2d and linear layers carry their quantized weights.
struct QLayer {
  /// What the step computes.
  nn::Step::Op op = nn::Step::Op::relu;
  /// The layer's state_dict prefix, as in the float model.
  std::string name;
  /// conv2d: weight (out, in, kernel, kernel); linear: weight (out, in)
  /// @{
  std::int64_t in = 0, out = 0, kernel = 0, stride = 1, padding = 0, dilation = 1;
  /// @}
  std::vector<std::int8_t> weight;  ///< PyTorch's layout, values in [-127, 127]
  std::vector<float> weight_scale;  ///< one per output channel
  std::vector<float> bias;          ///< one per output channel (zeros when the layer had none)
  QParams input;                    ///< of the layer's input activations
  /// max_pool2d: kernel, stride, padding above; flatten (start dim), softmax, log_softmax: dim
  std::int64_t dim = 1;
  /// avg_pool2d: kh, kw, sh, sw, ph, pw, ceil_mode, count_include_pad; adaptive_avg_pool2d:
  /// out_h, out_w (planes, h, w unused). Both also have `input`, their input's parameters.
  Pool2dParams pool;
  double alpha = 0;               ///< leaky_relu: negative_slope; elu: alpha
  bool approximate_tanh = false;  ///< gelu
  // batch_norm (one not folded, run in float): y = x * weight_scale[c] + bias[c], with in = out
  // = the channel count.

  /// True for conv2d and linear, which carry int8 weights.
  [[nodiscard]] bool has_weights() const { return op == nn::Step::Op::conv2d || op == nn::Step::Op::linear; }
  /// Whether the layer reads codes of its own calibrated parameters (`input`).
  [[nodiscard]] bool has_input_qparams() const {
    return has_weights() || op == nn::Step::Op::avg_pool2d || op == nn::Step::Op::adaptive_avg_pool2d;
  }
  /// in * kernel * kernel for conv2d (QuantizedModel checks that it fits an int64), in for linear
  [[nodiscard]] std::int64_t fan_in() const { return op == nn::Step::Op::conv2d ? in * kernel * kernel : in; }
};

/// Ops that run on codes of any parameters unchanged (monotonic, or moving values only).
[[nodiscard]] inline bool works_on_codes(nn::Step::Op op) {
  using Op = nn::Step::Op;
  return op == Op::relu || op == Op::max_pool2d || op == Op::flatten || op == Op::dropout;
}

/// The float step a layer without an int8 form runs (its attributes; no tensors).
[[nodiscard]] inline nn::Step float_step(const QLayer& l) {
  return {.op = l.op, .name = l.name, .kernel = l.kernel, .stride = l.stride, .padding = l.padding,
          .dilation = l.dilation, .dim = l.dim, .alpha = l.alpha, .approximate_tanh = l.approximate_tanh,
          .pool = l.pool};
}

/// Weights of one layer: per-output-channel symmetric int8.
inline void quantize_weights(const Tensor<float>& w, QLayer& layer) {
  const Tensor<float> c = w.contiguous();
  const std::int64_t out = c.size(0), per = c.numel() / std::max<std::int64_t>(out, 1);
  layer.weight.resize(static_cast<std::size_t>(c.numel()));
  layer.weight_scale.resize(static_cast<std::size_t>(out));
  const float* p = c.data();
  for (std::int64_t o = 0; o < out; ++o) {
    float m = 0;
    for (std::int64_t k = 0; k < per; ++k) {
      const float v = p[o * per + k];
      EMBER_CHECK(std::isfinite(v), "quantize: layer '", layer.name, "' has a non-finite weight (", v,
                  ") in output channel ", o);
      m = std::max(m, std::fabs(v));
    }
    const float scale = m > 0 ? m / static_cast<float>(kWeightMax) : 1.0f;
    layer.weight_scale[static_cast<std::size_t>(o)] = scale;
    for (std::int64_t k = 0; k < per; ++k) {
      const float q = std::clamp(std::nearbyint(p[o * per + k] / scale), -static_cast<float>(kWeightMax),
                                 static_cast<float>(kWeightMax));
      layer.weight[static_cast<std::size_t>(o * per + k)] = static_cast<std::int8_t>(q);
    }
  }
}

/// An int8 model: runs the layers of a float model's step list with quantized weights and
/// activations. Made by quantize() or loaded by load_quantized() (quant/serialize.hpp).
class QuantizedModel {
 public:
  QuantizedModel() = default;
  /// input_shape: one sample's (C, H, W) or (features).
  QuantizedModel(std::vector<QLayer> layers, std::vector<std::int64_t> input_shape,
                 std::map<std::string, std::string> info = {})
      : layers_(std::move(layers)), input_shape_(std::move(input_shape)), info_(std::move(info)) {
    prepare();
  }

  /// The steps, in order.
  [[nodiscard]] const std::vector<QLayer>& layers() const { return layers_; }
  /// One sample's input shape, (C, H, W) or (features).
  [[nodiscard]] const std::vector<std::int64_t>& input_shape() const { return input_shape_; }
  /// Free-form facts kept with the model (calibration, source model); saved in the file.
  [[nodiscard]] const std::map<std::string, std::string>& info() const { return info_; }
  /// The largest buffer, in elements, that forward() uses per sample: the input, any layer's
  /// output, or a convolution's patches (im2col). A forward pass of N samples allocates a few
  /// times N * this many bytes.
  [[nodiscard]] std::int64_t largest_sample_buffer() const { return largest_sample_buffer_; }
  /// Bytes of int8 weights plus float scales and biases.
  [[nodiscard]] std::int64_t parameter_bytes() const {
    std::int64_t b = 0;
    for (const QLayer& l : layers_)
      b += static_cast<std::int64_t>(l.weight.size() + 4 * (l.weight_scale.size() + l.bias.size()));
    return b;
  }

  /// x: (N, input_shape...) float, as the float model takes it; returns what the float model
  /// returns (up to quantization error). Runs on the CPU threads (set_num_threads).
  [[nodiscard]] Tensor<float> forward(const Tensor<float>& x) const;
  /// forward(x).
  [[nodiscard]] Tensor<float> operator()(const Tensor<float>& x) const { return forward(x); }

 private:
  // What prepare() works out for each layer with input parameters (weights: packed).
  struct Plan {
    PackedWeights packed;
    std::vector<float> scale, bias;  // the epilogue's, per output column (np entries)
    bool relu = false;               // a ReLU right after the layer is fused (and skipped)
    bool float_output = true;        // else codes with out
    QParams out;
  };
  // Activations between steps: float (PyTorch layout) or codes (channels-last).
  struct Act {
    bool codes = false;
    Tensor<float> f;
    std::vector<std::uint8_t> q;  // (N, H, W, C) or (N, F); 4 bytes of slack at the end
    QParams qp;
    std::int64_t n = 0;
    std::vector<std::int64_t> shape;  // per sample: (C, H, W) or (F)
    std::vector<std::int64_t> chw;    // codes flattened from (C, H, W): that shape, else empty
  };

  void prepare();
  void to_codes(Act& a, QParams qp) const;
  static void to_float(Act& a);
  std::size_t run_spatial(std::size_t first, Act& a) const;
  void run_linear(const QLayer& l, const Plan& p, Act& a) const;

  std::vector<QLayer> layers_;
  std::vector<std::int64_t> input_shape_;
  std::map<std::string, std::string> info_;
  std::vector<std::shared_ptr<const Plan>> plans_;  // per layer (null without input parameters)
  std::vector<bool> skip_;                          // ReLUs fused into the layer before
  std::vector<std::vector<std::int64_t>> out_shapes_;  // per layer: one sample's output shape
  std::int64_t largest_sample_buffer_ = 0;
};

namespace detail {
// The elements of one sample's activation of this shape, at most max_numel (2^48), else an error
// naming the layer: sizes come from files, and their product must not wrap around.
inline std::int64_t sample_numel(const std::vector<std::int64_t>& shape, const std::string& where) {
  std::int64_t n = 1;
  for (std::int64_t d : shape)
    EMBER_CHECK(d > 0 && !__builtin_mul_overflow(n, d, &n) && n <= max_numel, where,
                ": one sample's ", shape_str(shape), " has more than ", max_numel, " elements");
  return n;
}
inline std::int64_t checked_product(std::int64_t a, std::int64_t b, const std::string& where,
                                    const char* what) {
  std::int64_t r = 0;
  EMBER_CHECK(a >= 0 && b >= 0 && !__builtin_mul_overflow(a, b, &r) && r <= max_numel, where, ": ",
              what, " ", a, " x ", b, " is out of range (more than ", max_numel, ")");
  return r;
}
}  // namespace detail

// ---- implementation ----------------------------------------------------------------------

inline void QuantizedModel::prepare() {
  using Op = nn::Step::Op;
  EMBER_CHECK(!input_shape_.empty() && input_shape_.size() <= 3, "QuantizedModel: input shape ",
              shape_str(input_shape_), " must be (C, H, W) or (features)");
  for (std::int64_t d : input_shape_)
    EMBER_CHECK(d > 0, "QuantizedModel: input shape ", shape_str(input_shape_), " has a non-positive size");
  largest_sample_buffer_ = detail::sample_numel(input_shape_, "QuantizedModel: input shape");
  plans_.assign(layers_.size(), nullptr);
  skip_.assign(layers_.size(), false);
  out_shapes_.assign(layers_.size(), {});
  std::vector<std::int64_t> shape = input_shape_;  // per sample, PyTorch layout
  bool flat_codes_from_chw = false;                // whether codes would be (h, w, c) ordered here
  std::vector<std::int64_t> chw;
  // Whether activations are codes at this point: this follows forward() step for step.
  bool codes = false;
  const auto check_qparams = [](const QParams& q, const std::string& where) {
    EMBER_CHECK(std::isfinite(q.scale) && q.scale > 0 && q.zero_point >= 0 && q.zero_point <= kActMax,
                where, ": bad input scale ", q.scale, " / zero point ", q.zero_point);
  };
  // Where layer i's output goes: codes for the next layer with input parameters when only ops
  // working on codes lie between, else float.
  const auto plan_output = [&](std::size_t i, Plan& plan) {
    plan.float_output = true;
    for (std::size_t t = i + 1; t < layers_.size(); ++t) {
      if (layers_[t].has_input_qparams()) {
        plan.float_output = false;
        plan.out = layers_[t].input;
        return;
      }
      if (!works_on_codes(layers_[t].op)) return;
    }
  };
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const QLayer& l = layers_[i];
    const std::string where = "quantized layer '" + ::ember::detail::clip_text(l.name, 80) + "' (" +
                              nn::op_name(l.op) + ")";
    if (skip_[i]) continue;
    switch (l.op) {
      case Op::conv2d: {
        EMBER_CHECK(shape.size() == 3 && shape[0] == l.in, where, ": takes (", l.in, ", H, W) inputs, gets ",
                    shape_str(shape));
        EMBER_CHECK(l.out > 0, where, ": ", l.out, " output channels");
        const Conv2dParams g{.c = l.in, .h = shape[1], .w = shape[2], .k = l.out, .r = l.kernel, .s = l.kernel,
                             .stride_h = l.stride, .stride_w = l.stride, .pad_h = l.padding, .pad_w = l.padding,
                             .dil_h = l.dilation, .dil_w = l.dilation};
        g.check(where);  // every size overflow-checked; p() and q() >= 1 after it
        shape = {l.out, g.p(), g.q()};
        (void)detail::sample_numel(shape, where);  // so P * Q below fits
        // the patches of one image: (P * Q, in * kernel^2 rounded up to 4)
        const std::int64_t patch =
            round_up(detail::checked_product(g.crs(), 1, where, "patch size"), 4);
        largest_sample_buffer_ =
            std::max(largest_sample_buffer_,
                     detail::checked_product(g.p() * g.q(), patch, where, "im2col buffer"));
        break;
      }
      case Op::linear:
        EMBER_CHECK(shape.size() == 1 && shape[0] == l.in, where, ": takes ", l.in, " features, gets ",
                    shape_str(shape));
        shape = {l.out};
        break;
      case Op::max_pool2d: {
        EMBER_CHECK(shape.size() == 3, where, ": takes (C, H, W), gets ", shape_str(shape));
        const MaxPool2dParams g{.h = shape[1], .w = shape[2], .kernel = l.kernel, .stride = l.stride,
                                .padding = l.padding};
        g.check(where);  // p() and q() >= 1 after it
        shape = {shape[0], g.p(), g.q()};
        break;
      }
      case Op::avg_pool2d:
      case Op::adaptive_avg_pool2d: {
        EMBER_CHECK(shape.size() == 3, where, ": takes (C, H, W), gets ", shape_str(shape));
        EMBER_CHECK((l.op == Op::adaptive_avg_pool2d) == (l.pool.out_h > 0 || l.pool.out_w > 0), where,
                    ": output size ", l.pool.out_h, " x ", l.pool.out_w, " does not fit the op");
        Pool2dParams g = l.pool;
        g.planes = shape[0];
        g.h = shape[1];
        g.w = shape[2];
        // bounded first, so that no product in Pool2dParams or the pooling overflows
        constexpr std::int64_t lim = std::int64_t{1} << 24;
        for (const std::int64_t v : {g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.out_h, g.out_w})
          EMBER_CHECK(v <= lim, where, ": a pooling size of ", v, " is above 2^24");
        EMBER_CHECK(detail::checked_product(g.h, g.w, where, "plane") <= lim, where, ": planes of ",
                    g.h, " x ", g.w, " have more than 2^24 elements");
        g.check(where);  // p() and q() >= 1 after it
        check_qparams(l.input, where);
        shape = {shape[0], g.p(), g.q()};
        (void)detail::sample_numel(shape, where);
        break;
      }
      case Op::flatten: {
        EMBER_CHECK(l.dim == 1, where, ": only flatten(1) is supported");
        if (shape.size() == 3) {
          chw = shape;
          flat_codes_from_chw = codes;
        }
        shape = {detail::sample_numel(shape, where)};
        break;
      }
      case Op::batch_norm:
        EMBER_CHECK(shape[0] == l.in && l.out == l.in, where, ": normalizes ", l.in, " channels, gets ",
                    shape_str(shape));
        EMBER_CHECK(static_cast<std::int64_t>(l.weight_scale.size()) == l.in &&
                        static_cast<std::int64_t>(l.bias.size()) == l.in,
                    where, ": needs ", l.in, " scales and shifts");
        for (std::size_t c = 0; c < l.bias.size(); ++c)
          EMBER_CHECK(std::isfinite(l.weight_scale[c]) && std::isfinite(l.bias[c]), where, ": scale ",
                      l.weight_scale[c], " or shift ", l.bias[c], " of channel ", c, " is not finite");
        codes = false;
        break;
      case Op::log_softmax:
      case Op::softmax: {
        const auto rank = static_cast<std::int64_t>(shape.size()) + 1;  // with the batch
        EMBER_CHECK(l.dim >= -rank && l.dim < rank && l.dim != 0 && l.dim != -rank, where, ": dim ", l.dim,
                    " is not a dimension of a sample of ", shape_str(shape));
        codes = false;
        break;
      }
      case Op::sigmoid:
      case Op::tanh:
      case Op::gelu:
      case Op::leaky_relu:
      case Op::elu:
      case Op::silu:
        EMBER_CHECK(std::isfinite(l.alpha), where, ": alpha ", l.alpha, " is not finite");
        codes = false;
        break;
      case Op::relu:
      case Op::dropout: break;
    }
    out_shapes_[i] = shape;
    largest_sample_buffer_ = std::max(largest_sample_buffer_, detail::sample_numel(shape, where));
    if (l.op == Op::avg_pool2d || l.op == Op::adaptive_avg_pool2d) {
      if (codes) {  // on codes: requantized to what comes next (else pooled in float)
        auto plan = std::make_shared<Plan>();
        plan_output(i, *plan);
        codes = !plan->float_output;
        plans_[i] = plan;
      }
      continue;
    }
    if (!l.has_weights()) continue;

    // weights: checked, reordered to the order the layer's input codes come in, packed
    EMBER_CHECK(l.in > 0 && l.out > 0, where, ": ", l.in, " inputs and ", l.out, " outputs");
    const std::int64_t k =
        l.op == Op::conv2d
            ? detail::checked_product(detail::checked_product(l.in, l.kernel, where, "fan-in"),
                                      l.kernel, where, "fan-in")
            : l.in;
    EMBER_CHECK(static_cast<std::int64_t>(l.weight.size()) ==
                    detail::checked_product(l.out, k, where, "weight count"),
                where, ": ", l.weight.size(), " weights for ", l.out, " x ", k);
    EMBER_CHECK(static_cast<std::int64_t>(l.weight_scale.size()) == l.out &&
                    static_cast<std::int64_t>(l.bias.size()) == l.out,
                where, ": needs ", l.out, " weight scales and biases");
    check_qparams(l.input, where);
    for (std::int64_t o = 0; o < l.out; ++o) {
      const float s = l.weight_scale[static_cast<std::size_t>(o)], b = l.bias[static_cast<std::size_t>(o)];
      EMBER_CHECK(std::isfinite(s) && s > 0 && std::isfinite(b), where, ": bad scale ", s, " or bias ", b,
                  " of output channel ", o);
    }
    std::vector<std::int8_t> w(static_cast<std::size_t>(l.out * k));
    if (l.op == Op::conv2d) {  // (out, in, r, s) -> (out, r, s, in): channels-last patches
      const std::int64_t kk = l.kernel * l.kernel;
      for (std::int64_t o = 0; o < l.out; ++o)
        for (std::int64_t c = 0; c < l.in; ++c)
          for (std::int64_t rs = 0; rs < kk; ++rs)
            w[static_cast<std::size_t>((o * kk + rs) * l.in + c)] =
                l.weight[static_cast<std::size_t>((o * l.in + c) * kk + rs)];
    } else if (flat_codes_from_chw && !chw.empty()) {  // (c, h, w) columns -> (h, w, c)
      const std::int64_t C = chw[0], HW = chw[1] * chw[2];
      for (std::int64_t o = 0; o < l.out; ++o)
        for (std::int64_t c = 0; c < C; ++c)
          for (std::int64_t hw = 0; hw < HW; ++hw)
            w[static_cast<std::size_t>(o * k + hw * C + c)] = l.weight[static_cast<std::size_t>(o * k + c * HW + hw)];
    } else {
      w = l.weight;
    }
    for (std::int8_t v : w)
      EMBER_CHECK(v >= -kWeightMax, where, ": weight ", int{v}, " outside [-127, 127]");
    auto plan = std::make_shared<Plan>();
    plan->packed = pack_weights(w.data(), l.out, k, k);
    // the next step (dropout aside) a ReLU: fused; a later layer with input parameters reached
    // through steps that work on codes: the output becomes its input codes
    std::size_t j = i + 1;
    while (j < layers_.size() && layers_[j].op == Op::dropout) ++j;
    if (j < layers_.size() && layers_[j].op == Op::relu) {
      plan->relu = true;
      skip_[j] = true;
    }
    plan_output(i, *plan);
    const std::size_t np = static_cast<std::size_t>(plan->packed.np);
    plan->scale.assign(np, 0.0f);
    plan->bias.assign(np, 0.0f);
    for (std::int64_t o = 0; o < l.out; ++o) {
      const auto u = static_cast<std::size_t>(o);
      const float div = plan->float_output ? 1.0f : plan->out.scale;
      plan->scale[u] = l.input.scale * l.weight_scale[u] / div;
      plan->bias[u] = l.bias[u] / div;
    }
    plans_[i] = plan;
    codes = !plan->float_output;
    flat_codes_from_chw = false;
  }
}

// Float activations -> codes (channels-last for (C, H, W) samples).
inline void QuantizedModel::to_codes(Act& a, QParams qp) const {
  const Tensor<float> x = a.f.contiguous();
  const float* p = x.data();
  const std::int64_t per = x.numel() / std::max<std::int64_t>(a.n, 1);
  a.q.assign(static_cast<std::size_t>(x.numel() + 4), 0);
  std::uint8_t* q = a.q.data();
  const bool spatial = a.shape.size() == 3;
  const std::int64_t C = spatial ? a.shape[0] : 1, HW = spatial ? a.shape[1] * a.shape[2] : per;
  detail::check_finite_input(x);
  parallel_for(0, a.n, 16, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t s = lo; s < hi; ++s) detail::quantize_sample(p + s * per, C, HW, qp, q + s * per);
  });
  a.codes = true;
  a.qp = qp;
  a.f = Tensor<float>();
  a.chw.clear();
}

// Codes -> float activations in PyTorch's layout.
inline void QuantizedModel::to_float(Act& a) {
  std::vector<std::int64_t> full{a.n};
  full.insert(full.end(), a.shape.begin(), a.shape.end());
  a.f = Tensor<float>::empty(full);
  float* f = a.f.data();
  const std::int64_t per = a.f.numel() / std::max<std::int64_t>(a.n, 1);
  const std::vector<std::int64_t>& chw = a.shape.size() == 3 ? a.shape : a.chw;
  const std::int64_t C = chw.empty() ? 1 : chw[0], HW = chw.empty() ? per : chw[1] * chw[2];
  for (std::int64_t s = 0; s < a.n; ++s)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t j = 0; j < HW; ++j)
        f[s * per + c * HW + j] =
            static_cast<float>(a.q[static_cast<std::size_t>(s * per + j * C + c)] - a.qp.zero_point) * a.qp.scale;
  a.codes = false;
  a.q.clear();
  a.chw.clear();
}

namespace detail {

// One image's convolution: channels-last codes (H, W, C) in, the layer's output rows out.
inline void conv_image(const QLayer& l, const PackedWeights& w, const Epilogue& e, const std::uint8_t* img,
                       std::int64_t H, std::int64_t W, std::int64_t OH, std::int64_t OW, std::uint8_t pad,
                       std::vector<std::uint8_t>& cols, void* out, Int8Kernel kernel) {
  const std::int64_t C = l.in, kp = w.kp, M = OH * OW;
  cols.resize(static_cast<std::size_t>(M * kp));
  for (std::int64_t oh = 0; oh < OH; ++oh)
    for (std::int64_t ow = 0; ow < OW; ++ow) {
      std::uint8_t* row = cols.data() + (oh * OW + ow) * kp;
      for (std::int64_t r = 0; r < l.kernel; ++r) {
        const std::int64_t ih = oh * l.stride - l.padding + r * l.dilation;
        const std::int64_t iw0 = ow * l.stride - l.padding;
        std::uint8_t* dst = row + r * l.kernel * C;
        if (ih < 0 || ih >= H) {
          std::memset(dst, pad, static_cast<std::size_t>(l.kernel * C));
        } else if (l.dilation == 1 && iw0 >= 0 && iw0 + l.kernel <= W) {
          const std::uint8_t* src = img + (ih * W + iw0) * C;
          if (l.kernel * C <= 16) {  // a few bytes (a first layer): no memcpy call
            for (std::int64_t b = 0; b < l.kernel * C; ++b) dst[b] = src[b];
          } else {
            std::memcpy(dst, src, static_cast<std::size_t>(l.kernel * C));
          }
        } else {
          for (std::int64_t t = 0; t < l.kernel; ++t) {
            const std::int64_t iw = iw0 + t * l.dilation;
            if (iw < 0 || iw >= W)
              std::memset(dst + t * C, pad, static_cast<std::size_t>(C));
            else
              std::memcpy(dst + t * C, img + (ih * W + iw) * C, static_cast<std::size_t>(C));
          }
        }
      }
      for (std::int64_t b = w.k; b < kp; ++b) row[b] = 0;
    }
  gemm_u8s8(M, cols.data(), kp, w, e, out, l.out, kernel);
}

// One image's max-pooling of channels-last codes. Codes are >= 0 and every window holds at
// least one input, so 0 starts the max.
inline void pool_image(const QLayer& l, const std::uint8_t* in, std::int64_t C, std::int64_t H, std::int64_t W,
                       std::int64_t OH, std::int64_t OW, std::uint8_t* out) {
  std::memset(out, 0, static_cast<std::size_t>(OH * OW * C));
  for (std::int64_t oh = 0; oh < OH; ++oh)
    for (std::int64_t ow = 0; ow < OW; ++ow) {
      std::uint8_t* __restrict dst = out + (oh * OW + ow) * C;
      for (std::int64_t r = 0; r < l.kernel; ++r) {
        const std::int64_t ih = oh * l.stride - l.padding + r;
        if (ih < 0 || ih >= H) continue;
        for (std::int64_t t = 0; t < l.kernel; ++t) {
          const std::int64_t iw = ow * l.stride - l.padding + t;
          if (iw < 0 || iw >= W) continue;
          const std::uint8_t* __restrict src = in + (ih * W + iw) * C;
          for (std::int64_t c = 0; c < C; ++c) dst[c] = std::max(dst[c], src[c]);
        }
      }
    }
}

// One image's average pooling of channels-last codes (input parameters in_qp): each window's
// codes summed exactly, the mean (padding counts as the value 0, code in_qp.zero_point)
// dequantized, then written as float (out_f) or as codes of out_qp (out_q). g holds the
// image's h and w; sums has C entries.
inline void avg_pool_image(const Pool2dParams& g, const std::uint8_t* in, std::int64_t C, QParams in_qp,
                           std::uint8_t* out_q, float* out_f, QParams out_qp, std::vector<std::int64_t>& sums) {
  const std::int64_t P = g.p(), Q = g.q();
  sums.assign(static_cast<std::size_t>(C), 0);
  for (std::int64_t oh = 0; oh < P; ++oh)
    for (std::int64_t ow = 0; ow < Q; ++ow) {
      const Pool2dParams::Window win = g.window(oh, ow);
      std::fill(sums.begin(), sums.end(), 0);
      for (std::int64_t ih = win.h0; ih < win.h1; ++ih)
        for (std::int64_t iw = win.w0; iw < win.w1; ++iw) {
          const std::uint8_t* __restrict src = in + (ih * g.w + iw) * C;
          for (std::int64_t c = 0; c < C; ++c) sums[static_cast<std::size_t>(c)] += src[c];
        }
      const std::int64_t cells = (win.h1 - win.h0) * (win.w1 - win.w0);
      const double k = static_cast<double>(in_qp.scale) / static_cast<double>(win.divisor);
      const std::int64_t at = (oh * Q + ow) * C;
      for (std::int64_t c = 0; c < C; ++c) {
        const auto v = static_cast<float>(
            static_cast<double>(sums[static_cast<std::size_t>(c)] - cells * in_qp.zero_point) * k);
        if (out_f != nullptr)
          out_f[at + c] = v;
        else
          out_q[at + c] = quantize_value(v, out_qp);
      }
    }
}

// Batch norm in float on (N, C, ...) activations: x * scale[c] + shift[c].
inline Tensor<float> channel_affine(const Tensor<float>& x, const std::vector<float>& scale,
                                    const std::vector<float>& shift) {
  Tensor<float> y = x.contiguous().clone();
  const std::int64_t n = y.size(0), c = y.size(1), per = y.numel() / std::max<std::int64_t>(n * c, 1);
  float* p = y.data();
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t ch = 0; ch < c; ++ch) {
      const float a = scale[static_cast<std::size_t>(ch)], b = shift[static_cast<std::size_t>(ch)];
      float* row = p + (s * c + ch) * per;
      for (std::int64_t j = 0; j < per; ++j) row[j] = row[j] * a + b;
    }
  return y;
}

}  // namespace detail

// Runs layers first, first + 1, ... that work on images (conv2d, max and average pooling,
// relu, dropout)
// image by image, each image's activations staying in a thread's own buffers (in cache) from
// the first layer to the last; stops before anything else. Returns the index after the last
// layer run.
inline std::size_t QuantizedModel::run_spatial(std::size_t first, Act& a) const {
  using Op = nn::Step::Op;
  struct Stage {
    const QLayer* layer;
    const Plan* plan;
    std::vector<std::int64_t> in_shape, out_shape;  // (C, H, W)
    Epilogue e;
  };
  std::vector<Stage> stages;
  std::vector<std::int64_t> shape = a.shape;
  QParams qp = a.codes ? a.qp : layers_[first].input;
  std::size_t i = first;
  bool float_out = false;
  for (; i < layers_.size() && !float_out; ++i) {
    if (skip_[i]) continue;
    const QLayer& l = layers_[i];
    const bool avg = l.op == Op::avg_pool2d || l.op == Op::adaptive_avg_pool2d;
    if (l.op != Op::conv2d && l.op != Op::max_pool2d && l.op != Op::relu && l.op != Op::dropout && !avg) break;
    Stage st{&l, plans_[i].get(), shape, out_shapes_[i], {}};
    if (l.op == Op::conv2d || avg) {
      const Plan& p = *plans_[i];
      if (l.op == Op::conv2d)
        st.e = Epilogue{p.scale.data(), p.bias.data(), qp.zero_point, p.relu, p.float_output,
                        p.float_output ? 0 : p.out.zero_point};
      float_out = p.float_output;
      if (!float_out) qp = p.out;
    }
    shape = st.out_shape;
    stages.push_back(std::move(st));
  }
  const std::int64_t in_per = a.shape[0] * a.shape[1] * a.shape[2];
  const std::int64_t out_per = shape[0] * shape[1] * shape[2];
  std::vector<std::uint8_t> out_q;
  Tensor<float> out_f;
  if (float_out)
    out_f = Tensor<float>::empty({a.n, shape[1], shape[2], shape[0]});
  else
    out_q.assign(static_cast<std::size_t>(a.n * out_per + 4), 0);
  const bool from_float = !a.codes;
  const Tensor<float> xf = from_float ? a.f.contiguous() : Tensor<float>();
  if (from_float) detail::check_finite_input(xf);
  const QParams in_qp = a.codes ? a.qp : layers_[first].input;
  const Int8Kernel kernel = int8_kernel();
  parallel_for(0, a.n, 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<std::uint8_t> buf[2], cols;
    std::vector<std::int64_t> sums;
    for (std::int64_t s = lo; s < hi; ++s) {
      const std::uint8_t* cur = nullptr;
      int next = 0;
      if (from_float) {  // (C, H, W) floats -> (H, W, C) codes
        buf[0].resize(static_cast<std::size_t>(in_per + 4));
        detail::quantize_sample(xf.data() + s * in_per, a.shape[0], a.shape[1] * a.shape[2], in_qp, buf[0].data());
        cur = buf[0].data();
        next = 1;
      } else {
        cur = a.q.data() + s * in_per;
      }
      QParams cur_qp = in_qp;
      for (std::size_t t = 0; t < stages.size(); ++t) {
        const Stage& st = stages[t];
        const bool last = t + 1 == stages.size();
        const std::int64_t n_out = st.out_shape[0] * st.out_shape[1] * st.out_shape[2];
        std::uint8_t* dst = nullptr;
        if (!last) {
          buf[next].resize(static_cast<std::size_t>(n_out + 4));
          dst = buf[next].data();
        } else if (!float_out) {
          dst = out_q.data() + s * out_per;
        }
        const QLayer& l = *st.layer;
        switch (l.op) {
          case Op::conv2d: {
            void* o = float_out && last ? static_cast<void*>(out_f.data() + s * out_per) : static_cast<void*>(dst);
            detail::conv_image(l, st.plan->packed, st.e, cur, st.in_shape[1], st.in_shape[2], st.out_shape[1],
                               st.out_shape[2], static_cast<std::uint8_t>(cur_qp.zero_point), cols, o, kernel);
            if (!st.plan->float_output) cur_qp = st.plan->out;
            break;
          }
          case Op::max_pool2d:
            detail::pool_image(l, cur, st.in_shape[0], st.in_shape[1], st.in_shape[2], st.out_shape[1],
                               st.out_shape[2], dst);
            break;
          case Op::avg_pool2d:
          case Op::adaptive_avg_pool2d: {
            Pool2dParams g = l.pool;
            g.planes = st.in_shape[0];
            g.h = st.in_shape[1];
            g.w = st.in_shape[2];
            const Plan& p = *st.plan;
            float* of = p.float_output ? out_f.data() + s * out_per : nullptr;
            detail::avg_pool_image(g, cur, st.in_shape[0], cur_qp, dst, of, p.out, sums);
            if (!p.float_output) cur_qp = p.out;
            break;
          }
          default: {  // relu on codes: max with the zero point; dropout: a copy
            const auto zp = static_cast<std::uint8_t>(l.op == Op::relu ? cur_qp.zero_point : 0);
            for (std::int64_t k = 0; k < n_out; ++k) dst[k] = std::max(cur[k], zp);
            break;
          }
        }
        if (!last) {
          cur = dst;
          next = 1 - next;
        }
      }
    }
  });
  a.shape = shape;
  a.chw.clear();
  if (float_out) {
    a.f = out_f.permute({0, 3, 1, 2}).contiguous();
    a.codes = false;
    a.q.clear();
  } else {
    a.q = std::move(out_q);
    a.qp = qp;
    a.codes = true;
    a.f = Tensor<float>();
  }
  return i;
}

inline void QuantizedModel::run_linear(const QLayer& l, const Plan& p, Act& a) const {
  const std::int64_t K = l.in, N = l.out;
  std::vector<std::uint8_t> out_q;
  Tensor<float> out_f;
  if (p.float_output)
    out_f = Tensor<float>::empty({a.n, N});
  else
    out_q.assign(static_cast<std::size_t>(a.n * N + 4), 0);
  Epilogue e{p.scale.data(), p.bias.data(), a.qp.zero_point, p.relu, p.float_output,
             p.float_output ? 0 : p.out.zero_point};
  const std::uint8_t* in = a.q.data();
  const Int8Kernel kernel = int8_kernel();
  parallel_for(0, a.n, 16, [&](std::int64_t lo, std::int64_t hi) {
    void* out = p.float_output ? static_cast<void*>(out_f.data() + lo * N)
                               : static_cast<void*>(out_q.data() + lo * N);
    gemm_u8s8(hi - lo, in + lo * K, K, p.packed, e, out, N, kernel);
  });
  a.shape = {N};
  a.chw.clear();
  if (p.float_output) {
    a.f = out_f;
    a.codes = false;
    a.q.clear();
  } else {
    a.q = std::move(out_q);
    a.qp = p.out;
  }
}

inline Tensor<float> QuantizedModel::forward(const Tensor<float>& x) const {
  using Op = nn::Step::Op;
  EMBER_CHECK(x.device().is_cpu(), "quantized forward: the input is on ", x.device().str(),
              "; int8 inference runs on the CPU");
  EMBER_CHECK(x.dim() == static_cast<std::int64_t>(input_shape_.size()) + 1 &&
                  std::equal(input_shape_.begin(), input_shape_.end(), x.shape().begin() + 1),
              "quantized forward: input ", shape_str(x.shape()), " does not match the model's [N, ",
              shape_str(input_shape_).substr(1));
  (void)detail::checked_product(x.size(0), largest_sample_buffer_, "quantized forward",
                                "samples times the largest buffer of one sample");
  Act a;
  a.n = x.size(0);
  a.f = x;
  a.shape = input_shape_;
  for (std::size_t i = 0; i < layers_.size();) {
    if (skip_[i]) {
      ++i;
      continue;
    }
    const QLayer& l = layers_[i];
    const bool pool = l.op == Op::max_pool2d || l.op == Op::avg_pool2d || l.op == Op::adaptive_avg_pool2d;
    if (l.op == Op::conv2d || (a.codes && a.shape.size() == 3 && pool)) {
      i = run_spatial(i, a);
      continue;
    }
    switch (l.op) {
      case Op::linear:
        if (!a.codes) to_codes(a, l.input);
        run_linear(l, *plans_[i], a);
        break;
      case Op::relu:
        if (a.codes) {
          const auto zp = static_cast<std::uint8_t>(a.qp.zero_point);
          for (std::uint8_t& v : a.q) v = std::max(v, zp);
        } else {
          a.f = relu(a.f);
        }
        break;
      case Op::max_pool2d:  // on float activations
        a.f = max_pool2d(a.f, l.kernel, l.stride, l.padding);
        a.shape = {a.f.size(1), a.f.size(2), a.f.size(3)};
        break;
      case Op::flatten: {
        if (a.codes) {
          if (a.shape.size() == 3) a.chw = a.shape;
        } else {
          a.f = a.f.flatten(1);
        }
        std::int64_t features = 1;
        for (const std::int64_t d : a.shape) features *= d;
        a.shape = {features};
        break;
      }
      case Op::batch_norm:
        if (a.codes) to_float(a);
        a.f = detail::channel_affine(a.f, l.weight_scale, l.bias);
        break;
      case Op::conv2d:
      case Op::dropout: break;
      default:  // no int8 form (or average pooling of float activations): in float
        if (a.codes) to_float(a);
        a.f = nn::run_step(float_step(l), a.f);
        a.shape.assign(a.f.shape().begin() + 1, a.f.shape().end());
        break;
    }
    ++i;
  }
  if (a.codes) to_float(a);
  return a.f;
}

// ---- calibration and quantization ------------------------------------------------------------

/// quantize()'s options when calibrating from a DataLoader.
struct QuantizeOptions {
  std::int64_t batches = 20;  ///< calibration batches drawn from the loader
};

/// Per layer with input parameters (conv2d, linear, average pooling): the range of its input over
/// the calibration batches.
struct Calibration {
  /// per step; only the layers with input parameters are meaningful
  /// @{
  std::vector<float> lo, hi;
  /// @}
  /// The number of samples calibrated on.
  std::int64_t samples = 0;
};

namespace detail {
inline bool calibrated(nn::Step::Op op) {
  using Op = nn::Step::Op;
  return op == Op::conv2d || op == Op::linear || op == Op::avg_pool2d || op == Op::adaptive_avg_pool2d;
}
}  // namespace detail

/// Runs the steps (eval mode) on each batch and records the range of every conv2d, linear and
/// average pooling input.
[[nodiscard]] inline Calibration calibrate(const std::vector<nn::Step>& steps,
                                           const std::vector<Tensor<float>>& batches) {
  Calibration c;
  c.lo.assign(steps.size(), 0.0f);
  c.hi.assign(steps.size(), 0.0f);
  std::vector<bool> seen(steps.size(), false);
  NoGradGuard no_grad;
  for (const Tensor<float>& b : batches) {
    (void)nn::run_steps(steps, b, [&](std::size_t i, const Tensor<float>& h) {
      if (!detail::calibrated(steps[i].op)) return;
      const Tensor<float> hc = h.contiguous();
      const float* p = hc.data();
      for (std::int64_t k = 0; k < hc.numel(); ++k) {
        EMBER_CHECK(std::isfinite(p[k]), "calibrate: the input of '", steps[i].name, "' has a non-finite value (",
                    p[k], ")");
        c.lo[i] = seen[i] ? std::min(c.lo[i], p[k]) : p[k];
        c.hi[i] = seen[i] ? std::max(c.hi[i], p[k]) : p[k];
        seen[i] = true;
      }
    });
    c.samples += b.size(0);
  }
  return c;
}

/// Quantizes a float model (on the CPU, listing its steps) with calibration batches of its input.
/// Batch norms right after a conv2d or linear are folded into it first (nn::fold_batch_norm).
/// Refused, naming the layer: a model that does not list its steps, and steps the int8 model
/// cannot lay out (e.g. a linear on a sample that is not (features), a flatten from a dim
/// other than 1, a conv2d on one that is not (C, H, W)).
[[nodiscard]] inline QuantizedModel quantize(const nn::Module& model, const std::vector<Tensor<float>>& batches) {
  using Op = nn::Step::Op;
  EMBER_CHECK(!batches.empty(), "quantize: needs at least one calibration batch");
  EMBER_CHECK(model.device().is_cpu(), "quantize: the model is on ", model.device().str(),
              "; move it to the CPU first");
  const std::vector<nn::Step> steps = nn::fold_batch_norm(model.steps());
  const Calibration cal = calibrate(steps, batches);
  std::vector<QLayer> layers;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const nn::Step& s = steps[i];
    QLayer l;
    l.op = s.op;
    l.name = s.name.empty() ? nn::op_name(s.op) : s.name;
    l.kernel = s.kernel;
    l.stride = s.stride;
    l.padding = s.padding;
    l.dilation = s.dilation;
    l.dim = s.dim;
    l.alpha = s.alpha;
    l.approximate_tanh = s.approximate_tanh;
    l.pool = s.pool;
    if (s.op == Op::conv2d || s.op == Op::linear) {
      EMBER_CHECK(s.weight.defined() && s.weight.dim() == (s.op == Op::conv2d ? 4 : 2), "quantize: ",
                  nn::describe(s), " has no weight of the right shape");
      l.out = s.weight.size(0);
      l.in = s.weight.size(1);
      if (s.op == Op::conv2d) l.kernel = s.weight.size(2);
      quantize_weights(s.weight, l);
      l.bias = s.bias.defined() ? s.bias.contiguous().to_vector()
                                : std::vector<float>(static_cast<std::size_t>(l.out), 0.0f);
    } else if (s.op == Op::batch_norm) {  // not folded: x * scale + shift in float
      EMBER_CHECK(s.running_mean.defined() && s.running_var.defined(), "quantize: ", nn::describe(s),
                  " has no running statistics");
      const std::vector<float> mean = s.running_mean.contiguous().to_vector();
      const std::vector<float> var = s.running_var.contiguous().to_vector();
      const std::size_t c = mean.size();
      const std::vector<float> gamma = s.weight.defined() ? s.weight.contiguous().to_vector() : std::vector<float>(c, 1.0f);
      const std::vector<float> beta = s.bias.defined() ? s.bias.contiguous().to_vector() : std::vector<float>(c, 0.0f);
      l.in = l.out = static_cast<std::int64_t>(c);
      l.weight_scale.resize(c);
      l.bias.resize(c);
      for (std::size_t k = 0; k < c; ++k) {
        const double a = static_cast<double>(gamma[k]) / std::sqrt(static_cast<double>(var[k]) + s.eps);
        l.weight_scale[k] = static_cast<float>(a);
        l.bias[k] = static_cast<float>(beta[k] - mean[k] * a);
      }
    }
    if (l.has_input_qparams()) l.input = choose_qparams(cal.lo[i], cal.hi[i]);
    layers.push_back(std::move(l));
  }
  std::vector<std::int64_t> input(batches.front().shape().begin() + 1, batches.front().shape().end());
  return QuantizedModel(std::move(layers), std::move(input),
                        {{"calibration_samples", std::to_string(cal.samples)},
                         {"source_model", model.type_name()}});
}

/// Calibrates on the first `options.batches` batches of a loader (its order: use an unshuffled
/// loader over training images for a reproducible model).
[[nodiscard]] inline QuantizedModel quantize(const nn::Module& model, data::DataLoader& loader,
                                             QuantizeOptions options = {}) {
  EMBER_CHECK(options.batches > 0, "quantize: calibration batches must be positive");
  std::vector<Tensor<float>> batches;
  for (const data::Batch& b : loader.epoch()) {
    if (static_cast<std::int64_t>(batches.size()) == options.batches) break;
    batches.push_back(b.images);
  }
  return quantize(model, batches);
}

}  // namespace ember::quant
