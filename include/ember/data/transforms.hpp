#pragma once
// Image transforms composed as torchvision's are (torchvision.transforms on tensor images):
//
//   using namespace ember::data::transforms;
//   Transform t = Compose({RandomCrop(28, {.padding = 4}), RandomHorizontalFlip(),
//                          ToTensor(), Normalize({0.2860}, {0.3530})});
//
// An image is a tensor (C, H, W): uint8 pixels as a dataset reads them (torchvision's PIL
// image) or float after ToTensor. The geometric transforms take either and keep its type;
// ToTensor takes uint8 and Normalize float, as in torchvision. The arithmetic and coordinates
// are torchvision's tensor path (data/image_ops.hpp says how, and where it rounds).
//
// Randomness: a random transform draws from the RandomStream it is given, the sample's own
// stream, which the DataLoader derives from its generator's seed, the epoch and the sample's
// index (dataset.hpp). So a sample's augmentation does not depend on which worker thread
// makes it, nor on the other samples, and a run is reproducible from its seed. The draws
// have torchvision's distributions (torch.randint for a crop's corner, torch.rand(1) < p for
// a flip, uniform angles), not its numbers: those come from Philox, not from torch's MT19937.

#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/image_ops.hpp"

namespace ember::data {

/// An image (C, H, W): uint8 pixels or float values.
using Image = std::variant<Tensor<std::uint8_t>, Tensor<float>>;

/// The image's shape (C, H, W); empty when undefined.
[[nodiscard]] inline Shape image_shape(const Image& img) {
  return std::visit([](const auto& t) { return t.defined() ? t.shape() : Shape{}; }, img);
}
/// True for a float image, false for uint8.
[[nodiscard]] inline bool image_is_float(const Image& img) {
  return std::holds_alternative<Tensor<float>>(img);
}
/// "uint8 (1, 28, 28)" or "float (3, 32, 32)", for messages.
[[nodiscard]] inline std::string image_str(const Image& img) {
  return (image_is_float(img) ? "float " : "uint8 ") + shape_str(image_shape(img));
}

/// One sample's random numbers: Philox blocks (key, counter = sample, stream = draw number),
/// one block per draw. Two streams with different keys or samples never share a block.
class RandomStream {
 public:
  /// The stream of sample `sample` under key `key` (the DataLoader derives the key from its seed
  /// and the epoch).
  RandomStream(std::uint64_t key, std::uint64_t sample) : key_(key), sample_(sample) {}

  /// Uniform in [0, 1), 53 bits.
  double uniform() {
    const Philox::Block b = next_block();
    return Philox::to_double(b[0], b[1]);
  }
  /// Uniform in [low, high), as torch.empty(1).uniform_(low, high).
  double uniform(double low, double high) { return low + (high - low) * uniform(); }
  /// Uniform integer in [low, high), as torch.randint(low, high); needs low < high.
  std::int64_t randint(std::int64_t low, std::int64_t high) {
    EMBER_CHECK(low < high, "RandomStream::randint: empty range [", low, ", ", high, ")");
    const Philox::Block b = next_block();
    __extension__ using U128 = unsigned __int128;
    const std::uint64_t bits = (std::uint64_t{b[0]} << 32) | b[1];
    const auto n = static_cast<std::uint64_t>(high - low);
    return low + static_cast<std::int64_t>((static_cast<U128>(bits) * n) >> 64);
  }
  /// Draws made so far.
  [[nodiscard]] std::uint32_t draws() const { return next_; }

 private:
  Philox::Block next_block() { return Philox::block(key_, sample_, next_++); }
  std::uint64_t key_, sample_;
  std::uint32_t next_ = 0;
};

namespace transforms {

/// What a transform implements. Transforms are immutable once made and called from several
/// threads at once: apply() must not change the object.
class TransformBase {
 public:
  virtual ~TransformBase() = default;
  /// The transformed image; may draw from `rng`. Throws ember::Error for an image it cannot take
  /// (wrong dtype or rank).
  [[nodiscard]] virtual Image apply(Image image, RandomStream& rng) const = 0;
  /// Whether apply() draws from rng.
  [[nodiscard]] virtual bool random() const { return false; }
  /// torchvision's repr, e.g. "RandomHorizontalFlip(p=0.5)".
  [[nodiscard]] virtual std::string repr() const = 0;

