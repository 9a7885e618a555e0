#include "runtime/sampling/logits_processor.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

#include "runtime/sampling/scan.h"

namespace ts {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kFloatMax = std::numeric_limits<float>::max();

// NaN -> -inf, +inf -> FLT_MAX; everything else unchanged.
inline float Sanitize(float v) { return std::isnan(v) ? -kInf : std::min(v, kFloatMax); }

inline float Penalise(float l, float penalty) { return l > 0.0f ? l / penalty : l * penalty; }

// The smallest float f with (double)f >= x, so "z >= f" on floats is "(double)z >= x".
float CeilToFloat(double x) {
  if (!(x > -static_cast<double>(kFloatMax))) return -kFloatMax;
  float f = static_cast<float>(x);
  if (static_cast<double>(f) < x) f = std::nextafter(f, kInf);
  return f;
}

// A filter that keeps every token with (double)z >= bound; never stricter than keeping the max.
Cutoff AtLeast(double bound, float z_max) {
  return Cutoff{std::min(CeilToFloat(bound), z_max), Cutoff::kAllTies};
}

// The kept mass of z[from, to), z[0] being token `begin`: one block's partial sums.
Mass BlockMass(std::span<const float> z, int64_t begin, int64_t from, int64_t to, double z_max,
               const Cutoff& cut, bool with_entropy) {
  Mass part;
  for (int64_t i = from; i < to; ++i) {
    if (!cut.Keeps(z[i], begin + i)) continue;
    const double d = static_cast<double>(z[i]) - z_max;
    const double w = std::exp(d);
    part.w += w;
    if (with_entropy) part.w_log_w += w * d;
  }
  return part;
}

// Sums over the kept tokens of w = exp(z - z_max) and of w * (z - z_max), accumulated per
// kReduceBlock block of ids and then across blocks in order (see the header for why).
Mass KeptMass(std::span<const float> z, double z_max, const Cutoff& cut, bool with_entropy) {
  Mass total;
  const int64_t n = static_cast<int64_t>(z.size());
  for (int64_t block = 0; block < n; block += kReduceBlock) {
    const Mass part =
        BlockMass(z, 0, block, std::min(n, block + kReduceBlock), z_max, cut, with_entropy);
    total.w += part.w;
    total.w_log_w += part.w_log_w;
  }
  return total;
}

inline bool Before(const ScoredToken& a, const ScoredToken& b) { return ScoreBefore(a, b); }

// Steps 4-5 on the tokens `cut` keeps (min-p's survivors).
Cutoff TopPTopKCutoff(const SamplingParams& params, std::span<const float> z, float z_max,
                      const Cutoff& cut, std::span<ScoredToken> scratch) {
  assert(scratch.size() >= z.size());
  ScoredToken* s = scratch.data();
  int64_t n = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(z.size()); ++i) {
    if (cut.Keeps(z[i], i)) s[n++] = ScoredToken{z[i], static_cast<int32_t>(i)};
  }
  Cutoff result;  // keeps all

  // top-k first only to bound the work: both keep a prefix of the same order, and top-p's
  // boundary only matters when it falls inside top-k's set.
  int64_t n_work = n;
  if (params.top_k > 0 && params.top_k < n) {
    const int64_t k = params.top_k;
    std::nth_element(s, s + (k - 1), s + n, Before);
    const float v = s[k - 1].z;
    // Everything after k-1 has z <= v; bring the ties (which HF keeps) next to the first k.
    n_work = std::partition(s + k, s + n, [v](const ScoredToken& t) { return t.z == v; }) - s;
    result = Cutoff{v, Cutoff::kAllTies};
  }

  if (params.top_p < 1.0f) {
    const double target =
        static_cast<double>(params.top_p) * KeptMass(z, z_max, cut, /*with_entropy=*/false).w;
    // Sort the survivors lazily, best first, a growing chunk at a time, until the cumulative
    // mass reaches the target: with a peaked distribution only the first chunk is sorted.
    double cumulative = 0.0;
    int64_t sorted = 0;
    int64_t chunk_end = std::min<int64_t>(n_work, 64);
    while (sorted < n_work) {
      if (chunk_end < n_work) std::nth_element(s + sorted, s + chunk_end, s + n_work, Before);
      std::sort(s + sorted, s + chunk_end, Before);
      for (int64_t j = sorted; j < chunk_end; ++j) {
        cumulative += std::exp(static_cast<double>(s[j].z) - z_max);
        if (cumulative >= target) return Stricter(result, Cutoff{s[j].z, s[j].id});
      }
      sorted = chunk_end;
      chunk_end = std::min(n_work, 4 * chunk_end);
    }
  }
  return result;
}

}  // namespace

