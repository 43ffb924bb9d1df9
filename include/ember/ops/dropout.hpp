#pragma once
// dropout and dropout2d with PyTorch's semantics: in training each element (dropout) or
// whole channel (dropout2d) is zeroed with probability p and the survivors are scaled by
// 1 / (1 - p); in evaluation both are the identity. Masks come from the Philox generator,
// element i of a draw at offset o being kept when uniform(seed, o + i) >= p.

#include <cstdint>
#include <vector>

#include "ember/backend/cpu/dropout.hpp"
#include "ember/backend/dispatch.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/ops/elementwise.hpp"

namespace ember {

namespace op {
/// mask[i] = scale where Philox's uniform for element i is >= p, else 0
struct DropoutMask {
  static constexpr const char* name = "dropout";
  template <class T>
  static constexpr auto cpu = &ember::cpu::dropout_mask<T>;
};
}  // namespace op

namespace detail {
// A mask of `shape` holding 0 or 1 / (1 - p).
template <Real T>
Tensor<T> dropout_mask(const Shape& shape, double p, Generator& gen, Device device = Device::cpu()) {
  Tensor<T> mask = Tensor<T>::empty(shape, device);
  const std::uint64_t first = gen.reserve(static_cast<std::uint64_t>(mask.numel()));
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  if (mask.numel() > 0)
    backend::run<op::DropoutMask, T>(device, gen.philox_args(first), static_cast<float>(p), scale, mask.data(),
                                     mask.numel());
  return mask;
}

inline void check_p(double p) {
  EMBER_CHECK(p >= 0.0 && p <= 1.0, "dropout probability has to be between 0 and 1, but got ", p);
}
}  // namespace detail

/// x * mask, where mask holds 0 or 1/(1-p); its shape broadcasts against x (the mask is a
/// constant: no gradient flows to it).
template <Real T>
Tensor<T> apply_mask(const Tensor<T>& x, const Tensor<T>& mask) {
  Tensor<T> y = detail::binary_map(x, mask, backend::BinaryOp::mul);
  autograd::record(y, "MulBackward0", {x}, autograd::saved(mask),
                   [mask, s = x.shape()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{sum_to(detail::binary_map(g, mask, backend::BinaryOp::mul), s)};
  });
  return y;
}

/// F.dropout: in training, zeroes each element with probability p (drawn from `gen`) and scales the
/// rest by 1 / (1 - p); x itself when not training. Throws unless p is in [0, 1].
template <Real T>
Tensor<T> dropout(const Tensor<T>& x, double p, bool training,
                  Generator& gen = default_generator()) {
  detail::check_p(p);
  if (!training || p == 0.0) return x;
  if (p == 1.0) return mul_scalar(x, T(0));
  return apply_mask(x, detail::dropout_mask<T>(x.shape(), p, gen, x.device()));
}

/// Zeroes whole channels: x (N, C, H, W) or (C, H, W); one draw per (n, c).
template <Real T>
Tensor<T> dropout2d(const Tensor<T>& x, double p, bool training,
                    Generator& gen = default_generator()) {
  detail::check_p(p);
  EMBER_CHECK(x.dim() == 3 || x.dim() == 4, "dropout2d: input must be (N, C, H, W) or (C, H, W), got ",
              shape_str(x.shape()));
  if (!training || p == 0.0) return x;
  if (p == 1.0) return mul_scalar(x, T(0));
  Shape mask_shape = x.shape();
  for (std::size_t d = mask_shape.size() - 2; d < mask_shape.size(); ++d) mask_shape[d] = 1;
  return apply_mask(x, detail::dropout_mask<T>(mask_shape, p, gen, x.device()));
}

}  // namespace ember
