#pragma once
// Comparisons into masks (eq, ne, lt, le, gt, ge, against a tensor or a scalar, with
// broadcasting), where and masked_fill on those masks, clamp / clamp_min / clamp_max (with
// scalar or tensor bounds) and maximum / minimum, with PyTorch's names and semantics. CPU
// kernels in backend/cpu/compare.hpp, CUDA kernels in kernels/compare.cuh.
//
// A mask is a Tensor<std::uint8_t> holding 0 or 1 (ember has no bool dtype; where and masked_fill
// read any nonzero byte as true). Comparisons have no gradient, like PyTorch's bool results.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include "ember/backend/cpu/compare.hpp"
#include "ember/backend/dispatch.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"

namespace ember {

namespace op {
struct Compare {
  static constexpr const char* name = "comparison";
  template <class T>
  static constexpr auto cpu = &ember::cpu::compare<T>;
};
struct Where {
  static constexpr const char* name = "where";
  template <class T>
  static constexpr auto cpu = &ember::cpu::where<T>;
};
struct ClampForward {
  static constexpr const char* name = "clamp";
  template <class T>
  static constexpr auto cpu = &ember::cpu::clamp_forward<T>;
};
struct ClampBackward {
  static constexpr const char* name = "clamp backward";
  template <class T>
  static constexpr auto cpu = &ember::cpu::clamp_backward<T>;
};
struct ClampTensorForward {
  static constexpr const char* name = "clamp with tensor bounds";
  template <class T>
  static constexpr auto cpu = &ember::cpu::clamp_tensor_forward<T>;
};
struct ClampTensorBackward {
  static constexpr const char* name = "clamp with tensor bounds, backward";
  template <class T>
  static constexpr auto cpu = &ember::cpu::clamp_tensor_backward<T>;
};
}  // namespace op

/// The mask type of the comparisons, where and masked_fill.
using Mask = Tensor<std::uint8_t>;

namespace detail {
[[nodiscard]] inline bool broadcastable(const Shape& a, const Shape& b) {
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) return false;
  }
  return true;
}

// The shape `a` and `b` broadcast to, or an error naming the op and both shapes.
inline Shape broadcast_for(const char* op, const Shape& a, const Shape& b) {
  EMBER_CHECK(broadcastable(a, b), op, ": shapes ", shape_str(a), " and ", shape_str(b),
              " cannot be broadcast together");
  return broadcast_shapes(a, b);
}

template <Real T>
Mask compare(CompareOp op, const char* name, const Tensor<T>& a, const Tensor<T>& b) {
  EMBER_CHECK(a.device() == b.device(), name, ": expected both operands on the same device, got ",
              a.device().str(), " and ", b.device().str());
  const Shape shape = broadcast_for(name, a.shape(), b.shape());
  Mask out = Mask::empty(shape, a.device());
  if (out.numel() > 0)
    backend::run<op::Compare, T>(a.device(), op, a.impl().storage->data(), broadcast_view(a, shape),
                                 b.impl().storage->data(), broadcast_view(b, shape), out.data(),
                                 out.numel());
  return out;
}

// cond ? a : b with broadcasting, not recorded.
template <Real T>
Tensor<T> where_values(const char* name, const Mask& cond, const Tensor<T>& a, const Tensor<T>& b) {
  EMBER_CHECK(cond.device() == a.device() && a.device() == b.device(), name,
              ": expected the condition and both values on the same device, got ",
              cond.device().str(), ", ", a.device().str(), " and ", b.device().str());
  EMBER_CHECK(broadcastable(a.shape(), b.shape()) &&
                  broadcastable(cond.shape(), broadcast_shapes(a.shape(), b.shape())),
              name, ": shapes ", shape_str(cond.shape()), " (condition), ", shape_str(a.shape()),
              " and ", shape_str(b.shape()), " cannot be broadcast together");
  const Shape shape = broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape()));
  Tensor<T> out = Tensor<T>::empty(shape, a.device());
  if (out.numel() > 0)
    backend::run<op::Where, T>(a.device(), cond.impl().storage->data(), broadcast_view(cond, shape),
                               a.impl().storage->data(), broadcast_view(a, shape),
                               b.impl().storage->data(), broadcast_view(b, shape), out.data(),
                               out.numel());
  return out;
}