  /// t(image, rng), and t(image) with the stream of key 0 for sample 0.
  Image operator()(Image image, RandomStream& rng) const { return apply(std::move(image), rng); }
  /// t(image) with the stream of key 0 for sample 0.
  Image operator()(Image image) const {
    RandomStream rng(0, 0);
    return apply(std::move(image), rng);
  }
};

/// Any transform, held by value (shared, immutable); the default is the identity.
class Transform {
 public:
  Transform() = default;
  /// Wraps a transform (Compose({ToTensor(), Normalize(...)}) converts each element).
  template <class T>
    requires std::derived_from<T, TransformBase>
  Transform(T t) : impl_(std::make_shared<const T>(std::move(t))) {}  // NOLINT: implicit

  /// The transformed image, drawing from `rng`; the identity when empty.
  Image operator()(Image image, RandomStream& rng) const {
    return impl_ ? impl_->apply(std::move(image), rng) : image;
  }
  /// With the stream of key 0 for sample 0: for a one-off call and for transforms that are
  /// not random.
  Image operator()(Image image) const {
    RandomStream rng(0, 0);
    return (*this)(std::move(image), rng);
  }
  /// False for the identity (default-constructed).
  [[nodiscard]] bool defined() const { return impl_ != nullptr; }
  /// Whether the transform draws random numbers.
  [[nodiscard]] bool random() const { return impl_ && impl_->random(); }
  /// torchvision's repr of the transform ("Identity()" when empty).
  [[nodiscard]] std::string repr() const { return impl_ ? impl_->repr() : "Identity()"; }

 private:
  std::shared_ptr<const TransformBase> impl_;
};

namespace detail {
template <class F>
[[nodiscard]] Image map_image(Image image, F&& f) {
  return std::visit([&](auto& t) -> Image { return f(t); }, image);
}
[[nodiscard]] inline std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
[[nodiscard]] inline std::array<std::int64_t, 3> dims_of(const Image& image, const char* op) {
  return std::visit([&](const auto& t) { return ::ember::data::detail::image_dims(t, op); },
                    image);
}
// F.pad(image, p, fill, mode).
[[nodiscard]] inline Image pad_image(Image image, const Padding& p, double fill,
                                     PaddingMode mode, const char* op) {
  const auto [C, H, W] = dims_of(image, op);
  check_padding(p, H, W, mode, op);
  return map_image(std::move(image), [&](const auto& t) {
    return image_window(t, -p.top, -p.left, H + p.top + p.bottom, W + p.left + p.right, mode,
                        fill, op);
  });
}
}  // namespace detail

/// Applies each transform in turn.
class Compose : public TransformBase {
 public:
  /// The transforms, applied in order (torchvision.transforms.Compose).
  Compose(std::vector<Transform> transforms) : transforms_(std::move(transforms)) {}  // NOLINT
  Image apply(Image image, RandomStream& rng) const override {
    for (const Transform& t : transforms_) image = t(std::move(image), rng);
    return image;
  }
  [[nodiscard]] bool random() const override {
    for (const Transform& t : transforms_)
      if (t.random()) return true;
    return false;
  }
  [[nodiscard]] std::string repr() const override {
    std::string s = "Compose(";
    for (const Transform& t : transforms_) s += "\n    " + t.repr();
    return s + "\n)";
  }
  /// The transforms, in order.
  [[nodiscard]] const std::vector<Transform>& transforms() const { return transforms_; }

 private:
  std::vector<Transform> transforms_;
};

/// Any function of an image (not random).
class Lambda : public TransformBase {
 public:
  /// Wraps f, which must not change shared state (it runs on several threads).
  explicit Lambda(std::function<Image(Image)> f) : f_(std::move(f)) {}
  Image apply(Image image, RandomStream&) const override { return f_(std::move(image)); }
  [[nodiscard]] std::string repr() const override { return "Lambda()"; }