ScoreStats ScoreRange(std::span<const float> logits, int64_t begin,
                      std::span<const int32_t> window_tokens, float penalty, float temperature,
                      std::span<float> z, std::span<uint64_t> seen) {
  const int64_t n = static_cast<int64_t>(logits.size());
  assert(static_cast<int64_t>(z.size()) >= n);
  assert(temperature > 0.0f);
  // Pass 1, fused with the max.
  float max = sampling_scan::ScaleSanitizeMax(logits.data(), temperature, n, z.data());

  // Pass 2: the penalty, on the few window tokens. The max moves only if a penalised token held
  // it (then rescan) or a penalty < 1 raised one above it.
  if (penalty != 1.0f) {
    assert(static_cast<int64_t>(seen.size()) * 64 >= n);
    bool rescan = false;
    float raised = -kInf;
    for (const int32_t token : window_tokens) {
      const int64_t i = int64_t{token} - begin;
      if (i < 0 || i >= n) continue;
      const uint64_t bit = uint64_t{1} << (i & 63);
      if (seen[i >> 6] & bit) continue;  // once per distinct token
      seen[i >> 6] |= bit;
      const float v = Sanitize(Penalise(Sanitize(logits[i]), penalty) / temperature);
      rescan |= z[i] == max && v < max;
      raised = v > raised ? v : raised;
      z[i] = v;
    }
    for (const int32_t token : window_tokens) {
      const int64_t i = int64_t{token} - begin;
      if (i >= 0 && i < n) seen[i >> 6] = 0;
    }
    max = rescan ? sampling_scan::Max(z.data(), n) : std::max(max, raised);
  }

  // The lowest id holding the max (0 when all are -inf).
  const int64_t argmax = std::min(n - 1, sampling_scan::FindFirstEqual(z.data(), 0, n, max));
  return ScoreStats{max, static_cast<int32_t>(begin + argmax)};
}

int64_t KeptMassBlocks(std::span<const float> z, int64_t begin, float z_max, const Cutoff& cut,
                       bool with_entropy, std::span<Mass> blocks) {
  assert(begin % kReduceBlock == 0);
  const int64_t n = static_cast<int64_t>(z.size());
  int64_t b = 0;
  for (int64_t from = 0; from < n; from += kReduceBlock, ++b) {
    assert(b < static_cast<int64_t>(blocks.size()));
    blocks[b] =
        BlockMass(z, begin, from, std::min(n, from + kReduceBlock), z_max, cut, with_entropy);
  }
  return b;
}

Cutoff MinPCutoff(const SamplingParams& params, float z_max) {
  if (!(params.min_p > 0.0f)) return Cutoff{};
  return AtLeast(static_cast<double>(z_max) + std::log(static_cast<double>(params.min_p)), z_max);
}

Cutoff EtaCutoff(const SamplingParams& params, const Mass& kept, float z_max) {
  const double entropy = std::log(kept.w) - kept.w_log_w / kept.w;
  const double epsilon = params.eta;
  const double eta = std::min(epsilon, std::sqrt(epsilon) * std::exp(-entropy));
  return AtLeast(static_cast<double>(z_max) + std::log(eta * kept.w), z_max);
}

Cutoff ComputeCutoff(const SamplingParams& params, std::span<const float> z, float z_max,
                     std::span<ScoredToken> scratch) {
  Cutoff cut = MinPCutoff(params, z_max);
  if (params.top_p < 1.0f || params.top_k > 0) {
    cut = Stricter(cut, TopPTopKCutoff(params, z, z_max, cut, scratch));
  }
  if (params.eta > 0.0f) {
    cut = Stricter(cut, EtaCutoff(params, KeptMass(z, z_max, cut, /*with_entropy=*/true), z_max));
  }
  return cut;
}

}  // namespace ts