template <Real T>
Tensor<T> clamp_with(const char* node, const Tensor<T>& x, const ClampParams<T>& p) {
  const Tensor<T> xc = x.contiguous();
  Tensor<T> y = Tensor<T>::empty(x.shape(), x.device());
  if (y.numel() > 0) backend::run<op::ClampForward, T>(x.device(), p, xc.data(), y.data(), y.numel());
  // d clamp / dx = 1 where min < x < max (PyTorch's clamp_backward), else 0.
  autograd::record(y, node, {x}, autograd::saved(xc), [xc = xc.detach(), p](const Tensor<T>& g) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> gx = Tensor<T>::empty(xc.shape(), xc.device());
    if (gx.numel() > 0)
      backend::run<op::ClampBackward, T>(xc.device(), p, gc.data(), xc.data(), gx.data(), gx.numel());
    return std::vector<Tensor<T>>{gx};
  });
  return y;
}
// clamp of x between tensor bounds (lo and/or hi; an absent one is an undefined tensor), all
// broadcast together; the gradients of ClampTensorParams, summed back to each one's shape.
template <Real T>
Tensor<T> clamp_tensor_with(const char* name, const char* node, const Tensor<T>& x,
                            const Tensor<T>& lo, const Tensor<T>& hi) {
  EMBER_CHECK(lo.defined() || hi.defined(), name, ": at least one bound must be a defined tensor");
  const ClampTensorParams<T> p{lo.defined(), hi.defined()};
  Shape shape = x.shape();
  std::vector<Tensor<T>> inputs = {x};
  for (const Tensor<T>* b : {&lo, &hi}) {
    if (!b->defined()) continue;
    EMBER_CHECK(b->device() == x.device(), name, ": expected the bounds on the input's device ",
                x.device().str(), ", got ", b->device().str());
    EMBER_CHECK(broadcastable(shape, b->shape()), name, ": input of shape ", shape_str(x.shape()),
                " and bound of shape ", shape_str(b->shape()), " cannot be broadcast together",
                lo.defined() && hi.defined() ? " (with the other bound)" : "");
    shape = broadcast_shapes(shape, b->shape());
    inputs.push_back(*b);
  }
  // an absent bound is read through x's pointer and view, which the kernels skip
  const Tensor<T>& l = p.has_min ? lo : x;
  const Tensor<T>& h = p.has_max ? hi : x;
  Tensor<T> y = Tensor<T>::empty(shape, x.device());
  if (y.numel() > 0)
    backend::run<op::ClampTensorForward, T>(
        x.device(), p, x.impl().storage->data(), broadcast_view(x, shape), l.impl().storage->data(),
        broadcast_view(l, shape), h.impl().storage->data(), broadcast_view(h, shape), y.data(),
        y.numel());
  const bool want_x = x.requires_grad(), want_lo = p.has_min && lo.requires_grad(),
             want_hi = p.has_max && hi.requires_grad();
  autograd::record(y, node, inputs, autograd::saved(x, l, h),
                   [x = x.detach(), l = l.detach(), h = h.detach(), p, shape, want_x, want_lo,
                    want_hi](const Tensor<T>& g) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> gx, glo, ghi;
    if (want_x) gx = Tensor<T>::empty(shape, g.device());
    if (want_lo) glo = Tensor<T>::empty(shape, g.device());
    if (want_hi) ghi = Tensor<T>::empty(shape, g.device());
    if (gc.numel() > 0 && (want_x || want_lo || want_hi))
      backend::run<op::ClampTensorBackward, T>(
          g.device(), p, gc.data(), x.impl().storage->data(), broadcast_view(x, shape),
          l.impl().storage->data(), broadcast_view(l, shape), h.impl().storage->data(),
          broadcast_view(h, shape), want_x ? gx.data() : nullptr,
          want_lo ? glo.data() : nullptr, want_hi ? ghi.data() : nullptr, gc.numel());
    std::vector<Tensor<T>> grads;
    grads.push_back(want_x ? sum_to(gx, x.shape()) : Tensor<T>());
    if (p.has_min) grads.push_back(want_lo ? sum_to(glo, l.shape()) : Tensor<T>());
    if (p.has_max) grads.push_back(want_hi ? sum_to(ghi, h.shape()) : Tensor<T>());
    return grads;
  });
  return y;
}
}  // namespace detail