 private:
  std::function<Image(Image)> f_;
};

/// uint8 pixels -> float in [0, 1]: v / 255 (in float, as torchvision's img.float().div(255)).
class ToTensor : public TransformBase {
 public:
  Image apply(Image image, RandomStream&) const override {
    const auto* px = std::get_if<Tensor<std::uint8_t>>(&image);
    EMBER_CHECK(px != nullptr, "ToTensor: expected a uint8 image, got ", image_str(image),
                " (it is float already)");
    (void)::ember::data::detail::image_dims(*px, "ToTensor");
    Tensor<float> out = Tensor<float>::empty(px->shape());
    const std::uint8_t* s = px->data();
    float* d = out.data();
    for (std::int64_t i = 0; i < out.numel(); ++i) d[i] = static_cast<float>(s[i]) / 255.0f;
    return out;
  }
  [[nodiscard]] std::string repr() const override { return "ToTensor()"; }
};

/// (x - mean[c]) / std[c] per channel, in float; mean and std hold one value per channel, or
/// one for all.
class Normalize : public TransformBase {
 public:
  /// One mean and std per channel, or one for all; throws for empty lists or a zero std.
  Normalize(std::vector<double> mean, std::vector<double> std)
      : mean_(std::move(mean)), std_(std::move(std)) {
    EMBER_CHECK(!mean_.empty() && !std_.empty(), "Normalize: mean and std must not be empty");
    for (double s : std_)
      EMBER_CHECK(static_cast<float>(s) != 0.0f, "Normalize: std evaluated to zero, leading to ",
                  "division by zero (std ", s, ")");
  }
  Image apply(Image image, RandomStream&) const override {
    const auto* x = std::get_if<Tensor<float>>(&image);
    EMBER_CHECK(x != nullptr, "Normalize: expected a float image, got ", image_str(image),
                " (put ToTensor() before Normalize)");
    const auto [C, H, W] = ::ember::data::detail::image_dims(*x, "Normalize");
    for (const auto* v : {&mean_, &std_})
      EMBER_CHECK(v->size() == 1 || static_cast<std::int64_t>(v->size()) == C, "Normalize: ",
                  v == &mean_ ? "mean" : "std", " has ", v->size(), " values for an image of ",
                  C, " channels");
    Tensor<float> out = Tensor<float>::empty({C, H, W});
    const float* s = x->data();
    float* d = out.data();
    for (std::int64_t c = 0; c < C; ++c) {
      const auto m = static_cast<float>(mean_[mean_.size() == 1 ? 0 : static_cast<std::size_t>(c)]);
      const auto sd = static_cast<float>(std_[std_.size() == 1 ? 0 : static_cast<std::size_t>(c)]);
      for (std::int64_t i = c * H * W; i < (c + 1) * H * W; ++i) d[i] = (s[i] - m) / sd;
    }
    return out;
  }
  [[nodiscard]] std::string repr() const override {
    auto list = [](const std::vector<double>& v) {
      std::string s = "[";
      for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + detail::num(v[i]);
      return s + "]";
    };
    return "Normalize(mean=" + list(mean_) + ", std=" + list(std_) + ")";
  }

 private:
  std::vector<double> mean_, std_;
};

/// Resizes to size = {h, w}, or, for one number, so that the smaller edge is that long and the
/// other int(size * long / short) (torchvision's rule). antialias=False semantics: a
/// downscale samples the two nearest pixels per axis instead of averaging over the area.
class Resize : public TransformBase {
 public:
  /// {h, w}, or {s} for the smaller edge; throws unless 1 or 2 positive sizes.
  Resize(std::vector<std::int64_t> size, Interpolation interpolation = Interpolation::bilinear)
      : size_(std::move(size)), interpolation_(interpolation) {
    EMBER_CHECK(size_.size() == 1 || size_.size() == 2, "Resize: size must hold 1 or 2 values, ",
                "got ", size_.size());
    for (auto s : size_) EMBER_CHECK(s > 0, "Resize: size must be positive, got ", s);
  }
  /// The smaller edge becomes `size`, the other keeps the aspect ratio (torchvision's int).
  Resize(std::int64_t size, Interpolation interpolation = Interpolation::bilinear)
      : Resize(std::vector<std::int64_t>{size}, interpolation) {}

