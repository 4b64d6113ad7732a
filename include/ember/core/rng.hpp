// Counter-based randomness: the n-th draw of a seed is a pure function of (seed, n),
// so a sampler's output never depends on threads, batch splits or call history.
#pragma once

#include <cstdint>

namespace ember {

// SplitMix64's finalizer over seed and counter: well mixed, cheap, stateless.
inline uint64_t mix64(uint64_t seed, uint64_t counter) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (counter + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A uniform double in [0, 1) from the top 53 bits.
inline double uniform01(uint64_t seed, uint64_t counter) {
  return double(mix64(seed, counter) >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace ember
