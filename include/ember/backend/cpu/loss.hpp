#pragma once
// CPU nll_loss over logp (rows, cols) and labels (rows), as kernels/loss.cuh:
//   forward   out[0] = -(sum over rows of logp[row, label]) * scale, the sum in double in row
//             order, scale = 1 / rows for the mean (in T), else 1
//   backward  gx (rows, cols) = -(g[0] * scale) at each row's label, 0 elsewhere
// A label outside [0, cols) is an ember::Error naming it and its row.

#include <algorithm>
#include <cstdint>

#include "ember/core/error.hpp"

namespace ember::cpu {

template <class T>
void nll_forward(const T* logp, const std::int64_t* labels, std::int64_t rows, std::int64_t cols, T* out,
                 bool mean) {
  double acc = 0;
  for (std::int64_t i = 0; i < rows; ++i) {
    EMBER_CHECK(labels[i] >= 0 && labels[i] < cols, "nll_loss: target ", labels[i], " at index ", i,
                " is out of range for ", cols, " classes");
    acc -= logp[i * cols + labels[i]];
  }
  const T scale = mean ? T(1) / static_cast<T>(rows) : T(1);
  out[0] = static_cast<T>(acc) * scale;
}

template <class T>
void nll_backward(const T* g, const std::int64_t* labels, std::int64_t rows, std::int64_t cols, T* gx,
                  bool mean) {
  const T scale = mean ? T(1) / static_cast<T>(rows) : T(1);
  const T v = -(g[0] * scale);
  std::fill(gx, gx + rows * cols, T(0));
  for (std::int64_t i = 0; i < rows; ++i) gx[i * cols + labels[i]] = v;
}

}  // namespace ember::cpu
