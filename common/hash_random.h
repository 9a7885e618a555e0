// Counter-based pseudo-randomness: pure functions of their inputs, the same on every machine,
// compiler and thread count (no std:: engine or distribution, whose output the standard leaves
// to the library). Used by the test-model writer, random draft heads, head training's shuffle and
// the n-gram table's hashing.
//
//   const uint64_t key = SplitMix64(seed ^ Fnv1a64("model.norm.weight"));
//   const float x = HashNormal(key, element_index);   // ~N(0, 1), in [-3.47, 3.47]
#pragma once

#include <cstdint>
#include <string_view>

namespace ts {

// The splitmix64 finaliser: a well-mixed 64-bit hash of x.
inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The splitmix64 generator: returns the next value of the stream `state` and advances it.
inline uint64_t SplitMix64Next(uint64_t& state) {
  const uint64_t x = SplitMix64(state);
  state += 0x9e3779b97f4a7c15ull;
  return x;
}

// 64-bit FNV-1a of the bytes of s.
inline uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// An approximately standard normal value in [-3.47, 3.47] (Irwin-Hall sum of four 16-bit
// uniforms), a pure function of (key, index).
inline float HashNormal(uint64_t key, uint64_t index) {
  const uint64_t h = SplitMix64(SplitMix64(key) ^ index);
  // Sum of four uniform 16-bit integers: mean 131070, std 65536 / sqrt(3) ~= 37837.23.
  const int32_t sum =
      static_cast<int32_t>((h & 0xffff) + ((h >> 16) & 0xffff) + ((h >> 32) & 0xffff) + (h >> 48));
  constexpr float kInvStd = 1.0f / 37837.23f;
  return static_cast<float>(sum - 131070) * kInvStd;  // exact int -> float, one rounding
}

}  // namespace ts