// ---- comparisons: a uint8 mask of a (op) b, broadcast; IEEE (NaN is unequal to everything) ----
/// a == b elementwise, broadcasting, as a uint8 mask (torch.eq).
template <Real T> Mask eq(const Tensor<T>& a, const Tensor<T>& b) { return detail::compare(CompareOp::eq, "eq", a, b); }
/// a != b elementwise, broadcasting, as a uint8 mask (torch.ne).
template <Real T> Mask ne(const Tensor<T>& a, const Tensor<T>& b) { return detail::compare(CompareOp::ne, "ne", a, b); }
/// a < b elementwise, broadcasting, as a uint8 mask (torch.lt).
template <Real T> Mask lt(const Tensor<T>& a, const Tensor<T>& b) { return detail::compare(CompareOp::lt, "lt", a, b); }
/// a <= b elementwise, broadcasting, as a uint8 mask (torch.le).
template <Real T> Mask le(const Tensor<T>& a, const Tensor<T>& b) { return detail::compare(CompareOp::le, "le", a, b); }
/// a > b elementwise, broadcasting, as a uint8 mask (torch.gt).
template <Real T> Mask gt(const Tensor<T>& a, const Tensor<T>& b) { return detail::compare(CompareOp::gt, "gt", a, b); }
/// a >= b elementwise, broadcasting, as a uint8 mask (torch.ge).
template <Real T> Mask ge(const Tensor<T>& a, const Tensor<T>& b) { return detail::compare(CompareOp::ge, "ge", a, b); }
/// a == s elementwise, as a uint8 mask; here and below the scalar is converted to T, as in
/// PyTorch.
template <Real T, Scalar S> Mask eq(const Tensor<T>& a, S s) { return eq(a, Tensor<T>::full({}, static_cast<T>(s), a.device())); }
/// a != s elementwise, as a uint8 mask.
template <Real T, Scalar S> Mask ne(const Tensor<T>& a, S s) { return ne(a, Tensor<T>::full({}, static_cast<T>(s), a.device())); }
/// a < s elementwise, as a uint8 mask.
template <Real T, Scalar S> Mask lt(const Tensor<T>& a, S s) { return lt(a, Tensor<T>::full({}, static_cast<T>(s), a.device())); }
/// a <= s elementwise, as a uint8 mask.
template <Real T, Scalar S> Mask le(const Tensor<T>& a, S s) { return le(a, Tensor<T>::full({}, static_cast<T>(s), a.device())); }
/// a > s elementwise, as a uint8 mask.
template <Real T, Scalar S> Mask gt(const Tensor<T>& a, S s) { return gt(a, Tensor<T>::full({}, static_cast<T>(s), a.device())); }
/// a >= s elementwise, as a uint8 mask.
template <Real T, Scalar S> Mask ge(const Tensor<T>& a, S s) { return ge(a, Tensor<T>::full({}, static_cast<T>(s), a.device())); }

// ---- where(condition, input, other): input where the condition is nonzero, else other --------
/// The three broadcast together (PyTorch's torch.where). The gradient goes to input where the
/// condition holds and to other elsewhere, summed back to each one's shape.
template <Real T>
Tensor<T> where(const Mask& condition, const Tensor<T>& input, const Tensor<T>& other) {
  Tensor<T> out = detail::where_values("where", condition, input, other);
  autograd::record(out, "WhereBackward0", {input, other}, autograd::saved(condition),
                   [c = condition, sa = input.shape(), sb = other.shape()](const Tensor<T>& g) {
    const Tensor<T> zero = Tensor<T>::zeros({}, g.device());
    return std::vector<Tensor<T>>{sum_to(where(c, g, zero), sa), sum_to(where(c, zero, g), sb)};
  });
  return out;
}
/// input where condition is set, else the scalar `other` (torch.where).
template <Real T, Scalar S>
Tensor<T> where(const Mask& condition, const Tensor<T>& input, S other) {
  return where(condition, input, Tensor<T>::full({}, static_cast<T>(other), input.device()));
}
/// The scalar `input` where condition is set, else other (torch.where).
template <Real T, Scalar S>
Tensor<T> where(const Mask& condition, S input, const Tensor<T>& other) {
  return where(condition, Tensor<T>::full({}, static_cast<T>(input), other.device()), other);
}

// ---- masked_fill(input, mask, value): value where the mask is nonzero, else input -------------
/// Out of place, so input and mask broadcast together (as torch.masked_fill). The gradient of
/// input is the output's where the mask is zero.
template <Real T>
Tensor<T> masked_fill(const Tensor<T>& input, const Mask& mask, std::type_identity_t<T> value) {
  EMBER_CHECK(mask.device() == input.device(), "masked_fill: expected the mask on the input's "
              "device ", input.device().str(), ", got ", mask.device().str());
  EMBER_CHECK(detail::broadcastable(mask.shape(), input.shape()), "masked_fill: mask of shape ",
              shape_str(mask.shape()), " cannot be broadcast with input of shape ",
              shape_str(input.shape()));
  const Tensor<T> v = Tensor<T>::full({}, value, input.device());
  Tensor<T> out = detail::where_values("masked_fill", mask, v, input);
  autograd::record(out, "MaskedFillBackward0", {input}, autograd::saved(mask),
                   [m = mask, s = input.shape()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{sum_to(where(m, Tensor<T>::zeros({}, g.device()), g), s)};
  });
  return out;
}

