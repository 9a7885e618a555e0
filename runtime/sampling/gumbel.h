// Position-keyed Gumbel-max: the random part of sampling, as a pure function.
//
// Sampling token i with probability softmax(z)_i is the same as taking argmax_i (z_i + G_i) with
// G_i i.i.d. standard Gumbel (the Gumbel-max trick). Here G_i is a pure function of
// (seed, position, token id): Philox4x32-10 keyed by the seed, counter
// (id / 2, position low word, position high word, kGumbelStream); token id takes the 64-bit half
// (id % 2) of the 128-bit output, u = (top 52 bits + 0.5) * 2^-52 in (0, 1), and
// G = -log(-log(u)), in double. No state is carried anywhere, so a speculative verifier computes
// for a tree node at absolute position n exactly what autoregressive decoding computes at n.
//
// The argmax is a max-reduction over (value, index) pairs (ties -> lower index), so a vocabulary
// split in ranges can take each range's GumbelMaxRange and reduce with Better: the result is the
// same as one call over the whole vocabulary, bit for bit.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>

#include "runtime/sampling/logits_processor.h"
#include "runtime/sampling/philox.h"

namespace ts {

inline constexpr uint32_t kGumbelStream = 0x47756d62u;  // "Gumb": a stream no other use shares

// The 64 random bits of (seed, position, token id).
inline uint64_t GumbelBits(uint64_t seed, uint64_t position, uint32_t token_id) {
  const PhiloxCounter out =
      Philox4x32_10({token_id >> 1, static_cast<uint32_t>(position),
                     static_cast<uint32_t>(position >> 32), kGumbelStream},
                    {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  const int lane = 2 * static_cast<int>(token_id & 1);
  return uint64_t{out[lane]} | (uint64_t{out[lane + 1]} << 32);
}

// Standard Gumbel from 64 random bits. Every u is exact in double and lies in [2^-53, 1 - 2^-53],
// so G is finite and at most GumbelFromBits(~0) (about 36.7).
inline double GumbelFromBits(uint64_t bits) {
  const double u = (static_cast<double>(bits >> 12) + 0.5) * 0x1p-52;
  return -std::log(-std::log(u));
}

inline double GumbelNoise(uint64_t seed, uint64_t position, uint32_t token_id) {
  return GumbelFromBits(GumbelBits(seed, position, token_id));
}

// One range's Gumbel-max winner. index = -1 when nothing in the range survived.
struct Candidate {
  double value = -std::numeric_limits<double>::infinity();
  int32_t index = -1;
};

// The all-reduce operator: larger value, ties -> lower index; an empty candidate loses.
inline Candidate Better(const Candidate& a, const Candidate& b) {
  if (a.index < 0) return b;
  if (b.index < 0) return a;
  if (a.value != b.value) return a.value > b.value ? a : b;
  return a.index < b.index ? a : b;
}

// argmax over ids i in [begin, begin + z.size()) with cutoff.Keeps(z_i, i) of
// (double)z_i + GumbelNoise(seed, position, i). Noise is drawn only for survivors, and not even
// for those that cannot win: once some value v is known, any z_i with z_i + max G < v is skipped
// (exact, since G is bounded). `hint` (an id in the range, or -1) is tried first to get such a v
// early; the z argmax is a good hint. The result does not depend on the hint.
Candidate GumbelMaxRange(std::span<const float> z, int64_t begin, const Cutoff& cutoff,
                         uint64_t seed, int64_t position, int64_t hint);

}  // namespace ts
