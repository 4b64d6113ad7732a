// A weight matrix as the kernels see it: any GGML format, used in place.
//
// Conventions for every backend in kernels/:
//   - `w` is a weight matrix of n_row rows by n_col columns; a row is the unit
//     of quantization (its blocks run along the columns).
//   - `x` holds activations, one row of n_col floats per token; `y` receives
//     one float per (token, weight row).
//   - Pointers need no particular alignment: weights sit wherever the GGUF
//     file put them, activations wherever the caller's scratch is.
#pragma once

#include <cstddef>
#include <cstring>

#include "ember/tensor/dtype.hpp"

namespace ember::kernels {

struct MatrixView {
  DType dtype;       // format of every row
  const void* data;  // row r starts at (const std::byte*)data + r * row_bytes
  size_t n_row;
  size_t n_col;      // a multiple of block_size(dtype)
  size_t row_bytes;  // at least ember::row_bytes(dtype, n_col); larger for padded layouts
  // The same matrix in the x16 row-interleaved layout (packed.hpp), prepared at load; null
  // when not. Kernels that know that layout read it, the others read `data`.
  const std::byte* packed = nullptr;

  const std::byte* row(size_t r) const { return static_cast<const std::byte*>(data) + r * row_bytes; }
};

// The partial last step of a loop that reads a row kStep elements at a time: the rem
// elements before `end` followed by zeros, without a copy sized at run time. `buf`'s upper
// kStep elements must be zero (the caller clears them once); where the row has kStep
// elements before `end`, those are copied whole and the result points into buf where the
// step's first element landed.
template <size_t kStep, class T>
const T* row_tail(const T* row, size_t end, size_t rem, T (&buf)[2 * kStep]) {
  if (end >= kStep) {
    std::memcpy(static_cast<void*>(buf), row + end - kStep, kStep * sizeof(T));
    return buf + kStep - rem;
  }
  std::memset(static_cast<void*>(buf), 0, kStep * sizeof(T));
  std::memcpy(static_cast<void*>(buf), row + end - rem, rem * sizeof(T));
  return buf;
}

// One matrix of a product of several matrices with the same input (Highway::matmuls): rows
// [r_begin, r_end) of w times the tokens, into y (y_stride floats from one token's outputs to
// the next).
struct MatmulPart {
  const MatrixView* w;
  float* y;
  size_t y_stride;
  size_t r_begin;
  size_t r_end;
};

// A view of a densely packed (n_row, n_col) matrix.
inline MatrixView make_matrix_view(DType dtype, const void* data, size_t n_row, size_t n_col) {
  return MatrixView{dtype, data, n_row, n_col, ember::row_bytes(dtype, n_col), nullptr};
}

}  // namespace ember::kernels