  /// The output (h, w) for an input of h x w.
  [[nodiscard]] std::array<std::int64_t, 2> output_size(std::int64_t h, std::int64_t w) const {
    if (size_.size() == 2) return {size_[0], size_[1]};
    const std::int64_t shorter = std::min(h, w), longer = std::max(h, w);
    const std::int64_t new_short = size_[0];
    const auto new_long = static_cast<std::int64_t>(static_cast<double>(new_short) *
                                                    static_cast<double>(longer) /
                                                    static_cast<double>(shorter));
    return w <= h ? std::array{new_long, new_short} : std::array{new_short, new_long};
  }
  Image apply(Image image, RandomStream&) const override {
    const auto [C, H, W] = detail::dims_of(image, "Resize");
    const auto [h, w] = output_size(H, W);
    return detail::map_image(std::move(image), [&](const auto& t) {
      return image_resize(t, h, w, interpolation_);
    });
  }
  [[nodiscard]] std::string repr() const override {
    std::string s = "Resize(size=" + std::to_string(size_[0]);
    if (size_.size() == 2) s = "Resize(size=(" + std::to_string(size_[0]) + ", " +
                               std::to_string(size_[1]) + ")";
    return s + ", interpolation=" +
           (interpolation_ == Interpolation::bilinear ? "bilinear" : "nearest") +
           ", antialias=False)";
  }

 private:
  std::vector<std::int64_t> size_;
  Interpolation interpolation_;
};

/// The centre crop of `size`: top = round((H - h) / 2) (half to even, Python's round), left
/// likewise; a crop larger than the image pads it with zeros first, as torchvision does.
class CenterCrop : public TransformBase {
 public:
  /// The crop's size (h, w), or one number for a square; throws unless positive.
  CenterCrop(Size2 size) : size_(size) {  // NOLINT: implicit, as torchvision's int or (h, w)
    EMBER_CHECK(size.height > 0 && size.width > 0, "CenterCrop: size must be positive, got ",
                size.height, "x", size.width);
  }
  Image apply(Image image, RandomStream&) const override {
    auto [C, H, W] = detail::dims_of(image, "CenterCrop");
    const std::int64_t th = size_.height, tw = size_.width;
    if (tw > W || th > H) {
      const Padding p{tw > W ? (tw - W) / 2 : 0, th > H ? (th - H) / 2 : 0,
                      tw > W ? (tw - W + 1) / 2 : 0, th > H ? (th - H + 1) / 2 : 0};
      image = detail::map_image(std::move(image), [&](const auto& t) {
        return image_window(t, -p.top, -p.left, H + p.top + p.bottom, W + p.left + p.right,
                            PaddingMode::constant, 0.0, "CenterCrop");
      });
      H += p.top + p.bottom;
      W += p.left + p.right;
      if (H == th && W == tw) return image;
    }
    const auto top = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(H - th) / 2.0));
    const auto left = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(W - tw) / 2.0));
    return detail::map_image(std::move(image), [&](const auto& t) {
      return image_window(t, top, left, th, tw, PaddingMode::constant, 0.0, "CenterCrop");
    });
  }
  [[nodiscard]] std::string repr() const override {
    return "CenterCrop(size=(" + std::to_string(size_.height) + ", " +
           std::to_string(size_.width) + "))";
  }

 private:
  Size2 size_;
};

/// Pad's options, torchvision's keyword arguments.
struct PadOptions {
  /// The value of constant padding (a pixel value: 0..255 for uint8, any for float).
  double fill = 0;
  /// constant, edge, reflect or symmetric.
  PaddingMode padding_mode = PaddingMode::constant;
};

/// Pads each side (F.pad).
class Pad : public TransformBase {
 public:
  /// Pads each side by `padding` (one, two or four numbers, as torchvision's).
  Pad(Padding padding, PadOptions options = {}) : padding_(padding), options_(options) {
    check_padding(padding_, 1 << 30, 1 << 30, PaddingMode::constant, "Pad");
  }
  Image apply(Image image, RandomStream&) const override {
    return detail::pad_image(std::move(image), padding_, options_.fill, options_.padding_mode,
                             "Pad");
  }
  [[nodiscard]] std::string repr() const override {
    return "Pad(padding=(" + std::to_string(padding_.left) + ", " + std::to_string(padding_.top) +
           ", " + std::to_string(padding_.right) + ", " + std::to_string(padding_.bottom) +
           "), fill=" + detail::num(options_.fill) +
           ", padding_mode=" + padding_mode_name(options_.padding_mode) + ")";
  }