// ---- clamp(input, min, max): min(max(input, min), max), each bound optional -------------------
/// PyTorch's: at least one bound; min > max gives max everywhere; NaN (input or bound) gives
/// NaN. The gradient passes where min < input < max, strictly (ClampParams).
template <Real T>
Tensor<T> clamp(const Tensor<T>& input, std::type_identity_t<std::optional<T>> min = std::nullopt,
                std::type_identity_t<std::optional<T>> max = std::nullopt) {
  EMBER_CHECK(min.has_value() || max.has_value(),
              "clamp: at least one of 'min' or 'max' must not be None");
  ClampParams<T> p;
  p.has_min = min.has_value();
  p.has_max = max.has_value();
  if (p.has_min) p.min = *min;
  if (p.has_max) p.max = *max;
  return detail::clamp_with("ClampBackward1", input, p);
}
/// clamp between tensor bounds, the three broadcast together (torch.clamp with tensors): the
/// value is min(max(input, min), max) as with scalar bounds (NaN anywhere gives NaN; min > max
/// gives max), and each of the three takes PyTorch's gradient (ClampTensorParams): with both
/// bounds, input's passes unless input < min or input > max, and a tie with a bound splits it.
template <Real T>
Tensor<T> clamp(const Tensor<T>& input, const Tensor<T>& min, const Tensor<T>& max) {
  return detail::clamp_tensor_with("clamp", "ClampBackward0", input, min, max);
}
/// max(input, min) with a tensor bound, broadcast (torch.clamp(input, min=tensor)); the
/// gradient is maximum's.
template <Real T>
Tensor<T> clamp(const Tensor<T>& input, const Tensor<T>& min) {
  return detail::clamp_tensor_with("clamp", "ClampBackward0", input, min, Tensor<T>());
}
/// min(input, max) with a tensor bound, broadcast (torch.clamp(input, max=tensor)); the
/// gradient is minimum's.
template <Real T>
Tensor<T> clamp(const Tensor<T>& input, std::nullopt_t, const Tensor<T>& max) {
  return detail::clamp_tensor_with("clamp", "ClampBackward0", input, Tensor<T>(), max);
}
/// max(input, min) with a tensor bound, broadcast (torch.clamp_min(input, tensor)).
template <Real T>
Tensor<T> clamp_min(const Tensor<T>& input, const Tensor<T>& min) {
  return detail::clamp_tensor_with("clamp_min", "ClampMinBackward1", input, min, Tensor<T>());
}
/// min(input, max) with a tensor bound, broadcast (torch.clamp_max(input, tensor)).
template <Real T>
Tensor<T> clamp_max(const Tensor<T>& input, const Tensor<T>& max) {
  return detail::clamp_tensor_with("clamp_max", "ClampMaxBackward1", input, Tensor<T>(), max);
}
/// The elementwise maximum of a and b, broadcast (torch.maximum): NaN if either is NaN. The
/// larger takes the gradient; a tie splits it in halves, and a NaN sends it whole to both.
template <Real T>
Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b) {
  return detail::clamp_tensor_with("maximum", "MaximumBackward0", a, b, Tensor<T>());
}
/// The elementwise minimum of a and b, broadcast (torch.minimum), with maximum's rules.
template <Real T>
Tensor<T> minimum(const Tensor<T>& a, const Tensor<T>& b) {
  return detail::clamp_tensor_with("minimum", "MinimumBackward0", a, Tensor<T>(), b);
}

/// max(input, min) elementwise (torch.clamp_min).
template <Real T>
Tensor<T> clamp_min(const Tensor<T>& input, std::type_identity_t<T> min) {
  ClampParams<T> p;
  p.has_min = true;
  p.min = min;
  return detail::clamp_with("ClampMinBackward0", input, p);
}
/// min(input, max) elementwise (torch.clamp_max).
template <Real T>
Tensor<T> clamp_max(const Tensor<T>& input, std::type_identity_t<T> max) {
  ClampParams<T> p;
  p.has_max = true;
  p.max = max;
  return detail::clamp_with("ClampMaxBackward0", input, p);
}

}  // namespace ember
