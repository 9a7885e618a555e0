// Philox4x32-10, the counter-based random number generator of Salmon et al., "Parallel Random
// Numbers: As Easy as 1, 2, 3" (SC'11), exactly as Random123's philox4x32 with 10 rounds.
//
// A counter-based generator is a keyed bijection: output = Philox(counter, key). There is no state,
// so any number can be computed on its own from its coordinates. Sampling uses this to make a
// token's random draw a pure function of (seed, position, token id); see gumbel.h.
//
// One round, on counter words (c0, c1, c2, c3) and key (k0, k1):
//   (hi0, lo0) = M0 * c0, (hi1, lo1) = M1 * c2          (32x32 -> 64-bit products)
//   (c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
// and between rounds the key is bumped by the Weyl constants (W0, W1).
#pragma once

#include <array>
#include <cstdint>

namespace ts {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

inline constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
inline constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
inline constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // golden ratio
inline constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;  // sqrt(3) - 1

constexpr PhiloxCounter Philox4x32_10(PhiloxCounter c, PhiloxKey k) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += kPhiloxW0;
      k[1] += kPhiloxW1;
    }
    const uint64_t p0 = uint64_t{kPhiloxM0} * c[0];
    const uint64_t p1 = uint64_t{kPhiloxM1} * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
  }
  return c;
}

// Random123 known-answer vector (kat_vectors, "philox4x32 10 0..0"); the tests hold the rest.
static_assert(Philox4x32_10({0, 0, 0, 0}, {0, 0}) ==
              PhiloxCounter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});

}  // namespace ts