 private:
  Padding padding_;
  PadOptions options_;
};

/// RandomCrop's options, torchvision's keyword arguments.
struct RandomCropOptions {
  Padding padding{};  ///< applied first, as F.pad
  /// Pad an image smaller than the crop up to its size first.
  bool pad_if_needed = false;
  /// The value of constant padding.
  double fill = 0;
  /// constant, edge, reflect or symmetric.
  PaddingMode padding_mode = PaddingMode::constant;
};

/// Pads (if asked), then crops `size` at a uniformly random corner: top = randint(0, H - h + 1),
/// then left = randint(0, W - w + 1) (no draw when the image is exactly the size). The pad and
/// the crop are one pass (image_window), the same pixels as padding and then cropping.
class RandomCrop : public TransformBase {
 public:
  /// A random crop of `size` (h, w), after the optional padding; the corner drawn as torch.randint
  /// draws it.
  RandomCrop(Size2 size, RandomCropOptions options = {}) : size_(size), options_(options) {
    EMBER_CHECK(size.height > 0 && size.width > 0, "RandomCrop: size must be positive, got ",
                size.height, "x", size.width);
    check_padding(options_.padding, 1 << 30, 1 << 30, PaddingMode::constant, "RandomCrop");
  }
  Image apply(Image image, RandomStream& rng) const override {
    auto [C, H, W] = detail::dims_of(image, "RandomCrop");
    const std::int64_t th = size_.height, tw = size_.width;
    Padding p = options_.padding;
    check_padding(p, H, W, options_.padding_mode, "RandomCrop");
    std::int64_t ph = H + p.top + p.bottom, pw = W + p.left + p.right;
    if (options_.pad_if_needed && (pw < tw || ph < th)) {
      // torchvision pads again, (tw - W) on both the left and the right, then (th - H) on the
      // top and the bottom: materialise the first padding and pad the result.
      const double f = options_.fill;
      const PaddingMode m = options_.padding_mode;
      if (p.any()) image = detail::pad_image(std::move(image), p, f, m, "RandomCrop");
      if (pw < tw) image = detail::pad_image(std::move(image), Padding(tw - pw, 0), f, m,
                                             "RandomCrop");
      const auto d = detail::dims_of(image, "RandomCrop");
      if (d[1] < th) image = detail::pad_image(std::move(image), Padding(0, th - d[1]), f, m,
                                               "RandomCrop");
      const auto e = detail::dims_of(image, "RandomCrop");
      H = ph = e[1];
      W = pw = e[2];
      p = Padding{};
    }
    EMBER_CHECK(ph >= th && pw >= tw, "RandomCrop: required crop size (", th, ", ", tw,
                ") is larger than the input image size (", ph, ", ", pw, ")",
                p.any() ? " after padding" : "");
    std::int64_t top = 0, left = 0;
    if (!(ph == th && pw == tw)) {
      top = rng.randint(0, ph - th + 1);
      left = rng.randint(0, pw - tw + 1);
    }
    if (!p.any() && top == 0 && left == 0 && th == H && tw == W) return image;
    return detail::map_image(std::move(image), [&](const auto& t) {
      return image_window(t, top - p.top, left - p.left, th, tw, options_.padding_mode,
                          options_.fill, "RandomCrop");
    });
  }
  [[nodiscard]] bool random() const override { return true; }
  [[nodiscard]] std::string repr() const override {
    const Padding& p = options_.padding;
    return "RandomCrop(size=(" + std::to_string(size_.height) + ", " +
           std::to_string(size_.width) + "), padding=(" + std::to_string(p.left) + ", " +
           std::to_string(p.top) + ", " + std::to_string(p.right) + ", " +
           std::to_string(p.bottom) + "))";
  }

