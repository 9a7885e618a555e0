#include "runtime/sampling/gumbel.h"

#include <algorithm>
#include <cmath>

#include "runtime/sampling/scan.h"

namespace ts {
namespace {

// The largest float <= x (x finite or -inf).
float RoundDown(double x) {
  if (!(x >= -static_cast<double>(std::numeric_limits<float>::max()))) {
    return -std::numeric_limits<float>::infinity();
  }
  float f = static_cast<float>(x);
  if (static_cast<double>(f) > x) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

}  // namespace

Candidate GumbelMaxRange(std::span<const float> z, int64_t begin, const Cutoff& cutoff,
                         uint64_t seed, int64_t position, int64_t hint) {
  // The largest G any token can draw; a token with z + kMaxNoise < best cannot win. Rounding is
  // monotone, so (double)z + G <= (double)z + kMaxNoise holds for the computed values too.
  static const double kMaxNoise = GumbelFromBits(~uint64_t{0});
  const uint64_t pos = static_cast<uint64_t>(position);
  const int64_t n = static_cast<int64_t>(z.size());

  // One Philox block holds the bits of two neighbouring ids (GumbelBits): keep the last block.
  uint32_t cached_block = 0;
  PhiloxCounter cached_out{};
  bool cached = false;
  const PhiloxKey key = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  auto noise = [&](uint32_t id) {
    if (!cached || cached_block != id >> 1) {
      cached_block = id >> 1;
      cached_out = Philox4x32_10({cached_block, static_cast<uint32_t>(pos),
                                  static_cast<uint32_t>(pos >> 32), kGumbelStream},
                                 key);
      cached = true;
    }
    const int lane = 2 * static_cast<int>(id & 1);
    return GumbelFromBits(uint64_t{cached_out[lane]} | (uint64_t{cached_out[lane + 1]} << 32));
  };

  Candidate best;
  auto consider = [&](int64_t i) {
    const double v = static_cast<double>(z[i]) + noise(static_cast<uint32_t>(begin + i));
    best = Better(best, Candidate{v, static_cast<int32_t>(begin + i)});
  };
  const int64_t h = hint - begin;
  if (h >= 0 && h < n && cutoff.Keeps(z[h], hint)) consider(h);

  // Jump from one token at or above the scan threshold to the next: under min-p almost every
  // id is skipped by the vector compare. The threshold also rises with the best value so far,
  // kept 1.0 below the exact bound so that float rounding cannot skip a possible winner; the exact
  // test is done per token.
  float scan_from = std::max(cutoff.value, RoundDown(best.value - kMaxNoise - 1.0));
  int64_t i = sampling_scan::FindFirstAtLeast(z.data(), 0, n, scan_from);
  while (i < n) {
    const float zi = z[i];
    if (cutoff.Keeps(zi, begin + i) && static_cast<double>(zi) + kMaxNoise >= best.value) {
      consider(i);
      scan_from = std::max(cutoff.value, RoundDown(best.value - kMaxNoise - 1.0));
    }
    // Walk dense runs one by one; call the vector scan only to cross a gap.
    if (++i < n && z[i] < scan_from) i = sampling_scan::FindFirstAtLeast(z.data(), i, n, scan_from);
  }
  return best;
}

}  // namespace ts
