#pragma once
// CPU RMSprop step over `count` float parameters, each parameter's elements spread over the
// thread pool, element for element torch.optim.RMSprop's single-tensor loop (PyTorch 2.15) on
// float32 tensors, in its order of operations:
//   g = (maximize ? -grad : grad) + weight_decay * p
//   sq = sq * alpha + ((1 - alpha) * g) * g
//   centered:  ga = lerp(ga, g, 1 - alpha);  avg = sqrt(sq + (-1 * ga) * ga)
//   else:      avg = sqrt(sq)
//   avg = avg + eps
//   momentum > 0:  buf = buf * momentum + g / avg;  p = p + (-lr) * buf
//   else:          p = p + (-lr * g) / avg
// Every element is updated on its own, so the result does not depend on the number of threads.

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ember/backend/cpu/adam.hpp"
#include "ember/backend/optim_params.hpp"
#include "ember/core/parallel.hpp"

namespace ember::cpu {

// (A template so that the op table can name it per element type; RMSprop steps floats.)
template <class T>
void rmsprop_step(const backend::RmspropTensorRef* tensors, int count, backend::RmspropStepArgs a) {
  static_assert(std::is_same_v<T, float>, "RMSprop steps float parameters");
  for (int k = 0; k < count; ++k) {
    const backend::RmspropTensorRef t = tensors[k];
    parallel_for(0, t.n, 1 << 15, [=](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i) {
        const float p = t.param[i];
        float g = a.maximize ? -t.grad[i] : t.grad[i];
        if (a.weight_decay != 0.0f) g = g + a.weight_decay * p;
        const float sq = t.square_avg[i] * a.alpha + a.one_minus_alpha * g * g;
        t.square_avg[i] = sq;
        float avg;
        if (a.centered) {
          const float ga = lerp_torch(t.grad_avg[i], g, a.one_minus_alpha);
          t.grad_avg[i] = ga;
          avg = std::sqrt(sq + -1.0f * ga * ga);
        } else {
          avg = std::sqrt(sq);
        }
        avg = avg + a.eps;
        if (t.momentum_buffer != nullptr) {
          const float buf = t.momentum_buffer[i] * a.momentum + g / avg;
          t.momentum_buffer[i] = buf;
          t.param[i] = p + a.neg_lr * buf;
        } else {
          t.param[i] = p + a.neg_lr * g / avg;
        }
      }
    });
  }
}

}  // namespace ember::cpu