 private:
  Size2 size_;
  RandomCropOptions options_;
};

/// Mirrors the image left-right with probability p (one draw: uniform() < p).
class RandomHorizontalFlip : public TransformBase {
 public:
  /// p in [0, 1] (throws otherwise).
  explicit RandomHorizontalFlip(double p = 0.5) : p_(p) {
    EMBER_CHECK(p >= 0 && p <= 1, "RandomHorizontalFlip: p must be in [0, 1], got ", p);
  }
  Image apply(Image image, RandomStream& rng) const override {
    if (!(rng.uniform() < p_)) return image;
    return detail::map_image(std::move(image), [](const auto& t) { return image_flip(t, true); });
  }
  [[nodiscard]] bool random() const override { return true; }
  [[nodiscard]] std::string repr() const override {
    return "RandomHorizontalFlip(p=" + detail::num(p_) + ")";
  }

 private:
  double p_;
};

/// Mirrors the image top-bottom with probability p.
class RandomVerticalFlip : public TransformBase {
 public:
  /// p in [0, 1] (throws otherwise).
  explicit RandomVerticalFlip(double p = 0.5) : p_(p) {
    EMBER_CHECK(p >= 0 && p <= 1, "RandomVerticalFlip: p must be in [0, 1], got ", p);
  }
  Image apply(Image image, RandomStream& rng) const override {
    if (!(rng.uniform() < p_)) return image;
    return detail::map_image(std::move(image), [](const auto& t) { return image_flip(t, false); });
  }
  [[nodiscard]] bool random() const override { return true; }
  [[nodiscard]] std::string repr() const override {
    return "RandomVerticalFlip(p=" + detail::num(p_) + ")";
  }

 private:
  double p_;
};

/// A range [low, high] of degrees: one number d means [-d, d] (d must not be negative).
struct Degrees {
  /// The range, in degrees.
  /// @{
  double low = 0, high = 0;
  /// @}
  /// [-d, d]; d must not be negative.
  Degrees(double d) : low(-d), high(d) {  // NOLINT: implicit, as torchvision's number
    EMBER_CHECK(d >= 0, "degrees: a single number must not be negative, got ", d);
  }
  /// [lo, hi]; throws if lo > hi.
  Degrees(double lo, double hi) : low(lo), high(hi) {
    EMBER_CHECK(lo <= hi, "degrees: the range [", lo, ", ", hi, "] is empty");
  }
};

/// RandomAffine's options, torchvision's keyword arguments (unset: not drawn).
struct AffineOptions {
  std::optional<std::array<double, 2>> translate{};  ///< max |tx| / W and |ty| / H, each in [0, 1]
  std::optional<std::array<double, 2>> scale{};    ///< [low, high], both positive
  std::vector<double> shear{};  ///< {s} -> x in [-s, s]; {a, b} -> x; {a, b, c, d} -> x and y
  /// nearest or bilinear.
  Interpolation interpolation = Interpolation::nearest;
  /// The value of pixels from outside the image.
  double fill = 0;
  std::optional<std::array<double, 2>> center{};  ///< (x, y) in pixels; default the centre
};

