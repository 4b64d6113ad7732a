// A count known at run time, as a template argument: kernels whose register blocking is a
// compile-time number of heads or tokens pick their instantiation with this.
#pragma once

#include <cstddef>
#include <type_traits>

namespace ember::kernels {

// Calls f(std::integral_constant<size_t, n>{}) for 1 <= n <= kMax (n above kMax: kMax).
template <size_t kMax, class F>
inline void with_count(size_t n, F&& f) {
  if constexpr (kMax > 1) {
    if (n < kMax) return with_count<kMax - 1>(n, f);
  }
  f(std::integral_constant<size_t, kMax>{});
}

}  // namespace ember::kernels