/// F.affine with parameters drawn as RandomAffine.get_params draws them: angle uniform in
/// degrees; tx = round(uniform(-translate[0] * W, translate[0] * W)) (half to even), ty likewise;
/// scale uniform; shear x (and y) uniform. Draws only for the parameters that are set.
class RandomAffine : public TransformBase {
 public:
  /// Angles uniform in `degrees`; throws for a translate outside [0, 1], a non-positive scale or a
  /// shear of the wrong length.
  RandomAffine(Degrees degrees, AffineOptions options = {})
      : degrees_(degrees), options_(std::move(options)) {
    if (options_.translate)
      for (double t : *options_.translate)
        EMBER_CHECK(t >= 0 && t <= 1, "RandomAffine: translation values must be in [0, 1], got ",
                    t);
    if (options_.scale)
      for (double s : *options_.scale)
        EMBER_CHECK(s > 0, "RandomAffine: scale values must be positive, got ", s);
    const auto& sh = options_.shear;
    EMBER_CHECK(sh.empty() || sh.size() == 1 || sh.size() == 2 || sh.size() == 4,
                "RandomAffine: shear must hold 1, 2 or 4 values, got ", sh.size());
    if (sh.size() == 1)
      EMBER_CHECK(sh[0] >= 0, "RandomAffine: a single shear must not be negative, got ", sh[0]);
  }
  Image apply(Image image, RandomStream& rng) const override {
    const auto [C, H, W] = detail::dims_of(image, "RandomAffine");
    const double angle = rng.uniform(degrees_.low, degrees_.high);
    std::array<double, 2> t{0, 0};
    if (options_.translate) {
      const double dx = (*options_.translate)[0] * static_cast<double>(W);
      const double dy = (*options_.translate)[1] * static_cast<double>(H);
      t[0] = std::nearbyint(rng.uniform(-dx, dx));
      t[1] = std::nearbyint(rng.uniform(-dy, dy));
    }
    const double scale =
        options_.scale ? rng.uniform((*options_.scale)[0], (*options_.scale)[1]) : 1.0;
    std::array<double, 2> shear{0, 0};
    const auto& sh = options_.shear;
    if (sh.size() == 1) shear[0] = rng.uniform(-sh[0], sh[0]);
    if (sh.size() >= 2) shear[0] = rng.uniform(sh[0], sh[1]);
    if (sh.size() == 4) shear[1] = rng.uniform(sh[2], sh[3]);
    const auto m = inverse_affine_matrix(center_of(H, W), angle, t, scale, shear);
    return detail::map_image(std::move(image), [&](const auto& img) {
      return image_affine(img, m, options_.interpolation, options_.fill);
    });
  }
  [[nodiscard]] bool random() const override { return true; }
  [[nodiscard]] std::string repr() const override {
    return "RandomAffine(degrees=[" + detail::num(degrees_.low) + ", " +
           detail::num(degrees_.high) + "])";
  }

 private:
  [[nodiscard]] std::array<double, 2> center_of(std::int64_t H, std::int64_t W) const {
    if (!options_.center) return {0, 0};
    return {(*options_.center)[0] - 0.5 * static_cast<double>(W),
            (*options_.center)[1] - 0.5 * static_cast<double>(H)};
  }
  Degrees degrees_;
  AffineOptions options_;
};

/// RandomRotation's options, torchvision's keyword arguments.
struct RotationOptions {
  /// nearest or bilinear.
  Interpolation interpolation = Interpolation::nearest;
  /// The value of pixels from outside the image.
  double fill = 0;
  std::optional<std::array<double, 2>> center{};  ///< (x, y) in pixels; default the centre
};

/// F.rotate by an angle uniform in degrees, counter-clockwise, keeping the image's size
/// (expand=False).
class RandomRotation : public TransformBase {
 public:
  /// Angles uniform in `degrees` (counter-clockwise).
  RandomRotation(Degrees degrees, RotationOptions options = {})
      : degrees_(degrees), options_(options) {}
  Image apply(Image image, RandomStream& rng) const override {
    const double angle = rng.uniform(degrees_.low, degrees_.high);
    return rotate(std::move(image), angle);
  }
  /// F.rotate(image, angle): the rotation itself, for a given angle.
  [[nodiscard]] Image rotate(Image image, double angle) const {
    const auto [C, H, W] = detail::dims_of(image, "RandomRotation");
    std::array<double, 2> c{0, 0};
    if (options_.center)
      c = {(*options_.center)[0] - 0.5 * static_cast<double>(W),
           (*options_.center)[1] - 0.5 * static_cast<double>(H)};
    const auto m = inverse_affine_matrix(c, -angle, {0, 0}, 1.0, {0, 0});
    return detail::map_image(std::move(image), [&](const auto& img) {
      return image_affine(img, m, options_.interpolation, options_.fill);
    });
  }
  [[nodiscard]] bool random() const override { return true; }
  [[nodiscard]] std::string repr() const override {
    return "RandomRotation(degrees=[" + detail::num(degrees_.low) + ", " +
           detail::num(degrees_.high) + "])";
  }

 private:
  Degrees degrees_;
  RotationOptions options_;
};

}  // namespace transforms
}  // namespace ember::data
